/**
 * A deterministic, in-memory cluster of RawNodes for behaviour tests of the
 * Raft core, and the interpreter of the data-driven scripts in `testdata/`.
 *
 * The test owns everything a driver would: time (`tick`), the network (a FIFO
 * queue of messages it delivers, drops or holds back), each node's disk (a
 * plain record written from every Ready) and each node's state machine (the
 * list of applied payloads). There are no timers, sockets or random choices:
 * each node's "random" election jitter is a fixed number the test sets.
 *
 * A Ready is handled at once and in full, in the order `types.ts` prescribes
 * (send `messagesEarly`; persist; send `messages`; restore and apply; read
 * states; advance), unless the node is held: then its `messagesEarly` go out,
 * the rest of the Ready waits for `release`, and whatever reaches the node
 * meanwhile waits in its inbox. The harness is a synchronous driver (one
 * Ready at a time); the real driver pipelines Readys, and the simulator
 * covers that.
 *
 * Everything observable is written as one-line records to the cluster's
 * output (delivered and dropped messages, role and term changes, applied
 * entries, read states), in the style of etcd-io/raft's interaction tests:
 *   a->b Append term=2 index=3 logTerm=2 entries=[4/2] commit=3
 */
import { RawNode, bootstrapState } from '../core/raw-node.js';
import {
  DEFAULT_OPTIONS,
  EntryType,
  MessageType,
  NO_NODE,
  Role,
  type ClusterConfig,
  type ConfigChange,
  type Entry,
  type HardState,
  type Message,
  type NodeId,
  type RaftOptions,
  type Ready,
  type Refusal,
  type Result,
  type Snapshot,
} from '../core/types.js';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The tunable limits and timings shared by every node of a harness cluster. */
export type HarnessOptions = Pick<
  RaftOptions,
  | 'electionTimeoutTicks'
  | 'heartbeatIntervalTicks'
  | 'messageBytesMax'
  | 'inflightMessagesMax'
  | 'inflightBytesMax'
  | 'uncommittedBytesMax'
  | 'entryBytesMax'
  | 'pendingReadsMax'
  | 'preVote'
  | 'checkQuorum'
>;

const NUMERIC_OPTIONS = [
  'electionTimeoutTicks',
  'heartbeatIntervalTicks',
  'messageBytesMax',
  'inflightMessagesMax',
  'inflightBytesMax',
  'uncommittedBytesMax',
  'entryBytesMax',
  'pendingReadsMax',
] as const;
const BOOLEAN_OPTIONS = ['preVote', 'checkQuorum'] as const;

/** What one node's fake disk holds: exactly what its handled Readies wrote. */
export interface FakeDisk {
  hardState: HardState;
  snapshot?: Snapshot;
  entries: Entry[];
}

/** Picks messages in the network queue; an absent field matches anything. */
export interface MessageFilter {
  from?: NodeId;
  to?: NodeId;
  type?: MessageType;
}

/** A message in the network: `dropped` when its link was cut as it was sent. */
interface InFlight {
  message: Message;
  dropped: boolean;
}

/** Thrown for a misuse of the harness by a test (not for a refusal by the core). */
export class HarnessError extends Error {}

/** One node: its RawNode (absent while crashed), disk, state machine and driver state. */
export class HarnessNode {
  raw: RawNode | undefined;
  disk: FakeDisk = { hardState: { term: 0, vote: NO_NODE, commit: 0 }, entries: [] };
  /** The state machine: the payloads of applied non-empty Normal entries, in order. */
  values: string[] = [];
  appliedIndex = 0;
  /** The fixed value this node's "random" source returns: election timeout = base + jitter. */
  jitter = 0;
  /** While true, a Ready is taken but not finished until `release`. */
  hold = false;
  heldReady: Ready | undefined;
  /** Calls that arrived while a Ready was held, run in order at release. */
  inbox: (() => void)[] = [];
  /** The role, term, vote and leader last written to the output. */
  shown = { role: Role.Follower as Role, term: 0, vote: NO_NODE, leader: NO_NODE };

  constructor(readonly id: NodeId) {}

  get up(): boolean {
    return this.raw !== undefined;
  }
}

