/**
 * The node's container network as the network component sets it up and the
 * executor's container network attaches to it: one JSON file,
 * `<dataDir>/network/node-network.json`, written whole (write to a temporary
 * name, then rename) by the network component only, read by the executor's
 * CNI network before each attach.
 *
 * `state: 'pending'`: the agent runs the overlay but this node has no subnet
 * yet (its first registration is not applied, or the cluster network is not
 * configured): an attach must wait. No file: no network component (tests of
 * the executor alone, older agents): the CNI network keeps its own default.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** The node network once ready. */
export interface NodeNetworkReady {
  state: 'ready';
  /** The bridge containers attach to. */
  bridge: string;
  /** This node's subnet (CIDR): container addresses come from it. */
  subnet: string;
  /** The bridge's address, the containers' gateway. */
  gateway: string;
  /** The cluster CIDR: traffic to it keeps its source address (no masquerade). */
  clusterCidr: string;
  /** The MTU of container interfaces (the underlay's less the VXLAN overhead). */
  mtu: number;
  /** The tenant network pool: traffic to it keeps its source address too. Absent: not set, or no tenant is on its network here. */
  tenantCidr?: string;
  /**
   * The tenant networks whose containers this node attaches (every one
   * the state holds), by
   * `tenant/name`: this node's slice of it, or `pending` while the slice is
   * not committed (an attach then waits, as for the node subnet). A tenant
   * with no network listed: the node subnet.
   */
  networks?: Record<string, TenantNetworkAttach | { state: 'pending'; network: string }>;
}

/** Where a tenant's containers attach on this node: its network's bridge and this node's slice. */
export interface TenantNetworkAttach {
  state: 'ready';
  /** `tenant/name`. */
  network: string;
  bridge: string;
  /** This node's slice (CIDR): container addresses come from it. */
  subnet: string;
  gateway: string;
  /** The network's block (CIDR), which holds every node's slice of it: a container's second and later interfaces route it. */
  block: string;
}

export type NodeNetwork = NodeNetworkReady | { state: 'pending' };

/** The executor's CNI state under the agent's data directory (`CniNetwork`'s `stateDir`: leases, attach results). */
export function cniStatePath(dataDir: string): string {
  return join(dataDir, 'cni');
}

/**
 * Where the host-local address stores of tenant network slices are, under
 * the CNI state directory: one folder per network bridge, named by it. The
 * executor's attaches fill them; the network component removes a bridge's
 * once the bridge goes (its slice given back), since a later slice of the
 * same network has the same bridge name.
 */
export function networkIpamStoresPath(cniStateDir: string): string {
  return join(cniStateDir, 'ipam-networks');
}

/** Where the file is under the agent's data directory. */
export function nodeNetworkPath(dataDir: string): string {
  return join(dataDir, 'network', 'node-network.json');
}

/** Writes the file atomically (synchronous: it is small, and a reader must never see half of it). */
export function writeNodeNetwork(dataDir: string, network: NodeNetwork): void {
  const path = nodeNetworkPath(dataDir);
  mkdirSync(join(dataDir, 'network'), { recursive: true });
  writeFileSync(`${path}.tmp`, `${JSON.stringify(network)}\n`);
  renameSync(`${path}.tmp`, path);
}

/** The file's content, or undefined when there is no file. A file that does not parse reads as pending. */
export function readNodeNetwork(path: string): NodeNetwork | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    return { state: 'pending' };
  }
  try {
    const parsed = JSON.parse(text) as NodeNetwork;
    if (parsed.state === 'ready' && typeof parsed.subnet === 'string' && typeof parsed.bridge === 'string') return parsed;
  } catch {
    // fall through
  }
  return { state: 'pending' };
}
