import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { planPreemption } from '../preemption.js';
import { app, GiB, instance, node } from './fixtures.js';

const small = { cpuMillis: 4000, memoryBytes: 1 * GiB };

test('evicts the fewest lower-priority instances on one node', () => {
  const nodes = [node('n1', { resources: small }), node('n2', { resources: small })];
  const apps = [
    app('high', { reservations: { memoryBytes: 768 * 1024 ** 2 }, hivemind: { priority: 10 } }),
    app('tiny', { reservations: { memoryBytes: 256 * 1024 ** 2 } }),
    app('big', { reservations: { memoryBytes: 1 * GiB }, hivemind: { priority: 1 } }),
  ];
  // n1: four tiny (priority 0) fill it; n2: one big (priority 1) fills it.
  const running = [instance('tiny', 0, 'n1'), instance('tiny', 1, 'n1'), instance('tiny', 2, 'n1'), instance('tiny', 3, 'n1'), instance('big', 0, 'n2')];
  const plan = planPreemption({ nodes, apps, instances: [...running, instance('high', 0)], instance: 'high-0', seed: 1 });
  assert.ok(plan);
  assert.is(plan.node, 'n2');
  assert.equal(plan.evictions.map((eviction) => eviction.id), ['big-0']);
  assert.is(plan.evictions[0]!.reason, 'preempted on node "n2" to make room for high-0 of default/high (priority 10 over 1)');
});

test('prefers lower priority when eviction counts tie, and never evicts equal priority', () => {
  const nodes = [node('n1', { resources: small }), node('n2', { resources: small })];
  const apps = [
    app('high', { reservations: { memoryBytes: 1 * GiB }, hivemind: { priority: 5 } }),
    app('mid', { reservations: { memoryBytes: 1 * GiB }, hivemind: { priority: 3 } }),
    app('low', { reservations: { memoryBytes: 1 * GiB }, hivemind: { priority: 1 } }),
    app('peer', { reservations: { memoryBytes: 1 * GiB }, hivemind: { priority: 5 } }),
  ];
  const plan = planPreemption({ nodes, apps, instances: [instance('mid', 0, 'n1'), instance('low', 0, 'n2'), instance('high', 0)], instance: 'high-0', seed: 3 });
  assert.equal(plan, { node: 'n2', evictions: [{ id: 'low-0', reason: 'preempted on node "n2" to make room for high-0 of default/high (priority 5 over 1)' }] });
  const none = planPreemption({ nodes: [nodes[0]!], apps, instances: [instance('peer', 0, 'n1'), instance('high', 0)], instance: 'high-0', seed: 3 });
  assert.is(none, undefined);
});

test('port owners are evicted; constraints and down nodes are never preempted into', () => {
  const apps = [
    app('web', { ports: [{ target: 80, published: 80, protocol: 'tcp' }], hivemind: { priority: 2 }, constraints: ['node.labels.edge == yes'] }),
    app('old', { ports: [{ target: 80, published: 80, protocol: 'tcp' }] }),
  ];
  const nodes = [node('n1', { labels: { edge: 'yes' } }), node('n2'), node('n3', { labels: { edge: 'yes' }, status: 'down' })];
  const running = [instance('old', 0, 'n1'), instance('old', 1, 'n2')];
  const plan = planPreemption({ nodes, apps, instances: [...running, instance('web', 0)], instance: 'web-0', seed: 9 });
  assert.equal(plan?.node, 'n1');
  assert.equal(plan?.evictions.map((eviction) => eviction.id), ['old-0']);
});

test('no eviction needed when it fits; deterministic across calls', () => {
  const input = { nodes: [node('n1'), node('n2')], apps: [app('web')], instances: [instance('web', 0)], instance: 'web-0', seed: 4 };
  const first = planPreemption(input);
  assert.equal(first?.evictions, []);
  assert.equal(planPreemption(structuredClone(input)), first);
});

test.run();
