import { RawNode, bootstrapState } from '../core/raw-node.js';
import { SeededRandom } from '../core/random.js';
import {
  DEFAULT_OPTIONS,
  EntryType,
  MessageType,
  Role,
  type ConfigChange,
  type Entry,
  type HardState,
  type Message,
  type NodeId,
  type RaftOptions,
  type Ready,
  type Snapshot,
} from '../core/types.js';
import { SafetyChecker } from './checker.js';
import { EventQueue } from './event-queue.js';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Simulated milliseconds per Raft tick. */
const TICK_MS = 10;
/**
 * Chance that a node crashes while a write is in flight, just before it
 * completes (buggify): the crash that loses an unsynced batch, with the
 * leader's messages already out and entries applied ahead of its own disk.
 */
const CRASH_DURING_WRITE_CHANCE = 0.003;
/**
 * Chance that a node which just applied an entry its own disk does not hold
 * yet crashes at once and restarts soon after (buggify). Safe only if the
 * entry is durable on a quorum of the others: a restarted node without it may
 * then vote for a candidate without it.
 */
const CRASH_AFTER_APPLY_AHEAD_CHANCE = 0.05;
/** Lines of trace kept for a failure report. */
const TRACE_LINES_MAX = 3000;

/** The settings of one simulated run, all drawn from its seed. */
export interface WorldSettings {
  seed: number;
  voters: number;
  faultPhaseMs: number;
  /** After the heal, a leader must commit a new write within this bound. */
  livenessBoundMs: number;
  dropRate: number;
  duplicateRate: number;
  delayMsMax: number;
  preVote: boolean;
  checkQuorum: boolean;
  compactEveryEntries: number;
  nemesisIntervalMs: number;
  /**
   * The driver hands out new Readys while earlier writes are in flight (as
   * the real driver does); false: one Ready at a time (a synchronous driver).
   */
  asyncWrites: boolean;
  /**
   * Test only: the disk ignores fsync, so synced hard state can be lost in a
   * crash. Used to show that the checkers catch a broken node.
   */
  brokenDisk?: boolean;
  /**
   * Test only: a broken driver that sends each Ready's `messages` (acks,
   * votes) before its write completes. Used to show that the checkers catch it.
   */
  messagesBeforeWrite?: boolean;
  /**
   * Test only: a broken core whose leader counts its own entries as soon as it
   * appends them, not once they are durable. Used to show that the checkers catch it.
   */
  leaderCountsUnwritten?: boolean;
}

/** What one node's disk holds: written only when a simulated write completes. */
interface SimDisk {
  hardState: HardState;
  snapshot?: Snapshot;
  entries: Entry[];
}

/** One simulated node: a RawNode, its disk, its state machine (a register) and its driver state. */
class SimNode {
  raw: RawNode | undefined;
  disk: SimDisk = { hardState: { term: 0, vote: '', commit: 0 }, entries: [] };
  up = true;
  removed = false;
  /** Bumped at each crash, so that writes in flight at the crash are dropped. */
  generation = 0;
  /** Readys whose write waits for the one in flight, oldest first. */
  writeQueue: Ready[] = [];
  /** The batch being written (one atomic write of one or more Readys); undefined when idle. */
  writing: Ready[] | undefined;
  /** A Ready holding a snapshot: nothing else runs on the node until it is finished. */
  snapshotReady: Ready | undefined;
  inbox: (() => void)[] = [];
  appliedIndex = 0;
  register = '';
  lastLeaderTerm = 0;
  /** Proposals made here, by index: the term and content they were made with. */
  proposals = new Map<number, { term: number; key: string }>();
  /** Reads started here, by context: the highest acknowledged write index when they started. */
  reads = new Map<string, number>();
  readsWaiting: { index: number; context: string }[] = [];

  constructor(readonly id: NodeId) {}
}

/** The outcome of one run. */
export interface RunResult {
  seed: number;
  violations: string[];
  trace: string[];
  stats: Record<string, number>;
  settings: WorldSettings;
}

