/**
 * The network as a node component (name `network`): keeps this node's
 * overlay (bridge, VXLAN device, routes, neighbours and forwarding entries
 * to every peer) equal to what the replicated node records say, and tells
 * the executor's container network where to attach (`src/node/node-network.ts`).
 * On the leader it also proposes `network.configure` when the cluster
 * network is not configured or a node lacks a subnet (states written before
 * the network existed, a node full up earlier), and `network.attach` and
 * `network.detach` of nodes' slices of the tenant networks as instances
 * are placed and leave (`attach-plan.ts`), and `network.create` of the
 * `default` network of a tenant made before the pool.
 *
 * Tenant networks (every one the state holds, once every member runs this
 * release, `src/node/carried-networks.ts`: the leader sets the pool with its overlay
 * on, and every tenant then has a `default`, given by the leader to tenants
 * made before the pool, `default-networks.ts`): every carried network's
 * slices are in the overlay plan (a bridge per local slice,
 * routes to peers' slices) and in the node network file, where the
 * executor's CNI network finds each tenant's slice.
 *
 * When: two queues of passes (`pass-queue.ts`), each one pass at a time,
 * apart so that a policy change never waits for the links. The tables
 * queue: after every apply but heartbeats, a state pass (queued at once, no
 * timer in the path) writes only what the state changed, reading nothing
 * first: the policy chains that differ from the last write, then the
 * service chains if theirs changed; every `periodMs` (and at start) a drift
 * pass, after any state pass due, reads both tables back and rewrites what
 * drifted. The links queue: every `periodMs`, after the first drift pass,
 * and when a state pass finds another overlay plan, an overlay pass makes
 * the devices, entries and the mesh right (an entry deleted by hand comes
 * back). So a policy change waits at most for one pass of the tables queue.
 *
 * Network policies: with the overlay, the same reconcile keeps Hivemind's
 * iptables chains (`policy-plan.ts`, `policy-tables.ts`) equal to what the
 * state says for the instances this node runs; chains changed by hand are
 * rewritten (drift repair).
 *
 * Service VIPs: with the overlay, the same reconcile keeps Hivemind's nat
 * chains (`service-plan.ts`, `service-tables.ts`) equal to the apps' VIPs and
 * serving endpoints (the same on every node); drift is repaired alike. The
 * leader proposes the service range (`--service-cidr`) only with its overlay
 * on, so a cluster of agents on 127.0.0.1 has no VIPs.
 *
 * The routing mesh: published ports are in the same nat chains (every node
 * DNATs its own addresses' published ports to the app's containers on any
 * node), and the reconcile keeps the way back (`mesh-plan.ts`: a mangle
 * chain, an `ip rule` and a table per peer) so answers return through the
 * node the client came in by, with the client's address kept.
 *
 * The overlay is on only where this node advertises an IPv4 address other
 * nodes can reach (not loopback, not a host name): agents of a one-host
 * cluster on 127.0.0.1 (development, most tests) share the host's network
 * namespace, where one bridge per node would collide; they keep the
 * executor's node-local bridge.
 */
import { Counter, Gauge } from '../node/prometheus.js';
import { assert } from '../../consensus/core/assert.js';
import { rmSync } from 'node:fs';
import { isHeartbeatApply, type ComponentFactory, type NodeComponent, type NodeServices } from '../node/services.js';
import { cniStatePath, networkIpamStoresPath, nodeNetworkPath, readNodeNetwork, writeNodeNetwork, type NodeNetwork, type NodeNetworkReady } from '../node/node-network.js';
import { DEFAULT_NETWORK } from '../state/app-networks.js';
import type { Command, TenantNetwork } from '../state/types.js';
import { missingDefaultNetworks } from './default-networks.js';
import { carriedNetworks, tenantNetworksEverywhere } from '../node/carried-networks.js';
import { configureProposal } from './configure.js';
import { planAttachments, sliceKey, sliceNetworksOf, type NetworkNode } from './attach-plan.js';
import { PassQueue } from './pass-queue.js';
import { listedBeforeDevices } from './listed-networks.js';
import { TENANT_NETWORKS_VERSION } from '../state/version.js';
import { applyChanges, ensureDevices, readEntries, removeGoneNetworkStores } from './overlay-links.js';
import { chainChanges, planPolicyChains, type PolicyChains } from './policy-plan.js';
import { policyModelOf } from './policy-state.js';
import { applyPolicyChains, applyPolicyChanges, readPolicyChains } from './policy-tables.js';
import { planServiceChains, SERVICE_HOOK_CHAINS, type ServiceChains } from './service-plan.js';
import { publishedOf, servicesOf } from './service-state.js';
import { desiredMeshRouting, meshRoutingBatch, planMesh, type MeshPlan } from './mesh-plan.js';
import { applyMeshChain, applyMeshRouting, loosenReversePath, readMeshChain, readMeshRouting } from './mesh-links.js';
import { applyServiceChains, readServiceChains } from './service-tables.js';
import { BRIDGE_NAME, changeCount, desiredEntries, diffEntries, hostOf, planOverlay, VXLAN_OVERHEAD_BYTES, type OverlayPlan, type OverlaySlice } from './overlay-plan.js';

