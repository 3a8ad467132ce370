import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { devicesBatch, goneNetworkStores, underlayMtuOf, type LinkState } from '../device-plan.js';
import { networkBridgeOf, planOverlay, type OverlayNode } from '../overlay-plan.js';

const nodes: OverlayNode[] = [
  { id: 'n1', status: 'up', peerAddress: '10.213.0.11:7071', subnet: '10.210.0.0/24' },
  { id: 'n2', status: 'up', peerAddress: '10.213.0.12:7071', subnet: '10.210.1.0/24' },
];
const plan = planOverlay('n1', nodes)!;
const options = { vxlanPort: 4789, mtu: 1450, clusterCidr: '10.210.0.0/16' };
const underlay: LinkState = { ifname: 'eth0', mtu: 1500, addr_info: [{ family: 'inet', local: '10.213.0.11', prefixlen: 24 }] };
const right: LinkState[] = [
  underlay,
  { ifname: 'hm0', mtu: 1450, address: '02:67:0a:d2:00:00', linkinfo: { info_kind: 'bridge' }, addr_info: [{ family: 'inet', local: '10.210.0.1', prefixlen: 24 }, { family: 'inet6', local: 'fe80::1', prefixlen: 64 }] },
  { ifname: 'hmvx0', mtu: 1450, address: '02:68:0a:d2:00:00', linkinfo: { info_kind: 'vxlan', info_data: { id: 4210, local: '10.213.0.11', port: 4789, learning: false } }, addr_info: [{ family: 'inet', local: '10.210.0.0', prefixlen: 32 }] },
];

test('devices right: only the idempotent settings, in one batch, nothing reported changed', () => {
  const batch = devicesBatch(plan, options, right);
  assert.equal(batch.changed, []);
  assert.equal(batch.lines, ['link set hm0 mtu 1450 up', 'addr replace 10.210.0.0/32 dev hmvx0', 'link set hmvx0 up']);
  assert.is(underlayMtuOf(right, '10.213.0.11'), 1500);
  assert.is(underlayMtuOf(right, '192.0.2.1'), 1500, 'no link holds it: 1500');
  assert.is(underlayMtuOf([{ ...underlay, mtu: 9000 }], '10.213.0.11'), 9000);
});

test('no devices: the bridge and the VXLAN device made, addressed and up, in order', () => {
  const batch = devicesBatch(plan, options, [underlay]);
  assert.equal(batch.lines, [
    'link add hm0 type bridge',
    'addr replace 10.210.0.1/24 dev hm0',
    'link set hm0 address 02:67:0a:d2:00:00',
    'link set hm0 mtu 1450 up',
    'link add hmvx0 type vxlan id 4210 dstport 4789 local 10.213.0.11 nolearning',
    'link set hmvx0 address 02:68:0a:d2:00:00 mtu 1450',
    'addr replace 10.210.0.0/32 dev hmvx0',
    'link set hmvx0 up',
  ]);
  assert.is(batch.changed.length, 4);
});

test('an old gateway of the cluster network goes, other addresses stay; a VXLAN device with other settings is made again', () => {
  const links = right.map((link) => ({ ...link }));
  links[1]!.addr_info = [{ family: 'inet', local: '10.210.7.1', prefixlen: 24 }, { family: 'inet', local: '192.168.5.1', prefixlen: 24 }];
  links[2]!.linkinfo = { info_kind: 'vxlan', info_data: { id: 4210, local: '10.213.0.11', port: 8472, learning: false } };
  const batch = devicesBatch(plan, options, links);
  assert.ok(batch.lines.includes('addr del 10.210.7.1/24 dev hm0'));
  assert.not.ok(batch.lines.some((line) => line.includes('192.168.5.1')), 'an address outside the cluster network is not ours');
  assert.ok(batch.lines.includes('addr replace 10.210.0.1/24 dev hm0'));
  const deleted = batch.lines.indexOf('link delete hmvx0');
  assert.ok(deleted >= 0 && deleted < batch.lines.findIndex((line) => line.startsWith('link add hmvx0')), 'deleted before it is made again');
});

