import { assert } from './assert.js';
import { applyChange, isVoter, members, quorumIndex, quorumSize, tallyVotes, VoteOutcome } from './config.js';
import { RaftLog } from './log.js';
import { Progress } from './progress.js';
import {
  EntryType,
  MessageType,
  NO_NODE,
  ProgressState,
  Role,
  type ClusterConfig,
  type ConfigChange,
  type Entry,
  type HardState,
  type Message,
  type NodeId,
  type RaftOptions,
  type ReadState,
  type Result,
  type Snapshot,
  type Status,
} from './types.js';

/** A ReadIndex round waiting for a quorum of heartbeat acknowledgements. */
interface PendingRead {
  context: string;
  index: number;
  /** Who asked: this node, or a follower that forwarded the request. */
  from: NodeId;
  acks: Set<NodeId>;
}

/** Message kinds a leader may send before its current write is durable. */
const EARLY_TYPES = new Set<MessageType>([
  MessageType.Append,
  MessageType.Heartbeat,
  MessageType.Snapshot,
  MessageType.ReadIndexResponse,
  MessageType.TimeoutNow,
]);

/**
 * The Raft protocol of one node, as a pure state machine: messages and ticks
 * in; entries, hard state and messages accumulated for the next Ready.
 *
 * Roles are swapped functions: `become*` sets `stepRole`. Membership changes
 * take effect when their entry is appended (not when committed), one voter
 * at a time, and only after the leader has committed an entry of its term.
 * `RawNode` wraps this class with the Ready / advance protocol; nothing else
 * should call it.
 */
export class Raft {
  readonly id: NodeId;
  term = 0;
  vote: NodeId = NO_NODE;
  role: Role = Role.Follower;
  leader: NodeId = NO_NODE;
  readonly log: RaftLog;
  config: ClusterConfig;
  /** Index of the newest configuration entry in the log (or the snapshot's index). */
  configIndex: number;
  /** Leader only: one entry per member other than this node... and this node itself. */
  progress = new Map<NodeId, Progress>();

  /** Messages that may leave before the next write is durable (leader traffic). */
  messagesEarly: Message[] = [];
  /** Messages that must wait for the next write. */
  messages: Message[] = [];
  readStates: ReadState[] = [];

  private readonly options: RaftOptions;
  private electionElapsed = 0;
  private heartbeatElapsed = 0;
  private randomizedElectionTimeout = 0;
  private votes = new Map<NodeId, boolean>();
  /** Leader only: the node leadership is being handed to. */
  transferee: NodeId = NO_NODE;
  /** Leader only: payload bytes appended in this term and not yet committed. */
  private uncommittedBytes = 0;
  /** Leader only: reads waiting for the first commit of this term. */
  private readsBeforeCommit: { context: string; from: NodeId }[] = [];
  /** Leader only: reads waiting for a quorum's heartbeat acknowledgements, in arrival order. */
  private pendingReads: PendingRead[] = [];
  /**
   * Follower only: reads forwarded to the leader and not yet answered, with
   * the tick they were sent at. One unanswered for an election timeout was
   * lost on the way and is refused, so its caller can retry.
   */
  private forwardedReads: { context: string; sentTick: number }[] = [];
  /** Ticks since this node started; only ages forwarded reads. */
  private ticks = 0;
  /** Leader only: a broadcast of new entries is owed (batched until the next Ready). */
  broadcastPending = false;
  private stepRole: (message: Message) => void = (message) => this.stepFollower(message);

  constructor(options: RaftOptions, restored: { hardState: HardState; snapshot?: Snapshot; entries: Entry[] }) {
    assert(options.id !== NO_NODE, 'node id must not be empty');
    assert(options.heartbeatIntervalTicks > 0, 'heartbeat interval must be positive');
    assert(
      options.electionTimeoutTicks > options.heartbeatIntervalTicks,
      'election timeout must exceed the heartbeat interval',
    );
    this.options = options;
    this.id = options.id;
    this.log = new RaftLog({
      snapshot: restored.snapshot,
      entries: restored.entries,
      commit: restored.hardState.commit,
      applied: options.applied,
    });
    const latest = this.log.configAt(this.log.lastIndex());
    this.config = latest.config;
    this.configIndex = latest.index;
    this.term = restored.hardState.term;
    this.vote = restored.hardState.vote;
    this.becomeFollower(this.term, NO_NODE);
  }

  private trace(line: string): void {
    this.options.logger?.(`${this.id} t${this.term} ${line}`);
  }

