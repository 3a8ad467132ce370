import { assert } from './assert.js';
import { EntryType, type ClusterConfig, type Entry, type Snapshot, type SnapshotMeta } from './types.js';

/** The `data` of a snapshot whose bytes are in the driver's storage. */
const NO_DATA = new Uint8Array(0);

/**
 * The in-memory Raft log of one node: the entries after the last snapshot,
 * with the indexes that say how far they are durable, committed and applied.
 *
 * Invariants (asserted where they change):
 *   snapshotMeta.index <= applied <= applyingIndex <= commit <= lastIndex()
 *   snapshotMeta.index <= stableIndex <= writingIndex <= lastIndex()
 * Entries in (stableIndex, writingIndex] were handed to the driver in a Ready
 * and are being written; entries above writingIndex go out in the next Ready.
 * Committed entries in (applied, applyingIndex] were handed out to apply.
 *   entries[k].index === snapshotMeta.index + 1 + k
 * The whole unsnapshotted log lives in memory (as with etcd-io/raft's
 * MemoryStorage); compaction keeps it bounded.
 */
export class RaftLog {
  /** The compaction point: entries at or below its index are gone. */
  snapshotMeta: SnapshotMeta;
  /** The newest whole snapshot, kept to send to followers that fell behind. */
  snapshot: Snapshot | undefined;
  /** A snapshot received from the leader that is not on disk yet. */
  unstableSnapshot: Snapshot | undefined;
  private entries: Entry[];
  /** Indexes of the configuration entries in `entries`, ascending. */
  private configIndexes: number[] = [];
  /** Highest index known durable (and still in this log). */
  stableIndex: number;
  /** Highest index handed to the driver for writing; at least `stableIndex`. */
  writingIndex: number;
  commit: number;
  applied: number;
  /** Highest committed index handed to the driver for applying; at least `applied`. */
  applyingIndex: number;

  constructor(options: { snapshot?: Snapshot; entries: Entry[]; commit: number; applied: number }) {
    const initial: SnapshotMeta = { index: 0, term: 0, config: { voters: [], learners: [] } };
    this.snapshot = options.snapshot;
    this.snapshotMeta = options.snapshot?.meta ?? initial;
    this.unstableSnapshot = undefined;
    this.entries = options.entries.slice();
    for (let k = 0; k < this.entries.length; k++) {
      const entry = this.entries[k]!;
      assert(entry.index === this.snapshotMeta.index + 1 + k, `log gap at entry ${k}`);
      if (entry.type === EntryType.Config) this.configIndexes.push(entry.index);
    }
    this.stableIndex = this.lastIndex();
    this.writingIndex = this.stableIndex;
    this.commit = Math.max(options.commit, this.snapshotMeta.index);
    assert(this.commit <= this.lastIndex(), `commit ${this.commit} beyond last index ${this.lastIndex()}`);
    this.applied = Math.max(options.applied, this.snapshotMeta.index);
    assert(this.applied <= this.commit, `applied ${this.applied} beyond commit ${this.commit}`);
    this.applyingIndex = this.applied;
  }

  firstIndex(): number {
    return this.snapshotMeta.index + 1;
  }

  lastIndex(): number {
    return this.snapshotMeta.index + this.entries.length;
  }

  lastTerm(): number {
    return this.term(this.lastIndex()) ?? 0;
  }

  /** The term of the entry at `index`, or undefined when it is compacted or beyond the end. */
  term(index: number): number | undefined {
    if (index === this.snapshotMeta.index) return this.snapshotMeta.term;
    if (index < this.snapshotMeta.index || index > this.lastIndex()) return undefined;
    return this.entries[index - this.snapshotMeta.index - 1]!.term;
  }

  matchTerm(index: number, term: number): boolean {
    return this.term(index) === term;
  }

  /** The entry at `index`; the caller guarantees it is in memory. */
  entry(index: number): Entry {
    const entry = this.entries[index - this.snapshotMeta.index - 1];
    assert(entry !== undefined && entry.index === index, () => `entry ${index} not in memory`);
    return entry;
  }

