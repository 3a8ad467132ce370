// An instance whose volume's node goes down waits for it, and `ps` and `app`
// say why: the real state machine and scheduler rounds, then the message
// both commands print for the instance (instance-text.ts) and the app's
// unplaceable record, which `app` prints in its summary.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { planRound, SCHEDULER_DEFAULTS } from '../../scheduler/round.js';
import { appSpec, Driver, GiB, registerNode } from '../../state/test/fixtures.js';
import { instanceMessage } from '../commands/instance-text.js';

/** Runs scheduler rounds, applying what each proposes, until one proposes nothing (at most `roundsMax`). */
function settle(driver: Driver, roundsMax = 5): void {
  for (let round = 0; round < roundsMax; round++) {
    const view = driver.machine.schedulerView();
    const plan = planRound({ ...view, now: driver.time, seed: view.appliedIndex >>> 0, options: SCHEDULER_DEFAULTS });
    if (plan.commands.length === 0) return;
    for (const command of plan.commands) driver.ok(command);
  }
}

test('the volume\'s node down: the instance is placed nowhere else, and ps and app say it waits for that node', () => {
  const driver = new Driver();
  for (const id of ['n1', 'n2', 'n3']) driver.ok(registerNode(id));
  driver.ok({ type: 'volume.create', tenant: 'default', name: 'data', sizeBytes: GiB });
  driver.ok({ type: 'volume.bind', tenant: 'default', name: 'data', node: 'n2' });
  driver.ok({ type: 'app.deploy', spec: appSpec({ name: 'db', replicas: 1, ports: [], volumes: [{ source: 'data', target: '/data', readOnly: false }] }) });
  settle(driver);
  const [placed] = driver.machine.instances({ app: 'db' });
  assert.is(placed?.node, 'n2', 'placed on its volume\'s node');
  driver.ok({ type: 'instance.status', updates: [{ id: placed!.id, version: 1, state: 'healthy', reportedBy: 'n2', reportedAt: driver.time }] });

  driver.ok({ type: 'node.status', id: 'n2', status: 'down' });
  // Past the grace a down node's instances get before they are placed again.
  driver.time += 3_600_000;
  settle(driver);
  const [waiting] = driver.machine.instances({ app: 'db' });
  assert.is(waiting?.node, undefined, 'not placed on another node');
  const record = driver.machine.app('default', 'db')?.unplaceable;
  const reasons = '2 nodes: constraint node.id == n2 (volume "data" lives there); 1 node: down';
  assert.is(record?.reasons.join('; '), reasons, '`app` prints these on its unplaceable line');
  assert.is(instanceMessage(waiting!, record), `unplaceable: ${reasons}`, '`ps` and `app` print this for the instance');

  driver.ok({ type: 'node.status', id: 'n2', status: 'up' });
  settle(driver);
  assert.is(driver.machine.instances({ app: 'db' })[0]?.node, 'n2', 'back on its volume\'s node once it is up');
  assert.is(driver.machine.app('default', 'db')?.unplaceable, undefined, 'and the reasons go');
});

test.run();