  hardState(): HardState {
    return { term: this.term, vote: this.vote, commit: this.log.commit };
  }

  /** Whether this node may campaign: it is a voter in the configuration it knows. */
  promotable(): boolean {
    return isVoter(this.config, this.id);
  }

  // ---------------------------------------------------------------------------
  // Role transitions

  private reset(term: number): void {
    if (term !== this.term) {
      this.term = term;
      this.vote = NO_NODE;
    }
    this.failLocalReads();
    this.leader = NO_NODE;
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.randomizedElectionTimeout =
      this.options.electionTimeoutTicks + this.options.random.below(this.options.electionTimeoutTicks);
    this.votes.clear();
    this.transferee = NO_NODE;
    this.uncommittedBytes = 0;
    this.readsBeforeCommit = [];
    this.pendingReads = [];
    this.broadcastPending = false;
    this.progress.clear();
  }

  /** Local reads that can no longer complete are reported as refused. */
  private failLocalReads(): void {
    for (const read of [...this.readsBeforeCommit, ...this.pendingReads]) {
      if (read.from === this.id) this.readStates.push({ index: 0, context: read.context, refused: true });
    }
    for (const read of this.forwardedReads) this.readStates.push({ index: 0, context: read.context, refused: true });
    this.forwardedReads = [];
  }

  becomeFollower(term: number, leader: NodeId): void {
    this.reset(term);
    this.stepRole = (message) => this.stepFollower(message);
    this.role = Role.Follower;
    this.leader = leader;
    this.trace(`became follower of ${leader || 'nobody'}`);
  }

  private becomePreCandidate(): void {
    assert(this.role !== Role.Leader, 'a leader cannot become a pre-candidate');
    // Pre-candidacy changes neither term nor vote.
    this.stepRole = (message) => this.stepCandidate(message);
    this.votes.clear();
    this.leader = NO_NODE;
    this.role = Role.PreCandidate;
    this.trace('became pre-candidate');
  }

  private becomeCandidate(): void {
    assert(this.role !== Role.Leader, 'a leader cannot become a candidate');
    this.reset(this.term + 1);
    this.stepRole = (message) => this.stepCandidate(message);
    this.vote = this.id;
    this.role = Role.Candidate;
    this.trace('became candidate');
  }

  private becomeLeader(): void {
    assert(this.role === Role.Candidate, 'only a candidate can become leader');
    this.reset(this.term);
    this.stepRole = (message) => this.stepLeader(message);
    this.leader = this.id;
    this.role = Role.Leader;
    this.rebuildProgress();
    // The no-op lets the leader commit, and so learn the commit index, in its own term.
    this.appendEntries([{ term: this.term, index: this.log.lastIndex() + 1, type: EntryType.Normal, data: EMPTY }]);
    this.trace(`became leader at index ${this.log.lastIndex()}`);
  }

  private rebuildProgress(): void {
    const existing = this.progress;
    this.progress = new Map();
    for (const id of members(this.config)) {
      const learner = !isVoter(this.config, id);
      const old = existing.get(id);
      if (old) {
        old.learner = learner;
        this.progress.set(id, old);
        continue;
      }
      const progress = new Progress({
        next: this.log.lastIndex() + 1,
        learner,
        inflightMessagesMax: this.options.inflightMessagesMax,
        inflightBytesMax: this.options.inflightBytesMax,
      });
      if (id === this.id) {
        progress.match = this.log.stableIndex;
        progress.recentActive = true;
        progress.becomeReplicate();
      }
      this.progress.set(id, progress);
    }
  }

  // ---------------------------------------------------------------------------
  // Time

  tick(): void {
    this.ticks++;
    if (this.role === Role.Leader) this.tickHeartbeat();
    else this.tickElection();
    this.expireForwardedReads();
  }

  private expireForwardedReads(): void {
    const oldest = this.forwardedReads[0];
    if (oldest === undefined || this.ticks - oldest.sentTick < this.options.electionTimeoutTicks) return;
    const expired = this.forwardedReads.filter((read) => this.ticks - read.sentTick >= this.options.electionTimeoutTicks);
    this.forwardedReads = this.forwardedReads.filter((read) => this.ticks - read.sentTick < this.options.electionTimeoutTicks);
    for (const read of expired) this.readStates.push({ index: 0, context: read.context, refused: true });
  }

  private tickElection(): void {
    this.electionElapsed++;
    if (this.promotable() && this.electionElapsed >= this.randomizedElectionTimeout) {
      this.electionElapsed = 0;
      this.hup(false);
    }
  }

