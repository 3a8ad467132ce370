/**
 * The OCI runtime spec of a container, from a workload spec and its image's
 * config. Pure: no I/O, the same input gives the same spec.
 *
 * Defaults follow containerd's default Linux spec: the same capability set
 * (`state/capabilities.ts`, changed by the app's cap_add and cap_drop),
 * mounts (proc, a tmpfs /dev with pts, shm and mqueue, read-only sysfs),
 * masked and read-only /proc paths, and new pid, ipc, uts and mount
 * namespaces. The network namespace is the one the network made.
 */
import { effectiveCapabilities } from '../../state/capabilities.js';
import type { ContainerSettings, UlimitSpec } from '../../state/types.js';
import { assert } from '../../../consensus/core/assert.js';
import type { DeviceIoLimit, WorkloadSpec } from '../runtime.js';
import type { ResolvedImage } from './images.js';

/** The labels that tie a container to its instance. */
export const Label = {
  instance: 'hivemind.instance',
  version: 'hivemind.version',
  specHash: 'hivemind.spec-hash',
  tenant: 'hivemind.tenant',
  app: 'hivemind.app',
  address: 'hivemind.address',
  /** A container on several networks: every address, comma-separated, in the order of its networks. */
  addresses: 'hivemind.addresses',
  ports: 'hivemind.ports',
  logPath: 'hivemind.log-path',
  startedAt: 'hivemind.started-at',
  /** The warm network (`hm-w-...`: netns name and CNI container id) the container took; absent: both derive from the instance id. */
  networkId: 'hivemind.network-id',
} as const;

const MASKED_PATHS = ['/proc/acpi', '/proc/asound', '/proc/kcore', '/proc/keys', '/proc/latency_stats', '/proc/timer_list', '/proc/timer_stats', '/proc/sched_debug', '/sys/firmware', '/proc/scsi'];
const READONLY_PATHS = ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'];
const PATH_DEFAULT = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
/** CFS period; the quota is `cpuMillis` of each period. */
const CPU_PERIOD_MICROS = 100_000;
/** Open files per container, as containerd's default. */
const OPEN_FILES_MAX = 1024;

/** Where the workload's pieces live on the node. */
export interface SpecContext {
  image: ResolvedImage;
  /** The container's network namespace. */
  netnsPath: string;
  /** A tmpfs folder on the node holding the secrets' files, bound read-only at /run/secrets. */
  secretsDir?: string;
  /** The numeric user, resolved by the caller (`resolveUser`). */
  user: { uid: number; gid: number; additionalGids?: number[] };
  /** The cgroup parent (cgroups v1 path), `/hivemind` by default. */
  cgroupParent?: string;
  hostname?: string;
  /** The container's generated /etc/hosts and /etc/resolv.conf on the node (`name-files.ts`), bound read-only. */
  nameFiles?: { hostsPath: string; resolvConfPath: string };
  /** A static init (tini) on the node, for `init: true` (`findStaticInit`); absent: such a workload is refused. */
  initPath?: string;
  /** Where each of `workload.configs` was written on the node (a file, or a folder), in order; bound read-only at its target. */
  configPaths?: string[];
}

/** Where the init binary is bound inside a container (as Docker's /sbin/docker-init). */
export const INIT_TARGET = '/sbin/hivemind-init';

/** The error of a workload whose settings this node cannot honour; `code` is stable. */
export class ContainerSettingsError extends Error {
  readonly code = 'container-settings-unavailable';
}

/** The hostname of a workload's container: the app's `hostname:`, else its instance id cut to the 63 characters a hostname may have. */
export function containerHostname(workload: Pick<WorkloadSpec, 'id' | 'container'>): string {
  return workload.container?.hostname ?? workload.id.slice(0, 63);
}

/** A value for an rlimit that has no limit (RLIM_INFINITY); `serializeRuntimeSpec` writes it as the 64-bit all-ones number JSON numbers cannot hold. */
const RLIMIT_UNLIMITED = '__hivemind_rlimit_unlimited__';
const RLIM_INFINITY_TEXT = '18446744073709551615';

