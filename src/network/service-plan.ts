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
 *     so each is picked with probability 1/n.
 * DNAT only, no SNAT: the instance sees the client's own address, so the
 * network policies (filter FORWARD, after PREROUTING's DNAT) judge the real
 * source and the real destination. A VIP with no serving endpoint has no
 * rule: its packets go nowhere (the connection times out).
 */
import { formatIpv4, parseIpv4 } from '../state/ipam.js';
import type { EndpointPort } from '../state/types.js';
import { shortHash } from './policy-plan.js';

/** The nat chain PREROUTING and OUTPUT jump to. */
export const SERVICES_CHAIN = 'HIVEMIND-SERVICES';
/** The prefix of a service's own chain. */
export const SERVICE_CHAIN_PREFIX = 'HM-S-';
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
  /** Its serving endpoints (`src/discovery/endpoints.ts`), in the directory's order. */
  endpoints: readonly { instance: string; address: string; ports: readonly EndpointPort[] }[];
}

/** The nat chains: name to rule specs (iptables-restore syntax after `-A <name> `), in order of creation. */
export interface ServiceChains {
  chains: Map<string, string[]>;
  ruleCount: number;
  /** Apps with a VIP. */
  serviceCount: number;
  /** DNAT targets (one per endpoint and port). */
  endpointCount: number;
}

/** Whether a nat chain name is Hivemind's: what `service-tables.ts` may flush and delete. */
export function isServiceChain(name: string): boolean {
  return name === SERVICES_CHAIN || name.startsWith(SERVICE_CHAIN_PREFIX);
}

/** The chain of app `tenant/app`. */
export function serviceChainName(tenant: string, app: string): string {
  return `${SERVICE_CHAIN_PREFIX}${shortHash(`${tenant}/${app}`)}`;
}

/** The probability that endpoint `index` of `count` is taken, given the ones before were not: 1/(count-index), with 10 decimals (as kube-proxy). */
export function pickProbability(index: number, count: number): string {
  return (1 / (count - index)).toFixed(10);
}

/** The chains for `services`, sorted by VIP; only IPv4 VIPs and endpoints. */
export function planServiceChains(services: readonly ServiceInput[]): ServiceChains {
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
      const targets = service.endpoints.flatMap((endpoint) => {
        const found = endpoint.ports.find((entry) => entry.target === port.target && entry.protocol === port.protocol);
        return found === undefined || parseIpv4(endpoint.address) === undefined ? [] : [`${endpoint.address}:${found.port}`];
      });
      for (const [index, target] of targets.entries()) {
        const pick = index === targets.length - 1 ? '' : ` -m statistic --mode random --probability ${pickProbability(index, targets.length)}`;
        rules.push(`-p ${port.protocol} -m ${port.protocol} --dport ${port.target}${pick} -j DNAT --to-destination ${target}`);
      }
      endpointCount += targets.length;
    }
    chains.set(name, rules);
  }
  let ruleCount = 0;
  for (const rules of chains.values()) ruleCount += rules.length;
  return { chains, ruleCount, serviceCount: sorted.length, endpointCount };
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
  /** Of SERVICE_HOOK_CHAINS, those holding the jump. */
  hooked: string[];
}

/** Reads Hivemind's part of `iptables-save -t nat` output. */
export function parseSavedServices(save: string): SavedServiceChains {
  const chains: string[] = [];
  const rules: string[] = [];
  const hooked = new Set<string>();
  for (const line of save.split('\n')) {
    if (line.startsWith(':')) {
      const name = line.slice(1).split(' ')[0]!;
      if (isServiceChain(name)) chains.push(name);
    } else if (line.startsWith('-A ')) {
      const chain = line.split(' ')[1]!;
      if (isServiceChain(chain)) rules.push(line);
      else if ((SERVICE_HOOK_CHAINS as readonly string[]).includes(chain) && line.endsWith(`-j ${SERVICES_CHAIN}`)) hooked.add(chain);
    }
  }
  return { chains, text: rules.join('\n'), hooked: SERVICE_HOOK_CHAINS.filter((chain) => hooked.has(chain)) };
}

/**
 * The iptables-restore input (for `--noflush`) that makes Hivemind's nat
 * chains equal to `desired`: each desired chain declared (creates or
 * flushes it) and filled; each of `found`'s chains not desired declared,
 * then deleted; the jump inserted first in each hook chain that lacks it.
 * Nothing else is touched.
 */
export function serviceRestoreInput(desired: ServiceChains, found: SavedServiceChains): string {
  const stale = found.chains.filter((name) => isServiceChain(name) && !desired.chains.has(name)).sort();
  const lines = ['*nat'];
  for (const name of [...desired.chains.keys(), ...stale]) lines.push(`:${name} - [0:0]`);
  for (const [name, rules] of desired.chains) for (const rule of rules) lines.push(`-A ${name} ${rule}`);
  for (const name of stale) lines.push(`-X ${name}`);
  for (const hook of SERVICE_HOOK_CHAINS) if (!found.hooked.includes(hook)) lines.push(`-I ${hook} 1 -m comment --comment "${SERVICES_JUMP_COMMENT}" -j ${SERVICES_CHAIN}`);
  lines.push('COMMIT', '');
  return lines.join('\n');
}
