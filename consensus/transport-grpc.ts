/**
 * The peer transport over gRPC (service `hivemind.raft.RaftTransport`, proto/raft.proto).
 *
 * Outgoing: one long-lived client stream (`Stream`) per peer. `send` queues
 * messages per peer; one flush per event-loop turn packs everything queued
 * since the last flush into as few `Batch`es as the byte cap allows, except
 * that a send after an idle spell (IDLE_FLUSH_GAP_MS since the last flush)
 * is written at once, since nothing would join it. Snapshot
 * messages go over `InstallSnapshot` instead, in chunks, one at a time per peer.
 * A failed stream drops what is queued for that peer, reports the peer
 * unreachable (once per failure episode) and reconnects with exponential
 * backoff; while it waits, messages to the peer are dropped. Raft tolerates loss.
 *
 * An Append without entries carries nothing but the leader's commit index
 * (the leader sends one to every follower when the commit index moves). It
 * waits up to `appendHoldMs` for a later Append to the same peer, which
 * carries a commit index at least as new and makes it redundant: under load
 * the commit rides on the next entries, and one Put at a time costs four
 * peer messages fewer (two sent, two acknowledged). Dropping the redundant
 * one is safe because Raft tolerates the loss of any message; the hold only
 * bounds how late a follower of an idle leader learns the commit.
 *
 * Incoming: every batch and snapshot header is decoded and validated field by
 * field before anything reaches the Raft node. A batch that fails is dropped
 * whole, counted, logged (rate-limited), and its stream is ended with
 * INVALID_ARGUMENT. Nothing a peer sends can crash the process.
 *
 * Wire format (msgpackr, records off, so only msgpack arrays, strings, numbers,
 * booleans and bin appear). Messages are positional tuples, not keyed maps:
 *
 *   Batch.payload     = [MessageTuple, ...]                    (at least one)
 *   MessageTuple      = [type, from, to, term, index, logTerm, commit, reject,
 *                        rejectHintIndex, rejectHintTerm, context, transfer,
 *                        [EntryTuple, ...]]                     (13 fields, all present)
 *   EntryTuple        = [term, index, type, data]               (type 0, Normal)
 *                     | [term, index, type, data, ConfigTuple]  (type 1, Config)
 *   ConfigTuple       = [[voter, ...], [learner, ...]]          (each sorted, disjoint)
 *   SnapshotChunk.header (first chunk only)
 *                     = [MessageTuple (type 9, no entries), meta.index, meta.term,
 *                        ConfigTuple, dataBytes]
 *
 * Numbers are non-negative safe integers, `data` is msgpack bin, ids are
 * non-empty strings. A change to any tuple is a wire-format change: both ends
 * must be upgraded together (there is no version field yet).
 *
 * Security: with `security` set (the agent always sets it), the server and
 * the channels speak mutual TLS, and every Stream and InstallSnapshot call is
 * authenticated before its first message is read: the call's verified
 * certificate names a node, and every batch's `from` (and so every message's)
 * must be that node; a snapshot's sender likewise. A call or batch that fails
 * is refused whole and counted by reason (`security.onRejected`). Without
 * `security` the transport is plaintext and trusts the `from` it reads: for
 * tests of the core and for the KV benchmark server only.
 */
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { Packr } from 'msgpackr';
import { assert } from './core/assert.js';
import { EntryType, MessageType } from './core/types.js';
import type { ClusterConfig, Entry, Message, NodeId, SnapshotMeta } from './core/types.js';
import type { Transport, TransportHandlers } from './transport.js';

/** Settings of one transport. Every limit has a default; sizes are in bytes. */
export interface GrpcTransportOptions {
  /** This node's id: sent as `from`, and every incoming message must name it as `to`. */
  id: NodeId;
  /** `host:port` to listen on; port 0 picks a free port (read it from `address`). */
  listen: string;
  /** Snapshot data bytes per InstallSnapshot chunk. Default 1 MiB. */
  chunkBytes?: number;
  /** Soft cap on one Batch's size (a single larger message still goes alone). Default 4 MiB. */
  batchBytesMax?: number;
  /** Messages queued per peer awaiting a flush; beyond it new ones are dropped. Default 4096. */
  queueMessagesMax?: number;
  /** Largest gRPC message sent or accepted. Default 16 MiB. */
  messageBytesMax?: number;
  /** Largest snapshot accepted from a peer. Default 1 GiB. */
  snapshotBytesMax?: number;
  /** Time allowed for one outgoing snapshot transfer. Default 10 minutes. */
  snapshotTimeoutMs?: number;
  /** Time a new stream may take to be accepted by the peer before it counts as failed. Default 3 s. */
  connectTimeoutMs?: number;
  /** First reconnect delay after a failure; doubles per failure. Default 50 ms. */
  reconnectDelayMsMin?: number;
  /** Largest reconnect delay. Default 2 s. */
  reconnectDelayMsMax?: number;
  /**
   * How long an Append without entries waits for a later Append to the same
   * peer that supersedes it (see the header); 0 sends it at once. Default 5 ms.
   */
  appendHoldMs?: number;
  /** Receives one line per notable event (failures are rate-limited). */
  logger?: (line: string) => void;
  /**
   * Further gRPC services to serve on the same port, beside RaftTransport
   * (the agent's cluster service). Added before the server binds; the
   * transport neither inspects nor wraps them.
   */
  services?: GrpcExtraService[];
  /** Mutual TLS and peer authentication (see the header). Absent: plaintext, for tests and benchmarks. */
  security?: GrpcTransportSecurity;
}

/** What the transport reads of a server call to authenticate it (grpc-js's server calls). */
export interface PeerCall {
  getPeer(): string;
  getAuthContext(): { transportSecurityType?: string; sslPeerCertificate?: object } | null;
}

/**
 * How the transport authenticates its peers. The transport knows nothing of
 * certificates: it asks `authenticate` who made a call and compares that with
 * the sender the call's messages name.
 */
export interface GrpcTransportSecurity {
  /** The server's credentials (TLS that requests a client certificate). */
  serverCredentials(): grpc.ServerCredentials;
  /** Credentials for the channel to peer `id`: this node's certificate, and only `id`'s accepted. */
  channelCredentials(id: NodeId): grpc.ChannelCredentials;
  /** Channel options for every channel (such as a fixed TLS server name). */
  channelOptions?: grpc.ChannelOptions;
  /** Who made a server call: the node id its verified certificate names, or why it is refused. */
  authenticate(call: PeerCall): { ok: true; nodeId: NodeId } | { ok: false; reason: string };
  /** Hears every refused call, batch or snapshot, by reason (a metric); must not throw. */
  onRejected?(reason: string): void;
}

