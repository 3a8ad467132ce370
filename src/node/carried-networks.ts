/**
 * Which tenant networks a node carries (puts containers on, routes to,
 * lists in the node network file). Once the cluster version reaches
 * TENANT_NETWORKS_EVERYWHERE_VERSION (the leader raises it only when every
 * member, down ones included, runs a release that applies it), every node
 * carries every tenant network the state holds: a fact of the replicated
 * state, so no two nodes disagree and no flag has to be kept equal across
 * them. Before that (a rolling upgrade from a release where
 * `--tenant-networks` was a per-node switch, off by default), each node
 * keeps carrying what its own switch names, as the older nodes do, so that
 * a container started on an upgraded node does not land on a network the
 * older nodes do not route. Pure.
 */
import type { TenantNetwork } from '../state/types.js';
import { TENANT_NETWORKS_EVERYWHERE_VERSION } from '../state/version.js';

/** Whether every node carries every tenant network at this cluster version. */
export function tenantNetworksEverywhere(clusterVersion: number): boolean {
  return clusterVersion >= TENANT_NETWORKS_EVERYWHERE_VERSION;
}

/** The networks a node carries: every one once `everywhere`; before, those of the tenants its former switch names (`'all'`, `'none'` or a list). */
export function carriedNetworks(networks: readonly TenantNetwork[], everywhere: boolean, switchSetting: 'all' | 'none' | readonly string[]): TenantNetwork[] {
  if (everywhere || switchSetting === 'all') return [...networks];
  if (switchSetting === 'none') return [];
  return networks.filter((network) => switchSetting.includes(network.tenant));
}
