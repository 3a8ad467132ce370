/**
 * What each node carries, and whether one more instance fits on it: the
 * bookkeeping shared by placement and preemption. Pure: no Node API.
 *
 * An instance counts against its node while it may still hold resources: it
 * is meant to run, or it has not yet reported a terminal state. An instance
 * on a node that is not `up` (or that no longer exists) counts nowhere: the
 * scheduler places it again.
 */
import { assert } from '../../consensus/core/assert.js';
import { instanceResources } from '../state/quota.js';
import type { App, AppSpec, Instance, InstanceState, NodeRecord } from '../state/types.js';
import { brokenConstraint, type Constraint } from './constraints.js';
import { limitControllers, unenforcedOn, type LimitController } from './limits.js';

/** The cluster as the scheduler reads it; the caller owns the arrays, which are never changed. */
export interface ClusterView {
  nodes: readonly NodeRecord[];
  instances: readonly Instance[];
  /** Apps with their versions; an instance's spec is its version's, else the app's newest. */
  apps: readonly App[];
}

/** One instance as it weighs on a node. Ports are `PORT/PROTOCOL`, published ports only. */
export interface Resident {
  id: string;
  /** `tenant/app`. */
  appKey: string;
  priority: number;
  cpuMillis: number;
  memoryBytes: number;
  ports: string[];
}

/** What an instance to place asks of a node. */
export interface Demand extends Resident {
  app: string;
  tenant: string;
  constraints: Constraint[];
  /** The cgroup controllers its limits need (a node that says it lacks one cannot take it). */
  limits: LimitController[];
  /** Absent: no limit. */
  maxPerNode?: number;
  /** The node the instance last failed on (placed there only when nothing else fits). */
  avoidNode?: string;
}

/**
 * One node's load. Invariant: the sums and maps equal the fold of
 * `residents`, except in loads built without residents (`buildLoads`
 * option), where `residents` holds only what was added after the build.
 */
export interface NodeLoad {
  node: NodeRecord;
  cpuMillis: number;
  memoryBytes: number;
  /** `PORT/PROTOCOL` → id of the resident that publishes it. */
  ports: Map<string, string>;
  /** `tenant/app` → how many of its instances are here. */
  appCounts: Map<string, number>;
  residents: Resident[];
}

/** Why a node cannot take an instance; placement aggregates these into reasons. */
export type Misfit =
  | { kind: 'status'; status: NodeRecord['status'] }
  | { kind: 'constraint'; text: string }
  | { kind: 'max-per-node'; app: string; max: number }
  | { kind: 'port'; port: string }
  | { kind: 'host-port'; port: string }
  | { kind: 'limits'; controller: LimitController }
  | { kind: 'memory'; needsBytes: number; freeBytes: number }
  | { kind: 'cpu'; needsMillis: number; freeMillis: number };

const terminalStates: ReadonlySet<InstanceState> = new Set(['exited', 'oom-killed', 'failed', 'stopped']);

/** `tenant/app`, the key apps and instances are matched by. */
export function appKey(tenant: string, app: string): string {
  return `${tenant}/${app}`;
}

/** The apps of `view` by `appKey`. */
export function appsByKey(apps: readonly App[]): Map<string, App> {
  return new Map(apps.map((app) => [appKey(app.tenant, app.name), app]));
}

/** The spec `instance` runs: its own version's when still kept, else the app's newest; undefined without an app. */
export function specOf(instance: Instance, apps: Map<string, App>): AppSpec | undefined {
  const app = apps.get(appKey(instance.tenant, instance.app));
  if (app === undefined) return undefined;
  const own = app.versions.find((version) => version.version === instance.version);
  return (own ?? app.versions[app.versions.length - 1])?.spec;
}

/**
 * `specOf` for a pass over many instances: remembers the last answer, since
 * instances come grouped by app (the state keeps them in creation order), so
 * most lookups build no key and hash nothing. Valid while `apps` is unchanged.
 */
export class SpecLookup {
  readonly #apps: Map<string, App>;
  #tenant: string | undefined;
  #app: string | undefined;
  #version: number | undefined;
  #spec: AppSpec | undefined;

  constructor(apps: Map<string, App>) {
    this.#apps = apps;
  }

  specOf(instance: Instance): AppSpec | undefined {
    if (instance.version !== this.#version || instance.app !== this.#app || instance.tenant !== this.#tenant) {
      this.#spec = specOf(instance, this.#apps);
      this.#tenant = instance.tenant;
      this.#app = instance.app;
      this.#version = instance.version;
    }
    return this.#spec;
  }
}

