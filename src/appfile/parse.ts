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
import { isRelativeHostPath, readConfigDeclarations, type LocalSource } from './configs.js';
export { isRelativeHostPath };
import { LineCounter, parseDocument, type Document } from 'yaml';
import { DEFAULT_TENANT, NAME_PATTERN, type AppSpec } from '../state/types.js';
import { utf8ByteLength } from '../state/schema.js';
import { validateCommand } from '../state/validate.js';
import { checkKeys, topLevelKeys } from './compose-keys.js';
import type { FileContext, NetworkDeclaration, VolumeDeclaration } from './context.js';
import { DEFAULT_NETWORK } from '../state/app-networks.js';
import { readNetworkDeclarations, readSecretDeclarations, readVolumeDeclarations } from './declarations.js';
import type { AppFileError } from './errors.js';
import { readFileExtension } from './extension.js';
import { interpolate } from './interpolate.js';
import { documentsLocator, documentsNumberSource, locator } from './locate.js';
import { applySets, mergeTrees } from './merge.js';
import { Problems, type FieldPath, type Locate } from './problems.js';
import { asNameLabel, describe, isMapping, NAME_RULE, readList, readMapping, readText, setOwn } from './read.js';
import { readService } from './service.js';
import { mountedDeclarations, type DeclaredVolume } from './volumes.js';
import { APP_FILES_MAX } from './limits.js';

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
  /** The project named with the deploy (`-p`); wins over the file's `name:`. Must be a DNS label. */
  project?: string;
  /** The project when neither `-p` nor `name:` gives one: the app file's folder (made a DNS label here). */
  projectFallback?: string;
  /**
   * The local files the app files refer to by relative path (`env_file`,
   * top-level `secrets.x.file`), keyed by the path as written; the caller
   * reads them (`referencedFiles` lists them). A file missing here is an error.
   */
  files?: Readonly<Record<string, string>>;
  /**
   * The local files and folders of configs (`configs.x.file`) and relative
   * bind mounts (`./nginx.conf:/etc/nginx/nginx.conf`), keyed by the path as
   * written; the caller reads them (`referencedLocalSources` lists them).
   */
  localSources?: Readonly<Record<string, LocalSource>>;
  /** `--set SERVICE.KEY=VALUE` overrides, applied in order after the files merge. */
  sets?: readonly string[];
  /** Compose profiles enabled (`--profile`): a service with `profiles:` deploys only when one of them is. */
  profiles?: readonly string[];
}

/** One app file's name (for messages) and text. */
export interface AppFileSource {
  name: string;
  text: string;
}

/** A secret the file gives a value (top-level `secrets.x.file`, `environment` or `content`), to create when its tenant lacks it. */
export interface FileSecret {
  tenant: string;
  name: string;
  value: string;
}

/**
 * A network the file declares that an app joins (not `external`), once per
 * tenant and name: the deploy creates it when the tenant lacks it. `subnet`
 * is `ipam.config[0].subnet` as written; `origin` where the network is
 * declared (`networks.back`; the implicit `default`: the first service
 * that names it).
 */
export interface FileNetwork {
  tenant: string;
  name: string;
  subnet?: { cidr: string; path: string };
  origin: string;
}

/** The apps of a file in the order written, or its errors (then no app is deployed). Warnings come either way. */
export type ParseAppFileResult =
  | {
      ok: true;
      apps: AppSpec[];
      volumes: DeclaredVolume[];
      warnings: string[];
      /** The Compose project: `-p`, else the file's `name:`, else the folder. Absent when none was given. */
      project?: string;
      /** The secrets the file gives values, once per tenant and name, for the apps that mount them. */
      secrets: FileSecret[];
      /** Services with `deploy.mode: global`: the deploy runs one instance on each node (replicas = nodes up, at most one per node). */
      globalServices: string[];
      /** Per app, where state fields of lists came from in the file: `hivemind.secrets[1]` → `services.db.secrets[0]`. */
      origins: Record<string, Record<string, string>>;
      /** The declared networks the apps join, to create where missing. */
      networks: FileNetwork[];
    }
  | { ok: false; errors: AppFileError[]; warnings: string[] };

