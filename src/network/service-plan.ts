/**
 * Service VIPs, pure: the nat chains that send a connection to an app's VIP
 * and port to one of its serving instances, from the replicated state.
 * `service-tables.ts` applies them.
 *
 * Shape (nat table, every node the same, since a client may be anywhere):
 *   HIVEMIND-SERVICES (PREROUTING and OUTPUT jump to it first): per app with
 *     a VIP, `-d VIP/32 -g HM-S-<hash of tenant/app>`;
 *   HM-S-<hash>: per port of the app's current spec, one DNAT rule per
 *     serving endpoint that has the port: endpoint i of n (from 0) taken
 *     with probability 1/(n-i) (`statistic --mode random`), the last always,
 *     so each is picked with probability 1/n. An app on several tenant
 *     networks has, before those, per later network (`networkBlocks`) the
 *     same spread matching `-s <its block>` over the endpoints' addresses
 *     in that block: a client reaches the instances over the network it
 *     shares with them (their other addresses are not its to reach).
 * DNAT only, no SNAT: the instance sees the client's own address, so the
 * network policies (filter FORWARD, after PREROUTING's DNAT) judge the real
 * source and the real destination. A VIP with no serving endpoint has no
 * rule: its packets go nowhere (the connection times out).
 *
 * The routing mesh (published ports, as Swarm's ingress): the last rule of
 * HIVEMIND-SERVICES sends what is addressed to one of the node's own
 * addresses (`addrtype --dst-type LOCAL`) to HIVEMIND-PUBLISHED, which holds
 * per published port `-p P --dport PUBLISHED -g HM-N-<hash of tenant/app>`;
 * that chain spreads the port over the app's serving endpoints in the cluster
 * network (containers, on any node) as above. So a published port answers on
 * every node. The client's address is kept here too; the way back from an
 * endpoint on another node goes through the node the client came in by
 * (`mesh-plan.ts`). A published port is one app's cluster-wide: where two
 * apps publish one port and protocol, the first by tenant and name holds it
 * and the other is listed in `publishedConflicts`, as is a port the node's
 * agent listens on (`reservedPorts`).
 */
import { containsAddress, formatIpv4, parseCidr, parseIpv4 } from '../state/ipam.js';
import type { EndpointPort } from '../state/types.js';
import { assert } from '../../consensus/core/assert.js';
import { shortHash } from './policy-plan.js';

/** The nat chain PREROUTING and OUTPUT jump to. */
export const SERVICES_CHAIN = 'HIVEMIND-SERVICES';
/** The prefix of a service's own chain. */
export const SERVICE_CHAIN_PREFIX = 'HM-S-';
/** The nat chain for the node's own addresses: published ports (the routing mesh). */
export const PUBLISHED_CHAIN = 'HIVEMIND-PUBLISHED';
/** The prefix of an app's published-port chain. */
export const PUBLISHED_CHAIN_PREFIX = 'HM-N-';
/** The built-in nat chains that jump to SERVICES_CHAIN. */
export const SERVICE_HOOK_CHAINS = ['PREROUTING', 'OUTPUT'] as const;
/** The comment on the jumps: how they are found again. */
export const SERVICES_JUMP_COMMENT = 'hivemind: services';

/** One app with a VIP, as the plan sees it. */
export interface ServiceInput {
  tenant: string;
  app: string;
  vip: string;
  /** The ports of its current spec: connections to VIP:target go to an endpoint's port for that target. */
  ports: readonly { target: number; protocol: 'tcp' | 'udp' }[];
  /** Its serving endpoints (`src/discovery/endpoints.ts`), in the directory's order; `addresses`: every address of one on several networks. */
  endpoints: readonly { instance: string; address: string; addresses?: readonly string[]; ports: readonly EndpointPort[] }[];
  /** The blocks of its tenant networks after the first (absent: one network): a client in one is sent to the endpoints' addresses there. */
  networkBlocks?: readonly string[];
}

/** One app with published ports, as the routing mesh sees it. */
export interface PublishedInput {
  tenant: string;
  app: string;
  /** The ports of its current spec that are published: connections to any node's `published` port go to an endpoint's port for `target`. */
  ports: readonly { target: number; published: number; protocol: 'tcp' | 'udp' }[];
  /** Its serving endpoints, in the directory's order; only those in the cluster network or the tenant network pool are mesh targets. */
  endpoints: readonly { instance: string; address: string; ports: readonly EndpointPort[] }[];
}

