/**
 * Container networking behind one interface (`ContainerNetwork`), so the
 * node bridge of today can give way to the overlay later. The runtime makes
 * each container's network namespace (`createNetns`: `ip netns add
 * hm-<hash>`); `CniNetwork` attaches it to a node bridge with the CNI
 * plugins (bridge + host-local IPAM, portmap for published ports, loopback
 * for `lo`), and undoes that on detach.
 *
 * Published ports answer on the node's addresses, 127.0.0.1 included:
 * portmap's SNAT mode sets `route_localnet` on the bridge so that DNAT from
 * loopback works.
 *
 * Egress: one node-level rule masquerades what leaves the subnet through any
 * other interface (`-s <subnet> ! -o <bridge> -j MASQUERADE`, as Docker does
 * per bridge), added once per process. The bridge plugin's own `ipMasq`
 * would make a chain and rules for every container, several iptables runs
 * per attach and per detach that grow slower as the table grows; it halved
 * the bridge plugin's time to leave it off. Attachments saved before this
 * (no `nodeMasquerade` in the saved result) are detached with `ipMasq` on, so
 * the plugin still removes their chains.
 *
 * The overlay. In an agent that runs the network component, the bridge,
 * its subnet (this node's slice of the cluster network) and the MTU come
 * from the node network file (`src/node/node-network.ts`), read before each
 * attach: the component makes the bridge and the VXLAN device, this file
 * attaches containers to it. While the file says `pending` (no subnet yet)
 * an attach fails with a NetworkError saying so. The masquerade rule then
 * leaves traffic to the cluster network alone (`! -d <cluster CIDR>`), so
 * containers on other nodes see each other's own addresses. Without the file
 * (the executor alone, a one-host cluster on loopback), the bridge `hm0` on
 * 10.88.0.0/16 as before.
 *
 * Addresses given again. host-local hands out a range's addresses round
 * robin from the last one it gave, kept per store; so each tenant network's
 * slice has a store of its own (`ipam-networks/<bridge>`), apart from the
 * node subnet's (`ipam`): one shared store restarted the node subnet at its
 * lowest free address after every slice attach. And since an address does
 * come back one day (after a wrap of the range, or so), an attach makes the
 * bridge forget the neighbour entry it may hold for the address, with the
 * MAC of the container that held it before: the node would send to that MAC
 * until the entry failed its probes, about 8 s in which the new container
 * is unreachable from the node and through it (the routing mesh's and VIPs'
 * connections from other nodes too).
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statfsSync } from 'node:fs';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { networkIpamStoresPath, readNodeNetwork } from '../../node/node-network.js';
import { REAL_CLOCK, retryUntil, type RetryClock } from '../../node/retry.js';
import { containsAddress, parseCidr, parseIpv4 } from '../../state/ipam.js';
import type { PortSpec } from '../../state/types.js';
import { assert } from '../../../consensus/core/assert.js';

/** A container's network, once attached. */
export interface NetworkAttachment {
  /** The container's IPv4 address on its first network (eth0). */
  address: string;
  /** On more than one network: every address, in the order of its networks (eth0, eth1, ...; the first is `address`). */
  addresses?: string[];
}

/** Gives containers a network. Implementations must make `detach` safe to repeat and safe after a failed `attach`. */
export interface ContainerNetwork {
  /** Connects the network namespace at `netnsPath`; `ports` with `published` are published on the node. `tenant`: the instance's, whose network it may go on. */
  attach(id: string, netnsPath: string, ports: PortSpec[], options?: AttachOptions): Promise<NetworkAttachment>;
  /** Disconnects what `attach` made for `id`. Unknown id, or a namespace already gone, is fine. */
  detach(id: string, netnsPath: string, ports: PortSpec[]): Promise<void>;
}

/** Whose container an attach is for. */
export interface AttachOptions {
  /** The instance's tenant: its containers go on its tenant networks where the node network file says so. */
  tenant?: string;
  /** The tenant networks it joins, in order (eth0, eth1, ...; the default route on the first), those the state holds; absent: `default`; empty: the node subnet. */
  networks?: readonly string[];
}

/** The node bridge's subnet without the overlay; its first address is the bridge's (the containers' gateway). */
export const DEFAULT_SUBNET = '10.88.0.0/16';