/** Parses the app file `text`, named `fileName` in messages. Never throws on any text. */
export function parseAppFile(text: string, fileName: string, options: ParseAppFileOptions = {}): ParseAppFileResult {
  return parseAppFiles([{ name: fileName, text }], options);
}

export { APP_FILES_MAX };

/**
 * Parses several app files as one, merged as `docker compose -f a -f b`
 * merges them (see merge.ts), then applies `options.sets`. Errors name the
 * file that wrote the field. Never throws on any text.
 */
export function parseAppFiles(sources: readonly AppFileSource[], options: ParseAppFileOptions = {}): ParseAppFileResult {
  const merged = loadMerged(sources, options);
  if (!merged.ok) return failure(merged.problems);
  const { root, problems } = merged;
  const context: FileContext = {
    problems,
    numberSource: merged.numberSource,
    variable: merged.lookup,
    declaredVolumes: new Map(),
    declaredSecrets: new Set(),
    files: options.files ?? {},
    localSources: options.localSources ?? {},
    declaredConfigs: new Map(),
    declaredNetworks: new Map(),
    tenantField: 'tenant',
    origins: {},
    globalServices: [],
    secretValues: new Map(),
  };
  const declaredVolumes = new Map<string, VolumeDeclaration>();
  const read = readRoot(root, context, options, declaredVolumes);
  if (problems.errorCount > 0) return failure(problems);
  const networks = fileNetworks(read.apps, read.declaredNetworks, context.origins);
  const project = read.project;
  return {
    ok: true,
    apps: read.apps,
    volumes: mountedDeclarations(read.apps, declaredVolumes),
    warnings: problems.warnings(),
    ...(project === undefined ? {} : { project }),
    secrets: fileSecrets(read.apps, context.secretValues),
    globalServices: context.globalServices,
    origins: context.origins,
    networks,
  };
}

/**
 * The relative paths of the local files the app files refer to
 * (`env_file`, top-level `secrets.x.file`), as written, in file order: what
 * the caller reads and passes as `options.files`. Files that do not parse
 * refer to nothing (the parse reports them).
 */
export function referencedFiles(sources: readonly AppFileSource[], options: ParseAppFileOptions = {}): string[] {
  const merged = loadMerged(sources, options);
  if (!merged.ok || !isMapping(merged.root)) return [];
  const paths = new Set<string>();
  const services = isMapping(merged.root.services) ? merged.root.services : {};
  for (const service of Object.values(services)) {
    if (!isMapping(service) || service.env_file === undefined || service.env_file === null) continue;
    for (const entry of Array.isArray(service.env_file) ? service.env_file : [service.env_file]) {
      const path = isMapping(entry) ? entry.path : entry;
      if (typeof path === 'string' && path !== '') paths.add(path);
    }
  }
  const secrets = isMapping(merged.root.secrets) ? merged.root.secrets : {};
  for (const secret of Object.values(secrets)) if (isMapping(secret) && typeof secret.file === 'string' && secret.file !== '') paths.add(secret.file);
  return [...paths];
}

/**
 * The local paths the caller reads as `LocalSource`s for the parse: each
 * top-level config's `file:`, and each relative bind mount's source
 * (`./x` or `../x`, short or long syntax). Pure.
 */
export function referencedLocalSources(sources: readonly AppFileSource[], options: ParseAppFileOptions = {}): string[] {
  const merged = loadMerged(sources, options);
  if (!merged.ok || !isMapping(merged.root)) return [];
  const paths = new Set<string>();
  const configs = isMapping(merged.root.configs) ? merged.root.configs : {};
  for (const config of Object.values(configs)) if (isMapping(config) && typeof config.file === 'string' && config.file !== '') paths.add(config.file);
  const services = isMapping(merged.root.services) ? merged.root.services : {};
  for (const service of Object.values(services)) {
    if (!isMapping(service) || !Array.isArray(service.volumes)) continue;
    for (const mount of service.volumes) {
      const source = typeof mount === 'string' ? mount.split(':')[0] : isMapping(mount) ? mount.source : undefined;
      if (typeof source === 'string' && isRelativeHostPath(source)) paths.add(source);
    }
  }
  return [...paths];
}



