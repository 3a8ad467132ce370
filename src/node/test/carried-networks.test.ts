import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { carriedNetworks, tenantNetworksEverywhere } from '../carried-networks.js';
import { clusterVersionToRaise } from '../../state/apply-cluster.js';
import { emptyState } from '../../state/state.js';
import { STATE_VERSION_LABEL, type TenantNetwork } from '../../state/types.js';
import { STATE_VERSION, TENANT_NETWORKS_EVERYWHERE_VERSION } from '../../state/version.js';

function network(tenant: string, name: string): TenantNetwork {
  return { tenant, name, cidr: '10.224.0.0/20', createdIndex: 1, slices: [] };
}

test('at the cluster version of this release: every node carries every tenant network, whatever its switch says', () => {
  assert.ok(TENANT_NETWORKS_EVERYWHERE_VERSION <= STATE_VERSION, 'this code can reach it');
  assert.ok(tenantNetworksEverywhere(TENANT_NETWORKS_EVERYWHERE_VERSION));
  const networks = [network('acme', 'default'), network('evil', 'default')];
  for (const setting of ['none', 'all', ['acme']] as const) assert.equal(carriedNetworks(networks, true, setting), networks, JSON.stringify(setting));
});

test('below it (a member of an older release, down ones too): each node carries what its own switch names, as the older nodes do', () => {
  assert.not.ok(tenantNetworksEverywhere(TENANT_NETWORKS_EVERYWHERE_VERSION - 1));
  const networks = [network('acme', 'default'), network('acme', 'back'), network('evil', 'default')];
  assert.equal(carriedNetworks(networks, false, 'none'), []);
  assert.equal(carriedNetworks(networks, false, 'all'), networks);
  assert.equal(carriedNetworks(networks, false, ['acme']).map((entry) => `${entry.tenant}/${entry.name}`), ['acme/default', 'acme/back']);
});

test('the cluster version is not raised to it while a member (a down one too) runs an older release', () => {
  const state = emptyState();
  state.clusterVersion = TENANT_NETWORKS_EVERYWHERE_VERSION - 1;
  const record = (id: string, status: 'up' | 'down' | 'left', version: number) => ({ id, status, labels: { [STATE_VERSION_LABEL]: String(version) } });
  const put = (entries: ReturnType<typeof record>[]) => {
    state.nodes.clear();
    for (const entry of entries) state.nodes.set(entry.id, entry as never);
  };
  put([record('a', 'up', STATE_VERSION), record('b', 'down', TENANT_NETWORKS_EVERYWHERE_VERSION - 1)]);
  assert.is(clusterVersionToRaise(state), undefined);
  put([record('a', 'up', STATE_VERSION), record('b', 'down', STATE_VERSION), record('c', 'left', 6)]);
  assert.ok((clusterVersionToRaise(state) ?? 0) >= TENANT_NETWORKS_EVERYWHERE_VERSION, 'every member of this release (one that left does not count)');
});

test.run();