/** Settings of the CNI network. */
export interface CniNetworkOptions {
  /** Where the network keeps its IPAM leases and per-container results: `<dataDir>/cni`. */
  stateDir: string;
  /** Bridge name (at most 15 characters). */
  bridge?: string;
  /** IPv4 subnet of the bridge. */
  subnet?: string;
  /** Folders with the plugins; Debian's and the usual upstream one by default. */
  pluginDirs?: string[];
  /** The CNI network name. */
  name?: string;
  /** The node network file (`src/node/node-network.ts`); when it exists, its bridge, subnet and MTU replace `bridge` and `subnet`. */
  nodeNetworkFile?: string;
  /** How long an attach waits for the node's slice of a tenant's network (placed here just now: the leader's attach is being committed) before it fails; SLICE_WAIT_MS_DEFAULT. */
  sliceWaitMs?: number;
  /** The clock of that wait. */
  clock?: RetryClock;
}

/**
 * How long an attach waits for a pending slice by default: an instance is
 * placed and its node's slice attached by two commits in a row, so the
 * slice is usually there within a second; a start that failed instead
 * would count against the instance's restart policy.
 */
export const SLICE_WAIT_MS_DEFAULT = 15_000;
/** How often the wait reads the node network file again. */
const SLICE_POLL_MS = 200;

/** What an attach uses: the bridge, its subnet, and with the overlay the cluster CIDR and MTU. */
interface NetworkSettings {
  bridge: string;
  subnet: string;
  clusterCidr?: string;
  /** The tenant network pool: traffic to it is not masqueraded either. */
  tenantCidr?: string;
  mtu?: number;
  /** The tenant network (`tenant/name`) whose slice `subnet` is; absent for the node subnet. */
  network?: string;
  /** Its block, routed through this interface when it is not the container's first (eth1, ...: the default route is eth0's). */
  block?: string;
}

/** One interface of a container beyond eth0: its name, what it attached to, and the bridge plugin's result (for DEL). */
interface ExtraInterface {
  ifName: string;
  settings: NetworkSettings;
  result?: Record<string, unknown>;
}

/** The interfaces past eth0 of a container on the networks of `more` (its second and later), in order. */
function extraInterfaces(more: readonly NetworkSettings[]): ExtraInterface[] {
  return more.map((each, index) => ({ ifName: `eth${index + 1}`, settings: each }));
}

/** A slice of a tenant network this node holds, as the node network file lists it. */
export interface HeldSlice {
  /** `tenant/name`. */
  network: string;
  tenant: string;
  name: string;
  bridge: string;
  /** The slice (CIDR). */
  subnet: string;
}

/** Whether this process's network namespace has a link `name`. */
export function hasLink(name: string): boolean {
  // /proc/self/net/dev follows this process's network namespace (sysfs may be the host's, under `nsenter --net`).
  try {
    return readFileSync('/proc/self/net/dev', 'utf8').split('\n').some((line) => line.trimStart().startsWith(`${name}:`));
  } catch {
    return existsSync(`/sys/class/net/${name}`);
  }
}

/** Whether IPv4 `address` is in `cidr`. */
export function cidrHolds(cidr: string, address: string): boolean {
  const subnet = parseCidr(cidr);
  const value = parseIpv4(address);
  return subnet.ok && value !== undefined && containsAddress(subnet.network, value);
}

/** A CNI failure; the message names the plugin and its error. */
export class NetworkError extends Error {
  override readonly name: string = 'NetworkError';
  readonly code: string = 'network';
}

/** The node's slice of a tenant's network is not committed yet: an attach waits for it, then fails with this. */
export class SlicePendingError extends NetworkError {
  override readonly name = 'SlicePendingError';
  override readonly code = 'network-slice-pending';
  readonly retryable = true;
}

const CNI_VERSION = '1.0.0';
/** How long one plugin may run. */
const PLUGIN_TIMEOUT_MS = 30_000;

/** The IPv4 address a bridge plugin's `result` gave `id` on `ifName`. */
function addressOf(result: Record<string, unknown> | undefined, id: string, ifName: string): string {
  const ips = (result?.ips ?? []) as Array<{ address: string }>;
  const address = ips.map((ip) => ip.address.split('/')[0]!).find((candidate) => candidate.includes('.'));
  if (address === undefined) throw new NetworkError(`CNI gave ${id} no IPv4 address on ${ifName}`);
  return address;
}

/** The netns name of a container id: short, fixed length, no odd characters. */
export function netnsName(id: string): string {
  return `hm-${createHash('sha256').update(id).digest('hex').slice(0, 12)}`;
}

/** Where the network namespace of container `id` is (or will be) mounted. */
export function netnsPathOf(id: string): string {
  return `/run/netns/${netnsName(id)}`;
}

/** Where the network namespace named `name` (`ip netns` name) is (or will be) mounted. */
export function netnsPathOfName(name: string): string {
  return `/run/netns/${name}`;
}