  private tickHeartbeat(): void {
    this.heartbeatElapsed++;
    this.electionElapsed++;
    if (this.electionElapsed >= this.options.electionTimeoutTicks) {
      this.electionElapsed = 0;
      if (this.options.checkQuorum && !this.quorumActive()) {
        this.trace('stepped down: no quorum heard within an election timeout');
        this.becomeFollower(this.term, NO_NODE);
        return;
      }
      if (this.transferee !== NO_NODE) {
        this.trace(`leadership transfer to ${this.transferee} timed out`);
        this.transferee = NO_NODE;
      }
    }
    if (this.heartbeatElapsed >= this.options.heartbeatIntervalTicks) {
      this.heartbeatElapsed = 0;
      this.broadcastHeartbeat(this.pendingReads[this.pendingReads.length - 1]?.context ?? '');
    }
  }

  /** Whether a quorum of voters was heard from in the last election timeout; resets the marks. */
  private quorumActive(): boolean {
    let active = 0;
    for (const voter of this.config.voters) {
      const progress = this.progress.get(voter);
      if (voter === this.id || progress?.recentActive) active++;
    }
    for (const [id, progress] of this.progress) progress.recentActive = id === this.id;
    return active >= quorumSize(this.config.voters.length);
  }

  // ---------------------------------------------------------------------------
  // Elections

  /** Starts an election (with pre-vote unless `transfer`), if this node may. */
  hup(transfer: boolean): void {
    if (this.role === Role.Leader) return;
    if (!this.promotable()) return;
    if (this.options.preVote && !transfer) this.campaign(MessageType.PreVote, false);
    else this.campaign(MessageType.Vote, transfer);
  }

  private campaign(type: MessageType.PreVote | MessageType.Vote, transfer: boolean): void {
    let voteTerm: number;
    if (type === MessageType.PreVote) {
      this.becomePreCandidate();
      voteTerm = this.term + 1;
    } else {
      this.becomeCandidate();
      voteTerm = this.term;
    }
    if (this.poll(this.id, true) === VoteOutcome.Won) {
      // A single-voter cluster wins at once.
      if (type === MessageType.PreVote) this.campaign(MessageType.Vote, transfer);
      else this.becomeLeader();
      return;
    }
    for (const voter of this.config.voters) {
      if (voter === this.id) continue;
      this.send({
        type,
        to: voter,
        term: voteTerm,
        index: this.log.lastIndex(),
        logTerm: this.log.lastTerm(),
        transfer,
      });
    }
  }

  private poll(from: NodeId, granted: boolean): VoteOutcome {
    if (!this.votes.has(from)) this.votes.set(from, granted);
    return tallyVotes(this.config.voters, this.votes);
  }

  // ---------------------------------------------------------------------------
  // Messages

  /** Handles one message from a peer. Messages not addressed to this node are ignored. */
  step(message: Message): void {
    if (message.to !== this.id) return;
    if (message.term > this.term) {
      if (!this.stepHigherTerm(message)) return;
    } else if (message.term < this.term) {
      this.stepLowerTerm(message);
      return;
    }
    switch (message.type) {
      case MessageType.Vote:
      case MessageType.PreVote:
        this.handleVoteRequest(message);
        return;
      default:
        this.stepRole(message);
    }
  }

  /** A message from a higher term. Returns whether to go on handling it. */
  private stepHigherTerm(message: Message): boolean {
    const isVoteRequest = message.type === MessageType.Vote || message.type === MessageType.PreVote;
    if (isVoteRequest) {
      const inLease =
        this.options.checkQuorum &&
        this.leader !== NO_NODE &&
        this.electionElapsed < this.options.electionTimeoutTicks;
      if (inLease && !message.transfer) {
        // We heard from a live leader recently: a disruptive candidate is ignored.
        this.trace(`ignored vote request from ${message.from} (leader lease)`);
        return false;
      }
    }
    if (message.type === MessageType.PreVote) return true;
    if (message.type === MessageType.PreVoteResponse && !message.reject) return true;
    const fromLeader =
      message.type === MessageType.Append ||
      message.type === MessageType.Heartbeat ||
      message.type === MessageType.Snapshot;
    this.becomeFollower(message.term, fromLeader ? message.from : NO_NODE);
    return true;
  }

  private stepLowerTerm(message: Message): void {
    if (message.type === MessageType.Append || message.type === MessageType.Heartbeat) {
      // A stale leader (perhaps cut off, then healed) learns the new term and steps down.
      this.send({ type: MessageType.AppendResponse, to: message.from });
    } else if (message.type === MessageType.PreVote) {
      this.send({ type: MessageType.PreVoteResponse, to: message.from, reject: true });
    }
  }

