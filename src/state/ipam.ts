/**
 * Cluster IPAM: IPv4 CIDR arithmetic and the choice of a node's subnet in
 * the cluster network. Pure (no Node API): apply handlers call it, so every
 * node picks the same subnet for the same log.
 *
 * The cluster CIDR (default 10.210.0.0/16) is cut into node subnets of
 * `nodePrefixLength` (default /24). A node gets the lowest subnet no other
 * node record holds; a node that leaves for good gives its subnet back.
 */
import type { ClusterNetwork, NodeRecord } from './types.js';

/** The cluster CIDR a cluster gets when its first leader is given none. */
export const DEFAULT_CLUSTER_CIDR = '10.210.0.0/16';
/** The prefix length of each node's subnet by default (254 addresses per node). */
export const DEFAULT_NODE_PREFIX_LENGTH = 24;
/** The shortest cluster prefix accepted (a /8 is 16 million addresses). */
export const CLUSTER_PREFIX_LENGTH_MIN = 8;
/** The longest node prefix accepted: a /28 leaves 13 container addresses beside the network, gateway and broadcast. */
export const NODE_PREFIX_LENGTH_MAX = 28;

/** An IPv4 network: its first address as an unsigned 32-bit number, and its prefix length. */
export interface Ipv4Network {
  base: number;
  prefixLength: number;
}

/** The number of an IPv4 dotted quad, or undefined when `text` is not one. */
export function parseIpv4(text: string): number | undefined {
  const parts = text.split('.');
  if (parts.length !== 4) return undefined;
  let value = 0;
  for (const part of parts) {
    if (!/^(0|[1-9][0-9]{0,2})$/.test(part)) return undefined;
    const octet = Number(part);
    if (octet > 255) return undefined;
    value = value * 256 + octet;
  }
  return value;
}

/** The dotted quad of an unsigned 32-bit number. */
export function formatIpv4(value: number): string {
  return [24, 16, 8, 0].map((shift) => Math.floor(value / 2 ** shift) % 256).join('.');
}

/**
 * Parses `a.b.c.d/n`. Refuses (returns a reason) text that is not one, or a
 * network address with host bits set (`10.210.0.1/16`): the CIDR must name
 * its network exactly.
 */
export function parseCidr(text: string): { ok: true; network: Ipv4Network } | { ok: false; reason: string } {
  const [address, length, extra] = text.split('/');
  const base = address === undefined ? undefined : parseIpv4(address);
  if (base === undefined || length === undefined || extra !== undefined || !/^[0-9]{1,2}$/.test(length) || Number(length) > 32) {
    return { ok: false, reason: `"${text}" is not an IPv4 CIDR like 10.210.0.0/16` };
  }
  const prefixLength = Number(length);
  if (base % 2 ** (32 - prefixLength) !== 0) return { ok: false, reason: `"${text}" has host bits set; write the network address (${formatCidr({ base: base - (base % 2 ** (32 - prefixLength)), prefixLength })})` };
  return { ok: true, network: { base, prefixLength } };
}

/** `a.b.c.d/n`. */
export function formatCidr(network: Ipv4Network): string {
  return `${formatIpv4(network.base)}/${network.prefixLength}`;
}

/** Whether `address` (a number) lies in `network`. */
export function containsAddress(network: Ipv4Network, address: number): boolean {
  return address >= network.base && address < network.base + 2 ** (32 - network.prefixLength);
}

/** How many node subnets the cluster network holds. */
export function nodeSubnetCount(cluster: ClusterNetwork): number {
  const parsed = parseCidr(cluster.cidr);
  if (!parsed.ok) return 0;
  return 2 ** (cluster.nodePrefixLength - parsed.network.prefixLength);
}

/** The node subnet at `position` (0 first) of the cluster network. */
export function nodeSubnetAt(cluster: ClusterNetwork, position: number): string {
  const parsed = parseCidr(cluster.cidr);
  if (!parsed.ok) throw new RangeError(`cluster network ${cluster.cidr}: ${parsed.reason}`);
  return formatCidr({ base: parsed.network.base + position * 2 ** (32 - cluster.nodePrefixLength), prefixLength: cluster.nodePrefixLength });
}

/**
 * The lowest node subnet of `cluster` that no record in `nodes` holds, or
 * undefined when every one is held. Linear in the node count (a set of the
 * held subnets, then a walk from the first).
 */
export function lowestFreeSubnet(cluster: ClusterNetwork, nodes: Iterable<NodeRecord>): string | undefined {
  const held = new Set<string>();
  for (const node of nodes) if (node.subnet !== undefined) held.add(node.subnet);
  const count = nodeSubnetCount(cluster);
  for (let position = 0; position < count; position++) {
    const subnet = nodeSubnetAt(cluster, position);
    if (!held.has(subnet)) return subnet;
  }
  return undefined;
}

/** Why `cidr` with `nodePrefixLength` cannot be a cluster network, or undefined when it can. */
export function clusterNetworkProblem(cidr: string, nodePrefixLength: number): { field: string; reason: string } | undefined {
  const parsed = parseCidr(cidr);
  if (!parsed.ok) return { field: 'cidr', reason: parsed.reason };
  const { prefixLength } = parsed.network;
  if (prefixLength < CLUSTER_PREFIX_LENGTH_MIN) return { field: 'cidr', reason: `"${cidr}" is wider than a /${CLUSTER_PREFIX_LENGTH_MIN}; choose a smaller private range` };
  if (nodePrefixLength <= prefixLength || nodePrefixLength > NODE_PREFIX_LENGTH_MAX) {
    return { field: 'nodePrefixLength', reason: `is ${nodePrefixLength}; it must be longer than the cluster's /${prefixLength} and at most ${NODE_PREFIX_LENGTH_MAX}` };
  }
  return undefined;
}
