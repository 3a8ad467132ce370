/**
 * The reverse proxy's engine: for each request, the route, the bulkhead,
 * the choice of a backend (split, balancer, breakers, ejections), the
 * forwarding with retries, and the bookkeeping (breakers, outliers, metrics,
 * access log). The route table comes from `read()` and is rebuilt lazily
 * after `invalidate()`. Backend records (pool, breaker, outlier detector,
 * requests in flight) and app records (balancer state, retry budget,
 * requests in flight) outlive rebuilds, keyed by instance and app.
 *
 * Time comes from an injected clock, randomness from an injected function.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Http2ServerRequest, Http2ServerResponse } from 'node:http2';
import type { Readable } from 'node:stream';
import { Pool, type Dispatcher } from 'undici';
import type { DiscoveryInput } from '../discovery/endpoints.js';
import { matchesAbRule } from './ab-rule.js';
import { newBalanceState, pickBackend, type BalanceState, type Candidate } from './balancer.js';
import { cookieValue } from './cookies.js';
import { CircuitBreaker, type BreakerState } from './breaker.js';
import { PROXY_ERROR_HEADER, refusal, type ProxyRefusal } from './errors.js';
import { downstreamResponseHeaders, hasRequestBody, IDEMPOTENT_METHODS, requestHost, upstreamRequestHeaders } from './headers.js';
import { OutlierDetector } from './outlier.js';
import { RetryBudget, withRetries, type RetryClock } from './retry.js';
import { routeTableOf, type AppTarget, type BackendTarget, type RouteTable } from './route-table.js';

/** A client's request: HTTP/1.1, or HTTP/2 through node:http2's compatibility API. */
export type ClientRequest = IncomingMessage | Http2ServerRequest;
/** The response to a `ClientRequest`. */
export type ClientResponse = ServerResponse | Http2ServerResponse;

/** One backend as the proxy keeps it across table rebuilds. */
export interface BackendRecord {
  target: BackendTarget;
  readonly pool: Pool;
  readonly breaker: CircuitBreaker;
  readonly outlier: OutlierDetector;
  inFlight: number;
}

/** One app as the proxy keeps it across table rebuilds. */
export interface AppRecord {
  target: AppTarget;
  readonly balance: BalanceState;
  readonly budget: RetryBudget;
  inFlight: number;
}

/** What one request came to, for the metrics and the access log. */
export interface RequestRecord {
  readonly method: string;
  readonly host: string;
  readonly path: string;
  readonly client: string;
  readonly status: number;
  readonly durationMs: number;
  /** `tenant/app`, when a route matched. */
  readonly app?: string;
  /** The matched rule (`web.default.hivemind`, `shop.example.com/api`). */
  readonly route?: string;
  /** The instance that answered, or the last one tried. */
  readonly instance?: string;
  readonly attempts: number;
  /** The proxy's own error code, when it answered itself. */
  readonly error?: string;
}

export interface ReverseProxyOptions {
  /** The replica's records, read on the first request after a change. */
  read: () => DiscoveryInput;
  clock: RetryClock;
  random: () => number;
  /** Called once per request when its response has ended (or the client went away). */
  onRequest?: (record: RequestRecord) => void;
  /** Breaker and ejection transitions, route conflicts. */
  log: (line: string) => void;
  /** Retry backoff; default 25 ms doubling to 250 ms. */
  backoff?: { baseMs: number; maxMs: number };
  /** Connections per backend pool; default 64. */
  connectionsPerBackend?: number;
}

type AttemptOutcome =
  | { kind: 'response'; backend: BackendRecord; response: Dispatcher.ResponseData }
  | { kind: 'failure'; backend: BackendRecord | undefined; failure: 'connect' | 'reset' | 'timeout' | 'none'; message: string; refusal?: ProxyRefusal };

/** Never more than this share of an app's backends is ejected at once. */
const EJECTED_SHARE_MAX = 0.5;
const CONNECT_FAILURE_CODES: ReadonlySet<string> = new Set(['ECONNREFUSED', 'UND_ERR_CONNECT_TIMEOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL', 'ENOTFOUND']);
const TIMEOUT_CODES: ReadonlySet<string> = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT']);