/** The cluster: nodes, network, output. Every method handles the Readies it causes. */
export class RaftCluster {
  readonly nodes = new Map<NodeId, HarnessNode>();
  /** Sent, not yet delivered, in send order. */
  private network: InFlight[] = [];
  /** Cut links, as "from>to". */
  private readonly cuts = new Set<string>();
  private output: string[] = [];
  /** Lines from the cores' loggers (printed to stderr when RAFT_TRACE is set). */
  readonly coreLog: string[] = [];
  readonly options: HarnessOptions;
  /** Deliveries so far, for tests that count round trips. */
  delivered: Message[] = [];

  constructor(voters: NodeId[], options: Partial<HarnessOptions> & { learners?: NodeId[] } = {}) {
    const { learners = [], ...limits } = options;
    this.options = { ...DEFAULT_OPTIONS, ...limits };
    const bootstrap = bootstrapState({ voters, learners });
    for (const id of [...voters, ...learners]) {
      const node = new HarnessNode(id);
      node.disk = { hardState: { ...bootstrap.hardState }, entries: bootstrap.entries.slice() };
      this.nodes.set(id, node);
      // The bootstrap configuration entry is already in force: nothing to apply.
      this.start(node, 1);
    }
  }

  // ---------------------------------------------------------------------------
  // Output

  /** Returns the output lines written since the last call, and forgets them. */
  take(): string[] {
    const lines = this.output;
    this.output = [];
    return lines;
  }

  private write(line: string): void {
    this.output.push(line);
  }

  // ---------------------------------------------------------------------------
  // Nodes

  node(id: NodeId): HarnessNode {
    const node = this.nodes.get(id);
    if (!node) throw new HarnessError(`no node ${id}`);
    return node;
  }

  /** The RawNode of a running node, for inspection. */
  raw(id: NodeId): RawNode {
    const raw = this.node(id).raw;
    if (!raw) throw new HarnessError(`${id} is down`);
    return raw;
  }

  private raftOptions(node: HarnessNode, applied: number): RaftOptions {
    return {
      ...this.options,
      id: node.id,
      random: { below: (n: number) => Math.max(0, Math.min(node.jitter, n - 1)) },
      applied,
      logger: (line) => {
        this.coreLog.push(line);
        if (process.env.RAFT_TRACE) console.error(line);
      },
    };
  }

  /** Starts (or restarts) `node` from its disk; its state machine is rebuilt from the snapshot. */
  private start(node: HarnessNode, applied?: number): void {
    const disk = node.disk;
    const snapshotIndex = disk.snapshot?.meta.index ?? 0;
    const restored = {
      hardState: { ...disk.hardState },
      entries: disk.entries.slice(),
      ...(disk.snapshot ? { snapshot: disk.snapshot } : {}),
    };
    node.raw = new RawNode(this.raftOptions(node, applied ?? snapshotIndex), restored);
    node.values = disk.snapshot ? decodeValues(disk.snapshot.data) : [];
    node.appliedIndex = applied ?? snapshotIndex;
    node.heldReady = undefined;
    node.hold = false;
    node.inbox = [];
    const status = node.raw.status();
    node.shown = { role: status.role, term: status.term, vote: status.vote, leader: status.leader };
    this.process(node);
  }

  /** Adds a node with an empty disk (as a new machine joining), or returns the existing one. */
  ensureNode(id: NodeId): HarnessNode {
    const existing = this.nodes.get(id);
    if (existing) return existing;
    const node = new HarnessNode(id);
    this.nodes.set(id, node);
    this.start(node);
    return node;
  }

  /** The node loses its memory, its held Ready and its inbox; its disk survives. */
  crash(id: NodeId): void {
    const node = this.node(id);
    if (!node.up) throw new HarnessError(`${id} is already down`);
    node.raw = undefined;
    node.heldReady = undefined;
    node.inbox = [];
    this.write(`${id}: crashed`);
  }

  restart(id: NodeId): void {
    const node = this.node(id);
    if (node.up) throw new HarnessError(`${id} is up; crash it first`);
    const hardState = node.disk.hardState;
    const snapshotIndex = node.disk.snapshot?.meta.index ?? 0;
    const lastIndex = snapshotIndex + node.disk.entries.length;
    this.write(
      `${id}: restarted term=${hardState.term} vote=${hardState.vote || '-'} commit=${hardState.commit} ` +
        `snapshot=${snapshotIndex} lastIndex=${lastIndex}`,
    );
    this.start(node);
  }

