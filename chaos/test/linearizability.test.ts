/**
 * The linearizability checker on hand-made histories that are and are not
 * linearizable, and on a generated 20,000-operation history, whole and with
 * one read corrupted.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseHistory, type Operation } from '../history.js';
import { checkLinearizability, type CheckResult, type KeyResult } from '../linearizability.js';
import { formatCheckResult } from '../check-report.js';
import { generateHistory, handHistory, toJsonLines, type HandOperation } from './register-history.js';

function check(operations: readonly HandOperation[]): CheckResult {
  const parsed = parseHistory(handHistory(operations));
  if (!parsed.ok) throw parsed.error;
  return checkLinearizability(parsed.history.operations);
}

function onlyKey(result: CheckResult): KeyResult {
  assert.is(result.keys.length, 1);
  return result.keys[0] as KeyResult;
}

test('a sequential history of writes and reads is linearizable', () => {
  const result = check([
    { process: 1, f: 'write', value: 1, call: 0, ret: 1 },
    { process: 2, f: 'read', value: 1, call: 2, ret: 3 },
    { process: 1, f: 'write', value: 2, call: 4, ret: 5 },
    { process: 2, f: 'read', value: 2, call: 6, ret: 7 },
  ]);
  assert.is(result.verdict, 'linearizable');
});

test('an empty history is linearizable, and a first read sees null', () => {
  assert.is(check([]).verdict, 'linearizable');
  assert.is(check([{ process: 1, f: 'read', value: null, call: 0, ret: 1 }]).verdict, 'linearizable');
});

test('a read overlapping a write may see the old value or the new one', () => {
  const write: HandOperation = { process: 1, f: 'write', value: 1, call: 0, ret: 10 };
  assert.is(check([write, { process: 2, f: 'read', value: null, call: 1, ret: 5 }]).verdict, 'linearizable');
  assert.is(check([write, { process: 2, f: 'read', value: 1, call: 1, ret: 5 }]).verdict, 'linearizable');
  // Two reads inside the write: new then old only if they overlap each other.
  assert.is(
    check([write, { process: 2, f: 'read', value: 1, call: 1, ret: 5 }, { process: 3, f: 'read', value: null, call: 2, ret: 6 }]).verdict,
    'linearizable',
  );
  assert.is(
    check([write, { process: 2, f: 'read', value: 1, call: 1, ret: 3 }, { process: 3, f: 'read', value: null, call: 4, ret: 6 }]).verdict,
    'not linearizable',
  );
});

test('a stale read is not linearizable, and the failure names the read that could not be placed', () => {
  const result = check([
    { process: 1, f: 'write', value: 1, call: 0, ret: 1 },
    { process: 1, f: 'write', value: 2, call: 2, ret: 3 },
    { process: 2, f: 'read', value: 1, call: 4, ret: 5 },
  ]);
  assert.is(result.verdict, 'not linearizable');
  const failure = onlyKey(result).failure;
  assert.ok(failure !== undefined && failure.kind === 'no-linearization');
  assert.equal(failure.prefix.map((operation) => operation.value), [1, 2]);
  assert.is(failure.valueAfterPrefix, 2);
  assert.equal(failure.stuck.map((operation) => [operation.f, operation.value]), [['read', 1]]);
  const text = formatCheckResult(result);
  assert.ok(text.startsWith('not linearizable\n'), text);
  assert.match(text, 'process 2 read -> 1 [ok] time 4..5, lines 5-6');
  assert.match(text, 'after it the register holds 2');
});

test('cas applies only when the register holds the expected value; a failed cas did not happen', () => {
  const start: HandOperation[] = [{ process: 1, f: 'write', value: 1, call: 0, ret: 1 }];
  assert.is(
    check([...start, { process: 2, f: 'cas', value: [1, 2], call: 2, ret: 3 }, { process: 3, f: 'read', value: 2, call: 4, ret: 5 }]).verdict,
    'linearizable',
  );
  assert.is(check([...start, { process: 2, f: 'cas', value: [5, 6], call: 2, ret: 3 }]).verdict, 'not linearizable');
  assert.is(
    check([...start, { process: 2, f: 'cas', value: [1, 2], call: 2, ret: 3, outcome: 'fail' }, { process: 3, f: 'read', value: 1, call: 4, ret: 5 }]).verdict,
    'linearizable',
  );
  // Concurrent cas pair: only one of two cas 1->x can succeed.
  const both: HandOperation[] = [
    ...start,
    { process: 2, f: 'cas', value: [1, 2], call: 2, ret: 6 },
    { process: 3, f: 'cas', value: [1, 3], call: 3, ret: 7 },
  ];
  assert.is(check(both).verdict, 'not linearizable');
  assert.is(check([...start, { process: 2, f: 'cas', value: [1, 2], call: 2, ret: 6 }, { process: 3, f: 'cas', value: [2, 3], call: 3, ret: 7 }]).verdict, 'linearizable');
});

test('a write with unknown outcome may have happened, later, or never', () => {
  const start: HandOperation[] = [
    { process: 1, f: 'write', value: 1, call: 0, ret: 1 },
    { process: 2, f: 'write', value: 2, call: 2, ret: 3, outcome: 'info' },
  ];
  assert.is(check([...start, { process: 3, f: 'read', value: 2, call: 4, ret: 5 }]).verdict, 'linearizable', 'it happened');
  assert.is(check([...start, { process: 3, f: 'read', value: 1, call: 4, ret: 5 }]).verdict, 'linearizable', 'it never happened');
  assert.is(
    check([...start, { process: 3, f: 'read', value: 1, call: 4, ret: 5 }, { process: 3, f: 'read', value: 2, call: 6, ret: 7 }]).verdict,
    'linearizable',
    'it happened after its info',
  );
  assert.is(
    check([...start, { process: 3, f: 'read', value: 2, call: 4, ret: 5 }, { process: 3, f: 'read', value: 1, call: 6, ret: 7 }]).verdict,
    'not linearizable',
    'once seen, it cannot be undone',
  );
  const missing: HandOperation[] = [
    { process: 1, f: 'write', value: 1, call: 0, ret: 1 },
    { process: 2, f: 'write', value: 2, call: 2, ret: 0, outcome: 'none' },
  ];
  assert.is(check([...missing, { process: 3, f: 'read', value: 2, call: 4, ret: 5 }]).verdict, 'linearizable', 'no completion: happened');
  assert.is(check([...missing, { process: 3, f: 'read', value: 1, call: 4, ret: 5 }]).verdict, 'linearizable', 'no completion: never');
  assert.is(check([{ process: 3, f: 'read', value: 2, call: 0, ret: 1 }, ...missing.map((operation) => ({ ...operation, call: operation.call + 2, ret: operation.ret + 2 }))]).verdict, 'not linearizable', 'not before its call');
});

test('a cas and a read with unknown outcome', () => {
  const start: HandOperation[] = [
    { process: 1, f: 'write', value: 1, call: 0, ret: 1 },
    { process: 2, f: 'cas', value: [1, 2], call: 2, ret: 3, outcome: 'info' },
    { process: 4, f: 'read', value: 'ignored', call: 2, ret: 3, outcome: 'info' },
  ];
  assert.is(check([...start, { process: 3, f: 'read', value: 2, call: 4, ret: 5 }]).verdict, 'linearizable');
  assert.is(check([...start, { process: 3, f: 'read', value: 1, call: 4, ret: 5 }]).verdict, 'linearizable');
});

test('a read of a value never written to the key is reported directly', () => {
  const result = check([
    { process: 1, f: 'write', value: 1, call: 0, ret: 1 },
    { process: 2, f: 'read', value: 42, call: 2, ret: 3 },
    { process: 3, f: 'write', value: 42, key: 'other', call: 4, ret: 5 },
  ]);
  assert.is(result.verdict, 'not linearizable');
  const failure = result.keys.find((key) => key.key === 'x')?.failure;
  assert.ok(failure !== undefined && failure.kind === 'unwritten-read');
  assert.is(failure.read.value, 42);
  assert.match(formatCheckResult(result), 'a read returned a value never written to this key');
});

test('a lost acknowledged write is caught', () => {
  const result = check([
    { process: 1, f: 'write', value: 1, call: 0, ret: 1 },
    { process: 2, f: 'write', value: 2, call: 2, ret: 3 },
    { process: 3, f: 'read', value: 2, call: 4, ret: 5 },
    { process: 1, f: 'write', value: 3, call: 6, ret: 7 },
    { process: 3, f: 'read', value: 2, call: 8, ret: 9 },
  ]);
  assert.is(result.verdict, 'not linearizable');
  const failure = onlyKey(result).failure;
  assert.ok(failure !== undefined && failure.kind === 'no-linearization');
  assert.is(failure.prefix.length, 4);
  assert.is(failure.valueAfterPrefix, 3);
});

test('keys are checked apart: a failure on one names that key only', () => {
  const result = check([
    { process: 1, f: 'write', key: 'a', value: 1, call: 0, ret: 1 },
    { process: 2, f: 'write', key: 'b', value: 1, call: 0.5, ret: 1.5 },
    { process: 1, f: 'write', key: 'a', value: 2, call: 2, ret: 3 },
    { process: 2, f: 'read', key: 'b', value: 1, call: 4, ret: 5 },
    { process: 3, f: 'read', key: 'a', value: 1, call: 6, ret: 7 },
  ]);
  assert.is(result.verdict, 'not linearizable');
  assert.equal(result.keys.map((key) => [key.key, key.verdict]), [['a', 'not linearizable'], ['b', 'linearizable']]);
  // Values on different keys do not interfere: reading b's 2 would be fine on b only.
  assert.is(
    check([
      { process: 1, f: 'write', key: 'a', value: 1, call: 0, ret: 1 },
      { process: 2, f: 'read', key: 'b', value: null, call: 2, ret: 3 },
    ]).verdict,
    'linearizable',
  );
});

test('a search over its step budget says unknown rather than running on', () => {
  const parsed = parseHistory(handHistory([
    { process: 1, f: 'write', value: 1, call: 0, ret: 1 },
    { process: 2, f: 'read', value: 1, call: 2, ret: 3 },
  ]));
  assert.ok(parsed.ok);
  const result = checkLinearizability(parsed.history.operations, { stepsMaxPerKey: 1 });
  assert.is(result.verdict, 'unknown');
  assert.match(formatCheckResult(result), 'raise --steps-max');
});

const generated = generateHistory({ seed: 7, operationCount: 20_000, keyCount: 5, processCount: 5, unknownShare: 0.01 });

function operationsOf(text: string): readonly Operation[] {
  const parsed = parseHistory(text);
  if (!parsed.ok) throw parsed.error;
  return parsed.history.operations;
}

test('a generated linearizable history of 20,000 operations over 5 keys checks in seconds', () => {
  const operations = operationsOf(toJsonLines(generated));
  const started = performance.now();
  const result = checkLinearizability(operations);
  const elapsedMs = performance.now() - started;
  console.log(`    20,000 operations (${operations.length} after dropping failed): ${result.verdict} in ${elapsedMs.toFixed(0)} ms`);
  assert.is(result.verdict, 'linearizable', formatCheckResult(result));
  assert.ok(elapsedMs < 20_000, `took ${elapsedMs} ms`);
});

test('the same history with one read made stale is caught on its key', () => {
  const operations = operationsOf(toJsonLines(generated));
  // A read late in the history, of the key's first acknowledged write, which a
  // later acknowledged write overwrote before the read was called.
  const target = operations.find((read) => {
    if (read.f !== 'read' || read.outcome !== 'ok' || read.id < operations.length * 0.75) return false;
    const first = operations.find((write) => write.key === read.key && write.f === 'write' && write.outcome === 'ok');
    if (first === undefined || first.value === read.value) return false;
    return operations.some((write) => write.key === read.key && write.f === 'write' && write.outcome === 'ok' && write.callTime > first.returnTime && write.returnTime < read.callTime);
  });
  assert.ok(target !== undefined && target.returnLine !== null);
  const first = operations.find((write) => write.key === target.key && write.f === 'write' && write.outcome === 'ok') as Operation;
  const corrupted = generated.map((event, index) => (index === (target.returnLine as number) - 1 ? { ...event, value: first.value } : event));
  const started = performance.now();
  const result = checkLinearizability(operationsOf(toJsonLines(corrupted)));
  console.log(`    corrupted read on ${target.key}: ${result.verdict} in ${(performance.now() - started).toFixed(0)} ms`);
  assert.is(result.verdict, 'not linearizable');
  assert.equal(result.keys.filter((key) => key.verdict !== 'linearizable').map((key) => key.key), [target.key]);
  const failure = result.keys.find((key) => key.key === target.key)?.failure;
  assert.ok(failure !== undefined && failure.kind === 'no-linearization');
  assert.ok(failure.stuck.some((operation) => operation.id === target.id), formatCheckResult(result));
});

test.run();
