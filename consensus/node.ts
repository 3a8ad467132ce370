/**
 * The driver: one Raft node made of a `RawNode`, its `RaftStorage`, a
 * `Transport` and the application's `StateMachine`, with the event loop,
 * the clock, proposal and read bookkeeping, and log compaction.
 *
 * Everything that reaches the node (peer messages, ticks, proposals, reads,
 * membership changes) waits in a bounded inbox and is stepped into the
 * `RawNode` by the loop. Storage writes are asynchronous (after etcd-io/raft's
 * asynchronous storage writes): the loop hands each Ready's write to a writer
 * and goes on stepping messages and taking Readys while it is being synced.
 * The writer runs one `persist` at a time; every Ready handed to it meanwhile
 * is merged into the next batch (group commit across Readys). When a batch is
 * durable the writer sends the `messages` of its Readys (acks, votes) and
 * reports them `persisted`, in order; only then does a leader count its own
 * copy of their entries. A Ready holding a snapshot is the exception: the
 * loop waits for the writer to drain, then handles it in full.
 * See docs/internals/raft.md for why this is safe.
 *
 * The driver never reads the clock: ticks, request time limits, the
 * loop's turns and how long one turn may work go through the injected
 * `Timers` (the wall clock by default), so that the simulator runs this very
 * driver on virtual time. A turn applies entries for at most
 * `LOOP_TURN_MS_MAX`, then lets timers and I/O in: heartbeats and votes do
 * not wait behind a backlog of applies.
 */
import { randomInt, randomUUID } from 'node:crypto';
import { assert } from './core/assert.js';
import { RawNode, bootstrapState } from './core/raw-node.js';
import { SeededRandom } from './core/random.js';
import { leadsAlone } from './core/config.js';
import { DEFAULT_OPTIONS, EntryType, MessageType } from './core/types.js';
import type {
  ClusterConfig,
  ConfigChange,
  Entry,
  HardState,
  Message,
  NodeId,
  RaftOptions,
  ReadState,
  Ready,
  Snapshot,
  SoftState,
  Status,
} from './core/types.js';
import {
  AbortedError,
  OutcomeUnknownError,
  OverloadedError,
  ProposalLostError,
  ReadRefusedError,
  StoppedError,
  TimeoutError,
  refusalError,
} from './errors.js';
import { joinSnapshotParts, type PersistedState, type RaftStorage, type SnapshotPieces, type StorageWrite } from './storage.js';
import { systemTimers, type TimerHandle, type Timers } from './timers.js';
import type { Transport, TransportHandlers } from './transport.js';

/**
 * The replicated application. Every method runs on the driver's loop, one at
 * a time, and must be deterministic (no clock, randomness, disk or network):
 * every node applies the same entries in the same order and must reach the
 * same state. A method that throws stops the node, like a storage error.
 */
export interface StateMachine {
  /**
   * Applies one committed Normal entry with non-empty `data`, in log order
   * (configuration entries and the leaders' empty no-ops never come here).
   * The return value is handed to the proposer of the entry, if it proposed
   * it through this node.
   */
  apply(entry: Entry): unknown;
  /** The whole state as of the last applied entry. The node owns the returned bytes. */
  snapshot(): Uint8Array;
  /**
   * Optional: the whole state as of the last applied entry, as `snapshot()`
   * would return it now, but encoded in the background (the only method that
   * may use the event loop). `apply` may run before the promise settles and
   * must not change what it resolves with. At most one runs at a time; a
   * `restore` meanwhile may make its result stale, which the node discards.
   * It may resolve with the snapshot in pieces (their concatenation, in
   * order, is the snapshot), which the node owns and stores as they are when
   * its storage reads snapshots back (`RaftStorage.readSnapshotData`): a
   * joined copy of a large state is as large again, and the allocator keeps
   * much of what such copies used after they are freed.
   */
  snapshotInBackground?(): Promise<Uint8Array | readonly Uint8Array[]>;
  /**
   * Optional, and preferred to `snapshotInBackground` when the storage reads
   * snapshots back: the whole state as of the last applied entry, captured
   * at the call, as a stream whose pieces are encoded only as they are read.
   * The node hands it to the storage, which stores each piece before it
   * reads the next, so the snapshot is never whole in memory (a member of a
   * large state kept most of a snapshot's size in RSS after each one, the
   * allocator holding what the pieces had used). `apply` may run while it
   * is read and must not change what it yields. The node reads it from its
   * writer, where no `restore` can run until it is stored, or closes it
   * unread when it is stale; at most one is open at a time.
   */
  snapshotStream?(): SnapshotStream;
  /** Replaces the whole state with one `snapshot()` produced (here or on another node). */
  restore(data: Uint8Array): void;
}

/** A snapshot's pieces as `StateMachine.snapshotStream` yields them, in order; `close` ends it early (idempotent). */
export interface SnapshotStream extends AsyncIterable<Uint8Array> {
  close(): Promise<void>;
}

/** The Raft settings a node may override; identity, randomness and applied index belong to the driver. */
export type RaftOverrides = Partial<Omit<RaftOptions, 'id' | 'random' | 'applied' | 'logger'>>;

/** How to build a `RaftNode`. */
export interface RaftNodeOptions {
  id: NodeId;
  /** Owned by the node from `start()` on; `stop()` closes it. */
  storage: RaftStorage;
  /** Owned by the node from `start()` on; `stop()` stops it. */
  transport: Transport;
  stateMachine: StateMachine;
  /** Peer addresses (`host:port`) by node id; this node's own entry is ignored. See `setPeers`. */
  peers?: Record<NodeId, string>;
  /** Length of one Raft tick on `timers` (wall-clock milliseconds in production). Default 50 ms. */
  tickMs?: number;
  /** Overrides of `DEFAULT_OPTIONS`. */
  raft?: RaftOverrides;
  /** Seed of the election-timeout generator. Default: a random one. */
  seed?: number;
  /**
   * Snapshot and compact the log about every this many applied entries. Default 10 000.
   * Members take turns: each snapshots at multiples of it shifted by its place among the
   * voters (see `snapshotDue`).
   */
  snapshotEveryEntries?: number;
  /** Time limit of a request that gives none. Default 10 000 ms. */
  requestTimeoutMs?: number;
  /** Largest number of items waiting in the inbox. Default 65 536. */
  inboxMax?: number;
  /** Receives one line per notable event (role changes, snapshots, failures). */
  logger?: (line: string) => void;
  /**
   * Called once if the node stops itself after a fatal error (storage, state
   * machine, broken invariant). The node is then stopped; the process should
   * exit and be restarted from disk.
   */
  onFatal?: (error: Error) => void;
  /** The ticks, request time limits and loop turns run on these. Default: `systemTimers` (the wall clock). */
  timers?: Timers;
  /**
   * Prefix of this start's ReadIndex contexts: must differ from every earlier
   * start of this node (a context must never match an answer meant for an
   * earlier life). Default: a random UUID. The simulator sets one from its seed.
   */
  readContextPrefix?: string;
  /** Hooks for the simulator's checkers; never set in production. */
  inspector?: RaftInspector;
}

/**
 * What the simulator's checkers see of a node as it runs. Each hook runs on
 * the loop, synchronously, and must neither throw nor call into the node.
 */
