/**
 * Linearizability of a register history (read, write, cas; every key starts
 * at null), checked per key, since operations on different keys never
 * constrain each other.
 *
 * Per key: the Wing-Gong search with Lowe's memoisation, as in porcupine.
 * Calls and returns sit in one doubly linked list ordered by time. The search
 * walks it; at a call it tries to linearize that operation now (the model
 * accepts it, and the pair (linearized set, register value) was not visited
 * before), and if so unlinks the call and its return and starts again from the
 * front; at a return of an operation not yet linearized it backtracks. The
 * history is linearizable when the list empties.
 *
 * An operation with unknown outcome has its return at +Infinity, so the search
 * may place it anywhere after its call, including after everything else,
 * which is the same as never. Such an operation is dropped beforehand when no
 * completed read or any cas could observe what it would write, which keeps
 * the search from trying every subset of them.
 *
 * Pure and synchronous; the work per key is bounded by `stepsMaxPerKey`.
 */
import { assert } from '../consensus/core/assert.js';
import type { Operation } from './history.js';

/** Search steps per key before giving up with verdict `unknown`. */
export const defaultStepsMaxPerKey = 20_000_000;

/** Settings of `checkLinearizability`. */
export interface CheckOptions {
  /** Loop iterations of the search per key before it gives up (verdict `unknown`). */
  readonly stepsMaxPerKey?: number;
}

/** What the checker concluded, for one key or for the whole history. */
export type Verdict = 'linearizable' | 'not linearizable' | 'unknown';

/**
 * Why a key is not linearizable. `unwritten-read`: a completed read returned a
 * value no operation on that key ever wrote (found without searching).
 * `no-linearization`: the search ran out of orders; `prefix` is the longest
 * sequence it could linearize (in linearization order), `valueAfterPrefix` the
 * register then, and `stuck` the operations that could have come next, none
 * of which could be placed: the smallest failing part of the history.
 */
export type Failure =
  | { readonly kind: 'unwritten-read'; readonly read: Operation }
  | {
      readonly kind: 'no-linearization';
      readonly prefix: readonly Operation[];
      readonly valueAfterPrefix: unknown;
      readonly stuck: readonly Operation[];
    };

/** The outcome for one key. `failure` is set exactly when the verdict is `not linearizable`. */
export interface KeyResult {
  readonly key: string;
  readonly verdict: Verdict;
  /** Operations searched, after dropping unknown reads and unobservable unknown writes. */
  readonly operationCount: number;
  readonly steps: number;
  readonly failure?: Failure;
}

/** The outcome for a history: `not linearizable` if any key is, else `unknown` if any key is, else `linearizable`. */
export interface CheckResult {
  readonly verdict: Verdict;
  /** One entry per key, sorted by key. */
  readonly keys: readonly KeyResult[];
}

/** Checks a history's operations (as `parseHistory` returns them), key by key. */
export function checkLinearizability(operations: readonly Operation[], options: CheckOptions = {}): CheckResult {
  const stepsMax = options.stepsMaxPerKey ?? defaultStepsMaxPerKey;
  assert(Number.isSafeInteger(stepsMax) && stepsMax > 0, `stepsMaxPerKey must be a positive whole number, got ${stepsMax}`);
  const byKey = new Map<string, Operation[]>();
  for (const operation of operations) {
    const list = byKey.get(operation.key);
    if (list === undefined) byKey.set(operation.key, [operation]);
    else list.push(operation);
  }
  const keys = [...byKey.keys()].sort();
  const results = keys.map((key) => checkKey(key, byKey.get(key) ?? [], stepsMax));
  let verdict: Verdict = 'linearizable';
  if (results.some((result) => result.verdict === 'unknown')) verdict = 'unknown';
  if (results.some((result) => result.verdict === 'not linearizable')) verdict = 'not linearizable';
  return { verdict, keys: results };
}

/** JSON with object keys sorted, so that equal values have equal text. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (typeof value === 'object' && value !== null) {
    const entries = Object.keys(value)
      .sort()
      .map((name) => `${JSON.stringify(name)}:${canonicalJson((value as Record<string, unknown>)[name])}`);
    return `{${entries.join(',')}}`;
  }
  return JSON.stringify(value ?? null);
}

const initialJson = 'null';

/**
 * One operation as the register model sees it, with values as canonical JSON.
 * `readJson` is null for nothing to check; `casExpectedJson` is set for cas only.
 */
interface ModelOperation {
  readonly operation: Operation;
  readonly kind: 'read' | 'write' | 'cas';
  readonly known: boolean;
  readonly readJson: string | null;
  readonly writeJson: string | null;
  readonly casExpectedJson: string | null;
}

function toModel(operation: Operation): ModelOperation {
  const known = operation.outcome === 'ok';
  if (operation.f === 'read') {
    return { operation, kind: 'read', known, readJson: known ? canonicalJson(operation.value) : null, writeJson: null, casExpectedJson: null };
  }
  if (operation.f === 'write') {
    return { operation, kind: 'write', known, readJson: null, writeJson: canonicalJson(operation.value), casExpectedJson: null };
  }
  const pair = operation.value as readonly unknown[];
  return { operation, kind: 'cas', known, readJson: null, writeJson: canonicalJson(pair[1]), casExpectedJson: canonicalJson(pair[0]) };
}

