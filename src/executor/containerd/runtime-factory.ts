/**
 * The containerd runtime as a `RuntimeFactory` the agent hands the executor
 * (src/agent/components.ts), with its settings given, not read here; the
 * runtime it builds also serves its warm pool's size as the gauge
 * `hivemind_executor_warm_networks`.
 *
 * The runtime it builds loads the containerd runtime's code (the runtime,
 * its image store and registry client, CNI, the warm pool: about twenty
 * modules) on the first call that needs it: a node that runs no image and
 * finds no containerd at start never loads it (docs/operations.md,
 * "Footprint"). Its answers are the runtime's own.
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Gauge } from '../../node/prometheus.js';
import { DEFAULT_WARM_NETWORKS } from '../../node/config.js';
import type { NodeImages } from '../../node/capabilities.js';
import type { ImageShare, SharedImageTarget } from '../../node/image-share.js';
import type { ExecOptions, ExecResult, RunningWorkload, Runtime, RuntimeFactory, StopOptions, WorkloadExit, WorkloadSpec } from '../runtime.js';
import type { ContainerdRuntime, ContainerdRuntimeOptions } from './containerd-runtime.js';
import { configuredSocketPath, SOCKET_PATH_DEFAULT } from './socket-path.js';

/** Where containerd is and which registries it may reach over plain HTTP. */
export interface ContainerdSettings {
  /** containerd's socket (default `/run/containerd/containerd.sock`, or an own containerd). */
  socketPath?: string;
  /** Registries reached over plain HTTP (`host:port`). */
  insecureRegistries?: string[];
}

/** The settings from `HIVEMIND_CONTAINERD_SOCKET` and `HIVEMIND_INSECURE_REGISTRIES` (comma-separated) in `environment`. */
export function containerdSettingsFrom(environment: NodeJS.ProcessEnv): ContainerdSettings {
  const socketPath = environment.HIVEMIND_CONTAINERD_SOCKET;
  const registries = environment.HIVEMIND_INSECURE_REGISTRIES;
  return {
    ...(socketPath ? { socketPath } : {}),
    ...(registries ? { insecureRegistries: registries.split(',').map((host) => host.trim()).filter(Boolean) } : {}),
  };
}

/** A factory of the containerd runtime with `settings`. */
export function containerdRuntimeFactory(settings: ContainerdSettings): RuntimeFactory {
  return (options) => {
    const runtime = new DeferredContainerdRuntime({
      dataDir: options.dataDir,
      log: options.log,
      warmNetworks: options.warmNetworks ?? DEFAULT_WARM_NETWORKS,
      ...(options.peerImages !== undefined ? { peerImages: options.peerImages } : {}),
      ...settings,
    });
    if (options.registry !== undefined && options.registry.getSingleMetric('hivemind_executor_warm_networks') === undefined) {
      new Gauge({
        name: 'hivemind_executor_warm_networks',
        help: 'Network namespaces attached and ready for container starts (the warm pool)',
        registers: [options.registry],
        collect() {
          this.set(runtime.warmNetworkCount());
        },
      });
    }
    return runtime;
  };
}

/**
 * A `ContainerdRuntime` made on first need: every call but `openAtStart`
 * (when its answer is no), `onExit`, `close` before the load and
 * `warmNetworkCount` imports containerd-runtime.js once and forwards to the
 * runtime, so what the executor, the API and peers see is the runtime's.
 */
export class DeferredContainerdRuntime implements Runtime {
  readonly kind = 'containerd';
  private runtime: ContainerdRuntime | undefined;
  private loading: Promise<ContainerdRuntime> | undefined;
  /** The executor's exit listeners: one forwarder on the runtime, once made, calls them all. */
  private readonly exitListeners = new Set<(exit: WorkloadExit) => void>();
  readonly nodeImages: NodeImages = {
    available: () => this.available(),
    list: async () => (await this.load()).nodeImages.list(),
    pull: async (reference, options) => (await this.load()).nodeImages.pull(reference, options),
    importArchive: async (path, options) => (await this.load()).nodeImages.importArchive(path, options),
    uploadFolder: async () => (await this.load()).nodeImages.uploadFolder(),
  };
  readonly imageShare: ImageShare = {
    describe: async (name: string, signal?: AbortSignal): Promise<SharedImageTarget | undefined> => (await this.load()).imageShare.describe(name, signal),
    read: (digest: string, signal?: AbortSignal): AsyncIterable<Uint8Array> => this.readShared(digest, signal),
  };

  constructor(private readonly options: ContainerdRuntimeOptions) {}

  /** Whether the runtime's code is loaded (tests). */
  get loaded(): boolean {
    return this.runtime !== undefined;
  }

  /** Ready warm networks now (0 before the runtime is made: it has none). */
  warmNetworkCount(): number {
    return this.runtime?.warmNetworkCount() ?? 0;
  }

  /**
   * The runtime's answer, without making it where that answer is surely no:
   * no own containerd ran here (its folder) and no socket file is where a
   * containerd would answer (ContainerdRuntime.openAtStart asks the same).
   */
  async openAtStart(): Promise<boolean> {
    if (!existsSync(join(resolve(this.options.dataDir), 'containerd')) && !existsSync(configuredSocketPath(this.options.socketPath) ?? SOCKET_PATH_DEFAULT)) return false;
    return (await this.load()).openAtStart();
  }

  async available(): Promise<boolean> {
    return (await this.load()).available();
  }

  async open(): Promise<void> {
    await (await this.load()).open();
  }

  async list(): Promise<RunningWorkload[]> {
    return (await this.load()).list();
  }

  async start(spec: WorkloadSpec): Promise<RunningWorkload> {
    return (await this.load()).start(spec);
  }

  async stop(id: string, options: StopOptions): Promise<void> {
    await (await this.load()).stop(id, options);
  }

  async remove(id: string): Promise<void> {
    await (await this.load()).remove(id);
  }

  async exec(id: string, argv: string[], options: ExecOptions): Promise<ExecResult> {
    return (await this.load()).exec(id, argv, options);
  }

  onExit(listener: (exit: WorkloadExit) => void): () => void {
    this.exitListeners.add(listener);
    return () => void this.exitListeners.delete(listener);
  }

  /** Closes the runtime if it was made (one being made is closed once it is). */
  async close(): Promise<void> {
    if (this.loading !== undefined) await (await this.loading).close();
  }

  private async *readShared(digest: string, signal?: AbortSignal): AsyncIterable<Uint8Array> {
    yield* (await this.load()).imageShare.read(digest, signal);
  }

  private load(): Promise<ContainerdRuntime> {
    this.loading ??= import('./containerd-runtime.js').then(({ ContainerdRuntime: Made }) => {
      const runtime = new Made(this.options);
      runtime.onExit((exit) => {
        for (const listener of this.exitListeners) listener(exit);
      });
      this.runtime = runtime;
      return runtime;
    });
    return this.loading;
  }
}