export interface RaftInspector {
  /** A Ready was just taken from the core, before any of it is handled. */
  readyTaken(ready: Ready, raw: RawNode): void;
  /**
   * An entry reaches the state machine, before `apply` and before its
   * proposer hears: every entry, configuration entries and no-ops included.
   */
  entryApplied(entry: Entry, raw: RawNode): void;
}

/** Per-request limits. */
export interface RequestOptions {
  signal?: AbortSignal;
  /** Default: the node's `requestTimeoutMs`. */
  timeoutMs?: number;
}

/** An applied proposal: where it is in the log, and what `StateMachine.apply` returned. */
export interface Proposed {
  index: number;
  term: number;
  result: unknown;
}

/** Where a membership change sits in the log; it is committed when the promise resolves. */
export interface Committed {
  index: number;
  term: number;
}

const TICK_MS_DEFAULT = 50;
const SNAPSHOT_EVERY_ENTRIES_DEFAULT = 10_000;
const REQUEST_TIMEOUT_MS_DEFAULT = 10_000;
const INBOX_MAX_DEFAULT = 65_536;
/** Readys waiting for the writer; past this the loop takes no new Ready until a write completes. */
const WRITE_QUEUE_READYS_MAX = 1024;
/**
 * Longest the loop works before it lets timers and I/O in (a turn of the
 * event loop), measured on `Timers.nowMs`: ticks (a leader's heartbeats)
 * and peer messages (votes) wait at most this long behind applying entries.
 */
const LOOP_TURN_MS_MAX = 10;
/** Without `Timers.nowMs`: entries applied before the loop lets timers and I/O in. */
const LOOP_TURN_ENTRIES_MAX = 1024;

type Lifecycle = 'new' | 'starting' | 'running' | 'stopping' | 'stopped';

/** What the driver needs of any request to settle it by refusal or stop. */
interface Rejectable {
  readonly settled: boolean;
  reject(error: Error): void;
}

/**
 * A request in flight: settles once, by result, refusal, time limit, abort
 * or stop. `release` drops it from whatever table holds it.
 */
class PendingRequest<T> implements Rejectable {
  readonly promise: Promise<T>;
  settled = false;
  /** Set by whichever table holds the request; called once when it settles. */
  release: () => void = () => {};
  private resolvePromise: (value: T) => void = () => {};
  private rejectPromise: (error: Error) => void = () => {};
  private readonly timer: TimerHandle;
  private readonly signal: AbortSignal | undefined;
  private readonly onSettled: () => void;
  private readonly onAbort: () => void;

  constructor(
    what: string,
    options: { timers: Timers; timeoutMs: number; signal: AbortSignal | undefined; timeoutHint: string; onSettled: () => void },
  ) {
    this.promise = new Promise<T>((resolve, reject) => {
      this.resolvePromise = resolve;
      this.rejectPromise = reject;
    });
    const { timeoutMs, timeoutHint } = options;
    this.onSettled = options.onSettled;
    this.timer = options.timers.setTimeout(
      () => this.reject(new TimeoutError(`${what} did not finish within ${timeoutMs} ms${timeoutHint}`)),
      timeoutMs,
    );
    this.onAbort = () => this.reject(new AbortedError(`${what} was aborted by the caller${timeoutHint}`));
    this.signal = options.signal;
    this.signal?.addEventListener('abort', this.onAbort, { once: true });
  }

  /** Rejects at once if the signal fired before the request was made (no 'abort' event follows then). */
  checkAborted(): void {
    if (this.signal?.aborted) this.onAbort();
  }

  resolve(value: T): void {
    if (this.settle()) this.resolvePromise(value);
  }

  reject(error: Error): void {
    if (this.settle()) this.rejectPromise(error);
  }

  /** Marks the request settled and drops every reference to it; false if it already was. */
  private settle(): boolean {
    if (this.settled) return false;
    this.settled = true;
    this.timer.cancel();
    this.signal?.removeEventListener('abort', this.onAbort);
    this.release();
    this.onSettled();
    return true;
  }
}

/** A proposal (or membership change) this node appended, waiting for its entry to apply. */
interface ProposalWaiter {
  term: number;
  pending: PendingRequest<Proposed>;
}

/**
 * One Raft node with its event loop. Lifecycle: `start()` once, then any of
 * the requests, then `stop()`. Requests never throw; they reject with the
 * `RaftError`s of `./errors.js`. Callers may issue requests concurrently.
 */
export class RaftNode {
  readonly id: NodeId;
  private readonly storage: RaftStorage;
  private readonly transport: Transport;
  private readonly stateMachine: StateMachine;
  private readonly tickMs: number;
  private readonly raftOverrides: RaftOverrides;
  private readonly seed: number;
  private readonly snapshotEveryEntries: number;
  private readonly requestTimeoutMs: number;
  private readonly inboxMax: number;
  private readonly logger: (line: string) => void;
  private readonly onFatal: ((error: Error) => void) | undefined;
  private readonly timers: Timers;
  private readonly inspector: RaftInspector | undefined;

  private lifecycle: Lifecycle = 'new';
  private startPromise: Promise<void> | undefined;
  private stopPromise: Promise<void> | undefined;
  private raw: RawNode | undefined;
  private peers: Record<NodeId, string>;
  private tickTimer: TimerHandle | undefined;

  /** Items stepped into the RawNode at the next turn of the loop; at most `inboxMax`. */
  private inbox: (() => void)[] = [];
  /** Ticks owed to the RawNode; capped below one election timeout (see `startUp`). */
  private ticksPending = 0;
  private ticksPendingMax = 0;
  private inboxDropped = 0;
  /** True from the moment a loop turn is scheduled until the loop has nothing left to do. */
  private loopActive = false;
  private loopIdleWaiters: (() => void)[] = [];
  /**
   * Readys handed out and not yet persisted by the writer, in order (the one
   * being written excluded), and log compactions, each run after the Readys
   * queued before it.
   */
  private writeQueue: (Ready | LogCompaction)[] = [];
  /** True while the writer runs a batch. */
  private writerActive = false;
  /** Set while the writer waits for a snapshot's next piece with nothing else to write: wakes it for a new write. */
  private writerWake: (() => void) | undefined;
  /**
   * The hard state of a Ready that moved only the commit index and was not
   * written (see `handleReady`); it goes to disk with the next write, unless
   * that write holds a later hard state. Never holds a term or vote not on disk.
   */
  private unwrittenHardState: HardState | undefined;
  private writerIdleWaiters: (() => void)[] = [];

  /**
   * Readys whose committed entries are not all applied yet, oldest first;
   * `next` is the first entry of the first Ready still to apply. Each is
   * reported applied to the core once its last entry is.
   */
  private applyQueue: { ready: Ready; next: number }[] = [];
  /** When the loop's turn began (`Timers.nowMs`), and the entries applied in it. */
  private turnStartMs = 0;
  private turnEntries = 0;
  /** Index and term of the last entry handed to the state machine (or of the snapshot it restored). */
  private applied = 0;
  private appliedTerm = 0;
  /** Highest applied term for which overtaken proposals were already rejected. */
  private overtakenCheckedTerm = 0;
  private snapshotIndex = 0;
  /** From a due snapshot's start (`maybeSnapshot`) until its log compaction is done or dropped. */
  private snapshotInProgress = false;
  private cachedStatus: Status | undefined;