  /**
   * Runs `action` on the node's RawNode now, or after the held Ready is
   * released, and then handles the Readies it causes.
   */
  private enqueue(node: HarnessNode, action: (raw: RawNode) => void): void {
    if (!node.raw) return;
    if (node.heldReady) {
      node.inbox.push(() => action(node.raw!));
      return;
    }
    action(node.raw);
    this.process(node);
  }

  /** Like `enqueue` for calls whose result the test needs at once. */
  private call<T>(id: NodeId, action: (raw: RawNode) => T): T {
    const node = this.node(id);
    if (!node.raw) throw new HarnessError(`${id} is down`);
    if (node.heldReady) throw new HarnessError(`${id} is holding a Ready; release it first`);
    const result = action(node.raw);
    this.process(node);
    return result;
  }

  // ---------------------------------------------------------------------------
  // The driver: handling a Ready

  private process(node: HarnessNode): void {
    const raw = node.raw;
    if (!raw || node.heldReady) return;
    while (raw.hasReady()) {
      const ready = raw.ready();
      this.showState(node, ready);
      this.sendAll(ready.messagesEarly);
      if (node.hold) {
        node.heldReady = ready;
        return;
      }
      this.finishReady(node, ready);
    }
  }

  private finishReady(node: HarnessNode, ready: Ready): void {
    persist(node.disk, ready);
    this.sendAll(ready.messages);
    if (ready.snapshot) {
      node.values = decodeValues(ready.snapshot.data);
      node.appliedIndex = ready.snapshot.meta.index;
      this.write(`${node.id}: installed snapshot ${ready.snapshot.meta.index}/${ready.snapshot.meta.term}`);
    }
    if (ready.committedEntries.length > 0) {
      for (const entry of ready.committedEntries) {
        if (entry.index !== node.appliedIndex + 1) {
          throw new HarnessError(`${node.id} applies ${entry.index} after ${node.appliedIndex}`);
        }
        node.appliedIndex = entry.index;
        if (entry.type === EntryType.Normal && entry.data.length > 0) node.values.push(decoder.decode(entry.data));
      }
      this.write(`${node.id}: applied ${ready.committedEntries.map(renderEntry).join(', ')}`);
    }
    for (const read of ready.readStates) {
      this.write(`${node.id}: read ${read.context} ${read.refused ? 'refused' : `index=${read.index}`}`);
    }
    node.raw!.advance(ready);
  }

  private showState(node: HarnessNode, ready: Ready): void {
    const next = {
      role: ready.softState?.role ?? node.shown.role,
      leader: ready.softState?.leader ?? node.shown.leader,
      term: ready.hardState?.term ?? node.shown.term,
      vote: ready.hardState?.vote ?? node.shown.vote,
    };
    const shown = node.shown;
    if (next.role === shown.role && next.leader === shown.leader && next.term === shown.term && next.vote === shown.vote) {
      return;
    }
    node.shown = next;
    this.write(`${node.id}: ${next.role} term=${next.term} vote=${next.vote || '-'} leader=${next.leader || '-'}`);
  }

  /** Stops finishing `id`'s Readies: the next one is taken and its `messagesEarly` sent, the rest waits. */
  hold(id: NodeId): void {
    this.node(id).hold = true;
  }

  /** Finishes the held Ready (persist, send, apply), then runs what waited in the inbox. */
  release(id: NodeId): void {
    const node = this.node(id);
    node.hold = false;
    const ready = node.heldReady;
    if (!ready || !node.raw) return;
    node.heldReady = undefined;
    this.finishReady(node, ready);
    const waiting = node.inbox;
    node.inbox = [];
    for (const action of waiting) action();
    this.process(node);
  }

  // ---------------------------------------------------------------------------
  // Requests

  tick(id: NodeId, count = 1): void {
    const node = this.node(id);
    for (let k = 0; k < count; k++) this.enqueue(node, (raw) => raw.tick());
  }

  campaign(id: NodeId): void {
    this.enqueue(this.node(id), (raw) => raw.campaign());
  }

  propose(id: NodeId, data: string): Result<{ index: number; term: number }> {
    return this.call(id, (raw) => raw.propose(encoder.encode(data)));
  }

