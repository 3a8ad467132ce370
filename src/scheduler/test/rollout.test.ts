// Rollout stepping over the real state machine: the round planner proposes, the simulated executor reports.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { stateRoutes } from '../../api/routes-state.js';
import type { ReadRoute, RouteContext } from '../../api/router.js';
import type { ClusterStateMachine } from '../../state/machine.js';
import type { AppSpec } from '../../state/types.js';
import { STATE_VERSION_LABEL } from '../../state/types.js';
import { STATE_VERSION } from '../../state/version.js';
import { planRolloutStep } from '../rollout.js';
import { simSpec, SimWorld } from '../sim.js';
import { HEALTHCHECK, nextSpec, runningOf, worldWithWeb } from './world.js';

/** `GET /v1/apps/:tenant/:name` as the API answers it, over `machine` (the route's read is pure over the state). */
function getApp(machine: ClusterStateMachine, tenant: string, name: string): { version: number; spec: AppSpec } {
  const route = stateRoutes.find((candidate): candidate is ReadRoute => candidate.kind === 'read' && candidate.method === 'GET' && candidate.path === '/v1/apps/:tenant/:name');
  assert.ok(route, 'the API has the route');
  const context = { backend: { machine }, params: { tenant, name }, query: new URLSearchParams() } as unknown as RouteContext;
  return route.read(context) as { version: number; spec: AppSpec };
}

function rollout(world: ReturnType<typeof worldWithWeb>) {
  return world.machine.app('default', 'web')!.rollout!;
}

test('rolling start-first, parallelism 1: one new instance at a time, never fewer ready than replicas, old retired once the new is ready', () => {
  const world = worldWithWeb({ spec: { update: { parallelism: 1, delayMs: 0, failureAction: 'rollback', order: 'start-first', monitorMs: 0 } } });
  world.ok({ type: 'app.deploy', spec: nextSpec(world, { environment: { V: '2' } }) });
  assert.is(rollout(world).state, 'running');
  world.step();
  const firstBatch = world.machine.instances({ app: 'web' }).filter((instance) => instance.version === 2);
  assert.is(firstBatch.length, 1, 'one new instance in the first batch');
  assert.equal(rollout(world).batch, [0]);
  let newAtOnceMax = 0;
  for (let count = 0; count < 60 && rollout(world).state === 'running'; count++) {
    assert.ok(world.ready('default', 'web').length >= 3, `never below 3 ready (step ${count})`);
    const fresh = world.machine.instances({ app: 'web' }).filter((instance) => instance.version === 2 && instance.desired === 'running' && !world.ready('default', 'web', 2).some((ready) => ready.id === instance.id));
    newAtOnceMax = Math.max(newAtOnceMax, fresh.length);
    world.step();
  }
  assert.is(rollout(world).state, 'succeeded');
  assert.is(newAtOnceMax, 1, 'parallelism 1: at most one new instance not yet ready');
  world.runUntil(() => world.machine.instances({ app: 'web' }).length === 3);
  assert.equal(world.machine.instances({ app: 'web' }).map((instance) => instance.version), [2, 2, 2], 'old records removed once stopped');
  assert.ok(world.machine.history().some((entry) => entry.summary.includes('rollout to version 2 succeeded')));
});

test('rolling stop-first, parallelism 2: the batch retires its old instances first, then the next batch', () => {
  const world = worldWithWeb({ replicas: 4, spec: { update: { parallelism: 2, delayMs: 0, failureAction: 'pause', order: 'stop-first', monitorMs: 0 } } });
  world.ok({ type: 'app.deploy', spec: nextSpec(world, { environment: { V: '2' } }) });
  world.step();
  const instances = world.machine.instances({ app: 'web' });
  assert.equal(instances.filter((instance) => instance.version === 1 && instance.desired === 'stopped').map((instance) => instance.slot), [0, 1]);
  assert.equal(instances.filter((instance) => instance.version === 2).map((instance) => instance.slot), [0, 1]);
  assert.ok(world.runUntil(() => rollout(world).state === 'succeeded', 40));
  assert.equal(runningOf(world).map((text) => text.slice(0, 2)), ['v2', 'v2', 'v2', 'v2']);
});

