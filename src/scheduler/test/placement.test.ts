import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { formatReasons, planPlacements, type PlacementInput } from '../placement.js';
import { planRound, SCHEDULER_DEFAULTS } from '../round.js';
import { app, GiB, instance, instances, MiB, node } from './fixtures.js';

function input(overrides: Partial<PlacementInput>): PlacementInput {
  return { nodes: [], instances: [], apps: [], strategy: 'spread', seed: 1, ...overrides };
}

function nodesOf(plan: { placements: { id: string; node: string }[] }): Record<string, string> {
  return Object.fromEntries(plan.placements.map((placement) => [placement.id, placement.node]));
}

test('resources: reservations of placed and already-running instances count', () => {
  const nodes = [node('n1', { resources: { cpuMillis: 4000, memoryBytes: 1 * GiB } })];
  const apps = [app('db', { reservations: { memoryBytes: 512 * MiB } }), app('web', { reservations: { memoryBytes: 256 * MiB } })];
  const plan = planPlacements(input({ nodes, apps, instances: [instance('web', 0, 'n1'), ...instances('db', 2)] }));
  assert.equal(nodesOf(plan), { 'db-0': 'n1' });
  assert.equal(plan.unplaceable.map((entry) => entry.id), ['db-1']);
  assert.equal(formatReasons(plan.unplaceable[0]!.reasons), ['1 node: not enough memory (needs 512 MiB, 256 MiB free at most)']);
});

test('resources: limits count when nothing is reserved; CPU too', () => {
  const nodes = [node('n1', { resources: { cpuMillis: 1000, memoryBytes: 8 * GiB } })];
  const apps = [app('cpu', { reservations: {}, limits: { cpuMillis: 600 } })];
  const plan = planPlacements(input({ nodes, apps, instances: instances('cpu', 2) }));
  assert.equal(nodesOf(plan), { 'cpu-0': 'n1' });
  assert.equal(formatReasons(plan.unplaceable[0]!.reasons), ['1 node: not enough CPU (needs 0.6 cores, 0.4 cores free at most)']);
});

test('constraints == and != choose nodes', () => {
  const nodes = [node('n1', { labels: { zone: 'a' } }), node('n2', { labels: { zone: 'b' } }), node('n3', { labels: { zone: 'b' } })];
  const apps = [app('a', { constraints: ['node.labels.zone == a'], replicas: 3 }), app('b', { constraints: ['node.labels.zone != a', 'node.hostname != n3'] })];
  const plan = planPlacements(input({ nodes, apps, instances: [...instances('a', 3), ...instances('b', 2)] }));
  assert.equal(nodesOf(plan), { 'a-0': 'n1', 'a-1': 'n1', 'a-2': 'n1', 'b-0': 'n2', 'b-1': 'n2' });
  const none = planPlacements(input({ nodes, apps: [app('c', { constraints: ['node.labels.zone == c'] })], instances: instances('c', 1) }));
  assert.equal(formatReasons(none.unplaceable[0]!.reasons), ['3 nodes: constraint node.labels.zone == c']);
});

test('host ports conflict per protocol', () => {
  const nodes = [node('n1'), node('n2')];
  const apps = [
    app('web', { ports: [{ target: 80, published: 8080, protocol: 'tcp' }] }),
    app('dns', { ports: [{ target: 53, published: 8080, protocol: 'udp' }] }),
    app('internal', { ports: [{ target: 80, protocol: 'tcp' }] }),
  ];
  const plan = planPlacements(input({ nodes, apps, instances: [...instances('web', 3), ...instances('dns', 2), ...instances('internal', 4)] }));
  assert.is(plan.placements.length, 8);
  const web = plan.placements.filter((placement) => placement.id.startsWith('web-')).map((placement) => placement.node).sort();
  assert.equal(web, ['n1', 'n2']);
  assert.equal(plan.unplaceable.map((entry) => entry.id), ['web-2']);
  assert.equal(formatReasons(plan.unplaceable[0]!.reasons), ['2 nodes: host port 8080/tcp already published']);
});