/**
 * The register's transition: the value after `model` runs on `valueJson`, or
 * null when a completed operation could not have returned what it did there.
 * An unknown cas whose expectation fails behaves as if it never happened.
 */
function step(valueJson: string, model: ModelOperation): string | null {
  switch (model.kind) {
    case 'read':
      return model.readJson === null || model.readJson === valueJson ? valueJson : null;
    case 'write':
      return model.writeJson;
    case 'cas':
      if (model.casExpectedJson === valueJson) return model.writeJson;
      return model.known ? null : valueJson;
  }
}

function checkKey(key: string, operations: readonly Operation[], stepsMax: number): KeyResult {
  const models = relevantOperations(operations.map(toModel));
  const unwritten = findUnwrittenRead(models);
  if (unwritten !== null) {
    return { key, verdict: 'not linearizable', operationCount: models.length, steps: 0, failure: { kind: 'unwritten-read', read: unwritten } };
  }
  const search = searchLinearization(models, stepsMax);
  if (search.outcome === 'linearizable') {
    return { key, verdict: 'linearizable', operationCount: models.length, steps: search.steps };
  }
  if (search.outcome === 'budget') return { key, verdict: 'unknown', operationCount: models.length, steps: search.steps };
  return { key, verdict: 'not linearizable', operationCount: models.length, steps: search.steps, failure: describeFailure(models, search.bestPrefix) };
}

/**
 * Drops what cannot matter: reads with unknown outcome (they observe nothing
 * and change nothing), and unknown writes and cas whose written value no
 * completed read returns and no cas expects. Such a write, if applied, must be
 * overwritten before anyone looks, so "never happened" is always as good.
 */
function relevantOperations(models: readonly ModelOperation[]): ModelOperation[] {
  const observed = new Set<string>();
  for (const model of models) {
    if (model.readJson !== null) observed.add(model.readJson);
    if (model.casExpectedJson !== null) observed.add(model.casExpectedJson);
  }
  return models.filter((model) => {
    if (model.known) return true;
    if (model.kind === 'read') return false;
    return model.writeJson !== null && observed.has(model.writeJson);
  });
}

/** The first completed read (by call time) of a value never written to this key, or null. */
function findUnwrittenRead(models: readonly ModelOperation[]): Operation | null {
  const written = new Set<string>([initialJson]);
  for (const model of models) if (model.writeJson !== null) written.add(model.writeJson);
  let first: Operation | null = null;
  for (const model of models) {
    if (model.readJson === null || written.has(model.readJson)) continue;
    if (first === null || model.operation.callTime < first.callTime) first = model.operation;
  }
  return first;
}

type SearchResult =
  | { readonly outcome: 'linearizable'; readonly steps: number }
  | { readonly outcome: 'budget'; readonly steps: number }
  | { readonly outcome: 'illegal'; readonly steps: number; readonly bestPrefix: readonly number[] };

/**
 * Entries of the doubly linked list, as parallel arrays. Entry 2i is the call
 * of operation i and 2i+1 its return; `head` is a sentinel before the first.
 */
interface EntryList {
  readonly next: Int32Array;
  readonly previous: Int32Array;
  readonly head: number;
}

const none = -1;

function buildEntryList(models: readonly ModelOperation[]): EntryList {
  const count = models.length * 2;
  const order: number[] = [];
  for (let entry = 0; entry < count; entry++) order.push(entry);
  const timeOf = (entry: number): number => {
    const operation = (models[entry >> 1] as ModelOperation).operation;
    return (entry & 1) === 0 ? operation.callTime : operation.returnTime;
  };
  // Ties put calls before returns: operations that touch at an instant count
  // as concurrent, the reading that accuses no one wrongly.
  order.sort((a, b) => timeOf(a) - timeOf(b) || (a & 1) - (b & 1) || a - b);
  const head = count;
  const next = new Int32Array(count + 1).fill(none);
  const previous = new Int32Array(count + 1).fill(none);
  let last = head;
  for (const entry of order) {
    next[last] = entry;
    previous[entry] = last;
    last = entry;
  }
  return { next, previous, head };
}

/** Unlinks the call entry and its return; their own links stay, for `unlift`. */
function lift(list: EntryList, call: number): void {
  for (const entry of [call, call + 1]) {
    const before = list.previous[entry] as number;
    const after = list.next[entry] as number;
    list.next[before] = after;
    if (after !== none) list.previous[after] = before;
  }
}

/** Undoes `lift` of the same call; lifts must be undone in reverse order. */
function unlift(list: EntryList, call: number): void {
  for (const entry of [call + 1, call]) {
    const before = list.previous[entry] as number;
    const after = list.next[entry] as number;
    list.next[before] = entry;
    if (after !== none) list.previous[after] = entry;
  }
}

