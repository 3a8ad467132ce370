/**
 * The overlay's I/O: reads and programs the bridge, the VXLAN device and
 * its routes, neighbours and forwarding entries with `ip` and `bridge`
 * (iproute2), in the agent's own network namespace. What to program comes
 * from `overlay-plan.ts`; this file only carries it out.
 */
import { readFileSync } from 'node:fs';
import { readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runCommand } from './run-command.js';
import { devicesBatch, goneNetworkStores, underlayMtuOf, type DeviceOptions, type LinkState } from './device-plan.js';
import { BRIDGE_NAME, VXLAN_NAME, type OverlayChanges, type OverlayEntries, type OverlayPlan } from './overlay-plan.js';

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

/** Every link of this namespace with its details and addresses: one `ip -j -d addr show`. */
export async function readLinks(): Promise<LinkState[]> {
  return json<LinkState>('ip', ['-d', 'addr', 'show']);
}

/**
 * Makes the bridge and the VXLAN device right (`devicesBatch`: one read
 * of the links, one `ip -batch`) and turns IPv4 forwarding on. Idempotent.
 * Answers the underlay MTU it found and what it changed, for the log.
 */
export async function ensureDevices(plan: OverlayPlan, options: Omit<DeviceOptions, 'mtu'> & { underlay: string; overheadBytes: number }): Promise<{ mtu: number; changed: string[]; links: LinkState[] }> {
  const links = await readLinks();
  const mtu = underlayMtuOf(links, options.underlay) - options.overheadBytes;
  const batch = devicesBatch(plan, { vxlanPort: options.vxlanPort, clusterCidr: options.clusterCidr, mtu }, links);
  await must('ip', ['-batch', '-'], `${batch.lines.join('\n')}\n`);
  await writeFile('/proc/sys/net/ipv4/ip_forward', '1').catch(() => undefined);
  return { mtu, changed: batch.changed, links };
}

/**
 * Removes the host-local stores under `folder` (the tenant networks' IPAM
 * folder, one store per bridge) whose bridge is gone (`goneNetworkStores`),
 * judged from `links`, the read `ensureDevices` made its batch from: call it
 * only after that batch succeeded, so the bridges it judged gone are. A
 * missing folder is none. Answers the names removed.
 */
export async function removeGoneNetworkStores(folder: string, plan: OverlayPlan, links: readonly LinkState[]): Promise<string[]> {
  let stores: string[];
  try {
    stores = await readdir(folder);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
  const gone = goneNetworkStores(stores, plan, links);
  for (const name of gone) await rm(join(folder, name), { recursive: true, force: true });
  return gone;
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
