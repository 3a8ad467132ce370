/**
 * CPU, memory and block I/O limits for process apps, through the kernel's control
 * groups, v1 or v2 (or a hybrid of the two, as on hosts whose systemd mounts
 * v1 controllers beside an almost empty v2 tree).
 *
 * Each controller is taken from where it works: a v1 hierarchy that has it,
 * else the v2 tree when its `cgroup.controllers` lists it. A workload gets one
 * folder per hierarchy, `<mount>/hivemind/process-<scope>/<instance id>`
 * (the scope is per data directory, so two agents on one host never share
 * one), with its limits written before anything runs in it. The process
 * runtime's wrapper moves itself into those folders before it runs the
 * command, so every byte the command allocates is counted.
 *
 * Files written. v1 memory: `memory.limit_in_bytes`, and
 * `memory.memsw.limit_in_bytes` to the same value where swap is accounted
 * (so swap is no way around the limit). v1 cpu: `cpu.cfs_period_us` 100 ms
 * and `cpu.cfs_quota_us` the limit's share of it. v2: `memory.max`,
 * `memory.swap.max` 0, `cpu.max` "quota period", with the controllers
 * enabled in the parents' `cgroup.subtree_control`. I/O (the devices of the
 * volumes an app mounts, each with its own limits): v1 `blkio.throttle.
 * {read,write}_{bps,iops}_device` lines "major:minor value", v2 one `io.max`
 * line per device "major:minor rbps=.. wbps=.. riops=.. wiops=..".
 *
 * OOM kills are read back from `memory.oom_control` (v1, `oom_kill N`) or
 * `memory.events` (v2, `oom_kill N`).
 *
 * `parseCgroupMounts` is pure; the rest reads and writes /sys/fs/cgroup.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { assert } from '../../consensus/core/assert.js';
import type { Resources } from '../state/types.js';
import type { DeviceIoLimit } from './runtime.js';

/** The CFS period every CPU limit uses, in microseconds (the kernel's default). */
export const CPU_PERIOD_US = 100_000;
/** The smallest CFS quota the kernel takes, in microseconds: a CPU limit below 10 millicores is raised to it. */
export const CPU_QUOTA_US_MIN = 1_000;
/** The controllers limits need (`io` is v1's `blkio`). */
export type CgroupController = 'memory' | 'cpu' | 'io';
const CONTROLLERS: readonly CgroupController[] = ['memory', 'cpu', 'io'];

/** What a workload's cgroups enforce: its resources and the I/O limits of its volumes' devices. */
export interface CgroupLimits extends Resources {
  io?: readonly DeviceIoLimit[];
}

/** The v1 hierarchy that carries a controller. */
function v1Name(controller: CgroupController): string {
  return controller === 'io' ? 'blkio' : controller;
}

/** Where one controller lives: a v1 hierarchy's mount point, or the v2 tree's. */
export interface ControllerMount {
  version: 1 | 2;
  mountPoint: string;
}

/** The cgroup mounts of the host, as /proc/self/mounts shows them. */
export interface CgroupMounts {
  /** v1 hierarchies by controller (`cpu,cpuacct` gives both the same mount point). */
  v1: Map<string, string>;
  /** The v2 tree's mount point, if one is mounted. */
  v2?: string;
}

/** Reads /proc/self/mounts text. Pure. */
export function parseCgroupMounts(mountsText: string): CgroupMounts {
  const found: CgroupMounts = { v1: new Map() };
  for (const line of mountsText.split('\n')) {
    const [, mountPoint, type, options] = line.split(' ');
    if (mountPoint === undefined || options === undefined) continue;
    const point = unescapeMountPath(mountPoint);
    if (type === 'cgroup2') {
      // Several v2 mounts of one tree are the same tree; the first (usually /sys/fs/cgroup[/unified]) serves.
      found.v2 ??= point;
    } else if (type === 'cgroup') {
      for (const option of options.split(',')) {
        if (!found.v1.has(option)) found.v1.set(option, point);
      }
    }
  }
  return found;
}

/** /proc/mounts escapes space, tab, newline and backslash as octal. */
function unescapeMountPath(path: string): string {
  return path.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));
}

/** A limit this node cannot apply, or a cgroup file it could not write. */
export class CgroupError extends Error {
  readonly code = 'CGROUP_UNAVAILABLE';
}