test('parallelism 0 updates every slot in one batch; delay holds the next batch back', () => {
  const all = worldWithWeb({ spec: { update: { parallelism: 0, delayMs: 0, failureAction: 'pause', order: 'start-first', monitorMs: 0 } } });
  all.ok({ type: 'app.deploy', spec: nextSpec(all, { environment: { V: '2' } }) });
  all.step();
  assert.is(all.machine.instances({ app: 'web' }).filter((instance) => instance.version === 2).length, 3);

  const delayed = worldWithWeb({ spec: { update: { parallelism: 1, delayMs: 10_000, failureAction: 'pause', order: 'start-first', monitorMs: 0 } } });
  delayed.ok({ type: 'app.deploy', spec: nextSpec(delayed, { environment: { V: '2' } }) });
  assert.ok(delayed.runUntil(() => rollout(delayed).done === 1 && rollout(delayed).batch.length === 0, 20));
  const doneAt = delayed.now;
  assert.is(rollout(delayed).nextBatchAt, doneAt + 10_000);
  delayed.runUntil(() => delayed.machine.instances({ app: 'web' }).filter((instance) => instance.version === 2).length === 2, 30);
  assert.ok(delayed.now >= doneAt + 10_000, 'the second batch waited for the delay');
});

test('monitor: a new instance counts only after it stayed healthy for monitorMs; the old one stays until then', () => {
  const world = worldWithWeb({ replicas: 1, spec: { update: { parallelism: 1, delayMs: 0, failureAction: 'pause', order: 'start-first', monitorMs: 5_000 } } });
  world.ok({ type: 'app.deploy', spec: nextSpec(world, { environment: { V: '2' } }) });
  world.runUntil(() => world.ready('default', 'web', 2).length === 1, 10);
  const healthyAt = world.now;
  while (world.now < healthyAt + 4_000) {
    world.step();
    assert.is(world.ready('default', 'web', 1).length, 1, 'old instance kept during the monitor window');
  }
  assert.ok(world.runUntil(() => rollout(world).state === 'succeeded', 10));
});

test('failure_action rollback: a new version failing its health check rolls back by itself to the old one', () => {
  const world = worldWithWeb({ spec: { update: { parallelism: 1, delayMs: 0, failureAction: 'rollback', order: 'start-first', monitorMs: 0 } } });
  world.ok({ type: 'app.deploy', spec: nextSpec(world, { labels: { 'sim.fail': 'true' } }) });
  assert.ok(world.runUntil(() => rollout(world).kind === 'rollback', 20), 'a rollback started');
  const app = world.machine.app('default', 'web')!;
  assert.is(app.version, 1, 'the app is back at version 1');
  assert.equal([rollout(world).fromVersion, rollout(world).toVersion], [2, 1]);
  assert.match(rollout(world).message, /rolling back to version 1: 1 new instance failed: instance default\.web\.0\.\d+ unhealthy/);
  assert.ok(world.runUntil(() => rollout(world).state === 'rolled-back', 20));
  assert.equal(runningOf(world).map((text) => text.slice(0, 2)), ['v1', 'v1', 'v1']);
  assert.ok(world.ready('default', 'web', 1).length === 3);
  assert.ok(world.machine.history().some((entry) => entry.summary.startsWith('update to version 2 failed; rolling back to version 1')));
});

