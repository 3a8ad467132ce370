import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ClusterStateMachine } from '../machine.js';
import { decodeState } from '../snapshot.js';
import { tenantNetworksProblem } from '../apply-tenant-networks.js';
import { blockProblem, lowestFreeBlock, lowestFreeSlice, NETWORKS_PER_TENANT_MAX, tenantPoolProblem } from '../tenant-ipam.js';
import { STATE_VERSION_LABEL, type Command } from '../types.js';
import { appSpec, Driver, registerNode as registerOldNode } from './fixtures.js';

/** A node registration from code of state version 5. */
function registerNode(id: string): Command {
  const command = registerOldNode(id) as Extract<Command, { type: 'node.register' }>;
  return { ...command, labels: { ...command.labels, [STATE_VERSION_LABEL]: '5' } };
}

const configure = { type: 'network.configure', cidr: '10.210.0.0/16', nodePrefixLength: 24, serviceCidr: '10.211.0.0/16', tenantCidr: '10.224.0.0/12' } as const;

/** A cluster at state version 5 with its network and pool configured and nodes n1..n3. */
function cluster(tenantCidr = '10.224.0.0/12'): Driver {
  const driver = new Driver();
  for (const id of ['n1', 'n2', 'n3']) driver.ok(registerNode(id));
  driver.ok({ type: 'cluster.version', version: 5 });
  driver.ok({ ...configure, tenantCidr });
  return driver;
}

function networksOf(machine: ClusterStateMachine): Record<string, string> {
  return Object.fromEntries(machine.networks().map((network) => [`${network.tenant}/${network.name}`, network.cidr]));
}

test('pool arithmetic: blocks and slices lowest first; overlaps and bad pools named', () => {
  const network = { tenant: 'acme', name: 'default', cidr: '10.224.0.0/20', createdIndex: 1, slices: [] as { node: string; cidr: string }[] };
  assert.is(lowestFreeBlock('10.224.0.0/12', []), '10.224.0.0/20');
  assert.is(lowestFreeBlock('10.224.0.0/12', [network]), '10.224.16.0/20');
  assert.is(lowestFreeBlock('10.224.0.0/20', [network]), undefined, 'a pool of one block, held');
  assert.is(lowestFreeSlice(network), '10.224.0.0/26');
  assert.is(lowestFreeSlice({ ...network, slices: [{ node: 'n1', cidr: '10.224.0.0/26' }] }), '10.224.0.64/26');
  assert.is(blockProblem('10.224.0.0/20', '10.224.0.0/12', [network])?.kind, 'overlap');
  assert.is(blockProblem('10.224.16.0/21', '10.224.0.0/12', [network])?.kind, 'invalid', 'not a /20');
  assert.is(blockProblem('10.100.0.0/20', '10.224.0.0/12', [network])?.kind, 'invalid', 'outside the pool');
  assert.is(blockProblem('10.224.16.0/20', '10.224.0.0/12', [network]), undefined);
  assert.match(tenantPoolProblem('10.208.0.0/12', { 'cluster network': '10.210.0.0/16' }) ?? '', /overlaps the cluster network/);
  assert.match(tenantPoolProblem('10.224.0.0/24', {}) ?? '', /a \/8 to a \/20/);
  assert.is(tenantPoolProblem('10.224.0.0/12', { 'cluster network': '10.210.0.0/16', 'service range': '10.211.0.0/16' }), undefined);
});

test('the pool is set once by network.configure (state version 5); another is refused, a bad one names its field', () => {
  const driver = new Driver();
  driver.ok(registerNode('n1'));
  const early = driver.refused(configure);
  assert.is(early.code, 'cluster-version-too-old', 'a tenantCidr needs state version 5');
  driver.ok({ type: 'cluster.version', version: 5 });
  const overlapping = driver.refused({ ...configure, tenantCidr: '10.211.0.0/16' });
  assert.equal([overlapping.code, overlapping.field], ['invalid-argument', 'tenantCidr']);
  assert.match(overlapping.message, /overlaps the service range 10.211.0.0\/16/);
  driver.ok(configure);
  assert.is(driver.machine.network()?.tenantCidr, '10.224.0.0/12');
  driver.ok(configure);
  const other = driver.refused({ ...configure, tenantCidr: '10.240.0.0/12' });
  assert.equal([other.code, other.field], ['conflict', 'tenantCidr']);
});

