/**
 * The Raft transport's wire codec: messages to and from the bytes a `Batch`
 * or `SnapshotChunk` carries (proto/raft.proto), with every field validated.
 * Pure: no gRPC, no timers, no I/O, so it can be fuzzed on its own
 * (consensus/test/wire-codec-fuzz.test.ts).
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
 * Decoding never throws on what a peer sent: a bad peer is not a bug here, so
 * every refusal is a `{ ok: false, reason }` value. Encoding asserts its
 * input, which comes from this node's own Raft.
 */
import { Packr } from 'msgpackr';
import { assert } from '../core/assert.js';
import { EntryType, MessageType } from '../core/types.js';
import type { ClusterConfig, Entry, Message, NodeId, SnapshotMeta } from '../core/types.js';

/** A `Batch` as decoded (proto-codec.ts). */
export interface BatchWire {
  from: string;
  payload: Uint8Array;
}

/** A `SnapshotChunk` as decoded (proto-codec.ts). */
export interface SnapshotChunkWire {
  header: Uint8Array;
  data: Uint8Array;
  done: boolean;
}

/** A decoded value, or why the input was refused. */
export type Decoded<T> = { ok: true; value: T } | { ok: false; reason: string };

/** Longest node id accepted, in characters. */
export const NODE_ID_CHARS_MAX = 256;
const CONTEXT_CHARS_MAX = 4096;
const MESSAGE_FIELDS = 13;
const SNAPSHOT_HEADER_FIELDS = 5;
/** Fixed per-message and per-entry allowances in the batch size estimate (tuple framing, numbers). */
const MESSAGE_OVERHEAD_BYTES = 64;
const ENTRY_OVERHEAD_BYTES = 32;

/**
 * records off: plain arrays only. Decoded bin fields (entries' data) are views
 * into the batch, not copies: a follower keeps a batch's entries in its log
 * until the next compaction, and they are most of the batch, so a copy per
 * entry bought little memory for an allocation and a copy per entry on every
 * follower's path (and one more buffer per entry for the GC to track).
 */
const packr = new Packr({ useRecords: false });

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

/** Encodes the header of a Snapshot message's first chunk; the message must carry a snapshot. */
export function encodeSnapshotHeader(message: Message): Uint8Array {
  const snapshot = message.snapshot;
  assert(snapshot !== undefined, `Snapshot message to "${message.to}" carries no snapshot`);
  const bare = messageToTuple({ ...message, entries: [] });
  return packr.pack([bare, snapshot.meta.index, snapshot.meta.term, configToTuple(snapshot.meta.config), snapshot.data.byteLength]);
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

/** Removes and returns the longest prefix of `queue` within `bytesMax` by estimate (at least one message). */
export function takeBatch(queue: Message[], bytesMax: number): Message[] {
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

// ---------------------------------------------------------------------------
// Decoding and validation. Expected outcomes: a bad peer is not a bug here.

function ok<T>(value: T): Decoded<T> {
  return { ok: true, value };
}
function fail<T>(reason: string): Decoded<T> {
  return { ok: false, reason };
}

function isCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

/** A non-empty string of at most NODE_ID_CHARS_MAX characters. */
export function isNodeId(value: unknown): value is NodeId {
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

/** The first chunk's header of an incoming snapshot: the message (without data), its meta, and the data size. */
export interface SnapshotHeader {
  message: Message;
  meta: SnapshotMeta;
  dataBytes: number;
}

/** Decodes and validates a snapshot header addressed to `receiver`, declaring at most `snapshotBytesMax` bytes. */
export function decodeSnapshotHeader(bytes: Uint8Array, receiver: NodeId, snapshotBytesMax: number): Decoded<SnapshotHeader> {
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

/**
 * Collects the chunks of one incoming snapshot and checks they match their
 * header. Holds at most the header's declared size (itself at most
 * `snapshotBytesMax`); a refusal from `add` ends the transfer.
 */
export class SnapshotAssembly {
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
      const header = decodeSnapshotHeader(chunk.header, this.receiver, this.snapshotBytesMax);
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
