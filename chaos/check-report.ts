/**
 * Turns a `CheckResult` into the text `chaos:check` prints: the verdict on the
 * first line, then, per key that is not linearizable or could not be
 * decided, the smallest failing part.
 */
import type { Operation } from './history.js';
import type { CheckResult, KeyResult } from './linearizability.js';

/** Operations of the linearized prefix shown before the stuck ones. */
const prefixTailShown = 8;
/** Stuck operations shown, at most. */
const stuckShown = 20;

/** The report, lines joined with "\n", no trailing newline. First line: the verdict. */
export function formatCheckResult(result: CheckResult): string {
  const lines: string[] = [result.verdict];
  const operationCount = result.keys.reduce((sum, key) => sum + key.operationCount, 0);
  lines.push(`${result.keys.length} key(s), ${operationCount} operation(s) searched`);
  for (const key of result.keys) {
    if (key.verdict === 'linearizable') continue;
    lines.push('');
    for (const line of formatKey(key)) lines.push(line);
  }
  return lines.join('\n');
}

function formatKey(key: KeyResult): string[] {
  const name = JSON.stringify(key.key);
  if (key.verdict === 'unknown') {
    return [`key ${name}: undecided, the search gave up after ${key.steps} steps over ${key.operationCount} operations (raise --steps-max)`];
  }
  const failure = key.failure;
  if (failure === undefined) return [`key ${name}: not linearizable`];
  if (failure.kind === 'unwritten-read') {
    return [`key ${name}: a read returned a value never written to this key`, `  ${formatOperation(failure.read)}`];
  }
  const lines = [`key ${name}: not linearizable (${key.operationCount} operations, ${key.steps} search steps)`];
  const shown = failure.prefix.slice(-prefixTailShown);
  lines.push(`  longest linearizable prefix: ${failure.prefix.length} operation(s)${shown.length < failure.prefix.length ? `, the last ${shown.length}` : ''}:`);
  for (const operation of shown) lines.push(`    ${formatOperation(operation)}`);
  lines.push(`  after it the register holds ${JSON.stringify(failure.valueAfterPrefix)}`);
  lines.push('  none of these could be linearized next:');
  for (const operation of failure.stuck.slice(0, stuckShown)) lines.push(`    ${formatOperation(operation)}`);
  if (failure.stuck.length > stuckShown) lines.push(`    ... and ${failure.stuck.length - stuckShown} more`);
  return lines;
}

/** One operation on one line: process, what it did, outcome, times and input lines. */
export function formatOperation(operation: Operation): string {
  const what = describeCall(operation);
  const returned = operation.returnTime === Number.POSITIVE_INFINITY ? 'never' : String(operation.returnTime);
  const where = operation.returnLine === null ? `line ${operation.callLine}` : `lines ${operation.callLine}-${operation.returnLine}`;
  return `process ${operation.process} ${what} [${operation.outcome}] time ${operation.callTime}..${returned}, ${where}`;
}

function describeCall(operation: Operation): string {
  if (operation.f === 'read') {
    return operation.outcome === 'ok' ? `read -> ${JSON.stringify(operation.value)}` : 'read -> ?';
  }
  if (operation.f === 'write') return `write ${JSON.stringify(operation.value)}`;
  const [expected, next] = operation.value as readonly unknown[];
  return `cas ${JSON.stringify(expected)} -> ${JSON.stringify(next)}`;
}
