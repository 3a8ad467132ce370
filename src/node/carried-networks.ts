/**
 * Which tenant networks a node carries (puts containers on, routes to,
 * lists in the node network file). Every node of this release registers
 * TENANT_NETWORKS_LABEL; once every member (every node record not `left`,
 * down nodes included) has it, every node carries every tenant network the
 * state holds: a fact of the replicated node records, so no two nodes
 * disagree and no flag has to be kept equal across them. Before that (a
 * rolling upgrade from a release where `--tenant-networks` was a per-node
 * switch, off by default), each node keeps carrying what its own switch
 * names, as the older nodes do, so that a container started on an upgraded
 * node does not land on a network the older nodes do not route. Pure.
 */
import { TENANT_NETWORKS_ALWAYS, TENANT_NETWORKS_LABEL, type TenantNetwork } from '../state/types.js';

/** Whether every member registered TENANT_NETWORKS_LABEL (a cluster of no members: no). */
export function tenantNetworksEverywhere(nodes: readonly { status: string; labels: Readonly<Record<string, string>> }[]): boolean {
  const members = nodes.filter((node) => node.status !== 'left');
  return members.length > 0 && members.every((node) => node.labels[TENANT_NETWORKS_LABEL] === TENANT_NETWORKS_ALWAYS);
}

/** The networks a node carries: every one once `everywhere`; before, those of the tenants its former switch names (`'all'`, `'none'` or a list). */
export function carriedNetworks(networks: readonly TenantNetwork[], everywhere: boolean, switchSetting: 'all' | 'none' | readonly string[]): TenantNetwork[] {
  if (everywhere || switchSetting === 'all') return [...networks];
  if (switchSetting === 'none') return [];
  return networks.filter((network) => switchSetting.includes(network.tenant));
}
