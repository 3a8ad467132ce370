/**
 * The replicated state of the key-value server: a map of keys to values, the
 * ordered record of the puts applied (for checkers), and the results of
 * recent request ids (for exactly-once retries). Deterministic: it reads
 * nothing but the entries it is given, and every bound evicts in apply order,
 * so every node holds the same state at the same index. The values live in a
 * `KvValues` (./kv-values.ts): in memory by default, in LevelDB on the server
 * (./kv-values-level.ts), where snapshots are encoded only in the background.
 */
import { Packr } from 'msgpackr';
import { assert } from '../core/assert.js';
import type { Entry } from '../core/types.js';
import type { SnapshotStream, StateMachine } from '../node.js';
import { EntrySlabs } from './entry-slabs.js';
import { keyBytes, keyText, MemoryKvValues, type KeyValue, type KvValues } from './kv-values.js';

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
 * in slices of [index, key, valueHash, requestId]. Still restored.
 */
const SNAPSHOT_VERSION_SLICED = 2;
/**
 * A msgpack sequence: a header [3, put count, forgotten, requests], the puts
 * in slices of [index, key, valueHash, requestId], the values in slices of
 * [key, value] pairs, then the number of values (an integer), so that the
 * values can be encoded as a store hands them out, without knowing their
 * count first.
 */
const SNAPSHOT_VERSION_STREAMED = 3;
/** Puts per slice: about 2,048 × 300 B, a few milliseconds of encoding. */
const SNAPSHOT_SLICE_ITEMS = 2048;

/** records off: plain arrays. */
const packr = new Packr({ useRecords: false });

/** Where encoded puts live while the log holds them (see ./entry-slabs.ts). */
const putSlabs = new EntrySlabs();

/**
 * Encodes a put for `RaftNode.propose`: a copy in a slab of puts, not a view
 * into msgpackr's shared encode buffer, which would pin three times its size
 * for as long as the log keeps the entry.
 */
export function encodePut(command: PutCommand): Uint8Array {
  return putSlabs.copy(packr.pack([COMMAND_PUT, command.key, command.value, command.requestId]));
}

/**
 * The put in `data`; its key and value are views into `data`, not copies.
 * msgpackr caches a DataView on the buffer it reads (about 120 bytes of heap),
 * so it reads a throwaway view of `data`: `data` itself stays in the log until
 * the next compaction, and the cache would stay with it, once per entry.
 */
function decodePut(data: Uint8Array): PutCommand {
  const tuple: unknown = packr.unpack(Buffer.from(data.buffer, data.byteOffset, data.byteLength));
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
  for (let offset = 0; offset < bytes.length; offset++) hash = Math.imul(hash ^ bytes[offset]!, 0x01000193) >>> 0;
  return hash;
}

/** An applied put as recorded: the key as a string, which costs the heap less than a buffer each. */
interface RecordedPut {
  index: number;
  key: string;
  valueHash: number;
  requestId: string;
}

/** How to make a `KvStateMachine`. */
export interface KvStateMachineOptions {
  limits?: KvLimits;
  /** Where the values live; default a `MemoryKvValues`. The machine owns it. */
  values?: KvValues;
}

/** The key-value state machine; see the file comment. */
export class KvStateMachine implements StateMachine {
  private readonly limits: KvLimits;
  private readonly values: KvValues;
  /** Whether `values` keeps what `set` hands it as it is (in memory): then values are copied out of their entries first. */
  private readonly valuesInMemory: boolean;
  /** Changes on every restore, so a background snapshot of older state is known as such. */
  private generation = 0;
  private snapshotRunning = false;
  /** Applied puts in log order; `forgotten` older ones were dropped to stay under the bound. */
  private puts: RecordedPut[] = [];
  private putsStart = 0;
  private forgotten = 0;
  private requests = new Map<string, { index: number; term: number }>();

