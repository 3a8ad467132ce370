// Scripted scenarios on the whole-cluster simulator: the agent's real parts on virtual time, the test changing things
// itself instead of the operator and the nemesis, and every invariant checked around every apply as in a seeded run.
// They stand where real-process tests checked logic only (a scheduler's placement and reschedule, a rollback): the
// same assertions, in a fraction of a second instead of tens of seconds of real time.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { simSpec } from '../../scheduler/sim.js';
import type { AppSpec, Instance } from '../../state/types.js';
import { ClusterWorld, clusterSettingsForSeed } from '../cluster-world.js';

const GiB = 1024 ** 3;
// A start period past the simulated runtime's slowest start: a check before the workload is up may fail.
const HEALTHCHECK: NonNullable<AppSpec['healthcheck']> = { test: ['CMD', 'true'], intervalMs: 1000, timeoutMs: 1000, retries: 1, startPeriodMs: 3000 };

/** Three equal nodes on a reliable network, with the graces of the real-process test this replaces (2 s), led and registered. */
async function threeNodes(seed: number): Promise<ClusterWorld> {
  const world = new ClusterWorld({ ...clusterSettingsForSeed(seed), nodes: 3, dropRate: 0, duplicateRate: 0, delayMsMax: 2, rescheduleGraceMs: 2000, voterGraceMs: 2000, oomChance: 0 });
  world.startScenario({ cpuMillis: 4000, memoryBytes: 8 * GiB });
  const ready = await world.runUntil(() => {
    const leader = world.leader();
    return leader !== undefined && leader.machine.nodes().filter((node) => node.status === 'up').length === 3;
  }, 15_000);
  assert.ok(ready, 'a leader and three nodes up');
  return world;
}

function running(world: ClusterWorld, app: string): Instance[] {
  return world.leader()!.machine.instances({ tenant: 'default', app }).filter((instance) => instance.desired === 'running');
}

test('instances are placed across nodes; a crashed node\'s instances come back on the others after the grace', async () => {
  const world = await threeNodes(1);
  assert.ok((await world.operate({ type: 'app.deploy', spec: simSpec('sleeper', { replicas: 3 }) })).ok);
  const placed = await world.runUntil(() => {
    const found = running(world, 'sleeper');
    return found.length === 3 && found.every((instance) => instance.node !== undefined && instance.status.state === 'running');
  }, 15_000);
  assert.ok(placed, '3 instances placed and running');
  const before = running(world, 'sleeper');
  assert.equal(new Set(before.map((instance) => instance.node)).size, 3, `spread over the 3 nodes: ${before.map((instance) => instance.node)}`);

  const leaderId = world.leader()!.id;
  const moved = before.find((instance) => instance.node !== leaderId)!;
  const victim = moved.node!;
  world.crash(victim);
  assert.ok(await world.runUntil(() => world.leader()?.machine.node(victim)?.status === 'down', 20_000), `${victim} marked down`);
  const back = await world.runUntil(() => {
    const found = running(world, 'sleeper');
    return found.length === 3 && found.every((instance) => instance.node !== undefined && instance.node !== victim && instance.status.state === 'running');
  }, 20_000);
  assert.ok(back, `every instance runs off ${victim}: ${JSON.stringify(running(world, 'sleeper').map((instance) => [instance.id, instance.node, instance.status.state]))}`);
  const history = world.leader()!.machine.history(100);
  assert.ok(history.some((entry) => entry.command === 'instance.place' && entry.summary.includes(moved.id)), 'the move is in the history');
  assert.equal(world.checker.violations, []);
});

