/**
 * Preemption: when an instance cannot be placed, which lower-priority
 * instances to evict from one node so that it fits. Deterministic and pure.
 *
 * Only instances of strictly lower priority are evicted. On each node that is
 * `up` and meets the constraints, evictions are forced first (the owners of
 * the conflicting host ports, then surplus instances of the same app over
 * maxPerNode), then resources are freed greedily: the lowest priority level
 * that suffices, and within it the instance that covers most of the shortfall
 * first. Greedy is not always the minimum, but it is close and bounded by the
 * node's instance count. Among nodes, the plan with the fewest evictions
 * wins, then the lowest highest-evicted priority, then the tie hash.
 */
import type { App, Instance, NodeRecord, Volume } from '../state/types.js';
import { parseConstraints } from './constraints.js';
import {
  appsByKey,
  buildLoads,
  compareScores,
  compareText,
  demandOf,
  freeCpuMillis,
  freeMemoryBytes,
  misfit,
  specOf,
  tieHash,
  type Demand,
  type NodeLoad,
  type Resident,
} from './node-load.js';
import { volumeNodesOf, withVolumeConstraints } from './volume-placement.js';

export interface PreemptionInput {
  nodes: readonly NodeRecord[];
  instances: readonly Instance[];
  apps: readonly App[];
  /** The id of the instance to make room for; it must be in `instances`. */
  instance: string;
  seed: number;
  /** The tenants' volumes: room is made only on the node of a volume the instance mounts. Absent: none. */
  volumes?: readonly Volume[];
}

/** One instance to stop, and why (for the history and `hivemind ps`). */
export interface Eviction {
  id: string;
  reason: string;
}

/** Where the instance goes once `evictions` have stopped. `evictions` is empty when it fits already. */
export interface Preemption {
  node: string;
  evictions: Eviction[];
}

/** The preemption that makes room for `input.instance`, or undefined when no node can be freed (or the app or instance is unknown, or its constraints are malformed). */
export function planPreemption(input: PreemptionInput): Preemption | undefined {
  const apps = appsByKey(input.apps);
  const instance = input.instances.find((candidate) => candidate.id === input.instance);
  if (instance === undefined) return undefined;
  const spec = specOf(instance, apps);
  if (spec === undefined) return undefined;
  const parsed = parseConstraints(spec.constraints);
  if (!parsed.ok) return undefined;
  const demand = demandOf(instance, spec, withVolumeConstraints(spec, parsed.constraints, volumeNodesOf(input.volumes)));
  const loads = buildLoads(input, apps);
  let best: { node: string; victims: Resident[]; score: number[] } | undefined;
  for (const load of loads.values()) {
    if (instance.node === load.node.id && load.residents.some((resident) => resident.id === instance.id)) continue;
    const victims = victimsOn(load, demand);
    if (victims === undefined) continue;
    const highest = Math.max(-Infinity, ...victims.map((victim) => victim.priority));
    const score = [victims.length, victims.length === 0 ? 0 : highest, tieHash(input.seed, demand.id, load.node.id)];
    if (best === undefined || compareScores(score, best.score) < 0) best = { node: load.node.id, victims, score };
  }
  if (best === undefined) return undefined;
  const target = best.node;
  return {
    node: target,
    evictions: best.victims.map((victim) => ({
      id: victim.id,
      reason: `preempted on node "${target}" to make room for ${demand.id} of ${demand.appKey} (priority ${demand.priority} over ${victim.priority})`,
    })),
  };
}

/** The residents to evict from `load` so that `demand` fits, or undefined when no eviction of lower priority suffices. */
function victimsOn(load: NodeLoad, demand: Demand): Resident[] | undefined {
  const refused = misfit(load, demand);
  if (refused === undefined) return [];
  if (refused.kind === 'status' || refused.kind === 'constraint') return undefined;
  const evictable = (resident: Resident): boolean => resident.priority < demand.priority;
  const chosen = new Set<Resident>();
  for (const port of demand.ports) {
    const owner = load.residents.find((resident) => resident.ports.includes(port));
    if (owner === undefined) continue;
    if (!evictable(owner)) return undefined;
    chosen.add(owner);
  }
  if (demand.maxPerNode !== undefined) {
    const sameApp = load.residents.filter((resident) => resident.appKey === demand.appKey);
    let surplus = sameApp.filter((resident) => !chosen.has(resident)).length - demand.maxPerNode + 1;
    for (const resident of sameApp.filter((candidate) => evictable(candidate) && !chosen.has(candidate)).sort(byPriorityThenId)) {
      if (surplus <= 0) break;
      chosen.add(resident);
      surplus--;
    }
    if (surplus > 0) return undefined;
  }
  const freed = coverShortfall(load, demand, chosen, evictable);
  return freed === undefined ? undefined : [...freed].sort(byPriorityThenId);
}

function coverShortfall(load: NodeLoad, demand: Demand, forced: Set<Resident>, evictable: (resident: Resident) => boolean): Set<Resident> | undefined {
  const shortfall = (chosen: Set<Resident>): { cpuMillis: number; memoryBytes: number } => {
    let cpuMillis = demand.cpuMillis - freeCpuMillis(load);
    let memoryBytes = demand.memoryBytes - freeMemoryBytes(load);
    for (const resident of chosen) {
      cpuMillis -= resident.cpuMillis;
      memoryBytes -= resident.memoryBytes;
    }
    return { cpuMillis: Math.max(0, cpuMillis), memoryBytes: Math.max(0, memoryBytes) };
  };
  const candidates = load.residents.filter((resident) => evictable(resident) && !forced.has(resident));
  const levels = [...new Set(candidates.map((resident) => resident.priority))].sort((left, right) => left - right);
  const initial = shortfall(forced);
  if (initial.cpuMillis === 0 && initial.memoryBytes === 0) return forced;
  for (const level of levels) {
    const chosen = new Set(forced);
    const pool = candidates.filter((resident) => resident.priority <= level);
    for (;;) {
      const missing = shortfall(chosen);
      if (missing.cpuMillis === 0 && missing.memoryBytes === 0) return chosen;
      const next = bestCover(pool.filter((resident) => !chosen.has(resident)), missing);
      if (next === undefined) break;
      chosen.add(next);
    }
  }
  return undefined;
}

/** The resident that covers the largest share of `missing` (summed over CPU and memory); lower priority, then id, on ties. */
function bestCover(pool: Resident[], missing: { cpuMillis: number; memoryBytes: number }): Resident | undefined {
  const share = (resident: Resident): number =>
    (missing.cpuMillis > 0 ? Math.min(resident.cpuMillis, missing.cpuMillis) / missing.cpuMillis : 0) +
    (missing.memoryBytes > 0 ? Math.min(resident.memoryBytes, missing.memoryBytes) / missing.memoryBytes : 0);
  let best: { resident: Resident; share: number } | undefined;
  for (const resident of pool) {
    const covered = share(resident);
    if (covered <= 0) continue;
    if (best === undefined || covered > best.share || (covered === best.share && byPriorityThenId(resident, best.resident) < 0)) best = { resident, share: covered };
  }
  return best?.resident;
}

function byPriorityThenId(left: Resident, right: Resident): number {
  return left.priority - right.priority || compareText(left.id, right.id);
}