test('maxPerNode caps instances of one app on a node', () => {
  const nodes = [node('n1'), node('n2')];
  const apps = [app('web', { hivemind: { maxPerNode: 2 } })];
  const plan = planPlacements(input({ nodes, apps, strategy: 'binpack', instances: [instance('web', 0, 'n1'), ...instances('web', 6).slice(1)] }));
  const counts: Record<string, number> = {};
  for (const placement of plan.placements) counts[placement.node] = (counts[placement.node] ?? 0) + 1;
  assert.equal(counts, { n1: 1, n2: 2 });
  assert.equal(formatReasons(plan.unplaceable[0]!.reasons), ['2 nodes: already 2 instances of "web" (max 2 per node)']);
});

test('nodes that are not up are ignored, and their instances are placed again', () => {
  const nodes = [node('n1', { status: 'down' }), node('n2', { status: 'suspect' }), node('n3')];
  const apps = [app('web')];
  const plan = planPlacements(input({ nodes, apps, instances: [instance('web', 0, 'n1'), instance('web', 1, 'gone'), instance('web', 2, 'n3')] }));
  assert.equal(nodesOf(plan), { 'web-0': 'n3', 'web-1': 'n3' });
  const blocked = planPlacements(input({ nodes: [node('a', { status: 'down' }), node('b', { status: 'down' }), node('c', { status: 'left' })], apps, instances: instances('web', 1) }));
  assert.equal(formatReasons(blocked.unplaceable[0]!.reasons), ['2 nodes: down', '1 node: left the cluster']);
});

test('instances meant to stop, and placed ones on up nodes, are left alone', () => {
  const stopped = { ...instance('web', 1), desired: 'stopped' as const };
  const plan = planPlacements(input({ nodes: [node('n1')], apps: [app('web')], instances: [instance('web', 0, 'n1'), stopped] }));
  assert.equal(plan, { placements: [], unplaceable: [] });
});

test('unknown app and empty cluster give reasons', () => {
  const plan = planPlacements(input({ nodes: [], apps: [app('web')], instances: [instance('web', 0), instance('ghost', 0)] }));
  assert.equal(plan.unplaceable.map((entry) => [entry.id, formatReasons(entry.reasons)]), [
    ['ghost-0', ['0 nodes: app "ghost" of tenant "default" does not exist']],
    ['web-0', ['0 nodes: no nodes in the cluster']],
  ]);
});

test('mixed reasons aggregate, most nodes first, with the most free memory', () => {
  const nodes = [
    node('n1', { resources: { cpuMillis: 4000, memoryBytes: 256 * MiB } }),
    node('n2', { resources: { cpuMillis: 4000, memoryBytes: 128 * MiB } }),
    node('n3', { resources: { cpuMillis: 4000, memoryBytes: 100 * MiB } }),
    node('n4', { labels: { zone: 'b' } }),
    node('n5', { status: 'down' }),
  ];
  const apps = [app('db', { reservations: { memoryBytes: 512 * MiB }, constraints: ['node.labels.zone != b'] })];
  const plan = planPlacements(input({ nodes, apps, instances: instances('db', 1) }));
  assert.equal(formatReasons(plan.unplaceable[0]!.reasons), [
    '3 nodes: not enough memory (needs 512 MiB, 256 MiB free at most)',
    '1 node: constraint node.labels.zone != b',
    '1 node: down',
  ]);
});

