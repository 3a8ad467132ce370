/**
 * The executor component: on every node, runs the instances placed on it.
 *
 * Loop. A pass reads the local replica (instances with `node` = this node
 * and desired `running`), compares with the workloads it tracks, and runs
 * the actions of the pure diff in `reconcile.ts`. Passes run after every
 * apply of the local replica (at once after a quiet spell, then at most one
 * per APPLY_PASS_SPACING_MS, except that a placement's apply gets its pass at
 * once), when an operation or a restart hold ends, and
 * every `reconcileIntervalMs` whatever happens. One pass at a time; an operation
 * on an instance (start, stop, remove) marks it busy until it ends.
 *
 * Exits go through the restart policy (`restart.ts`), which sets a hold:
 * restart later, stay exited, or give up (`failed`). Exits the executor
 * caused (stopping what is no longer wanted) bypass the policy. An instance
 * that turns unhealthy is stopped, and its exit counts as a failure.
 *
 * Adoption. `start()` lists what each runtime runs and tracks it as is: an
 * agent restart restarts nothing. `stop()` leaves every workload running.
 *
 * Status is reported through `StatusReporter` (batched `instance.status`
 * commands) on every change, and again by any pass that finds the replica
 * disagreeing with what the executor sees (a lost report, a placement that
 * reset the status to pending).
 *
 * Tracing (docs/internals/tracing.md): a start is the span `executor.start`,
 * a child of the trace of the placement that brought the instance here: the
 * `traceparent` its `instance.place` entry carried, remembered by the
 * entry's index (the instance's status `updatedIndex` after a placement)
 * for up to PLACEMENT_TRACES_MAX entries. The first passing health check of
 * a workload is `executor.healthy`, from its start to that check.
 */
import { isIP } from 'node:net';
import { join } from 'node:path';
import { Counter, Gauge, Histogram, type Registry } from '../node/prometheus.js';
import { DataDir } from '../node/data-dir.js';
import { isHeartbeatApply, type NodeComponent, type NodeServices } from '../node/services.js';
import type { AppSpec, HealthcheckSpec, Instance, InstanceEndpoint, InstanceState } from '../state/types.js';
import { instanceEndpoint, sameEndpoint } from './endpoint.js';
import { initialHealth, probeDue, recordProbe, type Health } from './health-state.js';
import { runProbe } from './health.js';
import { logPathOf } from './log-files.js';
import { ProcessRuntime } from './process-runtime.js';
import { nextFailure, nextHoldEndMs, reconcile, type OperationFailure, type ActualWorkload, type Hold, type ReconcileAction } from './reconcile.js';
import { decideRestart, emptyHistory, type RestartHistory } from './restart.js';
import { ExecError, type InstanceExec, type NodeCapabilities } from '../node/capabilities.js';
import { RuntimeRegistry, type RuntimeFactory, type DeviceIoLimit, type Runtime, type WorkloadExit } from './runtime.js';
import { StatusReporter } from './status-reporter.js';
import { VolumeKeeper, type VolumesReady } from './volume-keeper.js';
import { STOP_GRACE_MS_DEFAULT, STOP_SIGNAL_DEFAULT, buildWorkload } from './workload-spec.js';
import { closedAncestor } from '../security/node-files.js';
import { TENANT_UIDS_VARIABLE, TENANT_UID_RANGE_DEFAULT, parseTenantUidRange, rangeProblem, workloadIdentity, type TenantUidRange } from './tenant-users.js';
import { SYSTEM_CLOCK, type Clock } from '../node/clock.js';
import { SYSTEM_HOST, type ExecutorHost } from './executor-host.js';
import { activeSpan, contextOf, inSpan, recordEvent, traceparentOf, untraced } from '../node/tracing.js';

/** How often a pass runs even when nothing happened. */
export const RECONCILE_INTERVAL_MS_DEFAULT = 3000;
/** How often health checks that are due are looked for. */
const HEALTH_TICK_MS = 200;
/** How often log files are checked for rotation. */
const LOG_ROTATE_INTERVAL_MS = 5000;
/** Operations (start, stop, remove) under way at once. */
export const OPERATIONS_MAX = 16;
/**
 * Passes caused by applies start at least this far apart. The first apply
 * after a quiet spell gets its pass at once (next turn of the event loop, so
 * the applies of one Raft batch share it); applies during a busy spell share
 * the pass at the end of the spacing.
 */
export const APPLY_PASS_SPACING_MS = 20;
/**
 * Applies whose pass never waits for the spacing: a placement may bring a
 * start, and the time from the placement to the start is the deploy's
 * latency. The scheduler batches placements per round, so their rate is its
 * round rate, not the apply rate.
 */
const PASS_AT_ONCE_COMMANDS: ReadonlySet<string> = new Set(['instance.place']);
/** How often node-local volumes are swept (mounted again, or removed once deleted); a volume.delete sweeps at once. */
const VOLUME_SWEEP_INTERVAL_MS = 30_000;
/** Commands after whose apply the volumes are swept at once: a deletion frees space, a bind or the end of a move settles where data lives. */
const VOLUME_SWEEP_COMMANDS: ReadonlySet<string> = new Set(['volume.delete', 'volume.bind', 'volume.move-end']);
/** After a sweep that may pass in a moment (a volume being removed still held), the next one comes this soon. */
const VOLUME_SWEEP_RETRY_MS = 2_000;
/** A status the replica disagrees with is sent again at most this often per instance. */
const RESEND_AFTER_MS = 2000;
/** Placements whose trace context is remembered (by entry index) until their instances start; the oldest goes first. */
const PLACEMENT_TRACES_MAX = 1024;
/** How long leave() waits for the starts and stops under way before it stops every workload. */
const LEAVE_SETTLE_MS = 30_000;

export interface ExecutorOptions {
  /** Runtimes to use instead of the default ones (the process runtime and those of `runtimeFactories`). */
  runtimes?: Runtime[];
  /** Builders of the runtimes beside the process runtime (the agent passes containerd's). */
  runtimeFactories?: readonly RuntimeFactory[];
  reconcileIntervalMs?: number;
  statusFlushMs?: number;
  /** The cluster key, to open secrets (default: read from the data directory when needed). */
  clusterKey?: () => Uint8Array | undefined;
  /** The host user ids tenants' process apps run as (default: $HIVEMIND_TENANT_UIDS, else TENANT_UID_RANGE_DEFAULT). */
  tenantUids?: TenantUidRange;
  /** The clock and timers of every pass, hold, health tick and report (default: real time, `SYSTEM_CLOCK`). */
  clock?: Clock;
  /** What the executor does on its host besides running workloads (default: the real host, `SYSTEM_HOST`). */
  host?: ExecutorHost;
}

interface Tracked {
  id: string;
  version: number;
  runtime: Runtime;
  state: 'running' | 'exited';
  busy: boolean;
  startedAtMs: number;
  address?: string;
  /** On several networks: every address of the container (the first is `address`). */
  addresses?: string[];
  /** Host port of each target port, where they differ (process apps). */
  hostPorts?: Record<string, number>;
  logPath: string;
  stopSignal: string;
  stopGraceMs: number;
  /** The executor is stopping it: its exit is not a failure to restart. */
  stopRequested: boolean;
  /** The executor is stopping it for being unhealthy: its exit is a failure. */
  unhealthyKill: boolean;
  healthcheck?: HealthcheckSpec;
  health?: Health;
  probing: boolean;
  /** The trace context of its start, until its first passing health check is traced (`executor.healthy`). */
  startTrace?: string;
}

