/**
 * The overlay a node should have, computed from the replicated node records
 * alone, and the changes that take what it has to that. Pure: no Node API,
 * no clock; `overlay-links.ts` reads and programs the kernel.
 *
 * Shape (flannel's VXLAN backend, routed, no flooding): each node has a
 * bridge (`hm0`) holding its subnet's first address as the containers'
 * gateway, and one VXLAN device (`hmvx0`, `nolearning`) holding its VTEP
 * address, the subnet's network address as a /32. The VTEP's MAC is derived
 * from the subnet, so every node computes every other's without asking. For
 * each peer, three entries send a packet for its subnet over UDP to its
 * underlay address: a route (`subnet via vtep dev hmvx0 onlink`), a
 * permanent neighbour (`vtep lladdr mac`) and a forwarding entry (`mac dst
 * underlay`). Nothing is learnt and nothing floods: a packet for an address
 * with no entry is dropped.
 */
import { formatIpv4, parseCidr, parseIpv4 } from '../state/ipam.js';
import { shortHash } from './policy-plan.js';

/** Names and numbers of the overlay on a node. */
export const BRIDGE_NAME = 'hm0';
export const VXLAN_NAME = 'hmvx0';
/** The VXLAN network identifier every node uses. */
export const VXLAN_ID = 4210;
/** VXLAN over IPv4 adds 50 bytes (outer IPv4 20, UDP 8, VXLAN 8, inner Ethernet 14). */
export const VXLAN_OVERHEAD_BYTES = 50;

/** What the plan reads of a node record. */
export interface OverlayNode {
  id: string;
  status: string;
  /** `host:port`; the host is the underlay address. */
  peerAddress: string;
  subnet?: string;
}

/** A node's slice of a tenant network (`TenantNetwork.slices`), as the plan reads it. */
export interface OverlaySlice {
  /** `tenant/name`. */
  network: string;
  node: string;
  cidr: string;
}

/** A peer as the overlay programs it. */
export interface OverlayPeer {
  id: string;
  subnet: string;
  underlay: string;
  vtepAddress: string;
  vtepMac: string;
  /** The peer's slices of tenant networks: routed to its VTEP as its subnet is. Sorted. */
  slices: string[];
}

/** One of this node's slices of a tenant network: a bridge of its own, the slice's first address its gateway. */
export interface LocalSlice {
  /** `tenant/name`. */
  network: string;
  cidr: string;
  /** `hmt` and 10 hex characters of the network's hash (at most 15 characters, as a link name must be). */
  bridge: string;
  gateway: string;
  gatewayCidr: string;
  bridgeMac: string;
}

/** This node's own side. */
export interface OverlayLocal {
  subnet: string;
  /** The bridge's address, `<gateway>/<prefix>`. */
  gatewayCidr: string;
  gateway: string;
  vtepAddress: string;
  vtepMac: string;
  /**
   * The bridge's MAC, set rather than left to the kernel: a bridge without
   * one takes its lowest port's, so it changed as warm-pool veths came and
   * went, and containers that had cached the gateway's old MAC lost it
   * (DNS and egress timed out until their ARP entry expired).
   */
  bridgeMac: string;
  /** Undefined when the node's peer address is not an IPv4 literal other peers can reach (loopback): no VXLAN device then. */
  underlay?: string;
  /** This node's slices of tenant networks, by network. */
  slices: LocalSlice[];
}

export interface OverlayPlan {
  local: OverlayLocal;
  /** Sorted by id. */
  peers: OverlayPeer[];
  /** Peers the plan leaves out, with why (no subnet yet, an address that is not IPv4). */
  skipped: { id: string; reason: string }[];
}

/** The host of a `host:port` (IPv6 `[...]:port` keeps its brackets off). */
export function hostOf(address: string): string {
  const bracketed = /^\[(.*)\]:\d+$/.exec(address);
  if (bracketed) return bracketed[1]!;
  const colon = address.lastIndexOf(':');
  return colon < 0 ? address : address.slice(0, colon);
}

/** The VTEP MAC of a node subnet: locally administered unicast `02:68` and the subnet's four bytes. */
export function vtepMacOf(subnet: string): string {
  return subnetMac('68', subnet, 'vtep MAC');
}

/** The bridge MAC of a node subnet: locally administered unicast `02:67` and the subnet's four bytes (unique in the cluster, as subnets are). */
export function bridgeMacOf(subnet: string): string {
  return subnetMac('67', subnet, 'bridge MAC');
}

/** The prefix of every tenant network bridge's name. */
export const NETWORK_BRIDGE_PREFIX = 'hmt';

/** The bridge of tenant network `network` (`tenant/name`) on every node: `hmt` and 10 hex characters of its hash. */
export function networkBridgeOf(network: string): string {
  return `${NETWORK_BRIDGE_PREFIX}${shortHash(network).slice(0, 10)}`;
}

/** Whether `name` is a tenant network bridge's name. */
export function isNetworkBridge(name: string): boolean {
  return /^hmt[0-9a-f]{10}$/.test(name);
}

function subnetMac(second: string, subnet: string, what: string): string {
  const parsed = parseCidr(subnet);
  if (!parsed.ok) throw new RangeError(`${what}: ${parsed.reason}`);
  const bytes = formatIpv4(parsed.network.base).split('.').map((octet) => Number(octet).toString(16).padStart(2, '0'));
  return ['02', second, ...bytes].join(':');
}

function usableUnderlay(host: string): boolean {
  const value = parseIpv4(host);
  return value !== undefined && host !== '0.0.0.0' && !host.startsWith('127.');
}

