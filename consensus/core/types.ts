/**
 * The data types of the Raft core: log entries, persistent state, snapshots,
 * messages and the Ready batch.
 *
 * Everything here is plain data: it crosses the storage and transport
 * boundaries, where it is encoded with msgpackr, and the simulator copies it
 * freely. Nothing here may hold a function, a class instance or a Node type.
 */

/** A node's identity: stable across restarts, unique in a cluster. */
export type NodeId = string;

/** No node: used as `vote` when a node has not voted in its term. */
export const NO_NODE: NodeId = '';

/** The kinds of log entry. */
export const enum EntryType {
  /** Application data, opaque to Raft. An empty `data` is the leader's no-op. */
  Normal = 0,
  /** A membership change: `config` holds the whole configuration it installs. */
  Config = 1,
}

/** The voters and learners of a cluster. Both lists are sorted and disjoint. */
export interface ClusterConfig {
  voters: NodeId[];
  learners: NodeId[];
}

/** One entry of the replicated log. `index` starts at 1 and has no gaps. */
export interface Entry {
  term: number;
  index: number;
  type: EntryType;
  /** Application payload; empty for configuration entries and no-ops. */
  data: Uint8Array;
  /** Present exactly when `type === EntryType.Config`. */
  config?: ClusterConfig;
}

/**
 * The state a node must have on disk before it answers any message that
 * depends on it: the current term, the vote in that term, and the commit index.
 */
export interface HardState {
  term: number;
  vote: NodeId;
  commit: number;
}

/** Which entries a snapshot replaces, and the configuration in force at its index. */
export interface SnapshotMeta {
  index: number;
  term: number;
  config: ClusterConfig;
}

/** An application snapshot: the state machine as of `meta.index`. */
export interface Snapshot {
  meta: SnapshotMeta;
  /** The state's bytes; empty when `dataInStorage`. The core never reads them. */
  data: Uint8Array;
  /**
   * The bytes are not here but in the driver's storage, which reads them
   * back to send them (`RawNode.snapshotDataInStorage`): a log need not hold
   * its newest snapshot in memory for the rare follower that falls behind it.
   */
  dataInStorage?: boolean;
}

/** The wire message kinds between Raft peers. */
export const enum MessageType {
  /** A candidate asks for a vote in `term`. */
  Vote = 1,
  VoteResponse = 2,
  /** A pre-candidate asks whether it could win `term` (nobody changes state). */
  PreVote = 3,
  PreVoteResponse = 4,
  /** The leader appends `entries` after (`index`, `logTerm`) and carries its commit index. */
  Append = 5,
  AppendResponse = 6,
  /** The leader's heartbeat; `context` carries a pending ReadIndex round. */
  Heartbeat = 7,
  HeartbeatResponse = 8,
  /** The leader ships a whole snapshot (the transport streams it in chunks). */
  Snapshot = 9,
  /** A follower asks the leader for a read index; `context` names the request. */
  ReadIndex = 10,
  ReadIndexResponse = 11,
  /** The leader tells a caught-up follower to start an election at once (leadership transfer). */
  TimeoutNow = 12,
}

/**
 * One Raft message. A flat record keeps encoding cheap; which fields are
 * meaningful depends on `type` (see the comments on each field).
 */
export interface Message {
  type: MessageType;
  from: NodeId;
  to: NodeId;
  /** The sender's term (for PreVote: the term it would campaign in). */
  term: number;
  /**
   * Append: the index just before `entries`. AppendResponse: on success the
   * highest index now matching the leader; on rejection the rejected index.
   * Vote/PreVote: the candidate's last log index. ReadIndexResponse: the read index.
   */
  index: number;
  /** Append: term of the entry at `index`. Vote/PreVote: the candidate's last log term. */
  logTerm: number;
  /** Append: the entries to append, in order, starting at `index + 1`. */
  entries: Entry[];
  /** Append and Heartbeat: the leader's commit index (capped to what the follower has). */
  commit: number;
  /** Responses: true when the request was refused. */
  reject: boolean;
  /**
   * AppendResponse on rejection: the follower's hint for fast backtracking.
   * The follower's log holds an entry at `rejectHintIndex` whose term is `rejectHintTerm`
   * (or is empty there when the term is 0), and nothing after it matches.
   */
  rejectHintIndex: number;
  rejectHintTerm: number;
  /** Heartbeat(+Response), ReadIndex(+Response): the ReadIndex round this belongs to. */
  context: string;
  /** Vote/PreVote: true when caused by a leadership transfer (overrides the leader lease). */
  transfer: boolean;
  /** Snapshot: the snapshot being installed. */
  snapshot?: Snapshot;
}

/** The role a node plays in its current term. */
export const enum Role {
  Follower = 'follower',
  PreCandidate = 'pre-candidate',
  Candidate = 'candidate',
  Leader = 'leader',
}

/** The volatile state the application may want to observe. */
export interface SoftState {
  leader: NodeId;
  role: Role;
}

/** A completed ReadIndex round: once `applied >= index`, a read named `context` may be served. */
export interface ReadState {
  index: number;
  context: string;
  /** The read cannot be served (leadership changed or a queue was full); retry it. */
  refused?: boolean;
}