/** How the component runs. */
export interface NetworkComponentOptions {
  /** A reconcile at least this often, to repair drift. */
  periodMs: number;
  /** The leader's clock for the detach grace (ms, monotonic). */
  nowMs: () => number;
}

export const NETWORK_COMPONENT_DEFAULTS: NetworkComponentOptions = { periodMs: 5_000, nowMs: () => performance.now() };

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
  /** Policy and service chains: state passes before drift passes. */
  readonly #tables: PassQueue<'state' | 'drift'>;
  /** Devices, overlay entries and the mesh. */
  readonly #links: PassQueue<'overlay'>;
  /** When the oldest apply not yet handled by a state pass arrived (performance.now(), ms): the policy log line's timings start there. */
  #stateSinceMs: number | undefined;
  /** The overlay plan and cluster CIDR the last overlay pass programmed: a state pass that finds another asks for an overlay pass. */
  #overlayApplied: string | undefined;
  #stopped = false;
  #reconciles = 0;
  #written: string | undefined;
  /** The node network file as last written, when it said `ready`. */
  #writtenReady: NodeNetworkReady | undefined;
  #lastProblem: string | undefined;
  #configuring = false;
  /** The attaches, detaches and `default` networks proposed and not answered yet, by key (`sliceKey`, `create:<tenant>`): never proposed twice at once. */
  readonly #proposed = new Set<string>();
  /** When a proposal was last refused, by the same key: proposed again only a period later, since each refusal is itself an apply that runs a state pass. */
  readonly #refusedAtMs = new Map<string, number>();
  /** When each idle slice was first seen idle (leader only; `attach-plan.ts`). */
  #idleSinceMs: Map<string, number> = new Map();
  readonly #repairs: Counter;
  readonly #peers: Gauge;
  readonly #policyRules: Gauge;
  readonly #policyApplies: Counter;
  readonly #policyRepairs: Counter;
  /** The chains of the last policy apply (as text and by name), and the `-A` lines the kernel showed right after it: what drift is measured against, and what a state pass writes the difference from. */
  #policyApplied: { desired: string; chains: ReadonlyMap<string, readonly string[]>; kernel: string } | undefined;
  readonly #serviceMetrics: ServiceMetrics;
  /** The same for the service chains (nat table). */
  #serviceApplied: { desired: string; kernel: string } | undefined;
  /** The same for the mesh chain (mangle table). */
  #meshApplied: { desired: string; kernel: string } | undefined;
  readonly #meshMetrics: MeshMetrics;
  /** The published-port conflicts last logged, so each is logged once. */
  #conflictsLogged = '';

  constructor(services: NodeServices, options: NetworkComponentOptions = NETWORK_COMPONENT_DEFAULTS) {
    this.#services = services;
    this.#options = options;
    this.#enabled = overlayHost(services.config.advertise);
    const report = (_pass: string, error: Error): void => this.#report(error.message);
    this.#tables = new PassQueue(['state', 'drift'], (pass) => (pass === 'state' ? this.#statePass() : this.#driftPass()), report);
    this.#links = new PassQueue(['overlay'], () => this.#overlayPass(), report);
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
    this.#policyRules = metric(registry, 'hivemind_network_policy_rules', () => new Gauge({ name: 'hivemind_network_policy_rules', help: "Rules in Hivemind's policy chains on this node", registers: [registry] }));
    this.#policyApplies = metric(registry, 'hivemind_network_policy_applies_total', () => new Counter({ name: 'hivemind_network_policy_applies_total', help: "iptables-restore runs that rewrote Hivemind's policy chains (state changes, restarts and drift repairs)", registers: [registry] }));
    this.#serviceMetrics = {
      services: metric(registry, 'hivemind_network_services', () => new Gauge({ name: 'hivemind_network_services', help: "Apps with a VIP programmed in this node's service chains", registers: [registry] })),
      endpoints: metric(registry, 'hivemind_network_service_endpoints', () => new Gauge({ name: 'hivemind_network_service_endpoints', help: "DNAT targets (serving endpoint and port) in this node's service chains", registers: [registry] })),
      rules: metric(registry, 'hivemind_network_service_rules', () => new Gauge({ name: 'hivemind_network_service_rules', help: "Rules in Hivemind's service chains (nat table) on this node", registers: [registry] })),
      applies: metric(registry, 'hivemind_network_service_applies_total', () => new Counter({ name: 'hivemind_network_service_applies_total', help: "iptables-restore runs that rewrote Hivemind's service chains (state changes, restarts and drift repairs)", registers: [registry] })),
      repairs: metric(registry, 'hivemind_network_service_repairs_total', () => new Counter({ name: 'hivemind_network_service_repairs_total', help: "Service chains rewritten because the kernel's differed from the last apply while the state had not changed (drift)", registers: [registry] })),
    };
    this.#meshMetrics = {
      published: metric(registry, 'hivemind_network_published_ports', () => new Gauge({ name: 'hivemind_network_published_ports', help: 'Published ports (port and protocol) in the routing mesh on this node', registers: [registry] })),
      routes: metric(registry, 'hivemind_network_mesh_return_routes', () => new Gauge({ name: 'hivemind_network_mesh_return_routes', help: "Peers this node routes mesh answers back to (one mark, rule and table each)", registers: [registry] })),
      repairs: metric(registry, 'hivemind_network_mesh_repairs_total', () => new Counter({ name: 'hivemind_network_mesh_repairs_total', help: "Mesh chain rewrites and rule or route changes while the state had not changed (drift)", registers: [registry] })),
    };
    this.#policyRepairs = metric(registry, 'hivemind_network_policy_repairs_total', () => new Counter({ name: 'hivemind_network_policy_repairs_total', help: "Policy chains rewritten because the kernel's differed from the last apply while the state had not changed (drift: a rule changed by hand)", registers: [registry] }));
  }

  /** Before the node registers: with the overlay on, the executor waits for the node network (unless a previous run left it ready). */
  async bind(): Promise<Record<string, never>> {
    const path = nodeNetworkPath(this.#services.dataDir);
    const left = this.#enabled ? readNodeNetwork(path) : undefined;
    if (!this.#enabled) rmSync(path, { force: true });
    else if (left?.state !== 'ready') this.#write({ state: 'pending' });
    // What the executor reads until the first pass: that pass lists a slice given back while the agent was down as pending before it deletes the bridge (#listNetworkChanges).
    else this.#writtenReady = left;
    return {};
  }

  async start(): Promise<void> {
    if (!this.#enabled) {
      this.#services.log('network', `overlay off: this node advertises ${this.#services.config.advertise}, not an IPv4 address other hosts reach; containers use the node-local bridge`);
    }
    this.#stopListening = this.#services.listen((event) => {
      if (!isHeartbeatApply(event)) {
        this.#stateSinceMs ??= performance.now();
        this.#tables.request('state');
      }
    });
    this.#period = setInterval(() => {
      this.#tables.request('drift');
      this.#links.request('overlay');
    }, this.#options.periodMs);
    this.#period.unref();
    this.#tables.request('drift');
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#stopListening?.();
    if (this.#period) clearInterval(this.#period);
    await Promise.all([this.#tables.stop(), this.#links.stop()]);
  }

  /** The plan of the last reconcile's state (for `hivemind network inspect` and tests). */
  plan(): OverlayPlan | undefined {
    const directory = this.#services.machine.nodeDirectory();
    return planOverlay(this.#services.nodeId, directory.map((node) => ({ id: node.id, status: node.status, peerAddress: node.addresses.peer, ...(node.subnet !== undefined ? { subnet: node.subnet } : {}) })), this.#carriedSlices());
  }

  /**
   * The tenant networks whose containers this node attaches, with every
   * node's slices of them: every one the state holds once every member runs
   * this release (`src/node/carried-networks.ts`: the replicated cluster version, so
   * no two nodes disagree); during a rolling upgrade from a
   * release with the per-node `--tenant-networks`, what that names.
   */
  #carriedNetworks(): TenantNetwork[] {
    const machine = this.#services.machine;
    return carriedNetworks(machine.networks(), tenantNetworksEverywhere(machine.clusterVersion), this.#services.config.tenantNetworks);
  }

  #carriedSlices(): OverlaySlice[] {
    return this.#carriedNetworks().flatMap((network) => network.slices.map((slice) => ({ network: `${network.tenant}/${network.name}`, node: slice.node, cidr: slice.cidr })));
  }

  /** What the node network file says of tenant networks: per carried network, this node's slice or `pending`. */
  #tenantAttaches(plan: OverlayPlan): Pick<NodeNetworkReady, 'networks' | 'tenantCidr'> {
    const networks = this.#carriedNetworks();
    const tenantCidr = this.#services.machine.network()?.tenantCidr;
    if (networks.length === 0 || tenantCidr === undefined) return {};
    const attaches: NonNullable<NodeNetworkReady['networks']> = {};
    for (const network of networks) {
      const key = `${network.tenant}/${network.name}`;
      const local = plan.local.slices.find((slice) => slice.network === key);
      attaches[key] = local === undefined ? { state: 'pending', network: key } : { state: 'ready', network: key, bridge: local.bridge, subnet: local.cidr, gateway: local.gateway, block: network.cidr };
    }
    return { tenantCidr, networks: attaches };
  }

  /**
   * Writes what the state changed, reading nothing first: the policy
   * chains that differ from the last write, then the service chains if
   * theirs changed. Before a drift pass has set what was written, it asks
   * for one instead; when the overlay plan changed, for an overlay pass.
   */
  async #statePass(): Promise<void> {
    const sinceMs = this.#stateSinceMs ?? performance.now();
    this.#stateSinceMs = undefined;
    this.#maybeConfigure();
    this.#maybeCreateDefaults();
    this.#maybeAttach();
    if (!this.#enabled) return;
    const plan = this.plan();
    if (plan === undefined) return;
    const clusterCidr = this.#clusterCidr();
    if (this.#overlayApplied !== undefined && this.#overlayApplied !== overlayKey(plan, clusterCidr, this.#tenantAttaches(plan))) {
      this.#listNetworkChanges(plan);
      this.#links.request('overlay');
    }
    if (this.#policyApplied === undefined || this.#serviceApplied === undefined) {
      this.#tables.request('drift');
      return;
    }
    await this.#changePolicies(clusterCidr, sinceMs).catch((error: Error) => this.#report(`cannot write the network policy chains: ${error.message}`));
    if (this.serviceChainsText() !== this.#serviceApplied.desired) {
      await this.#reconcileServices().catch((error: Error) => this.#report(`cannot write the service chains: ${error.message}`));
    }
  }

  /** Reads the policy and service chains back and makes them equal to the state (drift repair, and the first write of a run); the first one asks for the first overlay pass. */
  async #driftPass(): Promise<void> {
    this.#maybeConfigure();
    this.#maybeCreateDefaults();
    this.#maybeAttach();
    if (!this.#enabled) return;
    const plan = this.plan();
    if (plan === undefined) return;
    const clusterCidr = this.#clusterCidr();
    // Policies first, and before the first overlay pass tells the executor the node network is ready.
    await this.#reconcilePolicies(clusterCidr).catch((error: Error) => this.#report(`cannot write the network policy chains: ${error.message}`));
    await this.#reconcileServices().catch((error: Error) => this.#report(`cannot write the service chains: ${error.message}`));
    if (this.#overlayApplied === undefined) this.#links.request('overlay');
  }

  /** Makes the devices, the overlay entries and the mesh equal to the node records, then tells the executor the node network is ready. */
  async #overlayPass(): Promise<void> {
    if (!this.#enabled) return;
    const plan = this.plan();
    if (plan === undefined) return;
    const clusterCidr = this.#clusterCidr();
    // Slices given back leave the node network file before the links are read for the batch that deletes their bridges (listed-networks.ts).
    this.#listNetworkChanges(plan);
    const { mtu, changed: devices, links } = await ensureDevices(plan, { vxlanPort: this.#services.config.vxlanPort, clusterCidr, underlay: hostOf(this.#services.addresses().peer), overheadBytes: VXLAN_OVERHEAD_BYTES });
    // The address stores of the slices given back, with their bridges (a later slice of the network has the same bridge, so the same store), and any left by an earlier run.
    const stores = await removeGoneNetworkStores(networkIpamStoresPath(cniStatePath(this.#services.dataDir)), plan, links);
    devices.push(...stores.map((name) => `removed the address store of ${name}`));
    const changes = diffEntries(desiredEntries(plan), await readEntries());
    const count = changeCount(changes);
    if (count > 0) await applyChanges(changes);
    // After the devices and entries: the mesh's tables route over hmvx0.
    await this.#reconcileMesh(planMesh(plan, clusterCidr), clusterCidr).catch((error: Error) => this.#report(`cannot write the routing mesh's way back: ${error.message}`));
    if (this.#reconciles > 0) this.#repairs.inc(count);
    this.#reconciles++;
    const attaches = this.#tenantAttaches(plan);
    this.#overlayApplied = overlayKey(plan, clusterCidr, attaches);
    this.#peers.set(plan.peers.length);
    this.#write({ state: 'ready', bridge: BRIDGE_NAME, subnet: plan.local.subnet, gateway: plan.local.gateway, clusterCidr, mtu, ...attaches });
    if (devices.length > 0 || count > 0) {
      this.#services.log('network', `overlay: ${[...devices, count > 0 ? `${count} entries changed (${plan.peers.length} peers)` : ''].filter(Boolean).join(', ')}`);
    }
    this.#lastProblem = undefined;
  }

  #clusterCidr(): string {
    return this.#services.machine.network()?.cidr ?? this.#services.config.clusterCidr;
  }

  /** The policy chains this node enforces now (for `hivemind network inspect` and tests). */
  policyChains(clusterCidr = this.#services.machine.network()?.cidr ?? this.#services.config.clusterCidr): PolicyChains {
    return planPolicyChains(policyModelOf(this.#services.machine, clusterCidr), this.#services.nodeId);
  }

  /**
   * Rewrites Hivemind's chains when the desired chains changed, or the
   * kernel's differ from what the last apply left (drift: counted as a
   * repair), or the jump from FORWARD is gone. The first reconcile of a run
   * always rewrites them: a restarted agent rebuilds the same rules.
   */
  async #reconcilePolicies(clusterCidr: string): Promise<void> {
    const desired = this.policyChains(clusterCidr);
    const desiredText = JSON.stringify([...desired.chains]);
    const found = await readPolicyChains();
    const applied = this.#policyApplied;
    if (applied !== undefined && applied.desired === desiredText && applied.kernel === found.text && found.jumpPresent) return;
    const drift = applied !== undefined && applied.desired === desiredText;
    const after = await applyPolicyChains(desired, found);
    this.#policyApplied = { desired: desiredText, chains: desired.chains, kernel: after.text };
    this.#policyApplies.inc();
    if (drift) this.#policyRepairs.inc();
    this.#policyRules.set(desired.ruleCount);
    this.#services.log('network', `policies: ${drift ? 'repaired drift in' : 'wrote'} ${desired.chains.size} chains, ${desired.ruleCount} rules, ${desired.destinationCount} local destinations`);
  }

  /**
   * The state pass's policy step: when the desired chains differ from the
   * last write, writes only the chains that changed, in one
   * `iptables-restore` with no read before it, then reads the kernel back
   * (what drift is measured against). If the kernel no longer holds what
   * the last write left (the restore fails), rewrites everything as a full
   * pass does. Logs the time from the apply event to the restore and the
   * restore's own.
   */
  async #changePolicies(clusterCidr: string, sinceMs: number): Promise<void> {
    const applied = this.#policyApplied;
    assert(applied !== undefined, 'a state pass runs after a full pass wrote the policy chains');
    const desired = this.policyChains(clusterCidr);
    const desiredText = JSON.stringify([...desired.chains]);
    if (applied.desired === desiredText) return;
    const { changed, stale } = chainChanges(desired, applied.chains);
    const startedMs = performance.now();
    try {
      await applyPolicyChanges(desired, applied.chains);
    } catch (error) {
      this.#report(`policies: the kernel's chains are not what the last write left (${(error as Error).message}); rewriting them all`);
      await this.#reconcilePolicies(clusterCidr);
      return;
    }
    const writtenMs = performance.now();
    this.#policyApplied = { desired: desiredText, chains: desired.chains, kernel: (await readPolicyChains()).text };
    this.#policyApplies.inc();
    this.#policyRules.set(desired.ruleCount);
    this.#services.log('network', `policies: wrote ${changed.length} changed and removed ${stale.length} of ${desired.chains.size} chains, ${desired.ruleCount} rules, ${desired.destinationCount} local destinations (apply to restore ${(startedMs - sinceMs).toFixed(0)} ms, restore ${(writtenMs - startedMs).toFixed(0)} ms)`);
  }

  /** The service chains every node programs now, published ports included (for `hivemind network inspect` and tests). */
  serviceChains(): ServiceChains {
    const machine = this.#services.machine;
    const tenantCidr = machine.network()?.tenantCidr;
    return planServiceChains(servicesOf(machine), {
      published: publishedOf(machine),
      clusterCidr: machine.network()?.cidr ?? this.#services.config.clusterCidr,
      ...(tenantCidr !== undefined ? { tenantCidr } : {}),
      reservedPorts: this.#agentPorts(),
      ...hostPortsOf(machine.node(this.#services.nodeId)),
    });
  }

  /** The ports this node's agent listens on (configured, and as bound and advertised), and the VXLAN port. */
  #agentPorts(): number[] {
    const { config } = this.#services;
    const advertised = Object.values(this.#services.addresses()).map((address) => Number(/:(\d+)$/.exec(address)?.[1] ?? 0));
    const bound = Object.values(this.#services.boundPorts());
    return [...new Set([...Object.values(config.ports), config.vxlanPort, ...advertised, ...bound].filter((port): port is number => typeof port === 'number' && port > 0))].sort((left, right) => left - right);
  }

  /**
   * Keeps the way back: the mangle chain rewritten as the service chains
   * are (changed plan, drift, jump missing or not first), the rules and
   * tables put or removed by difference. Drift (a change with the same
   * plan) is counted as a repair.
   */
  async #reconcileMesh(mesh: MeshPlan, clusterCidr: string): Promise<void> {
    await loosenReversePath();
    const desiredText = JSON.stringify(mesh.rules);
    const found = await readMeshChain();
    const applied = this.#meshApplied;
    const metrics = this.#meshMetrics;
    if (applied === undefined || applied.desired !== desiredText || applied.kernel !== found.text || !found.hooked) {
      const after = await applyMeshChain(mesh.rules, found);
      if (applied !== undefined && applied.desired === desiredText) metrics.repairs.inc();
      this.#meshApplied = { desired: desiredText, kernel: after.text };
    }
    const batch = meshRoutingBatch(desiredMeshRouting(mesh), await readMeshRouting());
    if (batch.length > 0) {
      await applyMeshRouting(batch);
      if (applied !== undefined && applied.desired === desiredText) metrics.repairs.inc();
      this.#services.log('network', `mesh: ${batch.length} rule and route changes (${mesh.routes.length} peers, cluster ${clusterCidr})`);
    }
    metrics.routes.set(mesh.routes.length);
  }

  /** Whether this node carries the overlay (and so the policy and service chains). */
  overlayEnabled(): boolean {
    return this.#enabled;
  }

  /** The service chains wanted now, as compared with the last write. */
  serviceChainsText(desired: ServiceChains = this.serviceChains()): string {
    return JSON.stringify([...desired.chains]);
  }

  /** As `#reconcilePolicies`, for the nat table: rewrites when the desired chains changed, the kernel's drifted, or a jump is gone. */
  async #reconcileServices(): Promise<void> {
    const desired = this.serviceChains();
    const desiredText = this.serviceChainsText(desired);
    const found = await readServiceChains();
    const applied = this.#serviceApplied;
    const hooked = found.hooked.length === SERVICE_HOOK_CHAINS.length; // each jump present and first
    if (applied !== undefined && applied.desired === desiredText && applied.kernel === found.text && hooked) return;
    const drift = applied !== undefined && applied.desired === desiredText;
    const after = await applyServiceChains(desired, found);
    this.#serviceApplied = { desired: desiredText, kernel: after.text };
    const metrics = this.#serviceMetrics;
    metrics.applies.inc();
    if (drift) metrics.repairs.inc();
    metrics.services.set(desired.serviceCount);
    metrics.endpoints.set(desired.endpointCount);
    metrics.rules.set(desired.ruleCount);
    this.#meshMetrics.published.set(desired.publishedCount);
    this.#services.log('network', `services: ${drift ? 'repaired drift in' : 'wrote'} ${desired.serviceCount} VIPs, ${desired.publishedCount} published ports, ${desired.endpointCount} endpoints, ${desired.ruleCount} rules`);
    const conflicts = desired.publishedConflicts.map((conflict) => `${conflict.tenant}/${conflict.app} publishes ${conflict.published}/${conflict.protocol}, held by ${conflict.heldBy}`).join('; ');
    if (conflicts !== '' && conflicts !== this.#conflictsLogged) this.#services.log('network', `routing mesh: left out: ${conflicts}`);
    this.#conflictsLogged = conflicts;
  }

  /** On the leader: proposes `network.configure` when needed (one at a time). */
  #maybeConfigure(): void {
    if (this.#configuring || !this.#services.isLeader()) return;
    const machine = this.#services.machine;
    const serviceCidr = this.#enabled ? this.#services.config.serviceCidr : undefined;
    const tenantCidr = this.#enabled && machine.clusterVersion >= TENANT_NETWORKS_VERSION ? this.#services.config.tenantNetworkCidr : undefined;
    const command = configureProposal(machine.network(), machine.nodeDirectory(), this.#services.config.clusterCidr, serviceCidr, tenantCidr);
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

  /**
   * On the leader: proposes `network.attach` for every node that runs an
   * instance of a tenant network without holding its slice, and
   * `network.detach` for every slice idle for the detach grace
   * (`attach-plan.ts`); each proposal once until it is answered. Off the
   * leader the idle times are forgotten (a new leader starts the grace
   * again).
   */
  #maybeAttach(): void {
    if (!this.#services.isLeader()) {
      this.#idleSinceMs = new Map();
      return;
    }
    const networks = this.#services.machine.networks();
    if (networks.every((network) => network.slices.length === 0) && this.#carriedNetworks().length === 0) return;
    const view = this.#services.machine.schedulerView();
    const apps = new Map(view.apps.map((app) => [`${app.tenant}/${app.name}`, app]));
    const plan = planAttachments({
      networks,
      instances: view.instances.map((instance) => ({
        tenant: instance.tenant,
        app: instance.app,
        desired: instance.desired,
        state: instance.status.state,
        networks: sliceNetworksOf(apps.get(`${instance.tenant}/${instance.app}`), instance.version),
        ...(instance.node !== undefined ? { node: instance.node } : {}),
      })),
      nodes: view.nodes,
      idleSinceMs: this.#idleSinceMs,
      nowMs: this.#options.nowMs(),
      graceMs: this.#services.config.networkDetachGraceMs,
    });
    this.#idleSinceMs = plan.idleSinceMs;
    for (const [key, refusedAtMs] of this.#refusedAtMs) if (this.#options.nowMs() - refusedAtMs >= this.#options.periodMs) this.#refusedAtMs.delete(key);
    // Slices only for the networks whose data plane is on (src/node/carried-networks.ts): one nothing attaches to would cost commits for nothing. Idle slices of any network are given back.
    const carried = new Set(this.#carriedNetworks().map((network) => `${network.tenant}/${network.name}`));
    for (const entry of plan.attach) if (carried.has(`${entry.tenant}/${entry.name}`)) this.#proposeSlice('network.attach', entry);
    for (const entry of plan.detach) this.#proposeSlice('network.detach', entry);
  }

  /**
   * On the leader: proposes `network.create` of `default` for every tenant
   * that has none once the pool is set (tenants made before it;
   * `default-networks.ts`) and every member carries every tenant network
   * (before, a node's switch decides, as it did), each once until answered.
   */
  #maybeCreateDefaults(): void {
    if (!this.#services.isLeader()) return;
    const machine = this.#services.machine;
    // The cluster version that carries every network is past TENANT_NETWORKS_VERSION, so a pool set is a pool in force.
    if (!tenantNetworksEverywhere(machine.clusterVersion)) return;
    const pool = machine.network()?.tenantCidr;
    if (pool === undefined) return;
    // createdIndex 0: the implicit `default` tenant, which has no record until a deploy adopts it (and the deploy then makes its network).
    const tenants = machine.tenants().filter((tenant) => tenant.createdIndex > 0).map((tenant) => tenant.name);
    for (const tenant of missingDefaultNetworks({ tenants, networks: machine.networks(), pool })) {
      this.#proposeOnce(`create:${tenant}`, { type: 'network.create', tenant, name: DEFAULT_NETWORK }, `create network ${tenant}/${DEFAULT_NETWORK} (a tenant made before the tenant pool)`);
    }
  }

  #proposeSlice(type: 'network.attach' | 'network.detach', entry: NetworkNode): void {
    const what = type === 'network.attach' ? `attach node ${entry.node} to network ${entry.tenant}/${entry.name}` : `detach node ${entry.node} from network ${entry.tenant}/${entry.name}`;
    this.#proposeOnce(sliceKey(entry), { type, tenant: entry.tenant, name: entry.name, node: entry.node }, what);
  }

  /** Proposes `command` unless the proposal under `key` is unanswered, or was refused less than a period ago; a refusal or failure is logged as `cannot <what>`. */
  #proposeOnce(key: string, command: Command, what: string): void {
    const nowMs = this.#options.nowMs();
    if (this.#proposed.has(key) || nowMs - (this.#refusedAtMs.get(key) ?? -Infinity) < this.#options.periodMs) return;
    this.#proposed.add(key);
    this.#refusedAtMs.delete(key);
    this.#services
      .submit(command)
      .then((result) => {
        if (result.ok) return;
        this.#refusedAtMs.set(key, this.#options.nowMs());
        this.#report(`cannot ${what}: ${result.error.message}`);
      })
      .catch((error: Error) => {
        this.#refusedAtMs.set(key, this.#options.nowMs());
        this.#report(`cannot ${what} yet: ${error.message}`);
      })
      .finally(() => this.#proposed.delete(key));
  }

  #write(network: NodeNetwork): void {
    const text = JSON.stringify(network);
    if (text === this.#written) return;
    writeNodeNetwork(this.#services.dataDir, network);
    this.#written = text;
    this.#writtenReady = network.state === 'ready' ? network : undefined;
  }

  /**
   * Rewrites the tenant networks the node network file lists for what the
   * state changed, ahead of the overlay pass that carries it out
   * (`listedBeforeDevices`): a network made just now listed `pending` at
   * once (the pass that makes its bridge may take seconds, and an executor
   * that saw none of a tenant's networks would attach to the node subnet
   * instead of waiting), a slice given back no longer listed ready before
   * the pass deletes its bridge and address store.
   */
  #listNetworkChanges(plan: OverlayPlan): void {
    const written = this.#writtenReady;
    if (written === undefined) return;
    const attaches = this.#tenantAttaches(plan);
    const networks = listedBeforeDevices(written.networks, attaches.networks);
    if (networks === undefined) return;
    const { networks: _networks, ...rest } = written;
    this.#write({ ...rest, ...(attaches.tenantCidr !== undefined ? { tenantCidr: attaches.tenantCidr } : {}), ...(Object.keys(networks).length > 0 ? { networks } : {}) });
  }

  /** Logs a problem once until it changes or a reconcile succeeds. */
  #report(problem: string): void {
    if (problem === this.#lastProblem) return;
    this.#lastProblem = problem;
    this.#services.log('network', problem);
  }
}

/** The service chains' metrics. */
interface ServiceMetrics {
  services: Gauge;
  endpoints: Gauge;
  rules: Gauge;
  applies: Counter;
  repairs: Counter;
}

/** The routing mesh's metrics. */
interface MeshMetrics {
  published: Gauge;
  routes: Gauge;
  repairs: Counter;
}

/** The metric `name` of `registry`, made by `make` if no component of this process made it yet (one registry, several agents in tests). */
function metric<T>(registry: NodeServices['registry'], name: string, make: () => T): T {
  return (registry.getSingleMetric(name) as T | undefined) ?? make();
}

/** The component factory for `src/agent/components.ts`. */
export const createNetworkComponent: ComponentFactory = (services) => new NetworkComponent(services);

/** What a full pass programmed the overlay and the mesh from, and told the executor of tenant networks: a state pass compares it. */
function overlayKey(plan: OverlayPlan, clusterCidr: string, attaches: Pick<NodeNetworkReady, 'networks' | 'tenantCidr'>): string {
  return JSON.stringify([plan, clusterCidr, attaches]);
}

/** The ports the node's host listens on, as its record says (none before it reported them). */
function hostPortsOf(record: { hostPorts?: { tcp: number[]; udp: number[] } } | undefined): { hostPorts?: { tcp: number[]; udp: number[] } } {
  return record?.hostPorts !== undefined ? { hostPorts: record.hostPorts } : {};
}
