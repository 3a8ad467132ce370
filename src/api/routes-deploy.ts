/**
 * `POST /v1/deploy`: one app file, or several merged as Compose merges them,
 * with the values the CLI gathered (variables from `.env` and the shell, the
 * local files the file names, `--set`, `--profile`, the project). The file
 * is read on the parser's worker; the declared volumes and the secrets the
 * file gives values are created when missing; then one `app.deploy-many`
 * deploys every app or none. With `dryRun`, nothing is changed: the answer
 * is the plan (apps, versions, instances to start and stop, quota use).
 */
import type { LocalSource } from '../appfile/configs.js';
// Not '../appfile/index.js': that loads the YAML parser, which runs on the app-file worker only.
import { APP_FILE_ERROR_CODE } from '../appfile/errors.js';
import { APP_FILES_MAX } from '../appfile/limits.js';
import { composeFieldOf, planDeploy } from '../appfile/plan.js';
import { deployNetworks, networkFieldOf } from '../appfile/networks.js';
import { tenantNetworksEverywhere } from '../node/carried-networks.js';
import type { AppFileSource, FileSecret, ParseAppFileResult } from '../appfile/parse.js';
import { secretAssociatedData, sealSecret } from '../state/secrets.js';
import { LIMITS } from '../state/validate.js';
import { confinementProblem } from '../state/tenant-confinement.js';
import { ErrorCode } from '../state/errors.js';
import type { AppSpec, Command, DeployNetwork, NodeRecord } from '../state/types.js';
import { limitField, unenforceableLimit } from '../scheduler/limits.js';
import { ApiError, fromStateError, invalidArgument } from './errors.js';
import { checkName } from './input.js';
import { serve, type Answer, type Route, type RouteContext } from './router.js';
import { withVolumeKey } from './volume-keys.js';

const FILE_NAME_CHARS_MAX = 255;
/** The largest secret value: the sealed form (value + tag) must fit the state's limit (as PUT /v1/secrets). */
const SECRET_VALUE_BYTES_MAX = LIMITS.secretCiphertextBytesMax - LIMITS.sealTagBytes;
/** Variables, attachments, `--set` and `--profile` values a deploy may carry. */
const VARIABLES_MAX = 4096;
const ATTACHMENTS_MAX = 256;
const SETS_MAX = 256;
const PROFILES_MAX = 64;

type Parsed = Extract<ParseAppFileResult, { ok: true }>;