/** Draws a run's settings from its seed. */
export function settingsForSeed(seed: number): WorldSettings {
  const random = new SeededRandom(seed ^ 0x5eed);
  return {
    seed,
    voters: random.chance(0.5) ? 3 : 5,
    faultPhaseMs: 3000 + random.below(3000),
    livenessBoundMs: 5000,
    dropRate: [0, 0.01, 0.05, 0.15][random.below(4)]!,
    duplicateRate: [0, 0.02, 0.1][random.below(3)]!,
    delayMsMax: [2, 10, 40][random.below(3)]!,
    preVote: random.chance(0.85),
    checkQuorum: random.chance(0.85),
    compactEveryEntries: [20, 50, 200][random.below(3)]!,
    nemesisIntervalMs: 100 + random.below(400),
    asyncWrites: random.chance(0.75),
  };
}

/**
 * A simulated cluster: real RawNodes over a simulated network and disk, with
 * faults and client traffic drawn from one seed, checked after every event.
 */
export class World {
  private readonly random: SeededRandom;
  private readonly queue = new EventQueue<() => void>();
  private now = 0;
  private readonly nodes = new Map<NodeId, SimNode>();
  private nextNodeNumber = 1;
  private blocked = new Set<string>();
  private dropRate: number;
  private duplicateRate: number;
  readonly checker = new SafetyChecker();
  private readonly trace: string[] = [];
  private nextClientId = 1;
  private healed = false;
  private healTime = 0;
  private firstAckAfterHeal: { index: number } | undefined;
  private pendingRemovals: { node: NodeId; index: number; term: number }[] = [];
  private eventsHandled = 0;
  readonly stats: Record<string, number> = {
    proposals: 0,
    acknowledged: 0,
    reads: 0,
    readsServed: 0,
    crashes: 0,
    partitions: 0,
    configChanges: 0,
    transfers: 0,
    snapshotsSent: 0,
    compactions: 0,
    elections: 0,
    messages: 0,
  };

  constructor(readonly settings: WorldSettings) {
    this.random = new SeededRandom(settings.seed);
    this.dropRate = settings.dropRate;
    this.duplicateRate = settings.duplicateRate;
  }

  // ---------------------------------------------------------------------------
  // Running

  run(): RunResult {
    const founders: NodeId[] = [];
    for (let k = 0; k < this.settings.voters; k++) founders.push(this.newNodeId());
    const bootstrap = bootstrapState({ voters: founders, learners: [] });
    for (const id of founders) {
      const node = new SimNode(id);
      node.disk = { hardState: { ...bootstrap.hardState }, entries: bootstrap.entries.slice() };
      this.nodes.set(id, node);
      this.startNode(node);
      this.queue.push(this.random.below(TICK_MS), () => this.tick(node));
    }
    this.record(`settings ${JSON.stringify(this.settings)}`);
    this.schedule(1, () => this.clientLoop());
    this.schedule(this.settings.nemesisIntervalMs, () => this.nemesisLoop());
    this.schedule(this.settings.faultPhaseMs, () => this.heal());
    const end = this.settings.faultPhaseMs + this.settings.livenessBoundMs;
    while (this.queue.size > 0 && this.checker.violations.length === 0) {
      const event = this.queue.pop()!;
      if (event.time > end) break;
      this.now = event.time;
      event.value();
      this.eventsHandled++;
      if (this.eventsHandled % 500 === 0) this.checkLogMatching();
      if (this.healed && this.converged()) break;
    }
    this.finalChecks();
    return {
      seed: this.settings.seed,
      violations: this.checker.violations,
      trace: this.trace,
      stats: this.stats,
      settings: this.settings,
    };
  }

  private schedule(delayMs: number, action: () => void): void {
    this.queue.push(this.now + delayMs, action);
  }

  private record(line: string): void {
    this.trace.push(`${String(this.now).padStart(6)}ms ${line}`);
    if (this.trace.length > TRACE_LINES_MAX) this.trace.splice(0, this.trace.length - TRACE_LINES_MAX);
  }

  private newNodeId(): NodeId {
    return `n${this.nextNodeNumber++}`;
  }