/** Creates the network namespace named `name` (if missing); answers its path. `what` names its user in the error. */
export async function createNamedNetns(name: string, what: string = name): Promise<string> {
  const path = netnsPathOfName(name);
  if (existsSync(path)) return path;
  const added = await run('ip', ['netns', 'add', name]);
  if (added.code !== 0) throw new NetworkError(`cannot create network namespace ${name} for ${what}: ${added.stderr.trim()}`);
  return path;
}

/** Deletes the network namespace named `name`; a missing one is fine. */
export async function deleteNamedNetns(name: string): Promise<void> {
  if (!existsSync(netnsPathOfName(name))) return;
  const deleted = await run('ip', ['netns', 'delete', name]);
  if (deleted.code !== 0) throw new NetworkError(`cannot delete network namespace ${name}: ${deleted.stderr.trim()}`);
}

/** The filesystem magic of a namespace file (nsfs). */
const NSFS_MAGIC = 0x6e736673;

/**
 * Whether `path` is a network namespace still held by its bind mount. A file
 * left under /run/netns by a mount namespace that is gone (an agent run in
 * `ip netns exec`, then killed) is not: CNI's DEL refuses it ("unknown FS
 * magic"), and a DEL without a namespace releases what it can.
 */
export function isLiveNetns(path: string): boolean {
  try {
    return path !== '' && statfsSync(path).type === NSFS_MAGIC;
  } catch {
    return false;
  }
}

/** Creates the network namespace of container `id` (if missing); answers its path (`netnsPathOf`). */
export async function createNetns(id: string): Promise<string> {
  return createNamedNetns(netnsName(id), id);
}

/** Deletes the network namespace of container `id`; a missing one is fine. */
export async function deleteNetns(id: string): Promise<void> {
  await deleteNamedNetns(netnsName(id));
}

function run(command: string, args: string[], options: { env?: NodeJS.ProcessEnv; input?: string; timeoutMs?: number } = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env: options.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? PLUGIN_TIMEOUT_MS);
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, stdout, stderr });
    });
    // A program that does not read stdin (ip) closes it early: not an error.
    child.stdin.on('error', () => undefined);
    child.stdin.end(options.input ?? '');
  });
}

/** What an attach saves under `<stateDir>/results/`, for detach and publish. */
interface SavedAttach {
  id: string;
  netnsPath: string;
  ports: PortSpec[];
  result?: Record<string, unknown>;
  /** Attached without the bridge plugin's per-container masquerade (absent in records made before the node rule). */
  nodeMasquerade?: boolean;
  /** The bridge and subnet attached to (absent in records made before tenant networks: the node's). */
  settings?: NetworkSettings;
  /** The interfaces on the container's second and later networks (absent: one network). */
  extra?: ExtraInterface[];
}

/** The node bridge network through the CNI plugins. */
export class CniNetwork implements ContainerNetwork {
  readonly name: string;
  private readonly defaults: NetworkSettings;
  /** The node network file the slices are read from (`heldSlices`); undefined: the node subnet alone. */
  readonly nodeNetworkFile: string | undefined;
  private readonly stateDir: string;
  private readonly pluginDirs: string[];
  private readonly sliceWaitMs: number;
  private readonly clock: RetryClock;
  /** The node masquerade rules in place or being added, by rule (one per subnet or slice; removed on failure, so the next attach retries). */
  private readonly masquerades = new Map<string, Promise<void>>();

  constructor(options: CniNetworkOptions) {
    this.stateDir = options.stateDir;
    this.defaults = { bridge: options.bridge ?? 'hm0', subnet: options.subnet ?? DEFAULT_SUBNET };
    this.nodeNetworkFile = options.nodeNetworkFile;
    this.name = options.name ?? 'hivemind';
    this.pluginDirs = options.pluginDirs ?? ['/usr/lib/cni', '/opt/cni/bin'];
    this.sliceWaitMs = options.sliceWaitMs ?? SLICE_WAIT_MS_DEFAULT;
    this.clock = options.clock ?? REAL_CLOCK;
    if (this.defaults.bridge.length > 15) throw new NetworkError(`bridge name "${this.defaults.bridge}" is longer than 15 characters`);
  }

  /**
   * The settings an attach uses now. With a node network file that says
   * `pending`: a NetworkError when `forAttach`, else the defaults' bridge
   * (detach needs only the names).
   */
  private settings(forAttach = false): NetworkSettings {
    return this.attachSettings(forAttach, {})[0]!;
  }

