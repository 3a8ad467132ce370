/**
 * The `proxy` node component: the HTTP reverse proxy on the proxy port
 * (`--proxy-port`, 7080) of every node, routing by Host to the serving
 * instances of any node, from this node's replica.
 *
 * In the agent's own process by default: every apply but a heartbeat marks
 * the route table stale; the next request rebuilds it, so a promote, an
 * abort or a status commit is in force on the first request after it is
 * applied here. With `HIVEMIND_PROXY_WORKERS` above 1 (or `auto`: one per
 * core), worker processes serve the port (`workers.ts`); the applies (but
 * heartbeats) of one turn of the event loop send them the records once, and
 * `whenInForce(index)` says when every one of them routes by them.
 *
 * A proxy port already taken (several agents on one machine) is logged and
 * leaves this node without a proxy; the node works on.
 */
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import type { Metric, Registry } from 'prom-client';
import { isHeartbeatApply, type NodeComponent, type NodeServices } from '../node/services.js';
import { PROXY_METRIC_NAMES } from './metrics.js';
import { ProxyServing } from './serving.js';
import { ProxyWorkers, WORKERS_MAX } from './workers.js';

/** What the API and tests read of the proxy component. */
export interface ProxyView {
  readonly name: 'proxy';
  /** The port it serves on, once bound; undefined when it could not bind. */
  port(): number | undefined;
  /**
   * Resolves once the change applied at `index` (any apply but a heartbeat)
   * is in force for every request this node's proxy takes from then on.
   * In one process that is at once after the apply; with workers, once
   * each has acknowledged it.
   */
  whenInForce(index: number): Promise<void>;
}

/** The environment variable that sets the proxy's worker processes: a number, or `auto` (one per core). */
export const PROXY_WORKERS_ENV = 'HIVEMIND_PROXY_WORKERS';

/** The registered factory. */
export function createProxyComponent(services: NodeServices): NodeComponent & ProxyView {
  return new ProxyComponent(services);
}

/**
 * The worker count `HIVEMIND_PROXY_WORKERS` asks for: 1 (the agent's own
 * process) when unset; `auto`: one per core. A clear error naming the
 * variable otherwise.
 */
export function proxyWorkerCount(value: string | undefined, cores: number): number {
  if (value === undefined || value.trim() === '') return 1;
  if (value.trim() === 'auto') return Math.min(WORKERS_MAX, Math.max(1, cores));
  const count = Number(value);
  if (!Number.isSafeInteger(count) || count < 1 || count > WORKERS_MAX) throw new Error(`${PROXY_WORKERS_ENV} is "${value}": give a whole number of proxy worker processes from 1 to ${WORKERS_MAX}, or auto (one per core)`);
  return count;
}

class ProxyComponent implements NodeComponent, ProxyView {
  readonly name = 'proxy' as const;
  private readonly serving: ProxyServing | undefined;
  private readonly workers: ProxyWorkers | undefined;
  private readonly workerCount: number;
  private boundPort: number | undefined;
  private removeListener: (() => void) | undefined;

  constructor(private readonly services: NodeServices) {
    const count = proxyWorkerCount(process.env[PROXY_WORKERS_ENV], availableParallelism());
    this.workerCount = count;
    const accessLogPath = process.env.HIVEMIND_PROXY_ACCESS_LOG === 'off' ? undefined : join(services.dataDir, 'proxy', 'access.log');
    const log = (line: string): void => services.log('proxy', line);
    if (count === 1) {
      this.serving = new ProxyServing({ read: () => services.machine.schedulerView(), registry: services.registry, accessLogPath, log, host: services.config.bind, port: services.config.ports.proxy });
      return;
    }
    const workers = new ProxyWorkers({ count, host: services.config.bind, port: services.config.ports.proxy, read: () => services.machine.schedulerView(), accessLogPath, log });
    this.workers = workers;
    registerWorkerMetrics(services.registry, workers);
  }

  port(): number | undefined {
    return this.boundPort;
  }

  whenInForce(index: number): Promise<void> {
    return this.workers?.whenInForce(index) ?? Promise.resolve();
  }

  async bind(): Promise<{ gossip?: number }> {
    try {
      this.boundPort = this.workers !== undefined ? await this.workers.start() : await this.serving!.listen();
    } catch (error) {
      this.services.log('proxy', `cannot serve the proxy on ${this.services.config.bind}:${this.services.config.ports.proxy} (${(error as Error).message}); this node proxies no requests (choose a free port with --proxy-port)`);
    }
    return {};
  }

  async start(): Promise<void> {
    this.removeListener = this.services.listen((event) => {
      if (isHeartbeatApply(event)) return;
      this.serving?.proxy.invalidate();
      this.workers?.publishSoon();
    });
    this.serving?.proxy.invalidate();
    this.workers?.publish();
    if (this.boundPort !== undefined) this.services.log('proxy', `proxying http://<app>.<tenant>.hivemind on ${this.services.config.bind}:${this.boundPort}${this.workers === undefined ? '' : ` (${this.workerCount} worker processes)`}`);
  }

  async stop(): Promise<void> {
    this.removeListener?.();
    this.removeListener = undefined;
    await this.serving?.close();
    await this.workers?.stop();
  }
}

/**
 * The workers' metrics under the proxy's metric names in the agent's
 * registry: each scrape asks every worker once (the metrics of one scrape
 * share the answer) and merges them (counters and histograms summed, the
 * breaker gauge's worst state).
 */
function registerWorkerMetrics(registry: Registry, workers: ProxyWorkers): void {
  let scrape: Promise<Registry> | undefined;
  const merged = (): Promise<Registry> => {
    if (scrape === undefined) {
      const current = workers.metrics();
      scrape = current;
      const clear = (): void => void (scrape === current && (scrape = undefined));
      current.then(clear, clear);
    }
    return scrape;
  };
  for (const name of PROXY_METRIC_NAMES) {
    const forwarding = {
      name,
      async get() {
        const metric = (await merged()).getSingleMetric(name);
        return metric === undefined ? { name, help: name, type: name.endsWith('_seconds') ? 'histogram' : name.endsWith('_total') ? 'counter' : 'gauge', values: [], aggregator: 'sum' } : await metric.get();
      },
      reset() {},
    };
    registry.registerMetric(forwarding as unknown as Metric);
  }
}
