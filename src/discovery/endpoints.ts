/**
 * The endpoints service discovery answers with (DNS today, the proxy next):
 * which instances of an app serve, and at which address. This file is the
 * one place that chooses the address of an instance: today the one its node
 * reports in its status (`InstanceStatus.endpoint`: a container's address on
 * its node network, or the node's address and host ports for a process
 * app). An app's own name answers its service VIP (`App.vip`, from the
 * service range, reached through every node's nat chains) once it holds
 * one; instance names keep answering instances. Pure: reads the state, no I/O.
 */
import { containsAddress, parseCidr, parseIpv4 } from '../state/ipam.js';
import { versionNetworks } from '../state/app-networks.js';
import type { App, EndpointPort, Instance, NodeRecord, NodeStatus, TenantNetwork } from '../state/types.js';

/** One serving instance of an app, where it is reachable. */
export interface ServiceEndpoint {
  /** The instance id (`<tenant>.<app>.<slot>.<serial>`). */
  instance: string;
  tenant: string;
  app: string;
  slot: number;
  /** The serial number of the instance within its slot (the id's last part). */
  serial: string;
  version: number;
  address: string;
  /** An instance on several networks: every address, in the order of its networks (the first is `address`). */
  addresses?: readonly string[];
  ports: readonly EndpointPort[];
}

/** What the directory is built from: the live records (`ClusterStateMachine.schedulerView()`); read only, never kept. */
export interface DiscoveryInput {
  readonly apps: readonly App[];
  readonly instances: readonly Instance[];
  readonly nodes: readonly NodeRecord[];
  /** The tenant networks (their blocks say which network an address is on); absent: none. */
  readonly networks?: readonly TenantNetwork[];
}

/** Every app's serving endpoints and who is who by address. Owned by the caller; built anew when the state changes. */
export interface Directory {
  /** `tenant/app` of every app that exists (with or without serving instances). */
  readonly apps: ReadonlySet<string>;
  /** Tenants that have at least one app. */
  readonly tenants: ReadonlySet<string>;
  /** Serving endpoints by `tenant/app`, sorted by slot then instance id. */
  readonly endpoints: ReadonlyMap<string, readonly ServiceEndpoint[]>;
  /**
   * The tenant of a querier known by its source address: addresses of
   * running instances that only one tenant's instances have and that are no
   * node's own (process apps share their node's address: they cannot be
   * told apart by it).
   */
  readonly tenantOfAddress: ReadonlyMap<string, string>;
  /** The service VIP of each app that holds one (`App.vip`), by `tenant/app`. */
  readonly vips: ReadonlyMap<string, string>;
  /** The tenant network (`tenant/name`) whose block holds an address; undefined: the node subnets or outside. */
  readonly networkOf: (address: string) => string | undefined;
  /** The tenant networks (`tenant/name`) of a querier known by its source address: those of every address of its instance, in order; absent: on none. */
  readonly networksOfAddress: ReadonlyMap<string, readonly string[]>;
  /** The networks each app's current spec joins (`tenant/name`, in order), by `tenant/app`. */
  readonly appNetworks: ReadonlyMap<string, readonly string[]>;
}

/** States in which an instance takes traffic: healthy, or running without a health check. */
const SERVING_STATES: ReadonlySet<string> = new Set(['running', 'healthy']);
/** Node statuses whose instances are believed to run (suspect: not yet declared down). */
const LIVE_NODE_STATUSES: ReadonlySet<NodeStatus> = new Set(['up', 'suspect']);

/** The key of an app in the directory's maps. */
export function appKey(tenant: string, app: string): string {
  return `${tenant}/${app}`;
}

/**
 * Whether an instance takes traffic: wanted running, reported running or
 * healthy with an endpoint, on a node that is up or suspect.
 */
export function isServing(instance: Instance, nodeStatus: NodeStatus | undefined): boolean {
  return instance.desired === 'running' && SERVING_STATES.has(instance.status.state) && instance.status.endpoint !== undefined && nodeStatus !== undefined && LIVE_NODE_STATUSES.has(nodeStatus);
}

