/**
 * An in-memory `RaftStorage` for the simulator: the same contract as
 * `LevelStorage` (and the same refusals of a write that does not join the
 * stored log), on a `MemoryDisk` that outlives the storage, so that a node
 * can crash and start again from what its disk kept.
 *
 * The disk tells what was synced from what was only written: a write
 * completed without `sync` sits in the page cache until a later synced write
 * or compaction flushes it. A crash then decides, by its `CrashMode`, what of
 * the unsynced writes and the write in flight reached the platter.
 */
import { assert } from './core/assert.js';
import type { Entry, HardState, Random, Snapshot } from './core/types.js';
import { joinSnapshotParts, type PersistedState, type RaftStorage, type StorageWrite } from './storage.js';

/** What a crash does with the writes that were not synced. */
export type CrashMode =
  /** Every unsynced write is lost, and the write in flight with them. */
  | 'lose-unsynced'
  /**
   * The write in flight is torn: its checksum fails at load and it is
   * dropped whole (the contract promises atomic writes); the unsynced writes
   * completed before it reached the platter.
   */
  | 'tear-last-write'
  /**
   * The unsynced writes and the write in flight reached the platter in any
   * order, any of them not at all. One that no longer joins the log there is
   * dropped, as a log drops the records after a hole.
   */
  | 'reorder-unsynced';

/** Every crash mode, for drawing one from a seed. */
export const CRASH_MODES: readonly CrashMode[] = ['lose-unsynced', 'tear-last-write', 'reorder-unsynced'];

/** One operation asked of the disk. `sync`: durable, with everything before it, once complete. */
export type DiskOperation =
  | { kind: 'persist'; write: StorageWrite; sync: boolean }
  | { kind: 'compact'; snapshot: Snapshot; sync: true };

/** The state of a disk: entries follow the snapshot's index (or index 1) without a gap. */
interface DiskState {
  hardState: HardState;
  snapshot?: Snapshot;
  entries: Entry[];
}

/** How a `MemoryDisk` misbehaves, beyond the crash modes every disk has. */
export interface MemoryDiskFaults {
  /**
   * The disk ignores fsync: nothing is durable until the page cache is
   * flushed, `flushDelayMs` after a write completed. Used to show that the
   * simulator's checkers catch a disk that loses what it promised.
   */
  ignoresSync?: boolean;
  /** With `ignoresSync`: how long a completed write stays in the page cache. Default 30 ms. */
  flushDelayMs?: number;
}

const FLUSH_DELAY_MS_DEFAULT = 30;

/**
 * One node's disk, shared by the successive `MemoryStorage`s of that node.
 * Operations start and complete in order, one at a time per storage.
 */
export class MemoryDisk {
  /** What a crash now would keep, at the least. */
  private durable: DiskState = emptyState();
  /** What a load after a clean stop returns: every completed operation applied in order. */
  private written: DiskState = emptyState();
  /** Completed operations not yet synced, oldest first, with the time they completed. */
  private unsynced: { operation: DiskOperation; completedAtMs: number }[] = [];
  /** Operations started and not completed, oldest first. */
  private inFlight: DiskOperation[] = [];
  private readonly ignoresSync: boolean;
  private readonly flushDelayMs: number;

  /** `nowMs` reads the clock the completion times are measured on (the simulator's virtual one). */
  constructor(private readonly nowMs: () => number, faults: MemoryDiskFaults = {}) {
    this.ignoresSync = faults.ignoresSync ?? false;
    this.flushDelayMs = faults.flushDelayMs ?? FLUSH_DELAY_MS_DEFAULT;
  }

  /** What a load after a clean stop returns (the node owns the copy). */
  load(): PersistedState {
    const state = this.written;
    const loaded: PersistedState = { hardState: { ...state.hardState }, entries: state.entries.slice() };
    if (state.snapshot !== undefined) loaded.snapshot = state.snapshot;
    return loaded;
  }

  /** The data of the snapshot every completed write left, if it is the one at `index`. */
  writtenSnapshotData(index: number): Uint8Array | undefined {
    const snapshot = this.written.snapshot;
    return snapshot?.meta.index === index ? snapshot.data : undefined;
  }

  /** The hard state every completed write left: what a message leaving now may promise. */
  get writtenHardState(): Readonly<HardState> {
    return this.written.hardState;
  }

  /** The last index of the log every completed write left. */
  get writtenLastIndex(): number {
    return lastIndex(this.written);
  }