  /**
   * The settings of each interface an attach makes, eth0 first: per network
   * of `options.networks` (absent: `default`) this node's slice of it, when
   * the node network file lists the tenant's networks; else the node subnet
   * alone. A listed network still `pending`, or one not listed of a tenant
   * with others listed (made just now): a SlicePendingError when
   * `forAttach`. A tenant with no network listed: the node subnet.
   */
  private attachSettings(forAttach: boolean, options: AttachOptions): NetworkSettings[] {
    if (this.nodeNetworkFile === undefined) return [this.defaults];
    const network = readNodeNetwork(this.nodeNetworkFile);
    if (network === undefined) return [this.defaults];
    if (network.state !== 'ready') {
      if (forAttach) throw new NetworkError(`this node's overlay network is not ready yet (waiting for its subnet from the cluster; see the agent's network log lines)`);
      return [this.defaults];
    }
    const pool = network.tenantCidr !== undefined ? { tenantCidr: network.tenantCidr } : {};
    const nodeSubnet: NetworkSettings = { bridge: network.bridge, subnet: network.subnet, clusterCidr: network.clusterCidr, mtu: network.mtu, ...pool };
    const { tenant } = options;
    if (tenant === undefined) return [nodeSubnet];
    const listed: NetworkSettings[] = [];
    // A tenant with some network listed is on its networks here: one not listed yet was made just now (the file names it within a state pass).
    const carried = Object.keys(network.networks ?? {}).some((key) => key.startsWith(`${tenant}/`));
    for (const name of options.networks ?? ['default']) {
      const own = network.networks?.[`${tenant}/${name}`];
      if (own === undefined) {
        if (carried && forAttach) throw new SlicePendingError(`network ${tenant}/${name} is not listed in this node's network file yet (made just now; the network component lists it once it applies the commit)`);
        continue;
      }
      if (own.state === 'pending') {
        if (forAttach) throw new SlicePendingError(`this node's slice of network ${own.network} is not committed yet (the leader attaches the node once an instance of it is placed here; see the agent's network log lines)`);
        continue;
      }
      listed.push({ bridge: own.bridge, subnet: own.subnet, clusterCidr: network.clusterCidr, mtu: network.mtu, network: own.network, block: own.block, ...pool });
    }
    return listed.length === 0 ? [nodeSubnet] : listed;
  }

  /** Whether `tenant`'s containers attach to the node subnet now (so a warm network, made there, fits them); false while the tenant is on its tenant networks here. */
  onNodeSubnet(tenant: string): boolean {
    if (this.nodeNetworkFile === undefined) return true;
    const network = readNodeNetwork(this.nodeNetworkFile);
    return network?.state !== 'ready' || !Object.keys(network.networks ?? {}).some((key) => key.startsWith(`${tenant}/`));
  }

  /** The bridge containers attach to now. */
  get bridge(): string {
    return this.settings().bridge;
  }

  /** The subnet container addresses come from now. */
  get subnet(): string {
    return this.settings().subnet;
  }

  /** Whether `address` is in the subnet attaches use now (a warm network made on an older subnet is not). */
  holds(address: string): boolean {
    return cidrHolds(this.subnet, address);
  }

  /** Whether the plugins this network needs are installed. */
  available(): boolean {
    return ['bridge', 'host-local', 'portmap', 'loopback'].every((plugin) => this.pluginDirs.some((folder) => existsSync(join(folder, plugin))));
  }

  /** The node-level masquerade rule of `settings`: what leaves the subnet, not for the cluster network, not back onto the bridge. */
  private masqueradeRuleOf(settings: NetworkSettings): string[] {
    const cluster = settings.clusterCidr === undefined ? [] : ['!', '-d', settings.clusterCidr];
    return ['POSTROUTING', '-s', settings.subnet, ...cluster, '!', '-o', settings.bridge, '-m', 'comment', '--comment', `hivemind ${this.name} ${settings.bridge}: masquerade`, '-j', 'MASQUERADE'];
  }

  /** The rule that keeps traffic from the subnet to the tenant network pool unmasqueraded (one `! -d` per rule: a RETURN before the masquerade), or undefined without a pool. */
  private poolReturnRuleOf(settings: NetworkSettings): string[] | undefined {
    if (settings.tenantCidr === undefined) return undefined;
    return ['POSTROUTING', '-s', settings.subnet, '-d', settings.tenantCidr, '-m', 'comment', '--comment', `hivemind ${this.name} ${settings.bridge}: tenant networks keep their sources`, '-j', 'RETURN'];
  }

  /** Runs `iptables -w -t nat <action>` on a masquerade rule; a missing iptables is exit code -1. `-I` inserts first in the chain. */
  private masqueradeRule(action: '-A' | '-C' | '-D' | '-I', rule: string[]): Promise<{ code: number; stderr: string }> {
    const args = action === '-I' ? [rule[0]!, '1', ...rule.slice(1)] : rule;
    return run('iptables', ['-w', '-t', 'nat', action, ...args]).catch((error: Error) => ({ code: -1, stderr: error.message }));
  }