/** What a workload's limits need, per controller (a limit left out needs nothing). */
export function controllersFor(limits: CgroupLimits): CgroupController[] {
  const needed: CgroupController[] = [];
  if (limits.memoryBytes !== undefined) needed.push('memory');
  if (limits.cpuMillis !== undefined) needed.push('cpu');
  if ((limits.io ?? []).some(hasIoLimit)) needed.push('io');
  return needed;
}

function hasIoLimit(limit: DeviceIoLimit): boolean {
  return limit.readBytesPerSecond !== undefined || limit.writeBytesPerSecond !== undefined || limit.readIops !== undefined || limit.writeIops !== undefined;
}

/** The v2 `io.max` line of one device's limits ("max" where a limit is absent). */
export function ioMaxLine(limit: DeviceIoLimit): string {
  const value = (number: number | undefined): string => (number === undefined ? 'max' : String(number));
  return `${limit.major}:${limit.minor} rbps=${value(limit.readBytesPerSecond)} wbps=${value(limit.writeBytesPerSecond)} riops=${value(limit.readIops)} wiops=${value(limit.writeIops)}`;
}

/** The CFS quota for `cpuMillis` thousandths of a core, in microseconds per CPU_PERIOD_US. */
export function cpuQuotaUs(cpuMillis: number): number {
  assert(Number.isSafeInteger(cpuMillis) && cpuMillis > 0, `a CPU limit is a positive whole number of millicores, got ${cpuMillis}`);
  return Math.max(CPU_QUOTA_US_MIN, Math.round((cpuMillis * CPU_PERIOD_US) / 1000));
}

export interface ProcessCgroupsOptions {
  /** Names this agent's folder (`process-<scope>`): one per data directory. */
  scope: string;
  /** /proc/self/mounts text (tests may give another host's); default: read it. */
  mountsText?: string;
}

/** One workload's folders, one per hierarchy it uses, and the hierarchy's version. */
export interface WorkloadCgroups {
  folders: { version: 1 | 2; path: string; controllers: CgroupController[] }[];
}

/** Control groups for process workloads. See the file comment. */
export class ProcessCgroups {
  private readonly scope: string;
  private readonly mounts: CgroupMounts;

  constructor(options: ProcessCgroupsOptions) {
    assert(/^[a-z0-9-]+$/.test(options.scope), `a cgroup scope is lower-case letters, digits and -, got ${JSON.stringify(options.scope)}`);
    this.scope = options.scope;
    this.mounts = parseCgroupMounts(options.mountsText ?? readMounts());
  }

  /** Where `controller` works on this host, or undefined when no hierarchy offers it. */
  controllerMount(controller: CgroupController): ControllerMount | undefined {
    const v1 = this.mounts.v1.get(v1Name(controller));
    if (v1 !== undefined && existsSync(v1)) return { version: 1, mountPoint: v1 };
    const v2 = this.mounts.v2;
    if (v2 !== undefined && v2Controllers(v2).includes(controller)) return { version: 2, mountPoint: v2 };
    return undefined;
  }

  /**
   * Makes the workload's folders with its limits written. Throws CgroupError
   * naming the limit and the reason when this node cannot enforce it (then
   * nothing is left behind). A workload without limits gets no folder.
   */
  create(id: string, limits: CgroupLimits): WorkloadCgroups {
    const byMount = new Map<string, { version: 1 | 2; mountPoint: string; controllers: CgroupController[] }>();
    for (const controller of controllersFor(limits)) {
      const mount = this.controllerMount(controller);
      if (mount === undefined) {
        const what =
          controller === 'memory' ? `a memory limit (${limits.memoryBytes} bytes)` : controller === 'cpu' ? `a CPU limit (${limits.cpuMillis} millicores)` : `I/O limits on its volumes (devices ${(limits.io ?? []).map((limit) => `${limit.major}:${limit.minor}`).join(', ')})`;
        throw new CgroupError(
          `this node cannot enforce ${what} on a process app: no cgroup hierarchy here has the ${controller} controller ` +
            `(neither a cgroup v1 mount of "${v1Name(controller)}" nor a cgroup v2 tree listing "${controller}" in cgroup.controllers); ` +
            'remove the limit, give the app an image, or run it on a node with cgroups',
        );
      }
      const key = `${mount.version}:${mount.mountPoint}`;
      const entry = byMount.get(key) ?? { ...mount, controllers: [] };
      entry.controllers.push(controller);
      byMount.set(key, entry);
    }
    const made: WorkloadCgroups = { folders: [] };
    try {
      for (const { version, mountPoint, controllers } of byMount.values()) {
        const path = this.folderOf(mountPoint, id);
        if (version === 2) this.enableV2(mountPoint, controllers);
        mkdirSync(path, { recursive: true });
        made.folders.push({ version, path, controllers });
        for (const controller of controllers) writeLimit({ version, path, controller, limits });
      }
    } catch (error) {
      this.remove(made);
      if (error instanceof CgroupError) throw error;
      throw new CgroupError(`cannot set up the limits of a process app in its cgroup: ${(error as Error).message}`);
    }
    return made;
  }

