/**
 * The reconcile diff: from what should run on this node and what does, the
 * actions that converge them. Pure and synchronous; time comes in as `nowMs`.
 *
 * The contract: this node runs exactly the instances placed on it with
 * desired `running`, each at its version. Anything else it runs is stopped:
 * an instance gone, moved to another node, desired `stopped`, or at another
 * version (replaced: stopped, removed, then started at the new version).
 *
 * Holds. After an exit, the executor decides with the restart policy and
 * records a hold for that instance and version: restart at `untilMs`, or
 * (no `untilMs`) stay exited / failed until the instance changes. A hold for
 * another version than the wanted one is stale and ignored.
 *
 * A workload being started or stopped (`busy`) gets no new action until the
 * operation ends. One whose last stop or removal failed gets none before
 * its retry time (`retryAt`, from `nextFailure`): a runtime that keeps
 * refusing is asked again at a falling rate, not on every pass.
 */

/** An instance this node should run. */
export interface WantedInstance {
  id: string;
  version: number;
}

/** A workload as the executor sees it. */
export interface ActualWorkload {
  id: string;
  version: number;
  state: 'running' | 'exited';
  /** A start, stop or removal is under way. */
  busy: boolean;
}

export interface Hold {
  version: number;
  /** Restart at this time; absent: stay as is. */
  untilMs?: number;
}

export type ReconcileAction =
  | { type: 'start'; id: string; version: number }
  /** Stop a running workload. `reason` says why, for the log. */
  | { type: 'stop'; id: string; reason: 'not-wanted' | 'replaced' }
  /** Remove an exited workload the runtime still lists. */
  | { type: 'remove'; id: string; reason: 'not-wanted' | 'replaced' | 'restart' };

export interface ReconcileInput {
  wanted: readonly WantedInstance[];
  actual: readonly ActualWorkload[];
  holds: ReadonlyMap<string, Hold>;
  /** Instances whose last operation failed: no action before this time (ms). */
  retryAt?: ReadonlyMap<string, number>;
  nowMs: number;
}

/** The failures in a row of one instance's stops and removals. */
export interface OperationFailure {
  count: number;
  /** No new operation before this (ms). */
  retryAtMs: number;
  message: string;
  /** When the failure was last logged (ms). */
  loggedAtMs: number;
}

/** The first retry's delay after a failed stop or removal; it doubles with each failure in a row, up to the maximum. */
export const OPERATION_RETRY_MS_FIRST = 500;
export const OPERATION_RETRY_MS_MAX = 30_000;
/** A failure repeating the last one's message is logged at most this often. */
export const OPERATION_FAILURE_LOG_MS = 60_000;

/**
 * The record after one more failure (`message`) at `nowMs`, and whether to
 * log it: the first, one with a new message, or a repeat once a minute.
 */
export function nextFailure(previous: OperationFailure | undefined, message: string, nowMs: number): { failure: OperationFailure; log: boolean } {
  const count = (previous?.count ?? 0) + 1;
  const delayMs = Math.min(OPERATION_RETRY_MS_MAX, OPERATION_RETRY_MS_FIRST * 2 ** Math.min(count - 1, 20));
  const log = previous === undefined || previous.message !== message || nowMs - previous.loggedAtMs >= OPERATION_FAILURE_LOG_MS;
  return { failure: { count, retryAtMs: nowMs + delayMs, message, loggedAtMs: log ? nowMs : previous.loggedAtMs }, log };
}

/** The actions, in a stable order (by instance id; stops and removals before starts). */
export function reconcile(input: ReconcileInput): ReconcileAction[] {
  const wanted = new Map(input.wanted.map((instance) => [instance.id, instance]));
  const actual = new Map(input.actual.map((workload) => [workload.id, workload]));
  const actions: ReconcileAction[] = [];
  const starts: ReconcileAction[] = [];
  const ids = [...new Set([...wanted.keys(), ...actual.keys()])].sort();
  for (const id of ids) {
    const want = wanted.get(id);
    const have = actual.get(id);
    if (have?.busy) continue;
    if ((input.retryAt?.get(id) ?? Number.NEGATIVE_INFINITY) > input.nowMs) continue;
    if (want === undefined) {
      if (have !== undefined) actions.push(have.state === 'running' ? { type: 'stop', id, reason: 'not-wanted' } : { type: 'remove', id, reason: 'not-wanted' });
      continue;
    }
    if (have !== undefined && have.version !== want.version) {
      actions.push(have.state === 'running' ? { type: 'stop', id, reason: 'replaced' } : { type: 'remove', id, reason: 'replaced' });
      continue;
    }
    if (have?.state === 'running') continue;
    const hold = input.holds.get(id);
    const held = hold !== undefined && hold.version === want.version && (hold.untilMs === undefined || hold.untilMs > input.nowMs);
    if (held) continue;
    if (have !== undefined) actions.push({ type: 'remove', id, reason: 'restart' });
    else starts.push({ type: 'start', id, version: want.version });
  }
  return [...actions, ...starts];
}

/** The soonest time a hold or a retry wait ends after `nowMs` (when the next pass should run), if any. */
export function nextHoldEndMs(holds: ReadonlyMap<string, Hold>, nowMs: number, retryAt: ReadonlyMap<string, number> = new Map()): number | undefined {
  let soonest: number | undefined;
  const ends = [...[...holds.values()].map((hold) => hold.untilMs), ...retryAt.values()];
  for (const endMs of ends) {
    if (endMs !== undefined && endMs > nowMs && (soonest === undefined || endMs < soonest)) soonest = endMs;
  }
  return soonest;
}
