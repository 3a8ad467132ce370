/**
 * Proxy workers: N processes (node:cluster, `worker-main.ts`) serving the
 * proxy port together, for a node whose one event loop is the proxy's limit.
 * node:cluster's primary (the agent) holds the listen socket and hands
 * connections to the workers in turn.
 *
 * The route table's feed (`table-feed.ts`): every `publish()` reads the
 * replica (records and applied index) and, when the index moved, sends the
 * records to every worker; each rebuilds its table and acknowledges the
 * index. `inForce()` is the index every serving worker routes by, and
 * `whenInForce(i)` resolves once a change applied at i is in force on all
 * of them: a promote or a weight change is reported in force only then.
 * A worker that joins (at start, or in place of one that died) gets the
 * latest records before it is told to listen.
 *
 * Per worker, as in one process: breakers, outlier ejection, retry budgets
 * and balancer state; the bulkhead is `max_concurrent` divided among the
 * workers. Metrics are aggregated from the workers on demand; the access
 * log is one file that every worker appends whole batches of lines to.
 * A worker that exits unexpectedly is replaced after `RESTART_DELAY_MS`.
 */
import cluster, { type Worker } from 'node:cluster';
import { fileURLToPath } from 'node:url';
import type { MetricObjectWithValues, MetricValue } from 'prom-client';
import { AggregatorRegistry, type Registry } from '../node/prometheus.js';
import { assert } from '../../consensus/core/assert.js';
import type { DiscoveryInput } from '../discovery/endpoints.js';
import { TableFeed } from './table-feed.js';
import { readFromWorker, WORKER_ENV, type ToWorker } from './worker-protocol.js';

/** A replaced worker is forked this long after the previous one exited (a crash loop forks at most once a second). */
export const RESTART_DELAY_MS = 1_000;
/** Callers waiting for an index to be in force, at most; one more is refused. */
export const IN_FORCE_WAITERS_MAX = 4096;
/** How long a metrics scrape waits for the workers' answers. */
export const METRICS_TIMEOUT_MS = 2_000;
/** Workers per node, at most. */
export const WORKERS_MAX = 64;

export interface ProxyWorkersOptions {
  /** Worker processes, 1 to `WORKERS_MAX`. */
  count: number;
  host: string;
  /** The proxy port; 0: one free port, shared by every worker. */
  port: number;
  /** The replica's records and the index they were read at. */
  read: () => DiscoveryInput & { readonly appliedIndex: number };
  /** The access log file every worker appends to; undefined: none. */
  accessLogPath: string | undefined;
  log: (line: string) => void;
  /** Node flags for the workers (`--cpu-prof` in `npm run bench:proxy`); default: the agent's. */
  execArgv?: readonly string[];
}

interface WorkerEntry {
  readonly worker: Worker;
  /** It sent "started": it takes messages. */
  started: boolean;
  listening: boolean;
}

interface Waiter {
  readonly index: number;
  readonly resolve: () => void;
}

/** The proxy's worker processes and the feed of their route tables. `start()` once, `stop()` once. */
export class ProxyWorkers {
  private readonly feed = new TableFeed();
  private readonly entries = new Map<number, WorkerEntry>();
  private waiters: Waiter[] = [];
  private stopping = false;
  private publishScheduled = false;
  private boundPort: number | undefined;
  /** While `start()` waits: settled when every worker listens, or one failed. */
  private starting: { resolve: (port: number) => void; reject: (error: Error) => void } | undefined;
  private metricsRequest = 0;
  private readonly metricsWaiting = new Map<number, { workers: Set<number>; answers: MetricObjectWithValues<MetricValue<string>>[][]; done: () => void }>();
  private readonly restarts = new Set<NodeJS.Timeout>();

  constructor(private readonly options: ProxyWorkersOptions) {
    assert(Number.isSafeInteger(options.count) && options.count >= 1 && options.count <= WORKERS_MAX, `ProxyWorkers: count ${options.count} is not a whole number from 1 to ${WORKERS_MAX}`);
  }