/** What `planServiceChains` is built from besides the VIPs. */
export interface ServicePlanOptions {
  /** Apps with published ports (the routing mesh); none when absent. */
  published?: readonly PublishedInput[];
  /** The cluster network: mesh targets are endpoints inside it (containers on the overlay). Required with `published`. */
  clusterCidr?: string;
  /** The tenant network pool, when set: endpoints in it (containers on a tenant network's slice, routed over the overlay too) are mesh targets as well. */
  tenantCidr?: string;
  /**
   * Ports the node's agent listens on (API, peer, gossip, DNS, proxy,
   * VXLAN), TCP and UDP alike: never published, so an app cannot take a
   * node's own cluster traffic. Listed in `publishedConflicts` as held by
   * `the node agent`.
   */
  reservedPorts?: readonly number[];
  /**
   * Ports a process of the node's host listens on (its record's
   * `hostPorts`): the mesh never takes them over on this node, so the
   * host's own service keeps its port. Listed in `publishedConflicts` as
   * held by `a process of this node's host`.
   */
  hostPorts?: { readonly tcp: readonly number[]; readonly udp: readonly number[] };
}

/** `heldBy` of a published port the node's agent uses. */
export const AGENT_HOLDER = 'the node agent';
/** `heldBy` of a published port a process of the node's host listens on. */
export const HOST_HOLDER = "a process of this node's host";

/** The nat chains: name to rule specs (iptables-restore syntax after `-A <name> `), in order of creation. */
export interface ServiceChains {
  chains: Map<string, string[]>;
  ruleCount: number;
  /** Apps with a VIP. */
  serviceCount: number;
  /** DNAT targets (one per endpoint and port), VIPs and published ports together. */
  endpointCount: number;
  /** Published ports in the mesh (port and protocol held by an app). */
  publishedCount: number;
  /** Published ports an app could not hold because an app before it (by tenant and name) publishes the same: `tenant/app`, port and protocol. */
  publishedConflicts: { tenant: string; app: string; published: number; protocol: 'tcp' | 'udp'; heldBy: string }[];
}

/** Whether a nat chain name is Hivemind's: what `service-tables.ts` may flush and delete. */
export function isServiceChain(name: string): boolean {
  return name === SERVICES_CHAIN || name.startsWith(SERVICE_CHAIN_PREFIX) || name === PUBLISHED_CHAIN || name.startsWith(PUBLISHED_CHAIN_PREFIX);
}

/** The published-port chain of app `tenant/app`. */
export function publishedChainName(tenant: string, app: string): string {
  return `${PUBLISHED_CHAIN_PREFIX}${shortHash(`${tenant}/${app}`)}`;
}

/** The chain of app `tenant/app`. */
export function serviceChainName(tenant: string, app: string): string {
  return `${SERVICE_CHAIN_PREFIX}${shortHash(`${tenant}/${app}`)}`;
}

/** The probability that endpoint `index` of `count` is taken, given the ones before were not: 1/(count-index), with 10 decimals (as kube-proxy). */
export function pickProbability(index: number, count: number): string {
  return (1 / (count - index)).toFixed(10);
}

/** The chains for `services`, sorted by VIP, and for `options.published` (the mesh); only IPv4 VIPs and endpoints. */
export function planServiceChains(services: readonly ServiceInput[], options: ServicePlanOptions = {}): ServiceChains {
  const chains = new Map<string, string[]>();
  const main: string[] = [];
  chains.set(SERVICES_CHAIN, main);
  let endpointCount = 0;
  const sorted = services.filter((service) => parseIpv4(service.vip) !== undefined).sort((left, right) => parseIpv4(left.vip)! - parseIpv4(right.vip)!);
  for (const service of sorted) {
    const name = serviceChainName(service.tenant, service.app);
    main.push(`-d ${formatIpv4(parseIpv4(service.vip)!)}/32 -m comment --comment "hivemind: ${service.tenant}/${service.app}" -g ${name}`);
    const rules: string[] = [];
    for (const port of uniquePorts(service.ports)) {
      const match = `-p ${port.protocol} -m ${port.protocol} --dport ${port.target}`;
      for (const block of service.networkBlocks ?? []) {
        const targets = targetsOf(onBlock(service.endpoints, block), port, () => true);
        rules.push(...spread(`-s ${block} ${match}`, targets));
        endpointCount += targets.length;
      }
      const targets = targetsOf(service.endpoints, port, () => true);
      rules.push(...spread(match, targets));
      endpointCount += targets.length;
    }
    chains.set(name, rules);
  }
  const mesh = planPublished(options);
  if (mesh.chains.size > 0) {
    main.push(`-m addrtype --dst-type LOCAL -m comment --comment "hivemind: published ports" -j ${PUBLISHED_CHAIN}`);
    for (const [name, rules] of mesh.chains) chains.set(name, rules);
  }
  let ruleCount = 0;
  for (const rules of chains.values()) ruleCount += rules.length;
  return { chains, ruleCount, serviceCount: sorted.length, endpointCount: endpointCount + mesh.endpointCount, publishedCount: mesh.publishedCount, publishedConflicts: mesh.conflicts };
}