/**
 * The JSON text of a runtime spec (or of its process), RLIMIT_UNLIMITED
 * written as RLIM_INFINITY. A spec read back from containerd holds that
 * number as the nearest double (2^64), which JSON writes as
 * 18446744073709552000: it is written back as RLIM_INFINITY too.
 */
export function serializeRuntimeSpec(spec: Record<string, unknown>): string {
  return JSON.stringify(spec, (key, value: unknown) => (typeof value === 'number' && value >= 2 ** 64 ? RLIMIT_UNLIMITED : value)).replaceAll(`"${RLIMIT_UNLIMITED}"`, RLIM_INFINITY_TEXT);
}

/** The OCI rlimits: RLIMIT_NOFILE at containerd's default unless `ulimits` names it, then each of `ulimits` (-1: unlimited). */
export function processRlimits(ulimits: readonly UlimitSpec[] = []): Array<{ type: string; soft: number | string; hard: number | string }> {
  const value = (amount: number): number | string => (amount === -1 ? RLIMIT_UNLIMITED : amount);
  const rlimits: Array<{ type: string; soft: number | string; hard: number | string }> = [];
  if (!ulimits.some((limit) => limit.name === 'nofile')) rlimits.push({ type: 'RLIMIT_NOFILE', hard: OPEN_FILES_MAX, soft: OPEN_FILES_MAX });
  for (const limit of ulimits) rlimits.push({ type: `RLIMIT_${limit.name.toUpperCase()}`, soft: value(limit.soft), hard: value(limit.hard) });
  return rlimits;
}

/** The tmpfs mounts of `tmpfs:`, with Docker's options (nosuid, nodev, noexec) and the size and mode given. */
export function tmpfsMounts(settings: ContainerSettings | undefined): Array<Record<string, unknown>> {
  return (settings?.tmpfs ?? []).map((tmpfs) => ({
    destination: tmpfs.target,
    type: 'tmpfs',
    source: 'tmpfs',
    options: ['nosuid', 'nodev', 'noexec', ...(tmpfs.sizeBytes !== undefined ? [`size=${tmpfs.sizeBytes}`] : []), ...(tmpfs.mode !== undefined ? [`mode=${tmpfs.mode.toString(8).padStart(4, '0')}`] : [])],
  }));
}

/** The process argv: entrypoint and command override the image's as in Compose. */
export function processArgs(spec: Pick<WorkloadSpec, 'entrypoint' | 'command' | 'id'>, image: ResolvedImage['config']): string[] {
  const entrypoint = spec.entrypoint ?? image.Entrypoint ?? [];
  // A new entrypoint drops the image's Cmd, as Docker and Compose do.
  const command = spec.command ?? (spec.entrypoint !== undefined ? [] : image.Cmd ?? []);
  const args = [...entrypoint, ...command];
  if (args.length === 0) throw new Error(`instance ${spec.id}: cannot start: neither the app nor its image names a command`);
  return args;
}

/** The environment: the image's, then the app's (the app wins), PATH always set. */
export function processEnv(environment: Record<string, string>, image: ResolvedImage['config']): string[] {
  const merged = new Map<string, string>();
  for (const entry of image.Env ?? [PATH_DEFAULT]) {
    const cut = entry.indexOf('=');
    if (cut > 0) merged.set(entry.slice(0, cut), entry.slice(cut + 1));
  }
  if (!merged.has('PATH')) merged.set('PATH', PATH_DEFAULT.slice(5));
  for (const [name, value] of Object.entries(environment)) merged.set(name, value);
  return [...merged].map(([name, value]) => `${name}=${value}`);
}

/** Parses a numeric `uid[:gid]`; undefined for a name (the caller looks it up). */
export function parseNumericUser(user: string | undefined): { uid: number; gid: number } | undefined {
  if (user === undefined || user === '') return { uid: 0, gid: 0 };
  const match = /^(\d+)(?::(\d+))?$/.exec(user);
  if (match === null) return undefined;
  const uid = Number(match[1]);
  return { uid, gid: match[2] !== undefined ? Number(match[2]) : uid };
}

