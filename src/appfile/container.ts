/**
 * A service's `hostname`, `init`, `tmpfs`, `ulimits`, `cap_add`, `cap_drop`
 * and `extra_hosts`, read into the spec's `container` settings. A process
 * app (no image) runs in the node's own namespaces, so it takes `ulimits`
 * alone; the others are refused for it with why. Pure.
 */
import { capabilityName, isCapability } from '../state/capabilities.js';
import { ULIMIT_NAMES } from '../state/fields.js';
import type { ContainerSettings, ExtraHostSpec, TmpfsSpec, UlimitSpec } from '../state/types.js';
import type { FieldPath, Problems } from './problems.js';
import { describe, isMapping, readAbsolutePath, readBoolean, readList, readMemoryBytes, readText, readWholeNumber } from './read.js';

/** The keys this module reads. */
export const CONTAINER_KEYS = ['hostname', 'init', 'tmpfs', 'ulimits', 'cap_add', 'cap_drop', 'extra_hosts'] as const;
const PROCESS_KEYS: ReadonlySet<string> = new Set(['ulimits']);
/** The largest rlimit amount written (beyond it, -1 means unlimited). */
const ULIMIT_AMOUNT_MAX = Number.MAX_SAFE_INTEGER;

/** The settings of a service, undefined when it sets none (or after an error, reported in `problems`). */
export function readContainerSettings(mapping: Record<string, unknown>, path: FieldPath, problems: Problems, options: { image: boolean }): ContainerSettings | undefined {
  const given = (key: string): boolean => mapping[key] !== undefined && mapping[key] !== null;
  const at = (key: string): FieldPath => [...path, key];
  const settings: ContainerSettings = {};
  for (const key of CONTAINER_KEYS) {
    if (!given(key) || options.image || PROCESS_KEYS.has(key)) continue;
    problems.error(at(key), 'applies only to an image app: a process app (command: without image:) runs in the node\'s own namespaces, with its hostname, /etc/hosts and no capabilities');
  }
  if (given('hostname')) {
    const hostname = readText(mapping.hostname, at('hostname'), problems, { nonEmpty: true, noSpaces: true, what: 'a host name' });
    if (hostname !== undefined && !/^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/.test(hostname)) {
      problems.error(at('hostname'), `must be a host name of letters, digits and - (at most 63), got ${describe(hostname)}`);
    } else if (hostname !== undefined) settings.hostname = hostname;
  }
  if (given('init')) {
    const init = readBoolean(mapping.init, at('init'), problems);
    if (init === true) settings.init = true;
  }
  if (given('tmpfs')) settings.tmpfs = readTmpfs(mapping.tmpfs, at('tmpfs'), problems);
  if (given('ulimits')) settings.ulimits = readUlimits(mapping.ulimits, at('ulimits'), problems);
  if (given('cap_add')) settings.capAdd = readCapabilities(mapping.cap_add, at('cap_add'), problems);
  if (given('cap_drop')) settings.capDrop = readCapabilities(mapping.cap_drop, at('cap_drop'), problems);
  if (given('extra_hosts')) settings.extraHosts = readExtraHosts(mapping.extra_hosts, at('extra_hosts'), problems);
  for (const key of Object.keys(settings) as (keyof ContainerSettings)[]) if (settings[key] === undefined) delete settings[key];
  return Object.keys(settings).length > 0 ? settings : undefined;
}

/** `tmpfs: /run` or a list of `path` and `path:size=64m,mode=1777`. */
function readTmpfs(value: unknown, path: FieldPath, problems: Problems): TmpfsSpec[] | undefined {
  const items = typeof value === 'string' ? [value] : readList(value, path, problems);
  if (items === undefined) return undefined;
  const mounts: TmpfsSpec[] = [];
  for (const [position, item] of items.entries()) {
    const itemPath = typeof value === 'string' ? path : [...path, position];
    const text = readText(item, itemPath, problems, { nonEmpty: true, what: 'a path like "/run", or "/tmp:size=64m,mode=1777"' });
    if (text === undefined) continue;
    const [target = '', options] = splitOnce(text, ':');
    if (readAbsolutePath(target, itemPath, problems) === undefined) continue;
    if (mounts.some((mount) => mount.target === target)) {
      problems.error(itemPath, `mounts ${target} a second time; list each path once`);
      continue;
    }
    const mount: TmpfsSpec = { target };
    for (const option of options === undefined ? [] : options.split(',')) {
      const [key, setting = ''] = splitOnce(option.trim(), '=');
      if (key === 'size') {
        const sizeBytes = readMemoryBytes(setting, itemPath, problems);
        if (sizeBytes !== undefined) mount.sizeBytes = sizeBytes;
      } else if (key === 'mode' && /^[0-7]{3,4}$/.test(setting)) {
        mount.mode = Number.parseInt(setting, 8);
      } else if (key === 'rw' || key === 'noexec' || key === 'nosuid' || key === 'nodev') {
        // Hivemind's tmpfs mounts are always rw, noexec, nosuid and nodev, as Docker's default.
      } else {
        problems.error(itemPath, `has option ${JSON.stringify(option)}; a tmpfs takes size=SIZE (like 64m) and mode=OCTAL (like 1777)`);
      }
    }
    mounts.push(mount);
  }
  return mounts;
}