test('spread puts one app across nodes; binpack fills the fullest node', () => {
  const nodes = [node('n1'), node('n2'), node('n3')];
  const apps = [app('big', { reservations: { cpuMillis: 2000, memoryBytes: 2 * GiB } }), app('web', { replicas: 3 })];
  const running = [instance('big', 0, 'n2')];
  const spread = planPlacements(input({ nodes, apps, instances: [...running, ...instances('web', 3)], strategy: 'spread' }));
  assert.equal(spread.placements.map((placement) => placement.node).sort(), ['n1', 'n2', 'n3']);
  const binpack = planPlacements(input({ nodes, apps, instances: [...running, ...instances('web', 3)], strategy: 'binpack' }));
  assert.equal(binpack.placements.map((placement) => placement.node), ['n2', 'n2', 'n2']);
  // Spread of a single-instance app goes to the emptiest node, not the loaded one.
  const single = planPlacements(input({ nodes: [node('n1'), node('n2')], apps, instances: [instance('big', 0, 'n2'), instance('web', 0)] }));
  assert.equal(nodesOf(single), { 'web-0': 'n1' });
});

test('higher priority places first when room is short', () => {
  const nodes = [node('n1', { resources: { cpuMillis: 1000, memoryBytes: 1 * GiB } })];
  const apps = [app('low', { reservations: { cpuMillis: 1000 } }), app('high', { reservations: { cpuMillis: 1000 }, hivemind: { priority: 10 } })];
  const plan = planPlacements(input({ nodes, apps, instances: [instance('low', 0), instance('high', 0)] }));
  assert.equal(nodesOf(plan), { 'high-0': 'n1' });
  assert.equal(plan.unplaceable.map((entry) => entry.id), ['low-0']);
});

test('deterministic: same input, same plan; seeds change only ties', () => {
  const nodes = Array.from({ length: 8 }, (_, index) => node(`n${index}`));
  const apps = [app('web', { replicas: 4 })];
  const base = input({ nodes, apps, instances: instances('web', 4), seed: 7 });
  assert.equal(planPlacements(base), planPlacements(structuredClone(base)));
  const chosen = new Set<string>();
  for (let seed = 0; seed < 20; seed++) {
    const plan = planPlacements({ ...base, seed });
    // Whatever the seed, spread gives each instance its own node.
    assert.is(new Set(plan.placements.map((placement) => placement.node)).size, 4);
    chosen.add(plan.placements.map((placement) => placement.node).join(','));
  }
  assert.ok(chosen.size > 1, 'different seeds should break ties differently');
  // No tie: one node is strictly best for binpack, whatever the seed.
  const loaded = [instance('web', 9, 'n3')];
  for (let seed = 0; seed < 10; seed++) {
    const plan = planPlacements({ ...base, instances: [...loaded, ...instances('web', 2)], strategy: 'binpack', seed });
    assert.equal(plan.placements.map((placement) => placement.node), ['n3', 'n3']);
  }
});

test('placements in flight are not planned again and count on their proposed node', () => {
  const nodes = [node('n1', { resources: { cpuMillis: 4000, memoryBytes: 1 * GiB } }), node('n2', { resources: { cpuMillis: 4000, memoryBytes: 512 * MiB } })];
  const apps = [app('db', { reservations: { memoryBytes: 512 * MiB }, replicas: 4 })];
  const inFlight = new Map([['db-0', 'n1'], ['db-1', 'n1']]);
  const plan = planPlacements(input({ nodes, apps, instances: instances('db', 4), inFlight }));
  assert.equal(nodesOf(plan), { 'db-2': 'n2' }, 'n1 is full with the two in flight');
  assert.equal(plan.unplaceable.map((entry) => entry.id), ['db-3']);
  assert.equal(formatReasons(plan.unplaceable[0]!.reasons), ['2 nodes: not enough memory (needs 512 MiB, 0 B free at most)']);
  const applied = planPlacements(input({ nodes, apps, instances: [instance('db', 0, 'n1'), instance('db', 1, 'n1'), ...instances('db', 4).slice(2)], inFlight }));
  assert.equal(nodesOf(applied), { 'db-2': 'n2' }, 'applied but not yet answered: counted once');
  const toDown = planPlacements(input({ nodes: [node('n1', { status: 'down' }), nodes[1]!], apps, instances: instances('db', 4), inFlight }));
  assert.equal(nodesOf(toDown), { 'db-2': 'n2' }, 'in flight to a node gone down: not planned again until answered');
});

