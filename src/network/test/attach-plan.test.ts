import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ATTACH_PROPOSALS_MAX, holdsSlice, planAttachments, sliceKey, sliceNetworksOf, type AttachInput, type AttachInstance } from '../attach-plan.js';
import { appSpec } from '../../state/test/fixtures.js';
import type { AppSpec } from '../../state/types.js';
import type { TenantNetwork } from '../../state/types.js';

const nodes = [
  { id: 'n1', status: 'up' },
  { id: 'n2', status: 'down' },
  { id: 'n3', status: 'left' },
];

function network(tenant: string, name: string, slices: string[] = []): TenantNetwork {
  return { tenant, name, cidr: '10.224.0.0/20', createdIndex: 1, slices: slices.map((node, index) => ({ node, cidr: `10.224.0.${index * 64}/26` })) };
}

function instance(tenant: string, app: string, node: string | undefined, desired: 'running' | 'stopped' = 'running', state = 'running'): AttachInstance {
  return { tenant, app, desired, state, ...(node !== undefined ? { node } : {}) };
}

function input(overrides: Partial<AttachInput>): AttachInput {
  return { networks: [], instances: [], nodes, idleSinceMs: new Map(), nowMs: 1_000, graceMs: 500, ...overrides };
}

test('an instance placed on a node without its network slice asks for one; one ask per network and node', () => {
  const plan = planAttachments(input({
    networks: [network('acme', 'default'), network('evil', 'default', ['n1'])],
    instances: [instance('acme', 'web', 'n1'), instance('acme', 'web', 'n1'), instance('acme', 'api', 'n2'), instance('evil', 'probe', 'n1'), instance('acme', 'web', undefined)],
  }));
  assert.equal(plan.attach, [{ tenant: 'acme', name: 'default', node: 'n1' }, { tenant: 'acme', name: 'default', node: 'n2' }], 'a down node still gets one (its instance may run); an unplaced instance asks none');
  assert.equal(plan.detach, []);
  assert.equal(plan.idleSinceMs.size, 0);
});

test('an instance on several networks needs a slice of each; its own version\'s networks win over the app\'s (a rolling update between networks)', () => {
  const held = network('acme', 'front', ['n1']);
  const plan = planAttachments(input({
    networks: [held, network('acme', 'back'), network('acme', 'default', ['n1'])],
    instances: [{ ...instance('acme', 'web', 'n1'), networks: ['front', 'back'] }],
    appNetworks: new Map([['acme/web', ['default']]]),
    graceMs: 0,
  }));
  assert.equal(plan.attach, [{ tenant: 'acme', name: 'back', node: 'n1' }]);
  assert.equal(plan.detach, [{ tenant: 'acme', name: 'default', node: 'n1' }], 'default is idle: no instance of it here');
});

test('no slice for a node that left, a tenant without a network, or a network the app does not name', () => {
  const plan = planAttachments(input({
    networks: [network('acme', 'default'), network('acme', 'back')],
    instances: [instance('acme', 'web', 'n3'), instance('old', 'web', 'n1'), instance('acme', 'db', 'n1'), instance('acme', 'cache', 'n1')],
    appNetworks: new Map([['acme/db', ['back']], ['acme/cache', ['gone']]]),
  }));
  assert.equal(plan.attach, [{ tenant: 'acme', name: 'back', node: 'n1' }]);
});

test('sliceNetworksOf: a container app\'s instance needs a slice of each network of its version; a process app\'s none (it runs on the host\'s network)', () => {
  const app = (spec: Partial<AppSpec>) => ({ versions: [{ version: 1, spec: appSpec({ tenant: 'acme', ...spec }), deployedIndex: 1, deployedAt: 0 }, { version: 2, spec: appSpec({ tenant: 'acme', networks: ['front', 'back'] }), deployedIndex: 2, deployedAt: 0 }] });
  assert.equal(sliceNetworksOf(app({}), 1), ['default']);
  assert.equal(sliceNetworksOf(app({}), 2), ['front', 'back'], 'its own version\'s');
  assert.equal(sliceNetworksOf(app({ image: undefined, command: ['node', 'server.js'] }), 1), [], 'a process app');
  assert.equal(sliceNetworksOf(undefined, 3), ['default'], 'an app no longer kept: its tenant\'s default, as the state reads it');
  const plan = planAttachments(input({ networks: [network('acme', 'default')], instances: [{ ...instance('acme', 'hello', 'n1'), networks: sliceNetworksOf(app({ image: undefined, command: ['node'] }), 1) }] }));
  assert.equal(plan.attach, [], 'no slice asked for a process app');
});