  /** Adds the node masquerade rule of `settings` unless it is there; once per process and rule (each subnet and slice has its own). */
  private ensureMasquerade(settings: NetworkSettings): Promise<void> {
    const rule = this.masqueradeRuleOf(settings);
    const poolReturn = this.poolReturnRuleOf(settings);
    const key = [...rule, ...(poolReturn ?? [])].join(' ');
    const known = this.masquerades.get(key);
    if (known !== undefined) return known;
    const done = (async () => {
      if (poolReturn !== undefined && (await this.masqueradeRule('-C', poolReturn)).code !== 0) {
        const inserted = await this.masqueradeRule('-I', poolReturn);
        if (inserted.code !== 0) throw new NetworkError(`cannot add the rule keeping ${settings.subnet}'s sources toward ${settings.tenantCidr} (iptables -t nat -I POSTROUTING): ${inserted.stderr.trim() || `exit code ${inserted.code}`}`);
      }
      if ((await this.masqueradeRule('-C', rule)).code === 0) return;
      const added = await this.masqueradeRule('-A', rule);
      if (added.code !== 0) throw new NetworkError(`cannot add the masquerade rule for ${settings.subnet} (iptables -t nat -A POSTROUTING): ${added.stderr.trim() || `exit code ${added.code}`}`);
    })().catch((error: unknown) => {
      this.masquerades.delete(key);
      throw error;
    });
    this.masquerades.set(key, done);
    return done;
  }

  /**
   * The host-local store of `settings`' range: the node subnet's, or one per
   * tenant network bridge, so that each range keeps its own round robin (see
   * the file comment).
   */
  private ipamDirOf(settings: NetworkSettings): string {
    return settings.network === undefined ? join(this.stateDir, 'ipam') : join(networkIpamStoresPath(this.stateDir), settings.bridge);
  }

  /**
   * Makes `bridge` forget its neighbour entry for `address`, just given to a
   * new container: an entry left by the address's last holder would send the
   * node's packets to a MAC no port has any more (see the file comment).
   */
  private async forgetNeighbour(bridge: string, address: string): Promise<void> {
    const flushed = await run('ip', ['neigh', 'flush', 'to', address, 'dev', bridge]).catch((error: Error) => ({ code: -1, stdout: '', stderr: error.message }));
    if (flushed.code !== 0) throw new NetworkError(`cannot clear the neighbour entry of ${address} on ${bridge} (ip neigh flush): ${flushed.stderr.trim() || `exit code ${flushed.code}`}`);
  }

  /**
   * The plugin chain; `perContainerMasquerade` only to detach what was
   * attached before the node rule. `first`: eth0, which takes the default
   * route and the published ports; a later interface routes its network's
   * block alone.
   */
  private plugins(ports: PortSpec[], perContainerMasquerade = false, settings: NetworkSettings = this.settings(), first = true): Array<Record<string, unknown>> {
    const portMappings = first ? ports.filter((port) => port.published !== undefined).map((port) => ({ hostPort: port.published, containerPort: port.target, protocol: port.protocol })) : [];
    const routes = first || settings.block === undefined ? [{ dst: '0.0.0.0/0' }] : [{ dst: settings.block }];
    const plugins: Array<Record<string, unknown>> = [
      {
        type: 'bridge',
        bridge: settings.bridge,
        isGateway: true,
        ipMasq: perContainerMasquerade,
        hairpinMode: true,
        ...(settings.mtu !== undefined ? { mtu: settings.mtu } : {}),
        ipam: { type: 'host-local', ranges: [[{ subnet: settings.subnet }]], routes, dataDir: this.ipamDirOf(settings) },
      },
    ];
    if (portMappings.length > 0) plugins.push({ type: 'portmap', capabilities: { portMappings: true }, snat: true, runtimeConfig: { portMappings } });
    return plugins;
  }