/** A gRPC service to serve on the transport's port. */
export interface GrpcExtraService {
  definition: grpc.ServiceDefinition;
  implementation: grpc.UntypedServiceImplementation;
}

/** Counters since start; for metrics and tests. */
export interface GrpcTransportStats {
  /** Messages written to a stream (delivery is not confirmed). */
  messagesSent: number;
  batchesSent: number;
  /** Messages dropped before sending: queue full, peer down or unknown, too large, stop. */
  messagesDropped: number;
  /** Appends without entries not sent because a later Append to the same peer superseded them. */
  appendsSuperseded: number;
  messagesReceived: number;
  batchesReceived: number;
  /** Incoming batches that failed to decode or validate, dropped whole. */
  batchesRejected: number;
  snapshotsSent: number;
  snapshotsFailed: number;
  snapshotsReceived: number;
  /** Incoming snapshot streams refused: malformed, too large, or too many at once. */
  snapshotsRejected: number;
}

/** The transport could not bind its listening address. */
export class TransportListenError extends Error {
  readonly code = 'TRANSPORT_LISTEN_FAILED';
}

const KIB = 1024;
const MIB = 1024 * KIB;
const DEFAULTS = {
  chunkBytes: MIB,
  batchBytesMax: 4 * MIB,
  queueMessagesMax: 4096,
  messageBytesMax: 16 * MIB,
  snapshotBytesMax: 1024 * MIB,
  snapshotTimeoutMs: 10 * 60 * 1000,
  connectTimeoutMs: 3000,
  reconnectDelayMsMin: 50,
  reconnectDelayMsMax: 2000,
  appendHoldMs: 5,
} as const;

/** Room left in a gRPC message beside a snapshot chunk's data, for the header and framing. */
const CHUNK_OVERHEAD_BYTES_MAX = 64 * KIB;
/** Snapshots per peer, the one in flight included; more are refused at once. */
const SNAPSHOTS_PER_PEER_MAX = 2;
/** Incoming snapshot streams assembled at once (each may hold up to snapshotBytesMax). */
const SNAPSHOTS_INCOMING_MAX = 2;
const NODE_ID_CHARS_MAX = 256;
const CONTEXT_CHARS_MAX = 4096;
const MESSAGE_FIELDS = 13;
const SNAPSHOT_HEADER_FIELDS = 5;
/** Fixed per-message and per-entry allowances in the batch size estimate (tuple framing, numbers). */
const MESSAGE_OVERHEAD_BYTES = 64;
const ENTRY_OVERHEAD_BYTES = 32;
const KEEPALIVE_TIME_MS = 10_000;
const KEEPALIVE_TIMEOUT_MS = 5_000;
const LOG_INTERVAL_MS = 1000;
/**
 * A send at least this long after the previous flush is written at once: the
 * line is idle and nothing would join it by the end of the turn. Sends that
 * come closer together wait for the end of the turn and share a batch.
 */
const IDLE_FLUSH_GAP_MS = 1;

const PROTO_URL = new URL('../../proto/raft.proto', import.meta.url);
const EMPTY = new Uint8Array(0);

/** records off: plain arrays only; copyBuffers: decoded bin does not pin the whole batch in memory. */
const packr = new Packr({ useRecords: false, copyBuffers: true });

// ---------------------------------------------------------------------------
// gRPC plumbing

/** A `Batch` as proto-loader presents it. */
export interface BatchWire {
  from: string;
  payload: Uint8Array;
}
/** A `SnapshotChunk` as proto-loader presents it. */
export interface SnapshotChunkWire {
  header: Uint8Array;
  data: Uint8Array;
  done: boolean;
}
type AckWire = Record<string, never>;

interface RaftClient extends grpc.Client {
  Stream(callback: grpc.requestCallback<AckWire>): grpc.ClientWritableStream<BatchWire>;
  InstallSnapshot(
    options: grpc.CallOptions,
    callback: grpc.requestCallback<AckWire>,
  ): grpc.ClientWritableStream<SnapshotChunkWire>;
}
interface RaftClientConstructor {
  new (address: string, credentials: grpc.ChannelCredentials, options: grpc.ChannelOptions): RaftClient;
  service: grpc.ServiceDefinition;
}

let loadedService: RaftClientConstructor | null = null;

/** Loads proto/raft.proto once per process. */
function raftService(): RaftClientConstructor {
  if (loadedService !== null) return loadedService;
  const definition = protoLoader.loadSync(fileURLToPath(PROTO_URL), { keepCase: true, defaults: true });
  const root = grpc.loadPackageDefinition(definition) as unknown as {
    hivemind: { raft: { RaftTransport: RaftClientConstructor } };
  };
  loadedService = root.hivemind.raft.RaftTransport;
  return loadedService;
}

// ---------------------------------------------------------------------------
// Encoding

function configToTuple(config: ClusterConfig): unknown[] {
  return [config.voters, config.learners];
}

function entryToTuple(entry: Entry): unknown[] {
  const tuple: unknown[] = [entry.term, entry.index, entry.type, entry.data];
  if (entry.config !== undefined) tuple.push(configToTuple(entry.config));
  return tuple;
}

function messageToTuple(message: Message): unknown[] {
  return [
    message.type, message.from, message.to, message.term, message.index, message.logTerm,
    message.commit, message.reject, message.rejectHintIndex, message.rejectHintTerm,
    message.context, message.transfer, message.entries.map(entryToTuple),
  ];
}

/** Encodes messages as a Batch payload (the wire format above). */
export function encodeMessages(messages: Message[]): Uint8Array {
  return packr.pack(messages.map(messageToTuple));
}

function snapshotHeaderToTuple(message: Message): unknown[] {
  const snapshot = message.snapshot;
  assert(snapshot !== undefined, `Snapshot message to "${message.to}" carries no snapshot`);
  const bare = messageToTuple({ ...message, entries: [] });
  return [bare, snapshot.meta.index, snapshot.meta.term, configToTuple(snapshot.meta.config), snapshot.data.byteLength];
}

