/**
 * Tenant network IPAM: the tenant pool (`ClusterNetwork.tenantCidr`,
 * default 10.224.0.0/12) cut into network blocks (a /20 each: 256 networks),
 * each block cut into node slices (a /26 each: 61 containers of that network
 * on one node, 64 nodes). A block belongs to one network and a slice to one
 * node of it, so no two networks overlap and routing by destination alone
 * stays correct. Pure (no Node API): apply handlers call it inside a commit,
 * so every node makes the same choice for the same log.
 */
import { assert } from '../../consensus/core/assert.js';
import { containsAddress, formatCidr, parseCidr, type Ipv4Network } from './ipam.js';
import type { TenantNetwork } from './types.js';

/** The tenant pool a cluster gets when its leader is given none. */
export const DEFAULT_TENANT_CIDR = '10.224.0.0/12';
/** The prefix length of one network's block. */
export const NETWORK_PREFIX_LENGTH = 20;
/** The prefix length of one node's slice of a network. */
export const SLICE_PREFIX_LENGTH = 26;
/** The shortest tenant pool accepted. */
export const TENANT_PREFIX_LENGTH_MIN = 8;
/** Networks one tenant may hold. */
export const NETWORKS_PER_TENANT_MAX = 16;

/** Whether two networks share an address. */
export function overlaps(left: Ipv4Network, right: Ipv4Network): boolean {
  return containsAddress(left, right.base) || containsAddress(right, left.base);
}

/** Why `tenantCidr` cannot be the tenant pool beside `others` (the cluster network and service range, by field name), or undefined when it can. */
export function tenantPoolProblem(tenantCidr: string, others: Readonly<Record<string, string | undefined>>): string | undefined {
  const parsed = parseCidr(tenantCidr);
  if (!parsed.ok) return parsed.reason;
  const { prefixLength } = parsed.network;
  if (prefixLength < TENANT_PREFIX_LENGTH_MIN || prefixLength > NETWORK_PREFIX_LENGTH) {
    return `"${tenantCidr}" is a /${prefixLength}; a tenant pool is a /${TENANT_PREFIX_LENGTH_MIN} to a /${NETWORK_PREFIX_LENGTH} (one network is a /${NETWORK_PREFIX_LENGTH})`;
  }
  for (const [name, cidr] of Object.entries(others)) {
    if (cidr === undefined) continue;
    const other = parseCidr(cidr);
    if (other.ok && overlaps(parsed.network, other.network)) return `"${tenantCidr}" overlaps the ${name} ${cidr}; choose a range apart from it`;
  }
  return undefined;
}

/**
 * Why `cidr` cannot be a new network's block in pool `tenantCidr` beside
 * `networks`: not a /NETWORK_PREFIX_LENGTH of the pool (`invalid`), or
 * overlapping a network that exists (`overlap`). Undefined when it can.
 */
export function blockProblem(cidr: string, tenantCidr: string, networks: Iterable<TenantNetwork>): { kind: 'invalid' | 'overlap'; reason: string } | undefined {
  const parsed = parseCidr(cidr);
  if (!parsed.ok) return { kind: 'invalid', reason: parsed.reason };
  const pool = poolOf(tenantCidr);
  if (parsed.network.prefixLength !== NETWORK_PREFIX_LENGTH || !containsAddress(pool, parsed.network.base)) {
    return { kind: 'invalid', reason: `"${cidr}" is not a /${NETWORK_PREFIX_LENGTH} of the tenant pool ${tenantCidr}` };
  }
  for (const network of networks) {
    const held = parseCidr(network.cidr);
    if (held.ok && overlaps(parsed.network, held.network)) return { kind: 'overlap', reason: `"${cidr}" overlaps network ${network.tenant}/${network.name} (${network.cidr})` };
  }
  return undefined;
}

/** The lowest block of pool `tenantCidr` no network in `networks` holds, or undefined when the pool is full. Linear in the pool's blocks and the networks. */
export function lowestFreeBlock(tenantCidr: string, networks: Iterable<TenantNetwork>): string | undefined {
  const pool = poolOf(tenantCidr);
  const held = new Set<string>();
  for (const network of networks) held.add(network.cidr);
  const count = 2 ** (NETWORK_PREFIX_LENGTH - pool.prefixLength);
  for (let position = 0; position < count; position++) {
    const block = formatCidr({ base: pool.base + position * 2 ** (32 - NETWORK_PREFIX_LENGTH), prefixLength: NETWORK_PREFIX_LENGTH });
    if (!held.has(block)) return block;
  }
  return undefined;
}

/** The lowest slice of `network`'s block no node of it holds, or undefined when every slice is held. */
export function lowestFreeSlice(network: TenantNetwork): string | undefined {
  const block = parseCidr(network.cidr);
  if (!block.ok) return undefined;
  const held = new Set(network.slices.map((slice) => slice.cidr));
  const count = 2 ** (SLICE_PREFIX_LENGTH - block.network.prefixLength);
  for (let position = 0; position < count; position++) {
    const slice = formatCidr({ base: block.network.base + position * 2 ** (32 - SLICE_PREFIX_LENGTH), prefixLength: SLICE_PREFIX_LENGTH });
    if (!held.has(slice)) return slice;
  }
  return undefined;
}

function poolOf(tenantCidr: string): Ipv4Network {
  const parsed = parseCidr(tenantCidr);
  assert(parsed.ok, `tenant pool ${tenantCidr} was validated when configured`);
  return parsed.network;
}