  // ---------------------------------------------------------------------------
  // Nodes

  private raftOptions(id: NodeId, applied: number): RaftOptions {
    return {
      ...DEFAULT_OPTIONS,
      id,
      // Small limits make flow control, batching and refusals happen often.
      messageBytesMax: 64,
      inflightMessagesMax: 4,
      inflightBytesMax: 256,
      uncommittedBytesMax: 512,
      entryBytesMax: 256,
      pendingReadsMax: 8,
      preVote: this.settings.preVote,
      checkQuorum: this.settings.checkQuorum,
      random: this.random.fork(),
      applied,
      logger: (line) => this.record(line),
    };
  }

  /** Starts (or restarts) a node from its disk. */
  private startNode(node: SimNode): void {
    const disk = node.disk;
    const snapshotIndex = disk.snapshot?.meta.index ?? 0;
    const restored = { hardState: { ...disk.hardState }, entries: disk.entries.slice() };
    node.raw = new RawNode(
      this.raftOptions(node.id, snapshotIndex),
      disk.snapshot ? { ...restored, snapshot: disk.snapshot } : restored,
    );
    node.up = true;
    node.writeQueue = [];
    node.writing = undefined;
    node.snapshotReady = undefined;
    node.inbox = [];
    node.appliedIndex = snapshotIndex;
    node.register = disk.snapshot ? decodeRegister(disk.snapshot.data) : '';
    node.lastLeaderTerm = 0;
    node.proposals.clear();
    node.reads.clear();
    node.readsWaiting = [];
    this.record(`${node.id} started (term ${disk.hardState.term}, ${disk.entries.length} entries, snapshot ${snapshotIndex})`);
  }

  private crash(node: SimNode): void {
    if (!node.up) return;
    node.up = false;
    node.generation++;
    node.raw = undefined;
    node.writeQueue = [];
    node.writing = undefined;
    node.snapshotReady = undefined;
    node.inbox = [];
    this.stats.crashes!++;
    this.record(`${node.id} crashed`);
  }

  private tick(node: SimNode): void {
    if (node.removed) return;
    if (node.up) this.enqueue(node, () => node.raw!.tick());
    this.schedule(TICK_MS, () => this.tick(node));
  }

  /** Runs `action` on the node's RawNode at its next turn. */
  private enqueue(node: SimNode, action: () => void): void {
    if (!node.up) return;
    node.inbox.push(action);
    this.process(node);
  }

  private writesIdle(node: SimNode): boolean {
    return node.writing === undefined && node.writeQueue.length === 0;
  }

  /**
   * One turn of the driver, like the real one: step the inbox, then take
   * Readys. Early messages leave and committed entries are applied at once;
   * the write goes to the node's writer, and the Ready's messages leave when
   * it is durable. A synchronous driver takes no Ready while a write is in flight.
   */
  private process(node: SimNode): void {
    if (!node.up || node.snapshotReady !== undefined) return;
    if (!this.settings.asyncWrites && !this.writesIdle(node)) return;
    while (node.inbox.length > 0) node.inbox.shift()!();
    const raw = node.raw!;
    while (raw.hasReady()) {
      const ready = raw.ready();
      this.observeReady(node, ready);
      this.sendAll(ready.messagesEarly);
      if (this.settings.messagesBeforeWrite) this.sendAll(ready.messages);
      if (ready.snapshot) {
        node.snapshotReady = ready;
        this.maybeStartWrite(node);
        return;
      }
      for (const entry of ready.committedEntries) this.apply(node, entry);
      for (const read of ready.readStates) this.readStateArrived(node, read.index, read.context, read.refused === true);
      raw.applied(ready);
      this.serveWaitingReads(node);
      if (this.settings.asyncWrites && ready.entries.length === 0 && !ready.mustSync && this.writesIdle(node)) {
        // As the real driver: at most the commit index moved, nothing is in flight, so the
        // messages leave now and the commit index is not written (as if lost in a crash).
        if (!this.settings.messagesBeforeWrite) this.sendAll(ready.messages);
        raw.persisted(ready);
        this.checkLeaderCountsDurable(node);
        continue;
      }
      node.writeQueue.push(ready);
      this.maybeStartWrite(node);
      this.checkLeaderCountsDurable(node);
      if (!this.settings.asyncWrites) return;
    }
    this.checkLeaderCountsDurable(node);
  }

