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
 * `propose`, `readIndex` in; `ready()` out; `advance()` back.
 *
 * Protocol: after `ready()` and until `advance(ready)`, the driver calls no
 * other method (it queues whatever arrives meanwhile). This keeps the
 * unstable part of the log exactly what the Ready handed out.
 */
export class RawNode {
  private readonly raft: Raft;
  private previousHardState: HardState;
  private previousSoftState: SoftState;
  private inReady = false;

  constructor(options: RaftOptions, restored: RestoredState) {
    this.raft = new Raft(options, restored);
    this.previousHardState = this.raft.hardState();
    this.previousSoftState = { leader: this.raft.leader, role: this.raft.role };
  }

  private checkNotInReady(): void {
    assert(!this.inReady, 'RawNode called between ready() and advance()');
  }

  /** Advances logical time by one tick. */
  tick(): void {
    this.checkNotInReady();
    this.raft.tick();
  }

  /** Hands in a message from a peer (already validated by the transport). */
  step(message: Message): void {
    this.checkNotInReady();
    this.raft.step(message);
  }

  /** Starts an election now (used to speed up a single-node bootstrap and in tests). */
  campaign(): void {
    this.checkNotInReady();
    this.raft.hup(false);
  }

  /**
   * Appends `data` to the log if this node leads. The returned index and term
   * identify the entry: if a different term is later applied at that index, the
   * proposal was lost and may be retried.
   */
  propose(data: Uint8Array): Result<{ index: number; term: number }> {
    this.checkNotInReady();
    return this.raft.propose(data);
  }

  /** Proposes a single-server membership change (leader only). */
  proposeConfigChange(change: ConfigChange): Result<{ index: number; term: number }> {
    this.checkNotInReady();
    return this.raft.proposeConfigChange(change);
  }

  /**
   * Starts a ReadIndex round named `context` (unique per request). Its result
   * comes as a `ReadState` in a later Ready, possibly `refused`.
   */
  readIndex(context: string): Result<void> {
    this.checkNotInReady();
    return this.raft.readIndex(context);
  }

  /** Hands leadership to voter `to` once it is caught up; proposals are refused meanwhile. */
  transferLeadership(to: NodeId): Result<void> {
    this.checkNotInReady();
    return this.raft.transferLeadership(to);
  }

  reportUnreachable(id: NodeId): void {
    this.checkNotInReady();
    this.raft.reportUnreachable(id);
  }

  reportSnapshot(id: NodeId, ok: boolean): void {
    this.checkNotInReady();
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

  /** The snapshot is durable (`RaftStorage.compact`): drop the entries it covers. */
  compact(snapshot: Snapshot): void {
    this.checkNotInReady();
    this.raft.compact(snapshot);
  }

  private flushBroadcast(): void {
    if (this.raft.role === Role.Leader && this.raft.broadcastPending) this.raft.broadcastAppend();
  }

  hasReady(): boolean {
    this.flushBroadcast();
    const raft = this.raft;
    const log = raft.log;
    return (
      raft.messages.length > 0 ||
      raft.messagesEarly.length > 0 ||
      raft.readStates.length > 0 ||
      log.unstableSnapshot !== undefined ||
      log.stableIndex < log.lastIndex() ||
      log.commit > log.applied ||
      !sameHardState(raft.hardState(), this.previousHardState) ||
      raft.leader !== this.previousSoftState.leader ||
      raft.role !== this.previousSoftState.role
    );
  }

  /** The work to do now. Call `advance(ready)` once it is done. */
  ready(): Ready {
    this.checkNotInReady();
    this.flushBroadcast();
    const raft = this.raft;
    const log = raft.log;
    const hardState = raft.hardState();
    const hardStateChanged = !sameHardState(hardState, this.previousHardState);
    const termOrVoteChanged =
      hardState.term !== this.previousHardState.term || hardState.vote !== this.previousHardState.vote;
    const entries = log.unstableEntries();
    const snapshot = log.unstableSnapshot;
    let messagesEarly = raft.messagesEarly;
    let messages = raft.messages;
    if (termOrVoteChanged && messagesEarly.length > 0) {
      // A leader whose term is not yet durable must not speak before it is.
      messages = [...messagesEarly, ...messages];
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
    this.inReady = true;
    return ready;
  }

  /** The Ready was handled in full: its writes are durable and its entries applied. */
  advance(ready: Ready): void {
    assert(this.inReady, 'advance() without a pending ready()');
    this.inReady = false;
    const raft = this.raft;
    if (ready.hardState) this.previousHardState = ready.hardState;
    if (ready.snapshot) raft.log.snapshotInstalled(ready.snapshot.meta.index);
    const lastEntry = ready.entries[ready.entries.length - 1];
    if (lastEntry) raft.stableTo(lastEntry.index);
    const lastCommitted = ready.committedEntries[ready.committedEntries.length - 1];
    if (lastCommitted) raft.log.appliedTo(lastCommitted.index);
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
