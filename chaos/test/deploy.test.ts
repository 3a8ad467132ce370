/**
 * A chaos run of the deploy workload against three real agents under kill -9
 * faults (random nodes and the leader, restarted at the heal), with a 3 s
 * reschedule grace: after the heal every app must converge to what the
 * acknowledged operations say, within the bound. 32 s of faults (two or
 * three kills)
 * (HIVEMIND_CHAOS_TIME overrides it). Needs root and iproute2/iptables;
 * skipped otherwise, saying why.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { chaosUnavailable, removeRun, runChaosCli } from './run-chaos.js';

const time = process.env['HIVEMIND_CHAOS_TIME'] ?? '32s';
const unavailable = await chaosUnavailable();
const chaosTest = unavailable === null ? test : test.skip;
if (unavailable !== null) console.log(`skipping the deploy run: ${unavailable}`);

chaosTest(`${time} of kill faults on 3 nodes with the deploy workload: every app converges`, async () => {
  const started = Date.now();
  const result = await runChaosCli(['--nodes', '3', '--time', time, '--nemesis', 'kill', '--workload', 'deploy', '--seed', '201', '--converge-bound', '45s']);
  const explain = `exit ${result.code}; output kept in ${result.outDirectory}\n${result.output.split('\n').slice(-50).join('\n')}`;
  assert.ok(result.summary !== undefined, explain);
  const { summary } = result;
  const deploy = summary.deploy;
  assert.ok(deploy !== undefined, explain);
  assert.ok(deploy.operations.deploy.ok > 0 && deploy.operations.scale.ok > 0 && deploy.operations.delete.ok > 0, explain);
  assert.ok(summary.faults.length > 0 && summary.faults.every((fault) => fault.nemesis === 'kill' && fault.endMs !== null), explain);
  assert.equal(deploy.convergence.violations, [], explain);
  assert.ok(deploy.convergence.ms !== null, explain);
  assert.ok(summary.checks.recovered, explain);
  assert.is(summary.verdict, 'valid', explain);
  assert.is(result.code, 0, explain);
  const kinds = Object.entries(deploy.operations).map(([f, counts]) => `${f} ${counts.ok}/${counts.fail}/${counts.info}`).join(', ');
  console.log(`deploy under kill: ${kinds} (ok/fail/info), ${deploy.convergence.apps.present} app(s) present, converged in ${((deploy.convergence.ms ?? 0) / 1000).toFixed(1)} s, ${((Date.now() - started) / 1000).toFixed(0)} s in all`);
  removeRun(result);
});

test.run();