  constructor(options: KvStateMachineOptions = {}) {
    this.limits = options.limits ?? DEFAULT_KV_LIMITS;
    this.values = options.values ?? new MemoryKvValues();
    this.valuesInMemory = this.values instanceof MemoryKvValues;
    assert(this.limits.appliedPutsMax > 0 && this.limits.requestIdsMax > 0, 'KvStateMachine: limits must be positive');
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
    const key = keyText(command.key);
    // A store in memory would pin the entry (on the leader, the encoder's whole buffer) with a view.
    this.values.set(key, this.valuesInMemory ? command.value.slice() : command.value);
    this.record({ index: entry.index, key, valueHash: fnv1a(command.value), requestId: command.requestId });
    return { index: entry.index, term: entry.term, duplicate: false };
  }

  private record(put: RecordedPut): void {
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
    return this.values.get(keyText(key));
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
    const puts = this.puts.slice(low, low + limit).map((put) => ({ ...put, key: keyBytes(put.key) }));
    return { puts, forgotten: this.forgotten, more: low + limit < this.puts.length };
  }

  /** The whole state now, synchronously; only for values in memory (see `KvValues.all`). */
  snapshot(): Uint8Array {
    const values = this.values.all();
    const parts = [...this.encodeRecords()];
    for (let start = 0; start < values.length; start += SNAPSHOT_SLICE_ITEMS) parts.push(packed(values.slice(start, start + SNAPSHOT_SLICE_ITEMS)));
    parts.push(packed(values.length));
    return Buffer.concat(parts);
  }

  /**
   * The state as of now, encoded a slice at a time with a turn of the event
   * loop between slices, so that a large state does not stall the node. Puts
   * applied meanwhile are not in it (the values store freezes a view). One
   * at a time. Resolves with the slices, which joined are what `snapshot()`
   * would have returned: the node stores them as they are, where one joined
   * copy doubled the memory a snapshot took, and glibc kept much of it after
   * it was freed (a large free raises its mmap threshold, so later buffers
   * of that size come from the heap it keeps). A restore meanwhile makes it
   * stale: it then resolves with what it had, which the node discards.
   */
  async snapshotInBackground(): Promise<Uint8Array[]> {
    const stream = this.snapshotStream();
    const parts: Uint8Array[] = [];
    try {
      for await (const part of stream) {
        parts.push(part);
        await new Promise((resolve) => setImmediate(resolve));
      }
    } catch (error) {
      if (!(error instanceof StaleSnapshotError)) throw error;
    } finally {
      await stream.close();
    }
    return parts;
  }

  /**
   * The state as of now (puts, request ids and a frozen view of the values,
   * all captured at the call), encoded a slice at a time as it is read: the
   * node's storage writes each slice before it reads the next, so a
   * snapshot is never whole in memory (`StateMachine.snapshotStream`). One
   * open at a time; `close` ends it early. A restore while it is read makes
   * it stale: reading then fails with a `StaleSnapshotError` (the node reads
   * it where no restore can run).
   */
  snapshotStream(): SnapshotStream {
    assert(!this.snapshotRunning, 'KvStateMachine: one snapshot stream at a time');
    this.snapshotRunning = true;
    const generation = this.generation;
    const records = this.encodeRecords();
    const view = this.values.freeze();
    let closed = false;
    const close = async (): Promise<void> => {
      if (closed) return;
      closed = true;
      this.snapshotRunning = false;
      await view.close();
    };
    const machine = this;
    async function* slices(): AsyncGenerator<Buffer> {
      try {
        yield* records;
        let count = 0;
        for (let slice = await view.next(); slice.length > 0; slice = await view.next()) {
          if (machine.generation !== generation) throw new StaleSnapshotError('KvStateMachine: the state was restored while its snapshot was read');
          yield packed(slice);
          count += slice.length;
        }
        yield packed(count);
      } finally {
        await close();
      }
    }
    const iterator = slices();
    return { [Symbol.asyncIterator]: () => iterator, close };
  }

