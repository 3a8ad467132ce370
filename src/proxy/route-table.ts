/**
 * The route table: which app a request is for (by its Host, and a path
 * prefix for routes an app declares under `x-hivemind.routes`), and that
 * app's serving instances, its settings and its traffic split. Built from
 * the replica's records and the discovery directory (the one place that
 * chooses an instance's address); rebuilt after every apply but a
 * heartbeat. Pure.
 */
import { appKey, directoryOf, type DiscoveryInput, type Directory } from '../discovery/endpoints.js';
import type { App, AppSpec } from '../state/types.js';
import { abVersionOf } from './ab-rule.js';
import { settingsOf, type ProxySettings } from './settings.js';
import { trafficSplitOf, type VersionShare } from './traffic-split.js';

/** The zone every app has a name in: `<app>.<tenant>.hivemind`. */
export const ZONE = 'hivemind';

/** One serving instance, at the address and port the proxy forwards to. */
export interface BackendTarget {
  /** The instance id. */
  readonly instance: string;
  readonly version: number;
  readonly address: string;
  readonly port: number;
  /** `address:port` (`[v6]:port`): the key of its connection pool. */
  readonly authority: string;
}

/** What the proxy knows of one app. */
export interface AppTarget {
  /** `tenant/app`. */
  readonly key: string;
  readonly tenant: string;
  readonly app: string;
  readonly settings: ProxySettings;
  /** Serving instances with a TCP port, sorted by instance id. */
  readonly backends: readonly BackendTarget[];
  /** The version split in force; undefined: every backend alike. */
  readonly split: VersionShare[] | undefined;
  /** The version requests matching the app's A/B rule go to; undefined: no rule in force. */
  readonly abVersion: number | undefined;
}

/** A match: the app, and the rule that matched (the metrics' `route` label). */
export interface RouteMatch {
  readonly target: AppTarget;
  /** `web.default.hivemind`, or a declared `shop.example.com/api`. */
  readonly route: string;
}

/** A declared route that another app already holds: reported, not routed. */
export interface RouteConflict {
  readonly route: string;
  readonly holder: string;
  readonly loser: string;
}

export interface RouteTable {
  /** Every app by `tenant/app`. */
  readonly apps: ReadonlyMap<string, AppTarget>;
  /** The app for a request's Host header and path, or undefined. */
  lookup(host: string, path: string): RouteMatch | undefined;
  readonly conflicts: readonly RouteConflict[];
}

interface PrefixRule {
  readonly prefix: string;
  readonly match: RouteMatch;
}

/** The table of the whole cluster. Deterministic: the same records give the same table. */
export function routeTableOf(input: DiscoveryInput, directory: Directory = directoryOf(input)): RouteTable {
  const apps = new Map<string, AppTarget>();
  const hosts = new Map<string, PrefixRule[]>();
  const conflicts: RouteConflict[] = [];
  const sorted = [...input.apps].sort((left, right) => compare(appKey(left.tenant, left.name), appKey(right.tenant, right.name)));
  for (const app of sorted) {
    const target = targetOf(app, directory);
    apps.set(target.key, target);
    const name = `${app.name}.${app.tenant}.${ZONE}`;
    hosts.set(name, [{ prefix: '', match: { target, route: name } }]);
  }
  for (const app of sorted) {
    const target = apps.get(appKey(app.tenant, app.name))!;
    for (const declared of currentSpec(app)?.hivemind.routes ?? []) {
      const prefix = declared.path ?? '';
      const route = `${declared.host}${prefix}`;
      let rules = hosts.get(declared.host);
      if (rules === undefined) hosts.set(declared.host, (rules = []));
      const holder = rules.find((rule) => rule.prefix === prefix);
      if (holder !== undefined) {
        if (holder.match.target !== target) conflicts.push({ route, holder: holder.match.target.key, loser: target.key });
        continue;
      }
      rules.push({ prefix, match: { target, route } });
    }
  }
  for (const rules of hosts.values()) rules.sort((left, right) => right.prefix.length - left.prefix.length);
  return {
    apps,
    conflicts,
    lookup(host, path) {
      const rules = hosts.get(normalizeHost(host));
      if (rules === undefined) return undefined;
      for (const rule of rules) if (underPrefix(path, rule.prefix)) return rule.match;
      return undefined;
    },
  };
}

/** A Host header as a table key: lower case, without port or a trailing dot. */
export function normalizeHost(host: string): string {
  let name = host;
  if (name.startsWith('[')) name = name.slice(0, name.indexOf(']') + 1);
  else {
    const colon = name.indexOf(':');
    if (colon >= 0) name = name.slice(0, colon);
  }
  if (name.endsWith('.')) name = name.slice(0, -1);
  return name.toLowerCase();
}

/** Whether `path` is `prefix` or below it, at a segment boundary (`/api` matches `/api/x` and `/api?q`, not `/apix`). */
export function underPrefix(path: string, prefix: string): boolean {
  if (prefix === '') return true;
  if (!path.startsWith(prefix)) return false;
  const next = path.charCodeAt(prefix.length);
  return Number.isNaN(next) || next === 0x2f /* / */ || next === 0x3f /* ? */;
}

function targetOf(app: App, directory: Directory): AppTarget {
  const key = appKey(app.tenant, app.name);
  const spec = currentSpec(app);
  const wantedTarget = spec?.ports.find((port) => port.protocol === 'tcp')?.target;
  const backends: BackendTarget[] = [];
  for (const endpoint of directory.endpoints.get(key) ?? []) {
    const tcp = endpoint.ports.filter((port) => port.protocol === 'tcp');
    const chosen = tcp.find((port) => port.target === wantedTarget) ?? tcp[0];
    if (chosen === undefined) continue;
    const authority = endpoint.address.includes(':') ? `[${endpoint.address}]:${chosen.port}` : `${endpoint.address}:${chosen.port}`;
    backends.push({ instance: endpoint.instance, version: endpoint.version, address: endpoint.address, port: chosen.port, authority });
  }
  backends.sort((left, right) => compare(left.instance, right.instance));
  const servingVersions = new Set(backends.map((backend) => backend.version));
  const split = trafficSplitOf(app, servingVersions);
  const settings = settingsOf(spec);
  return { key, tenant: app.tenant, app: app.name, settings, backends, split, abVersion: abVersionOf(settings.ab, app.version, servingVersions) };
}

/** The spec of the version the app runs now (its rollout's target). */
function currentSpec(app: App): AppSpec | undefined {
  return app.versions.find((entry) => entry.version === app.version)?.spec ?? app.versions.at(-1)?.spec;
}

function compare(left: string, right: string): number {
  return left < right ? -1 : left > right ? 1 : 0;
}
