import { assert } from './assert.js';
import { Raft } from './raft.js';
import {
  EntryType,
  Role,
  type ClusterConfig,
  type ConfigChange,
  type Entry,
  type HardState,
  type Message,
  type NodeId,
  type RaftOptions,
  type Ready,
  type Result,
  type Snapshot,
  type SoftState,
  type Status,
} from './types.js';

/** What a node restarts from: its disk, as `RaftStorage.load()` returns it. */
export interface RestoredState {
  hardState: HardState;
  snapshot?: Snapshot;
  entries: Entry[];
}

/** Largest payload of committed entries handed out in one Ready. */
const COMMITTED_BYTES_MAX = 8 * 1024 * 1024;

/**
 * The state a brand-new cluster starts from: one configuration entry at
 * index 1, term 1, already committed. Every founding node persists the same
 * state, so their logs agree from the start.
 */
export function bootstrapState(config: ClusterConfig): RestoredState {
  assert(config.voters.length > 0, 'a cluster needs at least one voter');
  const normalized = { voters: [...config.voters].sort(), learners: [...config.learners].sort() };
  return {
    hardState: { term: 1, vote: '', commit: 1 },
    entries: [{ term: 1, index: 1, type: EntryType.Config, data: new Uint8Array(0), config: normalized }],
  };
}

/**
 * The thread-unsafe, synchronous face of the Raft core: `tick`, `step`,
 * `propose`, `readIndex` in; `ready()` out; `persisted()` and `applied()`
 * (or both at once, `advance()`) back.
 *
 * Protocol: `ready()` hands work out and marks it handed, so the next Ready
 * holds only what is new; the driver may go on calling every method (step,
 * propose, tick, ready) while earlier Readys are being written. It reports
 * each Ready's write with `persisted(ready)` in the order the Readys were
 * handed out (writes complete in order), and the entries it applied with
 * `applied(ready)`. Until `persisted`, the leader does not count its own copy
 * of the Ready's entries toward a quorum and the Ready's `messages` must not
 * leave. A Ready holding a snapshot is the exception: the driver finishes it
 * (persists, restores, `advance`) before it calls anything else.
 */
export class RawNode {
  private readonly raft: Raft;
  /** The hard state last handed out in a Ready (written or being written). */
  private previousHardState: HardState;
  /** Term and vote known durable: early messages wait while the current ones are not. */
  private durableTerm: number;
  private durableVote: NodeId;
  private previousSoftState: SoftState;
  /** Readys handed out and not yet `persisted`, oldest first. */
  private readonly unpersisted: Ready[] = [];
  /** A Ready holding a snapshot is out: nothing else until its `advance`. */
  private snapshotReadyOut: Ready | undefined;

  constructor(options: RaftOptions, restored: RestoredState) {
    this.raft = new Raft(options, restored);
    this.previousHardState = this.raft.hardState();
    this.durableTerm = this.previousHardState.term;
    this.durableVote = this.previousHardState.vote;
    this.previousSoftState = { leader: this.raft.leader, role: this.raft.role };
  }

  private checkNoSnapshotReady(): void {
    assert(this.snapshotReadyOut === undefined, 'RawNode called while a Ready with a snapshot is being handled');
  }

  /** Advances logical time by one tick. */
  tick(): void {
    this.checkNoSnapshotReady();
    this.raft.tick();
  }

  /** Hands in a message from a peer (already validated by the transport). */
  step(message: Message): void {
    this.checkNoSnapshotReady();
    this.raft.step(message);
  }

  /** Starts an election now (used to speed up a single-node bootstrap and in tests). */
  campaign(): void {
    this.checkNoSnapshotReady();
    this.raft.hup(false);
  }

  /**
   * Appends `data` to the log if this node leads. The returned index and term
   * identify the entry: if a different term is later applied at that index, the
   * proposal was lost and may be retried.
   */
  propose(data: Uint8Array): Result<{ index: number; term: number }> {
    this.checkNoSnapshotReady();
    return this.raft.propose(data);
  }

