/**
 * The executor of one simulated node: the real executor's pure parts (the
 * reconcile diff, the restart policy, the health-state rules) driven by a
 * small loop over the simulated runtime, on the node's clock.
 *
 * This loop re-implements, in little, what `src/executor/executor.ts` does
 * around those parts (its passes, holds, health ticks and status reports):
 * the real component is bound to the host (data directory, cgroups, tenant
 * users, volumes, log files, DNS lookups) and cannot run in the simulator
 * yet. What it keeps of the real one: a pass after every apply and every
 * `PASS_INTERVAL_MS`; one operation per instance at a time (busy); exits go
 * through `decideRestart` (a hold), an unhealthy workload is stopped and its
 * exit counts as a failure; status goes to the leader through the node's
 * real `Proposer.submit` (the leader's real `SubmitService` takes it), sent
 * again when the replica disagrees for `RESEND_AFTER_MS`.
 */
import { PeriodicLoop } from '../node/periodic-loop.js';
import type { Clock } from '../node/clock.js';
import type { ClusterStateMachine } from '../state/machine.js';
import type { AppSpec, Command, CommandResult, Instance, InstanceState } from '../state/types.js';
import { initialHealth, probeDue, recordProbe, type Health } from '../executor/health-state.js';
import { reconcile, type ActualWorkload, type Hold } from '../executor/reconcile.js';
import { decideRestart, emptyHistory, type RestartHistory } from '../executor/restart.js';
import { specOfVersion } from '../scheduler/rollout.js';
import type { SimExit, SimRuntime } from './sim-runtime.js';

/** A pass at least this often, ms. */
const PASS_INTERVAL_MS = 500;
/** Health checks due are looked for this often, ms (the executor's HEALTH_TICK_MS). */
const HEALTH_TICK_MS = 200;
/** A status the replica disagrees with is sent again at most this often per instance, ms. */
const RESEND_AFTER_MS = 2000;
/** Status updates per `instance.status` command, at most. */
const STATUS_BATCH_MAX = 500;
/** States in which nothing runs. */
const TERMINAL_STATES: ReadonlySet<InstanceState> = new Set(['stopped', 'exited', 'failed', 'oom-killed']);
/** Time limit of a status report, ms. */
const REPORT_TIMEOUT_MS = 3000;

/** What the executor works with. */
export interface SimExecutorContext {
  nodeId: string;
  machine: ClusterStateMachine;
  clock: Clock;
  runtime: SimRuntime;
  /** `Proposer.submit`: as this node, through the leader. */
  submit(command: Command, timeoutMs: number): Promise<CommandResult>;
  /** Hears every apply of the local replica; returns the remover. */
  listen(listener: () => void): () => void;
  log(line: string): void;
}

/** Everything kept about one instance (the executor's `Supervision`, in little). */
interface Supervised {
  version: number;
  busy: boolean;
  /** Started here and not yet removed. */
  tracked: boolean;
  startedAtMs: number;
  health?: Health;
  stopRequested: boolean;
  unhealthyKill: boolean;
  hold?: Hold;
  history: { version: number; history: RestartHistory };
  /** What this node reports of it. */
  observed: { version: number; state: InstanceState; exitCode?: number; message?: string };
  lastSentAtMs: number;
  lastSentState?: InstanceState;
}

/** See the file comment. */
export class SimExecutor {
  readonly #supervised = new Map<string, Supervised>();
  readonly #pass: PeriodicLoop;
  readonly #health: PeriodicLoop;
  readonly #cleanups: (() => void)[] = [];
  #reporting = false;
  /** When `stopped` was last sent for a retired instance this life holds no record of, by id. */
  readonly #resentStopped = new Map<string, number>();

  constructor(private readonly context: SimExecutorContext) {
    const onError = (error: unknown): void => context.log(`executor: ${(error as Error).stack ?? String(error)}`);
    this.#pass = new PeriodicLoop({ name: 'executor', intervalMs: PASS_INTERVAL_MS, step: () => this.#runPass(), clock: context.clock, onError });
    this.#health = new PeriodicLoop({ name: 'health', intervalMs: HEALTH_TICK_MS, step: () => this.#healthTick(), clock: context.clock, onError });
  }

  start(): void {
    this.#cleanups.push(this.context.runtime.onExit((exit) => this.#handleExit(exit)));
    this.#cleanups.push(this.context.listen(() => this.#pass.poke()));
    this.#pass.start();
    this.#health.start();
  }

