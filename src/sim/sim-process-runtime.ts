/**
 * The simulated runtime (`sim-runtime.ts`) behind the executor's `Runtime`
 * contract (`src/executor/runtime.ts`), so that the real `Executor` runs its
 * workloads: kind `process` (the simulator's apps name a command), every
 * start, stop, exit and OOM kill on the virtual clock, and exec health
 * checks answered by the workload's simulated health. A machine's crash
 * takes its workloads with it: a new life opens an empty runtime, and its
 * executor adopts nothing.
 */
import type { Clock } from '../node/clock.js';
import type { ExecResult, RunningWorkload, Runtime, WorkloadExit, WorkloadSpec } from '../executor/runtime.js';
import type { AppSpec } from '../state/types.js';
import type { SimRuntime, SimWorkload } from './sim-runtime.js';

/** What the adapter needs besides the simulated runtime. */
export interface SimProcessRuntimeOptions {
  runtime: SimRuntime;
  /** The node life's clock: `startedAt` and exits' `at` are its wall clock. */
  clock: Clock;
  /** The spec of an app's version from the local replica (the simulated runtime's behaviour follows its labels and healthcheck). */
  specOf(tenant: string, app: string, version: number): AppSpec | undefined;
}

/** See the file comment. */
export class SimProcessRuntime implements Runtime {
  readonly kind = 'process';
  /** When each workload started, on the wall clock, and its spec hash: what `list()` reports. */
  readonly #started = new Map<string, { startedAt: number; specHash: string }>();

  constructor(private readonly options: SimProcessRuntimeOptions) {}

  available(): Promise<boolean> {
    return Promise.resolve(true);
  }

  open(): Promise<void> {
    return Promise.resolve();
  }

  list(): Promise<RunningWorkload[]> {
    return Promise.resolve(this.options.runtime.list().map((workload) => this.#describe(workload)));
  }

  async start(spec: WorkloadSpec): Promise<RunningWorkload> {
    const appSpec = this.options.specOf(spec.tenant, spec.app, spec.version);
    if (appSpec === undefined) throw new Error(`instance ${spec.id}: cannot start: version ${spec.version} of app "${spec.app}" is not in this node's replica`);
    this.#started.set(spec.id, { startedAt: this.options.clock.now(), specHash: spec.specHash });
    await this.options.runtime.start(spec.id, spec.version, appSpec);
    const workload = this.options.runtime.workload(spec.id);
    if (workload === undefined) throw new Error(`instance ${spec.id}: cannot start: the simulated runtime lost it`);
    return this.#describe(workload);
  }

  stop(id: string): Promise<void> {
    return this.options.runtime.stop(id);
  }

  remove(id: string): Promise<void> {
    this.options.runtime.remove(id);
    if (this.options.runtime.workload(id) === undefined) this.#started.delete(id);
    return Promise.resolve();
  }

  onExit(listener: (exit: WorkloadExit) => void): () => void {
    return this.options.runtime.onExit((exit) => listener({ id: exit.id, version: exit.version, exitCode: exit.exitCode, oomKilled: exit.oomKilled, at: this.options.clock.now() }));
  }

  /** Health checks: passes (exit 0) while the simulated workload is healthy. */
  exec(id: string): Promise<ExecResult> {
    const passes = this.options.runtime.probe(id);
    return Promise.resolve({ exitCode: passes ? 0 : 1, output: passes ? '' : 'the simulated workload is not healthy', timedOut: false });
  }

  close(): Promise<void> {
    return Promise.resolve();
  }

  #describe(workload: Readonly<SimWorkload>): RunningWorkload {
    const started = this.#started.get(workload.id);
    return {
      id: workload.id,
      version: workload.version,
      specHash: started?.specHash ?? '',
      state: workload.state === 'exited' ? 'exited' : 'running',
      startedAt: started?.startedAt ?? this.options.clock.now(),
    };
  }
}
