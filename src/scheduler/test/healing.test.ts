// Self-healing, rebalance, unplaceable reasons and preemption, over the real state machine.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { backoffMs, failureCause, HEALING_DEFAULTS, mayPlaceNow, planFailedReschedules } from '../healing.js';
import { FAILURE_MESSAGE_CHARS_MAX, type Instance } from '../../state/types.js';
import { simSpec, SimWorld } from '../sim.js';
import { HEALTHCHECK, runningOf, worldWithWeb } from './world.js';
import { node } from './fixtures.js';

const GiB = 1024 ** 3;

test('a down node keeps its instances for the grace, then they move; a node back within the grace keeps them', () => {
  const world = worldWithWeb({ nodes: 3, replicas: 3, scheduler: { rescheduleGraceMs: 10_000 } });
  const onN1 = () => world.machine.instances({ app: 'web', node: 'n1' }).filter((instance) => instance.desired === 'running');
  assert.is(onN1().length, 1);
  world.ok({ type: 'node.status', id: 'n1', status: 'down' });
  for (let count = 0; count < 5; count++) world.step();
  assert.is(onN1().length, 1, 'within the grace: still on n1');
  world.ok({ type: 'node.status', id: 'n1', status: 'up' });
  for (let count = 0; count < 15; count++) world.step();
  assert.is(onN1().length, 1, 'came back within the grace: kept');

  world.ok({ type: 'node.status', id: 'n1', status: 'down' });
  const downAt = world.now;
  world.runUntil(() => onN1().length === 0, 30);
  assert.ok(world.now - downAt >= 10_000, 'moved only after the grace');
  assert.ok(world.runUntil(() => world.ready('default', 'web').length === 3, 10), 'back to 3 ready on n2 and n3');
  world.ok({ type: 'node.status', id: 'n1', status: 'up' });
  world.step();
  assert.is(onN1().length, 0, 'the returning node finds its instance moved (its executor stops the stale copy)');
});

test('an instance on a node that left is placed again at once', () => {
  const world = worldWithWeb({ nodes: 2, replicas: 2, scheduler: { rescheduleGraceMs: 60_000 } });
  world.ok({ type: 'node.remove', id: 'n1' });
  world.step();
  assert.equal(runningOf(world), ['v1@n2', 'v1@n2']);
});

test('unplaceable instances on a lost node are unplaced, with reasons per node class', () => {
  const world = worldWithWeb({ nodes: 2, replicas: 2, spec: { hivemind: { maxPerNode: 1 } }, scheduler: { rescheduleGraceMs: 1_000 } });
  world.ok({ type: 'node.status', id: 'n1', status: 'down' });
  world.step();
  world.step();
  const stranded = world.machine.instances({ app: 'web' }).filter((instance) => instance.node === undefined);
  assert.is(stranded.length, 1, 'no instance stays on the down node');
  assert.equal(world.machine.app('default', 'web')!.unplaceable?.reasons, ['1 node: already 1 instance of "web" (max 1 per node)', '1 node: down']);
  world.ok({ type: 'node.status', id: 'n1', status: 'up' });
  world.runUntil(() => world.ready('default', 'web').length === 2, 10);
  assert.is(world.machine.app('default', 'web')!.unplaceable, undefined, 'cleared once placed');
});

test('unplaceable reasons: not enough memory, constraints, counted per node', () => {
  const world = new SimWorld();
  for (const [id, zone] of [['n1', 'a'], ['n2', 'a'], ['n3', 'a'], ['n4', 'b']] as const) world.addNode(id, { labels: { zone } });
  world.ok({ type: 'app.deploy', spec: simSpec('big', { replicas: 1, reservations: { memoryBytes: 16 * GiB }, constraints: ['node.labels.zone == a'] }) });
  world.step();
  const record = world.machine.app('default', 'big')!.unplaceable;
  assert.is(record?.count, 1);
  assert.equal(record?.reasons, ['3 nodes: not enough memory (needs 16 GiB, 8 GiB free at most)', '1 node: constraint node.labels.zone == a']);
});

