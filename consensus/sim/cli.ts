/**
 * The simulator's command line.
 *
 *   npm run sim -- --seeds 1000 [--start 1]   run seeds start..start+N-1
 *   npm run sim -- --seed S [--trace]         replay one seed exactly
 *
 * The last line is always `sim: N seeds, V violations`; a failing seed prints
 * its violations and the tail of its event trace.
 */
import { parseArgs } from 'node:util';
import { runSeed, type RunResult } from './world.js';

function printFailure(result: RunResult, traceLines: number): void {
  console.log(`seed ${result.seed}: ${result.violations.length} violation(s)`);
  for (const violation of result.violations) console.log(`  violation: ${violation}`);
  console.log(`  settings: ${JSON.stringify(result.settings)}`);
  console.log(`  last ${Math.min(traceLines, result.trace.length)} trace lines:`);
  for (const line of result.trace.slice(-traceLines)) console.log(`    ${line}`);
  console.log(`  replay: npm run sim -- --seed ${result.seed} --trace`);
}

const USAGE = `usage: npm run sim -- [--seeds N] [--start S] | --seed S [--trace]
  --seeds N   run N seeds (default 100), from --start S (default 1)
  --seed S    run one seed (a replay)
  --trace     with --seed: print the whole trace
  --help      this text`;

function options(): { seeds: string; start: string; seed?: string; trace: boolean } {
  try {
    const { values } = parseArgs({
      options: {
        seeds: { type: 'string', default: '100' },
        start: { type: 'string', default: '1' },
        seed: { type: 'string' },
        trace: { type: 'boolean', default: false },
        help: { type: 'boolean', default: false },
      },
    });
    if (values.help) {
      console.log(USAGE);
      process.exit(0);
    }
    return values;
  } catch (error) {
    console.error(`sim: ${(error as Error).message}\n${USAGE}`);
    process.exit(2);
  }
}

async function main(): Promise<void> {
  const values = options();
  const seeds: number[] = [];
  if (values.seed !== undefined) seeds.push(Number(values.seed));
  else {
    const start = Number(values.start);
    for (let k = 0; k < Number(values.seeds); k++) seeds.push(start + k);
  }
  if (seeds.some((seed) => !Number.isSafeInteger(seed))) {
    console.error('sim: --seed, --seeds and --start take whole numbers');
    process.exit(2);
  }
  // Bulk runs spend a fifth of their time capturing the stacks of the driver's refusals
  // (NotLeaderError and the like, expected by the thousand); a replay keeps them for debugging.
  if (values.seed === undefined) Error.stackTraceLimit = 0;
  let violations = 0;
  let failedSeeds = 0;
  const totals: Record<string, number> = {};
  const started = Date.now();
  for (const seed of seeds) {
    const result = await runSeed(seed);
    for (const [name, value] of Object.entries(result.stats)) totals[name] = (totals[name] ?? 0) + value;
    if (values.trace) for (const line of result.trace) console.log(line);
    if (result.violations.length > 0) {
      violations += result.violations.length;
      failedSeeds++;
      printFailure(result, values.seed !== undefined ? 400 : 60);
    }
  }
  const seconds = ((Date.now() - started) / 1000).toFixed(1);
  console.log(`totals: ${Object.entries(totals).map(([name, value]) => `${name}=${value}`).join(' ')} (${seconds}s)`);
  if (failedSeeds > 0) console.log(`failing seeds: ${failedSeeds}`);
  console.log(`sim: ${seeds.length} seeds, ${violations} violations`);
  process.exit(violations > 0 ? 1 : 0);
}

await main();