  /**
   * Entries from `from` on, at most `bytesMax` of payload (at least one entry
   * when there is one). Undefined when `from` is compacted.
   */
  slice(from: number, bytesMax: number, to = this.lastIndex()): Entry[] | undefined {
    if (from <= this.snapshotMeta.index) return undefined;
    const result: Entry[] = [];
    let bytes = 0;
    for (let index = from; index <= to; index++) {
      const entry = this.entry(index);
      bytes += entry.data.length;
      if (result.length > 0 && bytes > bytesMax) break;
      result.push(entry);
    }
    return result;
  }

  /** Whether a candidate whose log ends at (`index`, `term`) is at least as up to date as this one. */
  isUpToDate(index: number, term: number): boolean {
    const lastTerm = this.lastTerm();
    return term > lastTerm || (term === lastTerm && index >= this.lastIndex());
  }

  /**
   * The largest index at or below `index` whose term is at most `term`: the
   * entries above it surely conflict with a log whose entry at `index` has `term`.
   */
  findConflictByTerm(index: number, term: number): number {
    let probe = Math.min(index, this.lastIndex());
    while (probe > this.snapshotMeta.index && (this.term(probe) ?? 0) > term) probe--;
    return probe;
  }

  /** Appends `entries` (contiguous), replacing any entries at or after the first one's index. */
  append(entries: Entry[]): void {
    if (entries.length === 0) return;
    const first = entries[0]!.index;
    assert(first > this.commit, () => `append at ${first} would overwrite committed entries up to ${this.commit}`);
    assert(first <= this.lastIndex() + 1, () => `append at ${first} leaves a gap after ${this.lastIndex()}`);
    this.entries.length = first - this.snapshotMeta.index - 1;
    while (this.configIndexes.length > 0 && this.configIndexes[this.configIndexes.length - 1]! >= first) {
      this.configIndexes.pop();
    }
    for (const entry of entries) {
      assert(entry.index === this.lastIndex() + 1, () => `entries not contiguous at ${entry.index}`);
      this.entries.push(entry);
      if (entry.type === EntryType.Config) this.configIndexes.push(entry.index);
    }
    // Entries being written from `first` on are replaced: their write no longer makes them stable.
    if (first <= this.writingIndex) this.writingIndex = first - 1;
    if (first <= this.stableIndex) this.stableIndex = first - 1;
  }

  /**
   * A follower's append: when the entry at `prevIndex` has `prevTerm`, keeps
   * the matching prefix of `entries`, replaces the rest, and returns the index
   * of the last new entry; otherwise returns undefined and changes nothing.
   */
  maybeAppend(prevIndex: number, prevTerm: number, entries: Entry[]): number | undefined {
    if (!this.matchTerm(prevIndex, prevTerm)) return undefined;
    const lastNew = prevIndex + entries.length;
    for (let k = 0; k < entries.length; k++) {
      const entry = entries[k]!;
      assert(entry.index === prevIndex + 1 + k, () => `append entries not contiguous at ${entry.index}`);
      if (this.term(entry.index) !== entry.term) {
        this.append(entries.slice(k));
        break;
      }
    }
    return lastNew;
  }

  commitTo(index: number): boolean {
    if (index <= this.commit) return false;
    assert(index <= this.lastIndex(), () => `commit ${index} beyond last index ${this.lastIndex()}`);
    this.commit = index;
    return true;
  }

  /** Entries committed and not yet handed out to apply, at most `bytesMax` of payload. */
  nextCommitted(bytesMax: number): Entry[] {
    const from = Math.max(this.applyingIndex, this.snapshotMeta.index) + 1;
    if (from > this.commit) return [];
    return this.slice(from, bytesMax, this.commit) ?? [];
  }

  /** Whether committed entries wait to be handed out. */
  hasNextCommitted(): boolean {
    return this.commit > Math.max(this.applyingIndex, this.snapshotMeta.index);
  }

  /** Committed entries up to `index` were handed out to apply. */
  applyingTo(index: number): void {
    assert(index <= this.commit, () => `applying ${index} beyond commit ${this.commit}`);
    if (index > this.applyingIndex) this.applyingIndex = index;
  }

