/**
 * `ContainerdRuntime`: the executor's `Runtime` for image apps, over
 * containerd's gRPC API (see the contract in ../runtime.ts).
 *
 * A workload is one containerd container (id = instance id) in the
 * `hivemind` namespace, labelled with its instance, version and spec hash,
 * with its own snapshot (key = id) over the image's unpacked layers, its own
 * network namespace attached through `ContainerNetwork`, its secrets on a
 * per-instance tmpfs, and its stdout and stderr appended by the shim to the
 * workload's log file (`file://` stdio), so logs and containers outlive the
 * agent. Exits and OOM kills come from containerd's event stream; exits
 * missed while no one listened are found by `list()`.
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, chown, mkdir, open, readFile, rm, writeFile } from 'node:fs/promises';
import { assert } from '../../../consensus/core/assert.js';
import { constants } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { spawn } from 'node:child_process';
import type { ClientReadableStream } from '@grpc/grpc-js';
import type { ExtraHostSpec, PortSpec } from '../../state/types.js';
import type { ExecOptions, ExecResult, RunningWorkload, Runtime, StopOptions, WorkloadExit, WorkloadSpec } from '../runtime.js';
import { ContainerdClient, isContainerdError, NAMESPACE_DEFAULT, type AnyWire } from './client.js';
import { ImageError, ImageStore, type ResolvedImage } from './images.js';
import { ContainerdImageShare, fetchFromPeer } from './image-share.js';
import type { ImageShare, PeerImages } from '../../node/image-share.js';
import type { NodeImages, TerminalSize } from '../../node/capabilities.js';
import { cniStatePath, nodeNetworkPath, readNodeNetwork } from '../../node/node-network.js';
import { CniNetwork, DEFAULT_SUBNET, createNetns, deleteNamedNetns, netnsName, netnsPathOf, netnsPathOfName, type ContainerNetwork, type NetworkAttachment } from './network.js';
import { connectOrStartContainerd, containerdReachable, findExecutable, type OwnContainerd } from './own-containerd.js';
import { decodeTaskExit, decodeTaskOom } from './protobuf-wire.js';
import { configuredSocketPath, SOCKET_PATH_DEFAULT } from './socket-path.js';
import { ExecPipes, ExecStdin, type ExecInputTarget } from './exec-stdio.js';
import { normalizeReference, RegistryClient } from './registry.js';
import { containerHostsFile, containerNameFiles, readNodeResolvConfs, resolveExtraHosts, subnetGateway } from './name-files.js';
import { buildRuntimeSpec, containerHostname, containerLabels, Label, lookupUser, parseNumericUser, serializeRuntimeSpec } from './spec.js';
import { SLICE_SYNC_INTERVAL_MS, SLICE_SYNC_INTERVAL_MS_UNWATCHED, SLICE_WARM_NETWORKS_MAX, SliceWarmPools } from './slice-pools.js';
import { FileWatch } from '../../node/file-watch.js';
import { isPoolNetwork, isWarmNetworkName, WarmNetworkPool, type WarmNetwork } from './warm-pool.js';
import { inSpan } from '../../node/tracing.js';

const SPEC_TYPE_URL = 'types.containerd.io/opencontainers/runtime-spec/1/Spec';
const PROCESS_TYPE_URL = 'types.containerd.io/opencontainers/runtime-spec/1/Process';
const RUNC_RUNTIME = 'io.containerd.runc.v2';
/** Bytes of exec output kept for a health check's status. */
const EXEC_OUTPUT_BYTES_MAX = 4096;
/** Size of a workload's secrets tmpfs. */
const SECRETS_TMPFS_BYTES = 1024 * 1024;
const RESUBSCRIBE_DELAY_MS = 1_000;
/** Wait for a task to exit after SIGKILL before giving up. */
const KILL_WAIT_MS = 30_000;

/** Static inits a node may have, in the order tried: Debian's tini-static, Docker's docker-init (a static tini). */
export const INIT_CANDIDATES = ['/usr/bin/tini-static', '/usr/bin/docker-init', '/usr/libexec/docker/docker-init', '/usr/local/bin/tini-static'];

/** The first of `candidates` that exists on the node; undefined when none does. Reads the file system. */
export function findStaticInit(candidates: readonly string[] = INIT_CANDIDATES): string | undefined {
  return candidates.find((path) => existsSync(path));
}

/** After an exec's process exited, how long its output pipes may take to reach their end before they are cut. */
const EXEC_OUTPUT_DRAIN_MS = 5_000;

/** Settings of a ContainerdRuntime. */
export interface ContainerdRuntimeOptions {
  /** The agent's data directory: state under `<dataDir>/containerd-runtime/`, own containerd under `<dataDir>/containerd/`, CNI state under `<dataDir>/cni/`. */
  dataDir: string;
  log: (line: string) => void;
  /** containerd's socket; `/run/containerd/containerd.sock` by default (`HIVEMIND_CONTAINERD_SOCKET`). */
  socketPath?: string;
  /** Start and supervise an own containerd when none answers (default true). */
  manageContainerd?: boolean;
  namespace?: string;
  /** The network; a CNI bridge `hm0` on 10.88.0.0/16 by default. */
  network?: ContainerNetwork;
  /** `overlayfs` (default) or `native`. */
  snapshotter?: string;
  /** cgroups v1 parent of every container. */
  cgroupParent?: string;
  /** Registries reached over plain HTTP (`host:port`), e.g. a local test registry. */
  insecureRegistries?: string[];
  /**
   * Network namespaces kept attached and ready for starts (`warm-pool.ts`);
   * 0 (the default here; the agent's `--warm-networks` sets it) makes none.
   * Used only with a network that can back a pool (the CNI network).
   */
  warmNetworks?: number;
  /** The other members, asked for an image this node does not hold before its registry is (absent: registry only). */
  peerImages?: PeerImages;
  /** The static init bound into containers of apps with `init: true`; absent: the first of INIT_CANDIDATES on the node (`findStaticInit`). */
  initPath?: string;
}

/** Where a container's network is: its CNI container id and its netns. */
interface NetworkPlace {
  cniId: string;
  netnsName: string;
  netnsPath: string;
}

/**
 * The network place of container `id`: the warm network it took
 * (`Label.networkId`), or, without one, the netns and CNI id derived from
 * the instance id. A label that is not a warm network's name is ignored.
 */
function networkPlaceOf(id: string, networkId: string | undefined): NetworkPlace {
  if (networkId !== undefined && isWarmNetworkName(networkId)) return { cniId: networkId, netnsName: networkId, netnsPath: netnsPathOfName(networkId) };
  return { cniId: id, netnsName: netnsName(id), netnsPath: netnsPathOf(id) };
}

interface Known {
  version: number;
  specHash: string;
  startedAt: number;
  address?: string;
  /** On several networks: every address (`Label.addresses`). */
  addresses?: string[];
  /** The warm network the container took (`Label.networkId`), if any. */
  networkId?: string;
  processSpec?: Record<string, unknown>;
  memoryLimited: boolean;
}

