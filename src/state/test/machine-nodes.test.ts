import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { hasLeftMembership } from '../apply-nodes.js';
import { ClusterStateMachine } from '../machine.js';
import { appSpec, Driver, registerNode } from './fixtures.js';

test('node.register creates an up node; registering again updates it and keeps join index and role', () => {
  const driver = new Driver();
  driver.ok(registerNode('n1'));
  const first = driver.machine.node('n1');
  assert.equal(first, {
    id: 'n1',
    addresses: { api: 'n1:7070', peer: 'n1:7071', gossip: 'n1:7072' },
    labels: { zone: 'a' },
    resources: { cpuMillis: 4000, memoryBytes: 8 * 1024 ** 3 },
    status: 'up',
    role: 'none',
    joinedIndex: 1,
    lastSeenAt: driver.time,
    statusSince: driver.time,
    updatedIndex: 1,
  });
  driver.ok({ type: 'node.role', id: 'n1', role: 'voter' });
  driver.ok({ type: 'node.status', id: 'n1', status: 'down' });
  assert.is(driver.machine.node('n1')?.statusSince, driver.time, 'the reschedule grace counts from the status change');
  driver.ok({ type: 'node.register', id: 'n1', addresses: { api: 'x:1', peer: 'x:2', gossip: 'x:3' }, labels: {}, resources: {} });
  const again = driver.machine.node('n1');
  assert.is(again?.status, 'up');
  assert.is(again?.statusSince, driver.time, 'back up: a new status, a new since');
  assert.is(again?.role, 'voter');
  assert.is(again?.joinedIndex, 1);
  assert.is(again?.addresses.api, 'x:1');
  assert.equal(again?.labels, {});
});

test('node.status, node.role, node.heartbeat, node.remove and their refusals', () => {
  const driver = new Driver();
  for (const command of [
    { type: 'node.status', id: 'n9', status: 'up' },
    { type: 'node.role', id: 'n9', role: 'voter' },
    { type: 'node.heartbeat', id: 'n9' },
    { type: 'node.remove', id: 'n9' },
  ]) {
    const error = driver.refused(command);
    assert.is(error.code, 'not-found');
    assert.is(error.field, 'id');
    assert.ok(error.message.endsWith('node "n9" is not registered'), error.message);
  }
  driver.ok(registerNode('n1'));
  driver.ok({ type: 'node.status', id: 'n1', status: 'suspect' });
  assert.is(driver.machine.node('n1')?.status, 'suspect');
  driver.ok({ type: 'node.role', id: 'n1', role: 'learner' });
  assert.is(driver.machine.node('n1')?.role, 'learner');
  driver.ok({ type: 'node.heartbeat', id: 'n1' });
  assert.is(driver.machine.node('n1')?.lastSeenAt, driver.time);
  driver.ok({ type: 'node.remove', id: 'n1' });
  assert.is(driver.machine.node('n1')?.status, 'left');
  const heartbeat = driver.refused({ type: 'node.heartbeat', id: 'n1' });
  assert.equal(heartbeat, {
    code: 'conflict',
    message: 'cannot record a heartbeat of node "n1": node "n1" has left the cluster; it must register again',
    field: 'id',
  });
  assert.is(driver.refused({ type: 'node.status', id: 'n1', status: 'up' }).code, 'conflict');
  driver.ok({ type: 'node.remove', id: 'n1' });
  driver.ok(registerNode('n1'));
  assert.is(driver.machine.node('n1')?.status, 'up');
});

test('a node that leaves and registers again begins a new membership; the earlier one\'s left never ends it', () => {
  const driver = new Driver();
  driver.ok(registerNode('n1'));
  driver.ok(registerNode('n3'));
  const firstJoin = driver.machine.node('n3')!.joinedIndex;
  assert.is(firstJoin, 2);
  driver.ok({ type: 'node.remove', id: 'n3', joinedIndex: firstJoin });
  // What a node joining again can restore first: a snapshot taken between its leave and its new registration.
  const beforeRejoin = ClusterStateMachine.restore(driver.machine.snapshot());
  const rejoined = driver.ok(registerNode('n3'));
  const record = driver.machine.node('n3')!;
  assert.is(record.status, 'up');
  assert.is(record.joinedIndex, rejoined.index, 'registering after a leave begins a new membership');
  assert.is(driver.machine.history(1)[0]?.summary, 'registered again after leaving (api n3:7070)');
  // The rejoined node holds the new joinedIndex: the restored record's left is of the earlier membership.
  assert.is(beforeRejoin.node('n3')?.status, 'left');
  assert.not.ok(hasLeftMembership(beforeRejoin.node('n3'), record.joinedIndex), 'the earlier membership\'s leave is not this one\'s');
  assert.ok(hasLeftMembership(beforeRejoin.node('n3'), firstJoin), 'it is the earlier one\'s');
  assert.ok(hasLeftMembership(beforeRejoin.node('n3'), 0), 'a node that does not know its index takes any leave');
  assert.not.ok(hasLeftMembership(record, record.joinedIndex));
  assert.not.ok(hasLeftMembership(undefined, 0));
  // A leave asked before the node joined again, applied after (a late apply), is refused: the new membership goes on.
  const late = driver.refused({ type: 'node.remove', id: 'n3', joinedIndex: firstJoin });
  assert.is(late.code, 'conflict');
  assert.is(late.field, 'joinedIndex');
  assert.ok(late.message.includes(`began at index ${firstJoin}`), late.message);
  assert.is(driver.machine.node('n3')?.status, 'up');
  // Re-registering a member (new addresses) keeps its membership; leaving ends it, and the node sees that leave.
  driver.ok({ type: 'node.register', id: 'n3', addresses: { api: 'y:1', peer: 'y:2', gossip: 'y:3' }, labels: {}, resources: {} });
  assert.is(driver.machine.node('n3')?.joinedIndex, record.joinedIndex);
  driver.ok({ type: 'node.remove', id: 'n3', joinedIndex: record.joinedIndex });
  assert.ok(hasLeftMembership(driver.machine.node('n3'), record.joinedIndex));
  assert.is(driver.refused({ type: 'node.remove', id: 'n3', joinedIndex: -1 }).code, 'invalid-argument');
});

