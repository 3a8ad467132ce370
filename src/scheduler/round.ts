/**
 * One scheduling round: the whole cluster in, the commands the leader should
 * propose out. Pure and synchronous (the time and the seed come in), so the
 * same state and time give the same commands, in the simulator as on the
 * leader.
 *
 * Order of the commands: rollout and rebalance steps, reschedules of failed
 * instances, removals of stopped retired records, placements (batched),
 * unplacing of unplaceable instances stranded on lost nodes, then either
 * preemptions (only in a round that placed nothing, so the two
 * never plan over the same free room) and the unplaceable reports. Every
 * command stands alone: any may be refused because the state moved on, and
 * the next round plans again.
 *
 * Pipelining: while placements are in flight (proposed, not yet answered:
 * `RoundInput.inFlight`), a round plans placements only, counting those in
 * flight as placed; everything else waits for a round with nothing in
 * flight, so that no other step is planned twice or over stale room.
 */
import { isActive } from '../state/apply-apps.js';
import { CLUSTER_VERSION_FLOOR } from '../state/version.js';
import type { App, Command, Instance, NodeRecord, Volume } from '../state/types.js';
import { mayPlaceNow, planFailedReschedules, planRetiredRemovals, HEALING_DEFAULTS, type HealingOptions } from './healing.js';
import { parseConstraints } from './constraints.js';
import { appKey, appsByKey, buildLoads, demandOf, loadWithout, misfit, priorityOf, residentOf, specOf, type NodeLoad } from './node-load.js';
import { formatReasons, planPlacements, type PlacementStrategy, type Unplaceable, type UnplaceableKind } from './placement.js';
import { planPreemption } from './preemption.js';
import { planRebalanceStep } from './rebalance.js';
import { planRolloutStep } from './rollout.js';
import { KEEPERS_STATE_VERSION, UNLESS_SERVING_STATE_VERSION } from '../state/apply-rollouts.js';
import { waitsOnTime } from './time-dependence.js';

/** The scheduler's settings; every one has a default in `SCHEDULER_DEFAULTS`. */
export interface SchedulerOptions extends HealingOptions {
  strategy: PlacementStrategy;
  /** A rollout batch not done within this long counts as failed. */
  progressDeadlineMs: number;
  /** Placements per `instance.place` command (at most the state's batch limit). */
  placementBatchMax: number;
  /** Placements planned per round; the rest wait for the next round. */
  placementsPerRoundMax: number;
  /** With more nodes than this, placement scores only `candidatesMax` fitting nodes per instance. */
  candidatesMax: number;
  /** Preemptions planned per round. */
  preemptionsPerRoundMax: number;
  /** Rescheduled or removed instances per command. */
  healingBatchMax: number;
}

/** Kubernetes' progress deadline (10 min); batches as large as the state allows. */
export const SCHEDULER_DEFAULTS: SchedulerOptions = {
  ...HEALING_DEFAULTS,
  strategy: 'spread',
  progressDeadlineMs: 600_000,
  placementBatchMax: 5_000,
  placementsPerRoundMax: 50_000,
  candidatesMax: 8,
  preemptionsPerRoundMax: 4,
  healingBatchMax: 5_000,
};

/** What a round reads. The arrays are the caller's and are never changed. */
export interface RoundInput {
  nodes: readonly NodeRecord[];
  instances: readonly Instance[];
  apps: readonly App[];
  /** The leader's clock, ms. */
  now: number;
  /** Tie-breaking seed; derive it from the state (the applied index), never from a clock. */
  seed: number;
  options: SchedulerOptions;
  /** Placements proposed and not yet answered, instance id → node id; absent or empty: none. */
  inFlight?: ReadonlyMap<string, string>;
  /** The tenants' volumes: instances follow the node-local volumes they mount. Absent: none. */
  volumes?: readonly Volume[];
  /** The cluster version in force (state/version.ts): the round proposes only what it allows. Absent: CLUSTER_VERSION_FLOOR. */
  clusterVersion?: number;
}

/** A round's commands, in the order to propose them, and counts for logs and metrics. */
export interface RoundPlan {
  commands: Command[];
  placements: number;
  unplaceable: number;
  /** The unplaceable instances by the kind of reason that refused them on the most nodes (metrics). */
  unplaceableByKind: ReadonlyMap<UnplaceableKind, number>;
  /** Whether a later round over the same state may plan differently, time alone having passed (time-dependence.ts). */
  waitsOnTime: boolean;
}