export class ReverseProxy {
  private table: RouteTable | undefined;
  private readonly backends = new Map<string, BackendRecord>();
  private readonly apps = new Map<string, AppRecord>();
  private readonly backoff: { baseMs: number; maxMs: number };
  private closed = false;

  constructor(private readonly options: ReverseProxyOptions) {
    this.backoff = options.backoff ?? { baseMs: 25, maxMs: 250 };
  }

  /** The state changed: the next request rebuilds the table. */
  invalidate(): void {
    this.table = undefined;
  }

  /** The current table (built if stale); records for apps and backends follow it. */
  routes(): RouteTable {
    if (this.table !== undefined) return this.table;
    const table = routeTableOf(this.options.read());
    this.table = table;
    this.reconcile(table);
    return table;
  }

  /** Backends and their breaker states, for metrics. */
  breakerStates(): { app: string; instance: string; state: BreakerState }[] {
    const nowMs = this.options.clock.nowMs();
    const states: { app: string; instance: string; state: BreakerState }[] = [];
    for (const app of this.routes().apps.values()) {
      for (const target of app.backends) {
        const record = this.backends.get(backendKey(target));
        if (record !== undefined) states.push({ app: app.key, instance: target.instance, state: record.breaker.state(nowMs) });
      }
    }
    return states;
  }

  /** Handles one request to the end of its response. Never rejects. */
  async handle(request: ClientRequest, response: ClientResponse): Promise<void> {
    const startedMs = this.options.clock.nowMs();
    const host = requestHost(request.headers);
    const path = request.url ?? '/';
    const client = request.socket.remoteAddress ?? '';
    const base = { method: request.method ?? 'GET', host: host ?? '', path, client };
    const finish = (extra: Omit<RequestRecord, keyof typeof base | 'durationMs'>): void => {
      this.options.onRequest?.({ ...base, ...extra, durationMs: this.options.clock.nowMs() - startedMs });
    };
    if (host === undefined || host === '') {
      answer(response, refusal(400, 'BAD_REQUEST', 'hivemind proxy: the request has no Host header; name the app as <app>.<tenant>.hivemind'));
      finish({ status: 400, attempts: 0, error: 'BAD_REQUEST' });
      return;
    }
    const match = this.routes().lookup(host, path);
    if (match === undefined) {
      answer(response, refusal(404, 'NO_ROUTE', `hivemind proxy: no app serves host "${host}"${path === '/' ? '' : ` and path "${path.split('?')[0]}"`}; apps are reached as <app>.<tenant>.hivemind or at the hosts they declare under x-hivemind.routes`));
      finish({ status: 404, attempts: 0, error: 'NO_ROUTE' });
      return;
    }
    const app = this.apps.get(match.target.key)!;
    const routed = { app: app.target.key, route: match.route };
    if (app.inFlight >= app.target.settings.maxConcurrent) {
      answer(response, refusal(503, 'OVERLOADED', `hivemind proxy: ${app.target.key} has ${app.inFlight} requests in flight through this node, its limit (x-hivemind.proxy.max_concurrent ${app.target.settings.maxConcurrent}); retry later`));
      finish({ ...routed, status: 503, attempts: 0, error: 'OVERLOADED' });
      return;
    }
    app.inFlight++;
    app.budget.deposit();
    try {
      await this.forward(request, response, app, startedMs, routed, finish);
    } finally {
      app.inFlight--;
    }
  }

  /** Closes every pool; requests in flight end. */
  async close(): Promise<void> {
    this.closed = true;
    const pools = [...this.backends.values()].map((record) => record.pool.destroy().catch(() => {}));
    this.backends.clear();
    await Promise.all(pools);
  }

