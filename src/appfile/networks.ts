/**
 * The networks of a parsed app file as the cluster can take them: the
 * `networks` an `app.deploy-many` creates (the declared networks its apps
 * join, each with its subnet when that is a block of the tenant pool), or,
 * on a cluster without tenant networks (no pool, or a member older than
 * state version APP_NETWORKS_VERSION), none and the apps without theirs,
 * with a warning, as before networks were read. And where a refusal of such
 * a network's field was written in the file. Pure.
 */
import { DEFAULT_NETWORK, specNetworks } from '../state/app-networks.js';
import { blockProblem } from '../state/tenant-ipam.js';
import type { AppSpec, DeployNetwork } from '../state/types.js';
import { APP_NETWORKS_VERSION, NETWORK_ALIASES_VERSION } from '../state/version.js';
import type { FileNetwork } from './parse.js';

/** What the deploy reads of the cluster. */
export interface NetworkCluster {
  /** The tenant pool (`ClusterNetwork.tenantCidr`), when set. */
  pool?: string;
  clusterVersion: number;
  /** Whether the tenant holds the network; given, a tenant of the file's apps on `default` that lacks it gets it made by the deploy (the implicit `default` tenant, adopted by its first deploy, and a tenant made before the pool). */
  hasNetwork?: (tenant: string, name: string) => boolean;
}

/** The apps and networks to deploy, and the warnings to add (each `path: text`). */
export interface DeployNetworks {
  apps: AppSpec[];
  /** Absent when the file makes none. */
  networks?: DeployNetwork[];
  warnings: string[];
}

/**
 * See the file comment. `fileNetworks`, `apps` and `origins` are the parse
 * result's. Aliases given on some of an app's networks alone
 * (`hivemind.networkAliases`) become aliases on all of them where the
 * cluster cannot keep them apart: without networks (the app is on one), or
 * below state version NETWORK_ALIASES_VERSION (with a warning naming where
 * they were written).
 */
export function deployNetworks(apps: readonly AppSpec[], fileNetworks: readonly FileNetwork[], cluster: NetworkCluster, origins: Readonly<Record<string, Readonly<Record<string, string>>>> = {}): DeployNetworks {
  const named = apps.some((spec) => spec.networks !== undefined);
  if (cluster.pool === undefined || cluster.clusterVersion < APP_NETWORKS_VERSION) {
    if (!named && fileNetworks.length === 0) return { apps: [...apps], warnings: [] };
    const why = cluster.pool === undefined ? 'the cluster has no tenant network pool (its overlay is off)' : `a node of the cluster runs a Hivemind older than state version ${APP_NETWORKS_VERSION}`;
    return {
      apps: apps.map(({ networks: _networks, ...spec }) => withAliasesEverywhere(spec)),
      warnings: [`networks: is ignored: ${why}, so every app of a tenant is on one network`],
    };
  }
  const warnings: string[] = [];
  if (cluster.clusterVersion < NETWORK_ALIASES_VERSION) {
    for (const spec of apps) {
      for (const position of (spec.hivemind.networkAliases ?? []).keys()) {
        const where = origins[spec.name]?.[`hivemind.networkAliases[${position}].network`] ?? `services.${spec.name}.networks`;
        warnings.push(`${where}: answers on every network of the service: a node of the cluster runs a Hivemind older than state version ${NETWORK_ALIASES_VERSION}, which keeps no aliases per network`);
      }
    }
    apps = apps.map(withAliasesEverywhere);
  }
  const networks = fileNetworks.map((network): DeployNetwork => {
    const base = { tenant: network.tenant, name: network.name };
    if (network.subnet === undefined) return base;
    // Only the shape is judged here; a block another network holds is the state's to refuse, naming the field.
    const problem = blockProblem(network.subnet.cidr, cluster.pool!, []);
    if (problem === undefined) return { ...base, cidr: network.subnet.cidr };
    warnings.push(`${network.subnet.path}: is ignored: a network's block is a /20 of the tenant pool ${cluster.pool} (${problem.reason}); the network gets the lowest free one`);
    return base;
  });
  const listed = new Set(networks.map((network) => `${network.tenant}/${network.name}`));
  for (const spec of apps) {
    const key = `${spec.tenant}/${DEFAULT_NETWORK}`;
    if (listed.has(key) || !specNetworks(spec).includes(DEFAULT_NETWORK) || cluster.hasNetwork?.(spec.tenant, DEFAULT_NETWORK) !== false) continue;
    listed.add(key);
    networks.push({ tenant: spec.tenant, name: DEFAULT_NETWORK });
  }
  return { apps: [...apps], ...(networks.length === 0 ? {} : { networks }), warnings };
}

/** `spec` with its aliases per network (if any) among those it has on every network, each once. */
export function withAliasesEverywhere(spec: AppSpec): AppSpec {
  const perNetwork = spec.hivemind.networkAliases;
  if (perNetwork === undefined) return spec;
  const { networkAliases: _perNetwork, ...hivemind } = spec.hivemind;
  const aliases = [...(hivemind.aliases ?? [])];
  for (const entry of perNetwork) for (const alias of entry.aliases) if (!aliases.includes(alias)) aliases.push(alias);
  return { ...spec, hivemind: { ...hivemind, aliases } };
}

/**
 * Where `networks[N].<field>` of an `app.deploy-many` (as the state names a
 * refusal) was written: the subnet for `cidr`, else where the network is
 * declared; undefined for other fields.
 */
export function networkFieldOf(field: string, fileNetworks: readonly FileNetwork[]): string | undefined {
  const match = /^networks\[(\d+)\](?:\.(.+))?$/.exec(field);
  if (match === null) return undefined;
  const network = fileNetworks[Number(match[1])];
  if (network === undefined) return undefined;
  return match[2] === 'cidr' && network.subnet !== undefined ? network.subnet.path : network.origin;
}
