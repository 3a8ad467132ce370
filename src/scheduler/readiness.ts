/**
 * When an instance counts as ready, done (ready for `monitorMs`), or failed:
 * the health gate of rollouts, rebalance and healing. Pure.
 *
 * Ready: placed on an `up` node and `running` (no healthcheck, or NONE) or
 * `healthy` (with one); the rule is the state's (state/readiness.ts), which
 * refuses a rollout step whose keeper no longer serves by it. Failed: `failed` (restart policy gave up), `unhealthy`,
 * `oom-killed`, `exited` when the restart policy is `none`, or any of those
 * reported before (the executor restarts in place; `failures` counts them).
 */
import type { AppSpec, Instance, NodeRecord } from '../state/types.js';
import { isReady } from '../state/readiness.js';

/** The readiness rule lives with the state, which checks a rollout step's keepers by it (state/readiness.ts). */
export { hasHealthcheck, isReady } from '../state/readiness.js';

/** Ready, and for at least `monitorMs` by `now` (ms). */
export function isDone(instance: Instance, spec: AppSpec, nodes: ReadonlyMap<string, NodeRecord>, now: number, monitorMs: number): boolean {
  if (!isReady(instance, spec, nodes)) return false;
  const since = instance.status.since ?? instance.status.reportedAt;
  return now - since >= monitorMs;
}

/**
 * Whether `instance` has failed in a way an update counts against the new
 * version: it is failed, unhealthy or oom-killed now, exited with no restart
 * to come, or it failed before and was restarted in place (`failures`).
 */
export function hasFailed(instance: Instance, spec: AppSpec): boolean {
  const state = instance.status.state;
  if ((instance.failures ?? 0) > 0) return true;
  return state === 'failed' || state === 'unhealthy' || state === 'oom-killed' || (state === 'exited' && spec.restart.condition === 'none');
}

/** A short account of an instance's status for messages: `web.0.3 unhealthy (exit 1: ...)`. */
export function describeStatus(instance: Instance): string {
  const detail = [instance.status.exitCode !== undefined ? `exit ${instance.status.exitCode}` : '', instance.status.message ?? ''].filter(Boolean).join(': ');
  const failures = (instance.failures ?? 0) > 0 ? `, failed ${instance.failures} time${instance.failures === 1 ? '' : 's'}` : '';
  return `instance ${instance.id} ${instance.status.state}${detail ? ` (${detail.slice(0, 200)})` : ''}${failures}`;
}
