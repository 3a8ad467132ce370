/**
 * Placement: which node each unplaced instance goes to. Deterministic and
 * pure (no clock, no randomness, no I/O): the same input gives the same plan,
 * and the seed only changes how ties between equally good nodes break. The
 * leader's scheduler turns the plan into an `instance.place` command.
 *
 * Every node is filtered (status, constraints, maxPerNode, host ports,
 * memory, CPU), counting what this round has already placed, then the nodes
 * that fit are scored:
 * - `spread`: fewest instances of the same app first, then the emptiest node;
 * - `binpack`: the fullest node after placement first (Nomad's best fit).
 * Instances are placed highest priority first, then by tenant, app, slot, id.
 * An instance that mounts a node-local volume may only go to that volume's
 * node (volume-placement.ts).
 */
import { formatBytes, formatCpu } from '../state/errors.js';
import type { App, AppSpec, Instance, NodeRecord, Volume } from '../state/types.js';
import { parseConstraints, type Constraint } from './constraints.js';
import {
  addResident,
  appsByKey,
  buildLoads,
  compareScores,
  compareText,
  demandOf,
  fixedMisfit,
  fullnessPpm,
  loadMisfit,
  misfit,
  priorityOf,
  SpecLookup,
  tieHash,
  type Demand,
  type Misfit,
  type NodeLoad,
} from './node-load.js';
import { claimPlacedVolumes, claimVolumes, volumeNodesOf, withVolumeConstraints } from './volume-placement.js';
import { schedulerMutations } from './mutations.js';

/** How nodes that fit are ranked. */
export type PlacementStrategy = 'spread' | 'binpack';

export interface PlacementInput {
  nodes: readonly NodeRecord[];
  instances: readonly Instance[];
  apps: readonly App[];
  strategy: PlacementStrategy;
  /** Breaks ties between equally scored nodes; any 32-bit integer. */
  seed: number;
  /** Which pending instances may be placed now (healing grace, failure backoff); absent: all. */
  mayPlace?: (instance: Instance) => boolean;
  /**
   * Large clusters: score at most this many nodes that fit, visited from a
   * seeded offset per instance (Nomad's limited candidate scan), instead of
   * every node. Absent: every node. A full scan still runs before an
   * instance is declared unplaceable, so the reasons cover every node.
   */
  candidatesMax?: number;
  /** At most this many placements; the rest wait for the next round. Absent: no limit. */
  placementsMax?: number;
  /**
   * Placements proposed and not yet answered (instance id → node id): those
   * instances are not placed again, and count on their proposed node.
   */
  inFlight?: ReadonlyMap<string, string>;
  /** The tenants' volumes: an instance that mounts one goes to the volume's node (see volume-placement.ts). Absent: none. */
  volumes?: readonly Volume[];
}

/**
 * What kind of reason refused an instance, a bounded set (the metrics label
 * `reason`): a node misfit's kind, or `no-nodes`, `no-app` (its app is gone),
 * `invalid-constraint`.
 */
export type UnplaceableKind = Misfit['kind'] | 'no-nodes' | 'no-app' | 'invalid-constraint';

/** One reason nodes refused an instance, and on how many nodes. */
export interface UnplaceableReason {
  count: number;
  kind: UnplaceableKind;
  /** Without the count: "not enough memory (needs 512 MiB, 256 MiB free at most)". */
  reason: string;
}

export interface Unplaceable {
  id: string;
  app: string;
  tenant: string;
  /** Most nodes first, then by text. The counts sum to the number of nodes (one reason per node). */
  reasons: UnplaceableReason[];
}

export interface PlacementPlan {
  /** In the order they were decided. */
  placements: { id: string; node: string }[];
  unplaceable: Unplaceable[];
}

/**
 * Plans a node for every instance that is meant to run and has no node, or
 * sits on a node that is not `up` (or no longer exists). Instances placed
 * earlier in the plan count against their node for the later ones.
 */
