/**
 * The agent's own containerd, for nodes where none runs: started from the
 * installed `containerd` binary with a generated config (root, state and
 * socket under `<dataDir>/containerd/`, the CRI plugin off), restarted with
 * backoff if it dies, stopped on shutdown. Containers keep running under
 * their shims while containerd is down or restarting; a new containerd over
 * the same root and state finds them again.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { accessSync, constants, existsSync, openSync, closeSync } from 'node:fs';
import { mkdir, rm, symlink, writeFile } from 'node:fs/promises';
import { delimiter, join, resolve } from 'node:path';
import { ContainerdClient } from './client.js';
import { SOCKET_PATH_DEFAULT } from './socket-path.js';

/** Unix socket paths longer than this do not fit `sockaddr_un` (108 bytes with the NUL, some headroom kept). */
const SOCKET_PATH_BYTES_MAX = 100;
/** How long a fresh containerd gets to answer. */
const READY_TIMEOUT_MS = 30_000;
const RESTART_DELAY_MS_MIN = 500;
const RESTART_DELAY_MS_MAX = 30_000;
/** Time between SIGTERM and SIGKILL on stop. */
const STOP_GRACE_MS = 10_000;

/** Finds an executable on PATH (or checks an absolute path). */
export function findExecutable(name: string): string | undefined {
  const candidates = name.includes('/') ? [name] : (process.env.PATH ?? '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin').split(delimiter).map((folder) => join(folder, name));
  for (const candidate of candidates) {
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // next
    }
  }
  return undefined;
}

/** Whether a containerd answers on `socketPath` within `timeoutMs`. */
export async function containerdReachable(socketPath: string, timeoutMs = 2_000): Promise<boolean> {
  if (!existsSync(socketPath)) return false;
  const client = new ContainerdClient({ socketPath });
  try {
    await client.version(timeoutMs);
    return true;
  } catch {
    return false;
  } finally {
    client.close();
  }
}

/** Options of the own containerd. */
export interface OwnContainerdOptions {
  /** The agent's data directory; containerd lives in `<dataDir>/containerd/`. */
  dataDir: string;
  /** The binary; `containerd` on PATH by default. */
  binary?: string;
  log: (line: string) => void;
}

/**
 * One supervised containerd. `start()` resolves once it answers on
 * `socketPath`; `stop()` ends it (and its supervision) and leaves the
 * containers running.
 */
export class OwnContainerd {
  readonly home: string;
  /** The socket clients use (a short path even when the data directory's is long). */
  readonly socketPath: string;
  readonly configPath: string;
  readonly logPath: string;
  private readonly binary: string;
  private readonly log: (line: string) => void;
  private child: ChildProcess | undefined;
  private stopping = false;
  private restartDelayMs = RESTART_DELAY_MS_MIN;
  private restartTimer: NodeJS.Timeout | undefined;
  /** How many times the supervisor restarted containerd after it died. */
  restarts = 0;

  constructor(options: OwnContainerdOptions) {
    this.home = join(resolve(options.dataDir), 'containerd');
    const direct = join(this.home, 'containerd.sock');
    // A long data directory would make an unusable socket path: put the socket under /run, named by the home's hash.
    this.socketPath = Buffer.byteLength(direct) <= SOCKET_PATH_BYTES_MAX ? direct : `/run/hivemind-${createHash('sha256').update(this.home).digest('hex').slice(0, 12)}/containerd.sock`;
    this.configPath = join(this.home, 'config.toml');
    this.logPath = join(this.home, 'containerd.log');
    this.binary = options.binary ?? 'containerd';
    this.log = options.log;
  }

  /** The generated config: everything under `home`, CRI off. */
  config(): string {
    const quote = (text: string): string => JSON.stringify(text);
    return [
      '# Written by Hivemind for its own containerd; regenerated at every start.',
      'version = 2',
      `root = ${quote(join(this.home, 'root'))}`,
      `state = ${quote(join(this.home, 'state'))}`,
      'disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]',
      '',
      '[grpc]',
      `  address = ${quote(this.socketPath)}`,
      '',
      '[ttrpc]',
      `  address = ${quote(`${this.socketPath}.ttrpc`)}`,
      '',
      '[debug]',
      '  level = "warn"',
      '',
    ].join('\n');
  }