/** What the executor sees of an instance, as it reports it. */
interface Observed {
  version: number;
  state: InstanceState;
  exitCode?: number;
  message?: string;
  /** Where it is reachable; only while it runs. */
  endpoint?: InstanceEndpoint;
}

/**
 * Everything the executor keeps about one instance, in one record (as
 * swarmkit keeps one controller per task); each part has its own lifetime,
 * and the record goes once every part is gone.
 */
interface Supervision {
  /** The workload run for it here (running, or exited and not yet removed). */
  tracked?: Tracked;
  /** No start before `untilMs` (or none at all): a restart delay, or a final exit. */
  hold?: Hold;
  /** The scheduler's attempt number of the wanted instance, as last seen. */
  attempt?: number;
  /** Its restarts, for the restart policy, while the version stays. */
  history?: { version: number; history: RestartHistory };
  /** What this node last reported of it. */
  observed?: Observed;
  /** When its status was last sent (ms). */
  lastSentAtMs?: number;
  /** The version being started (its runtime opened, its volumes made ready) and not yet tracked: busy to the reconcile pass meanwhile. */
  preparing?: number;
  /** Its last stops or removals failed: retried with a growing delay (see `nextFailure`). */
  failing?: OperationFailure;
}

/** The records by instance id. */
class Supervisions {
  private readonly records = new Map<string, Supervision>();

  get(id: string): Readonly<Supervision> | undefined {
    return this.records.get(id);
  }

  put<K extends keyof Supervision>(id: string, part: K, value: NonNullable<Supervision[K]>): void {
    let record = this.records.get(id);
    if (record === undefined) {
      record = {};
      this.records.set(id, record);
    }
    record[part] = value;
  }

  /** Drops one part; the record goes with its last part. */
  clear(id: string, part: keyof Supervision): void {
    const record = this.records.get(id);
    if (record === undefined) return;
    delete record[part];
    if (Object.values(record).every((value) => value === undefined)) this.records.delete(id);
  }

  /** Every record holding `part`, with it (a snapshot: callers may clear as they go). */
  each<K extends keyof Supervision>(part: K): [string, NonNullable<Supervision[K]>][] {
    const found: [string, NonNullable<Supervision[K]>][] = [];
    for (const [id, record] of this.records) {
      const value = record[part];
      if (value !== undefined) found.push([id, value as NonNullable<Supervision[K]>]);
    }
    return found;
  }

  /** The holds by instance id, for the pure reconcile. */
  holds(): Map<string, Hold> {
    return new Map(this.each('hold'));
  }

  /** When each failing instance may be tried again, for the pure reconcile. */
  retryAt(): Map<string, number> {
    return new Map(this.each('failing').map(([id, failure]) => [id, failure.retryAtMs]));
  }
}

/** The executor. See the file header. */
export class Executor implements NodeComponent {
  readonly name = 'executor';
  private readonly services: NodeServices;
  private readonly runtimes = new RuntimeRegistry();
  private readonly available = new Set<string>();
  /** Each runtime's one opening (see openRuntime). */
  private readonly openings = new Map<string, Promise<boolean>>();
  /** One record per instance this node knows of (see Supervision). */
  private readonly supervisions = new Supervisions();
  private readonly reporter: StatusReporter;
  private readonly reconcileIntervalMs: number;
  private readonly clusterKey: () => Uint8Array | undefined;
  private readonly executorDir: string;
  private readonly clock: Clock;
  private readonly host: ExecutorHost;
  /** The cancellers of the repeating timers (see every). */
  private readonly timers: (() => void)[] = [];
  /** Cancels the health tick, while an instance here has a health check (ensureHealthTick). */
  private healthTickCancel: (() => void) | undefined;
  /** The trace context of recent `instance.place` entries, by index (see the file comment). */
  private readonly placementTraces = new Map<number, string>();
  private readonly cleanups: (() => void)[] = [];
  /** Cancels the pass at the next hold's end. */
  private holdTimer: (() => void) | undefined;
  /** Cancels the pass a debounce waits for. */
  private debounceTimer: (() => void) | undefined;
  /** The pass an apply asked for, waiting for its turn (see requestPass). */
  private applyPass: { cancel: () => void; atOnce: boolean } | undefined;
  /** When the last pass began (ms, this process's clock); -Infinity before the first. */
  private lastPassAtMs = Number.NEGATIVE_INFINITY;
  private passRunning = false;
  private passAgain = false;
  private operations = 0;
  private started = false;
  private stopped = false;
  /** stop() ran: the runtimes are closed. */
  private closed = false;
  private caughtUp = false;
  /** The node's IP address, at which process apps are reachable (see nodeAddressOf); set by start(). */
  private nodeAddress = '127.0.0.1';
  private readonly metrics: ExecutorMetrics;
  private readonly volumes: VolumeKeeper;
  /** Cancels the volume sweep that retries soon. */
  private volumeRetryTimer: (() => void) | undefined;
  private readonly tenantUids: TenantUidRange;
  /** Why confined process apps cannot run here (the range is not the agent's alone, or badly set); undefined when they can. */
  private readonly tenantUidsProblem: string | undefined;

  constructor(services: NodeServices, options: ExecutorOptions = {}) {
    this.services = services;
    this.clock = options.clock ?? SYSTEM_CLOCK;
    this.host = options.host ?? SYSTEM_HOST;
    this.executorDir = join(services.dataDir, 'executor');
    this.reconcileIntervalMs = options.reconcileIntervalMs ?? RECONCILE_INTERVAL_MS_DEFAULT;
    const log = (line: string): void => services.log('executor', line);
    const runtimes = options.runtimes ?? [
      new ProcessRuntime({ stateDir: join(this.executorDir, 'process'), log }),
      ...(options.runtimeFactories ?? []).map((factory) =>
        factory({
          dataDir: services.dataDir,
          log,
          signal: services.signal,
          registry: services.registry,
          ...(services.config.warmNetworks !== undefined ? { warmNetworks: services.config.warmNetworks } : {}),
          ...(services.peerImages !== undefined ? { peerImages: services.peerImages } : {}),
        }),
      ),
    ];
    for (const runtime of runtimes) this.runtimes.register(runtime);
    const uids = tenantUidRange(options.tenantUids);
    this.tenantUids = uids.range;
    this.tenantUidsProblem = uids.problem ?? notRootProblem(this.host.uid()) ?? rangeProblem(uids.range, this.host.accountsIn(uids.range));
    if (this.tenantUidsProblem !== undefined) log(`confined process apps cannot run on this node: ${this.tenantUidsProblem}`);
    const dataDir = new DataDir(services.dataDir);
    this.clusterKey = options.clusterKey ?? (() => dataDir.readClusterKey());
    this.reporter = new StatusReporter({
      submit: (command) => services.submit(command),
      log,
      clock: this.clock,
      ...(options.statusFlushMs !== undefined ? { flushMs: options.statusFlushMs } : {}),
    });
    this.metrics = executorMetrics(services.registry, () => this.stateCounts());
    this.volumes = new VolumeKeeper({
      machine: services.machine,
      nodeId: services.nodeId,
      volumesDir: join(services.dataDir, 'volumes'),
      submit: (command) => services.submit(command),
      caughtUp: () => this.replicaCaughtUp(),
      workloadsUsing: (tenant, name) => this.workloadsUsing(tenant, name),
      clusterKey: () => this.safeClusterKey(),
      log,
    });
  }

