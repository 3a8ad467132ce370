/**
 * The time a round plans with: never behind the times the state holds.
 *
 * Times in the state (a rollout's `startedAt`, an instance status's `since`,
 * a node's `lastSeenAt`) are stamped by the leader that proposed them, from
 * its wall clock. A leader whose clock ran ahead leaves them in the future
 * for the next leader; planning with a correct clock alone, the monitor
 * periods, batch delays and progress deadlines counted from them wait until
 * that clock catches up (the whole-cluster simulator's seed 2993: a rollout
 * stalled past the liveness bound).
 *
 * The rule: plan with the latest of the wall clock, the newest time in the
 * state, and the time last planned with carried forward at half the rate of
 * the monotonic clock. So:
 * - with a wall clock at or ahead of the state, as always, the wall clock;
 * - with the state ahead (an earlier leader's clock ran ahead by L), time
 *   starts at the state's newest time and moves on at half speed until the
 *   wall clock catches up, after 2L. It moves on: "the later of the clock
 *   and the newest time" alone stands still while this leader stamps its own,
 *   earlier times, and what was counted from the newest time would still
 *   wait out the whole skew. A period counted from a time the earlier leader
 *   stamped takes at most twice as long, however large the skew;
 * - at half speed rather than full, the lead over the wall clock wears off
 *   (as NTP slews a clock rather than stepping it): what this leader stamps
 *   itself (a status's `since`, a node's `statusSince`) is behind the time
 *   it plans with by that lead, so a monitor period or a reschedule grace
 *   counted from it ends early by at most the lead, for at most 2L, not for
 *   as long as this leader leads;
 * - planning time never goes back: a wall clock set back is carried over the
 *   same way, at half speed, until it passes the time already planned with.
 */
import type { App, Instance, NodeRecord } from '../state/types.js';
import type { Clock } from '../node/clock.js';

/** What `newestStateTime` reads: the round's input, in part. */
export interface StateTimes {
  nodes: readonly NodeRecord[];
  instances: readonly Instance[];
  apps: readonly App[];
}

/**
 * The newest time the leaders stamped into the state (ms since the epoch,
 * 0 when there is none): node heartbeats and status changes, instance
 * status changes, rollout and rebalance times. Times meant to lie ahead (a
 * batch's `nextBatchAt`, an instance's `notBefore`) and times a member
 * reports from its own clock (a status's `reportedAt`) are left out. Pure.
 */
export function newestStateTime(state: StateTimes): number {
  let newest = 0;
  for (const node of state.nodes) newest = Math.max(newest, node.lastSeenAt, node.statusSince ?? 0);
  for (const instance of state.instances) newest = Math.max(newest, instance.status.since ?? 0);
  for (const app of state.apps) {
    const rollout = app.rollout;
    if (rollout !== undefined) newest = Math.max(newest, rollout.startedAt, rollout.updatedAt, rollout.batchStartedAt ?? 0);
    if (app.rebalance !== undefined) newest = Math.max(newest, app.rebalance.requestedAt, app.rebalance.moveStartedAt ?? 0);
  }
  return newest;
}

/** How fast planning time moves while the wall clock is behind it, per monotonic millisecond (see the file comment). */
export const PLANNING_TIME_RATE_BEHIND = 0.5;

/** The scheduler's planning time over `clock` (see the file comment). One per scheduler; it keeps what it last planned with. */
export class PlanningClock {
  readonly #clock: Clock;
  /** The last planning time handed out, and the monotonic time then. */
  #last: { timeMs: number; monotonicMs: number } | undefined;

  constructor(clock: Clock) {
    this.#clock = clock;
  }

  /** The time to plan with, whole ms, given the newest time in the state (`newestStateTime`); never less than an earlier answer. */
  now(newestInStateMs: number): number {
    const monotonicMs = this.#clock.monotonicMs();
    const carried = this.#last === undefined ? 0 : this.#last.timeMs + (monotonicMs - this.#last.monotonicMs) * PLANNING_TIME_RATE_BEHIND;
    const timeMs = Math.max(this.#clock.now(), newestInStateMs, carried);
    this.#last = { timeMs, monotonicMs };
    // Whole milliseconds, as every time in a command (half speed and a monotonic clock give fractions); still never back.
    return Math.floor(timeMs);
  }
}