  /** Every request not yet settled, so that a stop can reject them all. */
  private readonly requests = new Set<Rejectable>();
  private readonly proposals = new Map<number, ProposalWaiter>();
  /** Reads that arrived in this turn of the loop: they share one ReadIndex round (see `startReadRound`). */
  private readsUnstarted: PendingRequest<number>[] = [];
  /** Reads by the ReadIndex round they wait for. */
  private readonly readsByContext = new Map<string, PendingRequest<number>[]>();
  /** Reads whose index is known, waiting for `applied` to reach it. */
  private readsWaitingApply: { index: number; pending: PendingRequest<number> }[] = [];
  private transfers: { to: NodeId; pending: PendingRequest<void> }[] = [];
  /** Unique per process start: a context must never match a ReadIndex answer meant for an earlier life. */
  private readonly readContextPrefix: string;
  private readCounter = 0;

  constructor(options: RaftNodeOptions) {
    assert(options.id !== '', 'RaftNode: the node id must not be empty');
    this.id = options.id;
    this.storage = options.storage;
    this.transport = options.transport;
    this.stateMachine = options.stateMachine;
    this.peers = { ...(options.peers ?? {}) };
    this.tickMs = options.tickMs ?? TICK_MS_DEFAULT;
    this.raftOverrides = options.raft ?? {};
    this.seed = options.seed ?? randomInt(0, 2 ** 32);
    this.snapshotEveryEntries = options.snapshotEveryEntries ?? SNAPSHOT_EVERY_ENTRIES_DEFAULT;
    this.requestTimeoutMs = options.requestTimeoutMs ?? REQUEST_TIMEOUT_MS_DEFAULT;
    this.inboxMax = options.inboxMax ?? INBOX_MAX_DEFAULT;
    this.logger = options.logger ?? (() => {});
    this.onFatal = options.onFatal;
    this.timers = options.timers ?? systemTimers;
    this.inspector = options.inspector;
    this.readContextPrefix = options.readContextPrefix ?? randomUUID();
    assert(this.tickMs > 0, `RaftNode: tickMs must be positive, not ${this.tickMs}`);
    assert(this.snapshotEveryEntries > 0, 'RaftNode: snapshotEveryEntries must be positive');
    assert(this.inboxMax > 0, 'RaftNode: inboxMax must be positive');
  }

  // ---------------------------------------------------------------------------
  // Lifecycle

  /**
   * Loads the storage and starts the node. With `bootstrap`, a node whose
   * storage is empty first persists the founding state of a new cluster with
   * those members; a node with data ignores `bootstrap` (its disk wins). A node
   * with empty storage and no `bootstrap` waits to be added by a leader.
   * Rejects (and leaves the node stopped) on a storage or transport error.
   */
  start(init: { bootstrap?: ClusterConfig } = {}): Promise<void> {
    assert(this.lifecycle === 'new', `RaftNode ${this.id}: start() called twice`);
    this.lifecycle = 'starting';
    this.startPromise = this.startUp(init.bootstrap).catch(async (error: unknown) => {
      this.lifecycle = 'stopped';
      await this.closeQuietly();
      throw error;
    });
    return this.startPromise;
  }

  private async startUp(bootstrap: ClusterConfig | undefined): Promise<void> {
    let persisted: PersistedState = await this.storage.load();
    const empty = persisted.hardState.term === 0 && persisted.entries.length === 0 && persisted.snapshot === undefined;
    if (empty && bootstrap) {
      const founding = bootstrapState(bootstrap);
      await this.storage.persist({ hardState: founding.hardState, entries: founding.entries }, true);
      persisted = founding;
      this.logger(`${this.id}: bootstrapped a new cluster, voters=[${bootstrap.voters}] learners=[${bootstrap.learners}]`);
    } else if (!empty && bootstrap) {
      this.logger(`${this.id}: storage holds data (term ${persisted.hardState.term}): starting from it, not bootstrapping`);
    }
    const snapshot = persisted.snapshot;
    if (snapshot) {
      this.stateMachine.restore(snapshot.data);
      this.applied = snapshot.meta.index;
      this.appliedTerm = snapshot.meta.term;
      this.snapshotIndex = snapshot.meta.index;
    }
    const options: RaftOptions = {
      ...DEFAULT_OPTIONS,
      ...this.raftOverrides,
      id: this.id,
      random: new SeededRandom(this.seed),
      applied: this.applied,
      logger: (line) => this.logger(line),
    };
    // Below one election timeout: a backlog of ticks after a stall must not, by itself, start an election.
    this.ticksPendingMax = Math.max(1, options.electionTimeoutTicks - 1);
    this.raw = new RawNode(options, persisted);
    // Restored: the storage holds the bytes, to read back for a follower that needs them.
    if (snapshot && this.storage.readSnapshotData) this.raw.snapshotDataInStorage(snapshot.meta.index);
    await this.transport.start(this.transportHandlers());
    this.transport.setPeers(this.peersOtherThanSelf());
    this.lifecycle = 'running';
    this.refreshStatus();
    const config = this.cachedStatus!.config;
    this.logger(
      `${this.id}: started at term ${persisted.hardState.term}, commit ${persisted.hardState.commit}, ` +
        `snapshot ${this.snapshotIndex}, ${persisted.entries.length} entries, election seed ${this.seed}`,
    );
    if (config.voters.length === 1 && config.voters[0] === this.id) {
      // Alone: no need to wait an election timeout.
      this.enqueue(() => this.raw!.campaign());
    }
    this.updateTicking();
    this.schedule();
  }

  /**
   * Stops ticking, lets the Ready in progress finish, stops the transport,
   * closes the storage, and rejects every pending request with `StoppedError`.
   * Idempotent; also safe after the node stopped itself.
   */
  stop(): Promise<void> {
    this.stopPromise ??= this.shutDown(new StoppedError(`node ${this.id} was stopped`));
    return this.stopPromise;
  }

  private async shutDown(reason: StoppedError): Promise<void> {
    if (this.lifecycle === 'new') {
      this.lifecycle = 'stopped';
      return;
    }
    if (this.lifecycle === 'starting') await this.startPromise?.catch(() => {});
    if (this.lifecycle === 'stopped') return;
    this.lifecycle = 'stopping';
    this.tickTimer?.cancel();
    this.tickTimer = undefined;
    await this.loopIdle();
    // A writer waiting for a snapshot's next piece leaves it: a stopping node stores no snapshot.
    this.wakeWriter();
    await this.writerIdle();
    for (const request of [...this.requests]) request.reject(reason);
    this.inbox = [];
    await this.closeQuietly();
    this.lifecycle = 'stopped';
    this.logger(`${this.id}: stopped`);
  }

  private async closeQuietly(): Promise<void> {
    try {
      await this.transport.stop();
    } catch (error) {
      this.logger(`${this.id}: stopping the transport failed: ${describe(error)}`);
    }
    try {
      await this.storage.close();
    } catch (error) {
      this.logger(`${this.id}: closing the storage failed: ${describe(error)}`);
    }
  }

  /** A storage, state machine or invariant failure: never continue past it. */
  private fail(error: unknown): void {
    const cause = error instanceof Error ? error : new Error(String(error));
    this.logger(`${this.id}: fatal error, stopping the node: ${describe(cause)}`);
    if (this.stopPromise) return; // Already stopping: the stop completes as asked.
    const reason = new StoppedError(`node ${this.id} stopped after a fatal error: ${cause.message}`, { cause });
    this.stopPromise = this.shutDown(reason).then(() => this.onFatal?.(cause));
  }