  /** Starts the next write: the queued Readys as one batch, or the pending snapshot once the queue drained. */
  private maybeStartWrite(node: SimNode): void {
    if (node.writing !== undefined) return;
    let batch: Ready[];
    if (node.writeQueue.length > 0) {
      batch = node.writeQueue;
      node.writeQueue = [];
    } else if (node.snapshotReady !== undefined) {
      batch = [node.snapshotReady];
    } else return;
    node.writing = batch;
    const generation = node.generation;
    const latency = this.random.chance(0.05) ? 5 + this.random.below(20) : 1 + this.random.below(2);
    this.schedule(latency, () => this.finishWrite(node, generation, batch));
    if (!this.healed && this.random.chance(CRASH_DURING_WRITE_CHANCE) && this.mayCrash()) {
      this.schedule(this.random.below(latency), () => {
        // Crashes stop at the heal: every member must then stay up.
        if (node.generation !== generation || !node.up || this.healed) return;
        this.record(`${node.id} crashes with a write of ${batch.length} Ready(s) in flight`);
        this.crash(node);
      });
    }
  }

  private observeReady(node: SimNode, ready: Ready): void {
    this.checker.entriesSeen(node.id, ready.entries);
    const raw = node.raw!;
    if (raw.role === Role.Leader && node.lastLeaderTerm !== raw.term) {
      node.lastLeaderTerm = raw.term;
      this.stats.elections!++;
      this.checker.leaderElected(node.id, raw.term, raw.raftForInspection.log);
    }
  }

  /** The simulated write completed: make it durable, then send what waited for it. */
  private finishWrite(node: SimNode, generation: number, batch: Ready[]): void {
    if (node.generation !== generation || !node.up) return;
    node.writing = undefined;
    const raw = node.raw!;
    for (const ready of batch) {
      this.writeDisk(node.disk, ready);
      if (!this.settings.messagesBeforeWrite) this.sendAll(ready.messages);
      raw.persisted(ready);
      if (ready === node.snapshotReady) this.finishSnapshotReady(node, ready);
    }
    this.maybeStartWrite(node);
    if (this.writesIdle(node)) this.maybeCompact(node);
    this.checkRemovals();
    this.process(node);
  }

  private finishSnapshotReady(node: SimNode, ready: Ready): void {
    node.register = decodeRegister(ready.snapshot!.data);
    node.appliedIndex = ready.snapshot!.meta.index;
    for (const entry of ready.committedEntries) this.apply(node, entry);
    for (const read of ready.readStates) this.readStateArrived(node, read.index, read.context, read.refused === true);
    node.raw!.applied(ready);
    node.snapshotReady = undefined;
    this.serveWaitingReads(node);
  }

  private writeDisk(disk: SimDisk, ready: Ready): void {
    if (ready.snapshot) {
      disk.snapshot = ready.snapshot;
      disk.entries = [];
    }
    if (ready.entries.length > 0) {
      const first = ready.entries[0]!.index;
      const base = disk.snapshot?.meta.index ?? 0;
      disk.entries.length = Math.max(0, first - base - 1);
      disk.entries.push(...ready.entries);
    }
    // A write that needs no sync (only the commit index moved) may be lost in a crash; model the worst case.
    const keep = this.settings.brokenDisk ? this.random.chance(0.1) : ready.mustSync || this.random.chance(0.5);
    if (ready.hardState && keep) disk.hardState = { ...ready.hardState };
  }