/** The `address:port` targets of `port` among `endpoints` (IPv4 addresses for which `eligible` holds), in order. */
function targetsOf(endpoints: ServiceInput['endpoints'], port: { target: number; protocol: 'tcp' | 'udp' }, eligible: (address: number) => boolean): string[] {
  return endpoints.flatMap((endpoint) => {
    const found = endpoint.ports.find((entry) => entry.target === port.target && entry.protocol === port.protocol);
    const address = parseIpv4(endpoint.address);
    return found === undefined || address === undefined || !eligible(address) ? [] : [`${endpoint.address}:${found.port}`];
  });
}

/** The endpoints that hold an address in `block`, each at that address. */
function onBlock(endpoints: ServiceInput['endpoints'], block: string): ServiceInput['endpoints'] {
  const parsed = parseCidr(block);
  if (!parsed.ok) return [];
  return endpoints.flatMap((endpoint) => {
    const address = (endpoint.addresses ?? []).find((candidate) => containsAddress(parsed.network, parseIpv4(candidate) ?? -1));
    return address === undefined ? [] : [{ ...endpoint, address }];
  });
}

/** DNAT rules matching `match` spread over `targets`: target i of n taken with probability 1/(n-i), the last always. */
function spread(match: string, targets: readonly string[]): string[] {
  return targets.map((target, index) => {
    const pick = index === targets.length - 1 ? '' : ` -m statistic --mode random --probability ${pickProbability(index, targets.length)}`;
    return `${match}${pick} -j DNAT --to-destination ${target}`;
  });
}

/**
 * The mesh's chains: HIVEMIND-PUBLISHED (per held port, by port, a goto to
 * its app's chain) and one HM-N- chain per app holding a port. Apps in
 * tenant and name order; a port and protocol is held by the first that
 * publishes it. Nothing when no app publishes a port.
 */
function planPublished(options: ServicePlanOptions): { chains: Map<string, string[]>; endpointCount: number; publishedCount: number; conflicts: ServiceChains['publishedConflicts'] } {
  const chains = new Map<string, string[]>();
  const conflicts: ServiceChains['publishedConflicts'] = [];
  const published = [...(options.published ?? [])].filter((app) => app.ports.length > 0).sort((left, right) => compareText(`${left.tenant}/${left.app}`, `${right.tenant}/${right.app}`));
  if (published.length === 0) return { chains, endpointCount: 0, publishedCount: 0, conflicts };
  assert(options.clusterCidr !== undefined, 'planServiceChains: published ports need the cluster network');
  const parsed = parseCidr(options.clusterCidr);
  assert(parsed.ok, `planServiceChains: cluster network ${options.clusterCidr} is not a CIDR`);
  const pool = options.tenantCidr === undefined ? undefined : parseCidr(options.tenantCidr);
  assert(pool === undefined || pool.ok, `planServiceChains: tenant network pool ${options.tenantCidr} is not a CIDR`);
  const inCluster = (address: number): boolean => containsAddress(parsed.network, address) || (pool?.ok === true && containsAddress(pool.network, address));
  const holders = new Map<string, string>();
  for (const port of options.reservedPorts ?? []) for (const protocol of ['tcp', 'udp']) holders.set(`${protocol}/${port}`, AGENT_HOLDER);
  for (const protocol of ['tcp', 'udp'] as const) for (const port of options.hostPorts?.[protocol] ?? []) if (!holders.has(`${protocol}/${port}`)) holders.set(`${protocol}/${port}`, HOST_HOLDER);
  const jumps: { port: number; protocol: string; rule: string }[] = [];
  let endpointCount = 0;
  for (const app of published) {
    const key = `${app.tenant}/${app.app}`;
    const name = publishedChainName(app.tenant, app.app);
    const rules: string[] = [];
    for (const port of app.ports) {
      const portKey = `${port.protocol}/${port.published}`;
      const holder = holders.get(portKey);
      if (holder === key) continue;
      if (holder !== undefined) {
        conflicts.push({ tenant: app.tenant, app: app.app, published: port.published, protocol: port.protocol, heldBy: holder });
        continue;
      }
      holders.set(portKey, key);
      const match = `-p ${port.protocol} -m ${port.protocol} --dport ${port.published}`;
      jumps.push({ port: port.published, protocol: port.protocol, rule: `${match} -m comment --comment "hivemind: ${key}" -g ${name}` });
      const targets = targetsOf(app.endpoints, port, inCluster);
      rules.push(...spread(match, targets));
      endpointCount += targets.length;
    }
    if (rules.length > 0 || jumps.some((jump) => jump.rule.endsWith(` -g ${name}`))) chains.set(name, rules);
  }
  jumps.sort((left, right) => left.port - right.port || compareText(left.protocol, right.protocol));
  return { chains: new Map([[PUBLISHED_CHAIN, jumps.map((jump) => jump.rule)], ...chains]), endpointCount, publishedCount: jumps.length, conflicts };
}

