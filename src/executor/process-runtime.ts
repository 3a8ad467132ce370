/**
 * The process runtime: apps that name a `command` and no image run as plain
 * processes on the node, supervised by the executor (see `runtime.ts` for
 * the contract).
 *
 * Surviving the agent. Each workload is a small `/bin/sh` wrapper started
 * detached, as the leader of its own process group, with stdout and stderr
 * on the instance's log file (opened O_APPEND; the agent closes its copy at
 * once). The wrapper runs the command in the foreground and writes its exit
 * status to `<id>.exit` when it ends, so the status is kept even when no
 * agent runs at that moment. The wrapper traps the usual stop signals with a
 * no-op, so a signal to the group stops the command while the wrapper lives
 * on to record how it ended (a trap set in the shell is reset to the default
 * in the command it execs, so the command sees the signal normally).
 *
 * Records. `<stateDir>/<id>.json` holds the wrapper's pid and its start time
 * from /proc/PID/stat (a pid alone may be reused), the version and spec
 * hash. `open()` adopts a record whose pid is alive with the same start
 * time; a record whose process is gone, or whose exit file holds a status
 * (the wrapper's last step is to exit after writing it), becomes an exited
 * workload (its code from the exit file, or 137 when the wrapper itself was
 * killed).
 *
 * Starts interrupted by a crash. Between the spawn and the record's rename
 * the agent may die (kill -9), leaving a workload no record names. So a
 * start first writes the marker `<id>.starting`, and the wrapper carries
 * the marker's path in `HIVEMIND_START_MARKER` (unique to this node's
 * state folder, so agents sharing a host never match each other's); the
 * marker goes once the record is in place. `open()` treats a marker without
 * a running record as such a start: it kills the process groups whose
 * environment carries that path (found in /proc) and forgets the start, which was never reported, so
 * the executor starts the instance afresh instead of leaving a stray.
 *
 * Exits are noticed by the child's `exit` event for workloads this runtime
 * started, and by polling /proc every `pollIntervalMs` for every workload
 * (adopted ones are not our children), while one runs: a runtime with no
 * running workload sets no timer (an idle node wakes less).
 *
 * Users. A workload with `runAs` (its tenant's own user, see
 * tenant-users.ts) runs as that uid and gid, with no supplementary groups and
 * no new privileges (setuid binaries do not raise it); one with `user` runs
 * as that host user; otherwise as the agent's. The wrapper itself stays the
 * agent's (it writes the exit file and joins the cgroups).
 *
 * Limits. CPU and memory limits go through control groups (cgroups.ts): the
 * runtime makes the workload's folders with the limits before it spawns, and
 * the wrapper moves itself into them before it runs the command. A node that
 * cannot enforce a limit refuses the start with a message saying why; nothing
 * runs unlimited in its place. An exit with an OOM kill counted in the
 * workload's memory group is reported `oomKilled`.
 *
 * Not applied to processes: `readOnly`, and mounts: a named volume's path
 * reaches the process in `HIVEMIND_VOLUME_<NAME>` (see workload-spec.ts), and
 * a host path is refused with a message saying so. Secrets are files in a
 * 0700 folder owned by the workload's user on /dev/shm (or
 * $XDG_RUNTIME_DIR), never on disk, named by `HIVEMIND_SECRETS_DIR`.
 */
import type { UlimitSpec } from '../state/types.js';
import type { Writable } from 'node:stream';
import { ExecError, type ExecInputEvent } from '../node/capabilities.js';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chownSync, closeSync, existsSync, mkdirSync, openSync, readFileSync, readdirSync, renameSync, rmdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { join } from 'node:path';
import { assert } from '../../consensus/core/assert.js';
import {
  DEFAULT_PATH,
  findExecutable,
  isSameProcessAlive,
  memoryBackedRoot,
  processGroupExists,
  readProcessStat,
  resolveUser,
  signalName,
  signalProcessGroup,
  type HostUser,
} from './host.js';
import { ProcessCgroups, controllersFor, type WorkloadCgroups } from './cgroups.js';
import { HostPorts } from './host-ports.js';
import type { ExecOptions, ExecResult, RunningWorkload, Runtime, StopOptions, WorkloadExit, WorkloadSpec } from './runtime.js';