  /** Proposes a single-server membership change (leader only). */
  proposeConfigChange(change: ConfigChange): Result<{ index: number; term: number }> {
    this.checkNoSnapshotReady();
    return this.raft.proposeConfigChange(change);
  }

  /**
   * Starts a ReadIndex round named `context` (unique per request). Its result
   * comes as a `ReadState` in a later Ready, possibly `refused`.
   */
  readIndex(context: string): Result<void> {
    this.checkNoSnapshotReady();
    return this.raft.readIndex(context);
  }

  /** Hands leadership to voter `to` once it is caught up; proposals are refused meanwhile. */
  transferLeadership(to: NodeId): Result<void> {
    this.checkNoSnapshotReady();
    return this.raft.transferLeadership(to);
  }

  reportUnreachable(id: NodeId): void {
    this.checkNoSnapshotReady();
    this.raft.reportUnreachable(id);
  }

  reportSnapshot(id: NodeId, ok: boolean): void {
    this.checkNoSnapshotReady();
    this.raft.reportSnapshot(id, ok);
  }

  /**
   * Builds a snapshot record for `index` (applied, not compacted) from the
   * application's serialized state, with the term and configuration Raft knows.
   */
  snapshotAt(index: number, data: Uint8Array): Snapshot {
    const term = this.raft.log.term(index);
    assert(term !== undefined, `no term known for snapshot index ${index}`);
    return { meta: { index, term, config: this.raft.configAt(index) }, data };
  }

  /**
   * The snapshot is durable (`RaftStorage.compact`): drop the entries it
   * covers. Its index must be applied and durable (at most `stableIndex`).
   */
  compact(snapshot: Snapshot): void {
    this.checkNoSnapshotReady();
    this.raft.compact(snapshot);
  }

  /**
   * The newest snapshot, at `index`, is in the driver's storage and can be
   * read back from it (`RaftStorage.readSnapshotData`): the log keeps only
   * its metadata, and its Snapshot messages carry `dataInStorage` and no
   * bytes, for the driver to fill in. Ignored unless that snapshot is the
   * newest and on disk.
   */
  snapshotDataInStorage(index: number): void {
    this.raft.log.snapshotDataInStorage(index);
  }

  /** Highest log index known durable on this node. */
  get stableIndex(): number {
    return this.raft.log.stableIndex;
  }

  /** Number of Readys handed out whose write is not yet reported `persisted`. */
  get writesInFlight(): number {
    return this.unpersisted.length;
  }

  private flushBroadcast(): void {
    if (this.raft.role === Role.Leader && this.raft.broadcastPending) this.raft.broadcastAppend();
  }

  hasReady(): boolean {
    if (this.snapshotReadyOut !== undefined) return false;
    this.flushBroadcast();
    const raft = this.raft;
    const log = raft.log;
    return (
      raft.messages.length > 0 ||
      raft.messagesEarly.length > 0 ||
      raft.readStates.length > 0 ||
      log.unstableSnapshot !== undefined ||
      log.hasUnwrittenEntries() ||
      log.hasNextCommitted() ||
      !sameHardState(raft.hardState(), this.previousHardState) ||
      raft.leader !== this.previousSoftState.leader ||
      raft.role !== this.previousSoftState.role
    );
  }

