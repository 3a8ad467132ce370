/**
 * Keeping the agent's files out of its apps' reach. Process apps run on the
 * host as their tenant's unprivileged user (see executor/tenant-users.ts);
 * what keeps them from the cluster key, the node's TLS key, the join and
 * admin tokens, the Raft log (app specs, sealed secrets and the sealed CA
 * key) and other tenants' logs is the kernel's permission check on the data
 * directory.
 *
 * The data directory is made traversable but not listable (0711): a process
 * app reaches its named volumes under `volumes/` by path (HIVEMIND_VOLUME_*),
 * nothing else. Every other entry at its top level loses its group and other
 * permissions (folders 0700, files 0600 at most), whoever made it and
 * whatever umask it was made under; `volumes/` and each tenant's folder in
 * it are 0711, and each volume's own root belongs to its tenant's user with
 * mode 0700 (executor/local-volumes.ts). `containerd/` is left as containerd
 * makes it (its root 0711, its stores 0700): containerd needs that shape.
 *
 * Synchronous and cheap (one readdir and a stat per top-level entry): the
 * executor runs it at start and again with every volume sweep, so an entry
 * another component makes later is confined within one sweep.
 */
import { chmodSync, lstatSync, readdirSync, type Stats } from 'node:fs';
import { dirname, join, resolve } from 'node:path';

/** The data directory's mode: others may pass through to a path they know, not list or read. */
export const DATA_DIR_MODE = 0o711;
/** Entries of the data directory that process apps must pass through (by path only). */
const TRAVERSED_ENTRIES: ReadonlySet<string> = new Set(['volumes']);
/** Entries whose modes another program owns and sets safely itself. */
const FOREIGN_ENTRIES: ReadonlySet<string> = new Set(['containerd']);
const GROUP_AND_OTHER_BITS = 0o077;

/** What `confineDataDir` changed: the paths whose mode it narrowed (empty when all were already confined). */
export interface ConfinedFiles {
  narrowed: string[];
}

/**
 * Narrows the modes of `dataDir` and its top-level entries as the file
 * comment says. A missing data directory is fine (nothing to protect yet);
 * an entry that vanishes meanwhile is skipped. Other errors throw: an agent
 * that cannot protect its keys must say so.
 */
export function confineDataDir(dataDir: string): ConfinedFiles {
  const narrowed: string[] = [];
  const narrow = (path: string, mode: number): void => {
    if (setMode(path, mode)) narrowed.push(path);
  };
  let entries: string[];
  try {
    entries = readdirSync(dataDir);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { narrowed };
    throw error;
  }
  narrow(dataDir, DATA_DIR_MODE);
  for (const entry of entries) {
    if (FOREIGN_ENTRIES.has(entry)) continue;
    const path = join(dataDir, entry);
    const mode = currentMode(path);
    if (mode === undefined) continue;
    if (TRAVERSED_ENTRIES.has(entry)) {
      narrow(path, DATA_DIR_MODE);
      for (const tenant of readdirSafe(path)) {
        const tenantPath = join(path, tenant);
        if (lstatSafe(tenantPath)?.isDirectory() === true) narrow(tenantPath, DATA_DIR_MODE);
      }
      continue;
    }
    narrow(path, mode & ~GROUP_AND_OTHER_BITS);
  }
  return { narrowed };
}

/**
 * The first folder on the way to `path` (from the root down, `path`
 * included) that other users may not pass through (no `x` for others), with
 * its mode; undefined when every one lets them. The agent never changes
 * folders above its data directory: a process app that must reach its
 * volumes there is refused with this instead (a data directory under /root,
 * mode 0700, is the usual case).
 */
export function closedAncestor(path: string): { path: string; mode: number } | undefined {
  const chain: string[] = [];
  for (let current = resolve(path); ; current = dirname(current)) {
    chain.unshift(current);
    if (dirname(current) === current) break;
  }
  for (const folder of chain) {
    const mode = currentMode(folder);
    if (mode !== undefined && (mode & 0o001) === 0) return { path: folder, mode };
  }
  return undefined;
}

/** Sets `mode` on `path` (not through a symbolic link) unless it has it; says whether it changed anything. */
function setMode(path: string, mode: number): boolean {
  const current = currentMode(path);
  if (current === undefined || current === mode) return false;
  chmodSync(path, mode);
  return true;
}

/** The permission bits of `path`; undefined when it is gone or is a symbolic link (whose target is not ours to change). */
function currentMode(path: string): number | undefined {
  const stat = lstatSafe(path);
  if (stat === undefined || stat.isSymbolicLink()) return undefined;
  return stat.mode & 0o7777;
}

function lstatSafe(path: string): Stats | undefined {
  try {
    return lstatSync(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

function readdirSafe(path: string): string[] {
  try {
    return readdirSync(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT' || (error as NodeJS.ErrnoException).code === 'ENOTDIR') return [];
    throw error;
  }
}