test('after an automatic rollback, GET of the app shows the version that runs, not the newest', () => {
  const world = worldWithWeb({ spec: { update: { parallelism: 1, delayMs: 0, failureAction: 'rollback', order: 'start-first', monitorMs: 0 } } });
  assert.equal(getApp(world.machine, 'default', 'web').spec.labels, {}, 'version 1 before the update');
  world.ok({ type: 'app.deploy', spec: nextSpec(world, { labels: { 'sim.fail': 'true' } }) });
  assert.equal(getApp(world.machine, 'default', 'web').spec.labels, { 'sim.fail': 'true' }, 'during the update: the version it rolls to');
  assert.ok(world.runUntil(() => rollout(world).state === 'rolled-back', 40));
  const answer = getApp(world.machine, 'default', 'web');
  assert.is(answer.version, 1);
  assert.equal(answer.spec.labels, {}, 'version 1 runs again, and its spec is what GET shows');
  assert.is(world.machine.app('default', 'web')!.versions.length, 2, 'version 2 is still kept');
});

test('failure_action pause: the rollout stops and says why; promote resumes, abort restores the old version', () => {
  const world = worldWithWeb({ spec: { update: { parallelism: 1, delayMs: 0, failureAction: 'pause', order: 'stop-first', monitorMs: 0 } } });
  world.ok({ type: 'app.deploy', spec: nextSpec(world, { labels: { 'sim.fail': 'true' } }) });
  assert.ok(world.runUntil(() => rollout(world).state === 'paused', 20));
  assert.match(rollout(world).message, /^paused: 1 new instance failed: .*promote to resume, abort to restore version 1$/);
  const before = JSON.stringify(world.machine.instances({ app: 'web' }).filter((instance) => instance.desired === 'running').map((instance) => instance.id));
  for (let count = 0; count < 5; count++) world.step();
  const after = JSON.stringify(world.machine.instances({ app: 'web' }).filter((instance) => instance.desired === 'running').map((instance) => instance.id));
  assert.is(after, before, 'a paused rollout changes nothing');
  world.ok({ type: 'app.abort', tenant: 'default', name: 'web' });
  assert.is(world.machine.app('default', 'web')!.version, 1);
  assert.ok(world.runUntil(() => rollout(world).state === 'rolled-back', 30));
  assert.equal(runningOf(world).map((text) => text.slice(0, 2)), ['v1', 'v1', 'v1'], 'stop-first slot 0 got a version 1 instance back');
});

test('progress deadline: a batch that never gets ready fails the rollout', () => {
  const world = worldWithWeb({ replicas: 2, spec: { update: { parallelism: 1, delayMs: 0, failureAction: 'rollback', order: 'start-first', monitorMs: 0 } } });
  world.behaviour = (instance, spec) => (spec.environment.V === '2' ? 'starting' : 'healthy');
  world.ok({ type: 'app.deploy', spec: nextSpec(world, { environment: { V: '2' } }) });
  assert.ok(world.runUntil(() => rollout(world).kind === 'rollback', 40));
  assert.match(rollout(world).message, /progress deadline exceeded: 1 new instance not ready after 2\d s/);
  assert.ok(world.runUntil(() => rollout(world).state === 'rolled-back', 20));
});

test('blue-green: the new version at full size beside the old, promote retires the old', () => {
  const world = worldWithWeb({ spec: { hivemind: { strategy: 'blue-green' } } });
  world.ok({ type: 'app.deploy', spec: nextSpec(world, { environment: { V: '2' } }) });
  assert.ok(world.runUntil(() => rollout(world).state === 'awaiting-promotion', 20));
  assert.equal(runningOf(world).map((text) => text.slice(0, 2)), ['v1', 'v1', 'v1', 'v2', 'v2', 'v2']);
  assert.is(world.ready('default', 'web').length, 6);
  const early = world.apply({ type: 'app.abort', tenant: 'default', name: 'ghost' });
  assert.is(early.ok, false);
  world.ok({ type: 'app.promote', tenant: 'default', name: 'web' });
  assert.is(rollout(world).state, 'succeeded');
  assert.equal(runningOf(world).map((text) => text.slice(0, 2)), ['v2', 'v2', 'v2']);
});

