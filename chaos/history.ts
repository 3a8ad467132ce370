/**
 * A register history as the chaos harness records it: JSON lines, one event a
 * line, turned into operations (an invocation paired with its completion).
 *
 *   {"process": 3, "type": "invoke", "f": "write", "key": "k1", "value": 5, "time": 100}
 *   {"process": 3, "type": "ok",     "f": "write", "key": "k1", "value": 5, "time": 130}
 *
 * `fail` means the operation certainly did not take effect, so it is dropped.
 * `info`, or no completion at all, means the outcome is unknown: the operation
 * may take effect at any time after its call, or never; its return time is
 * +Infinity and, for a read, the value is unconstrained.
 *
 * Pure: no I/O, the caller reads the file.
 */

/** The register operations a history may hold. */
export type OperationFunction = 'read' | 'write' | 'cas';

const functions: readonly OperationFunction[] = ['read', 'write', 'cas'];
const eventTypes = ['invoke', 'ok', 'fail', 'info'] as const;
type EventType = (typeof eventTypes)[number];

/**
 * One operation of the history. `value` is, for a write, the value written;
 * for a cas, `[expected, new]`; for a read, the value read, or `undefined`
 * when the outcome is unknown. Times are the recorder's units (any finite
 * number); lines are 1-based lines of the input.
 */
export interface Operation {
  /** Position of the invocation among all invocations, from 0. */
  readonly id: number;
  readonly process: number;
  readonly f: OperationFunction;
  readonly key: string;
  readonly value: unknown;
  /** `ok`: it took effect between call and return. `unknown`: at some time after its call, or never. */
  readonly outcome: 'ok' | 'unknown';
  readonly callTime: number;
  /** +Infinity when the outcome is unknown. */
  readonly returnTime: number;
  readonly callLine: number;
  /** The line of the `ok` or `info` completion; null when there was none. */
  readonly returnLine: number | null;
}

/** A parsed history: the operations that may have taken effect, in invocation order. */
export interface History {
  readonly operations: readonly Operation[];
  /** Operations completed by `fail`, dropped. */
  readonly failedCount: number;
  /** Operations completed by `info` or not at all. */
  readonly unknownCount: number;
}

/** A line of the input that is not a valid event, or breaks the invoke/complete pairing. */
export class HistoryError extends Error {
  readonly code = 'HISTORY_INVALID';
  constructor(
    readonly line: number,
    detail: string,
  ) {
    super(`history line ${line}: ${detail}`);
  }
}

/** The result of `parseHistory`: a history, or the first invalid line. */
export type ParseResult = { ok: true; history: History } | { ok: false; error: HistoryError };

interface Event {
  readonly process: number;
  readonly type: EventType;
  readonly f: OperationFunction;
  readonly key: string;
  readonly hasValue: boolean;
  readonly value: unknown;
  readonly time: number;
  readonly line: number;
}

interface Pending {
  readonly id: number;
  readonly invoke: Event;
}

/**
 * Parses JSON lines into a history. Blank lines are skipped. Every line is
 * validated; the first problem is returned with its line number.
 */
export function parseHistory(text: string): ParseResult {
  return parseHistoryLines(text.split('\n'));
}

/**
 * `parseHistory` over lines given one at a time (without their "\n"), so a
 * long history is read from its file without holding its text.
 */
export function parseHistoryLines(lines: Iterable<string>): ParseResult {
  const pendingByProcess = new Map<number, Pending>();
  const operations: Operation[] = [];
  let invocationCount = 0;
  let failedCount = 0;
  let unknownCount = 0;
  let lineNumber = 0;
  for (const line of lines) {
    lineNumber++;
    const source = line.trim();
    if (source === '') continue;
    const parsed = parseEvent(source, lineNumber);
    if (parsed instanceof HistoryError) return { ok: false, error: parsed };
    const event = parsed;
    const pending = pendingByProcess.get(event.process);
    if (event.type === 'invoke') {
      if (pending !== undefined) {
        return fail(lineNumber, `process ${event.process} invokes again while its operation from line ${pending.invoke.line} has not completed`);
      }
      const problem = invocationProblem(event);
      if (problem !== null) return fail(lineNumber, problem);
      pendingByProcess.set(event.process, { id: invocationCount++, invoke: event });
      continue;
    }
    if (pending === undefined) {
      return fail(lineNumber, `process ${event.process} completes (${event.type}) an operation it never invoked`);
    }
    const problem = completionProblem(pending.invoke, event);
    if (problem !== null) return fail(lineNumber, problem);
    pendingByProcess.delete(event.process);
    if (event.type === 'fail') {
      failedCount++;
    } else if (event.type === 'info') {
      unknownCount++;
      operations.push(unknownOperation(pending, event.line));
    } else {
      operations.push(completedOperation(pending, event));
    }
  }
  for (const pending of pendingByProcess.values()) {
    unknownCount++;
    operations.push(unknownOperation(pending, null));
  }
  operations.sort((a, b) => a.id - b.id);
  return { ok: true, history: { operations, failedCount, unknownCount } };
}