/** The address at which an instance is reached: see the file header. */
export function addressOf(instance: Instance): { address: string; addresses?: readonly string[]; ports: readonly EndpointPort[] } | undefined {
  return instance.status.endpoint;
}

/** The directory of the whole cluster. Deterministic: the same records give the same directory. */
export function directoryOf(input: DiscoveryInput): Directory {
  const nodeStatus = new Map<string, NodeStatus>();
  const nodeHosts = new Set<string>();
  for (const node of input.nodes) {
    nodeStatus.set(node.id, node.status);
    nodeHosts.add(hostOf(node.addresses.api));
    nodeHosts.add(hostOf(node.addresses.peer));
  }
  const apps = new Set<string>();
  const tenants = new Set<string>();
  const endpoints = new Map<string, ServiceEndpoint[]>();
  const addressTenants = new Map<string, string | null>();
  const vips = new Map<string, string>();
  const appNetworks = new Map<string, readonly string[]>();
  for (const app of input.apps) {
    apps.add(appKey(app.tenant, app.name));
    tenants.add(app.tenant);
    if (app.vip !== undefined) vips.set(appKey(app.tenant, app.name), app.vip);
    appNetworks.set(appKey(app.tenant, app.name), versionNetworks(app, app.version).map((name) => `${app.tenant}/${name}`));
  }
  const networkOf = networkLookup(input.networks ?? []);
  const networksOfAddress = new Map<string, readonly string[]>();
  for (const instance of input.instances) {
    const key = appKey(instance.tenant, instance.app);
    const reachable = addressOf(instance);
    if (reachable === undefined) continue;
    const all = reachable.addresses ?? [reachable.address];
    if (instance.desired === 'running' && !nodeHosts.has(reachable.address)) {
      const networks = all.flatMap((address) => networkOf(address) ?? []);
      for (const address of all) {
        const known = addressTenants.get(address);
        addressTenants.set(address, known === undefined || known === instance.tenant ? instance.tenant : null);
        if (networks.length > 0) networksOfAddress.set(address, networks);
      }
    }
    if (!isServing(instance, instance.node === undefined ? undefined : nodeStatus.get(instance.node))) continue;
    let list = endpoints.get(key);
    if (list === undefined) endpoints.set(key, (list = []));
    list.push({
      instance: instance.id,
      tenant: instance.tenant,
      app: instance.app,
      slot: instance.slot,
      serial: instance.id.slice(instance.id.lastIndexOf('.') + 1),
      version: instance.version,
      address: reachable.address,
      ...(reachable.addresses !== undefined ? { addresses: reachable.addresses } : {}),
      ports: reachable.ports,
    });
  }
  for (const list of endpoints.values()) list.sort((left, right) => left.slot - right.slot || (left.instance < right.instance ? -1 : left.instance > right.instance ? 1 : 0));
  const tenantOfAddress = new Map<string, string>();
  for (const [address, tenant] of addressTenants) if (tenant !== null) tenantOfAddress.set(address, tenant);
  return { apps, tenants, endpoints, tenantOfAddress, vips, networkOf, networksOfAddress, appNetworks };
}

/** Which network's block holds an address (a scan: a cluster holds at most a few hundred networks). */
function networkLookup(networks: readonly TenantNetwork[]): (address: string) => string | undefined {
  const blocks = networks.flatMap((network) => {
    const parsed = parseCidr(network.cidr);
    return parsed.ok ? [{ key: `${network.tenant}/${network.name}`, block: parsed.network }] : [];
  });
  return (address) => {
    if (blocks.length === 0) return undefined;
    const value = parseIpv4(address);
    return value === undefined ? undefined : blocks.find((entry) => containsAddress(entry.block, value))?.key;
  };
}

/** The host of `host:port` or `[v6]:port`. */
function hostOf(hostPort: string): string {
  if (hostPort.startsWith('[')) return hostPort.slice(1, hostPort.indexOf(']'));
  const colon = hostPort.lastIndexOf(':');
  return colon < 0 ? hostPort : hostPort.slice(0, colon);
}