  private apply(node: SimNode, entry: Entry): void {
    this.checker.applied(node.id, entry);
    if (entry.index > node.raw!.stableIndex) this.maybeCrashAfterApplyAhead(node);
    node.appliedIndex = entry.index;
    if (entry.type === EntryType.Normal && entry.data.length > 0) node.register = decoder.decode(entry.data);
    const proposal = node.proposals.get(entry.index);
    if (proposal === undefined) return;
    node.proposals.delete(entry.index);
    if (proposal.term === entry.term) {
      this.checker.acknowledge(entry.index, proposal.key);
      this.stats.acknowledged!++;
      if (this.healed && this.firstAckAfterHeal === undefined) {
        this.firstAckAfterHeal = { index: entry.index };
        this.record(`first write acknowledged after the heal, at index ${entry.index}`);
      }
    }
  }

  private maybeCrashAfterApplyAhead(node: SimNode): void {
    if (this.healed || !this.random.chance(CRASH_AFTER_APPLY_AHEAD_CHANCE) || !this.mayCrash()) return;
    const generation = node.generation;
    this.schedule(0, () => {
      if (node.generation !== generation || !node.up || this.healed) return;
      this.record(`${node.id} crashes having applied entries beyond its disk (${node.raw!.stableIndex})`);
      this.crash(node);
      this.schedule(1 + this.random.below(30), () => {
        if (!node.up && !node.removed && !this.healed) this.startNode(node);
      });
    });
  }

  private maybeCompact(node: SimNode): void {
    const raw = node.raw!;
    const log = raw.raftForInspection.log;
    if (node.appliedIndex - log.snapshotMeta.index < this.settings.compactEveryEntries) return;
    if (node.appliedIndex > log.stableIndex) return;
    const snapshot = raw.snapshotAt(node.appliedIndex, encoder.encode(node.register));
    node.disk.snapshot = snapshot;
    node.disk.entries = node.disk.entries.filter((entry) => entry.index > snapshot.meta.index);
    raw.compact(snapshot);
    this.stats.compactions!++;
  }

  // ---------------------------------------------------------------------------
  // Network

  private sendAll(messages: Message[]): void {
    for (const message of messages) this.send(message);
  }

  private send(message: Message): void {
    this.checkPromiseDurable(message);
    this.stats.messages!++;
    const isSnapshot = message.type === MessageType.Snapshot;
    if (isSnapshot) this.stats.snapshotsSent!++;
    if (this.blocked.has(`${message.from}>${message.to}`) || this.random.chance(this.dropRate)) {
      if (isSnapshot) this.schedule(5, () => this.reportSnapshot(message, false));
      return;
    }
    const delay = 1 + this.random.below(this.settings.delayMsMax);
    this.schedule(delay, () => this.deliver(message));
    if (this.random.chance(this.duplicateRate)) {
      this.schedule(delay + this.random.below(20), () => this.deliver(message));
    }
  }

  /**
   * A message that promises something is on disk (an acknowledgement of
   * entries, a granted vote) must find it on the sender's simulated disk when
   * it leaves. This sees a driver or core that sends such a message before
   * its write completed even when no crash follows to lose the write.
   */
  private checkPromiseDurable(message: Message): void {
    const sender = this.nodes.get(message.from);
    if (sender === undefined || message.reject) return;
    const disk = sender.disk;
    if (message.type === MessageType.AppendResponse) {
      const durableIndex = (disk.snapshot?.meta.index ?? 0) + disk.entries.length;
      if (message.index > durableIndex) {
        this.checker.recordViolation(
          `${message.from} acknowledged entries up to ${message.index} to ${message.to}, but its disk holds them only up to ${durableIndex}`,
        );
      }
    } else if (message.type === MessageType.VoteResponse && !this.settings.brokenDisk) {
      // A disk at a later term also keeps the promise: terms only grow, so this node can never
      // vote in the message's term again (two vote requests stepped before one write do this).
      const kept = disk.hardState.term > message.term || (disk.hardState.term === message.term && disk.hardState.vote === message.to);
      if (!kept) {
        this.checker.recordViolation(
          `${message.from} granted its vote in term ${message.term} to ${message.to}, but its disk holds term ${disk.hardState.term}, vote "${disk.hardState.vote}"`,
        );
      }
    }
  }

