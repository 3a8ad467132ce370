/**
 * Compose's `configs`: top-level declarations (`file:`, `content:`,
 * `environment:`) and each service's `configs:` (a name, mounted at
 * `/<name>`, or `{ source, target, mode }`); and relative bind mounts
 * (`./nginx.conf:/etc/nginx/nginx.conf:ro`, `./certs:/etc/nginx/certs`),
 * which the CLI reads (`LocalSource`) and which become configs too. A config
 * travels in the app's spec (`AppSpec.configs`), so it is on every node,
 * and is mounted read-only. A folder beyond the limits (`configLimits`) is
 * refused with why and what to use instead: a named volume. Pure.
 */
import { LIMITS } from '../state/validate.js';
import type { ConfigFileSpec, ConfigMount } from '../state/types.js';
import { checkKeys, serviceConfigKeys, topLevelConfigKeys } from './compose-keys.js';
import type { FileContext, LocalSource } from './context.js';

export type { LocalSource } from './context.js';
import type { FieldPath } from './problems.js';
import { describe, isMapping, readAbsolutePath, readBoolean, readComposeName, readList, readMapping, readText } from './read.js';


/** How much of a folder the CLI reads before it stops: the limits of one app's configs. */
export const configLimits = { filesMax: LIMITS.configFilesMax, bytesMax: LIMITS.configBytesMax } as const;

/** The files of a declared config (top-level `configs:`), by Hivemind name; undefined after an error. */
export type ConfigDeclarations = Map<string, ConfigFileSpec[] | undefined>;

/** Reads the top-level `configs:`. */
export function readConfigDeclarations(value: unknown, path: FieldPath, context: FileContext): ConfigDeclarations {
  const { problems } = context;
  const declarations: ConfigDeclarations = new Map();
  if (value === null) return declarations;
  const mapping = readMapping(value, path, problems);
  if (mapping === undefined) return declarations;
  for (const [written, entry] of Object.entries(mapping)) {
    const entryPath = [...path, written];
    const name = readComposeName(written, entryPath, problems, { what: 'config' }) ?? written;
    declarations.set(name, undefined);
    const entryMapping = readMapping(entry, entryPath, problems);
    if (entryMapping === undefined) continue;
    checkKeys(entryMapping, entryPath, problems, topLevelConfigKeys);
    if (entryMapping.external !== undefined && readBoolean(entryMapping.external, [...entryPath, 'external'], problems) === true) {
      problems.error([...entryPath, 'external'], 'is not supported: Hivemind keeps a config with the apps that mount it; give its file: or content: here');
      continue;
    }
    const given = ['file', 'content', 'environment'].filter((key) => entryMapping[key] !== undefined && entryMapping[key] !== null);
    if (given.length !== 1) {
      problems.error(entryPath, given.length === 0 ? 'needs file: (a file beside the app file), content: or environment:' : `sets ${given.join(' and ')}; give one of them`);
      continue;
    }
    const key = given[0]!;
    const keyPath = [...entryPath, key];
    const text = readText(entryMapping[key], keyPath, problems, { nonEmpty: key !== 'content' });
    if (text === undefined) continue;
    if (key === 'content') declarations.set(name, [{ path: '', data: base64OfText(text) }]);
    else if (key === 'environment') {
      const variable = context.variable(text);
      if (variable === undefined) problems.error(keyPath, `names variable ${text}, which is not set where the file is read`);
      else declarations.set(name, [{ path: '', data: base64OfText(variable) }]);
    } else {
      const files = localFiles(text, keyPath, context, { folders: false });
      if (files !== undefined) declarations.set(name, files);
    }
  }
  return declarations;
}

/** A service's `configs:`, each declared at the top level; a short item mounts at `/<name>`, as in Compose. */
export function readServiceConfigs(value: unknown, path: FieldPath, context: FileContext): ConfigMount[] | undefined {
  const { problems } = context;
  const items = readList(value, path, problems);
  if (items === undefined) return undefined;
  const before = problems.errorCount;
  const mounts: ConfigMount[] = [];
  for (const [position, item] of items.entries()) {
    const itemPath = [...path, position];
    const mapping = isMapping(item) ? item : undefined;
    if (mapping !== undefined) checkKeys(mapping, itemPath, problems, serviceConfigKeys);
    const sourcePath = mapping === undefined ? itemPath : [...itemPath, 'source'];
    const written = readText(mapping === undefined ? item : mapping.source, sourcePath, problems, { nonEmpty: true, what: 'a config name, or a mapping with source: and target:' });
    if (written === undefined) continue;
    const name = readComposeName(written, sourcePath, problems, { what: 'config' });
    if (name === undefined) continue;
    if (!context.declaredConfigs.has(name)) {
      problems.error(sourcePath, `uses config "${written}", which is not declared; add it under the top-level configs: with file: or content:`);
      continue;
    }
    const files = context.declaredConfigs.get(name);
    const target = mapping?.target === undefined || mapping.target === null ? `/${written}` : readAbsolutePath(mapping.target, [...itemPath, 'target'], problems);
    const mode = mapping?.mode === undefined || mapping.mode === null ? undefined : readMode(mapping.mode, [...itemPath, 'mode'], context);
    if (files === undefined || target === undefined) continue;
    mounts.push({ source: name, target, files, ...(mode !== undefined ? { mode } : {}) });
  }
  return problems.errorCount === before ? mounts : undefined;
}