  proposeConfigChange(id: NodeId, change: ConfigChange): Result<{ index: number; term: number }> {
    const result = this.call(id, (raw) => raw.proposeConfigChange(change));
    // The new member's machine starts (empty) as soon as the change is in the log.
    if (result.ok && change.type !== 'remove') this.ensureNode(change.node);
    return result;
  }

  readIndex(id: NodeId, context: string): Result<void> {
    return this.call(id, (raw) => raw.readIndex(context));
  }

  transfer(id: NodeId, to: NodeId): Result<void> {
    return this.call(id, (raw) => raw.transferLeadership(to));
  }

  reportUnreachable(id: NodeId, peer: NodeId): void {
    this.call(id, (raw) => raw.reportUnreachable(peer));
  }

  /**
   * Snapshots `id`'s state machine at `index` (default: everything applied),
   * writes it to the disk and compacts the log, as an application would.
   */
  compact(id: NodeId, index?: number): Snapshot {
    const node = this.node(id);
    const at = index ?? node.appliedIndex;
    if (at !== node.appliedIndex) throw new HarnessError(`${id} can only snapshot its applied index ${node.appliedIndex}`);
    return this.call(id, (raw) => {
      const snapshot = raw.snapshotAt(at, encodeValues(node.values));
      node.disk.snapshot = snapshot;
      node.disk.entries = node.disk.entries.filter((entry) => entry.index > at);
      raw.compact(snapshot);
      return snapshot;
    });
  }

  /** The running node that leads in the highest term, if any. */
  leader(): NodeId | undefined {
    let best: { id: NodeId; term: number } | undefined;
    for (const node of this.nodes.values()) {
      const raw = node.raw;
      if (raw?.role === Role.Leader && (!best || raw.term > best.term)) best = { id: node.id, term: raw.term };
    }
    return best?.id;
  }

  // ---------------------------------------------------------------------------
  // Network

  private sendAll(messages: Message[]): void {
    for (const message of messages) {
      this.network.push({ message, dropped: this.cuts.has(`${message.from}>${message.to}`) });
    }
  }

  /** Cuts every link to and from `id`; messages sent over a cut link are lost. */
  isolate(id: NodeId): void {
    for (const other of this.nodes.keys()) {
      if (other === id) continue;
      this.cuts.add(`${id}>${other}`);
      this.cuts.add(`${other}>${id}`);
    }
  }

  /** Cuts the links between `a` and `b`, both ways. */
  cut(a: NodeId, b: NodeId): void {
    this.cuts.add(`${a}>${b}`);
    this.cuts.add(`${b}>${a}`);
  }

  /** Restores every link. Messages already lost stay lost. */
  heal(): void {
    this.cuts.clear();
  }

  /** The messages in the network, in send order. */
  pending(filter: MessageFilter = {}): Message[] {
    return this.network.filter((flight) => matches(flight.message, filter)).map((flight) => flight.message);
  }

  /** Delivers the queued messages that match (not the ones they cause); returns how many. */
  deliver(filter: MessageFilter = {}): number {
    const chosen = this.network.filter((flight) => matches(flight.message, filter));
    this.network = this.network.filter((flight) => !matches(flight.message, filter));
    for (const flight of chosen) this.deliverOne(flight);
    return chosen.length;
  }

  /** Loses the queued messages that match; returns how many. */
  drop(filter: MessageFilter = {}): number {
    const chosen = this.network.filter((flight) => matches(flight.message, filter));
    this.network = this.network.filter((flight) => !matches(flight.message, filter));
    for (const flight of chosen) this.lose(flight.message, 'dropped');
    return chosen.length;
  }

  /** Delivers messages, including the ones they cause, until the network is empty. */
  stabilize(deliveriesMax = 10_000): void {
    let deliveries = 0;
    while (this.network.length > 0) {
      if (++deliveries > deliveriesMax) throw new HarnessError(`no quiet after ${deliveriesMax} deliveries`);
      this.deliverOne(this.network.shift()!);
    }
  }

