/**
 * Network policies, pure: who may reach whom, from the replicated state.
 * One model (`policyModel`) answers both questions asked of it, so they
 * cannot disagree: `decide` (one connection: allow or deny, and which rule
 * decided; `hivemind policies test`) and `planPolicyChains` (the iptables
 * chains a node enforces them with, `policy-tables.ts` applies them).
 *
 * Semantics (as Kubernetes' NetworkPolicy, ingress only):
 *   - an app no policy selects accepts its own tenant's instances and
 *     anything from outside the cluster network; other tenants' instances
 *     (any address of the cluster network) are denied; on a tenant network
 *     (an address in a network's block), only what comes from that network
 *     (its block) or from the tenant's instances on the node subnets: as
 *     Compose, two apps of a tenant reach each other over a network they
 *     share, at the address they hold on it;
 *   - an app some policy selects (the policy lists it, lists no app at all,
 *     or the app's spec lists the policy under `x-hivemind.policies`)
 *     accepts only what a rule of one of those policies allows: sources by
 *     app (of the policy's tenant), tenant or CIDR, on the rule's ports (none:
 *     every port and protocol). Its own tenant's other apps too are denied
 *     unless a rule allows them.
 *
 * Egress (as Kubernetes' Egress policy type): a policy with `egress`
 * restricts what the apps it selects may open: with one or more such
 * policies selecting it, an app reaches only destinations some egress rule
 * of theirs allows (by app of the policy's tenant, tenant or CIDR, on the
 * destination port); others are dropped. A policy with `egress` and no
 * ingress rule leaves its apps' ingress alone; one without `egress` leaves
 * their egress alone. Both directions must allow a connection.
 *
 * Enforcement of ingress is where the destination lives: each node filters
 * what is forwarded to its own instances' overlay addresses; of egress,
 * where the source lives (what its own instances send). Instance addresses are
 * the ones the executors report (`InstanceStatus.endpoint.address`, read
 * through `instanceAddressOf` so a state without endpoints still works: an
 * instance with no known address is neither protected as a destination nor
 * recognised as a source, which fails closed for sources and open for a new
 * destination until its address is reported).
 */
import { containsAddress, formatCidr, parseCidr, parseIpv4, type Ipv4Network } from '../state/ipam.js';
import type { EgressRule, NetworkPolicy, PolicyRule } from '../state/types.js';

/** An instance as the policy model sees it. */
export interface PolicyInstance {
  id: string;
  tenant: string;
  app: string;
  node?: string;
  /** Its overlay address, when its node reported one (see `instanceAddressOf`). */
  address?: string;
  /** The Raft index of its last status report: of two instances claiming one address, the later report wins. */
  updatedIndex: number;
}

/** An app and the policies its current spec names (`x-hivemind.policies`). */
export interface PolicyApp {
  tenant: string;
  name: string;
  policies: string[];
}

/** What the model is built from: the replicated state's view, plus which node asks. */
export interface PolicyModelInput {
  /** The cluster network's CIDR: sources in it that are no known instance count as other tenants'. */
  clusterCidr: string;
  /** The tenant network pool, when set: its addresses are instances' as the cluster network's are (unknown ones denied like other tenants'). */
  tenantCidr?: string;
  /** The tenant networks and their blocks: an address in a block is on that network. */
  networks?: readonly { tenant: string; name: string; cidr: string }[];
  /** One entry per address: an instance on several networks appears once for each of its addresses. */
  instances: PolicyInstance[];
  policies: NetworkPolicy[];
  apps: PolicyApp[];
}

