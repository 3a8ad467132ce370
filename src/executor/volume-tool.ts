/**
 * What the volume modules share: their error, the tool runner (mkfs, losetup,
 * mount, gocryptfs) and reading what is mounted where.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, open, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A volume operation that failed; the message names the volume, the step and the tool's error. */
export class VolumeError extends Error {
  override readonly name = 'VolumeError';
  readonly code = 'volume';
  /** Whether trying again later may succeed (a busy mount, a tool that timed out). */
  readonly retryable: boolean;

  constructor(message: string, retryable: boolean) {
    super(message);
    this.retryable = retryable;
  }
}

/** How long one tool (mkfs, losetup, mount, gocryptfs) may run. */
const TOOL_TIMEOUT_MS = 60_000;

/** The Debian package of each tool a volume needs, for the message when one is missing. */
const PACKAGE_OF: Readonly<Record<string, string>> = { 'mkfs.ext4': 'e2fsprogs', gocryptfs: 'gocryptfs fuse3', fusermount: 'fuse3' };

/** What one line of /proc/self/mountinfo says about a mount. */
export interface MountEntry {
  /** Where it is mounted. */
  path: string;
  /** Its filesystem type (`ext4`, `fuse.gocryptfs`). */
  type: string;
  /** Its source: a device, or for FUSE what the filesystem names (gocryptfs: its cipher folder). */
  source: string;
}

/** The mount visible at `mountPath` (the last one mounted there), or undefined when nothing is. */
export async function mountAt(mountPath: string): Promise<MountEntry | undefined> {
  const text = await readFile('/proc/self/mountinfo', 'utf8');
  let found: MountEntry | undefined;
  for (const line of text.split('\n')) {
    const fields = line.split(' ');
    if (fields[4] === undefined || unescapeMountPath(fields[4]) !== mountPath) continue;
    const separator = fields.indexOf('-');
    if (separator < 0) continue;
    found = { path: mountPath, type: fields[separator + 1] ?? '', source: unescapeMountPath(fields[separator + 2] ?? '') };
  }
  return found;
}

/** The device (or source) mounted on `mountPath`, or undefined when nothing is (from /proc/self/mountinfo). */
export async function mountSourceOf(mountPath: string): Promise<string | undefined> {
  return (await mountAt(mountPath))?.source;
}

function unescapeMountPath(text: string): string {
  return text.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));
}

/** A tool that could not be started: its error, and the package to install when it is missing. */
function spawnFailure(argv: readonly string[], what: string, error: NodeJS.ErrnoException): VolumeError {
  const missing = error.code === 'ENOENT' ? ` (${argv[0]} is not installed: apt-get install ${PACKAGE_OF[argv[0]!] ?? 'util-linux'})` : '';
  return new VolumeError(`${what}: ${error.message}${missing}`, false);
}

/**
 * Runs a tool that leaves a daemon behind (gocryptfs): done when the tool
 * itself exits. Its daemon keeps whatever output it was given open, so its
 * output goes to a file, read once it exited (a pipe would stay open, and
 * `tool`'s wait for it would never end). Throws VolumeError as `tool` does.
 */
export async function daemonizingTool(argv: string[], what: string, options: { input?: string } = {}): Promise<void> {
  const folder = await mkdtemp(join(tmpdir(), 'hivemind-tool-'));
  const outputPath = join(folder, 'output');
  const output = await open(outputPath, 'w', 0o600);
  try {
    const exit = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve, reject) => {
      const child = spawn(argv[0]!, argv.slice(1), { stdio: [options.input === undefined ? 'ignore' : 'pipe', output.fd, output.fd], timeout: TOOL_TIMEOUT_MS });
      if (options.input !== undefined) {
        child.stdin!.on('error', () => undefined);
        child.stdin!.end(options.input);
      }
      child.on('error', (error: NodeJS.ErrnoException) => reject(spawnFailure(argv, what, error)));
      child.on('exit', (code, signal) => resolve({ code, signal }));
    });
    if (exit.code === 0) return;
    const detail = (await readFile(outputPath, 'utf8')).trim().slice(0, 2000) || (exit.signal ? `killed by ${exit.signal}` : `exit code ${exit.code}`);
    throw new VolumeError(`${what}: ${argv[0]} failed: ${detail}`, exit.signal !== null);
  } finally {
    await output.close();
    await rm(folder, { recursive: true, force: true });
  }
}

/**
 * Runs a tool; answers its stdout; throws VolumeError naming `what` with the
 * tool's stderr. `input` is written to its stdin (a password: never on the
 * command line, where /proc shows it). `busyRetryable`: a "busy" failure may
 * pass later.
 */
export function tool(argv: string[], what: string, options: { busyRetryable?: boolean; input?: string } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), { stdio: [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'], timeout: TOOL_TIMEOUT_MS });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    if (options.input !== undefined) {
      // A tool that exits before reading makes the write fail with EPIPE: its exit code says why.
      child.stdin!.on('error', () => undefined);
      child.stdin!.end(options.input);
    }
    child.on('error', (error: NodeJS.ErrnoException) => reject(spawnFailure(argv, what, error)));
    child.on('close', (code, signal) => {
      if (code === 0) return resolve(stdout);
      const detail = stderr.trim() || (signal ? `killed by ${signal}` : `exit code ${code}`);
      const busy = options.busyRetryable === true && /busy/i.test(detail);
      reject(new VolumeError(`${what}: ${argv[0]} failed: ${detail}`, busy || signal !== null));
    });
  });
}