/** A cheap upper-bound guess of a message's encoded size, to cut batches without encoding twice. */
function estimateBytes(message: Message): number {
  let bytes = MESSAGE_OVERHEAD_BYTES + message.from.length + message.to.length + message.context.length;
  for (const entry of message.entries) {
    bytes += ENTRY_OVERHEAD_BYTES + entry.data.byteLength;
    if (entry.config !== undefined) bytes += idsBytes(entry.config.voters) + idsBytes(entry.config.learners);
  }
  return bytes;
}

function idsBytes(ids: NodeId[]): number {
  let bytes = 0;
  for (const id of ids) bytes += id.length + 4;
  return bytes;
}

// ---------------------------------------------------------------------------
// Decoding and validation. Expected outcomes: a bad peer is not a bug here.

/** A decoded value, or why the input was refused. */
export type Decoded<T> = { ok: true; value: T } | { ok: false; reason: string };

function ok<T>(value: T): Decoded<T> {
  return { ok: true, value };
}
function fail<T>(reason: string): Decoded<T> {
  return { ok: false, reason };
}

function isCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

function isNodeId(value: unknown): value is NodeId {
  return typeof value === 'string' && value.length > 0 && value.length <= NODE_ID_CHARS_MAX;
}

function isMessageType(value: unknown): value is MessageType {
  return typeof value === 'number' && Number.isInteger(value) && value >= MessageType.Vote && value <= MessageType.TimeoutNow;
}

/** Sorted, duplicate-free node ids (as ClusterConfig promises). */
function isIdList(value: unknown): value is NodeId[] {
  if (!Array.isArray(value)) return false;
  for (let i = 0; i < value.length; i++) {
    if (!isNodeId(value[i])) return false;
    if (i > 0 && !(value[i - 1] < value[i])) return false;
  }
  return true;
}

function configFromTuple(tuple: unknown): Decoded<ClusterConfig> {
  if (!Array.isArray(tuple) || tuple.length !== 2) return fail('config is not a [voters, learners] pair');
  const [voters, learners] = tuple as unknown[];
  if (!isIdList(voters)) return fail('config voters are not a sorted list of distinct node ids');
  if (!isIdList(learners)) return fail('config learners are not a sorted list of distinct node ids');
  const voterSet = new Set(voters);
  if (learners.some((id) => voterSet.has(id))) return fail('config voters and learners overlap');
  return ok({ voters, learners });
}

function entryFromTuple(tuple: unknown): Decoded<Entry> {
  if (!Array.isArray(tuple) || (tuple.length !== 4 && tuple.length !== 5)) return fail('is not an entry tuple of 4 or 5 fields');
  const [term, index, type, data, config] = tuple as unknown[];
  if (!isCount(term)) return fail('field "term" is not a non-negative safe integer');
  if (!isCount(index)) return fail('field "index" is not a non-negative safe integer');
  if (!(data instanceof Uint8Array)) return fail('field "data" is not binary');
  if (type === EntryType.Normal) {
    if (tuple.length !== 4) return fail('a Normal entry carries a config');
    return ok({ term, index, type: EntryType.Normal, data });
  }
  if (type !== EntryType.Config) return fail('field "type" is not 0 (Normal) or 1 (Config)');
  if (tuple.length !== 5) return fail('a Config entry lacks its config');
  const decoded = configFromTuple(config);
  if (!decoded.ok) return decoded;
  return ok({ term, index, type: EntryType.Config, data, config: decoded.value });
}

function entriesFromTuple(value: unknown): Decoded<Entry[]> {
  if (!Array.isArray(value)) return fail('field "entries" is not an array');
  const entries: Entry[] = [];
  for (let i = 0; i < value.length; i++) {
    const decoded = entryFromTuple(value[i]);
    if (!decoded.ok) return fail(`entry ${i}: ${decoded.reason}`);
    entries.push(decoded.value);
  }
  return ok(entries);
}

const COUNT_FIELDS = ['term', 'index', 'logTerm', 'commit', 'rejectHintIndex', 'rejectHintTerm'] as const;

/** Decodes and validates one message tuple addressed to `receiver`. */
export function messageFromTuple(tuple: unknown, receiver: NodeId): Decoded<Message> {
  if (!Array.isArray(tuple) || tuple.length !== MESSAGE_FIELDS) return fail(`is not a message tuple of ${MESSAGE_FIELDS} fields`);
  const [type, from, to, term, index, logTerm, commit, reject, rejectHintIndex, rejectHintTerm, context, transfer, entries] =
    tuple as unknown[];
  if (!isMessageType(type)) return fail('field "type" is not a known message type');
  if (!isNodeId(from)) return fail('field "from" is not a node id');
  if (to !== receiver) return fail(`field "to" is not this node ("${receiver}")`);
  const counts = [term, index, logTerm, commit, rejectHintIndex, rejectHintTerm];
  for (let i = 0; i < counts.length; i++) {
    if (!isCount(counts[i])) return fail(`field "${COUNT_FIELDS[i]}" is not a non-negative safe integer`);
  }
  if (typeof reject !== 'boolean') return fail('field "reject" is not a boolean');
  if (typeof transfer !== 'boolean') return fail('field "transfer" is not a boolean');
  if (typeof context !== 'string' || context.length > CONTEXT_CHARS_MAX) return fail('field "context" is not a string of at most 4096 characters');
  const decodedEntries = entriesFromTuple(entries);
  if (!decodedEntries.ok) return decodedEntries;
  return ok({
    type, from, to: receiver,
    term: term as number, index: index as number, logTerm: logTerm as number, commit: commit as number,
    reject, rejectHintIndex: rejectHintIndex as number, rejectHintTerm: rejectHintTerm as number,
    context, transfer, entries: decodedEntries.value,
  });
}

function unpack(bytes: Uint8Array): Decoded<unknown> {
  // msgpackr throws on malformed input (and RangeError on absurd nesting); this is the boundary.
  try {
    return ok(packr.unpack(bytes));
  } catch (error) {
    return fail(`not valid msgpack (${error instanceof Error ? error.message.slice(0, 100) : 'unknown error'})`);
  }
}

