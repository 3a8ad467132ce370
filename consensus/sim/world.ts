/**
 * A simulated cluster: real `RaftNode`s (the production driver around the
 * real core) on virtual time, each on an in-memory disk with crash modes and
 * a simulated network, with faults and client traffic drawn from one seed
 * and checked after every event. See docs/internals/raft.md, "The simulator".
 */
import { SeededRandom } from '../core/random.js';
import type { RawNode } from '../core/raw-node.js';
import { EntryType, MessageType, Role, type ClusterConfig, type Entry, type Message, type NodeId, type Ready } from '../core/types.js';
import { RaftNode, type RaftInspector, type RaftOverrides, type StateMachine } from '../node.js';
import { CRASH_MODES, MemoryDisk, MemoryStorage, type DiskOperation } from '../storage-memory.js';
import { SafetyChecker } from './checker.js';
import { SimNetwork } from './network.js';
import { VirtualClock, settle } from './virtual-clock.js';

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
/** Time limit of the clients' requests; a request cut off by a crash never settles. */
const REQUEST_TIMEOUT_MS = 3000;
/**
 * Events per simulated second past which a run is a runaway (a message storm
 * between nodes that never settles); a healthy run handles a few thousand.
 */
const EVENTS_PER_SIMULATED_SECOND_MAX = 100_000;

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
  /** The driver's `snapshotEveryEntries`. */
  compactEveryEntries: number;
  nemesisIntervalMs: number;
  /**
   * The state machine encodes its snapshots in the background (taking
   * simulated time while the node applies on), as the agent's does; false:
   * synchronously.
   */
  backgroundSnapshots: boolean;
  /**
   * Test only: the disk ignores fsync, so synced writes can be lost in a
   * crash. Used to show that the checkers catch a broken node.
   */
  brokenDisk?: boolean;
  /**
   * Test only: the disk reports each write done before it is, so the driver
   * sends each Ready's `messages` (acks, votes) before its write completes.
   * Used to show that the checkers catch it.
   */
  messagesBeforeWrite?: boolean;
  /**
   * Test only: a broken core whose leader counts its own entries as soon as it
   * appends them, not once they are durable. Used to show that the checkers catch it.
   */
  leaderCountsUnwritten?: boolean;
}

/** One simulated machine: its disk outlives its crashes; each start is a new `RaftNode` (a new life). */
class SimNode {
  readonly disk: MemoryDisk;
  /** The current life's node; undefined while the machine is down. */
  raft: RaftNode | undefined;
  up = false;
  removed = false;
  /** Whether a committed configuration named this node: only then can one remove it. */
  member = false;
  /** Bumped at each start; a life whose number is not current is dead (its timers, disk and network calls go nowhere). */
  life = 0;
  lastLeaderTerm = 0;

  constructor(readonly id: NodeId, nowMs: () => number, brokenDisk: boolean) {
    this.disk = new MemoryDisk(nowMs, { ignoresSync: brokenDisk });
  }

  /** The current life's core, once its storage is loaded. */
  get raw(): RawNode | undefined {
    return this.up ? this.raft?.rawForInspection : undefined;
  }
}

/** The replicated register: the last value written. */
class RegisterMachine implements StateMachine {
  register = '';
  snapshotInBackground?: () => Promise<Uint8Array | readonly Uint8Array[]>;

  apply(entry: Entry): unknown {
    this.register = decoder.decode(entry.data);
    return undefined;
  }

  snapshot(): Uint8Array {
    return encoder.encode(this.register);
  }

  restore(data: Uint8Array): void {
    this.register = decoder.decode(data);
  }
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
    backgroundSnapshots: random.chance(0.5),
  };
}


/**
 * A simulated cluster: real RaftNodes over a simulated network and disks,
 * with faults and client traffic drawn from one seed, checked after every event.
 */
