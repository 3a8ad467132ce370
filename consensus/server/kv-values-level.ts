/**
 * The key-value server's values in LevelDB (`level`), outside the JavaScript
 * heap: a state of 350,000 values in a `Map` made every major GC walk them
 * and took members to 600-985 MiB of RSS. Only the values set and not yet
 * written stay in memory, and LevelDB's own small block cache.
 *
 * The store is a cache of the state machine, not a record: the Raft log and
 * snapshot are. `open` empties it, and the node restores the state from its
 * snapshot and log as before. Writes are therefore never synced.
 *
 * Keys are `[generation, 4 bytes big-endian][key bytes]`. A `replace` (a
 * restore) starts a new generation and deletes the old one's range in the
 * background, so that it can return at once.
 *
 * Writes run one at a time, in order (`operations`): a batch of at most
 * `WRITE_BATCH_ITEMS_MAX` values set since the last one, started
 * `WRITE_DELAY_MS` after the first set, or a range deletion. Until a value's
 * batch is written, `get` finds it in memory (`unwritten`, then `writing`);
 * afterwards with LevelDB's synchronous `getSync`.
 *
 * `freeze` captures the values as of the call: the sets made before it are
 * written first, while later ones wait in memory, and then a LevelDB iterator
 * (which reads an implicit LevelDB snapshot taken when it is made) is made
 * before any later write starts.
 *
 * A failed write or deletion cannot be answered to anyone (the sets it held
 * returned long ago): the store calls `onFatal` once and refuses every later
 * call, as the Raft storage does; the process restarts from its disk.
 */
import type { AbstractIterator } from 'abstract-level';
import { Level } from 'level';
import { assert } from '../core/assert.js';
import { keyText, VALUES_SLICE_ITEMS_MAX, type FrozenValues, type KeyValue, type KvValues } from './kv-values.js';

/** Values per LevelDB batch; a restore of many values is written in batches of this size. */
export const WRITE_BATCH_ITEMS_MAX = 4096;
/**
 * How long values set wait in memory for more to join their batch. Each
 * LevelDB write wakes a thread of the pool, which on a loaded machine costs
 * the loop a context switch (profiled on a follower at 64 clients: the
 * batches' `write` was 16-21 % of its CPU, about 27 µs a call); a batch per
 * turn of the event loop doubled the writes of every member, beside the Raft
 * log's own. At 20 ms the batches (50 a second on every member, each a chained
 * batch, a pool round trip and a timer) were still 3-4 % of a follower's
 * main-thread CPU in `perf` at 64 clients, as much as the Raft log's own
 * synced writes; at 100 ms they are 10 a second. What waits in memory is
 * small (a tenth of a second of puts: 300 values at 3,000 puts a second) and
 * bounded by `WRITE_BATCH_ITEMS_MAX`. The store is a cache (never synced),
 * so nothing waits on it.
 */
const WRITE_DELAY_MS = 100;
/** LevelDB's block cache: the "small cache" of recently read values. */
const BLOCK_CACHE_BYTES = 8 * 1024 * 1024;
const GENERATION_BYTES = 4;

/** How to make a `LevelKvValues`. */
export interface LevelKvValuesInit {
  /** Its own LevelDB directory (not the Raft storage's); emptied by `open`. */
  directory: string;
  /** Called once if a write fails; the store is unusable afterwards. */
  onFatal: (error: Error) => void;
}

/**
 * What the writer runs, one at a time in order: a batch of values, the deletion of a replaced
 * generation, or the making of a frozen view's iterator (after every earlier write, before any later).
 */
type Operation =
  | { type: 'write'; generation: number; values: Map<string, Uint8Array> }
  | { type: 'clear'; generation: number }
  | { type: 'freeze'; make: () => void };

/** The values in LevelDB; see the file comment. */
export class LevelKvValues implements KvValues {
  private readonly directory: string;
  private readonly onFatal: (error: Error) => void;
  private db: Level<Uint8Array, Uint8Array> | undefined;
  private generation = 0;
  /** Set since the last batch was cut, newest last; read first. */
  private unwritten = new Map<string, Uint8Array>();
  /** Cut into batches, not yet written, oldest first; read newest first after `unwritten`. */
  private operations: Operation[] = [];
  /** The operation being written, if any (still read by `get` until it is done). */
  private current: Operation | undefined;
  /** A batch is due on the next turn of the event loop. */
  private cutScheduled = false;
  /** A view is frozen and not yet closed. */
  private frozen = false;
  private failure: Error | undefined;
  private idleWaiters: (() => void)[] = [];

  constructor(init: LevelKvValuesInit) {
    this.directory = init.directory;
    this.onFatal = init.onFatal;
  }

  /** Opens the database (creating the directory) and empties it. */
  async open(): Promise<void> {
    assert(this.db === undefined, 'LevelKvValues: opened twice');
    const db = new Level<Uint8Array, Uint8Array>(this.directory, { keyEncoding: 'view', valueEncoding: 'view', cacheSize: BLOCK_CACHE_BYTES });
    await db.open();
    await db.clear();
    this.db = db;
  }

  /** Waits for the writes under way, then closes the database. */
  async close(): Promise<void> {
    await this.idle();
    const db = this.db;
    this.db = undefined;
    await db?.close();
  }

  get(key: string): Uint8Array | undefined {
    this.checkUsable();
    const fresh = this.unwritten.get(key);
    if (fresh !== undefined) return fresh;
    for (let index = this.operations.length - 1; index >= -1; index--) {
      const operation = index === -1 ? this.current : this.operations[index];
      if (operation === undefined) continue;
      // Batches of a replaced generation and range deletions hold nothing of this one.
      if (operation.type === 'write' && operation.generation === this.generation) {
        const value = operation.values.get(key);
        if (value !== undefined) return value;
      }
    }
    return this.db!.getSync(this.storedKey(this.generation, key)) ?? undefined;
  }