/** The deploy route; see the file comment. */
export const deployRoute: Route = serve('POST /v1/deploy', {
  async write(context) {
    const request = readRequest(context.body);
    // On the parser's worker: a hostile file must not stall this node's event loop (Raft ticks run on it).
    const parsed = await context.parseAppFiles(request.sources, request.options);
    const label = request.sources.map((source) => source.name).join(' + ');
    if (!parsed.ok) {
      const errors = parsed.errors.map((error) => ({ file: error.file, path: error.path, message: error.message }));
      const first = errors[0];
      const summary = first ? `${first.file}: ${first.path ? `${first.path}: ` : ''}${first.message}` : 'it has errors';
      const more = errors.length > 1 ? ` (and ${errors.length - 1} more)` : '';
      throw new ApiError(400, APP_FILE_ERROR_CODE, `cannot deploy ${label}: ${summary}${more}`, undefined, { errors, warnings: parsed.warnings });
    }
    if (parsed.apps.length === 0) {
      throw new ApiError(400, APP_FILE_ERROR_CODE, `cannot deploy ${label}: it defines no services`, undefined, {
        errors: [{ file: request.sources[0]?.name ?? '', path: 'services', message: 'must define at least one service (or enable the profiles of those it has)' }],
        warnings: parsed.warnings,
      });
    }
    for (const spec of parsed.apps) context.authorize('deploy', spec.tenant);
    const { machine } = context.backend;
    const held = new Set(machine.networks().map((network) => `${network.tenant}/${network.name}`));
    const joined = deployNetworks(withGlobalReplicas(parsed, context), parsed.networks, {
      clusterVersion: machine.clusterVersion,
      ...(machine.network()?.tenantCidr === undefined ? {} : { pool: machine.network()!.tenantCidr! }),
      // Once every node carries every tenant network (before, a node's own switch decided, and the deploy made none).
      ...(tenantNetworksEverywhere(machine.clusterVersion) ? { hasNetwork: (tenant: string, name: string) => held.has(`${tenant}/${name}`) } : {}),
    }, parsed.origins);
    const apps = joined.apps;
    parsed.warnings.push(...joined.warnings.map((warning) => `${label}: ${warning}`));
    // The app-file readers (volumes, configs, compose keys) load with the first deploy: an idle node does without them.
    const { volumeCreations } = await import('../appfile/volumes.js');
    const volumes = volumeCreations(parsed.volumes, (tenant, name) => machine.volume(tenant, name) !== undefined);
    if (!volumes.ok) throw new ApiError(400, APP_FILE_ERROR_CODE, `cannot deploy ${label}: ${volumes.message}`, undefined, { errors: [{ file: request.sources[0]?.name ?? '', path: 'volumes', message: volumes.message }], warnings: parsed.warnings });
    const secrets = parsed.secrets.filter((secret) => !machine.secrets(secret.tenant).some((stored) => stored.name === secret.name));
    const command: Command = {
      type: 'app.deploy-many',
      specs: apps,
      ...(parsed.project === undefined ? {} : { project: parsed.project }),
      ...(request.force ? { force: true } : {}),
      ...(joined.networks === undefined ? {} : { networks: joined.networks }),
    };
    // Refusals found now change nothing; those about a volume or secret this deploy creates wait for the commit.
    const creates = volumes.commands.length > 0 || secrets.length > 0;
    const checked = machine.check(command);
    const unenforceable = unenforceableRefusal(apps, machine.nodes());
    // A volume or secret this deploy creates is missing until the commit: the check stopped there, so what the tenant may not do is asked now (else a dry run missed it, and the deploy made its volumes and secrets, then was refused).
    const deferred = !checked.ok && creates && checked.error.code === 'not-found';
    const stateRefusal = checked.ok ? undefined : deferred ? confinementRefusal(apps, context) : fromStateError(checked.error);
    const found = unenforceable ?? stateRefusal;
    const refusal = found === undefined ? undefined : inFileTerms(found, apps, parsed);
    if (request.dryRun) return dryRunAnswer(context, { apps, parsed, force: request.force, volumes: volumes.commands, secrets, networks: joined.networks ?? [], refusal });
    if (refusal !== undefined) throw refusal;
    // Checked before anything is created: writing secrets is the manage right, beyond deploy.
    for (const secret of secrets) {
      context.authorize('manage', secret.tenant);
      if (Buffer.byteLength(secret.value, 'utf8') > SECRET_VALUE_BYTES_MAX) {
        throw new ApiError(400, APP_FILE_ERROR_CODE, `cannot deploy ${label}: secret "${secret.name}" is ${Buffer.byteLength(secret.value, 'utf8')} bytes; a secret may have at most ${SECRET_VALUE_BYTES_MAX}`);
      }
    }
    for (const create of volumes.commands) {
      // A volume the file declares `encrypted`, or any volume of a tenant that encrypts its volumes, gets a sealed key.
      const command = create.type === 'volume.create' ? withVolumeKey(create, { requested: parsed.volumes.some((declared) => declared.encrypted && declared.tenant === create.tenant && declared.name === create.name), tenant: context.backend.machine.tenant(create.tenant), clusterKey: () => context.backend.clusterKey() }) : create;
      await commitTolerant(context, command);
    }
    for (const secret of secrets) {
      // Sealed here: the plaintext never enters the log.
      const sealed = sealSecret(context.backend.clusterKey(), secret.value, secretAssociatedData(secret.tenant, secret.name));
      await commitTolerant(context, { type: 'secret.put', tenant: secret.tenant, name: secret.name, ciphertext: sealed.ciphertext, nonce: sealed.nonce });
    }
    try {
      // One command for the whole file: every app deploys, or none does.
      return await context.commit([command], (results) => ({
        ...(parsed.project === undefined ? {} : { project: parsed.project }),
        apps: results.flatMap((result) => (result.ok ? (result.value as { apps: unknown[] }).apps : [])),
        warnings: parsed.warnings,
      }));
    } catch (error) {
      throw error instanceof ApiError ? inFileTerms(error, apps, parsed) : error;
    }
  },
});