/** Exit status recorded when the wrapper itself was killed (as by SIGKILL: 128 + 9). */
export const EXIT_CODE_KILLED = 137;
/** How often exits of adopted workloads are looked for. */
export const POLL_INTERVAL_MS_DEFAULT = 500;
/** The most output of an exec kept for its result. */
export const EXEC_OUTPUT_BYTES_MAX = 4096;
/** Set in every wrapper's environment to its start marker's path (see "Starts interrupted by a crash"). */
export const START_MARKER_VARIABLE = 'HIVEMIND_START_MARKER';
const STARTING_SUFFIX = '.starting';
/** How long after SIGKILL a workload may take to disappear before stop() gives up with an error. */
const KILL_WAIT_MS_MAX = 10_000;
const STOP_POLL_MS = 25;
/** An empty workload cgroup older than this is left over (see ProcessCgroups.sweepEmpty). */
const STALE_CGROUP_AGE_MS = 60_000;

/**
 * The wrapper: `sh -c WRAPPER hivemind-process EXIT_FILE CGROUP_PROCS argv...`.
 * It moves itself into the workload's cgroups (CGROUP_PROCS: the
 * `cgroup.procs` files, space-separated, or empty), traps the stop signals
 * with a no-op (deferred until the foreground command ends), runs the
 * command, and records its status. A cgroup it cannot join ends it with
 * EXIT_CODE_CGROUP before the command runs.
 */
const WRAPPER =
  'exit_file=$1; cgroup_procs=$2; shift 2; ' +
  'for procs in $cgroup_procs; do echo $$ > "$procs" || { echo "hivemind: cannot join cgroup $procs" >&2; echo 125 > "$exit_file"; exit 125; }; done; ' +
  'trap : TERM INT HUP QUIT USR1 USR2; "$@"; status=$?; echo "$status" > "$exit_file"; exit "$status"';
/**
 * `prlimit --nofile=SOFT:HARD ... --` for Compose's `ulimits` (-1:
 * unlimited), or nothing without any: util-linux's prlimit sets them on
 * itself and execs the rest of the argv, which inherits them.
 */
export function prlimitPrefix(ulimits: readonly UlimitSpec[] | undefined): string[] {
  if (ulimits === undefined || ulimits.length === 0) return [];
  const amount = (value: number): string => (value === -1 ? 'unlimited' : String(value));
  return ['prlimit', ...ulimits.map((limit) => `--${limit.name}=${amount(limit.soft)}:${amount(limit.hard)}`), '--'];
}

/** `sh -c EXEC_WRAPPER hivemind-exec CGROUP_PROCS argv...`: joins the workload's cgroups, then runs the command in its place. */
const EXEC_WRAPPER =
  'cgroup_procs=$1; shift; ' +
  'for procs in $cgroup_procs; do echo $$ > "$procs" || { echo "hivemind: cannot join cgroup $procs" >&2; exit 125; }; done; exec "$@"';

/** The wrapper's exit status when it could not join the workload's cgroups. */
export const EXIT_CODE_CGROUP = 125;

interface WorkloadRecord {
  id: string;
  tenant: string;
  app: string;
  version: number;
  specHash: string;
  pid: number;
  startTicks: number;
  startedAt: number;
  logPath: string;
  /** For exec health checks after adoption: the workload's environment, folder and user. */
  environment: Record<string, string>;
  workingDir: string;
  user?: HostUser;
  secretsDir?: string;
  /** The app's port targets and the host ports this instance got for them. */
  hostPorts?: Record<string, number>;
  /** The workload's control groups, when it has limits. */
  cgroups?: WorkloadCgroups;
  state: 'running' | 'exited';
  exitCode?: number;
  /** Set at exit: the kernel's OOM killer killed a process of its memory group. */
  oomKilled?: boolean;
}

export interface ProcessRuntimeOptions {
  /** Where records and exit files live (`<dataDir>/executor/process`). */
  stateDir: string;
  log?: (line: string) => void;
  pollIntervalMs?: number;
  /** The environment processes start from, before their own (default: PATH only). */
  baseEnvironment?: Record<string, string>;
  /** Control groups for limits (default: this host's, scoped to `stateDir`). */
  cgroups?: ProcessCgroups;
}

