/**
 * One Compose service to one `AppSpec`: every key read, checked, defaulted
 * and reported. A service with any error gives no spec (its errors are in
 * `Problems`), so a file deploys all of its apps or none. Pure.
 */
import type { AppSpec, ConfigMount, HivemindSpec, Resources, RestartSpec } from '../state/types.js';
import { checkKeys, envFileKeys, serviceKeys } from './compose-keys.js';
import { parseDotenv } from './dotenv.js';
import { readArgv } from './command.js';
import type { FileContext } from './context.js';
import { readContainerSettings } from './container.js';
import { readServiceConfigs } from './configs.js';
import { readDeploy, readServiceRestart, RESTART_DEFAULTS, UPDATE_DEFAULTS, type DeployParts } from './deploy.js';
import { readEnvironment, readLabels } from './environment.js';
import { readServiceExtension } from './extension.js';
import { readHealthcheck } from './healthcheck.js';
import { readLinks, readServiceNetworks, splitAliases } from './names.js';
import { DEFAULT_NETWORK } from '../state/app-networks.js';
import { readPorts } from './ports.js';
import type { FieldPath, Problems } from './problems.js';
import { hivemindName, isMapping, readAbsolutePath, readComposeName, readBoolean, readCpuMillis, readDurationMs, readMapping, readMemoryBytes, readText, readWholeNumber, setOwn } from './read.js';
import { LIMITS } from '../state/validate.js';
import { readServiceSecrets, readVolumeMounts } from './volumes.js';

