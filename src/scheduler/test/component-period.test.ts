// The scheduler component's timers on virtual time, over a real state machine:
// a quiet leader's period slows to the safety sweep, and the first apply brings
// the round at once and the 1 s period back. Rounds are counted from the
// component's own round histogram.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { ManualClock } from '../../node/manual-clock.js';
import { TestCluster } from '../../executor/test/services.js';
import { SchedulerComponent } from '../component.js';

async function roundsOf(registry: Registry): Promise<number> {
  const text = await registry.metrics();
  return Number(/^hivemind_scheduler_round_seconds_count(?:\{[^}]*\})? (\d+)$/m.exec(text)?.[1] ?? 0);
}

test('a quiet leader sweeps every quietSweepMs, not every period; an apply runs a round at once and brings the period back', async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'scheduler-period-'));
  const clock = new ManualClock();
  const cluster = new TestCluster();
  const registry = new Registry();
  const scheduler = new SchedulerComponent(cluster.services('n1', dataDir, registry), { clock, periodMs: 1_000, quietSweepMs: 60_000 });
  try {
    await scheduler.start();
    await clock.advance(0);
    assert.is(await roundsOf(registry), 1, 'the first round at start');
    await clock.advance(59_000);
    assert.is(await roundsOf(registry), 1, 'nothing to plan and nothing waits on time: no round, and the period slowed to the sweep');
    await clock.advance(1_000);
    assert.is(await roundsOf(registry), 1, 'the sweep is due 60 s after the period that found the round quiet');
    await clock.advance(1_000);
    assert.is(await roundsOf(registry), 2, 'the sweep runs one round');
    cluster.ok({ type: 'kv.put', key: 'poke', value: '1' });
    await clock.advance(0);
    assert.is(await roundsOf(registry), 3, 'an apply runs a round at once');
    await clock.advance(2_000);
    assert.is(await roundsOf(registry), 3, 'quiet again: no periodic round');
    await clock.advance(60_000);
    assert.is(await roundsOf(registry), 4, 'and the sweep once more');
  } finally {
    await scheduler.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
});

test.run();
