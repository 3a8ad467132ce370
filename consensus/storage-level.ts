/**
 * Raft storage over LevelDB (`level`), values encoded with msgpackr.
 *
 * Key layout (string keys, so LevelDB's byte order is the order below):
 *
 *   c<16 hex digits><8 hex digits>
 *                     a chunk of the latest snapshot's data (its index, then
 *                     the chunk number), at most `SNAPSHOT_CHUNK_BYTES` raw
 *                     bytes each
 *   e<16 hex digits>  one log entry, keyed by its index (the layout before
 *                     runs; read at load, deleted when covered, never written)
 *   h                 the hard state
 *   r<16 hex digits>  a run: the consecutive entries of one `persist`, keyed
 *                     by the index of the first, big-endian and fixed width so
 *                     that key order is index order
 *   s                 the latest snapshot's header: metadata, chunk count,
 *                     byte count (before chunks: metadata and data in one
 *                     value, still read)
 *   v                 the value format: 1, every value framed with a checksum
 *
 * Every value is framed (`frameValue`): the byte 0xC1 (which msgpack never
 * uses, so a value written before checksums, always a msgpack map or array,
 * cannot be taken for one), a format byte (1), the CRC32C of the key and the
 * payload (4 bytes, big-endian), then the msgpack payload. The key is in the
 * checksum so that a value read under another key fails it. A directory
 * without `v` was written before checksums: `load` frames all of its values
 * and writes `v` in one synced batch, so an upgraded node is checked like a
 * new one from then on, and a value without a frame is corruption.
 *
 * Integrity on read: a checksum mismatch in any value (the last run
 * included) is `StorageCorruptError`, never a truncation. LevelDB applies a
 * batch whole or not at all, so no crash leaves half a run: a bad run was
 * written whole and synced, and may have been acknowledged. The one place a
 * crash does tear a write is LevelDB's own write-ahead log, checked before
 * LevelDB opens it (`storage-level-wal.ts`): a torn last write is dropped and
 * logged, any other damage is `StorageCorruptError`.
 *
 * A run is one LevelDB value, so a persist of n entries costs one put, not n:
 * LevelDB's JavaScript layer normalises every operation of a batch, and that
 * cost per entry was most of a follower's CPU. A run may be cut short by a
 * later one: when entries from index i replace stored ones, every run starting
 * at or after i is deleted in the same batch and a run starting before i keeps
 * its stored tail, which `load` drops because the next run starts at i. So,
 * read in key order, each run replaces whatever the previous ones held from its
 * first index on.
 *
 * Every write is one LevelDB batch, so a crash leaves either all of a write or
 * none of it; this is what keeps the stored log free of gaps.
 */
import { Level } from 'level';
import { setImmediate } from 'node:timers/promises';
import { Packr } from 'msgpackr';
import { assert } from './core/assert.js';
import { crc32c } from './crc32c.js';
import { checkLevelDbLogs } from './storage-level-wal.js';
import { EntryType, NO_NODE } from './core/types.js';
import type { ClusterConfig, Entry, HardState, Snapshot, SnapshotMeta } from './core/types.js';
import type { PersistedState, RaftStorage, SnapshotPieces, StorageWrite } from './storage.js';

/** Where a `LevelStorage` keeps its files. */
export interface LevelStorageInit {
  /** The LevelDB directory; created if missing. One node's storage only: LevelDB locks it. */
  directory: string;
  /**
   * Where the storage reports what it repaired or changed on its own (a torn
   * last write dropped, checksums added to an older directory). Standard
   * error when not given: these lines must reach the operator.
   */
  logger?: (line: string) => void;
}

/**
 * Stored data that fails its checksum, cannot be decoded, or does not have
 * the expected shape, or a LevelDB log damaged other than by a crash. The
 * node cannot run on it: the operator restores the directory or rejoins the
 * node. `key` names the LevelDB key (or log file) and `index` the first log
 * index it holds, when known.
 */
export class StorageCorruptError extends Error {
  readonly code = 'STORAGE_CORRUPT';
  readonly key: string | undefined;
  readonly index: number | undefined;
  constructor(message: string, where: { key?: string; index?: number } = {}) {
    super(message);
    this.key = where.key;
    this.index = where.index;
  }
}

const LEGACY_ENTRY_KEY_PREFIX = 'e';
const RUN_KEY_PREFIX = 'r';
const KEY_INDEX_DIGITS = 16;
const HARD_STATE_KEY = 'h';
const SNAPSHOT_KEY = 's';
/** A chunk of the snapshot's data: `c<16 hex digits: snapshot index><8 hex digits: chunk number>`. */
const SNAPSHOT_CHUNK_KEY_PREFIX = 'c';
const CHUNK_NUMBER_DIGITS = 8;
/**
 * Bytes of snapshot data per stored chunk. Each chunk is framed and written
 * in a LevelDB batch of its own, so that storing a large snapshot (100 MB at
 * 350,000 keys) never holds the loop for long: packing, framing and
 * checksumming it whole, then copying it into one LevelDB batch (which alone
 * took about 950 ms for 52 MB on the loaded benchmark machine) held a
 * leader's loop past its election timeout.
 */
export const SNAPSHOT_CHUNK_BYTES = 256 * 1024;
const FORMAT_KEY = 'v';
/** The format `FORMAT_KEY` holds: every value framed with a CRC32C. */
const FORMAT_CHECKSUMMED = 1;
/** Never a msgpack value's first byte ("never used" in the msgpack spec), so a frame is told apart from a bare value. */
const FRAME_MARK = 0xc1;
const FRAME_VERSION = 1;
/** Mark, version, CRC32C. */
const FRAME_HEADER_BYTES = 6;