/** Reads service `name` of the file; `tenant` is the file's (from x-hivemind or the caller). */
export function readService(name: string, value: unknown, tenant: string, context: FileContext): AppSpec | undefined {
  const { problems } = context;
  const path: FieldPath = ['services', name];
  const before = problems.errorCount;
  const appName = readComposeName(name, path, problems, { what: 'service name', announce: `; other apps reach it as ${name.replace(/_/g, '-')}` }) ?? name;
  const mapping = readMapping(value, path, problems);
  if (mapping === undefined) return undefined;
  checkKeys(mapping, path, problems, serviceKeys);
  readBuild(mapping, path, problems);
  // An empty value (`command:`) counts as left out, as Compose reads it in override files.
  const given = (key: string): boolean => mapping[key] !== undefined && mapping[key] !== null;
  const at = (key: string): FieldPath => [...path, key];

  const program = readProgram(mapping, path, problems);
  const fromFiles = given('env_file') ? readEnvFiles(mapping.env_file, at('env_file'), context) : {};
  const written = given('environment') ? readEnvironment(mapping.environment, at('environment'), context) : {};
  // As in Compose, environment: wins over env_file.
  const environment = fromFiles === undefined || written === undefined ? undefined : { ...fromFiles, ...written };
  const ports = given('ports') ? readPorts(mapping.ports, at('ports'), problems) : [];
  const containerAlias = given('container_name') ? readContainerName(mapping.container_name, at('container_name'), problems, appName) : undefined;
  const configs: ConfigMount[] = [];
  const volumePositions: number[] = [];
  const volumes = given('volumes') ? readVolumeMounts(mapping.volumes, at('volumes'), context, { configs, positions: volumePositions }) : [];
  const serviceConfigs = given('configs') ? readServiceConfigs(mapping.configs, at('configs'), context) : [];
  const healthcheck = given('healthcheck') ? readHealthcheck(mapping.healthcheck, at('healthcheck'), problems) : undefined;
  const workingDir = given('working_dir') ? readAbsolutePath(mapping.working_dir, at('working_dir'), problems) : undefined;
  const user = given('user') ? readText(mapping.user, at('user'), problems, { scalars: true, nonEmpty: true, what: 'a user name or id, like "1000" or "app"' }) : undefined;
  const readOnly = given('read_only') ? readBoolean(mapping.read_only, at('read_only'), problems) : false;
  const stopGraceMs = given('stop_grace_period') ? readDurationMs(mapping.stop_grace_period, at('stop_grace_period'), problems) : undefined;
  const stopSignal = given('stop_signal')
    ? readText(mapping.stop_signal, at('stop_signal'), problems, { nonEmpty: true, noSpaces: true, what: 'a signal name like "SIGTERM"' })
    : undefined;
  const labels = given('labels') ? readLabels(mapping.labels, at('labels'), context) : {};
  // With an error in deploy or x-hivemind, read on with the defaults, so the checks below still report their own errors.
  const noDeploy: DeployParts = { limits: {}, reservations: {}, update: { ...UPDATE_DEFAULTS }, constraints: [], labels: {} };
  const deploy = (given('deploy') ? readDeploy(mapping.deploy, at('deploy'), context) : undefined) ?? noDeploy;
  const serviceSecrets = given('secrets') ? readServiceSecrets(mapping.secrets, at('secrets'), context) : [];
  const extension = (given('x-hivemind') ? readServiceExtension(mapping['x-hivemind'], at('x-hivemind'), problems) : undefined) ?? { hivemind: {} };
  const joined = given('networks') ? readServiceNetworks(mapping.networks, at('networks'), { problems, declared: context.declaredNetworks, service: name }) : undefined;
  const split = joined === undefined ? { everywhere: [], perNetwork: [] } : splitAliases(joined);
  const aliases = split.everywhere;
  const links = given('links') ? readLinks(mapping.links, at('links'), problems, name) : [];
  const container = readContainerSettings(mapping, path, problems, { image: given('image') });

  if (deploy.global) {
    if (given('scale') || deploy.replicas !== undefined) problems.error(at('deploy'), 'sets mode: global and replicas (or scale); a global app runs one instance on each node, so leave replicas out');
    context.globalServices.push(appName);
    problems.warn([...path, 'deploy', 'mode'], 'global: one instance runs on each node that is up when the file is deployed; deploy again to cover nodes that join later');
  }
  const replicas = deploy.global ? 1 : readReplicas(mapping, deploy, path, problems);
  if (environment !== undefined) renameSecretPaths(environment, serviceSecrets ?? [], at('environment'), problems);
  const restart = readRestart(mapping, deploy, path, problems);
  const limits = mergeResources(deploy.limits, readPlainResources(mapping, path, problems, { cpus: 'cpus', memory: 'mem_limit' }), [...path, 'deploy', 'resources', 'limits'], problems);
  const reservations = mergeResources(deploy.reservations, readPlainResources(mapping, path, problems, { memory: 'mem_reservation' }), [...path, 'deploy', 'resources', 'reservations'], problems);
  checkReservationsFit(limits, reservations, [...path, 'deploy', 'resources'], problems);
  const hivemind = mergeHivemind(extension.hivemind, deploy, serviceSecrets ?? [], path, problems);
  if (deploy.global) hivemind.maxPerNode = 1;
  const allAliases = [...(aliases ?? []), ...(containerAlias !== undefined && containerAlias !== appName && !(aliases ?? []).includes(containerAlias) ? [containerAlias] : [])];
  if (allAliases.length > 0) hivemind.aliases = allAliases;
  if (split.perNetwork.length > 0) hivemind.networkAliases = split.perNetwork.map(({ network, aliases: own }) => ({ network, aliases: own }));
  if (links !== undefined && links.length > 0) hivemind.links = links;
  const allLabels = mergeLabels(labels ?? {}, deploy.labels, at('labels'), problems);

  if (!given('image') && given('configs')) problems.error(at('configs'), 'applies only to an image app; a process app reads its files where it runs');
  if (!given('image') && configs.length > 0) problems.error(at('volumes'), 'mounts a relative path, which applies only to an image app; a process app reads its files where it runs');
  if (problems.errorCount !== before) return undefined;
  if (program === undefined || environment === undefined || ports === undefined || volumes === undefined || serviceConfigs === undefined) return undefined;
  if (readOnly === undefined || replicas === undefined || restart === undefined) return undefined;
  const origins = originsOf(name, serviceSecrets ?? [], hivemind, volumePositions);
  if (configs.length > 0 || given('configs')) setOwn(origins, 'configs', given('configs') ? `services.${name}.configs` : `services.${name}.volumes`);
  for (const position of (container?.capAdd ?? []).keys()) setOwn(origins, `container.capAdd[${position}]`, `services.${name}.cap_add[${position}]`);
  setOwn(origins, 'tenant', extension.tenant === undefined ? context.tenantField : `services.${name}.x-hivemind.tenant`);
  for (const [position, origin] of (joined?.origins ?? []).entries()) setOwn(origins, `networks[${position}]`, origin);
  for (const [position, entry] of split.perNetwork.entries()) {
    const written = joined?.aliasOrigins[entry.position];
    if (written !== undefined) setOwn(origins, `hivemind.networkAliases[${position}].network`, written);
  }
  setOwn(context.origins, appName, origins);
  const spec: AppSpec = {
    name: appName,
    tenant: extension.tenant ?? tenant,
    ...program,
    readOnly,
    replicas,
    environment,
    ports,
    volumes,
    limits,
    reservations,
    update: deploy.update,
    restart,
    constraints: deploy.constraints,
    labels: allLabels,
    hivemind,
  };
  if (workingDir !== undefined) spec.workingDir = workingDir;
  if (user !== undefined) spec.user = user;
  if (healthcheck !== undefined) spec.healthcheck = healthcheck;
  if (stopGraceMs !== undefined) spec.stopGraceMs = stopGraceMs;
  if (stopSignal !== undefined) spec.stopSignal = stopSignal.toUpperCase();
  if (container !== undefined) spec.container = container;
  const allConfigs = [...configs, ...(serviceConfigs ?? [])];
  if (allConfigs.length > 0) spec.configs = allConfigs;
  // The default network alone is what a spec without networks means: left out, so a file that names it deploys as one that does not.
  if (joined !== undefined && joined.networks.length > 0 && !(joined.networks.length === 1 && joined.networks[0] === DEFAULT_NETWORK)) spec.networks = joined.networks;
  return spec;
}

