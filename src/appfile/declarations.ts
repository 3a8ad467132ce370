/**
 * The top-level `volumes:`, `secrets:` and `networks:` of an app file. They
 * declare names the services use. A deploy creates the declared networks its
 * services join that their tenant lacks, unless `external: true`. A deploy creates the declared volumes its
 * services mount that do not exist yet (sized by `x-hivemind.size`), unless
 * `external: true`; a secret with a value in the file (`file:`, read by the
 * caller; `environment:`; `content:`) is created by the deploy when its
 * tenant lacks it, else it must exist. Names with underscores become names
 * with hyphens (`db_password` is `db-password`), with a warning. Pure.
 */
import { checkKeys, networkIpamConfigKeys, networkIpamKeys, topLevelNetworkKeys, topLevelSecretKeys, topLevelVolumeKeys, volumeExtensionKeys } from './compose-keys.js';
import type { FileContext, NetworkDeclaration, VolumeDeclaration } from './context.js';
import { formatPath, type FieldPath, type Problems } from './problems.js';
import { checkName, hivemindName, readBoolean, readComposeName, readList, readMapping, readMemoryBytes, readText } from './read.js';
import { parseCidr } from '../state/ipam.js';
import { DEFAULT_NETWORK } from '../state/app-networks.js';

/** The volumes declared under top-level `volumes:`, by Hivemind name. */
export function readVolumeDeclarations(value: unknown, path: FieldPath, problems: Problems): Map<string, VolumeDeclaration> {
  const declarations = new Map<string, VolumeDeclaration>();
  const names = readDeclarations(value, path, problems, 'volume', (entry, entryPath, name) => {
    checkKeys(entry, entryPath, problems, topLevelVolumeKeys);
    const external = entry.external === undefined ? false : readBoolean(entry.external, [...entryPath, 'external'], problems) === true;
    const { sizeBytes, encrypted } = readVolumeExtension(entry['x-hivemind'], [...entryPath, 'x-hivemind'], problems);
    if (external && sizeBytes !== undefined) problems.warn([...entryPath, 'x-hivemind', 'size'], 'is ignored: an external volume exists already, with the size it was created with');
    if (external && encrypted) problems.warn([...entryPath, 'x-hivemind', 'encrypted'], 'is ignored: an external volume exists already, encrypted or not as it was created');
    declarations.set(name, { external, ...(sizeBytes !== undefined && !external ? { sizeBytes } : {}), ...(encrypted && !external ? { encrypted } : {}) });
  });
  for (const name of names) if (!declarations.has(name)) declarations.set(name, { external: false });
  return declarations;
}

/** A volume's `x-hivemind:` (`size`, `encrypted`): the size in bytes, if given, and whether it is encrypted at rest. */
function readVolumeExtension(value: unknown, path: FieldPath, problems: Problems): { sizeBytes?: number; encrypted: boolean } {
  if (value === undefined || value === null) return { encrypted: false };
  const mapping = readMapping(value, path, problems);
  if (mapping === undefined) return { encrypted: false };
  checkKeys(mapping, path, problems, volumeExtensionKeys);
  const encrypted = mapping.encrypted === undefined ? false : readBoolean(mapping.encrypted, [...path, 'encrypted'], problems) === true;
  if (mapping.size === undefined) return { encrypted };
  const sizeBytes = readMemoryBytes(mapping.size, [...path, 'size'], problems);
  if (sizeBytes === 0) {
    problems.error([...path, 'size'], 'must be more than 0, like "1G"');
    return { encrypted };
  }
  return { sizeBytes, encrypted };
}

/**
 * The names declared under top-level `secrets:` (Hivemind names). A value
 * given in the file goes to `context.secretValues`: `file:` from
 * `context.files` (the caller read it), `environment:` from the deploying
 * environment, `content:` as written.
 */
export function readSecretDeclarations(value: unknown, path: FieldPath, context: FileContext): Set<string> {
  const { problems } = context;
  return readDeclarations(value, path, problems, 'secret', (entry, entryPath, name) => {
    checkKeys(entry, entryPath, problems, topLevelSecretKeys);
    const external = entry.external === undefined ? false : readBoolean(entry.external, [...entryPath, 'external'], problems) === true;
    const given = ['file', 'environment', 'content'].filter((key) => entry[key] !== undefined && entry[key] !== null);
    if (given.length > 1 || (external && given.length > 0)) {
      problems.error(entryPath, `sets ${[...(external ? ['external'] : []), ...given].join(' and ')}; a secret is external, or has its value from one of file, environment or content`);
      return;
    }
    const key = given[0];
    if (key === undefined) return;
    const keyPath = [...entryPath, key];
    const text = readText(entry[key], keyPath, problems, { nonEmpty: key !== 'content' });
    if (text === undefined) return;
    let secret: string | undefined;
    if (key === 'content') secret = text;
    else if (key === 'environment') {
      secret = context.variable(text);
      if (secret === undefined) problems.error(keyPath, `names variable ${text}, which is not set where the file is read; set it, or store the secret first (hivemind secrets set ${name})`);
    } else {
      secret = Object.hasOwn(context.files, text) ? context.files[text] : undefined;
      if (secret === undefined) problems.error(keyPath, `names file ${JSON.stringify(text)}, which was not sent with the deploy; give a path relative to the app file's folder that exists`);
    }
    if (secret !== undefined) context.secretValues.set(name, secret);
  });
}

