// The cluster version (src/state/version.ts, apply-cluster.ts): raised by
// cluster.version only once every member advertises the new version, never
// lowered, kept in snapshots; a command newer than it is refused by check and
// at apply; envelopes are written in it.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ClusterStateMachine } from '../machine.js';
import { versionGateProblem } from '../apply-cluster.js';
import { emptyState } from '../state.js';
import { COMMANDS, commandVersion } from '../commands.js';
import { STATE_VERSION_LABEL, type Command, type CommandType } from '../types.js';
import { CLUSTER_VERSION_FLOOR, STATE_VERSION } from '../version.js';
import { Driver, registerNode } from './fixtures.js';

/** `registerNode(id)` whose record says its code applies `version` (no label: a build before the label). */
function register(id: string, version: number | undefined): Command {
  const command = registerNode(id) as Extract<Command, { type: 'node.register' }>;
  return { ...command, labels: version === undefined ? { zone: 'a' } : { zone: 'a', [STATE_VERSION_LABEL]: String(version) } };
}

test('a state that never applied cluster.version is at the floor, and writes its envelopes in it', () => {
  const machine = new ClusterStateMachine();
  assert.is(machine.clusterVersion, CLUSTER_VERSION_FLOOR);
  assert.is(machine.envelopeVersion({ type: 'kv.put', key: 'k', value: 'v' }), CLUSTER_VERSION_FLOOR);
  assert.is(machine.envelopeVersion({ type: 'cluster.version', version: STATE_VERSION }), STATE_VERSION, 'the raise is written in the version it raises to');
});

test('the cluster version is raised only once every member advertises it, naming the nodes behind', () => {
  const driver = new Driver();
  driver.ok(register('n1', STATE_VERSION));
  driver.ok(register('n2', undefined));
  driver.ok(register('n3', CLUSTER_VERSION_FLOOR));
  assert.is(driver.machine.clusterVersionToRaise(), undefined, 'n2 and n3 are behind');
  const refused = driver.refused({ type: 'cluster.version', version: STATE_VERSION });
  assert.is(refused.code, 'conflict');
  assert.is(refused.field, 'version');
  assert.match(refused.message, `cannot raise the cluster version to ${STATE_VERSION}: nodes "n2" (state version ${CLUSTER_VERSION_FLOOR}), "n3" (state version ${CLUSTER_VERSION_FLOOR}) run an older Hivemind`);
  assert.is(driver.machine.clusterVersion, CLUSTER_VERSION_FLOOR, 'a refusal changes nothing');

  // n2 upgraded (it registers again with the label); n3 left for good: a left node does not hold the cluster back.
  driver.ok(register('n2', STATE_VERSION));
  driver.ok({ type: 'node.remove', id: 'n3' });
  assert.is(driver.machine.clusterVersionToRaise(), STATE_VERSION);
  assert.is(driver.machine.check({ type: 'cluster.version', version: STATE_VERSION }).ok, true);
  const raised = driver.ok({ type: 'cluster.version', version: STATE_VERSION });
  assert.equal(raised.value, { version: STATE_VERSION, previous: CLUSTER_VERSION_FLOOR });
  assert.is(driver.machine.clusterVersion, STATE_VERSION);
  assert.is(driver.machine.clusterVersionToRaise(), undefined);
  const [latest] = driver.machine.history(1);
  assert.equal({ command: latest?.command, target: latest?.target, summary: latest?.summary }, { command: 'cluster.version', target: 'cluster', summary: `version ${CLUSTER_VERSION_FLOOR} → ${STATE_VERSION}` });
  assert.is(driver.machine.envelopeVersion({ type: 'kv.put', key: 'k', value: 'v' }), STATE_VERSION, 'entries are written in the new version from now on');

  // It never goes down, nor beyond what this code applies.
  assert.match(driver.refused({ type: 'cluster.version', version: CLUSTER_VERSION_FLOOR }).message, `the cluster is at version ${STATE_VERSION} already; it never goes down`);
  assert.match(driver.refused({ type: 'cluster.version', version: STATE_VERSION + 1 }).message, `applies state version ${STATE_VERSION} at most`);
});

test('a cluster with no member cannot be raised; a lone node raises it to its own version', () => {
  const driver = new Driver();
  assert.is(driver.machine.clusterVersionToRaise(), undefined);
  assert.match(driver.refused({ type: 'cluster.version', version: STATE_VERSION }).message, 'no node is registered yet');
  driver.ok(register('n1', STATE_VERSION));
  assert.is(driver.machine.clusterVersionToRaise(), STATE_VERSION);
});

test('the cluster version survives a snapshot, and a restored machine goes on the same way', () => {
  const driver = new Driver();
  driver.ok(register('n1', STATE_VERSION));
  const before = driver.machine.snapshot();
  driver.ok({ type: 'cluster.version', version: STATE_VERSION });
  const restored = ClusterStateMachine.restore(driver.machine.snapshot());
  assert.is(restored.clusterVersion, STATE_VERSION);
  assert.equal(restored.snapshot(), driver.machine.snapshot());
  assert.is(ClusterStateMachine.restore(before).clusterVersion, CLUSTER_VERSION_FLOOR, 'a snapshot from before the raise holds none');
});

test('a command newer than the cluster version is refused with the version it needs, by check and at apply', () => {
  const state = emptyState();
  const problem = versionGateProblem(state, 'kv.put', CLUSTER_VERSION_FLOOR + 1);
  assert.is(problem?.code, 'cluster-version-too-old');
  assert.match(problem?.message ?? '', `cannot apply kv.put: it needs cluster version ${CLUSTER_VERSION_FLOOR + 1}, and the cluster is at version ${CLUSTER_VERSION_FLOOR}`);
  assert.match(problem?.message ?? '', 'finish upgrading the nodes');
  assert.is(versionGateProblem(state, 'kv.put', CLUSTER_VERSION_FLOOR), undefined, 'a command of the cluster version applies');
  assert.is(versionGateProblem(state, 'cluster.version', STATE_VERSION), undefined, 'the raise is checked by its plan instead');
  state.clusterVersion = CLUSTER_VERSION_FLOOR + 1;
  assert.is(versionGateProblem(state, 'kv.put', CLUSTER_VERSION_FLOOR + 1), undefined, 'once raised, it applies');
});

test('every command module is of its own type, has proposers, and a version this code applies', () => {
  for (const [type, module] of Object.entries(COMMANDS) as [CommandType, (typeof COMMANDS)[CommandType]][]) {
    assert.is(module.type, type);
    assert.ok(module.proposers.length > 0, `${type} names who proposes it`);
    assert.ok(module.since >= 1 && module.since <= STATE_VERSION, `${type}: since ${module.since}`);
    if (module.memberSelf !== undefined) assert.ok(module.proposers.includes('member'), `${type}: memberSelf without member`);
  }
  assert.is(commandVersion({ type: 'kv.put', key: 'k', value: 'v' }), 1);
  assert.is(commandVersion({ type: 'cluster.version', version: 7 }), 7);
});

test.run();