test('a rolling update whose new version fails its health check rolls back by itself; the old version never stops serving', async () => {
  const world = await threeNodes(2);
  const update = { parallelism: 1, delayMs: 0, failureAction: 'rollback' as const, order: 'start-first' as const, monitorMs: 0 };
  const first = simSpec('web', { replicas: 2, healthcheck: HEALTHCHECK, update });
  assert.ok((await world.operate({ type: 'app.deploy', spec: first })).ok);
  const healthy = (version: number): number => running(world, 'web').filter((instance) => instance.version === version && instance.status.state === 'healthy').length;
  assert.ok(await world.runUntil(() => healthy(1) === 2, 15_000), '2 healthy instances of version 1');
  // A version that never passes its healthcheck (the simulated runtime's sim.fail).
  assert.ok((await world.operate({ type: 'app.deploy', spec: { ...first, labels: { 'sim.fail': 'true' } } })).ok);
  assert.ok(await world.runUntil(() => world.leader()?.machine.app('default', 'web')?.rollout?.state === 'rolled-back', 40_000), 'the rollback finished');
  const app = world.leader()!.machine.app('default', 'web')!;
  assert.is(app.version, 1);
  assert.equal([app.rollout!.kind, app.rollout!.fromVersion, app.rollout!.toVersion], ['rollback', 2, 1]);
  assert.match(app.rollout!.message, /rolled back to version 1/);
  assert.is(healthy(1), 2, 'the old version never stopped serving (the rolling update check ran around every apply)');
  const history = world.leader()!.machine.history(100);
  assert.ok(history.some((entry) => /update to version 2 failed; rolling back to version 1: 1 new instance failed/.test(entry.summary)), history.map((entry) => entry.summary).join('\n'));
  assert.equal(world.checker.violations, []);
});

test('a node silent for less than the suspicion timeout is never declared dead; a crashed one is, by every other node, and recorded down', async () => {
  const world = new ClusterWorld({ ...clusterSettingsForSeed(3), nodes: 5, dropRate: 0, duplicateRate: 0, delayMsMax: 2, voterGraceMs: 5000, oomChance: 0 });
  world.startScenario({ cpuMillis: 4000, memoryBytes: 8 * GiB });
  const ids = ['n1', 'n2', 'n3', 'n4', 'n5'];
  const viewOf = (observer: string, id: string): string | undefined => world.agent(observer)?.gossip.statuses()[id];
  const allAlive = (): boolean => ids.every((observer) => ids.every((id) => viewOf(observer, id) === 'alive'));
  assert.ok(await world.runUntil(allAlive, 30_000), 'every node sees all five alive');

  // n4 cut off for one second (the suspicion timeout is at least 2 s): no other node ever holds it dead.
  let declaredDead: string | undefined;
  const watchN4 = (): boolean => {
    for (const observer of ids) if (observer !== 'n4' && viewOf(observer, 'n4') === 'dead') declaredDead ??= `${observer} at ${world.nowMs} ms`;
    return false;
  };
  world.isolate('n4');
  await world.runUntil(watchN4, 1000);
  world.healNetwork();
  await world.runUntil(watchN4, 6000);
  assert.is(declaredDead, undefined, `n4 declared dead by ${declaredDead}`);
  assert.ok(ids.every((observer) => viewOf(observer, 'n4') === 'alive'));

  // n5 crashed: every other node's view says dead, and the state records it down.
  world.crash('n5');
  const survivors = ids.filter((id) => id !== 'n5');
  assert.ok(await world.runUntil(() => survivors.every((observer) => viewOf(observer, 'n5') === 'dead'), 30_000), 'n1..n4 mark n5 dead');
  assert.ok(await world.runUntil(() => world.leader()?.machine.node('n5')?.status === 'down', 30_000), 'the state records n5 down');
  assert.equal(world.checker.violations, []);
});

