/**
 * The names an app has beside its own, as Compose gives them: network
 * aliases (`hivemind.aliases`: more names of the app in its tenant) and
 * links (`hivemind.links`: names the linking app's instances alone resolve
 * to another app), and which app a querier is, by its source address (links
 * depend on it). Read from the same live records as the discovery
 * directory, from each app's current version. Pure.
 */
import { appKey, type DiscoveryInput, type Directory } from '../discovery/endpoints.js';

/** Aliases and links of every app, and who is who by address. Owned by the caller; built anew when the state changes. */
export interface AppNames {
  /** `tenant/alias` → the apps (names, sorted) that carry it as an alias. */
  readonly aliases: ReadonlyMap<string, readonly string[]>;
  /** `tenant/app` of a linking app → its link aliases → the app each names. */
  readonly links: ReadonlyMap<string, ReadonlyMap<string, string>>;
  /** The app of a querier by source address: addresses the directory knows as one tenant's, held by one app's running instances. */
  readonly appOfAddress: ReadonlyMap<string, string>;
}

/** The names of `input`'s apps; `directory` is the directory of the same input. Deterministic. */
export function appNamesOf(input: DiscoveryInput, directory: Directory): AppNames {
  const aliases = new Map<string, string[]>();
  const links = new Map<string, Map<string, string>>();
  for (const app of input.apps) {
    const spec = app.versions.find((version) => version.version === app.version)?.spec;
    if (spec === undefined) continue;
    for (const alias of spec.hivemind.aliases ?? []) {
      const key = appKey(app.tenant, alias);
      const carriers = aliases.get(key);
      if (carriers === undefined) aliases.set(key, [app.name]);
      else if (!carriers.includes(app.name)) carriers.push(app.name);
    }
    const appLinks = spec.hivemind.links ?? [];
    if (appLinks.length > 0) links.set(appKey(app.tenant, app.name), new Map(appLinks.map((link) => [link.alias, link.app])));
  }
  for (const carriers of aliases.values()) carriers.sort();
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
 * The apps `label` names in `tenant` for a querier that is `querierApp` of
 * that tenant (undefined: unknown, or of no single app), in this order as
 * under Docker: a link alias of the querier's app; an app of that name; the
 * apps carrying it as an alias. An empty list: no such name.
 */
export function appsNamed(directory: Directory, names: AppNames, name: { tenant: string; label: string }, querierApp?: string): string[] {
  const linked = querierApp === undefined ? undefined : names.links.get(appKey(name.tenant, querierApp))?.get(name.label);
  if (linked !== undefined) return directory.apps.has(appKey(name.tenant, linked)) ? [linked] : [];
  if (directory.apps.has(appKey(name.tenant, name.label))) return [name.label];
  return [...(names.aliases.get(appKey(name.tenant, name.label)) ?? [])];
}

/** No aliases, no links: the names of a state without them. */
export const NO_APP_NAMES: AppNames = { aliases: new Map(), links: new Map(), appOfAddress: new Map() };
