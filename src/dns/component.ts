/**
 * The `dns` node component: the node's DNS server (`server.ts`) on the DNS
 * port, UDP and TCP, answering the `hivemind` zone from this node's replica
 * and forwarding the rest to the node's resolvers (/etc/resolv.conf). Every
 * apply but a heartbeat marks the zone stale, so an answer follows the
 * replica as of the query: a status commit changes answers at once.
 *
 * Containers reach it on their gateway: while the node's overlay network is
 * ready (`<data-dir>/network/node-network.json`, written by the network
 * component), the server also listens on the bridge's gateway address, port
 * 53 (resolv.conf cannot name another port), and the executor's containers
 * name that address in their resolv.conf. A query there comes from the
 * container's own address, so tenant isolation by source address holds. The
 * file is read again when its directory changes (a `FileWatch`), and every
 * GATEWAY_QUIET_CHECK_MS besides (a safety sweep); every GATEWAY_CHECK_MS
 * while a bind failed or no watch could be set. A new gateway (a new subnet)
 * moves the listener.
 *
 * A DNS port already taken (another agent on the same machine, a test
 * cluster) is logged and leaves this node without DNS: name service is not a
 * reason for a node to stop taking part in the cluster. The same holds for
 * the gateway's port 53 (another DNS server on the node holding it on every
 * address, no right to bind it): logged once per gateway and cause, tried
 * again at every check.
 */
import { Counter, Gauge } from '../node/prometheus.js';
import { SYSTEM_CLOCK } from '../node/clock.js';
import { FileWatch } from '../node/file-watch.js';
import { nodeNetworkPath, readNodeNetwork } from '../node/node-network.js';
import { PeriodicLoop } from '../node/periodic-loop.js';
import { isHeartbeatApply, type BoundPorts, type NodeComponent, type NodeServices } from '../node/services.js';
import { nodeUpstreams, type Upstream } from './forwarder.js';
import { DnsServer, type DnsCounts } from './server.js';

/** The port containers ask on their gateway address: resolv.conf has no port, so DNS's own. */
export const CONTAINER_DNS_PORT = 53;
/** How often the node network file is read for the gateway to serve containers on while a bind failed, or the file cannot be watched. */
export const GATEWAY_CHECK_MS = 1000;
/** How often it is read while it is watched and all is served: a safety sweep (a change is heard at once). */
export const GATEWAY_QUIET_CHECK_MS = 30_000;

/** What the API and tests read of the DNS component. */
export interface DnsView {
  readonly name: 'dns';
  /** The port it serves on, once bound; undefined when it could not bind. */
  port(): number | undefined;
  /** The gateway address it serves containers on (port CONTAINER_DNS_PORT), when it does. */
  gateway(): string | undefined;
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
  /** The gateway address served on, and the last failure to bind one (`address: cause`, logged once). */
  private gatewayServed: string | undefined;
  private gatewayFailure: string | undefined;
  private gatewayLoop: PeriodicLoop | undefined;
  private gatewayWatch: FileWatch | undefined;
  /** The check under way, if any (one at a time; stop waits for it). */
  private gatewayCheck: Promise<boolean> | undefined;
  private stopped = false;

  constructor(private readonly services: NodeServices, options: DnsComponentOptions) {
    const upstreams = options.upstreams ?? upstreamsFromEnvironment() ?? nodeUpstreams();
    this.server = new DnsServer({
      host: services.config.bind,
      port: services.config.ports.dns,
      upstreams,
      read: () => ({ ...services.machine.schedulerView(), networks: services.machine.networks() }),
      log: (line) => services.log('dns', line),
    });
    registerMetrics(services, this.server.counts);
  }

  port(): number | undefined {
    return this.boundPort;
  }

  gateway(): string | undefined {
    return this.gatewayServed;
  }

  async bind(): Promise<BoundPorts> {
    try {
      this.boundPort = await this.server.listen();
    } catch (error) {
      this.services.log('dns', `cannot serve DNS on ${this.services.config.bind}:${this.services.config.ports.dns} (${(error as Error).message}); this node answers no names (choose a free port with --dns-port)`);
    }
    return this.boundPort === undefined ? {} : { dns: this.boundPort };
  }