/** Runs command apps as supervised process groups. */
export class ProcessRuntime implements Runtime {
  readonly kind = 'process';
  private readonly stateDir: string;
  private readonly log: (line: string) => void;
  private readonly pollIntervalMs: number;
  private readonly baseEnvironment: Record<string, string>;
  private readonly records = new Map<string, WorkloadRecord>();
  private readonly children = new Map<string, ChildProcess>();
  private readonly listeners = new Set<(exit: WorkloadExit) => void>();
  /** Set by close(): nothing is written or reported after it. */
  private closed = false;
  private poller: NodeJS.Timeout | undefined;
  private opened = false;
  private cgroupsValue: ProcessCgroups | undefined;
  private readonly cgroupsOption: ProcessCgroups | undefined;
  /** Ports of the node for apps' ports that publish none (host-ports.ts). */
  private readonly hostPorts = new HostPorts();

  constructor(options: ProcessRuntimeOptions) {
    this.stateDir = options.stateDir;
    this.cgroupsOption = options.cgroups;
    this.log = options.log ?? (() => {});
    this.pollIntervalMs = options.pollIntervalMs ?? POLL_INTERVAL_MS_DEFAULT;
    this.baseEnvironment = options.baseEnvironment ?? { PATH: process.env.PATH || DEFAULT_PATH };
  }

  async available(): Promise<boolean> {
    return existsSync('/bin/sh') && existsSync('/proc/self/stat');
  }

  async open(): Promise<void> {
    if (this.opened) return;
    this.opened = true;
    mkdirSync(this.stateDir, { recursive: true, mode: 0o700 });
    const names = readdirSync(this.stateDir);
    for (const name of names) {
      if (!name.endsWith('.json')) continue;
      const record = this.readRecord(join(this.stateDir, name));
      if (record === undefined) {
        this.log(`process runtime: ignoring unreadable record ${name}`);
        continue;
      }
      this.records.set(record.id, record);
      // A status in the exit file means the command ended (start clears an old one); its wrapper may
      // still be on its last step, between writing the file and exiting: markExited ends it.
      if (record.state === 'running' && (!isSameProcessAlive(record.pid, record.startTicks) || this.readExitCode(record.id) !== undefined)) {
        // It ended while no agent watched: record how, report it through list().
        this.markExited(record, { notify: false });
      } else if (record.state === 'running') {
        this.log(`process runtime: adopted instance ${record.id} (pid ${record.pid})`);
      }
    }
    for (const name of names) {
      if (name.endsWith(STARTING_SUFFIX)) this.endInterruptedStart(name.slice(0, -STARTING_SUFFIX.length));
    }
    if (existsSync('/sys/fs/cgroup')) {
      for (const path of this.cgroups().sweepEmpty(Date.now(), STALE_CGROUP_AGE_MS)) this.log(`process runtime: removed ${path}, an empty cgroup a stopped agent left`);
    }
    this.maybeStartPoller();
  }

  /** Polls while a workload runs; an idle runtime (none running) sets no timer. */
  private maybeStartPoller(): void {
    if (this.poller !== undefined || this.closed) return;
    if (![...this.records.values()].some((record) => record.state === 'running')) return;
    this.poller = setInterval(() => this.poll(), this.pollIntervalMs);
    this.poller.unref();
  }

  async list(): Promise<RunningWorkload[]> {
    return [...this.records.values()].map((record) => this.view(record));
  }