  /** Why `operation` cannot be applied to the written state; undefined when it can. */
  problem(operation: DiskOperation): string | undefined {
    return problemWith(this.lastIssuedState(), operation);
  }

  /** Records that `operation` started; it is in flight until `complete`. */
  begin(operation: DiskOperation): void {
    this.inFlight.push(operation);
  }

  /** The oldest operation in flight completed: it is written, and durable if synced. */
  complete(operation: DiskOperation): void {
    assert(this.inFlight[0] === operation, 'MemoryDisk: operations complete in the order they started');
    this.inFlight.shift();
    applyTo(this.written, operation);
    if (operation.sync && !this.ignoresSync) {
      for (const { operation: earlier } of this.unsynced) applyTo(this.durable, earlier);
      this.unsynced = [];
      applyTo(this.durable, operation);
    } else {
      this.unsynced.push({ operation, completedAtMs: this.nowMs() });
    }
  }

  /**
   * The machine stopped at once: the page cache and every operation in
   * flight are gone, except what `mode` lets reach the platter. The next load
   * returns what is left.
   */
  crash(mode: CrashMode, random: Random): void {
    this.flushOlderThan(this.nowMs() - this.flushDelayMs);
    const completed = this.unsynced.map((item) => item.operation);
    let survivors: DiskOperation[];
    if (mode === 'lose-unsynced') survivors = [];
    else if (mode === 'tear-last-write') survivors = completed;
    else {
      survivors = [...completed, ...this.inFlight].filter(() => random.below(2) === 0);
      shuffle(survivors, random);
    }
    for (const operation of survivors) {
      if (problemWith(this.durable, operation) === undefined) applyTo(this.durable, operation);
    }
    this.unsynced = [];
    this.inFlight = [];
    this.written = copyState(this.durable);
  }

  /** With a disk that ignores fsync, the kernel still writes the page cache back after a while. */
  private flushOlderThan(timeMs: number): void {
    if (!this.ignoresSync) return;
    while (this.unsynced.length > 0 && this.unsynced[0]!.completedAtMs <= timeMs) {
      applyTo(this.durable, this.unsynced.shift()!.operation);
    }
  }

  /** The written state with every operation in flight applied: what the next one must join. */
  private lastIssuedState(): DiskState {
    if (this.inFlight.length === 0) return this.written;
    const state = copyState(this.written);
    for (const operation of this.inFlight) applyTo(state, operation);
    return state;
  }
}

/** How a `MemoryStorage` is built. */
export interface MemoryStorageOptions {
  disk: MemoryDisk;
  /**
   * Decides when each operation completes: calls `complete` at that moment
   * (the simulator: after a delay on virtual time). Default: in a
   * microtask, so that a call is still in progress when it returns, as on a disk.
   */
  delay?: (complete: () => void, kind: DiskOperation['kind']) => void;
  /**
   * Fault: a disk whose cache lies, resolving each operation as soon as it
   * starts, while the write itself completes later. Used to show that the
   * simulator's checkers catch acks and votes that leave before their write.
   */
  reportsBeforeWritten?: boolean;
}

/** `RaftStorage` on a `MemoryDisk`. One call at a time, as the contract says; a breach rejects. */
export class MemoryStorage implements RaftStorage {
  private readonly disk: MemoryDisk;
  private readonly delay: (complete: () => void, kind: DiskOperation['kind']) => void;
  private readonly reportsBeforeWritten: boolean;
  private loaded = false;
  private closed = false;
  private busy = false;
  /** With `reportsBeforeWritten`: the writes still completing, in order. */
  private completing: Promise<void> = Promise.resolve();

  constructor(options: MemoryStorageOptions) {
    this.disk = options.disk;
    this.delay = options.delay ?? ((complete) => queueMicrotask(complete));
    this.reportsBeforeWritten = options.reportsBeforeWritten ?? false;
  }

  async load(): Promise<PersistedState> {
    this.checkUsable('load');
    this.loaded = true;
    return this.disk.load();
  }

  persist(write: StorageWrite, sync: boolean): Promise<void> {
    return this.operate({ kind: 'persist', write, sync });
  }

  compact(snapshot: Snapshot, dataParts?: readonly Uint8Array[]): Promise<void> {
    const whole = dataParts === undefined ? snapshot : { ...snapshot, data: joinSnapshotParts(dataParts) };
    return this.operate({ kind: 'compact', snapshot: whole, sync: true });
  }