test('a failed instance is rescheduled elsewhere after a backoff that doubles, recorded in the instance', () => {
  const world = new SimWorld({ scheduler: { backoffBaseMs: 2_000 } });
  world.addNode('n1');
  world.addNode('n2');
  world.behaviour = (instance) => (instance.node === 'n1' ? 'failed' : 'running');
  world.ok({ type: 'app.deploy', spec: simSpec('web', { replicas: 2, hivemind: { maxPerNode: 2 } }) });
  world.runUntil(() => world.machine.instances({ app: 'web' }).some((instance) => instance.attempt === 1), 10);
  const moved = world.machine.instances({ app: 'web' }).find((instance) => instance.attempt === 1)!;
  assert.is(moved.avoidNode, 'n1');
  assert.is(moved.node, undefined, 'unplaced while it backs off');
  assert.is(moved.notBefore, world.now + 2_000 - 0 * 1000);
  assert.ok(world.runUntil(() => world.ready('default', 'web').length === 2, 10));
  assert.equal(runningOf(world), ['v1@n2', 'v1@n2'], 'placed on the other node');
  assert.is(backoffMs(0, HEALING_DEFAULTS), 1_000);
  assert.is(backoffMs(3, HEALING_DEFAULTS), 8_000);
  assert.is(backoffMs(40, HEALING_DEFAULTS), HEALING_DEFAULTS.backoffMaxMs);
});

test('mayPlaceNow: backoff and grace decide, from the state and the given time only', () => {
  const nodes = new Map([
    ['down', node('down', { status: 'down', statusSince: 1_000 })],
    ['up', node('up')],
  ]);
  const base = { id: 'x', tenant: 'default', app: 'web', version: 1, slot: 0, desired: 'running' as const, status: { state: 'running' as const, reportedAt: 0, updatedIndex: 1 }, createdIndex: 1 };
  const options = { ...HEALING_DEFAULTS, rescheduleGraceMs: 5_000 };
  assert.is(mayPlaceNow({ ...base, node: 'down' }, nodes, 5_999, options), false);
  assert.is(mayPlaceNow({ ...base, node: 'down' }, nodes, 6_000, options), true);
  assert.is(mayPlaceNow({ ...base, notBefore: 10 }, nodes, 9, options), false);
  assert.is(mayPlaceNow({ ...base, notBefore: 10 }, nodes, 10, options), true);
  assert.is(mayPlaceNow({ ...base, node: 'gone' }, nodes, 0, options), true);
});

test('rebalance evens out nodes after new ones join, one move at a time, never below the ready count', () => {
  const world = worldWithWeb({ nodes: 2, replicas: 6 });
  world.addNode('n3');
  world.addNode('n4');
  world.ok({ type: 'app.rebalance', tenant: 'default', name: 'web' });
  let copiesMax = 0;
  for (let count = 0; count < 60 && world.machine.app('default', 'web')!.rebalance !== undefined; count++) {
    world.step();
    assert.ok(world.ready('default', 'web').length >= 6, 'never below 6 ready');
    const running = world.machine.instances({ app: 'web' }).filter((instance) => instance.desired === 'running').length;
    copiesMax = Math.max(copiesMax, running - 6);
  }
  assert.is(world.machine.app('default', 'web')!.rebalance, undefined, 'finished');
  assert.is(copiesMax, 1, 'one move at a time');
  const perNode = new Map<string, number>();
  for (const text of runningOf(world)) perNode.set(text.split('@')[1]!, (perNode.get(text.split('@')[1]!) ?? 0) + 1);
  const counts = [...perNode.values()].sort();
  assert.ok(Math.max(...counts) - Math.min(...counts) <= 1 && perNode.size === 4, `even: ${JSON.stringify([...perNode])}`);
  assert.ok(world.machine.history().some((entry) => /rebalanced \(\d moves\)/.test(entry.summary)));
});

