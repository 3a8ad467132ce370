/**
 * The contract between the executor and the runtimes that run its workloads
 * (plain processes in `process-runtime.ts`, containers in `containerd/`).
 *
 * Ownership. The executor decides what runs: it builds a `WorkloadSpec` per
 * instance (one workload per instance id; the id is the instance id) and
 * calls `start`, `stop`, `remove`. A runtime owns how: it labels what it
 * starts with the instance's id, version and spec hash so that `list()` finds
 * it again after an agent restart, and it never starts, restarts or stops a
 * workload on its own. Restart policy, health checks and status reports live
 * in the executor, above every runtime.
 *
 * Lifetime. Workloads outlive the runtime object and the agent: `close()`
 * releases the runtime's own resources (sockets, timers, watchers) and leaves
 * workloads running. A new runtime over the same data directory (or the same
 * containerd namespace) finds them with `list()`; the executor adopts them.
 *
 * Logs. The executor names each workload's log file (`WorkloadSpec.logPath`);
 * the runtime appends stdout and stderr there with O_APPEND, by file
 * descriptor where it can, so that the executor's copy-truncate rotation
 * (`log-files.ts`) works while the workload holds the file open.
 *
 * Exits. A runtime reports every exit of a workload it started or adopted,
 * once, through the `onExit` listeners, including exits that happened while
 * no agent ran (then at the first `list()`/watch after start, as soon as it
 * can tell). A workload that has exited stays listed (state `exited`) until
 * `remove(id)`.
 *
 * Errors. Methods reject with an Error whose message names the instance and
 * the problem (`instance web-0a1b: cannot start: command "nod" not found`);
 * the executor reports that message as the instance's status. A rejection
 * never leaves a half-started workload behind that `list()` would not show.
 *
 * Networking. `ports` is handed to the runtime as written; a runtime that
 * gives workloads their own network (containerd with CNI) publishes
 * `published` ports on the node and reports the workload's address in
 * `RunningWorkload.address`. Processes share the host's network: their
 * address is 127.0.0.1 and ports are the process's own business.
 */

import type { ConfigMount, ContainerSettings } from '../state/types.js';
import type { ImageShare, PeerImages } from '../node/image-share.js';
import type { ExecInputEvent, NodeImages, TerminalSize } from '../node/capabilities.js';
import type { Registry } from 'prom-client';
import type { PortSpec, Resources, VolumeIoLimits } from '../state/types.js';

/** A file the workload sees under its secrets directory (`/run/secrets/NAME` in a container). */
export interface SecretFile {
  /** The secret's name: a DNS label, used as the file name. */
  name: string;
  /** The clear value. The runtime writes it only to memory-backed storage (tmpfs). */
  value: Uint8Array;
}

/** A bind of a host path into the workload. The executor resolves named volumes to host paths. */
export interface Mount {
  /** Absolute path on the node. */
  source: string;
  /** Absolute path inside the workload. */
  target: string;
  readOnly: boolean;
}

/** I/O limits on one block device (cgroup `io.max`): bytes per second and operations per second; absent: no limit. */
export interface DeviceIoLimit extends VolumeIoLimits {
  major: number;
  minor: number;
}

/** Everything a runtime needs to start one instance. Built by the executor (`workload-spec.ts`). */
export interface WorkloadSpec {
  /** The instance id; also the workload's id in the runtime. */
  id: string;
  tenant: string;
  /** The tenant networks a container joins, in order (the app's `networks`, or `default`), those the state holds; empty: the node subnet. Absent (older callers): `default`. */
  networks?: string[];
  app: string;
  /** The app version this workload runs. */
  version: number;
  /** A hash of the spec fields that matter to the runtime; equal hashes mean the same workload. */
  specHash: string;
  /** Container image reference; absent for process workloads. */
  image?: string;
  /** Argv (process), or the command overriding the image's. */
  command?: string[];
  entrypoint?: string[];
  environment: Record<string, string>;
  workingDir?: string;
  /** `uid[:gid]` or a user name (from /etc/passwd on the node, or from the image). */
  user?: string;
  /**
   * Process workloads: the tenant's own unprivileged user, which the
   * workload runs as (with no new privileges); `user` is then absent.
   * Absent: `user`, else the agent's own user (the tenant allows host users).
   */
  runAs?: { uid: number; gid: number };
  readOnly: boolean;
  ports: PortSpec[];
  limits: Resources;
  mounts: Mount[];
  /** I/O limits per block device (the loop devices of the volumes it mounts that have limits); absent: none. */
  ioLimits?: DeviceIoLimit[];
  secrets: SecretFile[];
  /** Where stdout and stderr go (appended). The executor rotates it. */
  logPath: string;
  /** Signal name that asks the workload to stop, e.g. `SIGTERM`. */
  stopSignal: string;
  stopGraceMs: number;
  /** Labels to attach where the runtime supports them (containers). */
  labels: Record<string, string>;
  /** The app's hostname, init, tmpfs, ulimits, capabilities and extra hosts (a process runtime applies `ulimits` only); absent: defaults. */
  container?: ContainerSettings;
  /** Files mounted read-only (Compose's configs, relative bind mounts); containers only. Absent: none. */
  configs?: ConfigMount[];
}