/**
 * A stored value holding entries `first`..`last` as the log has them now. The
 * stored value may hold more (a tail replaced by the next run); never fewer.
 */
interface Run {
  key: string;
  first: number;
  last: number;
}

/**
 * Which entries are on disk. Invariant: `runs` are sorted, consecutive
 * (each `first` is the previous `last` + 1), and together cover exactly the
 * indexes in (snapshotIndex, lastIndex]; the first run may start at or below
 * snapshotIndex (its covered entries are skipped at load). snapshotIndex is 0
 * when no snapshot is stored.
 */
interface LogRange {
  snapshotIndex: number;
  lastIndex: number;
  runs: Run[];
  /** The keys of the stored snapshot's chunks (none for a snapshot stored whole, as before chunks). */
  snapshotChunkKeys: string[];
}

type Operation = { type: 'put'; key: string; value: Uint8Array } | { type: 'del'; key: string };

/**
 * The operations of one batch and the log range once it is written. The runs
 * change only after the write, and without copying the list (it holds one run
 * per persist since the last compaction): cut `runs` to its first `runsKept`,
 * end the last kept one at `lastKeptEnd` if set, then add `added`.
 */
interface Plan {
  operations: Operation[];
  snapshotIndex: number;
  snapshotChunkKeys: string[];
  lastIndex: number;
  runs: Run[];
  runsKept: number;
  lastKeptEnd: number | undefined;
  added: Run | undefined;
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
  private readonly logger: (line: string) => void;
  private readonly packr = new Packr({ useRecords: false });
  private db: Level<string, Uint8Array> | undefined;
  /** Undefined until `load()` has run, and again after `close()`. */
  private range: LogRange | undefined;
  private busy = false;

  constructor(init: LevelStorageInit) {
    this.directory = init.directory;
    this.logger = init.logger ?? ((line) => process.stderr.write(`${line}\n`));
  }

  /**
   * Opens the database, creating the directory if needed. Calling it again
   * does nothing. Checks LevelDB's write-ahead logs first (see
   * `storage-level-wal.ts`): rejects with `StorageCorruptError` if one is
   * damaged other than by a crash in its last write.
   *
   * LevelDB's `paranoid_checks` would be the natural switch, but
   * `classic-level` 3.0 does not pass it (nor `verify_checksums` on reads) to
   * LevelDB: its `db_open` reads only createIfMissing, errorIfExists,
   * compression, multithreading and the cache and file sizes. Hence the log
   * check here and a checksum on every value.
   */
  async open(): Promise<void> {
    if (this.db === undefined) {
      const torn = await this.checkLogs();
      const db = new Level<string, Uint8Array>(this.directory, { valueEncoding: 'view' });
      await db.open();
      this.db = db;
      for (const line of torn) this.logger(line);
    }
    await this.db.open();
  }

  async load(): Promise<PersistedState> {
    return this.exclusive('load', async () => {
      await this.open();
      if ((await this.readFormat()) === undefined) await this.addChecksums();
      const hardState = await this.readHardState();
      await this.checkKeys();
      const { snapshot, chunkKeys } = await this.readSnapshot();
      const snapshotIndex = snapshot?.meta.index ?? 0;
      const { entries, runs } = await this.readEntries(snapshotIndex);
      const lastIndex = snapshotIndex + entries.length;
      // Writes keep the durable commit index within the durable log; past it, the entries between were lost on the disk.
      if (hardState.commit > lastIndex) {
        throw this.corrupt('the log', HARD_STATE_KEY, `the hard state's commit index ${hardState.commit} is past its last entry ${lastIndex} (entries lost)`, lastIndex + 1);
      }
      this.range = { snapshotIndex, lastIndex, runs, snapshotChunkKeys: chunkKeys };
      return snapshot === undefined ? { hardState, entries } : { hardState, snapshot, entries };
    });
  }

  async persist(write: StorageWrite, sync: boolean): Promise<void> {
    await this.exclusive('persist', async () => {
      const range = this.requireRange('persist');
      let plan: Plan = {
        operations: [],
        snapshotIndex: range.snapshotIndex,
        snapshotChunkKeys: range.snapshotChunkKeys,
        lastIndex: range.lastIndex,
        runs: range.runs,
        runsKept: range.runs.length,
        lastKeptEnd: undefined,
        added: undefined,
      };
      if (write.snapshot !== undefined) plan = await this.planInstallSnapshot(plan, write.snapshot);
      if (write.entries.length > 0) plan = this.planAppend(plan, write.entries);
      if (write.hardState !== undefined) {
        plan.operations.push({ type: 'put', key: HARD_STATE_KEY, value: frameValue(HARD_STATE_KEY, this.packr.pack(write.hardState)) });
      }
      await this.write(plan, sync);
    });
  }

