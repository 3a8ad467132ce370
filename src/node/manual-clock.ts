/**
 * Virtual time for tests and simulators: a `Clock` whose time moves only
 * when `advance` says so, running the timers that fall due in time order.
 * Between timers it lets pending promise callbacks and I/O callbacks run, so
 * an async step started by one timer settles before the next one fires.
 */
import { assert } from '../../consensus/core/assert.js';
import type { Clock } from './clock.js';

interface Timer {
  at: number;
  /** Creation order: timers due at the same time run in the order they were set. */
  order: number;
  callback: () => void;
}

/** See the file comment. */
export class ManualClock implements Clock {
  #now: number;
  #order = 0;
  readonly #timers = new Set<Timer>();

  /** Starts at `startMs` (default 0). */
  constructor(startMs = 0) {
    this.#now = startMs;
  }

  now(): number {
    return this.#now;
  }

  /** The same virtual time as `now`: it never goes back. */
  monotonicMs(): number {
    return this.#now;
  }

  /** Timers set and not yet run or cancelled. */
  get pendingTimers(): number {
    return this.#timers.size;
  }

  setTimer(delayMs: number, callback: () => void): () => void {
    assert(Number.isFinite(delayMs) && delayMs >= 0, `setTimer: delayMs must be a finite number at least 0, got ${delayMs}`);
    const timer: Timer = { at: this.#now + delayMs, order: this.#order++, callback };
    this.#timers.add(timer);
    return () => void this.#timers.delete(timer);
  }

  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => this.setTimer(ms, resolve));
  }

  /** Moves time forward by `ms`, running every timer due on the way (those they set too), in time order. */
  async advance(ms: number): Promise<void> {
    assert(Number.isFinite(ms) && ms >= 0, `advance: ms must be a finite number at least 0, got ${ms}`);
    const target = this.#now + ms;
    for (;;) {
      await settle();
      const next = this.#earliest();
      if (next === undefined || next.at > target) break;
      this.#timers.delete(next);
      this.#now = next.at;
      next.callback();
    }
    this.#now = target;
    await settle();
  }

  #earliest(): Timer | undefined {
    let earliest: Timer | undefined;
    for (const timer of this.#timers) {
      if (earliest === undefined || timer.at < earliest.at || (timer.at === earliest.at && timer.order < earliest.order)) earliest = timer;
    }
    return earliest;
  }
}

/** Lets queued promise callbacks (and I/O callbacks already due) run. */
function settle(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
