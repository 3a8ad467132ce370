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
import { ENTITIES_MAX } from '../state/state.js';
import { lowestFreeBlock, NETWORKS_PER_TENANT_MAX } from '../state/tenant-ipam.js';
import type { TenantNetwork } from '../state/types.js';

/** The most `network.create` proposals of one plan: a cluster of many old tenants gets them over a few passes. */
export const DEFAULT_NETWORK_PROPOSALS_MAX = 8;

/** What the plan reads of the state. */
export interface DefaultNetworksInput {
  /** The tenants with a record (the implicit `default` tenant has none until a deploy adopts it, and `network.create` refuses it until then). */
  tenants: readonly string[];
  networks: readonly TenantNetwork[];
  /** The pool (`ClusterNetwork.tenantCidr`) once it is set and the cluster version has tenant networks; undefined before. */
  pool: string | undefined;
}

/**
 * The tenants that lack their `default` network, in name order, at most
 * DEFAULT_NETWORK_PROPOSALS_MAX. None while the pool is not ready, or when
 * `network.create` would be refused for want of room (the pool full, the
 * cluster's most networks), and not a tenant that holds the most networks
 * a tenant may: a refused proposal is a log entry too, and these would be
 * proposed again every period for nothing.
 */
export function missingDefaultNetworks(input: DefaultNetworksInput): string[] {
  if (input.pool === undefined || input.networks.length >= ENTITIES_MAX.networks || lowestFreeBlock(input.pool, input.networks) === undefined) return [];
  const held = new Map<string, number>();
  const holding = new Set<string>();
  for (const network of input.networks) {
    held.set(network.tenant, (held.get(network.tenant) ?? 0) + 1);
    if (network.name === DEFAULT_NETWORK) holding.add(network.tenant);
  }
  return [...input.tenants]
    .filter((tenant) => !holding.has(tenant) && (held.get(tenant) ?? 0) < NETWORKS_PER_TENANT_MAX)
    .sort()
    .slice(0, DEFAULT_NETWORK_PROPOSALS_MAX);
}
