/**
 * Whether a round's outcome may change with time alone, the state staying
 * as it is. The scheduler component plans every period only while this
 * holds (or the last round proposed something): an idle cluster, even one
 * holding thousands of instances no node can take, is then not planned
 * again each second for nothing; any change of the state still starts a
 * round at once. Pure and synchronous, like the round.
 *
 * What waits on time (each is a `now` read in round.ts and the files it
 * calls):
 * - a rollout that is active (batches, monitor periods, delays, progress
 *   deadlines) and a rebalance (deadlines);
 * - an instance in its failure backoff (`notBefore` ahead);
 * - an instance on a node that is down or suspect, within the node's
 *   reschedule grace (after it, the round moves it: a command);
 * - a retired instance whose record is still there (removed at the latest
 *   `retiredTimeoutMs` after it was retired).
 */
import { isActive } from '../state/apply-apps.js';
import type { App, Instance, NodeRecord } from '../state/types.js';
import type { HealingOptions } from './healing.js';

/** What the check reads: the round's input, in part. */
export interface TimeDependenceInput {
  nodes: readonly NodeRecord[];
  instances: readonly Instance[];
  apps: readonly App[];
  /** The leader's clock, ms (the round's `now`). */
  now: number;
  options: HealingOptions;
}

/** True when a round over the same state, later, may plan something this one did not (see the file comment). */
export function waitsOnTime(input: TimeDependenceInput): boolean {
  for (const app of input.apps) {
    if ((app.rollout !== undefined && isActive(app.rollout)) || app.rebalance !== undefined) return true;
  }
  let nodes: Map<string, NodeRecord> | undefined;
  for (const instance of input.instances) {
    if (instance.desired !== 'running') return true;
    if (instance.notBefore !== undefined && input.now < instance.notBefore) return true;
    if (instance.node === undefined) continue;
    nodes ??= new Map(input.nodes.map((node) => [node.id, node]));
    const node = nodes.get(instance.node);
    if (node === undefined || node.status === 'up' || node.status === 'left') continue;
    if (input.now - (node.statusSince ?? 0) < input.options.rescheduleGraceMs) return true;
  }
  return false;
}
