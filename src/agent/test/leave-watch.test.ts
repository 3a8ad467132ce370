// The leave watch: a node notices from its own record that its membership ended, on virtual time.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DataDir } from '../../node/data-dir.js';
import { ManualClock } from '../../node/manual-clock.js';
import { Driver, registerNode } from '../../state/test/fixtures.js';
import { LEAVE_STOP_DELAY_MS, LeaveWatch } from '../leaving.js';
import { NodeMembership } from '../node-membership.js';

function setUp(joinedIndex?: number) {
  const path = mkdtempSync(join(tmpdir(), 'hivemind-leave-watch-'));
  const dataDir = new DataDir(path);
  dataDir.ensure();
  const membership = new NodeMembership(dataDir);
  membership.adopt({ format: 1, name: 'n1', origin: 'join', createdAt: 'then', peers: {}, ...(joinedIndex === undefined ? {} : { joinedIndex }) }, undefined);
  const driver = new Driver();
  const clock = new ManualClock();
  const events: string[] = [];
  const watch = new LeaveWatch({
    nodeId: 'n1',
    machine: driver.machine,
    membership,
    clock,
    log: (line) => events.push(`log: ${line}`),
    onLeft: () => events.push(`left at ${clock.now()}`),
    stop: () => events.push(`stop at ${clock.now()}`),
  });
  const applied = (commandType: string) => watch.onStateEvent({ type: 'applied', index: driver.index, commandType, result: { ok: true, index: driver.index } });
  return { dataDir, membership, driver, clock, events, watch, applied, cleanUp: () => rmSync(path, { recursive: true, force: true }) };
}

test('its own node.remove ends the node: node.json marked left, stopped a moment later', async () => {
  const world = setUp();
  try {
    world.watch.arm();
    world.driver.ok(registerNode('n1'));
    world.applied('node.register');
    await world.clock.advance(10);
    assert.equal(world.events, []);
    world.driver.ok({ type: 'node.remove', id: 'n1' });
    world.applied('node.remove');
    await world.clock.advance(0);
    assert.is(world.watch.left, true);
    assert.is(world.dataDir.readIdentity()?.left, true);
    assert.equal(world.events.slice(1), ['left at 10']);
    await world.clock.advance(LEAVE_STOP_DELAY_MS);
    assert.equal(world.events.slice(2), [`stop at ${10 + LEAVE_STOP_DELAY_MS}`]);
  } finally {
    world.cleanUp();
  }
});

test('nothing is checked before the watch is armed (a joiner without its joined index yet), and heartbeats are not looked at', async () => {
  const world = setUp();
  try {
    world.driver.ok(registerNode('n1'));
    world.driver.ok({ type: 'node.remove', id: 'n1' });
    world.applied('node.remove');
    await world.clock.advance(10);
    assert.is(world.watch.left, false, 'not armed');
    world.watch.arm();
    await world.clock.advance(0);
    assert.is(world.watch.left, true, 'arming checks at once');
  } finally {
    world.cleanUp();
  }
  const quiet = setUp();
  try {
    quiet.watch.arm();
    quiet.driver.ok(registerNode('n1'));
    await quiet.clock.advance(10);
    quiet.driver.ok({ type: 'node.remove', id: 'n1' });
    quiet.applied('node.heartbeat');
    await quiet.clock.advance(10);
    assert.is(quiet.watch.left, false, 'a heartbeat does not start a check');
    quiet.applied('node.remove');
    await quiet.clock.advance(0);
    assert.is(quiet.watch.left, true);
  } finally {
    quiet.cleanUp();
  }
});

test('an earlier membership\'s left record is not this one\'s', async () => {
  const world = setUp(1_000);
  try {
    world.driver.ok(registerNode('n1'));
    world.driver.ok({ type: 'node.remove', id: 'n1' });
    world.watch.arm();
    world.applied('node.remove');
    await world.clock.advance(10);
    assert.is(world.watch.left, false);
    assert.is(world.dataDir.readIdentity(), undefined, 'node.json untouched');
  } finally {
    world.cleanUp();
  }
});

test.run();