  /** The files the wrapper writes its pid to, to move itself into the workload's folders. */
  static procsFiles(cgroups: WorkloadCgroups): string[] {
    return cgroups.folders.map((folder) => join(folder.path, 'cgroup.procs'));
  }

  /** How many times the kernel's OOM killer killed a process of the workload (0 without a memory folder). */
  static oomKills(cgroups: WorkloadCgroups): number {
    for (const folder of cgroups.folders) {
      if (!folder.controllers.includes('memory')) continue;
      const file = folder.version === 1 ? 'memory.oom_control' : 'memory.events';
      try {
        const match = /^oom_kill (\d+)$/m.exec(readFileSync(join(folder.path, file), 'utf8'));
        return match ? Number(match[1]) : 0;
      } catch {
        return 0;
      }
    }
    return 0;
  }

  /**
   * Removes the workload's folders; a folder already gone is fine. Throws when
   * one still holds processes (EBUSY): the caller stops them first.
   */
  remove(cgroups: WorkloadCgroups): void {
    for (const folder of cgroups.folders) {
      try {
        rmdirSync(folder.path);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      }
      // The agent's folder goes with its last workload (a start makes it again, synchronously with its workload's).
      tryRemove(dirname(folder.path));
    }
  }

  /**
   * Removes whatever folders instance `id` may have here, known or not (a
   * start interrupted between making them and recording them). Says which
   * it could not remove (still busy), for the log; gone ones are fine.
   */
  removeAny(id: string): string[] {
    const left: string[] = [];
    for (const controller of CONTROLLERS) {
      const mount = this.controllerMount(controller);
      if (mount === undefined) continue;
      const path = this.folderOf(mount.mountPoint, id);
      try {
        rmdirSync(path);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ENOENT') left.push(`${path} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
      }
    }
    return left;
  }

  /**
   * Removes the workload folders, of any agent on this host, that hold no
   * process and were made more than `ageMsMin` ago, and the agents' folders
   * left empty: what an agent killed before it removed its workloads leaves
   * behind. A folder is made moments before its wrapper joins it, so an old
   * empty one is never a start under way; its agent, if it lives, finds it
   * gone (which remove() takes as done). Answers the folders removed.
   */
  sweepEmpty(nowMs: number, ageMsMin: number): string[] {
    const removed: string[] = [];
    const roots = new Set<string>();
    for (const controller of CONTROLLERS) {
      const mount = this.controllerMount(controller);
      if (mount !== undefined) roots.add(join(mount.mountPoint, 'hivemind'));
    }
    for (const root of roots) {
      for (const scope of subfolders(root).filter((name) => name.startsWith('process-'))) {
        const scopePath = join(root, scope);
        for (const workload of subfolders(scopePath)) {
          const path = join(scopePath, workload);
          if (!isEmptyGroup(path) || nowMs - createdAtMs(path) < ageMsMin) continue;
          if (tryRemove(path)) removed.push(path);
        }
        if (subfolders(scopePath).length === 0 && isEmptyGroup(scopePath) && nowMs - createdAtMs(scopePath) >= ageMsMin && tryRemove(scopePath)) removed.push(scopePath);
      }
    }
    return removed;
  }

  private folderOf(mountPoint: string, id: string): string {
    assert(/^[A-Za-z0-9][A-Za-z0-9._:@-]*$/.test(id) && !id.includes('..'), `a cgroup folder is named by an instance id, got ${JSON.stringify(id)}`);
    return join(mountPoint, 'hivemind', `process-${this.scope}`, id);
  }

