/**
 * The network as a node component (name `network`): keeps this node's
 * overlay (bridge, VXLAN device, routes, neighbours and forwarding entries
 * to every peer) equal to what the replicated node records say, and tells
 * the executor's container network where to attach (`src/node/node-network.ts`).
 * On the leader it also proposes `network.configure` when the cluster
 * network is not configured or a node lacks a subnet (states written before
 * the network existed, a node full up earlier).
 *
 * When: a reconcile runs after every apply that moved the node directory
 * (not heartbeats), and every `periodMs` to repair drift (an entry deleted
 * by hand comes back). One runs at a time; what arrives meanwhile makes one
 * more.
 *
 * The overlay is on only where this node advertises an IPv4 address other
 * nodes can reach (not loopback, not a host name): agents of a one-host
 * cluster on 127.0.0.1 (development, most tests) share the host's network
 * namespace, where one bridge per node would collide; they keep the
 * executor's node-local bridge.
 */
import { Counter, Gauge } from 'prom-client';
import { rmSync } from 'node:fs';
import { isHeartbeatApply, type ComponentFactory, type NodeComponent, type NodeServices } from '../node/services.js';
import { nodeNetworkPath, readNodeNetwork, writeNodeNetwork, type NodeNetwork } from '../node/node-network.js';
import { configureProposal } from './configure.js';
import { applyChanges, ensureDevices, readEntries, underlayMtu } from './overlay-links.js';
import { BRIDGE_NAME, changeCount, desiredEntries, diffEntries, hostOf, planOverlay, VXLAN_OVERHEAD_BYTES, type OverlayPlan } from './overlay-plan.js';

/** How the component runs. */
export interface NetworkComponentOptions {
  /** A reconcile at least this often, to repair drift. */
  periodMs: number;
}

export const NETWORK_COMPONENT_DEFAULTS: NetworkComponentOptions = { periodMs: 5_000 };

/** Whether `host` can carry the overlay: an IPv4 literal that is not loopback or unspecified. */
export function overlayHost(host: string): boolean {
  return /^\d+\.\d+\.\d+\.\d+$/.test(host) && host !== '0.0.0.0' && !host.startsWith('127.');
}

export class NetworkComponent implements NodeComponent {
  readonly name = 'network';
  readonly #services: NodeServices;
  readonly #options: NetworkComponentOptions;
  readonly #enabled: boolean;
  #stopListening: (() => void) | undefined;
  #period: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #again = false;
  #stopped = false;
  #reconciles = 0;
  #written: string | undefined;
  #lastProblem: string | undefined;
  #configuring = false;
  readonly #repairs: Counter;
  readonly #peers: Gauge;