/**
 * A relative bind mount (`./prometheus.yml` or `./certs`) as a config
 * mounted at `target`; a writable one is mounted read-only all the same,
 * with a warning (changes in an instance would be lost).
 */
export function relativeBindConfig(source: string, target: string, readOnly: boolean, path: FieldPath, context: FileContext): ConfigMount | undefined {
  if (!readOnly) {
    const found = Object.hasOwn(context.localSources, source) ? context.localSources[source] : undefined;
    // A missing or empty folder mounted writable is where an app keeps its data (`./pgdata:/var/lib/postgresql/data`);
    // a missing path with an extension (`./nginx.conf`) is more likely a config file left behind, refused below as such.
    if (found === undefined ? !/[^./]\.[A-Za-z0-9]{1,8}$/.test(source) : found.kind === 'folder' && found.files.length === 0) {
      context.problems.error(path, dataFolderRefusal(source, target, found === undefined ? 'which does not exist beside the app file' : 'an empty folder'));
      return undefined;
    }
  }
  const files = localFiles(source, path, context, { folders: true });
  if (files === undefined) return undefined;
  if (!readOnly) {
    context.problems.warn(path, `is mounted read-only: ${source} is sent with the deploy as a config, so every node has it; write data to a named volume`);
  }
  return { source, target, files };
}

/**
 * Why a writable relative bind mount of a missing or empty folder is refused:
 * it is a data folder, and data goes in a named volume (named here after the
 * folder, when its name is one a volume may have).
 */
function dataFolderRefusal(source: string, target: string, what: string): string {
  const folderName = source.replace(/\/+$/, '').split('/').pop()?.toLowerCase() ?? '';
  const name = /^[a-z0-9][a-z0-9_-]{0,62}$/.test(folderName) ? folderName : 'data';
  return (
    `mounts ${JSON.stringify(source)} writable, ${what}: a folder for the app's data, which a relative bind mount cannot hold ` +
    '(it is sent with the deploy as read-only configuration, the same on every node, and what the app writes would be lost). ' +
    `Use a named volume: mount "${name}:${target}" and declare it at the top level (volumes: { ${name}: { x-hivemind: { size: 1G } } }); ` +
    'it lives on one node, the app is placed there, and it keeps what the app writes'
  );
}

/** The files of local path `source` as the caller read it (`context.localSources`), or undefined after an error. */
function localFiles(source: string, path: FieldPath, context: FileContext, options: { folders: boolean }): ConfigFileSpec[] | undefined {
  const { problems } = context;
  const found = Object.hasOwn(context.localSources, source) ? context.localSources[source] : undefined;
  if (found === undefined) {
    problems.error(path, `names ${JSON.stringify(source)}, which was not sent with the deploy; give a path relative to the app file's folder that exists`);
    return undefined;
  }
  if (found.kind === 'file') return [{ path: '', data: found.data }];
  if (!options.folders) {
    problems.error(path, `names ${JSON.stringify(source)}, a folder; a config is one file (mount a folder with a relative bind mount under volumes:)`);
    return undefined;
  }
  if (found.kind === 'too-large') {
    problems.error(
      path,
      `mounts folder ${JSON.stringify(source)}, which holds ${found.files > configLimits.filesMax ? `more than ${configLimits.filesMax} files` : `more than ${configLimits.bytesMax} bytes`}: ` +
        'a relative bind mount is sent with the deploy as configuration (at most ' +
        `${configLimits.filesMax} files and ${configLimits.bytesMax / 1024 / 1024} MiB); for data, use a named volume: mount "data:${'/path'}", declare it under the top-level volumes:, and fill it from the app (or hivemind volumes import)`,
    );
    return undefined;
  }
  if (found.files.length === 0) {
    problems.error(path, `mounts folder ${JSON.stringify(source)}, which is empty; put the files in it, or leave the mount out`);
    return undefined;
  }
  return found.files;
}

/** A file mode written as octal digits (`0440`, `"0440"`) or a YAML number (`288`, what `0440` is in YAML 1.1). */
function readMode(value: unknown, path: FieldPath, context: FileContext): number | undefined {
  const written = context.numberSource(path) ?? (typeof value === 'string' ? value : undefined);
  if (written !== undefined && /^0o?[0-7]{1,4}$/.test(written)) return Number.parseInt(written.replace(/^0o?/, '') || '0', 8) & 0o777;
  if (typeof value === 'number' && Number.isInteger(value) && value >= 0 && value <= 0o777) return value;
  context.problems.error(path, `must be a file mode like 0440, got ${describe(value)}`);
  return undefined;
}

/** Whether a mount source is a path relative to the app file's folder (`.`, `./x`, `../x`), which the CLI sends with the deploy. */
export function isRelativeHostPath(source: string): boolean {
  return source === '.' || source === '..' || source.startsWith('./') || source.startsWith('../');
}

/** UTF-8 text as base64, without Node's Buffer (this code is pure). */
export function base64OfText(text: string): string {
  const bytes = new TextEncoder().encode(text);
  let binary = '';
  for (let start = 0; start < bytes.length; start += 0x8000) binary += String.fromCharCode(...bytes.subarray(start, start + 0x8000));
  return btoa(binary);
}
