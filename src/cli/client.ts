/**
 * The CLI's HTTP client for one node's API (docs/api.md): JSON in and out,
 * the bearer token, blocking queries, and a bounded retry while the cluster
 * has no leader. Every failure becomes a `CliError` with one clear message.
 *
 * Over HTTPS the client trusts the cluster's CA (`ApiTrust`) and accepts any
 * node of the cluster: the identity is the node id in the certificate, not
 * the host name it was reached at. With only a pinned token, it first
 * fetches the CA certificates over unverified TLS (GET /v1/ca) and keeps the
 * one whose fingerprint is the pin.
 */
import { randomUUID } from 'node:crypto';
import type { Readable } from 'node:stream';
import type { Agent, Dispatcher, request as undiciRequest } from 'undici';
import type { AnswerOf, BodyOf, DeclaredRoute, QueryOf, RoutesOfKind } from '../api/contract.js';
import { fillPath, splitRouteKey, type ParamsOf } from '../api/route-key.js';
import { formatAppFileProblem, type AppFileProblem } from '../appfile/errors.js';
import { ApiError, CliError, ConnectionError, TlsError, describeNetworkError, isTlsFailure } from './errors.js';

/** Attempts of one request while the answer is retryable (an election, a slow quorum, a node starting). */
export const REQUEST_ATTEMPTS_MAX = 4;
/** Pause before the first retry; it doubles each time up to `RETRY_DELAY_MS_MAX`. */
export const RETRY_DELAY_MS_FIRST = 250;
/** Longest pause between two attempts. */
export const RETRY_DELAY_MS_MAX = 2000;
/** How long a plain request may take to answer; the node's own write timeout is shorter. */
export const REQUEST_TIMEOUT_MS = 60_000;
/** How long to wait for a TCP connection before calling the node unreachable. */
export const CONNECT_TIMEOUT_MS = 10_000;
/** Extra time a blocking query is given beyond its `wait`, for the answer to travel. */
const BLOCKING_GRACE_MS = 15_000;
/** Longest blocking wait the API accepts (docs/api.md: at most 5m). */
export const BLOCKING_WAIT_MS_MAX = 5 * 60_000;

// `unavailable`: the node is starting (or stopping); `overloaded`: its queue is full. Both pass.
const retryableCodes = new Set(['no-leader', 'timeout', 'unavailable', 'overloaded']);

/** What a client needs: where the node is and how to prove the right to ask. */
export interface ClientOptions {
  /** Base URL, normalized (`http://127.0.0.1:7070`). */
  address: string;
  /** Bearer token, or `undefined` to send none. */
  token: string | undefined;
  /** Says where the token came from (or that none was found), for the `unauthenticated` message. */
  tokenSource: string;
  /** How to trust the node's certificate (HTTPS only). */
  trust: ApiTrust;
}

/**
 * What the client trusts an HTTPS node by: CA certificates (and where they
 * came from), a pinned token's CA fingerprint, or nothing found (where the
 * CLI looked).
 */
export type ApiTrust = { type: 'ca'; caPems: readonly string[]; source: string } | { type: 'pin'; fingerprint: string } | { type: 'none'; searched: string };

/** A successful answer: the parsed body and the index it reflects (`X-Hivemind-Index`). */
export interface ApiResponse<T> {
  body: T;
  index: number | undefined;
}

/** Query parameters; `undefined` values are left out. */
export type Query = Record<string, string | number | boolean | undefined>;

/** A blocking read: answer once the state passed `index`, or after `waitMs`. */
export interface Blocking {
  index: number;
  waitMs: number;
}

type Method = 'GET' | 'PUT' | 'POST' | 'DELETE';

