/**
 * The `proxy` node component: the HTTP reverse proxy on the proxy port
 * (`--proxy-port`, 7080) of every node, routing by Host to the serving
 * instances of any node, from this node's replica. Every apply but a
 * heartbeat marks the route table stale; the next request rebuilds it, so
 * a promote, an abort or a status commit is in force on the first request
 * after it is applied here.
 *
 * A proxy port already taken (several agents on one machine) is logged and
 * leaves this node without a proxy; the node works on.
 */
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { isHeartbeatApply, type NodeComponent, type NodeServices } from '../node/services.js';
import { AccessLog } from './access-log.js';
import { registerProxyMetrics } from './metrics.js';
import { ReverseProxy, type RequestRecord } from './proxy.js';
import { ProxyServer } from './server.js';

/** What the API and tests read of the proxy component. */
export interface ProxyView {
  readonly name: 'proxy';
  /** The port it serves on, once bound; undefined when it could not bind. */
  port(): number | undefined;
}

/** The registered factory. */
export function createProxyComponent(services: NodeServices): NodeComponent & ProxyView {
  return new ProxyComponent(services);
}

class ProxyComponent implements NodeComponent, ProxyView {
  readonly name = 'proxy' as const;
  private readonly proxy: ReverseProxy;
  private readonly server: ProxyServer;
  private readonly accessLog: AccessLog | undefined;
  private boundPort: number | undefined;
  private removeListener: (() => void) | undefined;

  constructor(private readonly services: NodeServices) {
    const metrics = registerProxyMetrics(services.registry, () => this.proxy.breakerStates());
    this.accessLog = process.env.HIVEMIND_PROXY_ACCESS_LOG === 'off' ? undefined : new AccessLog(join(services.dataDir, 'proxy', 'access.log'));
    const onRequest = (record: RequestRecord): void => {
      metrics.record(record);
      this.accessLog?.write(record, Date.now());
    };
    this.proxy = new ReverseProxy({
      read: () => services.machine.schedulerView(),
      clock: { nowMs: () => performance.now(), sleep: (ms) => sleep(ms, undefined, { ref: false }) },
      random: Math.random,
      onRequest,
      log: (line) => services.log('proxy', line),
    });
    this.server = new ProxyServer({ host: services.config.bind, port: services.config.ports.proxy, proxy: this.proxy, onRequest, nowMs: () => performance.now() });
  }

  port(): number | undefined {
    return this.boundPort;
  }

  async bind(): Promise<{ gossip?: number }> {
    try {
      this.boundPort = await this.server.listen();
    } catch (error) {
      this.services.log('proxy', `cannot serve the proxy on ${this.services.config.bind}:${this.services.config.ports.proxy} (${(error as Error).message}); this node proxies no requests (choose a free port with --proxy-port)`);
    }
    return {};
  }

  async start(): Promise<void> {
    this.removeListener = this.services.listen((event) => {
      if (!isHeartbeatApply(event)) this.proxy.invalidate();
    });
    this.proxy.invalidate();
    if (this.boundPort !== undefined) this.services.log('proxy', `proxying http://<app>.<tenant>.hivemind on ${this.services.config.bind}:${this.boundPort}`);
  }

  async stop(): Promise<void> {
    this.removeListener?.();
    this.removeListener = undefined;
    await this.server.close().catch(() => {});
    await this.proxy.close().catch(() => {});
    await this.accessLog?.close().catch(() => {});
  }
}