interface ProcessWire {
  container_id: string;
  id: string;
  pid: number;
  status: string;
  exit_status: number;
}

interface ContainerWire {
  id: string;
  labels: Record<string, string>;
  image: string;
  spec?: AnyWire | null;
  snapshotter: string;
  snapshot_key: string;
}

interface EnvelopeWire {
  namespace: string;
  topic: string;
  event?: AnyWire | null;
}

function signalNumber(name: string): number {
  const normalized = name.toUpperCase().startsWith('SIG') ? name.toUpperCase() : `SIG${name.toUpperCase()}`;
  const number = (constants.signals as Record<string, number>)[normalized];
  if (number === undefined) throw new Error(`unknown signal "${name}"`);
  return number;
}

function runCommand(command: string, args: string[]): Promise<{ code: number; stderr: string }> {
  return new Promise((resolvePromise) => {
    const child = spawn(command, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', (error) => resolvePromise({ code: -1, stderr: error.message }));
    child.on('close', (code) => resolvePromise({ code: code ?? -1, stderr }));
  });
}

/** A terminal exec's environment: the container's, with `TERM=xterm` unless it sets TERM (as `docker exec -t`). */
function withTerminalType(environment: unknown): string[] {
  const entries = Array.isArray(environment) ? environment.filter((entry): entry is string => typeof entry === 'string') : [];
  return entries.some((entry) => entry.startsWith('TERM=')) ? entries : [...entries, 'TERM=xterm'];
}

/** The containerd runtime. Construct, `open()`, use, `close()`. */
export class ContainerdRuntime implements Runtime {
  readonly kind = 'containerd';
  readonly stateDir: string;
  private readonly options: ContainerdRuntimeOptions;
  private readonly log: (line: string) => void;
  private readonly network: ContainerNetwork;
  private clientOrUndefined: ContainerdClient | undefined;
  private imagesOrUndefined: ImageStore | undefined;
  private own: OwnContainerd | undefined;
  private opening: Promise<void> | undefined;
  private closed = false;
  private readonly listeners = new Set<(exit: WorkloadExit) => void>();
  private readonly known = new Map<string, Known>();
  /** Ids whose current run's exit was reported (cleared by start). */
  private readonly reported = new Set<string>();
  private readonly oomSeen = new Set<string>();
  /** The network release (CNI DEL) of each workload whose task ended, until it is removed or started again. */
  private readonly networkReleases = new Map<string, Promise<void>>();
  private events: ClientReadableStream<EnvelopeWire> | undefined;
  private resubscribeTimer: NodeJS.Timeout | undefined;
  /** The warm pool, once open, when `warmNetworks` > 0 and the network can back one. */
  private pool: WarmNetworkPool | undefined;
  /** The warm pools of the tenant network slices this node holds (`slice-pools.ts`), beside `pool`, with the CNI network. */
  private slicePools: SliceWarmPools | undefined;
  private slicePoolsTimer: NodeJS.Timeout | undefined;
  /** Hears the node network file change, so the slice pools follow a slice given or taken without a fast timer. */
  private slicePoolsWatch: FileWatch | undefined;
  /** Fetches of a missing image under way, by name, so concurrent starts of it fetch it once. */
  private readonly fetching = new Map<string, Promise<ResolvedImage>>();
  /** This node's images, as its peers read them (nothing before containerd is open). */
  readonly imageShare: ImageShare = new ContainerdImageShare(() => this.imagesOrUndefined);
  /** This node's images, for the API (each call but `available` opens the runtime). */
  readonly nodeImages: NodeImages = {
    available: () => this.available(),
    list: async () => {
      await this.open();
      return this.images.list();
    },
    pull: (reference, options) => this.pullImage(reference, options),
    importArchive: (path, options) => this.importImage(path, options),
    uploadFolder: async () => {
      await this.open();
      const folder = join(this.stateDir, 'uploads');
      await mkdir(folder, { recursive: true, mode: 0o700 });
      return folder;
    },
  };

  constructor(options: ContainerdRuntimeOptions) {
    this.options = options;
    this.log = options.log;
    this.stateDir = join(resolve(options.dataDir), 'containerd-runtime');
    this.network = options.network ?? new CniNetwork({ stateDir: cniStatePath(resolve(options.dataDir)), nodeNetworkFile: nodeNetworkPath(resolve(options.dataDir)) });
  }

  /** The client (after `open`). */
  get client(): ContainerdClient {
    if (this.clientOrUndefined === undefined) throw new Error('the containerd runtime is not open');
    return this.clientOrUndefined;
  }

  /** The image store (after `open`): import, pull, list. */
  get images(): ImageStore {
    if (this.imagesOrUndefined === undefined) throw new Error('the containerd runtime is not open');
    return this.imagesOrUndefined;
  }

  /** Ready warm networks now (0 without a pool): the `hivemind_executor_warm_networks` gauge. */
  warmNetworkCount(): number {
    return (this.pool?.count ?? 0) + (this.slicePools?.count ?? 0);
  }

  /** The warm pools of tenant network slices, when this runtime keeps them (tests, diagnostics). */
  get sliceWarmPools(): SliceWarmPools | undefined {
    return this.slicePools;
  }

  /** The warm pool, when this runtime keeps one (tests, the benchmark). */
  get warmPool(): WarmNetworkPool | undefined {
    return this.pool;
  }

  /** The own containerd, when the runtime started one. */
  get ownContainerd(): OwnContainerd | undefined {
    return this.own;
  }

  private socketPath(): string | undefined {
    return configuredSocketPath(this.options.socketPath);
  }

  async available(): Promise<boolean> {
    if (this.clientOrUndefined !== undefined) return true;
    if (findExecutable('runc') === undefined) return false;
    if (await containerdReachable(this.socketPath() ?? SOCKET_PATH_DEFAULT)) return true;
    return this.options.manageContainerd !== false && findExecutable('containerd') !== undefined;
  }

  /** Opened at start only when there may be containers to adopt: a containerd answers, or this node ran its own before. */
  async openAtStart(): Promise<boolean> {
    if (existsSync(join(resolve(this.options.dataDir), 'containerd'))) return true;
    return containerdReachable(this.socketPath() ?? SOCKET_PATH_DEFAULT);
  }

  async open(): Promise<void> {
    this.opening ??= this.openOnce();
    await this.opening;
  }

  private async openOnce(): Promise<void> {
    await mkdir(join(this.stateDir, 'secrets'), { recursive: true, mode: 0o700 });
    await mkdir(join(this.stateDir, 'exec'), { recursive: true, mode: 0o700 });
    await mkdir(join(this.stateDir, 'etc'), { recursive: true, mode: 0o755 });
    const socketPath = this.socketPath();
    let endpoint;
    if (this.options.manageContainerd === false) {
      endpoint = { socketPath: socketPath ?? '/run/containerd/containerd.sock' };
    } else {
      endpoint = await connectOrStartContainerd({ ...(socketPath !== undefined ? { socketPath } : {}), dataDir: this.options.dataDir, log: this.log });
      if (endpoint === undefined) throw new Error(`no containerd answers on ${socketPath ?? '/run/containerd/containerd.sock'} and the containerd binary is not installed (apt-get install containerd runc)`);
    }
    this.own = endpoint.own;
    this.clientOrUndefined = new ContainerdClient({ socketPath: endpoint.socketPath, namespace: this.options.namespace ?? NAMESPACE_DEFAULT });
    await this.client.ensureNamespace();
    this.imagesOrUndefined = new ImageStore({ client: this.client, ...(this.options.snapshotter !== undefined ? { snapshotter: this.options.snapshotter } : {}) });
    this.subscribe();
    await this.openPool();
  }

  /**
   * Opens the warm pool (see `warm-pool.ts`) with the warm networks that
   * containers hold, so they are never adopted as free. A pool that cannot
   * open is logged and left off: starts take the inline path.
   */
  private async openPool(): Promise<void> {
    const size = this.options.warmNetworks ?? 0;
    const network = this.network;
    if (!isPoolNetwork(network) || (network instanceof CniNetwork && !network.available())) return;
    if (network instanceof CniNetwork) this.openSlicePools(network, size);
    if (size === 0 && !existsSync(join(this.stateDir, 'warm-networks'))) return;
    const pool = new WarmNetworkPool({ network, folder: join(this.stateDir, 'warm-networks'), size, log: this.log });
    try {
      await pool.open(await this.warmNamesInUse());
      this.pool = pool;
    } catch (error) {
      this.log(`containerd: warm networks are off: cannot open the pool: ${(error as Error).message}`);
    }
  }

  /** The warm network names that containers hold (label `hivemind.network-id`). */
  private async warmNamesInUse(): Promise<ReadonlySet<string>> {
    const { containers } = await this.client.unary<{ containers: ContainerWire[] }>('containers', 'List', { filters: [`labels."${Label.networkId}"`] });
    return new Set(containers.map((container) => container.labels[Label.networkId] ?? ''));
  }

  /**
   * Keeps the warm pools of tenant network slices (`slice-pools.ts`): up to
   * SLICE_WARM_NETWORKS_MAX entries a slice (no more than the node pool's
   * `size`; 0 keeps none, and the first sync discards a former run's),
   * synced now, when the node network file may have changed, and on a slow
   * timer as a safety net (fast while the file cannot be watched).
   */
  private openSlicePools(network: CniNetwork, size: number): void {
    const folder = join(this.stateDir, 'warm-networks-slices');
    if (size === 0 && !existsSync(folder)) return;
    const pools = new SliceWarmPools({ network, folder, size: Math.min(size, SLICE_WARM_NETWORKS_MAX), log: this.log });
    this.slicePools = pools;
    const sync = (): Promise<void> => pools.sync(() => this.warmNamesInUse());
    void sync();
    const file = network.nodeNetworkFile;
    if (size === 0 || file === undefined) return;
    const watch = new FileWatch({ path: file, onChange: () => void sync() });
    this.slicePoolsWatch = watch;
    const look = (): void => {
      this.slicePoolsTimer = setTimeout(() => {
        void sync();
        look();
      }, watch.watching ? SLICE_SYNC_INTERVAL_MS : SLICE_SYNC_INTERVAL_MS_UNWATCHED);
      this.slicePoolsTimer.unref();
    };
    look();
  }

  // ---- events ----

  private subscribe(): void {
    if (this.closed) return;
    const namespace = this.client.namespace;
    const stream = this.client.serverStream<EnvelopeWire>('events', 'Subscribe', { filters: [`namespace==${namespace},topic=="/tasks/exit"`, `namespace==${namespace},topic=="/tasks/oom"`] });
    this.events = stream;
    stream.on('data', (envelope: EnvelopeWire) => this.handleEnvelope(envelope));
    const retry = (): void => {
      if (this.events !== stream || this.closed) return;
      this.events = undefined;
      this.resubscribeTimer = setTimeout(() => {
        this.resubscribeTimer = undefined;
        this.subscribe();
        // Exits during the gap come from the tasks' state.
        this.list().catch((error: Error) => this.log(`containerd: cannot list containers after resubscribing: ${error.message}`));
      }, RESUBSCRIBE_DELAY_MS);
    };
    stream.on('error', retry);
    stream.on('end', retry);
  }

  private handleEnvelope(envelope: EnvelopeWire): void {
    if (!envelope.event) return;
    try {
      if (envelope.topic === '/tasks/oom') {
        this.oomSeen.add(decodeTaskOom(envelope.event.value).containerId);
        return;
      }
      if (envelope.topic !== '/tasks/exit') return;
      const exit = decodeTaskExit(envelope.event.value);
      // Exec processes (health checks) exit too; only the main process ends the workload.
      if (exit.id !== exit.containerId) return;
      this.reportExit(exit.containerId, exit.exitStatus);
    } catch (error) {
      this.log(`containerd: cannot decode event ${envelope.topic}: ${(error as Error).message}`);
    }
  }

  private async cgroupOomKills(id: string): Promise<number> {
    const parent = this.options.cgroupParent ?? '/hivemind';
    try {
      const text = await readFile(`/sys/fs/cgroup/memory${parent}/${id}/memory.oom_control`, 'utf8');
      return Number(/oom_kill (\d+)/.exec(text)?.[1] ?? 0);
    } catch {
      return 0;
    }
  }

  private reportExit(id: string, exitCode: number): void {
    const known = this.known.get(id);
    if (known === undefined || this.reported.has(id)) return;
    this.reported.add(id);
    void this.releaseNetwork(id);
    const at = Date.now();
    void this.cgroupOomKills(id).then((kills) => {
      const oomKilled = this.oomSeen.has(id) || kills > 0;
      const exit: WorkloadExit = { id, version: known.version, exitCode, oomKilled, at };
      for (const listener of this.listeners) listener(exit);
    });
  }

  onExit(listener: (exit: WorkloadExit) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Detaches the network of a workload whose task ended (CNI DEL with the
   * config and port mappings of its ADD, so portmap and the bridge drop its
   * rules and its address goes back to the pool), once per run; a stopped
   * container keeps no published port and no address. Never rejects: a
   * failure is logged and forgotten, and `remove` detaches again.
   */
  private releaseNetwork(id: string): Promise<void> {
    let release = this.networkReleases.get(id);
    if (release === undefined) {
      release = this.networkOf(id)
        .then(({ ports, place }) => this.network.detach(place.cniId, existsSync(place.netnsPath) ? place.netnsPath : '', ports))
        .catch((error: Error) => {
          this.log(`containerd: ${id}: cannot release its network (remove tries again): ${error.message}`);
          // Forgotten, so that remove detaches again.
          if (this.networkReleases.get(id) === release) this.networkReleases.delete(id);
        });
      this.networkReleases.set(id, release);
    }
    return release;
  }

  /** The ports and network place of a workload, from its container's labels; when the container is gone, no ports and the place known from its start. */
  private async networkOf(id: string): Promise<{ ports: PortSpec[]; place: NetworkPlace }> {
    try {
      const { container } = await this.client.unary<{ container: ContainerWire }>('containers', 'Get', { id });
      return { ports: JSON.parse(container.labels[Label.ports] ?? '[]') as PortSpec[], place: networkPlaceOf(id, container.labels[Label.networkId]) };
    } catch (error) {
      if (isContainerdError(error, 'not-found')) return { ports: [], place: networkPlaceOf(id, this.known.get(id)?.networkId) };
      throw error;
    }
  }

  // ---- list ----

  async list(): Promise<RunningWorkload[]> {
    await this.open();
    const [containers, tasks] = await Promise.all([
      this.client.unary<{ containers: ContainerWire[] }>('containers', 'List', { filters: [`labels."${Label.instance}"`] }),
      this.client.unary<{ tasks: ProcessWire[] }>('tasks', 'List', { filter: '' }),
    ]);
    // containerd 1.6 lists a task's container id in `id` and leaves `container_id` empty.
    const taskById = new Map(tasks.tasks.map((task) => [task.container_id || task.id, task]));
    const workloads: RunningWorkload[] = [];
    for (const container of containers.containers) {
      const labels = container.labels;
      const id = container.id;
      const task = taskById.get(id);
      const version = Number(labels[Label.version] ?? 0);
      const startedAt = Number(labels[Label.startedAt] ?? 0);
      if (!this.known.has(id)) {
        this.known.set(id, {
          version,
          specHash: labels[Label.specHash] ?? '',
          startedAt,
          memoryLimited: false,
          ...(labels[Label.address] ? { address: labels[Label.address] } : {}),
          ...(labels[Label.addresses] ? { addresses: labels[Label.addresses]!.split(',') } : {}),
          ...(labels[Label.networkId] ? { networkId: labels[Label.networkId] } : {}),
        });
      }
      const running = task !== undefined && task.status !== 'STOPPED';
      const workload: RunningWorkload = { id, version, specHash: labels[Label.specHash] ?? '', state: running ? 'running' : 'exited', startedAt };
      if (task !== undefined && task.pid > 0) workload.pid = task.pid;
      if (labels[Label.address]) workload.address = labels[Label.address];
      if (labels[Label.addresses]) workload.addresses = labels[Label.addresses]!.split(',');
      if (!running) {
        // No task at all: the agent died between creating the container and starting it.
        workload.exitCode = task?.exit_status ?? 255;
        workload.oomKilled = this.oomSeen.has(id) || (await this.cgroupOomKills(id)) > 0;
        this.reportExit(id, workload.exitCode);
      }
      workloads.push(workload);
    }
    return workloads;
  }

  // ---- start ----

  /** Imports an OCI layout archive into this node's containerd (unpacked). Answers the image names. */
  async importImage(archivePath: string, options: { name?: string } = {}): Promise<string[]> {
    await this.open();
    return this.images.importArchive(archivePath, options.name !== undefined ? { name: normalizeReference(options.name) } : {});
  }

  /** Pulls `reference` from its registry into this node's containerd (unpacked). Answers the stored name. */
  async pullImage(reference: string, options: { signal?: AbortSignal } = {}): Promise<string> {
    await this.open();
    const registry = new RegistryClient({ images: this.images, insecureRegistries: this.options.insecureRegistries ?? [] });
    return registry.pull(reference, options);
  }

  private async imageFor(spec: WorkloadSpec): Promise<ResolvedImage> {
    if (spec.image === undefined) throw new Error(`instance ${spec.id}: cannot start: the containerd runtime runs images and the app names none`);
    const name = normalizeReference(spec.image);
    try {
      return await this.images.resolve(name);
    } catch (error) {
      if (!(error instanceof ImageError) || error.code !== 'image-not-found') throw error;
    }
    let fetch = this.fetching.get(name);
    if (fetch === undefined) {
      fetch = this.fetchMissing(name).finally(() => this.fetching.delete(name));
      this.fetching.set(name, fetch);
    }
    return fetch;
  }

  /**
   * Brings image `name`, which this node does not hold, from the first
   * member that holds it, else from its registry. The error names every
   * place tried and why each failed.
   */
  private async fetchMissing(name: string): Promise<ResolvedImage> {
    const failures: string[] = [];
    for (const source of this.options.peerImages?.sourcesFor(name) ?? []) {
      const started = Date.now();
      try {
        const fetched = await fetchFromPeer(this.images, name, source);
        if (fetched === undefined) continue;
        this.log(`image ${name}: fetched from node ${source.nodeId} in ${Date.now() - started} ms`);
        return fetched;
      } catch (error) {
        failures.push(`node ${source.nodeId}: ${(error as Error).message}`);
        this.log(`image ${name}: fetching it from node ${source.nodeId} failed: ${(error as Error).message}`);
      }
    }
    try {
      const pulled = await this.pullImage(name);
      return await this.images.resolve(pulled);
    } catch (error) {
      failures.push(`its registry: ${(error as Error).message}`);
    }
    const peers = failures.length > 1 ? '' : ' (no other node holds it)';
    throw new Error(`image "${name}" is not on this node${peers} and could not be brought here: ${failures.join('; ')}`);
  }

  private async resolveUser(spec: WorkloadSpec, image: ResolvedImage, mounts: Array<{ type: string; source: string; options: string[] }>): Promise<{ uid: number; gid: number }> {
    const user = spec.user ?? image.config.User;
    const numeric = parseNumericUser(user);
    if (numeric !== undefined) return numeric;
    // A user name: look it up in the image's own /etc/passwd, through a read-only mount of the container's snapshot.
    const mountPoint = join(this.stateDir, 'exec', `user-${randomBytes(4).toString('hex')}`);
    await mkdir(mountPoint, { recursive: true });
    try {
      const mount = mounts[0];
      if (mount === undefined) throw new Error('no rootfs mount');
      const mounted = await runCommand('mount', ['-t', mount.type, '-o', [...mount.options, 'ro'].join(','), mount.source, mountPoint]);
      if (mounted.code !== 0) throw new Error(mounted.stderr.trim());
      try {
        const passwd = await readFile(join(mountPoint, 'etc/passwd'), 'utf8').catch(() => '');
        const group = await readFile(join(mountPoint, 'etc/group'), 'utf8').catch(() => '');
        const found = lookupUser(user!, passwd, group);
        if (found === undefined) throw new Error(`instance ${spec.id}: cannot start: user "${user}" is not in the image's /etc/passwd`);
        return found;
      } finally {
        await runCommand('umount', [mountPoint]);
      }
    } finally {
      await rm(mountPoint, { recursive: true, force: true });
    }
  }

  private async writeSecrets(spec: WorkloadSpec, owner: { uid: number; gid: number }): Promise<string | undefined> {
    if (spec.secrets.length === 0) return undefined;
    const folder = join(this.stateDir, 'secrets', spec.id);
    await mkdir(folder, { recursive: true, mode: 0o700 });
    // Memory-backed: the clear values never reach the node's disk.
    const mounted = await runCommand('mount', ['-t', 'tmpfs', '-o', `size=${SECRETS_TMPFS_BYTES},mode=0750,nosuid,nodev,noexec`, 'tmpfs', folder]);
    if (mounted.code !== 0) throw new Error(`instance ${spec.id}: cannot mount a tmpfs for its secrets: ${mounted.stderr.trim()}`);
    await chown(folder, 0, owner.gid);
    for (const secret of spec.secrets) {
      const path = join(folder, secret.name);
      await writeFile(path, secret.value, { mode: 0o440 });
      await chown(path, owner.uid, owner.gid);
    }
    return folder;
  }

  /** The app's extra_hosts, `host-gateway` as the node's bridge address (the overlay's gateway, or the default bridge's). */
  private extraHosts(spec: WorkloadSpec): ExtraHostSpec[] {
    if (spec.container?.extraHosts === undefined) return [];
    const nodeNetwork = readNodeNetwork(nodeNetworkPath(resolve(this.options.dataDir)));
    const subnet = this.network instanceof CniNetwork ? this.network.subnet : DEFAULT_SUBNET;
    return resolveExtraHosts(spec.container.extraHosts, nodeNetwork?.state === 'ready' ? nodeNetwork.gateway : subnetGateway(subnet));
  }

  /**
   * Writes the workload's configs under its name-files folder (removed with
   * it): `configs/<position>` is the file, or the folder of a config's files.
   * Files take the config's mode (0444 by default), folders 0555, owned by
   * root: any user of the container reads them, none writes them.
   */
  private async writeConfigs(spec: WorkloadSpec): Promise<string[]> {
    const paths: string[] = [];
    const root = join(this.nameFilesDir(spec.id), 'configs');
    for (const [position, config] of (spec.configs ?? []).entries()) {
      const place = join(root, String(position));
      await mkdir(root, { recursive: true, mode: 0o755 });
      for (const file of config.files) {
        const path = file.path === '' ? place : join(place, file.path);
        // The state's pattern keeps paths relative without `..`; checked again, as a path leaving the folder would write on the node.
        assert(path === place || path.startsWith(`${place}/`), `instance ${spec.id}: config ${config.source} file ${file.path} leaves its folder`);
        await mkdir(dirname(path), { recursive: true, mode: 0o555 });
        await writeFile(path, Buffer.from(file.data, 'base64'), { mode: config.mode ?? 0o444 });
        await chmod(path, config.mode ?? 0o444);
      }
      paths.push(place);
    }
    return paths;
  }

  private nameFilesDir(id: string): string {
    return join(this.stateDir, 'etc', id);
  }

  /**
   * Writes the container's /etc/hosts and /etc/resolv.conf (`name-files.ts`)
   * into its folder: with its address when known already (a warm network),
   * else before the network gave one (see `writeHosts`).
   */
  private async writeNameFiles(spec: WorkloadSpec, address?: string): Promise<{ hostsPath: string; resolvConfPath: string }> {
    const folder = this.nameFilesDir(spec.id);
    await mkdir(folder, { recursive: true, mode: 0o755 });
    // The overlay's bridge gateway is where the node's DNS component serves containers (port 53); see src/dns/component.ts.
    const nodeNetwork = readNodeNetwork(nodeNetworkPath(resolve(this.options.dataDir)));
    const clusterDns = nodeNetwork?.state === 'ready' ? { nameserver: nodeNetwork.gateway, tenant: spec.tenant } : undefined;
    const files = containerNameFiles({ hostname: containerHostname(spec), extraHosts: this.extraHosts(spec), nodeResolvConfs: await readNodeResolvConfs(), ...(address !== undefined ? { address } : {}), ...(clusterDns !== undefined ? { clusterDns } : {}) });
    const paths = { hostsPath: join(folder, 'hosts'), resolvConfPath: join(folder, 'resolv.conf') };
    await Promise.all([writeFile(paths.hostsPath, files.hosts, { mode: 0o644 }), writeFile(paths.resolvConfPath, files.resolvConf, { mode: 0o644 })]);
    return paths;
  }

  /**
   * Writes /etc/hosts again with the container's address, the only name file
   * the address changes. Written in place (same inode), so the file runc
   * already bound shows the new text.
   */
  private async writeHosts(spec: WorkloadSpec, address: string): Promise<void> {
    await writeFile(join(this.nameFilesDir(spec.id), 'hosts'), containerHostsFile(containerHostname(spec), address, this.extraHosts(spec)), { mode: 0o644 });
  }

  private async removeSecrets(id: string): Promise<void> {
    const folder = join(this.stateDir, 'secrets', id);
    if (!existsSync(folder)) return;
    await runCommand('umount', [folder]);
    await rm(folder, { recursive: true, force: true });
  }

  private async assertNoContainer(id: string): Promise<void> {
    try {
      await this.client.unary('containers', 'Get', { id });
    } catch (error) {
      if (isContainerdError(error, 'not-found')) return;
      throw error;
    }
    throw new Error(`instance ${id}: cannot start: a container with this id exists; remove it first`);
  }

  /**
   * Start, as a graph of steps rather than a line, since the CNI plugins are
   * the slowest part and runc needs only the namespace to exist:
   *
   *   id free?, image resolve, lease                     (read-only, at once)
   *   -> netns -> CNI attach ------------------------------+-> address label --+
   *   -> snapshot Prepare -> user -> secrets, log file     |                   +-> task Start
   *        -> container Create -+-> task Create (netns) ---+-------------------+
   *
   * The netns path is known before the namespace exists, so the container
   * record (which names it) does not wait for it; the task (runc create,
   * which joins it) does; the address goes on the container as a label once
   * CNI gave it, before the task starts. Nothing of the workload runs before
   * task Start, so the process always sees its network up. Every step that
   * succeeded registers its undo; a failure anywhere waits for every branch
   * to settle, then undoes everything in reverse (each undo was pushed after
   * the undo of what it depends on).
   *
   * With a warm network from the pool (`warm-pool.ts`) the netns and CNI
   * attach are done already: the container is created with the address and
   * the network id as labels and its hosts file written with the address, so
   * neither the label update nor the hosts rewrite runs; published ports are
   * added (portmap ADD) beside the container create. A failed start discards
   * the warm network (it is never returned to the pool).
   */
  async start(spec: WorkloadSpec): Promise<RunningWorkload> {
    await this.open();
    const id = spec.id;
    const startedAt = Date.now();
    const undo: Array<() => Promise<unknown>> = [];
    const snapshotter = this.images.snapshotter;
    const pool = this.pool;
    const slicePools = this.slicePools;
    pool?.beginStart();
    const endSliceStart = slicePools?.beginStart();
    try {
      // Checked before anything is made, so a duplicate never touches the existing container's netns or snapshot.
      const [free, imageOutcome, leaseOutcome] = await Promise.allSettled([this.assertNoContainer(id), inSpan('executor.image', { attributes: { 'hivemind.image': spec.image ?? '' } }, () => this.imageFor(spec)), this.client.createLease()]);
      const lease = leaseOutcome.status === 'fulfilled' ? leaseOutcome.value : undefined;
      try {
        if (free.status === 'rejected') throw free.reason;
        if (imageOutcome.status === 'rejected') throw imageOutcome.reason;
        if (leaseOutcome.status === 'rejected') throw leaseOutcome.reason;
        const warm = this.takeWarm(spec);
        return await this.startSteps(spec, { startedAt, snapshotter, lease: leaseOutcome.value, image: imageOutcome.value, undo, ...(warm !== undefined ? { warm } : {}) });
      } catch (error) {
        this.known.delete(id);
        for (const step of undo.reverse()) await step().catch(() => undefined);
        const message = (error as Error).message;
        throw new Error(message.startsWith(`instance ${id}`) ? message : `instance ${id}: cannot start: ${message}`);
      } finally {
        if (lease !== undefined) this.client.releaseLease(lease);
      }
    } finally {
      pool?.endStart();
      endSliceStart?.();
    }
  }

  /**
   * A warm network that fits `spec`: the node pool's for a container on the
   * node subnet; on tenant networks here, one of the pool of its first
   * network's slice (a container on several gets its other interfaces
   * added to it in `networkSteps`, `CniNetwork.attachMore`).
   */
  private takeWarm(spec: WorkloadSpec): WarmNetwork | undefined {
    if (!(this.network instanceof CniNetwork) || this.network.onNodeSubnet(spec.tenant)) return this.pool?.take();
    const networks = spec.networks ?? ['default'];
    if (networks.length === 0) return this.pool?.take();
    return this.slicePools?.take(`${spec.tenant}/${networks[0]}`);
  }

  /**
   * The network branch of a start: the netns (made, or the warm one) and its
   * attach (CNI ADD, or portmap ADD alone on a warm network). Each step that
   * succeeds pushes its undo on `undo`.
   */
  private networkSteps(spec: WorkloadSpec, place: NetworkPlace, warm: WarmNetwork | undefined, undo: Array<() => Promise<unknown>>): { netnsStep: Promise<string>; networkStep: Promise<NetworkAttachment> } {
    const id = spec.id;
    const netnsStep = warm !== undefined ? Promise.resolve(warm.netnsPath) : createNetns(id);
    const withUndo = netnsStep.then((path) => {
      undo.push(() => deleteNamedNetns(place.netnsName));
      return path;
    });
    const networkStep = withUndo.then((path) => inSpan('executor.network', { attributes: { 'hivemind.network.warm': warm !== undefined } }, async () => {
      if (warm === undefined) {
        const attached = await this.network.attach(id, path, spec.ports, { tenant: spec.tenant, ...(spec.networks !== undefined ? { networks: spec.networks } : {}) });
        undo.push(() => this.network.detach(id, path, spec.ports));
        return attached;
      }
      // The warm attach is this container's now: a failure detaches it (with the ports, should portmap have run, and the interfaces added).
      undo.push(() => this.network.detach(place.cniId, path, spec.ports));
      // On several networks: the warm network is the first's; the others are added to its namespace under its CNI id.
      const attached = (spec.networks?.length ?? 0) > 1 && this.network instanceof CniNetwork ? await this.network.attachMore(place.cniId, path, { tenant: spec.tenant, networks: spec.networks! }) : { address: warm.address };
      if (spec.ports.some((port) => port.published !== undefined) && isPoolNetwork(this.network)) await this.network.publish(place.cniId, path, spec.ports);
      return attached;
    }));
    return { netnsStep: withUndo, networkStep };
  }

  /** The steps of `start` (see there), under `lease`; each step that succeeds pushes its undo on `undo`. */
  private async startSteps(spec: WorkloadSpec, context: { startedAt: number; snapshotter: string; lease: string; image: ResolvedImage; undo: Array<() => Promise<unknown>>; warm?: WarmNetwork }): Promise<RunningWorkload> {
    const { startedAt, snapshotter, lease, image, undo, warm } = context;
    const id = spec.id;
    const place = networkPlaceOf(id, warm?.name);
    const netnsPath = place.netnsPath;
    const { netnsStep, networkStep } = this.networkSteps(spec, place, warm, undo);
    const containerStep = inSpan('executor.container', {}, async () => {
      const prepared = await this.client.unary<{ mounts: Array<{ type: string; source: string; target: string; options: string[] }> }>('snapshots', 'Prepare', { snapshotter, key: id, parent: image.chainId, labels: {} }, { lease });
      undo.push(() => this.client.unary('snapshots', 'Remove', { snapshotter, key: id }));
      const user = await this.resolveUser(spec, image, prepared.mounts);
      const secretsDir = await this.writeSecrets(spec, user);
      undo.push(() => this.removeSecrets(id));
      await mkdir(dirname(spec.logPath), { recursive: true });
      await (await open(spec.logPath, 'a')).close();
      const nameFiles = await this.writeNameFiles(spec, warm?.address);
      undo.push(() => rm(this.nameFilesDir(id), { recursive: true, force: true }));
      const configPaths = await this.writeConfigs(spec);
      const initPath = spec.container?.init === true ? (this.options.initPath ?? findStaticInit()) : undefined;
      const runtimeSpec = buildRuntimeSpec(spec, { image, netnsPath, user, nameFiles, configPaths, ...(initPath !== undefined ? { initPath } : {}), ...(secretsDir !== undefined ? { secretsDir } : {}), ...(this.options.cgroupParent !== undefined ? { cgroupParent: this.options.cgroupParent } : {}) });
      const container = {
        id,
        labels: containerLabels(spec, { startedAt, ...(warm !== undefined ? { address: warm.address, networkId: warm.name } : {}) }),
        image: image.name,
        runtime: { name: RUNC_RUNTIME },
        spec: { type_url: SPEC_TYPE_URL, value: Buffer.from(serializeRuntimeSpec(runtimeSpec)) },
        snapshotter,
        snapshot_key: id,
        extensions: {},
      };
      await this.client.unary('containers', 'Create', { container }, { lease });
      undo.push(() => this.client.unary('containers', 'Delete', { id }));
      return { prepared, runtimeSpec };
    });
    const taskStep = Promise.all([containerStep, netnsStep]).then(([{ prepared }]) => inSpan('executor.task', {}, async () => {
      const stdio = `file://${resolve(spec.logPath)}`;
      await this.client.unary('tasks', 'Create', { container_id: id, rootfs: prepared.mounts, stdin: '', stdout: stdio, stderr: stdio, terminal: false });
      undo.push(() => this.client.unary('tasks', 'Delete', { container_id: id }));
    }));
    // The address is on the container before its task can run: adoption after a crash finds it there.
    // So is the hosts line of its own name (rewritten in place: runc already bound the file).
    // A warm network's address was in both from the start; its addresses on later networks (one on several) go on as a label alone.
    const labelStep = warm !== undefined
      ? Promise.all([containerStep, networkStep]).then(async ([, { addresses }]) => {
          if (addresses === undefined) return;
          await this.client.unary('containers', 'Update', { container: { id, labels: { [Label.addresses]: addresses.join(',') } }, update_mask: { paths: [`labels.${Label.addresses}`] } });
        })
      : Promise.all([containerStep, networkStep]).then(([, { address, addresses }]) => {
          const labels = { [Label.address]: address, ...(addresses !== undefined ? { [Label.addresses]: addresses.join(',') } : {}) };
          return Promise.all([
            this.client.unary('containers', 'Update', { container: { id, labels }, update_mask: { paths: Object.keys(labels).map((label) => `labels.${label}`) } }),
            this.writeHosts(spec, address),
          ]);
        });
    const outcomes = await Promise.allSettled([networkStep, containerStep, taskStep, labelStep]);
    const failed = outcomes.find((outcome): outcome is PromiseRejectedResult => outcome.status === 'rejected');
    if (failed !== undefined) throw failed.reason;
    const { address, addresses } = await networkStep;
    const { runtimeSpec } = await containerStep;
    this.networkReleases.delete(id);
    this.known.set(id, { version: spec.version, specHash: spec.specHash, startedAt, address, ...(addresses !== undefined ? { addresses } : {}), ...(warm !== undefined ? { networkId: warm.name } : {}), processSpec: runtimeSpec.process as Record<string, unknown>, memoryLimited: spec.limits.memoryBytes !== undefined });
    this.reported.delete(id);
    this.oomSeen.delete(id);
    const started = await inSpan('executor.task.start', {}, () => this.client.unary<{ pid: number }>('tasks', 'Start', { container_id: id, exec_id: '' }));
    return { id, version: spec.version, specHash: spec.specHash, state: 'running', pid: started.pid, startedAt, address, ...(addresses !== undefined ? { addresses } : {}) };
  }

  // ---- stop, remove ----

  private async taskStatus(id: string): Promise<ProcessWire | undefined> {
    try {
      return (await this.client.unary<{ process: ProcessWire }>('tasks', 'Get', { container_id: id, exec_id: '' })).process;
    } catch (error) {
      if (isContainerdError(error, 'not-found')) return undefined;
      throw error;
    }
  }

  async stop(id: string, options: StopOptions): Promise<void> {
    await this.open();
    const task = await this.taskStatus(id);
    if (task === undefined || task.status === 'STOPPED') return;
    const waiting = this.client.unary<{ exit_status: number }>('tasks', 'Wait', { container_id: id, exec_id: '' }, { timeoutMs: options.graceMs + KILL_WAIT_MS });
    waiting.catch(() => undefined);
    try {
      await this.client.unary('tasks', 'Kill', { container_id: id, exec_id: '', signal: signalNumber(options.signal), all: false });
    } catch (error) {
      if (isContainerdError(error, 'not-found')) return;
      throw new Error(`instance ${id}: cannot stop: ${(error as Error).message}`);
    }
    let timer: NodeJS.Timeout | undefined;
    const graceOver = new Promise<'grace-over'>((resolvePromise) => (timer = setTimeout(() => resolvePromise('grace-over'), options.graceMs)));
    const outcome = await Promise.race([waiting.then(() => 'exited' as const, () => 'exited' as const), graceOver]);
    clearTimeout(timer);
    if (outcome === 'grace-over') {
      await this.client.unary('tasks', 'Kill', { container_id: id, exec_id: '', signal: constants.signals.SIGKILL, all: true }).catch(() => undefined);
      await waiting.catch((error: Error) => {
        throw new Error(`instance ${id}: did not exit after SIGKILL: ${error.message}`);
      });
    }
    // The stopped container's rules are gone when stop answers (the exit event may come later).
    await this.releaseNetwork(id);
  }

  async remove(id: string): Promise<void> {
    await this.open();
    let ports: PortSpec[] = [];
    let snapshotter = this.images.snapshotter;
    let place = networkPlaceOf(id, this.known.get(id)?.networkId);
    try {
      const { container } = await this.client.unary<{ container: ContainerWire }>('containers', 'Get', { id });
      ports = JSON.parse(container.labels[Label.ports] ?? '[]') as PortSpec[];
      place = networkPlaceOf(id, container.labels[Label.networkId]);
      snapshotter = container.snapshotter || snapshotter;
    } catch (error) {
      if (!isContainerdError(error, 'not-found')) throw error;
    }
    const task = await this.taskStatus(id);
    if (task !== undefined && task.status !== 'STOPPED') await this.stop(id, { signal: 'SIGKILL', graceMs: 0 });
    const ignoreMissing = (error: unknown): void => {
      if (!isContainerdError(error, 'not-found')) throw error;
    };
    if (task !== undefined) await this.client.unary('tasks', 'Delete', { container_id: id }).catch(ignoreMissing);
    await this.client.unary('containers', 'Delete', { id }).catch(ignoreMissing);
    await this.client.unary('snapshots', 'Remove', { snapshotter, key: id }).catch(ignoreMissing);
    const released = this.networkReleases.get(id);
    // Detached at the exit already (released), or never: detach here, with the ports of the ADD.
    if (released !== undefined) await released;
    else await this.network.detach(place.cniId, existsSync(place.netnsPath) ? place.netnsPath : '', ports).catch((error: Error) => this.log(`containerd: ${id}: ${error.message}`));
    this.networkReleases.delete(id);
    await deleteNamedNetns(place.netnsName).catch((error: Error) => this.log(`containerd: ${id}: ${error.message}`));
    await this.removeSecrets(id);
    await rm(this.nameFilesDir(id), { recursive: true, force: true });
    this.known.delete(id);
    this.reported.delete(id);
    this.oomSeen.delete(id);
  }

  // ---- exec ----

  private async processSpecOf(id: string): Promise<Record<string, unknown>> {
    const known = this.known.get(id);
    if (known?.processSpec !== undefined) return known.processSpec;
    const { container } = await this.client.unary<{ container: ContainerWire }>('containers', 'Get', { id });
    const spec = JSON.parse(Buffer.from(container.spec?.value ?? []).toString('utf8')) as { process: Record<string, unknown> };
    if (known !== undefined) known.processSpec = spec.process;
    return spec.process;
  }

  async exec(id: string, argv: string[], options: ExecOptions): Promise<ExecResult> {
    await this.open();
    const base = await this.processSpecOf(id);
    const execId = `exec-${randomBytes(6).toString('hex')}`;
    // A caller that hears the output by stream gets stdout and stderr apart, through pipes (one, a terminal's, with -t); a check gets both in one file (its status shows the first bytes).
    const streamed = options.output !== undefined;
    const terminal = streamed ? options.terminal : undefined;
    const outputPath = join(this.stateDir, 'exec', `${execId}.log`);
    const pipePaths = { stdout: join(this.stateDir, 'exec', `${execId}.out`), stderr: join(this.stateDir, 'exec', `${execId}.err`), stdin: join(this.stateDir, 'exec', `${execId}.in`) };
    await mkdir(join(this.stateDir, 'exec'), { recursive: true });
    const pipes = options.output !== undefined ? await ExecPipes.open(terminal === undefined ? pipePaths : { stdout: pipePaths.stdout }, options.output) : undefined;
    if (pipes === undefined) await writeFile(outputPath, '');
    const stdin = streamed && options.stdin === true ? await ExecStdin.open(pipePaths.stdin) : undefined;
    const stdio = pipes !== undefined ? { stdout: pipePaths.stdout, stderr: terminal === undefined ? pipePaths.stderr : '' } : { stdout: `file://${outputPath}`, stderr: `file://${outputPath}` };
    const processSpec = terminal === undefined ? { ...base, args: argv, terminal: false } : { ...base, args: argv, terminal: true, consoleSize: { height: terminal.rows, width: terminal.columns }, env: withTerminalType(base.env) };
    const finished = new AbortController();
    try {
      await this.client.unary('tasks', 'Exec', { container_id: id, exec_id: execId, stdin: stdin === undefined ? '' : pipePaths.stdin, ...stdio, terminal: terminal !== undefined, spec: { type_url: PROCESS_TYPE_URL, value: Buffer.from(serializeRuntimeSpec(processSpec)) } });
      pipes?.read();
      try {
        await this.client.unary('tasks', 'Start', { container_id: id, exec_id: execId });
        if (streamed && (stdin !== undefined || terminal !== undefined)) void this.feedExec(id, execId, { stdin, terminal, input: options.input, finished: finished.signal });
        let timedOut = false;
        let exitCode: number;
        // The timeout is ours (a cancel), not a gRPC deadline: containerd reports a passed deadline with varying codes.
        const cancel = new AbortController();
        const timer = setTimeout(() => cancel.abort(), options.timeoutMs);
        const abortFromCaller = (): void => cancel.abort();
        options.signal?.addEventListener('abort', abortFromCaller, { once: true });
        try {
          exitCode = (await this.client.unary<{ exit_status: number }>('tasks', 'Wait', { container_id: id, exec_id: execId }, { timeoutMs: options.timeoutMs + KILL_WAIT_MS, signal: cancel.signal })).exit_status;
        } catch (error) {
          if (!cancel.signal.aborted) throw error;
          timedOut = options.signal?.aborted !== true;
          await this.client.unary('tasks', 'Kill', { container_id: id, exec_id: execId, signal: constants.signals.SIGKILL, all: false }).catch(() => undefined);
          exitCode = (await this.client.unary<{ exit_status: number }>('tasks', 'Wait', { container_id: id, exec_id: execId }, { timeoutMs: KILL_WAIT_MS }).catch(() => ({ exit_status: 137 }))).exit_status;
        } finally {
          clearTimeout(timer);
          options.signal?.removeEventListener('abort', abortFromCaller);
        }
        finished.abort();
        await pipes?.drain(EXEC_OUTPUT_DRAIN_MS);
        const output = pipes !== undefined ? '' : (await readFile(outputPath)).subarray(0, EXEC_OUTPUT_BYTES_MAX).toString('utf8');
        return { exitCode, output, timedOut };
      } finally {
        finished.abort();
        await this.client.unary('tasks', 'DeleteProcess', { container_id: id, exec_id: execId }).catch(() => undefined);
      }
    } catch (error) {
      throw new Error(`instance ${id}: cannot run ${JSON.stringify(argv[0] ?? '')} in the container: ${(error as Error).message}`);
    } finally {
      finished.abort();
      pipes?.close();
      stdin?.close();
      await Promise.all(Object.values(pipePaths).map((path) => rm(path, { force: true })).concat(rm(outputPath, { force: true })));
    }
  }

  /** Feeds a running exec its input and terminal sizes (see ExecStdin.feed); ends when the exec does. Never throws. */
  private async feedExec(id: string, execId: string, feed: { stdin: ExecStdin | undefined; terminal: TerminalSize | undefined; input: ExecOptions['input']; finished: AbortSignal }): Promise<void> {
    const target: ExecInputTarget = {
      closeInput: async () => {
        await this.client.unary('tasks', 'CloseIO', { container_id: id, exec_id: execId, stdin: true });
      },
      resize: async (size) => {
        await this.client.unary('tasks', 'ResizePty', { container_id: id, exec_id: execId, width: size.columns, height: size.rows });
      },
    };
    if (feed.terminal !== undefined) await target.resize(feed.terminal).catch(() => undefined);
    if (feed.stdin !== undefined) {
      await feed.stdin.feed(feed.input, { target, terminal: feed.terminal !== undefined, finished: feed.finished });
      return;
    }
    // A terminal without input: only its sizes are heard.
    try {
      for await (const event of feed.input ?? []) {
        if (feed.finished.aborted) break;
        if (event.type === 'resize') await target.resize(event.size).catch(() => undefined);
      }
    } catch {
      // The caller went away: nothing more to resize.
    }
  }

  /**
   * Closes the connection and event stream; stops the own containerd if this
   * runtime started it. Workloads keep running. The warm pool is drained
   * (its free networks detached and deleted): a stopped agent holds no
   * namespace or address no container uses; the next start refills. An
   * agent that crashes leaves them, and the next open adopts them.
   */
  async close(): Promise<void> {
    this.closed = true;
    if (this.slicePoolsTimer !== undefined) clearTimeout(this.slicePoolsTimer);
    this.slicePoolsWatch?.close();
    await this.pool?.drain().catch((error: Error) => this.log(`containerd: cannot drain the warm networks: ${error.message}`));
    await this.slicePools?.drain().catch((error: Error) => this.log(`containerd: cannot drain the warm networks of tenant network slices: ${error.message}`));
    if (this.resubscribeTimer !== undefined) clearTimeout(this.resubscribeTimer);
    const events = this.events;
    this.events = undefined;
    events?.cancel();
    this.clientOrUndefined?.close();
    await this.own?.stop();
  }
}
