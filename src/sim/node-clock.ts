/**
 * One node life's `Clock` on the simulator's virtual time: the same clock
 * the agent's loops, scheduler and proposer take in production
 * (`SYSTEM_CLOCK`), so the real code runs on it. Timers of a dead life never
 * fire (a process's timers die with it). The wall clock (`now`) can jump
 * forward by the world's clock-jump fault; the monotonic one cannot.
 */
import type { VirtualClock } from '../../consensus/sim/virtual-clock.js';
import { assert } from '../../consensus/core/assert.js';
import type { Clock } from '../node/clock.js';

/** The wall-clock time at the start of every run, ms since the epoch (2026-01-01). */
export const SIM_EPOCH_MS = 1_767_225_600_000;

/** See the file comment. */
export class NodeClock implements Clock {
  /** How far this machine's wall clock runs ahead of true time, ms (clock jumps; never negative). */
  #aheadMs = 0;

  /** `aheadMs`: how far this machine's wall clock already ran ahead (its earlier lives' jumps). */
  constructor(
    private readonly virtual: VirtualClock,
    private readonly alive: () => boolean,
    aheadMs = 0,
  ) {
    this.#aheadMs = aheadMs;
  }

  now(): number {
    return SIM_EPOCH_MS + this.virtual.nowMs + this.#aheadMs;
  }

  monotonicMs(): number {
    return this.virtual.nowMs;
  }

  /** Moves this machine's wall clock forward by `ms` (an NTP step, a VM resumed). `now()` never goes back. */
  jump(ms: number): void {
    assert(Number.isFinite(ms) && ms >= 0, `NodeClock.jump: ms must be at least 0, got ${ms}`);
    this.#aheadMs += ms;
  }

  get aheadMs(): number {
    return this.#aheadMs;
  }

  setTimer(delayMs: number, callback: () => void): () => void {
    assert(Number.isFinite(delayMs) && delayMs >= 0, `NodeClock.setTimer: delayMs must be a finite number at least 0, got ${delayMs}`);
    let cancelled = false;
    // 0 runs on a later event, never synchronously (the Clock contract).
    this.virtual.schedule(Math.ceil(delayMs), () => {
      if (!cancelled && this.alive()) callback();
    });
    return () => {
      cancelled = true;
    };
  }

  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => this.setTimer(ms, resolve));
  }
}
