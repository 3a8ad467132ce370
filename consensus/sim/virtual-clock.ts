/**
 * Virtual time for the simulator: one queue of timed events, and `Timers`
 * on it for each node. Nothing waits on the wall clock; the world pops the
 * next event and sets the time to it.
 */
import type { TimerHandle, Timers } from '../timers.js';
import { EventQueue } from './event-queue.js';

/**
 * Resolves once every promise continuation the last event set off has run,
 * as Node runs them all before its next callback: the microtask queue is
 * drained whole before the next tick queue entry runs, so a tick queued from
 * a microtask fires only once the queue is empty. (A setImmediate would do
 * the same at the cost of a turn of the event loop per event, five times slower.)
 */
export function settle(): Promise<void> {
  return new Promise((resolve) => queueMicrotask(() => process.nextTick(resolve)));
}

/** A clock that moves only when the world runs its next event. */
export class VirtualClock {
  private readonly queue = new EventQueue<() => void>();
  private time = 0;

  /** The virtual time, in milliseconds since the run began. */
  get nowMs(): number {
    return this.time;
  }

  /** Events waiting. */
  get size(): number {
    return this.queue.size;
  }

  /** Runs `action` `delayMs` from now (0: after everything already due now). */
  schedule(delayMs: number, action: () => void): void {
    this.queue.push(this.time + delayMs, action);
  }

  /** Time of the next event; undefined when none is left. */
  nextTimeMs(): number | undefined {
    return this.queue.peekTime();
  }

  /** Moves the clock to the next event and runs it; false when none is left. */
  runNext(): boolean {
    const event = this.queue.pop();
    if (event === undefined) return false;
    this.time = event.time;
    event.value();
    return true;
  }

  /**
   * Timers on this clock for one life of one node: once `alive()` is false
   * (the node crashed), none of them fires again, as a process's timers die with it.
   */
  timers(alive: () => boolean): Timers {
    return {
      setTimeout: (callback, delayMs) => this.timer(callback, delayMs, false, alive),
      setInterval: (callback, intervalMs) => this.timer(callback, intervalMs, true, alive),
      setImmediate: (callback) => this.schedule(0, () => {
        if (alive()) callback();
      }),
      nowMs: () => this.time,
    };
  }

  private timer(callback: () => void, delayMs: number, repeat: boolean, alive: () => boolean): TimerHandle {
    let cancelled = false;
    const fire = (): void => {
      if (cancelled || !alive()) return;
      if (repeat) this.schedule(delayMs, fire);
      callback();
    };
    this.schedule(delayMs, fire);
    return { cancel: () => (cancelled = true) };
  }
}