  // ---------------------------------------------------------------------------
  // Requests

  /**
   * Proposes `data` (non-empty; owned by the node from now on). Resolves once
   * the entry is applied on this node, with the state machine's result.
   * Rejects with NotLeaderError, LeadershipTransferError, EntryTooLargeError or
   * OverloadedError when refused (nothing was appended); with ProposalLostError
   * when it certainly will not apply; with OutcomeUnknownError, TimeoutError or
   * AbortedError when it may still apply; with StoppedError on stop.
   */
  propose(data: Uint8Array, options: RequestOptions = {}): Promise<Proposed> {
    assert(data.length > 0, 'RaftNode.propose: empty data is reserved for the leaders\' no-op entries');
    const pending = this.request<Proposed>('the proposal', options, '; it may still commit');
    this.submit(pending, () => {
      const result = this.raw!.propose(data);
      if (!result.ok) pending.reject(refusalError(result.refusal));
      else this.awaitEntry(result.value.index, result.value.term, pending);
    });
    return pending.promise;
  }

  /**
   * A linearizable read barrier (ReadIndex): resolves with an index once this
   * node has applied at least that far, such that every write acknowledged
   * before the call started is applied. Reading the state machine right after
   * the promise resolves is linearizable. Works on followers (the leader
   * confirms the index). Rejects with NotLeaderError (no leader known),
   * ReadRefusedError (leadership changed; retry), OverloadedError,
   * TimeoutError, AbortedError or StoppedError.
   */
  read(options: RequestOptions = {}): Promise<number> {
    const pending = this.request<number>('the linearizable read', options, '');
    this.submit(pending, () => this.readsUnstarted.push(pending));
    return pending.promise;
  }

  /**
   * Starts one ReadIndex round for every read that arrived in this turn of
   * the loop: they all began before the round, so its index serves them all,
   * and a burst of reads costs one heartbeat round instead of one each.
   */
  private startReadRound(): void {
    const reads = this.readsUnstarted.filter((pending) => !pending.settled);
    this.readsUnstarted = [];
    if (reads.length === 0) return;
    const context = `${this.readContextPrefix}:${++this.readCounter}`;
    const result = this.raw!.readIndex(context);
    if (!result.ok) {
      const error = refusalError(result.refusal);
      for (const pending of reads) pending.reject(error);
      return;
    }
    this.readsByContext.set(context, reads);
    // The round's entry goes once every read in it settled, even if its answer never comes
    // (the core may never answer a forwarded read whose message was lost).
    let unsettled = reads.length;
    for (const pending of reads) {
      pending.release = () => {
        if (--unsettled === 0) this.readsByContext.delete(context);
      };
    }
  }

  /**
   * Adds `id` as a learner (it receives the log, does not vote), reachable at
   * `address`. Leader only. Resolves once the change is committed. Other nodes
   * learn the address only through `setPeers`: replicating addresses is the
   * application's job.
   */
  addLearner(id: NodeId, address: string, options: RequestOptions = {}): Promise<Committed> {
    this.setPeers({ ...this.peers, [id]: address });
    return this.changeMembership({ type: 'add-learner', node: id }, options);
  }

  /** Promotes learner `id` (or adds a known peer) to voter. Leader only; resolves once committed. */
  addVoter(id: NodeId, options: RequestOptions = {}): Promise<Committed> {
    return this.changeMembership({ type: 'add-voter', node: id }, options);
  }

  /** Removes voter or learner `id`. Leader only; resolves once committed. */
  removeNode(id: NodeId, options: RequestOptions = {}): Promise<Committed> {
    return this.changeMembership({ type: 'remove', node: id }, options);
  }

  private changeMembership(change: ConfigChange, options: RequestOptions): Promise<Committed> {
    const pending = this.request<Proposed>(`the change ${change.type} ${change.node}`, options, '; it may still commit');
    this.submit(pending, () => {
      const result = this.raw!.proposeConfigChange(change);
      if (!result.ok) pending.reject(refusalError(result.refusal));
      else this.awaitEntry(result.value.index, result.value.term, pending);
    });
    return pending.promise.then(({ index, term }) => ({ index, term }));
  }

  /**
   * Hands leadership to voter `to`. Leader only. Resolves once this node sees
   * `to` as the leader; rejects with TimeoutError if that does not happen in
   * time (the core abandons a transfer after one election timeout).
   */
  transferLeadership(to: NodeId, options: RequestOptions = {}): Promise<void> {
    const pending = this.request<void>(`the leadership transfer to ${to}`, options, '');
    this.submit(pending, () => {
      const result = this.raw!.transferLeadership(to);
      if (!result.ok) {
        pending.reject(refusalError(result.refusal));
        return;
      }
      if (this.raw!.leader === to) {
        pending.resolve();
        return;
      }
      this.transfers.push({ to, pending });
      pending.release = () => {
        this.transfers = this.transfers.filter((transfer) => transfer.pending !== pending);
      };
    });
    return pending.promise;
  }

  /**
   * This node's Raft status as of the end of the last Ready handled (it is
   * never read from the RawNode while a Ready is in progress).
   */
  status(): Status {
    assert(this.cachedStatus !== undefined, `RaftNode ${this.id}: status() before start()`);
    return this.cachedStatus;
  }

  /**
   * The core, for the simulator's checkers: read it between turns of the
   * loop, never step it. Undefined until `start()` loaded the storage.
   */
  get rawForInspection(): RawNode | undefined {
    return this.raw;
  }

  /**
   * Sets the address (`host:port`) of every peer, replacing the previous set;
   * this node's own entry is ignored. Peers not named get no messages.
   */
  setPeers(addresses: Record<NodeId, string>): void {
    this.peers = { ...addresses };
    if (this.lifecycle === 'running') this.transport.setPeers(this.peersOtherThanSelf());
  }

  /** The peer addresses last set. */
  peerAddresses(): Record<NodeId, string> {
    return { ...this.peers };
  }

  private peersOtherThanSelf(): Record<NodeId, string> {
    const peers = { ...this.peers };
    delete peers[this.id];
    return peers;
  }

  /** A tracked request; already rejected when the node does not run. */
  private request<T>(what: string, options: RequestOptions, timeoutHint: string): PendingRequest<T> {
    const pending: PendingRequest<T> = new PendingRequest<T>(what, {
      timers: this.timers,
      timeoutMs: options.timeoutMs ?? this.requestTimeoutMs,
      signal: options.signal,
      timeoutHint,
      onSettled: () => this.requests.delete(pending),
    });
    this.requests.add(pending);
    pending.checkAborted();
    if (this.lifecycle !== 'running') {
      pending.reject(new StoppedError(`node ${this.id} is not running (${this.lifecycle})`));
    }
    return pending;
  }

  /** Queues `action` for the loop unless the request is settled by then. */
  private submit(pending: Rejectable, action: () => void): void {
    if (pending.settled) return;
    const queued = this.enqueue(() => {
      if (!pending.settled) action();
    });
    if (!queued) pending.reject(new OverloadedError(`node ${this.id}: ${this.inboxMax} requests and messages are queued; retry after a back-off`));
  }