test('rebalance: a copy that never gets ready is given up after the progress deadline, the original keeps running, the history says so', () => {
  const world = worldWithWeb({ nodes: 2, replicas: 4, spec: { healthcheck: HEALTHCHECK }, scheduler: { progressDeadlineMs: 20_000 } });
  const before = new Set(world.ready('default', 'web').map((instance) => instance.id));
  world.addNode('n3');
  // From now on, instances that start stay starting: never healthy, never failed.
  world.behaviour = () => 'starting';
  world.ok({ type: 'app.rebalance', tenant: 'default', name: 'web' });
  let copy: string | undefined;
  let steps = 0;
  for (; steps < 60 && world.machine.app('default', 'web')!.rebalance !== undefined; steps++) {
    world.step();
    assert.equal(new Set(world.ready('default', 'web').map((instance) => instance.id)), before, 'the ready instances stay, all of them');
    copy ??= world.machine.instances({ app: 'web' }).find((instance) => !before.has(instance.id))?.id;
  }
  assert.ok(copy !== undefined, 'a move started');
  assert.is(world.machine.app('default', 'web')!.rebalance, undefined, 'the rebalance ended');
  assert.ok(steps >= 20 && steps < 30, `given up at the deadline, not before and not much after (${steps} s)`);
  const copyRecord = world.machine.instance(copy);
  assert.is(copyRecord?.desired ?? 'stopped', 'stopped', 'the copy is retired');
  const entry = world.machine.history().find((candidate) => candidate.summary.startsWith('rebalance ended'));
  assert.match(entry?.summary ?? '', new RegExp(`^rebalance ended \\(1 move\\); gave up the move of ${copy.replaceAll('.', '\\.')}: the copy was not ready within the progress deadline \\(20 s; instance \\S+ starting\\)$`));
});

test('preemption: a higher-priority app takes the room of a lower one, and the history says so', () => {
  const world = new SimWorld();
  world.addNode('n1', { memoryBytes: 1 * GiB });
  world.ok({ type: 'app.deploy', spec: simSpec('batch', { replicas: 2, reservations: { memoryBytes: 512 * 1024 ** 2 }, hivemind: { priority: -10 } }) });
  world.runUntil(() => world.ready('default', 'batch').length === 2);
  world.ok({ type: 'app.deploy', spec: simSpec('web', { replicas: 1, reservations: { memoryBytes: 512 * 1024 ** 2 }, hivemind: { priority: 10 } }) });
  assert.ok(world.runUntil(() => world.ready('default', 'web').length === 1, 10));
  const entry = world.machine.history().find((candidate) => candidate.command === 'instance.preempt');
  assert.match(entry?.summary ?? '', /placed on n1 by preemption: preempted on node "n1" to make room for default\.web\.0\.1 of default\/web \(priority 10 over -10\)/);
  assert.is(world.ready('default', 'batch').length, 1);
});

test('a failed instance is rescheduled with its executor\'s message as the cause once the cluster applies version 4', () => {
  const failed: Instance = {
    id: 'default.web.0.1', tenant: 'default', app: 'web', version: 1, slot: 0, node: 'n1', desired: 'running', createdIndex: 1,
    status: { state: 'failed', message: 'cannot start: command "/srv/app" is not found\nmore', reportedAt: 0, updatedIndex: 2 },
  };
  const nodes = new Map([['n1', node('n1')]]);
  const base = { nodes, now: 1_000, options: HEALING_DEFAULTS, skip: () => false, max: 10 };
  assert.equal(planFailedReschedules([failed], { ...base, reasons: true })?.updates, [{ id: failed.id, notBefore: 2_000, avoidNode: 'n1', reason: 'cannot start: command "/srv/app" is not found' }]);
  assert.equal(planFailedReschedules([failed], { ...base, reasons: false })?.updates, [{ id: failed.id, notBefore: 2_000, avoidNode: 'n1' }], 'an older cluster gets no reason');
  const silent = { ...failed, status: { ...failed.status, message: ' ' } };
  assert.equal(planFailedReschedules([silent], { ...base, reasons: true })?.updates, [{ id: failed.id, notBefore: 2_000, avoidNode: 'n1' }], 'no words: no reason');
});

test('a failure\'s cause is one line of printable text, cut with an ellipsis, never through a surrogate pair', () => {
  assert.is(failureCause(undefined), undefined);
  assert.is(failureCause('\n'), undefined);
  assert.is(failureCause('a\tb\u0007c'), 'a b c');
  const long = failureCause('x'.repeat(FAILURE_MESSAGE_CHARS_MAX + 10))!;
  assert.is(long.length, FAILURE_MESSAGE_CHARS_MAX);
  assert.ok(long.endsWith('…'));
  const emoji = failureCause(`${'x'.repeat(FAILURE_MESSAGE_CHARS_MAX - 3)}${'😀'.repeat(5)}`)!;
  assert.ok(emoji.length <= FAILURE_MESSAGE_CHARS_MAX);
  assert.not.match(emoji, /[\ud800-\udbff](?![\udc00-\udfff])/, 'no lone high surrogate');
});

test.run();