  set(key: string, value: Uint8Array): void {
    this.checkUsable();
    // Delete first, so that the map's order stays the order of the latest sets.
    this.unwritten.delete(key);
    this.unwritten.set(key, value);
    if (this.unwritten.size >= WRITE_BATCH_ITEMS_MAX) this.cutBatch();
    else this.scheduleCut();
  }

  replace(entries: readonly KeyValue[]): void {
    this.checkUsable();
    // Batches of the old generation still queued are written, then deleted with its range.
    this.cutBatch();
    this.operations.push({ type: 'clear', generation: this.generation });
    this.generation++;
    for (const [key, value] of entries) this.set(keyText(key), value);
    this.runOperations();
  }

  freeze(): FrozenValues {
    this.checkUsable();
    assert(!this.frozen, 'LevelKvValues: one view frozen at a time');
    this.frozen = true;
    this.cutBatch();
    const generation = this.generation;
    let iterator: AbstractIterator<Level<Uint8Array, Uint8Array>, Uint8Array, Uint8Array> | undefined;
    const made = new Promise<void>((resolve) => {
      // Run after every batch cut so far and before any later one: the iterator sees exactly the values set before now.
      const make = (): void => {
        iterator = this.db!.iterator({ gte: this.storedKey(generation, ''), lt: this.storedKey(generation + 1, '') });
        resolve();
      };
      this.operations.push({ type: 'freeze', make });
      this.runOperations();
    });
    let closed = false;
    return {
      next: async () => {
        assert(!closed, 'LevelKvValues: a closed view was read');
        await made;
        const entries = await iterator!.nextv(VALUES_SLICE_ITEMS_MAX);
        return entries.map(([key, value]) => [key.subarray(GENERATION_BYTES), value] as KeyValue);
      },
      close: async () => {
        if (closed) return;
        closed = true;
        this.frozen = false;
        // A view closed before its iterator was made closes it once it is.
        await made;
        await iterator!.close();
      },
    };
  }

  all(): KeyValue[] {
    assert(false, 'LevelKvValues: values in LevelDB are read only in the background (freeze); use snapshotInBackground');
  }

  /** The LevelDB key of `key` in `generation`. */
  private storedKey(generation: number, key: string): Uint8Array {
    const bytes = Buffer.allocUnsafe(GENERATION_BYTES + Buffer.byteLength(key, 'latin1'));
    bytes.writeUInt32BE(generation, 0);
    bytes.write(key, GENERATION_BYTES, 'latin1');
    return bytes;
  }

  private checkUsable(): void {
    if (this.failure !== undefined) throw this.failure;
    assert(this.db !== undefined, 'LevelKvValues: used before open() or after close()');
  }

  private scheduleCut(): void {
    if (this.cutScheduled) return;
    this.cutScheduled = true;
    setTimeout(() => {
      this.cutScheduled = false;
      if (this.failure === undefined && this.db !== undefined) this.cutBatch();
    }, WRITE_DELAY_MS).unref();
  }

  /**
   * Moves the unwritten values into a batch at the end of the queue, and
   * starts writing if idle. While LevelDB is behind, they join the last
   * queued batch (up to `WRITE_BATCH_ITEMS_MAX` values), so that the queue
   * grows by values, not by a batch per turn of the event loop.
   */
  private cutBatch(): void {
    if (this.unwritten.size > 0) {
      const last = this.operations.at(-1);
      if (last?.type === 'write' && last.generation === this.generation && last.values.size + this.unwritten.size <= WRITE_BATCH_ITEMS_MAX) {
        // Later sets win: they replace what the queued batch holds for the same key.
        for (const [key, value] of this.unwritten) last.values.set(key, value);
        this.unwritten.clear();
      } else {
        this.operations.push({ type: 'write', generation: this.generation, values: this.unwritten });
        this.unwritten = new Map();
      }
    }
    this.runOperations();
  }

  private idle(): Promise<void> {
    if (this.current === undefined && this.operations.length === 0 && this.unwritten.size === 0) return Promise.resolve();
    if (this.unwritten.size > 0 && this.failure === undefined && this.db !== undefined) this.cutBatch();
    return new Promise((resolve) => {
      const check = (): void => {
        if (this.failure !== undefined || (this.current === undefined && this.operations.length === 0)) resolve();
        else this.idleWaiters.push(check);
      };
      check();
    });
  }

  /** Runs the queued operations one at a time, in order. */
  private runOperations(): void {
    if (this.current !== undefined || this.failure !== undefined) return;
    const operation = this.operations.shift();
    if (operation === undefined) return;
    this.current = operation;
    this.execute(operation).then(
      () => {
        this.current = undefined;
        this.wakeWaiters();
        this.runOperations();
      },
      (error: unknown) => {
        this.failure = new Error(`the key-value store in "${this.directory}" failed a write: ${error instanceof Error ? error.message : String(error)}`, {
          cause: error,
        });
        this.current = undefined;
        this.wakeWaiters();
        this.onFatal(this.failure);
      },
    );
  }

  private wakeWaiters(): void {
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const wake of waiters) wake();
  }

  private async execute(operation: Operation): Promise<void> {
    const db = this.db!;
    if (operation.type === 'freeze') {
      operation.make();
      return;
    }
    if (operation.type === 'clear') {
      await db.clear({ gte: this.storedKey(operation.generation, ''), lt: this.storedKey(operation.generation + 1, '') });
      return;
    }
    const batch = db.batch();
    for (const [key, value] of operation.values) batch.put(this.storedKey(operation.generation, key), value);
    await batch.write();
  }
}