  stop(): void {
    this.#pass.stop();
    this.#health.stop();
    for (const cleanup of this.#cleanups.splice(0)) cleanup();
  }

  /** The instance ids this node runs now (running in the runtime), for the world's checks. */
  running(): string[] {
    return this.context.runtime.list().filter((workload) => workload.state === 'running').map((workload) => workload.id);
  }

  #wanted(): { id: string; version: number }[] {
    const wanted: { id: string; version: number }[] = [];
    // The live records (read now, not kept): copying every instance at every pass is most of a run's time.
    for (const instance of this.context.machine.schedulerView().instances) {
      if (instance.node === this.context.nodeId && instance.desired === 'running') wanted.push({ id: instance.id, version: instance.version });
    }
    return wanted;
  }

  #runPass(): void {
    const nowMs = this.context.clock.monotonicMs();
    const actual: ActualWorkload[] = [];
    const holds = new Map<string, Hold>();
    for (const [id, record] of this.#supervised) {
      if (record.tracked) {
        const workload = this.context.runtime.workload(id);
        actual.push({ id, version: record.version, state: workload?.state === 'exited' || workload === undefined ? 'exited' : 'running', busy: record.busy });
      }
      if (record.hold !== undefined) holds.set(id, record.hold);
    }
    for (const action of reconcile({ wanted: this.#wanted(), actual, holds, nowMs })) {
      if (action.type === 'start') this.#start(action.id, action.version);
      else if (action.type === 'stop') this.#stop(action.id);
      else this.#remove(action.id);
    }
    this.#forgetUnwanted();
    this.#report();
  }

  #specOf(instance: Instance, version: number): AppSpec | undefined {
    const app = this.context.machine.app(instance.tenant, instance.app);
    return app === undefined ? undefined : specOfVersion(app, version);
  }