/** An app's priority; 0 when unset. */
export function priorityOf(spec: AppSpec): number {
  return spec.hivemind.priority ?? 0;
}

/** What every instance of one spec weighs, computed once per spec (specs are never changed once stored). */
interface SpecWeight {
  appKey: string;
  priority: number;
  cpuMillis: number;
  memoryBytes: number;
  /** Shared by every resident of the spec: never changed. */
  ports: string[];
  /** The cgroup controllers its limits need; shared, never changed. */
  limits: LimitController[];
}

const specWeights = new WeakMap<AppSpec, SpecWeight>();

function weightOf(spec: AppSpec): SpecWeight {
  let weight = specWeights.get(spec);
  if (weight === undefined) {
    const ports = spec.ports.filter((port) => port.published !== undefined).map((port) => `${port.published}/${port.protocol}`);
    weight = { appKey: appKey(spec.tenant, spec.name), priority: priorityOf(spec), ...instanceResources(spec), ports, limits: limitControllers(spec) };
    specWeights.set(spec, weight);
  }
  return weight;
}

function instanceAppKey(instance: Instance, spec: AppSpec, weight: SpecWeight): string {
  return spec.tenant === instance.tenant && spec.name === instance.app ? weight.appKey : appKey(instance.tenant, instance.app);
}

/** What `instance` of `spec` weighs on a node. */
export function residentOf(instance: Instance, spec: AppSpec): Resident {
  const weight = weightOf(spec);
  return { id: instance.id, appKey: instanceAppKey(instance, spec, weight), priority: weight.priority, cpuMillis: weight.cpuMillis, memoryBytes: weight.memoryBytes, ports: weight.ports };
}

/**
 * What placing `instance` of `spec` asks; `constraints` are already parsed.
 * Built field by field (no spread): placement makes one per instance.
 */
export function demandOf(instance: Instance, spec: AppSpec, constraints: Constraint[]): Demand {
  const weight = weightOf(spec);
  const maxPerNode = spec.hivemind.maxPerNode;
  const demand: Demand = {
    id: instance.id,
    appKey: instanceAppKey(instance, spec, weight),
    priority: weight.priority,
    cpuMillis: weight.cpuMillis,
    memoryBytes: weight.memoryBytes,
    ports: weight.ports,
    limits: weight.limits,
    app: instance.app,
    tenant: instance.tenant,
    constraints,
  };
  if (maxPerNode !== undefined && maxPerNode > 0) demand.maxPerNode = maxPerNode;
  if (instance.avoidNode !== undefined) demand.avoidNode = instance.avoidNode;
  return demand;
}

/** Whether `instance` still holds resources on its node. */
export function holdsResources(instance: Instance): boolean {
  return instance.desired === 'running' || !terminalStates.has(instance.status.state);
}

/** An empty load for `node`. */
export function emptyLoad(node: NodeRecord): NodeLoad {
  return { node, cpuMillis: 0, memoryBytes: 0, ports: new Map(), appCounts: new Map(), residents: [] };
}

/** Adds `resident` to `load`, in place. */
export function addResident(load: NodeLoad, resident: Resident): void {
  load.cpuMillis += resident.cpuMillis;
  load.memoryBytes += resident.memoryBytes;
  // Two residents publishing one port is a state the scheduler never makes; keep the first owner.
  for (const port of resident.ports) if (!load.ports.has(port)) load.ports.set(port, resident.id);
  load.appCounts.set(resident.appKey, (load.appCounts.get(resident.appKey) ?? 0) + 1);
  load.residents.push(resident);
}

/**
 * The load of every node by id (nodes in any status), from the instances
 * that hold resources on an `up` node. Node ids must be unique.
 *
 * `inFlight` (instance id → node id): placements proposed but not yet
 * answered. Such an instance counts on its proposed node (when that node is
 * up) as long as the state does not already count it on an up node.
 * `residents: false` leaves out the residents lists (see `NodeLoad`), for
 * callers that read only the sums and maps.
 */
