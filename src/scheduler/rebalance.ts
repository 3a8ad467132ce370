/**
 * Rebalance: evens out an app's instances over the nodes that can take them,
 * one move at a time, never below the ready count: a copy of one instance
 * starts on the least loaded node that fits, and the slot rule of
 * rollout.ts retires the original once the copy is done. Pure.
 *
 * A copy that fails, or is not ready within the progress deadline of its
 * move, is given up: the copy is retired (the original keeps running) and
 * the rebalance ends, saying so in the history.
 *
 * Balanced: the most loaded node holds at most one instance more than the
 * least loaded node that could take one. Moves come from the most loaded
 * node (highest slot first) to the least loaded fitting node (tie hash).
 */
import type { App, Command, Instance, NodeRecord, Volume } from '../state/types.js';
import { parseConstraints } from './constraints.js';
import { appKey, compareScores, compareText, demandOf, misfit, tieHash, type NodeLoad } from './node-load.js';
import { volumeNodesOf, withVolumeConstraints } from './volume-placement.js';
import { describeStatus, hasFailed, isReady } from './readiness.js';
import { specOfVersion } from './rollout.js';

type StepCommand = Extract<Command, { type: 'rollout.step' }>;

/** What a rebalance step reads. */
export interface RebalanceContext {
  /** The app's instances. */
  instances: readonly Instance[];
  nodes: readonly NodeRecord[];
  /** Every node's load (all apps), by node id. */
  loads: ReadonlyMap<string, NodeLoad>;
  seed: number;
  /** The leader's clock, ms. */
  now: number;
  /** A copy not ready this long after its move started is given up. */
  progressDeadlineMs: number;
  /** The tenants' volumes: an instance that mounts one stays on its node. Absent: none. */
  volumes?: readonly Volume[];
}

/** The next rebalance step of `app` (a move or 'done'), or undefined while a move is in flight or instances are not all placed. */
export function planRebalanceStep(app: App, context: RebalanceContext): StepCommand | undefined {
  if (app.rebalance === undefined) return undefined;
  const running = context.instances.filter((instance) => instance.desired === 'running');
  const perSlot = new Map<number, number>();
  for (const instance of running) perSlot.set(instance.slot, (perSlot.get(instance.slot) ?? 0) + 1);
  const base = { type: 'rollout.step' as const, tenant: app.tenant, name: app.name, rollout: 0, add: [], retire: [] };
  if ([...perSlot.values()].some((count) => count > 1)) return giveUpStuckCopy(app, running, perSlot, context, base);
  if (running.some((instance) => instance.node === undefined || context.loads.get(instance.node)?.node.status !== 'up')) return undefined;
  if (running.length === 0) return { ...base, rebalance: 'done' };
  const counts = new Map<string, Instance[]>();
  for (const instance of running) {
    const list = counts.get(instance.node!);
    if (list === undefined) counts.set(instance.node!, [instance]);
    else list.push(instance);
  }
  let busiest: { node: string; instances: Instance[] } | undefined;
  for (const [node, instances] of counts) {
    if (busiest === undefined || instances.length > busiest.instances.length || (instances.length === busiest.instances.length && node < busiest.node)) busiest = { node, instances };
  }
  const mover = [...busiest!.instances].sort((left, right) => right.slot - left.slot)[0]!;
  const spec = specOfVersion(app, mover.version);
  const parsed = parseConstraints(spec.constraints);
  if (!parsed.ok) return { ...base, rebalance: 'done' };
  const demand = demandOf(mover, spec, withVolumeConstraints(spec, parsed.constraints, volumeNodesOf(context.volumes)));
  const key = appKey(app.tenant, app.name);
  let target: { node: string; score: number[] } | undefined;
  for (const node of context.nodes) {
    const load = context.loads.get(node.id);
    if (load === undefined || node.id === busiest!.node) continue;
    const here = load.appCounts.get(key) ?? 0;
    if (here + 1 >= busiest!.instances.length) continue;
    if (misfit(load, demand) !== undefined) continue;
    const score = [here, tieHash(context.seed, mover.id, node.id)];
    if (target === undefined || compareScores(score, target.score) < 0) target = { node: node.id, score };
  }
  if (target === undefined) return { ...base, rebalance: 'done' };
  return { ...base, add: [{ slot: mover.slot, version: mover.version, node: target.node }], rebalance: 'moved' };
}

/**
 * A move in flight: undefined while it may still finish; the step that
 * retires its copy and ends the rebalance when the copy failed or is not
 * ready within the progress deadline. Only the copy (the slot's newest
 * instance) is ever retired, so the ready count never drops.
 */
function giveUpStuckCopy(
  app: App,
  running: readonly Instance[],
  perSlot: ReadonlyMap<number, number>,
  context: RebalanceContext,
  base: StepCommand,
): StepCommand | undefined {
  const nodes = new Map(context.nodes.map((node) => [node.id, node]));
  for (const [slot, count] of perSlot) {
    if (count < 2) continue;
    const copy = running.filter((instance) => instance.slot === slot).sort((left, right) => right.createdIndex - left.createdIndex || compareText(right.id, left.id))[0]!;
    const spec = specOfVersion(app, copy.version);
    if (hasFailed(copy, spec)) return { ...base, retire: [{ id: copy.id, reason: `the copy failed (${describeStatus(copy)})` }], rebalance: 'done' };
    const startedAt = app.rebalance?.moveStartedAt ?? copy.status.since ?? copy.status.reportedAt;
    if (!isReady(copy, spec, nodes) && context.now - startedAt >= context.progressDeadlineMs) {
      const reason = `the copy was not ready within the progress deadline (${Math.round(context.progressDeadlineMs / 1000)} s; ${describeStatus(copy)})`;
      return { ...base, retire: [{ id: copy.id, reason }], rebalance: 'done' };
    }
  }
  return undefined;
}