/** Decodes and validates a Batch from the wire: all its messages, or none. */
export function decodeBatch(batch: BatchWire, receiver: NodeId): Decoded<Message[]> {
  if (!isNodeId(batch.from)) return fail('field "from" of the batch is not a node id');
  const decoded = unpack(batch.payload);
  if (!decoded.ok) return fail(`payload is ${decoded.reason}`);
  const tuples = decoded.value;
  if (!Array.isArray(tuples) || tuples.length === 0) return fail('payload is not a non-empty array of messages');
  const messages: Message[] = [];
  for (let i = 0; i < tuples.length; i++) {
    const message = messageFromTuple(tuples[i], receiver);
    if (!message.ok) return fail(`message ${i}: ${message.reason}`);
    if (message.value.from !== batch.from) return fail(`message ${i}: field "from" differs from the batch's sender`);
    if (message.value.type === MessageType.Snapshot) return fail(`message ${i}: Snapshot messages travel over InstallSnapshot`);
    messages.push(message.value);
  }
  return ok(messages);
}

interface SnapshotHeader {
  message: Message;
  meta: SnapshotMeta;
  dataBytes: number;
}

function snapshotHeaderFromBytes(bytes: Uint8Array, receiver: NodeId, snapshotBytesMax: number): Decoded<SnapshotHeader> {
  const decoded = unpack(bytes);
  if (!decoded.ok) return fail(`header is ${decoded.reason}`);
  const tuple = decoded.value;
  if (!Array.isArray(tuple) || tuple.length !== SNAPSHOT_HEADER_FIELDS) return fail('header is not a snapshot header tuple');
  const [messageTuple, index, term, configTuple, dataBytes] = tuple as unknown[];
  const message = messageFromTuple(messageTuple, receiver);
  if (!message.ok) return fail(`header message: ${message.reason}`);
  if (message.value.type !== MessageType.Snapshot) return fail('header message is not of type Snapshot');
  if (message.value.entries.length > 0) return fail('header message carries entries');
  if (!isCount(index) || !isCount(term)) return fail('snapshot meta index or term is not a non-negative safe integer');
  const config = configFromTuple(configTuple);
  if (!config.ok) return fail(`snapshot meta: ${config.reason}`);
  if (!isCount(dataBytes)) return fail('snapshot size is not a non-negative safe integer');
  if (dataBytes > snapshotBytesMax) return fail(`snapshot of ${dataBytes} bytes exceeds the limit of ${snapshotBytesMax}`);
  return ok({ message: message.value, meta: { index, term, config: config.value }, dataBytes });
}

/** Collects the chunks of one incoming snapshot and checks they match their header. */
class SnapshotAssembly {
  private header: SnapshotHeader | null = null;
  private readonly chunks: Uint8Array[] = [];
  private receivedBytes = 0;
  private done = false;

  constructor(
    private readonly receiver: NodeId,
    private readonly snapshotBytesMax: number,
  ) {}

  /** Adds the next chunk; a refusal ends the transfer. */
  add(chunk: SnapshotChunkWire): Decoded<void> {
    if (this.done) return fail('chunk after the last one');
    if (this.header === null) {
      if (chunk.header.byteLength === 0) return fail('first chunk has no header');
      const header = snapshotHeaderFromBytes(chunk.header, this.receiver, this.snapshotBytesMax);
      if (!header.ok) return header;
      this.header = header.value;
    } else if (chunk.header.byteLength > 0) {
      return fail('header repeated after the first chunk');
    }
    this.receivedBytes += chunk.data.byteLength;
    if (this.receivedBytes > this.header.dataBytes) return fail(`more data than the ${this.header.dataBytes} bytes declared`);
    if (chunk.data.byteLength > 0) this.chunks.push(chunk.data);
    this.done = chunk.done;
    return ok(undefined);
  }

  /** The whole Snapshot message, once the sender ended its stream. */
  finish(): Decoded<Message> {
    if (this.header === null || !this.done) return fail('stream ended before the last chunk');
    if (this.receivedBytes !== this.header.dataBytes) {
      return fail(`received ${this.receivedBytes} bytes of the ${this.header.dataBytes} declared`);
    }
    const data = Buffer.concat(this.chunks, this.receivedBytes);
    return ok({ ...this.header.message, snapshot: { meta: this.header.meta, data } });
  }
}

// ---------------------------------------------------------------------------
// Logging

/** At most one line per key per interval; says how many were suppressed. Keys are a bounded set. */
class RateLimitedLog {
  private readonly lastByKey = new Map<string, { atMs: number; suppressed: number }>();

  constructor(private readonly logger: ((line: string) => void) | undefined) {}

  line(key: string, text: string): void {
    if (this.logger === undefined) return;
    const nowMs = Date.now();
    const last = this.lastByKey.get(key);
    if (last !== undefined && nowMs - last.atMs < LOG_INTERVAL_MS) {
      last.suppressed++;
      return;
    }
    const suffix = last !== undefined && last.suppressed > 0 ? ` (${last.suppressed} similar suppressed)` : '';
    this.lastByKey.set(key, { atMs: nowMs, suppressed: 0 });
    this.logger(text + suffix);
  }
}

// ---------------------------------------------------------------------------
// The transport

/** One outgoing stream; identity tells a live stream's callbacks from a replaced one's. */
interface StreamAttempt {
  call: grpc.ClientWritableStream<BatchWire> | null;
  connectTimer: NodeJS.Timeout | null;
  /** The peer did not accept the stream within connectTimeoutMs, so we cancelled it. */
  timedOut: boolean;
}

/** Everything about one peer. Invariant: `reconnectTimer !== null` (down) implies an empty queue. */
interface Peer {
  id: NodeId;
  address: string;
  /**
   * Made on the first stream or snapshot to this peer, not when the peer is
   * set: an agent names every node record's address, and most of those
   * nodes never hear from this one's Raft.
   */
  client: RaftClient | null;
  queue: Message[];
  stream: StreamAttempt | null;
  /** The current stream's buffer is full; flushing waits for 'drain'. */
  draining: boolean;
  /** Set while down: waiting to reconnect. Messages sent meanwhile are dropped. */
  reconnectTimer: NodeJS.Timeout | null;
  reconnectDelayMs: number;
  /** onUnreachable was called in the current failure episode. */
  unreachableReported: boolean;
  /** Snapshots to send; the first is in flight while `snapshotSending`. */
  snapshots: Message[];
  snapshotSending: boolean;
  snapshotAbort: AbortController | null;
  removed: boolean;
  /** An Append without entries waiting `appendHoldMs` for a later Append that supersedes it. */
  heldAppend: Message | null;
  holdTimer: NodeJS.Timeout | null;
}