export function buildLoads(
  view: ClusterView,
  apps: Map<string, App>,
  inFlight?: ReadonlyMap<string, string>,
  options: { residents: boolean } = { residents: true },
): Map<string, NodeLoad> {
  const loads = new Map<string, NodeLoad>();
  for (const node of view.nodes) {
    assert(!loads.has(node.id), `node ${JSON.stringify(node.id)} is listed twice`);
    loads.set(node.id, emptyLoad(node));
  }
  const overlay = inFlight !== undefined && inFlight.size > 0 ? inFlight : undefined;
  const specs = new SpecLookup(apps);
  for (const instance of view.instances) {
    const load = chargedLoad(instance, loads, overlay);
    if (load === undefined) continue;
    const spec = specs.specOf(instance);
    if (spec === undefined) continue;
    if (options.residents) addResident(load, residentOf(instance, spec));
    else addWeight(load, instance, spec);
  }
  return loads;
}

/** `addResident` without the resident: the sums and maps only (no allocation; placement reads no residents). */
function addWeight(load: NodeLoad, instance: Instance, spec: AppSpec): void {
  const weight = weightOf(spec);
  const key = instanceAppKey(instance, spec, weight);
  load.cpuMillis += weight.cpuMillis;
  load.memoryBytes += weight.memoryBytes;
  for (const port of weight.ports) if (!load.ports.has(port)) load.ports.set(port, instance.id);
  load.appCounts.set(key, (load.appCounts.get(key) ?? 0) + 1);
}

/** The up node `instance` weighs on: its own while it holds resources there, else the one a placement in flight proposed. */
function chargedLoad(instance: Instance, loads: ReadonlyMap<string, NodeLoad>, inFlight: ReadonlyMap<string, string> | undefined): NodeLoad | undefined {
  if (instance.node !== undefined && holdsResources(instance)) {
    const load = loads.get(instance.node);
    if (load !== undefined && load.node.status === 'up') return load;
  }
  if (inFlight === undefined || instance.desired !== 'running') return undefined;
  const proposed = inFlight.get(instance.id);
  const load = proposed === undefined ? undefined : loads.get(proposed);
  return load?.node.status === 'up' ? load : undefined;
}

/** A copy of `load` without `residents` (which it must hold): what the node would carry once they are gone. */
export function loadWithout(load: NodeLoad, residents: readonly Resident[]): NodeLoad {
  const ports = new Map(load.ports);
  const appCounts = new Map(load.appCounts);
  let { cpuMillis, memoryBytes } = load;
  for (const resident of residents) {
    cpuMillis -= resident.cpuMillis;
    memoryBytes -= resident.memoryBytes;
    for (const port of resident.ports) if (ports.get(port) === resident.id) ports.delete(port);
    appCounts.set(resident.appKey, Math.max(0, (appCounts.get(resident.appKey) ?? 0) - 1));
  }
  const gone = new Set(residents.map((resident) => resident.id));
  return { node: load.node, cpuMillis, memoryBytes, ports, appCounts, residents: load.residents.filter((resident) => !gone.has(resident.id)) };
}

/** Free CPU (thousandths of a core) on `load`'s node; Infinity when it declares none. */
export function freeCpuMillis(load: NodeLoad): number {
  const capacity = load.node.resources.cpuMillis;
  return capacity === undefined ? Infinity : capacity - load.cpuMillis;
}

/** Free memory (bytes) on `load`'s node; Infinity when it declares none. */
export function freeMemoryBytes(load: NodeLoad): number {
  const capacity = load.node.resources.memoryBytes;
  return capacity === undefined ? Infinity : capacity - load.memoryBytes;
}

/**
 * The first reason `load`'s node cannot take `demand`, or undefined when it
 * fits. Checks run cheapest and most telling first: status, constraints,
 * maxPerNode, ports, memory, CPU.
 */
export function misfit(load: NodeLoad, demand: Demand): Misfit | undefined {
  return fixedMisfit(load, demand) ?? loadMisfit(load, demand);
}

/** The part of `misfit` that depends on the node alone (status, constraints), not on what it carries: it holds for a whole round. */
export function fixedMisfit(load: NodeLoad, demand: Demand): Misfit | undefined {
  if (load.node.status !== 'up') return { kind: 'status', status: load.node.status };
  const broken = brokenConstraint(demand.constraints, load.node);
  if (broken !== undefined) return { kind: 'constraint', text: broken.text };
  if (demand.limits.length > 0) {
    const controller = unenforcedOn(load.node, demand.limits);
    if (controller !== undefined) return { kind: 'limits', controller };
  }
  if (demand.ports.length > 0) {
    const held = hostPortsOf(load.node);
    for (const port of demand.ports) if (held.has(port)) return { kind: 'host-port', port };
  }
  return undefined;
}