test('no underlay: no VXLAN device (one left is deleted)', () => {
  const loopback = planOverlay('n1', [{ ...nodes[0]!, peerAddress: '127.0.0.1:7071' }])!;
  const batch = devicesBatch(loopback, options, right);
  assert.equal(batch.lines.at(-1), 'link delete hmvx0');
  assert.not.ok(batch.lines.some((line) => line.includes('vxlan')));
});

test('tenant network slices: a bridge each (gateway, fixed MAC, MTU, up); a bridge whose slice is gone is removed', () => {
  const slices = [{ network: 'acme/default', node: 'n1', cidr: '10.224.0.0/26' }, { network: 'acme/default', node: 'n2', cidr: '10.224.0.64/26' }];
  const withSlice = planOverlay('n1', nodes, slices)!;
  const bridge = networkBridgeOf('acme/default');
  assert.match(bridge, /^hmt[0-9a-f]{10}$/);
  const made = devicesBatch(withSlice, options, right);
  assert.equal(made.lines.slice(1, 6), [`link add ${bridge} type bridge`, `addr replace 10.224.0.1/26 dev ${bridge}`, `link set ${bridge} address 02:67:0a:e0:00:00`, `link set ${bridge} mtu 1450 up`, 'addr replace 10.210.0.0/32 dev hmvx0']);
  const present: LinkState = { ifname: bridge, mtu: 1450, address: '02:67:0a:e0:00:00', addr_info: [{ family: 'inet', local: '10.224.0.1', prefixlen: 26 }] };
  assert.equal(devicesBatch(withSlice, options, [...right, present]).changed, [], 'right: nothing changed');
  const stale = devicesBatch(plan, options, [...right, present, { ifname: 'hmtother', addr_info: [] }]);
  assert.equal(stale.lines.filter((line) => line.startsWith('link delete')), [`link delete ${bridge}`], 'only a tenant network bridge, only when no slice is here');
  const held = devicesBatch(plan, options, [...right, present, { ifname: 'veth1234', master: bridge }]);
  assert.equal(held.lines.filter((line) => line.startsWith('link delete')), [], 'never while a container hangs on it');
  const moved = devicesBatch(withSlice, options, [...right, { ...present, addr_info: [{ family: 'inet', local: '10.224.0.65', prefixlen: 26 }] }]);
  assert.equal(moved.lines.filter((line) => line.includes(bridge) && line.startsWith('addr')), [`addr del 10.224.0.65/26 dev ${bridge}`, `addr replace 10.224.0.1/26 dev ${bridge}`]);
});

test("a slice's address store goes with its bridge: gone or deleted by the same batch, kept while its slice is here or a container hangs on it", () => {
  const [kept, deleted, absent, held] = ['acme/default', 'acme/back', 'beta/default', 'gamma/default'].map(networkBridgeOf) as [string, string, string, string];
  const withSlice = planOverlay('n1', nodes, [{ network: 'acme/default', node: 'n1', cidr: '10.224.0.0/26' }])!;
  const bridgeLink = (ifname: string): LinkState => ({ ifname, addr_info: [] });
  const links = [...right, bridgeLink(kept), bridgeLink(deleted), bridgeLink(held), { ifname: 'veth99', master: held }];
  const stores = [kept, deleted, absent, held, 'hm-tenant-test', 'notes'];
  assert.equal(goneNetworkStores(stores, withSlice, links), [deleted, absent]);
  const batch = devicesBatch(withSlice, options, links);
  assert.equal(batch.lines.filter((line) => line.startsWith('link delete')), [`link delete ${deleted}`], 'the batch deletes the same bridge the store goes with');
  assert.equal(goneNetworkStores(stores, plan, links), [kept, deleted, absent], 'no slice here any more: every store but the one a container holds');
});

test.run();

