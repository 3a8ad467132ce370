/**
 * `npm run sim:membership -- --members 1000 [--seed N] [--loss 0.1] [--slow-ms 800] [--crashes 3] [--partition] [--lifeguard on|off|both]`
 *
 * Seeded SWIM runs at any size, checking the two properties and
 * printing the figures: every crashed member is declared dead by every live
 * member within the bound the parameters give (`detectionBoundMs`), and no
 * member that did not crash is declared dead (with loss and the slow member,
 * Lifeguard on). With `--partition`, 10 % of the members are cut off for
 * the bound: the majority declares them dead; after the heal and a
 * re-contact (as the gossip component does from the node records) every
 * member sees every other alive. A failed check prints the seed and exits 1.
 */
import { parseArgs } from 'node:util';
import { detectionBoundMs, quantile, Simulation } from './sim.js';
import { defaultSwimOptions } from './swim.js';

const { values } = parseArgs({
  options: {
    members: { type: 'string', default: '100' },
    seed: { type: 'string', default: '1' },
    loss: { type: 'string', default: '0.1' },
    'slow-ms': { type: 'string', default: '800' },
    crashes: { type: 'string', default: '3' },
    partition: { type: 'boolean', default: false },
    lifeguard: { type: 'string', default: 'both' },
  },
});

const memberCount = Number(values.members);
const seed = Number(values.seed);
const lossRate = Number(values.loss);
const slowDelayMs = Number(values['slow-ms']);
const crashes = Number(values.crashes);
if (!Number.isInteger(memberCount) || memberCount < 5 || memberCount > 5000) throw new Error('--members must be an integer in [5, 5000]');
if (!Number.isInteger(crashes) || crashes < 0 || crashes > memberCount / 2) throw new Error('--crashes must be in [0, members / 2]');
const modes = values.lifeguard === 'both' ? [true, false] : [values.lifeguard !== 'off'];
const intervalMs = defaultSwimOptions.probeIntervalMs;
let failed = false;

function check(condition: boolean, what: string): void {
  if (condition) return;
  failed = true;
  console.log(`  FAILED (seed ${seed}): ${what}`);
}

for (const lifeguard of modes) {
  const started = Date.now();
  const swim = { lifeguard };
  const bound = detectionBoundMs(memberCount, swim);
  const sim = new Simulation({ seed, memberCount, swim, lossRate, delayMsMin: 1, delayMsMax: 10, slowMember: 1, slowDelayMs });
  const warmupMs = 20_000 + memberCount * 20;
  sim.runUntil(warmupMs);
  const gapMs = bound + 5000;
  for (let c = 0; c < crashes; c++) sim.crash(memberCount - 1 - c, warmupMs + c * gapMs);
  let endMs = warmupMs + Math.max(1, crashes) * gapMs;
  sim.runUntil(endMs);
  const times = sim.detectionTimesMs();
  const detected = times.filter((t): t is number => t !== undefined);
  const label = `n=${memberCount} lifeguard=${lifeguard ? 'on ' : 'off'}`;
  if (lifeguard) {
    check(times.every((t) => t !== undefined && t <= bound), `${label}: a crash not declared dead by all within ${bound} ms (${times.join(', ')})`);
  }
  if (values.partition) {
    const cut = Math.max(1, Math.floor(memberCount / 10));
    const groups = Array.from({ length: memberCount }, (_, i) => (i >= 2 && i < 2 + cut ? 1 : 0));
    sim.partition(groups);
    sim.runUntil(endMs + bound);
    const majority = sim.members.filter((_, i) => groups[i] === 0 && !sim.isCrashed(i));
    const buried = majority.every((m) => m.snapshot().filter((x) => groups[Number(x.id.slice(1))] === 1).every((x) => x.state === 'dead'));
    check(buried, `${label}: the majority did not declare the ${cut} cut-off members dead within ${bound} ms`);
    sim.partition(undefined);
    sim.runUntil(endMs + bound + 1000);
    endMs += bound + 1000;
    // As the component does: re-contact what it holds dead every 10 s.
    for (let round = 0; round < 3; round++) {
      sim.recontactDead();
      endMs += 10_000;
      sim.runUntil(endMs);
    }
    // Suspect is a live state (loss causes suspicions that are refuted); dead is not.
    const healed = sim.members.every((m, i) => sim.isCrashed(i) || m.snapshot().every((x) => sim.isCrashed(Number(x.id.slice(1))) || x.state === 'alive' || x.state === 'suspect'));
    check(healed, `${label}: after the heal and a re-contact, not every member sees every live member alive`);
  }
  const falsePositives = sim.falsePositives().filter((f) => !values.partition || f.event.atMs < warmupMs + Math.max(1, crashes) * gapMs);
  if (lifeguard && !values.partition) check(falsePositives.length === 0, `${label}: ${falsePositives.length} healthy members declared dead (first: ${JSON.stringify(falsePositives[0])})`);
  const memberHours = (memberCount * endMs) / 3_600_000;
  const periods = detected.map((t) => t / intervalMs);
  console.log(
    `${label}: detection median ${quantile(periods, 0.5).toFixed(1)} p99 ${quantile(periods, 0.99).toFixed(1)} periods of ${intervalMs} ms (bound ${(bound / intervalMs).toFixed(0)}),` +
      ` ${times.length - detected.length} undetected; false positives ${falsePositives.length} = ${(falsePositives.length / memberHours).toFixed(2)} per member-hour;` +
      ` ${sim.messagesSent} messages; ${((Date.now() - started) / 1000).toFixed(1)} s wall`,
  );
}
console.log(`seed ${seed}, loss ${lossRate}, member m1 slowed by ${slowDelayMs} ms per message, ${crashes} crashes${values.partition ? ', a 10 % partition then heal' : ''}`);
process.exit(failed ? 1 : 0);