/** The built model: lookups `decide` and `planPolicyChains` share. */
export interface PolicyModel {
  readonly clusterNetwork: Ipv4Network;
  /** The tenant network pool, when set. */
  readonly tenantPool?: Ipv4Network;
  /** Address (dotted) to the instance holding it, cluster-wide, in address order. */
  readonly byAddress: ReadonlyMap<string, PolicyInstance>;
  /** `tenant/app` to its instances that have an address, sorted by address. */
  readonly addressedByApp: ReadonlyMap<string, PolicyInstance[]>;
  /** Tenant to its instances that have an address, sorted by address. */
  readonly addressedByTenant: ReadonlyMap<string, PolicyInstance[]>;
  /** The tenant network (`tenant/name`) whose block holds `address`, or undefined (the node subnets, outside). */
  readonly networkOf: (address: string) => string | undefined;
  /** The blocks of the tenant networks, by `tenant/name`. */
  readonly networkBlocks: ReadonlyMap<string, string>;
  /** The policies selecting app `tenant/app`, by tenant and name. */
  readonly selecting: (tenant: string, app: string) => NetworkPolicy[];
  /** Of those, the ones that restrict its ingress (see `restrictsIngress`). */
  readonly selectingIngress: (tenant: string, app: string) => NetworkPolicy[];
  /** Of those, the ones that restrict its egress (they have `egress`). */
  readonly selectingEgress: (tenant: string, app: string) => NetworkPolicy[];
}

/** Whether `policy` restricts the ingress of the apps it selects: it has an ingress rule, or no `egress` (a policy of ingress rules alone, as before egress existed, even with none: nothing gets in). */
export function restrictsIngress(policy: NetworkPolicy): boolean {
  return policy.ingress.length > 0 || policy.egress === undefined;
}

/**
 * The address in `status.endpoint.address`, if the state carries endpoints
 * (`InstanceStatus.endpoint?: { address, ports }`, reported by the executor)
 * and it is an IPv4 address; undefined otherwise.
 */
export function instanceAddressOf(status: unknown): string | undefined {
  const endpoint = (status as { endpoint?: unknown } | undefined)?.endpoint;
  const address = (endpoint as { address?: unknown } | undefined)?.address;
  return typeof address === 'string' && parseIpv4(address) !== undefined ? address : undefined;
}

/** Every IPv4 address of the instance: `endpoint.addresses` (one per network) when it has several, else `instanceAddressOf`'s, else none. */
export function instanceAddressesOf(status: unknown): string[] {
  const addresses = ((status as { endpoint?: { addresses?: unknown } } | undefined)?.endpoint?.addresses ?? undefined) as unknown;
  if (Array.isArray(addresses)) return addresses.filter((address): address is string => typeof address === 'string' && parseIpv4(address) !== undefined);
  const address = instanceAddressOf(status);
  return address === undefined ? [] : [address];
}

function byIpv4(left: PolicyInstance, right: PolicyInstance): number {
  return parseIpv4(left.address!)! - parseIpv4(right.address!)!;
}

/** Whether `value` (an IPv4 address as a number) is in the cluster network or the tenant network pool: where instances get their addresses. */
export function inInstanceRanges(model: Pick<PolicyModel, 'clusterNetwork' | 'tenantPool'>, value: number): boolean {
  return containsAddress(model.clusterNetwork, value) || (model.tenantPool !== undefined && containsAddress(model.tenantPool, value));
}