/** Routes whose answer is JSON (reads, writes, and the local routes that answer JSON). */
export type JsonRoute = Exclude<DeclaredRoute, StreamRoute | RoutesOfKind<'upload'> | 'GET /v1/ca' | 'GET /metrics'>;
/** Routes whose answer is streamed (logs, a volume backup), or that may run longer than any deadline (a move's copy). */
export type StreamRoute = 'GET /v1/instances/:id/logs' | 'POST /v1/instances/:id/exec' | 'POST /v1/instances/:id/exec/session' | 'GET /v1/apps/:tenant/:name/logs' | 'GET /v1/volumes/:tenant/:name/backup' | 'PUT /v1/volumes/:tenant/:name/restore' | 'POST /v1/volumes/:tenant/:name/move/copy';

/**
 * A request to declared route `Key` (src/api/contract.ts): its path
 * parameters, query and JSON body as the contract types them; for a read,
 * optionally a blocking wait.
 */
export type RequestOf<Key extends DeclaredRoute> = (keyof ParamsOf<Key> extends never ? { params?: undefined } : { params: ParamsOf<Key> }) &
  (BodyOf<Key> extends undefined ? { body?: undefined } : { body: BodyOf<Key> }) & { query?: QueryOf<Key> } & (Key extends RoutesOfKind<'read'> ? { blocking?: Blocking | undefined } : { blocking?: undefined });

/** The request argument of `call`: optional where the route takes no parameters and no body. */
export type RequestArguments<Key extends DeclaredRoute> = keyof ParamsOf<Key> extends never ? (BodyOf<Key> extends undefined ? [request?: RequestOf<Key>] : [request: RequestOf<Key>]) : [request: RequestOf<Key>];

/** undici, once loaded: the client's connection pool and its request function. */
interface Connection {
  agent: Agent;
  request: typeof undiciRequest;
}

/** One node's API. Owns its connection pool: call `close()` when done. */
export class ApiClient {
  readonly address: string;
  private readonly token: string | undefined;
  private readonly tokenSource: string;
  private readonly trust: ApiTrust;
  /** Made at the first request: loading undici takes longer than most commands, so --help and completion skip it. */
  private undici: Promise<Connection> | undefined;

  constructor(options: ClientOptions) {
    this.address = options.address;
    this.token = options.token;
    this.tokenSource = options.tokenSource;
    this.trust = options.trust;
  }

  private connection(): Promise<Connection> {
    this.undici ??= this.connect();
    return this.undici;
  }

  private async connect(): Promise<Connection> {
    const { Agent, request } = await import('undici');
    if (this.address.startsWith('http://')) return { agent: new Agent({ connect: { timeout: CONNECT_TIMEOUT_MS } }), request };
    const { clusterApiAgent } = await import('../api/tls.js');
    const agentOptions = { connect: { timeout: CONNECT_TIMEOUT_MS } };
    switch (this.trust.type) {
      case 'ca':
        return { agent: clusterApiAgent(this.trust.caPems, { agent: agentOptions }), request };
      case 'pin':
        return { agent: clusterApiAgent([await this.pinnedCa(this.trust.fingerprint)], { agent: agentOptions }), request };
      case 'none':
        // The system's CAs and host name checks (a node behind a proxy with a public certificate); a node's own certificate fails, and the message says what to give.
        return { agent: new Agent(agentOptions), request };
    }
  }

