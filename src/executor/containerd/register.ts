/**
 * Registers the containerd runtime with the executor (`registerRuntime`),
 * so the executor builds it without importing this folder: the agent's
 * component list imports this module once. Also keeps the runtime the
 * executor built, for the image routes of the API (`containerdRuntime()`),
 * and serves its warm pool's size as the gauge `hivemind_executor_warm_networks`.
 */
import { Gauge } from 'prom-client';
import { DEFAULT_WARM_NETWORKS } from '../../node/config.js';
import { registerRuntime } from '../runtime.js';
import { ContainerdRuntime } from './containerd-runtime.js';

let current: ContainerdRuntime | undefined;

registerRuntime('containerd', (options) => {
  const runtime = new ContainerdRuntime({
    dataDir: options.dataDir,
    log: options.log,
    warmNetworks: options.warmNetworks ?? DEFAULT_WARM_NETWORKS,
    ...(options.peerImages !== undefined ? { peerImages: options.peerImages } : {}),
    ...(process.env.HIVEMIND_CONTAINERD_SOCKET ? { socketPath: process.env.HIVEMIND_CONTAINERD_SOCKET } : {}),
    ...(process.env.HIVEMIND_INSECURE_REGISTRIES ? { insecureRegistries: process.env.HIVEMIND_INSECURE_REGISTRIES.split(',').map((host) => host.trim()).filter(Boolean) } : {}),
  });
  current = runtime;
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
});

/** The containerd runtime of this agent's executor, once the executor has built it. */
export function containerdRuntime(): ContainerdRuntime | undefined {
  return current;
}
