/**
 * When the leader proposes `network.configure`. Pure.
 */
import { DEFAULT_NODE_PREFIX_LENGTH } from '../state/ipam.js';
import type { ClusterNetwork, Command } from '../state/types.js';

/**
 * The `network.configure` the leader should propose, or undefined when there
 * is nothing to do: none while the network is configured, its service range
 * and tenant pool are set (or the leader has none to give) and every node
 * that has not left holds a subnet. With a configured network it repeats the
 * configured values (so a leader started with another `--cluster-cidr`,
 * `--service-cidr` or `--tenant-network-cidr` never fights the cluster's);
 * without one it proposes `clusterCidr`. `serviceCidr` is undefined where
 * the leader cannot carry services (its overlay is off): then the range
 * stays unset and no app gets a VIP. `tenantCidr` is undefined likewise,
 * and while the cluster version is below TENANT_NETWORKS_VERSION (the
 * command would be refused).
 */
export function configureProposal(
  network: ClusterNetwork | undefined,
  nodes: readonly { status: string; subnet?: string }[],
  clusterCidr: string,
  serviceCidr?: string,
  tenantCidr?: string,
): Extract<Command, { type: 'network.configure' }> | undefined {
  if (network === undefined) return { type: 'network.configure', cidr: clusterCidr, nodePrefixLength: DEFAULT_NODE_PREFIX_LENGTH, ...(serviceCidr !== undefined ? { serviceCidr } : {}), ...(tenantCidr !== undefined ? { tenantCidr } : {}) };
  const services = network.serviceCidr ?? serviceCidr;
  const pool = network.tenantCidr ?? tenantCidr;
  const wanted = { type: 'network.configure', cidr: network.cidr, nodePrefixLength: network.nodePrefixLength, ...(services !== undefined ? { serviceCidr: services } : {}), ...(pool !== undefined ? { tenantCidr: pool } : {}) } as const;
  if (network.serviceCidr === undefined && serviceCidr !== undefined) return wanted;
  if (network.tenantCidr === undefined && tenantCidr !== undefined) return wanted;
  if (nodes.every((node) => node.status === 'left' || node.subnet !== undefined)) return undefined;
  return wanted;
}
