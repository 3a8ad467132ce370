/**
 * A service's networks and extra DNS names, as Compose gives them: the
 * networks it joins with their `aliases` (more names of the service, seen on
 * its networks) and `links` (`service:alias`, a name for another service
 * seen by the linking service alone). Pure.
 */
import type { LinkSpec } from '../state/types.js';
import type { NetworkDeclaration } from './context.js';
import { formatPath, type FieldPath, type Problems } from './problems.js';
import { checkName, isMapping, readList, readMapping, readNameList, readText } from './read.js';

const NO_SUCH_SETTING = "is ignored: a service's network in Hivemind takes aliases alone (addresses come from the network's slice on the instance's node)";

/** A service's networks: the tenant networks it joins, in order, with where each was written, and the aliases it asks for on each. */
export interface ServiceNetworks {
  /** Tenant network names, in the order written (the first gives eth0 and the default route). */
  networks: string[];
  /** Per network, its path in the file (`services.web.networks[1]`, `services.web.networks.back`). */
  origins: string[];
  /** Per network (same positions as `networks`), its aliases, each once, without the service's own name. */
  aliases: string[][];
  /** Per network, where its aliases were written (`services.web.networks.front.aliases`), or undefined. */
  aliasOrigins: (string | undefined)[];
}

/** A service's aliases as the app spec carries them: those on every network it joins, and the others per network. */
export interface SplitAliases {
  /** Aliases given on every network of the service, in the order first written: they answer wherever it is. */
  everywhere: string[];
  /** Aliases given on some networks alone, per network in the service's order; with the position in `ServiceNetworks` they came from. */
  perNetwork: { network: string; aliases: string[]; position: number }[];
}

/**
 * A service's `networks:` (a list of names, or a mapping of names to null or
 * settings): the declared networks it joins, in the order written, and the
 * aliases of each, each once, leaving out the service's own name (an alias
 * answers only on the network it is given on, as in Compose). A network not
 * declared at the top level (Compose declares `default` itself) is an error;
 * other settings (`ipv4_address`, `priority`, ...) are named in warnings.
 */
export function readServiceNetworks(value: unknown, path: FieldPath, context: { problems: Problems; declared: ReadonlyMap<string, NetworkDeclaration>; service: string }): ServiceNetworks | undefined {
  const { problems, declared, service } = context;
  const before = problems.errorCount;
  const found: ServiceNetworks = { networks: [], origins: [], aliases: [], aliasOrigins: [] };
  const join = (key: string, at: FieldPath): boolean => {
    const declaration = declared.get(key);
    if (declaration === undefined) {
      problems.error(at, `network "${key}" is not declared; declare it under the top-level networks: (or leave it out to use the default network)`);
      return false;
    }
    if (found.networks.includes(declaration.name)) {
      problems.error(at, `network "${key}" is listed twice`);
      return false;
    }
    found.networks.push(declaration.name);
    found.origins.push(formatPath(at));
    found.aliases.push([]);
    found.aliasOrigins.push(undefined);
    return true;
  };
  if (!isMapping(value)) {
    const items = readList(value, path, problems);
    if (items === undefined) return undefined;
    for (const [position, item] of items.entries()) {
      const key = readText(item, [...path, position], problems, { nonEmpty: true, noSpaces: true, what: 'a network name' });
      if (key !== undefined) join(key, [...path, position]);
    }
    return problems.errorCount === before ? found : undefined;
  }
  for (const [network, settings] of Object.entries(value)) {
    const entryPath = [...path, network];
    const joined = join(network, entryPath);
    if (settings === null) continue;
    const mapping = readMapping(settings, entryPath, problems);
    if (mapping === undefined) continue;
    for (const [key, setting] of Object.entries(mapping)) {
      if (key !== 'aliases' && setting !== null && setting !== undefined) problems.warn([...entryPath, key], NO_SUCH_SETTING);
    }
    if (mapping.aliases === undefined || mapping.aliases === null) continue;
    const read = readNameList(mapping.aliases, [...entryPath, 'aliases'], problems, 'alias');
    if (!joined) continue;
    const own = found.aliases[found.aliases.length - 1]!;
    for (const alias of read ?? []) if (alias !== service && !own.includes(alias)) own.push(alias);
    if (own.length > 0) found.aliasOrigins[found.aliasOrigins.length - 1] = formatPath([...entryPath, 'aliases']);
  }
  return problems.errorCount === before ? found : undefined;
}

/**
 * Splits a service's aliases (`joined`) into those given on every network
 * it joins (an app spec's `hivemind.aliases`, which answer wherever the app
 * is, as before aliases were kept per network: a file with one network per
 * service deploys as before) and the rest, per network
 * (`hivemind.networkAliases`).
 */
export function splitAliases(joined: ServiceNetworks): SplitAliases {
  const everywhere: string[] = [];
  for (const aliases of joined.aliases) {
    for (const alias of aliases) if (!everywhere.includes(alias) && joined.aliases.every((other) => other.includes(alias))) everywhere.push(alias);
  }
  const perNetwork: SplitAliases['perNetwork'] = [];
  for (const [position, aliases] of joined.aliases.entries()) {
    const own = aliases.filter((alias) => !everywhere.includes(alias));
    if (own.length > 0) perNetwork.push({ network: joined.networks[position]!, aliases: own, position });
  }
  return { everywhere, perNetwork };
}

/**
 * A service's `links:` (`service` or `service:alias`): the links whose alias
 * differs from the service linked (a bare `service` adds nothing: every app
 * resolves its tenant's apps by name). Errors: a part that is not a DNS
 * label, a link to the service itself, one alias for two services.
 */
export function readLinks(value: unknown, path: FieldPath, problems: Problems, service: string): LinkSpec[] | undefined {
  const items = readList(value, path, problems);
  if (items === undefined) return undefined;
  const before = problems.errorCount;
  const links: LinkSpec[] = [];
  for (const [position, item] of items.entries()) {
    const itemPath = [...path, position];
    const text = readText(item, itemPath, problems, { nonEmpty: true, noSpaces: true, what: 'a link like "db" or "db:database"' });
    if (text === undefined) continue;
    const parts = text.split(':');
    if (parts.length > 2) {
      problems.error(itemPath, `"${text}" must be SERVICE or SERVICE:ALIAS`);
      continue;
    }
    const [app, alias = app] = parts as [string, string?];
    if (!checkName(app, itemPath, problems, 'linked service') || !checkName(alias, itemPath, problems, 'link alias')) continue;
    if (app === service) {
      problems.error(itemPath, `links service "${service}" to itself; an app reaches its own instances by its name`);
      continue;
    }
    const known = links.find((link) => link.alias === alias);
    if (known !== undefined && known.app !== app) {
      problems.error(itemPath, `alias "${alias}" names both "${known.app}" and "${app}"; give each link its own alias`);
      continue;
    }
    if (alias !== app && known === undefined) links.push({ app, alias });
  }
  return problems.errorCount === before ? links : undefined;
}