  private async forward(request: ClientRequest, response: ClientResponse, app: AppRecord, startedMs: number, routed: { app: string; route: string }, finish: (extra: Omit<RequestRecord, 'method' | 'host' | 'path' | 'client' | 'durationMs'>) => void): Promise<void> {
    const settings = app.target.settings;
    const method = request.method ?? 'GET';
    // HTTP/2 says "no body" by ending the stream with the headers, not by a length.
    const withBody = request instanceof Http2ServerRequest ? !request.stream.endAfterHeaders : hasRequestBody(request.headers);
    const idempotent = IDEMPOTENT_METHODS.has(method) && !withBody;
    const headers = upstreamRequestHeaders(request.rawHeaders, { clientAddress: request.socket.remoteAddress ?? '', protocol: 'http' });
    const steer = steeringOf(request, app.target);
    const deadlineMs = startedMs + settings.timeoutMs;
    const tried = new Set<string>();
    let clientGone = false;
    response.once('close', () => {
      if (!response.writableFinished) clientGone = true;
    });
    const attempt = async (): Promise<AttemptOutcome> => {
      const backend = this.choose(app, tried, steer);
      if (backend === undefined) {
        const none = app.target.backends.length === 0;
        return {
          kind: 'failure',
          backend: undefined,
          failure: 'none',
          message: '',
          refusal: none
            ? refusal(503, 'NO_INSTANCE', `hivemind proxy: ${app.target.key} has no serving instance (none running and healthy with a TCP port); see hivemind ps`)
            : refusal(503, 'ALL_INSTANCES_UNAVAILABLE', `hivemind proxy: every instance of ${app.target.key} is unavailable (${app.target.backends.length} with open circuit breakers, ejected, or already tried); retry later`),
        };
      }
      tried.add(backend.target.instance);
      return this.send(backend, { method, path: request.url ?? '/', headers, body: withBody ? request : null, timeoutMs: Math.max(1, deadlineMs - this.options.clock.nowMs()), idleMs: settings.timeoutMs });
    };
    const { outcome, attempts } = await withRetries(attempt, {
      retriesMax: settings.retries,
      deadlineMs,
      backoff: this.backoff,
      clock: this.options.clock,
      random: this.options.random,
      // A request whose body was not read yet (refused connection) may go elsewhere whatever its method.
      retryable: (result) => !clientGone && result.kind === 'failure' && result.failure !== 'none' && (idempotent || (result.failure === 'connect' && !request.readableDidRead)),
      mayRetry: () => app.budget.tryWithdraw(),
    });
    if (outcome.kind === 'failure') {
      const answered = outcome.refusal ?? failureRefusal(outcome, app.target.key, attempts);
      if (!clientGone) answer(response, answered);
      finish({ ...routed, status: answered.status, attempts, error: answered.code, ...(outcome.backend ? { instance: outcome.backend.target.instance } : {}) });
      return;
    }
    const { backend, response: upstream } = outcome;
    backend.outlier.recordStatus(upstream.statusCode, this.options.clock.nowMs(), this.mayEject(app));
    backend.inFlight++;
    try {
      response.writeHead(upstream.statusCode, downstreamResponseHeaders(upstream.headers as Record<string, string | string[] | undefined>));
      // A streamed body (no length) may be slow to start: the client gets the headers now, not with the first chunk.
      // (HTTP/2's writeHead sends them at once.)
      if (upstream.headers['content-length'] === undefined && !(response instanceof Http2ServerResponse)) response.flushHeaders();
    } catch (error) {
      upstream.body.destroy();
      backend.inFlight--;
      response.destroy();
      finish({ ...routed, status: 502, attempts, instance: backend.target.instance, error: 'BAD_UPSTREAM_HEADERS' });
      return;
    }
    await relay(upstream.body, response);
    backend.inFlight--;
    finish({ ...routed, status: upstream.statusCode, attempts, instance: backend.target.instance });
  }

  private async send(backend: BackendRecord, request: { method: string; path: string; headers: string[]; body: Readable | null; timeoutMs: number; idleMs: number }): Promise<AttemptOutcome> {
    backend.inFlight++;
    try {
      const response = await backend.pool.request({
        method: request.method as Dispatcher.HttpMethod,
        path: request.path,
        headers: request.headers,
        body: request.body,
        headersTimeout: request.timeoutMs,
        bodyTimeout: request.idleMs,
      });
      backend.breaker.recordSuccess();
      return { kind: 'response', backend, response };
    } catch (error) {
      const code = (error as { code?: string }).code ?? '';
      const failure = CONNECT_FAILURE_CODES.has(code) ? 'connect' : TIMEOUT_CODES.has(code) ? 'timeout' : 'reset';
      if (code === 'UND_ERR_ABORTED' || code === 'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH') backend.breaker.recordAbandoned();
      else if (backend.breaker.recordFailure(this.options.clock.nowMs())) this.options.log(`circuit breaker of ${backend.target.instance} (${backend.target.authority}) opened: ${describeError(error)}`);
      return { kind: 'failure', backend, failure, message: describeError(error) };
    } finally {
      backend.inFlight--;
    }
  }