  /**
   * Forks the workers; resolves with the port once every one listens.
   * Rejects, with every worker stopped, when one cannot bind or exits
   * before all listen.
   */
  async start(): Promise<number> {
    this.publish();
    const listening = new Promise<number>((resolve, reject) => (this.starting = { resolve, reject }));
    for (let index = 0; index < this.options.count; index++) this.fork();
    try {
      return await listening;
    } catch (error) {
      await this.stop();
      throw error;
    } finally {
      this.starting = undefined;
    }
  }

  /** Workers that listen now (a replaced one counts again once it listens). */
  listening(): number {
    let count = 0;
    for (const entry of this.entries.values()) if (entry.listening) count++;
    return count;
  }

  /** The shared port, once bound. */
  port(): number | undefined {
    return this.boundPort;
  }

  /**
   * Reads the replica; when its applied index moved, sends the records to
   * every started worker and returns true. Synchronous: call it on every
   * apply but a heartbeat, so that the index of such an apply is one that
   * `whenInForce` sees acknowledged.
   */
  publish(): boolean {
    const state = this.options.read();
    if (!this.feed.maybePublish(state.appliedIndex)) return false;
    const message = tableMessage(state);
    for (const entry of this.entries.values()) if (entry.started) this.send(entry, message);
    return true;
  }

  /**
   * `publish()` at the end of this turn of the event loop, once however
   * many applies ask: a burst of applies costs one copy of the records per
   * worker, and the Raft loop that calls this only sets a flag.
   */
  publishSoon(): void {
    if (this.publishScheduled || this.stopping) return;
    this.publishScheduled = true;
    setImmediate(() => {
      this.publishScheduled = false;
      if (!this.stopping) this.publish();
    });
  }

  /** The applied index whose records every serving worker routes by. */
  inForce(): number {
    return this.feed.inForce();
  }

  /**
   * Resolves once the change applied at `index` is in force on every
   * serving worker. Rejects when the workers stop first, or when
   * `IN_FORCE_WAITERS_MAX` callers wait already.
   */
  whenInForce(index: number): Promise<void> {
    if (this.feed.inForce() >= index) return Promise.resolve();
    if (this.stopping) return Promise.reject(new Error('the proxy workers are stopping'));
    if (this.waiters.length >= IN_FORCE_WAITERS_MAX) return Promise.reject(new Error(`${IN_FORCE_WAITERS_MAX} callers wait for the proxy workers already`));
    return new Promise<void>((resolve) => this.waiters.push({ index, resolve }));
  }