  /**
   * A leader counts itself toward a quorum only for entries on its own disk:
   * its own match index never passes its durable log.
   */
  private checkLeaderCountsDurable(node: SimNode): void {
    const raw = node.raw;
    if (!node.up || raw === undefined || raw.role !== Role.Leader) return;
    const self = raw.raftForInspection.progress.get(node.id);
    if (this.settings.leaderCountsUnwritten) self?.maybeUpdate(raw.raftForInspection.log.lastIndex());
    const match = self?.match ?? 0;
    const durableIndex = (node.disk.snapshot?.meta.index ?? 0) + node.disk.entries.length;
    if (match > durableIndex) {
      this.checker.recordViolation(`leader ${node.id} counts itself at index ${match}, but its disk holds entries only up to ${durableIndex}`);
    }
  }

  private deliver(message: Message): void {
    const node = this.nodes.get(message.to);
    if (!node || !node.up || node.removed) {
      // The transport's contract: every Snapshot message gets one status report.
      if (message.type === MessageType.Snapshot) this.schedule(1, () => this.reportSnapshot(message, false));
      return;
    }
    this.enqueue(node, () => node.raw!.step(message));
    if (message.type === MessageType.Snapshot) this.schedule(1, () => this.reportSnapshot(message, true));
  }

  private reportSnapshot(message: Message, ok: boolean): void {
    const sender = this.nodes.get(message.from);
    if (sender?.up) this.enqueue(sender, () => sender.raw!.reportSnapshot(message.to, ok));
  }

  // ---------------------------------------------------------------------------
  // Clients

  private clientLoop(): void {
    const live = this.liveNodes();
    if (live.length > 0) {
      const node = live[this.random.below(live.length)]!;
      if (this.random.chance(0.7)) this.propose(node);
      else this.read(node);
    }
    this.schedule(1 + this.random.below(8), () => this.clientLoop());
  }

  private propose(node: SimNode): void {
    const key = `w${this.nextClientId++}`;
    this.enqueue(node, () => {
      const result = node.raw!.propose(encoder.encode(key));
      this.stats.proposals!++;
      if (result.ok) node.proposals.set(result.value.index, { term: result.value.term, key: `data ${key}` });
    });
  }

  private read(node: SimNode): void {
    const context = `r${this.nextClientId++}`;
    const required = this.checker.acknowledgedIndexMax;
    this.enqueue(node, () => {
      const result = node.raw!.readIndex(context);
      this.stats.reads!++;
      if (result.ok) node.reads.set(context, required);
    });
  }

  private readStateArrived(node: SimNode, index: number, context: string, refused: boolean): void {
    if (!node.reads.has(context)) return;
    if (refused) {
      node.reads.delete(context);
      return;
    }
    node.readsWaiting.push({ index, context });
  }

  private serveWaitingReads(node: SimNode): void {
    node.readsWaiting = node.readsWaiting.filter((read) => {
      if (node.appliedIndex < read.index) return true;
      const required = node.reads.get(read.context)!;
      node.reads.delete(read.context);
      this.checker.readServed(node.id, read.context, read.index, required);
      this.stats.readsServed!++;
      return false;
    });
  }

  // ---------------------------------------------------------------------------
  // Faults

  private liveNodes(): SimNode[] {
    return [...this.nodes.values()].filter((node) => node.up && !node.removed);
  }

  private members(): SimNode[] {
    return [...this.nodes.values()].filter((node) => !node.removed);
  }

  private leader(): SimNode | undefined {
    let best: SimNode | undefined;
    for (const node of this.liveNodes()) {
      if (node.raw!.role === Role.Leader && (!best || node.raw!.term > best.raw!.term)) best = node;
    }
    return best;
  }

  private nemesisLoop(): void {
    if (this.healed) return;
    const choice = this.random.below(100);
    if (choice < 25) this.partition();
    else if (choice < 40) this.healNetwork();
    else if (choice < 55) this.crashSomeone();
    else if (choice < 70) this.restartSomeone();
    else if (choice < 85) this.changeMembership();
    else this.transfer();
    this.schedule(this.settings.nemesisIntervalMs, () => this.nemesisLoop());
  }

  private block(from: NodeId, to: NodeId): void {
    this.blocked.add(`${from}>${to}`);
  }