  /** Registers the proposer of the entry at (`index`, `term`). */
  private awaitEntry(index: number, term: number, pending: PendingRequest<Proposed>): void {
    const previous = this.proposals.get(index);
    // This node, leading again, appended over an entry it proposed earlier: that one was never committed.
    if (previous) previous.pending.reject(new ProposalLostError(index, previous.term));
    this.proposals.set(index, { term, pending });
    pending.release = () => {
      if (this.proposals.get(index)?.pending === pending) this.proposals.delete(index);
    };
  }

  // ---------------------------------------------------------------------------
  // The loop

  private transportHandlers(): TransportHandlers {
    return {
      onMessage: (message: Message) => {
        if (!this.enqueue(() => this.raw!.step(message))) this.dropped('a peer message');
      },
      // Reports bypass the inbox limit: a lost snapshot report would leave the leader
      // waiting on that follower, and there is at most one per snapshot or stream failure.
      onSnapshotStatus: (to: NodeId, ok: boolean) => {
        this.enqueue(() => this.raw!.reportSnapshot(to, ok), { overLimit: true });
      },
      onUnreachable: (to: NodeId) => {
        this.enqueue(() => this.raw!.reportUnreachable(to), { overLimit: true });
      },
    };
  }

  private dropped(what: string): void {
    // Raft tolerates lost messages: the sender retries on its next heartbeat or probe.
    this.inboxDropped++;
    if (this.inboxDropped % 1000 === 1) {
      this.logger(`${this.id}: inbox full (${this.inboxMax} items): dropped ${what} (${this.inboxDropped} dropped so far)`);
    }
  }

  private onTick(): void {
    if (this.ticksPending < this.ticksPendingMax) this.ticksPending++;
    this.schedule();
  }

  /** Adds `action` to the inbox; false when the inbox is full (unless `overLimit`) or the node does not run. */
  private enqueue(action: () => void, options: { overLimit?: boolean } = {}): boolean {
    if (this.lifecycle !== 'running') return false;
    if (this.inbox.length >= this.inboxMax && options.overLimit !== true) return false;
    this.inbox.push(action);
    this.schedule();
    return true;
  }

  private schedule(): void {
    if (this.loopActive || this.lifecycle !== 'running') return;
    this.loopActive = true;
    // setImmediate, not a microtask: every request that arrived in this I/O phase joins the same Ready.
    this.timers.setImmediate(() => void this.runLoop());
  }

  /**
   * Takes and handles Readys and applies committed entries until neither is
   * left. Applying waits for no one, so it is done a turn's budget at a time
   * (`turnSpent`): then the loop lets timers and I/O in, and takes the ticks
   * and messages that arrived (a leader's heartbeats go out, votes are
   * answered) before it applies more. A loaded leader is thus not deposed for
   * its backlog of applies.
   */
  private async runLoop(): Promise<void> {
    let fatal: unknown;
    try {
      this.startTurn();
      while (this.lifecycle === 'running') {
        // Back-pressure: a write completion schedules the loop again.
        if (this.writeQueue.length >= WRITE_QUEUE_READYS_MAX) break;
        this.drainInbox();
        const raw = this.raw!;
        if (raw.hasReady()) {
          const ready = raw.ready();
          this.inspector?.readyTaken(ready, raw);
          if (ready.snapshot !== undefined) await this.handleSnapshotReady(ready);
          else this.handleReady(ready);
        } else if (this.applyQueue.length === 0) {
          break;
        }
        this.applyQueued(false);
        this.maybeSnapshot();
        if (this.turnSpent() && this.lifecycle === 'running') {
          await new Promise<void>((resolve) => this.timers.setImmediate(resolve));
          this.startTurn();
        }
      }
      if (this.lifecycle === 'running') this.refreshStatus();
    } catch (error) {
      fatal = error;
    } finally {
      this.loopActive = false;
      const waiters = this.loopIdleWaiters;
      this.loopIdleWaiters = [];
      for (const wake of waiters) wake();
    }
    if (fatal !== undefined) this.fail(fatal);
  }

  private startTurn(): void {
    this.turnStartMs = this.timers.nowMs?.() ?? 0;
    this.turnEntries = 0;
  }

  /** Whether this turn of the loop used its budget (see `budgetSpent`). */
  private turnSpent(): boolean {
    return this.budgetSpent(this.turnStartMs, 0);
  }

  /** `LOOP_TURN_MS_MAX` since `startMs`, or without a clock `LOOP_TURN_ENTRIES_MAX` entries applied this turn since `startEntries`. */
  private budgetSpent(startMs: number, startEntries: number): boolean {
    const nowMs = this.timers.nowMs;
    if (nowMs === undefined) return this.turnEntries - startEntries >= LOOP_TURN_ENTRIES_MAX;
    return nowMs() - startMs >= LOOP_TURN_MS_MAX;
  }

  private loopIdle(): Promise<void> {
    if (!this.loopActive) return Promise.resolve();
    return new Promise((resolve) => this.loopIdleWaiters.push(resolve));
  }

  /**
   * Messages and requests first, then the ticks owed: what peers said during
   * a slow write counts before time does, so a leader that stalled is not
   * deposed by its own check-quorum, nor a follower made to campaign.
   */
  private drainInbox(): void {
    const raw = this.raw!;
    const items = this.inbox;
    this.inbox = [];
    for (const item of items) item();
    this.startReadRound();
    const ticks = this.ticksPending;
    this.ticksPending = 0;
    for (let tick = 0; tick < ticks; tick++) raw.tick();
  }

  /**
   * Handles a Ready without a snapshot: sends the early messages, hands the
   * write (with the messages that must follow it) to the writer, then queues
   * the committed entries to apply (`applyQueued`) and takes the read states.
   * Committed entries are durable on a quorum already, so they need not wait
   * for this node's write, nor the write for them.
   */
  private handleReady(ready: Ready): void {
    const raw = this.raw!;
    if (ready.softState) this.softStateChanged(ready.softState);
    if (ready.messagesEarly.length > 0) this.send(ready.messagesEarly);
    // No entries, no new term or vote: at most the commit index moved, and a commit index
    // promises nothing to a peer (Raft may lose it in a crash and learn it again). With no
    // write in flight, the Ready's messages depend on nothing unwritten: they leave now, and
    // the commit index goes to disk with the next write. This saves a LevelDB write and a
    // thread-pool round trip per commit when the load is light.
    const unwritten = ready.entries.length === 0 && !ready.mustSync && this.writerIdleNow();
    // The write starts before the committed entries are applied: the disk is the slow part of
    // the path, and a follower's Append carries the commit of the entries before it, so applying
    // those first made every follower's fsync (and its acknowledgement) wait for the apply.
    // Applying does not depend on this write (committed entries are durable on a quorum).
    if (!unwritten) {
      // Even without a write of its own, a Ready's messages wait for the writes handed out before it.
      this.writeQueue.push(ready);
      this.wakeWriter();
    }
    if (ready.committedEntries.length > 0) {
      this.applyQueue.push({ ready, next: 0 });
      this.applyQueued(false);
    } else {
      raw.applied(ready);
    }
    for (const read of ready.readStates) this.readStateArrived(read);
    this.releaseReads();
    this.refreshStatus();
    this.settleTransfers();
    if (unwritten) {
      if (ready.hardState !== undefined) this.unwrittenHardState = ready.hardState;
      if (ready.messages.length > 0) this.send(ready.messages);
      raw.persisted(ready);
    }
  }