/** Plans one round (see the file comment). */
export function planRound(input: RoundInput): RoundPlan {
  if (input.inFlight !== undefined && input.inFlight.size > 0) return planPlacementsOnly(input, input.inFlight);
  const { options, now } = input;
  const nodes = new Map(input.nodes.map((node) => [node.id, node]));
  const byApp = new Map<string, Instance[]>();
  for (const instance of input.instances) {
    const key = appKey(instance.tenant, instance.app);
    const list = byApp.get(key);
    if (list === undefined) byApp.set(key, [instance]);
    else list.push(instance);
  }
  const commands: Command[] = [];
  const namesKeepers = (input.clusterVersion ?? CLUSTER_VERSION_FLOOR) >= KEEPERS_STATE_VERSION;
  const retiresUnavailable = (input.clusterVersion ?? CLUSTER_VERSION_FLOOR) >= UNLESS_SERVING_STATE_VERSION;
  const rolloutTargets = new Map<string, number>();
  let loads: ReturnType<typeof buildLoads> | undefined;
  for (const app of input.apps) {
    const key = appKey(app.tenant, app.name);
    const instances = byApp.get(key) ?? [];
    if (app.rollout !== undefined && app.rollout.state === 'running') rolloutTargets.set(key, app.rollout.toVersion);
    const fitsInPlaceOf = (target: Instance, others: readonly Instance[]): boolean => {
      loads ??= buildLoads(input, appsByKey(input.apps));
      return fitsInPlace(target, others, loads, appsByKey(input.apps));
    };
    const stepped = planRolloutStep(app, { instances, nodes, now, progressDeadlineMs: options.progressDeadlineMs, fitsInPlaceOf, namesKeepers, retiresUnavailable });
    if (stepped !== undefined) {
      commands.push(stepped);
      continue;
    }
    if (app.rebalance !== undefined && (app.rollout === undefined || !isActive(app.rollout))) {
      loads ??= buildLoads(input, appsByKey(input.apps));
      const move = planRebalanceStep(app, { instances, nodes: input.nodes, loads, seed: input.seed, now, progressDeadlineMs: options.progressDeadlineMs, ...(input.volumes !== undefined ? { volumes: input.volumes } : {}) });
      if (move !== undefined) commands.push(move);
    }
  }
  const skip = (instance: Instance): boolean => rolloutTargets.get(appKey(instance.tenant, instance.app)) === instance.version;
  const reasons = (input.clusterVersion ?? CLUSTER_VERSION_FLOOR) >= 4;
  const reschedule = planFailedReschedules(input.instances, { nodes, now, options, skip, max: options.healingBatchMax, reasons });
  if (reschedule !== undefined) commands.push(reschedule);
  const removals = planRetiredRemovals(input.instances, { nodes, now, options, max: options.healingBatchMax });
  if (removals !== undefined) commands.push(removals);

  const placement = placeInRound(input, nodes);
  commands.push(...placementCommands(placement.placements, options));
  const stranded = strandedOnLostNodes(input.instances, placement.unplaceable, nodes);
  if (stranded.length > 0) commands.push({ type: 'instance.place', placements: stranded.slice(0, options.placementBatchMax).map((id) => ({ id, node: null })) });
  if (placement.placements.length === 0) commands.push(...planPreemptions(input, placement.unplaceable));
  const report = unplaceableReport(input.apps, placement.unplaceable, placement.placements.length > 0);
  if (report !== undefined) commands.push(report);
  return { commands, placements: placement.placements.length, unplaceable: placement.unplaceable.length, unplaceableByKind: countByKind(placement.unplaceable), waitsOnTime: waitsOnTime(input) };
}

/**
 * Whether `target` fits on the node of some of `others` (placed instances of
 * its slot) once the others there are gone: what a start-first update that
 * falls back to stop-first would free (rollout.ts).
 */
function fitsInPlace(target: Instance, others: readonly Instance[], loads: ReadonlyMap<string, NodeLoad>, apps: Map<string, App>): boolean {
  const spec = specOf(target, apps);
  if (spec === undefined) return false;
  const constraints = parseConstraints(spec.constraints);
  if (!constraints.ok) return false;
  const demand = demandOf(target, spec, constraints.constraints);
  const byNode = new Map<string, Instance[]>();
  for (const other of others) if (other.node !== undefined) byNode.set(other.node, [...(byNode.get(other.node) ?? []), other]);
  for (const [nodeId, here] of byNode) {
    const load = loads.get(nodeId);
    if (load === undefined || load.node.status !== 'up') continue;
    const residents = here.flatMap((other) => {
      const otherSpec = specOf(other, apps);
      return otherSpec !== undefined && load.residents.some((resident) => resident.id === other.id) ? [residentOf(other, otherSpec)] : [];
    });
    if (misfit(loadWithout(load, residents), demand) === undefined) return true;
  }
  return false;
}

/** The round's placement step over `nodes` (the same records as `input.nodes`, by id), counting `inFlight` placements as made. */
function placeInRound(input: RoundInput, nodes: ReadonlyMap<string, RoundInput['nodes'][number]>, inFlight?: ReadonlyMap<string, string>): ReturnType<typeof planPlacements> {
  const { options, now } = input;
  return planPlacements({
    nodes: input.nodes,
    instances: input.instances,
    apps: input.apps,
    strategy: options.strategy,
    seed: input.seed,
    mayPlace: (instance) => mayPlaceNow(instance, nodes, now, options),
    candidatesMax: input.nodes.length > options.candidatesMax ? options.candidatesMax : undefined,
    placementsMax: options.placementsPerRoundMax,
    ...(inFlight !== undefined ? { inFlight } : {}),
    ...(input.volumes !== undefined ? { volumes: input.volumes } : {}),
  });
}

