/**
 * The routing mesh's way back, pure: what a node needs so that the answer of
 * an instance it runs goes back through the node a mesh connection came in
 * by. `mesh-links.ts` programs it.
 *
 * Why: a client outside the cluster network connects to node A's published
 * port; A's nat chains (`service-plan.ts`) DNAT it to an instance on node B
 * and keep the client's address, so the packet reaches B over the overlay
 * with the client as its source. B's own routes would send the answer
 * straight to the client, with the instance's address, which the client
 * does not know (A holds the connection's NAT). So B marks such a connection
 * by the peer it came from and routes its answers back over the overlay to
 * that peer, which undoes the DNAT: the client's address is kept on every
 * node, not only where the instance is local (Swarm's ingress and
 * Kubernetes' `Cluster` policy give it up with SNAT).
 *
 * Shape, on each node with the overlay:
 *   mangle HIVEMIND-MESH (PREROUTING jumps to it first):
 *     per peer: `-i hmvx0 ! -s <cluster CIDR> -m conntrack --ctstate NEW
 *       -m mac --mac-source <peer's VTEP MAC> -j CONNMARK --set-xmark
 *       <peer mark>/<MESH_MARK_MASK>` (a new connection from outside the
 *       cluster network that a peer forwarded: remember the peer);
 *     then per containers' bridge (`hm0`, and each tenant network slice's
 *       bridge here): `-i <bridge> -m connmark ! --mark 0/<mask> -j CONNMARK
 *       --restore-mark` (an instance's packet of such a connection carries
 *       the peer's mark);
 *   per peer and bridge: `ip rule priority MESH_RULE_PRIORITY fwmark
 *     <mark>/<mask> iif <bridge> lookup <table>`, and in that table `default
 *     via <peer VTEP> dev hmvx0 onlink`.
 * The rule holds only for packets routed in from the bridge (`iif hm0`):
 * the VXLAN device looks up the route of the encapsulated packet with the
 * inner packet's mark (`udp_tunnel_dst_lookup` copies `skb->mark`), so a
 * rule on the mark alone sends the outer packet into the peer's table,
 * whose default route is the VXLAN device itself; the kernel drops it as a
 * circular route (the device's `collisions` counter) and the answer never
 * leaves the node. A locally made lookup has `iif lo`, so the outer packet
 * takes the main table and the underlay.
 * A peer's mark and table come from its subnet's index in the cluster
 * network, so every node computes the same without asking, and a peer keeps
 * them while it holds its subnet. The mask (bits 22 to 31) is apart from the
 * policy chains' bit (0x200000) and CNI's portmap bit (0x2000).
 */
import { containsAddress, parseCidr } from '../state/ipam.js';
import { BRIDGE_NAME, VXLAN_NAME, type OverlayPlan } from './overlay-plan.js';

/** The mangle chain PREROUTING jumps to. */
export const MESH_CHAIN = 'HIVEMIND-MESH';
/** The comment on the jump: how it is found again. */
export const MESH_JUMP_COMMENT = 'hivemind: mesh';
/** The mark bits Hivemind's mesh owns (connection mark and packet mark). */
export const MESH_MARK_MASK = 0xffc00000;
/** The lowest bit of MESH_MARK_MASK: a peer's mark is (index + 1) times this. */
const MESH_MARK_UNIT = 0x00400000;
/** Peers at most that get a way back (marks 1 to 1023 in the mask). */
export const MESH_PEERS_MAX = 1023;
/** The priority of the mesh's `ip rule`s: before the main table (32766). */
export const MESH_RULE_PRIORITY = 4210;
/** The routing table of the peer with subnet index i is MESH_TABLE_BASE + i. */
export const MESH_TABLE_BASE = 4_210_000;

/** A peer's way back: connections it forwarded carry `mark`; their answers take `table` to `via`. */
export interface MeshReturnRoute {
  peer: string;
  /** The peer's VTEP MAC, as its forwarded packets arrive with it. */
  mac: string;
  mark: number;
  table: number;
  /** The peer's VTEP address. */
  via: string;
}