  private handleVoteRequest(message: Message): void {
    const canVote =
      this.vote === message.from ||
      (this.vote === NO_NODE && this.leader === NO_NODE) ||
      (message.type === MessageType.PreVote && message.term > this.term);
    const responseType = message.type === MessageType.Vote ? MessageType.VoteResponse : MessageType.PreVoteResponse;
    if (canVote && this.log.isUpToDate(message.index, message.logTerm)) {
      // A granted pre-vote answers in the term the pre-candidate asked about.
      this.send({ type: responseType, to: message.from, term: message.term });
      if (message.type === MessageType.Vote) {
        this.electionElapsed = 0;
        this.vote = message.from;
      }
      this.trace(`granted ${message.type === MessageType.Vote ? 'vote' : 'pre-vote'} to ${message.from}`);
    } else {
      this.send({ type: responseType, to: message.from, reject: true });
    }
  }

  private stepFollower(message: Message): void {
    switch (message.type) {
      case MessageType.Append:
        this.electionElapsed = 0;
        this.leader = message.from;
        this.handleAppend(message);
        return;
      case MessageType.Heartbeat:
        this.electionElapsed = 0;
        this.leader = message.from;
        this.handleHeartbeat(message);
        return;
      case MessageType.Snapshot:
        this.electionElapsed = 0;
        this.leader = message.from;
        this.handleSnapshot(message);
        return;
      case MessageType.TimeoutNow:
        this.trace(`told by ${message.from} to campaign now`);
        this.hup(true);
        return;
      case MessageType.ReadIndexResponse: {
        const position = this.forwardedReads.findIndex((read) => read.context === message.context);
        if (position < 0) return; // Already refused, or a duplicate.
        this.forwardedReads.splice(position, 1);
        this.readStates.push({ index: message.index, context: message.context, refused: message.reject });
        return;
      }
      case MessageType.ReadIndex:
        this.send({ type: MessageType.ReadIndexResponse, to: message.from, context: message.context, reject: true });
        return;
      default:
        return;
    }
  }

  private stepCandidate(message: Message): void {
    const myResponse = this.role === Role.PreCandidate ? MessageType.PreVoteResponse : MessageType.VoteResponse;
    switch (message.type) {
      case MessageType.Append:
      case MessageType.Heartbeat:
      case MessageType.Snapshot:
        // A leader exists in this term.
        this.becomeFollower(message.term, message.from);
        this.stepFollower(message);
        return;
      case MessageType.ReadIndex:
        this.send({ type: MessageType.ReadIndexResponse, to: message.from, context: message.context, reject: true });
        return;
      case myResponse: {
        const outcome = this.poll(message.from, !message.reject);
        if (outcome === VoteOutcome.Won) {
          if (this.role === Role.PreCandidate) this.campaign(MessageType.Vote, false);
          else {
            this.becomeLeader();
            this.broadcastAppend();
          }
        } else if (outcome === VoteOutcome.Lost) {
          this.becomeFollower(this.term, NO_NODE);
        }
        return;
      }
      default:
        return;
    }
  }

  private stepLeader(message: Message): void {
    const progress = this.progress.get(message.from);
    switch (message.type) {
      case MessageType.ReadIndex:
        this.handleReadIndexRequest(message.context, message.from);
        return;
      case MessageType.AppendResponse:
        if (progress) this.handleAppendResponse(message, progress);
        return;
      case MessageType.HeartbeatResponse:
        if (progress) this.handleHeartbeatResponse(message, progress);
        return;
      default:
        return;
    }
  }

  // ---------------------------------------------------------------------------
  // Follower handlers

  private handleAppend(message: Message): void {
    if (message.index < this.log.commit) {
      this.send({ type: MessageType.AppendResponse, to: message.from, index: this.log.commit });
      return;
    }
    const replacedFrom = this.firstReplacedIndex(message.entries);
    const lastNew = this.log.maybeAppend(message.index, message.logTerm, message.entries);
    if (lastNew !== undefined) {
      if (replacedFrom !== undefined) this.dropAcknowledgementsFrom(replacedFrom);
      this.afterLogChange();
      this.log.commitTo(Math.min(message.commit, lastNew));
      this.send({ type: MessageType.AppendResponse, to: message.from, index: lastNew });
      return;
    }
    const hintIndex = this.log.findConflictByTerm(Math.min(message.index, this.log.lastIndex()), message.logTerm);
    this.send({
      type: MessageType.AppendResponse,
      to: message.from,
      index: message.index,
      reject: true,
      rejectHintIndex: hintIndex,
      rejectHintTerm: this.log.term(hintIndex) ?? 0,
    });
  }