type Merged =
  | { ok: true; root: unknown; problems: Problems; numberSource: (path: FieldPath) => string | undefined; lookup: (name: string) => string | undefined }
  | { ok: false; problems: Problems };

function loadMerged(sources: readonly AppFileSource[], options: ParseAppFileOptions): Merged {
  const firstName = sources[0]?.name ?? 'app.yaml';
  if (sources.length === 0 || sources.length > APP_FILES_MAX) {
    const problems = new Problems(firstName);
    problems.error([], sources.length === 0 ? 'no app file was given' : `${sources.length} app files were given; at most ${APP_FILES_MAX} merge into one deploy`);
    return { ok: false, problems };
  }
  const loaded: { name: string; document: Document; lineCounter: LineCounter; data: unknown }[] = [];
  for (const source of sources) {
    const one = loadYaml(source.text, source.name);
    if (!one.ok) return { ok: false, problems: one.problems };
    loaded.push({ name: source.name, document: one.document, lineCounter: one.lineCounter, data: one.data });
  }
  const documents = loaded.map(({ name, document, lineCounter }) => ({ name, document, lineCounter }));
  const inFiles = documentsLocator(documents);
  // A field an override of --set wrote is named as --set's, not as a file's.
  const setPaths = setPathsOf(options.sets ?? []);
  const written = (path: FieldPath, setPath: FieldPath): boolean =>
    setPath.every((segment, index) => path[index] === segment) || (path.length > 2 && path.every((segment, index) => setPath[index] === segment));
  const locate: Locate = (path) => (setPaths.some((setPath) => written(path, setPath)) ? { file: '--set' } : inFiles(path));
  const problems = new Problems(sources.length === 1 ? firstName : sources.map((source) => source.name).join('+'), locate);
  // The YAML warnings of each file, read again with the merged problems so they keep their file's name.
  for (const source of loaded) {
    for (const warning of source.document.warnings) {
      const { line, col } = source.lineCounter.linePos(warning.pos[0]);
      problems.warn([], `${sources.length === 1 ? '' : `${source.name} `}line ${line}, column ${col}: ${warning.message}`);
    }
  }
  const variables = options.variables ?? {};
  const lookup = (name: string): string | undefined => (Object.hasOwn(variables, name) ? variables[name] : undefined);
  const warned = new Set<string>();
  let root: unknown;
  for (const [position, source] of loaded.entries()) {
    const interpolated = interpolateTree(source.data, [], lookup, problems, warned);
    root = position === 0 ? interpolated : mergeTrees(root, interpolated);
  }
  root = applySets(root, options.sets ?? [], problems);
  return { ok: true, root, problems, numberSource: documentsNumberSource(documents), lookup };
}

/** The paths `--set` values write (`web.deploy.replicas=3` → services.web.deploy.replicas). */
function setPathsOf(sets: readonly string[]): FieldPath[] {
  const paths: FieldPath[] = [];
  for (const set of sets) {
    const match = /^([^=.\s]+)((?:\.[^=.\s]+)+)=/.exec(set);
    if (match !== null) paths.push(['services', match[1] ?? '', ...(match[2] ?? '').slice(1).split('.')]);
  }
  return paths;
}

/**
 * The declared networks (not external) the apps join, once per tenant and
 * name, in the order first joined; `default` when a service names it, the
 * file gives it a subnet, or an app is on it in a file that uses networks.
 */
