/**
 * `npm run sim:membership -- --members 1000 [--seed N] [--loss 0.1] [--slow-ms 800] [--healthy-s 60] [--crashes 10 (at most members / 2)] [--partition] [--lifeguard on|off|both]`
 *
 * Seeded SWIM runs at any size (`runScenario` in sim.ts), checking the
 * issue's two properties and printing the figures: every crashed member is
 * declared dead by every live member within the bound the parameters give
 * (`detectionBoundMs`; each crash's window ends once all have), and no
 * member that did not crash is declared dead, with loss and the slow member
 * m1, over a quiet window of `--healthy-s` simulated seconds and the crashes
 * (Lifeguard on; declarations during the join storm that precedes them are
 * printed apart). With `--partition`, 10 % of the members are then cut off
 * until the majority declares them dead (within the bound); after the heal
 * and a re-contact (as the gossip component does from the node records)
 * every member sees every other alive. A failed check prints the seed and
 * exits 1.
 */
import { parseArgs } from 'node:util';
import { quantile, runScenario } from './sim.js';
import { defaultSwimOptions } from './swim.js';

const { values } = parseArgs({
  options: {
    members: { type: 'string', default: '100' },
    seed: { type: 'string', default: '1' },
    loss: { type: 'string', default: '0.1' },
    'slow-ms': { type: 'string', default: '800' },
    'healthy-s': { type: 'string', default: '60' },
    crashes: { type: 'string' },
    partition: { type: 'boolean', default: false },
    lifeguard: { type: 'string', default: 'both' },
  },
});

const memberCount = Number(values.members);
const seed = Number(values.seed);
const lossRate = Number(values.loss);
const slowDelayMs = Number(values['slow-ms']);
const healthyMs = Number(values['healthy-s']) * 1000;
const crashes = values.crashes === undefined ? Math.min(10, Math.floor(memberCount / 2)) : Number(values.crashes);
if (!Number.isInteger(memberCount) || memberCount < 5 || memberCount > 5000) throw new Error(`--members must be an integer in [5, 5000], got ${values.members}`);
if (!Number.isInteger(seed)) throw new Error(`--seed must be an integer, got ${values.seed}`);
if (!(lossRate >= 0 && lossRate < 1)) throw new Error(`--loss must be in [0, 1), got ${values.loss}`);
if (!(slowDelayMs >= 0)) throw new Error(`--slow-ms must be a number of milliseconds >= 0, got ${values['slow-ms']}`);
if (!(healthyMs >= 0)) throw new Error(`--healthy-s must be a number of seconds >= 0, got ${values['healthy-s']}`);
if (!Number.isInteger(crashes) || crashes < 0 || crashes > memberCount / 2) throw new Error(`--crashes must be an integer in [0, members / 2], got ${values.crashes}`);
if (!['on', 'off', 'both'].includes(values.lifeguard!)) throw new Error(`--lifeguard must be on, off or both, got ${values.lifeguard}`);
const modes = values.lifeguard === 'both' ? [true, false] : [values.lifeguard === 'on'];
const intervalMs = defaultSwimOptions.probeIntervalMs;
let failed = false;

function check(condition: boolean, what: string): void {
  if (condition) return;
  failed = true;
  console.log(`  FAILED (seed ${seed}): ${what}`);
}

for (const lifeguard of modes) {
  const started = Date.now();
  const result = runScenario({
    seed,
    memberCount,
    lifeguard,
    lossRate,
    slowDelayMs,
    warmupMs: 20_000 + memberCount * 20,
    healthyMs,
    crashes,
    crashSpacingMs: 1000,
    partition: values.partition!,
  });
  const bound = result.detectionBoundMs;
  const label = `n=${memberCount} lifeguard=${lifeguard ? 'on ' : 'off'}`;
  if (lifeguard) {
    check(result.undetected === 0, `${label}: ${result.undetected} of ${crashes} crashes not declared dead by all within the bound, ${bound} ms`);
    check(result.falsePositives === 0, `${label}: ${result.falsePositives} healthy members declared dead (first: ${JSON.stringify(result.firstFalsePositive)})`);
  }
  if (result.partition !== undefined) {
    check(result.partition.buried, `${label}: the majority did not declare the cut-off members dead within ${bound} ms`);
    check(result.partition.healed, `${label}: after the heal and a re-contact, not every member sees every live member alive`);
  }
  const periods = result.detectionPeriods;
  console.log(
    `${label}: detection median ${quantile(periods, 0.5).toFixed(1)} p99 ${quantile(periods, 0.99).toFixed(1)} periods of ${intervalMs} ms` +
      ` (bound ${(bound / intervalMs).toFixed(0)}), ${result.undetected} of ${crashes} undetected;` +
      ` false positives ${result.falsePositives} = ${(result.falsePositives / result.memberHours).toFixed(2)} per member-hour (${result.memberHours.toFixed(1)} member-hours after the join;` +
      ` ${result.warmupFalsePositives} during the join);` +
      `${result.partition === undefined ? '' : ` partition buried ${result.partition.buried}, healed ${result.partition.healed};`}` +
      ` ${(result.simulatedMs / 1000).toFixed(0)} s simulated, ${result.messagesSent} messages; ${((Date.now() - started) / 1000).toFixed(1)} s wall`,
  );
}
console.log(
  `seed ${seed}, loss ${lossRate}, member m1 slowed by ${slowDelayMs} ms per message, ${healthyMs / 1000} s quiet window, ${crashes} crashes` +
    `${values.partition ? ', a 10 % partition then heal' : ''}`,
);
process.exit(failed ? 1 : 0);