  async start(spec: WorkloadSpec): Promise<RunningWorkload> {
    assert(this.opened, 'ProcessRuntime.start before open');
    const problem = (text: string): Error => new Error(`instance ${spec.id}: cannot start: ${text}`);
    if (this.records.has(spec.id)) throw problem('a workload with this id exists; remove it first');
    if (spec.image !== undefined) throw problem(`the process runtime does not run images (image "${spec.image}")`);
    const argv = [...(spec.entrypoint ?? []), ...(spec.command ?? [])];
    if (argv.length === 0) throw problem('the app has no command');
    if (spec.mounts.length > 0) throw problem(`a process app cannot bind host paths (${spec.mounts[0]!.source}); use a named volume, whose path it finds in HIVEMIND_VOLUME_<NAME>, or give the app an image`);
    assert(spec.runAs === undefined || spec.user === undefined, `instance ${spec.id}: a workload runs as its tenant's user or as its user, not both`);
    const user = spec.user === undefined || spec.user === '' ? undefined : resolveUser(spec.user);
    if (user && !user.ok) throw problem(`user: ${user.message}`);
    const hostUser: HostUser | undefined = spec.runAs !== undefined ? { uid: spec.runAs.uid, gid: spec.runAs.gid } : user?.ok ? user.user : undefined;
    if (spec.runAs !== undefined) assert(spec.runAs.uid > 0 && spec.runAs.gid > 0, `instance ${spec.id}: a tenant's user is never root`);
    const workingDir = spec.workingDir || hostUser?.home || '/';
    if (!isDirectory(workingDir)) throw problem(`working_dir "${workingDir}" is not a folder on this node`);
    const environment: Record<string, string> = { ...this.baseEnvironment, ...(hostUser?.home ? { HOME: hostUser.home } : {}), ...spec.environment };
    const hostPorts = await assignHostPorts(spec, this.hostPorts).catch((error: Error) => {
      throw problem(error.message);
    });
    for (const [target, port] of Object.entries(hostPorts)) environment[`HIVEMIND_PORT_${target}`] = String(port);
    const firstPort = spec.ports[0];
    if (firstPort !== undefined && spec.environment.PORT === undefined) environment.PORT = String(hostPorts[String(firstPort.target)]);
    const command = argv[0]!;
    if (findExecutable(command, environment.PATH ?? DEFAULT_PATH, workingDir) === undefined) {
      throw problem(`command "${command}" is not found${command.includes('/') ? '' : ` in PATH (${environment.PATH ?? DEFAULT_PATH})`} or is not executable`);
    }
    // Before anything is written: a limit this node cannot enforce refuses the start (CgroupError says why).
    let cgroups: WorkloadCgroups | undefined;
    const limits = { ...spec.limits, ...(spec.ioLimits !== undefined ? { io: spec.ioLimits } : {}) };
    if (controllersFor(limits).length > 0) {
      try {
        cgroups = this.cgroups().create(spec.id, limits);
      } catch (error) {
        throw problem((error as Error).message);
      }
    }
    let secretsDir: string | undefined;
    try {
      secretsDir = spec.secrets.length > 0 ? this.writeSecrets(spec, hostUser) : undefined;
    } catch (error) {
      // Nothing of this start may stay behind (runtime.ts, Errors).
      if (cgroups) this.cgroups().remove(cgroups);
      throw error;
    }
    if (secretsDir) environment.HIVEMIND_SECRETS_DIR = secretsDir;
    environment[START_MARKER_VARIABLE] = this.startingPath(spec.id);
    const exitPath = this.exitPath(spec.id);
    rmSync(exitPath, { force: true });
    writeFileSync(this.startingPath(spec.id), '', { mode: 0o600 });
    mkdirSync(join(spec.logPath, '..'), { recursive: true });
    const logFd = openSync(spec.logPath, 'a', 0o640);
    let child: ChildProcess;
    try {
      const confined = spec.runAs !== undefined ? ['--no-new-privs'] : [];
      const asUser = hostUser ? ['setpriv', `--reuid=${hostUser.uid}`, `--regid=${hostUser.gid}`, '--clear-groups', ...confined, '--', ...argv] : argv;
      // The limits are set while still root, so a hard limit may be raised, then the user is dropped.
      const wrapped = [...prlimitPrefix(spec.container?.ulimits), ...asUser];
      const procs = cgroups === undefined ? '' : ProcessCgroups.procsFiles(cgroups).join(' ');
      child = spawn('/bin/sh', ['-c', WRAPPER, 'hivemind-process', exitPath, procs, ...wrapped], {
        detached: true,
        stdio: ['ignore', logFd, logFd],
        cwd: workingDir,
        env: environment,
      });
    } finally {
      closeSync(logFd);
    }
    const pid = child.pid;
    if (pid === undefined) {
      rmSync(this.startingPath(spec.id), { force: true });
      if (secretsDir) rmSync(secretsDir, { recursive: true, force: true });
      if (cgroups) this.cgroups().remove(cgroups);
      const failure = await new Promise<Error>((resolve) => child.once('error', resolve));
      throw problem(failure.message);
    }
    child.on('error', (error) => this.log(`process runtime: instance ${spec.id}: ${error.message}`));
    const stat = readProcessStat(pid);
    const record: WorkloadRecord = {
      id: spec.id,
      tenant: spec.tenant,
      app: spec.app,
      version: spec.version,
      specHash: spec.specHash,
      pid,
      // A wrapper that already ended has no stat: any start time marks it gone for the next poll.
      startTicks: stat?.startTicks ?? -1,
      startedAt: Date.now(),
      logPath: spec.logPath,
      environment,
      workingDir,
      ...(hostUser ? { user: hostUser } : {}),
      ...(secretsDir ? { secretsDir } : {}),
      ...(Object.keys(hostPorts).length > 0 ? { hostPorts } : {}),
      ...(cgroups ? { cgroups } : {}),
      state: 'running',
    };
    this.records.set(spec.id, record);
    this.children.set(spec.id, child);
    this.writeRecord(record);
    this.maybeStartPoller();
    rmSync(this.startingPath(spec.id), { force: true });
    child.once('exit', () => {
      // A closed runtime leaves its records alone: the next agent adopts the workload and reads its exit file.
      if (this.closed) return;
      this.children.delete(spec.id);
      const current = this.records.get(spec.id);
      if (current === record && record.state === 'running') this.markExited(record, { notify: true });
    });
    child.unref();
    return this.view(record);
  }

