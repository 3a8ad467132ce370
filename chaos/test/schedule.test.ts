/** The fault schedule: one seed, one schedule; the shapes of partitions; parsing --nemesis. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { SeededRandom } from '../random.js';
import { parseNemesisList, partitionGrudge, planSchedule, variantsByClass } from '../schedule.js';

const all = parseNemesisList('partition,kill,pause,loss,membership');

test('the same seed gives the same schedule, another seed another', () => {
  assert.ok(Array.isArray(all));
  const options = { seed: 42, nodeCount: 5, timeMs: 300_000, selections: all as never };
  const first = planSchedule(options);
  assert.equal(planSchedule(options), first);
  assert.not.equal(planSchedule({ ...options, seed: 43 }), first);
  assert.ok(first.length >= 15, `expected many faults in 5 minutes, got ${first.length}`);
});

test('faults do not overlap, end within the time, and use every class over a long run', () => {
  const faults = planSchedule({ seed: 7, nodeCount: 3, timeMs: 600_000, selections: all as never });
  let previousEnd = 0;
  for (const fault of faults) {
    assert.ok(fault.startMs >= previousEnd + 3000, `fault ${fault.id} starts ${fault.startMs} before the quiet spell after ${previousEnd}`);
    assert.ok(fault.startMs + fault.durationMs <= 600_000);
    assert.ok(fault.durationMs >= 2000);
    assert.equal([...fault.order].sort(), [0, 1, 2]);
    previousEnd = fault.startMs + fault.durationMs;
  }
  assert.equal(new Set(faults.map((fault) => fault.nemesis)).size, 5);
  assert.ok(faults.filter((fault) => fault.nemesis === 'loss').every((fault) => fault.lossProbability > 0 && fault.lossProbability < 1));
});

test('no nemesis, no faults', () => {
  assert.equal(planSchedule({ seed: 1, nodeCount: 3, timeMs: 60_000, selections: [] }), []);
});

test('parseNemesisList: classes, class:variant, and errors naming the bad part', () => {
  assert.equal(parseNemesisList('kill:leader,partition:ring,kill:random'), [
    { nemesis: 'kill', variants: ['leader', 'random'] },
    { nemesis: 'partition', variants: ['ring'] },
  ]);
  assert.equal(parseNemesisList('loss'), [{ nemesis: 'loss', variants: variantsByClass.loss }]);
  assert.match(String(parseNemesisList('partition,flood')), /unknown nemesis "flood"/);
  assert.match(String(parseNemesisList('kill:everyone')), /unknown variant "everyone" of nemesis kill/);
});

function heard(grudge: Map<number, number[]>, at: number, count: number): number[] {
  return Array.from({ length: count }, (_, index) => index).filter((other) => other !== at && !grudge.get(at)!.includes(other));
}

test('partition shapes on five nodes', () => {
  const order = [3, 0, 4, 1, 2];
  const isolate = partitionGrudge('isolate-one', order, undefined);
  assert.equal(heard(isolate, 3, 5), []);
  assert.equal(heard(isolate, 0, 5), [1, 2, 4]);
  const leaderAlone = partitionGrudge('leader-alone', order, 2);
  assert.equal(heard(leaderAlone, 2, 5), []);
  assert.equal(heard(leaderAlone, 3, 5), [0, 1, 4]);
  const split = partitionGrudge('minority-majority', order, undefined);
  assert.equal(heard(split, 3, 5), [0]);
  assert.equal(heard(split, 4, 5), [1, 2]);
  // Ring: each node hears its two ring neighbours, a majority with itself, and no two hear the same majority.
  const ring = partitionGrudge('ring', order, undefined);
  assert.equal(heard(ring, 0, 5), [3, 4]);
  assert.equal(heard(ring, 3, 5), [0, 2]);
  const majorities = new Set(order.map((at) => JSON.stringify([at, ...heard(ring, at, 5)].sort())));
  assert.is(majorities.size, 5);
  const bridge = partitionGrudge('bridge', order, undefined);
  assert.equal(heard(bridge, 3, 5), [0, 1, 2, 4]);
  assert.equal(heard(bridge, 0, 5), [3, 4]);
  assert.equal(heard(bridge, 1, 5), [2, 3]);
  const oneWay = partitionGrudge('one-way', order, undefined);
  assert.equal(heard(oneWay, 3, 5), []);
  assert.equal(heard(oneWay, 0, 5), [1, 2, 3, 4]);
});

test('ring on three nodes: each hears one neighbour, one way', () => {
  const ring = partitionGrudge('ring', [0, 1, 2], undefined);
  assert.equal(heard(ring, 0, 3), [1]);
  assert.equal(heard(ring, 1, 3), [2]);
  assert.equal(heard(ring, 2, 3), [0]);
});

test('SeededRandom: deterministic, in range, derived streams differ', () => {
  const a = new SeededRandom(5);
  const b = new SeededRandom(5);
  const values = Array.from({ length: 100 }, () => a.integer(1, 6));
  assert.equal(values, Array.from({ length: 100 }, () => b.integer(1, 6)));
  assert.ok(values.every((value) => value >= 1 && value <= 6));
  assert.equal(new Set(values).size, 6);
  assert.not.equal(SeededRandom.derive(5, 'x').nextUint32(), SeededRandom.derive(5, 'y').nextUint32());
});

test.run();
