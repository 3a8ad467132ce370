/**
 * Tenants made before the tenant pool was set (a cluster older than state
 * version 5, or a tenant created in the moments between bootstrap and the
 * leader's `network.configure`) have no `default` network, so their
 * containers would stay on the node subnets for good. The leader gives each
 * such tenant its `default` through the ordinary `network.create` (the
 * lowest free block at apply, so every replica computes the same block),
 * and their new instances land on it. Pure: the state read in, the tenants
 * to create for out.
 */
import { DEFAULT_NETWORK } from '../state/app-networks.js';

/** The most `network.create` proposals of one plan: a cluster of many old tenants gets them over a few passes. */
export const DEFAULT_NETWORK_PROPOSALS_MAX = 8;

/** What the plan reads of the state. */
export interface DefaultNetworksInput {
  /** The tenants with a record (the implicit `default` tenant has none until a deploy adopts it, and `network.create` refuses it until then). */
  tenants: readonly string[];
  networks: readonly { tenant: string; name: string }[];
  /** Whether the pool is set (`ClusterNetwork.tenantCidr`) and the cluster version has tenant networks. */
  poolReady: boolean;
}

/** The tenants that lack their `default` network, in name order, at most DEFAULT_NETWORK_PROPOSALS_MAX; none while the pool is not ready. */
export function missingDefaultNetworks(input: DefaultNetworksInput): string[] {
  if (!input.poolReady) return [];
  const holding = new Set(input.networks.filter((network) => network.name === DEFAULT_NETWORK).map((network) => network.tenant));
  return [...input.tenants]
    .filter((tenant) => !holding.has(tenant))
    .sort()
    .slice(0, DEFAULT_NETWORK_PROPOSALS_MAX);
}
