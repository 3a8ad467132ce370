/**
 * The top-level `volumes:`, `secrets:` and `networks:` of an app file. They
 * declare names the services use. A deploy creates the declared volumes its
 * services mount that do not exist yet (sized by `x-hivemind.size`), unless
 * `external: true`; secrets are never created from the file (the secret API
 * stores them), so only their names are kept. Pure.
 */
import { checkKeys, topLevelSecretKeys, topLevelVolumeKeys, volumeExtensionKeys } from './compose-keys.js';
import type { VolumeDeclaration } from './context.js';
import type { FieldPath, Problems } from './problems.js';
import { checkName, isMapping, readBoolean, readMapping, readMemoryBytes } from './read.js';

/** The volumes declared under top-level `volumes:`, by name. */
export function readVolumeDeclarations(value: unknown, path: FieldPath, problems: Problems): Map<string, VolumeDeclaration> {
  const declarations = new Map<string, VolumeDeclaration>();
  const names = readDeclarations(value, path, problems, 'volume', (entry, entryPath, name) => {
    checkKeys(entry, entryPath, problems, topLevelVolumeKeys);
    const external = entry.external === undefined ? false : readBoolean(entry.external, [...entryPath, 'external'], problems) === true;
    const sizeBytes = readVolumeExtension(entry['x-hivemind'], [...entryPath, 'x-hivemind'], problems);
    if (external && sizeBytes !== undefined) problems.warn([...entryPath, 'x-hivemind', 'size'], 'is ignored: an external volume exists already, with the size it was created with');
    declarations.set(name, { external, ...(sizeBytes !== undefined && !external ? { sizeBytes } : {}) });
  });
  for (const name of names) if (!declarations.has(name)) declarations.set(name, { external: false });
  return declarations;
}

/** A volume's `x-hivemind:` (`size`); the size in bytes, if given. */
function readVolumeExtension(value: unknown, path: FieldPath, problems: Problems): number | undefined {
  if (value === undefined || value === null) return undefined;
  const mapping = readMapping(value, path, problems);
  if (mapping === undefined) return undefined;
  checkKeys(mapping, path, problems, volumeExtensionKeys);
  if (mapping.size === undefined) return undefined;
  const sizeBytes = readMemoryBytes(mapping.size, [...path, 'size'], problems);
  if (sizeBytes === 0) {
    problems.error([...path, 'size'], 'must be more than 0, like "1G"');
    return undefined;
  }
  return sizeBytes;
}

/** The names declared under top-level `secrets:`; a value given in the file is not read (the cluster holds secret values). */
export function readSecretDeclarations(value: unknown, path: FieldPath, problems: Problems): Set<string> {
  return readDeclarations(value, path, problems, 'secret', (entry, entryPath, name) => {
    checkKeys(entry, entryPath, problems, topLevelSecretKeys);
    if (entry.external !== undefined) readBoolean(entry.external, [...entryPath, 'external'], problems);
    for (const key of ['file', 'environment', 'content']) {
      if (entry[key] === undefined) continue;
      problems.warn([...entryPath, key], `is ignored: Hivemind keeps secret values in the cluster, never in the app file; store it first (PUT /v1/secrets/<tenant>/${name})`);
    }
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
    // Declared names are kept even when wrong, so a service using one is not also told it is undeclared.
    names.add(name);
    checkName(name, entryPath, problems, what);
    if (entry === null) continue;
    const entryMapping = readMapping(entry, entryPath, problems);
    if (entryMapping !== undefined) readEntry(entryMapping, entryPath, name);
  }
  return names;
}