  /** A read runs beside the writes, as LevelDB's do; it sees the writes completed before it. */
  async readSnapshotData(index: number): Promise<Uint8Array | undefined> {
    assert(!this.closed && this.loaded, 'MemoryStorage: readSnapshotData before load or after close');
    await Promise.resolve();
    return this.disk.writtenSnapshotData(index);
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  private checkUsable(what: string): void {
    assert(!this.closed, `MemoryStorage: ${what} after close`);
    assert(what === 'load' || this.loaded, `MemoryStorage: ${what} before load`);
    assert(!this.busy, `MemoryStorage: ${what} while another call is in progress (one call at a time)`);
  }

  private operate(operation: DiskOperation): Promise<void> {
    try {
      this.checkUsable(operation.kind);
      const problem = this.disk.problem(operation);
      assert(problem === undefined, () => `MemoryStorage.${operation.kind}: ${problem}`);
    } catch (error) {
      return Promise.reject(error);
    }
    this.disk.begin(operation);
    if (this.reportsBeforeWritten) {
      this.completing = this.completing.then(() => new Promise<void>((resolve) => this.delay(() => {
        this.disk.complete(operation);
        resolve();
      }, operation.kind)));
      return Promise.resolve();
    }
    this.busy = true;
    return new Promise<void>((resolve) => {
      this.delay(() => {
        this.busy = false;
        this.disk.complete(operation);
        resolve();
      }, operation.kind);
    });
  }
}

function emptyState(): DiskState {
  return { hardState: { term: 0, vote: '', commit: 0 }, entries: [] };
}

function copyState(state: DiskState): DiskState {
  const copy: DiskState = { hardState: { ...state.hardState }, entries: state.entries.slice() };
  if (state.snapshot !== undefined) copy.snapshot = state.snapshot;
  return copy;
}

function snapshotIndex(state: DiskState): number {
  return state.snapshot?.meta.index ?? 0;
}

function lastIndex(state: DiskState): number {
  return snapshotIndex(state) + state.entries.length;
}

/** The refusals of `LevelStorage`: a snapshot older than the stored one, entries that leave a gap, a compaction outside the log. */
function problemWith(state: DiskState, operation: DiskOperation): string | undefined {
  if (operation.kind === 'compact') {
    const index = operation.snapshot.meta.index;
    if (index < snapshotIndex(state) || index > lastIndex(state)) {
      return `snapshot index ${index} is outside the stored log (${snapshotIndex(state)}, ${lastIndex(state)}]`;
    }
    return undefined;
  }
  const { write } = operation;
  let base = snapshotIndex(state);
  let last = lastIndex(state);
  if (write.snapshot !== undefined) {
    if (write.snapshot.meta.index < base) return `snapshot index ${write.snapshot.meta.index} is older than the stored snapshot at ${base}`;
    base = write.snapshot.meta.index;
    last = base;
  }
  const first = write.entries[0]?.index;
  if (first !== undefined && (first <= base || first > last + 1)) {
    return `entries starting at ${first} do not join the stored log (${base}, ${last}]`;
  }
  for (let k = 1; k < write.entries.length; k++) {
    if (write.entries[k]!.index !== first! + k) return `the entries to write skip from ${write.entries[k - 1]!.index} to ${write.entries[k]!.index}`;
  }
  return undefined;
}

/** Applies an operation that `problemWith` accepted. */
function applyTo(state: DiskState, operation: DiskOperation): void {
  if (operation.kind === 'compact') {
    state.entries = state.entries.slice(operation.snapshot.meta.index - snapshotIndex(state));
    state.snapshot = operation.snapshot;
    return;
  }
  const { write } = operation;
  if (write.snapshot !== undefined) {
    // A snapshot from the leader replaces the whole log, as in LevelStorage.
    state.snapshot = write.snapshot;
    state.entries = [];
  }
  const first = write.entries[0]?.index;
  if (first !== undefined) {
    state.entries.length = first - snapshotIndex(state) - 1;
    for (const entry of write.entries) state.entries.push(entry);
  }
  if (write.hardState !== undefined) state.hardState = { ...write.hardState };
}

function shuffle<T>(items: T[], random: Random): void {
  for (let k = items.length - 1; k > 0; k--) {
    const j = random.below(k + 1);
    [items[k], items[j]] = [items[j]!, items[k]!];
  }
}
