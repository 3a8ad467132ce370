/**
 * Reads an app file: YAML in the service subset of the Compose file format,
 * with Hivemind's own keys under `x-hivemind`. Returns one `AppSpec` per
 * service, or every problem found, each naming the file, the field's path
 * and what is wrong:
 *
 *     app.yaml: services.web.deploy.replicas: must be a whole number >= 0, got "three"
 *
 * Keys Hivemind does not support are reported by name, never dropped in
 * silence. Pure: the caller reads the file and passes its text.
 */
import { LineCounter, parseDocument, type Document } from 'yaml';
import { DEFAULT_TENANT, NAME_PATTERN, type AppSpec } from '../state/types.js';
import { utf8ByteLength } from '../state/schema.js';
import { validateCommand } from '../state/validate.js';
import { checkKeys, topLevelKeys } from './compose-keys.js';
import type { FileContext, VolumeDeclaration } from './context.js';
import { readSecretDeclarations, readVolumeDeclarations, warnNetworks } from './declarations.js';
import type { AppFileError } from './errors.js';
import { readFileExtension } from './extension.js';
import { interpolate } from './interpolate.js';
import { locator, numberSourceFinder } from './locate.js';
import { Problems, type FieldPath } from './problems.js';
import { describe, isMapping, NAME_RULE, readMapping, readText, setOwn } from './read.js';
import { readService } from './service.js';
import { mountedDeclarations, type DeclaredVolume } from './volumes.js';

/** The largest app file read, in UTF-8 bytes (well under the API's 4 MiB body). */
export const APP_FILE_BYTES_MAX = 1024 * 1024;

/** The most services one file may hold. */
export const SERVICES_MAX = 1000;

/** Mappings and lists nested deeper than this are refused (Compose files are a handful deep). */
export const NESTING_DEPTH_MAX = 64;

/** How many YAML syntax errors are reported. */
const YAML_ERRORS_SHOWN_MAX = 10;

/** How many aliases (`*name`) a file may expand; guards against alias bombs. */
const ALIAS_COUNT_MAX = 1000;

export interface ParseAppFileOptions {
  /**
   * The tenant of services when neither the service nor the file names one
   * in `x-hivemind.tenant`; default `DEFAULT_TENANT`.
   */
  defaultTenant?: string;
  /**
   * The variables of the deploying environment, for `${VAR}` interpolation
   * and for `environment:` entries without a value. Default: none, so every
   * `${VAR}` without a default is empty (with a warning), as in Compose.
   */
  variables?: Readonly<Record<string, string | undefined>>;
}

/** The apps of a file in the order written, or its errors (then no app is deployed). Warnings come either way. */
export type ParseAppFileResult = { ok: true; apps: AppSpec[]; volumes: DeclaredVolume[]; warnings: string[] } | { ok: false; errors: AppFileError[]; warnings: string[] };

/** Parses the app file `text`, named `fileName` in messages. Never throws on any text. */
export function parseAppFile(text: string, fileName: string, options: ParseAppFileOptions = {}): ParseAppFileResult {
  const loaded = loadYaml(text, fileName);
  if (!loaded.ok) return failure(loaded.problems);
  const { document, problems } = loaded;
  const variables = options.variables ?? {};
  const lookup = (name: string): string | undefined => (Object.hasOwn(variables, name) ? variables[name] : undefined);
  const root = interpolateTree(loaded.data, [], lookup, problems, new Set());
  const context: FileContext = {
    problems,
    numberSource: numberSourceFinder(document),
    variable: lookup,
    declaredVolumes: new Map(),
    declaredSecrets: new Set(),
  };
  const declaredVolumes = new Map<string, VolumeDeclaration>();
  const apps = readRoot(root, context, options, declaredVolumes);
  if (problems.errorCount > 0) return failure(problems);
  return { ok: true, apps, volumes: mountedDeclarations(apps, declaredVolumes), warnings: problems.warnings() };
}

function fillMap<K, V>(target: Map<K, V>, source: ReadonlyMap<K, V>): Map<K, V> {
  for (const [key, value] of source) target.set(key, value);
  return target;
}

function failure(problems: Problems): ParseAppFileResult {
  return { ok: false, errors: problems.errors(), warnings: problems.warnings() };
}

type Loaded = { ok: true; document: Document; data: unknown; problems: Problems } | { ok: false; problems: Problems };

