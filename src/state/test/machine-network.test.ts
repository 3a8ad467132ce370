import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ClusterStateMachine } from '../machine.js';
import { clusterNetworkProblem, formatIpv4, lowestFreeSubnet, nodeSubnetAt, parseCidr, parseIpv4 } from '../ipam.js';
import { Driver, registerNode } from './fixtures.js';

const configure = { type: 'network.configure', cidr: '10.210.0.0/16', nodePrefixLength: 24 } as const;

function subnets(machine: ClusterStateMachine): Record<string, string | undefined> {
  return Object.fromEntries(machine.nodes().map((node) => [node.id, node.subnet]));
}

test('CIDR arithmetic: parse, format, host bits, cuts', () => {
  assert.is(parseIpv4('10.210.3.0'), 10 * 2 ** 24 + 210 * 2 ** 16 + 3 * 256);
  assert.is(formatIpv4(parseIpv4('255.0.17.1')!), '255.0.17.1');
  for (const bad of ['10.210.0', '10.210.0.256', '10.210.00.1', 'a.b.c.d', '']) assert.is(parseIpv4(bad), undefined, bad);
  assert.equal(parseCidr('10.210.0.0/16'), { ok: true, network: { base: parseIpv4('10.210.0.0')!, prefixLength: 16 } });
  const hostBits = parseCidr('10.210.0.1/16');
  assert.ok(!hostBits.ok && hostBits.reason.includes('10.210.0.0/16'), JSON.stringify(hostBits));
  assert.is(parseCidr('10.210.0.0/33').ok, false);
  assert.is(parseCidr('10.210.0.0').ok, false);
  const cluster = { cidr: '10.210.0.0/16', nodePrefixLength: 24, configuredIndex: 1 };
  assert.is(nodeSubnetAt(cluster, 0), '10.210.0.0/24');
  assert.is(nodeSubnetAt(cluster, 255), '10.210.255.0/24');
  assert.is(nodeSubnetAt({ ...cluster, nodePrefixLength: 28 }, 17), '10.210.1.16/28');
  assert.is(clusterNetworkProblem('10.210.0.0/16', 16)?.field, 'nodePrefixLength');
  assert.is(clusterNetworkProblem('10.210.0.0/16', 29)?.field, 'nodePrefixLength');
  assert.is(clusterNetworkProblem('10.0.0.0/7', 24)?.field, 'cidr');
  assert.is(clusterNetworkProblem('10.210.0.0/16', 24), undefined);
  assert.is(lowestFreeSubnet({ ...cluster, cidr: '10.210.0.0/23' }, [{ subnet: '10.210.0.0/24' }, { subnet: '10.210.1.0/24' }] as never), undefined);
});

test('network.configure gives subnets to nodes registered before it; later nodes get one at registration', () => {
  const driver = new Driver();
  driver.ok(registerNode('n1'));
  driver.ok(registerNode('n2'));
  assert.equal(subnets(driver.machine), { n1: undefined, n2: undefined });
  const result = driver.ok(configure);
  assert.equal(result.value, { cidr: '10.210.0.0/16', nodePrefixLength: 24, allocated: [{ id: 'n1', subnet: '10.210.0.0/24' }, { id: 'n2', subnet: '10.210.1.0/24' }], unallocated: [] });
  assert.equal(driver.machine.network(), { cidr: '10.210.0.0/16', nodePrefixLength: 24, configuredIndex: 3 });
  driver.ok(registerNode('n3'));
  assert.equal(subnets(driver.machine), { n1: '10.210.0.0/24', n2: '10.210.1.0/24', n3: '10.210.2.0/24' });
  assert.ok(driver.machine.nodeDirectory().every((entry) => entry.subnet !== undefined), 'the directory shows subnets');
  // Again, the same: accepted, nothing changes, nothing in history.
  const historyLength = driver.machine.history().length;
  driver.ok(configure);
  assert.is(driver.machine.history().length, historyLength);
  // Re-registering (new addresses) keeps the subnet.
  driver.ok({ ...registerNode('n2'), addresses: { api: 'x:1', peer: 'x:2', gossip: 'x:3' } } as never);
  assert.is(driver.machine.node('n2')?.subnet, '10.210.1.0/24');
});

