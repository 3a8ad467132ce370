// The time a round plans with (planning-time.ts): never behind the newest time the leaders stamped into the state,
// carried forward at the monotonic clock's rate, never back.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { Clock } from '../../node/clock.js';
import type { App, Instance, NodeRecord } from '../../state/types.js';
import { newestStateTime, PlanningClock } from '../planning-time.js';

/** A clock whose wall and monotonic times the test sets; its timers are not used here. */
class SetClock implements Clock {
  wallMs = 1_000_000;
  monotonicNowMs = 0;
  now(): number {
    return this.wallMs;
  }
  monotonicMs(): number {
    return this.monotonicNowMs;
  }
  sleep(): Promise<void> {
    throw new Error('not used');
  }
  setTimer(): () => void {
    throw new Error('not used');
  }
  /** Time passes: both clocks move on by `ms`. */
  pass(ms: number): void {
    this.wallMs += ms;
    this.monotonicNowMs += ms;
  }
}

test('a leader whose clock is behind the state plans from the newest time in it, moving on at half speed until its clock catches up', () => {
  const clock = new SetClock();
  const planning = new PlanningClock(clock);
  assert.is(planning.now(0), 1_000_000, 'no time in the state: the wall clock');
  clock.pass(1000);
  assert.is(planning.now(500), 1_001_000, 'a state behind the wall clock: the wall clock');
  // An earlier leader ran 60 s ahead.
  const newest = 1_061_000;
  assert.is(planning.now(newest), newest);
  clock.pass(1000);
  assert.is(planning.now(newest), newest + 500, 'moving on, not frozen at the newest time while this leader stamps earlier ones');
  clock.pass(10_000);
  assert.is(planning.now(newest), newest + 5_500);
  clock.wallMs -= 30_000;
  clock.monotonicNowMs += 1000;
  assert.is(planning.now(newest), newest + 6_000, 'a wall clock set back changes nothing: time goes on at half speed');
  // The lead wears off: the wall clock is 85 s behind now; at half speed against full it catches up after 170 s.
  const leadMs = newest + 6_000 - clock.wallMs;
  assert.is(leadMs, 85_000);
  let previous = newest + 6_000;
  let caughtUpAfterMs = 0;
  for (let elapsedMs = 1000; elapsedMs <= 300_000 && caughtUpAfterMs === 0; elapsedMs += 1000) {
    clock.pass(1000);
    const now = planning.now(newest);
    assert.ok(now >= previous, 'never back');
    previous = now;
    if (now === clock.wallMs) caughtUpAfterMs = elapsedMs;
  }
  assert.is(caughtUpAfterMs, 2 * leadMs, 'the wall clock rules again after twice the lead');
  clock.pass(1000);
  assert.is(planning.now(newest), clock.wallMs);
});

test('planning time is whole milliseconds, as every time a command carries', () => {
  const clock = new SetClock();
  const planning = new PlanningClock(clock);
  assert.is(planning.now(2_000_000), 2_000_000);
  clock.pass(1);
  assert.is(planning.now(2_000_000), 2_000_000, 'half a millisecond on: still the same whole one');
  clock.pass(1);
  assert.is(planning.now(2_000_000), 2_000_001);
});

test('the newest state time reads what leaders stamp, not what lies ahead by design or what members report from their own clocks', () => {
  const node = { id: 'n1', lastSeenAt: 100, statusSince: 200 } as NodeRecord;
  const instance = { id: 'web.0.1', notBefore: 9_000, status: { state: 'running', since: 300, reportedAt: 8_000, updatedIndex: 1 } } as unknown as Instance;
  const app = {
    rollout: { startedAt: 400, updatedAt: 500, batchStartedAt: 600, nextBatchAt: 9_500 },
    rebalance: { requestedAt: 50, moves: 1, moveStartedAt: 700 },
  } as unknown as App;
  assert.is(newestStateTime({ nodes: [], instances: [], apps: [] }), 0);
  assert.is(newestStateTime({ nodes: [node], instances: [instance], apps: [] }), 300);
  assert.is(newestStateTime({ nodes: [node], instances: [instance], apps: [app] }), 700);
  assert.is(newestStateTime({ nodes: [{ ...node, lastSeenAt: 1_000 }], instances: [], apps: [app] }), 1_000);
});

test.run();
