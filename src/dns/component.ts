/**
 * The `dns` node component: the node's DNS server (`server.ts`) on the DNS
 * port, UDP and TCP, answering the `hivemind` zone from this node's replica
 * and forwarding the rest to the node's resolvers (/etc/resolv.conf). Every
 * apply but a heartbeat marks the zone stale, so an answer follows the
 * replica as of the query: a status commit changes answers at once.
 *
 * A DNS port already taken (another agent on the same machine, a test
 * cluster) is logged and leaves this node without DNS: name service is not a
 * reason for a node to stop taking part in the cluster.
 */
import { Gauge } from 'prom-client';
import { isHeartbeatApply, type NodeComponent, type NodeServices } from '../node/services.js';
import { nodeUpstreams, type Upstream } from './forwarder.js';
import { DnsServer, type DnsCounts } from './server.js';

/** What the API and tests read of the DNS component. */
export interface DnsView {
  readonly name: 'dns';
  /** The port it serves on, once bound; undefined when it could not bind. */
  port(): number | undefined;
}

export interface DnsComponentOptions {
  /** Upstream resolvers instead of /etc/resolv.conf's (tests). */
  upstreams?: Upstream[];
}

/** The registered factory. */
export function createDnsComponent(services: NodeServices, options: DnsComponentOptions = {}): NodeComponent & DnsView {
  return new DnsComponent(services, options);
}

class DnsComponent implements NodeComponent, DnsView {
  readonly name = 'dns' as const;
  private readonly server: DnsServer;
  private boundPort: number | undefined;
  private removeListener: (() => void) | undefined;

  constructor(private readonly services: NodeServices, options: DnsComponentOptions) {
    const upstreams = options.upstreams ?? upstreamsFromEnvironment() ?? nodeUpstreams();
    this.server = new DnsServer({
      host: services.config.bind,
      port: services.config.ports.dns,
      upstreams,
      read: () => services.machine.schedulerView(),
      log: (line) => services.log('dns', line),
    });
    registerMetrics(services, this.server.counts);
  }

  port(): number | undefined {
    return this.boundPort;
  }

  async bind(): Promise<{ gossip?: number }> {
    try {
      this.boundPort = await this.server.listen();
    } catch (error) {
      this.services.log('dns', `cannot serve DNS on ${this.services.config.bind}:${this.services.config.ports.dns} (${(error as Error).message}); this node answers no names (choose a free port with --dns-port)`);
    }
    return {};
  }

  async start(): Promise<void> {
    this.removeListener = this.services.listen((event) => {
      if (!isHeartbeatApply(event)) this.server.invalidate();
    });
    this.server.invalidate();
    if (this.boundPort !== undefined) this.services.log('dns', `serving the hivemind zone on ${this.services.config.bind}:${this.boundPort} (UDP and TCP)`);
  }

  async stop(): Promise<void> {
    this.removeListener?.();
    this.removeListener = undefined;
    await this.server.close().catch(() => {});
  }
}

/**
 * `HIVEMIND_DNS_UPSTREAMS` (`host:port,host:port`) replaces /etc/resolv.conf's
 * resolvers: for tests with an upstream of their own, and for nodes whose
 * resolv.conf points at something the agent should not use.
 */
function upstreamsFromEnvironment(): Upstream[] | undefined {
  const text = process.env.HIVEMIND_DNS_UPSTREAMS;
  if (text === undefined || text.trim() === '') return undefined;
  return text.split(',').map((entry) => {
    const trimmed = entry.trim();
    const colon = trimmed.lastIndexOf(':');
    const bracketed = trimmed.startsWith('[');
    if (colon < 0 || (trimmed.includes(':') && trimmed.indexOf(':') !== colon && !bracketed)) return { host: trimmed, port: 53 };
    return { host: trimmed.slice(bracketed ? 1 : 0, bracketed ? trimmed.indexOf(']') : colon), port: Number(trimmed.slice(colon + 1)) };
  });
}

function registerMetrics(services: NodeServices, counts: DnsCounts): void {
  new Gauge({
    name: 'hivemind_dns_queries',
    help: 'DNS queries this node answered since it started, by outcome (zone, cached, forwarded, failed, refused) and truncated replies',
    labelNames: ['outcome'],
    registers: [services.registry],
    collect() {
      for (const [outcome, count] of Object.entries(counts)) this.set({ outcome }, count);
    },
  });
}