  private async invoke(plugin: Record<string, unknown>, command: 'ADD' | 'DEL', id: string, netnsPath: string, ifName: string, prevResult?: unknown): Promise<Record<string, unknown> | undefined> {
    const type = plugin.type as string;
    const folder = this.pluginDirs.find((candidate) => existsSync(join(candidate, type)));
    if (folder === undefined) throw new NetworkError(`CNI plugin "${type}" is not installed in ${this.pluginDirs.join(' or ')} (apt-get install containernetworking-plugins)`);
    const config = { cniVersion: CNI_VERSION, name: this.name, ...plugin, ...(prevResult !== undefined ? { prevResult } : {}) };
    const env = {
      PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin',
      CNI_COMMAND: command,
      CNI_CONTAINERID: id,
      CNI_NETNS: netnsPath,
      CNI_IFNAME: ifName,
      CNI_PATH: this.pluginDirs.join(':'),
    };
    const result = await run(join(folder, type), [], { env, input: JSON.stringify(config) });
    if (result.code !== 0) {
      let message = result.stdout.trim() || result.stderr.trim();
      try {
        const parsed = JSON.parse(result.stdout) as { msg?: string; details?: string };
        message = [parsed.msg, parsed.details].filter(Boolean).join(': ');
      } catch {
        // not JSON: keep the text
      }
      throw new NetworkError(`CNI ${type} ${command} for ${id} failed: ${message || `exit code ${result.code}`}`);
    }
    if (command === 'DEL' || result.stdout.trim() === '') return undefined;
    return JSON.parse(result.stdout) as Record<string, unknown>;
  }

  private resultPath(id: string): string {
    return join(this.stateDir, 'results', `${netnsName(id)}.json`);
  }

  async attach(id: string, netnsPath: string, ports: PortSpec[], options: AttachOptions = {}): Promise<NetworkAttachment> {
    await mkdir(join(this.stateDir, 'results'), { recursive: true });
    const [settings, ...more] = await this.waitSettings(options);
    const extra = extraInterfaces(more);
    try {
      // `lo` and each `ethN` are independent interfaces of the namespace: bring them up at once.
      const loopback = this.invoke({ type: 'loopback' }, 'ADD', id, netnsPath, 'lo');
      const chain = this.addChain({ id, netnsPath, ifName: 'eth0', plugins: this.plugins(ports, false, settings) });
      // Saved before their ADDs, so a detach after a failure halfway releases what was leased.
      if (extra.length > 0) await this.save({ id, netnsPath, ports, nodeMasquerade: true, settings, extra });
      const extraAdded = this.addInterfaces(id, netnsPath, extra);
      const first = chain.then(async (result) => {
        const address = addressOf(result, id, 'eth0');
        await this.forgetNeighbour(settings.bridge, address);
        return address;
      });
      const outcomes = await Promise.allSettled([loopback, first, extraAdded, this.ensureMasquerade(settings)]);
      const failed = outcomes.find((outcome): outcome is PromiseRejectedResult => outcome.status === 'rejected');
      if (failed !== undefined) throw failed.reason;
      const addresses = [await first, ...(await extraAdded)];
      await this.save({ id, netnsPath, ports, result: await chain, nodeMasquerade: true, settings, ...(extra.length > 0 ? { extra } : {}) });
      this.confirmSlices([settings, ...more]);
      return { address: addresses[0]!, ...(addresses.length > 1 ? { addresses } : {}) };
    } catch (error) {
      await this.detach(id, netnsPath, ports).catch(() => undefined);
      throw error;
    }
  }

  /**
   * Adds the container's second and later networks (`options.networks`
   * past the first) to a namespace attached earlier under `id` on the
   * first alone: a warm network of the first network's slice, taken by a
   * container on several (`slice-pools.ts`). `eth1`, ... as `attach` makes
   * them, saved with the attach so that `detach(id, ...)` releases them too
   * (saved before their ADDs). A NetworkError when nothing is saved under
   * `id`, or its eth0 is not on the first network's slice now; a
   * SlicePendingError as `attach`. On a failure the caller detaches `id`
   * (the container's start undoes it). Answers every address, eth0's first.
   */
  async attachMore(id: string, netnsPath: string, options: AttachOptions): Promise<NetworkAttachment> {
    const saved = await this.saved(id);
    if (saved?.settings === undefined || saved.result === undefined) throw new NetworkError(`cannot add networks to ${id}: the CNI result of its first network is missing or not readable`);
    const [first, ...more] = await this.waitSettings(options);
    if (first.bridge !== saved.settings.bridge || first.subnet !== saved.settings.subnet) {
      throw new NetworkError(`cannot add networks to ${id}: its eth0 is on ${saved.settings.subnet} (${saved.settings.bridge}), and the container's first network is on ${first.subnet} (${first.bridge}) now`);
    }
    const address = addressOf(saved.result, id, 'eth0');
    const extra = extraInterfaces(more);
    if (extra.length === 0) return { address };
    const record: SavedAttach = { ...saved, netnsPath, extra };
    await this.save(record);
    const addresses = [address, ...(await this.addInterfaces(id, netnsPath, extra))];
    await this.save(record);
    this.confirmSlices([first, ...more]);
    return { address, addresses };
  }

