import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { VirtualClock } from '../../../consensus/sim/virtual-clock.js';
import { NodeClock, SIM_EPOCH_MS } from '../node-clock.js';

test('timers run in time order on virtual time, never synchronously, and a cancelled one never runs', () => {
  const virtual = new VirtualClock();
  const clock = new NodeClock(virtual, () => true);
  const order: string[] = [];
  clock.setTimer(20, () => order.push(`b at ${clock.monotonicMs()}`));
  clock.setTimer(0, () => order.push(`a at ${clock.monotonicMs()}`));
  const cancel = clock.setTimer(10, () => order.push('cancelled'));
  cancel();
  assert.equal(order, [], 'nothing runs inside setTimer');
  while (virtual.runNext());
  assert.equal(order, ['a at 0', 'b at 20']);
  assert.is(clock.now(), SIM_EPOCH_MS + 20);
});

test('a dead life\'s timers never fire', () => {
  const virtual = new VirtualClock();
  let alive = true;
  const clock = new NodeClock(virtual, () => alive);
  let fired = 0;
  clock.setTimer(5, () => fired++);
  alive = false;
  while (virtual.runNext());
  assert.is(fired, 0);
});

test('a clock jump moves the wall clock forward only, and a new life keeps the lead; the monotonic clock never jumps', () => {
  const virtual = new VirtualClock();
  const clock = new NodeClock(virtual, () => true);
  clock.jump(5000);
  assert.is(clock.now(), SIM_EPOCH_MS + 5000);
  assert.is(clock.monotonicMs(), 0);
  assert.throws(() => clock.jump(-1), /at least 0/);
  const nextLife = new NodeClock(virtual, () => true, clock.aheadMs);
  assert.is(nextLife.now(), SIM_EPOCH_MS + 5000);
});

test.run();