  constructor(services: NodeServices, options: NetworkComponentOptions = NETWORK_COMPONENT_DEFAULTS) {
    this.#services = services;
    this.#options = options;
    this.#enabled = overlayHost(services.config.advertise);
    const registry = services.registry;
    this.#repairs = (registry.getSingleMetric('hivemind_network_overlay_changes_total') as Counter | undefined) ?? new Counter({
      name: 'hivemind_network_overlay_changes_total',
      help: 'Overlay entries (routes, neighbours, forwarding) added, replaced or removed after the first reconcile: node changes and drift repairs',
      registers: [registry],
    });
    this.#peers = (registry.getSingleMetric('hivemind_network_overlay_peers') as Gauge | undefined) ?? new Gauge({
      name: 'hivemind_network_overlay_peers',
      help: 'Nodes this node has overlay entries for',
      registers: [registry],
    });
  }

  /** Before the node registers: with the overlay on, the executor waits for the node network (unless a previous run left it ready). */
  async bind(): Promise<Record<string, never>> {
    const path = nodeNetworkPath(this.#services.dataDir);
    if (!this.#enabled) rmSync(path, { force: true });
    else if (readNodeNetwork(path)?.state !== 'ready') this.#write({ state: 'pending' });
    return {};
  }

  async start(): Promise<void> {
    if (!this.#enabled) {
      this.#services.log('network', `overlay off: this node advertises ${this.#services.config.advertise}, not an IPv4 address other hosts reach; containers use the node-local bridge`);
    }
    this.#stopListening = this.#services.listen((event) => {
      if (!isHeartbeatApply(event)) this.#schedule();
    });
    this.#period = setInterval(() => this.#schedule(), this.#options.periodMs);
    this.#period.unref();
    this.#schedule();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#stopListening?.();
    if (this.#period) clearInterval(this.#period);
    await this.#running?.catch(() => undefined);
  }

  /** The plan of the last reconcile's state (for `hivemind network inspect` and tests). */
  plan(): OverlayPlan | undefined {
    const directory = this.#services.machine.nodeDirectory();
    return planOverlay(this.#services.nodeId, directory.map((node) => ({ id: node.id, status: node.status, peerAddress: node.addresses.peer, ...(node.subnet !== undefined ? { subnet: node.subnet } : {}) })));
  }

  #schedule(): void {
    if (this.#stopped) return;
    if (this.#running) {
      this.#again = true;
      return;
    }
    this.#running = this.#reconcile()
      .catch((error: Error) => this.#report(error.message))
      .finally(() => {
        this.#running = undefined;
        if (this.#again) {
          this.#again = false;
          this.#schedule();
        }
      });
  }

  async #reconcile(): Promise<void> {
    this.#maybeConfigure();
    if (!this.#enabled) return;
    const plan = this.plan();
    if (plan === undefined) return;
    const clusterCidr = this.#services.machine.network()?.cidr ?? this.#services.config.clusterCidr;
    const mtu = (await underlayMtu(hostOf(this.#services.addresses().peer))) - VXLAN_OVERHEAD_BYTES;
    const devices = await ensureDevices(plan, { vxlanPort: this.#services.config.vxlanPort, mtu, clusterCidr });
    const changes = diffEntries(desiredEntries(plan), await readEntries());
    const count = changeCount(changes);
    if (count > 0) await applyChanges(changes);
    if (this.#reconciles > 0) this.#repairs.inc(count);
    this.#reconciles++;
    this.#peers.set(plan.peers.length);
    this.#write({ state: 'ready', bridge: BRIDGE_NAME, subnet: plan.local.subnet, gateway: plan.local.gateway, clusterCidr, mtu });
    if (devices.length > 0 || count > 0) {
      this.#services.log('network', `overlay: ${[...devices, count > 0 ? `${count} entries changed (${plan.peers.length} peers)` : ''].filter(Boolean).join(', ')}`);
    }
    this.#lastProblem = undefined;
  }

  /** On the leader: proposes `network.configure` when needed (one at a time). */
  #maybeConfigure(): void {
    if (this.#configuring || !this.#services.isLeader()) return;
    const machine = this.#services.machine;
    const command = configureProposal(machine.network(), machine.nodeDirectory(), this.#services.config.clusterCidr);
    if (command === undefined) return;
    this.#configuring = true;
    this.#services
      .submit(command)
      .then((result) => {
        if (!result.ok) this.#report(`cannot configure the cluster network: ${result.error.message}`);
      })
      .catch((error: Error) => this.#report(`cannot configure the cluster network yet: ${error.message}`))
      .finally(() => {
        this.#configuring = false;
      });
  }

  #write(network: NodeNetwork): void {
    const text = JSON.stringify(network);
    if (text === this.#written) return;
    writeNodeNetwork(this.#services.dataDir, network);
    this.#written = text;
  }

  /** Logs a problem once until it changes or a reconcile succeeds. */
  #report(problem: string): void {
    if (problem === this.#lastProblem) return;
    this.#lastProblem = problem;
    this.#services.log('network', problem);
  }
}

/** The component factory for `src/agent/components.ts`. */
export const createNetworkComponent: ComponentFactory = (services) => new NetworkComponent(services);