/** `build:` beside `image:` is ignored with a warning (the image is what runs); alone it is refused with what to do. */
function readBuild(mapping: Record<string, unknown>, path: FieldPath, problems: Problems): void {
  if (mapping.build === undefined || mapping.build === null) return;
  if (mapping.image !== undefined && mapping.image !== null) {
    problems.warn([...path, 'build'], 'is ignored: Hivemind runs the image named by image: and builds nothing; build and push (or hivemind images import) it first');
    return;
  }
  problems.error(
    [...path, 'build'],
    'is not supported: Hivemind builds no images; build it (docker build -t NAME .), make it available (push it to a registry, or hivemind images import), and name it in image:',
  );
}

/** `container_name:` becomes a DNS alias of the app (instances are named by Hivemind, one name cannot serve several). */
function readContainerName(value: unknown, path: FieldPath, problems: Problems, appName: string): string | undefined {
  const text = readText(value, path, problems, { nonEmpty: true, noSpaces: true, what: 'a container name' });
  if (text === undefined) return undefined;
  const alias = hivemindName(text.toLowerCase());
  if (alias === undefined) {
    problems.warn(path, 'is ignored: instances are named by Hivemind, and this name cannot be a DNS name');
    return undefined;
  }
  if (alias === appName) problems.warn(path, 'is the app\'s own name already: other apps reach it by it; instances are named by Hivemind');
  else problems.warn(path, `is a DNS alias of the app: other apps reach it as ${alias}; instances are named by Hivemind`);
  return alias;
}

/**
 * `env_file:` (a path, a list of paths, or `{ path, required }` items): the
 * variables of each file, later files winning. The caller read the files
 * (`context.files`); a required file it could not read is an error.
 */
function readEnvFiles(value: unknown, path: FieldPath, context: FileContext): Record<string, string> | undefined {
  const { problems } = context;
  const items = Array.isArray(value) ? value : [value];
  const before = problems.errorCount;
  const variables: Record<string, string> = {};
  for (const [position, item] of items.entries()) {
    const itemPath = Array.isArray(value) ? [...path, position] : path;
    const mapping = isMapping(item) ? item : undefined;
    if (mapping !== undefined) checkKeys(mapping, itemPath, problems, envFileKeys);
    const file = readText(mapping === undefined ? item : mapping.path, mapping === undefined ? itemPath : [...itemPath, 'path'], problems, { nonEmpty: true, what: 'a file path' });
    const required = mapping?.required === undefined ? true : readBoolean(mapping.required, [...itemPath, 'required'], problems);
    if (file === undefined || required === undefined) continue;
    const text = Object.hasOwn(context.files, file) ? context.files[file] : undefined;
    if (text === undefined) {
      if (required) problems.error(itemPath, `names file ${JSON.stringify(file)}, which was not sent with the deploy; give a path relative to the app file's folder that exists, or set required: false`);
      continue;
    }
    const parsed = parseDotenv(text);
    if (!parsed.ok) {
      problems.error(itemPath, `${file} line ${parsed.line} ${parsed.problem}`);
      continue;
    }
    for (const [key, variable] of Object.entries(parsed.variables)) setOwn(variables, key, variable);
  }
  return problems.errorCount === before ? variables : undefined;
}

/**
 * A variable naming a secret's file by its Compose name
 * (`POSTGRES_PASSWORD_FILE: /run/secrets/db_password`) is pointed at the file
 * Hivemind mounts (`/run/secrets/db-password`), with a warning, so the images
 * that read `*_FILE` variables find it.
 */