/**
 * A `Transport` over gRPC. Lifecycle: `setPeers` any time, `start` once,
 * then `send`; `stop` once ends everything and leaves no timer or socket.
 *
 * Handlers are never called from inside `send`: always from a later event,
 * so the driver may call `send` while it processes a Ready. No handler is
 * called after `stop`. An exception thrown by a handler is not caught.
 */
export class GrpcTransport implements Transport {
  private readonly id: NodeId;
  private readonly listen: string;
  private readonly settings: Required<Omit<GrpcTransportOptions, 'id' | 'listen' | 'logger' | 'services' | 'security'>>;
  private readonly extraServices: GrpcExtraService[];
  private readonly security: GrpcTransportSecurity | undefined;
  private readonly log: RateLimitedLog;
  private readonly logger: ((line: string) => void) | undefined;
  private readonly peers = new Map<NodeId, Peer>();
  private readonly counters: GrpcTransportStats = {
    messagesSent: 0, batchesSent: 0, messagesDropped: 0, appendsSuperseded: 0, messagesReceived: 0, batchesReceived: 0,
    batchesRejected: 0, snapshotsSent: 0, snapshotsFailed: 0, snapshotsReceived: 0, snapshotsRejected: 0,
  };
  private handlers: TransportHandlers | null = null;
  private server: grpc.Server | null = null;
  private boundAddress: string | null = null;
  private flushImmediate: NodeJS.Immediate | null = null;
  private lastFlushAtMs = Number.NEGATIVE_INFINITY;
  private snapshotsIncoming = 0;
  private stopped = false;

  constructor(options: GrpcTransportOptions) {
    assert(isNodeId(options.id), `transport id ${JSON.stringify(options.id)} is not a node id`);
    this.id = options.id;
    this.listen = options.listen;
    this.settings = {
      chunkBytes: options.chunkBytes ?? DEFAULTS.chunkBytes,
      batchBytesMax: options.batchBytesMax ?? DEFAULTS.batchBytesMax,
      queueMessagesMax: options.queueMessagesMax ?? DEFAULTS.queueMessagesMax,
      messageBytesMax: options.messageBytesMax ?? DEFAULTS.messageBytesMax,
      snapshotBytesMax: options.snapshotBytesMax ?? DEFAULTS.snapshotBytesMax,
      snapshotTimeoutMs: options.snapshotTimeoutMs ?? DEFAULTS.snapshotTimeoutMs,
      connectTimeoutMs: options.connectTimeoutMs ?? DEFAULTS.connectTimeoutMs,
      reconnectDelayMsMin: options.reconnectDelayMsMin ?? DEFAULTS.reconnectDelayMsMin,
      reconnectDelayMsMax: options.reconnectDelayMsMax ?? DEFAULTS.reconnectDelayMsMax,
      appendHoldMs: options.appendHoldMs ?? DEFAULTS.appendHoldMs,
    };
    const s = this.settings;
    assert(s.chunkBytes > 0 && s.chunkBytes + CHUNK_OVERHEAD_BYTES_MAX <= s.messageBytesMax, 'chunkBytes must leave room for framing within messageBytesMax');
    assert(s.batchBytesMax > 0 && s.batchBytesMax <= s.messageBytesMax, 'batchBytesMax must be positive and at most messageBytesMax');
    assert(s.queueMessagesMax > 0, 'queueMessagesMax must be positive');
    assert(s.reconnectDelayMsMin > 0 && s.reconnectDelayMsMin <= s.reconnectDelayMsMax, 'reconnect delays must satisfy 0 < min <= max');
    assert(Number.isSafeInteger(s.appendHoldMs) && s.appendHoldMs >= 0, 'appendHoldMs must be a whole number of milliseconds, 0 or more');
    this.logger = options.logger;
    this.log = new RateLimitedLog(options.logger);
    this.extraServices = [...(options.services ?? [])];
    this.security = options.security;
  }

  /** `host:port` actually bound (the real port when `listen` named port 0). Only after `start`. */
  get address(): string {
    assert(this.boundAddress !== null, 'transport address read before start');
    return this.boundAddress;
  }

  /** A copy of the counters. */
  get stats(): GrpcTransportStats {
    return { ...this.counters };
  }

  /** Binds the server. Rejects with TransportListenError when the address cannot be bound. */
  async start(handlers: TransportHandlers): Promise<void> {
    assert(this.handlers === null && !this.stopped, 'transport started twice or after stop');
    this.handlers = handlers;
    // Channelz stays on for the server: grpc-js's forceShutdown only destroys the
    // sessions channelz tracks, and stop() must close every connection.
    const server = new grpc.Server({ ...this.channelOptions(), 'grpc.enable_channelz': 1 });
    server.addService(raftService().service, {
      Stream: (call: grpc.ServerReadableStream<BatchWire, AckWire>, callback: grpc.sendUnaryData<AckWire>) =>
        this.handleStream(call, callback),
      InstallSnapshot: (call: grpc.ServerReadableStream<SnapshotChunkWire, AckWire>, callback: grpc.sendUnaryData<AckWire>) =>
        this.handleInstallSnapshot(call, callback),
    });
    for (const extra of this.extraServices) server.addService(extra.definition, extra.implementation);
    this.server = server;
    const port = await new Promise<number>((resolve, reject) => {
      const credentials = this.security?.serverCredentials() ?? grpc.ServerCredentials.createInsecure();
      server.bindAsync(this.listen, credentials, (error, boundPort) => {
        if (error === null) return resolve(boundPort);
        server.forceShutdown();
        this.server = null;
        reject(new TransportListenError(`cannot listen for Raft peers on "${this.listen}": ${error.message}; choose a free port`));
      });
    });
    this.boundAddress = `${this.listen.slice(0, this.listen.lastIndexOf(':'))}:${port}`;
    this.logger?.(`raft transport ${this.id} listening on ${this.boundAddress}`);
  }

  /** Replaces the peer set. A peer whose address changed gets fresh connections. */
  setPeers(peers: Record<NodeId, string>): void {
    if (this.stopped) return;
    for (const peer of [...this.peers.values()]) {
      if (peers[peer.id] !== peer.address) this.removePeer(peer);
    }
    for (const [id, address] of Object.entries(peers)) {
      if (id === this.id || this.peers.has(id)) continue;
      assert(isNodeId(id) && address.length > 0, `peer ${JSON.stringify(id)} has no valid id or address`);
      this.peers.set(id, this.createPeer(id, address));
    }
  }

