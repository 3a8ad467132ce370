/**
 * Raft storage over LevelDB (`level`), values encoded with msgpackr.
 *
 * Key layout (string keys, so LevelDB's byte order is the order below):
 *
 *   e<16 hex digits>  one log entry, keyed by its index, big-endian and fixed
 *                     width so that key order is index order
 *   h                 the hard state
 *   s                 the latest snapshot, metadata and data in one value
 *
 * Every write is one LevelDB batch, so a crash leaves either all of a write or
 * none of it; this is what keeps the stored log free of gaps.
 */
import { Level } from 'level';
import { Packr } from 'msgpackr';
import { assert } from './core/assert.js';
import { EntryType, NO_NODE } from './core/types.js';
import type { ClusterConfig, Entry, HardState, Snapshot } from './core/types.js';
import type { PersistedState, RaftStorage, StorageWrite } from './storage.js';

/** Where a `LevelStorage` keeps its files. */
export interface LevelStorageInit {
  /** The LevelDB directory; created if missing. One node's storage only: LevelDB locks it. */
  directory: string;
}

/**
 * Stored data that cannot be decoded or does not have the expected shape.
 * The node cannot run on it: the operator restores the directory or rejoins the node.
 */
export class StorageCorruptError extends Error {
  readonly code = 'STORAGE_CORRUPT';
}

const ENTRY_KEY_PREFIX = 'e';
const ENTRY_KEY_INDEX_DIGITS = 16;
const HARD_STATE_KEY = 'h';
const SNAPSHOT_KEY = 's';
const ENTRY_KEY_FIRST = entryKey(0);
const ENTRY_KEY_LAST = ENTRY_KEY_PREFIX + 'f'.repeat(ENTRY_KEY_INDEX_DIGITS);

/**
 * Which entries are on disk. Invariant: the stored entries are exactly the
 * indexes in (snapshotIndex, lastIndex], and snapshotIndex <= lastIndex.
 * snapshotIndex is 0 when no snapshot is stored.
 */
interface LogRange {
  snapshotIndex: number;
  lastIndex: number;
}

type Operation = { type: 'put'; key: string; value: Uint8Array } | { type: 'del'; key: string };

/** The operations of one batch and the log range once it is written. */
interface Plan {
  operations: Operation[];
  range: LogRange;
}

/**
 * `RaftStorage` over a LevelDB directory.
 *
 * `load()` opens the database (or call `open()` first) and must run before
 * `persist` or `compact`: it reads which entries are stored, and later writes
 * compute their deletions from that range without scanning. One call at a
 * time, as `RaftStorage` requires; an overlapping call fails an assertion.
 * LevelDB errors reject the returned promise, unchanged.
 */
export class LevelStorage implements RaftStorage {
  private readonly directory: string;
  private readonly packr = new Packr({ useRecords: false });
  private db: Level<string, Uint8Array> | undefined;
  /** Undefined until `load()` has run, and again after `close()`. */
  private range: LogRange | undefined;
  private busy = false;

  constructor(init: LevelStorageInit) {
    this.directory = init.directory;
  }

  /** Opens the database, creating the directory if needed. Calling it again does nothing. */
  async open(): Promise<void> {
    if (this.db === undefined) {
      this.db = new Level<string, Uint8Array>(this.directory, { valueEncoding: 'view' });
    }
    await this.db.open();
  }

  async load(): Promise<PersistedState> {
    return this.exclusive('load', async () => {
      await this.open();
      const hardState = await this.readHardState();
      const snapshot = await this.readSnapshot();
      const snapshotIndex = snapshot?.meta.index ?? 0;
      const entries = await this.readEntries(snapshotIndex);
      this.range = { snapshotIndex, lastIndex: snapshotIndex + entries.length };
      return snapshot === undefined ? { hardState, entries } : { hardState, snapshot, entries };
    });
  }

  async persist(write: StorageWrite, sync: boolean): Promise<void> {
    await this.exclusive('persist', async () => {
      let plan: Plan = { operations: [], range: this.requireRange('persist') };
      if (write.snapshot !== undefined) plan = this.planInstallSnapshot(plan, write.snapshot);
      if (write.entries.length > 0) plan = this.planAppend(plan, write.entries);
      if (write.hardState !== undefined) {
        plan.operations.push({ type: 'put', key: HARD_STATE_KEY, value: this.packr.pack(write.hardState) });
      }
      await this.write(plan, sync);
    });
  }

