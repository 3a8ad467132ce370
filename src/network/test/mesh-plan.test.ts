import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { planOverlay } from '../overlay-plan.js';
import { desiredMeshRouting, markText, MESH_CHAIN, MESH_MARK_MASK, MESH_TABLE_BASE, meshRestoreInput, meshRoutingBatch, parseSavedMesh, planMesh, type MeshRouting } from '../mesh-plan.js';

const nodes = [
  { id: 'n1', status: 'up', peerAddress: '10.213.0.11:7071', subnet: '10.210.0.0/24' },
  { id: 'n2', status: 'up', peerAddress: '10.213.0.12:7071', subnet: '10.210.1.0/24' },
  { id: 'n3', status: 'suspect', peerAddress: '10.213.0.13:7071', subnet: '10.210.5.0/24' },
  { id: 'n4', status: 'left', peerAddress: '10.213.0.14:7071', subnet: '10.210.2.0/24' },
];

test('one mark, table and mangle rule per peer, from its subnet index; the restore rule last', () => {
  const mesh = planMesh(planOverlay('n1', nodes)!, '10.210.0.0/16');
  assert.equal(mesh.routes, [
    { peer: 'n2', mac: '02:68:0a:d2:01:00', mark: 0x800000, table: MESH_TABLE_BASE + 1, via: '10.210.1.0' },
    { peer: 'n3', mac: '02:68:0a:d2:05:00', mark: 0x1800000, table: MESH_TABLE_BASE + 5, via: '10.210.5.0' },
  ]);
  assert.equal(mesh.rules, [
    '-i hmvx0 ! -s 10.210.0.0/16 -m conntrack --ctstate NEW -m mac --mac-source 02:68:0a:d2:01:00 -m comment --comment "hivemind: via n2" -j CONNMARK --set-xmark 0x800000/0xffc00000',
    '-i hmvx0 ! -s 10.210.0.0/16 -m conntrack --ctstate NEW -m mac --mac-source 02:68:0a:d2:05:00 -m comment --comment "hivemind: via n3" -j CONNMARK --set-xmark 0x1800000/0xffc00000',
    '-i hm0 -m connmark ! --mark 0x0/0xffc00000 -j CONNMARK --restore-mark --nfmask 0xffc00000 --ctmask 0xffc00000',
  ]);
  for (const route of mesh.routes) {
    assert.is((route.mark & MESH_MARK_MASK) >>> 0, route.mark, 'inside the mask');
    assert.is(route.mark & 0x200000, 0, "apart from the policy chains' bit");
  }
  const other = planMesh(planOverlay('n2', nodes)!, '10.210.0.0/16');
  assert.equal(other.routes.map((route) => [route.peer, route.mark]), [['n1', 0x400000], ['n3', 0x1800000]], 'every node gives a peer the same mark');
});

test('no underlay, no peers, or a peer outside the cluster network or past the marks: no routes for it', () => {
  const alone = planMesh(planOverlay('n1', [nodes[0]!])!, '10.210.0.0/16');
  assert.equal(alone, { rules: [], inputs: ['hm0'], routes: [], skipped: [] }, 'no restore rule without a peer');
  const loopback = planMesh(planOverlay('n1', [{ ...nodes[0]!, peerAddress: '127.0.0.1:7071' }, nodes[1]!])!, '10.210.0.0/16');
  assert.equal(loopback.routes, []);
  const wide = planMesh(planOverlay('n1', [{ ...nodes[0]!, subnet: '10.0.0.0/28' }, { ...nodes[1]!, subnet: '10.0.64.0/28' }, { ...nodes[2]!, subnet: '192.168.0.0/28' }])!, '10.0.0.0/8');
  assert.equal(wide.skipped.map((entry) => entry.id), ['n2', 'n3']);
  assert.match(wide.skipped[0]!.reason, /past the 1023 marks/);
  assert.match(wide.skipped[1]!.reason, /not in 10\.0\.0\.0\/8/);
});

test("a tenant network's bridge here: its containers' answers take the way back too (a restore rule and an ip rule per peer for it)", () => {
  const slices = [
    { network: 'acme/default', node: 'n1', cidr: '10.224.0.0/26' },
    { network: 'acme/default', node: 'n2', cidr: '10.224.0.64/26' },
  ];
  const mesh = planMesh(planOverlay('n1', nodes, slices)!, '10.210.0.0/16');
  const bridge = mesh.inputs[1]!;
  assert.match(bridge, /^hmt[0-9a-f]{10}$/);
  assert.equal(mesh.inputs, ['hm0', bridge], "hm0 and the slice's bridge; a peer's slice is routed, not a bridge here");
  assert.equal(mesh.rules.slice(2), [
    '-i hm0 -m connmark ! --mark 0x0/0xffc00000 -j CONNMARK --restore-mark --nfmask 0xffc00000 --ctmask 0xffc00000',
    `-i ${bridge} -m connmark ! --mark 0x0/0xffc00000 -j CONNMARK --restore-mark --nfmask 0xffc00000 --ctmask 0xffc00000`,
  ]);
  const routing = desiredMeshRouting(mesh);
  assert.equal([...routing.rules], [
    ['fwmark 0x800000/0xffc00000 iif hm0', MESH_TABLE_BASE + 1],
    [`fwmark 0x800000/0xffc00000 iif ${bridge}`, MESH_TABLE_BASE + 1],
    ['fwmark 0x1800000/0xffc00000 iif hm0', MESH_TABLE_BASE + 5],
    [`fwmark 0x1800000/0xffc00000 iif ${bridge}`, MESH_TABLE_BASE + 5],
  ]);
  // The slice given back: its bridge's rules go, hm0's stay.
  const after = desiredMeshRouting(planMesh(planOverlay('n1', nodes)!, '10.210.0.0/16'));
  assert.equal(meshRoutingBatch(after, routing), [
    `rule del priority 4210 fwmark 0x800000/0xffc00000 iif ${bridge} lookup ${MESH_TABLE_BASE + 1}`,
    `rule del priority 4210 fwmark 0x1800000/0xffc00000 iif ${bridge} lookup ${MESH_TABLE_BASE + 5}`,
  ]);
});

