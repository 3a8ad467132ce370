/**
 * The node's overlay devices (bridge `hm0`, VXLAN device `hmvx0`) as one
 * `ip -batch`: computed from the overlay plan and one read of every link
 * (`ip -j -d addr show`), so a reconcile that finds the devices right costs
 * one read and one batch, not a command per setting. Pure: no Node API;
 * `overlay-links.ts` reads the links and runs the batch.
 */
import { containsAddress, parseCidr, parseIpv4 } from '../state/ipam.js';
import { BRIDGE_NAME, isNetworkBridge, VXLAN_ID, VXLAN_NAME, type LocalSlice, type OverlayPlan } from './overlay-plan.js';

/** What `ip -j -d addr show` says of one link (the fields the plan reads). */
export interface LinkState {
  ifname: string;
  mtu?: number;
  address?: string;
  /** The bridge this link is a port of. */
  master?: string;
  linkinfo?: { info_kind?: string; info_data?: { id?: number; local?: string; port?: number; learning?: boolean } };
  addr_info?: { family?: string; local: string; prefixlen: number }[];
}

/** Settings of `devicesBatch`. */
export interface DeviceOptions {
  vxlanPort: number;
  /** The MTU of the bridge and the VXLAN device. */
  mtu: number;
  clusterCidr: string;
}

/** The `ip -batch` lines that make the devices right, and what they change (for the log; empty when only the idempotent settings are repeated). */
export interface DevicesBatch {
  lines: string[];
  changed: string[];
}

/** The MTU of the link holding IPv4 `address` in `links`, or 1500 when none does. */
export function underlayMtuOf(links: readonly LinkState[], address: string): number {
  return links.find((link) => link.addr_info?.some((info) => info.local === address))?.mtu ?? 1500;
}

/**
 * The batch that makes the bridge (with the gateway address and no other
 * address of the cluster network: an older subnet's gateway goes; with its
 * fixed MAC; up, at the MTU) and, when the node has an underlay address,
 * the VXLAN device with the right id, port, local address, MAC and MTU
 * (deleted and made again when any differs) holding the VTEP address; no
 * underlay: no VXLAN device. The link and address settings are repeated
 * every time (idempotent, one batch), so a device set down by hand comes up.
 */
export function devicesBatch(plan: OverlayPlan, options: DeviceOptions, links: readonly LinkState[]): DevicesBatch {
  const lines: string[] = [];
  const changed: string[] = [];
  const { local } = plan;
  const bridge = links.find((link) => link.ifname === BRIDGE_NAME);
  if (bridge === undefined) {
    lines.push(`link add ${BRIDGE_NAME} type bridge`);
    changed.push(`made bridge ${BRIDGE_NAME}`);
  }
  const cluster = parseCidr(options.clusterCidr);
  const bridgeAddresses = (bridge?.addr_info ?? []).filter((info) => info.family === undefined || info.family === 'inet');
  for (const info of bridgeAddresses) {
    const cidr = `${info.local}/${info.prefixlen}`;
    const value = parseIpv4(info.local);
    if (cidr !== local.gatewayCidr && cluster.ok && value !== undefined && containsAddress(cluster.network, value)) {
      lines.push(`addr del ${cidr} dev ${BRIDGE_NAME}`);
      changed.push(`removed ${cidr} from ${BRIDGE_NAME}`);
    }
  }
  if (!bridgeAddresses.some((info) => `${info.local}/${info.prefixlen}` === local.gatewayCidr)) {
    lines.push(`addr replace ${local.gatewayCidr} dev ${BRIDGE_NAME}`);
    changed.push(`${BRIDGE_NAME} ${local.gatewayCidr}`);
  }
  if (bridge?.address !== local.bridgeMac) {
    lines.push(`link set ${BRIDGE_NAME} address ${local.bridgeMac}`);
    changed.push(`${BRIDGE_NAME} MAC ${local.bridgeMac}`);
  }
  lines.push(`link set ${BRIDGE_NAME} mtu ${options.mtu} up`);
  for (const slice of local.slices) sliceBridgeLines(slice, links, options.mtu, lines, changed);
  for (const link of links) {
    if (!isGoneNetworkBridge(link.ifname, plan, links)) continue;
    lines.push(`link delete ${link.ifname}`);
    changed.push(`removed bridge ${link.ifname} (no slice of its network here now)`);
  }
  const vxlan = links.find((link) => link.ifname === VXLAN_NAME);
  if (local.underlay === undefined) {
    if (vxlan !== undefined) {
      lines.push(`link delete ${VXLAN_NAME}`);
      changed.push(`removed ${VXLAN_NAME} (no IPv4 underlay address)`);
    }
    return { lines, changed };
  }
  const matches = vxlan !== undefined && vxlanMatches(vxlan, plan, options);
  if (vxlan !== undefined && !matches) {
    lines.push(`link delete ${VXLAN_NAME}`);
    changed.push(`removed ${VXLAN_NAME} (settings changed)`);
  }
  if (!matches) {
    lines.push(`link add ${VXLAN_NAME} type vxlan id ${VXLAN_ID} dstport ${options.vxlanPort} local ${local.underlay} nolearning`);
    lines.push(`link set ${VXLAN_NAME} address ${local.vtepMac} mtu ${options.mtu}`);
    changed.push(`made ${VXLAN_NAME} (vni ${VXLAN_ID}, udp ${options.vxlanPort}, local ${local.underlay})`);
  }
  lines.push(`addr replace ${local.vtepAddress}/32 dev ${VXLAN_NAME}`, `link set ${VXLAN_NAME} up`);
  return { lines, changed };
}

