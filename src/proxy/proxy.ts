/**
 * The reverse proxy's engine: for each request, the route, the bulkhead and
 * an `Exchange` (`exchange.ts`) that chooses backends (split, balancer,
 * breakers, ejections), forwards with retries and relays the response. The
 * route table comes from `read()` and is rebuilt lazily after
 * `invalidate()`. Backend records (pool, breaker, outlier detector,
 * requests in flight) and app records (balancer state, retry budget,
 * requests in flight) outlive rebuilds, keyed by instance and app.
 *
 * Time comes from an injected clock, randomness from an injected function.
 */
import type { IncomingMessage } from 'node:http';
import { BackendPool } from './backend-pool.js';
import { assert } from '../../consensus/core/assert.js';
import type { DiscoveryInput } from '../discovery/endpoints.js';
import { matchesAbRule } from './ab-rule.js';
import { newBalanceState, pickBackend } from './balancer.js';
import { cookieValue } from './cookies.js';
import { CircuitBreaker, type BreakerState } from './breaker.js';
import { refusal } from './errors.js';
import { answer, Exchange, type AppRecord, type BackendRecord, type ClientRequest, type ClientResponse, type ExchangeEngine, type RequestRecord, type Steering } from './exchange.js';
import { forwardedHeadOf } from './headers.js';
import { OutlierDetector } from './outlier.js';
import { RetryBudget, type RetryClock } from './retry.js';
import { routeTableOf, type AppTarget, type BackendTarget, type RouteTable } from './route-table.js';

export type { AppRecord, BackendRecord, ClientRequest, ClientResponse, RequestRecord } from './exchange.js';

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
  /**
   * Proxy processes of this node that share the port (`workers.ts`); default
   * 1. Each enforces its share of an app's `max_concurrent` (rounded up), so
   * the node as a whole keeps about the app's limit.
   */
  workerCount?: number;
}

/** Never more than this share of an app's backends is ejected at once. */
const EJECTED_SHARE_MAX = 0.5;

/** A request that neither hashes nor matches an A/B rule: the common case, without an allocation. */
const NOT_STEERED: Steering = { hashKey: undefined, version: undefined };

export class ReverseProxy {
  private table: RouteTable | undefined;
  private readonly backends = new Map<string, BackendRecord>();
  private readonly apps = new Map<string, AppRecord>();
  private readonly engine: ExchangeEngine;
  private readonly workerCount: number;
  private closed = false;

  constructor(private readonly options: ReverseProxyOptions) {
    this.workerCount = options.workerCount ?? 1;
    assert(Number.isSafeInteger(this.workerCount) && this.workerCount >= 1, `ReverseProxy: workerCount ${this.workerCount} is not a whole number of at least 1`);
    this.engine = {
      clock: options.clock,
      random: options.random,
      backoff: options.backoff ?? { baseMs: 25, maxMs: 250 },
      choose: (app, tried, steer) => this.choose(app, tried, steer),
      mayEject: (app) => this.mayEject(app),
      log: options.log,
      onRequest: options.onRequest,
    };
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
    this.routes();
    for (const app of this.apps.values()) {
      for (const record of app.backends) states.push({ app: app.target.key, instance: record.target.instance, state: record.breaker.state(nowMs) });
    }
    return states;
  }

  /**
   * Handles one request to the end of its response: answers it itself
   * (no Host, no route, the bulkhead) or hands it to an `Exchange`. Never
   * throws; `onRequest` hears how it ended.
   */
  handle(request: ClientRequest, response: ClientResponse): void {
    const startedMs = this.options.clock.nowMs();
    const client = request.socket.remoteAddress ?? '';
    const head = forwardedHeadOf(request.rawHeaders, { clientAddress: client, protocol: 'http' });
    const host = head.host ?? '';
    const path = request.url ?? '/';
    const method = request.method ?? 'GET';
    if (host === '') {
      answer(response, refusal(400, 'BAD_REQUEST', 'hivemind proxy: the request has no Host header; name the app as <app>.<tenant>.hivemind'));
      this.options.onRequest?.({ method, host, path, client, status: 400, durationMs: this.options.clock.nowMs() - startedMs, attempts: 0, error: 'BAD_REQUEST' });
      return;
    }
    const match = this.routes().lookup(host, path);
    if (match === undefined) {
      answer(response, refusal(404, 'NO_ROUTE', `hivemind proxy: no app serves host "${host}"${path === '/' ? '' : ` and path "${path.split('?')[0]}"`}; apps are reached as <app>.<tenant>.hivemind or at the hosts they declare under x-hivemind.routes`));
      this.options.onRequest?.({ method, host, path, client, status: 404, durationMs: this.options.clock.nowMs() - startedMs, attempts: 0, error: 'NO_ROUTE' });
      return;
    }
    const app = this.apps.get(match.target.key)!;
    if (app.inFlight >= this.concurrentMax(app)) {
      answer(response, refusal(503, 'OVERLOADED', `hivemind proxy: ${app.target.key} has ${app.inFlight} requests in flight through this ${this.workerCount === 1 ? 'node' : 'proxy worker'}, its limit (x-hivemind.proxy.max_concurrent ${app.target.settings.maxConcurrent}${this.workerCount === 1 ? '' : ` shared by ${this.workerCount} workers`}); retry later`));
      this.options.onRequest?.({ method, host, path, client, status: 503, durationMs: this.options.clock.nowMs() - startedMs, app: app.target.key, route: match.route, attempts: 0, error: 'OVERLOADED' });
      return;
    }
    // The exchange gives the app's count back when it records the request's end, whichever it is.
    app.inFlight++;
    app.budget.deposit();
    const exchange = new Exchange(this.engine, { request, response, app, route: match.route, method, host, path, client, headers: head.headers, hasBody: head.hasBody, steer: steeringOf(request, app.target), startedMs });
    exchange.start();
  }