  async compact(snapshot: Snapshot, dataParts?: readonly Uint8Array[] | SnapshotPieces): Promise<void> {
    await this.exclusive('compact', async () => {
      const range = this.requireRange('compact');
      const index = snapshot.meta.index;
      assert(
        index >= range.snapshotIndex && index <= range.lastIndex,
        `LevelStorage.compact: snapshot index ${index} is outside the stored log (${range.snapshotIndex}, ${range.lastIndex}]`,
      );
      // Runs wholly at or below the index go; one that straddles it stays, its covered entries skipped at load.
      const kept = range.runs.filter((run) => run.last > index);
      const operations: Operation[] = deleteRuns(range.runs.filter((run) => run.last <= index));
      let snapshotChunkKeys: string[];
      assert(dataParts === undefined || Array.isArray(dataParts) || dataParts instanceof StoredPieces, 'LevelStorage.compact: pieces not made by this storage\'s snapshotPieces');
      if (dataParts instanceof StoredPieces) {
        assert(dataParts.storage === this && dataParts.meta.index === index && !dataParts.recorded, `LevelStorage.compact: the pieces are not this storage's, of index ${index}, or already recorded`);
        assert(index > range.snapshotIndex, `LevelStorage.compact: the pieces of index ${index} are not newer than the stored snapshot at ${range.snapshotIndex}`);
        dataParts.recorded = true;
        snapshotChunkKeys = dataParts.chunkKeys;
        this.planSnapshotHeader(operations, snapshot.meta, snapshotChunkKeys, dataParts.bytes, range.snapshotChunkKeys);
      } else {
        snapshotChunkKeys = await this.planSnapshot(operations, { meta: snapshot.meta, parts: (dataParts as readonly Uint8Array[] | undefined) ?? [snapshot.data] }, range.snapshotChunkKeys);
      }
      await this.write(
        { operations, snapshotIndex: index, snapshotChunkKeys, lastIndex: range.lastIndex, runs: kept, runsKept: kept.length, lastKeptEnd: undefined, added: undefined },
        true,
      );
    });
  }

  /**
   * The data of the snapshot at `meta` (newer than the stored one), stored a
   * piece at a time: each `write` cuts its piece into chunks (as
   * `planSnapshot` does) and writes them unsynced; `compact(snapshot,
   * pieces)` then writes the header that makes them the stored snapshot,
   * synced (LevelDB's log is written in order, so the chunks are durable
   * with it). Until then they are leftovers that `load` deletes (their index
   * is above the stored snapshot's), and `readSnapshotData` never sees them.
   */
  snapshotPieces(meta: SnapshotMeta): SnapshotPieces {
    const range = this.requireRange('snapshotPieces');
    assert(meta.index > range.snapshotIndex, `LevelStorage.snapshotPieces: snapshot index ${meta.index} is not newer than the stored snapshot at ${range.snapshotIndex}`);
    return new StoredPieces(this, meta, (pieces, piece) => this.writePiece(pieces, piece));
  }

  private async writePiece(pieces: StoredPieces, piece: Uint8Array): Promise<void> {
    await this.exclusive('snapshotPieces.write', async () => {
      const range = this.requireRange('snapshotPieces.write');
      assert(!pieces.recorded, 'LevelStorage: a piece written after its snapshot was recorded');
      assert(pieces.index > range.snapshotIndex, `LevelStorage: a piece of the snapshot at ${pieces.index}, not newer than the stored one at ${range.snapshotIndex}`);
      await addChunks(pieces, piece, (key, value) => this.writeChunk(key, value));
    });
  }

  /** One chunk in an unsynced batch of its own; the await is the loop's turn between chunks. */
  private async writeChunk(key: string, value: Uint8Array): Promise<void> {
    await this.requireDb().batch().put(key, value).write({ sync: false });
  }

  /**
   * The stored snapshot's data, if it is the one at `index`: the header,
   * then the chunks through one iterator, which reads a LevelDB snapshot of
   * its own, so a newer snapshot stored meanwhile (its batch deletes these
   * chunks) shows as chunks missing, never as a mix. Runs beside the other
   * calls; damage is a `StorageCorruptError`, as at load.
   */
  async readSnapshotData(index: number): Promise<Uint8Array | undefined> {
    const header = await this.readSnapshotHeader();
    if (header === undefined || header.meta.index !== index) return undefined;
    if (isSnapshot(header)) return header.data; // stored whole, before chunks
    const data = new Uint8Array(header.bytes);
    let offset = 0;
    let chunk = 0;
    const range = { gte: chunkKey(index, 0), lt: chunkKey(index + 1, 0) };
    for await (const [key, framed] of this.entriesOf(this.requireDb().iterator(range))) {
      const what = `the snapshot chunk "${key}"`;
      if (key !== chunkKey(index, chunk)) throw this.corrupt(what, key, `it is not chunk ${chunk} of the stored snapshot at index ${index}`, index);
      const payload = this.unframe(key, framed, what, index);
      if (offset + payload.length > data.length) throw this.corrupt(what, key, `the chunks hold more than the header's ${data.length} bytes`, index);
      data.set(payload, offset);
      offset += payload.length;
      chunk++;
    }
    if (chunk === header.chunks && offset === header.bytes) return data;
    // Chunks missing: a newer snapshot replaced this one meanwhile, unless the header still names it.
    const now = await this.readSnapshotHeader();
    if (now?.meta.index !== index) return undefined;
    throw this.corrupt(`the snapshot at index ${index}`, SNAPSHOT_KEY, `its header names ${header.chunks} chunks and ${header.bytes} bytes, and ${chunk} chunks with ${offset} bytes are stored`, index);
  }