  async compact(snapshot: Snapshot): Promise<void> {
    await this.exclusive('compact', async () => {
      const range = this.requireRange('compact');
      const index = snapshot.meta.index;
      assert(
        index >= range.snapshotIndex && index <= range.lastIndex,
        `LevelStorage.compact: snapshot index ${index} is outside the stored log (${range.snapshotIndex}, ${range.lastIndex}]`,
      );
      const operations: Operation[] = [
        ...deleteEntries(range.snapshotIndex + 1, index),
        { type: 'put', key: SNAPSHOT_KEY, value: this.packr.pack(snapshot) },
      ];
      await this.write({ operations, range: { snapshotIndex: index, lastIndex: range.lastIndex } }, true);
    });
  }

  /** Closes the database and releases its lock; `load()` may open it again. */
  async close(): Promise<void> {
    await this.exclusive('close', async () => {
      const db = this.db;
      this.range = undefined;
      this.db = undefined;
      await db?.close();
    });
  }

  /** A snapshot from the leader replaces the whole log, including entries above its index. */
  private planInstallSnapshot(plan: Plan, snapshot: Snapshot): Plan {
    const index = snapshot.meta.index;
    assert(
      index >= plan.range.snapshotIndex,
      `LevelStorage.persist: snapshot index ${index} is older than the stored snapshot at ${plan.range.snapshotIndex}`,
    );
    plan.operations.push(
      ...deleteEntries(plan.range.snapshotIndex + 1, plan.range.lastIndex),
      { type: 'put', key: SNAPSHOT_KEY, value: this.packr.pack(snapshot) },
    );
    return { operations: plan.operations, range: { snapshotIndex: index, lastIndex: index } };
  }

  /**
   * Puts `entries` and deletes any stored entry after the last of them, so an
   * entry at index i replaces every stored entry at index >= i. Entries up to
   * the new last index need no delete: the puts overwrite them.
   */
  private planAppend(plan: Plan, entries: Entry[]): Plan {
    const { snapshotIndex, lastIndex } = plan.range;
    const firstNew = entries[0]!.index;
    assert(
      firstNew > snapshotIndex && firstNew <= lastIndex + 1,
      `LevelStorage.persist: entries starting at ${firstNew} do not join the stored log (${snapshotIndex}, ${lastIndex}]`,
    );
    entries.forEach((entry, offset) => {
      assert(entry.index === firstNew + offset, () => `LevelStorage.persist: entry ${entry.index} follows ${firstNew + offset - 1}`);
      // Checked on the way in too, so that a malformed entry fails here and not at the next start.
      assert(isEntry(entry), () => `LevelStorage.persist: entry ${entry.index} is not a well-formed entry`);
      plan.operations.push({ type: 'put', key: entryKey(entry.index), value: this.packr.pack(entry) });
    });
    const lastNew = firstNew + entries.length - 1;
    plan.operations.push(...deleteEntries(lastNew + 1, lastIndex));
    return { operations: plan.operations, range: { snapshotIndex, lastIndex: lastNew } };
  }

  /** Writes the plan as one batch, and only then adopts its range. */
  private async write(plan: Plan, sync: boolean): Promise<void> {
    if (plan.operations.length > 0) await this.requireDb().batch(plan.operations, { sync });
    this.range = plan.range;
  }

  private async readHardState(): Promise<HardState> {
    const bytes = await this.requireDb().get(HARD_STATE_KEY);
    if (bytes === undefined) return { term: 0, vote: NO_NODE, commit: 0 };
    const value = this.decode(bytes, 'the hard state');
    if (!isHardState(value)) throw this.corrupt('the hard state', 'it does not have the shape of a hard state');
    return value;
  }

  private async readSnapshot(): Promise<Snapshot | undefined> {
    const bytes = await this.requireDb().get(SNAPSHOT_KEY);
    if (bytes === undefined) return undefined;
    const value = this.decode(bytes, 'the snapshot');
    if (!isSnapshot(value)) throw this.corrupt('the snapshot', 'it does not have the shape of a snapshot');
    return value;
  }