/** Builds the model. Addresses outside the cluster network and the tenant pool (process apps answer on their node's) are left out. */
export function policyModel(input: PolicyModelInput): PolicyModel {
  const parsed = parseCidr(input.clusterCidr);
  if (!parsed.ok) throw new Error(`policy model: the cluster CIDR ${parsed.reason}`);
  const clusterNetwork = parsed.network;
  const pool = input.tenantCidr === undefined ? undefined : parseCidr(input.tenantCidr);
  if (pool !== undefined && !pool.ok) throw new Error(`policy model: the tenant network pool ${pool.reason}`);
  const ranges = { clusterNetwork, ...(pool?.ok ? { tenantPool: pool.network } : {}) };
  const byAddress = new Map<string, PolicyInstance>();
  for (const instance of input.instances) {
    if (instance.address === undefined) continue;
    if (!inInstanceRanges(ranges, parseIpv4(instance.address)!)) continue;
    const holder = byAddress.get(instance.address);
    if (holder === undefined || holder.updatedIndex < instance.updatedIndex || (holder.updatedIndex === instance.updatedIndex && holder.id > instance.id)) byAddress.set(instance.address, instance);
  }
  const sorted = [...byAddress.values()].sort(byIpv4);
  const addressedByApp = new Map<string, PolicyInstance[]>();
  const addressedByTenant = new Map<string, PolicyInstance[]>();
  for (const instance of sorted) {
    push(addressedByApp, `${instance.tenant}/${instance.app}`, instance);
    push(addressedByTenant, instance.tenant, instance);
  }
  const listed = new Map(input.apps.map((app) => [`${app.tenant}/${app.name}`, new Set(app.policies)]));
  const policies = [...input.policies].sort((left, right) => (left.tenant === right.tenant ? compare(left.name, right.name) : compare(left.tenant, right.tenant)));
  const selecting = (tenant: string, app: string): NetworkPolicy[] =>
    policies.filter((policy) => policy.tenant === tenant && (policy.apps.length === 0 || policy.apps.includes(app) || listed.get(`${tenant}/${app}`)?.has(policy.name) === true));
  const blocks = (input.networks ?? []).flatMap((network) => {
    const block = parseCidr(network.cidr);
    return block.ok ? [{ key: `${network.tenant}/${network.name}`, block: block.network }] : [];
  });
  const networkOf = (address: string): string | undefined => {
    const value = parseIpv4(address);
    return value === undefined ? undefined : blocks.find((entry) => containsAddress(entry.block, value))?.key;
  };
  return {
    ...ranges,
    networkOf,
    networkBlocks: new Map((input.networks ?? []).map((network) => [`${network.tenant}/${network.name}`, network.cidr])),
    byAddress: new Map(sorted.map((instance) => [instance.address!, instance])),
    addressedByApp,
    addressedByTenant,
    selecting,
    selectingIngress: (tenant, app) => selecting(tenant, app).filter(restrictsIngress),
    selectingEgress: (tenant, app) => selecting(tenant, app).filter((policy) => policy.egress !== undefined),
  };
}

function push<K, V>(map: Map<K, V[]>, key: K, value: V): void {
  const list = map.get(key);
  if (list === undefined) map.set(key, [value]);
  else list.push(value);
}

function compare(left: string, right: string): number {
  return left < right ? -1 : left > right ? 1 : 0;
}

/** A connection's source: an app, or an address (which may be an instance's). */
export type PolicySource = { tenant: string; app: string } | { address: string };

/** What `decide` answers. `policy` and `rule` (1-based) name the rule that allowed it, when one did. */
export interface PolicyDecision {
  verdict: 'allow' | 'deny';
  /** Why, in words: `policy acme/web-from-api rule 1`, `default: same tenant`, ... */
  reason: string;
  policy?: string;
  rule?: number;
  /** The policies selecting the destination (empty: the default applies). */
  selecting: string[];
  /** The source as resolved: the instance holding the address, if any. */
  source: { tenant?: string; app?: string; instance?: string; address?: string };
  /** When policies restrict the source app's egress: which egress rule let it out (or, with a deny, that none did). */
  egress?: string;
}

/** Whether egress `rule` of a policy of `tenant` allows reaching app `destination` (whose instances hold `addresses`) on `port`. */
export function egressRuleAllows(rule: EgressRule, tenant: string, destination: { tenant: string; app: string }, addresses: readonly string[], port: number): boolean {
  if (rule.ports !== undefined && rule.ports.length > 0 && !rule.ports.includes(port)) return false;
  if (destination.tenant === tenant && (rule.toApps ?? []).includes(destination.app)) return true;
  if ((rule.toTenants ?? []).includes(destination.tenant)) return true;
  return (rule.toCidrs ?? []).some((text) => {
    const cidr = parseCidr(text);
    return cidr.ok && addresses.some((address) => containsAddress(cidr.network, parseIpv4(address)!));
  });
}

/** Whether `rule` allows `source` (of the policy's tenant `tenant`) on `port`. */
export function ruleAllows(rule: PolicyRule, tenant: string, source: PolicyDecision['source'], port: number): boolean {
  if (rule.ports !== undefined && rule.ports.length > 0 && !rule.ports.includes(port)) return false;
  if (source.tenant !== undefined && source.app !== undefined && source.tenant === tenant && (rule.fromApps ?? []).includes(source.app)) return true;
  if (source.tenant !== undefined && (rule.fromTenants ?? []).includes(source.tenant)) return true;
  const address = source.address === undefined ? undefined : parseIpv4(source.address);
  if (address === undefined) return false;
  return (rule.fromCidrs ?? []).some((text) => {
    const cidr = parseCidr(text);
    return cidr.ok && containsAddress(cidr.network, address);
  });
}

