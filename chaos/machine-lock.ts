/**
 * The machine-wide lock of everything that builds the harness's test hosts
 * (network namespaces `hmchaos-h*`, the test range): a chaos run, and the
 * tests that make hosts of their own. One holder at a time, so two of them
 * never tear down each other's hosts.
 */
import { spawn } from 'node:child_process';

/** The lock file; `flock` holds it. */
export const MACHINE_LOCK_FILE = '/tmp/hivemind-chaos.lock';

/**
 * Waits for the lock and holds it until `release` is called or the process
 * exits: `flock` keeps it while its `cat` reads this process's pipe. Says so
 * through `log` when it has to wait.
 */
export async function holdMachineLock(log: (line: string) => void): Promise<{ release(): void }> {
  const holder = spawn('flock', [MACHINE_LOCK_FILE, 'sh', '-c', 'echo locked; exec cat'], { stdio: ['pipe', 'pipe', 'inherit'] });
  const waiting = setTimeout(() => log(`waiting for another run that builds test hosts to finish (it holds ${MACHINE_LOCK_FILE})`), 1000);
  try {
    await new Promise<void>((resolve, reject) => {
      holder.stdout!.once('data', () => resolve());
      holder.once('error', (error) => reject(new Error(`cannot run flock for ${MACHINE_LOCK_FILE}: ${error.message}`)));
      holder.once('exit', (code) => reject(new Error(`flock ${MACHINE_LOCK_FILE} exited with ${code}`)));
    });
  } finally {
    clearTimeout(waiting);
  }
  // Only once the lock is ours: while waiting, the holder's pipes are all that keeps this process alive.
  holder.unref();
  (holder.stdin as unknown as { unref?: () => void }).unref?.();
  (holder.stdout as unknown as { unref?: () => void }).unref?.();
  return {
    release() {
      holder.stdin!.end();
      holder.kill();
    },
  };
}
