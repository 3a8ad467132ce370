/**
 * Self-healing decisions: which instances wait out a node's grace, which
 * failed ones go elsewhere after a backoff, which retired records can go.
 * Pure and synchronous; time comes in as `now` (the leader's clock, ms).
 *
 * - An instance on a node that is `down` or `suspect` stays put for
 *   `rescheduleGraceMs` after the node's status changed (`statusSince`): a
 *   node back within the grace keeps its instances. After the grace it is
 *   placed elsewhere (`instance.place` moves it; the node, if it returns,
 *   stops its stale copy because the instance is no longer placed on it).
 *   On a node that left or is gone, it is placed at once.
 * - An instance reported `failed` (its restart policy gave up) is put back to
 *   be placed after `backoffBaseMs × 2^attempt` (at most `backoffMaxMs`),
 *   preferring another node; the attempt count lives in the instance record,
 *   so a new leader keeps the backoff.
 * - A retired instance's record is removed once it stopped (a terminal
 *   state), its node is not up, it was never placed, or `retiredTimeoutMs`
 *   passed since it was retired.
 */
import { FAILURE_MESSAGE_CHARS_MAX, type Command, type Instance, type NodeRecord } from '../state/types.js';

/** The healing settings. */
export interface HealingOptions {
  rescheduleGraceMs: number;
  backoffBaseMs: number;
  backoffMaxMs: number;
  retiredTimeoutMs: number;
}

/** Defaults: the grace of the issue (30 s), backoff from 1 s doubling to 5 min, retired records kept at most 2 min. */
export const HEALING_DEFAULTS: HealingOptions = {
  rescheduleGraceMs: 30_000,
  backoffBaseMs: 1_000,
  backoffMaxMs: 300_000,
  retiredTimeoutMs: 120_000,
};

const terminalStates = new Set(['stopped', 'exited', 'failed', 'oom-killed']);

/** Whether `instance` may be placed now: past its backoff, and not waiting out its node's grace. */
export function mayPlaceNow(instance: Instance, nodes: ReadonlyMap<string, NodeRecord>, now: number, options: HealingOptions): boolean {
  if (instance.notBefore !== undefined && now < instance.notBefore) return false;
  if (instance.node === undefined) return true;
  const node = nodes.get(instance.node);
  if (node === undefined || node.status === 'left' || node.status === 'up') return true;
  return now - (node.statusSince ?? 0) >= options.rescheduleGraceMs;
}

/** The backoff before attempt `attempt + 1`, ms. */
export function backoffMs(attempt: number, options: HealingOptions): number {
  return Math.min(options.backoffMaxMs, options.backoffBaseMs * 2 ** Math.min(attempt, 30));
}

/**
 * The `instance.reschedule` for instances that failed on an up node, except
 * those `skip` says a rollout handles; undefined when there are none. With
 * `reasons` (the cluster applies state version 4), each update carries the
 * executor's message as the failure's cause (`failureCause`).
 */
export function planFailedReschedules(
  instances: readonly Instance[],
  { nodes, now, options, skip, max, reasons }: { nodes: ReadonlyMap<string, NodeRecord>; now: number; options: HealingOptions; skip: (instance: Instance) => boolean; max: number; reasons: boolean },
): Extract<Command, { type: 'instance.reschedule' }> | undefined {
  const updates: { id: string; notBefore: number; avoidNode?: string; reason?: string }[] = [];
  for (const instance of instances) {
    if (updates.length >= max) break;
    if (instance.desired !== 'running' || instance.status.state !== 'failed' || instance.node === undefined) continue;
    if (nodes.get(instance.node)?.status !== 'up' || skip(instance)) continue;
    const reason = reasons ? failureCause(instance.status.message) : undefined;
    updates.push({ id: instance.id, notBefore: now + backoffMs(instance.attempt ?? 0, options), avoidNode: instance.node, ...(reason === undefined ? {} : { reason }) });
  }
  return updates.length > 0 ? { type: 'instance.reschedule', updates } : undefined;
}

/**
 * A failure's cause as an instance record keeps it: the executor's message,
 * its first line with control characters made spaces, cut to
 * FAILURE_MESSAGE_CHARS_MAX characters (`…` at the end when cut);
 * undefined for no message or an empty one.
 */
export function failureCause(message: string | undefined): string | undefined {
  if (message === undefined) return undefined;
  // eslint-disable-next-line no-control-regex
  const line = (message.split('\n', 1)[0] ?? '').replace(/[\u0000-\u001f\u007f]/g, ' ').trim();
  if (line === '') return undefined;
  if (line.length <= FAILURE_MESSAGE_CHARS_MAX) return line;
  // Never cut a surrogate pair in two: the state refuses a lone surrogate.
  let end = FAILURE_MESSAGE_CHARS_MAX - 1;
  const unit = line.charCodeAt(end - 1);
  if (unit >= 0xd800 && unit <= 0xdbff) end--;
  return `${line.slice(0, end)}…`;
}

/** The `instance.remove` for retired records that can go; undefined when none. */
export function planRetiredRemovals(
  instances: readonly Instance[],
  { nodes, now, options, max }: { nodes: ReadonlyMap<string, NodeRecord>; now: number; options: HealingOptions; max: number },
): Extract<Command, { type: 'instance.remove' }> | undefined {
  const ids: string[] = [];
  for (const instance of instances) {
    if (ids.length >= max) break;
    if (instance.desired !== 'stopped') continue;
    const node = instance.node === undefined ? undefined : nodes.get(instance.node);
    const gone =
      node === undefined ||
      node.status !== 'up' ||
      terminalStates.has(instance.status.state) ||
      now - (instance.retiredAt ?? 0) >= options.retiredTimeoutMs;
    if (gone) ids.push(instance.id);
  }
  return ids.length > 0 ? { type: 'instance.remove', ids } : undefined;
}
