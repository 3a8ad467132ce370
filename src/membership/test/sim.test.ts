/**
 * Seeded simulations of whole clusters: crash detection within the bound the
 * parameters give, no false positives under loss with a slow member, exact
 * replay from a seed, and the Lifeguard comparison figures (printed).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { detectionBoundMs, quantile, runScenario, Simulation } from '../sim.js';
import { defaultSwimOptions } from '../swim.js';

const intervalMs = defaultSwimOptions.probeIntervalMs;

for (const memberCount of [10, 50, 200]) {
  test(`${memberCount} members: a crashed member is declared dead by every live member within the bound`, () => {
    const seed = 1000 + memberCount;
    const sim = new Simulation({ seed, memberCount });
    const warmupMs = 15_000 + memberCount * 20;
    sim.runUntil(warmupMs);
    for (let i = 0; i < memberCount; i++) {
      const known = sim.members[i]!.snapshot().filter((m) => m.state === 'alive').length;
      assert.is(known, memberCount, `seed ${seed}: member ${i} knows every member after the join`);
    }
    sim.crash(memberCount - 1, warmupMs);
    sim.runUntil(warmupMs + detectionBoundMs(memberCount));
    const [detectionMs] = sim.detectionTimesMs();
    assert.ok(detectionMs !== undefined, `seed ${seed}: crash not detected by all within ${detectionBoundMs(memberCount)} ms`);
    assert.ok(detectionMs <= detectionBoundMs(memberCount));
    assert.is(sim.falsePositives().length, 0, `seed ${seed}`);
  });
}

for (const memberCount of [10, 50]) {
  test(`${memberCount} members, 10% loss, one slow member (+800 ms per message): no healthy member declared dead`, () => {
    for (const seed of [1, 2]) {
      const sim = new Simulation({ seed, memberCount, lossRate: 0.1, delayMsMin: 1, delayMsMax: 10, slowMember: 1, slowDelayMs: 800 });
      sim.runUntil(memberCount === 10 ? 300_000 : 180_000);
      const wrong = sim.falsePositives().map((f) => `${f.observer} buried ${f.event.id} at ${f.event.atMs} ms`);
      assert.equal(wrong, [], `seed ${seed}`);
      assert.ok(sim.observed.some((o) => o.event.type === 'suspect'), 'the loss did cause suspicions, which were refuted');
    }
  });
}

test('determinism: the same seed gives the same events, another seed different ones', () => {
  const run = (seed: number): string => {
    const sim = new Simulation({ seed, memberCount: 12, lossRate: 0.1, delayMsMin: 1, delayMsMax: 20, slowMember: 1, slowDelayMs: 500 });
    sim.crash(5, 20_000);
    sim.partition(undefined);
    sim.runUntil(60_000);
    return JSON.stringify({ events: sim.observed, sent: sim.messagesSent });
  };
  assert.is(run(42), run(42));
  assert.is.not(run(42), run(43));
});

test('a partitioned member is declared dead by the majority side', () => {
  const sim = new Simulation({ seed: 9, memberCount: 8 });
  sim.runUntil(10_000);
  sim.partition([0, 0, 0, 0, 0, 0, 0, 1]);
  sim.runUntil(10_000 + detectionBoundMs(8));
  for (let i = 0; i < 7; i++) assert.is(sim.members[i]!.snapshot().find((m) => m.id === 'm7')?.state, 'dead', `member ${i}`);
});

test('a partition heals: after re-contact (what the component does from node records) everyone is alive again', () => {
  const sim = new Simulation({ seed: 11, memberCount: 12, lossRate: 0.05 });
  sim.runUntil(10_000);
  const groups = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1];
  sim.partition(groups);
  // Each side loses many members at once (probes rotate through all of them): give it several bounds.
  sim.runUntil(10_000 + 4 * detectionBoundMs(12));
  for (let i = 0; i < 12; i++) {
    const others = sim.members[i]!.snapshot().filter((m) => groups[Number(m.id.slice(1))] !== groups[i]);
    assert.ok(others.every((m) => m.state === 'dead'), `member ${i} buried the other side`);
  }
  sim.partition(undefined);
  sim.recontactDead();
  sim.runUntil(10_000 + 4 * detectionBoundMs(12) + 10_000);
  for (let i = 0; i < 12; i++) assert.ok(sim.members[i]!.snapshot().every((m) => m.state === 'alive'), `member ${i} sees all alive`);
});

test('figures: detection time and false positives, with and without Lifeguard', () => {
  const lines: string[] = [];
  for (const memberCount of [10, 50]) {
    for (const lifeguard of [true, false]) {
      const detection: number[] = [];
      let falsePositives = 0;
      let perMemberHour = 0;
      const seeds = memberCount === 10 ? [1, 2, 3] : [1];
      for (const seed of seeds) {
        const result = runScenario({ seed, memberCount, lifeguard, lossRate: 0.1, slowDelayMs: 800, warmupMs: 20_000, healthyMs: 60_000, crashes: 4, crashSpacingMs: 1000, partition: false });
        detection.push(...result.detectionPeriods);
        falsePositives += result.falsePositives;
        perMemberHour += result.falsePositivesPerMemberHour / seeds.length;
        if (lifeguard) assert.is(result.undetected, 0, `seed ${seed}: every crash detected by all`);
        if (lifeguard) assert.is(result.falsePositives + result.warmupFalsePositives, 0, `seed ${seed}: no healthy member declared dead`);
      }
      lines.push(
        `n=${memberCount} lifeguard=${lifeguard ? 'on ' : 'off'} detection median ${quantile(detection, 0.5).toFixed(1)} p99 ${quantile(detection, 0.99).toFixed(1)} periods` +
          ` (${detection.length} crashes); false positives ${falsePositives} = ${perMemberHour.toFixed(1)} per member-hour`,
      );
    }
  }
  console.log(`SWIM figures (10% loss, 1-10 ms delay, one member +800 ms per message, ${intervalMs} ms probe period):\n  ${lines.join('\n  ')}`);
});

test.run();
