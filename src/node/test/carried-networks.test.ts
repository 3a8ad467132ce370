import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { carriedNetworks, tenantNetworksEverywhere } from '../carried-networks.js';
import { TENANT_NETWORKS_ALWAYS, TENANT_NETWORKS_LABEL, type TenantNetwork } from '../../state/types.js';

const current = { [TENANT_NETWORKS_LABEL]: TENANT_NETWORKS_ALWAYS, 'hivemind.state-version': '6' };
const older = { 'hivemind.state-version': '6' };

function network(tenant: string, name: string): TenantNetwork {
  return { tenant, name, cidr: '10.224.0.0/20', createdIndex: 1, slices: [] };
}

test('every member of this release: every node carries every tenant network, whatever its switch says', () => {
  const nodes = [{ status: 'up', labels: current }, { status: 'down', labels: current }, { status: 'left', labels: older }];
  assert.ok(tenantNetworksEverywhere(nodes), 'a node that left does not hold it back');
  const networks = [network('acme', 'default'), network('evil', 'default')];
  for (const setting of ['none', 'all', ['acme']] as const) assert.equal(carriedNetworks(networks, true, setting), networks, JSON.stringify(setting));
});

test('a member of an older release (down ones too) holds it back: each node carries what its own switch names, as the older nodes do', () => {
  assert.not.ok(tenantNetworksEverywhere([{ status: 'up', labels: current }, { status: 'down', labels: older }]));
  assert.not.ok(tenantNetworksEverywhere([{ status: 'up', labels: { ...current, [TENANT_NETWORKS_LABEL]: 'sometimes' } }]));
  assert.not.ok(tenantNetworksEverywhere([]), 'no members: not known');
  const networks = [network('acme', 'default'), network('acme', 'back'), network('evil', 'default')];
  assert.equal(carriedNetworks(networks, false, 'none'), []);
  assert.equal(carriedNetworks(networks, false, 'all'), networks);
  assert.equal(carriedNetworks(networks, false, ['acme']).map((entry) => `${entry.tenant}/${entry.name}`), ['acme/default', 'acme/back']);
});

test.run();
