/**
 * The overlay's I/O: reads and programs the bridge, the VXLAN device and
 * its routes, neighbours and forwarding entries with `ip` and `bridge`
 * (iproute2), in the agent's own network namespace. What to program comes
 * from `overlay-plan.ts`; this file only carries it out.
 */
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { runCommand } from './run-command.js';
import { containsAddress, parseCidr, parseIpv4 } from '../state/ipam.js';
import { BRIDGE_NAME, VXLAN_ID, VXLAN_NAME, type OverlayChanges, type OverlayEntries, type OverlayPlan } from './overlay-plan.js';

/** A failed `ip` or `bridge` run; the message names the command and its error. */
export class OverlayError extends Error {
  override readonly name = 'OverlayError';
  readonly code = 'overlay';
  readonly retryable = true;
}

async function must(file: string, args: string[], input = ''): Promise<string> {
  const result = await runCommand(file, args, input);
  if (result.code !== 0) throw new OverlayError(`${file} ${args.join(' ')}${input ? ` (batch: ${input.trim().split('\n').slice(0, 3).join('; ')})` : ''}: ${result.stderr.trim() || `exit code ${result.code}`}`);
  return result.stdout;
}

async function json<T>(file: string, args: string[]): Promise<T[]> {
  const text = (await must(file, ['-j', ...args])).trim();
  return text === '' ? [] : (JSON.parse(text) as T[]);
}

/**
 * Whether this process's network namespace has a link `name`. Read from
 * /proc/self/net/dev, which follows the process's namespace, not from
 * /sys/class/net, which follows the namespace sysfs was mounted in (an agent
 * entered into a namespace with `nsenter --net` keeps the host's sysfs).
 */
export function linkExists(name: string): boolean {
  return readFileSync('/proc/self/net/dev', 'utf8').split('\n').some((line) => line.trimStart().startsWith(`${name}:`));
}

/** The MTU of the interface holding `address`, or 1500 when none does. */
export async function underlayMtu(address: string): Promise<number> {
  const links = await json<{ mtu: number; addr_info?: { local: string }[] }>('ip', ['-4', 'addr', 'show']);
  return links.find((link) => link.addr_info?.some((info) => info.local === address))?.mtu ?? 1500;
}

/** Settings of `ensureDevices`. */
export interface DeviceOptions {
  vxlanPort: number;
  /** The MTU of the bridge and the VXLAN device. */
  mtu: number;
  clusterCidr: string;
}

/**
 * Makes the bridge (with the gateway address, and no other address of the
 * cluster network: an older subnet's gateway goes; with its own fixed MAC) and, when the node has an
 * underlay address, the VXLAN device with the right id, port, local address,
 * MAC and VTEP address (remade when any differs). Turns IPv4 forwarding on.
 * Idempotent. Answers what it changed, for the log.
 */
export async function ensureDevices(plan: OverlayPlan, options: DeviceOptions): Promise<string[]> {
  const changed: string[] = [];
  const { local } = plan;
  if (!linkExists(BRIDGE_NAME)) {
    await must('ip', ['link', 'add', BRIDGE_NAME, 'type', 'bridge']);
    changed.push(`made bridge ${BRIDGE_NAME}`);
  }
  const cluster = parseCidr(options.clusterCidr);
  const bridgeAddresses = (await json<{ addr_info?: { local: string; prefixlen: number }[] }>('ip', ['-4', 'addr', 'show', 'dev', BRIDGE_NAME]))[0]?.addr_info ?? [];
  for (const info of bridgeAddresses) {
    const cidr = `${info.local}/${info.prefixlen}`;
    const value = parseIpv4(info.local);
    if (cidr !== local.gatewayCidr && cluster.ok && value !== undefined && containsAddress(cluster.network, value)) {
      await must('ip', ['addr', 'del', cidr, 'dev', BRIDGE_NAME]);
      changed.push(`removed ${cidr} from ${BRIDGE_NAME}`);
    }
  }
  if (!bridgeAddresses.some((info) => `${info.local}/${info.prefixlen}` === local.gatewayCidr)) {
    await must('ip', ['addr', 'replace', local.gatewayCidr, 'dev', BRIDGE_NAME]);
    changed.push(`${BRIDGE_NAME} ${local.gatewayCidr}`);
  }
  const [bridge] = await json<{ address?: string }>('ip', ['link', 'show', 'dev', BRIDGE_NAME]);
  if (bridge?.address !== local.bridgeMac) {
    await must('ip', ['link', 'set', BRIDGE_NAME, 'address', local.bridgeMac]);
    changed.push(`${BRIDGE_NAME} MAC ${local.bridgeMac}`);
  }
  await must('ip', ['link', 'set', BRIDGE_NAME, 'mtu', String(options.mtu), 'up']);
  await writeFile('/proc/sys/net/ipv4/ip_forward', '1').catch(() => undefined);
  if (local.underlay === undefined) {
    if (linkExists(VXLAN_NAME)) {
      await must('ip', ['link', 'delete', VXLAN_NAME]);
      changed.push(`removed ${VXLAN_NAME} (no IPv4 underlay address)`);
    }
    return changed;
  }
  if (linkExists(VXLAN_NAME) && !(await vxlanMatches(plan, options))) {
    await must('ip', ['link', 'delete', VXLAN_NAME]);
    changed.push(`removed ${VXLAN_NAME} (settings changed)`);
  }
  if (!linkExists(VXLAN_NAME)) {
    await must('ip', ['link', 'add', VXLAN_NAME, 'type', 'vxlan', 'id', String(VXLAN_ID), 'dstport', String(options.vxlanPort), 'local', local.underlay, 'nolearning']);
    await must('ip', ['link', 'set', VXLAN_NAME, 'address', local.vtepMac, 'mtu', String(options.mtu)]);
    changed.push(`made ${VXLAN_NAME} (vni ${VXLAN_ID}, udp ${options.vxlanPort}, local ${local.underlay})`);
  }
  await must('ip', ['addr', 'replace', `${local.vtepAddress}/32`, 'dev', VXLAN_NAME]);
  await must('ip', ['link', 'set', VXLAN_NAME, 'up']);
  return changed;
}

