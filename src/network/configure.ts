/**
 * When the leader proposes `network.configure`. Pure.
 */
import { DEFAULT_NODE_PREFIX_LENGTH } from '../state/ipam.js';
import type { ClusterNetwork, Command } from '../state/types.js';

/**
 * The `network.configure` the leader should propose, or undefined when there
 * is nothing to do: none while the network is configured and every node that
 * has not left holds a subnet. With a configured network it repeats the
 * configured values (so a leader started with another `--cluster-cidr` never
 * fights the cluster's); without one it proposes `clusterCidr`.
 */
export function configureProposal(
  network: ClusterNetwork | undefined,
  nodes: readonly { status: string; subnet?: string }[],
  clusterCidr: string,
): Extract<Command, { type: 'network.configure' }> | undefined {
  if (network === undefined) return { type: 'network.configure', cidr: clusterCidr, nodePrefixLength: DEFAULT_NODE_PREFIX_LENGTH };
  if (nodes.every((node) => node.status === 'left' || node.subnet !== undefined)) return undefined;
  return { type: 'network.configure', cidr: network.cidr, nodePrefixLength: network.nodePrefixLength };
}