test('blue-green abort retires the new version and keeps the old; promote before it is ready is refused', () => {
  const world = worldWithWeb({ spec: { hivemind: { strategy: 'blue-green' } } });
  world.ok({ type: 'app.deploy', spec: nextSpec(world, { environment: { V: '2' } }) });
  const refused = world.apply({ type: 'app.promote', tenant: 'default', name: 'web' });
  assert.equal(refused.ok ? undefined : [refused.error.code, refused.error.field], ['conflict', 'name']);
  assert.ok(world.runUntil(() => rollout(world).state === 'awaiting-promotion', 20));
  world.ok({ type: 'app.abort', tenant: 'default', name: 'web' });
  assert.ok(world.runUntil(() => rollout(world).state === 'rolled-back', 10));
  assert.equal(runningOf(world).map((text) => text.slice(0, 2)), ['v1', 'v1', 'v1']);
  assert.is(world.machine.app('default', 'web')!.version, 1);
});

test('canary: N new instances beside the old with weights; promote finishes as a rolling update', () => {
  const world = worldWithWeb({ replicas: 4, spec: { hivemind: { strategy: 'canary', canary: { instances: 1 } } } });
  world.ok({ type: 'app.deploy', spec: nextSpec(world, { environment: { V: '2' } }) });
  assert.equal(rollout(world).weights, [{ version: 1, percent: 80 }, { version: 2, percent: 20 }]);
  assert.ok(world.runUntil(() => rollout(world).state === 'awaiting-promotion', 20));
  assert.equal(runningOf(world).map((text) => text.slice(0, 2)), ['v1', 'v1', 'v1', 'v1', 'v2']);
  world.ok({ type: 'app.promote', tenant: 'default', name: 'web' });
  assert.is(rollout(world).strategy, 'rolling');
  assert.ok(world.runUntil(() => rollout(world).state === 'succeeded', 40));
  assert.equal(runningOf(world).map((text) => text.slice(0, 2)), ['v2', 'v2', 'v2', 'v2']);
});

test('canary abort removes the canaries; weightPercent sizes the canary', () => {
  const world = worldWithWeb({ replicas: 10, nodes: 4, spec: { hivemind: { strategy: 'canary', canary: { weightPercent: 25 } } } });
  world.ok({ type: 'app.deploy', spec: nextSpec(world, { environment: { V: '2' } }) });
  assert.is(rollout(world).canaryInstances, 3, 'ceil(10 × 25%)');
  assert.equal(rollout(world).weights, [{ version: 1, percent: 75 }, { version: 2, percent: 25 }]);
  assert.ok(world.runUntil(() => rollout(world).state === 'awaiting-promotion', 20));
  world.ok({ type: 'app.abort', tenant: 'default', name: 'web' });
  assert.ok(world.runUntil(() => rollout(world).state === 'rolled-back', 10));
  assert.is(runningOf(world).filter((text) => text.startsWith('v2')).length, 0);
  assert.is(world.ready('default', 'web', 1).length, 10);
});

test('a rollout survives a new leader: the record in the state is all the planner needs', () => {
  const world = worldWithWeb({ spec: { update: { parallelism: 1, delayMs: 0, failureAction: 'rollback', order: 'start-first', monitorMs: 0 } } });
  world.ok({ type: 'app.deploy', spec: nextSpec(world, { environment: { V: '2' } }) });
  world.step();
  world.step();
  // A new leader restores from the replicated state (here: a snapshot) and plans from it.
  const restored = world.machine.snapshot();
  world.machine.restore(restored);
  assert.ok(world.runUntil(() => rollout(world).state === 'succeeded', 40));
});

test('quota counts the desired size: a start-first update may surge past it, a bigger deploy may not', () => {
  const world = worldWithWeb({ replicas: 0 });
  world.ok({ type: 'tenant.create', name: 'acme', quota: { instances: 3 } });
  world.ok({ type: 'app.deploy', spec: { ...nextSpec(world, {}), tenant: 'acme', replicas: 3 } });
  world.runUntil(() => world.ready('acme', 'web').length === 3);
  world.ok({ type: 'app.deploy', spec: { ...nextSpec(world, {}), tenant: 'acme', replicas: 3, environment: { V: '2' }, hivemind: { strategy: 'blue-green' } } });
  assert.ok(world.runUntil(() => world.machine.app('acme', 'web')!.rollout?.state === 'awaiting-promotion', 20));
  assert.is(world.ready('acme', 'web').length, 6, 'old and new side by side: 6 instances under an instance quota of 3');
  assert.is(world.machine.usage('acme').instances, 3, 'usage counts the desired size');
  const bigger = world.apply({ type: 'app.scale', tenant: 'acme', name: 'web', replicas: 4 });
  assert.equal(bigger.ok ? undefined : bigger.error.code, 'quota-exceeded');
});

