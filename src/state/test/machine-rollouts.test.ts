// The scheduler's and the user's rollout commands: what they change, and what they refuse (with the field).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { KEEPERS_STATE_VERSION, UNLESS_SERVING_STATE_VERSION } from '../apply-rollouts.js';
import { commandVersion } from '../commands.js';
import { STATE_VERSION_LABEL, type Command } from '../types.js';
import { CLUSTER_VERSION_FLOOR, STATE_VERSION } from '../version.js';
import { appSpec, Driver, registerNode } from './fixtures.js';

function withRollout(): { driver: Driver; rollout: number } {
  const driver = new Driver();
  driver.ok(registerNode('n1'));
  driver.ok({ type: 'app.deploy', spec: appSpec({ replicas: 2 }) });
  driver.ok({ type: 'instance.place', placements: [{ id: 'default.web.0.1', node: 'n1' }, { id: 'default.web.1.2', node: 'n1' }] });
  const deployed = driver.ok({ type: 'app.deploy', spec: appSpec({ replicas: 2, image: 'nginx:2' }) });
  return { driver, rollout: (deployed.value as { rollout: number }).rollout };
}

test('rollout.step adds and retires instances and patches the rollout; a placed retired instance is stopped, not removed', () => {
  const { driver, rollout } = withRollout();
  const result = driver.ok({
    type: 'rollout.step',
    tenant: 'default',
    name: 'web',
    rollout,
    add: [{ slot: 0, version: 2 }],
    retire: [{ id: 'default.web.0.1', reason: 'stop-first' }],
    set: { batch: [0], batchStartedAt: driver.time, message: 'updating slot 0' },
  });
  assert.equal(result.value, { added: ['default.web.0.3'], retired: ['default.web.0.1'] });
  const old = driver.machine.instance('default.web.0.1')!;
  assert.equal([old.desired, old.retiredAt, old.retiredReason], ['stopped', driver.time, 'stop-first']);
  assert.equal(driver.machine.app('default', 'web')!.rollout!.batch, [0]);
  const removed = driver.ok({ type: 'instance.remove', ids: ['default.web.0.1', 'default.web.9.9'] });
  assert.equal(removed.value, { removed: 1 }, 'ids already gone are skipped');
});

test('rollout.step refusals name the field and change nothing', () => {
  const { driver, rollout } = withRollout();
  const before = JSON.stringify([driver.machine.apps(), driver.machine.instances()]);
  const base = { type: 'rollout.step', tenant: 'default', name: 'web', rollout, add: [], retire: [] };
  const cases: [Record<string, unknown>, string, string][] = [
    [{ ...base, rollout: rollout + 1 }, 'conflict', 'rollout'],
    [{ ...base, add: [{ slot: 2, version: 2 }] }, 'conflict', 'add[0].slot'],
    [{ ...base, add: [{ slot: 0, version: 7 }] }, 'not-found', 'add[0].version'],
    [{ ...base, add: [{ slot: 0, version: 2, node: 'n9' }] }, 'not-found', 'add[0].node'],
    [{ ...base, retire: [{ id: 'default.api.0.1', reason: 'x' }] }, 'not-found', 'retire[0].id'],
    [{ ...base, rollout: 0, set: { state: 'paused' } }, 'invalid-argument', 'rollout'],
    [{ ...base, rebalance: 'moved' }, 'conflict', 'rebalance'],
    [{ ...base, add: [{ slot: -1, version: 2 }] }, 'invalid-argument', 'add[0].slot'],
    [{ ...base, set: { state: 'exploded' } }, 'invalid-argument', 'set.state'],
    [{ ...base, retire: [{ id: 'a', reason: 'x' }, { id: 'a', reason: 'y' }] }, 'invalid-argument', 'retire[1].id'],
    [{ type: 'rollout.step', tenant: 'default', name: 'web', rollout }, 'invalid-argument', 'add'],
  ];
  for (const [command, code, field] of cases) {
    const error = driver.refused(command);
    assert.equal([error.code, error.field], [code, field], JSON.stringify(command));
  }
  assert.is(JSON.stringify([driver.machine.apps(), driver.machine.instances()]), before, 'nothing changed');
});

/**
 * A rolling update's slot 0 with its keeper: web.0.1 (version 1) and web.0.3 (version 2) both running on n1, and the
 * cluster at `clusterVersion` (registered nodes that apply it, and the raise).
 */