  appliedTo(index: number): void {
    assert(index <= this.commit, () => `applied ${index} beyond commit ${this.commit}`);
    if (index > this.applied) this.applied = index;
    if (index > this.applyingIndex) this.applyingIndex = index;
  }

  /** Entries not yet handed out for writing. */
  unwrittenEntries(): Entry[] {
    return this.entries.slice(this.writingIndex - this.snapshotMeta.index);
  }

  /** Whether entries wait to be handed out for writing. */
  hasUnwrittenEntries(): boolean {
    return this.writingIndex < this.lastIndex();
  }

  /** Entries up to `index` were handed out for writing. */
  writingTo(index: number): void {
    assert(index <= this.lastIndex(), () => `writing ${index} beyond last index ${this.lastIndex()}`);
    if (index > this.writingIndex) this.writingIndex = index;
  }

  /**
   * A write holding entries up to (`index`, `term`) is durable. When this log
   * no longer has `term` at `index` (a later append replaced it while the
   * write was in flight), the write says nothing about the entries here now,
   * and they stay unstable until the write that carries them completes. By
   * log matching, the same (index, term) means the same entries up to it.
   */
  stableTo(index: number, term: number): void {
    if (index <= this.stableIndex || this.term(index) !== term) return;
    this.stableIndex = index;
    if (index > this.writingIndex) this.writingIndex = index;
  }

  /** Replaces the whole log with a snapshot from the leader (not yet on disk). */
  restore(snapshot: Snapshot): void {
    assert(snapshot.meta.index > this.commit, `restore to ${snapshot.meta.index} at or below commit ${this.commit}`);
    this.entries = [];
    this.configIndexes = [];
    this.snapshotMeta = snapshot.meta;
    this.snapshot = snapshot;
    this.unstableSnapshot = snapshot;
    this.stableIndex = snapshot.meta.index;
    this.writingIndex = snapshot.meta.index;
    this.commit = snapshot.meta.index;
  }

  /**
   * The newest snapshot, at `index`, can be read back from the driver's
   * storage: keep only its metadata. Ignored for another index, or while the
   * snapshot from the leader is not on disk yet.
   */
  snapshotDataInStorage(index: number): void {
    const snapshot = this.snapshot;
    if (snapshot === undefined || snapshot.meta.index !== index || this.unstableSnapshot !== undefined) return;
    this.snapshot = { meta: snapshot.meta, data: NO_DATA, dataInStorage: true };
  }

  /** The snapshot from the leader is on disk. */
  snapshotPersisted(index: number): void {
    if (this.unstableSnapshot?.meta.index === index) this.unstableSnapshot = undefined;
  }

  /** The snapshot from the leader is installed in the state machine. */
  snapshotInstalled(index: number): void {
    if (index > this.applied) this.applied = index;
    if (index > this.applyingIndex) this.applyingIndex = index;
  }

  /**
   * Drops the entries at or below `snapshot.meta.index`, which the application
   * has captured in `snapshot`. The index must be applied and not yet compacted.
   */
  compact(snapshot: Snapshot): void {
    const index = snapshot.meta.index;
    assert(index <= this.applied, `compact to ${index} beyond applied ${this.applied}`);
    assert(index <= this.stableIndex, `compact to ${index} beyond stable ${this.stableIndex}`);
    if (index <= this.snapshotMeta.index) return;
    assert(this.term(index) === snapshot.meta.term, `compact to ${index}: term mismatch`);
    this.entries = this.entries.slice(index - this.snapshotMeta.index);
    this.configIndexes = this.configIndexes.filter((configIndex) => configIndex > index);
    this.snapshotMeta = snapshot.meta;
    this.snapshot = snapshot;
  }

  /**
   * The configuration in force at `index`: the last configuration entry at or
   * below it, or the snapshot's. `index` must not be compacted.
   */
  configAt(index: number): { config: ClusterConfig; index: number } {
    assert(index >= this.snapshotMeta.index, `config at compacted index ${index}`);
    for (let k = this.configIndexes.length - 1; k >= 0; k--) {
      const configIndex = this.configIndexes[k]!;
      if (configIndex <= index) return { config: this.entry(configIndex).config!, index: configIndex };
    }
    return { config: this.snapshotMeta.config, index: this.snapshotMeta.index };
  }
}