  /**
   * The CA certificate the pin names, from the node's GET /v1/ca over TLS
   * that verifies nothing (the pin does). Only that one is trusted: another
   * certificate sent beside it could be anyone's.
   */
  private async pinnedCa(fingerprint: string): Promise<string> {
    const { Agent, request } = await import('undici');
    const { caFingerprint, splitPemBundle } = await import('../security/pinned-token.js');
    const unverified = new Agent({ connect: { timeout: CONNECT_TIMEOUT_MS, rejectUnauthorized: false } });
    let text: string;
    try {
      const response = await request(`${this.address}/v1/ca`, { method: 'GET', dispatcher: unverified, headersTimeout: REQUEST_TIMEOUT_MS, bodyTimeout: REQUEST_TIMEOUT_MS });
      text = await response.body.text();
      if (response.statusCode !== 200) throw new CliError(`cannot fetch the cluster's CA from ${this.address}/v1/ca: the node answered ${response.statusCode}${text.trim() === '' ? '' : `: ${text.trim().slice(0, 200)}`}`);
    } catch (error) {
      if (error instanceof CliError) throw error;
      const { reason, code } = describeNetworkError(error);
      throw new ConnectionError(this.address, reason, code);
    } finally {
      await unverified.close().catch(() => {});
    }
    const certificates = splitPemBundle(text).map((pem) => ({ pem, fingerprint: safeFingerprint(caFingerprint, pem) }));
    const pinned = certificates.find((certificate) => certificate.fingerprint === fingerprint);
    if (pinned === undefined) {
      const presented = certificates.map((certificate) => certificate.fingerprint ?? 'unreadable').join(', ') || 'none';
      throw new TlsError(
        `refusing the node at ${this.address}: its cluster CA (sha256 ${presented}) is not the one the token pins (sha256 ${fingerprint}). ` +
          'The token is from another cluster, the CA was rotated since it was copied (`hivemind token` on a member shows the current one), or something between you and the node is posing as it',
      );
    }
    return pinned.pem;
  }

  /**
   * Calls declared route `key` and answers its JSON, typed by the contract.
   * A read with `blocking` is held by the node until the state passes
   * `blocking.index`. Retried while the node answers that it cannot serve
   * yet (see `send`); a write under one `Idempotency-Key`, so it applies once.
   */
  call<Key extends JsonRoute>(key: Key, ...[request]: RequestArguments<Key>): Promise<ApiResponse<AnswerOf<Key>>> {
    const { method, path } = splitRouteKey(key);
    const target = fillPath(path, (request?.params ?? {}) as Record<string, string>);
    const query: Query = { ...(request?.query as Query | undefined) };
    const blocking = request?.blocking;
    if (blocking === undefined) return this.send<AnswerOf<Key>>(method, target, query, request?.body, REQUEST_TIMEOUT_MS);
    const waitMs = Math.min(blocking.waitMs, BLOCKING_WAIT_MS_MAX);
    const blockingQuery = { ...query, index: blocking.index, wait: `${Math.ceil(waitMs / 1000)}s` };
    return this.send<AnswerOf<Key>>(method, target, blockingQuery, undefined, REQUEST_TIMEOUT_MS + waitMs + BLOCKING_GRACE_MS);
  }

  /**
   * POSTs a raw body (an upload route, such as an image archive): `open`
   * gives the bytes, once per attempt (a retry sends them again from the
   * start), `bytes` is their length (sent as Content-Length, so the node can
   * refuse an oversized body before it comes). Retries like `post`; no
   * deadline beyond REQUEST_TIMEOUT_MS between two chunks or for the answer.
   */
  upload<Key extends 'POST /v1/images/upload'>(key: Key, body: RawBody, query?: QueryOf<Key>): Promise<ApiResponse<AnswerOf<Key>>> {
    const { method, path } = splitRouteKey(key);
    return this.send<AnswerOf<Key>>(method, path, { ...query }, body, REQUEST_TIMEOUT_MS);
  }