function slotWithKeeper(clusterVersion: number): { driver: Driver; rollout: number; step: (keeper?: string) => Record<string, unknown> } {
  const driver = new Driver();
  const labels = { zone: 'a', [STATE_VERSION_LABEL]: String(STATE_VERSION) };
  driver.ok({ ...(registerNode('n1') as Extract<Command, { type: 'node.register' }>), labels });
  if (clusterVersion > CLUSTER_VERSION_FLOOR) driver.ok({ type: 'cluster.version', version: clusterVersion });
  driver.ok({ type: 'app.deploy', spec: appSpec({ replicas: 1 }) });
  const deployed = driver.ok({ type: 'app.deploy', spec: appSpec({ replicas: 1, image: 'nginx:2' }) });
  const rollout = (deployed.value as { rollout: number }).rollout;
  const added = driver.ok({ type: 'rollout.step', tenant: 'default', name: 'web', rollout, add: [{ slot: 0, version: 2 }], retire: [] });
  assert.equal((added.value as { added: string[] }).added, ['default.web.0.2']);
  driver.ok({ type: 'instance.place', placements: [{ id: 'default.web.0.1', node: 'n1' }, { id: 'default.web.0.2', node: 'n1' }] });
  driver.ok({ type: 'instance.status', updates: ['default.web.0.1', 'default.web.0.2'].map((id) => ({ id, state: 'running' as const, reportedBy: 'n1', reportedAt: driver.time })) });
  const step = (keeper?: string): Record<string, unknown> => ({
    type: 'rollout.step',
    tenant: 'default',
    name: 'web',
    rollout,
    add: [],
    retire: [{ id: 'default.web.0.1', reason: 'replaced by default.web.0.2', ...(keeper === undefined ? {} : { keeper }) }],
  });
  return { driver, rollout, step };
}

test('a retirement that names its keeper applies while the keeper serves, and is refused once it does not (plan again)', () => {
  const serving = slotWithKeeper(STATE_VERSION);
  assert.equal(serving.driver.ok(serving.step('default.web.0.2') as Command).value, { added: [], retired: ['default.web.0.1'] });

  // The race: the step was planned while web.0.3 ran; its exit applied first.
  const exited = slotWithKeeper(STATE_VERSION);
  exited.driver.ok({ type: 'instance.status', updates: [{ id: 'default.web.0.2', state: 'exited', exitCode: 1, reportedBy: 'n1', reportedAt: exited.driver.time }] });
  const before = JSON.stringify(exited.driver.machine.instances());
  const refused = exited.driver.refused(exited.step('default.web.0.2'));
  assert.equal([refused.code, refused.field], ['conflict', 'retire[0].keeper']);
  assert.match(refused.message, 'keeper "default.web.0.2" no longer serves (exited, on node "n1" (up)); plan again');
  assert.is(JSON.stringify(exited.driver.machine.instances()), before, 'a refusal retires nothing');
  assert.is(exited.driver.ok(exited.step() as Command).ok, true, 'a retirement without a keeper (stop-first) is not checked');

  // Or its node was lost.
  const lost = slotWithKeeper(STATE_VERSION);
  lost.driver.ok({ type: 'node.status', id: 'n1', status: 'down' });
  assert.match(lost.driver.refused(lost.step('default.web.0.2')).message, 'on node "n1" (down)');

  const cases: [string, string, string][] = [
    ['default.web.9.9', 'conflict', 'is not one of its instances'],
    ['default.web.0.1', 'invalid-argument', 'is retired by the same step'],
  ];
  for (const [keeper, code, message] of cases) {
    const { driver, step } = slotWithKeeper(STATE_VERSION);
    const error = driver.refused(step(keeper));
    assert.equal([error.code, error.field], [code, 'retire[0].keeper'], keeper);
    assert.match(error.message, message);
  }
});

test('a keeper needs state version 4: below it the step is refused before the check, and the version gate says why', () => {
  assert.is(commandVersion(slotWithKeeper(CLUSTER_VERSION_FLOOR).step('default.web.0.2') as Command), KEEPERS_STATE_VERSION);
  assert.is(commandVersion(slotWithKeeper(CLUSTER_VERSION_FLOOR).step() as Command), 1, 'without keepers a step is what it always was');
  const { driver, step } = slotWithKeeper(CLUSTER_VERSION_FLOOR);
  const error = driver.refused(step('default.web.0.2'));
  assert.is(error.code, 'cluster-version-too-old');
  assert.is(driver.ok(step() as Command).ok, true);
});