export function planPlacements(input: PlacementInput): PlacementPlan {
  const apps = appsByKey(input.apps);
  const loads = buildLoads(input, apps, input.inFlight, { residents: false });
  const nodeLoads = [...loads.values()].sort((left, right) => compareText(left.node.id, right.node.id));
  const fits = new FixedFits(nodeLoads);
  const plan: PlacementPlan = { placements: [], unplaceable: [] };
  const volumeNodes = volumeNodesOf(input.volumes);
  if (input.volumes?.some((volume) => volume.node === undefined)) {
    const specs = new SpecLookup(apps);
    claimPlacedVolumes(volumeNodes, input.instances, { specOf: (instance) => specs.specOf(instance), nodeOf: (instance) => input.inFlight?.get(instance.id) ?? instance.node });
  }
  for (const pending of pendingInstances(input.instances, loads, apps, input.inFlight)) {
    if (input.mayPlace !== undefined && !input.mayPlace(pending.instance)) continue;
    if (input.placementsMax !== undefined && plan.placements.length >= input.placementsMax) break;
    if (pending.spec === undefined) {
      const { id, app, tenant } = pending.instance;
      plan.unplaceable.push({ id, app, tenant, reasons: [{ count: 0, kind: 'no-app', reason: `app "${app}" of tenant "${tenant}" does not exist` }] });
      continue;
    }
    const parsed = constraintsOf(pending.spec);
    if (!parsed.ok) {
      const { id, app, tenant } = pending.instance;
      plan.unplaceable.push({ id, app, tenant, reasons: [{ count: nodeLoads.length, kind: 'invalid-constraint', reason: parsed.error.message }] });
      continue;
    }
    const demand = demandOf(pending.instance, pending.spec, withVolumeConstraints(pending.spec, parsed.constraints, volumeNodes));
    const chosen = chooseNode(nodeLoads, demand, input, fits);
    if (chosen.ok) {
      addResident(chosen.load, demand);
      plan.placements.push({ id: demand.id, node: chosen.load.node.id });
      if (pending.spec.volumes.length > 0) claimVolumes(volumeNodes, pending.spec, chosen.load.node.id);
    } else {
      const { id, app, tenant } = pending.instance;
      plan.unplaceable.push({ id, app, tenant, reasons: chosen.reasons });
    }
  }
  return plan;
}

/**
 * Whether each node passes the checks that hold for a whole round (status,
 * constraints), per constraint list, computed at most once per node and
 * list: a large cluster visits the same nodes for thousands of instances.
 * Constraint lists are parsed once per spec, so one list stands for one spec.
 */
class FixedFits {
  readonly #loads: readonly NodeLoad[];
  /** Per constraint list, per node position: 0 not known yet, 1 fits, 2 does not. */
  readonly #known = new Map<readonly Constraint[], Uint8Array>();

  constructor(loads: readonly NodeLoad[]) {
    this.#loads = loads;
  }