  /**
   * One request whose bodies stream (a volume backup or restore): `body`, if
   * given, is sent as it comes (chunked, as `contentType`), and a 2xx
   * answer's body is handed back unread. Not retried (a stream cannot be
   * sent again); no deadline (a backup's answer begins once its copy is
   * taken, a restore's once the whole archive is in). Throws ApiError for an error answer.
   */
  async stream<Key extends StreamRoute>(
    key: Key,
    target: { params: ParamsOf<Key>; query?: QueryOf<Key> },
    options: { body?: Readable; contentType?: string; signal?: AbortSignal } = {},
  ): Promise<{ body: AsyncIterable<Uint8Array>; contentType: string | undefined }> {
    const { method, path: template } = splitRouteKey(key);
    const path = fillPath(template, target.params);
    const query: Query = { ...(target.query as Query | undefined) };
    const headers: Record<string, string> = {};
    if (this.token !== undefined) headers.authorization = `Bearer ${this.token}`;
    if (options.contentType !== undefined) headers['content-type'] = options.contentType;
    const { agent, request } = await this.connection();
    let response: Dispatcher.ResponseData;
    try {
      response = await request(this.address + path + queryString(query), {
        method,
        headers,
        body: options.body ?? null,
        dispatcher: agent,
        headersTimeout: 0,
        bodyTimeout: 0,
        ...(options.signal ? { signal: options.signal } : {}),
      });
    } catch (error) {
      const { reason, code } = describeNetworkError(error);
      if (isTlsFailure(error)) throw new TlsError(`cannot trust the node at ${this.address}: ${reason}${this.trustHint()}`);
      throw new ConnectionError(this.address, reason, code);
    }
    if (response.statusCode >= 200 && response.statusCode < 300) {
      const contentType = response.headers['content-type'];
      return { body: response.body, contentType: typeof contentType === 'string' ? contentType : undefined };
    }
    throw this.errorOf(response.statusCode, await response.body.text(), parseIndex(response.headers['x-hivemind-index']));
  }

  /** Closes the connection pool, so the process can end. */
  async close(): Promise<void> {
    if (this.undici !== undefined) await (await this.undici).agent.close();
  }

  /**
   * Sends one request, retrying (with the same `Idempotency-Key`, so a write
   * applies once) while the node answers `no-leader`, `timeout`, `unavailable` or `overloaded`.
   */
  private async send<T>(method: Method, path: string, query: Query, body: unknown, timeoutMs: number): Promise<ApiResponse<T>> {
    const idempotencyKey = method === 'GET' ? undefined : randomUUID();
    let delayMs = RETRY_DELAY_MS_FIRST;
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.sendOnce<T>({ method, path, query, body, timeoutMs, idempotencyKey });
      } catch (error) {
        const retryable = error instanceof ApiError && retryableCodes.has(error.code);
        if (!retryable || attempt >= REQUEST_ATTEMPTS_MAX) throw error;
      }
      await sleep(delayMs);
      delayMs = Math.min(delayMs * 2, RETRY_DELAY_MS_MAX);
    }
  }

  private async sendOnce<T>(init: {
    method: Method;
    path: string;
    query: Query;
    body: unknown;
    timeoutMs: number;
    idempotencyKey: string | undefined;
  }): Promise<ApiResponse<T>> {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (this.token !== undefined) headers.authorization = `Bearer ${this.token}`;
    const raw = init.body instanceof RawBody ? init.body : undefined;
    if (raw !== undefined) {
      headers['content-type'] = raw.contentType;
      headers['content-length'] = String(raw.bytes);
    } else if (init.body !== undefined) headers['content-type'] = 'application/json';
    if (init.idempotencyKey !== undefined) headers['idempotency-key'] = init.idempotencyKey;
    const { agent, request } = await this.connection();
    let response: Dispatcher.ResponseData;
    let text: string;
    try {
      response = await request(this.address + init.path + queryString(init.query), {
        method: init.method,
        headers,
        body: raw !== undefined ? raw.open() : init.body === undefined ? null : JSON.stringify(init.body),
        dispatcher: agent,
        headersTimeout: init.timeoutMs,
        bodyTimeout: init.timeoutMs,
      });
      text = await response.body.text();
    } catch (error) {
      const { reason, code } = describeNetworkError(error);
      if (isTlsFailure(error)) {
        if (this.trust.type === 'none') {
          throw new TlsError(
            `cannot verify the node at ${this.address} (${reason}): no CA certificate to trust. Pass --ca FILE (or HIVEMIND_CA), run the CLI where the node's data directory is ` +
              `(--data-dir; it looked for ${this.trust.searched}), or give the pinned token \`hivemind token\` prints (hmca:...)`,
          );
        }
        throw new TlsError(`cannot trust the node at ${this.address}: ${reason}${this.trustHint()}`);
      }
      throw new ConnectionError(this.address, reason, code);
    }
    const index = parseIndex(response.headers['x-hivemind-index']);
    if (response.statusCode >= 200 && response.statusCode < 300) {
      return { body: parseBody(text) as T, index };
    }
    throw this.errorOf(response.statusCode, text, index);
  }

  /** Where the trust came from, for a TLS failure's message. */
  private trustHint(): string {
    switch (this.trust.type) {
      case 'ca':
        return ` (the CLI trusted the CA certificates of ${this.trust.source}; give another with --ca FILE or HIVEMIND_CA, or use http:// for a node run with --insecure-api)`;
      case 'pin':
        return ` (the CLI trusted the CA the token pins, sha256 ${this.trust.fingerprint})`;
      case 'none':
        return '';
    }
  }

  private errorOf(status: number, text: string, index: number | undefined): ApiError {
    const parsed = parseBody(text) as { error?: { code?: unknown; message?: unknown; field?: unknown; errors?: unknown } } | undefined;
    const error = parsed?.error;
    if (typeof error !== 'object' || error === null || typeof error.code !== 'string') {
      const snippet = text.trim().slice(0, 200);
      return new ApiError({ status, code: `http-${status}`, message: `the node answered ${status}${snippet ? `: ${snippet}` : ''}`, ...(index === undefined ? {} : { index }) });
    }
    const code = error.code;
    let message = typeof error.message === 'string' ? error.message : code;
    const field = typeof error.field === 'string' && error.field !== '' ? error.field : undefined;
    const problems = Array.isArray(error.errors) ? error.errors.filter(isAppFileProblem) : [];
    const details = problems.map(formatAppFileProblem);
    // The API's message repeats the first problem; the lines that follow list them all, so the headline only counts them.
    const first = problems[0];
    if (code === 'invalid-app-file' && first !== undefined) {
      message = `cannot deploy ${first.file}: ${problems.length} error${problems.length === 1 ? '' : 's'} in the file; nothing was deployed`;
    }
    if (code === 'unauthenticated') message = `${message} (${this.tokenSource}; pass --token or set HIVEMIND_TOKEN)`;
    return new ApiError({ status, code, message, ...(field === undefined ? {} : { field }), ...(index === undefined ? {} : { index }), details });
  }
}