test('at state version 4 the slot rule names each retirement\'s keeper, a ready instance of the new version in its slot; below it, none', () => {
  for (const raised of [true, false]) {
    const world = new SimWorld({ scheduler: { rescheduleGraceMs: 10_000, progressDeadlineMs: 20_000 } });
    for (const id of ['n1', 'n2']) world.addNode(id, { labels: { [STATE_VERSION_LABEL]: String(STATE_VERSION) } });
    if (raised) world.ok({ type: 'cluster.version', version: STATE_VERSION });
    world.ok({ type: 'app.deploy', spec: simSpec('web', { replicas: 2, healthcheck: HEALTHCHECK }) });
    assert.ok(world.runUntil(() => world.ready('default', 'web').length === 2));
    world.ok({ type: 'app.deploy', spec: nextSpec(world, { environment: { V: '2' } }) });
    const retirements: { id: string; keeper?: string }[] = [];
    for (let count = 0; count < 60 && world.machine.app('default', 'web')!.rollout!.state === 'running'; count++) {
      world.executorTick();
      const ready = new Map(world.ready('default', 'web', 2).map((instance) => [instance.id, instance]));
      for (const { command, result } of world.schedulerRound()) {
        if (command.type !== 'rollout.step') continue;
        assert.ok(result.ok, JSON.stringify(result));
        for (const item of command.retire) {
          retirements.push(item);
          if (item.keeper === undefined) continue;
          assert.is(ready.get(item.keeper)?.slot, world.machine.instance(item.id)!.slot, `${item.keeper} is ready in the slot of ${item.id}`);
        }
      }
      world.now += 500;
    }
    assert.is(world.machine.app('default', 'web')!.rollout!.state, 'succeeded');
    assert.is(retirements.length, 2, 'each old instance retired once');
    assert.is(retirements.every((item) => item.keeper !== undefined), raised, raised ? 'every retirement names its keeper' : 'no keeper below version 4');
  }
});

test('at state version 5 an update that supersedes a failed one retires the failed version\'s unavailable instances first, on condition; below it, they wait for their slot', () => {
  for (const raised of [true, false]) {
    const world = new SimWorld({ scheduler: { rescheduleGraceMs: 10_000, progressDeadlineMs: 20_000 } });
    for (const id of ['n1', 'n2']) world.addNode(id, { labels: { [STATE_VERSION_LABEL]: String(STATE_VERSION) } });
    if (raised) world.ok({ type: 'cluster.version', version: STATE_VERSION });
    const update = { parallelism: 0, delayMs: 0, failureAction: 'pause' as const, order: 'start-first' as const, monitorMs: 0 };
    world.ok({ type: 'app.deploy', spec: simSpec('web', { replicas: 2, healthcheck: HEALTHCHECK, update }) });
    assert.ok(world.runUntil(() => world.ready('default', 'web').length === 2));
    world.ok({ type: 'app.deploy', spec: nextSpec(world, { labels: { 'sim.fail': 'true' } }) });
    assert.ok(world.runUntil(() => rollout(world).state === 'paused', 20), 'version 2 failed and paused');
    assert.equal(runningOf(world).filter((entry) => entry.startsWith('v2')).length, 2, 'version 2 beside version 1 in both slots');
    world.ok({ type: 'app.deploy', spec: nextSpec(world, { labels: {}, environment: { V: '3' }, update: { ...update, parallelism: 1 } }) });
    const step = world.schedulerRound().find(({ command }) => command.type === 'rollout.step');
    assert.ok(step !== undefined && step.result.ok, JSON.stringify(step));
    const command = step.command as Extract<typeof step.command, { type: 'rollout.step' }>;
    const failed = world.machine.instances({ app: 'web' }).filter((instance) => instance.version === 2).map((instance) => instance.id).sort();
    if (raised) {
      assert.equal(command.retire.map((item) => item.id).sort(), failed, 'both of version 2 retired in the first step');
      assert.ok(command.retire.every((item) => item.unlessServing === true && /version 2 does not serve/.test(item.reason)), JSON.stringify(command.retire));
      assert.ok(world.ready('default', 'web', 1).length === 2, 'version 1 untouched');
    } else {
      assert.equal(command.retire, [], 'below version 5 nothing is retired before its slot is done');
    }
    assert.ok(world.runUntil(() => rollout(world).state === 'succeeded', 60), `version 3 rolled out: ${rollout(world).message}`);
    assert.equal(runningOf(world).map((entry) => entry.slice(0, 2)), ['v3', 'v3']);
  }
});