  /**
   * The backend for the next attempt: not tried yet by this request, breaker
   * allowing, not ejected; then split and balancer. A request the A/B rule
   * matched chooses among its version's backends, or, none of them
   * available, among all.
   */
  private choose(app: AppRecord, tried: ReadonlySet<string>, steer: Steering): BackendRecord | undefined {
    if (steer.version !== undefined) {
      const chosen = this.chooseAmong(app, tried, steer.hashKey, steer.version);
      if (chosen !== undefined) return chosen;
    }
    return this.chooseAmong(app, tried, steer.hashKey, undefined);
  }

  private chooseAmong(app: AppRecord, tried: ReadonlySet<string>, hashKey: string | undefined, version: number | undefined): BackendRecord | undefined {
    const nowMs = this.options.clock.nowMs();
    const records: BackendRecord[] = [];
    const candidates: Candidate[] = [];
    const consider = (allowEjected: boolean): void => {
      for (const target of app.target.backends) {
        if (tried.has(target.instance) || (version !== undefined && target.version !== version)) continue;
        const record = this.backends.get(backendKey(target))!;
        if (!allowEjected && record.outlier.isEjected(nowMs)) continue;
        if (record.breaker.state(nowMs) === 'open') continue;
        records.push(record);
        candidates.push(record);
      }
    };
    consider(false);
    // All left are ejected: better an ejected instance than none (Envoy's panic mode).
    if (candidates.length === 0) consider(true);
    while (candidates.length > 0) {
      const index = pickBackend(candidates, app.balance, { balance: app.target.settings.balance, split: version === undefined ? app.target.split : undefined, hashKey, random: this.options.random });
      const record = records[index]!;
      // allow() takes the half-open probe slot; a backend whose probe is out is skipped.
      if (record.breaker.allow(nowMs)) return record;
      records.splice(index, 1);
      candidates.splice(index, 1);
    }
    return undefined;
  }

  private mayEject(app: AppRecord): boolean {
    const nowMs = this.options.clock.nowMs();
    const ejected = app.target.backends.filter((target) => this.backends.get(backendKey(target))?.outlier.isEjected(nowMs)).length;
    return ejected + 1 <= Math.floor(app.target.backends.length * EJECTED_SHARE_MAX);
  }

  /** Records follow the table: new apps and backends get records, settings are updated, gone backends' pools close. */
  private reconcile(table: RouteTable): void {
    const liveBackends = new Set<string>();
    for (const target of table.apps.values()) {
      const settings = target.settings;
      let app = this.apps.get(target.key);
      if (app === undefined) this.apps.set(target.key, (app = { target, balance: newBalanceState(), budget: new RetryBudget(settings.retryBudgetPercent), inFlight: 0 }));
      app.target = target;
      app.budget.configure(settings.retryBudgetPercent);
      for (const backend of target.backends) {
        const key = backendKey(backend);
        liveBackends.add(key);
        const existing = this.backends.get(key);
        const breakerOptions = { failuresMax: settings.breakerFailures, openMs: settings.breakerOpenMs };
        const outlierOptions = { failuresMax: settings.outlierFailures, ejectionMs: settings.outlierEjectionMs };
        if (existing !== undefined) {
          existing.target = backend;
          existing.breaker.configure(breakerOptions);
          existing.outlier.configure(outlierOptions);
          continue;
        }
        if (this.closed) continue;
        this.backends.set(key, {
          target: backend,
          pool: new Pool(`http://${backend.authority}`, { connections: this.options.connectionsPerBackend ?? 64, connect: { timeout: settings.connectTimeoutMs }, keepAliveTimeout: 30_000, pipelining: 1 }),
          breaker: new CircuitBreaker(breakerOptions),
          outlier: new OutlierDetector(outlierOptions),
          inFlight: 0,
        });
      }
    }
    for (const key of [...this.apps.keys()]) if (!table.apps.has(key)) this.apps.delete(key);
    for (const [key, record] of this.backends) {
      if (liveBackends.has(key)) continue;
      this.backends.delete(key);
      // Requests in flight finish; the pool takes no new ones.
      record.pool.close().catch(() => {});
    }
    for (const conflict of table.conflicts) this.options.log(`route ${conflict.route} of ${conflict.loser} is not served: ${conflict.holder} declared it first`);
  }