/** A body sent as is (not JSON): its type, length in bytes, and a way to read it from the start. */
export class RawBody {
  constructor(
    readonly contentType: string,
    readonly bytes: number,
    readonly open: () => Readable,
  ) {}
}

/** The path of declared route `key` with `params` (`/v1/apps/acme/web/logs`), for a request made without `ApiClient` (logs that follow). */
export function routePath<Key extends DeclaredRoute>(key: Key, params: ParamsOf<Key>): string {
  return fillPath(splitRouteKey(key).path, params);
}

function queryString(query: Query): string {
  const parameters = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) {
    if (value !== undefined) parameters.set(key, String(value));
  }
  const text = parameters.toString();
  return text ? `?${text}` : '';
}

function parseIndex(header: string | string[] | undefined): number | undefined {
  const text = Array.isArray(header) ? header[0] : header;
  if (text === undefined || !/^\d+$/.test(text)) return undefined;
  const index = Number(text);
  return Number.isSafeInteger(index) ? index : undefined;
}

function parseBody(text: string): unknown {
  if (text.trim() === '') return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

function isAppFileProblem(value: unknown): value is AppFileProblem {
  if (typeof value !== 'object' || value === null) return false;
  const problem = value as Record<string, unknown>;
  return typeof problem.file === 'string' && typeof problem.path === 'string' && typeof problem.message === 'string';
}

function sleep(durationMs: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, durationMs));
}

function safeFingerprint(fingerprint: (pem: string) => string, pem: string): string | undefined {
  try {
    return fingerprint(pem);
  } catch {
    return undefined;
  }
}