  /**
   * Hands `messages` to the transport; a Snapshot message whose data is in
   * storage (`Snapshot.dataInStorage`) leaves once its data is read back.
   */
  private send(messages: Message[]): void {
    if (!messages.some(isSnapshotInStorage)) {
      this.transport.send(messages);
      return;
    }
    const now = messages.filter((message) => !isSnapshotInStorage(message));
    if (now.length > 0) this.transport.send(now);
    for (const message of messages) if (isSnapshotInStorage(message)) void this.sendStoredSnapshot(message);
  }

  /**
   * Reads a Snapshot message's data back from storage and sends it. A newer
   * snapshot may have replaced it meanwhile: then the send is reported failed,
   * and the leader sends the newer one.
   */
  private async sendStoredSnapshot(message: Message): Promise<void> {
    const { meta } = message.snapshot!;
    let data: Uint8Array | undefined;
    try {
      data = await this.storage.readSnapshotData!(meta.index);
    } catch (error) {
      if (this.lifecycle === 'running') this.fail(error);
      return;
    }
    if (this.lifecycle !== 'running') return;
    if (data === undefined) {
      this.enqueue(() => this.raw!.reportSnapshot(message.to, false), { overLimit: true });
      return;
    }
    this.transport.send([{ ...message, snapshot: { meta, data } }]);
  }

  private writerIdleNow(): boolean {
    return !this.writerActive && this.writeQueue.length === 0;
  }

  /**
   * Writes the queued Readys, all that are queued at a time as one batch,
   * until none is left. After each batch is durable: sends their messages,
   * reports them persisted (in order), and wakes the loop, since the leader
   * may now commit.
   */
  private async runWriter(): Promise<void> {
    assert(!this.writerActive, `RaftNode ${this.id}: two writers`);
    this.writerActive = true;
    let fatal: unknown;
    // A snapshot being stored a piece at a time, between batches of Readys: the log's writes go on
    // beside it, and its next piece is read while they are written (see `StateMachine.snapshotStream`).
    // Only while running: a node that stops leaves it (its pieces are deleted at the next load).
    let streaming: LogCompaction | undefined;
    const snapshotting = (): boolean => streaming !== undefined && this.lifecycle === 'running';
    try {
      while ((this.writeQueue.length > 0 || snapshotting()) && this.lifecycle !== 'stopped') {
        const first = this.writeQueue[0];
        if (first instanceof LogCompaction) {
          this.writeQueue.shift();
          if (first.isStream()) {
            // Every Ready before it is written: the entries it covers are on disk.
            assert(streaming === undefined, `RaftNode ${this.id}: two snapshots stored at once`);
            first.begin(this.storage);
            streaming = first;
            continue;
          }
          await this.storage.compact(first.snapshot, first.dataParts as readonly Uint8Array[] | undefined);
          this.enqueue(() => this.compactLog(first.snapshot, first.bytes), { overLimit: true });
          continue;
        }
        if (first !== undefined) {
          const end = mergeableReadys(this.writeQueue);
          const batch = this.writeQueue.slice(0, end) as Ready[];
          this.writeQueue = this.writeQueue.slice(end);
          const merged = mergeWrites(batch, this.unwrittenHardState);
          if (merged !== undefined) {
            this.unwrittenHardState = undefined;
            await this.storage.persist(merged.write, merged.sync);
          }
          const raw = this.raw!;
          for (const ready of batch) {
            if (ready.messages.length > 0) this.send(ready.messages);
            raw.persisted(ready);
          }
          this.schedule();
        }
        if (!snapshotting()) continue;
        const snapshot = streaming!;
        const piece = snapshot.nextPiece();
        if (!snapshot.pieceRead()) {
          // Readys first while the piece is read; with none, wait for whichever comes first.
          if (this.writeQueue.length > 0) continue;
          const woken = new Promise<void>((resolve) => (this.writerWake = resolve));
          await Promise.race([piece, woken]);
          this.writerWake = undefined;
          continue;
        }
        if (await snapshot.storePiece()) continue;
        streaming = undefined;
        await snapshot.record(this.storage);
        this.enqueue(() => this.compactLog(snapshot.snapshot, snapshot.bytes), { overLimit: true });
      }
    } catch (error) {
      fatal = error;
      for (const job of this.writeQueue) if (job instanceof LogCompaction) void job.close();
      this.writeQueue = [];
    } finally {
      // Stopped or failed part-way: its pieces are leftovers the next load deletes.
      if (streaming !== undefined) void streaming.close();
      this.writerActive = false;
      const waiters = this.writerIdleWaiters;
      this.writerIdleWaiters = [];
      for (const wake of waiters) wake();
    }
    if (fatal !== undefined) this.fail(fatal);
  }

  /** Starts the writer for what was queued, or wakes it if it waits for a snapshot's piece. */
  private wakeWriter(): void {
    if (!this.writerActive) {
      void this.runWriter();
      return;
    }
    const wake = this.writerWake;
    this.writerWake = undefined;
    wake?.();
  }

  /** Resolves once every Ready handed to the writer is persisted (or the writer failed). */
  private writerIdle(): Promise<void> {
    if (this.writerIdleNow()) return Promise.resolve();
    return new Promise((resolve) => this.writerIdleWaiters.push(resolve));
  }

  /**
   * A snapshot from the leader replaces the state machine: every earlier write
   * completes first, then this one, then the restore, as with a synchronous driver.
   */
  private async handleSnapshotReady(ready: Ready): Promise<void> {
    const raw = this.raw!;
    if (ready.softState) this.softStateChanged(ready.softState);
    if (ready.messagesEarly.length > 0) this.send(ready.messagesEarly);
    await this.writerIdle();
    if (this.lifecycle !== 'running') return;
    // Every entry committed before the snapshot arrived is applied first, as it was handed out first.
    this.applyQueued(true);
    const write: StorageWrite = { entries: ready.entries, snapshot: ready.snapshot! };
    if (ready.hardState !== undefined) write.hardState = ready.hardState;
    // An older commit index is not needed any more: the snapshot's index is committed.
    this.unwrittenHardState = undefined;
    await this.storage.persist(write, true);
    raw.persisted(ready);
    if (ready.messages.length > 0) this.send(ready.messages);
    this.installSnapshot(ready.snapshot!);
    assert(ready.committedEntries.length === 0, 'a Ready with a snapshot hands out no committed entries');
    for (const read of ready.readStates) this.readStateArrived(read);
    raw.applied(ready);
    if (this.storage.readSnapshotData) raw.snapshotDataInStorage(ready.snapshot!.meta.index);
    this.releaseReads();
    this.refreshStatus();
    this.settleTransfers();
  }

  private softStateChanged(softState: SoftState): void {
    this.logger(`${this.id}: now ${softState.role}, leader ${softState.leader || 'unknown'}`);
  }

  private installSnapshot(snapshot: Snapshot): void {
    const { index, term } = snapshot.meta;
    assert(index > this.applied, `RaftNode ${this.id}: snapshot at ${index} is not beyond applied index ${this.applied}`);
    this.stateMachine.restore(snapshot.data);
    this.applied = index;
    this.appliedTerm = term;
    this.snapshotIndex = index;
    this.logger(`${this.id}: installed a snapshot from the leader at index ${index}, term ${term}`);
    for (const [proposalIndex, waiter] of [...this.proposals]) {
      if (proposalIndex <= index) waiter.pending.reject(new OutcomeUnknownError(proposalIndex, waiter.term));
    }
    this.rejectOvertakenProposals();
  }