/** Looks `user` (`name[:group]` or `uid[:gid]`) up in an image's /etc/passwd and /etc/group text. */
export function lookupUser(user: string, passwd: string, group: string): { uid: number; gid: number } | undefined {
  const [userPart, groupPart] = user.split(':') as [string, string | undefined];
  const passwdEntry = passwd.split('\n').map((line) => line.split(':')).find((fields) => fields[0] === userPart || fields[2] === userPart);
  const uid = passwdEntry ? Number(passwdEntry[2]) : /^\d+$/.test(userPart) ? Number(userPart) : undefined;
  if (uid === undefined || Number.isNaN(uid)) return undefined;
  let gid = passwdEntry ? Number(passwdEntry[3]) : uid;
  if (groupPart !== undefined) {
    const groupEntry = group.split('\n').map((line) => line.split(':')).find((fields) => fields[0] === groupPart || fields[2] === groupPart);
    const found = groupEntry ? Number(groupEntry[2]) : /^\d+$/.test(groupPart) ? Number(groupPart) : undefined;
    if (found === undefined || Number.isNaN(found)) return undefined;
    gid = found;
  }
  return { uid, gid };
}

/** The OCI runtime spec (JSON-ready object) of `workload`. */
export function buildRuntimeSpec(workload: WorkloadSpec, context: SpecContext): Record<string, unknown> {
  const image = context.image.config;
  const cgroupParent = context.cgroupParent ?? '/hivemind';
  const mounts: Array<Record<string, unknown>> = [
    { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
    { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
    { destination: '/dev/pts', type: 'devpts', source: 'devpts', options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'] },
    { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'] },
    { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
    { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
    { destination: '/run', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
  ];
  // Before the binds, so a tmpfs over /run or /etc does not hide the secrets or the name files.
  mounts.push(...tmpfsMounts(workload.container));
  for (const mount of workload.mounts) {
    mounts.push({ destination: mount.target, type: 'bind', source: mount.source, options: ['rbind', mount.readOnly ? 'ro' : 'rw'] });
  }
  // After the volumes, so a config may sit inside a volume's folder.
  for (const [position, config] of (workload.configs ?? []).entries()) {
    const source = context.configPaths?.[position];
    assert(source !== undefined, `instance ${workload.id}: config ${config.source} was not written before the spec was built`);
    mounts.push({ destination: config.target, type: 'bind', source, options: ['rbind', 'ro', 'nosuid', 'nodev', 'noexec'] });
  }
  if (context.nameFiles !== undefined) {
    mounts.push({ destination: '/etc/hosts', type: 'bind', source: context.nameFiles.hostsPath, options: ['rbind', 'ro', 'nosuid', 'nodev', 'noexec'] });
    mounts.push({ destination: '/etc/resolv.conf', type: 'bind', source: context.nameFiles.resolvConfPath, options: ['rbind', 'ro', 'nosuid', 'nodev', 'noexec'] });
  }
  if (context.secretsDir !== undefined) {
    mounts.push({ destination: '/run/secrets', type: 'bind', source: context.secretsDir, options: ['rbind', 'ro', 'nosuid', 'nodev', 'noexec'] });
  }
  const resources: Record<string, unknown> = { devices: [{ allow: false, access: 'rwm' }] };
  if (workload.limits.cpuMillis !== undefined) {
    resources.cpu = { shares: Math.max(2, Math.round((workload.limits.cpuMillis * 1024) / 1000)), quota: Math.round((workload.limits.cpuMillis * CPU_PERIOD_MICROS) / 1000), period: CPU_PERIOD_MICROS };
  }
  if (workload.limits.memoryBytes !== undefined) {
    // No swap beyond the limit: the limit is what the instance gets.
    resources.memory = { limit: workload.limits.memoryBytes, swap: workload.limits.memoryBytes };
  }
  if (workload.ioLimits !== undefined && workload.ioLimits.length > 0) resources.blockIO = blockIoOf(workload.ioLimits);
  const capabilities = effectiveCapabilities({ add: workload.container?.capAdd ?? [], drop: workload.container?.capDrop ?? [] });
  let args = processArgs(workload, image);
  if (workload.container?.init === true) {
    if (context.initPath === undefined) {
      throw new ContainerSettingsError(`instance ${workload.id}: cannot start: init: true needs a static init on the node (install Debian's tini package, which gives /usr/bin/tini-static), or leave init out`);
    }
    mounts.push({ destination: INIT_TARGET, type: 'bind', source: context.initPath, options: ['rbind', 'ro', 'nosuid', 'nodev'] });
    args = [INIT_TARGET, '--', ...args];
  }
  return {
    ociVersion: '1.0.2-dev',
    process: {
      terminal: false,
      user: { uid: context.user.uid, gid: context.user.gid, ...(context.user.additionalGids ? { additionalGids: context.user.additionalGids } : {}) },
      args,
      env: processEnv(workload.environment, image),
      cwd: workload.workingDir ?? (image.WorkingDir || '/'),
      capabilities: { bounding: capabilities, effective: capabilities, permitted: capabilities },
      rlimits: processRlimits(workload.container?.ulimits),
      noNewPrivileges: true,
    },
    root: { path: 'rootfs', readonly: workload.readOnly },
    hostname: context.hostname ?? containerHostname(workload),
    mounts,
    linux: {
      resources,
      cgroupsPath: `${cgroupParent}/${workload.id}`,
      namespaces: [{ type: 'pid' }, { type: 'ipc' }, { type: 'uts' }, { type: 'mount' }, { type: 'network', path: context.netnsPath }],
      maskedPaths: MASKED_PATHS,
      readonlyPaths: READONLY_PATHS,
    },
  };
}

/**
 * The labels of a workload's container; the address label comes once the
 * network gave one (`Label.address`), the network id only for a container
 * on a warm network (`Label.networkId`).
 */
export function containerLabels(workload: WorkloadSpec, extra: { address?: string; networkId?: string; startedAt: number }): Record<string, string> {
  return {
    ...workload.labels,
    [Label.instance]: workload.id,
    [Label.version]: String(workload.version),
    [Label.specHash]: workload.specHash,
    [Label.tenant]: workload.tenant,
    [Label.app]: workload.app,
    ...(extra.address !== undefined ? { [Label.address]: extra.address } : {}),
    ...(extra.networkId !== undefined ? { [Label.networkId]: extra.networkId } : {}),
    [Label.ports]: JSON.stringify(workload.ports),
    [Label.logPath]: workload.logPath,
    [Label.startedAt]: String(extra.startedAt),
  };
}

/** OCI `blockIO` throttles (runc writes them to the cgroup's `io.max`) for the devices of `limits`. */
export function blockIoOf(limits: readonly DeviceIoLimit[]): Record<string, unknown> {
  const rates = (pick: (limit: DeviceIoLimit) => number | undefined): { major: number; minor: number; rate: number }[] =>
    limits.flatMap((limit) => {
      const rate = pick(limit);
      return rate === undefined ? [] : [{ major: limit.major, minor: limit.minor, rate }];
    });
  const blockIo: Record<string, unknown> = {};
  const entries: [string, { major: number; minor: number; rate: number }[]][] = [
    ['throttleReadBpsDevice', rates((limit) => limit.readBytesPerSecond)],
    ['throttleWriteBpsDevice', rates((limit) => limit.writeBytesPerSecond)],
    ['throttleReadIOPSDevice', rates((limit) => limit.readIops)],
    ['throttleWriteIOPSDevice', rates((limit) => limit.writeIops)],
  ];
  for (const [key, list] of entries) if (list.length > 0) blockIo[key] = list;
  return blockIo;
}