test('routing batch: rules and routes put or removed by difference, nothing when they agree', () => {
  const desired = desiredMeshRouting(planMesh(planOverlay('n1', nodes)!, '10.210.0.0/16'));
  assert.equal(meshRoutingBatch(desired, desired), []);
  const empty: MeshRouting = { rules: new Map(), routes: new Map() };
  assert.equal(meshRoutingBatch(desired, empty), [
    `route replace default via 10.210.1.0 dev hmvx0 onlink table ${MESH_TABLE_BASE + 1}`,
    `route replace default via 10.210.5.0 dev hmvx0 onlink table ${MESH_TABLE_BASE + 5}`,
    `rule add priority 4210 fwmark 0x800000/0xffc00000 iif hm0 lookup ${MESH_TABLE_BASE + 1}`,
    `rule add priority 4210 fwmark 0x1800000/0xffc00000 iif hm0 lookup ${MESH_TABLE_BASE + 5}`,
  ]);
  const stale: MeshRouting = { rules: new Map([['fwmark 0x800000/0xffc00000 iif hm0', MESH_TABLE_BASE + 1], ['fwmark 0xc00000/0xffc00000 iif hm0', MESH_TABLE_BASE + 2]]), routes: new Map([[MESH_TABLE_BASE + 1, '10.210.1.0'], [MESH_TABLE_BASE + 2, '10.210.2.0']]) };
  assert.equal(meshRoutingBatch(desired, stale), [
    `rule del priority 4210 fwmark 0xc00000/0xffc00000 iif hm0 lookup ${MESH_TABLE_BASE + 2}`,
    `route del default table ${MESH_TABLE_BASE + 2}`,
    `route replace default via 10.210.5.0 dev hmvx0 onlink table ${MESH_TABLE_BASE + 5}`,
    `rule add priority 4210 fwmark 0x1800000/0xffc00000 iif hm0 lookup ${MESH_TABLE_BASE + 5}`,
  ]);
  assert.is(markText(MESH_MARK_MASK), '0xffc00000');
});

test('routing batch: a rule on the mark alone (an older agent\'s) is replaced by one on the mark from the bridge', () => {
  const desired = desiredMeshRouting(planMesh(planOverlay('n1', nodes)!, '10.210.0.0/16'));
  assert.equal([...desired.rules.keys()], ['fwmark 0x800000/0xffc00000 iif hm0', 'fwmark 0x1800000/0xffc00000 iif hm0'], 'only answers routed in from the bridge take a peer\'s table');
  const unbound: MeshRouting = { rules: new Map([['fwmark 0x800000/0xffc00000', MESH_TABLE_BASE + 1]]), routes: new Map([[MESH_TABLE_BASE + 1, '10.210.1.0'], [MESH_TABLE_BASE + 5, '10.210.5.0']]) };
  assert.equal(meshRoutingBatch(desired, unbound), [
    `rule del priority 4210 fwmark 0x800000/0xffc00000 lookup ${MESH_TABLE_BASE + 1}`,
    `rule add priority 4210 fwmark 0x800000/0xffc00000 iif hm0 lookup ${MESH_TABLE_BASE + 1}`,
    `rule add priority 4210 fwmark 0x1800000/0xffc00000 iif hm0 lookup ${MESH_TABLE_BASE + 5}`,
  ]);
});

test('mangle restore: the chain declared and filled, the jump first in PREROUTING (moved there when behind another rule)', () => {
  const absent = parseSavedMesh(['*mangle', ':PREROUTING ACCEPT [0:0]', 'COMMIT'].join('\n'));
  assert.equal(absent, { exists: false, text: '', hooked: false, misplaced: false });
  assert.equal(meshRestoreInput(['-i hm0 -j RETURN'], absent).split('\n'), ['*mangle', `:${MESH_CHAIN} - [0:0]`, `-A ${MESH_CHAIN} -i hm0 -j RETURN`, `-I PREROUTING 1 -m comment --comment "hivemind: mesh" -j ${MESH_CHAIN}`, 'COMMIT', '']);
  const behind = parseSavedMesh(['*mangle', `:${MESH_CHAIN} - [0:0]`, '-A PREROUTING -j OTHER', `-A PREROUTING -m comment --comment "hivemind: mesh" -j ${MESH_CHAIN}`, `-A ${MESH_CHAIN} -i hm0 -j RETURN`, 'COMMIT'].join('\n'));
  assert.equal(behind, { exists: true, text: `-A ${MESH_CHAIN} -i hm0 -j RETURN`, hooked: false, misplaced: true });
  assert.ok(meshRestoreInput([], behind).includes(`-D PREROUTING -m comment --comment "hivemind: mesh" -j ${MESH_CHAIN}\n-I PREROUTING 1`));
  const first = parseSavedMesh(['*mangle', `-A PREROUTING -m comment --comment "hivemind: mesh" -j ${MESH_CHAIN}`, '-A PREROUTING -j OTHER', 'COMMIT'].join('\n'));
  assert.equal([first.hooked, first.misplaced], [true, false]);
  assert.ok(!meshRestoreInput([], first).includes('PREROUTING'), 'a jump in place is left alone');
});

test.run();