test('tenant.create makes the tenant its default network; tenant.delete removes its networks', () => {
  const driver = cluster();
  const created = driver.ok({ type: 'tenant.create', name: 'acme', quota: {} });
  assert.equal(created.value, { name: 'acme', network: '10.224.0.0/20' });
  driver.ok({ type: 'tenant.create', name: 'evil', quota: {} });
  assert.equal(networksOf(driver.machine), { 'acme/default': '10.224.0.0/20', 'evil/default': '10.224.16.0/20' });
  assert.ok(driver.machine.history().some((entry) => entry.summary.includes('network default 10.224.16.0/20')), 'the history line names the block');
  driver.ok({ type: 'network.create', tenant: 'acme', name: 'backend' });
  driver.ok({ type: 'tenant.delete', name: 'acme' });
  assert.equal(networksOf(driver.machine), { 'evil/default': '10.224.16.0/20' });
  driver.ok({ type: 'tenant.create', name: 'acme', quota: {} });
  assert.is(networksOf(driver.machine)['acme/default'], '10.224.0.0/20', 'the freed block is the lowest again');
});

test('before the cluster runs state version 5, or without a pool, tenants get no network', () => {
  const old = new Driver();
  old.ok(registerNode('n1'));
  old.ok({ type: 'network.configure', cidr: '10.210.0.0/16', nodePrefixLength: 24 });
  old.ok({ type: 'tenant.create', name: 'acme', quota: {} });
  assert.equal(old.machine.networks(), []);
  assert.is(old.refused({ type: 'network.create', tenant: 'acme', name: 'x' }).code, 'cluster-version-too-old');
  old.ok({ type: 'cluster.version', version: 5 });
  const noPool = old.refused({ type: 'network.create', tenant: 'acme', name: 'x' });
  assert.is(noPool.code, 'conflict');
  assert.match(noPool.message, /no tenant network pool/);
});

test('network.create: a given block or the lowest free; overlap, bad block, unknown tenant, duplicates and limits refused', () => {
  const driver = cluster();
  driver.ok({ type: 'tenant.create', name: 'acme', quota: {} });
  const given = driver.ok({ type: 'network.create', tenant: 'acme', name: 'db', cidr: '10.224.64.0/20' });
  assert.equal(given.value, { tenant: 'acme', name: 'db', cidr: '10.224.64.0/20' });
  assert.is((driver.ok({ type: 'network.create', tenant: 'acme', name: 'web' }).value as { cidr: string }).cidr, '10.224.16.0/20');
  const overlap = driver.refused({ type: 'network.create', tenant: 'acme', name: 'x', cidr: '10.224.64.0/20' });
  assert.equal([overlap.code, overlap.field], ['conflict', 'cidr']);
  assert.match(overlap.message, /overlaps network acme\/db/);
  assert.equal(driver.refused({ type: 'network.create', tenant: 'acme', name: 'x', cidr: '10.224.64.0/22' }).field, 'cidr');
  assert.is(driver.refused({ type: 'network.create', tenant: 'nobody', name: 'x' }).code, 'not-found');
  assert.is(driver.refused({ type: 'network.create', tenant: 'acme', name: 'db' }).code, 'already-exists');
  assert.is(driver.refused({ type: 'network.create', tenant: 'acme', name: 'Bad_Name' }).field, 'name');
  for (let index = 3; index < NETWORKS_PER_TENANT_MAX; index++) driver.ok({ type: 'network.create', tenant: 'acme', name: `n${index}` });
  const many = driver.refused({ type: 'network.create', tenant: 'acme', name: 'one-more' });
  assert.is(many.code, 'limit-reached');
  const small = cluster('10.224.0.0/19');
  small.ok({ type: 'tenant.create', name: 'acme', quota: {} });
  small.ok({ type: 'network.create', tenant: 'acme', name: 'second' });
  const full = small.refused({ type: 'network.create', tenant: 'acme', name: 'third' });
  assert.is(full.code, 'limit-reached');
  assert.match(full.message, /pool 10.224.0.0\/19 is full/);
  small.ok({ type: 'tenant.create', name: 'late', quota: {} });
  assert.ok(small.machine.history().some((entry) => entry.summary.includes('no default network: the tenant pool 10.224.0.0/19 is full')), 'the history line says why there is none');
});

test('attach gives each node its own slice (the same again answers it); detach and leaving give it back; delete waits for none', () => {
  const driver = cluster();
  driver.ok({ type: 'tenant.create', name: 'acme', quota: {} });
  const attach = (node: string) => driver.ok({ type: 'network.attach', tenant: 'acme', name: 'default', node }).value as { cidr: string };
  assert.is(attach('n1').cidr, '10.224.0.0/26');
  assert.is(attach('n2').cidr, '10.224.0.64/26');
  assert.is(attach('n1').cidr, '10.224.0.0/26', 'idempotent');
  assert.is(driver.refused({ type: 'network.attach', tenant: 'acme', name: 'default', node: 'n9' }).field, 'node');
  const busy = driver.refused({ type: 'network.delete', tenant: 'acme', name: 'default' });
  assert.is(busy.code, 'conflict');
  driver.ok({ type: 'network.detach', tenant: 'acme', name: 'default', node: 'n1' });
  assert.is(attach('n3').cidr, '10.224.0.0/26', 'the released slice is the lowest again');
  driver.ok({ type: 'node.remove', id: 'n2' });
  driver.ok({ type: 'node.status', id: 'n3', status: 'left' });
  assert.equal(driver.machine.networks()[0]!.slices, [], 'leaving releases every slice');
  assert.is(driver.refused({ type: 'network.attach', tenant: 'acme', name: 'default', node: 'n2' }).code, 'not-found', 'a node that left gets none');
  driver.ok({ type: 'network.delete', tenant: 'acme', name: 'default' });
  assert.equal(driver.machine.networks(), []);
});

