/**
 * `npm run sim:cluster -- --seeds N [--from S]`: runs N seeds of the
 * whole-cluster simulator (from seed S, default 1) and ends with
 * `sim: N seeds, V violations`; each failing seed is printed with its first
 * violations and the command that replays it.
 * `npm run sim:cluster -- --seed S [--trace]`: runs one seed (exactly as
 * before), printing its trace with --trace.
 * `--mutation NAME` runs with one safety check removed (mutations.ts), to
 * see the simulator catch it.
 */
import { performance } from 'node:perf_hooks';
import { runClusterSeed, type ClusterRunResult } from './cluster-world.js';
import { isMutationName, MUTATIONS, withMutation, type MutationName } from './mutations.js';

function parse(argv: string[]): { seeds: number; from: number; seed: number | undefined; trace: boolean; mutation: MutationName | undefined } {
  const out = { seeds: 20, from: 1, seed: undefined as number | undefined, trace: false, mutation: undefined as MutationName | undefined };
  for (let k = 0; k < argv.length; k++) {
    const flag = argv[k]!;
    const value = (): number => {
      const text = argv[++k];
      const number = Number(text);
      if (text === undefined || !Number.isSafeInteger(number) || number < 0) throw new Error(`${flag}: needs a whole number at least 0, got ${text ?? 'nothing'}`);
      return number;
    };
    if (flag === '--seeds') out.seeds = value();
    else if (flag === '--from') out.from = value();
    else if (flag === '--seed') out.seed = value();
    else if (flag === '--trace') out.trace = true;
    else if (flag === '--mutation') {
      const name = argv[++k] ?? '';
      if (!isMutationName(name)) throw new Error(`--mutation: one of ${Object.keys(MUTATIONS).join(', ')}, got ${name || 'nothing'}`);
      out.mutation = name;
    }
    else throw new Error(`unknown option ${flag}; use --seeds N [--from S], or --seed S [--trace], and --mutation NAME to run with a check removed`);
  }
  return out;
}

function report(result: ClusterRunResult): void {
  console.log(`seed ${result.seed}: ${result.violations.length} violation${result.violations.length === 1 ? '' : 's'}`);
  for (const violation of result.violations.slice(0, 5)) console.log(`  ${violation}`);
  console.log(`  replay: npm run sim:cluster -- --seed ${result.seed} --trace`);
}

async function main(): Promise<void> {
  let options: ReturnType<typeof parse>;
  try {
    options = parse(process.argv.slice(2));
  } catch (error) {
    console.error(`sim:cluster: ${(error as Error).message}`);
    process.exit(2);
  }
  const seeds = options.seed === undefined ? Array.from({ length: options.seeds }, (_, k) => options.from + k) : [options.seed];
  const started = performance.now();
  let violations = 0;
  let simulatedMs = 0;
  let keeperRefusals = 0;
  for (const seed of seeds) {
    const result = options.mutation === undefined ? await runClusterSeed(seed) : await withMutation(options.mutation, () => runClusterSeed(seed));
    simulatedMs += result.simulatedMs;
    keeperRefusals += result.stats['keeperRefusals'] ?? 0;
    if (options.trace) for (const line of result.trace) console.log(line);
    if (options.seed !== undefined) console.log(`stats ${JSON.stringify(result.stats)}; ${(result.simulatedMs / 1000).toFixed(1)} s simulated`);
    if (result.violations.length > 0) {
      violations++;
      report(result);
    }
  }
  const wallSeconds = (performance.now() - started) / 1000;
  console.log(`${(simulatedMs / 1000).toFixed(0)} s simulated in ${wallSeconds.toFixed(1)} s wall (${(simulatedMs / 1000 / wallSeconds).toFixed(1)} simulated s per wall s)`);
  console.log(`${keeperRefusals} rollout steps refused at apply because their keeper no longer served (the plan/apply race, caught)`);
  console.log(`sim: ${seeds.length} seeds, ${violations} violations`);
  process.exitCode = violations > 0 ? 1 : 0;
}

await main();