/** The first thing of `apps` their tenant's settings do not allow (host paths, users, capabilities), as the state would refuse it. */
function confinementRefusal(apps: readonly AppSpec[], context: RouteContext): ApiError | undefined {
  for (const [position, spec] of apps.entries()) {
    const problem = confinementProblem(spec, context.backend.machine.tenant(spec.tenant)?.settings);
    if (problem === undefined) continue;
    const others = apps.length > 1 ? `; none of the ${apps.length} apps was deployed` : '';
    return fromStateError({ code: ErrorCode.forbidden, message: `cannot deploy "${spec.name}": ${problem.text}${others}`, field: `specs[${position}].${problem.field}` });
  }
  return undefined;
}

/** The answer of a dry run: the plan, what the deploy would create, and the refusal it would meet. Changes nothing. */
function dryRunAnswer(
  context: RouteContext,
  init: { apps: AppSpec[]; parsed: Parsed; force: boolean; volumes: readonly Command[]; secrets: readonly FileSecret[]; networks: readonly DeployNetwork[]; refusal: ApiError | undefined },
): Answer {
  const { machine } = context.backend;
  const plan = planDeploy({
    apps: init.apps,
    ...(init.parsed.project === undefined ? {} : { project: init.parsed.project }),
    force: init.force,
    current: (tenant, name) => machine.app(tenant, name),
    tenant: (name) => {
      const tenant = machine.tenant(name);
      return tenant === undefined ? undefined : { usage: machine.usage(name), quota: tenant.quota };
    },
  });
  const creates = {
    volumes: init.volumes.flatMap((create) => (create.type === 'volume.create' ? [`${create.tenant}/${create.name}`] : [])),
    secrets: init.secrets.map((secret) => `${secret.tenant}/${secret.name}`),
    networks: init.networks.filter((network) => machine.networks().every((held) => held.tenant !== network.tenant || held.name !== network.name)).map((network) => `${network.tenant}/${network.name}`),
  };
  const { refusal } = init;
  const refused = refusal === undefined ? {} : { refusal: { code: refusal.code, message: refusal.message, ...(refusal.field === undefined ? {} : { field: refusal.field }) } };
  return { status: 200, json: { dryRun: true, ...plan, creates, ...refused, warnings: init.parsed.warnings } };
}

