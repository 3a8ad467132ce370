/**
 * A circuit breaker for one backend. Pure: the caller passes the time.
 *
 *   closed --(failures in a row >= threshold)--> open
 *   open --(openMs elapsed, next allow())--> half-open: one probe at a time
 *   half-open --(probe succeeds)--> closed;  --(probe fails)--> open again
 *
 * A failure is the transport's (refused, reset, timed out), not a response:
 * a backend that answers 500 is alive; outlier ejection handles that.
 */
import { assert } from '../../consensus/core/assert.js';

export type BreakerState = 'closed' | 'open' | 'half-open';

export interface BreakerOptions {
  /** Consecutive failures that open the breaker. */
  readonly failuresMax: number;
  /** How long it stays open before a probe. */
  readonly openMs: number;
}

export class CircuitBreaker {
  private current: BreakerState = 'closed';
  private failuresInRow = 0;
  private openedAtMs = 0;
  /** In half-open: whether the one probe is out. */
  private probing = false;

  constructor(private options: BreakerOptions) {
    assert(options.failuresMax >= 1 && options.openMs > 0, 'CircuitBreaker: failuresMax >= 1 and openMs > 0');
  }

  /** The state as of `nowMs` (an open breaker whose time is up reads half-open). */
  state(nowMs: number): BreakerState {
    if (this.current === 'open' && nowMs - this.openedAtMs >= this.options.openMs) return 'half-open';
    return this.current;
  }

  /** New settings (the app's changed); the state is kept. */
  configure(options: BreakerOptions): void {
    this.options = options;
  }

  /**
   * Whether a request may go to the backend now. In half-open, true for one
   * probe until its outcome is recorded; the caller must then call
   * `recordSuccess` or `recordFailure` (or `recordAbandoned`).
   */
  allow(nowMs: number): boolean {
    const state = this.state(nowMs);
    if (state === 'closed') return true;
    if (state === 'open') return false;
    if (this.probing) return false;
    this.current = 'half-open';
    this.probing = true;
    return true;
  }

  recordSuccess(): void {
    this.failuresInRow = 0;
    this.probing = false;
    this.current = 'closed';
  }

  /** Returns true when this failure opened the breaker. */
  recordFailure(nowMs: number): boolean {
    this.failuresInRow++;
    if (this.current === 'half-open' || (this.current === 'closed' && this.failuresInRow >= this.options.failuresMax)) {
      this.current = 'open';
      this.openedAtMs = nowMs;
      this.probing = false;
      return true;
    }
    return false;
  }

  /** A request that ended with no verdict on the backend (the client went away): frees the probe. */
  recordAbandoned(): void {
    this.probing = false;
  }
}