  private partition(): void {
    const ids = this.members().map((node) => node.id);
    this.shuffle(ids);
    this.blocked.clear();
    const shape = this.random.below(6);
    const cut = (groupA: NodeId[], groupB: NodeId[]): void => {
      for (const a of groupA) for (const b of groupB) {
        this.block(a, b);
        this.block(b, a);
      }
    };
    let description: string;
    if (shape === 0 || shape === 5) {
      const target = shape === 5 ? this.leader()?.id ?? ids[0]! : ids[0]!;
      cut([target], ids.filter((id) => id !== target));
      description = `isolate ${target}${shape === 5 ? ' (leader)' : ''}`;
    } else if (shape === 1) {
      const minority = ids.slice(0, Math.floor(ids.length / 2));
      cut(minority, ids.slice(minority.length));
      description = `split [${minority}] | [${ids.slice(minority.length)}]`;
    } else if (shape === 2) {
      // A ring: each node hears only its neighbours, so majorities overlap.
      for (let a = 0; a < ids.length; a++) {
        for (let b = 0; b < ids.length; b++) {
          const distance = Math.min(Math.abs(a - b), ids.length - Math.abs(a - b));
          if (distance > 1) this.block(ids[a]!, ids[b]!);
        }
      }
      description = `ring [${ids}]`;
    } else if (shape === 3) {
      // A bridge: two halves that only one node connects.
      const bridge = ids[0]!;
      const rest = ids.slice(1);
      const half = Math.floor(rest.length / 2);
      cut(rest.slice(0, half), rest.slice(half));
      description = `bridge ${bridge} between [${rest.slice(0, half)}] and [${rest.slice(half)}]`;
    } else {
      // Asymmetric: one node can send but not receive.
      const target = ids[0]!;
      for (const other of ids.slice(1)) this.block(other, target);
      description = `${target} deaf (one-way)`;
    }
    this.stats.partitions!++;
    this.record(`partition: ${description}`);
  }

  private healNetwork(): void {
    this.blocked.clear();
    this.record('network healed');
  }

  /** Faults keep at most two members down at once. */
  private mayCrash(): boolean {
    const live = this.liveNodes();
    return live.length > 0 && this.members().length - live.length < 2;
  }

  private crashSomeone(): void {
    const live = this.liveNodes();
    if (!this.mayCrash()) return;
    const target = this.random.chance(0.4) ? this.leader() ?? live[0]! : live[this.random.below(live.length)]!;
    this.crash(target);
  }

  private restartSomeone(): void {
    const down = this.members().filter((node) => !node.up);
    if (down.length === 0) return;
    this.startNode(down[this.random.below(down.length)]!);
  }

  private changeMembership(): void {
    const leader = this.leader();
    if (!leader) return;
    const status = leader.raw!.status();
    const { voters, learners } = status.config;
    let change: ConfigChange;
    const caughtUp = learners.filter((id) => (status.progress?.[id]?.match ?? 0) >= status.commit);
    if (learners.length > 0 && caughtUp.length > 0 && voters.length < 5 && this.random.chance(0.7)) {
      change = { type: 'add-voter', node: caughtUp[0]! };
    } else if (voters.length > 3 || (learners.length > 0 && this.random.chance(0.3))) {
      const pool = voters.length > 3 ? voters : learners;
      change = { type: 'remove', node: pool[this.random.below(pool.length)]! };
    } else if (learners.length < 2) {
      const node = new SimNode(this.newNodeId());
      this.nodes.set(node.id, node);
      this.startNode(node);
      this.schedule(this.random.below(TICK_MS), () => this.tick(node));
      change = { type: 'add-learner', node: node.id };
    } else return;
    this.enqueue(leader, () => {
      const result = leader.raw!.proposeConfigChange(change);
      this.record(`config change ${change.type} ${change.node} proposed by ${leader.id}: ${result.ok ? 'accepted' : result.refusal.code}`);
      if (!result.ok) return;
      this.stats.configChanges!++;
      if (change.type === 'remove') this.pendingRemovals.push({ node: change.node, ...result.value });
    });
  }

