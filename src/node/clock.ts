/**
 * The clock and timers a loop runs on, injected so that the same loop runs
 * on real time in the agent and on virtual time in a test or simulator
 * (STYLE.md: the shell's drivers get the core's treatment).
 */
import { performance } from 'node:perf_hooks';
import type { RetryClock } from './retry.js';

/** A clock with one-shot timers; a `RetryClock` too (`retryUntil` takes it). */
export interface Clock extends RetryClock {
  /** ms since the epoch (or any fixed origin that never goes back within one run). */
  now(): number;
  /** ms since an arbitrary origin; never goes back (for durations: the wall clock may be set back). */
  monotonicMs(): number;
  /**
   * Calls `callback` once, `delayMs` from now (0: on a later turn, never
   * synchronously); the returned function cancels it if it has not run. A
   * real timer never keeps the process alive on its own.
   */
  setTimer(delayMs: number, callback: () => void): () => void;
}

/** Real time: `Date.now()`, `performance.now()` and unref'd `setTimeout`. */
export const SYSTEM_CLOCK: Clock = {
  now: () => Date.now(),
  monotonicMs: () => performance.now(),
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms).unref()),
  setTimer: (delayMs, callback) => {
    const timer = setTimeout(callback, delayMs);
    timer.unref();
    return () => clearTimeout(timer);
  },
};