/** What a node programs for the mesh's way back. */
export interface MeshPlan {
  /** The rules of MESH_CHAIN (iptables-restore syntax after `-A HIVEMIND-MESH `). */
  rules: string[];
  /** The bridges whose containers' answers take the way back: `hm0` and this node's tenant network bridges, in that order. */
  inputs: string[];
  /** Sorted by table. */
  routes: MeshReturnRoute[];
  /** Peers left out, with why (a subnet outside the cluster network, more peers than marks). */
  skipped: { id: string; reason: string }[];
}

/** `value` as iproute2 and iptables print a mark: lowercase hex with 0x. */
export function markText(value: number): string {
  return `0x${(value >>> 0).toString(16)}`;
}

/** The way back of node `plan` in cluster network `clusterCidr` (no routes where the node has no underlay). */
export function planMesh(plan: OverlayPlan, clusterCidr: string): MeshPlan {
  const cluster = parseCidr(clusterCidr);
  const routes: MeshReturnRoute[] = [];
  const skipped: MeshPlan['skipped'] = [];
  const inputs = [BRIDGE_NAME, ...plan.local.slices.map((slice) => slice.bridge)];
  if (!cluster.ok || plan.local.underlay === undefined) return { rules: [], inputs, routes, skipped };
  for (const peer of plan.peers) {
    const subnet = parseCidr(peer.subnet);
    if (!subnet.ok || !containsAddress(cluster.network, subnet.network.base)) {
      skipped.push({ id: peer.id, reason: `its subnet ${peer.subnet} is not in ${clusterCidr}` });
      continue;
    }
    const index = Math.floor((subnet.network.base - cluster.network.base) / 2 ** (32 - subnet.network.prefixLength));
    if (index + 1 > MESH_PEERS_MAX) {
      skipped.push({ id: peer.id, reason: `subnet index ${index} is past the ${MESH_PEERS_MAX} marks of the mesh` });
      continue;
    }
    routes.push({ peer: peer.id, mac: peer.vtepMac, mark: (index + 1) * MESH_MARK_UNIT, table: MESH_TABLE_BASE + index, via: peer.vtepAddress });
  }
  routes.sort((left, right) => left.table - right.table);
  const mask = markText(MESH_MARK_MASK);
  const rules = routes.map(
    (route) => `-i ${VXLAN_NAME} ! -s ${clusterCidr} -m conntrack --ctstate NEW -m mac --mac-source ${route.mac} -m comment --comment "hivemind: via ${route.peer}" -j CONNMARK --set-xmark ${markText(route.mark)}/${mask}`,
  );
  if (routes.length > 0) for (const input of inputs) rules.push(`-i ${input} -m connmark ! --mark 0x0/${mask} -j CONNMARK --restore-mark --nfmask ${mask} --ctmask ${mask}`);
  return { rules, inputs, routes, skipped };
}

/** The input device of the mesh's `ip rule`s on the node subnet: answers routed in from the containers' bridge (a tenant network's bridge has rules of its own: `MeshPlan.inputs`). */
export const MESH_RULE_INPUT = BRIDGE_NAME;

/** The mesh's `ip rule`s and table routes the kernel holds, as `mesh-links.ts` reads them. */
export interface MeshRouting {
  /** Rules at MESH_RULE_PRIORITY: their selector (`meshRuleSelector`) to table. */
  rules: Map<string, number>;
  /** Default routes of tables in the mesh's range: table to gateway. */
  routes: Map<number, string>;
}

/**
 * A mesh rule's selector as `ip rule` takes it after the priority:
 * `fwmark <mark>/<mask>`, then `iif <device>` when the rule has one. The
 * kernel's rules are keyed the same way (`mesh-links.ts`), so a rule left
 * by an older agent without `iif` differs and is replaced.
 */