  /** A removal that committed: that node's process is stopped for good. */
  private checkRemovals(): void {
    this.pendingRemovals = this.pendingRemovals.filter((removal) => {
      const committed = this.checker.committed.get(removal.index);
      if (committed === undefined) return true;
      if (committed.term === removal.term) {
        const node = this.nodes.get(removal.node);
        if (node && !node.removed) {
          this.crash(node);
          node.removed = true;
          this.record(`${node.id} removed from the cluster and stopped`);
        }
      }
      return false;
    });
  }

  private transfer(): void {
    const leader = this.leader();
    if (!leader) return;
    const voters = leader.raw!.status().config.voters.filter((id) => id !== leader.id);
    if (voters.length === 0) return;
    const target = voters[this.random.below(voters.length)]!;
    this.stats.transfers!++;
    this.enqueue(leader, () => {
      const result = leader.raw!.transferLeadership(target);
      this.record(`transfer from ${leader.id} to ${target}: ${result.ok ? 'started' : result.refusal.code}`);
    });
  }

  /** Ends the fault phase: the network becomes reliable and every member runs again. */
  private heal(): void {
    this.healed = true;
    this.healTime = this.now;
    this.blocked.clear();
    this.dropRate = 0;
    this.duplicateRate = 0;
    for (const node of this.members()) if (!node.up) this.startNode(node);
    this.record('healed: faults off, every member restarted');
  }

  /** After the heal: a write was acknowledged and every member applied it. */
  private converged(): boolean {
    if (!this.firstAckAfterHeal) return false;
    const leader = this.leader();
    if (!leader) return false;
    const members = leader.raw!.status().config;
    for (const id of [...members.voters, ...members.learners]) {
      const node = this.nodes.get(id);
      if (!node?.up || node.appliedIndex < this.firstAckAfterHeal.index) return false;
    }
    return true;
  }

  private describeNodes(): string {
    return this.members()
      .map((node) => {
        if (!node.up) return `${node.id} down`;
        const status = node.raw!.status();
        const progress = status.progress
          ? ' progress ' + Object.entries(status.progress).map(([id, p]) => `${id}:${p.state}/${p.match}/${p.next}/${p.inflightMessages}${p.recentActive ? '' : ' inactive'}`).join(' ')
          : '';
        return `${node.id} ${status.role} t${status.term} applied ${node.appliedIndex} last ${status.lastIndex} first ${status.firstIndex}${progress}`;
      })
      .join('; ');
  }

  private checkLogMatching(): void {
    const live = this.liveNodes();
    for (let a = 0; a < live.length; a++) {
      for (let b = a + 1; b < live.length; b++) {
        this.checker.logMatching(
          { id: live[a]!.id, log: live[a]!.raw!.raftForInspection.log },
          { id: live[b]!.id, log: live[b]!.raw!.raftForInspection.log },
        );
      }
    }
  }

  private finalChecks(): void {
    this.checkLogMatching();
    this.checker.checkAcknowledged();
    if (this.checker.violations.length > 0) return;
    if (!this.firstAckAfterHeal) {
      this.checker.violations.push(
        `liveness: no write acknowledged within ${this.settings.livenessBoundMs}ms of the heal at ${this.healTime}ms`,
      );
    } else if (!this.converged()) {
      this.checker.violations.push(
        `liveness: members did not all apply index ${this.firstAckAfterHeal.index} within ${this.settings.livenessBoundMs}ms of the heal (${this.describeNodes()})`,
      );
    }
  }

  private shuffle<T>(items: T[]): void {
    for (let k = items.length - 1; k > 0; k--) {
      const j = this.random.below(k + 1);
      [items[k], items[j]] = [items[j]!, items[k]!];
    }
  }
}

function decodeRegister(data: Uint8Array): string {
  return decoder.decode(data);
}

/** Runs one seed to the end and reports what it found. */
export function runSeed(seed: number, overrides: Partial<WorldSettings> = {}): RunResult {
  return new World({ ...settingsForSeed(seed), ...overrides }).run();
}