  /**
   * What the executor offers the API and the peer port: the logs of the
   * instances it runs, the volumes it holds, and the images of the runtime
   * that keeps them (the container runtime's; none without one).
   */
  get capabilities(): NodeCapabilities {
    const imagesOf = this.runtimes.all().find((runtime) => runtime.nodeImages !== undefined);
    return {
      logs: this,
      exec: { exec: (id, argv, options) => this.execIn(id, argv, options) },
      volumes: this.volumes,
      ...(imagesOf?.nodeImages !== undefined ? { images: imagesOf.nodeImages } : {}),
      ...(imagesOf?.imageShare !== undefined ? { imageShare: imagesOf.imageShare } : {}),
    };
  }

  /** The workloads tracked here (starting, running or stopping) whose version mounts volume `name` of `tenant`. */
  private workloadsUsing(tenant: string, name: string): string[] {
    const using: string[] = [];
    for (const [id, tracked] of this.supervisions.each('tracked')) {
      const instance = this.services.machine.instance(id);
      const spec = instance && this.specOf(instance.tenant, instance.app, tracked.version);
      // A workload whose instance is gone from the state cannot be told apart: it counts.
      if (spec === undefined || (spec.tenant === tenant && spec.volumes.some((mount) => mount.source === name))) using.push(id);
    }
    for (const [id, preparing] of this.supervisions.each('preparing')) {
      const instance = this.services.machine.instance(id);
      const spec = instance && this.specOf(instance.tenant, instance.app, preparing);
      if (spec !== undefined && spec.tenant === tenant && spec.volumes.some((mount) => mount.source === name)) using.push(id);
    }
    return using;
  }

  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    this.nodeAddress = await nodeAddressOf(this.services.config.advertise, this.host, (line) => this.log(line));
    this.confineFiles();
    for (const runtime of this.runtimes.all()) {
      if (runtime.openAtStart !== undefined && !(await runtime.openAtStart().catch(() => true))) continue;
      await this.openRuntime(runtime);
    }
    // Straight from the local replica's apply.
    this.cleanups.push(this.services.listen((event) => {
      if (event.type === 'applied' && event.commandType === 'instance.place' && event.traceparent !== undefined) this.rememberPlacementTrace(event.index, event.traceparent);
      if (!isHeartbeatApply(event)) this.requestPass(event.type === 'applied' && event.commandType !== undefined && PASS_AT_ONCE_COMMANDS.has(event.commandType));
      if (event.type === 'applied' && event.commandType !== undefined && VOLUME_SWEEP_COMMANDS.has(event.commandType)) this.sweepVolumes();
    }));
    if (this.host.keepsVolumes) void this.volumes.cleanWork().catch((error: Error) => this.log(`cleaning up interrupted volume backups failed: ${error.message}`));
    this.every(VOLUME_SWEEP_INTERVAL_MS, () => this.sweepVolumes());
    this.sweepVolumes();
    this.timers.push(this.every(this.reconcileIntervalMs, () => this.schedulePass(0)));
    this.timers.push(this.every(LOG_ROTATE_INTERVAL_MS, () => this.rotateLogs()));
    this.schedulePass(0);
  }

  /** Calls `action` every `intervalMs` on the clock until halt or the answered canceller is called (as setInterval does; the clock's timers never keep the process alive). */
  private every(intervalMs: number, action: () => void): () => void {
    let cancel = (): void => {};
    const arm = (): void => {
      cancel = this.clock.setTimer(intervalMs, () => {
        if (this.stopped) return;
        arm();
        action();
      });
    };
    arm();
    return () => cancel();
  }

  /**
   * Opens a runtime once (at start, or on the first workload that needs it)
   * and adopts what it runs. Says whether it is available.
   */
  private openRuntime(runtime: Runtime): Promise<boolean> {
    let opening = this.openings.get(runtime.kind);
    if (opening === undefined) {
      opening = (async () => {
        try {
          if (!(await runtime.available())) {
            this.log(`the ${runtime.kind} runtime is not available on this node`);
            return false;
          }
          await runtime.open();
          this.available.add(runtime.kind);
          this.cleanups.push(runtime.onExit((exit) => this.handleExit(runtime, exit)));
          for (const workload of await runtime.list()) this.adopt(runtime, workload);
          return true;
        } catch (error) {
          this.log(`the ${runtime.kind} runtime could not start: ${(error as Error).message}`);
          return false;
        }
      })();
      this.openings.set(runtime.kind, opening);
    }
    return opening;
  }

  /** Stops watching; every workload keeps running for the next executor to adopt. */
  async stop(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.halt();
    for (const cleanup of this.cleanups) cleanup();
    this.reporter.close();
    for (const runtime of this.runtimes.all()) await runtime.close().catch(() => {});
  }

  /**
   * The node left its cluster for good: stops watching, lets the starts and
   * stops under way finish (at most LEAVE_SETTLE_MS), then stops and removes
   * every workload its runtimes run, tracked or not. The cluster places them
   * elsewhere; left running they would be strays nobody supervises (a node
   * that only restarts calls stop(), which leaves them to adopt). Volumes keep
   * their data. Never throws; what it cannot stop it logs.
   */
  async leave(): Promise<void> {
    this.halt();
    // Real time and a timer that keeps the process alive, on purpose: a node that leaves may have closed everything
    // else, and must not end before its workloads are stopped (the simulator's nodes never leave).
    const deadlineMs = Date.now() + LEAVE_SETTLE_MS;
    while (this.operations > 0 && Date.now() < deadlineMs) await new Promise((resolve) => setTimeout(resolve, 50));
    if (this.operations > 0) this.log(`${this.operations} start(s) or stop(s) still under way after ${LEAVE_SETTLE_MS} ms; stopping the workloads anyway`);
    let count = 0;
    for (const runtime of this.runtimes.all()) {
      // Opened now if no instance needed it yet: it may run workloads of an earlier start.
      if (!(await this.openRuntime(runtime))) continue;
      const workloads = await runtime.list().catch((error: Error) => {
        this.log(`cannot list the ${runtime.kind} workloads to stop them: ${error.message}`);
        return [];
      });
      await Promise.all(
        workloads.map(async (workload) => {
          const tracked = this.supervisions.get(workload.id)?.tracked;
          try {
            await runtime.stop(workload.id, { signal: tracked?.stopSignal ?? STOP_SIGNAL_DEFAULT, graceMs: tracked?.stopGraceMs ?? STOP_GRACE_MS_DEFAULT });
            await runtime.remove(workload.id);
            this.supervisions.clear(workload.id, 'tracked');
            count++;
          } catch (error) {
            this.log(`cannot stop instance ${workload.id} as the node leaves: ${(error as Error).message}`);
          }
        }),
      );
    }
    this.log(`this node left its cluster: stopped ${count} workload(s)`);
  }

  /** Ends every timer and pass; the runtimes stay open. Idempotent. */
  private halt(): void {
    if (this.stopped) return;
    this.stopped = true;
    for (const cancel of this.timers) cancel();
    this.healthTickCancel?.();
    this.healthTickCancel = undefined;
    this.holdTimer?.();
    this.debounceTimer?.();
    this.volumeRetryTimer?.();
    this.applyPass?.cancel();
  }

  /** The log file of an instance this node runs or ran, if it has one. */
  logPath(id: string): string {
    return this.supervisions.get(id)?.tracked?.logPath ?? logPathOf(this.executorDir, id);
  }

  /** `hivemind exec`: runs `argv` in running instance `id` through its runtime (see InstanceExec). */
  private async execIn(id: string, argv: string[], options: Parameters<InstanceExec['exec']>[2]): Promise<{ exitCode: number; timedOut: boolean }> {
    const tracked = this.supervisions.get(id)?.tracked;
    if (tracked === undefined || tracked.state !== 'running') throw new ExecError('not-running', `instance "${id}" is not running on this node${tracked === undefined ? '' : ' (it has exited)'}`);
    if (tracked.runtime.exec === undefined) throw new ExecError('unsupported', `instance "${id}" runs on the ${tracked.runtime.kind} runtime, which cannot run commands in it`);
    const result = await tracked.runtime.exec(id, argv, options);
    return { exitCode: result.exitCode, timedOut: result.timedOut };
  }

  /** Whether a workload of `id` is tracked here (running or exited). */
  runs(id: string): boolean {
    return this.supervisions.get(id)?.tracked !== undefined;
  }

  /** What this node sees of its instances, for tests and the API. */
  view(): { id: string; version: number; state: InstanceState; exitCode?: number; message?: string }[] {
    return this.supervisions.each('observed').map(([id, observed]) => ({ id, ...observed }));
  }

  // ---------------------------------------------------------------------------
  // Adoption and exits

  private adopt(runtime: Runtime, workload: Awaited<ReturnType<Runtime['list']>>[number]): void {
    const instance = this.services.machine.instance(workload.id);
    const spec = instance && this.specOf(instance.tenant, instance.app, workload.version);
    const tracked: Tracked = {
      id: workload.id,
      version: workload.version,
      runtime,
      state: workload.state,
      busy: false,
      startedAtMs: workload.startedAt,
      ...(workload.address ? { address: workload.address } : {}),
      ...(workload.addresses ? { addresses: workload.addresses } : {}),
      ...(workload.hostPorts ? { hostPorts: workload.hostPorts } : {}),
      logPath: logPathOf(this.executorDir, workload.id),
      stopSignal: spec?.stopSignal ?? STOP_SIGNAL_DEFAULT,
      stopGraceMs: spec?.stopGraceMs ?? STOP_GRACE_MS_DEFAULT,
      stopRequested: false,
      unhealthyKill: false,
      probing: false,
    };
    const healthcheck = spec?.healthcheck;
    if (healthcheck && healthcheck.test[0] !== 'NONE') {
      tracked.healthcheck = healthcheck;
      this.ensureHealthTick();
      const health = initialHealth(healthcheck, this.clock.now());
      // Trust the last report until the first probe: adoption must not flap a healthy instance.
      const last = instance?.status.state;
      tracked.health = last === 'healthy' || last === 'unhealthy' ? { ...health, state: last } : health;
    }
    this.supervisions.put(workload.id, 'tracked', tracked);
    this.log(`adopted instance ${workload.id} (version ${workload.version}, ${workload.state}) from the ${runtime.kind} runtime`);
    if (workload.state === 'exited') {
      this.applyExit(tracked, { id: workload.id, version: workload.version, exitCode: workload.exitCode ?? 137, oomKilled: workload.oomKilled ?? false, at: this.clock.now() });
    } else {
      this.observe(workload.id, { version: workload.version, state: this.runningState(tracked), ...portsMessage(tracked), ...this.endpointOf(tracked) });
    }
  }

  private handleExit(runtime: Runtime, exit: WorkloadExit): void {
    const tracked = this.supervisions.get(exit.id)?.tracked;
    if (tracked === undefined || tracked.runtime !== runtime || tracked.version !== exit.version || tracked.state === 'exited') return;
    this.applyExit(tracked, exit);
    this.schedulePass(0);
  }

  private applyExit(tracked: Tracked, exit: WorkloadExit): void {
    tracked.state = 'exited';
    delete tracked.health;
    if (tracked.stopRequested) return;
    const instance = this.services.machine.instance(tracked.id);
    const spec = instance && this.specOf(instance.tenant, instance.app, tracked.version);
    const nowMs = this.clock.now();
    const state: InstanceState = exit.oomKilled ? 'oom-killed' : 'exited';
    if (spec === undefined) {
      this.observe(tracked.id, { version: tracked.version, state, exitCode: exit.exitCode });
      return;
    }
    const facts = { exitCode: exit.exitCode, oomKilled: exit.oomKilled, ranMs: Math.max(0, nowMs - tracked.startedAtMs), unhealthy: tracked.unhealthyKill };
    const decision = decideRestart(spec.restart, facts, this.historyOf(tracked.id, tracked.version), nowMs);
    const exitText = `exited with code ${exit.exitCode}${exit.oomKilled ? ' (killed: out of memory)' : ''}${tracked.unhealthyKill ? ' after failing its health check' : ''}`;
    switch (decision.type) {
      case 'restart':
        this.supervisions.put(tracked.id, 'history', { version: tracked.version, history: decision.history });
        this.supervisions.put(tracked.id, 'hold', { version: tracked.version, untilMs: decision.atMs });
        this.observe(tracked.id, { version: tracked.version, state, exitCode: exit.exitCode, message: `${exitText}; restarting in ${decision.delayMs} ms` });
        break;
      case 'stay-exited':
        this.supervisions.put(tracked.id, 'hold', { version: tracked.version });
        this.observe(tracked.id, { version: tracked.version, state, exitCode: exit.exitCode, message: `${exitText}; not restarted: ${decision.reason}` });
        break;
      case 'give-up':
        this.supervisions.put(tracked.id, 'hold', { version: tracked.version });
        this.observe(tracked.id, { version: tracked.version, state: 'failed', exitCode: exit.exitCode, message: decision.message });
        break;
    }
  }

  private historyOf(id: string, version: number): RestartHistory {
    const entry = this.supervisions.get(id)?.history;
    return entry !== undefined && entry.version === version ? entry.history : emptyHistory();
  }

  // ---------------------------------------------------------------------------
  // Passes

  private schedulePass(delayMs: number): void {
    if (this.stopped || !this.started) return;
    if (delayMs <= 0) {
      void this.pass();
      return;
    }
    if (this.debounceTimer) return;
    this.debounceTimer = this.clock.setTimer(delayMs, () => {
      this.debounceTimer = undefined;
      void this.pass();
    });
  }

  /**
   * A pass for an apply: leading edge (at once after a quiet spell), then at
   * most one per APPLY_PASS_SPACING_MS; requests while one waits share it.
   */
  private requestPass(atOnce: boolean): void {
    if (this.stopped || !this.started) return;
    if (this.applyPass !== undefined) {
      // A pass waiting for the spacing is brought forward by an apply that must not wait.
      if (this.applyPass.atOnce || !atOnce) return;
      this.applyPass.cancel();
    }
    const delayMs = atOnce ? 0 : Math.max(0, this.lastPassAtMs + APPLY_PASS_SPACING_MS - this.clock.now());
    const run = (): void => {
      this.applyPass = undefined;
      void this.pass();
    };
    if (delayMs === 0) this.applyPass = { cancel: this.host.soon(run), atOnce: true };
    else this.applyPass = { cancel: this.clock.setTimer(delayMs, run), atOnce: false };
  }

  private async pass(): Promise<void> {
    if (this.passRunning) {
      this.passAgain = true;
      return;
    }
    this.passRunning = true;
    try {
      do {
        this.passAgain = false;
        this.lastPassAtMs = this.clock.now();
        this.passOnce();
      } while (this.passAgain && !this.stopped);
    } catch (error) {
      this.log(`reconcile pass failed: ${(error as Error).stack ?? (error as Error).message}`);
    } finally {
      this.passRunning = false;
    }
  }

  private passOnce(): void {
    if (this.stopped || !this.replicaCaughtUp()) return;
    const nowMs = this.clock.now();
    const wanted = this.wantedInstances();
    const wantedById = new Map(wanted.map((instance) => [instance.id, instance]));
    // A rescheduled instance (its attempt grew: the scheduler placed it again after it failed) is a fresh try here.
    for (const instance of wanted) {
      const attempt = instance.attempt ?? 0;
      if (this.supervisions.get(instance.id)?.attempt !== attempt) {
        if (this.supervisions.get(instance.id)?.attempt !== undefined) {
          this.supervisions.clear(instance.id, 'hold');
          this.supervisions.clear(instance.id, 'history');
        }
        this.supervisions.put(instance.id, 'attempt', attempt);
      }
    }
    for (const [id] of this.supervisions.each('attempt')) if (!wantedById.has(id)) this.supervisions.clear(id, 'attempt');
    for (const [id, hold] of this.supervisions.each('hold')) if (wantedById.get(id)?.version !== hold.version) this.supervisions.clear(id, 'hold');
    for (const [id, entry] of this.supervisions.each('history')) if (wantedById.get(id)?.version !== entry.version) this.supervisions.clear(id, 'history');
    for (const [id] of this.supervisions.each('observed')) if (!wantedById.has(id) && this.supervisions.get(id)?.tracked === undefined) this.supervisions.clear(id, 'observed');
    this.reportRetiredUnrun();
    const actual: ActualWorkload[] = this.supervisions.each('tracked').map(([, tracked]) => ({ id: tracked.id, version: tracked.version, state: tracked.state, busy: tracked.busy }));
    for (const [id, version] of this.supervisions.each('preparing')) actual.push({ id, version, state: 'running', busy: true });
    for (const [id] of this.supervisions.each('failing')) if (!wantedById.has(id) && this.supervisions.get(id)?.tracked === undefined) this.supervisions.clear(id, 'failing');
    const actions = reconcile({ wanted: wanted.map(({ id, version }) => ({ id, version })), actual, holds: this.supervisions.holds(), retryAt: this.supervisions.retryAt(), nowMs });
    for (const action of actions) {
      if (this.operations >= OPERATIONS_MAX) break;
      this.launch(action, wantedById.get(action.id));
    }
    this.resendDisagreements(wanted, nowMs);
    this.scheduleHoldEnd(nowMs);
  }

  /**
   * Whether the local replica has applied what the cluster committed, once:
   * after an agent restart the replica replays its log after the node
   * serves, and a pass before that would stop every adopted workload.
   */
  private replicaCaughtUp(): boolean {
    if (this.caughtUp) return true;
    let status;
    try {
      status = this.services.raftStatus();
    } catch {
      // No Raft view (an embedding without one): the replica is what there is.
      this.caughtUp = true;
      return true;
    }
    this.caughtUp = status.leader !== '' && status.commit > 0 && this.services.machine.appliedIndex >= status.commit;
    if (!this.caughtUp) this.schedulePass(200);
    // The replica now knows every volume: mount again those bound here (after a reboot), remove deleted ones.
    else this.sweepVolumes();
    return this.caughtUp;
  }

  /**
   * An instance retired on this node that runs nothing here (retired before
   * it started, or its workload is already gone) is reported stopped, so the
   * scheduler can let its record go instead of waiting for a report that
   * would never come.
   */
  private reportRetiredUnrun(): void {
    for (const instance of this.services.machine.instances({ node: this.services.nodeId })) {
      if (instance.desired !== 'stopped' || this.supervisions.get(instance.id)?.tracked !== undefined || TERMINAL_STATES.has(instance.status.state)) continue;
      this.observe(instance.id, { version: instance.version, state: 'stopped', message: 'retired; nothing of it runs on this node' });
    }
  }

  private wantedInstances(): Instance[] {
    return this.services.machine.instances({ node: this.services.nodeId }).filter((instance) => instance.desired === 'running');
  }

  private scheduleHoldEnd(nowMs: number): void {
    this.holdTimer?.();
    this.holdTimer = undefined;
    const endMs = nextHoldEndMs(this.supervisions.holds(), nowMs, this.supervisions.retryAt());
    if (endMs === undefined) return;
    this.holdTimer = this.clock.setTimer(endMs - nowMs + 5, () => this.schedulePass(0));
  }

  private launch(action: ReconcileAction, instance: Instance | undefined): void {
    this.operations++;
    const run = async (): Promise<void> => {
      switch (action.type) {
        case 'start':
          if (instance) await this.startInstance(instance);
          return;
        case 'stop':
          return this.stopWorkload(action.id, action.reason);
        case 'remove':
          return this.removeWorkload(action.id);
      }
    };
    run()
      .then(
        () => {
          if (action.type !== 'start') this.supervisions.clear(action.id, 'failing');
        },
        (error: unknown) => {
          const message = (error as Error).message;
          if (action.type === 'start') return this.log(`start of instance ${action.id} failed: ${message}`, 'warn');
          // A runtime that keeps refusing (a container that will not stop) is asked again later and later, and said once a minute.
          const { failure, log } = nextFailure(this.supervisions.get(action.id)?.failing, message, this.clock.now());
          this.supervisions.put(action.id, 'failing', failure);
          if (log) this.log(`${action.type} of instance ${action.id} failed (${failure.count === 1 ? 'once' : `${failure.count} times in a row`}; trying again in ${((failure.retryAtMs - failure.loggedAtMs) / 1000).toFixed(1)} s): ${message}`, 'warn');
        },
      )
      .finally(() => {
        this.operations--;
        this.schedulePass(0);
      });
  }

  private rememberPlacementTrace(index: number, traceparent: string): void {
    this.placementTraces.set(index, traceparent);
    if (this.placementTraces.size > PLACEMENT_TRACES_MAX) this.placementTraces.delete(this.placementTraces.keys().next().value!);
  }

  /** Starts `instance` in the span `executor.start`, in the trace of its placement when it has one. */
  private startInstance(instance: Instance): Promise<void> {
    const attributes = { 'hivemind.instance.id': instance.id, 'hivemind.tenant': instance.tenant, 'hivemind.app': instance.app, 'hivemind.app.version': instance.version };
    const parent = contextOf(this.placementTraces.get(instance.status.updatedIndex));
    return inSpan('executor.start', { parent, attributes }, () => this.startInstanceTraced(instance));
  }

  private async startInstanceTraced(instance: Instance): Promise<void> {
    // Busy to the reconcile pass from here until the workload is tracked: a pass can run between any two awaits
    // below (opening the runtime takes seconds the first time, preparing volumes too), and must not start it again.
    this.supervisions.put(instance.id, 'preparing', instance.version);
    try {
      await this.startPrepared(instance);
    } finally {
      this.supervisions.clear(instance.id, 'preparing');
    }
  }

  /** `startInstance`'s work, while the instance is marked as being prepared. */
  private async startPrepared(instance: Instance): Promise<void> {
    const startedAtMs = this.clock.monotonicMs();
    const fail = (text: string, retry: boolean): void => {
      this.metrics.starts.inc({ outcome: 'failed' });
      // The report is about this instance: a runtime's "instance ID: " before its words says it twice.
      const prefix = `instance ${instance.id}: `;
      let message = text.startsWith(prefix) ? text.slice(prefix.length) : text;
      const nowMs = this.clock.now();
      const spec = this.specOf(instance.tenant, instance.app, instance.version);
      const decision = retry && spec ? decideRestart(spec.restart, { exitCode: 1, oomKilled: false, ranMs: 0 }, this.historyOf(instance.id, instance.version), nowMs) : undefined;
      if (decision?.type === 'restart') {
        this.supervisions.put(instance.id, 'history', { version: instance.version, history: decision.history });
        this.supervisions.put(instance.id, 'hold', { version: instance.version, untilMs: decision.atMs });
        message = `${message}; retrying in ${decision.delayMs} ms`;
      } else {
        this.supervisions.put(instance.id, 'hold', { version: instance.version });
        if (decision?.type === 'give-up') message = `${message}; ${decision.message}`;
      }
      this.log(`instance ${instance.id}: ${message}`, 'warn');
      this.observe(instance.id, { version: instance.version, state: 'failed', message });
    };
    const spec = this.specOf(instance.tenant, instance.app, instance.version);
    if (spec === undefined) return fail(`version ${instance.version} of app "${instance.app}" is no longer kept in the cluster state`, false);
    const kind = spec.image !== undefined ? 'containerd' : 'process';
    activeSpan()?.setAttributes({ 'hivemind.runtime': kind, ...(spec.image !== undefined ? { 'hivemind.image': spec.image } : {}) });
    const runtime = this.runtimes.get(kind);
    // Opened outside this start's trace: what the runtime keeps running (event streams, pools) serves every start.
    if (runtime !== undefined && !this.available.has(kind)) await untraced(() => this.openRuntime(runtime));
    if (this.stopped) return;
    if (runtime === undefined || !this.available.has(kind)) {
      const message =
        kind === 'containerd'
          ? `app "${instance.app}" runs image "${spec.image}" but node ${this.services.nodeId} has no containerd (install the containerd package, or give the app a command instead of an image)`
          : `node ${this.services.nodeId} cannot run processes (no /bin/sh or /proc)`;
      return fail(message, false);
    }
    const identity = workloadIdentity(spec, { tenant: this.services.machine.tenant(instance.tenant), range: this.tenantUids, ...(this.tenantUidsProblem !== undefined ? { rangeProblem: this.tenantUidsProblem } : {}) });
    if (!identity.ok) return fail(`cannot start: ${identity.message}`, false);
    const { runAs, volumeOwner } = identity.identity;
    const volumesDir = join(this.services.dataDir, 'volumes');
    if (runAs !== undefined && spec.volumes.some((mount) => !mount.source.startsWith('/'))) {
      // The tenant's user reaches its volumes by path: every folder above must let it pass.
      const closed = closedAncestor(volumesDir);
      if (closed !== undefined) {
        return fail(
          `cannot start: the app's volumes are under ${closed.path} (mode ${closed.mode.toString(8).padStart(4, '0')}), which the tenant's user may not pass through; ` +
            'put the data directory under a folder others may traverse (such as /var/lib/hivemind), or make that folder traversable (chmod o+x)',
          false,
        );
      }
    }
    let ioLimits: DeviceIoLimit[] = [];
    if (spec.volumes.some((mount) => !mount.source.startsWith('/')) && !this.host.keepsVolumes) return fail(`cannot start: node ${this.services.nodeId} keeps no volumes`, false);
    if (spec.volumes.length > 0) {
      const volumes = await this.volumes.prepare(spec, volumeOwner).catch((error: Error): VolumesReady => ({ ok: false, message: error.message, retry: true }));
      if (this.stopped) return;
      if (!volumes.ok) return fail(volumes.message, volumes.retry);
      ioLimits = volumes.ioLimits;
    }
    const logPath = logPathOf(this.executorDir, instance.id);
    const built = buildWorkload({ instance, spec, machine: this.services.machine, clusterKey: this.safeClusterKey(), logPath, volumesDir: join(this.services.dataDir, 'volumes'), ioLimits, ...this.dnsInputs(), ...(runAs !== undefined ? { runAs } : {}) });
    if (!built.ok) return fail(`cannot start: ${built.message}`, false);
    const tracked: Tracked = {
      id: instance.id,
      version: instance.version,
      runtime,
      state: 'running',
      busy: true,
      startedAtMs: this.clock.now(),
      logPath,
      stopSignal: built.workload.stopSignal,
      stopGraceMs: built.workload.stopGraceMs,
      stopRequested: false,
      unhealthyKill: false,
      probing: false,
    };
    const startTrace = traceparentOf();
    if (startTrace !== undefined) tracked.startTrace = startTrace;
    this.supervisions.put(instance.id, 'tracked', tracked);
    // Tracked and busy from here: the pass sees the workload itself.
    this.supervisions.clear(instance.id, 'preparing');
    try {
      const started = await inSpan(`executor.${kind}`, {}, () => runtime.start(built.workload));
      tracked.startedAtMs = started.startedAt;
      if (started.address) tracked.address = started.address;
      if (started.addresses) tracked.addresses = started.addresses;
      if (started.hostPorts) tracked.hostPorts = started.hostPorts;
    } catch (error) {
      if (this.supervisions.get(instance.id)?.tracked === tracked) this.supervisions.clear(instance.id, 'tracked');
      return fail((error as Error).message, true);
    } finally {
      tracked.busy = false;
    }
    const restarted = this.historyOf(instance.id, instance.version).restartsAtMs.length > 0;
    this.metrics.starts.inc({ outcome: 'started' });
    this.metrics.startSeconds.observe((this.clock.monotonicMs() - startedAtMs) / 1000);
    if (restarted) this.metrics.restarts.inc();
    const healthcheck = spec.healthcheck;
    if (healthcheck && healthcheck.test[0] !== 'NONE') {
      tracked.healthcheck = healthcheck;
      this.ensureHealthTick();
      tracked.health = initialHealth(healthcheck, this.clock.now());
    }
    this.log(`started instance ${instance.id} (${kind}${spec.image !== undefined ? ` ${spec.image}` : ''})`);
    if (tracked.state === 'running') this.observe(instance.id, { version: instance.version, state: this.runningState(tracked), ...portsMessage(tracked), ...this.endpointOf(tracked) });
  }

  private async stopWorkload(id: string, reason: 'not-wanted' | 'replaced'): Promise<void> {
    const tracked = this.supervisions.get(id)?.tracked;
    if (tracked === undefined) return;
    tracked.busy = true;
    tracked.stopRequested = true;
    this.log(`stopping instance ${id} (version ${tracked.version}): ${reason === 'replaced' ? 'replaced by a new version' : 'no longer placed on this node'}`);
    try {
      await tracked.runtime.stop(id, { signal: tracked.stopSignal, graceMs: tracked.stopGraceMs });
      tracked.state = 'exited';
      await tracked.runtime.remove(id);
      this.supervisions.clear(id, 'tracked');
      const instance = this.services.machine.instance(id);
      if (reason === 'not-wanted' && instance && instance.node === this.services.nodeId && instance.version === tracked.version) {
        this.observe(id, { version: tracked.version, state: 'stopped' });
      } else {
        this.supervisions.clear(id, 'observed');
      }
    } finally {
      tracked.busy = false;
    }
  }

  private async removeWorkload(id: string): Promise<void> {
    const tracked = this.supervisions.get(id)?.tracked;
    if (tracked === undefined) return;
    tracked.busy = true;
    try {
      await tracked.runtime.remove(id);
      this.supervisions.clear(id, 'tracked');
    } finally {
      tracked.busy = false;
    }
  }

  /** Keeps the data directory out of apps' reach (see security/node-files.ts); a failure is logged, and the next sweep tries again. */
  private confineFiles(): void {
    try {
      const { narrowed } = this.host.confineDataDir(this.services.dataDir);
      if (narrowed.length > 0) this.log(`narrowed the permissions of ${narrowed.join(', ')} (apps must not read the agent's files)`);
    } catch (error) {
      this.log(`cannot narrow the permissions of the data directory ${this.services.dataDir}: ${(error as Error).message}`);
    }
  }

  /** Runs a volume sweep in the background (see VolumeKeeper.sweep); only with volumes on this node does it touch anything. */
  private sweepVolumes(): void {
    if (this.stopped) return;
    this.confineFiles();
    if (!this.host.keepsVolumes) return;
    void this.volumes
      .sweep()
      .then(({ retrySoon }) => {
        if (!retrySoon || this.stopped || this.volumeRetryTimer !== undefined) return;
        this.volumeRetryTimer = this.clock.setTimer(VOLUME_SWEEP_RETRY_MS, () => {
          this.volumeRetryTimer = undefined;
          this.sweepVolumes();
        });
      })
      .catch((error: unknown) => this.log(`volume sweep failed: ${(error as Error).message}`));
  }

  // ---------------------------------------------------------------------------
  // Health

  /**
   * The health tick runs while an instance here has a health check and sets
   * no timer otherwise (an idle node wakes less): started when a tracked
   * instance gets a check, ended by the first tick that finds none.
   */
  private ensureHealthTick(): void {
    if (this.stopped || this.healthTickCancel !== undefined) return;
    this.healthTickCancel = this.every(HEALTH_TICK_MS, () => this.healthTick());
  }

  private healthTick(): void {
    const nowMs = this.clock.now();
    let checked = 0;
    for (const [, tracked] of this.supervisions.each('tracked')) {
      const { healthcheck, health } = tracked;
      if (healthcheck !== undefined) checked++;
      if (!healthcheck || !health || tracked.probing || tracked.busy || tracked.state !== 'running' || !probeDue(health, nowMs)) continue;
      tracked.probing = true;
      void runProbe(healthcheck, {
        id: tracked.id,
        runtime: tracked.runtime,
        ...(tracked.address ? { address: tracked.address } : {}),
        ...(tracked.hostPorts ? { hostPorts: tracked.hostPorts } : {}),
      })
        .then((failure) => this.afterProbe(tracked, failure))
        .catch((error: unknown) => this.log(`health check of ${tracked.id} failed to run: ${(error as Error).message}`))
        .finally(() => {
          tracked.probing = false;
        });
    }
    if (checked === 0 && this.healthTickCancel !== undefined) {
      this.healthTickCancel();
      this.healthTickCancel = undefined;
    }
  }

  private afterProbe(tracked: Tracked, failure: string | undefined): void {
    if (this.supervisions.get(tracked.id)?.tracked !== tracked || !tracked.health || !tracked.healthcheck || tracked.state !== 'running') return;
    const before = tracked.health.state;
    tracked.health = recordProbe(tracked.healthcheck, tracked.health, this.clock.now(), failure);
    if (failure !== undefined) this.metrics.healthFailures.inc();
    const after = tracked.health.state;
    if (after === before) return;
    this.metrics.healthTransitions.inc({ to: after });
    if (after === 'healthy' && tracked.startTrace !== undefined) {
      recordEvent('executor.healthy', { parent: contextOf(tracked.startTrace), startTimeMs: tracked.startedAtMs, attributes: { 'hivemind.instance.id': tracked.id } });
      delete tracked.startTrace;
    }
    const message = after === 'unhealthy' ? `health check failed ${tracked.health.failingStreak} times in a row: ${failure}` : undefined;
    this.observe(tracked.id, { version: tracked.version, state: after, ...(message ? { message } : portsMessage(tracked)), ...this.endpointOf(tracked) });
    if (after === 'unhealthy' && !tracked.busy) {
      tracked.unhealthyKill = true;
      tracked.busy = true;
      this.log(`instance ${tracked.id} is unhealthy; stopping it for the restart policy`);
      tracked.runtime
        .stop(tracked.id, { signal: tracked.stopSignal, graceMs: tracked.stopGraceMs })
        .catch((error: unknown) => this.log(`stopping unhealthy instance ${tracked.id} failed: ${(error as Error).message}`))
        .finally(() => {
          tracked.busy = false;
          this.schedulePass(0);
        });
    }
  }

  private runningState(tracked: Tracked): InstanceState {
    return tracked.health ? tracked.health.state : 'running';
  }

  /** Where a running workload is reachable, for its status report. */
  private endpointOf(tracked: Tracked): { endpoint?: InstanceEndpoint } {
    const instance = this.services.machine.instance(tracked.id);
    const spec = instance && this.specOf(instance.tenant, instance.app, tracked.version);
    const endpoint = instanceEndpoint({
      runtimeKind: tracked.runtime.kind,
      ...(tracked.address !== undefined ? { workloadAddress: tracked.address } : {}),
      ...(tracked.addresses !== undefined ? { workloadAddresses: tracked.addresses } : {}),
      ...(tracked.hostPorts !== undefined ? { hostPorts: tracked.hostPorts } : {}),
      ports: spec?.ports ?? [],
      nodeAddress: this.nodeAddress,
    });
    return endpoint === undefined ? {} : { endpoint };
  }

  /**
   * Where a process app reaches this node's DNS server (`HIVEMIND_DNS`):
   * the bind address, or loopback when the server listens on every
   * interface, on the port the DNS component bound (the real one when
   * `--dns-port 0`). Absent when the DNS server could not bind.
   */
  private dnsInputs(): { dnsAddress?: string } {
    const { bind } = this.services.config;
    const port = this.services.boundPorts().dns;
    // An embedding without the DNS settings (tests' services) gives process apps no HIVEMIND_DNS.
    if (port === undefined || bind === undefined) return {};
    const host = bind === '0.0.0.0' || bind === '::' ? '127.0.0.1' : bind;
    return { dnsAddress: isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}` };
  }

  // ---------------------------------------------------------------------------
  // Status

  private observe(id: string, observed: Observed): void {
    const previous = this.supervisions.get(id)?.observed;
    this.supervisions.put(id, 'observed', observed);
    const same =
      previous &&
      previous.version === observed.version &&
      previous.state === observed.state &&
      previous.exitCode === observed.exitCode &&
      previous.message === observed.message &&
      sameEndpoint(previous.endpoint, observed.endpoint);
    if (!same) this.send(id, observed);
  }

  private send(id: string, observed: Observed): void {
    const nowMs = this.clock.now();
    this.supervisions.put(id, 'lastSentAtMs', nowMs);
    this.reporter.report({
      id,
      state: observed.state,
      ...(observed.exitCode !== undefined ? { exitCode: observed.exitCode } : {}),
      ...(observed.message !== undefined ? { message: observed.message } : {}),
      ...(observed.endpoint !== undefined ? { endpoint: observed.endpoint } : {}),
      reportedBy: this.services.nodeId,
      reportedAt: nowMs,
      version: observed.version,
    });
  }

  /** Sends again what the replica does not show (a lost report, or a reset by a new placement). */
  private resendDisagreements(wanted: Instance[], nowMs: number): void {
    for (const instance of wanted) {
      const observed = this.supervisions.get(instance.id)?.observed;
      if (observed === undefined || observed.version !== instance.version || this.reporter.has(instance.id)) continue;
      const status = instance.status;
      const agrees = status.state === observed.state && status.exitCode === observed.exitCode && status.reportedBy === this.services.nodeId && sameEndpoint(status.endpoint, observed.endpoint);
      if (agrees || nowMs - (this.supervisions.get(instance.id)?.lastSentAtMs ?? 0) < RESEND_AFTER_MS) continue;
      this.send(instance.id, observed);
    }
    for (const [id] of this.supervisions.each('lastSentAtMs')) if (this.supervisions.get(id)?.observed === undefined) this.supervisions.clear(id, 'lastSentAtMs');
  }

  private stateCounts(): Map<InstanceState, number> {
    const counts = new Map<InstanceState, number>();
    for (const [id, observed] of this.supervisions.each('observed')) if (this.supervisions.get(id)?.tracked !== undefined || observed.state === 'failed') counts.set(observed.state, (counts.get(observed.state) ?? 0) + 1);
    return counts;
  }

  // ---------------------------------------------------------------------------

  private specOf(tenant: string, app: string, version: number): AppSpec | undefined {
    return this.services.machine.app(tenant, app)?.versions.find((entry) => entry.version === version)?.spec;
  }

  private safeClusterKey(): Uint8Array | undefined {
    try {
      return this.clusterKey();
    } catch (error) {
      this.log(`cannot read the cluster key: ${(error as Error).message}`);
      return undefined;
    }
  }

  private rotateLogs(): void {
    for (const [, tracked] of this.supervisions.each('tracked')) {
      try {
        this.host.rotateLog(tracked.logPath);
      } catch (error) {
        this.log(`rotating the log of ${tracked.id} failed: ${(error as Error).message}`);
      }
    }
  }

  private log(line: string, level?: 'warn'): void {
    this.services.log('executor', line, level);
  }
}

interface ExecutorMetrics {
  starts: Counter<'outcome'>;
  startSeconds: Histogram;
  restarts: Counter;
  healthFailures: Counter;
  healthTransitions: Counter<'to'>;
}

const INSTANCE_STATES: InstanceState[] = ['starting', 'running', 'healthy', 'unhealthy', 'exited', 'oom-killed', 'failed', 'stopped'];

function executorMetrics(registry: Registry, counts: () => Map<InstanceState, number>): ExecutorMetrics {
  const existing = <T>(name: string): T | undefined => registry.getSingleMetric(name) as T | undefined;
  const gauge = existing<Gauge>('hivemind_executor_instances');
  if (gauge === undefined) {
    new Gauge({
      name: 'hivemind_executor_instances',
      help: 'Instances this node runs or ran, by the state it reports',
      labelNames: ['state'],
      registers: [registry],
      collect() {
        const found = counts();
        for (const state of INSTANCE_STATES) this.set({ state }, found.get(state) ?? 0);
      },
    });
  }
  const counter = (name: string, help: string): Counter => existing<Counter>(name) ?? new Counter({ name, help, registers: [registry] });
  const labelled = <L extends string>(name: string, help: string, labelNames: L[]): Counter<L> =>
    existing<Counter<L>>(name) ?? new Counter({ name, help, labelNames, registers: [registry] });
  return {
    starts: labelled('hivemind_executor_starts_total', 'Workload starts on this node, by outcome (started: the runtime runs it; failed: it could not be started)', ['outcome']),
    startSeconds:
      existing<Histogram>('hivemind_executor_start_duration_seconds') ??
      new Histogram({
        name: 'hivemind_executor_start_duration_seconds',
        help: 'From deciding to start an instance to the runtime running it (volumes, image, network, container or process), for starts that succeeded',
        buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
        registers: [registry],
      }),
    restarts: counter('hivemind_executor_restarts_total', 'Workloads started again by the restart policy'),
    healthFailures: counter('hivemind_executor_health_check_failures_total', 'Health-check probes that failed'),
    healthTransitions: labelled('hivemind_executor_health_transitions_total', 'Health changes of running workloads, by the state entered (healthy, unhealthy)', ['to']),
  };
}

/** The factory listed in the agent's components. */
export function createExecutor(services: NodeServices, options: ExecutorOptions = {}): Executor {
  return new Executor(services, options);
}

/**
 * The node's IP address for endpoints: `advertise` when it is one, else what
 * it resolves to; loopback when it does not resolve (said in the log).
 */
async function nodeAddressOf(advertise: string | undefined, host: ExecutorHost, log: (line: string) => void): Promise<string> {
  if (advertise === undefined || advertise === '') return '127.0.0.1';
  if (isIP(advertise) !== 0) return advertise;
  try {
    return await host.lookup(advertise);
  } catch (error) {
    log(`the advertised address "${advertise}" does not resolve (${(error as Error).message}); process apps are reported at 127.0.0.1`);
    return '127.0.0.1';
  }
}

/** States after which a retired instance needs no more reports. */
const TERMINAL_STATES: ReadonlySet<string> = new Set(['stopped', 'exited', 'failed', 'oom-killed']);

/** Where a running instance's ports are, when the node gave it host ports of its own (process apps): for `hivemind ps`. */
function portsMessage(tracked: Tracked): { message?: string } {
  if (tracked.hostPorts === undefined) return {};
  const address = tracked.address ?? '127.0.0.1';
  const shown = Object.entries(tracked.hostPorts).map(([target, port]) => `${target} on ${address}:${port}`);
  return shown.length > 0 ? { message: `port${shown.length === 1 ? '' : 's'} ${shown.join(', ')}` } : {};
}

/** The tenant user range: the option, else $HIVEMIND_TENANT_UIDS, else the default; with the problem of a badly set variable. */
function tenantUidRange(option: TenantUidRange | undefined): { range: TenantUidRange; problem?: string } {
  if (option !== undefined) return { range: option };
  const text = process.env[TENANT_UIDS_VARIABLE];
  if (text === undefined || text === '') return { range: TENANT_UID_RANGE_DEFAULT };
  const parsed = parseTenantUidRange(text);
  return parsed.ok ? { range: parsed.range } : { range: TENANT_UID_RANGE_DEFAULT, problem: parsed.message };
}

/** Why an agent that is not root cannot confine process apps (it cannot switch users); undefined for root. */
function notRootProblem(uid: number | undefined): string | undefined {
  if (uid === undefined || uid === 0) return undefined;
  return (
    `the agent runs as uid ${uid}, not root, so it cannot run process apps as their tenants' own users; ` +
    'run the agent as root, or let a tenant run as the agent\'s user (hivemind tenants update TENANT --host-users allow)'
  );
}