  /** The workers' metrics, merged (counters and histograms summed); workers that do not answer in time are left out. */
  async metrics(): Promise<Registry> {
    const request = ++this.metricsRequest;
    const targets = [...this.entries.values()].filter((entry) => entry.listening);
    const answers: MetricObjectWithValues<MetricValue<string>>[][] = [];
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => done(), METRICS_TIMEOUT_MS);
      const done = (): void => {
        clearTimeout(timer);
        this.metricsWaiting.delete(request);
        resolve();
      };
      this.metricsWaiting.set(request, { workers: new Set(targets.map((entry) => entry.worker.id)), answers, done });
      if (targets.length === 0) return done();
      for (const entry of targets) this.send(entry, { kind: 'metrics', request });
    });
    return AggregatorRegistry.aggregate(answers);
  }

  /** Stops every worker (each closes its connections and flushes its log), waiting at most `graceMs` before killing. Never rejects. */
  async stop(graceMs = 5_000): Promise<void> {
    this.stopping = true;
    for (const timer of this.restarts) clearTimeout(timer);
    this.restarts.clear();
    this.starting?.reject(new Error('the proxy workers were stopped'));
    for (const waiter of this.waiters) waiter.resolve();
    this.waiters = [];
    await Promise.all(
      [...this.entries.values()].map(async (entry) => {
        const exited = new Promise<void>((resolve) => (entry.worker.isDead() ? resolve() : entry.worker.process.once('exit', () => resolve())));
        this.send(entry, { kind: 'stop' });
        const timer = setTimeout(() => entry.worker.process.kill('SIGKILL'), graceMs);
        await exited;
        clearTimeout(timer);
      }),
    );
    this.entries.clear();
  }

  private fork(): void {
    cluster.setupPrimary({ exec: fileURLToPath(new URL('./worker-main.js', import.meta.url)), execArgv: [...(this.options.execArgv ?? process.execArgv)], serialization: 'advanced', silent: false });
    const worker = cluster.fork({ [WORKER_ENV.workers]: String(this.options.count), [WORKER_ENV.accessLog]: this.options.accessLogPath ?? '' });
    const entry: WorkerEntry = { worker, started: false, listening: false };
    this.entries.set(worker.id, entry);
    this.feed.join(worker.id);
    worker.on('message', (raw: unknown) => this.received(entry, raw));
    worker.on('error', () => {});
    worker.once('exit', (code, signal) => this.exited(entry, code, signal));
  }

  private received(entry: WorkerEntry, raw: unknown): void {
    const message = readFromWorker(raw);
    const id = entry.worker.id;
    if (typeof message === 'string') return this.options.log(`worker ${id}: ${message}`);
    switch (message.kind) {
      case 'started': {
        if (entry.started) return;
        entry.started = true;
        // The latest records go first (a publish, when the index moved since the last one, reaches every worker), then the order to listen.
        if (!this.publish()) this.send(entry, tableMessage(this.options.read()));
        this.feed.markServing(id);
        // The configured port, even 0: node:cluster shares one handle per address and port as asked, and the bound port would be another key.
        this.send(entry, { kind: 'listen', host: this.options.host, port: this.options.port });
        return;
      }
      case 'applied':
        if (!this.entries.has(id)) return;
        this.feed.acknowledge(id, message.index);
        return this.wakeWaiters();
      case 'listening':
        entry.listening = true;
        this.boundPort ??= message.port;
        if (this.starting !== undefined && this.entries.size === this.options.count && [...this.entries.values()].every((other) => other.listening)) this.starting.resolve(this.boundPort);
        return;
      case 'listen-failed':
        this.options.log(`worker ${id} cannot serve on ${this.options.host}:${this.options.port}: ${message.message}`);
        this.starting?.reject(new Error(message.message));
        return;
      case 'metrics': {
        const waiting = this.metricsWaiting.get(message.request);
        if (waiting === undefined || !waiting.workers.delete(id)) return;
        waiting.answers.push(message.metrics);
        if (waiting.workers.size === 0) waiting.done();
        return;
      }
      case 'log':
        return this.options.log(`worker ${id}: ${message.line}`);
    }
  }

  private exited(entry: WorkerEntry, code: number | null, signal: string | null): void {
    const id = entry.worker.id;
    this.entries.delete(id);
    this.feed.leave(id);
    this.wakeWaiters();
    for (const waiting of this.metricsWaiting.values()) if (waiting.workers.delete(id) && waiting.workers.size === 0) waiting.done();
    if (this.stopping) return;
    if (this.starting !== undefined) return this.starting.reject(new Error(`proxy worker ${id} exited (${signal ?? `code ${code}`}) before every worker listened`));
    this.options.log(`worker ${id} exited (${signal ?? `code ${code}`}); another one starts in ${RESTART_DELAY_MS} ms`);
    const timer = setTimeout(() => {
      this.restarts.delete(timer);
      if (!this.stopping) this.fork();
    }, RESTART_DELAY_MS);
    this.restarts.add(timer);
  }

  private wakeWaiters(): void {
    if (this.waiters.length === 0) return;
    const inForce = this.feed.inForce();
    const still: Waiter[] = [];
    for (const waiter of this.waiters) (waiter.index <= inForce ? waiter.resolve() : still.push(waiter));
    this.waiters = still;
  }

  private send(entry: WorkerEntry, message: ToWorker): void {
    if (!entry.worker.isConnected()) return;
    entry.worker.send(message, (error: Error | null) => {
      if (error !== null && !this.stopping) this.options.log(`cannot reach worker ${entry.worker.id}: ${error.message}`);
    });
  }
}

function tableMessage(state: DiscoveryInput & { readonly appliedIndex: number }): ToWorker {
  return { kind: 'table', index: state.appliedIndex, input: { apps: state.apps, instances: state.instances, nodes: state.nodes } };
}