/** `ulimits: { nofile: 65535, nproc: { soft: 100, hard: 200 } }`; -1 is unlimited. */
function readUlimits(value: unknown, path: FieldPath, problems: Problems): UlimitSpec[] | undefined {
  if (!isMapping(value)) {
    problems.error(path, `must be a mapping like { nofile: 65535 } or { nofile: { soft: 1024, hard: 65535 } }, got ${describe(value)}`);
    return undefined;
  }
  const limits: UlimitSpec[] = [];
  for (const [name, setting] of Object.entries(value)) {
    const limitPath = [...path, name];
    if (!(ULIMIT_NAMES as readonly string[]).includes(name)) {
      problems.error(limitPath, `is not a resource limit; use one of ${ULIMIT_NAMES.join(', ')}`);
      continue;
    }
    const amount = (written: unknown, at: FieldPath): number | undefined => readWholeNumber(written, at, problems, { min: -1, max: ULIMIT_AMOUNT_MAX });
    let soft: number | undefined;
    let hard: number | undefined;
    if (isMapping(setting)) {
      for (const key of Object.keys(setting)) if (key !== 'soft' && key !== 'hard') problems.error([...limitPath, key], 'is not a ulimit key; use soft: and hard:');
      soft = amount(setting.soft, [...limitPath, 'soft']);
      hard = amount(setting.hard, [...limitPath, 'hard']);
    } else {
      soft = amount(setting, limitPath);
      hard = soft;
    }
    if (soft === undefined || hard === undefined) continue;
    if (hard !== -1 && (soft === -1 || soft > hard)) {
      problems.error([...limitPath, 'soft'], `(${soft}) must not exceed hard (${hard})`);
      continue;
    }
    limits.push({ name, soft, hard });
  }
  return limits;
}

/** `[NET_ADMIN, SYS_TIME]` as `['CAP_NET_ADMIN', 'CAP_SYS_TIME']`; `ALL` as written. */
function readCapabilities(value: unknown, path: FieldPath, problems: Problems): string[] | undefined {
  const items = readList(value, path, problems);
  if (items === undefined) return undefined;
  const names: string[] = [];
  for (const [position, item] of items.entries()) {
    const text = readText(item, [...path, position], problems, { nonEmpty: true, noSpaces: true, what: 'a capability like "NET_ADMIN", or "ALL"' });
    if (text === undefined) continue;
    const name = capabilityName(text);
    if (!isCapability(name)) problems.error([...path, position], `${JSON.stringify(text)} is not a Linux capability (such as NET_ADMIN, SYS_TIME or ALL)`);
    else if (!names.includes(name)) names.push(name);
  }
  return names;
}

/** `["db.local:10.0.0.5", "other=10.0.0.6"]` or `{ db.local: 10.0.0.5 }`. */
function readExtraHosts(value: unknown, path: FieldPath, problems: Problems): ExtraHostSpec[] | undefined {
  const entries: Array<{ host: unknown; address: unknown; at: FieldPath }> = [];
  if (isMapping(value)) {
    for (const [host, address] of Object.entries(value)) entries.push({ host, address: Array.isArray(address) ? address[0] : address, at: [...path, host] });
  } else {
    const items = readList(value, path, problems);
    if (items === undefined) return undefined;
    for (const [position, item] of items.entries()) {
      const text = readText(item, [...path, position], problems, { nonEmpty: true, noSpaces: true, what: 'a "host:address" or "host=address"' });
      if (text === undefined) continue;
      const [host, address] = text.includes('=') ? splitOnce(text, '=') : splitOnce(text, ':');
      entries.push({ host, address, at: [...path, position] });
    }
  }
  const hosts: ExtraHostSpec[] = [];
  for (const { host, address, at } of entries) {
    const written = typeof address === 'string' ? address.replace(/^\[(.*)\]$/, '$1') : address;
    if (typeof host !== 'string' || !/^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$/.test(host) || host.length > 253) {
      problems.error(at, `must name a host (letters, digits, . and -), got ${describe(host)}`);
    } else if (typeof written !== 'string' || (!isAddress(written) && written !== 'host-gateway')) {
      problems.error(at, `must give host ${host} an IPv4 or IPv6 address (or host-gateway: the node), like "${host}:10.0.0.5", got ${describe(address)}`);
    } else hosts.push({ host, address: written });
  }
  return hosts;
}

/** An IPv4 address in dotted quads, or an IPv6 address in its usual forms. */
function isAddress(text: string): boolean {
  const quads = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text);
  if (quads !== null) return quads.slice(1).every((quad) => Number(quad) <= 255);
  if (!/^[0-9A-Fa-f:.]+$/.test(text) || !text.includes(':')) return false;
  const halves = text.split('::');
  if (halves.length > 2) return false;
  const groups = halves.flatMap((half) => (half === '' ? [] : half.split(':')));
  return groups.every((group) => /^[0-9A-Fa-f]{1,4}$/.test(group) || /^\d{1,3}(\.\d{1,3}){3}$/.test(group)) && (halves.length === 2 ? groups.length < 8 : groups.length === 8);
}

function splitOnce(text: string, separator: string): [string, string | undefined] {
  const cut = text.indexOf(separator);
  return cut === -1 ? [text, undefined] : [text.slice(0, cut), text.slice(cut + separator.length)];
}