/**
 * Visited (linearized set, register value) pairs. The set's hash is kept
 * incrementally (xor of a fixed random word per operation); equal hashes are
 * told apart by comparing the stored bitsets.
 */
class VisitedSet {
  private readonly buckets = new Map<string, Uint32Array[]>();

  /** Records the pair; false if it was already there. */
  maybeAdd(hash: string, valueJson: string, bits: Uint32Array): boolean {
    const bucketKey = `${hash}|${valueJson}`;
    const bucket = this.buckets.get(bucketKey);
    if (bucket === undefined) {
      this.buckets.set(bucketKey, [bits.slice()]);
      return true;
    }
    if (bucket.some((stored) => sameBits(stored, bits))) return false;
    bucket.push(bits.slice());
    return true;
  }
}

function sameBits(a: Uint32Array, b: Uint32Array): boolean {
  for (let word = 0; word < a.length; word++) if (a[word] !== b[word]) return false;
  return true;
}

/** A fixed pseudo-random word per index (splitmix32), so runs are repeatable. */
function hashWord(index: number, salt: number): number {
  let z = (Math.imul(index + 1, 0x9e3779b9) ^ salt) >>> 0;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
  return (z ^ (z >>> 16)) >>> 0;
}

function searchLinearization(models: readonly ModelOperation[], stepsMax: number): SearchResult {
  const list = buildEntryList(models);
  const bits = new Uint32Array(Math.ceil(models.length / 32));
  const visited = new VisitedSet();
  // The stack of linearized calls, with the register value before each.
  const stackCalls: number[] = [];
  const stackValues: string[] = [];
  let hashLow = 0;
  let hashHigh = 0;
  let value = initialJson;
  let bestPrefix: number[] = [];
  let bestDepth = 0;
  let bestUnsaved = false;
  let steps = 0;
  let entry = list.next[list.head] as number;
  while (list.next[list.head] !== none) {
    if (++steps > stepsMax) return { outcome: 'budget', steps };
    assert(entry !== none, 'linearizability search walked off the end of the entry list');
    const index = entry >> 1;
    if ((entry & 1) === 0) {
      const after = step(value, models[index] as ModelOperation);
      if (after !== null) {
        const word = index >>> 5;
        const mask = 1 << (index & 31);
        bits[word] = ((bits[word] as number) | mask) >>> 0;
        const low = (hashLow ^ hashWord(index, 0x1234567)) >>> 0;
        const high = (hashHigh ^ hashWord(index, 0x7654321)) >>> 0;
        if (visited.maybeAdd(`${low}:${high}`, after, bits)) {
          stackCalls.push(entry);
          stackValues.push(value);
          if (stackCalls.length > bestDepth) {
            bestDepth = stackCalls.length;
            bestUnsaved = true;
          }
          value = after;
          hashLow = low;
          hashHigh = high;
          lift(list, entry);
          entry = list.next[list.head] as number;
          continue;
        }
        bits[word] = ((bits[word] as number) & ~mask) >>> 0;
      }
      entry = list.next[entry] as number;
      continue;
    }
    // The return of an operation not yet linearized: nothing left to try here.
    if (stackCalls.length === 0) return { outcome: 'illegal', steps, bestPrefix };
    if (bestUnsaved) {
      bestPrefix = stackCalls.map((call) => call >> 1);
      bestUnsaved = false;
    }
    const call = stackCalls.pop() as number;
    value = stackValues.pop() as string;
    const undone = call >> 1;
    bits[undone >>> 5] = ((bits[undone >>> 5] as number) & ~(1 << (undone & 31))) >>> 0;
    hashLow = (hashLow ^ hashWord(undone, 0x1234567)) >>> 0;
    hashHigh = (hashHigh ^ hashWord(undone, 0x7654321)) >>> 0;
    unlift(list, call);
    entry = list.next[call] as number;
  }
  return { outcome: 'linearizable', steps };
}

/**
 * The longest linearized prefix, the register after it, and the operations
 * that could have come next: every remaining one whose call is no later than
 * the earliest remaining return.
 */
function describeFailure(models: readonly ModelOperation[], bestPrefix: readonly number[]): Failure {
  let value = initialJson;
  const placed = new Set<number>();
  for (const index of bestPrefix) {
    const after = step(value, models[index] as ModelOperation);
    assert(after !== null, 'the best prefix of the linearizability search does not replay');
    value = after;
    placed.add(index);
  }
  const remaining = models.filter((_, index) => !placed.has(index)).map((model) => model.operation);
  let earliestReturn = Number.POSITIVE_INFINITY;
  for (const operation of remaining) earliestReturn = Math.min(earliestReturn, operation.returnTime);
  const stuck = remaining.filter((operation) => operation.callTime <= earliestReturn).sort((a, b) => a.callTime - b.callTime || a.id - b.id);
  return {
    kind: 'no-linearization',
    prefix: bestPrefix.map((index) => (models[index] as ModelOperation).operation),
    valueAfterPrefix: JSON.parse(value) as unknown,
    stuck,
  };
}
