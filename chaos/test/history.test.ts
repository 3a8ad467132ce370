/** Parsing histories: pairing, outcomes, and errors that name their line. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseHistory } from '../history.js';

const invokeWrite = '{"process": 1, "type": "invoke", "f": "write", "key": "k", "value": 5, "time": 10}';

test('pairs each invoke with its completion; fail drops, info and no completion are unknown', () => {
  const parsed = parseHistory([
    invokeWrite,
    '{"process": 2, "type": "invoke", "f": "read", "key": "k", "time": 11}',
    '',
    '{"process": 1, "type": "ok", "f": "write", "key": "k", "value": 5, "time": 12}',
    '{"process": 2, "type": "ok", "f": "read", "key": "k", "value": 5, "time": 13}',
    '{"process": 1, "type": "invoke", "f": "cas", "key": "k", "value": [5, 6], "time": 14}',
    '{"process": 1, "type": "fail", "f": "cas", "key": "k", "value": [5, 6], "time": 15}',
    '{"process": 1, "type": "invoke", "f": "read", "key": "k", "time": 16}',
    '{"process": 1, "type": "info", "f": "read", "key": "k", "time": 17}',
    '{"process": 3, "type": "invoke", "f": "write", "key": "k", "value": 7, "time": 18}',
  ].join('\n'));
  assert.ok(parsed.ok);
  const { operations, failedCount, unknownCount } = parsed.history;
  assert.is(failedCount, 1);
  assert.is(unknownCount, 2);
  assert.equal(operations.map((operation) => [operation.f, operation.value, operation.outcome, operation.returnTime, operation.callLine, operation.returnLine]), [
    ['write', 5, 'ok', 12, 1, 4],
    ['read', 5, 'ok', 13, 2, 5],
    ['read', undefined, 'unknown', Infinity, 8, 9],
    ['write', 7, 'unknown', Infinity, 10, null],
  ]);
});

function errorOf(lines: string[]): string {
  const parsed = parseHistory(lines.join('\n'));
  assert.ok(!parsed.ok, 'expected a parse error');
  assert.is(parsed.error.code, 'HISTORY_INVALID');
  return parsed.error.message;
}

test('every problem names its line', () => {
  assert.match(errorOf([invokeWrite, '{"process": 1, "type": "ok"']), /^history line 2: not valid JSON/);
  assert.match(errorOf(['[1, 2]']), /^history line 1: expected a JSON object/);
  assert.match(errorOf(['{"process": "a", "type": "invoke", "f": "read", "key": "k", "time": 1}']), 'line 1: "process" must be a whole number');
  assert.match(errorOf(['{"process": 1, "type": "begin", "f": "read", "key": "k", "time": 1}']), '"type" must be one of invoke, ok, fail, info');
  assert.match(errorOf(['{"process": 1, "type": "invoke", "f": "append", "key": "k", "time": 1}']), '"f" must be one of read, write, cas');
  assert.match(errorOf(['{"process": 1, "type": "invoke", "f": "read", "key": 3, "time": 1}']), '"key" must be a string');
  assert.match(errorOf(['{"process": 1, "type": "invoke", "f": "read", "key": "k"}']), '"time" must be a finite number');
  assert.match(errorOf(['{"process": 1, "type": "invoke", "f": "write", "key": "k", "time": 1}']), 'needs the "value" it writes');
  assert.match(errorOf(['{"process": 1, "type": "invoke", "f": "cas", "key": "k", "value": 3, "time": 1}']), 'needs "value": [expected, new]');
  assert.match(errorOf(['{"process": 1, "type": "ok", "f": "read", "key": "k", "value": 3, "time": 1}']), 'line 1: process 1 completes (ok) an operation it never invoked');
  assert.match(errorOf([invokeWrite, invokeWrite]), 'line 2: process 1 invokes again while its operation from line 1 has not completed');
  assert.match(errorOf([invokeWrite, '{"process": 1, "type": "ok", "f": "write", "key": "j", "value": 5, "time": 12}']), 'completes write on "j" but invoked write on "k" at line 1');
  assert.match(errorOf([invokeWrite, '{"process": 1, "type": "ok", "f": "write", "key": "k", "value": 5, "time": 9}']), 'completion time 9 is before');
  assert.match(
    errorOf(['{"process": 1, "type": "invoke", "f": "read", "key": "k", "time": 1}', '{"process": 1, "type": "ok", "f": "read", "key": "k", "time": 2}']),
    'line 2: a read completed "ok" needs the "value"',
  );
});

test.run();
