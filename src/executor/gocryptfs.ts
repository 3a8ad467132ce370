/**
 * Encryption at rest for volumes: gocryptfs (FUSE) over a folder of the
 * volume's own filesystem. Files are encrypted one by one (AES-256-GCM, names
 * too) into the cipher folder, and a plain view is mounted where workloads
 * bind; the backing file, its snapshots and a copy of the disk hold only
 * ciphertext.
 *
 * The password is the volume's key (32 random bytes, sealed in the cluster
 * state, see VolumeEncryption) in hex, given on stdin, never on a command
 * line. gocryptfs keeps its own master key in `gocryptfs.conf`, encrypted
 * under that password (scrypt).
 *
 * Mounted `allow_other` (workloads run as other users; `default_permissions`
 * has the kernel check modes as on any filesystem) and `nosuid,nodev`. The
 * gocryptfs process outlives the agent, as the kernel's mounts do; it exits
 * when its mount is unmounted.
 *
 * Needs `gocryptfs` and `fusermount` (Debian's gocryptfs and fuse3) and
 * /dev/fuse.
 */
import { existsSync } from 'node:fs';
import { mkdir, readFile, readdir, rename, rm } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { daemonizingTool, mountAt, tool } from './volume-tool.js';

/** The folder of an encrypted volume's own filesystem that gocryptfs keeps its files in. */
export const CIPHER_FOLDER = 'data';
/** The file that tells an initialized cipher folder. */
const CONFIG_FILE = 'gocryptfs.conf';
/** How a FUSE mount of gocryptfs shows in mountinfo. */
const MOUNT_TYPE = 'fuse.gocryptfs';

/** The password gocryptfs is given for `key`: its hex. */
function passwordOf(key: Uint8Array): string {
  return `${Buffer.from(key).toString('hex')}\n`;
}

/**
 * Makes `cipherPath` a gocryptfs folder for `key` unless it is one already.
 * Made under a temporary name and renamed into place, so a crash leaves no
 * half-made folder.
 */
export async function initCipherFolder(cipherPath: string, key: Uint8Array, what: string): Promise<void> {
  if (existsSync(join(cipherPath, CONFIG_FILE))) return;
  const partPath = `${cipherPath}.part`;
  await rm(partPath, { recursive: true, force: true });
  await mkdir(partPath, { recursive: true, mode: 0o700 });
  try {
    await tool(['gocryptfs', '-init', '-q', '-nosyslog', partPath], `${what}: setting up its encryption`, { input: passwordOf(key) });
    await rm(cipherPath, { recursive: true, force: true });
    await rename(partPath, cipherPath);
  } catch (error) {
    await rm(partPath, { recursive: true, force: true });
    throw error;
  }
}

/** Whether the plain view of `cipherPath` is mounted at `plainPath`. */
export async function plainViewMounted(cipherPath: string, plainPath: string): Promise<boolean> {
  const mount = await mountAt(plainPath);
  return mount !== undefined && mount.type === MOUNT_TYPE && mount.source === cipherPath;
}

/**
 * Mounts the plain view of `cipherPath` at `plainPath` (a folder that
 * exists). A wrong key fails here, with gocryptfs's message.
 */
export async function mountPlainView(options: { cipherPath: string; plainPath: string; key: Uint8Array; readOnly?: boolean; what: string }): Promise<void> {
  const kernelOptions = options.readOnly === true ? 'nosuid,nodev,noexec' : 'nosuid,nodev';
  const flags = ['-q', '-allow_other', '-ko', kernelOptions, ...(options.readOnly === true ? ['-ro'] : [])];
  await daemonizingTool(['gocryptfs', ...flags, options.cipherPath, options.plainPath], `${options.what}: mounting its decrypted view on ${options.plainPath}`, { input: passwordOf(options.key) });
}

/** How long an unmount waits for the view's gocryptfs process to exit (it holds the cipher folder open until then). */
const EXIT_WAIT_MS = 3000;
const EXIT_POLL_MS = 20;

/**
 * Unmounts a plain view, then waits (up to EXIT_WAIT_MS) for its gocryptfs
 * process to exit: the process keeps the cipher folder open for a moment
 * after the unmount, and unmounting the filesystem under it meanwhile fails
 * as busy. Throws a retryable VolumeError while the view is busy.
 */
export async function unmountPlainView(plainPath: string, what: string): Promise<void> {
  const servers = await gocryptfsProcessesOf(plainPath);
  await tool(['fusermount', '-u', plainPath], `${what}: unmounting its decrypted view ${plainPath}`, { busyRetryable: true });
  for (let waitedMs = 0; waitedMs < EXIT_WAIT_MS && servers.some((pid) => existsSync(`/proc/${pid}`)); waitedMs += EXIT_POLL_MS) {
    await new Promise((resolve) => setTimeout(resolve, EXIT_POLL_MS));
  }
}

/** The gocryptfs processes whose command line ends with the mount point `plainPath`. */
async function gocryptfsProcessesOf(plainPath: string): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const argv = await readFile(`/proc/${entry}/cmdline`, 'utf8').then((text) => text.split('\0').filter((word) => word !== ''), () => []);
    if (argv.length > 0 && basename(argv[0]!) === 'gocryptfs' && argv[argv.length - 1] === plainPath) pids.push(Number(entry));
  }
  return pids;
}
