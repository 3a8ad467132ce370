/**
 * The harness's HTTP client for node APIs (undici, short timeouts). Every
 * request ends in one of three ways, which is what a history needs to know:
 * an answer (status and JSON body), `not-sent` (the connection was never
 * made, so the request had no effect), or `unknown` (it may have reached
 * the node: a timeout or a broken connection after connecting).
 */
import { Agent, request } from 'undici';

/** How one request ended. */
export type HttpOutcome =
  | { readonly kind: 'answer'; readonly status: number; readonly body: any }
  | { readonly kind: 'not-sent'; readonly message: string }
  | { readonly kind: 'unknown'; readonly message: string };

/** Error codes that mean no connection was established, so nothing was sent. */
const notSentCodes = new Set(['ECONNREFUSED', 'UND_ERR_CONNECT_TIMEOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EHOSTDOWN', 'EADDRNOTAVAIL']);

/** Settings of an `ApiClient`. */
export interface ApiClientOptions {
  /** The cluster's join token, sent as the bearer token. */
  readonly token: string;
  /** Time to connect before giving up (nothing sent). */
  readonly connectTimeoutMs: number;
  /** Time for the whole answer once connected; past it the outcome is unknown. */
  readonly requestTimeoutMs: number;
}

/** One HTTP client (one connection pool per origin) shared by the harness's callers. */
export class ApiClient {
  private readonly dispatcher: Agent;

  constructor(private readonly options: ApiClientOptions) {
    this.dispatcher = new Agent({
      connect: { timeout: options.connectTimeoutMs },
      headersTimeout: options.requestTimeoutMs,
      bodyTimeout: options.requestTimeoutMs,
      keepAliveTimeout: 2000,
      connections: 32,
    });
  }

  /** Sends `method path` to `origin` (`http://10.213.0.11:7070`); never throws. */
  async call(origin: string, method: 'GET' | 'PUT' | 'POST' | 'DELETE', path: string, body?: unknown, timeoutMs?: number): Promise<HttpOutcome> {
    const headers: Record<string, string> = { authorization: `Bearer ${this.options.token}` };
    if (body !== undefined) headers['content-type'] = 'application/json';
    const signal = AbortSignal.timeout(timeoutMs ?? this.options.requestTimeoutMs);
    try {
      const answer = await request(`${origin}${path}`, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        dispatcher: this.dispatcher,
        signal,
      });
      const text = await answer.body.text();
      let parsed: unknown = text;
      try {
        parsed = JSON.parse(text);
      } catch {
        // Not JSON: keep the text.
      }
      return { kind: 'answer', status: answer.statusCode, body: parsed };
    } catch (error) {
      const code = errorCode(error);
      const message = `${code ?? (error as Error).name}: ${(error as Error).message}`;
      return notSentCodes.has(code ?? '') ? { kind: 'not-sent', message } : { kind: 'unknown', message };
    }
  }

  async close(): Promise<void> {
    await this.dispatcher.destroy();
  }
}

function errorCode(error: unknown): string | undefined {
  let current: any = error;
  for (let depth = 0; depth < 4 && current !== undefined && current !== null; depth++) {
    if (typeof current.code === 'string') return current.code;
    current = current.cause;
  }
  return undefined;
}

/** The API's error code in an answer body (`{ error: { code } }`), if any. */
export function apiErrorCode(body: unknown): string | undefined {
  const error = (body as { error?: { code?: unknown } } | undefined)?.error;
  return typeof error?.code === 'string' ? error.code : undefined;
}
