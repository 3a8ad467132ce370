/**
 * The restart policy: whether and when an exited instance starts again.
 * Pure and synchronous; time comes in as `nowMs`.
 *
 * Compose's `restart_policy`: `condition` none (never), on-failure (exit
 * code not 0) or any (always); `maxAttempts` restarts at most within the
 * last `windowMs` (0: the whole life of the instance on this node); `delayMs`
 * before the first restart. Consecutive quick failures double the delay up
 * to RESTART_DELAY_MS_MAX; a run that lasted RESTART_RESET_AFTER_MS resets
 * the doubling.
 */

import type { RestartSpec } from '../state/types.js';

/** The longest wait between restarts, whatever the doubling reaches. */
export const RESTART_DELAY_MS_MAX = 60_000;
/** The shortest wait between restarts, so a `delay: 0` crash loop still yields. */
export const RESTART_DELAY_MS_MIN = 100;
/** A run at least this long counts as a success for the backoff. */
export const RESTART_RESET_AFTER_MS = 10_000;
/** Restart times remembered per instance (enough for any `maxAttempts` we accept in a window). */
export const RESTART_HISTORY_MAX = 1000;

/** What the executor remembers of an instance's restarts (per instance and version). */
export interface RestartHistory {
  /** When each restart was decided, oldest first (ms). */
  restartsAtMs: number[];
  /** Quick failures in a row (drives the doubling). */
  consecutive: number;
}

export function emptyHistory(): RestartHistory {
  return { restartsAtMs: [], consecutive: 0 };
}

export interface ExitFacts {
  exitCode: number;
  oomKilled: boolean;
  /** How long the run lasted (ms). */
  ranMs: number;
  /** The executor stopped it for failing its health check: a failure whatever the code. */
  unhealthy?: boolean;
}

export type RestartDecision =
  /** Start again at `atMs`. `history` is the new history to keep. */
  | { type: 'restart'; atMs: number; delayMs: number; history: RestartHistory }
  /** Leave it exited: the policy does not restart this exit. */
  | { type: 'stay-exited'; reason: string }
  /** The policy gave up: report `failed` with `message`. */
  | { type: 'give-up'; message: string };

/** Decides what follows an exit. */
export function decideRestart(policy: RestartSpec, exit: ExitFacts, history: RestartHistory, nowMs: number): RestartDecision {
  const failed = exit.exitCode !== 0 || exit.oomKilled || exit.unhealthy === true;
  if (policy.condition === 'none') return { type: 'stay-exited', reason: 'the restart policy is "none"' };
  if (policy.condition === 'on-failure' && !failed) return { type: 'stay-exited', reason: 'it exited with code 0 and the restart policy is "on-failure"' };
  const windowStartMs = policy.windowMs > 0 ? nowMs - policy.windowMs : Number.NEGATIVE_INFINITY;
  const recent = history.restartsAtMs.filter((atMs) => atMs > windowStartMs);
  if (policy.maxAttempts !== undefined && recent.length >= policy.maxAttempts) {
    const within = policy.windowMs > 0 ? ` within ${formatMs(policy.windowMs)}` : '';
    return {
      type: 'give-up',
      message: `gave up after ${recent.length} restart${recent.length === 1 ? '' : 's'}${within} (restart_policy.max_attempts ${policy.maxAttempts}); last exit code ${exit.exitCode}${exit.oomKilled ? ' (out of memory)' : ''}`,
    };
  }
  const consecutive = exit.ranMs >= RESTART_RESET_AFTER_MS ? 0 : history.consecutive + 1;
  const delayMs = restartDelayMs(policy.delayMs, consecutive);
  const restartsAtMs = [...recent, nowMs].slice(-RESTART_HISTORY_MAX);
  return { type: 'restart', atMs: nowMs + delayMs, delayMs, history: { restartsAtMs, consecutive } };
}

/** The wait before a restart after `consecutive` quick failures (0 or 1: the base delay). */
export function restartDelayMs(baseDelayMs: number, consecutive: number): number {
  const base = Math.max(RESTART_DELAY_MS_MIN, baseDelayMs);
  const doublings = Math.min(30, Math.max(0, consecutive - 1));
  return Math.min(RESTART_DELAY_MS_MAX, Math.max(base, base * 2 ** doublings));
}

function formatMs(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
}