/**
 * Whether `name` is a tenant network bridge this node has no use for now:
 * no slice of the plan is on it and no port hangs on it in `links` (a
 * container that still does, started just before its slice was given
 * back, keeps it until it goes).
 * `devicesBatch` deletes such a bridge, whether `links` has it or not.
 */
export function isGoneNetworkBridge(name: string, plan: OverlayPlan, links: readonly LinkState[]): boolean {
  if (!isNetworkBridge(name) || plan.local.slices.some((slice) => slice.bridge === name)) return false;
  return !links.some((port) => port.master === name);
}

/**
 * The host-local stores (`stores`: the folder names under the tenant
 * networks' IPAM folder, one per bridge) to remove along with their
 * bridges: those of a gone bridge (`isGoneNetworkBridge`), the ones the
 * batch from the same `links` deletes and the ones no link has any more
 * (a bridge deleted while the agent was down, a store left by a failed
 * removal). A store whose bridge still carries a container stays: its
 * leases are that container's. Names that are no bridge's are left alone.
 */
export function goneNetworkStores(stores: readonly string[], plan: OverlayPlan, links: readonly LinkState[]): string[] {
  return stores.filter((name) => isGoneNetworkBridge(name, plan, links));
}

/** The lines that make one tenant network's bridge right: made if missing, the slice's gateway its only IPv4 address, its fixed MAC, the MTU, up. */
function sliceBridgeLines(slice: LocalSlice, links: readonly LinkState[], mtu: number, lines: string[], changed: string[]): void {
  const bridge = links.find((link) => link.ifname === slice.bridge);
  if (bridge === undefined) {
    lines.push(`link add ${slice.bridge} type bridge`);
    changed.push(`made bridge ${slice.bridge} for ${slice.network}`);
  }
  const addresses = (bridge?.addr_info ?? []).filter((info) => info.family === undefined || info.family === 'inet');
  for (const info of addresses) {
    const cidr = `${info.local}/${info.prefixlen}`;
    if (cidr === slice.gatewayCidr) continue;
    lines.push(`addr del ${cidr} dev ${slice.bridge}`);
    changed.push(`removed ${cidr} from ${slice.bridge}`);
  }
  if (!addresses.some((info) => `${info.local}/${info.prefixlen}` === slice.gatewayCidr)) {
    lines.push(`addr replace ${slice.gatewayCidr} dev ${slice.bridge}`);
    changed.push(`${slice.bridge} ${slice.gatewayCidr}`);
  }
  if (bridge?.address !== slice.bridgeMac) lines.push(`link set ${slice.bridge} address ${slice.bridgeMac}`);
  lines.push(`link set ${slice.bridge} mtu ${mtu} up`);
}

function vxlanMatches(link: LinkState, plan: OverlayPlan, options: DeviceOptions): boolean {
  const data = link.linkinfo?.info_data;
  return (
    link.linkinfo?.info_kind === 'vxlan' &&
    data?.id === VXLAN_ID &&
    data.local === plan.local.underlay &&
    data.port === options.vxlanPort &&
    data.learning !== true &&
    link.address === plan.local.vtepMac &&
    link.mtu === options.mtu
  );
}