export class World {
  private readonly random: SeededRandom;
  private readonly clock = new VirtualClock();
  private readonly network: SimNetwork;
  private readonly nodes = new Map<NodeId, SimNode>();
  private nextNodeNumber = 1;
  readonly checker = new SafetyChecker();
  private readonly trace: string[] = [];
  private nextClientId = 1;
  private healed = false;
  private healTime = 0;
  private firstAckAfterHeal: { index: number } | undefined;
  /** Index of the latest configuration entry acted on (removals). */
  private configIndexSeen = 0;
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
    const faults = { dropRate: settings.dropRate, duplicateRate: settings.duplicateRate, delayMsMax: settings.delayMsMax };
    this.network = new SimNetwork(this.clock, this.random, faults, (message) => this.messageSent(message));
  }

  // ---------------------------------------------------------------------------
  // Running

  async run(): Promise<RunResult> {
    const founders: NodeId[] = [];
    for (let k = 0; k < this.settings.voters; k++) founders.push(this.newNodeId());
    const bootstrap: ClusterConfig = { voters: founders, learners: [] };
    this.record(`settings ${JSON.stringify(this.settings)}`);
    for (const id of founders) {
      const node = this.addNode(id);
      // Founders boot a tick apart at most, so that their ticks do not fall together.
      this.schedule(this.random.below(TICK_MS), () => this.startNode(node, bootstrap));
    }
    this.schedule(1, () => this.clientLoop());
    this.schedule(this.settings.nemesisIntervalMs, () => this.nemesisLoop());
    this.schedule(this.settings.faultPhaseMs, () => this.heal());
    const end = this.settings.faultPhaseMs + this.settings.livenessBoundMs;
    while (this.checker.violations.length === 0) {
      const next = this.clock.nextTimeMs();
      if (next === undefined || next > end) break;
      this.clock.runNext();
      await settle();
      this.afterEvent();
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

  private afterEvent(): void {
    this.eventsHandled++;
    const eventsMax = ((this.clock.nowMs + 1000) / 1000) * EVENTS_PER_SIMULATED_SECOND_MAX;
    if (this.eventsHandled > eventsMax) {
      this.checker.recordViolation(`runaway: ${this.eventsHandled} events in ${this.clock.nowMs} ms simulated (${this.describeNodes()})`);
    }
    for (const node of this.nodes.values()) this.checkLeaderCountsDurable(node);
    if (this.eventsHandled % 500 === 0) this.checkLogMatching();
  }

  private schedule(delayMs: number, action: () => void): void {
    this.clock.schedule(delayMs, action);
  }

  private record(line: string): void {
    this.trace.push(`${String(this.clock.nowMs).padStart(6)}ms ${line}`);
    if (this.trace.length > TRACE_LINES_MAX) this.trace.splice(0, this.trace.length - TRACE_LINES_MAX);
  }

  private newNodeId(): NodeId {
    return `n${this.nextNodeNumber++}`;
  }

  // ---------------------------------------------------------------------------
  // Nodes

  private addNode(id: NodeId): SimNode {
    const node = new SimNode(id, () => this.clock.nowMs, this.settings.brokenDisk === true);
    this.nodes.set(id, node);
    return node;
  }

  private raftOverrides(): RaftOverrides {
    return {
      // Small limits make flow control, batching and refusals happen often.
      messageBytesMax: 64,
      inflightMessagesMax: 4,
      inflightBytesMax: 256,
      uncommittedBytesMax: 512,
      entryBytesMax: 256,
      pendingReadsMax: 8,
      preVote: this.settings.preVote,
      checkQuorum: this.settings.checkQuorum,
    };
  }

  /** Starts a new life of the node's machine from its disk: a new RaftNode, as a process restart makes. */
  private startNode(node: SimNode, bootstrap?: ClusterConfig): void {
    node.life++;
    node.up = true;
    node.lastLeaderTerm = 0;
    const life = node.life;
    const alive = (): boolean => node.up && node.life === life;
    const raft = new RaftNode({
      id: node.id,
      storage: new MemoryStorage({
        disk: node.disk,
        delay: (complete, kind) => this.diskDelay(node, alive, complete, kind),
        reportsBeforeWritten: this.settings.messagesBeforeWrite === true,
      }),
      transport: this.network.transport(node.id, alive),
      stateMachine: this.stateMachine(alive),
      tickMs: TICK_MS,
      raft: this.raftOverrides(),
      seed: this.random.below(2 ** 31),
      snapshotEveryEntries: this.settings.compactEveryEntries,
      requestTimeoutMs: REQUEST_TIMEOUT_MS,
      timers: this.clock.timers(alive),
      readContextPrefix: `${node.id}.${life}`,
      logger: (line) => {
        if (alive()) this.record(line);
      },
      onFatal: (error) => this.checker.recordViolation(`${node.id} stopped after a fatal error: ${error.message}`),
      inspector: this.inspector(node),
    });
    node.raft = raft;
    const loaded = node.disk.load();
    this.record(`${node.id} starting (term ${loaded.hardState.term}, ${loaded.entries.length} entries, snapshot ${loaded.snapshot?.meta.index ?? 0})`);
    raft.start(bootstrap === undefined ? {} : { bootstrap }).catch((error: unknown) => {
      if (alive()) this.checker.recordViolation(`${node.id} failed to start: ${String(error)}`);
    });
  }

  private stateMachine(alive: () => boolean): StateMachine {
    const machine = new RegisterMachine();
    if (this.settings.backgroundSnapshots) {
      // Encoded now, handed over later: apply may run meanwhile and must not change it. Half the snapshots (by
      // their size, so that no draw changes a seed's run) come in three pieces, one of them empty when the data is short.
      machine.snapshotInBackground = () => {
        const whole = machine.snapshot();
        const third = Math.floor(whole.length / 3);
        const data = whole.length % 2 === 0 ? whole : [whole.subarray(0, third), whole.subarray(third, 2 * third), whole.subarray(2 * third)];
        return new Promise((resolve) => this.schedule(1 + this.random.below(20), () => {
          if (alive()) resolve(data);
        }));
      };
    }
    return machine;
  }

  private inspector(node: SimNode): RaftInspector {
    return {
      readyTaken: (ready: Ready, raw: RawNode) => {
        this.checker.entriesSeen(node.id, ready.entries);
        if (raw.role === Role.Leader && node.lastLeaderTerm !== raw.term) {
          node.lastLeaderTerm = raw.term;
          this.stats.elections!++;
          this.checker.leaderElected(node.id, raw.term, raw.raftForInspection.log);
        }
      },
      entryApplied: (entry: Entry, raw: RawNode) => {
        this.checker.applied(node.id, entry);
        if (entry.index > raw.stableIndex) this.maybeCrashAfterApplyAhead(node);
        if (entry.type === EntryType.Config) this.configCommitted(entry);
      },
    };
  }

  /** How long a disk operation takes, and the crash that may strike while it is in flight. */
  private diskDelay(node: SimNode, alive: () => boolean, complete: () => void, kind: DiskOperation['kind']): void {
    const latency = this.random.chance(0.05) ? 5 + this.random.below(20) : 1 + this.random.below(2);
    this.schedule(latency, () => {
      if (!alive()) return;
      if (kind === 'compact') this.stats.compactions!++;
      complete();
    });
    if (!this.healed && this.random.chance(CRASH_DURING_WRITE_CHANCE) && this.mayCrash()) {
      this.schedule(this.random.below(latency), () => {
        // Crashes stop at the heal: every member must then stay up.
        if (!alive() || this.healed) return;
        this.record(`${node.id} crashes with a disk ${kind} in flight`);
        this.crash(node);
      });
    }
  }

  /** The machine stops at once: its RaftNode is abandoned mid-flight, its disk keeps what the crash mode lets it. */
  private crash(node: SimNode): void {
    if (!node.up) return;
    node.up = false;
    node.raft = undefined;
    const mode = CRASH_MODES[this.random.below(CRASH_MODES.length)]!;
    node.disk.crash(mode, this.random);
    this.stats.crashes!++;
    this.record(`${node.id} crashed (${mode})`);
  }

  private maybeCrashAfterApplyAhead(node: SimNode): void {
    if (this.healed || !this.random.chance(CRASH_AFTER_APPLY_AHEAD_CHANCE) || !this.mayCrash()) return;
    const life = node.life;
    this.schedule(0, () => {
      if (node.life !== life || !node.up || this.healed) return;
      this.record(`${node.id} crashes having applied entries beyond its disk (${node.raw?.stableIndex})`);
      this.crash(node);
      this.schedule(1 + this.random.below(30), () => {
        if (!node.up && !node.removed && !this.healed) this.startNode(node);
      });
    });
  }

  /**
   * A configuration entry was applied (so committed): nodes it names are
   * members; a member it no longer names was removed, and its process is
   * stopped for good. Entries older than the latest acted on are ignored
   * (a lagging node applies them late).
   */
  private configCommitted(entry: Entry): void {
    if (entry.index <= this.configIndexSeen) return;
    this.configIndexSeen = entry.index;
    const config = entry.config!;
    const named = new Set([...config.voters, ...config.learners]);
    for (const node of this.nodes.values()) {
      if (named.has(node.id)) node.member = true;
      else if (node.member && !node.removed) {
        node.removed = true;
        // Not from inside the applying node's loop: at the next event.
        this.schedule(0, () => {
          this.crash(node);
          this.record(`${node.id} removed from the cluster and stopped`);
        });
      }
    }
  }

  // ---------------------------------------------------------------------------
  // Network

  private messageSent(message: Message): void {
    this.checkPromiseDurable(message);
    this.stats.messages!++;
    if (message.type === MessageType.Snapshot) this.stats.snapshotsSent!++;
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
      const durableIndex = disk.writtenLastIndex;
      if (message.index > durableIndex) {
        this.checker.recordViolation(
          `${message.from} acknowledged entries up to ${message.index} to ${message.to}, but its disk holds them only up to ${durableIndex}`,
        );
      }
    } else if (message.type === MessageType.VoteResponse && !this.settings.brokenDisk) {
      // A disk at a later term also keeps the promise: terms only grow, so this node can never
      // vote in the message's term again (two vote requests stepped before one write do this).
      const hardState = disk.writtenHardState;
      const kept = hardState.term > message.term || (hardState.term === message.term && hardState.vote === message.to);
      if (!kept) {
        this.checker.recordViolation(
          `${message.from} granted its vote in term ${message.term} to ${message.to}, but its disk holds term ${hardState.term}, vote "${hardState.vote}"`,
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
    if (raw === undefined || raw.role !== Role.Leader) return;
    const self = raw.raftForInspection.progress.get(node.id);
    if (this.settings.leaderCountsUnwritten) self?.maybeUpdate(raw.raftForInspection.log.lastIndex());
    const match = self?.match ?? 0;
    const durableIndex = node.disk.writtenLastIndex;
    if (match > durableIndex) {
      this.checker.recordViolation(`leader ${node.id} counts itself at index ${match}, but its disk holds entries only up to ${durableIndex}`);
    }
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
    this.stats.proposals!++;
    node.raft!.propose(encoder.encode(key)).then(
      ({ index }) => this.acknowledged(index, `data ${key}`),
      () => {},
    );
  }

  /** A client heard "ok" for its write at `index`. */
  private acknowledged(index: number, key: string): void {
    this.checker.acknowledge(index, key);
    this.stats.acknowledged!++;
    if (this.healed && this.firstAckAfterHeal === undefined) {
      this.firstAckAfterHeal = { index };
      this.record(`first write acknowledged after the heal, at index ${index}`);
    }
  }

  private read(node: SimNode): void {
    const context = `r${this.nextClientId++}`;
    const required = this.checker.acknowledgedIndexMax;
    this.stats.reads!++;
    node.raft!.read().then(
      (index) => {
        this.checker.readServed(node.id, context, index, required);
        this.stats.readsServed!++;
      },
      () => {},
    );
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
      const raw = node.raw;
      if (raw?.role === Role.Leader && (!best || raw.term > best.raw!.term)) best = node;
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

  private partition(): void {
    const ids = this.members().map((node) => node.id);
    this.shuffle(ids);
    this.network.unblockAll();
    const block = (from: NodeId, to: NodeId): void => this.network.block(from, to);
    const shape = this.random.below(6);
    const cut = (groupA: NodeId[], groupB: NodeId[]): void => {
      for (const a of groupA) for (const b of groupB) {
        block(a, b);
        block(b, a);
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
          if (distance > 1) block(ids[a]!, ids[b]!);
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
      for (const other of ids.slice(1)) block(other, target);
      description = `${target} deaf (one-way)`;
    }
    this.stats.partitions!++;
    this.record(`partition: ${description}`);
  }

  private healNetwork(): void {
    this.network.unblockAll();
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

  /** Membership changes through the leader's own requests (`addLearner`, `addVoter`, `removeNode`). */
  private changeMembership(): void {
    const leader = this.leader();
    if (!leader) return;
    const raft = leader.raft!;
    const status = leader.raw!.status();
    const { voters, learners } = status.config;
    const caughtUp = learners.filter((id) => (status.progress?.[id]?.match ?? 0) >= status.commit);
    let what: string;
    let request: Promise<unknown>;
    if (learners.length > 0 && caughtUp.length > 0 && voters.length < 5 && this.random.chance(0.7)) {
      what = `add-voter ${caughtUp[0]!}`;
      request = raft.addVoter(caughtUp[0]!);
    } else if (voters.length > 3 || (learners.length > 0 && this.random.chance(0.3))) {
      const pool = voters.length > 3 ? voters : learners;
      const target = pool[this.random.below(pool.length)]!;
      what = `remove ${target}`;
      request = raft.removeNode(target);
    } else if (learners.length < 2) {
      const node = this.addNode(this.newNodeId());
      this.startNode(node);
      what = `add-learner ${node.id}`;
      request = raft.addLearner(node.id, `sim:${node.id}`);
    } else return;
    this.record(`config change ${what} asked of ${leader.id}`);
    request.then(
      () => {
        this.stats.configChanges!++;
        this.record(`config change ${what} committed`);
      },
      (error: { code?: string }) => this.record(`config change ${what} by ${leader.id}: ${error.code ?? String(error)}`),
    );
  }

  private transfer(): void {
    const leader = this.leader();
    if (!leader) return;
    const voters = leader.raw!.status().config.voters.filter((id) => id !== leader.id);
    if (voters.length === 0) return;
    const target = voters[this.random.below(voters.length)]!;
    this.stats.transfers!++;
    this.record(`transfer from ${leader.id} to ${target} asked`);
    leader.raft!.transferLeadership(target).then(
      () => this.record(`transfer from ${leader.id} to ${target}: done`),
      (error: { code?: string }) => this.record(`transfer from ${leader.id} to ${target}: ${error.code ?? String(error)}`),
    );
  }

  /** Ends the fault phase: the network becomes reliable and every member runs again. */
  private heal(): void {
    this.healed = true;
    this.healTime = this.clock.nowMs;
    this.network.unblockAll();
    this.network.faults.dropRate = 0;
    this.network.faults.duplicateRate = 0;
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
      const raw = this.nodes.get(id)?.raw;
      if (raw === undefined || raw.status().applied < this.firstAckAfterHeal.index) return false;
    }
    return true;
  }

  private describeNodes(): string {
    return this.members()
      .map((node) => {
        const raw = node.raw;
        if (raw === undefined) return `${node.id} ${node.up ? 'starting' : 'down'}`;
        const status = raw.status();
        const progress = status.progress
          ? ' progress ' + Object.entries(status.progress).map(([id, p]) => `${id}:${p.state}/${p.match}/${p.next}/${p.inflightMessages}${p.recentActive ? '' : ' inactive'}`).join(' ')
          : '';
        return `${node.id} ${status.role} t${status.term} applied ${status.applied} last ${status.lastIndex} first ${status.firstIndex}${progress}`;
      })
      .join('; ');
  }

  private checkLogMatching(): void {
    const live = this.liveNodes().filter((node) => node.raw !== undefined);
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

/** Runs one seed to the end and reports what it found. */
export function runSeed(seed: number, overrides: Partial<WorldSettings> = {}): Promise<RunResult> {
  return new World({ ...settingsForSeed(seed), ...overrides }).run();
}