  /**
   * The work to do now, marked handed out: the next Ready holds only what is
   * new. Report its write with `persisted(ready)` and its entries with
   * `applied(ready)`, or both with `advance(ready)`.
   */
  ready(): Ready {
    this.checkNoSnapshotReady();
    this.flushBroadcast();
    const raft = this.raft;
    const log = raft.log;
    const hardState = raft.hardState();
    const hardStateChanged = !sameHardState(hardState, this.previousHardState);
    const termOrVoteChanged =
      hardState.term !== this.previousHardState.term || hardState.vote !== this.previousHardState.vote;
    const termOrVoteUndurable = hardState.term !== this.durableTerm || hardState.vote !== this.durableVote;
    const entries = log.unwrittenEntries();
    const snapshot = log.unstableSnapshot;
    let messagesEarly = raft.messagesEarly;
    let messages = raft.messages;
    if (termOrVoteUndurable && messagesEarly.length > 0) {
      // A leader whose term is not yet durable (in this write or one still in flight) must not speak before it is.
      messages = messagesEarly.concat(messages);
      messagesEarly = [];
    }
    const ready: Ready = {
      entries,
      messagesEarly,
      messages,
      committedEntries: snapshot ? [] : log.nextCommitted(COMMITTED_BYTES_MAX),
      readStates: raft.readStates,
      mustSync: entries.length > 0 || termOrVoteChanged || snapshot !== undefined,
    };
    if (hardStateChanged) ready.hardState = hardState;
    if (snapshot) ready.snapshot = snapshot;
    if (raft.leader !== this.previousSoftState.leader || raft.role !== this.previousSoftState.role) {
      ready.softState = { leader: raft.leader, role: raft.role };
      this.previousSoftState = ready.softState;
    }
    raft.messages = [];
    raft.messagesEarly = [];
    raft.readStates = [];
    // Handed out: the next Ready starts after these.
    this.previousHardState = hardState;
    const lastEntry = entries[entries.length - 1];
    if (lastEntry) log.writingTo(lastEntry.index);
    const lastCommitted = ready.committedEntries[ready.committedEntries.length - 1];
    if (lastCommitted) log.applyingTo(lastCommitted.index);
    this.unpersisted.push(ready);
    if (snapshot) this.snapshotReadyOut = ready;
    return ready;
  }

  /**
   * The write of `ready` (its snapshot, entries and hard state) is durable.
   * Readys are reported in the order they were handed out. The leader now
   * counts its own copy of the entries toward a quorum.
   */
  persisted(ready: Ready): void {
    assert(this.unpersisted[0] === ready, 'RawNode.persisted: Readys must be reported once each, in the order handed out');
    this.unpersisted.shift();
    const raft = this.raft;
    if (ready.hardState) {
      this.durableTerm = ready.hardState.term;
      this.durableVote = ready.hardState.vote;
    }
    if (ready.snapshot) raft.log.snapshotPersisted(ready.snapshot.meta.index);
    const lastEntry = ready.entries[ready.entries.length - 1];
    if (lastEntry) raft.stableTo(lastEntry.index, lastEntry.term);
  }

  /**
   * The driver applied `ready.committedEntries` (and restored the state
   * machine from `ready.snapshot`, if any, after `persisted(ready)`).
   */
  applied(ready: Ready): void {
    const raft = this.raft;
    if (ready.snapshot) {
      assert(this.snapshotReadyOut === ready, 'RawNode.applied: not the Ready holding the snapshot');
      assert(!this.unpersisted.includes(ready), 'RawNode.applied: a snapshot is restored only once it is persisted');
      raft.log.snapshotInstalled(ready.snapshot.meta.index);
      this.snapshotReadyOut = undefined;
    }
    const lastCommitted = ready.committedEntries[ready.committedEntries.length - 1];
    if (lastCommitted) raft.log.appliedTo(lastCommitted.index);
  }

  /** The Ready was handled in full: its writes are durable and its entries applied. */
  advance(ready: Ready): void {
    this.persisted(ready);
    this.applied(ready);
  }

  status(): Status {
    return this.raft.status();
  }

  /** The Raft term and leader, cheaply. */
  get term(): number {
    return this.raft.term;
  }

  get leader(): NodeId {
    return this.raft.leader;
  }

  get role(): Role {
    return this.raft.role;
  }

  /** Test and simulator access to the log; not for drivers. */
  get raftForInspection(): Raft {
    return this.raft;
  }
}

function sameHardState(a: HardState, b: HardState): boolean {
  return a.term === b.term && a.vote === b.vote && a.commit === b.commit;
}
