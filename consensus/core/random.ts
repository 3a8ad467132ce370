import type { Random } from './types.js';

/**
 * A small, fast, seeded generator (SplitMix32 mixing over a 32-bit state).
 * The same seed gives the same sequence on every platform, which is what the
 * simulator and the election timeouts need; it is not for cryptography.
 */
export class SeededRandom implements Random {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  /** The next 32-bit unsigned value. */
  next(): number {
    this.state = (this.state + 0x9e3779b9) >>> 0;
    let z = this.state;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  }

  below(n: number): number {
    if (n <= 1) return 0;
    return this.next() % n;
  }

  /** A float in [0, 1). */
  fraction(): number {
    return this.next() / 4294967296;
  }

  /** True with probability `p`. */
  chance(p: number): boolean {
    return this.fraction() < p;
  }

  /** A generator whose sequence depends on this one's, for a sub-component. */
  fork(): SeededRandom {
    return new SeededRandom(this.next());
  }
}
