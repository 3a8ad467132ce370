/**
 * The top-level `volumes:`, `secrets:` and `networks:` of an app file. They
 * declare names the services use. A deploy creates the declared volumes its
 * services mount that do not exist yet (sized by `x-hivemind.size`), unless
 * `external: true`; a secret with a value in the file (`file:`, read by the
 * caller; `environment:`; `content:`) is created by the deploy when its
 * tenant lacks it, else it must exist. Names with underscores become names
 * with hyphens (`db_password` is `db-password`), with a warning. Pure.
 */
import { checkKeys, topLevelSecretKeys, topLevelVolumeKeys, volumeExtensionKeys } from './compose-keys.js';
import type { FileContext, VolumeDeclaration } from './context.js';
import type { FieldPath, Problems } from './problems.js';
import { isMapping, readBoolean, readComposeName, readMapping, readMemoryBytes, readText } from './read.js';

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

/** Top-level `networks:`: a warning when it declares any. */
export function warnNetworks(value: unknown, path: FieldPath, problems: Problems): void {
  if (value === null || (isMapping(value) && Object.keys(value).length === 0)) return;
  problems.warn(path, "is ignored: Hivemind gives each tenant one network, and every app of the tenant is on it");
}

function readDeclarations(
  value: unknown,
  path: FieldPath,
  problems: Problems,
  what: string,
  readEntry: (entry: Record<string, unknown>, entryPath: FieldPath, name: string) => void,
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
    if (entryMapping !== undefined) readEntry(entryMapping, entryPath, hivemind ?? name);
  }
  return names;
}