test('instance.place: node must exist and be up, instance must exist; all or nothing', () => {
  const driver = new Driver();
  driver.ok(registerNode('n1'));
  driver.ok(registerNode('n2'));
  driver.ok({ type: 'app.deploy', spec: appSpec({ replicas: 2 }) });
  const unknownInstance = driver.refused({ type: 'instance.place', placements: [{ id: 'default.web.0.1', node: 'n1' }, { id: 'default.web.7.9', node: 'n1' }] });
  assert.equal(unknownInstance, {
    code: 'not-found',
    message: 'cannot place instance "default.web.7.9": it does not exist (its app may have been scaled down or deleted)',
    field: 'placements[1].id',
  });
  assert.is(driver.machine.instance('default.web.0.1')?.node, undefined, 'nothing applied');
  const unknownNode = driver.refused({ type: 'instance.place', placements: [{ id: 'default.web.0.1', node: 'n5' }] });
  assert.equal(unknownNode, { code: 'not-found', message: 'cannot place instance "default.web.0.1": node "n5" is not registered', field: 'placements[0].node' });
  driver.ok({ type: 'node.status', id: 'n2', status: 'down' });
  const down = driver.refused({ type: 'instance.place', placements: [{ id: 'default.web.1.2', node: 'n2' }] });
  assert.equal(down, { code: 'conflict', message: 'cannot place instance "default.web.1.2": node "n2" is down, not up; choose another node', field: 'placements[0].node' });
  const placed = driver.ok({
    type: 'instance.place',
    placements: [
      { id: 'default.web.0.1', node: 'n1' },
      { id: 'default.web.1.2', node: 'n1' },
    ],
  });
  assert.equal(placed.value, { placed: 2 });
  assert.equal(driver.machine.instances({ node: 'n1' }).map((instance) => instance.id), ['default.web.0.1', 'default.web.1.2']);
  driver.ok({ type: 'instance.place', placements: [{ id: 'default.web.1.2', node: null }] });
  assert.is(driver.machine.instance('default.web.1.2')?.node, undefined);
  assert.not.ok('node' in (driver.machine.instance('default.web.1.2') ?? {}), 'unplacing removes the field');
});

test('instance.place: an instance on a node that is up is not placed elsewhere (a plan made while the node was down is stale)', () => {
  const driver = new Driver();
  driver.ok(registerNode('n1'));
  driver.ok(registerNode('n2'));
  driver.ok({ type: 'app.deploy', spec: appSpec({ replicas: 1 }) });
  driver.ok({ type: 'instance.place', placements: [{ id: 'default.web.0.1', node: 'n1' }] });
  driver.ok({ type: 'node.status', id: 'n1', status: 'down' });
  // Planned now (n1 down past the grace), applied after n1 came back:
  driver.ok({ type: 'node.status', id: 'n1', status: 'up' });
  const stale = driver.refused({ type: 'instance.place', placements: [{ id: 'default.web.0.1', node: 'n2' }] });
  assert.equal(stale, { code: 'conflict', message: 'cannot place instance "default.web.0.1": it is placed on node "n1", which is up; plan again', field: 'placements[0].node' });
  assert.is(driver.machine.instance('default.web.0.1')?.node, 'n1');
  driver.ok({ type: 'instance.place', placements: [{ id: 'default.web.0.1', node: 'n1' }] });
  driver.ok({ type: 'node.status', id: 'n1', status: 'down' });
  driver.ok({ type: 'instance.place', placements: [{ id: 'default.web.0.1', node: 'n2' }] });
  assert.is(driver.machine.instance('default.web.0.1')?.node, 'n2', 'an instance on a node that is down moves');
});