/**
 * Whether a connection from `source` to app `destination` on `port` is
 * allowed, and which rule decided. CIDR rules match sources given by
 * address only; an app source is matched by its name and tenant.
 */
export function decide(model: PolicyModel, source: PolicySource, destination: { tenant: string; app: string }, port: number): PolicyDecision {
  const resolved: PolicyDecision['source'] = {};
  if ('address' in source) {
    resolved.address = source.address;
    const holder = model.byAddress.get(source.address);
    if (holder !== undefined) Object.assign(resolved, { tenant: holder.tenant, app: holder.app, instance: holder.id });
  } else Object.assign(resolved, { tenant: source.tenant, app: source.app });
  const egress = egressOf(model, resolved, destination, port);
  if (egress?.allowed === false) {
    return { verdict: 'deny', reason: egress.reason, selecting: model.selectingIngress(destination.tenant, destination.app).map((policy) => `${policy.tenant}/${policy.name}`), source: resolved, egress: egress.reason };
  }
  const decision = decideIngress(model, resolved, destination, port);
  return egress === undefined ? decision : { ...decision, egress: egress.reason };
}

/**
 * The source app's egress verdict on reaching `destination` on `port`, or
 * undefined when no policy restricts it (or the source is no known app).
 * CIDR rules match the destination app's instances' addresses.
 */
function egressOf(model: PolicyModel, source: PolicyDecision['source'], destination: { tenant: string; app: string }, port: number): { allowed: boolean; reason: string } | undefined {
  if (source.tenant === undefined || source.app === undefined) return undefined;
  const policies = model.selectingEgress(source.tenant, source.app);
  if (policies.length === 0) return undefined;
  const addresses = (model.addressedByApp.get(`${destination.tenant}/${destination.app}`) ?? []).map((instance) => instance.address!);
  for (const policy of policies) {
    for (const [index, rule] of policy.egress!.entries()) {
      if (egressRuleAllows(rule, policy.tenant, destination, addresses, port)) return { allowed: true, reason: `egress: policy ${policy.tenant}/${policy.name} egress rule ${index + 1}` };
    }
  }
  const names = policies.map((policy) => `policy ${policy.tenant}/${policy.name}`).join(', ');
  return { allowed: false, reason: `egress: no egress rule of ${names} lets ${source.tenant}/${source.app} reach ${destination.tenant}/${destination.app} on ${port}` };
}

/** The ingress half of `decide`. */
function decideIngress(model: PolicyModel, resolved: PolicyDecision['source'], destination: { tenant: string; app: string }, port: number): PolicyDecision {
  const policies = model.selectingIngress(destination.tenant, destination.app);
  const selecting = policies.map((policy) => `${policy.tenant}/${policy.name}`);
  if (policies.length === 0) {
    if (resolved.tenant !== undefined) {
      const apart = resolved.tenant === destination.tenant ? noSharedNetwork(model, resolved, destination) : undefined;
      if (apart !== undefined) return { verdict: 'deny', reason: apart, selecting, source: resolved };
      return resolved.tenant === destination.tenant
        ? { verdict: 'allow', reason: `default: apps of tenant "${destination.tenant}" reach each other`, selecting, source: resolved }
        : { verdict: 'deny', reason: `default: tenant "${resolved.tenant}" may not reach tenant "${destination.tenant}" (no policy selects ${destination.tenant}/${destination.app})`, selecting, source: resolved };
    }
    const value = parseIpv4(resolved.address!)!;
    return inInstanceRanges(model, value)
      ? { verdict: 'deny', reason: `default: ${resolved.address} is in the cluster network or the tenant network pool but no instance holds it`, selecting, source: resolved }
      : { verdict: 'allow', reason: `default: ${resolved.address} is outside the cluster network`, selecting, source: resolved };
  }
  for (const policy of policies) {
    for (const [index, rule] of policy.ingress.entries()) {
      if (!ruleAllows(rule, policy.tenant, resolved, port)) continue;
      const name = `${policy.tenant}/${policy.name}`;
      return { verdict: 'allow', reason: `policy ${name} rule ${index + 1}`, policy: name, rule: index + 1, selecting, source: resolved };
    }
  }
  return { verdict: 'deny', reason: `no rule of ${selecting.map((name) => `policy ${name}`).join(', ')} allows it (they select ${destination.tenant}/${destination.app})`, selecting, source: resolved };
}