test('a retirement on condition (unlessServing) applies while its instance does not serve, and is refused once it serves (plan again); it needs state version 5', () => {
  const unavailable = (clusterVersion: number, state: 'starting' | 'running'): { driver: Driver; step: Command } => {
    const { driver, rollout } = slotWithKeeper(clusterVersion);
    driver.ok({ type: 'instance.status', updates: [{ id: 'default.web.0.1', state, reportedBy: 'n1', reportedAt: driver.time }] });
    const step = { type: 'rollout.step', tenant: 'default', name: 'web', rollout, add: [], retire: [{ id: 'default.web.0.1', reason: 'version 1 does not serve', unlessServing: true }] } as Command;
    return { driver, step };
  };
  const starting = unavailable(STATE_VERSION, 'starting');
  assert.equal(starting.driver.ok(starting.step).value, { added: [], retired: ['default.web.0.1'] });

  // The race: planned while web.0.1 did not serve; its report of running applied first.
  const serving = unavailable(STATE_VERSION, 'running');
  const before = JSON.stringify(serving.driver.machine.instances());
  const refused = serving.driver.refused(serving.step);
  assert.equal([refused.code, refused.field], ['conflict', 'retire[0].unlessServing']);
  assert.match(refused.message, 'instance "default.web.0.1" was to be retired as unavailable, but it serves now (running on node "n1"); plan again');
  assert.is(JSON.stringify(serving.driver.machine.instances()), before, 'a refusal retires nothing');

  assert.is(commandVersion(starting.step), UNLESS_SERVING_STATE_VERSION);
  const old = unavailable(KEEPERS_STATE_VERSION, 'starting');
  assert.is(old.driver.refused(old.step).code, 'cluster-version-too-old');
  const malformed = unavailable(STATE_VERSION, 'starting');
  const wrong = malformed.driver.refused({ ...malformed.step, retire: [{ id: 'default.web.0.1', reason: 'x', unlessServing: 'yes' }] } as unknown as Command);
  assert.equal([wrong.code, wrong.field], ['invalid-argument', 'retire[0].unlessServing']);
});

test('instance.reschedule, instance.remove, instance.preempt, app.unplaceable: effects and refusals', () => {
  const { driver } = withRollout();
  driver.ok({ type: 'instance.reschedule', updates: [{ id: 'default.web.0.1', notBefore: 5_000, avoidNode: 'n1' }] });
  const moved = driver.machine.instance('default.web.0.1')!;
  assert.equal([moved.node, moved.attempt, moved.notBefore, moved.avoidNode, moved.status.state], [undefined, 1, 5_000, 'n1', 'pending']);
  assert.is(driver.refused({ type: 'instance.reschedule', updates: [{ id: 'nope', notBefore: 0 }] }).field, 'updates[0].id');
  assert.is(driver.refused({ type: 'instance.remove', ids: ['default.web.1.2'] }).field, 'ids[0]', 'an instance meant to run is not removed');
  assert.is(driver.refused({ type: 'instance.remove', ids: [] }).field, 'ids');
  const preempt = driver.refused({ type: 'instance.preempt', id: 'default.web.0.1', node: 'n1', evictions: [{ id: 'default.web.0.1', reason: 'x' }] });
  assert.is(preempt.field, 'evictions');
  const stale = driver.refused({ type: 'instance.preempt', id: 'default.web.0.1', node: 'n1', evictions: [{ id: 'default.web.9.9', reason: 'x' }] });
  assert.equal([stale.code, stale.field], ['conflict', 'evictions[0].id']);
  driver.ok({ type: 'app.unplaceable', updates: [{ tenant: 'default', name: 'web', count: 2, reasons: ['1 node: not enough memory'] }, { tenant: 'default', name: 'gone', count: 1, reasons: [] }] });
  assert.equal(driver.machine.app('default', 'web')!.unplaceable, { count: 2, reasons: ['1 node: not enough memory'], updatedAt: driver.time });
  driver.ok({ type: 'app.unplaceable', updates: [{ tenant: 'default', name: 'web', count: 0, reasons: [] }] });
  assert.is(driver.machine.app('default', 'web')!.unplaceable, undefined);
  assert.is(driver.refused({ type: 'app.unplaceable', updates: [{ tenant: 'default', name: 'web', count: -1, reasons: [] }] }).field, 'updates[0].count');
});

