/**
 * The replicated state of the key-value server: a map of keys to values, the
 * ordered record of the puts applied (for checkers), and the results of
 * recent request ids (for exactly-once retries). Deterministic: it reads
 * nothing but the entries it is given, and every bound evicts in apply order,
 * so every node holds the same state at the same index.
 */
import { Packr } from 'msgpackr';
import { assert } from '../core/assert.js';
import type { Entry } from '../core/types.js';
import type { StateMachine } from '../node.js';

/** Largest key, in bytes. */
export const KEY_BYTES_MAX = 4 * 1024;
/** Largest value, in bytes. */
export const VALUE_BYTES_MAX = 1024 * 1024;
/** Longest request id, in characters. */
export const REQUEST_ID_CHARS_MAX = 256;

/** One put, as it travels in a log entry. */
export interface PutCommand {
  key: Uint8Array;
  value: Uint8Array;
  /** Empty: no deduplication. */
  requestId: string;
}

/** What applying a put returns: where the put took effect (for a duplicate, where the first one did). */
export interface PutResult {
  index: number;
  term: number;
  duplicate: boolean;
}

/** One entry of the ordered record of applied puts. */
export interface AppliedPut {
  index: number;
  key: Uint8Array;
  valueHash: number;
  requestId: string;
}

/** Bounds of the state; they are part of the replicated behaviour, so all nodes must agree on them. */
export interface KvLimits {
  /** Applied puts kept in the record; the oldest are forgotten first. */
  appliedPutsMax: number;
  /** Request ids remembered for deduplication; the oldest are forgotten first. */
  requestIdsMax: number;
}

export const DEFAULT_KV_LIMITS: KvLimits = { appliedPutsMax: 100_000, requestIdsMax: 100_000 };

const COMMAND_PUT = 1;
/** One msgpack array: [1, values, puts, forgotten, requests]. Still restored. */
const SNAPSHOT_VERSION_WHOLE = 1;
/**
 * A msgpack sequence: a header [2, value count, put count, forgotten,
 * requests], then the values in slices of [key, value] pairs, then the puts
 * in slices of [index, key, valueHash, requestId], so that it can be encoded
 * a slice at a time.
 */
const SNAPSHOT_VERSION_SLICED = 2;
/** Values or puts per slice: about 2,048 × 300 B, a few milliseconds of encoding. */
const SNAPSHOT_SLICE_ITEMS = 2048;

/** records off: plain arrays; copyBuffers: decoded values do not pin whole log entries in memory. */
const packr = new Packr({ useRecords: false, copyBuffers: true });

/** Encodes a put for `RaftNode.propose`. */
export function encodePut(command: PutCommand): Uint8Array {
  return packr.pack([COMMAND_PUT, command.key, command.value, command.requestId]);
}

function decodePut(data: Uint8Array): PutCommand {
  const tuple: unknown = packr.unpack(data);
  assert(
    Array.isArray(tuple) &&
      tuple.length === 4 &&
      tuple[0] === COMMAND_PUT &&
      tuple[1] instanceof Uint8Array &&
      tuple[2] instanceof Uint8Array &&
      typeof tuple[3] === 'string',
    'KvStateMachine: a committed entry is not a put command',
  );
  return { key: tuple[1] as Uint8Array, value: tuple[2] as Uint8Array, requestId: tuple[3] as string };
}

/** FNV-1a, 32-bit. */
export function fnv1a(bytes: Uint8Array): number {
  let hash = 0x811c9dc5;
  for (const byte of bytes) hash = Math.imul(hash ^ byte, 0x01000193) >>> 0;
  return hash;
}

/** A key as a Map key: one char per byte. */
function mapKey(key: Uint8Array): string {
  return Buffer.from(key.buffer, key.byteOffset, key.byteLength).toString('latin1');
}

/** The key-value state machine; see the file comment. */
export class KvStateMachine implements StateMachine {
  private values = new Map<string, Uint8Array>();
  /**
   * While a background snapshot encodes `values`, puts land here instead, and
   * reads look here first; merged into `values` when the snapshot is done.
   */
  private overlay: Map<string, Uint8Array> | undefined;
  /** Changes on every restore, so a background snapshot of older state does not merge into newer. */
  private generation = 0;
  /** Applied puts in log order; `forgotten` older ones were dropped to stay under the bound. */
  private puts: AppliedPut[] = [];
  private putsStart = 0;
  private forgotten = 0;
  private requests = new Map<string, { index: number; term: number }>();

  constructor(private readonly limits: KvLimits = DEFAULT_KV_LIMITS) {
    assert(limits.appliedPutsMax > 0 && limits.requestIdsMax > 0, 'KvStateMachine: limits must be positive');
  }

  apply(entry: Entry): PutResult {
    const command = decodePut(entry.data);
    if (command.requestId !== '') {
      const earlier = this.requests.get(command.requestId);
      if (earlier) return { ...earlier, duplicate: true };
      this.requests.set(command.requestId, { index: entry.index, term: entry.term });
      if (this.requests.size > this.limits.requestIdsMax) {
        this.requests.delete(this.requests.keys().next().value!);
      }
    }
    (this.overlay ?? this.values).set(mapKey(command.key), command.value);
    this.record({ index: entry.index, key: command.key, valueHash: fnv1a(command.value), requestId: command.requestId });
    return { index: entry.index, term: entry.term, duplicate: false };
  }