/** What a runtime knows of a workload it runs or ran. */
export interface RunningWorkload {
  id: string;
  version: number;
  specHash: string;
  state: 'running' | 'exited';
  /** The main process id on the node, where there is one. */
  pid?: number;
  /** Wall clock, ms since the epoch. */
  startedAt: number;
  /** Set once `state` is `exited`. */
  exitCode?: number;
  oomKilled?: boolean;
  /** Address on which the workload's own ports are reachable from the node (127.0.0.1 for processes). */
  address?: string;
  /** A container on more than one network: every address, in the order of its networks (the first is `address`). */
  addresses?: string[];
  /**
   * Where each of the app's ports (by its `target` number) is reachable at
   * `address`, when that differs from the target: a process app shares the
   * node's network, so each instance gets host ports of its own.
   */
  hostPorts?: Record<string, number>;
}

/** One exit of a workload, reported once. */
export interface WorkloadExit {
  id: string;
  version: number;
  /** The exit status; 128+N when killed by signal N (as shells report it). */
  exitCode: number;
  oomKilled: boolean;
  /** Wall clock, ms since the epoch, when the runtime noticed the exit. */
  at: number;
}

/** The outcome of running a command inside (or beside, for processes) a workload. */
export interface ExecResult {
  exitCode: number;
  /** The first bytes of stdout and stderr together, for the status message. */
  output: string;
  timedOut: boolean;
}

export interface StopOptions {
  /** Signal name, e.g. `SIGTERM`. */
  signal: string;
  /** Milliseconds between `signal` and SIGKILL. */
  graceMs: number;
}

export interface ExecOptions {
  timeoutMs: number;
  /** Aborting kills the command (a caller that left); `timedOut` stays false then. */
  signal?: AbortSignal;
  /**
   * Hears the output as it comes, by stream (`hivemind exec`); chunks of one
   * stream arrive in order. Absent: only the first bytes are kept, in the
   * result (a health check's status).
   */
  output?: (stream: 'stdout' | 'stderr', chunk: Uint8Array) => void;
  /** The command's input, with `output` only (see InstanceExecOptions.input). Absent: an empty stdin. */
  input?: AsyncIterable<ExecInputEvent>;
  /** Whether the command reads `input`'s stdin bytes (see InstanceExecOptions.stdin). */
  stdin?: boolean;
  /** A pseudo-terminal of this size, with `output` only (see InstanceExecOptions.terminal). */
  terminal?: TerminalSize;
}

/** A way of running workloads. See the file header for the contract. */
export interface Runtime {
  /** `process`, `containerd`: the registry key. */
  readonly kind: string;
  /** Whether this runtime can start workloads on this node now (binary or socket present). */
  available(): Promise<boolean>;
  /** Prepares the runtime (folders, connections). Called once before anything else; idempotent. */
  open(): Promise<void>;
  /**
   * Optional: whether the executor must open this runtime when it starts (it
   * may have workloads to adopt). When false, the executor opens it on the
   * first workload that needs it, so a node that runs no such workload pays
   * nothing (no containerd of its own started for nothing). Absent: open at start.
   */
  openAtStart?(): Promise<boolean>;
  /** Every workload this runtime started or finds labelled as Hivemind's, running or exited-and-not-removed. */
  list(): Promise<RunningWorkload[]>;
  /** Starts a workload; resolves once it runs. An existing workload with the same id is an error: remove it first. */
  start(spec: WorkloadSpec): Promise<RunningWorkload>;
  /** Sends `signal`, then SIGKILL after `graceMs`; resolves once the workload has exited. A workload not running is fine. */
  stop(id: string, options: StopOptions): Promise<void>;
  /** Forgets an exited workload and frees what it held (secrets dir, container, snapshot). Unknown id is fine. */
  remove(id: string): Promise<void>;
  /** Hears every exit (see the header). Returns the remover. Listeners must not throw. */
  onExit(listener: (exit: WorkloadExit) => void): () => void;
  /** Runs a command in the workload's context (its namespaces, user, environment and folder): a health check, or `hivemind exec`. Optional. */
  exec?(id: string, argv: string[], options: ExecOptions): Promise<ExecResult>;
  /** Releases the runtime's own resources. Never stops workloads. */
  close(): Promise<void>;
  /** Optional: the images this runtime holds, for the API (the containerd runtime). */
  readonly nodeImages?: NodeImages;
  /** Optional: the same images, lent to peers that miss one. */
  readonly imageShare?: ImageShare;
}

/** Runtimes by kind. The executor picks `containerd` for image apps and `process` for command apps. */
export class RuntimeRegistry {
  private readonly runtimes = new Map<string, Runtime>();

  /** Adds a runtime; a second one of the same kind replaces the first (before the executor opens them). */
  register(runtime: Runtime): void {
    this.runtimes.set(runtime.kind, runtime);
  }

  get(kind: string): Runtime | undefined {
    return this.runtimes.get(kind);
  }

  all(): Runtime[] {
    return [...this.runtimes.values()];
  }
}

/** What a runtime factory gets from the executor. */
export interface RuntimeFactoryOptions {
  dataDir: string;
  log: (line: string) => void;
  signal: AbortSignal;
  /** The agent's metrics registry, for a runtime's own gauges (name them `hivemind_executor_...`). */
  registry?: Registry;
  /** The agent's `--warm-networks`: network namespaces a container runtime keeps ready (0: none). */
  warmNetworks?: number;
  /** The other members, for a runtime that fetches a missing image from them. */
  peerImages?: PeerImages;
}

/** Builds a runtime for the executor (the agent passes the containerd runtime's: `ExecutorOptions.runtimeFactories`). */
export type RuntimeFactory = (options: RuntimeFactoryOptions) => Runtime;
