/**
 * The top-level `volumes:`, `secrets:` and `networks:` of an app file. They
 * declare names the services use; Hivemind creates neither volumes nor
 * secrets from the file (the volume and secret APIs do), so only the names
 * are kept. Pure.
 */
import { checkKeys, topLevelSecretKeys, topLevelVolumeKeys } from './compose-keys.js';
import type { FieldPath, Problems } from './problems.js';
import { checkName, isMapping, readBoolean, readMapping } from './read.js';

/** The names declared under top-level `volumes:`. */
export function readVolumeDeclarations(value: unknown, path: FieldPath, problems: Problems): Set<string> {
  return readDeclarations(value, path, problems, 'volume', (entry, entryPath) => {
    checkKeys(entry, entryPath, problems, topLevelVolumeKeys);
    if (entry.external !== undefined) readBoolean(entry.external, [...entryPath, 'external'], problems);
  });
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
