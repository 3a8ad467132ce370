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
const SNAPSHOT_VERSION = 1;

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
    this.values.set(mapKey(command.key), command.value);
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
    return this.values.get(mapKey(key));
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
    const values: [Uint8Array, Uint8Array][] = [];
    for (const [key, value] of this.values) values.push([Buffer.from(key, 'latin1'), value]);
    const puts = this.puts.slice(this.putsStart).map((put) => [put.index, put.key, put.valueHash, put.requestId]);
    const requests = [...this.requests].map(([id, at]) => [id, at.index, at.term]);
    return packr.pack([SNAPSHOT_VERSION, values, puts, this.forgotten, requests]);
  }

  restore(data: Uint8Array): void {
    const decoded: unknown = packr.unpack(data);
    assert(Array.isArray(decoded) && decoded.length === 5, 'KvStateMachine: the snapshot is not a key-value snapshot');
    const [version, values, puts, forgotten, requests] = decoded as [number, [Uint8Array, Uint8Array][], [number, Uint8Array, number, string][], number, [string, number, number][]];
    assert(version === SNAPSHOT_VERSION, `KvStateMachine: snapshot version ${version} is not ${SNAPSHOT_VERSION}`);
    this.values = new Map(values.map(([key, value]) => [mapKey(key), value]));
    this.puts = puts.map(([index, key, valueHash, requestId]) => ({ index, key, valueHash, requestId }));
    this.putsStart = 0;
    this.forgotten = forgotten;
    this.requests = new Map(requests.map(([id, index, term]) => [id, { index, term }]));
  }
}
