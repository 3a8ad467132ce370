/**
 * A small seeded pseudo-random generator (xoshiro128**, seeded through
 * splitmix32), so that one seed gives one schedule of faults and one mix of
 * client operations. Not for cryptography. Pure: no clock, no Math.random.
 */
import { assert } from '../consensus/core/assert.js';

/** A deterministic stream of numbers from one seed. */
export class SeededRandom {
  private readonly state: Uint32Array;

  /** `seed`: any safe integer; equal seeds give equal streams. */
  constructor(seed: number) {
    assert(Number.isSafeInteger(seed), `seed must be a safe integer, got ${seed}`);
    let mix = (seed ^ Math.floor(seed / 0x1_0000_0000)) >>> 0;
    this.state = new Uint32Array(4);
    for (let word = 0; word < 4; word++) {
      mix = (mix + 0x9e3779b9) >>> 0;
      let z = mix;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      this.state[word] = (z ^ (z >>> 16)) >>> 0;
    }
    if (this.state.every((word) => word === 0)) this.state[0] = 1;
  }

  /** The next 32 random bits, as an unsigned integer. */
  nextUint32(): number {
    const s = this.state;
    const result = Math.imul(rotateLeft(Math.imul(s[1]!, 5) >>> 0, 7), 9) >>> 0;
    const t = (s[1]! << 9) >>> 0;
    s[2]! ^= s[0]!;
    s[3]! ^= s[1]!;
    s[1]! ^= s[2]!;
    s[0]! ^= s[3]!;
    s[2]! ^= t;
    s[3] = rotateLeft(s[3]!, 11);
    return result;
  }

  /** A number in [0, 1). */
  next(): number {
    return this.nextUint32() / 0x1_0000_0000;
  }

  /** A whole number in [min, max], both included. */
  integer(min: number, max: number): number {
    assert(Number.isSafeInteger(min) && Number.isSafeInteger(max) && min <= max, `bad integer range [${min}, ${max}]`);
    return min + Math.floor(this.next() * (max - min + 1));
  }

  /** One element of a non-empty list. */
  pick<T>(items: readonly T[]): T {
    assert(items.length > 0, 'cannot pick from an empty list');
    return items[this.integer(0, items.length - 1)]!;
  }

  /** A shuffled copy (Fisher-Yates). */
  shuffle<T>(items: readonly T[]): T[] {
    const copy = [...items];
    for (let position = copy.length - 1; position > 0; position--) {
      const other = this.integer(0, position);
      [copy[position], copy[other]] = [copy[other]!, copy[position]!];
    }
    return copy;
  }

  /** A new generator whose stream depends on this one's seed and `label`, not on how much of this one was used. */
  static derive(seed: number, label: string): SeededRandom {
    let hash = 0x811c9dc5;
    for (const character of `${seed}/${label}`) hash = Math.imul(hash ^ character.charCodeAt(0), 0x01000193) >>> 0;
    return new SeededRandom(hash);
  }
}

function rotateLeft(value: number, bits: number): number {
  return ((value << bits) | (value >>> (32 - bits))) >>> 0;
}
