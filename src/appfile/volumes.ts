/**
 * A service's `volumes:` (short `"data:/var/lib/data:ro"` and long syntax)
 * and `secrets:` (names, or `{ source }`). Named volumes and secrets must be
 * declared at the top level, as Compose requires. The declared volumes the
 * services mount are created by the deploy when missing (see
 * `volumeCreations`). Relative host paths (`./data:/data`) are refused: the
 * app runs on whichever node the scheduler picks, so a named volume is the
 * way to keep data. Pure.
 */
import type { AppSpec, Command, VolumeMount } from '../state/types.js';
import { formatBytes } from '../state/errors.js';
import { LIMITS } from '../state/validate.js';
import { checkKeys, serviceSecretKeys, volumeMountKeys } from './compose-keys.js';
import type { FileContext, VolumeDeclaration } from './context.js';
import type { FieldPath } from './problems.js';
import { describe, isMapping, readAbsolutePath, readBoolean, readChoice, readComposeName, readList, readText } from './read.js';

const mountForms = '"data:/var/lib/data", "/host/path:/path:ro"';

/** The mounts of a service; each target once. */
export function readVolumeMounts(value: unknown, path: FieldPath, context: FileContext): VolumeMount[] | undefined {
  const { problems } = context;
  const items = readList(value, path, problems);
  if (items === undefined) return undefined;
  const before = problems.errorCount;
  const mounts: VolumeMount[] = [];
  for (const [position, item] of items.entries()) {
    const itemPath = [...path, position];
    const mount = isMapping(item) ? readLongMount(item, itemPath, context) : readShortMount(item, itemPath, context);
    if (mount === undefined) continue;
    if (mounts.some((other) => other.target === mount.target)) problems.error(itemPath, `mounts ${mount.target} a second time; mount each path once`);
    mounts.push(mount);
  }
  if (mounts.length > LIMITS.volumesMax) problems.error(path, `has ${mounts.length} mounts; at most ${LIMITS.volumesMax} are allowed`);
  return problems.errorCount === before ? mounts : undefined;
}

function readShortMount(item: unknown, path: FieldPath, context: FileContext): VolumeMount | undefined {
  const { problems } = context;
  if (typeof item !== 'string') {
    problems.error(path, `must be a mount like ${mountForms}, or a mapping with source: and target:, got ${describe(item)}`);
    return undefined;
  }
  const parts = item.split(':');
  if (parts.length === 1) {
    problems.error(path, `is an anonymous volume, which Hivemind does not support; name it, like "data:${item}", and declare data under the top-level volumes:`);
    return undefined;
  }
  if (parts.length > 3) {
    problems.error(path, `must be a mount like ${mountForms}, got ${describe(item)}`);
    return undefined;
  }
  const [written = '', target = '', options] = parts;
  const before = problems.errorCount;
  const source = checkSource(written, path, context) ?? written;
  if (!target.startsWith('/')) problems.error(path, `must mount at an absolute path inside the instance, like ${mountForms}, got ${describe(item)}`);
  let readOnly = false;
  for (const option of options === undefined ? [] : options.split(',')) {
    if (option === 'ro' || option === 'rw') readOnly = option === 'ro';
    else problems.error(path, `has mount option ${JSON.stringify(option)}, which Hivemind does not support; use "ro" or "rw"`);
  }
  return problems.errorCount === before ? { source, target, readOnly } : undefined;
}

function readLongMount(item: Record<string, unknown>, path: FieldPath, context: FileContext): VolumeMount | undefined {
  const { problems } = context;
  const before = problems.errorCount;
  checkKeys(item, path, problems, volumeMountKeys);
  const type = item.type === undefined ? 'volume' : readChoice(item.type, [...path, 'type'], problems, ['volume', 'bind', 'tmpfs', 'npipe', 'cluster', 'image']);
  if (type !== undefined && type !== 'volume' && type !== 'bind') {
    problems.error([...path, 'type'], `"${type}" is not supported by Hivemind; use "volume" or "bind"`);
    return undefined;
  }
  let source: string | undefined;
  if (item.source === undefined || item.source === null) {
    problems.error([...path, 'source'], `is required: a named volume${type === 'bind' ? '' : ' (Hivemind has no anonymous volumes)'} or an absolute host path`);
  } else {
    source = readText(item.source, [...path, 'source'], problems, { nonEmpty: true });
    if (source === undefined) {
      // Reported by readText.
    } else if (type === 'bind' && !source.startsWith('/')) {
      problems.error([...path, 'source'], `must be an absolute host path for a bind mount, got ${describe(source)}`);
    } else if (type === 'volume' && source.startsWith('/')) {
      problems.error([...path, 'source'], 'must be a volume name for type "volume"; use type "bind" for a host path');
    } else {
      source = checkSource(source, [...path, 'source'], context) ?? source;
    }
  }
  const targetPath = [...path, 'target'];
  let target: string | undefined;
  if (item.target === undefined || item.target === null) problems.error(targetPath, 'is required: the path inside the instance');
  else target = readAbsolutePath(item.target, targetPath, problems);
  const readOnly = item.read_only === undefined ? false : readBoolean(item.read_only, [...path, 'read_only'], problems);
  if (problems.errorCount !== before || source === undefined || target === undefined || readOnly === undefined) return undefined;
  return { source, target, readOnly };
}