  /** The index of the first of `entries` whose term differs from the entry our log holds there, if any. */
  private firstReplacedIndex(entries: readonly Entry[]): number | undefined {
    const lastIndex = this.log.lastIndex();
    for (const entry of entries) {
      if (entry.index > lastIndex) return undefined;
      const term = this.log.term(entry.index);
      if (term !== undefined && term !== entry.term) return entry.index;
    }
    return undefined;
  }

  /**
   * Our entries from `index` on were just replaced: an acknowledgement of them
   * not yet handed out would leave after the write that replaces them, a
   * promise the disk no longer keeps. It is dropped (Raft tolerates a lost
   * message; the old leader probes again). Those handed out earlier leave
   * after their own writes, which hold the entries.
   */
  private dropAcknowledgementsFrom(index: number): void {
    this.messages = this.messages.filter((message) => message.type !== MessageType.AppendResponse || message.reject === true || message.index < index);
  }

  private handleHeartbeat(message: Message): void {
    // The leader caps `commit` at what it knows we match, so this never passes our log's end.
    this.log.commitTo(Math.min(message.commit, this.log.lastIndex()));
    this.send({ type: MessageType.HeartbeatResponse, to: message.from, context: message.context });
  }

  private handleSnapshot(message: Message): void {
    const snapshot = message.snapshot;
    if (!snapshot) return;
    const meta = snapshot.meta;
    if (meta.index <= this.log.commit) {
      this.send({ type: MessageType.AppendResponse, to: message.from, index: this.log.commit });
      return;
    }
    if (this.log.matchTerm(meta.index, meta.term)) {
      // We already hold the snapshot's last entry: just move the commit index.
      this.log.commitTo(meta.index);
      this.send({ type: MessageType.AppendResponse, to: message.from, index: this.log.commit });
      return;
    }
    this.trace(`restoring snapshot at ${meta.index} (term ${meta.term})`);
    this.log.restore(snapshot);
    this.config = meta.config;
    this.configIndex = meta.index;
    this.send({ type: MessageType.AppendResponse, to: message.from, index: this.log.lastIndex() });
  }

  /** Entries were appended or truncated: the newest configuration entry decides membership. */
  private afterLogChange(): void {
    const latest = this.log.configAt(this.log.lastIndex());
    if (latest.index !== this.configIndex) {
      this.config = latest.config;
      this.configIndex = latest.index;
      this.trace(`configuration now voters=[${this.config.voters}] learners=[${this.config.learners}]`);
      if (this.role === Role.Leader) this.rebuildProgress();
    }
  }

  // ---------------------------------------------------------------------------
  // Leader handlers

  private handleAppendResponse(message: Message, progress: Progress): void {
    progress.recentActive = true;
    if (message.reject) {
      let matchHint = message.rejectHintIndex;
      if (message.rejectHintTerm > 0) matchHint = this.log.findConflictByTerm(matchHint, message.rejectHintTerm);
      if (progress.maybeDecrementTo(message.index, matchHint)) {
        if (progress.state === ProgressState.Replicate) progress.becomeProbe();
        this.sendAppend(message.from, true);
      }
      return;
    }
    const wasPaused = progress.isPaused();
    if (!progress.maybeUpdate(message.index)) return;
    if (progress.state === ProgressState.Probe) progress.becomeReplicate();
    else if (progress.state === ProgressState.Snapshot && progress.match >= progress.pendingSnapshot) {
      progress.becomeProbe();
      progress.becomeReplicate();
    } else if (progress.state === ProgressState.Replicate) progress.inflights.freeLE(message.index);

    // A follower that was paused missed any commit broadcast meanwhile: tell it now.
    if (!this.maybeCommit() && wasPaused) this.sendAppend(message.from, true);
    while (this.role === Role.Leader && this.sendAppend(message.from, false)) {
      // Fill the in-flight window.
    }
    if (message.from === this.transferee && progress.match === this.log.lastIndex()) {
      this.send({ type: MessageType.TimeoutNow, to: message.from });
    }
  }

  private handleHeartbeatResponse(message: Message, progress: Progress): void {
    progress.recentActive = true;
    progress.probeSent = false;
    if (progress.state === ProgressState.Replicate && progress.inflights.full()) progress.inflights.freeFirst();
    if (progress.match < this.log.lastIndex()) this.sendAppend(message.from, true);
    if (message.context !== '') this.acknowledgeRead(message.from, message.context);
  }