/**
 * The overlay of node `selfId`, or undefined while its record has no subnet.
 * Peers are the other nodes that have not left, hold a subnet and advertise
 * an IPv4 underlay address; down and suspect nodes keep their entries (they
 * may come back; their subnets stay theirs). `slices` are the tenant
 * networks' slices to carry (every node's): this node's become bridges,
 * a peer's are routed to its VTEP.
 */
export function planOverlay(selfId: string, nodes: readonly OverlayNode[], slices: readonly OverlaySlice[] = []): OverlayPlan | undefined {
  const self = nodes.find((node) => node.id === selfId);
  if (self?.subnet === undefined || self.status === 'left') return undefined;
  const parsed = parseCidr(self.subnet);
  if (!parsed.ok) return undefined;
  const gateway = formatIpv4(parsed.network.base + 1);
  const selfHost = hostOf(self.peerAddress);
  const local: OverlayLocal = {
    subnet: self.subnet,
    gateway,
    gatewayCidr: `${gateway}/${parsed.network.prefixLength}`,
    vtepAddress: formatIpv4(parsed.network.base),
    vtepMac: vtepMacOf(self.subnet),
    bridgeMac: bridgeMacOf(self.subnet),
    ...(usableUnderlay(selfHost) ? { underlay: selfHost } : {}),
    slices: slices
      .filter((slice) => slice.node === selfId)
      .flatMap((slice) => {
        const parsedSlice = parseCidr(slice.cidr);
        if (!parsedSlice.ok) return [];
        const sliceGateway = formatIpv4(parsedSlice.network.base + 1);
        return [{ network: slice.network, cidr: slice.cidr, bridge: networkBridgeOf(slice.network), gateway: sliceGateway, gatewayCidr: `${sliceGateway}/${parsedSlice.network.prefixLength}`, bridgeMac: bridgeMacOf(slice.cidr) }];
      })
      .sort((left, right) => (left.network < right.network ? -1 : left.network > right.network ? 1 : 0)),
  };
  const peers: OverlayPeer[] = [];
  const skipped: { id: string; reason: string }[] = [];
  for (const node of [...nodes].sort((left, right) => (left.id < right.id ? -1 : left.id > right.id ? 1 : 0))) {
    if (node.id === selfId || node.status === 'left') continue;
    if (node.subnet === undefined) {
      skipped.push({ id: node.id, reason: 'no subnet yet' });
      continue;
    }
    const host = hostOf(node.peerAddress);
    const peerSubnet = parseCidr(node.subnet);
    if (!usableUnderlay(host) || !peerSubnet.ok) {
      skipped.push({ id: node.id, reason: `its address ${node.peerAddress} is not a reachable IPv4 address` });
      continue;
    }
    const peerSlices = slices.filter((slice) => slice.node === node.id && parseCidr(slice.cidr).ok).map((slice) => slice.cidr).sort();
    peers.push({ id: node.id, subnet: node.subnet, underlay: host, vtepAddress: formatIpv4(peerSubnet.network.base), vtepMac: vtepMacOf(node.subnet), slices: peerSlices });
  }
  return { local, peers, skipped };
}

/** The entries on `hmvx0` the kernel holds, as `overlay-links.ts` reads them. */
export interface OverlayEntries {
  /** Routes through the VXLAN device: destination CIDR → gateway. */
  routes: Map<string, string>;
  /** Permanent neighbours on the device: address → MAC (lowercase). */
  neighbours: Map<string, string>;
  /** Forwarding entries: MAC (lowercase) → underlay address. */
  forwarding: Map<string, string>;
}

/** What to change on `hmvx0`: `put` entries are added or replaced, `remove` entries deleted. */
export interface OverlayChanges {
  put: { routes: [string, string][]; neighbours: [string, string][]; forwarding: [string, string][] };
  remove: { routes: string[]; neighbours: string[]; forwarding: string[] };
}

/** The entries the plan wants on `hmvx0`. */
export function desiredEntries(plan: OverlayPlan): OverlayEntries {
  const entries: OverlayEntries = { routes: new Map(), neighbours: new Map(), forwarding: new Map() };
  if (plan.local.underlay === undefined) return entries;
  for (const peer of plan.peers) {
    entries.routes.set(peer.subnet, peer.vtepAddress);
    for (const slice of peer.slices) entries.routes.set(slice, peer.vtepAddress);
    entries.neighbours.set(peer.vtepAddress, peer.vtepMac);
    entries.forwarding.set(peer.vtepMac, peer.underlay);
  }
  return entries;
}

/** The changes from `current` to `desired`: missing or different entries put, extra ones removed. Empty when they agree. */
export function diffEntries(desired: OverlayEntries, current: OverlayEntries): OverlayChanges {
  const changes: OverlayChanges = { put: { routes: [], neighbours: [], forwarding: [] }, remove: { routes: [], neighbours: [], forwarding: [] } };
  for (const kind of ['routes', 'neighbours', 'forwarding'] as const) {
    for (const [key, value] of desired[kind]) if (current[kind].get(key) !== value) changes.put[kind].push([key, value]);
    for (const key of current[kind].keys()) if (!desired[kind].has(key)) changes.remove[kind].push(key);
  }
  return changes;
}

/** How many entries `changes` touches. */
export function changeCount(changes: OverlayChanges): number {
  const { put, remove } = changes;
  return put.routes.length + put.neighbours.length + put.forwarding.length + remove.routes.length + remove.neighbours.length + remove.forwarding.length;
}
