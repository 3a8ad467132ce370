// Scheduling follows the data: instances that mount a node-local volume go to
// its node, wait (saying so) while that node is down, land together while the
// volume is not bound yet, and are never moved away by preemption or
// rebalancing.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { Volume, VolumeMount } from '../../state/types.js';
import { formatReasons, planPlacements, type PlacementInput } from '../placement.js';
import { planPreemption } from '../preemption.js';
import { planRound, SCHEDULER_DEFAULTS } from '../round.js';
import { app, GiB, instance, instances, MiB, node } from './fixtures.js';

const data: VolumeMount[] = [{ source: 'data', target: '/data', readOnly: false }];

function volume(name: string, nodeId?: string): Volume {
  return { tenant: 'default', name, sizeBytes: GiB, createdIndex: 1, ...(nodeId !== undefined ? { node: nodeId } : {}) };
}

function input(overrides: Partial<PlacementInput>): PlacementInput {
  return { nodes: [node('n1'), node('n2'), node('n3')], instances: [], apps: [], strategy: 'spread', seed: 1, ...overrides };
}

function nodesOf(plan: { placements: { id: string; node: string }[] }): Record<string, string> {
  return Object.fromEntries(plan.placements.map((placement) => [placement.id, placement.node]));
}

test('instances that mount a bound volume go to its node, whatever the spread says; other apps spread', () => {
  for (const seed of [1, 2, 3, 4, 5]) {
    const apps = [app('db', { volumes: data, replicas: 3 }), app('web', { replicas: 3 })];
    const plan = planPlacements(input({ seed, apps, instances: [...instances('db', 3), ...instances('web', 3)], volumes: [volume('data', 'n2')] }));
    assert.equal(nodesOf(plan), { 'db-0': 'n2', 'db-1': 'n2', 'db-2': 'n2', ...pick(nodesOf(plan), ['web-0', 'web-1', 'web-2']) });
    assert.is(new Set(['web-0', 'web-1', 'web-2'].map((id) => nodesOf(plan)[id])).size, 3, 'web spreads');
  }
});

function pick(record: Record<string, string>, keys: string[]): Record<string, string> {
  return Object.fromEntries(keys.map((key) => [key, record[key]!]));
}

test('while the volume\'s node is down, the instance waits and the reasons say why on every node', () => {
  const nodes = [node('n1'), node('n2', { status: 'down' }), node('n3')];
  const apps = [app('db', { volumes: data })];
  const plan = planPlacements(input({ nodes, apps, instances: [instance('db', 0, 'n2')], volumes: [volume('data', 'n2')] }));
  assert.equal(plan.placements, []);
  assert.equal(formatReasons(plan.unplaceable[0]!.reasons), ['2 nodes: constraint node.id == n2 (volume "data" lives there)', '1 node: down']);
  const round = planRound({ nodes, instances: [instance('db', 0, 'n2')], apps, volumes: [volume('data', 'n2')], now: 1_000_000, seed: 1, options: SCHEDULER_DEFAULTS });
  const report = round.commands.find((command) => command.type === 'app.unplaceable');
  assert.ok(report !== undefined && report.type === 'app.unplaceable');
  assert.equal(report.updates[0]!.reasons, ['2 nodes: constraint node.id == n2 (volume "data" lives there)', '1 node: down']);
  assert.not.ok(round.commands.some((command) => command.type === 'instance.place' && command.placements.some((placement) => placement.node !== null)), 'placed nowhere else');
});

test('an unbound volume: the replicas that share it land on one node, with an instance already placed or in flight', () => {
  const apps = [app('db', { volumes: data, replicas: 3 })];
  const fresh = planPlacements(input({ apps, instances: instances('db', 3), volumes: [volume('data')] }));
  assert.is(new Set(Object.values(nodesOf(fresh))).size, 1, `one node: ${JSON.stringify(nodesOf(fresh))}`);
  const placed = planPlacements(input({ apps, instances: [instance('db', 0, 'n3'), ...instances('db', 3).slice(1)], volumes: [volume('data')] }));
  assert.equal(nodesOf(placed), { 'db-1': 'n3', 'db-2': 'n3' });
  const inFlight = planPlacements(input({ apps, instances: instances('db', 3), volumes: [volume('data')], inFlight: new Map([['db-0', 'n1']]) }));
  assert.equal(nodesOf(inFlight), { 'db-1': 'n1', 'db-2': 'n1' });
});

