/** The durability and unwritten-read checkers and the summary's figures, on hand-made histories. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { checkDurability, findUnwrittenReads, longestGapMs, quantile } from '../checks.js';
import { parseHistory, type Operation } from '../history.js';

function operations(lines: object[]): readonly Operation[] {
  const parsed = parseHistory(lines.map((line) => JSON.stringify(line)).join('\n'));
  if (!parsed.ok) throw parsed.error;
  return parsed.history.operations;
}

const write = (process: number, value: string, start: number, end: number, type = 'ok') => [
  { process, type: 'invoke', f: 'write', key: 'k', value, time: start },
  { process, type, f: 'write', key: 'k', value, time: end },
];
const read = (process: number, value: string | null, start: number, end: number) => [
  { process, type: 'invoke', f: 'read', key: 'k', time: start },
  { process, type: 'ok', f: 'read', key: 'k', value, time: end },
];
const final = new Set([100, 101]);

test('durability: the last acknowledged write is final, nothing lost', () => {
  const history = operations([...write(1, 'a', 0, 1), ...write(2, 'b', 2, 3), ...read(100, 'b', 10, 11), ...read(101, 'b', 12, 13)]);
  assert.equal(checkDurability(history, ['k'], final), { lost: [], disagreements: [], unjudged: [] });
});

test('durability: a final value older than an acknowledged write means that write was lost', () => {
  const history = operations([...write(1, 'a', 0, 1), ...write(2, 'b', 2, 3), ...read(100, 'a', 10, 11)]);
  const result = checkDurability(history, ['k'], final);
  assert.is(result.lost.length, 1);
  assert.equal(result.lost[0]!.lost.value, 'b');
  assert.is(result.lost[0]!.finalValue, 'a');
});

test('durability: concurrent writes may end either way; an unknown write may win', () => {
  const concurrent = operations([...write(1, 'a', 0, 5), ...write(2, 'b', 1, 3), ...read(100, 'a', 10, 11)]);
  assert.equal(checkDurability(concurrent, ['k'], final).lost, []);
  const unknown = operations([...write(1, 'a', 0, 1), ...write(2, 'b', 2, 3, 'info'), ...write(3, 'c', 4, 5), ...read(100, 'b', 10, 11)]);
  assert.equal(checkDurability(unknown, ['k'], final).lost, []);
});

test('durability: null at the end loses every acknowledged write; a cas counts as a write', () => {
  const history = operations([
    ...write(1, 'a', 0, 1),
    { process: 2, type: 'invoke', f: 'cas', key: 'k', value: ['a', 'c'], time: 2 },
    { process: 2, type: 'ok', f: 'cas', key: 'k', value: ['a', 'c'], time: 3 },
    ...read(100, null, 10, 11),
  ]);
  assert.equal(checkDurability(history, ['k'], final).lost.map((lost) => lost.lost.value), ['a', 'c']);
});

test('durability: final reads that disagree, and keys with no final read', () => {
  const history = operations([...write(1, 'a', 0, 1), ...read(100, 'a', 10, 11), ...read(101, null, 12, 13)]);
  const result = checkDurability(history, ['k', 'other'], final);
  assert.equal(result.disagreements, [{ key: 'k', values: ['a', null] }]);
  assert.equal(result.unjudged, ['other']);
});

test('unwritten reads: null and written values pass, anything else is reported', () => {
  const history = operations([...read(1, null, 0, 1), ...write(2, 'a', 2, 3, 'info'), ...read(1, 'a', 4, 5), ...read(1, 'zzz', 6, 7)]);
  assert.equal(findUnwrittenReads(history), [{ key: 'k', value: 'zzz', process: 1, callTime: 6 }]);
});

test('figures: quantiles by nearest rank, longest gap without an ok operation', () => {
  assert.is(quantile([5, 1, 3, 2, 4], 0.5), 3);
  assert.is(quantile([5, 1, 3, 2, 4], 0.99), 5);
  assert.is(quantile([], 0.5), 0);
  assert.is(longestGapMs([1, 2, 10, 11], 0, 20), 9);
  assert.is(longestGapMs([1, 2, 10, 11], 3, 12), 7);
  assert.is(longestGapMs([], 5, 15), 10);
});

test.run();
