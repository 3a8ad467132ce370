/**
 * What the proxy answers itself, when it cannot forward: a status, a stable
 * code (also in the `x-hivemind-proxy-error` header) and a sentence saying
 * what failed, on what, and what to do.
 */
export type ProxyErrorCode = 'BAD_REQUEST' | 'NO_ROUTE' | 'NO_INSTANCE' | 'ALL_INSTANCES_UNAVAILABLE' | 'OVERLOADED' | 'UPSTREAM_UNREACHABLE' | 'UPSTREAM_TIMEOUT';

export interface ProxyRefusal {
  readonly status: 400 | 404 | 502 | 503 | 504;
  readonly code: ProxyErrorCode;
  readonly message: string;
}

export const PROXY_ERROR_HEADER = 'x-hivemind-proxy-error';

export function refusal(status: ProxyRefusal['status'], code: ProxyErrorCode, message: string): ProxyRefusal {
  return { status, code, message };
}