  #start(id: string, version: number): void {
    const instance = this.context.machine.instance(id);
    const spec = instance === undefined ? undefined : this.#specOf(instance, version);
    if (spec === undefined) return;
    const previous = this.#supervised.get(id);
    const history = previous?.history.version === version ? previous.history : { version, history: emptyHistory() };
    const nowMs = this.context.clock.monotonicMs();
    const record: Supervised = {
      version,
      busy: true,
      tracked: true,
      startedAtMs: nowMs,
      stopRequested: false,
      unhealthyKill: false,
      history,
      observed: { version, state: 'starting' },
      lastSentAtMs: previous?.lastSentAtMs ?? Number.NEGATIVE_INFINITY,
      ...(previous?.lastSentState !== undefined ? { lastSentState: previous.lastSentState } : {}),
    };
    this.#supervised.set(id, record);
    void this.context.runtime.start(id, version, spec).then(() => {
      record.busy = false;
      const workload = this.context.runtime.workload(id);
      if (workload?.state !== 'running') return;
      record.startedAtMs = this.context.clock.monotonicMs();
      if (spec.healthcheck !== undefined && spec.healthcheck.test[0] !== 'NONE') record.health = initialHealth(spec.healthcheck, record.startedAtMs);
      record.observed = { version, state: record.health === undefined ? 'running' : 'starting' };
      this.#report();
    });
  }

  #stop(id: string): void {
    const record = this.#supervised.get(id);
    if (record === undefined) return;
    record.busy = true;
    record.stopRequested = true;
    void this.context.runtime.stop(id).then(() => {
      record.busy = false;
      this.#pass.poke();
    });
  }

  #remove(id: string): void {
    const record = this.#supervised.get(id);
    this.context.runtime.remove(id);
    if (record !== undefined) record.tracked = false;
  }

  /** Records of instances no longer placed here, once reported stopped (or gone from the state), go. */
  #forgetUnwanted(): void {
    for (const [id, record] of this.#supervised) {
      if (record.tracked) continue;
      const instance = this.context.machine.instance(id);
      if (instance === undefined || instance.node !== this.context.nodeId) this.#supervised.delete(id);
    }
  }

  #handleExit(exit: SimExit): void {
    const record = this.#supervised.get(exit.id);
    if (record === undefined || record.version !== exit.version) return;
    delete record.health;
    const instance = this.context.machine.instance(exit.id);
    const wanted = instance !== undefined && instance.desired === 'running' && instance.node === this.context.nodeId && instance.version === exit.version;
    if (record.stopRequested && !record.unhealthyKill) {
      record.observed = { version: exit.version, state: wanted ? 'exited' : 'stopped', exitCode: exit.exitCode };
      this.#pass.poke();
      return;
    }
    const spec = instance === undefined ? undefined : this.#specOf(instance, exit.version);
    if (spec === undefined) return;
    const nowMs = this.context.clock.monotonicMs();
    const decision = decideRestart(spec.restart, { exitCode: exit.exitCode, oomKilled: exit.oomKilled, ranMs: nowMs - record.startedAtMs, unhealthy: record.unhealthyKill }, record.history.history, nowMs);
    // As the executor reports an exit: an unhealthy workload it stopped shows `exited` (a failure to the restart policy).
    const exitState: InstanceState = exit.oomKilled ? 'oom-killed' : 'exited';
    if (decision.type === 'restart') {
      record.hold = { version: exit.version, untilMs: decision.atMs };
      record.history = { version: exit.version, history: decision.history };
      this.context.clock.setTimer(decision.atMs - nowMs + 1, () => this.#pass.poke());
      record.observed = { version: exit.version, state: exitState, exitCode: exit.exitCode };
    } else {
      record.hold = { version: exit.version };
      record.observed = decision.type === 'give-up'
        ? { version: exit.version, state: 'failed', exitCode: exit.exitCode, message: decision.message }
        : { version: exit.version, state: exitState, exitCode: exit.exitCode };
    }
    this.#report();
    this.#pass.poke();
  }

  #healthTick(): void {
    const nowMs = this.context.clock.monotonicMs();
    let changed = false;
    for (const [id, record] of this.#supervised) {
      if (record.health === undefined || record.busy || !record.tracked) continue;
      if (!probeDue(record.health, nowMs)) continue;
      const instance = this.context.machine.instance(id);
      const spec = instance === undefined ? undefined : this.#specOf(instance, record.version);
      if (spec?.healthcheck === undefined) continue;
      const before = record.health.state;
      record.health = recordProbe(spec.healthcheck, record.health, nowMs, this.context.runtime.probe(id) ? undefined : 'the check failed');
      if (record.health.state === before) continue;
      changed = true;
      record.observed = { version: record.version, state: record.health.state === 'healthy' ? 'healthy' : record.health.state === 'unhealthy' ? 'unhealthy' : 'starting' };
      if (record.health.state === 'unhealthy') {
        // An unhealthy workload is stopped; its exit counts as a failure (the restart policy decides).
        record.unhealthyKill = true;
        record.stopRequested = true;
        record.busy = true;
        void this.context.runtime.stop(id).then(() => {
          record.busy = false;
        });
      }
    }
    if (changed) this.#report();
  }

  /** Sends what the replica does not show yet, batched; one report in flight at a time. */
  #report(): void {
    if (this.#reporting) return;
    const nowMs = this.context.clock.monotonicMs();
    const updates: Extract<Command, { type: 'instance.status' }>['updates'] = [];
    for (const [id, record] of this.#supervised) {
      const instance = this.context.machine.instance(id);
      if (instance === undefined || instance.node !== this.context.nodeId || instance.version !== record.observed.version) continue;
      const shown = instance.status.state === record.observed.state;
      if (shown) continue;
      const fresh = record.lastSentState !== record.observed.state;
      if (!fresh && nowMs - record.lastSentAtMs < RESEND_AFTER_MS) continue;
      record.lastSentAtMs = nowMs;
      record.lastSentState = record.observed.state;
      updates.push({
        id,
        state: record.observed.state,
        ...(record.observed.exitCode !== undefined ? { exitCode: record.observed.exitCode } : {}),
        ...(record.observed.message !== undefined ? { message: record.observed.message } : {}),
        reportedBy: this.context.nodeId,
        reportedAt: this.context.clock.now(),
        version: record.observed.version,
      });
      if (updates.length >= STATUS_BATCH_MAX) break;
    }
    // A retired instance placed here that this life never ran (an earlier life did) shows stopped, as the executor's
    // pass does when it finds the replica disagreeing with what runs.
    for (const instance of this.context.machine.schedulerView().instances) {
      if (updates.length >= STATUS_BATCH_MAX) break;
      if (instance.node !== this.context.nodeId || instance.desired !== 'stopped' || this.#supervised.has(instance.id) || TERMINAL_STATES.has(instance.status.state)) continue;
      const record = this.#resentStopped.get(instance.id);
      if (record !== undefined && nowMs - record < RESEND_AFTER_MS) continue;
      this.#resentStopped.set(instance.id, nowMs);
      updates.push({ id: instance.id, state: 'stopped', reportedBy: this.context.nodeId, reportedAt: this.context.clock.now(), version: instance.version });
    }
    if (updates.length === 0) return;
    this.#reporting = true;
    this.context.submit({ type: 'instance.status', updates }, REPORT_TIMEOUT_MS).then(
      () => {},
      (error: unknown) => this.context.log(`executor: status report not taken: ${(error as Error).message}`),
    ).finally(() => {
      this.#reporting = false;
    });
  }
}