  /** The settings of each interface of an attach for `options`, eth0 first, waiting for a pending slice (see SLICE_WAIT_MS_DEFAULT); anything else wrong fails at once. */
  private async waitSettings(options: AttachOptions): Promise<[NetworkSettings, ...NetworkSettings[]]> {
    const [settings, ...more] = await retryUntil(async () => this.attachSettings(true, options), {
      deadline: this.clock.now() + this.sliceWaitMs,
      delayMs: SLICE_POLL_MS,
      retryable: (error) => error instanceof SlicePendingError,
      clock: this.clock,
    });
    assert(settings !== undefined, 'an attach has at least one network');
    return [settings, ...more];
  }

  /**
   * CNI ADD of `extra` (eth1, ...: each network's block routed, no ports)
   * at once, with each slice's masquerade rule; sets each one's `result`
   * and answers their addresses in order. Every ADD settles before a
   * failure is thrown, so the caller's detach finds all that was leased.
   */
  private async addInterfaces(id: string, netnsPath: string, extra: ExtraInterface[]): Promise<string[]> {
    const added = extra.map(async (each) => {
      const result = await this.addChain({ id, netnsPath, ifName: each.ifName, plugins: this.plugins([], false, each.settings, false) });
      each.result = result;
      const address = addressOf(result, id, each.ifName);
      await this.forgetNeighbour(each.settings.bridge, address);
      return address;
    });
    const outcomes = await Promise.allSettled([...added, ...extra.map((each) => this.ensureMasquerade(each.settings))]);
    const failed = outcomes.find((outcome): outcome is PromiseRejectedResult => outcome.status === 'rejected');
    if (failed !== undefined) throw failed.reason;
    return Promise.all(added);
  }

  /**
   * Checks, after the ADDs, that the node still holds every slice `used`
   * attached to, as the node network file lists it now; a SlicePendingError
   * when one was given back meanwhile (the caller's detach releases the
   * leases). This closes the race of an attach with the slice's release:
   * the network component lists a slice given back as pending BEFORE its
   * overlay pass reads the links to delete the slice's bridge and store
   * (`listedBeforeDevices`, src/network/listed-networks.ts). So either this
   * read sees the slice gone, and the attach undoes itself, or the file was
   * rewritten after it, when the bridge plugin had made this container's
   * veth a port of the bridge, and the pass keeps the bridge and its store
   * (the lease in it) while the container hangs on it. Without this check an
   * attach that read the file just before a pass could lease in a store the
   * pass removes after, and the address be given again by the next slice of
   * the network on the node while this container holds it.
   */
  private confirmSlices(used: readonly NetworkSettings[]): void {
    const slices = used.filter((each) => each.network !== undefined);
    if (slices.length === 0 || this.nodeNetworkFile === undefined) return;
    const listed = readNodeNetwork(this.nodeNetworkFile);
    for (const slice of slices) {
      const entry = listed?.state === 'ready' ? listed.networks?.[slice.network!] : undefined;
      if (entry?.state === 'ready' && entry.bridge === slice.bridge && entry.subnet === slice.subnet) continue;
      throw new SlicePendingError(`this node gave back its slice ${slice.subnet} of network ${slice.network} while the container was being attached to it; the start is tried again`);
    }
  }

  /** CNI ADD of `plugins` in order on `ifName`, each given the one before's result; answers the last result. */
  private async addChain(chain: { id: string; netnsPath: string; ifName: string; plugins: Array<Record<string, unknown>> }): Promise<Record<string, unknown> | undefined> {
    let chained: Record<string, unknown> | undefined;
    for (const plugin of chain.plugins) chained = (await this.invoke(plugin, 'ADD', chain.id, chain.netnsPath, chain.ifName, chained)) ?? chained;
    return chained;
  }

  /** CNI DEL of everything attached under `id`; a `netnsPath` no mount holds (missing, or stale: see isLiveNetns) is sent as none. */
  async detach(id: string, netnsPath: string, ports: PortSpec[]): Promise<void> {
    let prevResult: unknown;
    let savedPorts = ports;
    let perContainerMasquerade = false;
    let settings = this.settings();
    const saved = await this.saved(id);
    if (saved !== undefined) {
      prevResult = saved.result;
      if (saved.ports) savedPorts = saved.ports;
      perContainerMasquerade = saved.nodeMasquerade !== true;
      if (saved.settings !== undefined) settings = saved.settings;
    }
    // No saved result: DEL without prevResult is allowed by the spec.
    const problems: string[] = [];
    const namespace = isLiveNetns(netnsPath) ? netnsPath : '';
    for (const each of saved?.extra ?? []) {
      try {
        await this.invoke(this.plugins([], false, each.settings, false)[0]!, 'DEL', id, namespace, each.ifName, each.result);
      } catch (error) {
        problems.push((error as Error).message);
      }
    }
    for (const plugin of this.plugins(savedPorts, perContainerMasquerade, settings).reverse()) {
      try {
        await this.invoke(plugin, 'DEL', id, isLiveNetns(netnsPath) ? netnsPath : '', 'eth0', prevResult);
      } catch (error) {
        problems.push((error as Error).message);
      }
    }
    await rm(this.resultPath(id), { force: true });
    if (problems.length > 0) throw new NetworkError(problems.join('; '));
  }

