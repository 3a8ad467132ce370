import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ManualClock } from '../manual-clock.js';
import { PeriodicLoop } from '../periodic-loop.js';

function loopOn(clock: ManualClock, step: () => void | Promise<void>, intervalMs = 100): { loop: PeriodicLoop; errors: unknown[] } {
  const errors: unknown[] = [];
  const loop = new PeriodicLoop({ name: 'test', intervalMs, step, clock, onError: (error) => errors.push(error) });
  return { loop, errors };
}

test('runs once on start, then every interval from the end of the step before', async () => {
  const clock = new ManualClock();
  const at: number[] = [];
  const { loop } = loopOn(clock, () => void at.push(clock.now()));
  await clock.advance(1000);
  assert.equal(at, [], 'nothing before start');
  loop.start();
  await clock.advance(350);
  assert.equal(at, [1000, 1100, 1200, 1300]);
  loop.stop();
  await clock.advance(1000);
  assert.is(at.length, 4, 'nothing after stop');
  assert.is(clock.pendingTimers, 0, 'stop leaves no timer behind');
});

test('steps never overlap: a slow step pushes the next one back', async () => {
  const clock = new ManualClock();
  const starts: number[] = [];
  let running = 0;
  let overlapped = false;
  const { loop } = loopOn(clock, async () => {
    starts.push(clock.now());
    running++;
    if (running > 1) overlapped = true;
    await clock.sleep(250);
    running--;
  });
  loop.start();
  await clock.advance(1000);
  assert.is(overlapped, false);
  // 0: step to 250, wait 100; 350: step to 600; 700: step to 950.
  assert.equal(starts, [0, 350, 700]);
  loop.stop();
});

test('a poke runs a step soon, or once more right after the running one', async () => {
  const clock = new ManualClock();
  const starts: number[] = [];
  const { loop } = loopOn(clock, async () => {
    starts.push(clock.now());
    await clock.sleep(10);
  }, 1000);
  loop.poke();
  await clock.advance(5);
  assert.equal(starts, [], 'a poke before start does nothing');
  loop.start();
  await clock.advance(20);
  assert.equal(starts, [5]);
  loop.poke();
  await clock.advance(0);
  assert.equal(starts, [5, 25], 'an idle loop runs at once when poked');
  loop.poke();
  loop.poke();
  await clock.advance(10);
  assert.equal(starts, [5, 25, 35], 'pokes during a step make one more step, right after it');
  await clock.advance(1010);
  assert.equal(starts, [5, 25, 35, 1045], 'then the interval again');
  loop.stop();
});

test('a failing step is reported and the loop goes on', async () => {
  const clock = new ManualClock();
  let calls = 0;
  const { loop, errors } = loopOn(clock, async () => {
    calls++;
    if (calls === 1) throw new Error('first fails');
    if (calls === 2) throw new Error('second fails too');
  });
  loop.start();
  await clock.advance(250);
  assert.is(calls, 3);
  assert.equal(errors.map((error) => (error as Error).message), ['first fails', 'second fails too']);
  loop.stop();
});

test('a bad interval is refused at construction', () => {
  assert.throws(() => loopOn(new ManualClock(), () => {}, 0), /intervalMs must be at least 1/);
  const quietLoop = (quiet: { intervalMs: number; afterSteps: number }) => new PeriodicLoop({ name: 'test', intervalMs: 100, quiet, step: () => {}, clock: new ManualClock(), onError: () => {} });
  assert.throws(() => quietLoop({ intervalMs: 50, afterSteps: 3 }), /quiet.intervalMs must be at least intervalMs \(100\), got 50/);
  assert.throws(() => quietLoop({ intervalMs: 1000, afterSteps: 0 }), /quiet.afterSteps must be a whole number of at least 1, got 0/);
});

test('quiet steps in a row slow the loop down; a busy step or a poke restores its interval', async () => {
  const clock = new ManualClock();
  const starts: number[] = [];
  let busyAt: number | undefined;
  const loop = new PeriodicLoop({
    name: 'test', intervalMs: 100, quiet: { intervalMs: 1000, afterSteps: 3 }, clock, onError: () => {},
    step: () => {
      starts.push(clock.now());
      return clock.now() === busyAt ? true : false;
    },
  });
  loop.start();
  await clock.advance(2500);
  // 0, 100, 200 quiet (three in a row): then every 1000 ms.
  assert.equal(starts, [0, 100, 200, 1200, 2200]);
  assert.is(loop.quiet, true);
  loop.poke();
  await clock.advance(0);
  assert.is(loop.quiet, false, 'a poke ends the quiet');
  await clock.advance(300);
  // The poked step at 2500 is quiet again (count 1), then 2600 and 2700 (3): slow from there.
  assert.equal(starts.slice(5), [2500, 2600, 2700]);
  busyAt = 3700;
  await clock.advance(1300);
  // 3700 was busy: 3800, 3900 then 4000 make three quiet ones again.
  assert.equal(starts.slice(8), [3700, 3800, 3900, 4000]);
  assert.is(loop.quiet, true);
  loop.stop();
});

test('a loop whose steps return nothing keeps its interval', async () => {
  const clock = new ManualClock();
  const starts: number[] = [];
  const loop = new PeriodicLoop({ name: 'test', intervalMs: 100, quiet: { intervalMs: 1000, afterSteps: 1 }, clock, onError: () => {}, step: () => void starts.push(clock.now()) });
  loop.start();
  await clock.advance(350);
  assert.equal(starts, [0, 100, 200, 300]);
  assert.is(loop.quiet, false);
  loop.stop();
});

test.run();