  /**
   * Moves the commit index to what a quorum of voters holds, if that is an
   * entry of this term. The followers learn it from the next broadcast, which
   * is batched until the next Ready.
   */
  maybeCommit(): boolean {
    const index = quorumIndex(this.config.voters, (id) => this.progress.get(id)?.match ?? 0);
    if (index <= this.log.commit || this.log.term(index) !== this.term) return false;
    const previous = this.log.commit;
    this.log.commitTo(index);
    this.releaseUncommitted(previous, index);
    this.broadcastPending = true;
    this.afterCommit(previous);
    return true;
  }

  private releaseUncommitted(from: number, to: number): void {
    for (let index = from + 1; index <= to; index++) {
      const entry = this.log.entry(index);
      if (entry.term === this.term) this.uncommittedBytes -= entry.data.length;
    }
    if (this.uncommittedBytes < 0) this.uncommittedBytes = 0;
  }

  private afterCommit(previous: number): void {
    if (this.log.term(previous) !== this.term && this.log.term(this.log.commit) === this.term) {
      // First commit of this term: reads that waited for it can start.
      const waiting = this.readsBeforeCommit;
      this.readsBeforeCommit = [];
      for (const read of waiting) this.handleReadIndexRequest(read.context, read.from);
    }
    if (this.configIndex > previous && this.configIndex <= this.log.commit && !this.promotable()) {
      this.stepDownAfterRemoval();
    }
  }

  /** This leader's removal committed: hand over to the most caught-up voter and step down. */
  private stepDownAfterRemoval(): void {
    let best: NodeId = NO_NODE;
    let bestMatch = -1;
    for (const voter of this.config.voters) {
      const match = this.progress.get(voter)?.match ?? 0;
      if (match > bestMatch) {
        best = voter;
        bestMatch = match;
      }
    }
    this.trace(`removed from the configuration; handing over to ${best}`);
    this.broadcastAppend();
    if (best !== NO_NODE && bestMatch === this.log.lastIndex()) this.send({ type: MessageType.TimeoutNow, to: best });
    this.becomeFollower(this.term, NO_NODE);
  }

  /**
   * Sends the entries `to` lacks, or a snapshot when they are compacted.
   * Returns whether a message was sent. With `sendIfEmpty` an Append without
   * entries still goes (to carry the commit index or probe).
   */
  sendAppend(to: NodeId, sendIfEmpty: boolean): boolean {
    const progress = this.progress.get(to);
    if (!progress || to === this.id || progress.isPaused()) return false;
    const prevIndex = progress.next - 1;
    const prevTerm = this.log.term(prevIndex);
    const entries = this.log.slice(progress.next, this.options.messageBytesMax);
    if (prevTerm === undefined || entries === undefined) return this.sendSnapshot(to, progress);
    if (entries.length === 0 && !sendIfEmpty) return false;
    let bytes = 0;
    for (const entry of entries) bytes += entry.data.length;
    this.send({
      type: MessageType.Append,
      to,
      index: prevIndex,
      logTerm: prevTerm,
      entries,
      commit: this.log.commit,
    });
    progress.sentEntries(entries.length, prevIndex + entries.length, bytes);
    return true;
  }

  private sendSnapshot(to: NodeId, progress: Progress): boolean {
    if (!progress.recentActive) return false;
    const snapshot = this.log.snapshot;
    assert(snapshot !== undefined, 'entries are compacted but there is no snapshot to send');
    this.trace(`sending snapshot at ${snapshot.meta.index} to ${to}`);
    this.send({ type: MessageType.Snapshot, to, snapshot });
    progress.becomeSnapshot(snapshot.meta.index);
    return true;
  }

  broadcastAppend(): void {
    this.broadcastPending = false;
    for (const id of this.progress.keys()) {
      if (id !== this.id) this.sendAppend(id, true);
    }
  }

  private broadcastHeartbeat(context: string): void {
    for (const [id, progress] of this.progress) {
      if (id === this.id) continue;
      this.send({
        type: MessageType.Heartbeat,
        to: id,
        commit: Math.min(progress.match, this.log.commit),
        context,
      });
    }
  }

  // ---------------------------------------------------------------------------
  // Reads

