/**
 * The `hivemind` zone: what the node's DNS server answers for names in it,
 * from the discovery directory (`src/discovery/endpoints.ts`). Pure and
 * synchronous: a question and a directory in, records out.
 *
 * Names (case-insensitive, a trailing dot or not):
 * - `<app>.<tenant>.hivemind`: A / AAAA of the app's serving instances, or
 *   its service VIP (one A record) when it holds one and something serves;
 * - `<slot>.<app>.<tenant>.hivemind`: the serving copies of one slot (two
 *   during a start-first update), and `<slot>-<serial>.<app>.<tenant>.hivemind`
 *   one instance (the last two parts of its id);
 * - `_<port>._tcp.<app>.<tenant>.hivemind` (or `._udp`): SRV, one per serving
 *   instance with that target port: its port there and its instance name,
 *   whose address comes along in the additional section;
 * - `hivemind` itself has a SOA (for negative answers' TTL).
 * Wherever `<app>` stands, a Compose network alias of an app of the tenant
 * and, for the linking app's own instances, a link alias do too (`names.ts`);
 * an alias several apps carry answers with all of them.
 * A name of an app that exists but has nothing serving is NODATA (NOERROR,
 * no answer); a name that does not exist is NXDOMAIN. A querier known to be
 * a tenant's instance sees that tenant's names only: another tenant's are
 * NXDOMAIN, as if they did not exist.
 *
 * Per network: a querier on tenant networks (its instance's addresses lie in
 * network blocks) sees the apps on a network it is on, each instance at its
 * address there (the querier's first network that holds one), as Compose's
 * DNS does; an alias given on some of an app's networks alone, only on
 * those (and at the app's address there); an app on none of its networks is NXDOMAIN (its name does not
 * exist where the querier is), one on a shared network with nothing serving
 * NODATA. The VIP answers on every network: its DNAT picks the instances'
 * addresses on the network the client shares with them (service-plan.ts).
 */
import { appKey, type Directory, type ServiceEndpoint } from '../discovery/endpoints.js';
import { appsNamed, networksReached, NO_APP_NAMES, type AppNames } from './names.js';

/** The zone's apex. */
export const ZONE = 'hivemind';
/**
 * TTL of answers. One second: answers follow health within a second of the
 * status commit at the server, and a caching resolver in between (glibc's
 * nscd, a sidecar) keeps them no longer than that.
 */
export const ANSWER_TTL_SECONDS = 1;
/** TTL of negative answers (the SOA's minimum): an app that comes up is seen as fast. */
export const NEGATIVE_TTL_SECONDS = 1;
/** Address records in one answer at most; SRV answers as many (the rest are left out, as resolvers would truncate them anyway). */
export const ANSWER_RECORDS_MAX = 64;

/** Query types the zone knows (RFC 1035, 3596, 2782). */
export const QUERY_TYPE = { A: 1, NS: 2, SOA: 6, AAAA: 28, SRV: 33, ANY: 255 } as const;

/** A record the zone answers with; names are absolute, without the trailing dot. */
export type ZoneRecord =
  | { name: string; type: 'A' | 'AAAA'; ttl: number; address: string }
  | { name: string; type: 'SRV'; ttl: number; priority: number; weight: number; port: number; target: string }
  | { name: string; type: 'SOA'; ttl: number; primary: string; admin: string; serial: number; refresh: number; retry: number; expiration: number; minimum: number };

/** The zone's answer to one question. */
export interface ZoneAnswer {
  rcode: 'NOERROR' | 'NXDOMAIN';
  answers: ZoneRecord[];
  authorities: ZoneRecord[];
  additionals: ZoneRecord[];
}

/** Whether `name` (lowercase) is in the zone: `hivemind` or a name under it. */
export function inZone(name: string): boolean {
  const trimmed = trimDot(name);
  return trimmed === ZONE || trimmed.endsWith(`.${ZONE}`);
}