  /** What `s` holds now: a snapshot's header, a whole snapshot (before chunks), or nothing. */
  private async readSnapshotHeader(): Promise<SnapshotHeader | Snapshot | undefined> {
    const bytes = await this.get(SNAPSHOT_KEY);
    if (bytes === undefined) return undefined;
    const what = 'the snapshot';
    const value = this.decode(this.unframe(SNAPSHOT_KEY, bytes, what), SNAPSHOT_KEY, what);
    if (!isSnapshot(value) && !isSnapshotHeader(value)) throw this.corrupt(what, SNAPSHOT_KEY, 'it does not have the shape of a snapshot or a snapshot header');
    return value;
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
  private async planInstallSnapshot(plan: Plan, snapshot: Snapshot): Promise<Plan> {
    const index = snapshot.meta.index;
    assert(
      index >= plan.snapshotIndex,
      `LevelStorage.persist: snapshot index ${index} is older than the stored snapshot at ${plan.snapshotIndex}`,
    );
    plan.operations.push(...deleteRuns(plan.runs));
    const snapshotChunkKeys = await this.planSnapshot(plan.operations, { meta: snapshot.meta, parts: [snapshot.data] }, plan.snapshotChunkKeys);
    return { ...plan, snapshotIndex: index, snapshotChunkKeys, lastIndex: index, runs: [], runsKept: 0, lastKeptEnd: undefined, added: undefined };
  }

  /**
   * Stores the chunks of `snapshot`'s data (at most `SNAPSHOT_CHUNK_BYTES`
   * each, cut from its parts in order: a chunk never spans two parts, so no
   * part is copied but into its chunks' frames; each chunk framed with its
   * own checksum), each in an unsynced batch of its own,
   * then adds to `operations` (the batch that makes the snapshot current)
   * its header under `s` and the deletes of the previous snapshot's chunks;
   * returns the new chunks' keys. Until that batch lands, the chunks are
   * leftovers that `load` deletes (their index is above the stored
   * snapshot's), and the synced batch makes them durable with it (LevelDB's
   * log is written in order). A snapshot at the stored snapshot's index
   * would overwrite live chunks: its chunks go into `operations` instead.
   */
  private async planSnapshot(
    operations: Operation[],
    snapshot: { meta: SnapshotMeta; parts: readonly Uint8Array[] },
    previousChunkKeys: readonly string[],
  ): Promise<string[]> {
    const { meta, parts } = snapshot;
    const storedIndex = this.range?.snapshotIndex ?? 0;
    const streamed = meta.index > storedIndex;
    const list: ChunkList = { index: meta.index, chunkKeys: [], bytes: 0 };
    const put = streamed
      ? (key: string, value: Uint8Array) => this.writeChunk(key, value)
      : async (key: string, value: Uint8Array) => {
          operations.push({ type: 'put', key, value });
          if (list.chunkKeys.length > 1) await setImmediate();
        };
    for (const part of parts) await addChunks(list, part, put);
    this.planSnapshotHeader(operations, meta, list.chunkKeys, list.bytes, previousChunkKeys);
    return list.chunkKeys;
  }

  /** Adds to `operations` the header of the snapshot whose chunks are `chunkKeys`, and the deletes of the previous snapshot's chunks. */
  private planSnapshotHeader(operations: Operation[], meta: SnapshotMeta, chunkKeys: readonly string[], bytes: number, previousChunkKeys: readonly string[]): void {
    // A chunk key of the previous snapshot that the new one reuses is overwritten by its put.
    const reused = new Set(chunkKeys);
    for (const key of previousChunkKeys) if (!reused.has(key)) operations.push({ type: 'del', key });
    const header: SnapshotHeader = { meta, chunks: chunkKeys.length, bytes };
    operations.push({ type: 'put', key: SNAPSHOT_KEY, value: frameValue(SNAPSHOT_KEY, this.packr.pack(header)) });
  }

  /**
   * Puts `entries` as one run and deletes every run that starts at or after
   * the first of them, so an entry at index i replaces every stored entry at
   * index >= i. A run that starts before i keeps its key; only its covered
   * range shrinks (see the file comment).
   */
  private planAppend(plan: Plan, entries: Entry[]): Plan {
    const { snapshotIndex, lastIndex, runs } = plan;
    const firstNew = entries[0]!.index;
    assert(
      firstNew > snapshotIndex && firstNew <= lastIndex + 1,
      `LevelStorage.persist: entries starting at ${firstNew} do not join the stored log (${snapshotIndex}, ${lastIndex}]`,
    );
    const tuples: unknown[] = new Array(entries.length);
    for (let offset = 0; offset < entries.length; offset++) {
      const entry = entries[offset]!;
      assert(entry.index === firstNew + offset, () => `LevelStorage.persist: entry ${entry.index} follows ${firstNew + offset - 1}`);
      // Checked on the way in too, so that a malformed entry fails here and not at the next start.
      assert(isEntry(entry), () => `LevelStorage.persist: entry ${entry.index} is not a well-formed entry`);
      tuples[offset] = entryToTuple(entry);
    }
    assert(plan.added === undefined, 'LevelStorage.persist: one append per write');
    let kept = plan.runsKept;
    const replaced: Run[] = [];
    while (kept > 0 && runs[kept - 1]!.first >= firstNew) replaced.push(runs[--kept]!);
    const straddling = kept > 0 ? runs[kept - 1]! : undefined;
    const lastKeptEnd = straddling !== undefined && straddling.last >= firstNew ? firstNew - 1 : undefined;
    const lastNew = firstNew + entries.length - 1;
    const run: Run = { key: indexKey(RUN_KEY_PREFIX, firstNew), first: firstNew, last: lastNew };
    // A replaced run with the new run's key is overwritten by the put; deleting it after would lose the put.
    plan.operations.push(...deleteRuns(replaced.filter((old) => old.key !== run.key)));
    plan.operations.push({ type: 'put', key: run.key, value: frameValue(run.key, this.packr.pack(tuples)) });
    return { ...plan, lastIndex: lastNew, runsKept: kept, lastKeptEnd, added: run };
  }

  /** Writes the plan as one batch, and only then adopts its range. */
  private async write(plan: Plan, sync: boolean): Promise<void> {
    if (plan.operations.length > 0) {
      // A chained batch: abstract-level's array form normalises every operation into a new
      // object first, which made the call about twice as expensive (about 27 against 9 µs of
      // main-thread time for a one-entry write), and a follower makes it on every Put's path.
      const batch = this.requireDb().batch();
      for (const operation of plan.operations) {
        if (operation.type === 'put') batch.put(operation.key, operation.value);
        else batch.del(operation.key);
      }
      await batch.write({ sync });
    }
    const runs = plan.runs;
    runs.length = plan.runsKept;
    if (plan.lastKeptEnd !== undefined) runs[runs.length - 1] = { ...runs[runs.length - 1]!, last: plan.lastKeptEnd };
    if (plan.added !== undefined) runs.push(plan.added);
    this.range = { snapshotIndex: plan.snapshotIndex, lastIndex: plan.lastIndex, runs, snapshotChunkKeys: plan.snapshotChunkKeys };
  }

  /** The stored format, or undefined for a directory written before checksums (or a new one). */
  private async readFormat(): Promise<number | undefined> {
    const bytes = await this.get(FORMAT_KEY);
    if (bytes === undefined) return undefined;
    const what = `the format marker (key "${FORMAT_KEY}")`;
    const format = this.decode(this.unframe(FORMAT_KEY, bytes, what), FORMAT_KEY, what);
    if (format !== FORMAT_CHECKSUMMED) {
      throw this.corrupt(what, FORMAT_KEY, `it holds ${JSON.stringify(format)}, not ${FORMAT_CHECKSUMMED} (a newer version of Hivemind wrote it?)`);
    }
    return format;
  }

  /**
   * Frames every stored value and records the format, in one synced batch: a
   * directory written before checksums (clusters upgrade in place) or a new
   * one. What was stored is framed as it is; the load that follows checks it.
   */
  private async addChecksums(): Promise<void> {
    const batch = this.requireDb().batch();
    let framed = 0;
    for await (const [key, bytes] of this.entriesOf(this.requireDb().iterator())) {
      batch.put(key, frameValue(key, bytes));
      framed++;
    }
    batch.put(FORMAT_KEY, frameValue(FORMAT_KEY, this.packr.pack(FORMAT_CHECKSUMMED)));
    await batch.write({ sync: true });
    if (framed > 0) this.logger(`Raft storage in "${this.directory}": added a CRC32C checksum to each of its ${framed} stored values (format ${FORMAT_CHECKSUMMED})`);
  }

  /**
   * Every key must be one this storage writes: damage to a key in a LevelDB
   * table could move its value out of the ranges `load` reads, and the
   * entries in it would be missing without a checksum ever failing.
   */
  private async checkKeys(): Promise<void> {
    const valid = new RegExp(
      `^(?:[${HARD_STATE_KEY}${SNAPSHOT_KEY}${FORMAT_KEY}]|[${LEGACY_ENTRY_KEY_PREFIX}${RUN_KEY_PREFIX}][0-9a-f]{${KEY_INDEX_DIGITS}}` +
        `|${SNAPSHOT_CHUNK_KEY_PREFIX}[0-9a-f]{${KEY_INDEX_DIGITS + CHUNK_NUMBER_DIGITS}})$`,
    );
    for await (const key of this.entriesOf(this.requireDb().keys())) {
      if (!valid.test(key)) throw this.corrupt(`the key ${JSON.stringify(key)}`, key, 'it is not a key this storage writes (a damaged key?)');
    }
  }

  /** Deletes chunks of a snapshot that was being stored when the node stopped; they were never part of the state. */
  private async deleteLeftoverChunks(keys: readonly string[]): Promise<void> {
    if (keys.length === 0) return;
    const batch = this.requireDb().batch();
    for (const key of keys) batch.del(key);
    await batch.write({ sync: true });
    this.logger(`Raft storage in "${this.directory}": deleted ${keys.length} chunks of a snapshot whose storing was cut short (from key ${keys[0]})`);
  }

  private async readHardState(): Promise<HardState> {
    const bytes = await this.get(HARD_STATE_KEY);
    if (bytes === undefined) return { term: 0, vote: NO_NODE, commit: 0 };
    const what = 'the hard state';
    const value = this.decode(this.unframe(HARD_STATE_KEY, bytes, what), HARD_STATE_KEY, what);
    if (!isHardState(value)) throw this.corrupt(what, HARD_STATE_KEY, 'it does not have the shape of a hard state');
    return value;
  }

  /**
   * The stored snapshot, stored whole (before chunks) or as a header and its
   * chunks, with the keys of its chunks. Every chunk key in the database
   * must be one of the header's, in order: a batch writes or deletes them
   * all together.
   */
  private async readSnapshot(): Promise<{ snapshot: Snapshot | undefined; chunkKeys: string[] }> {
    const bytes = await this.get(SNAPSHOT_KEY);
    const stored: string[] = [];
    const chunkRange = { gte: SNAPSHOT_CHUNK_KEY_PREFIX, lt: String.fromCharCode(SNAPSHOT_CHUNK_KEY_PREFIX.charCodeAt(0) + 1) };
    for await (const key of this.entriesOf(this.requireDb().keys(chunkRange))) stored.push(key);
    const what = 'the snapshot';
    if (bytes === undefined) {
      await this.deleteLeftoverChunks(stored);
      return { snapshot: undefined, chunkKeys: [] };
    }
    const value = this.decode(this.unframe(SNAPSHOT_KEY, bytes, what), SNAPSHOT_KEY, what);
    // Chunks of a later snapshot whose header never landed (a crash while it was stored): leftovers.
    const storedIndex = isSnapshot(value) || isSnapshotHeader(value) ? value.meta.index : undefined;
    if (storedIndex !== undefined) {
      const later = stored.filter((key) => chunkIndexOfKey(key) > storedIndex);
      if (later.length > 0) {
        await this.deleteLeftoverChunks(later);
        stored.splice(stored.length - later.length, later.length);
      }
    }
    if (isSnapshot(value)) {
      if (stored.length > 0) throw this.corrupt(`the snapshot chunk "${stored[0]}"`, stored[0]!, 'it belongs to no stored snapshot (the snapshot is stored whole)');
      return { snapshot: value, chunkKeys: [] };
    }
    if (!isSnapshotHeader(value)) throw this.corrupt(what, SNAPSHOT_KEY, 'it does not have the shape of a snapshot or a snapshot header');
    const { meta, chunks, bytes: byteCount } = value;
    // The stored keys first: a damaged count must not make us build a list of billions of keys.
    const expected = stored.map((_, chunk) => chunkKey(meta.index, chunk));
    const stray = stored.findIndex((key, position) => key !== expected[position]);
    if (stray !== -1) throw this.corrupt(`the snapshot chunk "${stored[stray]}"`, stored[stray]!, `it is not chunk ${stray} of the stored snapshot at index ${meta.index}`, meta.index);
    if (stored.length !== chunks) {
      throw this.corrupt(`the snapshot at index ${meta.index}`, SNAPSHOT_KEY, `its header names ${chunks} chunks, and ${stored.length} are stored`, meta.index);
    }
    const data = new Uint8Array(byteCount);
    let offset = 0;
    for (const key of expected) {
      const chunkWhat = `the snapshot chunk "${key}"`;
      const framed = await this.get(key);
      if (framed === undefined) throw this.corrupt(chunkWhat, key, 'it is missing', meta.index);
      const payload = this.unframe(key, framed, chunkWhat, meta.index);
      if (offset + payload.length > byteCount) throw this.corrupt(chunkWhat, key, `the chunks hold more than the header's ${byteCount} bytes`, meta.index);
      data.set(payload, offset);
      offset += payload.length;
    }
    if (offset !== byteCount) throw this.corrupt(`the snapshot at index ${meta.index}`, SNAPSHOT_KEY, `its chunks hold ${offset} bytes, not the header's ${byteCount}`, meta.index);
    return { snapshot: { meta, data }, chunkKeys: expected };
  }

  /**
   * Reads every stored entry after `snapshotIndex` in index order (legacy
   * single entries and runs alike), each run replacing what earlier ones held
   * from its first index on; they must follow `snapshotIndex` without a gap.
   */
  private async readEntries(snapshotIndex: number): Promise<{ entries: Entry[]; runs: Run[] }> {
    const stored = [...(await this.readLegacyEntries()), ...(await this.readRuns())].sort((a, b) => a.run.first - b.run.first);
    const entries: Entry[] = [];
    const runs: Run[] = [];
    for (const { run, entries: held } of stored) {
      const end = snapshotIndex + entries.length;
      // Writes never leave a gap (each is one batch), so a gap is a run lost on the disk.
      if (run.first > end + 1) {
        throw this.corrupt(`the log before index ${run.first} (key "${run.key}")`, run.key, `entries ${end + 1} to ${run.first - 1} are missing (a gap in the log)`, end + 1);
      }
      // A later run replaces the tail of the earlier ones.
      if (run.first <= end) {
        entries.length = Math.max(0, run.first - snapshotIndex - 1);
        while (runs.length > 0 && runs[runs.length - 1]!.first >= run.first) runs.pop();
        if (runs.length > 0) runs[runs.length - 1]!.last = run.first - 1;
      }
      for (const entry of held) if (entry.index > snapshotIndex) entries.push(entry);
      // Kept even when the snapshot covers it wholly: the next compact or snapshot install deletes it.
      runs.push(run);
    }
    return { entries, runs };
  }

  private async readRuns(): Promise<{ run: Run; entries: Entry[] }[]> {
    const runs: { run: Run; entries: Entry[] }[] = [];
    const iterator = this.requireDb().iterator({ gte: indexKey(RUN_KEY_PREFIX, 0), lte: RUN_KEY_PREFIX + 'f'.repeat(KEY_INDEX_DIGITS) });
    for await (const [key, bytes] of this.entriesOf(iterator)) {
      const index = indexOfKey(key);
      const what = `the run of log entries from index ${index} (key "${key}")`;
      const value = this.decode(this.unframe(key, bytes, what, index), key, what, index);
      const entries = Array.isArray(value) && value.length > 0 ? value.map(entryFromTuple) : [];
      const first = entries[0]?.index ?? -1;
      const wellFormed =
        entries.length > 0 && key === indexKey(RUN_KEY_PREFIX, first) && entries.every((entry, offset) => entry !== undefined && entry.index === first + offset);
      if (!wellFormed) throw this.corrupt(what, key, 'it is not a run of consecutive entries starting at the index of its key', index);
      runs.push({ run: { key, first, last: first + entries.length - 1 }, entries: entries as Entry[] });
    }
    return runs;
  }

  private async readLegacyEntries(): Promise<{ run: Run; entries: Entry[] }[]> {
    const runs: { run: Run; entries: Entry[] }[] = [];
    const iterator = this.requireDb().iterator({
      gte: indexKey(LEGACY_ENTRY_KEY_PREFIX, 0),
      lte: LEGACY_ENTRY_KEY_PREFIX + 'f'.repeat(KEY_INDEX_DIGITS),
    });
    for await (const [key, bytes] of this.entriesOf(iterator)) {
      const index = indexOfKey(key);
      const what = `the log entry at index ${index} (key "${key}")`;
      const value = this.decode(this.unframe(key, bytes, what, index), key, what, index);
      if (!isEntry(value) || key !== indexKey(LEGACY_ENTRY_KEY_PREFIX, value.index)) {
        throw this.corrupt(what, key, 'it does not have the shape of an entry stored under this key', index);
      }
      runs.push({ run: { key, first: value.index, last: value.index }, entries: [value] });
    }
    return runs;
  }

  /**
   * Decodes from a plain Uint8Array view: msgpackr then returns byte fields as
   * plain Uint8Array, not as Node Buffers, as the core's plain-data types require.
   */
  private decode(bytes: Uint8Array, key: string, what: string, index?: number): unknown {
    const view = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    try {
      return this.packr.unpack(view);
    } catch (error) {
      throw this.corrupt(what, key, `it does not decode (${error instanceof Error ? error.message : String(error)})`, index);
    }
  }

  /** The payload of a framed value, once its checksum matches (see the file comment). */
  private unframe(key: string, bytes: Uint8Array, what: string, index?: number): Uint8Array {
    if (bytes.length < FRAME_HEADER_BYTES || bytes[0] !== FRAME_MARK) {
      throw this.corrupt(what, key, 'it has no checksum frame, which every value in this directory carries', index);
    }
    if (bytes[1] !== FRAME_VERSION) throw this.corrupt(what, key, `its frame is of unknown version ${bytes[1]}`, index);
    const stored = ((bytes[2]! << 24) | (bytes[3]! << 16) | (bytes[4]! << 8) | bytes[5]!) >>> 0;
    const payload = bytes.subarray(FRAME_HEADER_BYTES);
    const computed = crc32c(payload, crc32c(keyBytes(key)));
    if (computed !== stored) {
      throw this.corrupt(what, key, `its CRC32C checksum does not match (stored ${hex32(stored)}, computed ${hex32(computed)})`, index);
    }
    return payload;
  }

  private corrupt(what: string, key: string, problem: string, index?: number): StorageCorruptError {
    return new StorageCorruptError(
      `cannot load Raft storage from "${this.directory}": ${what} is corrupt: ${problem}; ` +
        'restore the data directory from a backup, or remove this node from the cluster and join it again with an empty one',
      index === undefined ? { key } : { key, index },
    );
  }

  /**
   * Checks LevelDB's logs before LevelDB replays (and deletes) them. Throws
   * on damage a crash cannot cause; returns the lines to log for torn last
   * writes, logged only once LevelDB has opened (and so locked) the directory.
   */
  private async checkLogs(): Promise<string[]> {
    const lines: string[] = [];
    for (const { file, verdict } of await checkLevelDbLogs(this.directory)) {
      if (verdict.kind === 'corrupt') {
        throw new StorageCorruptError(
          `cannot load Raft storage from "${this.directory}": LevelDB's log ${file} is corrupt at byte ${verdict.offset}: ` +
            `${verdict.problem}, not at its end, so it is not a write cut short by a crash and may hold acknowledged writes; ` +
            'restore the data directory from a backup, or remove this node from the cluster and join it again with an empty one',
          { key: file },
        );
      }
      if (verdict.kind === 'torn') {
        lines.push(
          `Raft storage in "${this.directory}": LevelDB's log ${file} ends in a write cut short by a crash ` +
            `(${verdict.reason}, ${verdict.droppedBytes} bytes from byte ${verdict.offset}); it never finished its fsync, ` +
            'so nothing in it was acknowledged: dropped',
        );
      }
    }
    return lines;
  }

  /** LevelDB reports a damaged table it cannot read as LEVEL_CORRUPTION; that is corruption of this storage too. */
  private async get(key: string): Promise<Uint8Array | undefined> {
    try {
      return await this.requireDb().get(key);
    } catch (error) {
      throw this.levelCorruption(error, key);
    }
  }

  private async *entriesOf<T>(iterator: AsyncIterable<T>): AsyncGenerator<T> {
    try {
      yield* iterator;
    } catch (error) {
      throw this.levelCorruption(error, undefined);
    }
  }

  private levelCorruption(error: unknown, key: string | undefined): unknown {
    const code = (error as { code?: string; cause?: { code?: string } }).code;
    const causeCode = (error as { cause?: { code?: string } }).cause?.code;
    if (code !== 'LEVEL_CORRUPTION' && causeCode !== 'LEVEL_CORRUPTION') return error;
    const message = error instanceof Error ? error.message : String(error);
    return new StorageCorruptError(
      `cannot load Raft storage from "${this.directory}": LevelDB reports its files corrupt${key === undefined ? '' : ` reading key "${key}"`} (${message}); ` +
        'restore the data directory from a backup, or remove this node from the cluster and join it again with an empty one',
      key === undefined ? {} : { key },
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

/** The log index in a run's or legacy entry's key. */
function indexOfKey(key: string): number {
  return Number.parseInt(key.slice(1), 16);
}

/** The chunks of a snapshot's data as they are cut: their keys, in order, and their bytes. */
interface ChunkList {
  readonly index: number;
  readonly chunkKeys: string[];
  bytes: number;
}

/**
 * Cuts `part` into the next chunks of `list`, each at most
 * `SNAPSHOT_CHUNK_BYTES` (a view, not a copy, until it is framed; an empty
 * part gives none), and hands each framed to `put`, awaited.
 */
async function addChunks(list: ChunkList, part: Uint8Array, put: (key: string, value: Uint8Array) => Promise<void>): Promise<void> {
  for (let start = 0; start < part.length; start += SNAPSHOT_CHUNK_BYTES) {
    const chunk = part.subarray(start, start + SNAPSHOT_CHUNK_BYTES);
    const key = chunkKey(list.index, list.chunkKeys.length);
    list.chunkKeys.push(key);
    list.bytes += chunk.length;
    await put(key, frameValue(key, chunk));
  }
}

/** A snapshot's data being stored a piece at a time: see `LevelStorage.snapshotPieces`. */
class StoredPieces implements SnapshotPieces, ChunkList {
  readonly index: number;
  readonly chunkKeys: string[] = [];
  bytes = 0;
  /** Set once `compact` recorded them. */
  recorded = false;

  constructor(
    readonly storage: LevelStorage,
    readonly meta: SnapshotMeta,
    private readonly writeOne: (pieces: StoredPieces, piece: Uint8Array) => Promise<void>,
  ) {
    this.index = meta.index;
  }

  write(piece: Uint8Array): Promise<void> {
    return this.writeOne(this, piece);
  }
}

/**
 * A value as stored: `FRAME_MARK`, `FRAME_VERSION`, the CRC32C of the key's
 * bytes then the payload (big-endian), then the payload.
 */
function frameValue(key: string, payload: Uint8Array): Uint8Array {
  const framed = new Uint8Array(FRAME_HEADER_BYTES + payload.length);
  framed[0] = FRAME_MARK;
  framed[1] = FRAME_VERSION;
  const crc = crc32c(payload, crc32c(keyBytes(key)));
  framed[2] = crc >>> 24;
  framed[3] = (crc >>> 16) & 0xff;
  framed[4] = (crc >>> 8) & 0xff;
  framed[5] = crc & 0xff;
  framed.set(payload, FRAME_HEADER_BYTES);
  return framed;
}

/** Keys are ASCII (a letter and hex digits). */
function keyBytes(key: string): Uint8Array {
  return Buffer.from(key, 'latin1');
}

function hex32(value: number): string {
  return `0x${value.toString(16).padStart(8, '0')}`;
}

/** The snapshot index in a chunk's key. */
function chunkIndexOfKey(key: string): number {
  return Number.parseInt(key.slice(1, 1 + KEY_INDEX_DIGITS), 16);
}

/** The key of chunk `chunk` of the snapshot at `index`. */
function chunkKey(index: number, chunk: number): string {
  assert(Number.isSafeInteger(chunk) && chunk >= 0 && chunk < 16 ** CHUNK_NUMBER_DIGITS, () => `LevelStorage: invalid snapshot chunk ${chunk}`);
  return indexKey(SNAPSHOT_CHUNK_KEY_PREFIX, index) + chunk.toString(16).padStart(CHUNK_NUMBER_DIGITS, '0');
}

function indexKey(prefix: string, index: number): string {
  assert(Number.isSafeInteger(index) && index >= 0, () => `LevelStorage: invalid entry index ${index}`);
  return prefix + index.toString(16).padStart(KEY_INDEX_DIGITS, '0');
}

/** Deletes of these runs' keys. */
function deleteRuns(runs: Run[]): Operation[] {
  return runs.map((run) => ({ type: 'del', key: run.key }));
}

/** An entry in a run: [term, index, type, data] or, for a Config entry, [term, index, type, data, [voters, learners]]. */
function entryToTuple(entry: Entry): unknown[] {
  if (entry.config === undefined) return [entry.term, entry.index, entry.type, entry.data];
  return [entry.term, entry.index, entry.type, entry.data, [entry.config.voters, entry.config.learners]];
}

/** The entry of a run's tuple, or undefined when the tuple is not a well-formed entry. */
function entryFromTuple(tuple: unknown): Entry | undefined {
  if (!Array.isArray(tuple) || (tuple.length !== 4 && tuple.length !== 5)) return undefined;
  const [term, index, type, data, config] = tuple as unknown[];
  const entry: Record<string, unknown> = { term, index, type, data };
  if (tuple.length === 5) {
    if (!Array.isArray(config) || config.length !== 2) return undefined;
    entry.config = { voters: config[0], learners: config[1] };
  }
  return isEntry(entry) ? entry : undefined;
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

/** What `s` holds for a snapshot stored in chunks: its metadata, how many chunks, and how many bytes in all. */
interface SnapshotHeader {
  meta: Snapshot['meta'];
  chunks: number;
  bytes: number;
}

function isSnapshotHeader(value: unknown): value is SnapshotHeader {
  if (!isRecord(value) || value.data !== undefined || !isRecord(value.meta) || !isCount(value.chunks) || !isCount(value.bytes)) return false;
  const meta = value.meta;
  return isCount(meta.index) && isCount(meta.term) && isClusterConfig(meta.config);
}

function isSnapshot(value: unknown): value is Snapshot {
  if (!isRecord(value) || !(value.data instanceof Uint8Array) || !isRecord(value.meta)) return false;
  const meta = value.meta;
  return isCount(meta.index) && isCount(meta.term) && isClusterConfig(meta.config);
}