function renameSecretPaths(environment: Record<string, string>, secrets: readonly string[], path: FieldPath, problems: Problems): void {
  for (const [key, value] of Object.entries(environment)) {
    const renamed = value.replace(/\/run\/secrets\/([A-Za-z0-9_.-]+)/g, (whole, name: string) => {
      const mapped = hivemindName(name);
      return mapped !== undefined && mapped !== name && secrets.includes(mapped) ? `/run/secrets/${mapped}` : whole;
    });
    if (renamed === value) continue;
    setOwn(environment, key, renamed);
    problems.warn([...path, key], `is ${JSON.stringify(renamed)}: the secret's file has the secret's Hivemind name`);
  }
}

/** Where the list items of a spec were written, for messages about them (see `ParseAppFileResult.origins`). */
function originsOf(service: string, serviceSecrets: readonly string[], hivemind: HivemindSpec, volumePositions: readonly number[]): Record<string, string> {
  const servicePath = `services.${service}`;
  const origins: Record<string, string> = { name: servicePath };
  for (const [position, secret] of (hivemind.secrets ?? []).entries()) {
    const written = serviceSecrets.indexOf(secret);
    setOwn(origins, `hivemind.secrets[${position}]`, written === -1 ? `${servicePath}.x-hivemind.secrets` : `${servicePath}.secrets[${written}]`);
  }
  for (const position of (hivemind.policies ?? []).keys()) setOwn(origins, `hivemind.policies[${position}]`, `${servicePath}.x-hivemind.policies[${position}]`);
  for (const [position, written] of volumePositions.entries()) setOwn(origins, `volumes[${position}].source`, `${servicePath}.volumes[${written}]`);
  return origins;
}

type Program = Pick<AppSpec, 'image' | 'command' | 'entrypoint'>;

/**
 * `image`, `command` and `entrypoint`. An app is an image, or a command
 * that Hivemind runs as a plain process (no containerd needed).
 */
function readProgram(mapping: Record<string, unknown>, path: FieldPath, problems: Problems): Program | undefined {
  const given = (key: string): boolean => mapping[key] !== undefined && mapping[key] !== null;
  const before = problems.errorCount;
  const image = given('image')
    ? readText(mapping.image, [...path, 'image'], problems, { nonEmpty: true, noSpaces: true, what: 'an image reference like "nginx:1.25"' })
    : undefined;
  const command = given('command') ? readArgv(mapping.command, [...path, 'command'], problems, { allowEmpty: false }) : undefined;
  const entrypoint = given('entrypoint') ? readArgv(mapping.entrypoint, [...path, 'entrypoint'], problems, { allowEmpty: true }) : undefined;
  if (problems.errorCount !== before) return undefined;
  if (!given('image') && !given('command')) {
    // `build:` alone has its own refusal (readBuild).
    if (given('build')) return undefined;
    problems.error(path, 'must have image: (a container image to run) or command: (a program Hivemind runs as a process, without containerd)');
    return undefined;
  }
  if (!given('image') && given('entrypoint')) {
    problems.error([...path, 'entrypoint'], 'applies only to an image; for a process app, put the whole argument list in command:');
    return undefined;
  }
  const program: Program = {};
  if (image !== undefined) program.image = image;
  if (command !== undefined) program.command = command;
  if (entrypoint !== undefined) program.entrypoint = entrypoint;
  return program;
}

/** `deploy.replicas`, or plain Compose's `scale`; 1 when neither is set. */
function readReplicas(mapping: Record<string, unknown>, deploy: DeployParts, path: FieldPath, problems: Problems): number | undefined {
  if (mapping.scale === undefined || mapping.scale === null) return deploy.replicas ?? 1;
  const scale = readWholeNumber(mapping.scale, [...path, 'scale'], problems, { min: 0, max: LIMITS.replicasMax });
  if (scale !== undefined && deploy.replicas !== undefined && scale !== deploy.replicas) {
    problems.error([...path, 'scale'], `is ${scale} but deploy.replicas is ${deploy.replicas}; set one of them`);
    return undefined;
  }
  return scale;
}

/** `deploy.restart_policy` wins over the service's `restart` (as in Compose); with neither, Swarm's default policy. */
function readRestart(mapping: Record<string, unknown>, deploy: DeployParts, path: FieldPath, problems: Problems): RestartSpec | undefined {
  if (mapping.restart === undefined || mapping.restart === null) return deploy.restart ?? { ...RESTART_DEFAULTS };
  const restart = readServiceRestart(mapping.restart, [...path, 'restart'], problems);
  if (deploy.restart === undefined) return restart;
  if (restart !== undefined) problems.warn([...path, 'restart'], 'is ignored because deploy.restart_policy is set, which takes precedence');
  return deploy.restart;
}