  /** Starts containerd and resolves once it answers; rejects (with the log's path) if it does not. */
  async start(): Promise<void> {
    const binary = findExecutable(this.binary);
    if (binary === undefined) throw new Error(`cannot start containerd: "${this.binary}" is not installed (apt-get install containerd runc)`);
    this.stopping = false;
    await mkdir(this.home, { recursive: true, mode: 0o711 });
    const socketFolder = join(this.socketPath, '..');
    await mkdir(socketFolder, { recursive: true, mode: 0o711 });
    if (socketFolder !== this.home) {
      // A pointer from the data directory to where the socket really is, for operators.
      await rm(join(this.home, 'containerd.sock'), { force: true });
      await symlink(this.socketPath, join(this.home, 'containerd.sock')).catch(() => undefined);
    }
    await writeFile(this.configPath, this.config());
    this.spawnChild(binary);
    await this.waitReady();
    this.log(`containerd: own containerd runs on ${this.socketPath} (pid ${this.child?.pid}, log ${this.logPath})`);
  }

  private spawnChild(binary: string): void {
    const logFd = openSync(this.logPath, 'a');
    try {
      const child = spawn(binary, ['--config', this.configPath], { stdio: ['ignore', logFd, logFd], detached: true });
      this.child = child;
      child.on('error', (error) => this.log(`containerd: cannot run ${binary}: ${error.message}`));
      child.on('exit', (code, signal) => this.handleExit(child, binary, code, signal));
    } finally {
      closeSync(logFd);
    }
  }

  private handleExit(child: ChildProcess, binary: string, code: number | null, signal: NodeJS.Signals | null): void {
    if (this.child !== child) return;
    this.child = undefined;
    if (this.stopping) return;
    this.log(`containerd: own containerd exited (${signal ?? `code ${code}`}); restarting in ${this.restartDelayMs} ms (log: ${this.logPath})`);
    this.restartTimer = setTimeout(() => {
      this.restartTimer = undefined;
      if (this.stopping) return;
      this.restarts += 1;
      this.spawnChild(binary);
      this.waitReady().then(
        () => (this.restartDelayMs = RESTART_DELAY_MS_MIN),
        (error: Error) => this.log(`containerd: restarted containerd is not answering: ${error.message}`),
      );
    }, this.restartDelayMs);
    this.restartDelayMs = Math.min(this.restartDelayMs * 2, RESTART_DELAY_MS_MAX);
  }

  private async waitReady(): Promise<void> {
    const deadline = Date.now() + READY_TIMEOUT_MS;
    while (Date.now() < deadline) {
      if (this.child === undefined && !this.stopping && this.restartTimer === undefined) break;
      if (await containerdReachable(this.socketPath, 1_000)) return;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    throw new Error(`own containerd did not answer on ${this.socketPath} within ${READY_TIMEOUT_MS} ms; see ${this.logPath}`);
  }

  /** The pid of the running containerd, if one runs. */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Stops containerd (SIGTERM, then SIGKILL after a grace). Containers keep running under their shims. Idempotent. */
  async stop(): Promise<void> {
    this.stopping = true;
    if (this.restartTimer !== undefined) clearTimeout(this.restartTimer);
    this.restartTimer = undefined;
    const child = this.child;
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
    await exited;
    clearTimeout(timer);
  }
}

/** Where the executor's containerd is, and the own one if the agent started it. */
export interface ContainerdEndpoint {
  socketPath: string;
  own?: OwnContainerd;
}

/**
 * Finds containerd: the configured socket if it answers (the system's
 * containerd by default); else the own containerd of a previous agent run
 * if it still answers; else a fresh own containerd, if the binary is
 * installed. Undefined when there is none and none can be started.
 */
export async function connectOrStartContainerd(options: { socketPath?: string; dataDir: string; log: (line: string) => void; binary?: string }): Promise<ContainerdEndpoint | undefined> {
  const configured = options.socketPath ?? SOCKET_PATH_DEFAULT;
  if (await containerdReachable(configured)) return { socketPath: configured };
  const own = new OwnContainerd({ dataDir: options.dataDir, log: options.log, ...(options.binary !== undefined ? { binary: options.binary } : {}) });
  if (await containerdReachable(own.socketPath)) {
    options.log(`containerd: using the own containerd left running on ${own.socketPath}`);
    return { socketPath: own.socketPath };
  }
  if (findExecutable(options.binary ?? 'containerd') === undefined) return undefined;
  await own.start();
  return { socketPath: own.socketPath, own };
}
