import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, openSync, closeSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePorts } from '../consensus/test/fixtures/free-ports.js';

/**
 * Everything a benchmark run owns outside its own process: child processes and
 * temporary directories. `cleanup()` kills every child still running (SIGKILL)
 * and removes every directory; it is synchronous so that it also runs from the
 * `exit` event, and it is installed for Ctrl-C, SIGTERM and uncaught errors.
 * Only processes spawned through `spawn` here are ever killed.
 */
export class Resources {
  private readonly children = new Set<ChildProcess>();
  private readonly directories: string[] = [];
  private cleanedUp = false;

  constructor() {
    process.once('exit', () => this.cleanup());
    for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
      process.once(signal, () => {
        process.stderr.write(`\nbench: ${signal}: stopping every process it started\n`);
        this.cleanup();
        process.exit(130);
      });
    }
  }

  /** A fresh directory under the OS temp dir (real disk), removed by `cleanup`. */
  makeTempDirectory(prefix: string): string {
    const directory = mkdtempSync(join(tmpdir(), prefix));
    this.directories.push(directory);
    return directory;
  }

  /**
   * Removes `directory` now (it must come from makeTempDirectory) and flushes
   * the page cache to disk (`sync`), so that the next system's fsyncs do not
   * queue behind this one's write-back.
   */
  removeTempDirectory(directory: string): void {
    const index = this.directories.indexOf(directory);
    if (index < 0) throw new Error(`${directory} is not a temp dir of this run`);
    this.directories.splice(index, 1);
    rmSync(directory, { recursive: true, force: true });
    flushDisk();
  }

  /**
   * Starts `command` with stderr (and stdout unless `pipeStdout`) appended to
   * `logPath`. The child is tracked until it exits.
   */
  spawn(options: { command: string; args: string[]; logPath: string; pipeStdout?: boolean }): ChildProcess {
    const log = openSync(options.logPath, 'a');
    const child = spawn(options.command, options.args, {
      stdio: ['ignore', options.pipeStdout ? 'pipe' : log, log],
    });
    closeSync(log);
    this.children.add(child);
    child.once('exit', () => this.children.delete(child));
    return child;
  }

  /** Tracks a child started elsewhere (the load processes) so cleanup kills it. */
  track(child: ChildProcess): void {
    this.children.add(child);
    child.once('exit', () => this.children.delete(child));
  }

  /** Kills every tracked child (SIGKILL) and removes every temp dir. Idempotent. */
  cleanup(): void {
    if (this.cleanedUp) return;
    this.cleanedUp = true;
    for (const child of this.children) {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
    this.children.clear();
    for (const directory of this.directories) rmSync(directory, { recursive: true, force: true });
  }
}

/**
 * Writes every dirty page to disk (`sync`), so the next measurement starts on
 * a quiet disk. Best effort: without a `sync` binary the run goes on.
 */
export function flushDisk(): void {
  try {
    execFileSync('sync', { stdio: 'ignore' });
  } catch {
    // Only the quality of the next figures depends on it.
  }
}

/** Sends SIGKILL to `child` and resolves once it has exited. */
export async function killAndWait(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGKILL');
  await exited;
}

export { freePorts };

/** Resident set size of `pid` in bytes (VmRSS in /proc/PID/status), or NaN once it is gone. */
export function rssBytes(pid: number): number {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const match = /^VmRSS:\s+(\d+)\s+kB$/m.exec(status);
    return match ? Number(match[1]) * 1024 : Number.NaN;
  } catch {
    return Number.NaN;
  }
}

/** CPU time (user + system) `pid` has used so far, in milliseconds, or NaN once it is gone. */
export function cpuTimeMs(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name, which is in parentheses and may hold spaces.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const userTicks = Number(fields[11]);
    const systemTicks = Number(fields[12]);
    const ticksPerSecond = 100; // USER_HZ; 100 on every Linux this runs on.
    return ((userTicks + systemTicks) * 1000) / ticksPerSecond;
  } catch {
    return Number.NaN;
  }
}

/**
 * Context switches of every thread of `pid` so far (voluntary and not, from
 * /proc/PID/task/TID/status), or NaN once it is gone: each is a thread going
 * to sleep or being woken, so their rate over an idle window counts its
 * wake-ups (threads that ended in between drop out of the sum).
 */
export function contextSwitches(pid: number): number {
  let tasks: string[];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return Number.NaN;
  }
  let switches = 0;
  for (const task of tasks) {
    let status: string;
    try {
      status = readFileSync(`/proc/${pid}/task/${task}/status`, 'utf8');
    } catch {
      continue; // the thread ended since the listing
    }
    switches += Number(/^voluntary_ctxt_switches:\s+(\d+)$/m.exec(status)?.[1] ?? 0) + Number(/^nonvoluntary_ctxt_switches:\s+(\d+)$/m.exec(status)?.[1] ?? 0);
  }
  return switches;
}

/** CPU time (user + system) of this process's children that have ended and been waited for, in milliseconds (cutime + cstime of /proc/self/stat). */
export function endedChildrenCpuTimeMs(): number {
  const stat = readFileSync('/proc/self/stat', 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[13]) + Number(fields[14])) * 1000) / 100;
}

/** The last `lineCount` lines of a log file, for error messages. */
export function logTail(path: string, lineCount = 15): string {
  try {
    return readFileSync(path, 'utf8').trimEnd().split('\n').slice(-lineCount).join('\n');
  } catch {
    return '(no log)';
  }
}

/** Resolves after `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Runs `command` to its end; answers its stdout, or rejects naming the command and its stderr when it fails. */
export function runCommand(command: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(stdout) : reject(new Error(`${command} ${args.join(' ')}: ${stderr.trim()}`))));
  });
}