/** The chain FORWARD jumps to; every other chain of Hivemind's starts with `HM-`. */
export const POLICY_CHAIN = 'HIVEMIND-POLICY';
/** The chain an allowed packet leaves through (clears the mark bit). */
export const ALLOW_CHAIN = 'HM-ALLOW';
/** The prefix of Hivemind's other chains. */
export const CHAIN_PREFIX = 'HM-';
/** The packet-mark bit a policy chain sets when one of its rules matches; cleared before the packet leaves Hivemind's chains. */
export const POLICY_MARK = '0x200000';
/** `multiport` takes at most this many ports per rule. */
const MULTIPORT_PORTS_MAX = 15;

/** Whether a chain name is Hivemind's: what `policy-tables.ts` may flush and delete. */
export function isHivemindChain(name: string): boolean {
  return name === POLICY_CHAIN || name.startsWith(CHAIN_PREFIX);
}

/** The chains a node enforces: name to rule specs (iptables-restore syntax after `-A <name> `), in order of creation. */
export interface PolicyChains {
  chains: Map<string, string[]>;
  /** Rules in all chains. */
  ruleCount: number;
  /** Local destinations it protects. */
  destinationCount: number;
}

/** 48 bits of FNV-1a as 12 hex characters: chain names (at most 28 characters) from tenant and app names (up to 127). */
export function shortHash(text: string): string {
  let low = 0x811c9dc5;
  let high = 0x050c5d1f;
  for (let index = 0; index < text.length; index++) {
    const code = text.charCodeAt(index);
    low = Math.imul(low ^ code, 0x01000193) >>> 0;
    high = Math.imul(high ^ code ^ (low >>> 24), 0x01000193) >>> 0;
  }
  return (low.toString(16).padStart(8, '0') + high.toString(16).padStart(8, '0')).slice(0, 12);
}

function comment(text: string): string {
  return `-m comment --comment "hivemind: ${text}"`;
}

/** `-p tcp -m multiport --dports ...` and the same for UDP, 15 ports a rule; one empty match when the rule has no ports. */
function portMatches(ports: number[] | undefined): string[] {
  if (ports === undefined || ports.length === 0) return [''];
  const sorted = [...new Set(ports)].sort((left, right) => left - right);
  const matches: string[] = [];
  for (const protocol of ['tcp', 'udp']) {
    for (let start = 0; start < sorted.length; start += MULTIPORT_PORTS_MAX) matches.push(` -p ${protocol} -m multiport --dports ${sorted.slice(start, start + MULTIPORT_PORTS_MAX).join(',')}`);
  }
  return matches;
}

/**
 * The chains node `nodeId` enforces (filter table), for the instances it
 * runs. Shape, all verdicts RETURN (go on with the host's FORWARD rules) or
 * DROP, never ACCEPT:
 *   HIVEMIND-POLICY: established and related RETURN; per local instance
 *     address, `-d A/32 -g` to its app's chain (selected) or its tenant's;
 *   HM-T-<tenant>: RETURN for every address of the tenant; DROP from the
 *     rest of the cluster network; the rest (outside) falls off: RETURN;
 *   HM-A-<app>: clear the mark, `-j` each selecting policy's chain, with the
 *     mark `-g HM-ALLOW` (clears it, RETURN), else DROP;
 *   HM-P-<policy>: per rule, source and port set, set the mark.
 * Egress, before the destinations in HIVEMIND-POLICY: per local instance of
 * an app whose egress a policy restricts, `-s A/32 -j HM-E-<app>`:
 *   HM-E-<app>: clear the mark, `-j` each such policy's HM-Q- chain, with
 *     the mark `-g HM-ALLOW` (clears it; the return goes back to
 *     HIVEMIND-POLICY, on to the destination's checks), else DROP;
 *   HM-Q-<policy>: per egress rule, destination and port set, set the mark.
 * One chain per tenant and per policy, so a tenant's sources are listed
 * once per node and a policy's once however many apps it selects.
 */