export function meshRuleSelector(mark: string, mask: string, input: string | undefined): string {
  return `fwmark ${mark}/${mask}${input === undefined ? '' : ` iif ${input}`}`;
}

/** The routing the plan wants. */
export function desiredMeshRouting(plan: MeshPlan): MeshRouting {
  const routing: MeshRouting = { rules: new Map(), routes: new Map() };
  for (const route of plan.routes) {
    for (const input of plan.inputs) routing.rules.set(meshRuleSelector(markText(route.mark), markText(MESH_MARK_MASK), input), route.table);
    routing.routes.set(route.table, route.via);
  }
  return routing;
}

/** Whether `table` is one of the mesh's. */
export function isMeshTable(table: number): boolean {
  return Number.isInteger(table) && table >= MESH_TABLE_BASE && table < MESH_TABLE_BASE + MESH_PEERS_MAX;
}

/** `ip -batch` lines that take `current` to `desired` (rules removed before their tables are emptied, routes put before rules point at them); empty when they agree. */
export function meshRoutingBatch(desired: MeshRouting, current: MeshRouting): string[] {
  const lines: string[] = [];
  for (const [selector, table] of current.rules) {
    if (desired.rules.get(selector) !== table) lines.push(`rule del priority ${MESH_RULE_PRIORITY} ${selector} lookup ${table}`);
  }
  for (const table of current.routes.keys()) if (!desired.routes.has(table)) lines.push(`route del default table ${table}`);
  for (const [table, via] of desired.routes) if (current.routes.get(table) !== via) lines.push(`route replace default via ${via} dev ${VXLAN_NAME} onlink table ${table}`);
  for (const [selector, table] of desired.rules) {
    if (current.rules.get(selector) !== table) lines.push(`rule add priority ${MESH_RULE_PRIORITY} ${selector} lookup ${table}`);
  }
  return lines;
}

/** What `iptables-save -t mangle` shows of the mesh: whether its chain exists, its rule lines, whether PREROUTING's first rule is the jump, and whether the jump is elsewhere in it. */
export interface SavedMeshChain {
  exists: boolean;
  /** The `-A HIVEMIND-MESH` lines, in order. */
  text: string;
  hooked: boolean;
  misplaced: boolean;
}

/** Reads the mesh's part of `iptables-save -t mangle` output. */
export function parseSavedMesh(save: string): SavedMeshChain {
  let exists = false;
  let hooked = false;
  let misplaced = false;
  let seenPrerouting = false;
  const rules: string[] = [];
  for (const line of save.split('\n')) {
    if (line.startsWith(`:${MESH_CHAIN} `)) exists = true;
    else if (line.startsWith(`-A ${MESH_CHAIN} `)) rules.push(line);
    else if (line.startsWith('-A PREROUTING ')) {
      if (line.endsWith(`-j ${MESH_CHAIN}`)) {
        if (seenPrerouting) misplaced = true;
        else hooked = true;
      }
      seenPrerouting = true;
    }
  }
  return { exists, text: rules.join('\n'), hooked, misplaced: misplaced && !hooked };
}

/** The iptables-restore input (for `--noflush`) that makes the mesh chain hold `rules` and PREROUTING jump to it first. Nothing else is touched. */
export function meshRestoreInput(rules: readonly string[], found: SavedMeshChain): string {
  const jump = `-m comment --comment "${MESH_JUMP_COMMENT}" -j ${MESH_CHAIN}`;
  const lines = ['*mangle', `:${MESH_CHAIN} - [0:0]`, ...rules.map((rule) => `-A ${MESH_CHAIN} ${rule}`)];
  if (!found.hooked) {
    if (found.misplaced) lines.push(`-D PREROUTING ${jump}`);
    lines.push(`-I PREROUTING 1 ${jump}`);
  }
  lines.push('COMMIT', '');
  return lines.join('\n');
}