/** The request's files and parse options, each field checked. */
function readRequest(input: unknown): { sources: AppFileSource[]; options: Parameters<RouteContext['parseAppFiles']>[1] & object; force: boolean; dryRun: boolean } {
  const body = (input ?? {}) as Record<string, unknown>;
  const sources: AppFileSource[] = [];
  if (body.files !== undefined) {
    if (body.fileName !== undefined || body.content !== undefined) throw invalidArgument('files', 'give files, or fileName and content, not both');
    if (!Array.isArray(body.files) || body.files.length === 0 || body.files.length > APP_FILES_MAX) throw invalidArgument('files', `files must be a list of 1 to ${APP_FILES_MAX} { fileName, content }`);
    for (const [position, file] of body.files.entries()) {
      const item = (file ?? {}) as Record<string, unknown>;
      sources.push({ name: fileName(item.fileName, `files[${position}].fileName`), text: content(item.content, `files[${position}].content`) });
    }
  } else {
    sources.push({ name: fileName(body.fileName, 'fileName'), text: content(body.content, 'content') });
  }
  const options: Parameters<RouteContext['parseAppFiles']>[1] & object = {};
  if (body.tenant !== undefined) options.defaultTenant = checkName(text(body.tenant, 'tenant'), 'tenant');
  if (body.project !== undefined) options.project = checkName(text(body.project, 'project'), 'project');
  if (body.projectFallback !== undefined) options.projectFallback = text(body.projectFallback, 'projectFallback');
  if (body.variables !== undefined) options.variables = stringRecord(body.variables, 'variables', VARIABLES_MAX);
  if (body.attachments !== undefined) options.files = stringRecord(body.attachments, 'attachments', ATTACHMENTS_MAX);
  if (body.localSources !== undefined) options.localSources = localSources(body.localSources);
  if (body.sets !== undefined) options.sets = stringList(body.sets, 'sets', SETS_MAX);
  if (body.profiles !== undefined) options.profiles = stringList(body.profiles, 'profiles', PROFILES_MAX);
  return { sources, options, force: flag(body.force, 'force'), dryRun: flag(body.dryRun, 'dryRun') };
}

/** `localSources`: by path, a file (`{ kind: 'file', data }`), a folder's files, or a folder too large to send; data in base64. */
function localSources(value: unknown): Record<string, LocalSource> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw invalidArgument('localSources', 'localSources must be an object of { kind, ... } by path');
  const entries = Object.entries(value as Record<string, unknown>);
  if (entries.length > ATTACHMENTS_MAX) throw invalidArgument('localSources', `localSources may name at most ${ATTACHMENTS_MAX} paths`);
  const sources: Record<string, LocalSource> = {};
  const base64 = (data: unknown, field: string): string => {
    if (typeof data !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(data)) throw invalidArgument(field, `${field} must be base64 text`);
    return data;
  };
  for (const [path, item] of entries) {
    const field = `localSources.${path}`;
    const source = (item ?? {}) as Record<string, unknown>;
    if (source.kind === 'file') sources[path] = { kind: 'file', data: base64(source.data, `${field}.data`) };
    else if (source.kind === 'too-large' && Number.isSafeInteger(source.files) && Number.isSafeInteger(source.bytes)) sources[path] = { kind: 'too-large', files: source.files as number, bytes: source.bytes as number };
    else if (source.kind === 'folder' && Array.isArray(source.files) && source.files.length <= LIMITS.configFilesMax) {
      sources[path] = {
        kind: 'folder',
        files: source.files.map((file: unknown, position) => {
          const entry = (file ?? {}) as Record<string, unknown>;
          if (typeof entry.path !== 'string' || entry.path === '' || entry.path.length > FILE_NAME_CHARS_MAX * 4) throw invalidArgument(`${field}.files[${position}].path`, `${field}.files[${position}].path must be a relative path`);
          return { path: entry.path, data: base64(entry.data, `${field}.files[${position}].data`) };
        }),
      };
    } else throw invalidArgument(field, `${field} must be { kind: "file", data }, { kind: "folder", files: [{ path, data }] } (at most ${LIMITS.configFilesMax}) or { kind: "too-large", files, bytes }`);
  }
  return sources;
}

function fileName(value: unknown, field: string): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > FILE_NAME_CHARS_MAX) throw invalidArgument(field, `${field} must be a file name of 1 to ${FILE_NAME_CHARS_MAX} characters`);
  return value;
}

function content(value: unknown, field: string): string {
  if (typeof value !== 'string') throw invalidArgument(field, `${field} must be the app file's text (a string)`);
  return value;
}