/** `hostPortsOf`'s answers by the record's `hostPorts` and `addresses` objects (an apply replaces them, never changes them in place). */
const heldPortsCache = new WeakMap<object, WeakMap<object, ReadonlySet<string>>>();

/**
 * The ports (`PORT/PROTOCOL`) `node`'s host holds: what it reported
 * (`hostPorts`), and always the API and peer (TCP) and gossip (UDP) ports of
 * its addresses. Placement never publishes one of them there.
 */
export function hostPortsOf(node: NodeRecord): ReadonlySet<string> {
  const reported = node.hostPorts ?? noPorts;
  let byAddresses = heldPortsCache.get(reported);
  if (byAddresses === undefined) heldPortsCache.set(reported, (byAddresses = new WeakMap()));
  const cached = byAddresses.get(node.addresses);
  if (cached !== undefined) return cached;
  const held = new Set<string>();
  for (const port of reported.tcp) held.add(`${port}/tcp`);
  for (const port of reported.udp) held.add(`${port}/udp`);
  for (const [address, protocol] of [[node.addresses.api, 'tcp'], [node.addresses.peer, 'tcp'], [node.addresses.gossip, 'udp']] as const) {
    const port = Number(address.slice(address.lastIndexOf(':') + 1));
    if (Number.isInteger(port) && port > 0) held.add(`${port}/${protocol}`);
  }
  byAddresses.set(node.addresses, held);
  return held;
}

const noPorts = { tcp: [], udp: [] };

/** The part of `misfit` that depends on what the node carries (maxPerNode, ports, memory, CPU). */
export function loadMisfit(load: NodeLoad, demand: Demand): Misfit | undefined {
  if (demand.maxPerNode !== undefined && (load.appCounts.get(demand.appKey) ?? 0) >= demand.maxPerNode) {
    return { kind: 'max-per-node', app: demand.app, max: demand.maxPerNode };
  }
  for (const port of demand.ports) if (load.ports.has(port)) return { kind: 'port', port };
  const freeBytes = freeMemoryBytes(load);
  if (demand.memoryBytes > freeBytes) return { kind: 'memory', needsBytes: demand.memoryBytes, freeBytes: Math.max(0, freeBytes) };
  const freeMillis = freeCpuMillis(load);
  if (demand.cpuMillis > freeMillis) return { kind: 'cpu', needsMillis: demand.cpuMillis, freeMillis: Math.max(0, freeMillis) };
  return undefined;
}

/**
 * How full `load`'s node would be with `extra` added, in millionths, summed
 * over the resources it declares (0..2,000,000). An integer, so that equal
 * loads compare equal on every platform.
 */
export function fullnessPpm(load: NodeLoad, extra: { cpuMillis: number; memoryBytes: number }): number {
  let total = 0;
  const { cpuMillis, memoryBytes } = load.node.resources;
  if (cpuMillis !== undefined && cpuMillis > 0) total += Math.round(((load.cpuMillis + extra.cpuMillis) / cpuMillis) * 1e6);
  if (memoryBytes !== undefined && memoryBytes > 0) total += Math.round(((load.memoryBytes + extra.memoryBytes) / memoryBytes) * 1e6);
  return total;
}

/** A 32-bit hash of `seed` and `parts`: FNV-1a, then a SplitMix finalizer. Ties between nodes break on it. */
export function tieHash(seed: number, ...parts: string[]): number {
  let hash = (0x811c9dc5 ^ (seed >>> 0)) >>> 0;
  for (const part of parts) {
    for (let index = 0; index < part.length; index++) hash = Math.imul(hash ^ part.charCodeAt(index), 0x01000193) >>> 0;
    hash = Math.imul(hash ^ 0xff, 0x01000193) >>> 0;
  }
  hash = Math.imul(hash ^ (hash >>> 16), 0x85ebca6b) >>> 0;
  hash = Math.imul(hash ^ (hash >>> 13), 0xc2b2ae35) >>> 0;
  return (hash ^ (hash >>> 16)) >>> 0;
}

/** Compares strings by code unit, independent of locale. */
export function compareText(left: string, right: string): number {
  return left < right ? -1 : left > right ? 1 : 0;
}

/** Compares score tuples element by element; lower is better. */
export function compareScores(left: readonly number[], right: readonly number[]): number {
  for (let index = 0; index < left.length; index++) {
    const difference = (left[index] ?? 0) - (right[index] ?? 0);
    if (difference !== 0) return difference;
  }
  return 0;
}
