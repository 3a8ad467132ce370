/**
 * The simulated container runtime of one machine: workloads that start after
 * a seeded delay, then run, turn healthy after a seeded delay (when their app
 * has a healthcheck), and may exit, fail their healthcheck or be OOM-killed,
 * all on the simulator's virtual time and from its seed. It stands where
 * containerd stands under the executor; a machine crash takes every workload
 * with it (a new life starts with an empty runtime).
 *
 * Behaviour by the app's labels: `sim.fail: "true"` makes a version that
 * never works (it exits with code 1 soon after starting, or never passes its
 * healthcheck when it has one). Faults the world injects: `kill` (exit 137),
 * `oomKill`, and `sicken` (the healthcheck fails for a while).
 */
import type { SeededRandom } from '../../consensus/core/random.js';
import type { AppSpec } from '../state/types.js';

/** How a workload ended. */
export interface SimExit {
  id: string;
  version: number;
  exitCode: number;
  oomKilled: boolean;
  /** Monotonic ms. */
  atMs: number;
}

/** One workload as the runtime holds it. */
export interface SimWorkload {
  readonly id: string;
  readonly version: number;
  state: 'starting' | 'running' | 'exited';
  /** When it began to run (monotonic ms); undefined while starting. */
  runningSinceMs?: number;
  /** Its healthcheck passes from this time on (monotonic ms), unless it is sick or broken. */
  healthyFromMs: number;
  /** Its healthcheck fails until this time (monotonic ms). */
  sickUntilMs: number;
  /** A version that never works (`sim.fail`). */
  readonly broken: boolean;
}

/** What the runtime needs from the world. */
export interface SimRuntimeOptions {
  random: SeededRandom;
  /** Monotonic ms of the virtual clock. */
  nowMs(): number;
  /** Runs `action` `delayMs` from now, unless this machine's life ended meanwhile. */
  schedule(delayMs: number, action: () => void): void;
  /** Chance that a workload started now is OOM-killed during its run (0 once the world healed: OOM kills are a fault). */
  oomChance(): number;
}

/** Starts take 20 to 300 ms; a stop takes 5 to 100 ms. */
const START_MS_MIN = 20;
const START_MS_SPREAD = 280;
const STOP_MS_MIN = 5;
const STOP_MS_SPREAD = 95;
/** A workload's healthcheck passes 50 to 1550 ms after it runs. */
const HEALTHY_AFTER_MS_MIN = 50;
const HEALTHY_AFTER_MS_SPREAD = 1500;

/**
 * The longest a working workload takes from its start to pass its
 * healthcheck (ms): a healthcheck whose start period is shorter may count a
 * healthy start as a failure, as a real one too short for its app would.
 */
export const HEALTHY_AFTER_START_MS_MAX = START_MS_MIN + START_MS_SPREAD + HEALTHY_AFTER_MS_MIN + HEALTHY_AFTER_MS_SPREAD;

/** See the file comment. */
export class SimRuntime {
  readonly #workloads = new Map<string, SimWorkload>();
  readonly #exitListeners = new Set<(exit: SimExit) => void>();

  constructor(private readonly options: SimRuntimeOptions) {}

  /** Hears every exit (crash, OOM, kill, or a stop the executor asked for). */
  onExit(listener: (exit: SimExit) => void): () => void {
    this.#exitListeners.add(listener);
    return () => this.#exitListeners.delete(listener);
  }

  workload(id: string): Readonly<SimWorkload> | undefined {
    return this.#workloads.get(id);
  }

  /** Every workload held, exited ones included, by id. */
  list(): readonly Readonly<SimWorkload>[] {
    return [...this.#workloads.values()].sort((left, right) => (left.id < right.id ? -1 : left.id > right.id ? 1 : 0));
  }

  /** Starts `id` at `version`; resolves once it runs (or exited already). One workload per id: remove the old one first. */
  start(id: string, version: number, spec: AppSpec): Promise<void> {
    const { random } = this.options;
    const broken = spec.labels['sim.fail'] === 'true';
    const startMs = START_MS_MIN + random.below(START_MS_SPREAD);
    const workload: SimWorkload = {
      id,
      version,
      state: 'starting',
      healthyFromMs: this.options.nowMs() + startMs + HEALTHY_AFTER_MS_MIN + random.below(HEALTHY_AFTER_MS_SPREAD),
      sickUntilMs: 0,
      broken,
    };
    this.#workloads.set(id, workload);
    const oomAfterMs = random.chance(this.options.oomChance()) ? 500 + random.below(5000) : undefined;
    const brokenExitAfterMs = broken && spec.healthcheck === undefined ? 100 + random.below(900) : undefined;
    return new Promise((resolve) => {
      this.options.schedule(startMs, () => {
        if (this.#workloads.get(id) !== workload || workload.state !== 'starting') return resolve();
        workload.state = 'running';
        workload.runningSinceMs = this.options.nowMs();
        if (brokenExitAfterMs !== undefined) this.options.schedule(brokenExitAfterMs, () => this.#end(workload, 1, false));
        if (oomAfterMs !== undefined) this.options.schedule(oomAfterMs, () => this.#end(workload, 137, true));
        resolve();
      });
    });
  }

  /** Stops `id` (SIGTERM, then it exits with 0 after a short while); resolves once it exited. */
  stop(id: string): Promise<void> {
    const workload = this.#workloads.get(id);
    if (workload === undefined || workload.state === 'exited') return Promise.resolve();
    return new Promise((resolve) => {
      this.options.schedule(STOP_MS_MIN + this.options.random.below(STOP_MS_SPREAD), () => {
        this.#end(workload, 0, false);
        resolve();
      });
    });
  }

  /** Forgets an exited workload. */
  remove(id: string): void {
    const workload = this.#workloads.get(id);
    if (workload !== undefined && workload.state === 'exited') this.#workloads.delete(id);
  }

  /** Whether `id`'s healthcheck passes now. */
  probe(id: string): boolean {
    const workload = this.#workloads.get(id);
    if (workload === undefined || workload.state !== 'running' || workload.broken) return false;
    const nowMs = this.options.nowMs();
    return nowMs >= workload.healthyFromMs && nowMs >= workload.sickUntilMs;
  }

  /** Fault: `id` dies at once (exit 137, or an OOM kill). */
  kill(id: string, oomKilled: boolean): boolean {
    const workload = this.#workloads.get(id);
    if (workload === undefined || workload.state === 'exited') return false;
    this.#end(workload, 137, oomKilled);
    return true;
  }

  /** Fault: `id`'s healthcheck fails for `forMs`. */
  sicken(id: string, forMs: number): boolean {
    const workload = this.#workloads.get(id);
    if (workload === undefined || workload.state !== 'running') return false;
    workload.sickUntilMs = this.options.nowMs() + forMs;
    return true;
  }

  #end(workload: SimWorkload, exitCode: number, oomKilled: boolean): void {
    if (this.#workloads.get(workload.id) !== workload || workload.state === 'exited') return;
    workload.state = 'exited';
    const exit: SimExit = { id: workload.id, version: workload.version, exitCode, oomKilled, atMs: this.options.nowMs() };
    for (const listener of this.#exitListeners) listener(exit);
  }
}
