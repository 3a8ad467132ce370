/**
 * What the process runtime asks of the Linux host: process identity from
 * /proc, users from /etc/passwd, signal names, the executable search, and a
 * memory-backed folder for secrets. Synchronous and small: called rarely.
 */
import { accessSync, constants as fsConstants, readFileSync, statSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { delimiter, isAbsolute, join } from 'node:path';

/** A process as /proc/PID/stat shows it: its start time (clock ticks since boot) and state letter. */
export interface ProcessStat {
  startTicks: number;
  /** R, S, D, Z (zombie), T, ... */
  state: string;
  processGroup: number;
}

/** Reads /proc/PID/stat; undefined when the process does not exist. */
export function readProcessStat(pid: number): ProcessStat | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // The command name (field 2) is in parentheses and may itself hold spaces and ')'.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // After the name: state is field 3, pgrp field 5, starttime field 22.
  const state = fields[0] ?? '?';
  const processGroup = Number(fields[2]);
  const startTicks = Number(fields[19]);
  if (!Number.isFinite(startTicks)) return undefined;
  return { startTicks, state, processGroup };
}

/** Whether `pid` is a live (non-zombie) process started at `startTicks`: the same process, not a reused pid. */
export function isSameProcessAlive(pid: number, startTicks: number): boolean {
  const stat = readProcessStat(pid);
  return stat !== undefined && stat.startTicks === startTicks && stat.state !== 'Z' && stat.state !== 'X';
}

/** Whether any process is still in process group `group`. */
export function processGroupExists(group: number): boolean {
  try {
    process.kill(-group, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Sends `signal` to every process of group `group`; a group that is gone is fine. */
export function signalProcessGroup(group: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-group, signal);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error;
  }
}

/** `SIGTERM`, `TERM`, `15` → `SIGTERM`; undefined for something that is not a signal. */
export function signalName(text: string): NodeJS.Signals | undefined {
  const signals = osConstants.signals as Record<string, number>;
  if (/^\d+$/.test(text)) {
    const number = Number(text);
    const found = Object.entries(signals).find(([, value]) => value === number);
    return found?.[0] as NodeJS.Signals | undefined;
  }
  const upper = text.toUpperCase();
  const name = upper.startsWith('SIG') ? upper : `SIG${upper}`;
  return signals[name] === undefined ? undefined : (name as NodeJS.Signals);
}

/** A resolved user: numeric ids, and the home folder when /etc/passwd knows the user. */
export interface HostUser {
  uid: number;
  gid: number;
  home?: string;
}

/**
 * Resolves Compose's `user:` (`name`, `uid`, `uid:gid`, `name:group`) against
 * /etc/passwd and /etc/group. Returns an error message naming the problem.
 */
export function resolveUser(user: string, files: { passwd?: string; group?: string } = {}): { ok: true; user: HostUser } | { ok: false; message: string } {
  const [userPart = '', groupPart] = user.split(':', 2);
  const passwd = readColonFile(files.passwd ?? '/etc/passwd');
  let uid: number;
  let gid: number | undefined;
  let home: string | undefined;
  if (/^\d+$/.test(userPart)) {
    uid = Number(userPart);
    const entry = passwd.find((fields) => fields[2] === userPart);
    if (entry) {
      gid = Number(entry[3]);
      home = entry[5];
    }
  } else {
    const entry = passwd.find((fields) => fields[0] === userPart);
    if (!entry) return { ok: false, message: `user "${userPart}" is not in /etc/passwd on this node` };
    uid = Number(entry[2]);
    gid = Number(entry[3]);
    home = entry[5];
  }
  if (groupPart !== undefined) {
    if (/^\d+$/.test(groupPart)) gid = Number(groupPart);
    else {
      const entry = readColonFile(files.group ?? '/etc/group').find((fields) => fields[0] === groupPart);
      if (!entry) return { ok: false, message: `group "${groupPart}" is not in /etc/group on this node` };
      gid = Number(entry[2]);
    }
  }
  return { ok: true, user: { uid, gid: gid ?? uid, ...(home ? { home } : {}) } };
}

function readColonFile(path: string): string[][] {
  try {
    return readFileSync(path, 'utf8')
      .split('\n')
      .filter((line) => line !== '' && !line.startsWith('#'))
      .map((line) => line.split(':'));
  } catch {
    return [];
  }
}

/** The path of `command` as `execvp` would find it in `path`; undefined when it is not there or not executable. */
export function findExecutable(command: string, path: string, workingDir: string): string | undefined {
  const executable = (candidate: string): boolean => {
    try {
      accessSync(candidate, fsConstants.X_OK);
      return statSync(candidate).isFile();
    } catch {
      return false;
    }
  };
  if (command.includes('/')) {
    const candidate = isAbsolute(command) ? command : join(workingDir, command);
    return executable(candidate) ? candidate : undefined;
  }
  for (const folder of path.split(delimiter)) {
    if (folder === '') continue;
    const candidate = join(folder, command);
    if (executable(candidate)) return candidate;
  }
  return undefined;
}

/** The search path processes get when their environment sets none. */
export const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/**
 * A folder on memory-backed storage for secret files: /dev/shm, else
 * $XDG_RUNTIME_DIR. Undefined when neither is usable: then secrets cannot be
 * handed to processes without writing them to disk, which we refuse.
 */
export function memoryBackedRoot(): string | undefined {
  const candidates = ['/dev/shm', process.env.XDG_RUNTIME_DIR].filter((value): value is string => typeof value === 'string' && value !== '');
  for (const candidate of candidates) {
    try {
      accessSync(candidate, fsConstants.W_OK | fsConstants.X_OK);
      if (isMemoryBacked(candidate)) return candidate;
    } catch {
      // not usable; try the next
    }
  }
  return undefined;
}

/** Whether `path` is on a tmpfs/ramfs, by /proc/self/mounts (the longest mount point that holds it). */
function isMemoryBacked(path: string): boolean {
  let mounts: string;
  try {
    mounts = readFileSync('/proc/self/mounts', 'utf8');
  } catch {
    return false;
  }
  let best = { point: '', type: '' };
  for (const line of mounts.split('\n')) {
    const [, point, type] = line.split(' ');
    if (point === undefined || type === undefined) continue;
    const holds = path === point || path.startsWith(point.endsWith('/') ? point : `${point}/`);
    if (holds && point.length >= best.point.length) best = { point, type };
  }
  return best.type === 'tmpfs' || best.type === 'ramfs';
}