test('a leader whose clock ran ahead does not stall the next leader\'s rollout (seed 2993\'s finding; planning-time.ts)', async () => {
  const world = await threeNodes(4);
  const ahead = world.leader()!.id;
  world.jumpClock(ahead, 120_000);
  const update = { parallelism: 1, delayMs: 1000, failureAction: 'rollback' as const, order: 'start-first' as const, monitorMs: 2000 };
  // Off the leader, whose crash below must not fail the update (its workloads die with it).
  const first = simSpec('web', { replicas: 2, healthcheck: HEALTHCHECK, update, constraints: [`node.id != ${ahead}`] });
  assert.ok((await world.operate({ type: 'app.deploy', spec: first })).ok);
  const healthy = (version: number): number => running(world, 'web').filter((instance) => instance.version === version && instance.status.state === 'healthy').length;
  assert.ok(await world.runUntil(() => healthy(1) === 2, 15_000), '2 healthy instances of version 1');
  // The update starts under the leader whose clock is 120 s ahead: its batch times and the statuses' times are in its future.
  assert.ok((await world.operate({ type: 'app.deploy', spec: { ...first, environment: { V: '2' } } })).ok);
  assert.ok(await world.runUntil(() => running(world, 'web').some((instance) => instance.version === 2 && instance.status.state === 'healthy'), 15_000), `the first batch runs: ${JSON.stringify(world.leader()?.machine.app('default', 'web')?.rollout)} ${JSON.stringify(running(world, 'web').map((instance) => [instance.id, instance.version, instance.node, instance.status.state]))} ${world.leader()?.machine.history(20).map((entry) => entry.summary).join(' | ')}`);
  world.crash(ahead);
  assert.ok(await world.runUntil(() => world.leader() !== undefined && world.leader()!.id !== ahead, 15_000), 'a leader with a correct clock');
  const crashedAt = world.nowMs;
  const done = await world.runUntil(() => world.leader()?.machine.app('default', 'web')?.rollout?.state === 'succeeded', 40_000);
  const rollout = world.leader()?.machine.app('default', 'web')?.rollout;
  assert.ok(done, `the rollout finished within 40 s of the leader change, not 120 s later (${world.nowMs - crashedAt} ms: ${rollout?.state}, ${rollout?.message}) ${JSON.stringify(world.leader()?.machine.instances({ app: 'web' }))} ${JSON.stringify(world.leader()?.machine.nodes().map((node) => [node.id, node.status, node.lastSeenAt]))}\n${world.trace.slice(-60).join('\n')}`);
  assert.equal(world.checker.violations, []);
});

test('three voters and a learner; a voter lost for good is marked down and replaced by the learner, and writes go on', async () => {
  const world = new ClusterWorld({ ...clusterSettingsForSeed(5), nodes: 4, dropRate: 0, duplicateRate: 0, delayMsMax: 2, voterGraceMs: 2000, oomChance: 0 });
  world.startScenario({ cpuMillis: 4000, memoryBytes: 8 * GiB }, { founders: 3 });
  const config = (): { voters: string[]; learners: string[] } => world.leader()!.raft.status().config;
  const roles = (): string[] => world.leader()!.machine.nodes().map((node) => node.role).sort();
  const formed = await world.runUntil(() => world.leader() !== undefined && config().learners.includes('n4') && JSON.stringify(roles()) === JSON.stringify(['learner', 'voter', 'voter', 'voter']), 20_000);
  assert.ok(formed, 'three voters and n4 a learner, roles recorded');
  const leader = world.leader()!.id;
  const victim = config().voters.find((id) => id !== leader)!;
  world.crash(victim);
  const replaced = await world.runUntil(() => {
    const now = world.leader() === undefined ? undefined : config();
    return now !== undefined && now.voters.length === 3 && now.voters.includes('n4') && !now.voters.includes(victim) && !now.learners.includes('n4');
  }, 20_000);
  assert.ok(replaced, 'the learner promoted in the lost voter\'s place');
  assert.ok(await world.runUntil(() => world.leader()?.machine.node(victim)?.status === 'down', 20_000), 'the lost voter marked down');
  assert.ok(await world.runUntil(() => world.leader()?.machine.node(victim)?.role === 'none', 20_000), 'its role none');
  assert.ok((await world.operate({ type: 'kv.put', key: 'after-replacement', value: 'ok' })).ok);
  assert.equal(world.checker.violations, []);
});

