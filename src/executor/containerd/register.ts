/**
 * Registers the containerd runtime with the executor (`registerRuntime`),
 * so the executor builds it without importing this folder: the agent's
 * component list imports this module once. Also keeps the runtime the
 * executor built, for the image routes of the API (`containerdRuntime()`).
 */
import { registerRuntime } from '../runtime.js';
import { ContainerdRuntime } from './containerd-runtime.js';

let current: ContainerdRuntime | undefined;

registerRuntime('containerd', (options) => {
  current = new ContainerdRuntime({
    dataDir: options.dataDir,
    log: options.log,
    ...(process.env.HIVEMIND_CONTAINERD_SOCKET ? { socketPath: process.env.HIVEMIND_CONTAINERD_SOCKET } : {}),
    ...(process.env.HIVEMIND_INSECURE_REGISTRIES ? { insecureRegistries: process.env.HIVEMIND_INSECURE_REGISTRIES.split(',').map((host) => host.trim()).filter(Boolean) } : {}),
  });
  return current;
});

/** The containerd runtime of this agent's executor, once the executor has built it. */
export function containerdRuntime(): ContainerdRuntime | undefined {
  return current;
}