  private record(put: AppliedPut): void {
    this.puts.push(put);
    if (this.puts.length - this.putsStart > this.limits.appliedPutsMax) {
      this.putsStart++;
      this.forgotten++;
    }
    // Drop the forgotten prefix in bulk, so that eviction costs O(1) amortized.
    if (this.putsStart > 1024 && this.putsStart * 2 > this.puts.length) {
      this.puts = this.puts.slice(this.putsStart);
      this.putsStart = 0;
    }
  }

  /** The current value of `key`, or undefined. */
  get(key: Uint8Array): Uint8Array | undefined {
    const text = mapKey(key);
    return this.overlay?.get(text) ?? this.values.get(text);
  }

  /** At most `limit` recorded puts with an index above `afterIndex`, in log order. */
  dump(afterIndex: number, limit: number): { puts: AppliedPut[]; forgotten: number; more: boolean } {
    let low = this.putsStart;
    let high = this.puts.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (this.puts[middle]!.index <= afterIndex) low = middle + 1;
      else high = middle;
    }
    const puts = this.puts.slice(low, low + limit);
    return { puts, forgotten: this.forgotten, more: low + limit < this.puts.length };
  }

  snapshot(): Uint8Array {
    const values = this.overlay === undefined ? this.values : new Map([...this.values, ...this.overlay]);
    return Buffer.concat([...this.encode(values)]);
  }

  /**
   * The state as of now, encoded a slice at a time with a turn of the event
   * loop between slices, so that a large state does not stall the node.
   * Puts applied meanwhile go to an overlay and are not in the snapshot; the
   * overlay is merged when the encoding ends. One at a time.
   */
  async snapshotInBackground(): Promise<Uint8Array> {
    assert(this.overlay === undefined, 'KvStateMachine: one background snapshot at a time');
    const values = this.values;
    const generation = this.generation;
    this.overlay = new Map();
    const parts: Buffer[] = [];
    try {
      for (const part of this.encode(values)) {
        parts.push(part);
        await new Promise((resolve) => setImmediate(resolve));
      }
    } finally {
      // A restore meanwhile replaced the state, overlay included: nothing to merge.
      if (this.generation === generation) {
        for (const [key, value] of this.overlay!) values.set(key, value);
        this.overlay = undefined;
      }
    }
    return Buffer.concat(parts);
  }

  /** The slices of a version-2 snapshot of `values` and the current puts and request ids (captured at the call). */
  private *encode(values: Map<string, Uint8Array>): Generator<Buffer> {
    const puts = this.puts;
    const putsEnd = puts.length;
    const putsStart = this.putsStart;
    const requests = [...this.requests].map(([id, at]) => [id, at.index, at.term]);
    // A copy: the packer reuses its buffer.
    const packed = (value: unknown): Buffer => Buffer.from(packr.pack(value));
    yield packed([SNAPSHOT_VERSION_SLICED, values.size, putsEnd - putsStart, this.forgotten, requests]);
    let slice: [Uint8Array, Uint8Array][] = [];
    for (const [key, value] of values) {
      slice.push([Buffer.from(key, 'latin1'), value]);
      if (slice.length === SNAPSHOT_SLICE_ITEMS) {
        yield packed(slice);
        slice = [];
      }
    }
    if (slice.length > 0) yield packed(slice);
    // `puts` is only ever appended to or replaced, so its range as captured stays as it was.
    for (let start = putsStart; start < putsEnd; start += SNAPSHOT_SLICE_ITEMS) {
      const end = Math.min(putsEnd, start + SNAPSHOT_SLICE_ITEMS);
      yield packed(puts.slice(start, end).map((put) => [put.index, put.key, put.valueHash, put.requestId]));
    }
  }

  restore(data: Uint8Array): void {
    const items = packr.unpackMultiple(data) as unknown[];
    const head = items[0];
    assert(Array.isArray(head) && head.length === 5, 'KvStateMachine: the snapshot is not a key-value snapshot');
    type Values = [Uint8Array, Uint8Array][];
    type Puts = [number, Uint8Array, number, string][];
    type Requests = [string, number, number][];
    let values: Values;
    let puts: Puts;
    let forgotten: number;
    let requests: Requests;
    if (head[0] === SNAPSHOT_VERSION_WHOLE) {
      assert(items.length === 1, 'KvStateMachine: a version-1 snapshot is one array');
      [, values, puts, forgotten, requests] = head as [number, Values, Puts, number, Requests];
    } else {
      assert(head[0] === SNAPSHOT_VERSION_SLICED, `KvStateMachine: snapshot version ${String(head[0])} is not 1 or 2`);
      let valueCount: number;
      let putCount: number;
      [, valueCount, putCount, forgotten, requests] = head as [number, number, number, number, Requests];
      const slices = items.slice(1) as unknown[][];
      values = [];
      puts = [];
      for (const slice of slices) {
        const target: unknown[] = values.length < valueCount ? values : puts;
        for (const item of slice) target.push(item);
      }
      assert(values.length === valueCount && puts.length === putCount, 'KvStateMachine: the snapshot is cut short');
    }
    this.values = new Map(values.map(([key, value]) => [mapKey(key), value]));
    this.overlay = undefined;
    this.generation++;
    this.puts = puts.map(([index, key, valueHash, requestId]) => ({ index, key, valueHash, requestId }));
    this.putsStart = 0;
    this.forgotten = forgotten;
    this.requests = new Map(requests.map(([id, index, term]) => [id, { index, term }]));
  }
}