/** The SOA of the zone. */
export function zoneSoa(): ZoneRecord {
  return { name: ZONE, type: 'SOA', ttl: NEGATIVE_TTL_SECONDS, primary: `ns.${ZONE}`, admin: `hostmaster.${ZONE}`, serial: 1, refresh: 3600, retry: 600, expiration: 86400, minimum: NEGATIVE_TTL_SECONDS };
}

/**
 * The answer to `type` for `name` (lowercase; must be `inZone`), as seen by
 * a querier of `querierTenant` (undefined: a querier not known as any
 * tenant's, such as the node itself or a process app: it sees every tenant),
 * with the apps' aliases and links (`names`) and, for links, the querier's
 * app (`querierApp`, of `querierTenant`).
 */
export function answerQuestion(
  directory: Directory,
  question: { name: string; type: number },
  querierTenant?: string,
  context: { names: AppNames; querierApp?: string; querierNetworks?: readonly string[] } = { names: NO_APP_NAMES },
): ZoneAnswer {
  const labels = trimDot(question.name).split('.');
  labels.pop();
  const nxdomain: ZoneAnswer = { rcode: 'NXDOMAIN', answers: [], authorities: [zoneSoa()], additionals: [] };
  const nodata: ZoneAnswer = { rcode: 'NOERROR', answers: [], authorities: [zoneSoa()], additionals: [] };
  if (labels.length === 0) return question.type === QUERY_TYPE.SOA || question.type === QUERY_TYPE.ANY ? { rcode: 'NOERROR', answers: [zoneSoa()], authorities: [], additionals: [] } : nodata;
  const tenant = labels[labels.length - 1]!;
  if (querierTenant !== undefined && querierTenant !== tenant) return nxdomain;
  if (labels.length === 1) return directory.tenants.has(tenant) ? nodata : nxdomain;
  const label = labels[labels.length - 2]!;
  const querierNetworks = context.querierNetworks ?? [];
  const named = appsNamed(directory, context.names, { tenant, label }, { ...(querierTenant === tenant && context.querierApp !== undefined ? { app: context.querierApp } : {}), networks: querierNetworks });
  // Each app with the querier's networks the name reaches it on (a link reaches it wherever the two share a network).
  const apps = named.flatMap((entry) => {
    const reached = networksReached(directory, tenant, entry, querierNetworks);
    return reached === undefined ? [] : [{ app: entry.app, networks: reached }];
  });
  if (apps.length === 0) return nxdomain;
  const endpointsOf = (entry: { app: string; networks: readonly string[] }): readonly ServiceEndpoint[] => onNetworks(directory, directory.endpoints.get(appKey(tenant, entry.app)) ?? [], entry.networks);
  const endpoints = apps.flatMap(endpointsOf);
  const name = trimDot(question.name);
  if (labels.length === 2) {
    // Each app by its VIP, but only while something serves it: an app with nothing serving stays NODATA, as without VIPs.
    const addresses = apps.flatMap((entry): readonly { address: string }[] => {
      const own = endpointsOf(entry);
      const vip = directory.vips.get(appKey(tenant, entry.app));
      // The VIP reaches the instances over the network the client shares with them (service-plan.ts), so it answers on every network.
      return vip !== undefined && own.length > 0 ? [{ address: vip }] : own;
    });
    return addressAnswer(name, addresses, question.type) ?? nodata;
  }
  const first = labels[0]!;
  if (labels.length === 3) {
    if (first === '_tcp' || first === '_udp') return nodata;
    const selected = selectInstances(endpoints, first);
    if (selected === undefined || selected.length === 0) return nxdomain;
    return addressAnswer(name, selected, question.type) ?? nodata;
  }
  if (labels.length === 4) {
    const protocol = labels[1] === '_tcp' ? 'tcp' : labels[1] === '_udp' ? 'udp' : undefined;
    const target = /^_(\d{1,5})$/.exec(first);
    if (protocol === undefined || target === null) return nxdomain;
    if (question.type !== QUERY_TYPE.SRV && question.type !== QUERY_TYPE.ANY) return nodata;
    return srvAnswer(name, endpoints, { target: Number(target[1]), protocol });
  }
  return nxdomain;
}

