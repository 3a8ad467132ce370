/**
 * When an instance serves: the readiness rule that the scheduler's health
 * gate (rollouts, rebalance, healing: scheduler/readiness.ts) and the state's
 * check of a `rollout.step`'s keepers (apply-rollouts.ts) share, so that the
 * step the leader planned and the verdict every node reaches at apply read
 * readiness the same way. Pure and timeless: it reads the records only.
 *
 * Ready: meant to run, placed on an `up` node, and `running` (no
 * healthcheck, or NONE) or `healthy` (with one).
 */
import { stateMutations } from './mutations.js';
import type { AppSpec, Instance, NodeRecord } from './types.js';

/** Whether `spec` has a healthcheck that gates readiness. */
export function hasHealthcheck(spec: AppSpec): boolean {
  return spec.healthcheck !== undefined && spec.healthcheck.test[0] !== 'NONE';
}

/** Whether `instance` serves: meant to run, on an up node, running (healthy when checked). */
export function isReady(instance: Instance, spec: AppSpec, nodes: ReadonlyMap<string, NodeRecord>): boolean {
  if (instance.desired !== 'running' || instance.node === undefined || nodes.get(instance.node)?.status !== 'up') return false;
  const state = instance.status.state;
  // stateMutations: test only (src/sim's mutation checks), never set in production.
  if (stateMutations.healthGateOff) return state === 'running' || state === 'healthy' || state === 'starting';
  return hasHealthcheck(spec) ? state === 'healthy' : state === 'running' || state === 'healthy';
}