/** A round while placements are in flight: more placements, nothing else (see the file comment). */
function planPlacementsOnly(input: RoundInput, inFlight: ReadonlyMap<string, string>): RoundPlan {
  const { options } = input;
  const placement = placeInRound(input, new Map(input.nodes.map((node) => [node.id, node])), inFlight);
  // Placements in flight: their answers bring the next round, and it plans everything else.
  return { commands: placementCommands(placement.placements, options), placements: placement.placements.length, unplaceable: placement.unplaceable.length, unplaceableByKind: countByKind(placement.unplaceable), waitsOnTime: true };
}

function placementCommands(placements: readonly { id: string; node: string }[], options: SchedulerOptions): Command[] {
  const commands: Command[] = [];
  for (let start = 0; start < placements.length; start += options.placementBatchMax) {
    commands.push({ type: 'instance.place', placements: placements.slice(start, start + options.placementBatchMax) });
  }
  return commands;
}

/**
 * Unplaceable instances still recorded on a node that is not up (past the
 * grace): unplaced, so that no instance stays assigned to a lost node; they
 * are placed as soon as room appears.
 */
function strandedOnLostNodes(instances: readonly Instance[], unplaceable: readonly Unplaceable[], nodes: ReadonlyMap<string, NodeRecord>): string[] {
  if (unplaceable.length === 0) return [];
  const stuck = new Set(unplaceable.map((entry) => entry.id));
  const ids: string[] = [];
  for (const instance of instances) {
    if (!stuck.has(instance.id) || instance.node === undefined) continue;
    if (nodes.get(instance.node)?.status !== 'up') ids.push(instance.id);
  }
  return ids;
}

function planPreemptions(input: RoundInput, unplaceable: readonly Unplaceable[]): Command[] {
  if (unplaceable.length === 0) return [];
  const apps = appsByKey(input.apps);
  const lowest = Math.min(0, ...input.apps.map((app) => priorityOf(app.versions[app.versions.length - 1]!.spec)));
  const commands: Command[] = [];
  const evicted = new Set<string>();
  const instances = new Map(input.instances.map((instance) => [instance.id, instance]));
  for (const stuck of unplaceable) {
    if (commands.length >= input.options.preemptionsPerRoundMax) break;
    const instance = instances.get(stuck.id);
    const spec = instance === undefined ? undefined : specOf(instance, apps);
    if (spec === undefined || priorityOf(spec) <= lowest) continue;
    const preemption = planPreemption({ nodes: input.nodes, instances: input.instances, apps: input.apps, instance: stuck.id, seed: input.seed, ...(input.volumes !== undefined ? { volumes: input.volumes } : {}) });
    if (preemption === undefined || preemption.evictions.length === 0) continue;
    if (preemption.evictions.some((eviction) => evicted.has(eviction.id))) continue;
    for (const eviction of preemption.evictions) evicted.add(eviction.id);
    commands.push({ type: 'instance.preempt', id: stuck.id, node: preemption.node, evictions: preemption.evictions });
  }
  return commands;
}

/**
 * The `app.unplaceable` updates that change what the state says: apps with
 * unplaceable instances (count and the first instance's reasons), and apps
 * whose record should clear. While a round placed some instances (capped),
 * apps are not cleared: the rest may simply not have had their turn.
 */
/** Each unplaceable instance counted once, under its first reason's kind (reasons come most nodes first). */
function countByKind(unplaceable: readonly Unplaceable[]): Map<UnplaceableKind, number> {
  const counts = new Map<UnplaceableKind, number>();
  for (const stuck of unplaceable) {
    const kind = stuck.reasons[0]?.kind ?? 'no-nodes';
    counts.set(kind, (counts.get(kind) ?? 0) + 1);
  }
  return counts;
}

function unplaceableReport(apps: readonly App[], unplaceable: readonly Unplaceable[], partial: boolean): Command | undefined {
  const found = new Map<string, { tenant: string; name: string; count: number; reasons: string[] }>();
  for (const stuck of unplaceable) {
    const key = appKey(stuck.tenant, stuck.app);
    const entry = found.get(key);
    if (entry !== undefined) entry.count++;
    else found.set(key, { tenant: stuck.tenant, name: stuck.app, count: 1, reasons: formatReasons(stuck.reasons).slice(0, 32) });
  }
  const updates: { tenant: string; name: string; count: number; reasons: string[] }[] = [];
  for (const app of apps) {
    const now = found.get(appKey(app.tenant, app.name));
    const before = app.unplaceable;
    if (now === undefined) {
      if (before !== undefined && !partial) updates.push({ tenant: app.tenant, name: app.name, count: 0, reasons: [] });
      continue;
    }
    if (before === undefined || before.count !== now.count || before.reasons.join('\n') !== now.reasons.join('\n')) updates.push(now);
  }
  return updates.length > 0 ? { type: 'app.unplaceable', updates: updates.slice(0, 10_000) } : undefined;
}