/**
 * The networks declared under top-level `networks:`, by key as written, with
 * `default` (Compose declares it for every file). `name:` names the tenant
 * network (an external one most of all); `ipam.config[0].subnet` is kept as
 * written (the deploy maps it to the network's block when it is one of the
 * pool's); keys without a Hivemind meaning (`driver`, `internal`, ...) are
 * named in warnings.
 */
export function readNetworkDeclarations(value: unknown, path: FieldPath, problems: Problems): Map<string, NetworkDeclaration> {
  const declarations = new Map<string, NetworkDeclaration>();
  const keys = readDeclarations(value, path, problems, 'network', (entry, entryPath, name, key) => {
    checkKeys(entry, entryPath, problems, topLevelNetworkKeys);
    const external = entry.external === undefined || entry.external === null ? false : readBoolean(entry.external, [...entryPath, 'external'], problems) === true;
    let own = name;
    if (entry.name !== undefined && entry.name !== null) {
      const text = readText(entry.name, [...entryPath, 'name'], problems, { nonEmpty: true, what: 'a network name' });
      if (text !== undefined && checkName(text, [...entryPath, 'name'], problems, 'network name')) own = text;
    }
    const subnet = entry.ipam === undefined || entry.ipam === null ? undefined : readIpamSubnet(entry.ipam, [...entryPath, 'ipam'], problems);
    if (external && subnet !== undefined) problems.warn([...entryPath, 'ipam'], 'is ignored: an external network exists already, with the block it was created with');
    declarations.set(key, { name: own, external, ...(subnet !== undefined && !external ? { subnet } : {}) });
  });
  for (const key of keys) if (!declarations.has(key)) declarations.set(key, { name: hivemindName(key) ?? key, external: false });
  if (!declarations.has(DEFAULT_NETWORK)) declarations.set(DEFAULT_NETWORK, { name: DEFAULT_NETWORK, external: false });
  return declarations;
}

/** A network's `ipam:`: the first `config` entry's `subnet` (an IPv4 CIDR), if any; other entries and keys are named in warnings. */
function readIpamSubnet(value: unknown, path: FieldPath, problems: Problems): { cidr: string; path: string } | undefined {
  const ipam = readMapping(value, path, problems);
  if (ipam === undefined) return undefined;
  checkKeys(ipam, path, problems, networkIpamKeys);
  if (ipam.config === undefined || ipam.config === null) return undefined;
  const configs = readList(ipam.config, [...path, 'config'], problems);
  if (configs === undefined || configs.length === 0) return undefined;
  if (configs.length > 1) problems.warn([...path, 'config'], `holds ${configs.length} entries; only the first is read (a Hivemind network has one block)`);
  const configPath = [...path, 'config', 0];
  const config = readMapping(configs[0], configPath, problems);
  if (config === undefined) return undefined;
  checkKeys(config, configPath, problems, networkIpamConfigKeys);
  if (config.subnet === undefined || config.subnet === null) return undefined;
  const subnetPath = [...configPath, 'subnet'];
  const text = readText(config.subnet, subnetPath, problems, { nonEmpty: true, noSpaces: true, what: 'an IPv4 subnet like 10.224.16.0/20' });
  if (text === undefined) return undefined;
  const parsed = parseCidr(text);
  if (!parsed.ok) {
    problems.error(subnetPath, `"${text}" is not an IPv4 subnet like 10.224.16.0/20: ${parsed.reason}`);
    return undefined;
  }
  return { cidr: text, path: formatPath(subnetPath) };
}

function readDeclarations(
  value: unknown,
  path: FieldPath,
  problems: Problems,
  what: string,
  readEntry: (entry: Record<string, unknown>, entryPath: FieldPath, name: string, key: string) => void,
): Set<string> {
  const names = new Set<string>();
  if (value === null) return names;
  const mapping = readMapping(value, path, problems);
  if (mapping === undefined) return names;
  for (const [name, entry] of Object.entries(mapping)) {
    const entryPath = [...path, name];
    const hivemind = readComposeName(name, entryPath, problems, { what, announce: what === 'secret' ? `; instances find it at /run/secrets/${name.replace(/_/g, '-')}` : '' });
    // Declared names are kept even when wrong, so a service using one is not also told it is undeclared.
    names.add(hivemind ?? name);
    if (entry === null) continue;
    const entryMapping = readMapping(entry, entryPath, problems);
    if (entryMapping !== undefined) readEntry(entryMapping, entryPath, hivemind ?? name, name);
  }
  return names;
}