  private deliverOne(flight: InFlight): void {
    const message = flight.message;
    const target = this.nodes.get(message.to);
    if (flight.dropped) return this.lose(message, 'dropped');
    if (!target?.up) return this.lose(message, 'dropped: down');
    this.write(renderMessage(message));
    this.delivered.push(message);
    this.enqueue(target, (raw) => raw.step(message));
    // The transport's contract: each Snapshot message gets one status report.
    if (message.type === MessageType.Snapshot) this.reportSnapshot(message, true);
  }

  private lose(message: Message, why: string): void {
    this.write(`${renderMessage(message)} (${why})`);
    if (message.type === MessageType.Snapshot) this.reportSnapshot(message, false);
  }

  private reportSnapshot(message: Message, ok: boolean): void {
    const sender = this.nodes.get(message.from);
    if (!sender?.up) return;
    this.write(`${message.from}: snapshot to ${message.to} reported ${ok ? 'ok' : 'failed'}`);
    this.enqueue(sender, (raw) => raw.reportSnapshot(message.to, ok));
  }

  // ---------------------------------------------------------------------------
  // Inspection

  /** A node's role, term, indexes, configuration and (on a leader) each follower's progress. */
  status(id: NodeId): string[] {
    const node = this.node(id);
    if (!node.raw) return [`${id}: down`];
    const status = node.raw.status();
    const lines = [
      `${id}: ${status.role} term=${status.term} vote=${status.vote || '-'} leader=${status.leader || '-'} ` +
        `commit=${status.commit} applied=${status.applied} log=${status.firstIndex}..${status.lastIndex} ` +
        `voters=${renderIds(status.config.voters)} learners=${renderIds(status.config.learners)}` +
        (status.transferee ? ` transferee=${status.transferee}` : '') +
        (status.silentTicks > 0 ? ` silent=${status.silentTicks}` : ''),
    ];
    for (const [peer, progress] of Object.entries(status.progress ?? {})) {
      lines.push(
        `  ${peer}: match=${progress.match} next=${progress.next} ${progress.state}` +
          ` inflight=${progress.inflightMessages}/${progress.inflightBytes}B` +
          (progress.recentActive ? ' active' : '') +
          (progress.learner ? ' learner' : ''),
      );
    }
    return lines;
  }

  /** A node's log as its core holds it, with what it has applied. */
  log(id: NodeId): string[] {
    const node = this.node(id);
    if (!node.raw) {
      const disk = node.disk;
      const snapshot = disk.snapshot ? `snapshot=${disk.snapshot.meta.index}/${disk.snapshot.meta.term} ` : '';
      return [
        `${id}: down; on disk: ${snapshot}term=${disk.hardState.term} vote=${disk.hardState.vote || '-'} commit=${disk.hardState.commit}`,
        `  ${disk.entries.map(renderEntry).join(', ') || '(empty)'}`,
      ];
    }
    const log = node.raw.raftForInspection.log;
    const entries: string[] = [];
    for (let index = log.firstIndex(); index <= log.lastIndex(); index++) entries.push(renderEntry(log.entry(index)));
    const snapshot = log.snapshotMeta.index > 0 ? `snapshot=${log.snapshotMeta.index}/${log.snapshotMeta.term} ` : '';
    return [
      `${id}: ${snapshot}commit=${log.commit} applied=${log.applied} values=[${node.values.join(',')}]`,
      `  ${entries.join(', ') || '(empty)'}`,
    ];
  }
}

// -----------------------------------------------------------------------------
// Rendering

const TYPE_NAMES: Record<MessageType, string> = {
  [MessageType.Vote]: 'Vote',
  [MessageType.VoteResponse]: 'VoteResponse',
  [MessageType.PreVote]: 'PreVote',
  [MessageType.PreVoteResponse]: 'PreVoteResponse',
  [MessageType.Append]: 'Append',
  [MessageType.AppendResponse]: 'AppendResponse',
  [MessageType.Heartbeat]: 'Heartbeat',
  [MessageType.HeartbeatResponse]: 'HeartbeatResponse',
  [MessageType.Snapshot]: 'Snapshot',
  [MessageType.ReadIndex]: 'ReadIndex',
  [MessageType.ReadIndexResponse]: 'ReadIndexResponse',
  [MessageType.TimeoutNow]: 'TimeoutNow',
};

/** Message type by name, for script filters (`type=Append`). */
export function messageTypeNamed(name: string): MessageType {
  for (const [type, typeName] of Object.entries(TYPE_NAMES)) if (typeName === name) return Number(type) as MessageType;
  throw new HarnessError(`unknown message type ${name}`);
}