function fileNetworks(apps: readonly AppSpec[], declared: ReadonlyMap<string, NetworkDeclaration>, origins: Readonly<Record<string, Record<string, string>>>): FileNetwork[] {
  const found = new Map<string, FileNetwork>();
  const byName = new Map([...declared].map(([key, declaration]) => [declaration.name, { key, declaration }]));
  for (const app of apps) {
    const named = app.networks !== undefined;
    for (const [position, name] of (app.networks ?? [DEFAULT_NETWORK]).entries()) {
      const entry = byName.get(name);
      if (entry === undefined || entry.declaration.external || found.has(`${app.tenant}/${name}`)) continue;
      // The default network is made for the apps on it when the file uses networks (a tenant made before the pool has none), else left as it is.
      if (!named && entry.declaration.subnet === undefined && !apps.some((other) => other.networks !== undefined)) continue;
      const origin = entry.key === DEFAULT_NETWORK && !declaredInFile(entry.declaration) ? (origins[app.name]?.[`networks[${position}]`] ?? `services.${app.name}`) : `networks.${entry.key}`;
      found.set(`${app.tenant}/${name}`, { tenant: app.tenant, name, ...(entry.declaration.subnet === undefined ? {} : { subnet: entry.declaration.subnet }), origin });
    }
  }
  return [...found.values()];
}

function declaredInFile(declaration: NetworkDeclaration): boolean {
  return declaration.subnet !== undefined || declaration.name !== DEFAULT_NETWORK;
}

/** The secrets with a value in the file that some app mounts, once per tenant. */
function fileSecrets(apps: readonly AppSpec[], values: ReadonlyMap<string, string>): FileSecret[] {
  const found = new Map<string, FileSecret>();
  for (const app of apps) {
    for (const name of app.hivemind.secrets ?? []) {
      const value = values.get(name);
      if (value !== undefined && !found.has(`${app.tenant}/${name}`)) found.set(`${app.tenant}/${name}`, { tenant: app.tenant, name, value });
    }
  }
  return [...found.values()];
}

function fillMap<K, V>(target: Map<K, V>, source: ReadonlyMap<K, V>): Map<K, V> {
  for (const [key, value] of source) target.set(key, value);
  return target;
}

function failure(problems: Problems): ParseAppFileResult {
  return { ok: false, errors: problems.errors(), warnings: problems.warnings() };
}