/** A mount source: an absolute host path, or a declared named volume; the source as the spec holds it (a volume's Hivemind name), or undefined after an error. */
function checkSource(source: string, path: FieldPath, context: FileContext): string | undefined {
  const { problems } = context;
  if (source.startsWith('/')) return source;
  if (source.startsWith('.') || source.startsWith('~')) {
    problems.error(
      path,
      `mounts host path ${JSON.stringify(source)}, which is relative to the machine that deploys; Hivemind runs the app on a node of the cluster, where that folder is not. ` +
        'Use a named volume instead: mount "data:/path", and declare it at the top level (volumes: { data: { x-hivemind: { size: 1G } } }); ' +
        'the deploy creates it, it keeps its data on one node, and the app runs there. ' +
        'For a configuration file, declare it under the top-level secrets: with file: (the deploy sends it) and read it at /run/secrets/NAME',
    );
    return undefined;
  }
  const name = readComposeName(source, path, problems, { what: 'volume' });
  if (name === undefined) return undefined;
  if (!context.declaredVolumes.has(name)) {
    problems.error(path, `uses volume "${source}", which is not declared; add it under the top-level volumes:`);
    return undefined;
  }
  return name;
}

/** A service's `secrets:`, mounted at /run/secrets/NAME; each must be declared at the top level. */
export function readServiceSecrets(value: unknown, path: FieldPath, context: FileContext): string[] | undefined {
  const { problems } = context;
  const items = readList(value, path, problems);
  if (items === undefined) return undefined;
  const before = problems.errorCount;
  const names: string[] = [];
  for (const [position, item] of items.entries()) {
    const itemPath = [...path, position];
    const written = isMapping(item) ? readLongSecret(item, itemPath, context) : readText(item, itemPath, problems, { what: 'a secret name or a mapping with source:' });
    if (written === undefined) continue;
    const namePath = isMapping(item) ? [...itemPath, 'source'] : itemPath;
    const name = readComposeName(written, namePath, problems, { what: 'secret' });
    if (name === undefined) continue;
    if (!context.declaredSecrets.has(name)) problems.error(namePath, `uses secret "${written}", which is not declared; add it under the top-level secrets:`);
    else if (names.includes(name)) problems.error(namePath, `names secret "${name}" twice; list each once`);
    else names.push(name);
  }
  return problems.errorCount === before ? names : undefined;
}

function readLongSecret(item: Record<string, unknown>, path: FieldPath, context: FileContext): string | undefined {
  const { problems } = context;
  checkKeys(item, path, problems, serviceSecretKeys);
  if (item.source === undefined) {
    problems.error([...path, 'source'], "is required: the secret's name");
    return undefined;
  }
  const source = readText(item.source, [...path, 'source'], problems, { nonEmpty: true });
  if (source !== undefined && item.target !== undefined && item.target !== source && item.target !== `/run/secrets/${source}`) {
    problems.error([...path, 'target'], `must be "${source}" or left out: Hivemind mounts each secret at /run/secrets/${source}`);
    return undefined;
  }
  return source;
}

/** The size of a volume a deploy creates when its declaration gives none (`x-hivemind.size`): 1 GiB. */
export const VOLUME_SIZE_BYTES_DEFAULT = 1024 ** 3;

/** A declared volume that a service of the file mounts, in the tenant of that service. */
export interface DeclaredVolume {
  tenant: string;
  name: string;
  /** The size to create it with (ignored when external). */
  sizeBytes: number;
  /** It must exist already. */
  external: boolean;
  /** The deploy creates it encrypted at rest (`x-hivemind.encrypted`). */
  encrypted: boolean;
}

/** The declared volumes the apps mount, once per tenant and name, in the order first mounted. Declared but unused volumes are left out. */
export function mountedDeclarations(apps: readonly AppSpec[], declared: ReadonlyMap<string, VolumeDeclaration>): DeclaredVolume[] {
  const found = new Map<string, DeclaredVolume>();
  for (const app of apps) {
    for (const mount of app.volumes) {
      const declaration = declared.get(mount.source);
      const key = `${app.tenant}/${mount.source}`;
      if (declaration === undefined || found.has(key)) continue;
      found.set(key, { tenant: app.tenant, name: mount.source, sizeBytes: declaration.sizeBytes ?? VOLUME_SIZE_BYTES_DEFAULT, external: declaration.external, encrypted: declaration.encrypted === true });
    }
  }
  return [...found.values()];
}

/**
 * The `volume.create` commands a deploy proposes before its apps: one per
 * declared volume that does not exist (`exists` reads the cluster state).
 * An external volume that does not exist is the deploy's error, with what
 * to run.
 */
export function volumeCreations(volumes: readonly DeclaredVolume[], exists: (tenant: string, name: string) => boolean): { ok: true; commands: Command[] } | { ok: false; message: string } {
  const commands: Command[] = [];
  for (const volume of volumes) {
    if (exists(volume.tenant, volume.name)) continue;
    if (volume.external) {
      const tenantFlag = volume.tenant === 'default' ? '' : ` --tenant ${volume.tenant}`;
      return { ok: false, message: `volume "${volume.name}" is declared external: true, but tenant "${volume.tenant}" has no such volume; create it first (hivemind volumes create ${volume.name} --size SIZE${tenantFlag}), or drop external: to let the deploy create it (size ${formatBytes(VOLUME_SIZE_BYTES_DEFAULT)} unless x-hivemind.size says otherwise)` };
    }
    commands.push({ type: 'volume.create', tenant: volume.tenant, name: volume.name, sizeBytes: volume.sizeBytes });
  }
  return { ok: true, commands };
}