test('an update that supersedes a failed one retires the failed version\'s instances first, so it fits in a full cluster (the superseded rollout\'s finding)', async () => {
  const world = await threeNodes(6);
  // Two instances fill a node: version 1 and the failed version 2 side by side leave no room for version 3 beside them.
  const reservations = { cpuMillis: 1800, memoryBytes: 1 * GiB };
  const first = simSpec('web', { replicas: 3, reservations, healthcheck: HEALTHCHECK, update: { parallelism: 0, delayMs: 0, failureAction: 'pause', order: 'start-first', monitorMs: 0 } });
  assert.ok((await world.operate({ type: 'app.deploy', spec: first })).ok);
  const ready = (version: number): number => running(world, 'web').filter((instance) => instance.version === version && instance.status.state === 'healthy').length;
  assert.ok(await world.runUntil(() => ready(1) === 3, 15_000), '3 healthy instances of version 1');
  // Version 2 never passes its healthcheck: the update pauses with all six instances placed, the cluster full.
  assert.ok((await world.operate({ type: 'app.deploy', spec: { ...first, labels: { 'sim.fail': 'true' } } })).ok);
  const paused = await world.runUntil(() => world.leader()?.machine.app('default', 'web')?.rollout?.state === 'paused' && running(world, 'web').filter((instance) => instance.version === 2 && instance.node !== undefined).length === 3, 30_000);
  assert.ok(paused, `version 2 placed beside version 1 and paused: ${JSON.stringify(world.leader()?.machine.app('default', 'web')?.rollout)}`);
  // Version 3 works; its rollout supersedes the paused one (from version 2), version 1 still serving.
  let leastServing = 3;
  assert.ok((await world.operate({ type: 'app.deploy', spec: { ...first, update: { ...first.update, parallelism: 1 }, environment: { V: '3' } } })).ok);
  const converged = await world.runUntil(() => {
    leastServing = Math.min(leastServing, ready(1) + ready(3));
    const app = world.leader()?.machine.app('default', 'web');
    return app?.rollout?.state === 'succeeded' && ready(3) === 3 && running(world, 'web').length === 3;
  }, 60_000);
  const app = world.leader()?.machine.app('default', 'web');
  assert.ok(converged, `version 3 at full size, nothing else meant to run: ${app?.rollout?.state} ${app?.rollout?.message} ${JSON.stringify(running(world, 'web').map((instance) => [instance.id, instance.version, instance.node, instance.status.state]))}`);
  assert.is(leastServing, 3, 'three instances served throughout (version 1 until version 3 replaced it)');
  assert.equal(world.checker.violations, []);
});

test('the real executor on virtual time: an OOM-killed instance is reported, held for its restart delay on the node\'s clock, and started again', async () => {
  const world = await threeNodes(7);
  const spec = simSpec('worker', { replicas: 1, restart: { condition: 'any', delayMs: 5000, windowMs: 0 } });
  assert.ok((await world.operate({ type: 'app.deploy', spec })).ok);
  const instance = (): Instance | undefined => running(world, 'worker')[0];
  assert.ok(await world.runUntil(() => instance()?.status.state === 'running', 15_000), 'worker running');
  const { id, node } = instance()!;
  assert.ok(world.agent(node!)!.runtime.kill(id, true), 'the simulated runtime OOM-kills it');
  const killedAtMs = world.nowMs;
  assert.ok(await world.runUntil(() => instance()?.status.state === 'oom-killed', 5000), 'reported oom-killed');
  assert.match(instance()!.status.message ?? '', /exited with code 137 \(killed: out of memory\); restarting in 5000 ms/);
  assert.is(instance()!.failures, 1, 'counted as a failure');
  assert.ok(await world.runUntil(() => instance()?.status.state === 'running', 15_000), 'running again');
  const restartedAfterMs = world.nowMs - killedAtMs;
  // The hold ends 5 s after the exit on the node's clock; the start takes at most 300 ms, the report a few rounds.
  assert.ok(restartedAfterMs >= 5000 && restartedAfterMs < 7000, `restarted ${restartedAfterMs} ms after the kill`);
  assert.is(instance()!.node, node, 'restarted in place');
  assert.equal(world.checker.violations, []);
});

test.run();