function text(value: unknown, field: string): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > FILE_NAME_CHARS_MAX) throw invalidArgument(field, `${field} must be a string of 1 to ${FILE_NAME_CHARS_MAX} characters`);
  return value;
}

function flag(value: unknown, field: string): boolean {
  if (value === undefined) return false;
  if (typeof value !== 'boolean') throw invalidArgument(field, `${field} must be true or false`);
  return value;
}

function stringRecord(value: unknown, field: string, keysMax: number): Record<string, string> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw invalidArgument(field, `${field} must be an object of strings`);
  const entries = Object.entries(value);
  if (entries.length > keysMax) throw invalidArgument(field, `${field} may have at most ${keysMax} entries, got ${entries.length}`);
  const record: Record<string, string> = {};
  for (const [key, item] of entries) {
    if (typeof item !== 'string') throw invalidArgument(`${field}.${key}`, `${field}.${key} must be a string`);
    Object.defineProperty(record, key, { value: item, enumerable: true, writable: true, configurable: true });
  }
  return record;
}

function stringList(value: unknown, field: string, itemsMax: number): string[] {
  if (!Array.isArray(value) || value.length > itemsMax || !value.every((item) => typeof item === 'string')) throw invalidArgument(field, `${field} must be a list of at most ${itemsMax} strings`);
  return value as string[];
}

/**
 * `deploy.mode: global` apps run one instance on each node that is up now
 * (the parser set at most one per node); at least one, so the app exists
 * on a cluster whose nodes are all down.
 */
function withGlobalReplicas(parsed: Parsed, context: RouteContext): AppSpec[] {
  if (parsed.globalServices.length === 0) return parsed.apps;
  const nodesUp = context.backend.machine.nodes().filter((node) => node.status === 'up').length;
  return parsed.apps.map((spec) => (parsed.globalServices.includes(spec.name) ? { ...spec, replicas: Math.max(1, nodesUp) } : spec));
}

/**
 * The refusal of an app whose CPU or memory limit no node of the cluster can
 * enforce (each says what its cgroups offer; limits.ts), about the field
 * `specs[N].limits.*` (inFileTerms names it as written); undefined when some
 * node can or may.
 */
function unenforceableRefusal(apps: readonly AppSpec[], nodes: readonly NodeRecord[]): ApiError | undefined {
  for (const [position, spec] of apps.entries()) {
    const controller = unenforceableLimit(spec, nodes);
    if (controller === undefined) continue;
    const what = controller === 'memory' ? 'memory' : 'CPU';
    // inFileTerms writes the field in the message as the user wrote it.
    const field = limitField(controller);
    return invalidArgument(
      `specs[${position}].${field}`,
      `cannot deploy "${spec.name}": no node of the cluster can enforce its ${what} limit (${field}): their cgroups offer no ${controller} controller; remove the limit, or add a node whose cgroups have it`,
    );
  }
  return undefined;
}

/** A refusal about `specs[N].field` or `networks[N].field`, named where the user wrote it (`services.db.secrets[0]`, `networks.back.ipam.config[0].subnet`). */
function inFileTerms(error: ApiError, apps: readonly AppSpec[], parsed: Parsed): ApiError {
  if (error.field === undefined) return error;
  const composeField = composeFieldOf(error.field, apps, parsed.origins) ?? networkFieldOf(error.field, parsed.networks);
  if (composeField === undefined) return error;
  const inner = error.field.replace(/^(specs|networks)\[\d+\]\.?/, '');
  const message = inner === '' ? error.message : error.message.split(`(${inner})`).join(`(${composeField})`);
  return new ApiError(error.status, error.code, message, composeField, error.extra, error.headers);
}

async function commitTolerant(context: RouteContext, command: Command): Promise<void> {
  await context.commit([command]).catch((error: unknown) => {
    // Created meanwhile (by another deploy, or seen late by this node): what the deploy needs is there.
    if (!(error instanceof ApiError && error.code === 'already-exists')) throw error;
  });
}