interface LinkDetails {
  address?: string;
  mtu?: number;
  linkinfo?: { info_kind?: string; info_data?: { id?: number; local?: string; port?: number; learning?: boolean } };
}

async function vxlanMatches(plan: OverlayPlan, options: DeviceOptions): Promise<boolean> {
  const [link] = await json<LinkDetails>('ip', ['-d', 'link', 'show', 'dev', VXLAN_NAME]);
  const data = link?.linkinfo?.info_data;
  return (
    link?.linkinfo?.info_kind === 'vxlan' &&
    data?.id === VXLAN_ID &&
    data.local === plan.local.underlay &&
    data.port === options.vxlanPort &&
    data.learning !== true &&
    link.address === plan.local.vtepMac &&
    link.mtu === options.mtu
  );
}

/** The routes, permanent neighbours and forwarding entries on the VXLAN device (all empty without it). */
export async function readEntries(): Promise<OverlayEntries> {
  const entries: OverlayEntries = { routes: new Map(), neighbours: new Map(), forwarding: new Map() };
  if (!linkExists(VXLAN_NAME)) return entries;
  for (const route of await json<{ dst: string; gateway?: string }>('ip', ['-4', 'route', 'show', 'dev', VXLAN_NAME])) {
    if (route.gateway !== undefined) entries.routes.set(route.dst.includes('/') ? route.dst : `${route.dst}/32`, route.gateway);
  }
  for (const neighbour of await json<{ dst: string; lladdr?: string; state?: string[] }>('ip', ['-4', 'neigh', 'show', 'dev', VXLAN_NAME, 'nud', 'permanent'])) {
    if (neighbour.lladdr !== undefined) entries.neighbours.set(neighbour.dst, neighbour.lladdr.toLowerCase());
  }
  for (const entry of await json<{ mac: string; dst?: string }>('bridge', ['fdb', 'show', 'dev', VXLAN_NAME])) {
    if (entry.dst !== undefined) entries.forwarding.set(entry.mac.toLowerCase(), entry.dst);
  }
  return entries;
}

/** Carries out `changes` with one `ip -batch` and one `bridge -batch` run: removals first, then forwarding, neighbours, routes. */
export async function applyChanges(changes: OverlayChanges): Promise<void> {
  const { put, remove } = changes;
  const ipRemovals = [...remove.routes.map((dst) => `route del ${dst} dev ${VXLAN_NAME}`), ...remove.neighbours.map((address) => `neigh del ${address} dev ${VXLAN_NAME}`)];
  const bridgeLines = [
    ...remove.forwarding.map((mac) => `fdb del ${mac} dev ${VXLAN_NAME} self`),
    ...put.forwarding.map(([mac, underlay]) => `fdb replace ${mac} dev ${VXLAN_NAME} dst ${underlay} self permanent`),
  ];
  const ipPuts = [
    ...put.neighbours.map(([address, mac]) => `neigh replace ${address} lladdr ${mac} dev ${VXLAN_NAME} nud permanent`),
    ...put.routes.map(([dst, via]) => `route replace ${dst} via ${via} dev ${VXLAN_NAME} onlink`),
  ];
  if (ipRemovals.length > 0) await must('ip', ['-batch', '-'], `${ipRemovals.join('\n')}\n`);
  if (bridgeLines.length > 0) await must('bridge', ['-batch', '-'], `${bridgeLines.join('\n')}\n`);
  if (ipPuts.length > 0) await must('ip', ['-batch', '-'], `${ipPuts.join('\n')}\n`);
}

/** Removes the VXLAN device and the bridge (uninstall and tests; containers lose their network). Missing ones are fine. */
export async function removeDevices(): Promise<void> {
  for (const name of [VXLAN_NAME, BRIDGE_NAME]) if (linkExists(name)) await runCommand('ip', ['link', 'delete', name]);
}