function loadYaml(text: string, fileName: string): Loaded {
  // A string longer than the limit in UTF-16 units is longer in UTF-8 bytes too; skip counting it.
  if (text.length > APP_FILE_BYTES_MAX || utf8ByteLength(text) > APP_FILE_BYTES_MAX) {
    const problems = new Problems(fileName);
    problems.error([], `is larger than ${APP_FILE_BYTES_MAX} bytes (1 MiB), the most an app file may be`);
    return { ok: false, problems };
  }
  const lineCounter = new LineCounter();
  let document: Document;
  try {
    document = parseDocument(text, { lineCounter, prettyErrors: false, merge: true, uniqueKeys: true, logLevel: 'silent' });
  } catch (error) {
    // The parser recurses per nesting level; thousands of levels exhaust the stack.
    const problems = new Problems(fileName);
    problems.error([], `cannot be read as YAML: ${error instanceof Error ? error.message : String(error)}`);
    return { ok: false, problems };
  }
  const problems = new Problems(fileName, locator(document, lineCounter));
  const position = (offset: number): { line: number; column: number } => {
    const { line, col } = lineCounter.linePos(offset);
    return { line, column: col };
  };
  // After the first few, syntax errors are mostly echoes of the first ones.
  const shown = new Set<string>();
  for (const error of document.errors.slice(0, YAML_ERRORS_SHOWN_MAX)) {
    const message = /call stack/i.test(error.message) ? `nests mappings or lists too deeply to read (at most ${NESTING_DEPTH_MAX} levels)` : error.message;
    if (shown.has(message)) continue;
    shown.add(message);
    const place = position(error.pos[0]);
    problems.error([], `YAML syntax error at line ${place.line}, column ${place.column}: ${message}`, place);
  }
  if (document.errors.length > 0) return { ok: false, problems };
  for (const warning of document.warnings) {
    const place = position(warning.pos[0]);
    problems.warn([], `line ${place.line}, column ${place.column}: ${warning.message}`);
  }
  try {
    return { ok: true, document, data: document.toJS({ maxAliasCount: ALIAS_COUNT_MAX, logLevel: 'silent' }), problems };
  } catch (error) {
    // toJS throws for alias expansion beyond the limit, and (like parsing) on nesting deep enough to exhaust the stack.
    problems.error([], `cannot be read: ${error instanceof Error ? error.message : String(error)}`);
    return { ok: false, problems };
  }
}

/**
 * A copy of `value` with `${VAR}` interpolated in every string (keys stay as
 * written, as in Compose). A variable that is not set warns once; `warned`
 * holds what was reported already.
 */
function interpolateTree(value: unknown, path: FieldPath, lookup: (name: string) => string | undefined, problems: Problems, warned: Set<string>): unknown {
  if (path.length > NESTING_DEPTH_MAX) {
    // Reported once, at the top-level key it is under; the path itself would fill a screen.
    const key = `nesting:${String(path[0])}`;
    if (!warned.has(key)) problems.error(path.slice(0, 1), `holds values nested more than ${NESTING_DEPTH_MAX} levels deep`);
    warned.add(key);
    return null;
  }
  if (typeof value === 'string') {
    const result = interpolate(value, lookup);
    if (!result.ok) {
      problems.errorAndSettle(path, result.problem);
      return value;
    }
    for (const name of result.unset) {
      if (warned.has(`variable:${name}`)) continue;
      warned.add(`variable:${name}`);
      problems.warn(path, `uses variable ${name}, which is not set; it reads as an empty string`);
    }
    return result.value;
  }
  if (Array.isArray(value)) return value.map((item, position) => interpolateTree(item, [...path, position], lookup, problems, warned));
  if (isMapping(value)) {
    const copy: Record<string, unknown> = {};
    for (const [key, item] of Object.entries(value)) setOwn(copy, key, interpolateTree(item, [...path, key], lookup, problems, warned));
    return copy;
  }
  return value;
}