  /** Whether the node at `position` passes `demand`'s status and constraint checks. */
  fits(position: number, demand: Demand): boolean {
    let known = this.#known.get(demand.constraints);
    if (known === undefined) {
      known = new Uint8Array(this.#loads.length);
      this.#known.set(demand.constraints, known);
    }
    let state = known[position]!;
    if (state === 0) {
      state = fixedMisfit(this.#loads[position]!, demand) === undefined ? 1 : 2;
      known[position] = state;
    }
    return state === 1;
  }
}

const parsedConstraints = new WeakMap<AppSpec, ReturnType<typeof parseConstraints>>();

/** A spec's constraints, parsed once per spec (specs are never changed once stored). */
function constraintsOf(spec: AppSpec): ReturnType<typeof parseConstraints> {
  let parsed = parsedConstraints.get(spec);
  if (parsed === undefined) {
    parsed = parseConstraints(spec.constraints);
    parsedConstraints.set(spec, parsed);
  }
  return parsed;
}

/** Formats reasons as lines like "3 nodes: not enough memory (...)". */
export function formatReasons(reasons: readonly UnplaceableReason[]): string[] {
  return reasons.map((reason) => `${reason.count} ${reason.count === 1 ? 'node' : 'nodes'}: ${reason.reason}`);
}

interface Pending {
  instance: Instance;
  spec: AppSpec | undefined;
  priority: number;
}

function pendingInstances(instances: readonly Instance[], loads: Map<string, NodeLoad>, apps: Map<string, App>, inFlight: ReadonlyMap<string, string> | undefined): Pending[] {
  const pending: Pending[] = [];
  const overlay = inFlight !== undefined && inFlight.size > 0 ? inFlight : undefined;
  const specs = new SpecLookup(apps);
  for (const instance of instances) {
    if (instance.desired !== 'running') continue;
    // schedulerMutations: test only (src/sim's mutation checks), never set in production.
    const conflictsChecked = !schedulerMutations.placementConflictCheckOff;
    if (conflictsChecked && instance.node !== undefined && loads.get(instance.node)?.node.status === 'up') continue;
    if (conflictsChecked && overlay?.has(instance.id) === true) continue;
    const spec = specs.specOf(instance);
    pending.push({ instance, spec, priority: spec === undefined ? 0 : priorityOf(spec) });
  }
  return pending.sort(
    (left, right) =>
      right.priority - left.priority ||
      compareText(left.instance.tenant, right.instance.tenant) ||
      compareText(left.instance.app, right.instance.app) ||
      left.instance.slot - right.instance.slot ||
      compareText(left.instance.id, right.instance.id),
  );
}

type Choice = { ok: true; load: NodeLoad } | { ok: false; reasons: UnplaceableReason[] };

function chooseNode(loads: readonly NodeLoad[], demand: Demand, input: PlacementInput, fits: FixedFits): Choice {
  const limit = input.candidatesMax;
  if (limit !== undefined && limit < loads.length) {
    const sampled = chooseAmongSome(loads, demand, input, limit, fits);
    if (sampled !== undefined) return { ok: true, load: sampled };
  }
  let best: { load: NodeLoad; score: number[] } | undefined;
  const misfits: Misfit[] = [];
  for (const load of loads) {
    const refused = misfit(load, demand);
    if (refused !== undefined) {
      misfits.push(refused);
      continue;
    }
    const score = scoreNode(load, demand, input);
    if (best === undefined || compareScores(score, best.score) < 0) best = { load, score };
  }
  if (best !== undefined) return { ok: true, load: best.load };
  return { ok: false, reasons: aggregate(misfits, loads.length) };
}

/**
 * The best of the first `limit` nodes that fit, visiting from a seeded
 * offset; undefined when none of the nodes fit. Scores as `scoreNode` does,
 * without allocating, and breaks ties by visiting order instead of the tie
 * hash (the seeded offset already spreads them; this loop runs for every
 * placement in a large cluster).
 */
function chooseAmongSome(loads: readonly NodeLoad[], demand: Demand, input: PlacementInput, limit: number, fits: FixedFits): NodeLoad | undefined {
  const start = tieHash(input.seed, demand.id) % loads.length;
  const binpack = input.strategy === 'binpack';
  let best: NodeLoad | undefined;
  let bestAvoided = 0;
  let bestPrimary = 0;
  let bestFullness = 0;
  let fitting = 0;
  for (let step = 0; step < loads.length && fitting < limit; step++) {
    const position = (start + step) % loads.length;
    if (!fits.fits(position, demand)) continue;
    const load = loads[position]!;
    if (loadMisfit(load, demand) !== undefined) continue;
    fitting++;
    const avoided = demand.avoidNode === load.node.id ? 1 : 0;
    const fullness = fullnessPpm(load, demand);
    // Spread: fewest of the app, then emptiest; binpack: fullest.
    const primary = binpack ? -fullness : (load.appCounts.get(demand.appKey) ?? 0);
    const secondary = binpack ? 0 : fullness;
    // Ties go to the node visited first: the visit starts at a seeded offset per instance, so that is the tie break.
    if (best === undefined || (avoided - bestAvoided || primary - bestPrimary || secondary - bestFullness) < 0) {
      best = load;
      bestAvoided = avoided;
      bestPrimary = primary;
      bestFullness = secondary;
    }
  }
  return best;
}

/** Lower is better, compared element by element; the last element is the tie hash. A node the instance last failed on comes last. */
function scoreNode(load: NodeLoad, demand: Demand, input: PlacementInput): number[] {
  const tie = tieHash(input.seed, demand.id, load.node.id);
  const fullness = fullnessPpm(load, demand);
  const avoided = demand.avoidNode === load.node.id ? 1 : 0;
  if (input.strategy === 'binpack') return [avoided, -fullness, tie];
  return [avoided, load.appCounts.get(demand.appKey) ?? 0, fullness, tie];
}


interface Bucket {
  count: number;
  misfit: Misfit;
  /** For memory and CPU: the most free on any node of the bucket. */
  mostFree: number;
}

function aggregate(misfits: readonly Misfit[], nodeCount: number): UnplaceableReason[] {
  if (nodeCount === 0) return [{ count: 0, kind: 'no-nodes', reason: 'no nodes in the cluster' }];
  const buckets = new Map<string, Bucket>();
  for (const refused of misfits) {
    const key = bucketKey(refused);
    const free = refused.kind === 'memory' ? refused.freeBytes : refused.kind === 'cpu' ? refused.freeMillis : 0;
    const bucket = buckets.get(key);
    if (bucket === undefined) buckets.set(key, { count: 1, misfit: refused, mostFree: free });
    else {
      bucket.count++;
      bucket.mostFree = Math.max(bucket.mostFree, free);
    }
  }
  return [...buckets.values()]
    .map((bucket) => ({ count: bucket.count, kind: bucket.misfit.kind, reason: describe(bucket) }))
    .sort((left, right) => right.count - left.count || compareText(left.reason, right.reason));
}

function bucketKey(refused: Misfit): string {
  switch (refused.kind) {
    case 'status':
      return `status ${refused.status}`;
    case 'constraint':
      return `constraint ${refused.text}`;
    case 'port':
      return `port ${refused.port}`;
    case 'max-per-node':
    case 'memory':
    case 'cpu':
      return refused.kind;
  }
}

function describe(bucket: Bucket): string {
  const refused = bucket.misfit;
  switch (refused.kind) {
    case 'status':
      return refused.status === 'left' ? 'left the cluster' : refused.status;
    case 'constraint':
      return `constraint ${refused.text}`;
    case 'port':
      return `host port ${refused.port} already published`;
    case 'max-per-node':
      return `already ${refused.max} ${refused.max === 1 ? 'instance' : 'instances'} of "${refused.app}" (max ${refused.max} per node)`;
    case 'memory':
      return `not enough memory (needs ${formatBytes(refused.needsBytes)}, ${formatBytes(bucket.mostFree)} free at most)`;
    case 'cpu':
      return `not enough CPU (needs ${formatCpu(refused.needsMillis)}, ${formatCpu(bucket.mostFree)} free at most)`;
  }
}