function renderIds(ids: readonly NodeId[]): string {
  return ids.length > 0 ? ids.join(',') : '-';
}

function renderConfig(config: ClusterConfig): string {
  return `voters=${renderIds(config.voters)}` + (config.learners.length > 0 ? ` learners=${renderIds(config.learners)}` : '');
}

/** `3/2 "hello"`, `2/2 noop`, `1/1 config voters=a,b,c`; long payloads by size. */
export function renderEntry(entry: Entry): string {
  const at = `${entry.index}/${entry.term}`;
  if (entry.type === EntryType.Config) return `${at} config ${renderConfig(entry.config!)}`;
  if (entry.data.length === 0) return `${at} noop`;
  if (entry.data.length > 16) return `${at} <${entry.data.length}B>`;
  return `${at} ${JSON.stringify(decoder.decode(entry.data))}`;
}

/** One line per message, etcd-io/raft style: `from->to Type term=... fields`. */
export function renderMessage(message: Message): string {
  const head = `${message.from}->${message.to} ${TYPE_NAMES[message.type]} term=${message.term}`;
  const context = message.context ? ` context=${message.context}` : '';
  const reject = message.reject ? ' reject' : '';
  switch (message.type) {
    case MessageType.Vote:
    case MessageType.PreVote:
      return `${head} index=${message.index} logTerm=${message.logTerm}${message.transfer ? ' transfer' : ''}`;
    case MessageType.VoteResponse:
    case MessageType.PreVoteResponse:
      return `${head}${reject}`;
    case MessageType.Append: {
      const entries = message.entries.map((entry) => `${entry.index}/${entry.term}`).join(',');
      return `${head} index=${message.index} logTerm=${message.logTerm} entries=[${entries}] commit=${message.commit}`;
    }
    case MessageType.AppendResponse:
      return message.reject
        ? `${head} index=${message.index} reject hint=${message.rejectHintIndex}/${message.rejectHintTerm}`
        : `${head} index=${message.index}`;
    case MessageType.Heartbeat:
      return `${head} commit=${message.commit}${context}`;
    case MessageType.HeartbeatResponse:
      return `${head}${context}`;
    case MessageType.Snapshot: {
      const meta = message.snapshot?.meta;
      return meta ? `${head} snapshot=${meta.index}/${meta.term} ${renderConfig(meta.config)}` : `${head} snapshot=none`;
    }
    case MessageType.ReadIndex:
      return `${head}${context}`;
    case MessageType.ReadIndexResponse:
      return `${head} index=${message.index}${context}${reject}`;
    case MessageType.TimeoutNow:
      return head;
  }
}

/** `refused <code> key=value ...`, one line, for script output. */
export function renderRefusal(refusal: Refusal): string {
  const { code, ...details } = refusal;
  const fields = Object.entries(details).map(([key, value]) => ` ${key}=${typeof value === 'string' ? value || '-' : value}`);
  return `refused ${code}${fields.join('')}`;
}

function matches(message: Message, filter: MessageFilter): boolean {
  return (
    (filter.from === undefined || message.from === filter.from) &&
    (filter.to === undefined || message.to === filter.to) &&
    (filter.type === undefined || message.type === filter.type)
  );
}

/** Writes a Ready to the disk: snapshot, then entries (replacing any at or after the first), then hard state. */
function persist(disk: FakeDisk, ready: Ready): void {
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
  if (ready.hardState) disk.hardState = { ...ready.hardState };
}

function encodeValues(values: string[]): Uint8Array {
  return encoder.encode(JSON.stringify(values));
}

function decodeValues(data: Uint8Array): string[] {
  return data.length === 0 ? [] : (JSON.parse(decoder.decode(data)) as string[]);
}

// -----------------------------------------------------------------------------
// The script interpreter

/** One command of a script, with the text before it and the output block after it. */
export interface ScriptStep {
  /** Comment and blank lines before the command, kept when the file is rewritten. */
  before: string[];
  command: string;
  /** 1-based line number of the command. */
  line: number;
  expected: string[];
}