test('the unavailable surplus of a slot goes, but the slot keeps its most promising instance even when none serves', () => {
  const world = new SimWorld({ scheduler: { rescheduleGraceMs: 10_000, progressDeadlineMs: 20_000 } });
  for (const id of ['n1', 'n2']) world.addNode(id);
  const update = { parallelism: 0, delayMs: 0, failureAction: 'pause' as const, order: 'start-first' as const, monitorMs: 0 };
  world.ok({ type: 'app.deploy', spec: simSpec('web', { replicas: 1, healthcheck: HEALTHCHECK, update }) });
  assert.ok(world.runUntil(() => world.ready('default', 'web').length === 1));
  world.ok({ type: 'app.deploy', spec: nextSpec(world, { labels: { 'sim.fail': 'true' } }) });
  assert.ok(world.runUntil(() => rollout(world).state === 'paused', 20));
  world.ok({ type: 'app.deploy', spec: nextSpec(world, { labels: {}, environment: { V: '3' } }) });
  const app = world.machine.app('default', 'web')!;
  const nodes = new Map(world.machine.nodes().map((node) => [node.id, node]));
  const instances = world.machine.instances({ app: 'web' });
  const first = instances.find((instance) => instance.version === 1)!;
  const failed = instances.find((instance) => instance.version === 2)!;
  const context = { instances, nodes, now: world.now, progressDeadlineMs: 20_000, retiresUnavailable: true };
  // Version 1 serves: the failed version 2 goes, on condition.
  assert.equal(planRolloutStep(app, context)!.retire, [{ id: failed.id, reason: `version 2 does not serve (${failed.status.state}); its slot keeps ${first.id}`, unlessServing: true }]);
  // Version 1 exited too: the slot keeps it (not failed) and still retires the failed one.
  const exited = instances.map((instance) => (instance.id === first.id ? { ...instance, status: { ...instance.status, state: 'exited' as const } } : instance));
  assert.equal(planRolloutStep(app, { ...context, instances: exited })!.retire.map((item) => item.id), [failed.id]);
  // Both failed: the newest stays, the slot is never emptied by this rule.
  const bothFailed = instances.map((instance) => (instance.id === first.id ? { ...instance, failures: 1, status: { ...instance.status, state: 'unhealthy' as const } } : instance));
  assert.equal(planRolloutStep(app, { ...context, instances: bothFailed })!.retire.map((item) => item.id), [first.id]);
  // Without the cluster version for it: nothing goes.
  assert.equal(planRolloutStep(app, { ...context, retiresUnavailable: false })?.retire ?? [], []);
});

test('healthcheck NONE counts running as ready', () => {
  const world = worldWithWeb({ replicas: 1, spec: { healthcheck: { ...HEALTHCHECK, test: ['NONE'] } } });
  assert.is(world.machine.instances({ app: 'web' })[0]!.status.state, 'running');
});

test.run();