  /** The header and the put slices of a version-3 snapshot of the current puts and request ids (captured at the call). */
  private encodeRecords(): Generator<Buffer> {
    // Captured now: the generator may be read after later applies.
    const puts = this.puts;
    const putsEnd = puts.length;
    const putsStart = this.putsStart;
    const head = packed([SNAPSHOT_VERSION_STREAMED, putsEnd - putsStart, this.forgotten, [...this.requests].map(([id, at]) => [id, at.index, at.term])]);
    return (function* (): Generator<Buffer> {
      yield head;
      // `puts` is only ever appended to or replaced, so its range as captured stays as it was.
      for (let start = putsStart; start < putsEnd; start += SNAPSHOT_SLICE_ITEMS) {
        const end = Math.min(putsEnd, start + SNAPSHOT_SLICE_ITEMS);
        yield packed(puts.slice(start, end).map((put) => [put.index, keyBytes(put.key), put.valueHash, put.requestId]));
      }
    })();
  }

  restore(data: Uint8Array): void {
    // Values are views into `data` (the node keeps the snapshot); what stays on the heap is copied.
    const items = packr.unpackMultiple(data) as unknown[];
    const head = items[0];
    assert(Array.isArray(head) && (head.length === 5 || head.length === 4), 'KvStateMachine: the snapshot is not a key-value snapshot');
    type Puts = [number, Uint8Array, number, string][];
    type Requests = [string, number, number][];
    let values: KeyValue[];
    let puts: Puts;
    let forgotten: number;
    let requests: Requests;
    if (head[0] === SNAPSHOT_VERSION_WHOLE) {
      assert(items.length === 1, 'KvStateMachine: a version-1 snapshot is one array');
      [, values, puts, forgotten, requests] = head as [number, KeyValue[], Puts, number, Requests];
    } else if (head[0] === SNAPSHOT_VERSION_SLICED) {
      let valueCount: number;
      let putCount: number;
      [, valueCount, putCount, forgotten, requests] = head as [number, number, number, number, Requests];
      values = [];
      puts = [];
      for (const slice of items.slice(1) as unknown[][]) {
        const target: unknown[] = values.length < valueCount ? values : puts;
        for (const item of slice) target.push(item);
      }
      assert(values.length === valueCount && puts.length === putCount, 'KvStateMachine: the snapshot is cut short');
    } else {
      assert(head[0] === SNAPSHOT_VERSION_STREAMED, `KvStateMachine: snapshot version ${String(head[0])} is not 1, 2 or 3`);
      let putCount: number;
      [, putCount, forgotten, requests] = head as [number, number, number, Requests];
      const valueCount = items.at(-1);
      assert(items.length >= 2 && typeof valueCount === 'number', 'KvStateMachine: the snapshot is cut short');
      values = [];
      puts = [];
      for (const slice of items.slice(1, -1) as unknown[][]) {
        assert(Array.isArray(slice), 'KvStateMachine: the snapshot is not a key-value snapshot');
        const target: unknown[] = puts.length < putCount ? puts : values;
        for (const item of slice) target.push(item);
      }
      assert(values.length === valueCount && puts.length === putCount, 'KvStateMachine: the snapshot is cut short');
    }
    this.values.replace(this.valuesInMemory ? values.map(([key, value]) => [key, value.slice()]) : values);
    this.generation++;
    this.puts = puts.map(([index, key, valueHash, requestId]) => ({ index, key: keyText(key), valueHash, requestId }));
    this.putsStart = 0;
    this.forgotten = forgotten;
    this.requests = new Map(requests.map(([id, index, term]) => [id, { index, term }]));
  }
}

/** A snapshot stream read after a restore replaced the state it captured. */
export class StaleSnapshotError extends Error {
  override readonly name = 'StaleSnapshotError';
}

/** `value` packed, copied out of the packer's buffer (which later packs reuse). */
function packed(value: unknown): Buffer {
  return Buffer.from(packr.pack(value));
}