  /** The record of a backend in the current table (tests, WebSocket upgrades). */
  backendOf(target: BackendTarget): BackendRecord | undefined {
    return this.backends.get(backendKey(target));
  }

  /** The app record by `tenant/app` (WebSocket upgrades). */
  appOf(key: string): AppRecord | undefined {
    this.routes();
    return this.apps.get(key);
  }

  /** A backend for a request that is not forwarded through a pool (a WebSocket upgrade). */
  chooseFor(app: AppRecord, request: IncomingMessage): BackendRecord | undefined {
    return this.choose(app, new Set(), steeringOf(request, app.target));
  }
}

function backendKey(target: BackendTarget): string {
  return `${target.instance}@${target.authority}`;
}

/** What of a request steers the choice of its backend. */
interface Steering {
  /** The hash key (balance "hash"). */
  readonly hashKey: string | undefined;
  /** The version the A/B rule sends it to; undefined: the split decides. */
  readonly version: number | undefined;
}

function steeringOf(request: ClientRequest, target: AppTarget): Steering {
  const ab = target.settings.ab;
  return {
    hashKey: hashKeyOf(request, target.settings.hashOn),
    version: target.abVersion !== undefined && ab !== undefined && matchesAbRule(request.headers, ab) ? target.abVersion : undefined,
  };
}

/** The request's hash key: the header's or cookie's value, as the app's settings say. */
export function hashKeyOf(request: ClientRequest, hashOn: AppTarget['settings']['hashOn']): string | undefined {
  if (hashOn === undefined) return undefined;
  if ('header' in hashOn) {
    const value = request.headers[hashOn.header];
    return Array.isArray(value) ? value[0] : value;
  }
  return cookieValue(request.headers.cookie, hashOn.cookie);
}

function failureRefusal(outcome: Extract<AttemptOutcome, { kind: 'failure' }>, app: string, attempts: number): ProxyRefusal {
  const where = outcome.backend === undefined ? '' : ` (last: ${outcome.backend.target.instance} at ${outcome.backend.target.authority})`;
  const tries = `${attempts} attempt${attempts === 1 ? '' : 's'}`;
  if (outcome.failure === 'timeout') return refusal(504, 'UPSTREAM_TIMEOUT', `hivemind proxy: ${app} did not answer in time after ${tries}${where}: ${outcome.message}; raise x-hivemind.proxy.timeout if it needs longer`);
  return refusal(502, 'UPSTREAM_UNREACHABLE', `hivemind proxy: cannot reach ${app} after ${tries}${where}: ${outcome.message}`);
}

/**
 * Streams a backend's body to the client; resolves when the response has
 * ended or either side has gone (the other is then destroyed). Not
 * `stream.pipeline`: it makes an AbortController per call and a
 * DOMException (with its stack) when it finishes, 6-7% of the proxy's CPU
 * per request in `npm run bench:proxy`.
 */
function relay(body: Readable, response: ClientResponse): Promise<void> {
  return new Promise<void>((resolve) => {
    let settled = false;
    const settle = (): void => {
      if (settled) return;
      settled = true;
      resolve();
    };
    body.once('error', () => {
      response.destroy();
      settle();
    });
    response.once('finish', settle);
    response.once('close', () => {
      if (!body.readableEnded) body.destroy();
      settle();
    });
    body.pipe(response);
  });
}

function answer(response: ClientResponse, refused: ProxyRefusal): void {
  if (response.headersSent) {
    response.destroy();
    return;
  }
  const body = `${refused.message}\n`;
  response.writeHead(refused.status, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body), [PROXY_ERROR_HEADER]: refused.code });
  response.end(body);
}

function describeError(error: unknown): string {
  const code = (error as { code?: string }).code;
  const message = (error as Error).message ?? String(error);
  return code !== undefined && !message.includes(code) ? `${message} (${code})` : message;
}