test('an instance being stopped keeps its slice while its container may run; a stopped or pending one does not', () => {
  assert.ok(holdsSlice(instance('acme', 'web', 'n1', 'stopped', 'healthy')));
  assert.ok(holdsSlice(instance('acme', 'web', 'n1', 'running', 'pending')));
  assert.not.ok(holdsSlice(instance('acme', 'web', 'n1', 'stopped', 'stopped')));
  assert.not.ok(holdsSlice(instance('acme', 'web', 'n1', 'stopped', 'pending')));
  assert.not.ok(holdsSlice(instance('acme', 'web', undefined)));
});

test('an idle slice is given back after the grace, counted from when it was first seen idle; used again, its idle time is forgotten', () => {
  const networks = [network('acme', 'default', ['n1', 'n2'])];
  const key = sliceKey({ tenant: 'acme', name: 'default', node: 'n2' });
  const first = planAttachments(input({ networks, instances: [instance('acme', 'web', 'n1')], nowMs: 1_000 }));
  assert.equal(first.detach, []);
  assert.equal([...first.idleSinceMs], [[key, 1_000]]);
  const early = planAttachments(input({ networks, instances: [instance('acme', 'web', 'n1')], idleSinceMs: first.idleSinceMs, nowMs: 1_499 }));
  assert.equal(early.detach, [], 'not before the grace');
  assert.equal([...early.idleSinceMs], [[key, 1_000]]);
  const due = planAttachments(input({ networks, instances: [instance('acme', 'web', 'n1')], idleSinceMs: early.idleSinceMs, nowMs: 1_500 }));
  assert.equal(due.detach, [{ tenant: 'acme', name: 'default', node: 'n2' }]);
  assert.equal(due.idleSinceMs.size, 0);
  const used = planAttachments(input({ networks, instances: [instance('acme', 'web', 'n1'), instance('acme', 'web', 'n2')], idleSinceMs: early.idleSinceMs, nowMs: 1_600 }));
  assert.equal([used.detach, used.idleSinceMs.size], [[], 0], 'an instance placed back keeps the slice');
  const zero = planAttachments(input({ networks, instances: [], graceMs: 0 }));
  assert.equal(zero.detach.map((entry) => entry.node), ['n1', 'n2'], 'grace 0: at once');
});

test('at most ATTACH_PROPOSALS_MAX proposals a plan, attaches first; a detach left over stays due', () => {
  const many = Array.from({ length: ATTACH_PROPOSALS_MAX + 5 }, (_, index) => network('acme', `net${String(index).padStart(2, '0')}`));
  const appNetworks = new Map([['acme/web', many.map((entry) => entry.name)]]);
  const idle = network('acme', 'idle', ['n1']);
  const plan = planAttachments(input({ networks: [...many, idle], instances: [instance('acme', 'web', 'n1')], appNetworks, graceMs: 0 }));
  assert.is(plan.attach.length, ATTACH_PROPOSALS_MAX);
  assert.is(plan.attach[0]!.name, 'net00');
  assert.equal(plan.detach, []);
  assert.equal([...plan.idleSinceMs], [['acme/idle@n1', 1_000]]);
  const later = planAttachments(input({ networks: [idle], instances: [], idleSinceMs: plan.idleSinceMs, nowMs: 2_000, graceMs: 0 }));
  assert.equal(later.detach, [{ tenant: 'acme', name: 'idle', node: 'n1' }]);
});

test.run();
