import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { configureProposal } from '../configure.js';
import { bridgeMacOf, changeCount, desiredEntries, diffEntries, hostOf, planOverlay, vtepMacOf, type OverlayNode } from '../overlay-plan.js';

const nodes: OverlayNode[] = [
  { id: 'n2', status: 'up', peerAddress: '10.213.0.12:7071', subnet: '10.210.1.0/24' },
  { id: 'n1', status: 'up', peerAddress: '10.213.0.11:7071', subnet: '10.210.0.0/24' },
  { id: 'n3', status: 'down', peerAddress: '10.213.0.13:7071', subnet: '10.210.2.0/24' },
  { id: 'n4', status: 'left', peerAddress: '10.213.0.14:7071' },
  { id: 'n5', status: 'up', peerAddress: '10.213.0.15:7071' },
  { id: 'n6', status: 'up', peerAddress: 'db.example:7071', subnet: '10.210.3.0/24' },
];

test('the plan: own gateway and VTEP from the subnet; peers sorted, left nodes out, the rest skipped with why', () => {
  const plan = planOverlay('n1', nodes);
  assert.ok(plan);
  assert.equal(plan.local, { subnet: '10.210.0.0/24', gateway: '10.210.0.1', gatewayCidr: '10.210.0.1/24', vtepAddress: '10.210.0.0', vtepMac: '02:68:0a:d2:00:00', bridgeMac: '02:67:0a:d2:00:00', underlay: '10.213.0.11', slices: [] });
  assert.equal(plan.peers.map((peer) => peer.id), ['n2', 'n3'], 'a down node keeps its entries');
  assert.equal(plan.peers[0], { id: 'n2', subnet: '10.210.1.0/24', underlay: '10.213.0.12', vtepAddress: '10.210.1.0', vtepMac: '02:68:0a:d2:01:00', slices: [] });
  assert.equal(plan.skipped.map((entry) => entry.id), ['n5', 'n6']);
  assert.is(planOverlay('n5', nodes), undefined, 'no subnet yet: no plan');
  assert.is(planOverlay('n4', nodes), undefined);
  assert.is(planOverlay('n1', [{ ...nodes[1]!, peerAddress: '127.0.0.1:7071' }])?.local.underlay, undefined, 'loopback is no underlay');
  assert.is(hostOf('[::1]:7071'), '::1');
  assert.is(vtepMacOf('10.210.255.16/28'), '02:68:0a:d2:ff:10');
  assert.is(bridgeMacOf('10.210.255.16/28'), '02:67:0a:d2:ff:10');
});

test('entries and their diff: nothing to do when the kernel agrees; extra, missing and changed entries found', () => {
  const plan = planOverlay('n1', nodes)!;
  const desired = desiredEntries(plan);
  assert.equal([...desired.routes], [['10.210.1.0/24', '10.210.1.0'], ['10.210.2.0/24', '10.210.2.0']]);
  assert.equal([...desired.forwarding], [['02:68:0a:d2:01:00', '10.213.0.12'], ['02:68:0a:d2:02:00', '10.213.0.13']]);
  assert.is(changeCount(diffEntries(desired, desired)), 0);
  const current = { routes: new Map(desired.routes), neighbours: new Map(desired.neighbours), forwarding: new Map(desired.forwarding) };
  current.routes.delete('10.210.1.0/24');
  current.forwarding.set('02:68:0a:d2:02:00', '10.213.0.99');
  current.neighbours.set('10.210.9.0', '02:68:0a:d2:09:00');
  const changes = diffEntries(desired, current);
  assert.equal(changes.put.routes, [['10.210.1.0/24', '10.210.1.0']]);
  assert.equal(changes.put.forwarding, [['02:68:0a:d2:02:00', '10.213.0.13']]);
  assert.equal(changes.remove.neighbours, ['10.210.9.0']);
  assert.is(changeCount(changes), 3);
  // A node on loopback has no VXLAN device: no entries.
  assert.is(desiredEntries(planOverlay('n1', [{ ...nodes[1]!, peerAddress: '127.0.0.1:7071' }, nodes[0]!])!).routes.size, 0);
});

test('the leader configures an unconfigured network, repeats the configured one when a node lacks a subnet, else nothing', () => {
  assert.equal(configureProposal(undefined, [], '10.99.0.0/16'), { type: 'network.configure', cidr: '10.99.0.0/16', nodePrefixLength: 24 });
  const network = { cidr: '10.210.0.0/16', nodePrefixLength: 24, configuredIndex: 3 };
  assert.is(configureProposal(network, [{ status: 'up', subnet: '10.210.0.0/24' }, { status: 'left' }], '10.99.0.0/16'), undefined);
  assert.equal(configureProposal(network, [{ status: 'up' }], '10.99.0.0/16'), { type: 'network.configure', cidr: '10.210.0.0/16', nodePrefixLength: 24 });
});

