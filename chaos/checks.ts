/**
 * The run's checkers besides linearizability, and the figures of the summary.
 * Pure: operations (as `parseHistory` makes them) and times in, findings out.
 */
import type { Operation } from './history.js';

/** The value an operation would leave in the register (a write's value, a cas's new value), or undefined for a read. */
function writtenValue(operation: Operation): unknown {
  if (operation.f === 'write') return operation.value;
  if (operation.f === 'cas') return (operation.value as readonly unknown[])[1];
  return undefined;
}

function sameValue(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** A completed read of a value no write or cas on its key could have written. */
export interface UnwrittenRead {
  readonly key: string;
  readonly value: unknown;
  readonly process: number;
  readonly callTime: number;
}

/** Reads that returned a value that was never written to that key (null, the initial value, is always allowed). */
export function findUnwrittenReads(operations: readonly Operation[]): UnwrittenRead[] {
  const written = new Map<string, Set<string>>();
  for (const operation of operations) {
    const value = writtenValue(operation);
    if (value === undefined) continue;
    const set = written.get(operation.key) ?? new Set<string>();
    set.add(JSON.stringify(value));
    written.set(operation.key, set);
  }
  return operations
    .filter((operation) => operation.f === 'read' && operation.outcome === 'ok' && operation.value !== null)
    .filter((operation) => !written.get(operation.key)?.has(JSON.stringify(operation.value)))
    .map((operation) => ({ key: operation.key, value: operation.value, process: operation.process, callTime: operation.callTime }));
}

/** An acknowledged write that the final state shows was lost, or keys whose final reads disagree. */
export interface LostWrite {
  readonly key: string;
  /** The value every node read at the end. */
  readonly finalValue: unknown;
  /** The acknowledged operation whose effect is gone. */
  readonly lost: { readonly f: string; readonly value: unknown; readonly process: number; readonly callTime: number; readonly returnTime: number };
}

/** What the final reads found: a lost write, or nodes that disagree at the end. */
export interface DurabilityResult {
  readonly lost: LostWrite[];
  /** Keys whose final reads (all after recovery) returned different values. */
  readonly disagreements: { readonly key: string; readonly values: unknown[] }[];
  /** Keys with no completed final read (not judged). */
  readonly unjudged: string[];
}

/**
 * No acknowledged write lost. After recovery, with no client running, every
 * node reads every key (`finalProcesses` are the processes of those reads).
 * They must agree on a final value F per key. Values are unique, so F names
 * the operation that wrote it; an acknowledged write or cas that was called
 * after that operation had returned must come after it in any order, so F
 * could not be final unless that write was lost. If F is null, every
 * acknowledged write of the key was lost.
 */
export function checkDurability(operations: readonly Operation[], keys: readonly string[], finalProcesses: ReadonlySet<number>): DurabilityResult {
  const lost: LostWrite[] = [];
  const disagreements: { key: string; values: unknown[] }[] = [];
  const unjudged: string[] = [];
  for (const key of keys) {
    const onKey = operations.filter((operation) => operation.key === key);
    const finals = onKey.filter((operation) => finalProcesses.has(operation.process) && operation.f === 'read' && operation.outcome === 'ok');
    if (finals.length === 0) {
      unjudged.push(key);
      continue;
    }
    const distinct = [...new Map(finals.map((operation) => [JSON.stringify(operation.value), operation.value])).values()];
    if (distinct.length > 1) {
      disagreements.push({ key, values: distinct });
      continue;
    }
    const finalValue = distinct[0] ?? null;
    const acknowledged = onKey.filter((operation) => operation.outcome === 'ok' && writtenValue(operation) !== undefined);
    const writer = finalValue === null ? undefined : onKey.find((operation) => sameValue(writtenValue(operation), finalValue));
    // A final value nobody wrote is the unwritten-read checker's finding; here nothing can be judged against it.
    if (finalValue !== null && writer === undefined) continue;
    const writerReturn = writer === undefined ? Number.NEGATIVE_INFINITY : writer.returnTime;
    for (const operation of acknowledged) {
      if (operation === writer || operation.callTime <= writerReturn) continue;
      lost.push({ key, finalValue, lost: { f: operation.f, value: writtenValue(operation), process: operation.process, callTime: operation.callTime, returnTime: operation.returnTime } });
    }
  }
  return { lost, disagreements, unjudged };
}

/** The `fraction` quantile (0..1) of `values` by nearest rank; 0 for none. */
export function quantile(values: readonly number[], fraction: number): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(fraction * sorted.length) - 1));
  return sorted[rank]!;
}

/**
 * The longest stretch inside [startMs, endMs] in which no operation completed
 * `ok`, given the times (any order) at which operations completed ok.
 */
export function longestGapMs(okTimes: readonly number[], startMs: number, endMs: number): number {
  return longestGapInSortedMs([...okTimes].sort((a, b) => a - b), startMs, endMs);
}

/**
 * `longestGapMs` over times sorted ascending: a binary search to the window,
 * then only the times inside it, so a run's many faults each cost their own
 * window, not the whole history.
 */
export function longestGapInSortedMs(sortedOkTimes: readonly number[], startMs: number, endMs: number): number {
  let low = 0;
  let high = sortedOkTimes.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if (sortedOkTimes[middle]! <= startMs) low = middle + 1;
    else high = middle;
  }
  let previous = startMs;
  let longest = 0;
  for (let position = low; position < sortedOkTimes.length && sortedOkTimes[position]! < endMs; position++) {
    longest = Math.max(longest, sortedOkTimes[position]! - previous);
    previous = sortedOkTimes[position]!;
  }
  return Math.max(longest, endMs - previous);
}
