/**
 * The gossip component's re-contact schedule, driven by hand with explicit
 * time: who is contacted when, the per-record backoff and its resets, and
 * the per-call cap.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { SeededRandom } from '../../../consensus/core/random.js';
import { RecontactSchedule, type RecontactOptions } from '../recontact.js';

const options = (overrides: Partial<RecontactOptions> = {}): RecontactOptions => ({
  intervalMs: 10_000,
  backoffMaxMs: 300_000,
  contactsPerCallMax: 8,
  random: new SeededRandom(7),
  ...overrides,
});
const never = (): boolean => false;

/** The times (ms, on a 1 s grid up to `untilMs`) at which `address` is handed out. */
function contactTimes(schedule: RecontactSchedule, address: string, fromMs: number, untilMs: number, isLive: (id: string, address: string) => boolean = never): number[] {
  const times: number[] = [];
  for (let t = fromMs; t <= untilMs; t += 1000) if (schedule.due(t, isLive).includes(address)) times.push(t);
  return times;
}

test('a record gossip does not hold live is contacted at once, then after doubling delays up to the cap (with up to a quarter of jitter)', () => {
  const schedule = new RecontactSchedule(options());
  schedule.setTargets([{ id: 'b', address: 'b:7072' }], 0);
  const times = contactTimes(schedule, 'b:7072', 0, 1_800_000);
  assert.is(times[0], 0);
  const gaps = times.slice(1).map((t, i) => t - times[i]!);
  const bases = [10_000, 20_000, 40_000, 80_000, 160_000, 300_000, 300_000];
  for (let i = 0; i < bases.length; i++) {
    const base = bases[i]!;
    assert.ok(gaps[i]! >= base && gaps[i]! <= Math.min(300_000, base * 1.25) + 1000, `gap ${i} is ${gaps[i]} ms, base ${base}`);
  }
  assert.is(schedule.failures('b'), times.length);
  assert.ok(times.length <= 12, `${times.length} contacts in 30 min, not one every 10 s`);
});

test('a record found live goes idle; lost brings it back after the first delay; heard resets the backoff', () => {
  const schedule = new RecontactSchedule(options({ random: { below: () => 0 } })); // no jitter
  schedule.setTargets([{ id: 'b', address: 'b:7072' }], 0);
  assert.equal(contactTimes(schedule, 'b:7072', 0, 100_000), [0, 10_000, 30_000, 70_000]);
  assert.is(schedule.failures('b'), 4);
  schedule.heard('b');
  assert.is(schedule.failures('b'), 0);
  let live = true;
  assert.equal(contactTimes(schedule, 'b:7072', 101_000, 400_000, () => live), [], 'live: never contacted');
  assert.is(schedule.nextDueMs(), undefined, 'idle: nothing scheduled');
  live = false;
  schedule.lost('b', 400_000);
  assert.is(schedule.nextDueMs(), 410_000);
  const after = contactTimes(schedule, 'b:7072', 400_000, 440_000);
  assert.is(after[0], 410_000, 'first contact after the first delay');
  assert.is(after[1], 420_000, 'then the second delay, from the start again');
});

test('a new address in the record starts over at once; a removed record is forgotten', () => {
  const schedule = new RecontactSchedule(options());
  schedule.setTargets([{ id: 'b', address: 'b:7072' }, { id: 'c', address: 'c:7072' }], 0);
  contactTimes(schedule, 'b:7072', 0, 200_000);
  assert.ok(schedule.failures('b')! >= 4);
  schedule.setTargets([{ id: 'b', address: 'b2:7072' }, { id: 'c', address: 'c:7072' }], 200_500);
  assert.is(schedule.failures('b'), 0);
  assert.ok(schedule.due(201_000, never).includes('b2:7072'), 'the moved record is due at once');
  schedule.setTargets([{ id: 'c', address: 'c:7072' }], 202_000);
  assert.is(schedule.size, 1);
  assert.is(schedule.failures('b'), undefined);
  assert.not.ok(contactTimes(schedule, 'b2:7072', 202_000, 600_000).length > 0, 'a forgotten record is never contacted');
});

test('5,000 records that never answer: at most contactsPerCallMax per call, every record reached, and the total follows the backoff', () => {
  const schedule = new RecontactSchedule(options());
  const targets = Array.from({ length: 5000 }, (_, i) => ({ id: `n${i}`, address: `10.1.${i >> 8}.${i & 255}:7072` }));
  schedule.setTargets(targets, 0);
  const contacted = new Set<string>();
  let total = 0;
  // One call every 2 s (the component's refresh) for an hour.
  for (let t = 0; t <= 3_600_000; t += 2000) {
    const out = schedule.due(t, never);
    assert.ok(out.length <= 8);
    total += out.length;
    for (const address of out) contacted.add(address);
  }
  assert.is(contacted.size, 5000, 'every record contacted within the hour');
  assert.ok(total <= 8 * 1801, `${total} contacts`);
  // Re-reading unchanged records changes no schedule.
  const before = schedule.nextDueMs();
  schedule.setTargets(targets, 3_600_001);
  assert.is(schedule.nextDueMs(), before);
  assert.ok(schedule.failures('n0')! >= 3);
});

test('the same seed gives the same schedule', () => {
  const run = (seed: number): number[] => {
    const schedule = new RecontactSchedule(options({ random: new SeededRandom(seed) }));
    schedule.setTargets([{ id: 'b', address: 'b:7072' }], 0);
    return contactTimes(schedule, 'b:7072', 0, 1_000_000);
  };
  assert.equal(run(3), run(3));
});

test.run();
