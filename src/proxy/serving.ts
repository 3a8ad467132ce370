/**
 * One proxy as a process serves it: the engine (`proxy.ts`), the listener
 * (`server.ts`), the metrics on a registry and the access log, wired the
 * same way in the agent's own process and in each proxy worker
 * (`worker-main.ts`).
 */
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Registry } from 'prom-client';
import type { DiscoveryInput } from '../discovery/endpoints.js';
import { AccessLog } from './access-log.js';
import { registerProxyMetrics } from './metrics.js';
import { ReverseProxy, type RequestRecord } from './proxy.js';
import { ProxyServer } from './server.js';

export interface ProxyServingOptions {
  /** The replica's records, read on the first request after `invalidate()`. */
  read: () => DiscoveryInput;
  /** Where the proxy's metrics are registered. */
  registry: Registry;
  /** The access log file; undefined: none. */
  accessLogPath: string | undefined;
  log: (line: string) => void;
  host: string;
  port: number;
  /** Proxy processes sharing the port (the bulkhead's share); default 1. */
  workerCount?: number;
}

export class ProxyServing {
  readonly proxy: ReverseProxy;
  private readonly server: ProxyServer;
  private readonly accessLog: AccessLog | undefined;

  constructor(options: ProxyServingOptions) {
    const metrics = registerProxyMetrics(options.registry, () => this.proxy.breakerStates());
    const accessLog = options.accessLogPath === undefined ? undefined : new AccessLog(options.accessLogPath);
    this.accessLog = accessLog;
    const onRequest = (record: RequestRecord): void => {
      metrics.record(record);
      accessLog?.write(record, Date.now());
    };
    this.proxy = new ReverseProxy({
      read: options.read,
      clock: { nowMs: () => performance.now(), sleep: (ms) => sleep(ms, undefined, { ref: false }) },
      random: Math.random,
      onRequest,
      log: options.log,
      ...(options.workerCount === undefined ? {} : { workerCount: options.workerCount }),
    });
    this.server = new ProxyServer({ host: options.host, port: options.port, proxy: this.proxy, onRequest, nowMs: () => performance.now() });
  }

  /** Binds (in a cluster worker: joins the primary's shared socket); resolves with the port. */
  listen(): Promise<number> {
    return this.server.listen();
  }

  /** Closes the listener and connections, the pools, then the access log. Never rejects. */
  async close(): Promise<void> {
    await this.server.close().catch(() => {});
    await this.proxy.close().catch(() => {});
    await this.accessLog?.close().catch(() => {});
  }
}
