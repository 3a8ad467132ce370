/**
 * One job that runs now and again: every `intervalMs`, and sooner when
 * poked. Its steps never overlap: the next is timed from the end of the one
 * before, and a poke during a step runs one more step right after it. The
 * clock is injected (`Clock`), so a test drives the real loop on virtual time.
 *
 * A step that throws or rejects is reported to `onError` and the loop goes
 * on: a loop keeps a node's background duties, and one failed attempt must
 * not end them.
 *
 * A loop with `quiet` slows down while nothing happens, so an idle node
 * wakes less: a step that returns `false` found nothing to do; after
 * `quiet.afterSteps` of them in a row the loop waits `quiet.intervalMs`
 * between steps, until a step returns anything else or a poke comes (then
 * `intervalMs` again). Steps that return nothing never count as quiet.
 */
import { assert } from '../../consensus/core/assert.js';
import type { Clock } from './clock.js';

/** How a `PeriodicLoop` runs. */
export interface PeriodicLoopOptions {
  /** For error reports. */
  name: string;
  /** From the end of one step to the start of the next, ms; at least 1. */
  intervalMs: number;
  /** One step; may be async (the next waits for it to settle). `false`: it found nothing to do (see `quiet`). */
  step: () => void | boolean | Promise<void | boolean>;
  /** While quiet (see the file comment): the interval, ms (at least `intervalMs`), and after how many quiet steps in a row (at least 1). */
  quiet?: { intervalMs: number; afterSteps: number };
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
  /** Quiet steps in a row since the last busy one or poke. */
  #quietSteps = 0;

  constructor(options: PeriodicLoopOptions) {
    assert(Number.isFinite(options.intervalMs) && options.intervalMs >= 1, `loop ${options.name}: intervalMs must be at least 1, got ${options.intervalMs}`);
    const quiet = options.quiet;
    if (quiet !== undefined) {
      assert(Number.isFinite(quiet.intervalMs) && quiet.intervalMs >= options.intervalMs, `loop ${options.name}: quiet.intervalMs must be at least intervalMs (${options.intervalMs}), got ${quiet.intervalMs}`);
      assert(Number.isInteger(quiet.afterSteps) && quiet.afterSteps >= 1, `loop ${options.name}: quiet.afterSteps must be a whole number of at least 1, got ${quiet.afterSteps}`);
    }
    this.#options = options;
  }

  /** Whether the loop runs at its quiet interval now. */
  get quiet(): boolean {
    return this.#options.quiet !== undefined && this.#quietSteps >= this.#options.quiet.afterSteps;
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
    this.#quietSteps = 0;
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
    let outcome: void | boolean = undefined;
    try {
      outcome = await this.#options.step();
    } catch (error) {
      this.#options.onError(error);
    } finally {
      this.#running = false;
    }
    if (this.#stopped) return;
    // A poke during the step reset the count; it counts from the next step.
    const quiet = this.#options.quiet;
    if (outcome === false && !this.#again && quiet !== undefined) this.#quietSteps = Math.min(this.#quietSteps + 1, quiet.afterSteps);
    else this.#quietSteps = 0;
    this.#arm(this.#again ? 0 : this.quiet ? this.#options.quiet!.intervalMs : this.#options.intervalMs);
  }
}