  /**
   * Publishes `ports` (those with `published`) for a namespace attached
   * earlier under `id` without ports (a warm network): portmap ADD with the
   * saved bridge result as prevResult. The ports are saved with the result
   * before the ADD, so `detach(id, ...)` runs portmap DEL even after an ADD
   * that failed halfway. No published port: does nothing.
   */
  async publish(id: string, netnsPath: string, ports: PortSpec[]): Promise<void> {
    const portmap = this.plugins(ports).find((plugin) => plugin.type === 'portmap');
    if (portmap === undefined) return;
    const saved = await this.saved(id);
    if (saved === undefined) throw new NetworkError(`cannot publish ports of ${id}: its CNI result is missing or not readable`);
    await this.save({ ...saved, netnsPath, ports });
    const result = (await this.invoke(portmap, 'ADD', id, netnsPath, 'eth0', saved.result)) ?? saved.result;
    await this.save({ ...saved, netnsPath, ports, result });
  }

  /** The saved record of the attach made under `id`; undefined if there is none or it is not readable. */
  private async saved(id: string): Promise<SavedAttach | undefined> {
    try {
      return JSON.parse(await readFile(this.resultPath(id), 'utf8')) as SavedAttach;
    } catch {
      return undefined;
    }
  }

  private save(record: SavedAttach): Promise<void> {
    return writeFile(this.resultPath(record.id), JSON.stringify(record));
  }

  /** Whether the node bridge exists (an attach made earlier hangs on it). */
  attachable(): boolean {
    return hasLink(this.bridge);
  }

  /**
   * The slices of tenant networks this node holds now, as the node network
   * file lists them ready (none without the file, or while it is pending):
   * what the warm pools per slice are kept for.
   */
  heldSlices(): HeldSlice[] {
    if (this.nodeNetworkFile === undefined) return [];
    const network = readNodeNetwork(this.nodeNetworkFile);
    if (network?.state !== 'ready') return [];
    const held: HeldSlice[] = [];
    for (const entry of Object.values(network.networks ?? {})) {
      if (entry.state !== 'ready') continue;
      const slash = entry.network.indexOf('/');
      held.push({ network: entry.network, tenant: entry.network.slice(0, slash), name: entry.network.slice(slash + 1), bridge: entry.bridge, subnet: entry.subnet });
    }
    return held;
  }

  /** Whether the CNI result of an attach made under `id` is saved (an attach finished and was not detached). */
  hasResult(id: string): boolean {
    return existsSync(this.resultPath(id));
  }

  /** The CNI container ids that hold an address lease in this network's host-local IPAM store: the node subnet's, or with `bridge` that tenant network bridge's. */
  async leasedIds(bridge?: string): Promise<string[]> {
    const folder = bridge === undefined ? join(this.stateDir, 'ipam', this.name) : join(networkIpamStoresPath(this.stateDir), bridge, this.name);
    let names: string[];
    try {
      names = await readdir(folder);
    } catch {
      return [];
    }
    const ids: string[] = [];
    for (const name of names) {
      // host-local keeps one file per address (named by it) holding "<container id>\r\n<ifname>", plus its own bookkeeping files.
      if (isIP(name) === 0) continue;
      const text = await readFile(join(folder, name), 'utf8').catch(() => '');
      const id = text.split(/\r?\n/)[0]?.trim();
      if (id) ids.push(id);
    }
    return ids;
  }

  /** Removes the bridge and the node masquerade rule (tests and uninstall; running containers lose their network). */
  async removeBridge(): Promise<void> {
    const settings = this.settings();
    await run('ip', ['link', 'delete', settings.bridge]);
    // Every copy of the rule (another process of an earlier run may have added one too).
    const rule = this.masqueradeRuleOf(settings);
    for (let copies = 0; copies < 16; copies++) {
      if ((await this.masqueradeRule('-D', rule)).code !== 0) break;
    }
    this.masquerades.clear();
  }
}