/**
 * Work the core hands to its driver. `RawNode.ready()` marks it handed out;
 * the driver may take further Readys before this one is written. For each:
 *
 * 1. Send `messagesEarly` at once; they do not depend on any write.
 * 2. Persist `snapshot` (if any), then `entries` (if any; an entry at index i
 *    replaces every stored entry at index >= i), then `hardState` (if any), as
 *    one atomic write, synced to disk when `mustSync` is true. Writes of
 *    successive Readys complete in the order handed out (they may be merged
 *    into one batch); then call `RawNode.persisted(ready)`.
 * 3. Only after that write, and every earlier one, is durable, send `messages`.
 * 4. Apply `committedEntries` in order and call `RawNode.applied(ready)`.
 *    They are committed, so already on a quorum's disks: they may be applied
 *    before this node's own writes complete. A Ready with a `snapshot` is
 *    handled alone: every earlier write completes, then its write, then the
 *    state machine is restored from it, then `advance(ready)`.
 * 5. Serve reads in `readStates` once the applied index reaches their index.
 */
export interface Ready {
  softState?: SoftState;
  hardState?: HardState;
  entries: Entry[];
  snapshot?: Snapshot;
  /** Messages that do not depend on this Ready's write (the leader's appends). */
  messagesEarly: Message[];
  /** Messages that must wait until this Ready's write, and every earlier one, is durable (votes, acks). */
  messages: Message[];
  committedEntries: Entry[];
  readStates: ReadState[];
  mustSync: boolean;
}

/** Why the core refused a proposal, a read or a change. All are expected outcomes. */
export type Refusal =
  | { code: 'not-leader'; leader: NodeId }
  | { code: 'transfer-in-progress'; leader: NodeId }
  | { code: 'entry-too-large'; bytes: number; maxBytes: number }
  | { code: 'uncommitted-limit'; bytes: number; maxBytes: number }
  | { code: 'config-change-pending'; index: number }
  | { code: 'no-commit-in-term' }
  /** `noChange`: the configuration already is what the change asks for (a learner added again, a non-member removed). */
  | { code: 'invalid-config-change'; reason: string; noChange?: boolean }
  | { code: 'read-queue-full'; max: number };

/** The result of an operation that the core may refuse. */
export type Result<T> = { ok: true; value: T } | { ok: false; refusal: Refusal };

/** A membership change: the core accepts at most one voter added or removed at a time. */
export type ConfigChange =
  | { type: 'add-learner'; node: NodeId }
  | { type: 'add-voter'; node: NodeId }
  | { type: 'remove'; node: NodeId };

/** How the leader sends to one follower. */
export const enum ProgressState {
  /** Unknown match: one Append at a time, waiting for an answer. */
  Probe = 'probe',
  /** Known match: Appends pipelined up to the in-flight window. */
  Replicate = 'replicate',
  /** A snapshot is on its way; wait for the outcome. */
  Snapshot = 'snapshot',
}

/** The leader's view of one follower, reported by `status()`. */
export interface ProgressStatus {
  match: number;
  next: number;
  state: ProgressState;
  inflightMessages: number;
  inflightBytes: number;
  recentActive: boolean;
  learner: boolean;
}

/** A read-only summary of a node, for metrics and for deciding promotions. */
export interface Status {
  id: NodeId;
  term: number;
  vote: NodeId;
  commit: number;
  applied: number;
  lastIndex: number;
  firstIndex: number;
  role: Role;
  leader: NodeId;
  config: ClusterConfig;
  /** Present on the leader only. */
  progress?: Record<NodeId, ProgressStatus>;
  transferee: NodeId;
  /**
   * Ticks since this node last heard from a leader (or granted a vote); 0 on
   * the leader. A learner never campaigns, so this is how it can tell that
   * the leader stopped talking to it (it was removed without hearing so).
   */
  silentTicks: number;
}

/** A seeded source of randomness, injected so that a run replays exactly. */
export interface Random {
  /** A whole number in [0, n). */
  below(n: number): number;
}

/** The limits and timings of one node. Every limit has a tested path for reaching it. */
export interface RaftOptions {
  id: NodeId;
  /** Ticks without a leader's word before a follower campaigns; randomized in [t, 2t). */
  electionTimeoutTicks: number;
  /** Ticks between heartbeats from the leader; must be below the election timeout. */
  heartbeatIntervalTicks: number;
  /** Largest total entry bytes in one Append message (at least one entry is always sent). */
  messageBytesMax: number;
  /** Largest number of Append messages in flight to one follower. */
  inflightMessagesMax: number;
  /** Largest number of entry bytes in flight to one follower. */
  inflightBytesMax: number;
  /** Largest total bytes of proposed but uncommitted entries on the leader. */
  uncommittedBytesMax: number;
  /** Largest single entry a proposal may carry. */
  entryBytesMax: number;
  /** Largest number of ReadIndex requests waiting for a leader's first commit. */
  pendingReadsMax: number;
  /** Use the pre-vote phase before real elections. */
  preVote: boolean;
  /** Leaders step down without a quorum; voters keep a leader lease. */
  checkQuorum: boolean;
  random: Random;
  /** Highest index the application has applied (on restart, at least the snapshot index). */
  applied: number;
  /** Receives one line per notable event; the simulator records it in its trace. */
  logger?: (line: string) => void;
}

/** The default limits: etcd's defaults scaled for Hivemind's command sizes. */
export const DEFAULT_OPTIONS = {
  electionTimeoutTicks: 10,
  heartbeatIntervalTicks: 1,
  messageBytesMax: 1024 * 1024,
  inflightMessagesMax: 256,
  inflightBytesMax: 32 * 1024 * 1024,
  uncommittedBytesMax: 64 * 1024 * 1024,
  entryBytesMax: 1024 * 1024,
  pendingReadsMax: 4096,
  preVote: true,
  checkQuorum: true,
} as const;