  private handleReadIndexRequest(context: string, from: NodeId): void {
    if (this.log.term(this.log.commit) !== this.term) {
      if (this.readsBeforeCommit.length >= this.options.pendingReadsMax) {
        this.answerRead(from, context, 0, true);
        return;
      }
      this.readsBeforeCommit.push({ context, from });
      return;
    }
    if (this.config.voters.length === 1 && this.promotable()) {
      this.answerRead(from, context, this.log.commit, false);
      return;
    }
    if (this.pendingReads.length >= this.options.pendingReadsMax) {
      this.answerRead(from, context, 0, true);
      return;
    }
    this.pendingReads.push({ context, index: this.log.commit, from, acks: new Set([this.id]) });
    this.broadcastHeartbeat(context);
  }

  private acknowledgeRead(from: NodeId, context: string): void {
    const position = this.pendingReads.findIndex((read) => read.context === context);
    if (position < 0) return;
    const read = this.pendingReads[position]!;
    read.acks.add(from);
    let acked = 0;
    for (const voter of this.config.voters) if (read.acks.has(voter)) acked++;
    if (acked < quorumSize(this.config.voters.length)) return;
    // The quorum confirmed leadership as of this round, and so for every earlier one.
    const released = this.pendingReads.splice(0, position + 1);
    for (const done of released) this.answerRead(done.from, done.context, done.index, false);
  }

  private answerRead(from: NodeId, context: string, index: number, refused: boolean): void {
    if (from === this.id) this.readStates.push({ index, context, refused });
    else this.send({ type: MessageType.ReadIndexResponse, to: from, index, context, reject: refused });
  }

  // ---------------------------------------------------------------------------
  // Local requests

  propose(data: Uint8Array): Result<{ index: number; term: number }> {
    if (this.role !== Role.Leader) return { ok: false, refusal: { code: 'not-leader', leader: this.leader } };
    if (this.transferee !== NO_NODE) {
      return { ok: false, refusal: { code: 'transfer-in-progress', leader: this.transferee } };
    }
    const bytes = data.length;
    if (bytes > this.options.entryBytesMax) {
      return { ok: false, refusal: { code: 'entry-too-large', bytes, maxBytes: this.options.entryBytesMax } };
    }
    if (this.uncommittedBytes > 0 && this.uncommittedBytes + bytes > this.options.uncommittedBytesMax) {
      return {
        ok: false,
        refusal: { code: 'uncommitted-limit', bytes: this.uncommittedBytes, maxBytes: this.options.uncommittedBytesMax },
      };
    }
    const index = this.log.lastIndex() + 1;
    this.appendEntries([{ term: this.term, index, type: EntryType.Normal, data }]);
    this.uncommittedBytes += bytes;
    return { ok: true, value: { index, term: this.term } };
  }

  proposeConfigChange(change: ConfigChange): Result<{ index: number; term: number }> {
    if (this.role !== Role.Leader) return { ok: false, refusal: { code: 'not-leader', leader: this.leader } };
    if (this.transferee !== NO_NODE) {
      return { ok: false, refusal: { code: 'transfer-in-progress', leader: this.transferee } };
    }
    if (this.configIndex > this.log.commit) {
      return { ok: false, refusal: { code: 'config-change-pending', index: this.configIndex } };
    }
    if (this.log.term(this.log.commit) !== this.term) return { ok: false, refusal: { code: 'no-commit-in-term' } };
    const next = applyChange(this.config, change);
    if (!next.ok) return next;
    const index = this.log.lastIndex() + 1;
    this.appendEntries([{ term: this.term, index, type: EntryType.Config, data: EMPTY, config: next.value }]);
    return { ok: true, value: { index, term: this.term } };
  }

  readIndex(context: string): Result<void> {
    const max = this.options.pendingReadsMax;
    if (this.role === Role.Leader) {
      const queued = this.log.term(this.log.commit) !== this.term ? this.readsBeforeCommit : this.pendingReads;
      if (queued.length >= max) return { ok: false, refusal: { code: 'read-queue-full', max } };
      this.handleReadIndexRequest(context, this.id);
      return { ok: true, value: undefined };
    }
    if (this.leader === NO_NODE || this.role !== Role.Follower) {
      return { ok: false, refusal: { code: 'not-leader', leader: NO_NODE } };
    }
    if (this.forwardedReads.length >= max) return { ok: false, refusal: { code: 'read-queue-full', max } };
    this.forwardedReads.push({ context, sentTick: this.ticks });
    this.send({ type: MessageType.ReadIndex, to: this.leader, context });
    return { ok: true, value: undefined };
  }