  async stop(id: string, options: StopOptions): Promise<void> {
    const record = this.records.get(id);
    if (record === undefined || record.state !== 'running') return;
    const signal = signalName(options.signal) ?? 'SIGTERM';
    signalProcessGroup(record.pid, signal);
    const deadline = Date.now() + Math.max(0, options.graceMs);
    while (record.state === 'running' && this.alive(record) && Date.now() < deadline) await sleep(STOP_POLL_MS);
    if (record.state === 'running' && this.alive(record)) {
      this.log(`process runtime: instance ${id} did not stop within ${options.graceMs} ms of ${signal}; killing it`);
      signalProcessGroup(record.pid, 'SIGKILL');
      const killDeadline = Date.now() + KILL_WAIT_MS_MAX;
      while (this.alive(record) && Date.now() < killDeadline) await sleep(STOP_POLL_MS);
      if (this.alive(record)) throw new Error(`instance ${id}: pid ${record.pid} is still alive ${KILL_WAIT_MS_MAX} ms after SIGKILL`);
    }
    if (record.state === 'running') this.markExited(record, { notify: true });
  }

  async remove(id: string): Promise<void> {
    const record = this.records.get(id);
    if (record === undefined) return;
    if (record.state === 'running' && this.alive(record)) throw new Error(`instance ${id}: cannot remove a running workload; stop it first`);
    if (record.cgroups) await this.removeCgroups(record.id, record.cgroups);
    this.records.delete(id);
    if (record.secretsDir) {
      rmSync(record.secretsDir, { recursive: true, force: true });
      removeIfEmpty(join(record.secretsDir, '..'));
    }
    rmSync(this.exitPath(id), { force: true });
    rmSync(this.recordPath(id), { force: true });
  }