test('a node that leaves gives its subnet back; the lowest free one goes to the next node', () => {
  const driver = new Driver();
  driver.ok(configure);
  for (const id of ['n1', 'n2', 'n3']) driver.ok(registerNode(id));
  driver.ok({ type: 'node.remove', id: 'n2' });
  assert.is(driver.machine.node('n2')?.subnet, undefined);
  driver.ok({ type: 'node.status', id: 'n3', status: 'left' });
  assert.is(driver.machine.node('n3')?.subnet, undefined);
  driver.ok({ type: 'node.status', id: 'n1', status: 'down' });
  assert.is(driver.machine.node('n1')?.subnet, '10.210.0.0/24', 'a node that is down keeps its subnet');
  driver.ok(registerNode('n4'));
  assert.is(driver.machine.node('n4')?.subnet, '10.210.1.0/24');
  driver.ok(registerNode('n2'));
  assert.is(driver.machine.node('n2')?.subnet, '10.210.2.0/24', 'a node back from leaving gets a subnet again');
});

test('no two nodes ever hold one subnet, through joins, leaves and returns', () => {
  const driver = new Driver();
  driver.ok({ ...configure, cidr: '10.210.0.0/20' });
  for (let step = 0; step < 200; step++) {
    const id = `n${(step * 7) % 13}`;
    const node = driver.machine.node(id);
    if (node === undefined || node.status === 'left' || step % 3 === 0) driver.ok(registerNode(id));
    else driver.ok({ type: 'node.remove', id });
    const held = driver.machine.nodes().filter((record) => record.status !== 'left').map((record) => record.subnet);
    assert.ok(held.every((subnet) => subnet !== undefined), `every live node has a subnet at step ${step}`);
    assert.is(new Set(held).size, held.length, `subnets unique at step ${step}: ${held.join(' ')}`);
  }
});

test('a full cluster network refuses registration; a changed or bad configure is refused', () => {
  const driver = new Driver();
  driver.ok(registerNode('n1'));
  driver.ok(registerNode('n2'));
  driver.ok(registerNode('n3'));
  const result = driver.ok({ type: 'network.configure', cidr: '10.210.0.0/23', nodePrefixLength: 24 });
  assert.equal((result.value as { unallocated: string[] }).unallocated, ['n3']);
  const full = driver.refused(registerNode('n4'));
  assert.is(full.code, 'limit-reached');
  assert.ok(full.message.includes('10.210.0.0/23 has no free /24'), full.message);
  const changed = driver.refused(configure);
  assert.is(changed.code, 'conflict');
  assert.is(changed.field, 'cidr');
  assert.ok(changed.message.includes('cannot change'), changed.message);
  assert.is(driver.refused({ ...configure, cidr: '10.210.0.1/16' }).field, 'cidr');
  assert.is(driver.refused({ ...configure, nodePrefixLength: 12 }).field, 'nodePrefixLength');
  assert.is(driver.refused({ ...configure, cidr: 'ten' }).code, 'invalid-argument');
  driver.ok({ type: 'node.remove', id: 'n1' });
  const again = driver.ok({ type: 'network.configure', cidr: '10.210.0.0/23', nodePrefixLength: 24 });
  assert.equal((again.value as { allocated: unknown }).allocated, [{ id: 'n3', subnet: '10.210.0.0/24' }]);
});

test('snapshots keep the network and the subnets; a state without a network encodes as before', () => {
  const driver = new Driver();
  driver.ok(registerNode('n1'));
  const before = driver.machine.snapshot();
  assert.is(ClusterStateMachine.restore(before).network(), undefined);
  driver.ok(configure);
  const restored = ClusterStateMachine.restore(driver.machine.snapshot());
  assert.equal(restored.network(), driver.machine.network());
  assert.is(restored.node('n1')?.subnet, '10.210.0.0/24');
  assert.equal(restored.snapshot(), driver.machine.snapshot());
  // An old snapshot (no network field) goes on: the next configure allocates.
  const old = new Driver(ClusterStateMachine.restore(before));
  old.ok(configure);
  assert.is(old.machine.node('n1')?.subnet, '10.210.0.0/24');
});

test.run();
