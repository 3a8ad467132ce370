/**
 * Time as the driver sees it: timers, injected so that the same `RaftNode`
 * runs on the wall clock in production (`systemTimers`) and on virtual time
 * in the simulator (`consensus/sim/virtual-clock.ts`). The driver never
 * reads the clock itself; every delay it needs goes through these.
 */

/** A scheduled callback. `cancel` is idempotent and safe after the callback ran. */
export interface TimerHandle {
  cancel(): void;
}

/** The timers the driver uses. Callbacks run one at a time, never inside the call that scheduled them. */
export interface Timers {
  /** Runs `callback` once, `delayMs` from now. Keeps the process alive until it fires or is cancelled. */
  setTimeout(callback: () => void, delayMs: number): TimerHandle;
  /** Runs `callback` every `intervalMs` until cancelled. Does not by itself keep the process alive. */
  setInterval(callback: () => void, intervalMs: number): TimerHandle;
  /**
   * Runs `callback` after the current turn: after every callback already due
   * now (I/O completions included), so that work arriving together is handled together.
   */
  setImmediate(callback: () => void): void;
  /**
   * Optional: a monotonic time in milliseconds (any origin). The driver uses
   * it only to bound how long one turn of its loop works before it lets
   * timers and I/O in; without it, it bounds the entries applied per turn.
   */
  nowMs?(): number;
}

/** Node's own timers, on the wall clock. */
export const systemTimers: Timers = {
  setTimeout(callback, delayMs) {
    const timer = setTimeout(callback, delayMs);
    return { cancel: () => clearTimeout(timer) };
  },
  setInterval(callback, intervalMs) {
    const timer = setInterval(callback, intervalMs);
    timer.unref();
    return { cancel: () => clearInterval(timer) };
  },
  setImmediate(callback) {
    setImmediate(callback);
  },
  nowMs() {
    return performance.now();
  },
};