  /**
   * Applies the queued committed entries in order, until none is left or,
   * unless `all`, a budget of its own is spent (`LOOP_TURN_MS_MAX` from this
   * call, so that a turn whose inbox alone took longer still applies some);
   * reports each Ready applied to the core once its last entry is, then
   * settles what waited on them.
   */
  private applyQueued(all: boolean): void {
    if (this.applyQueue.length === 0) return;
    const raw = this.raw!;
    const startMs = this.timers.nowMs?.() ?? 0;
    const startEntries = this.turnEntries;
    while (this.applyQueue.length > 0) {
      const head = this.applyQueue[0]!;
      const entries = head.ready.committedEntries;
      while (head.next < entries.length && (all || !this.budgetSpent(startMs, startEntries))) this.applyEntry(entries[head.next++]!);
      if (head.next < entries.length) break;
      this.applyQueue.shift();
      raw.applied(head.ready);
    }
    this.rejectOvertakenProposals();
    this.releaseReads();
    this.refreshStatus();
    this.settleTransfers();
  }

  private applyEntry(entry: Entry): void {
    assert(
      entry.index === this.applied + 1,
      () => `RaftNode ${this.id}: entry ${entry.index} committed after applied index ${this.applied}`,
    );
    this.inspector?.entryApplied(entry, this.raw!);
    let result: unknown;
    if (entry.type === EntryType.Normal && entry.data.length > 0) result = this.stateMachine.apply(entry);
    this.applied = entry.index;
    this.appliedTerm = entry.term;
    this.turnEntries++;
    const waiter = this.proposals.get(entry.index);
    if (waiter === undefined) return;
    this.proposals.delete(entry.index);
    if (waiter.term === entry.term) waiter.pending.resolve({ index: entry.index, term: entry.term, result });
    else waiter.pending.reject(new ProposalLostError(entry.index, waiter.term));
  }

  /**
   * Terms never decrease along the log, so once an entry of term T is applied,
   * no later index can hold an entry of an earlier term: those proposals are lost.
   */
  private rejectOvertakenProposals(): void {
    if (this.appliedTerm <= this.overtakenCheckedTerm) return;
    this.overtakenCheckedTerm = this.appliedTerm;
    for (const [index, waiter] of [...this.proposals]) {
      if (waiter.term < this.appliedTerm) waiter.pending.reject(new ProposalLostError(index, waiter.term));
    }
  }

  private readStateArrived(read: ReadState): void {
    const reads = this.readsByContext.get(read.context);
    if (reads === undefined) return;
    this.readsByContext.delete(read.context);
    for (const pending of reads) {
      if (pending.settled) continue;
      pending.release = () => {};
      if (read.refused) pending.reject(new ReadRefusedError());
      else this.readsWaitingApply.push({ index: read.index, pending });
    }
  }

  private releaseReads(): void {
    if (this.readsWaitingApply.length === 0) return;
    const waiting: { index: number; pending: PendingRequest<number> }[] = [];
    for (const read of this.readsWaitingApply) {
      if (read.pending.settled) continue;
      if (read.index <= this.applied) read.pending.resolve(read.index);
      else waiting.push(read);
    }
    this.readsWaitingApply = waiting;
  }

  private settleTransfers(): void {
    if (this.transfers.length === 0) return;
    const leader = this.cachedStatus!.leader;
    for (const transfer of [...this.transfers]) {
      if (transfer.to === leader) transfer.pending.resolve();
    }
  }

  private refreshStatus(): void {
    this.cachedStatus = this.raw!.status();
    this.updateTicking();
  }

  /**
   * Ticks run every `tickMs` unless this node leads a cluster of one (the
   * only voter, no learner): there a tick changes nothing anyone waits on (no
   * heartbeat to send, no quorum but its own, no election to time, reads
   * answered at once), and an idle node should not wake 20 times a second
   * for it. Looked at after every turn of the loop: ticking starts again in
   * the turn that appends a configuration with another member (or in which
   * this node stops leading), so Raft's timing is unchanged wherever it counts.
   */
  private updateTicking(): void {
    if (this.lifecycle !== 'running') return;
    const status = this.cachedStatus!;
    const alone = leadsAlone(status, this.id);
    if (!alone && this.tickTimer === undefined) this.tickTimer = this.timers.setInterval(() => this.onTick(), this.tickMs);
    else if (alone && this.tickTimer !== undefined) {
      this.tickTimer.cancel();
      this.tickTimer = undefined;
    }
  }

  /**
   * Whether to start a snapshot now: none in progress, at least a quarter of
   * the interval since the last one, and this member's turn (see below).
   */
  private snapshotDue(): boolean {
    // Only at a Ready's boundary: the core's applied index must be the driver's.
    if (this.snapshotInProgress || this.applyQueue.length > 0) return false;
    const every = this.snapshotEveryEntries;
    // Not again right after one (or after a restart or an install from the leader), whatever the grid says.
    if (this.applied - this.snapshotIndex < every / 4) return false;
    // Members that snapshot together stall their writes together, and then nothing commits: each
    // one crosses its own grid, shifted by its place among the voters (in a 3-voter cluster a
    // third of the interval apart), so that at most one of them is storing a snapshot at a time.
    const voters = this.cachedStatus?.config.voters ?? [];
    const place = voters.indexOf(this.id);
    const shift = place <= 0 ? 0 : Math.floor((place * every) / voters.length);
    return Math.floor((this.applied + shift) / every) > Math.floor((this.snapshotIndex + shift) / every);
  }

  /**
   * Starts a snapshot of the state as of the last applied entry, if one is
   * due, without holding up the loop: the state machine encodes it (in the
   * background if it can), then the writer stores it and deletes the log it
   * covers, after the Readys queued before it (they hold every entry up to
   * its index), and then the loop drops those entries from memory. Peers
   * keep being answered meanwhile; a large state used to stall every node
   * for the whole encoding and write (about 0.6 s at 100,000 keys).
   */
  private maybeSnapshot(): void {
    if (!this.snapshotDue()) return;
    const index = this.applied;
    this.snapshotInProgress = true;
    const machine = this.stateMachine;
    if (machine.snapshotStream && this.storage.snapshotPieces && this.storage.readSnapshotData) {
      // Captured now, encoded as the writer stores it: see `StateMachine.snapshotStream`.
      const stream = machine.snapshotStream();
      if (!this.enqueue(() => this.queueCompaction(index, stream), { overLimit: true })) {
        this.snapshotInProgress = false;
        void stream.close();
      }
      return;
    }
    const encoding = machine.snapshotInBackground ? machine.snapshotInBackground() : Promise.resolve(machine.snapshot());
    encoding.then(
      (data) => {
        if (!this.enqueue(() => this.queueCompaction(index, data), { overLimit: true })) this.snapshotInProgress = false;
      },
      (error: unknown) => this.fail(error),
    );
  }

