/**
 * One job that runs now and again: every `intervalMs`, and sooner when
 * poked. Its steps never overlap: the next is timed from the end of the one
 * before, and a poke during a step runs one more step right after it. The
 * clock is injected (`Clock`), so a test drives the real loop on virtual time.
 *
 * A step that throws or rejects is reported to `onError` and the loop goes
 * on: a loop keeps a node's background duties, and one failed attempt must
 * not end them.
 */
import { assert } from '../../consensus/core/assert.js';
import type { Clock } from './clock.js';

/** How a `PeriodicLoop` runs. */
export interface PeriodicLoopOptions {
  /** For error reports. */
  name: string;
  /** From the end of one step to the start of the next, ms; at least 1. */
  intervalMs: number;
  /** One step; may be async (the next waits for it to settle). */
  step: () => void | Promise<void>;
  clock: Clock;
  /** Hears a step's error; must not throw. */
  onError: (error: unknown) => void;
}

/** See the file comment. Not started until `start()`; `stop()` is final. */
export class PeriodicLoop {
  readonly #options: PeriodicLoopOptions;
  #cancelTimer: (() => void) | undefined;
  #running = false;
  /** A poke arrived during a step: run again as soon as it ends. */
  #again = false;
  #started = false;
  #stopped = false;

  constructor(options: PeriodicLoopOptions) {
    assert(Number.isFinite(options.intervalMs) && options.intervalMs >= 1, `loop ${options.name}: intervalMs must be at least 1, got ${options.intervalMs}`);
    this.#options = options;
  }

  /** Whether a step is running now. */
  get running(): boolean {
    return this.#running;
  }

  /** Runs the first step on a later turn (not synchronously), then every interval. Idempotent. */
  start(): void {
    if (this.#started || this.#stopped) return;
    this.#started = true;
    this.#arm(0);
  }

  /** Runs a step soon: on a later turn, or right after the one running now. Ignored before start and after stop. */
  poke(): void {
    if (!this.#started || this.#stopped) return;
    if (this.#running) {
      this.#again = true;
      return;
    }
    this.#arm(0);
  }

  /** No step starts after this; one running now finishes on its own. Idempotent. */
  stop(): void {
    this.#stopped = true;
    this.#cancelTimer?.();
    this.#cancelTimer = undefined;
  }

  #arm(delayMs: number): void {
    this.#cancelTimer?.();
    this.#cancelTimer = this.#options.clock.setTimer(delayMs, () => {
      this.#cancelTimer = undefined;
      void this.#run();
    });
  }

  async #run(): Promise<void> {
    if (this.#stopped) return;
    assert(!this.#running, `loop ${this.#options.name}: a step started while one runs`);
    this.#running = true;
    this.#again = false;
    try {
      await this.#options.step();
    } catch (error) {
      this.#options.onError(error);
    } finally {
      this.#running = false;
    }
    if (this.#stopped) return;
    this.#arm(this.#again ? 0 : this.#options.intervalMs);
  }
}