/** Parses a script: `command` line, `----`, output lines up to a blank line; `#` lines are comments. */
export function parseScript(text: string): { steps: ScriptStep[]; after: string[] } {
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  const steps: ScriptStep[] = [];
  let before: string[] = [];
  let k = 0;
  while (k < lines.length) {
    const line = lines[k]!;
    if (line.trim() === '' || line.startsWith('#')) {
      before.push(line);
      k++;
      continue;
    }
    const step: ScriptStep = { before, command: line, line: k + 1, expected: [] };
    before = [];
    k++;
    if (lines[k] !== '----') throw new HarnessError(`line ${k + 1}: expected ---- after the command "${line}"`);
    k++;
    while (k < lines.length && lines[k] !== '') step.expected.push(lines[k++]!);
    steps.push(step);
  }
  return { steps, after: before };
}

/** Renders a parsed script with each step's output replaced by `outputs[k]`. */
export function renderScript(script: { steps: ScriptStep[]; after: string[] }, outputs: string[][]): string {
  const lines: string[] = [];
  script.steps.forEach((step, k) => {
    lines.push(...step.before, step.command, '----', ...outputs[k]!);
  });
  lines.push(...script.after);
  return `${lines.join('\n')}\n`;
}

/**
 * Runs a whole script and returns each step's output. A harness or core
 * exception becomes the step's output (`error: ...`) and ends the run.
 */
export function runScript(steps: ScriptStep[]): string[][] {
  const interpreter = new ScriptInterpreter();
  const outputs: string[][] = [];
  let failed = false;
  for (const step of steps) {
    if (failed) {
      outputs.push(['(not run)']);
      continue;
    }
    try {
      const lines = interpreter.run(step.command);
      outputs.push(lines.length > 0 ? lines : ['ok']);
    } catch (error) {
      failed = true;
      const name = error instanceof HarnessError ? 'error' : 'panic';
      outputs.push([`${name}: ${error instanceof Error ? error.message : String(error)}`]);
    }
  }
  return outputs;
}

/**
 * The script commands. Node ids are plain words; options are `key=value`.
 *
 *   bootstrap a b c [learners=d] [preVote=false] [checkQuorum=false] [electionTimeoutTicks=10] ...
 *   jitter <id> <ticks>                  fix the node's election-timeout jitter (default 0)
 *   tick <id>... [count]                 tick each node `count` times (messages stay queued)
 *   campaign <id>
 *   propose <id> <data> [count=N]        data `x*100` means 100 x's
 *   add-learner|add-voter|remove <id> [via=<leader>]
 *   read <id> <context>
 *   transfer <from> <to>
 *   compact <id>
 *   report-unreachable <leader> <peer>
 *   stabilize                            deliver until the network is quiet
 *   deliver|drop [from=] [to=] [type=]   the queued messages that match (not their consequences)
 *   msgs                                 list the queued messages
 *   isolate <id> | cut <a> <b> | heal
 *   crash <id> | restart <id>
 *   hold <id> | release <id>
 *   status <id>... | log <id>...
 */
export class ScriptInterpreter {
  private cluster: RaftCluster | undefined;

  private get current(): RaftCluster {
    if (!this.cluster) throw new HarnessError('bootstrap first');
    return this.cluster;
  }

  run(command: string): string[] {
    const words = command.trim().split(/\s+/);
    const name = words[0]!;
    const args: string[] = [];
    const options = new Map<string, string>();
    for (const word of words.slice(1)) {
      const equals = word.indexOf('=');
      if (equals > 0) options.set(word.slice(0, equals), word.slice(equals + 1));
      else args.push(word);
    }
    const lines = this.execute(name, args, options);
    return [...(this.cluster?.take() ?? []), ...lines];
  }