  /** The requests in flight this engine lets through for `app` (the bulkhead): its share of the app's limit. */
  concurrentMax(app: AppRecord): number {
    return Math.ceil(app.target.settings.maxConcurrent / this.workerCount);
  }

  /** Closes every pool; requests in flight end. */
  async close(): Promise<void> {
    this.closed = true;
    const pools = [...this.backends.values()].map((record) => record.pool.destroy().catch(() => {}));
    this.backends.clear();
    for (const app of this.apps.values()) app.backends = [];
    await Promise.all(pools);
  }

  /**
   * The backend for the next attempt: not tried yet by this request, breaker
   * allowing, not ejected; then split and balancer. A request the A/B rule
   * matched chooses among its version's backends, or, none of them
   * available, among all.
   */
  private choose(app: AppRecord, tried: readonly string[], steer: Steering): BackendRecord | undefined {
    if (steer.version !== undefined) {
      const chosen = this.chooseAmong(app, tried, steer.hashKey, steer.version);
      if (chosen !== undefined) return chosen;
    }
    return this.chooseAmong(app, tried, steer.hashKey, undefined);
  }

  private chooseAmong(app: AppRecord, tried: readonly string[], hashKey: string | undefined, version: number | undefined): BackendRecord | undefined {
    const nowMs = this.options.clock.nowMs();
    const candidates = availableBackends(app.backends, tried, version, nowMs, false);
    // All left are ejected: better an ejected instance than none (Envoy's panic mode).
    if (candidates.length === 0) candidates.push(...availableBackends(app.backends, tried, version, nowMs, true));
    while (candidates.length > 0) {
      const index = pickBackend(candidates, app.balance, { balance: app.target.settings.balance, split: version === undefined ? app.target.split : undefined, hashKey, random: this.options.random });
      const record = candidates[index]!;
      // allow() takes the half-open probe slot; a backend whose probe is out is skipped.
      if (record.breaker.allow(nowMs)) return record;
      candidates.splice(index, 1);
    }
    return undefined;
  }

  private mayEject(app: AppRecord): boolean {
    const nowMs = this.options.clock.nowMs();
    let ejected = 0;
    for (const record of app.backends) if (record.outlier.isEjected(nowMs)) ejected++;
    return ejected + 1 <= Math.floor(app.backends.length * EJECTED_SHARE_MAX);
  }

  /** Records follow the table: new apps and backends get records, settings are updated, gone backends' pools close. */
  private reconcile(table: RouteTable): void {
    const liveBackends = new Set<string>();
    for (const target of table.apps.values()) {
      const settings = target.settings;
      let app = this.apps.get(target.key);
      if (app === undefined) this.apps.set(target.key, (app = { target, backends: [], balance: newBalanceState(), budget: new RetryBudget(settings.retryBudgetPercent), inFlight: 0 }));
      app.target = target;
      app.budget.configure(settings.retryBudgetPercent);
      const records: BackendRecord[] = [];
      const breakerOptions = { failuresMax: settings.breakerFailures, openMs: settings.breakerOpenMs };
      const outlierOptions = { failuresMax: settings.outlierFailures, ejectionMs: settings.outlierEjectionMs };
      for (const backend of target.backends) {
        const key = backendKey(backend);
        liveBackends.add(key);
        const existing = this.backends.get(key);
        if (existing !== undefined) {
          existing.target = backend;
          existing.breaker.configure(breakerOptions);
          existing.outlier.configure(outlierOptions);
          records.push(existing);
          continue;
        }
        if (this.closed) continue;
        const created: BackendRecord = {
          target: backend,
          pool: new BackendPool(`http://${backend.authority}`, { connections: this.options.connectionsPerBackend ?? 64, connect: { timeout: settings.connectTimeoutMs }, keepAliveTimeout: 30_000, pipelining: 1 }),
          breaker: new CircuitBreaker(breakerOptions),
          outlier: new OutlierDetector(outlierOptions),
          inFlight: 0,
        };
        this.backends.set(key, created);
        records.push(created);
      }
      app.backends = records;
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
    return this.choose(app, [], steeringOf(request, app.target));
  }
}

function backendKey(target: BackendTarget): string {
  return `${target.instance}@${target.authority}`;
}

/** The backends a choice may fall on: not tried, of `version` (when given), breaker not open, and (unless `allowEjected`) not ejected. */
function availableBackends(backends: readonly BackendRecord[], tried: readonly string[], version: number | undefined, nowMs: number, allowEjected: boolean): BackendRecord[] {
  const available: BackendRecord[] = [];
  for (const record of backends) {
    if ((tried.length > 0 && tried.includes(record.target.instance)) || (version !== undefined && record.target.version !== version)) continue;
    if (!allowEjected && record.outlier.isEjected(nowMs)) continue;
    if (record.breaker.state(nowMs) === 'open') continue;
    available.push(record);
  }
  return available;
}

function steeringOf(request: ClientRequest, target: AppTarget): Steering {
  const { ab, hashOn } = target.settings;
  // Node builds request.headers on first use: only a request that needs them pays for it.
  if (hashOn === undefined && (target.abVersion === undefined || ab === undefined)) return NOT_STEERED;
  return {
    hashKey: hashKeyOf(request, hashOn),
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
