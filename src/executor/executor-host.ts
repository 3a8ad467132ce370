/**
 * What the executor does on its host besides running workloads (which its
 * runtimes do): narrowing the data directory's permissions, rotating log
 * files, looking up the node's address, reading the agent's user and the
 * host's accounts, keeping node-local volumes, and running a callback on the
 * next turn of the event loop. Injected, with the clock, so that the real
 * executor runs in the whole-cluster simulator on virtual time over a
 * simulated runtime (STYLE.md: the real driver, not a copy of it, runs in
 * the simulator); `SYSTEM_HOST` is what the agent uses, and does what the
 * executor always did.
 */
import { lookup } from 'node:dns/promises';
import { confineDataDir, type ConfinedFiles } from '../security/node-files.js';
import { maybeRotate } from './log-files.js';
import { hostAccountsIn, type TenantUidRange } from './tenant-users.js';

/** See the file comment. Every method may throw or reject; the executor logs what it cannot do and goes on. */
export interface ExecutorHost {
  /** The agent's user id; undefined where the platform has none. */
  uid(): number | undefined;
  /** The host accounts (users or groups) whose ids fall in `range`: tenants' users must not share them. */
  accountsIn(range: TenantUidRange): string[];
  /** Keeps `dataDir` out of apps' reach (security/node-files.ts). */
  confineDataDir(dataDir: string): ConfinedFiles;
  /** Rotates the log file at `path` once it grew past its bound (log-files.ts). */
  rotateLog(path: string): void;
  /** The IP address `name` resolves to. */
  lookup(name: string): Promise<string>;
  /** Runs `callback` on the next turn of the event loop, after what this turn applies; returns a canceller. */
  soon(callback: () => void): () => void;
  /**
   * Whether this node keeps node-local volumes (its sweeps and the clean-up
   * of interrupted backups under the data directory). A host without them
   * runs no app that mounts one.
   */
  readonly keepsVolumes: boolean;
}

/** The real host: the file system, DNS and `setImmediate`. */
export const SYSTEM_HOST: ExecutorHost = {
  uid: () => process.getuid?.(),
  accountsIn: (range) => hostAccountsIn(range),
  confineDataDir: (dataDir) => confineDataDir(dataDir),
  rotateLog: (path) => void maybeRotate(path),
  lookup: async (name) => (await lookup(name)).address,
  soon: (callback) => {
    const immediate = setImmediate(callback);
    return () => clearImmediate(immediate);
  },
  keepsVolumes: true,
};