  private execute(name: string, args: string[], options: Map<string, string>): string[] {
    const arg = (k: number): string => {
      const value = args[k];
      if (value === undefined) throw new HarnessError(`${name}: missing argument ${k + 1}`);
      return value;
    };
    switch (name) {
      case 'bootstrap':
        this.cluster = new RaftCluster(args, parseBootstrapOptions(options));
        return [];
      case 'jitter':
        this.current.node(arg(0)).jitter = Number(arg(1));
        return [];
      case 'tick': {
        const last = args[args.length - 1];
        const count = last !== undefined && /^\d+$/.test(last) ? Number(args.pop()) : 1;
        for (const id of args) this.current.tick(id, count);
        return [];
      }
      case 'campaign':
        this.current.campaign(arg(0));
        return [];
      case 'propose': {
        const lines: string[] = [];
        for (let k = 0; k < Number(options.get('count') ?? 1); k++) {
          const result = this.current.propose(arg(0), expandData(arg(1)));
          const outcome = result.ok ? `proposed ${result.value.index}/${result.value.term}` : renderRefusal(result.refusal);
          lines.push(...this.current.take(), `${arg(0)}: ${outcome}`);
        }
        return lines;
      }
      case 'add-learner':
      case 'add-voter':
      case 'remove': {
        const via = options.get('via') ?? this.current.leader();
        if (via === undefined) throw new HarnessError('no leader to propose the change; give via=<id>');
        const result = this.current.proposeConfigChange(via, { type: name, node: arg(0) });
        const outcome = result.ok ? `proposed ${result.value.index}/${result.value.term}` : renderRefusal(result.refusal);
        return [...this.current.take(), `${via}: ${name} ${arg(0)} ${outcome}`];
      }
      case 'read': {
        const result = this.current.readIndex(arg(0), arg(1));
        return result.ok ? [] : [`${arg(0)}: read ${arg(1)} ${renderRefusal(result.refusal)}`];
      }
      case 'transfer': {
        const result = this.current.transfer(arg(0), arg(1));
        return result.ok ? [] : [`${arg(0)}: transfer to ${arg(1)} ${renderRefusal(result.refusal)}`];
      }
      case 'compact': {
        const snapshot = this.current.compact(arg(0));
        return [`${arg(0)}: compacted to ${snapshot.meta.index}/${snapshot.meta.term}`];
      }
      case 'report-unreachable':
        this.current.reportUnreachable(arg(0), arg(1));
        return [];
      case 'stabilize':
        this.current.stabilize();
        return [];
      case 'deliver':
      case 'drop': {
        const filter = parseFilter(options);
        const count = name === 'deliver' ? this.current.deliver(filter) : this.current.drop(filter);
        return count === 0 ? [`no messages to ${name}`] : [];
      }
      case 'msgs':
        return this.current.pending().map(renderMessage);
      case 'isolate':
        this.current.isolate(arg(0));
        return [];
      case 'cut':
        this.current.cut(arg(0), arg(1));
        return [];
      case 'heal':
        this.current.heal();
        return [];
      case 'crash':
        this.current.crash(arg(0));
        return [];
      case 'restart':
        this.current.restart(arg(0));
        return [];
      case 'hold':
        this.current.hold(arg(0));
        return [];
      case 'release':
        this.current.release(arg(0));
        return [];
      case 'status':
        return args.flatMap((id) => this.current.status(id));
      case 'log':
        return args.flatMap((id) => this.current.log(id));
      default:
        throw new HarnessError(`unknown command ${name}`);
    }
  }
}

function parseBootstrapOptions(options: Map<string, string>): Partial<HarnessOptions> & { learners?: NodeId[] } {
  const parsed: Partial<HarnessOptions> & { learners?: NodeId[] } = {};
  for (const [key, value] of options) {
    if (key === 'learners') parsed.learners = value.split(',');
    else if ((NUMERIC_OPTIONS as readonly string[]).includes(key)) {
      parsed[key as (typeof NUMERIC_OPTIONS)[number]] = Number(value);
    } else if ((BOOLEAN_OPTIONS as readonly string[]).includes(key)) {
      parsed[key as (typeof BOOLEAN_OPTIONS)[number]] = value === 'true';
    } else throw new HarnessError(`unknown bootstrap option ${key}`);
  }
  return parsed;
}

function parseFilter(options: Map<string, string>): MessageFilter {
  const filter: MessageFilter = {};
  for (const [key, value] of options) {
    if (key === 'from') filter.from = value;
    else if (key === 'to') filter.to = value;
    else if (key === 'type') filter.type = messageTypeNamed(value);
    else throw new HarnessError(`unknown filter ${key}`);
  }
  return filter;
}

/** `x*100` is a hundred x's; anything else is itself. */
function expandData(text: string): string {
  const repeat = /^(.)\*(\d+)$/.exec(text);
  return repeat ? repeat[1]!.repeat(Number(repeat[2])) : text;
}
