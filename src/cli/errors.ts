/**
 * The failures the CLI reports, each with the exit code it ends with. The top
 * level (`main.ts`) turns any of them into `hivemind: <message>` lines on
 * stderr; nothing else in the CLI prints an error or exits.
 */

/** Exit codes: 0 ok, 1 the request failed, 2 the command line was wrong. */
export const ExitCode = {
  ok: 0,
  failure: 1,
  usage: 2,
} as const;

/** A failure to report as `hivemind: <message>` (and optional further lines), then exit with `exitCode`. */
export class CliError extends Error {
  readonly exitCode: number;
  /** Lines printed after the first, as they are (the errors of an app file, one a line). */
  readonly details: readonly string[];

  constructor(message: string, options: { exitCode?: number; details?: readonly string[] } = {}) {
    super(message);
    this.exitCode = options.exitCode ?? ExitCode.failure;
    this.details = options.details ?? [];
  }
}

/** Ends the CLI with `exitCode` and prints nothing more: whoever threw it has already told the user (the agent reports its own failures). */
export class ExitRequest extends Error {
  readonly exitCode: number;

  constructor(exitCode: number) {
    super(`exit ${exitCode}`);
    this.exitCode = exitCode;
  }
}

/** The command line is wrong: a bad flag value, a missing input. Exits with 2. */
export class UsageError extends CliError {
  constructor(message: string) {
    super(message, { exitCode: ExitCode.usage });
  }
}

/** The node answered with an error (`{ error: { code, message, field?, errors? } }`). */
export class ApiError extends CliError {
  readonly status: number;
  /** The API's stable code (`not-found`, `quota-exceeded`, ...). */
  readonly code: string;
  readonly field: string | undefined;
  /** The index the refusal reflects (`X-Hivemind-Index`), to block on the next change after a `not-found`. */
  readonly index: number | undefined;

  constructor(init: { status: number; code: string; message: string; field?: string; details?: readonly string[]; index?: number }) {
    super(init.field ? `${init.field}: ${init.message}` : init.message, { details: init.details ?? [] });
    this.status = init.status;
    this.code = init.code;
    this.field = init.field;
    this.index = init.index;
  }
}

/** The node could not be reached at all (refused, unknown host, timed out). */
export class ConnectionError extends CliError {
  /** A Node or undici error code (`ECONNREFUSED`), when there was one. */
  readonly code: string | undefined;

  constructor(address: string, reason: string, code: string | undefined) {
    super(`cannot reach the node at ${address} (${reason}); is \`hivemind agent\` running? (set --addr or HIVEMIND_ADDR)`);
    this.code = code;
  }
}

/** The node's certificate cannot be trusted, or no CA was found to trust it by. */
export class TlsError extends CliError {}

/** OpenSSL's verification failures and node:tls's handshake failures, by code. */
const tlsReasonByCode: Record<string, string> = {
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'its certificate is not signed by a trusted CA',
  UNABLE_TO_GET_ISSUER_CERT: 'its certificate is not signed by a trusted CA',
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: 'its certificate is not signed by a trusted CA',
  SELF_SIGNED_CERT_IN_CHAIN: 'its certificate chains to a CA that is not trusted',
  DEPTH_ZERO_SELF_SIGNED_CERT: 'its certificate is self-signed',
  CERT_HAS_EXPIRED: 'its certificate has expired',
  CERT_NOT_YET_VALID: 'its certificate is not valid yet (are the clocks apart?)',
  CERT_SIGNATURE_FAILURE: 'its certificate\'s signature does not verify',
  EPROTO: 'the TLS handshake failed (a node that has no certificate yet, or one serving plain HTTP with --insecure-api: then use http://)',
  ERR_SSL_WRONG_VERSION_NUMBER: 'the TLS handshake failed (a node serving plain HTTP with --insecure-api? then use http://)',
};

/** Whether `error` (from undici) is a TLS failure: a certificate refused, or a handshake that failed. */
export function isTlsFailure(error: unknown): boolean {
  const code = errorCode(error) ?? errorCode((error as { cause?: unknown } | null)?.cause);
  if (code !== undefined && tlsReasonByCode[code] !== undefined) return true;
  const message = `${(error as Error | null)?.message ?? ''} ${((error as { cause?: Error } | null)?.cause)?.message ?? ''}`;
  return /certificate names|names no Hivemind node/.test(message);
}

const reasonByCode: Record<string, string> = {
  ...tlsReasonByCode,
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'connection reset',
  ENOTFOUND: 'host not found',
  EAI_AGAIN: 'host name lookup failed',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  ETIMEDOUT: 'connection timed out',
  EPIPE: 'connection closed',
  UND_ERR_CONNECT_TIMEOUT: 'connection timed out',
  UND_ERR_HEADERS_TIMEOUT: 'no answer in time',
  UND_ERR_BODY_TIMEOUT: 'the answer stalled',
  UND_ERR_SOCKET: 'connection closed',
  UND_ERR_CLOSED: 'connection closed',
};

/** Words a network error's code in a few plain words; falls back to the error's own message. */
export function describeNetworkError(error: unknown): { reason: string; code: string | undefined } {
  const code = errorCode(error) ?? errorCode((error as { cause?: unknown } | null)?.cause);
  const known = code === undefined ? undefined : reasonByCode[code];
  if (known !== undefined) return { reason: known, code };
  const message = error instanceof Error ? error.message : String(error);
  return { reason: message || 'unknown network error', code };
}

function errorCode(error: unknown): string | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' ? code : undefined;
}

/** The one line for an error the CLI did not expect: its message, never its stack. */
export function describeUnexpected(error: unknown): string {
  if (error instanceof Error) return `unexpected error: ${error.message || error.name}`;
  return `unexpected error: ${String(error)}`;
}