test('detach is refused while an instance of the network is placed on the node and may hold an address (placed back as the leader proposed the detach), then given', () => {
  const driver = cluster();
  driver.ok({ type: 'tenant.create', name: 'acme', quota: {} });
  driver.ok({ type: 'network.attach', tenant: 'acme', name: 'default', node: 'n1' });
  driver.ok({ type: 'app.deploy', spec: appSpec({ tenant: 'acme' }) });
  const id = driver.machine.instances().find((instance) => instance.tenant === 'acme')!.id;
  driver.ok({ type: 'instance.place', placements: [{ id, node: 'n1' }] });
  const refused = driver.refused({ type: 'network.detach', tenant: 'acme', name: 'default', node: 'n1' });
  assert.equal([refused.code, refused.field], ['conflict', 'node']);
  assert.match(refused.message, new RegExp(`instance ${id.replace(/\./g, '\\.')} is placed there`));
  assert.is(driver.machine.networks()[0]!.slices.length, 1, 'the slice is kept');
  driver.ok({ type: 'network.detach', tenant: 'acme', name: 'default', node: 'n2' });
  driver.ok({ type: 'instance.status', updates: [{ id, state: 'running', reportedBy: 'n1', reportedAt: 9 }] });
  driver.ok({ type: 'app.scale', tenant: 'acme', name: 'web', replicas: 0 });
  assert.is(driver.machine.instances().find((instance) => instance.id === id)?.desired, 'stopped', 'retired');
  assert.is(driver.refused({ type: 'network.detach', tenant: 'acme', name: 'default', node: 'n1' }).code, 'conflict', 'retired but still running: it may hold its address');
  driver.ok({ type: 'instance.status', updates: [{ id, state: 'stopped', reportedBy: 'n1', reportedAt: 10 }] });
  driver.ok({ type: 'network.detach', tenant: 'acme', name: 'default', node: 'n1' });
  assert.equal(driver.machine.networks()[0]!.slices, [], 'stopped: the slice is given back');
});

test('200 creates, attaches, detaches, deletes and leaves: no two networks overlap, no slice is held twice, none outside its block', () => {
  const driver = cluster('10.224.0.0/17'); // 8 blocks: the pool fills up and frees again
  const tenants = ['t0', 't1', 't2', 't3'];
  for (const tenant of tenants) driver.ok({ type: 'tenant.create', name: tenant, quota: {} });
  let seed = 7;
  const random = (count: number): number => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return (seed >>> 16) % count;
  };
  const nodes = ['n1', 'n2', 'n3', 'n4', 'n5'];
  for (const id of nodes.slice(3)) driver.ok(registerNode(id));
  let slicesSeen = 0;
  for (let step = 0; step < 200; step++) {
    const tenant = tenants[random(tenants.length)]!;
    const name = ['default', 'a', 'b', 'c'][random(4)]!;
    const node = nodes[random(nodes.length)]!;
    const kind = random(6);
    if (kind === 0) driver.run({ type: 'network.create', tenant, name });
    else if (kind === 1) driver.run({ type: 'network.attach', tenant, name, node });
    else if (kind === 2) driver.run({ type: 'network.detach', tenant, name, node });
    else if (kind === 3) driver.run({ type: 'network.delete', tenant, name });
    else if (kind === 4) driver.run(driver.machine.node(node)?.status === 'left' ? registerNode(node) : { type: 'node.remove', id: node });
    else driver.run({ type: 'network.attach', tenant, name, node });
    const state = decodeState(driver.machine.snapshot());
    assert.is(tenantNetworksProblem(state), undefined, `step ${step}`);
    slicesSeen = Math.max(slicesSeen, [...state.networks.values()].reduce((sum, network) => sum + network.slices.length, 0));
  }
  assert.ok(slicesSeen >= 5, `the run held several slices at once (${slicesSeen})`);
  const restored = ClusterStateMachine.restore(driver.machine.snapshot());
  assert.equal(restored.networks(), driver.machine.networks(), 'snapshots keep networks and slices');
});

test('a state without networks encodes as before', () => {
  const driver = new Driver();
  driver.ok({ type: 'tenant.create', name: 'acme', quota: {} });
  const bytes = driver.machine.snapshot();
  assert.not.ok(Buffer.from(bytes).includes(Buffer.from('networks')), 'no networks field');
});

test.run();