/**
 * The endpoints as a querier on `networks` reaches them: each at its first
 * address on one of those networks (in the querier's order), those with none
 * left out; every endpoint as it is when the querier is on no tenant network.
 */
function onNetworks(directory: Directory, endpoints: readonly ServiceEndpoint[], networks: readonly string[]): readonly ServiceEndpoint[] {
  if (networks.length === 0) return endpoints;
  const reached: ServiceEndpoint[] = [];
  for (const endpoint of endpoints) {
    const addresses = endpoint.addresses ?? [endpoint.address];
    const byNetwork = new Map(addresses.map((address) => [directory.networkOf(address), address]));
    const network = networks.find((candidate) => byNetwork.has(candidate));
    if (network !== undefined) reached.push(byNetwork.get(network) === endpoint.address ? endpoint : { ...endpoint, address: byNetwork.get(network)! });
  }
  return reached;
}

/** `<slot>`: the serving copies of a slot; `<slot>-<serial>`: one instance; else undefined. */
function selectInstances(endpoints: readonly ServiceEndpoint[], label: string): ServiceEndpoint[] | undefined {
  const match = /^(\d+)(?:-(\d+))?$/.exec(label);
  if (match === null) return undefined;
  const slot = Number(match[1]);
  return endpoints.filter((endpoint) => endpoint.slot === slot && (match[2] === undefined || endpoint.serial === match[2]));
}

/** A / AAAA records of the endpoints' addresses (each once), or undefined when the type asks for neither. */
function addressAnswer(name: string, endpoints: readonly Pick<ServiceEndpoint, 'address'>[], type: number): ZoneAnswer | undefined {
  const wantsV4 = type === QUERY_TYPE.A || type === QUERY_TYPE.ANY;
  const wantsV6 = type === QUERY_TYPE.AAAA || type === QUERY_TYPE.ANY;
  if (!wantsV4 && !wantsV6) return undefined;
  const answers = addressRecords(name, endpoints, { wantsV4, wantsV6 });
  return { rcode: 'NOERROR', answers, authorities: answers.length === 0 ? [zoneSoa()] : [], additionals: [] };
}

function addressRecords(name: string, endpoints: readonly Pick<ServiceEndpoint, 'address'>[], wants: { wantsV4: boolean; wantsV6: boolean }): ZoneRecord[] {
  const seen = new Set<string>();
  const records: ZoneRecord[] = [];
  for (const endpoint of endpoints) {
    if (records.length >= ANSWER_RECORDS_MAX) break;
    if (seen.has(endpoint.address)) continue;
    seen.add(endpoint.address);
    const isV6 = endpoint.address.includes(':');
    if (isV6 ? wants.wantsV6 : wants.wantsV4) records.push({ name, type: isV6 ? 'AAAA' : 'A', ttl: ANSWER_TTL_SECONDS, address: endpoint.address });
  }
  return records;
}

/** SRV records of the endpoints with the port; each target is the instance's own name (under its app's, whatever name was asked). */
function srvAnswer(name: string, endpoints: readonly ServiceEndpoint[], port: { target: number; protocol: 'tcp' | 'udp' }): ZoneAnswer {
  const answers: ZoneRecord[] = [];
  const additionals: ZoneRecord[] = [];
  for (const endpoint of endpoints) {
    if (answers.length >= ANSWER_RECORDS_MAX) break;
    const found = endpoint.ports.find((entry) => entry.target === port.target && entry.protocol === port.protocol);
    if (found === undefined) continue;
    const target = `${endpoint.slot}-${endpoint.serial}.${endpoint.app}.${endpoint.tenant}.${ZONE}`;
    answers.push({ name, type: 'SRV', ttl: ANSWER_TTL_SECONDS, priority: 0, weight: 10, port: found.port, target });
    additionals.push(...addressRecords(target, [endpoint], { wantsV4: true, wantsV6: true }));
  }
  return { rcode: 'NOERROR', answers, authorities: answers.length === 0 ? [zoneSoa()] : [], additionals };
}

function trimDot(name: string): string {
  return name.endsWith('.') ? name.slice(0, -1) : name;
}