  /** Queues messages for their peers; never blocks or throws for network reasons. */
  send(messages: Message[]): void {
    assert(this.handlers !== null, 'send before start');
    if (this.stopped) {
      this.counters.messagesDropped += messages.length;
      return;
    }
    let queued = false;
    for (const message of messages) {
      assert(message.from === this.id, () => `sending a message from "${message.from}" through the transport of "${this.id}"`);
      const peer = this.peers.get(message.to);
      if (peer === undefined) {
        this.counters.messagesDropped++;
        this.log.line('unknown-peer', `raft transport ${this.id}: dropped message to unknown peer "${message.to}"`);
      } else if (message.type === MessageType.Snapshot) {
        this.enqueueSnapshot(peer, message);
      } else if (peer.reconnectTimer !== null) {
        this.counters.messagesDropped++;
      } else if (peer.queue.length >= this.settings.queueMessagesMax) {
        this.counters.messagesDropped++;
        this.log.line(`queue-full:${peer.id}`, `raft transport ${this.id}: queue to "${peer.id}" full (${peer.queue.length} messages), dropping`);
      } else if (message.type === MessageType.Append) {
        queued = this.sendAppend(peer, message) || queued;
      } else {
        peer.queue.push(message);
        queued = true;
      }
    }
    if (queued) this.flushSoon();
  }

  /**
   * Queues an Append (answers true), or holds one without entries (see the
   * header); any Append supersedes a held one.
   */
  private sendAppend(peer: Peer, message: Message): boolean {
    if (peer.heldAppend !== null) {
      this.counters.appendsSuperseded++;
      peer.heldAppend = null;
    }
    if (message.entries.length > 0 || this.settings.appendHoldMs === 0) {
      if (peer.holdTimer !== null) clearTimeout(peer.holdTimer);
      peer.holdTimer = null;
      peer.queue.push(message);
      return true;
    }
    peer.heldAppend = message;
    peer.holdTimer ??= setTimeout(() => this.releaseHeldAppend(peer), this.settings.appendHoldMs);
    return false;
  }

  private releaseHeldAppend(peer: Peer): void {
    peer.holdTimer = null;
    const held = peer.heldAppend;
    peer.heldAppend = null;
    if (held === null || this.stopped || peer.removed) return;
    // The peer went down meanwhile (or its queue filled): dropped, as it would have been at send.
    if (peer.reconnectTimer !== null || peer.queue.length >= this.settings.queueMessagesMax) {
      this.counters.messagesDropped++;
      return;
    }
    peer.queue.push(held);
    this.flushSoon();
  }

  /** Closes every stream and the server; afterwards no timer or socket of this transport remains. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.flushImmediate !== null) clearImmediate(this.flushImmediate);
    this.flushImmediate = null;
    for (const peer of [...this.peers.values()]) this.removePeer(peer);
    this.server?.forceShutdown();
    this.server = null;
  }

  // --- outgoing ------------------------------------------------------------

  private channelOptions(): grpc.ChannelOptions {
    const s = this.settings;
    return {
      'grpc.max_send_message_length': s.messageBytesMax,
      'grpc.max_receive_message_length': s.messageBytesMax,
      'grpc.keepalive_time_ms': KEEPALIVE_TIME_MS,
      'grpc.keepalive_timeout_ms': KEEPALIVE_TIMEOUT_MS,
      'grpc.initial_reconnect_backoff_ms': s.reconnectDelayMsMin,
      'grpc.max_reconnect_backoff_ms': s.reconnectDelayMsMax,
      // Own connections per transport, so that stop() really closes them.
      'grpc.use_local_subchannel_pool': 1,
      // Channelz keeps per-call and per-message counters that nothing here reads (channels only; see start()).
      'grpc.enable_channelz': 0,
    };
  }

  private createPeer(id: NodeId, address: string): Peer {
    return {
      id, address, client: null, queue: [], stream: null, draining: false, reconnectTimer: null,
      reconnectDelayMs: this.settings.reconnectDelayMsMin, unreachableReported: false,
      snapshots: [], snapshotSending: false, snapshotAbort: null, removed: false, heldAppend: null, holdTimer: null,
    };
  }

  private clientOf(peer: Peer): RaftClient {
    assert(!peer.removed, () => `a call to removed peer ${peer.id}`);
    const credentials = this.security?.channelCredentials(peer.id) ?? grpc.credentials.createInsecure();
    peer.client ??= new (raftService())(peer.address, credentials, { ...this.channelOptions(), ...this.security?.channelOptions });
    return peer.client;
  }

  private removePeer(peer: Peer): void {
    peer.removed = true;
    this.peers.delete(peer.id);
    if (peer.reconnectTimer !== null) clearTimeout(peer.reconnectTimer);
    peer.reconnectTimer = null;
    if (peer.holdTimer !== null) clearTimeout(peer.holdTimer);
    peer.holdTimer = null;
    if (peer.heldAppend !== null) this.counters.messagesDropped++;
    peer.heldAppend = null;
    this.closeStream(peer);
    this.counters.messagesDropped += peer.queue.length + peer.snapshots.length;
    peer.queue = [];
    peer.snapshots = [];
    peer.snapshotAbort?.abort();
    peer.client?.close();
    peer.client = null;
  }

  /** Flushes now when the line was idle (IDLE_FLUSH_GAP_MS), else at the end of the turn. */
  private flushSoon(): void {
    if (this.flushImmediate !== null) return;
    if (performance.now() - this.lastFlushAtMs < IDLE_FLUSH_GAP_MS) this.scheduleFlush();
    else this.flushQueues();
  }

  private scheduleFlush(): void {
    if (this.flushImmediate !== null) return;
    this.flushImmediate = setImmediate(() => {
      this.flushImmediate = null;
      this.flushQueues();
    });
  }

  private flushQueues(): void {
    this.lastFlushAtMs = performance.now();
    for (const peer of this.peers.values()) {
      if (peer.queue.length > 0) this.flushPeer(peer);
    }
  }

  /** Writes the peer's queue as batches until it is empty or the stream pushes back. */
  private flushPeer(peer: Peer): void {
    assert(peer.reconnectTimer === null, `flushing to "${peer.id}" while it is down`);
    const stream = peer.stream ?? this.openStream(peer);
    while (peer.queue.length > 0 && !peer.draining && peer.stream === stream && stream.call !== null) {
      const batch = takeBatch(peer.queue, this.settings.batchBytesMax);
      const payload = encodeMessages(batch);
      if (payload.byteLength > this.settings.messageBytesMax) {
        this.counters.messagesDropped += batch.length;
        this.log.line('batch-too-large', `raft transport ${this.id}: dropped ${batch.length} messages to "${peer.id}": ${payload.byteLength} bytes exceed ${this.settings.messageBytesMax}`);
        continue;
      }
      this.counters.batchesSent++;
      this.counters.messagesSent += batch.length;
      if (!stream.call.write({ from: this.id, payload })) this.waitForDrain(peer, stream);
    }
  }