export function planPolicyChains(model: PolicyModel, nodeId: string): PolicyChains {
  const chains = new Map<string, string[]>();
  const main: string[] = ['-m conntrack --ctstate RELATED,ESTABLISHED -j RETURN'];
  chains.set(POLICY_CHAIN, main);
  let destinationCount = 0;
  for (const instance of model.byAddress.values() /* sorted by address */) {
    if (instance.node !== nodeId) continue;
    const policies = model.selectingEgress(instance.tenant, instance.app);
    if (policies.length > 0) main.push(`-s ${instance.address}/32 ${comment(`${instance.tenant}/${instance.app} egress`)} -j ${egressChain(model, chains, instance.tenant, instance.app, policies)}`);
  }
  for (const instance of model.byAddress.values() /* sorted by address */) {
    if (instance.node !== nodeId) continue;
    destinationCount++;
    const policies = model.selectingIngress(instance.tenant, instance.app);
    const network = model.networkOf(instance.address!);
    const target =
      policies.length > 0 ? appChain(model, chains, instance.tenant, instance.app, policies) : network === undefined ? tenantChain(model, chains, instance.tenant) : networkChain(model, chains, instance.tenant, network);
    main.push(`-d ${instance.address}/32 ${comment(`${instance.tenant}/${instance.app}`)} -g ${target}`);
  }
  let ruleCount = 0;
  for (const rules of chains.values()) ruleCount += rules.length;
  return { chains, ruleCount, destinationCount };
}

function tenantChain(model: PolicyModel, chains: Map<string, string[]>, tenant: string): string {
  const name = `HM-T-${shortHash(tenant)}`;
  if (chains.has(name)) return name;
  const rules = (model.addressedByTenant.get(tenant) ?? []).map((instance) => `-s ${instance.address}/32 -j RETURN`);
  rules.push(`-s ${formatCidr(model.clusterNetwork)} ${comment(`tenant ${tenant}: other tenants denied`)} -j DROP`);
  if (model.tenantPool !== undefined) rules.push(`-s ${formatCidr(model.tenantPool)} ${comment(`tenant ${tenant}: other tenant networks denied`)} -j DROP`);
  chains.set(name, rules);
  return name;
}

/**
 * The chain of a tenant network's destinations: its own block, and the
 * tenant's instances on the node subnets, RETURN; the rest of the cluster
 * network and the pool (other networks of the tenant included) DROP.
 */
function networkChain(model: PolicyModel, chains: Map<string, string[]>, tenant: string, network: string): string {
  const name = `HM-W-${shortHash(network)}`;
  if (chains.has(name)) return name;
  const rules = [`-s ${model.networkBlocks.get(network)} ${comment(`network ${network}`)} -j RETURN`];
  for (const instance of model.addressedByTenant.get(tenant) ?? []) if (containsAddress(model.clusterNetwork, parseIpv4(instance.address!)!)) rules.push(`-s ${instance.address}/32 -j RETURN`);
  rules.push(`-s ${formatCidr(model.clusterNetwork)} ${comment(`network ${network}: other tenants denied`)} -j DROP`);
  if (model.tenantPool !== undefined) rules.push(`-s ${formatCidr(model.tenantPool)} ${comment(`network ${network}: other networks denied`)} -j DROP`);
  chains.set(name, rules);
  return name;
}

/**
 * Why two apps of one tenant may not reach each other by default: they are
 * on tenant networks and share none (a source given by address: the network
 * of that address). Undefined when they share one, or either is on the node
 * subnets or has no address known.
 */
function noSharedNetwork(model: PolicyModel, source: PolicyDecision['source'], destination: { tenant: string; app: string }): string | undefined {
  const networksOf = (addresses: readonly string[]): Set<string | undefined> => new Set(addresses.map((address) => model.networkOf(address)));
  const from = source.address !== undefined ? networksOf([source.address]) : networksOf((model.addressedByApp.get(`${source.tenant}/${source.app}`) ?? []).map((instance) => instance.address!));
  const to = networksOf((model.addressedByApp.get(`${destination.tenant}/${destination.app}`) ?? []).map((instance) => instance.address!));
  if (from.size === 0 || to.size === 0 || from.has(undefined) || to.has(undefined)) return undefined;
  if ([...from].some((network) => to.has(network))) return undefined;
  const names = (set: Set<string | undefined>): string => [...set].join(', ');
  return `default: ${source.address ?? `${source.tenant}/${source.app}`} (on ${names(from)}) and ${destination.tenant}/${destination.app} (on ${names(to)}) share no network`;
}

