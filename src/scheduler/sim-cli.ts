/**
 * `npm run sim:scheduler -- [--seed N] [--seeds K] [--nodes N] [--steps N]`:
 * runs scheduler simulations (sim.ts). `--seed N` replays one seed exactly;
 * `--seeds K` runs K seeds from `--seed` (default 1). Exit code 1 and the
 * failing seeds when any run found a violation.
 */
import { runSimulation, SIMULATION_DEFAULTS } from './sim.js';

function flag(args: string[], name: string, fallback: number): number {
  const position = args.indexOf(name);
  if (position === -1) return fallback;
  const value = Number(args[position + 1]);
  if (!Number.isSafeInteger(value) || value < 0) {
    console.error(`${name} must be a whole number, got "${args[position + 1] ?? ''}"`);
    process.exit(2);
  }
  return value;
}

const args = process.argv.slice(2);
const first = flag(args, '--seed', 1);
const seeds = flag(args, '--seeds', 1);
const nodes = flag(args, '--nodes', SIMULATION_DEFAULTS.nodes);
const steps = flag(args, '--steps', SIMULATION_DEFAULTS.steps);
const failed: number[] = [];
for (let seed = first; seed < first + seeds; seed++) {
  const started = performance.now();
  const result = runSimulation({ ...SIMULATION_DEFAULTS, seed, nodes, steps });
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  const { stats } = result;
  const summary = `${stats.deploys} deploys, ${stats.updates} updates (${stats.failingUpdates} failing), ${stats.downs} downs, ${stats.ups} returns, ${stats.joins} joins, ${stats.instances} instances`;
  if (result.violations.length === 0) console.log(`seed ${seed}: ok in ${result.steps} steps, ${seconds} s (${summary})`);
  else {
    failed.push(seed);
    console.log(`seed ${seed}: FAILED (${summary})\n  ${result.violations.slice(0, 10).join('\n  ')}\n  replay: npm run sim:scheduler -- --seed ${seed} --nodes ${nodes} --steps ${steps}`);
  }
}
if (failed.length > 0) {
  console.log(`failing seeds: ${failed.join(' ')}`);
  process.exit(1);
}
