// Why an instance does not run: instance.reschedule's `reason` (state version 4) kept in `lastFailure`
// while the instance waits and is placed again, cleared once it runs; refused before the cluster applies version 4.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { STATE_VERSION_LABEL, type Command } from '../types.js';
import { appSpec, Driver, registerNode } from './fixtures.js';

/** A driver with nodes n1 and n2 at state version 4 and the cluster raised to it, and web's instance 0 placed on n1. */
function atVersion4(): Driver {
  const driver = new Driver();
  for (const id of ['n1', 'n2']) {
    const command = registerNode(id) as Extract<Command, { type: 'node.register' }>;
    driver.ok({ ...command, labels: { ...command.labels, [STATE_VERSION_LABEL]: '4' } });
  }
  driver.ok({ type: 'cluster.version', version: 4 });
  driver.ok({ type: 'app.deploy', spec: appSpec({ replicas: 1 }) });
  driver.ok({ type: 'instance.place', placements: [{ id: 'default.web.0.1', node: 'n1' }] });
  return driver;
}

const cause = 'cannot start: command "/srv/app" is not found or is not executable';

test('a rescheduled instance keeps the cause of its failure while it waits and is placed again, and loses it once it runs', () => {
  const driver = atVersion4();
  driver.ok({ type: 'instance.status', updates: [{ id: 'default.web.0.1', version: 1, state: 'failed', message: cause, reportedBy: 'n1', reportedAt: driver.time }] });
  driver.ok({ type: 'instance.reschedule', updates: [{ id: 'default.web.0.1', notBefore: 0, avoidNode: 'n1', reason: cause }] });
  let instance = driver.machine.instance('default.web.0.1')!;
  assert.equal(instance.lastFailure, { message: cause, node: 'n1' });
  assert.is(instance.status.message, `rescheduled after failing on n1: ${cause}`);
  driver.ok({ type: 'instance.place', placements: [{ id: 'default.web.0.1', node: 'n2' }] });
  instance = driver.machine.instance('default.web.0.1')!;
  assert.equal([instance.status.state, instance.lastFailure?.message], ['pending', cause], 'placed again: the cause stays');
  driver.ok({ type: 'instance.status', updates: [{ id: 'default.web.0.1', version: 1, state: 'starting', reportedBy: 'n2', reportedAt: driver.time }] });
  assert.is(driver.machine.instance('default.web.0.1')!.lastFailure?.message, cause, 'starting is not running yet');
  driver.ok({ type: 'instance.status', updates: [{ id: 'default.web.0.1', version: 1, state: 'running', reportedBy: 'n2', reportedAt: driver.time }] });
  assert.is(driver.machine.instance('default.web.0.1')!.lastFailure, undefined, 'running: cleared');
});

test('a reason is refused before the cluster applies state version 4, and when it is not one line of text', () => {
  const driver = new Driver();
  driver.ok(registerNode('n1'));
  driver.ok({ type: 'app.deploy', spec: appSpec({ replicas: 1 }) });
  const early = driver.refused({ type: 'instance.reschedule', updates: [{ id: 'default.web.0.1', notBefore: 0, reason: cause }] });
  assert.is(early.code, 'cluster-version-too-old');
  driver.ok({ type: 'instance.reschedule', updates: [{ id: 'default.web.0.1', notBefore: 0 }] });
  assert.is(driver.machine.instance('default.web.0.1')!.status.message, 'rescheduled after failing', 'without a reason: as before');
  const later = atVersion4();
  for (const reason of ['', 'two\nlines', 'x'.repeat(1025)]) {
    assert.is(later.refused({ type: 'instance.reschedule', updates: [{ id: 'default.web.0.1', notBefore: 0, reason }] }).field, 'updates[0].reason', JSON.stringify(reason.slice(0, 20)));
  }
});

test.run();