test('app.promote, app.abort and app.rebalance refusals', () => {
  const driver = new Driver();
  driver.ok({ type: 'app.deploy', spec: appSpec({ replicas: 1 }) });
  const promote = driver.refused({ type: 'app.promote', tenant: 'default', name: 'web' });
  assert.equal(promote, { code: 'conflict', message: 'cannot promote "web": no rollout is in progress (it was never updated)', field: 'name' });
  assert.is(driver.refused({ type: 'app.abort', tenant: 'default', name: 'web' }).field, 'name');
  assert.equal(driver.refused({ type: 'app.promote', tenant: 'default', name: 'ghost' }).code, 'not-found');
  assert.equal(driver.refused({ type: 'app.rebalance', name: 'web' }).field, 'tenant');
  assert.equal(driver.refused({ type: 'app.rebalance', tenant: 'default', name: 'ghost' }).field, 'name');
  assert.equal(driver.ok({ type: 'app.rebalance' }).value, { apps: 1 });
  assert.ok(driver.machine.app('default', 'web')!.rebalance);
});

test('a rolling update in progress cannot be promoted; abort restores the old version with a rollback rollout', () => {
  const { driver } = withRollout();
  assert.match(driver.refused({ type: 'app.promote', tenant: 'default', name: 'web' }).message, /only a paused one can be promoted/);
  const aborted = driver.ok({ type: 'app.abort', tenant: 'default', name: 'web' });
  const app = driver.machine.app('default', 'web')!;
  assert.is(app.version, 1);
  assert.equal([app.rollout!.kind, app.rollout!.fromVersion, app.rollout!.toVersion, app.rollout!.id], ['rollback', 2, 1, aborted.index]);
  assert.is(app.rollout!.message, 'aborted by token:admin; restoring version 1');
  const next = driver.ok({ type: 'app.deploy', spec: appSpec({ replicas: 2, image: 'nginx:3' }) });
  assert.is((next.value as { version: number }).version, 3, 'version numbers keep growing past a rolled-back one');
  assert.is(driver.machine.app('default', 'web')!.rollout!.fromVersion, 1);
});

test('a rollback that would take the tenant past its quota: abort is refused naming it, an automatic rollback pauses the rollout instead', () => {
  const driver = new Driver();
  const mib = 1024 * 1024;
  driver.ok(registerNode('n1'));
  driver.ok({ type: 'tenant.create', name: 'acme', quota: { memoryBytes: 1024 * mib } });
  const big = { limits: { memoryBytes: 512 * mib }, reservations: { memoryBytes: 256 * mib } };
  driver.ok({ type: 'app.deploy', spec: appSpec({ tenant: 'acme', replicas: 2, ...big }) });
  const small = { limits: { memoryBytes: 128 * mib }, reservations: { memoryBytes: 64 * mib } };
  const deployed = driver.ok({ type: 'app.deploy', spec: appSpec({ tenant: 'acme', replicas: 2, image: 'nginx:2', ...small }) });
  const rollout = (deployed.value as { rollout: number }).rollout;
  // Version 2 needs 128 MiB; version 1 needed 512 MiB, more than the lowered quota allows.
  driver.ok({ type: 'tenant.update', name: 'acme', quota: { memoryBytes: 300 * mib } });
  const abort = driver.refused({ type: 'app.abort', tenant: 'acme', name: 'web' });
  assert.equal([abort.code, abort.field], ['quota-exceeded', 'name']);
  assert.match(abort.message, /cannot abort the rollout of "web": restoring version 1: tenant "acme" would exceed its memory quota/);
  assert.is(driver.machine.app('acme', 'web')!.version, 2, 'nothing changed');

  driver.ok({ type: 'rollout.step', tenant: 'acme', name: 'web', rollout, add: [], retire: [], rollbackBecause: 'version 2 failed its health check' });
  const app = driver.machine.app('acme', 'web')!;
  assert.is(app.version, 2, 'not rolled back');
  assert.equal([app.rollout!.id, app.rollout!.state], [rollout, 'paused']);
  assert.match(app.rollout!.message, /^version 2 failed its health check; cannot roll back to version 1: tenant "acme" would exceed its memory quota .*; paused: raise the quota and abort, or deploy a version that works$/);

  driver.ok({ type: 'tenant.update', name: 'acme', quota: { memoryBytes: 2048 * mib } });
  driver.ok({ type: 'app.abort', tenant: 'acme', name: 'web' });
  assert.is(driver.machine.app('acme', 'web')!.version, 1, 'with room again, abort restores version 1');
});

test.run();