/** Plain Compose's `cpus`, `mem_limit`, `mem_reservation`, read as Resources. */
function readPlainResources(
  mapping: Record<string, unknown>,
  path: FieldPath,
  problems: Problems,
  keys: { cpus?: string; memory: string },
): { resources: Resources; keys: { cpus?: string; memory: string } } {
  const resources: Resources = {};
  if (keys.cpus !== undefined && mapping[keys.cpus] !== undefined && mapping[keys.cpus] !== null) {
    const cpuMillis = readCpuMillis(mapping[keys.cpus], [...path, keys.cpus], problems);
    if (cpuMillis !== undefined) resources.cpuMillis = cpuMillis;
  }
  if (mapping[keys.memory] !== undefined && mapping[keys.memory] !== null) {
    const memoryBytes = readMemoryBytes(mapping[keys.memory], [...path, keys.memory], problems);
    if (memoryBytes !== undefined) resources.memoryBytes = memoryBytes;
  }
  return { resources, keys };
}

/** The deploy.resources amounts, with plain Compose's keys filling in; both set to different amounts is an error. */
function mergeResources(
  deploy: Resources,
  plain: { resources: Resources; keys: { cpus?: string; memory: string } },
  deployPath: FieldPath,
  problems: Problems,
): Resources {
  const merged: Resources = { ...deploy };
  const pairs = [
    ['cpuMillis', 'cpus', plain.keys.cpus],
    ['memoryBytes', 'memory', plain.keys.memory],
  ] as const;
  for (const [field, deployKey, plainKey] of pairs) {
    const plainAmount = plain.resources[field];
    if (plainAmount === undefined || plainKey === undefined) continue;
    const deployAmount = deploy[field];
    if (deployAmount !== undefined && deployAmount !== plainAmount) {
      problems.error([...deployPath, deployKey], `differs from ${plainKey} (${deployAmount} and ${plainAmount} ${field === 'cpuMillis' ? 'thousandths of a CPU' : 'bytes'}); set one of them`);
    }
    merged[field] = plainAmount;
  }
  return merged;
}

function checkReservationsFit(limits: Resources, reservations: Resources, path: FieldPath, problems: Problems): void {
  if (limits.cpuMillis !== undefined && reservations.cpuMillis !== undefined && reservations.cpuMillis > limits.cpuMillis) {
    problems.error([...path, 'reservations', 'cpus'], `reserves ${reservations.cpuMillis / 1000} CPUs, more than the limit of ${limits.cpuMillis / 1000}`);
  }
  if (limits.memoryBytes !== undefined && reservations.memoryBytes !== undefined && reservations.memoryBytes > limits.memoryBytes) {
    problems.error([...path, 'reservations', 'memory'], `reserves ${reservations.memoryBytes} bytes, more than the limit of ${limits.memoryBytes} bytes`);
  }
}

/** x-hivemind, with the service's Compose secrets and deploy.placement.max_replicas_per_node folded in. */
function mergeHivemind(extension: HivemindSpec, deploy: DeployParts, serviceSecrets: string[], path: FieldPath, problems: Problems): HivemindSpec {
  const hivemind: HivemindSpec = { ...extension };
  const secrets = [...serviceSecrets, ...(extension.secrets ?? []).filter((name) => !serviceSecrets.includes(name))];
  if (secrets.length > 0) hivemind.secrets = secrets;
  if (deploy.maxPerNode !== undefined) {
    if (extension.maxPerNode !== undefined && extension.maxPerNode !== deploy.maxPerNode) {
      problems.error([...path, 'x-hivemind', 'max_per_node'], `is ${extension.maxPerNode} but deploy.placement.max_replicas_per_node is ${deploy.maxPerNode}; set one of them`);
    }
    hivemind.maxPerNode = deploy.maxPerNode;
  }
  return hivemind;
}

/** `labels` and `deploy.labels` in one set (Hivemind has one kind of label); a key set to two values is an error. */
function mergeLabels(labels: Record<string, string>, deployLabels: Record<string, string>, path: FieldPath, problems: Problems): Record<string, string> {
  const merged: Record<string, string> = { ...labels };
  for (const [key, value] of Object.entries(deployLabels)) {
    if (Object.hasOwn(labels, key) && labels[key] !== value) {
      problems.error([...path, key], `is ${JSON.stringify(labels[key])} here but ${JSON.stringify(value)} in deploy.labels; Hivemind keeps one set of labels`);
    }
    setOwn(merged, key, value);
  }
  return merged;
}
