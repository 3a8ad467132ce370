/**
 * The harness's HTTP client for node APIs (undici, short timeouts). Every
 * request ends in one of three ways, which is what a history needs to know:
 * an answer (status and JSON body), `not-sent` (the connection was never
 * made, so the request had no effect), or `unknown` (it may have reached
 * the node: a timeout or a broken connection after connecting).
 *
 * The APIs speak HTTPS: the client trusts the cluster's CA, read from the
 * nodes' data directories (on the host's filesystem) by `caBundle`, and
 * accepts any node of the cluster (src/api/tls.ts).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { clusterApiAgent } from '../src/api/tls.js';

/** How one request ended. */
export type HttpOutcome =
  | { readonly kind: 'answer'; readonly status: number; readonly body: any }
  | { readonly kind: 'not-sent'; readonly message: string }
  | { readonly kind: 'unknown'; readonly message: string };

/** Error codes that mean no connection was established (or TLS refused it before the request), so nothing was sent. */
const notSentCodes = new Set([
  'ECONNREFUSED', 'UND_ERR_CONNECT_TIMEOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EHOSTDOWN', 'EADDRNOTAVAIL',
  'EPROTO', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'SELF_SIGNED_CERT_IN_CHAIN', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID',
]);

/** Settings of an `ApiClient`. */
export interface ApiClientOptions {
  /** The cluster's join token, sent as the bearer token. */
  readonly token: string;
  /** Time to connect before giving up (nothing sent). */
  readonly connectTimeoutMs: number;
  /** Time for the whole answer once connected; past it the outcome is unknown. */
  readonly requestTimeoutMs: number;
  /** The cluster's CA certificates (PEM), or undefined while no node has them yet (`clusterCaBundle`). */
  readonly caBundle: () => string | undefined;
}

/** The CA bundle of the first of `dataDirectories` that has one (`tls/ca.crt`); every node of a cluster holds the same. */
export function clusterCaBundle(dataDirectories: readonly string[]): string | undefined {
  for (const directory of dataDirectories) {
    const path = join(directory, 'tls', 'ca.crt');
    if (!existsSync(path)) continue;
    try {
      return readFileSync(path, 'utf8');
    } catch {
      // Being rewritten (a rotation): try the next.
    }
  }
  return undefined;
}

/** One HTTP client (one connection pool per origin) shared by the harness's callers. */
export class ApiClient {
  private pool: { bundle: string; dispatcher: Agent } | undefined;

  constructor(private readonly options: ApiClientOptions) {}

  /** The pool for the current CA bundle; a new one when the bundle changed (a CA rotation). Undefined before any node has a CA. */
  private dispatcher(): Agent | undefined {
    const bundle = this.options.caBundle();
    if (bundle === undefined) return this.pool?.dispatcher;
    if (this.pool?.bundle === bundle) return this.pool.dispatcher;
    if (this.pool !== undefined) void this.pool.dispatcher.close().catch(() => {});
    const dispatcher = clusterApiAgent(bundle, {
      agent: { connect: { timeout: this.options.connectTimeoutMs }, headersTimeout: this.options.requestTimeoutMs, bodyTimeout: this.options.requestTimeoutMs, keepAliveTimeout: 2000, connections: 32 },
    });
    this.pool = { bundle, dispatcher };
    return dispatcher;
  }

  /** Sends `method path` to `origin` (`https://10.213.0.11:7070`); never throws. */
  async call(origin: string, method: 'GET' | 'PUT' | 'POST' | 'DELETE', path: string, body?: unknown, timeoutMs?: number): Promise<HttpOutcome> {
    const headers: Record<string, string> = { authorization: `Bearer ${this.options.token}` };
    if (body !== undefined) headers['content-type'] = 'application/json';
    const signal = AbortSignal.timeout(timeoutMs ?? this.options.requestTimeoutMs);
    const dispatcher = this.dispatcher();
    if (dispatcher === undefined) return { kind: 'not-sent', message: 'no node has the cluster CA yet (tls/ca.crt)' };
    try {
      const answer = await request(`${origin}${path}`, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        dispatcher,
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
    await this.pool?.dispatcher.destroy();
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