function appChain(model: PolicyModel, chains: Map<string, string[]>, tenant: string, app: string, policies: NetworkPolicy[]): string {
  const name = `HM-A-${shortHash(`${tenant}/${app}`)}`;
  if (chains.has(name)) return name;
  const rules = [`-j MARK --set-xmark 0x0/${POLICY_MARK}`];
  for (const policy of policies) rules.push(`-j ${policyChain(model, chains, policy)}`);
  rules.push(`-m mark --mark ${POLICY_MARK}/${POLICY_MARK} -g ${allowChain(chains)}`);
  rules.push(`${comment(`${tenant}/${app}: no policy allows it`)} -j DROP`);
  chains.set(name, rules);
  return name;
}

function egressChain(model: PolicyModel, chains: Map<string, string[]>, tenant: string, app: string, policies: NetworkPolicy[]): string {
  const name = `HM-E-${shortHash(`${tenant}/${app}`)}`;
  if (chains.has(name)) return name;
  const rules = [`-j MARK --set-xmark 0x0/${POLICY_MARK}`];
  for (const policy of policies) rules.push(`-j ${egressPolicyChain(model, chains, policy)}`);
  rules.push(`-m mark --mark ${POLICY_MARK}/${POLICY_MARK} -g ${allowChain(chains)}`);
  rules.push(`${comment(`${tenant}/${app}: no egress rule allows it`)} -j DROP`);
  chains.set(name, rules);
  return name;
}

function egressPolicyChain(model: PolicyModel, chains: Map<string, string[]>, policy: NetworkPolicy): string {
  const name = `HM-Q-${shortHash(`${policy.tenant}/${policy.name}`)}`;
  if (chains.has(name)) return name;
  const rules: string[] = [];
  for (const [index, rule] of (policy.egress ?? []).entries()) {
    const destinations = new Set<string>();
    for (const app of rule.toApps ?? []) for (const instance of model.addressedByApp.get(`${policy.tenant}/${app}`) ?? []) destinations.add(`${instance.address}/32`);
    for (const tenant of rule.toTenants ?? []) for (const instance of model.addressedByTenant.get(tenant) ?? []) destinations.add(`${instance.address}/32`);
    for (const cidr of rule.toCidrs ?? []) destinations.add(cidr);
    const note = comment(`${policy.tenant}/${policy.name} egress rule ${index + 1}`);
    for (const destination of destinations) for (const ports of portMatches(rule.ports)) rules.push(`-d ${destination}${ports} ${note} -j MARK --set-xmark ${POLICY_MARK}/${POLICY_MARK}`);
  }
  chains.set(name, rules);
  return name;
}

function allowChain(chains: Map<string, string[]>): string {
  if (!chains.has(ALLOW_CHAIN)) chains.set(ALLOW_CHAIN, [`-j MARK --set-xmark 0x0/${POLICY_MARK}`]);
  return ALLOW_CHAIN;
}

function policyChain(model: PolicyModel, chains: Map<string, string[]>, policy: NetworkPolicy): string {
  const name = `HM-P-${shortHash(`${policy.tenant}/${policy.name}`)}`;
  if (chains.has(name)) return name;
  const rules: string[] = [];
  for (const [index, rule] of policy.ingress.entries()) {
    const sources = new Set<string>();
    for (const app of rule.fromApps ?? []) for (const instance of model.addressedByApp.get(`${policy.tenant}/${app}`) ?? []) sources.add(`${instance.address}/32`);
    for (const tenant of rule.fromTenants ?? []) for (const instance of model.addressedByTenant.get(tenant) ?? []) sources.add(`${instance.address}/32`);
    for (const cidr of rule.fromCidrs ?? []) sources.add(cidr);
    const note = comment(`${policy.tenant}/${policy.name} rule ${index + 1}`);
    for (const source of sources) for (const ports of portMatches(rule.ports)) rules.push(`-s ${source}${ports} ${note} -j MARK --set-xmark ${POLICY_MARK}/${POLICY_MARK}`);
  }
  chains.set(name, rules);
  return name;
}