  /** Reads every stored entry in index order; they must follow `snapshotIndex` without a gap. */
  private async readEntries(snapshotIndex: number): Promise<Entry[]> {
    const entries: Entry[] = [];
    const iterator = this.requireDb().iterator({ gte: ENTRY_KEY_FIRST, lte: ENTRY_KEY_LAST });
    for await (const [key, bytes] of iterator) {
      const what = `the log entry at key "${key}"`;
      const value = this.decode(bytes, what);
      if (!isEntry(value) || key !== entryKey(value.index)) {
        throw this.corrupt(what, 'it does not have the shape of an entry stored under this key');
      }
      const expected = snapshotIndex + entries.length + 1;
      assert(
        value.index === expected,
        `LevelStorage.load: "${this.directory}" has entry ${value.index} where ${expected} should be (a gap in the log)`,
      );
      entries.push(value);
    }
    return entries;
  }

  /**
   * Decodes from a plain Uint8Array view: msgpackr then returns byte fields as
   * plain Uint8Array, not as Node Buffers, as the core's plain-data types require.
   */
  private decode(bytes: Uint8Array, what: string): unknown {
    const view = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    try {
      return this.packr.unpack(view);
    } catch (error) {
      throw this.corrupt(what, `it does not decode (${error instanceof Error ? error.message : String(error)})`);
    }
  }

  private corrupt(what: string, problem: string): StorageCorruptError {
    return new StorageCorruptError(
      `cannot load Raft storage from "${this.directory}": ${what} is corrupt: ${problem}; ` +
        'restore the data directory from a backup, or remove this node from the cluster and join it again with an empty one',
    );
  }

  private requireDb(): Level<string, Uint8Array> {
    assert(this.db !== undefined, 'LevelStorage: used before open()');
    return this.db;
  }

  private requireRange(operation: string): LogRange {
    assert(this.range !== undefined, () => `LevelStorage.${operation}: called before load() or after close()`);
    return this.range;
  }

  /** The in-memory range is only right if calls do not overlap. */
  private async exclusive<T>(operation: string, body: () => Promise<T>): Promise<T> {
    assert(!this.busy, () => `LevelStorage.${operation}: called while another call is running; await each call first`);
    this.busy = true;
    try {
      return await body();
    } finally {
      this.busy = false;
    }
  }
}

function entryKey(index: number): string {
  assert(Number.isSafeInteger(index) && index >= 0, () => `LevelStorage: invalid entry index ${index}`);
  return ENTRY_KEY_PREFIX + index.toString(16).padStart(ENTRY_KEY_INDEX_DIGITS, '0');
}

/** Deletes of the entries in [from, to]; none when the range is empty. */
function deleteEntries(from: number, to: number): Operation[] {
  const operations: Operation[] = [];
  for (let index = from; index <= to; index++) operations.push({ type: 'del', key: entryKey(index) });
  return operations;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isCount(value: unknown): value is number {
  return Number.isSafeInteger(value) && (value as number) >= 0;
}

function isNodeList(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((node) => typeof node === 'string');
}

function isClusterConfig(value: unknown): value is ClusterConfig {
  return isRecord(value) && isNodeList(value.voters) && isNodeList(value.learners);
}

function isHardState(value: unknown): value is HardState {
  return isRecord(value) && isCount(value.term) && typeof value.vote === 'string' && isCount(value.commit);
}

function isEntry(value: unknown): value is Entry {
  if (!isRecord(value) || !isCount(value.term) || !isCount(value.index) || !(value.data instanceof Uint8Array)) {
    return false;
  }
  if (value.type === EntryType.Normal) return value.config === undefined;
  return value.type === EntryType.Config && isClusterConfig(value.config);
}

function isSnapshot(value: unknown): value is Snapshot {
  if (!isRecord(value) || !(value.data instanceof Uint8Array) || !isRecord(value.meta)) return false;
  const meta = value.meta;
  return isCount(meta.index) && isCount(meta.term) && isClusterConfig(meta.config);
}