type Loaded = { ok: true; document: Document; lineCounter: LineCounter; data: unknown; problems: Problems } | { ok: false; problems: Problems };

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
  try {
    return { ok: true, document, lineCounter, data: document.toJS({ maxAliasCount: ALIAS_COUNT_MAX, logLevel: 'silent' }), problems };
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
function readRoot(
  root: unknown,
  context: FileContext,
  options: ParseAppFileOptions,
  declaredVolumes: Map<string, VolumeDeclaration>,
): { apps: AppSpec[]; project?: string; declaredNetworks: ReadonlyMap<string, NetworkDeclaration> } {
  const { problems } = context;
  if (root === null || root === undefined) {
    problems.error([], 'is empty; an app file lists its apps under services:');
    return { apps: [], declaredNetworks: new Map() };
  }
  if (!isMapping(root)) {
    problems.error([], `must be a mapping with services: at the top, got ${describe(root)}`);
    return { apps: [], declaredNetworks: new Map() };
  }
  checkKeys(root, [], problems, topLevelKeys);
  // `version` is obsolete in Compose and ignored without a word.
  const project = readProject(root, options, problems);
  const extension = root['x-hivemind'] === undefined || root['x-hivemind'] === null ? {} : readFileExtension(root['x-hivemind'], ['x-hivemind'], problems);
  let tenant = extension.tenant ?? options.defaultTenant ?? DEFAULT_TENANT;
  if (!NAME_PATTERN.test(tenant)) {
    problems.error([], `tenant ${JSON.stringify(tenant)}, given with the deploy, must be a DNS label: ${NAME_RULE}`);
    // Read the services anyway, for their own errors, without repeating this one for each.
    tenant = DEFAULT_TENANT;
  }
  const fileContext: FileContext = {
    ...context,
    tenantField: extension.tenant === undefined ? 'tenant' : 'x-hivemind.tenant',
    declaredVolumes: root.volumes === undefined ? declaredVolumes : fillMap(declaredVolumes, readVolumeDeclarations(root.volumes, ['volumes'], problems)),
    declaredSecrets: root.secrets === undefined ? new Set() : readSecretDeclarations(root.secrets, ['secrets'], context),
    declaredConfigs: root.configs === undefined ? new Map() : readConfigDeclarations(root.configs, ['configs'], context),
    declaredNetworks: readNetworkDeclarations(root.networks === undefined ? null : root.networks, ['networks'], problems),
  };
  const { declaredNetworks } = fileContext;
  const withProject = (apps: AppSpec[]): { apps: AppSpec[]; project?: string; declaredNetworks: ReadonlyMap<string, NetworkDeclaration> } =>
    project === undefined ? { apps, declaredNetworks } : { apps, project, declaredNetworks };
  if (root.services === undefined || root.services === null) {
    problems.error(['services'], 'is required: list the apps to deploy under services:');
    return withProject([]);
  }
  const services = readMapping(root.services, ['services'], problems);
  if (services === undefined) return withProject([]);
  const names = Object.keys(services);
  if (names.length === 0) problems.error(['services'], 'must list at least one service');
  if (names.length > SERVICES_MAX) {
    problems.error(['services'], `has ${names.length} services; a file may hold at most ${SERVICES_MAX}`);
    return withProject([]);
  }
  const apps: AppSpec[] = [];
  const appNames = new Map<string, string>();
  for (const name of names) {
    if (!profileEnabled(services[name], ['services', name], options.profiles ?? [], problems)) continue;
    const spec = readService(name, services[name], tenant, fileContext);
    if (spec === undefined) continue;
    const other = appNames.get(spec.name);
    if (other !== undefined) {
      problems.error(['services', name], `is app "${spec.name}" in Hivemind, as is service ${other}; rename one of them`);
      continue;
    }
    appNames.set(spec.name, name);
    if (passesStateChecks(spec, problems)) apps.push(spec);
  }
  return withProject(apps);
}

/** The project: `-p` (options.project), else the file's `name:`, else its folder; names become DNS labels. */
function readProject(root: Record<string, unknown>, options: ParseAppFileOptions, problems: Problems): string | undefined {
  if (options.project !== undefined) {
    if (NAME_PATTERN.test(options.project)) return options.project;
    problems.error([], `project ${JSON.stringify(options.project)}, given with the deploy, must be a DNS label: ${NAME_RULE}`);
    return undefined;
  }
  if (root.name !== undefined && root.name !== null) {
    const text = readText(root.name, ['name'], problems, { nonEmpty: true, what: 'the project name' });
    if (text === undefined) return undefined;
    const name = projectName(text);
    if (name === undefined) problems.error(['name'], `project ${JSON.stringify(text)} must be a DNS label: ${NAME_RULE}`);
    else if (name !== text) problems.warn(['name'], `is project "${name}" in Hivemind (names are DNS labels)`);
    return name;
  }
  return options.projectFallback === undefined ? undefined : projectName(options.projectFallback);
}

/** A Compose project name as a DNS label (Compose's own rule: lower case, letters, digits, "-" and "_"); `undefined` when nothing is left. */
export function projectName(text: string): string | undefined {
  return asNameLabel(text);
}

/**
 * Whether a service deploys with the profiles enabled: a service without
 * `profiles:` always does; one with them only when one is enabled (as in
 * Compose), else it is left out with a warning saying how to enable it.
 */
function profileEnabled(service: unknown, path: FieldPath, enabled: readonly string[], problems: Problems): boolean {
  if (!isMapping(service) || service.profiles === undefined || service.profiles === null) return true;
  const profiles = readList(service.profiles, [...path, 'profiles'], problems);
  if (profiles === undefined) return true;
  const names: string[] = [];
  for (const [position, profile] of profiles.entries()) {
    const name = readText(profile, [...path, 'profiles', position], problems, { nonEmpty: true, noSpaces: true, what: 'a profile name' });
    if (name !== undefined) names.push(name);
  }
  if (names.length === 0 || names.some((name) => enabled.includes(name) || enabled.includes('*'))) return true;
  problems.warn(path, `is left out: its profiles (${names.join(', ')}) are not enabled; deploy with --profile ${names[0]} to include it`);
  return false;
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