function fail(line: number, detail: string): ParseResult {
  return { ok: false, error: new HistoryError(line, detail) };
}

function parseEvent(source: string, line: number): Event | HistoryError {
  let raw: unknown;
  try {
    raw = JSON.parse(source);
  } catch (error) {
    return new HistoryError(line, `not valid JSON (${(error as Error).message})`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    return new HistoryError(line, 'expected a JSON object like {"process": 1, "type": "invoke", "f": "read", "key": "k1", "time": 0}');
  }
  const record = raw as Record<string, unknown>;
  const { process, type, f, key, time } = record;
  if (typeof process !== 'number' || !Number.isSafeInteger(process)) {
    return new HistoryError(line, `"process" must be a whole number, got ${JSON.stringify(process)}`);
  }
  if (typeof type !== 'string' || !(eventTypes as readonly string[]).includes(type)) {
    return new HistoryError(line, `"type" must be one of ${eventTypes.join(', ')}, got ${JSON.stringify(type)}`);
  }
  if (typeof f !== 'string' || !(functions as readonly string[]).includes(f)) {
    return new HistoryError(line, `"f" must be one of ${functions.join(', ')}, got ${JSON.stringify(f)}`);
  }
  if (typeof key !== 'string') {
    return new HistoryError(line, `"key" must be a string, got ${JSON.stringify(key)}`);
  }
  if (typeof time !== 'number' || !Number.isFinite(time)) {
    return new HistoryError(line, `"time" must be a finite number, got ${JSON.stringify(time)}`);
  }
  const hasValue = Object.hasOwn(record, 'value');
  return { process, type: type as EventType, f: f as OperationFunction, key, hasValue, value: record['value'], time, line };
}

function invocationProblem(invoke: Event): string | null {
  if (invoke.f === 'write' && !invoke.hasValue) return 'a write invocation needs the "value" it writes';
  if (invoke.f === 'cas' && !(Array.isArray(invoke.value) && invoke.value.length === 2)) {
    return `a cas invocation needs "value": [expected, new], got ${JSON.stringify(invoke.value)}`;
  }
  return null;
}

function completionProblem(invoke: Event, completion: Event): string | null {
  if (completion.f !== invoke.f || completion.key !== invoke.key) {
    return `process ${completion.process} completes ${completion.f} on "${completion.key}" but invoked ${invoke.f} on "${invoke.key}" at line ${invoke.line}`;
  }
  if (completion.time < invoke.time) {
    return `completion time ${completion.time} is before its invocation's time ${invoke.time} (line ${invoke.line})`;
  }
  if (completion.type === 'ok' && completion.f === 'read' && !completion.hasValue) {
    return 'a read completed "ok" needs the "value" it read (null for the initial value)';
  }
  return null;
}

function completedOperation(pending: Pending, completion: Event): Operation {
  const { invoke } = pending;
  return {
    id: pending.id,
    process: invoke.process,
    f: invoke.f,
    key: invoke.key,
    value: invoke.f === 'read' ? completion.value : invoke.value,
    outcome: 'ok',
    callTime: invoke.time,
    returnTime: completion.time,
    callLine: invoke.line,
    returnLine: completion.line,
  };
}

function unknownOperation(pending: Pending, returnLine: number | null): Operation {
  const { invoke } = pending;
  return {
    id: pending.id,
    process: invoke.process,
    f: invoke.f,
    key: invoke.key,
    value: invoke.f === 'read' ? undefined : invoke.value,
    outcome: 'unknown',
    callTime: invoke.time,
    returnTime: Number.POSITIVE_INFINITY,
    callLine: invoke.line,
    returnLine,
  };
}
