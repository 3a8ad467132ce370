/**
 * The harness can fail: against a deliberately broken build (KV reads from
 * the local replica without ReadIndex, HIVEMIND_TEST_UNSAFE_LOCAL_READS=1 in
 * the agents' environment) with the leader isolated, the checker must say
 * "not linearizable". The control, the unbroken build under the same kind
 * of fault (partition, seed 100) judged linearizable, is nemesis-a's
 * partition run, so it is not repeated here. Needs root and iproute2/iptables; skipped
 * otherwise, saying why.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { chaosUnavailable, removeRun, runChaosCli, type ChaosRunResult } from './run-chaos.js';

const unavailable = await chaosUnavailable();
const chaosTest = unavailable === null ? test : test.skip;
if (unavailable !== null) console.log(`skipping the broken-build proof: ${unavailable}`);

function explain(result: ChaosRunResult): string {
  return `exit ${result.code}; output kept in ${result.outDirectory}\n${result.output.split('\n').slice(-40).join('\n')}`;
}

chaosTest('a build that reads from the local replica is caught: not linearizable, exit 1', async () => {
  const result = await runChaosCli(['--nodes', '3', '--time', '20s', '--nemesis', 'partition:leader-alone', '--seed', '11'], { HIVEMIND_TEST_UNSAFE_LOCAL_READS: '1' });
  assert.ok(result.summary !== undefined, explain(result));
  assert.is(result.summary.checks.linearizability, 'not linearizable', explain(result));
  assert.is(result.summary.verdict, 'invalid', explain(result));
  assert.is(result.code, 1, explain(result));
  assert.match(result.output, /reproduce: HIVEMIND_TEST_UNSAFE_LOCAL_READS=1 npm run chaos -- --nodes 3 --time 20s --nemesis partition:leader-alone --workload register --seed 11/);
  assert.ok(result.summary.faults.some((fault) => fault.nemesis === 'partition' && fault.variant === 'leader-alone'), 'the leader was isolated');
  removeRun(result);
});

test.run();