  private waitForDrain(peer: Peer, stream: StreamAttempt): void {
    peer.draining = true;
    stream.call?.once('drain', () => {
      if (peer.stream !== stream) return;
      peer.draining = false;
      if (peer.queue.length > 0) this.scheduleFlush();
    });
  }

  private openStream(peer: Peer): StreamAttempt {
    const stream: StreamAttempt = { call: null, connectTimer: null, timedOut: false };
    peer.stream = stream;
    peer.draining = false;
    const call = this.clientOf(peer).Stream((error) => this.handleStreamEnd(peer, stream, error));
    stream.call = call;
    // Errors arrive through the callback; a listener keeps a stray 'error' event from crashing us.
    call.on('error', () => {});
    // The server sends its metadata as soon as it accepts the stream: that is our "connected".
    call.on('metadata', () => this.markConnected(peer, stream));
    stream.connectTimer = setTimeout(() => {
      stream.connectTimer = null;
      if (peer.stream !== stream) return;
      stream.timedOut = true;
      call.cancel();
    }, this.settings.connectTimeoutMs);
    return stream;
  }

  /** Detaches and cancels the current stream; its callbacks then see it is no longer current. */
  private closeStream(peer: Peer): void {
    const stream = peer.stream;
    if (stream === null) return;
    peer.stream = null;
    peer.draining = false;
    if (stream.connectTimer !== null) clearTimeout(stream.connectTimer);
    stream.connectTimer = null;
    stream.call?.cancel();
  }

  private markConnected(peer: Peer, stream: StreamAttempt): void {
    if (peer.stream !== stream) return;
    if (stream.connectTimer !== null) clearTimeout(stream.connectTimer);
    stream.connectTimer = null;
    if (peer.unreachableReported) this.logger?.(`raft transport ${this.id}: peer "${peer.id}" reachable again`);
    peer.unreachableReported = false;
    peer.reconnectDelayMs = this.settings.reconnectDelayMsMin;
  }

  private handleStreamEnd(peer: Peer, stream: StreamAttempt, error: grpc.ServiceError | null): void {
    if (peer.stream !== stream) return; // closed on purpose, or replaced
    this.closeStream(peer);
    if (this.stopped || peer.removed) return;
    this.counters.messagesDropped += peer.queue.length;
    peer.queue = [];
    const why = stream.timedOut
      ? `not accepted within ${this.settings.connectTimeoutMs} ms`
      : error === null ? 'the peer ended the stream' : `${grpc.status[error.code] ?? error.code}: ${error.details}`;
    // One line and one callback per failure episode; the retries within it are quiet.
    if (!peer.unreachableReported) {
      peer.unreachableReported = true;
      this.log.line(`stream:${peer.id}`, `raft transport ${this.id}: stream to "${peer.id}" at ${peer.address} failed (${why}); retrying`);
      this.handlers?.onUnreachable(peer.id);
    }
    this.scheduleReconnect(peer);
  }

  private scheduleReconnect(peer: Peer): void {
    const delayMs = Math.round(peer.reconnectDelayMs * (0.5 + Math.random() / 2));
    peer.reconnectDelayMs = Math.min(peer.reconnectDelayMs * 2, this.settings.reconnectDelayMsMax);
    peer.reconnectTimer = setTimeout(() => {
      peer.reconnectTimer = null;
      if (!this.stopped && !peer.removed) this.openStream(peer);
    }, delayMs);
  }

  // --- outgoing snapshots ----------------------------------------------------

  private enqueueSnapshot(peer: Peer, message: Message): void {
    if (peer.reconnectTimer !== null || peer.snapshots.length >= SNAPSHOTS_PER_PEER_MAX) {
      this.counters.snapshotsFailed++;
      this.counters.messagesDropped++;
      setImmediate(() => this.reportSnapshot(peer, false));
      return;
    }
    peer.snapshots.push(message);
    void this.pumpSnapshots(peer);
  }

  private reportSnapshot(peer: Peer, delivered: boolean): void {
    if (!this.stopped && !peer.removed) this.handlers?.onSnapshotStatus(peer.id, delivered);
  }

  /** Sends the peer's snapshots one after another; reports each outcome. */
  private async pumpSnapshots(peer: Peer): Promise<void> {
    if (peer.snapshotSending) return;
    peer.snapshotSending = true;
    // Let send() return first: handlers are never called from inside it.
    await new Promise<void>((resolve) => setImmediate(resolve));
    while (peer.snapshots.length > 0 && !this.stopped && !peer.removed) {
      const delivered = await this.transferSnapshot(peer, peer.snapshots[0]!);
      peer.snapshots.shift();
      if (delivered) this.counters.snapshotsSent++;
      else this.counters.snapshotsFailed++;
      this.reportSnapshot(peer, delivered);
    }
    peer.snapshotSending = false;
  }

  /** One InstallSnapshot call; true once the peer acknowledged the whole snapshot. */
  private async transferSnapshot(peer: Peer, message: Message): Promise<boolean> {
    const abort = new AbortController();
    peer.snapshotAbort = abort;
    let settle!: (delivered: boolean) => void;
    const outcome = new Promise<boolean>((resolve) => (settle = resolve));
    const deadline = Date.now() + this.settings.snapshotTimeoutMs;
    const call = this.clientOf(peer).InstallSnapshot({ deadline }, (error) => {
      abort.abort();
      if (error !== null) {
        this.log.line(`snapshot:${peer.id}`, `raft transport ${this.id}: snapshot to "${peer.id}" failed (${grpc.status[error.code] ?? error.code}: ${error.details})`);
      }
      settle(error === null);
    });
    call.on('error', () => {});
    abort.signal.addEventListener('abort', () => call.cancel(), { once: true });
    try {
      await writeSnapshotChunks(call, message, this.settings.chunkBytes, abort.signal);
      call.end();
    } catch {
      call.cancel(); // aborted or the stream failed; the callback settles the outcome
    }
    const delivered = await outcome;
    peer.snapshotAbort = null;
    return delivered;
  }