test('instance.status records reports and ignores unknown instances and stale versions', () => {
  const driver = new Driver();
  driver.ok(registerNode('n1'));
  driver.ok({ type: 'app.deploy', spec: appSpec({ replicas: 1 }) });
  driver.ok({ type: 'instance.place', placements: [{ id: 'default.web.0.1', node: 'n1' }] });
  const result = driver.ok({
    type: 'instance.status',
    updates: [
      { id: 'default.web.0.1', state: 'exited', exitCode: 137, message: 'killed', reportedBy: 'n1', reportedAt: 42, version: 1 },
      { id: 'default.gone.0', state: 'running', reportedBy: 'n1', reportedAt: 42 },
    ],
  });
  assert.equal(result.value, { applied: 1, ignoredCount: 1, ignored: ['default.gone.0'] });
  assert.equal(driver.machine.instance('default.web.0.1')?.status, {
    state: 'exited',
    exitCode: 137,
    message: 'killed',
    reportedBy: 'n1',
    reportedAt: 42,
    updatedIndex: driver.index,
    since: driver.time,
  });
  // An instance keeps its version for life (a new version gets new instances), so a report naming another version is stale.
  const stale = driver.ok({ type: 'instance.status', updates: [{ id: 'default.web.0.1', state: 'running', reportedBy: 'n1', reportedAt: 50, version: 2 }] });
  assert.equal(stale.value, { applied: 0, ignoredCount: 1, ignored: ['default.web.0.1'] });
  assert.is(driver.machine.instance('default.web.0.1')?.status.state, 'exited');
  assert.is(driver.machine.instance('default.web.0.1')?.node, 'n1');
});

test('instance.status records the endpoint a report carries, and a report without one clears it', () => {
  const driver = new Driver();
  driver.ok(registerNode('n1'));
  driver.ok({ type: 'app.deploy', spec: appSpec({ replicas: 1 }) });
  driver.ok({ type: 'instance.place', placements: [{ id: 'default.web.0.1', node: 'n1' }] });
  const endpoint = { address: '10.0.0.5', ports: [{ target: 80, port: 80, protocol: 'tcp' as const }] };
  driver.ok({ type: 'instance.status', updates: [{ id: 'default.web.0.1', state: 'running', reportedBy: 'n1', reportedAt: 1, version: 1, endpoint }] });
  assert.equal(driver.machine.instance('default.web.0.1')?.status.endpoint, endpoint);
  driver.ok({ type: 'instance.status', updates: [{ id: 'default.web.0.1', state: 'exited', exitCode: 1, reportedBy: 'n1', reportedAt: 2, version: 1 }] });
  assert.not.ok('endpoint' in (driver.machine.instance('default.web.0.1')?.status ?? {}), 'an exited instance is reachable nowhere');
});

test('heartbeats and status reports stay out of history; placements are in it', () => {
  const driver = new Driver();
  driver.ok(registerNode('n1'));
  driver.ok({ type: 'app.deploy', spec: appSpec({ replicas: 1 }) });
  driver.ok({ type: 'node.heartbeat', id: 'n1' });
  driver.ok({ type: 'instance.place', placements: [{ id: 'default.web.0.1', node: 'n1' }] });
  driver.ok({ type: 'instance.status', updates: [{ id: 'default.web.0.1', state: 'running', reportedBy: 'n1', reportedAt: 1 }] });
  assert.equal(driver.machine.history().map((entry) => [entry.index, entry.command, entry.target, entry.summary]), [
    [4, 'instance.place', 'instances', 'placed default.web.0.1 on n1'],
    [2, 'app.deploy', 'app default/web', 'deployed version 1 (image nginx:1.25, 1 replica)'],
    [1, 'node.register', 'node n1', 'registered (api n1:7070)'],
  ]);
});

test('nodeDirectory: shared and frozen, without lastSeenAt; nodesRevision moves on with records, not with heartbeats', () => {
  const driver = new Driver();
  const start = driver.machine.nodesRevision;
  driver.ok(registerNode('n1'));
  driver.ok(registerNode('n2'));
  const revision = driver.machine.nodesRevision;
  assert.ok(revision > start);
  const directory = driver.machine.nodeDirectory();
  assert.equal(directory.map((entry) => entry.id), ['n1', 'n2']);
  assert.ok(Object.isFrozen(directory) && Object.isFrozen(directory[0]) && Object.isFrozen(directory[0]!.addresses));
  assert.not.ok('lastSeenAt' in directory[0]!);
  driver.ok({ type: 'node.heartbeat', id: 'n1' });
  assert.is(driver.machine.nodesRevision, revision, 'a heartbeat changes no directory entry');
  assert.is(driver.machine.nodeDirectory(), directory, 'the same copy while nothing changed');
  driver.ok({ type: 'node.status', id: 'n2', status: 'down' });
  assert.ok(driver.machine.nodesRevision > revision);
  assert.is(driver.machine.nodeDirectory()[1]!.status, 'down');
  assert.is(directory[1]!.status, 'up', 'an earlier copy never changes');
  const refused = driver.machine.nodesRevision;
  assert.not.ok(driver.run({ type: 'node.status', id: 'n9', status: 'down' }).ok);
  assert.is(driver.machine.nodesRevision, refused, 'a refused command changes nothing');
  driver.machine.restore(driver.machine.snapshot());
  assert.ok(driver.machine.nodesRevision > refused, 'a restore may change anything');
});

test.run();
