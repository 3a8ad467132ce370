/**
 * Runs the calling test file again in a mount namespace of its own.
 *
 * This host's mounts are private (no propagation), so a mount namespace made
 * anywhere on it (`ip netns exec`, `unshare --mount`, a container while runc
 * sets it up) copies every mount of the moment, and its copy keeps a
 * volume's filesystem busy until that namespace goes. The volume keeper then
 * rightly refuses to remove the volume ("a workload still mounts it") and
 * retries at its next sweep; a test that sweeps once and looks would fail
 * whenever another program made a namespace just then. Mounts made in a
 * namespace of the test's own are copied by no one.
 */
import { spawnSync } from 'node:child_process';

const VARIABLE = 'HIVEMIND_TEST_OWN_MOUNT_NAMESPACE';

/**
 * In the first run of the file: runs it again under `unshare --mount
 * --propagation private`, with its output, and exits with its status (so
 * nothing after the call runs here). In that second run: returns at once.
 */
export function rerunInOwnMountNamespace(): void {
  if (process.env[VARIABLE] !== undefined) return;
  const run = spawnSync('unshare', ['--mount', '--propagation', 'private', '--', process.execPath, ...process.execArgv, ...process.argv.slice(1)], {
    stdio: 'inherit',
    env: { ...process.env, [VARIABLE]: '1' },
  });
  if (run.error !== undefined) {
    console.error(`cannot run the test in a mount namespace of its own: ${run.error.message} (apt-get install util-linux)`);
    process.exit(1);
  }
  process.exit(run.status ?? 1);
}