function compareText(left: string, right: string): number {
  return left < right ? -1 : left > right ? 1 : 0;
}

/** Each (target, protocol) once, in spec order. */
function uniquePorts(ports: ServiceInput['ports']): ServiceInput['ports'] {
  const seen = new Set<string>();
  return ports.filter((port) => {
    const key = `${port.protocol}/${port.target}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

/** What `iptables-save -t nat` shows of Hivemind's services: its chains, their rule lines, and the built-in chains that jump to it. */
export interface SavedServiceChains {
  chains: string[];
  /** The `-A` lines of Hivemind's chains, in order: compared with what the last apply left, to find drift. */
  text: string;
  /** Of SERVICE_HOOK_CHAINS, those whose first rule is the jump. */
  hooked: string[];
  /**
   * Of SERVICE_HOOK_CHAINS, those holding the jump behind another rule
   * (CNI's portmap inserts its own first when a container publishes a
   * port): moved back to the front, so the mesh spreads that port too.
   */
  misplaced: string[];
}

/** Reads Hivemind's part of `iptables-save -t nat` output. */
export function parseSavedServices(save: string): SavedServiceChains {
  const chains: string[] = [];
  const rules: string[] = [];
  const hooked = new Set<string>();
  const misplaced = new Set<string>();
  const seenRules = new Set<string>();
  for (const line of save.split('\n')) {
    if (line.startsWith(':')) {
      const name = line.slice(1).split(' ')[0]!;
      if (isServiceChain(name)) chains.push(name);
    } else if (line.startsWith('-A ')) {
      const chain = line.split(' ')[1]!;
      if (isServiceChain(chain)) rules.push(line);
      else if ((SERVICE_HOOK_CHAINS as readonly string[]).includes(chain)) {
        if (line.endsWith(`-j ${SERVICES_CHAIN}`)) (seenRules.has(chain) ? misplaced : hooked).add(chain);
        seenRules.add(chain);
      }
    }
  }
  return { chains, text: rules.join('\n'), hooked: SERVICE_HOOK_CHAINS.filter((chain) => hooked.has(chain)), misplaced: SERVICE_HOOK_CHAINS.filter((chain) => misplaced.has(chain) && !hooked.has(chain)) };
}

/**
 * The iptables-restore input (for `--noflush`) that makes Hivemind's nat
 * chains equal to `desired`: each desired chain declared (creates or
 * flushes it) and filled; each of `found`'s chains not desired declared,
 * then deleted; the jump inserted first in each hook chain that lacks it
 * there (a jump further down deleted first). Nothing else is touched.
 */
export function serviceRestoreInput(desired: ServiceChains, found: SavedServiceChains): string {
  const stale = found.chains.filter((name) => isServiceChain(name) && !desired.chains.has(name)).sort();
  const lines = ['*nat'];
  for (const name of [...desired.chains.keys(), ...stale]) lines.push(`:${name} - [0:0]`);
  for (const [name, rules] of desired.chains) for (const rule of rules) lines.push(`-A ${name} ${rule}`);
  for (const name of stale) lines.push(`-X ${name}`);
  const jump = `-m comment --comment "${SERVICES_JUMP_COMMENT}" -j ${SERVICES_CHAIN}`;
  for (const hook of SERVICE_HOOK_CHAINS) {
    if (found.hooked.includes(hook)) continue;
    if (found.misplaced.includes(hook)) lines.push(`-D ${hook} ${jump}`);
    lines.push(`-I ${hook} 1 ${jump}`);
  }
  lines.push('COMMIT', '');
  return lines.join('\n');
}
