/**
 * The per-class chaos runs, split over two test files so that each stays
 * well inside the runner's per-file limit: one chaos run per nemesis class
 * (partition, kill, pause, loss, membership, trust) against three real agents with the register workload: each must end
 * linearizable, with no acknowledged write lost, and every node serving
 * again within the recovery bound. Each run lasts 22 s of faults: with each
 * class's seed that is two faults of its class, the second shorter than at
 * 28 s (the schedules are printed by `planSchedule`; 28 s added a third, 2 s
 * trust fault and cost 36 s of the suite) (HIVEMIND_CHAOS_TIME overrides it: longer for a
 * deeper check, 20s for a quick local one); the long runs are the soaks
 * (docs/chaos.md).
 * Needs root and iproute2/iptables; skipped otherwise, saying why.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { nemesisClasses, type NemesisClass } from '../schedule.js';
import { chaosUnavailable, removeRun, runChaosCli } from './run-chaos.js';

const time = process.env['HIVEMIND_CHAOS_TIME'] ?? '22s';
const unavailable = await chaosUnavailable();
const chaosTest = unavailable === null ? test : test.skip;
if (unavailable !== null) console.log(`skipping the nemesis runs: ${unavailable}`);

/** Declares one run per class in `classes` (each with its own seed, by its place among all classes). */
export function defineNemesisRuns(classes: readonly NemesisClass[]): void {
  for (const nemesis of classes) {
    const position = nemesisClasses.indexOf(nemesis);
    chaosTest(`${time} of ${nemesis} faults on 3 nodes: linearizable, nothing lost, recovered`, async () => {
      const started = Date.now();
      const result = await runChaosCli(['--nodes', '3', '--time', time, '--nemesis', nemesis, '--seed', String(100 + position)]);
      const explain = `exit ${result.code}; output kept in ${result.outDirectory}\n${result.output.split('\n').slice(-50).join('\n')}`;
      assert.ok(result.summary !== undefined, explain);
      const { summary } = result;
      assert.is(summary.checks.linearizability, 'linearizable', explain);
      assert.equal(summary.checks.durability.lost, [], explain);
      assert.equal(summary.checks.durability.disagreements, [], explain);
      assert.equal(summary.checks.unwrittenReads, [], explain);
      assert.ok(summary.checks.recovered, explain);
      assert.ok(summary.faults.length > 0 && summary.faults.every((fault) => fault.nemesis === nemesis && fault.endMs !== null), explain);
      assert.is(summary.verdict, 'valid', explain);
      assert.is(result.code, 0, explain);
      console.log(`${nemesis}: ${summary.operations.ok} ok of ${summary.operations.total}, ${summary.faults.length} fault(s), unavailable ${summary.faults.map((fault) => `${(fault.unavailableMs / 1000).toFixed(1)} s`).join(', ')}, recovery ${((summary.recovery.ms ?? 0) / 1000).toFixed(1)} s, ${((Date.now() - started) / 1000).toFixed(0)} s in all`);
      removeRun(result);
    });
  }
}
