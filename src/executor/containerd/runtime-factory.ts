/**
 * The containerd runtime as a `RuntimeFactory` the agent hands the executor
 * (src/agent/components.ts), with its settings given, not read here; the
 * runtime it builds also serves its warm pool's size as the gauge
 * `hivemind_executor_warm_networks`.
 */
import { Gauge } from 'prom-client';
import { DEFAULT_WARM_NETWORKS } from '../../node/config.js';
import type { RuntimeFactory } from '../runtime.js';
import { ContainerdRuntime } from './containerd-runtime.js';

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
    const runtime = new ContainerdRuntime({
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
