/**
 * A service's extra DNS names, as Compose gives them: network `aliases`
 * (more names of the service, seen by every app of its tenant) and `links`
 * (`service:alias`, a name for another service seen by the linking service
 * alone). Every network a service names is its tenant's one network, so only
 * the aliases of `networks:` are read. Pure.
 */
import type { LinkSpec } from '../state/types.js';
import type { FieldPath, Problems } from './problems.js';
import { checkName, isMapping, readList, readMapping, readNameList, readText } from './read.js';

const ONE_NETWORK = 'is ignored: Hivemind gives each tenant one network, and every app of the tenant is on it';

/**
 * A service's `networks:` (a list of names, or a mapping of names to null or
 * settings): the aliases of every network, each once, leaving out the
 * service's own name. Other settings (`ipv4_address`, `priority`, ...) and a
 * `networks:` with no alias are named in warnings.
 */
export function readNetworkAliases(value: unknown, path: FieldPath, problems: Problems, service: string): string[] | undefined {
  if (!isMapping(value)) {
    if (readList(value, path, problems) === undefined) return undefined;
    problems.warn(path, ONE_NETWORK);
    return [];
  }
  const aliases: string[] = [];
  const before = problems.errorCount;
  for (const [network, settings] of Object.entries(value)) {
    if (settings === null) continue;
    const entryPath = [...path, network];
    const mapping = readMapping(settings, entryPath, problems);
    if (mapping === undefined) continue;
    for (const [key, setting] of Object.entries(mapping)) {
      if (key !== 'aliases' && setting !== null && setting !== undefined) problems.warn([...entryPath, key], ONE_NETWORK);
    }
    if (mapping.aliases === undefined || mapping.aliases === null) continue;
    const read = readNameList(mapping.aliases, [...entryPath, 'aliases'], problems, 'alias');
    for (const alias of read ?? []) if (alias !== service && !aliases.includes(alias)) aliases.push(alias);
  }
  if (problems.errorCount !== before) return undefined;
  if (aliases.length === 0) problems.warn(path, ONE_NETWORK);
  return aliases;
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