test('two volumes on different nodes: no node fits, and the reasons name both', () => {
  const apps = [app('both', { volumes: [...data, { source: 'logs', target: '/logs', readOnly: false }] })];
  const plan = planPlacements(input({ apps, instances: instances('both', 1), volumes: [volume('data', 'n1'), volume('logs', 'n2')] }));
  assert.equal(formatReasons(plan.unplaceable[0]!.reasons), [
    '2 nodes: constraint node.id == n1 (volume "data" lives there)',
    '1 node: constraint node.id == n2 (volume "logs" lives there)',
  ]);
});

test('host paths do not pin; another tenant\'s volume of the same name is its own', () => {
  const apps = [app('db', { volumes: [{ source: '/srv/data', target: '/data', readOnly: false }], replicas: 3 }), app('other', { volumes: data, replicas: 3 }, 'acme')];
  const acmeInstances = instances('other', 3).map((entry) => ({ ...entry, tenant: 'acme' }));
  const acmeNodes = new Set<string>();
  for (const seed of [1, 2, 3, 4, 5, 6, 7, 8]) {
    const plan = planPlacements(input({ seed, apps, instances: [...instances('db', 3), ...acmeInstances], volumes: [volume('data', 'n1')] }));
    const db = ['db-0', 'db-1', 'db-2'].map((id) => nodesOf(plan)[id]);
    assert.is(new Set(db).size, 3, `host paths spread: ${db}`);
    const other = new Set(['other-0', 'other-1', 'other-2'].map((id) => nodesOf(plan)[id]!));
    assert.is(other.size, 1, 'acme\'s unbound "data" keeps its replicas together');
    for (const nodeId of other) acmeNodes.add(nodeId);
  }
  assert.ok(acmeNodes.size > 1, `default's "data" on n1 does not pin acme's: ${[...acmeNodes]}`);
});

test('preemption makes room only on the volume\'s node', () => {
  const nodes = [node('n1', { resources: { cpuMillis: 4000, memoryBytes: 1 * GiB } }), node('n2', { resources: { cpuMillis: 4000, memoryBytes: 1 * GiB } })];
  const apps = [app('db', { volumes: data, reservations: { memoryBytes: 768 * MiB }, hivemind: { priority: 10 } }), app('batch', { reservations: { memoryBytes: 512 * MiB } })];
  const all = [instance('batch', 0, 'n1'), instance('batch', 1, 'n2'), ...instances('db', 1)];
  const free = planPreemption({ nodes, apps, instances: all, instance: 'db-0', seed: 1 });
  assert.ok(free !== undefined);
  for (const home of ['n1', 'n2']) {
    const preemption = planPreemption({ nodes, apps, instances: all, instance: 'db-0', seed: 1, volumes: [volume('data', home)] });
    assert.is(preemption?.node, home);
  }
});


test('while its volume is being moved, an instance is placed nowhere, and the reasons name the move; once it ends, on the new node', () => {
  const apps = [app('db', { volumes: data })];
  const moving: Volume = { ...volume('data', 'n1'), moving: 'n2' };
  const plan = planPlacements(input({ apps, instances: instances('db', 1), volumes: [moving] }));
  assert.equal(plan.placements, []);
  assert.equal(formatReasons(plan.unplaceable[0]!.reasons), ['3 nodes: constraint volume "data" is being moved to node n2']);
  const after = planPlacements(input({ apps, instances: instances('db', 1), volumes: [volume('data', 'n2')] }));
  assert.equal(nodesOf(after), { 'db-0': 'n2' });
});

test.run();