test('the service range: proposed with the network, or alone when the network has none; the configured one repeated; none from a leader without the overlay', () => {
  const done = [{ status: 'up', subnet: '10.210.0.0/24' }];
  assert.equal(configureProposal(undefined, [], '10.99.0.0/16', '10.98.0.0/16'), { type: 'network.configure', cidr: '10.99.0.0/16', nodePrefixLength: 24, serviceCidr: '10.98.0.0/16' });
  const network = { cidr: '10.210.0.0/16', nodePrefixLength: 24, configuredIndex: 3 };
  assert.equal(configureProposal(network, done, '10.99.0.0/16', '10.98.0.0/16'), { type: 'network.configure', cidr: '10.210.0.0/16', nodePrefixLength: 24, serviceCidr: '10.98.0.0/16' });
  assert.is(configureProposal(network, done, '10.99.0.0/16'), undefined, 'no overlay on the leader: no range');
  const configured = { ...network, serviceCidr: '10.211.0.0/16' };
  assert.is(configureProposal(configured, done, '10.99.0.0/16', '10.98.0.0/16'), undefined);
  assert.equal(configureProposal(configured, [{ status: 'up' }], '10.99.0.0/16'), { type: 'network.configure', cidr: '10.210.0.0/16', nodePrefixLength: 24, serviceCidr: '10.211.0.0/16' });
});

test('the tenant pool: proposed once the leader gives one (cluster version 5, overlay on); the configured one repeated, never another', () => {
  const done = [{ status: 'up', subnet: '10.210.0.0/24' }];
  const network = { cidr: '10.210.0.0/16', nodePrefixLength: 24, configuredIndex: 3, serviceCidr: '10.211.0.0/16' };
  assert.equal(configureProposal(network, done, '10.99.0.0/16', '10.98.0.0/16', '10.224.0.0/12'), { type: 'network.configure', cidr: '10.210.0.0/16', nodePrefixLength: 24, serviceCidr: '10.211.0.0/16', tenantCidr: '10.224.0.0/12' });
  assert.is(configureProposal(network, done, '10.99.0.0/16', '10.98.0.0/16'), undefined, 'no pool to give: nothing');
  const configured = { ...network, tenantCidr: '10.224.0.0/12' };
  assert.is(configureProposal(configured, done, '10.99.0.0/16', '10.98.0.0/16', '10.240.0.0/12'), undefined);
  assert.equal(configureProposal(configured, [{ status: 'up' }], '10.99.0.0/16', undefined, '10.240.0.0/12')?.tenantCidr, '10.224.0.0/12', 'the configured pool, not the leader\'s');
  assert.equal(configureProposal(undefined, [], '10.99.0.0/16', '10.98.0.0/16', '10.224.0.0/12')?.tenantCidr, '10.224.0.0/12');
});

test('tenant network slices: the own ones become local bridges, a peer\'s are routed to its VTEP', () => {
  const slices = [
    { network: 'acme/default', node: 'n1', cidr: '10.224.0.0/26' },
    { network: 'acme/default', node: 'n2', cidr: '10.224.0.64/26' },
    { network: 'evil/default', node: 'n2', cidr: '10.224.16.0/26' },
    { network: 'evil/default', node: 'n4', cidr: '10.224.16.64/26' },
  ];
  const plan = planOverlay('n1', nodes, slices)!;
  assert.equal(plan.local.slices.map((slice) => [slice.network, slice.cidr, slice.gateway, slice.gatewayCidr, slice.bridgeMac]), [['acme/default', '10.224.0.0/26', '10.224.0.1', '10.224.0.1/26', '02:67:0a:e0:00:00']]);
  assert.equal(plan.peers.find((peer) => peer.id === 'n2')!.slices, ['10.224.0.64/26', '10.224.16.0/26']);
  const entries = desiredEntries(plan);
  assert.is(entries.routes.get('10.224.0.64/26'), '10.210.1.0');
  assert.is(entries.routes.get('10.224.16.0/26'), '10.210.1.0');
  assert.not.ok(entries.routes.has('10.224.0.0/26'), 'not its own');
  assert.not.ok(entries.routes.has('10.224.16.64/26'), 'not a left node\'s');
  assert.equal(planOverlay('n1', nodes)!.local.slices, [], 'none given: none');
});

test.run();