/**
 * The iptables-restore input (for `--noflush`) that makes Hivemind's chains
 * equal to `desired`: each desired chain declared (which creates or
 * flushes it) and filled; each of `existing` (Hivemind's chains now in the
 * kernel) not desired declared, then deleted; the jump from FORWARD
 * inserted first when `jumpPresent` is false. Nothing else is touched.
 */
export function restoreInput(desired: PolicyChains, existing: string[], jumpPresent: boolean): string {
  const stale = existing.filter((name) => isHivemindChain(name) && !desired.chains.has(name)).sort();
  const lines = ['*filter'];
  for (const name of [...desired.chains.keys(), ...stale]) lines.push(`:${name} - [0:0]`);
  for (const [name, rules] of desired.chains) for (const rule of rules) lines.push(`-A ${name} ${rule}`);
  for (const name of stale) lines.push(`-X ${name}`);
  if (!jumpPresent) lines.push(`-I FORWARD 1 ${comment('network policies')} -j ${POLICY_CHAIN}`);
  lines.push('COMMIT', '');
  return lines.join('\n');
}

/**
 * The iptables-restore input (for `--noflush`) that takes the kernel from
 * `previous` (the chains the last apply wrote, assumed still in force) to
 * `desired` touching only what differs: each chain that is new or whose
 * rules changed declared (created or flushed) and filled; each chain of
 * `previous` no longer desired declared, then deleted. Unchanged chains are
 * not in the input, so they keep their counters and cost nothing. A chain
 * that stops being desired is referenced only by chains whose rules changed
 * (they named it), so it is deleted in the transaction that rewrites them.
 * Answers undefined when nothing differs. The FORWARD jump is not touched:
 * a missing jump is drift, for `restoreInput`.
 */
export function restoreChangesInput(desired: PolicyChains, previous: ReadonlyMap<string, readonly string[]>): string | undefined {
  const { changed, stale } = chainChanges(desired, previous);
  if (changed.length === 0 && stale.length === 0) return undefined;
  const lines = ['*filter'];
  for (const name of [...changed, ...stale]) lines.push(`:${name} - [0:0]`);
  for (const name of changed) for (const rule of desired.chains.get(name)!) lines.push(`-A ${name} ${rule}`);
  for (const name of stale) lines.push(`-X ${name}`);
  lines.push('COMMIT', '');
  return lines.join('\n');
}

/** The chains of `desired` that are new or whose rules differ from `previous`'s (in creation order), and those of `previous` no longer desired (sorted). */
export function chainChanges(desired: PolicyChains, previous: ReadonlyMap<string, readonly string[]>): { changed: string[]; stale: string[] } {
  const changed = [...desired.chains].filter(([name, rules]) => !sameRules(previous.get(name), rules)).map(([name]) => name);
  const stale = [...previous.keys()].filter((name) => !desired.chains.has(name)).sort();
  return { changed, stale };
}

function sameRules(left: readonly string[] | undefined, right: readonly string[]): boolean {
  return left !== undefined && left.length === right.length && left.every((rule, index) => rule === right[index]);
}

/** What `iptables-save -t filter` shows of Hivemind: its chains, their rule lines, and whether FORWARD jumps to it. */
export interface SavedPolicyChains {
  chains: string[];
  /** The `-A` lines of Hivemind's chains, in order: compared with what the last apply left, to find drift. */
  text: string;
  jumpPresent: boolean;
}

/** Reads Hivemind's part of `iptables-save -t filter` output. */
export function parseSaved(save: string): SavedPolicyChains {
  const chains: string[] = [];
  const rules: string[] = [];
  let jumpPresent = false;
  for (const line of save.split('\n')) {
    if (line.startsWith(':')) {
      const name = line.slice(1).split(' ')[0]!;
      if (isHivemindChain(name)) chains.push(name);
    } else if (line.startsWith('-A ')) {
      const chain = line.split(' ')[1]!;
      if (isHivemindChain(chain)) rules.push(line);
      else if (chain === 'FORWARD' && line.endsWith(`-j ${POLICY_CHAIN}`)) jumpPresent = true;
    }
  }
  return { chains, text: rules.join('\n'), jumpPresent };
}
