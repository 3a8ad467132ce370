/**
 * Where the containerd runtime looks for containerd: light, so the agent can
 * ask whether a containerd may answer here without loading the runtime.
 */

/** Where containerd listens when nothing else is configured. */
export const SOCKET_PATH_DEFAULT = '/run/containerd/containerd.sock';

/** The socket configured for the runtime: `socketPath`, else `HIVEMIND_CONTAINERD_SOCKET`; undefined when none is (the default socket, or an own containerd). */
export function configuredSocketPath(socketPath: string | undefined): string | undefined {
  return socketPath ?? process.env.HIVEMIND_CONTAINERD_SOCKET;
}