/** `declaredVolumes` receives the file's top-level volume declarations. */
function readRoot(root: unknown, context: FileContext, options: ParseAppFileOptions, declaredVolumes: Map<string, VolumeDeclaration>): AppSpec[] {
  const { problems } = context;
  if (root === null || root === undefined) {
    problems.error([], 'is empty; an app file lists its apps under services:');
    return [];
  }
  if (!isMapping(root)) {
    problems.error([], `must be a mapping with services: at the top, got ${describe(root)}`);
    return [];
  }
  checkKeys(root, [], problems, topLevelKeys);
  // `version` is obsolete in Compose and ignored without a word; `name` (the Compose project) has no use here.
  if (root.name !== undefined && root.name !== null) readText(root.name, ['name'], problems);
  const extension = root['x-hivemind'] === undefined || root['x-hivemind'] === null ? {} : readFileExtension(root['x-hivemind'], ['x-hivemind'], problems);
  let tenant = extension.tenant ?? options.defaultTenant ?? DEFAULT_TENANT;
  if (!NAME_PATTERN.test(tenant)) {
    problems.error([], `tenant ${JSON.stringify(tenant)}, given with the deploy, must be a DNS label: ${NAME_RULE}`);
    // Read the services anyway, for their own errors, without repeating this one for each.
    tenant = DEFAULT_TENANT;
  }
  const fileContext: FileContext = {
    ...context,
    declaredVolumes: root.volumes === undefined ? declaredVolumes : fillMap(declaredVolumes, readVolumeDeclarations(root.volumes, ['volumes'], problems)),
    declaredSecrets: root.secrets === undefined ? new Set() : readSecretDeclarations(root.secrets, ['secrets'], problems),
  };
  if (root.networks !== undefined) warnNetworks(root.networks, ['networks'], problems);
  if (root.services === undefined || root.services === null) {
    problems.error(['services'], 'is required: list the apps to deploy under services:');
    return [];
  }
  const services = readMapping(root.services, ['services'], problems);
  if (services === undefined) return [];
  const names = Object.keys(services);
  if (names.length === 0) problems.error(['services'], 'must list at least one service');
  if (names.length > SERVICES_MAX) {
    problems.error(['services'], `has ${names.length} services; a file may hold at most ${SERVICES_MAX}`);
    return [];
  }
  const apps: AppSpec[] = [];
  for (const name of names) {
    const spec = readService(name, services[name], tenant, fileContext);
    if (spec !== undefined && passesStateChecks(spec, problems)) apps.push(spec);
  }
  return apps;
}

/**
 * Runs the state machine's own checks on a spec this parser built. The
 * parser checks everything in the file's terms first; this catches the rules
 * only the state machine has (sizes, printable text), reported at the
 * Compose path of the field where there is one.
 */
function passesStateChecks(spec: AppSpec, problems: Problems): boolean {
  const validated = validateCommand({ type: 'app.deploy', spec });
  if (validated.ok) return true;
  const { field, message } = validated.error;
  const servicePath: FieldPath = ['services', spec.name];
  const composePath = field === undefined ? undefined : composePathOf(field);
  if (composePath === undefined) {
    problems.error(servicePath, `is not a valid app: ${message.replace(/^invalid app\.deploy command: /, '')}`);
  } else {
    // The state machine's message is "<field> <text>"; keep the text.
    const text = message.replace(/^invalid app\.deploy command: /, '').slice(field === undefined ? 0 : field.length).trim();
    problems.error([...servicePath, ...composePath], text);
  }
  return false;
}

/** Where an AppSpec field was written in a Compose service, for the fields that map one to one. */
const composeKeyOfSpecField: Readonly<Record<string, FieldPath>> = {
  image: ['image'],
  command: ['command'],
  entrypoint: ['entrypoint'],
  workingDir: ['working_dir'],
  user: ['user'],
  environment: ['environment'],
  labels: ['labels'],
  ports: ['ports'],
  volumes: ['volumes'],
  healthcheck: ['healthcheck'],
  constraints: ['deploy', 'placement', 'constraints'],
};

/**
 * `spec.command[2]` → `command[2]`, `spec.environment.KEY` → `environment.KEY`;
 * `undefined` for fields that do not map one to one. Fields inside a port or
 * a mount stop at the item (the short syntax has no sub-fields).
 */
function composePathOf(field: string): FieldPath | undefined {
  const match = /^spec\.([A-Za-z]+)(?:\[(\d+)\])?(?:\.(.+))?$/.exec(field);
  if (match === null) return undefined;
  const [, specField = '', index, rest] = match;
  const prefix = composeKeyOfSpecField[specField];
  if (prefix === undefined) return undefined;
  const path: (string | number)[] = [...prefix];
  if (index !== undefined) path.push(Number(index));
  if (rest === undefined) return path;
  if (specField === 'environment' || specField === 'labels') return [...path, rest];
  const test = /^test(?:\[(\d+)\])?$/.exec(rest);
  if (specField === 'healthcheck' && test !== null) return test[1] === undefined ? [...path, 'test'] : [...path, 'test', Number(test[1])];
  return path;
}