  // --- incoming --------------------------------------------------------------

  /**
   * The peer that made `call`: the authenticated node id, `null` when the
   * transport runs without security (anyone), or undefined after refusing
   * the call (answered with UNAUTHENTICATED, counted).
   */
  private callerOf(call: PeerCall, refuse: (error: Partial<grpc.StatusObject>) => void): NodeId | null | undefined {
    if (this.security === undefined) return null;
    const verdict = this.security.authenticate(call);
    if (verdict.ok) return verdict.nodeId;
    this.reject(verdict.reason, `call from ${call.getPeer()} refused: ${verdict.reason}`);
    refuse({ code: grpc.status.UNAUTHENTICATED, details: `refused: ${verdict.reason} (a member of this cluster presents a certificate of its CA)` });
    return undefined;
  }

  private reject(reason: string, line: string): void {
    this.security?.onRejected?.(reason);
    this.log.line(`rejected:${reason}`, `raft transport ${this.id}: ${line}`);
  }

  private handleStream(call: grpc.ServerReadableStream<BatchWire, AckWire>, callback: grpc.sendUnaryData<AckWire>): void {
    const caller = this.callerOf(call, (error) => callback(error));
    if (caller === undefined) return;
    call.sendMetadata(new grpc.Metadata());
    let finished = false;
    const finish = (error: Partial<grpc.StatusObject> | null): void => {
      if (finished) return;
      finished = true;
      callback(error, error === null ? {} : undefined);
    };
    call.on('data', (batch: BatchWire) => {
      if (finished || this.stopped) return;
      if (caller !== null && batch.from !== caller) {
        this.counters.batchesRejected++;
        const sender = JSON.stringify(String(batch.from).slice(0, NODE_ID_CHARS_MAX));
        this.reject('sender-mismatch', `batch claiming to be from ${sender} arrived on ${JSON.stringify(caller)}'s connection; dropped`);
        finish({ code: grpc.status.PERMISSION_DENIED, details: `a batch from ${sender} on the connection of ${JSON.stringify(caller)}` });
        return;
      }
      const decoded = decodeBatch(batch, this.id);
      if (!decoded.ok) {
        this.counters.batchesRejected++;
        const details = `batch from ${JSON.stringify(String(batch.from).slice(0, NODE_ID_CHARS_MAX))} rejected: ${decoded.reason}`;
        this.log.line('batch-rejected', `raft transport ${this.id}: ${details}`);
        finish({ code: grpc.status.INVALID_ARGUMENT, details });
        return;
      }
      this.counters.batchesReceived++;
      this.counters.messagesReceived += decoded.value.length;
      for (const message of decoded.value) this.handlers?.onMessage(message);
    });
    call.on('end', () => finish(null));
    call.on('error', () => (finished = true));
    call.on('cancelled', () => (finished = true));
  }

  private handleInstallSnapshot(
    call: grpc.ServerReadableStream<SnapshotChunkWire, AckWire>,
    callback: grpc.sendUnaryData<AckWire>,
  ): void {
    const caller = this.callerOf(call, (error) => callback(error));
    if (caller === undefined) return;
    if (this.snapshotsIncoming >= SNAPSHOTS_INCOMING_MAX) {
      this.counters.snapshotsRejected++;
      callback({ code: grpc.status.RESOURCE_EXHAUSTED, details: `already receiving ${SNAPSHOTS_INCOMING_MAX} snapshots; retry later` });
      return;
    }
    this.snapshotsIncoming++;
    const assembly = new SnapshotAssembly(this.id, this.settings.snapshotBytesMax);
    // Two separate facts: whether the call was answered, and whether its slot was given back.
    let answered = false;
    let slotHeld = true;
    const releaseSlot = (): void => {
      if (slotHeld) this.snapshotsIncoming--;
      slotHeld = false;
    };
    const abandon = (): void => {
      answered = true;
      releaseSlot();
    };
    const refuse = (reason: string): void => {
      abandon();
      this.counters.snapshotsRejected++;
      this.log.line('snapshot-rejected', `raft transport ${this.id}: snapshot stream rejected: ${reason}`);
      callback({ code: grpc.status.INVALID_ARGUMENT, details: `snapshot rejected: ${reason}` });
    };
    call.on('data', (chunk: SnapshotChunkWire) => {
      if (answered || this.stopped) return;
      const added = assembly.add(chunk);
      if (!added.ok) refuse(added.reason);
    });
    call.on('end', () => {
      if (answered || this.stopped) return;
      const message = assembly.finish();
      if (!message.ok) return refuse(message.reason);
      if (caller !== null && message.value.from !== caller) {
        this.reject('sender-mismatch', `snapshot claiming to be from ${JSON.stringify(message.value.from)} arrived on ${JSON.stringify(caller)}'s connection; dropped`);
        return refuse(`the snapshot names ${JSON.stringify(message.value.from)} as its sender, not the connection's ${JSON.stringify(caller)}`);
      }
      abandon();
      this.counters.snapshotsReceived++;
      this.handlers?.onMessage(message.value);
      callback(null, {});
    });
    call.on('error', abandon);
    call.on('cancelled', abandon);
    call.on('close', releaseSlot);
  }
}

/** Removes and returns the longest prefix of `queue` within `bytesMax` (at least one message). */
function takeBatch(queue: Message[], bytesMax: number): Message[] {
  let count = 0;
  let bytes = 0;
  for (const message of queue) {
    const size = estimateBytes(message);
    if (count > 0 && bytes + size > bytesMax) break;
    bytes += size;
    count++;
  }
  return queue.splice(0, count);
}

/** Writes header and data chunks, honouring backpressure; throws when `signal` aborts. */
async function writeSnapshotChunks(
  call: grpc.ClientWritableStream<SnapshotChunkWire>,
  message: Message,
  chunkBytes: number,
  signal: AbortSignal,
): Promise<void> {
  const header = packr.pack(snapshotHeaderToTuple(message));
  const data = message.snapshot!.data;
  let offset = 0;
  do {
    signal.throwIfAborted();
    const end = Math.min(offset + chunkBytes, data.byteLength);
    const chunk = { header: offset === 0 ? header : EMPTY, data: data.subarray(offset, end), done: end === data.byteLength };
    offset = end;
    if (!call.write(chunk)) await once(call, 'drain', { signal });
  } while (offset < data.byteLength);
}