  onExit(listener: (exit: WorkloadExit) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Runs `argv` on the host with the workload's environment, folder and
   * user. With `output` (`hivemind exec`) it also joins the workload's
   * cgroups first (as root, through the start's wrapper), then drops to the
   * workload's user, so what it runs counts toward the instance's limits.
   */
  async exec(id: string, argv: string[], options: ExecOptions): Promise<ExecResult> {
    const record = this.records.get(id);
    if (record === undefined) throw new Error(`instance ${id}: no such workload to run a check in`);
    if (argv.length === 0) throw new Error(`instance ${id}: the check has no command`);
    const environment = { ...record.environment, ...(record.secretsDir ? { HIVEMIND_SECRETS_DIR: record.secretsDir } : {}) };
    const common = { environment, workingDir: record.workingDir, timeoutMs: options.timeoutMs, ...(options.signal ? { signal: options.signal } : {}) };
    if (options.output === undefined) return runCommand(argv, { ...common, ...(record.user ? { user: record.user } : {}) });
    if (options.terminal !== undefined) {
      throw new ExecError('unsupported', `instance "${id}" is a process app, which runs without a terminal: run the command without -t (-i alone gives it your input)`, 'tty');
    }
    const procs = record.cgroups === undefined ? '' : ProcessCgroups.procsFiles(record.cgroups).join(' ');
    const asUser = record.user ? ['setpriv', `--reuid=${record.user.uid}`, `--regid=${record.user.gid}`, '--clear-groups', '--no-new-privs', '--'] : [];
    return runCommand(['/bin/sh', '-c', EXEC_WRAPPER, 'hivemind-exec', procs, ...asUser, ...argv], {
      ...common,
      output: options.output,
      ...(options.stdin === true ? { input: options.input ?? emptyInput() } : {}),
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.poller) clearInterval(this.poller);
    this.poller = undefined;
    this.listeners.clear();
    // The children keep running: drop our handles without touching them.
    this.children.clear();
  }

  // ---------------------------------------------------------------------------

  private view(record: WorkloadRecord): RunningWorkload {
    return {
      ...(record.hostPorts ? { hostPorts: record.hostPorts } : {}),
      id: record.id,
      version: record.version,
      specHash: record.specHash,
      state: record.state,
      pid: record.pid,
      startedAt: record.startedAt,
      address: '127.0.0.1',
      ...(record.state === 'exited' ? { exitCode: record.exitCode ?? EXIT_CODE_KILLED, oomKilled: record.oomKilled ?? false } : {}),
    };
  }

  private alive(record: WorkloadRecord): boolean {
    return isSameProcessAlive(record.pid, record.startTicks);
  }

  private poll(): void {
    let running = 0;
    for (const record of this.records.values()) {
      if (record.state !== 'running') continue;
      if (!this.alive(record)) this.markExited(record, { notify: true });
      else running++;
    }
    if (running === 0 && this.poller !== undefined) {
      clearInterval(this.poller);
      this.poller = undefined;
    }
  }

  private markExited(record: WorkloadRecord, { notify }: { notify: boolean }): void {
    assert(record.state === 'running', `instance ${record.id} marked exited twice`);
    const exitCode = this.readExitCode(record.id);
    // The wrapper is gone; whatever it left in its group (the command's own children) goes with it.
    if (processGroupExists(record.pid)) signalProcessGroup(record.pid, 'SIGKILL');
    record.state = 'exited';
    record.exitCode = exitCode ?? EXIT_CODE_KILLED;
    record.oomKilled = record.cgroups !== undefined && ProcessCgroups.oomKills(record.cgroups) > 0;
    this.writeRecord(record);
    if (!notify) return;
    const exit: WorkloadExit = { id: record.id, version: record.version, exitCode: record.exitCode, oomKilled: record.oomKilled, at: Date.now() };
    for (const listener of this.listeners) {
      try {
        listener(exit);
      } catch (error) {
        this.log(`process runtime: an exit listener threw: ${(error as Error).message}`);
      }
    }
  }

  /** This host's control groups, looked up at the first workload with limits. */
  private cgroups(): ProcessCgroups {
    this.cgroupsValue ??= this.cgroupsOption ?? new ProcessCgroups({ scope: createHash('sha256').update(this.stateDir).digest('hex').slice(0, 12) });
    return this.cgroupsValue;
  }

  /**
   * Removes an exited workload's cgroups. Its processes were killed with its
   * group; one may take a moment to leave (the kernel moves it out as it
   * exits), so a busy folder is tried again for up to KILL_WAIT_MS_MAX.
   */
  private async removeCgroups(id: string, cgroups: WorkloadCgroups): Promise<void> {
    const deadline = Date.now() + KILL_WAIT_MS_MAX;
    for (;;) {
      try {
        this.cgroups().remove(cgroups);
        return;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EBUSY' || Date.now() >= deadline) {
          throw new Error(`instance ${id}: cannot remove its cgroup: ${(error as Error).message}`);
        }
        for (const folder of cgroups.folders) killCgroupMembers(folder.path);
        await sleep(STOP_POLL_MS);
      }
    }
  }

  private readExitCode(id: string): number | undefined {
    try {
      const text = readFileSync(this.exitPath(id), 'utf8').trim();
      return /^\d+$/.test(text) ? Number(text) : undefined;
    } catch {
      return undefined;
    }
  }

  private writeSecrets(spec: WorkloadSpec, user: HostUser | undefined): string {
    const root = memoryBackedRoot();
    if (root === undefined) {
      throw new Error(`instance ${spec.id}: cannot start: secrets need a memory-backed folder (/dev/shm or $XDG_RUNTIME_DIR on tmpfs) and this node has none`);
    }
    // One folder per data directory, so two agents on one machine never share secrets.
    const scope = createHash('sha256').update(this.stateDir).digest('hex').slice(0, 12);
    const parent = join(root, `hivemind-${scope}`);
    mkdirSync(parent, { recursive: true, mode: 0o711 });
    const folder = join(parent, spec.id);
    rmSync(folder, { recursive: true, force: true });
    mkdirSync(folder, { mode: 0o700 });
    for (const secret of spec.secrets) {
      assert(/^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/.test(secret.name), `secret name ${JSON.stringify(secret.name)} is a DNS label`);
      const file = join(folder, secret.name);
      writeFileSync(file, secret.value, { mode: 0o400 });
      if (user) chownSync(file, user.uid, user.gid);
    }
    if (user) chownSync(folder, user.uid, user.gid);
    return folder;
  }

  private recordPath(id: string): string {
    return join(this.stateDir, `${id}.json`);
  }

  private startingPath(id: string): string {
    return join(this.stateDir, `${id}${STARTING_SUFFIX}`);
  }

  /**
   * A start the agent did not finish (see the file comment): kills what it
   * may have spawned, unless a record adopted above names it, and forgets it.
   */
  private endInterruptedStart(id: string): void {
    const record = this.records.get(id);
    if (record === undefined || record.state !== 'running') {
      for (const pid of processesCarrying(START_MARKER_VARIABLE, this.startingPath(id))) {
        this.log(`process runtime: instance ${id}: killing pid ${pid}, started just before the agent stopped and never recorded`);
        signalProcessGroup(pid, 'SIGKILL');
      }
      if (existsSync('/sys/fs/cgroup')) {
        for (const left of this.cgroups().removeAny(id)) this.log(`process runtime: instance ${id}: cannot remove the cgroup of its interrupted start: ${left}`);
      }
    }
    rmSync(this.startingPath(id), { force: true });
  }

  private exitPath(id: string): string {
    return join(this.stateDir, `${id}.exit`);
  }

  private writeRecord(record: WorkloadRecord): void {
    const path = this.recordPath(record.id);
    writeFileSync(`${path}.tmp`, JSON.stringify(record), { mode: 0o600 });
    renameSync(`${path}.tmp`, path);
  }

  private readRecord(path: string): WorkloadRecord | undefined {
    try {
      const record = JSON.parse(readFileSync(path, 'utf8')) as WorkloadRecord;
      const valid =
        typeof record.id === 'string' &&
        Number.isSafeInteger(record.pid) &&
        Number.isFinite(record.startTicks) &&
        Number.isSafeInteger(record.version) &&
        (record.state === 'running' || record.state === 'exited');
      return valid ? record : undefined;
    } catch {
      return undefined;
    }
  }
}

/** Runs a short command (a health check) and collects its status and first output bytes. */
export function runCommand(
  argv: string[],
  options: {
    environment: Record<string, string>;
    workingDir: string;
    user?: HostUser;
    timeoutMs: number;
    signal?: AbortSignal;
    output?: ExecOptions['output'];
    /** The command's stdin (its stdin bytes; resizes are ignored); absent: an empty stdin. */
    input?: AsyncIterable<ExecInputEvent>;
  },
): Promise<ExecResult> {
  return new Promise((resolve) => {
    const [command, ...args] = argv;
    assert(command !== undefined, 'runCommand needs a command');
    let output = '';
    let timedOut = false;
    let settled = false;
    const child = spawn(command, args, {
      cwd: options.workingDir,
      env: options.environment,
      stdio: [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      detached: true,
      ...(options.user ? { uid: options.user.uid, gid: options.user.gid } : {}),
    });
    const collect = (stream: 'stdout' | 'stderr') => (chunk: Buffer): void => {
      options.output?.(stream, chunk);
      if (output.length < EXEC_OUTPUT_BYTES_MAX) output += chunk.toString('utf8').slice(0, EXEC_OUTPUT_BYTES_MAX - output.length);
    };
    if (options.input !== undefined && child.stdin !== null) void feedStdin(child.stdin, options.input);
    child.stdout?.on('data', collect('stdout'));
    child.stderr?.on('data', collect('stderr'));
    const killAll = (): void => {
      if (child.pid !== undefined) signalProcessGroup(child.pid, 'SIGKILL');
    };
    const timer = setTimeout(() => {
      timedOut = true;
      killAll();
    }, options.timeoutMs);
    // A caller that left: killed, not timed out.
    const onAbort = (): void => killAll();
    options.signal?.addEventListener('abort', onAbort, { once: true });
    const finish = (result: ExecResult): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      options.signal?.removeEventListener('abort', onAbort);
      resolve(result);
    };
    child.once('error', (error) => finish({ exitCode: 127, output: error.message, timedOut: false }));
    child.once('close', (code, signal) => {
      const exitCode = code ?? (signal ? 128 + (signalNumber(signal) ?? 9) : 1);
      finish({ exitCode, output, timedOut });
    });
  });
}

/**
 * Writes `input`'s stdin bytes to a command's stdin, each write taken before
 * the next event is read, and ends it at `stdin-end` or the input's end.
 * Never throws: a command that stopped reading drops the rest.
 */
async function feedStdin(stdin: Writable, input: AsyncIterable<ExecInputEvent>): Promise<void> {
  stdin.on('error', () => undefined);
  try {
    for await (const event of input) {
      if (stdin.destroyed || stdin.writableEnded) break;
      if (event.type === 'stdin-end') break;
      if (event.type === 'stdin') await new Promise<void>((resolve) => stdin.write(event.data, () => resolve()));
    }
  } catch {
    // The caller went away: the end of input.
  }
  stdin.end();
}

/** An input with nothing in it: the command reads end-of-file at once. */
async function* emptyInput(): AsyncGenerator<ExecInputEvent> {}

function signalNumber(signal: NodeJS.Signals): number | undefined {
  return (osConstants.signals as Record<string, number>)[signal];
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Host ports for a process app's ports: a process shares the node's network,
 * so two instances on one node cannot both listen on the target port. A
 * published port is used as is (the scheduler keeps two instances that
 * publish one port off the same node); any other port gets a free port of
 * the node. The process learns them as HIVEMIND_PORT_<target>, and the first
 * one as PORT unless the app sets PORT itself.
 */
async function assignHostPorts(spec: WorkloadSpec, free: HostPorts): Promise<Record<string, number>> {
  const assigned: Record<string, number> = {};
  for (const port of spec.ports) {
    assigned[String(port.target)] = port.published ?? (await free.take(port.protocol));
  }
  return assigned;
}

/**
 * The pids of process-group leaders whose environment holds
 * `variable=value` (a wrapper is its group's leader). Processes that cannot
 * be read (gone, or another user's) are skipped.
 */
function processesCarrying(variable: string, value: string): number[] {
  const wanted = `${variable}=${value}`;
  const found: number[] = [];
  for (const name of readdirSync('/proc')) {
    const pid = Number(name);
    if (!Number.isSafeInteger(pid) || pid <= 0 || pid === process.pid) continue;
    try {
      if (!readFileSync(`/proc/${pid}/environ`, 'latin1').split('\0').includes(wanted)) continue;
      if (readProcessStat(pid)?.processGroup !== pid) continue;
      found.push(pid);
    } catch {
      continue;
    }
  }
  return found;
}

/** SIGKILLs every process still in a cgroup folder (a command's child that left its process group). */
function killCgroupMembers(folder: string): void {
  let text: string;
  try {
    text = readFileSync(join(folder, 'cgroup.procs'), 'utf8');
  } catch {
    return;
  }
  for (const line of text.split('\n')) {
    const pid = Number(line);
    if (!Number.isSafeInteger(pid) || pid <= 0) continue;
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone already
    }
  }
}

/** Removes a folder that holds nothing (the secrets parent after its last workload); anything else leaves it. */
function removeIfEmpty(folder: string): void {
  try {
    rmdirSync(folder);
  } catch {
    // not empty, or gone: either is fine
  }
}