  transferLeadership(to: NodeId): Result<void> {
    if (this.role !== Role.Leader) return { ok: false, refusal: { code: 'not-leader', leader: this.leader } };
    if (to === this.id) return { ok: true, value: undefined };
    if (!isVoter(this.config, to)) {
      return { ok: false, refusal: { code: 'invalid-config-change', reason: `${to} is not a voter` } };
    }
    if (this.transferee === to) return { ok: true, value: undefined };
    this.transferee = to;
    // The transfer must finish within one election timeout or it is abandoned.
    this.electionElapsed = 0;
    this.trace(`transferring leadership to ${to}`);
    const progress = this.progress.get(to)!;
    if (progress.match === this.log.lastIndex()) this.send({ type: MessageType.TimeoutNow, to });
    else this.sendAppend(to, true);
    return { ok: true, value: undefined };
  }

  /** Leader: appends its own entries; they count toward a quorum once durable (`stableTo`). */
  private appendEntries(entries: Entry[]): void {
    this.log.append(entries);
    for (const entry of entries) {
      if (entry.type === EntryType.Config) {
        this.config = entry.config!;
        this.configIndex = entry.index;
        this.rebuildProgress();
        this.trace(`configuration now voters=[${this.config.voters}] learners=[${this.config.learners}]`);
      }
    }
    this.broadcastPending = true;
  }

  /**
   * The driver made entries up to (`index`, `term`) durable; the leader counts
   * its own copy now. Ignored when the log no longer holds that entry.
   */
  stableTo(index: number, term: number): void {
    this.log.stableTo(index, term);
    if (this.role !== Role.Leader) return;
    const self = this.progress.get(this.id);
    if (self && self.maybeUpdate(this.log.stableIndex)) this.maybeCommit();
  }

  reportUnreachable(id: NodeId): void {
    const progress = this.progress.get(id);
    if (this.role === Role.Leader && progress?.state === ProgressState.Replicate) progress.becomeProbe();
  }

  reportSnapshot(id: NodeId, ok: boolean): void {
    const progress = this.progress.get(id);
    if (this.role !== Role.Leader || progress?.state !== ProgressState.Snapshot) return;
    if (!ok) progress.pendingSnapshot = 0;
    // Wait for the follower's answer before sending more (probe, one message at a time).
    progress.becomeProbe();
    progress.probeSent = true;
  }

  /** The application captured its state as of `snapshot.meta.index`; drop the entries it covers. */
  compact(snapshot: Snapshot): void {
    this.log.compact(snapshot);
  }

  /** The configuration at `index`, for building snapshot metadata. */
  configAt(index: number): ClusterConfig {
    return this.log.configAt(index).config;
  }

  status(): Status {
    const status: Status = {
      id: this.id,
      term: this.term,
      vote: this.vote,
      commit: this.log.commit,
      applied: this.log.applied,
      lastIndex: this.log.lastIndex(),
      firstIndex: this.log.firstIndex(),
      role: this.role,
      leader: this.leader,
      config: this.config,
      transferee: this.transferee,
      silentTicks: this.role === Role.Leader ? 0 : this.electionElapsed,
    };
    if (this.role === Role.Leader) {
      status.progress = {};
      for (const [id, progress] of this.progress) status.progress[id] = progress.status();
    }
    return status;
  }

  // ---------------------------------------------------------------------------
  // Sending

  private send(fields: Partial<Message> & { type: MessageType; to: NodeId }): void {
    const message: Message = {
      type: fields.type,
      from: this.id,
      to: fields.to,
      term: fields.term ?? this.term,
      index: fields.index ?? 0,
      logTerm: fields.logTerm ?? 0,
      entries: fields.entries ?? NO_ENTRIES,
      commit: fields.commit ?? 0,
      reject: fields.reject ?? false,
      rejectHintIndex: fields.rejectHintIndex ?? 0,
      rejectHintTerm: fields.rejectHintTerm ?? 0,
      context: fields.context ?? '',
      transfer: fields.transfer ?? false,
    };
    if (fields.snapshot) message.snapshot = fields.snapshot;
    if (this.role === Role.Leader && EARLY_TYPES.has(message.type)) this.messagesEarly.push(message);
    // A heartbeat answer promises nothing about this node's log (it carries no index), so it
    // need not wait for this node's writes: a follower busy writing a large snapshot still
    // answers, and the leader's check-quorum does not depose a healthy leader. RawNode still
    // holds it back while this node's term or vote is not durable.
    else if (message.type === MessageType.HeartbeatResponse) this.messagesEarly.push(message);
    else this.messages.push(message);
  }
}

const EMPTY = new Uint8Array(0);
const NO_ENTRIES: Entry[] = [];
