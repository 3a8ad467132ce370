/**
 * The names an app has beside its own, as Compose gives them: network
 * aliases (`hivemind.aliases`: more names of the app in its tenant on every
 * network it is on; `hivemind.networkAliases`: on one of its networks
 * alone, for queriers on that network) and
 * links (`hivemind.links`: names the linking app's instances alone resolve
 * to another app), and which app a querier is, by its source address (links
 * depend on it). Read from the same live records as the discovery
 * directory, from each app's current version. Pure.
 */
import { appKey, type DiscoveryInput, type Directory } from '../discovery/endpoints.js';

/** An app a name stands for, and where the name reaches it. */
export interface NamedApp {
  app: string;
  /** The only networks (`tenant/name`) on which the name reaches the app (an alias given per network); absent: every network the app is on. */
  networks?: readonly string[];
}

/** Aliases and links of every app, and who is who by address. Owned by the caller; built anew when the state changes. */
export interface AppNames {
  /** `tenant/alias` → the apps that carry it as an alias (sorted by name), each with the networks it carries it on when not on all. */
  readonly aliases: ReadonlyMap<string, readonly NamedApp[]>;
  /** `tenant/app` of a linking app → its link aliases → the app each names. */
  readonly links: ReadonlyMap<string, ReadonlyMap<string, string>>;
  /** The app of a querier by source address: addresses the directory knows as one tenant's, held by one app's running instances. */
  readonly appOfAddress: ReadonlyMap<string, string>;
}

/** The names of `input`'s apps; `directory` is the directory of the same input. Deterministic. */
export function appNamesOf(input: DiscoveryInput, directory: Directory): AppNames {
  const aliases = new Map<string, { app: string; networks?: string[] }[]>();
  const links = new Map<string, Map<string, string>>();
  const carry = (tenant: string, alias: string, app: string, network?: string): void => {
    const key = appKey(tenant, alias);
    let carriers = aliases.get(key);
    if (carriers === undefined) aliases.set(key, (carriers = []));
    const known = carriers.find((carrier) => carrier.app === app);
    if (known === undefined) carriers.push(network === undefined ? { app } : { app, networks: [network] });
    else if (network === undefined) delete known.networks;
    else if (known.networks !== undefined && !known.networks.includes(network)) known.networks.push(network);
  };
  for (const app of input.apps) {
    const spec = app.versions.find((version) => version.version === app.version)?.spec;
    if (spec === undefined) continue;
    for (const alias of spec.hivemind.aliases ?? []) carry(app.tenant, alias, app.name);
    for (const entry of spec.hivemind.networkAliases ?? []) for (const alias of entry.aliases) carry(app.tenant, alias, app.name, appKey(app.tenant, entry.network));
    const appLinks = spec.hivemind.links ?? [];
    if (appLinks.length > 0) links.set(appKey(app.tenant, app.name), new Map(appLinks.map((link) => [link.alias, link.app])));
  }
  for (const carriers of aliases.values()) carriers.sort((left, right) => (left.app < right.app ? -1 : left.app > right.app ? 1 : 0));
  const appOfAddress = new Map<string, string | null>();
  for (const instance of input.instances) {
    const address = instance.status.endpoint?.address;
    if (instance.desired !== 'running' || address === undefined || directory.tenantOfAddress.get(address) !== instance.tenant) continue;
    const known = appOfAddress.get(address);
    appOfAddress.set(address, known === undefined || known === instance.app ? instance.app : null);
  }
  const unique = new Map<string, string>();
  for (const [address, app] of appOfAddress) if (app !== null) unique.set(address, app);
  return { aliases, links, appOfAddress: unique };
}

/**
 * The apps `label` names in `tenant` for a querier of that tenant, in this
 * order as under Docker: a link alias of the querier's app (`querier.app`;
 * undefined: unknown, or of no single app); an app of that name; the apps
 * carrying it as an alias (all of them). A querier on tenant networks
 * (`querier.networks`) sees only what the name reaches on one of them
 * (`networksReached`), so an app of the name on none of its networks gives
 * way to an alias on one, as Docker's DNS answers per network. An empty
 * list: no such name where the querier is.
 */
export function appsNamed(directory: Directory, names: AppNames, name: { tenant: string; label: string }, querier: { app?: string; networks?: readonly string[] } = {}): NamedApp[] {
  const linked = querier.app === undefined ? undefined : names.links.get(appKey(name.tenant, querier.app))?.get(name.label);
  if (linked !== undefined) return directory.apps.has(appKey(name.tenant, linked)) ? [{ app: linked }] : [];
  const seen = (candidate: NamedApp): boolean => networksReached(directory, name.tenant, candidate, querier.networks ?? []) !== undefined;
  const own = { app: name.label };
  if (directory.apps.has(appKey(name.tenant, name.label)) && seen(own)) return [own];
  return (names.aliases.get(appKey(name.tenant, name.label)) ?? []).filter(seen);
}

/**
 * The querier's networks on which a name reaches `named` of `tenant`, in
 * the querier's order: those the app is on (and, for an alias given per
 * network, that carry it); an empty list for a querier on no tenant network
 * (it sees every name, on whatever network); undefined when the name does
 * not reach the app where the querier is.
 */
export function networksReached(directory: Directory, tenant: string, named: NamedApp, querierNetworks: readonly string[]): readonly string[] | undefined {
  if (querierNetworks.length === 0) return [];
  const appNetworks = directory.appNetworks.get(appKey(tenant, named.app)) ?? [];
  const reached = querierNetworks.filter((network) => appNetworks.includes(network) && (named.networks === undefined || named.networks.includes(network)));
  return reached.length === 0 ? undefined : reached;
}

/** No aliases, no links: the names of a state without them. */
export const NO_APP_NAMES: AppNames = { aliases: new Map(), links: new Map(), appOfAddress: new Map() };