test('large clusters: the sampled scan gives the same plan as before for the same seed, and respects fixed misfits', () => {
  const nodes = Array.from({ length: 40 }, (_, index) => node(`n${String(index).padStart(2, '0')}`, { labels: { zone: index % 2 === 0 ? 'a' : 'b' }, status: index % 5 === 0 ? 'down' : 'up' }));
  const apps = [app('web', { constraints: ['node.labels.zone == a'], replicas: 30, reservations: { cpuMillis: 100, memoryBytes: 64 * MiB } })];
  const plan = planPlacements(input({ nodes, apps, instances: instances('web', 30), candidatesMax: 4, seed: 7 }));
  assert.is(plan.placements.length, 30);
  for (const placement of plan.placements) {
    const index = Number(placement.node.slice(1));
    assert.ok(index % 2 === 0 && index % 5 !== 0, `${placement.id} on ${placement.node}: zone a and up`);
  }
  assert.equal(planPlacements(input({ nodes, apps, instances: instances('web', 30), candidatesMax: 4, seed: 7 })), plan, 'deterministic');
});

test('planRound with placements in flight plans more placements only, never the same instance twice', () => {
  const nodes = [node('n1', { resources: { cpuMillis: 4000, memoryBytes: 1 * GiB } }), node('n2', { status: 'down', statusSince: 0 })];
  const apps = [app('db', { reservations: { memoryBytes: 256 * MiB }, replicas: 6 })];
  // db-5 sits on a node down past the grace: a full round would also report what cannot be placed.
  const all = [...instances('db', 5), instance('db', 5, 'n2')];
  const options = { ...SCHEDULER_DEFAULTS, rescheduleGraceMs: 0 };
  const full = planRound({ nodes, instances: all, apps, now: 1000, seed: 1, options });
  assert.equal(full.commands.map((command) => command.type), ['instance.place', 'instance.place', 'app.unplaceable']);
  const inFlight = new Map([['db-0', 'n1'], ['db-1', 'n1']]);
  const pipelined = planRound({ nodes, instances: all, apps, now: 1000, seed: 1, options, inFlight });
  assert.equal(pipelined.commands.map((command) => command.type), ['instance.place']);
  const placed = pipelined.commands.flatMap((command) => (command.type === 'instance.place' ? command.placements.map((placement) => placement.id) : []));
  assert.equal(placed, ['db-2', 'db-3'], 'n1 has room for two more; db-0 and db-1 are in flight');
});

test('planRound counts the unplaceable by the kind of reason that refused them on the most nodes (the metrics label)', () => {
  const nodes = [node('n1', { resources: { cpuMillis: 4000, memoryBytes: 1 * GiB } }), node('n2', { resources: { cpuMillis: 4000, memoryBytes: 1 * GiB } }), node('n3', { status: 'down', statusSince: 0 })];
  const apps = [
    app('big', { reservations: { memoryBytes: 2 * GiB }, replicas: 2 }),
    app('zoned', { constraints: ['node.labels.zone == nowhere'], replicas: 1 }),
    app('fits', { reservations: { memoryBytes: 256 * MiB }, replicas: 1 }),
  ];
  const round = planRound({ nodes, instances: [...instances('big', 2), ...instances('zoned', 1), ...instances('fits', 1)], apps, now: 1000, seed: 1, options: SCHEDULER_DEFAULTS });
  assert.is(round.unplaceable, 3);
  assert.equal(Object.fromEntries(round.unplaceableByKind), { memory: 2, constraint: 1 }, 'memory refused big on 2 nodes, down only on 1');
  const empty = planRound({ nodes: [], instances: instances('fits', 1), apps, now: 1000, seed: 1, options: SCHEDULER_DEFAULTS });
  assert.equal(Object.fromEntries(empty.unplaceableByKind), { 'no-nodes': 1 });
});

test.run();