  async start(): Promise<void> {
    this.removeListener = this.services.listen((event) => {
      if (!isHeartbeatApply(event)) this.server.invalidate();
    });
    this.server.invalidate();
    if (this.boundPort !== undefined) this.services.log('dns', `serving the hivemind zone on ${this.services.config.bind}:${this.boundPort} (UDP and TCP)`);
    await this.maybeCheckGateway();
    if (this.stopped) return;
    this.gatewayLoop = new PeriodicLoop({
      name: 'dns-gateway',
      intervalMs: GATEWAY_CHECK_MS,
      quiet: { intervalMs: GATEWAY_QUIET_CHECK_MS, afterSteps: 1 },
      step: () => this.maybeCheckGateway(),
      clock: SYSTEM_CLOCK,
      onError: (error) => this.services.log('dns', `checking the gateway failed: ${(error as Error).message}`),
    });
    const loop = this.gatewayLoop;
    this.gatewayWatch = new FileWatch({ path: nodeNetworkPath(this.services.dataDir), onChange: () => loop.poke() });
    loop.start();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.gatewayLoop?.stop();
    this.gatewayWatch?.close();
    this.removeListener?.();
    this.removeListener = undefined;
    await this.gatewayCheck;
    await this.server.close().catch(() => {});
  }

  /**
   * Starts a gateway check unless one is under way or the component stopped;
   * resolves when the current one ends: false (the loop slows to its safety
   * sweep) when the file's gateway is served and a watch hears its changes.
   */
  private maybeCheckGateway(): Promise<boolean> {
    if (this.stopped) return Promise.resolve(false);
    this.gatewayCheck ??= this.checkGateway()
      .then((wanted) => this.gatewayServed !== wanted || this.gatewayWatch?.watching !== true)
      .finally(() => {
        this.gatewayCheck = undefined;
      });
    return this.gatewayCheck;
  }

  /**
   * Serves containers on the gateway of the node network file when it is
   * ready; moves or stops that listener when the file changes. Answers the
   * gateway the file named (undefined: none), read once per check.
   */
  private async checkGateway(): Promise<string | undefined> {
    const wanted = gatewayWanted(this.services.dataDir);
    if (wanted === this.gatewayServed) return wanted;
    if (this.gatewayServed !== undefined) {
      await this.server.unlisten(this.gatewayServed);
      this.services.log('dns', `stopped serving containers on ${this.gatewayServed}:${CONTAINER_DNS_PORT}`);
      this.gatewayServed = undefined;
    }
    if (wanted === undefined || this.stopped) return wanted;
    // The server's own socket may cover the gateway already (`--dns-port 53` on every address).
    const bind = this.services.config.bind;
    if (this.boundPort === CONTAINER_DNS_PORT && (bind === '0.0.0.0' || bind === '::' || bind === wanted)) {
      this.gatewayServed = wanted;
      return wanted;
    }
    try {
      await this.server.listen({ host: wanted, port: CONTAINER_DNS_PORT });
      this.gatewayServed = wanted;
      this.gatewayFailure = undefined;
      this.services.log('dns', `serving containers on their gateway ${wanted}:${CONTAINER_DNS_PORT} (UDP and TCP)`);
    } catch (error) {
      const failure = `${wanted}: ${(error as Error).message}`;
      if (failure !== this.gatewayFailure) this.services.log('dns', `cannot serve containers on ${wanted}:${CONTAINER_DNS_PORT} (${(error as Error).message}); their names do not resolve until it can (trying again every ${GATEWAY_CHECK_MS} ms)`);
      this.gatewayFailure = failure;
    }
    return wanted;
  }
}

/** The gateway the node network file names while it is ready; undefined without a file or while pending. */
function gatewayWanted(dataDir: string): string | undefined {
  const network = readNodeNetwork(nodeNetworkPath(dataDir));
  return network?.state === 'ready' ? network.gateway : undefined;
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
  // The same counts as a counter, so that rate() reads them right; the gauge above is the older name, kept for existing dashboards.
  new Counter({
    name: 'hivemind_dns_queries_total',
    help: 'DNS queries this node answered, by outcome (zone, cached, forwarded, failed, refused) and truncated replies',
    labelNames: ['outcome'],
    registers: [services.registry],
    collect() {
      this.reset();
      for (const [outcome, count] of Object.entries(counts)) this.inc({ outcome }, count);
    },
  });
}