  /** Enables `controllers` from the v2 root down to this agent's folder (each level's children may then use them). */
  private enableV2(mountPoint: string, controllers: CgroupController[]): void {
    const levels = [mountPoint, join(mountPoint, 'hivemind'), join(mountPoint, 'hivemind', `process-${this.scope}`)];
    for (const [position, level] of levels.entries()) {
      if (position > 0) mkdirSync(level, { recursive: true });
      const enabled = readFileSync(join(level, 'cgroup.subtree_control'), 'utf8').split(/\s+/);
      const missing = controllers.filter((controller) => !enabled.includes(controller));
      if (missing.length === 0) continue;
      try {
        writeFileSync(join(level, 'cgroup.subtree_control'), missing.map((controller) => `+${controller}`).join(' '));
      } catch (error) {
        throw new CgroupError(
          `this node cannot enforce ${missing.join(' and ')} limits on process apps: enabling ${missing.join(', ')} in ${level}/cgroup.subtree_control failed ` +
            `(${(error as NodeJS.ErrnoException).code ?? (error as Error).message}; in cgroup v2 a group that holds processes cannot hand controllers to children: run the agent in a group of its own, such as a systemd unit with Delegate=yes)`,
        );
      }
    }
  }
}

function writeLimit({ version, path, controller, limits }: { version: 1 | 2; path: string; controller: CgroupController; limits: CgroupLimits }): void {
  if (controller === 'io') {
    for (const limit of (limits.io ?? []).filter(hasIoLimit)) {
      if (version === 2) {
        writeFileSync(join(path, 'io.max'), ioMaxLine(limit));
        continue;
      }
      const files: [string, number | undefined][] = [
        ['blkio.throttle.read_bps_device', limit.readBytesPerSecond],
        ['blkio.throttle.write_bps_device', limit.writeBytesPerSecond],
        ['blkio.throttle.read_iops_device', limit.readIops],
        ['blkio.throttle.write_iops_device', limit.writeIops],
      ];
      for (const [file, value] of files) if (value !== undefined) writeFileSync(join(path, file), `${limit.major}:${limit.minor} ${value}`);
    }
    return;
  }
  if (controller === 'memory') {
    const bytes = limits.memoryBytes!;
    if (version === 1) {
      writeFileSync(join(path, 'memory.limit_in_bytes'), String(bytes));
      if (existsSync(join(path, 'memory.memsw.limit_in_bytes'))) writeFileSync(join(path, 'memory.memsw.limit_in_bytes'), String(bytes));
    } else {
      writeFileSync(join(path, 'memory.max'), String(bytes));
      if (existsSync(join(path, 'memory.swap.max'))) writeFileSync(join(path, 'memory.swap.max'), '0');
    }
    return;
  }
  const quota = cpuQuotaUs(limits.cpuMillis!);
  if (version === 1) {
    writeFileSync(join(path, 'cpu.cfs_period_us'), String(CPU_PERIOD_US));
    writeFileSync(join(path, 'cpu.cfs_quota_us'), String(quota));
  } else {
    writeFileSync(join(path, 'cpu.max'), `${quota} ${CPU_PERIOD_US}`);
  }
}

function v2Controllers(mountPoint: string): string[] {
  try {
    return readFileSync(join(mountPoint, 'cgroup.controllers'), 'utf8').trim().split(/\s+/);
  } catch {
    return [];
  }
}

function subfolders(path: string): string[] {
  try {
    return readdirSync(path, { withFileTypes: true }).filter((entry) => entry.isDirectory()).map((entry) => entry.name);
  } catch {
    return [];
  }
}

function isEmptyGroup(path: string): boolean {
  try {
    return readFileSync(join(path, 'cgroup.procs'), 'utf8').trim() === '';
  } catch {
    return false;
  }
}

/** When a cgroup folder was made (cgroupfs keeps its change time from then); +Infinity when unknown, so it counts as new. */
function createdAtMs(path: string): number {
  try {
    return statSync(path).ctimeMs;
  } catch {
    return Number.POSITIVE_INFINITY;
  }
}

function tryRemove(path: string): boolean {
  try {
    rmdirSync(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * The resource limits this host's cgroups can enforce (`cpu`, `memory`), for
 * the node's registration (LIMITS_LABEL): a controller some v1 hierarchy or
 * the v2 tree offers. Process apps use them directly, containers through runc.
 */
export function enforceableLimits(mountsText?: string): ('cpu' | 'memory')[] {
  const cgroups = new ProcessCgroups({ scope: 'probe', ...(mountsText === undefined ? {} : { mountsText }) });
  return (['cpu', 'memory'] as const).filter((controller) => cgroups.controllerMount(controller) !== undefined);
}

function readMounts(): string {
  try {
    return readFileSync('/proc/self/mounts', 'utf8');
  } catch {
    return '';
  }
}