  private queueCompaction(index: number, data: Uint8Array | readonly Uint8Array[] | SnapshotStream): void {
    // A snapshot from the leader replaced the state meanwhile: this one is stale.
    if (index <= this.snapshotIndex) {
      this.snapshotInProgress = false;
      if (isSnapshotStream(data)) void data.close();
      return;
    }
    if (isSnapshotStream(data)) {
      // Only with storage that reads snapshots back (`maybeSnapshot`): the log never holds these bytes.
      this.writeQueue.push(new LogCompaction(this.raw!.snapshotAt(index, NO_BYTES), data));
      this.wakeWriter();
      return;
    }
    // Pieces are stored as they are where the log will not need the whole: with storage that reads snapshots back.
    let parts = Array.isArray(data) ? (data as readonly Uint8Array[]) : undefined;
    let whole = parts === undefined ? (data as Uint8Array) : NO_BYTES;
    if (parts !== undefined && !this.storage.readSnapshotData) {
      whole = joinSnapshotParts(parts);
      parts = undefined;
    }
    this.writeQueue.push(new LogCompaction(this.raw!.snapshotAt(index, whole), parts));
    this.wakeWriter();
  }

  /** On the loop, once the writer stored `snapshot`: drops the entries it covers from memory. */
  private compactLog(snapshot: Snapshot, bytes: number): void {
    this.snapshotInProgress = false;
    if (snapshot.meta.index <= this.snapshotIndex) return; // a snapshot from the leader came after it
    this.raw!.compact(snapshot);
    if (this.storage.readSnapshotData) this.raw!.snapshotDataInStorage(snapshot.meta.index);
    this.snapshotIndex = snapshot.meta.index;
    this.logger(`${this.id}: snapshot at index ${snapshot.meta.index} (${bytes} bytes); log compacted`);
  }
}

function isSnapshotInStorage(message: Message): boolean {
  return message.type === MessageType.Snapshot && message.snapshot?.dataInStorage === true;
}

/** A writer job: store a snapshot and delete the log it covers (see `RaftNode.maybeSnapshot`). */
class LogCompaction {
  private pieces: SnapshotPieces | undefined;
  private reading: AsyncIterator<Uint8Array> | undefined;
  private next: Promise<IteratorResult<Uint8Array>> | undefined;
  private nextRead = false;

  /**
   * `dataParts`, when set, are the snapshot's data in pieces, or a stream
   * of them (and `snapshot.data` is empty): the log never holds this
   * snapshot's bytes, since the storage reads them back.
   */
  constructor(
    readonly snapshot: Snapshot,
    readonly dataParts: readonly Uint8Array[] | SnapshotStream | undefined,
  ) {}

  /** The snapshot's size in bytes; for a stream, what has been stored of it. */
  get bytes(): number {
    const parts = this.dataParts;
    if (parts === undefined) return this.snapshot.data.length;
    if (isSnapshotStream(parts)) return this.pieces?.bytes ?? 0;
    return parts.reduce((total, part) => total + part.length, 0);
  }

  /** Whether the data is a stream, stored a piece at a time (`begin`, `writeNextPiece`, `record`). */
  isStream(): boolean {
    return isSnapshotStream(this.dataParts);
  }

  begin(storage: RaftStorage): void {
    assert(storage.snapshotPieces !== undefined && isSnapshotStream(this.dataParts), 'LogCompaction.begin: a stream, on storage that stores pieces');
    this.pieces = storage.snapshotPieces(this.snapshot.meta);
    this.reading = this.dataParts[Symbol.asyncIterator]();
  }

  /** The stream's next piece: read from the first call on, until `storePiece` takes it. */
  nextPiece(): Promise<IteratorResult<Uint8Array>> {
    if (this.next === undefined) {
      this.nextRead = false;
      const next = this.reading!.next();
      // Handled here, so a failure is not unhandled while the writer does other writes; `storePiece` rethrows it.
      next.then(
        () => (this.nextRead = true),
        () => (this.nextRead = true),
      );
      this.next = next;
    }
    return this.next;
  }

  /** Whether the piece `nextPiece` started to read is read (or failed). */
  pieceRead(): boolean {
    return this.next !== undefined && this.nextRead;
  }

  /** Stores the piece read; false once the stream has ended. */
  async storePiece(): Promise<boolean> {
    const next = await this.next!;
    this.next = undefined;
    if (next.done === true) return false;
    await this.pieces!.write(next.value);
    return true;
  }

  /** Records the snapshot from the pieces stored. */
  async record(storage: RaftStorage): Promise<void> {
    await storage.compact(this.snapshot, this.pieces!);
  }

  /** Ends a stream not read to its end; nothing otherwise. */
  close(): Promise<void> {
    return isSnapshotStream(this.dataParts) ? this.dataParts.close() : Promise.resolve();
  }
}

function isSnapshotStream(data: Uint8Array | readonly Uint8Array[] | SnapshotStream | undefined): data is SnapshotStream {
  return data !== undefined && !Array.isArray(data) && !(data instanceof Uint8Array);
}

const NO_BYTES = new Uint8Array(0);

/**
 * How many Readys at the head of the write queue go into one write: up to
 * the first log compaction, and never past a Ready whose entries replace
 * entries of an earlier one in the run (a new leader's log overwriting an
 * old one's). Each Ready's messages are sent once the write holding it is
 * durable; an acknowledgement of the replaced entries must leave while they
 * are on disk, as it would have without merging, not after a write that no
 * longer holds them. At least 1 when the head is a Ready.
 */
function mergeableReadys(queue: readonly (Ready | LogCompaction)[]): number {
  let lastIndex = -1;
  for (let position = 0; position < queue.length; position++) {
    const job = queue[position]!;
    if (job instanceof LogCompaction) return position;
    const first = job.entries[0];
    if (first === undefined) continue;
    if (first.index <= lastIndex) return position;
    lastIndex = job.entries[job.entries.length - 1]!.index;
  }
  return queue.length;
}

/**
 * One storage write for a run of Readys, in order (`mergeableReadys`: none
 * replaces entries of an earlier one, so they append), the last
 * hard state wins (starting from `unwrittenHardState`, older than all of
 * them), and the batch is synced if any of them must be. Undefined when
 * there is nothing to write. Never holds a snapshot.
 */
function mergeWrites(readys: Ready[], unwrittenHardState: HardState | undefined): { write: StorageWrite; sync: boolean } | undefined {
  let entries: Entry[] = [];
  /** Whether `entries` is a copy of ours (not a Ready's array, which must not change). */
  let copied = false;
  // An earlier Ready's commit index not yet written: any later hard state in the batch replaces it.
  let hardState: StorageWrite['hardState'] = unwrittenHardState;
  let sync = false;
  for (const ready of readys) {
    assert(ready.snapshot === undefined, 'a Ready with a snapshot is never merged');
    if (ready.hardState !== undefined) hardState = ready.hardState;
    if (ready.mustSync) sync = true;
    if (ready.entries.length === 0) continue;
    if (entries.length === 0) {
      entries = ready.entries;
      copied = false;
      continue;
    }
    const keep = ready.entries[0]!.index - entries[0]!.index;
    assert(keep === entries.length, 'merged writes must append: no gap, no replaced entry');
    entries = copied ? entries : entries.slice();
    copied = true;
    entries.length = keep;
    for (const entry of ready.entries) entries.push(entry);
  }
  if (entries.length === 0 && hardState === undefined) return undefined;
  const write: StorageWrite = { entries };
  if (hardState !== undefined) write.hardState = hardState;
  return { write, sync };
}

function describe(error: unknown): string {
  if (error instanceof Error) return error.stack ?? `${error.name}: ${error.message}`;
  return String(error);
}

