import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { clusterSettingsForSeed, runClusterSeed } from '../cluster-world.js';
import { MUTATIONS, withMutation, type MutationName } from '../mutations.js';
import { CLUSTER_REGRESSION_SEEDS } from '../regressions.js';

/**
 * Seeds run by `npm test`; `npm run sim:cluster -- --seeds 1000` runs more.
 * Ten: seeds 2, 6 and 10 promote a canary (the operator decides first on a
 * rollout that waits for promotion), and every other count below is reached.
 */
const SEEDS_IN_TEST = Number(process.env.HIVEMIND_SIM_CLUSTER_SEEDS ?? 10);
/** A mutation must be caught within this many seeds (each stops at its first violation). */
const MUTATION_SEEDS_MAX = 8;

async function describe(seed: number): Promise<string> {
  const result = await runClusterSeed(seed);
  if (result.violations.length === 0) return '';
  return `seed ${seed}: ${result.violations.join('; ')}\n${result.trace.slice(-40).join('\n')}\nreplay: npm run sim:cluster -- --seed ${seed} --trace`;
}

test('regression seeds stay fixed', async () => {
  for (const { seed } of CLUSTER_REGRESSION_SEEDS) {
    const failure = await describe(seed);
    assert.is(failure, '', failure);
  }
});

/** Every run's counts, added up by the test that runs the seeds, for the coverage test after it. */
const totals: Record<string, number> = {};

test(`${SEEDS_IN_TEST} seeded whole-cluster simulations find no violation`, async () => {
  for (let seed = 1; seed <= SEEDS_IN_TEST; seed++) {
    const result = await runClusterSeed(seed);
    for (const [name, value] of Object.entries(result.stats)) totals[name] = (totals[name] ?? 0) + value;
    const failure = result.violations.length === 0 ? '' : `seed ${seed}: ${result.violations.join('; ')}\n${result.trace.slice(-40).join('\n')}\nreplay: npm run sim:cluster -- --seed ${seed} --trace`;
    assert.is(failure, '', failure);
  }
});

test('those seeds run every fault, every operator change and membership changes, on 3- to 5-node clusters', () => {
  const sizes = new Set<number>();
  for (let seed = 1; seed <= SEEDS_IN_TEST; seed++) sizes.add(clusterSettingsForSeed(seed).nodes);
  assert.ok(sizes.has(3) && sizes.has(5), `cluster sizes ${[...sizes]}`);
  for (const name of ['crashes', 'restarts', 'partitions', 'slowDisks', 'clockJumps', 'instanceFaults', 'deploys', 'updates', 'scales', 'promotes', 'aborts', 'quotaChanges', 'elections']) {
    assert.ok(totals[name]! > 0, `no ${name} in ${SEEDS_IN_TEST} seeds`);
  }
  // Every run's bootstrap is one configuration entry; more is the voter manager removing, and a rejoin adding, members.
  assert.ok(totals['configChanges']! > SEEDS_IN_TEST && totals['rejoins']! > 0, `no membership change in ${SEEDS_IN_TEST} seeds`);
});

test('a seed replays exactly', async () => {
  const first = await runClusterSeed(3);
  const second = await runClusterSeed(3);
  assert.equal(first.trace, second.trace);
  assert.equal(first.stats, second.stats);
  assert.is(first.finalStateHash, second.finalStateHash);
});

for (const name of Object.keys(MUTATIONS) as MutationName[]) {
  test(`the simulator catches the mutation ${name}`, async () => {
    const { caughtBy } = MUTATIONS[name];
    let caught: string | undefined;
    for (let seed = 1; seed <= MUTATION_SEEDS_MAX && caught === undefined; seed++) {
      const result = await withMutation(name, () => runClusterSeed(seed));
      caught = result.violations.find((violation) => violation.includes(` ${caughtBy}`));
    }
    assert.ok(caught !== undefined, `${name} went unnoticed in ${MUTATION_SEEDS_MAX} seeds`);
  });
}

test.run();
