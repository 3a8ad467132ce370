import type { Entry, HardState, Snapshot, SnapshotMeta } from './core/types.js';

/** What a node finds on its disk at start. */
export interface PersistedState {
  hardState: HardState;
  /** The latest snapshot, if the log was ever compacted or a snapshot installed. */
  snapshot?: Snapshot;
  /** Every entry after the snapshot's index (or from index 1), in order, without gaps. */
  entries: Entry[];
}

/** One atomic write, the storage half of a Ready. */
export interface StorageWrite {
  hardState?: HardState;
  /** Entries to append; an entry at index i replaces every stored entry at index >= i. */
  entries: Entry[];
  /** A snapshot installed from the leader: every stored entry at or below its index is dropped. */
  snapshot?: Snapshot;
}

/**
 * Durable storage of one node's Raft state.
 *
 * Ownership: the driver is the only caller, and calls one method at a time
 * (it awaits each call before the next). Any error rejects the promise and
 * makes the node inoperable: the driver stops, it never retries or continues.
 */
export interface RaftStorage {
  /** Reads everything back; on a fresh directory, a zero hard state and no entries. */
  load(): Promise<PersistedState>;
  /** Writes `write` atomically; when `sync` is true, it is on disk (fsync) before the promise resolves. */
  persist(write: StorageWrite, sync: boolean): Promise<void>;
  /**
   * Records an application snapshot and drops every entry at or below its
   * index, atomically and synced. Entries above the index stay. With
   * `dataParts` the snapshot's data is their concatenation, in order, and
   * `snapshot.data` is ignored: a state machine that encodes its snapshot in
   * pieces hands them over as they are, without one joined copy of the whole
   * (the storage may keep references to them until the promise settles).
   */
  compact(snapshot: Snapshot, dataParts?: readonly Uint8Array[] | SnapshotPieces): Promise<void>;
  /**
   * Optional: starts storing the data of the snapshot at `meta`, newer than
   * the stored one, a piece at a time: each `write` of the returned object is
   * a call of its own, which the driver makes between its other calls (its
   * persists go on meanwhile), and `compact(snapshot, pieces)` then records
   * the snapshot from the pieces written, as `compact` with `dataParts`
   * would. The pieces are not the stored snapshot until then; a load deletes
   * the pieces of one never recorded. A state machine that encodes its
   * snapshot as it is read (`StateMachine.snapshotStream`) is then never
   * whole in memory.
   */
  snapshotPieces?(meta: SnapshotMeta): SnapshotPieces;
  /**
   * Optional: the data of the stored snapshot at `index`, read back (the
   * caller must not change it), or undefined when the stored snapshot is
   * another one (a newer one replaced it). Unlike the other calls it may run beside
   * them. With it the driver keeps no snapshot in memory; without it, the
   * newest one stays in memory to send to followers that fall behind.
   */
  readSnapshotData?(index: number): Promise<Uint8Array | undefined>;
  close(): Promise<void>;
}

/** A snapshot's data being stored a piece at a time (`RaftStorage.snapshotPieces`). */
export interface SnapshotPieces {
  /** Stores the next piece (their concatenation, in order, is the data); one storage call at a time, as every other. */
  write(piece: Uint8Array): Promise<void>;
  /** Bytes written so far. */
  readonly bytes: number;
}

/** A snapshot's data given in pieces (`RaftStorage.compact`'s `dataParts`), joined: for the code that needs it whole. */
export function joinSnapshotParts(parts: readonly Uint8Array[]): Uint8Array {
  const joined = new Uint8Array(parts.reduce((total, part) => total + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    joined.set(part, offset);
    offset += part.length;
  }
  return joined;
}
