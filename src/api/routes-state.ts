/**
 * Routes over the replicated state: tenants, apps and instances, network
 * policies, volumes, secrets, the config store and history.
 *
 * Bodies map field for field onto commands, so a field the state's
 * validation names (`quota.cpuMillis`, `replicas`) is the body's own field.
 */
import { LIMITS, validateKvKey } from '../state/validate.js';
import { secretAssociatedData, sealSecret } from '../state/secrets.js';
import { HISTORY_MAX, type Volume } from '../state/types.js';
import { isClusterWide, seesHistory } from './access.js';
import { currentSpec } from '../state/state.js';
import { parseIpv4 } from '../state/ipam.js';
import { decide } from '../network/policy-plan.js';
import { policyModelOf } from '../network/policy-state.js';
import { ApiError, ApiCode, fromStateError, invalidArgument } from './errors.js';
import { checkName, queryInteger, queryName, queryNodeId } from './input.js';
import { serve, type Route, type RouteContext } from './router.js';
import { deployRoute } from './routes-deploy.js';
import { withVolumeKey } from './volume-keys.js';

/** The largest secret value: the sealed form (value + 16-byte tag) must fit the state's limit. */
export const SECRET_VALUE_BYTES_MAX = LIMITS.secretCiphertextBytesMax - LIMITS.sealTagBytes;
const KV_LIST_LIMIT_MAX = 10_000;
const KV_LIST_LIMIT_DEFAULT = 1000;
const HISTORY_LIMIT_MAX = 1000;
const HISTORY_LIMIT_DEFAULT = 50;

function tenantAndName(context: RouteContext): { tenant: string; name: string } {
  return { tenant: checkName(context.params.tenant!, 'tenant'), name: checkName(context.params.name!, 'name') };
}

/** `TENANT/APP` from the query `field`. */
function appReference(text: string, field: string): { tenant: string; app: string } {
  const [tenant, app, extra] = text.split('/');
  if (tenant === undefined || app === undefined || extra !== undefined) throw invalidArgument(field, `${field} must be TENANT/APP${field === 'from' ? ' or an IPv4 address' : ''}, got "${text}"`);
  return { tenant: checkName(tenant, field), app: checkName(app, field) };
}

/**
 * The `tenant` query of a list: checked against the caller (403 for a tenant
 * it may not read). Without one, the list is filtered by `context.sees`.
 */
function listTenant(context: RouteContext): string | undefined {
  const tenant = queryName(context.query, 'tenant');
  if (tenant !== undefined) context.authorize('read', tenant);
  return tenant;
}

function notFound(message: string, field: string): ApiError {
  return new ApiError(404, ApiCode.notFound, message, field);
}

const tenantRoutes: Route[] = [
  serve('GET /v1/tenants', {
    read({ backend: { machine }, sees }) {
      return { tenants: machine.tenants().filter((tenant) => sees(tenant.name)).map((tenant) => ({ ...tenant, usage: machine.usage(tenant.name) })) };
    },
  }),
  serve('GET /v1/tenants/:name', {
    read(context) {
      const name = checkName(context.params.name!, 'name');
      const tenant = context.backend.machine.tenant(name);
      if (tenant === undefined) throw notFound(`tenant "${name}" does not exist`, 'name');
      return { ...tenant, usage: context.backend.machine.usage(name) };
    },
  }),
  serve('PUT /v1/tenants/:name', {
    async write(context) {
      const name = checkName(context.params.name!, 'name');
      // No quota (or null): no limits. Absent settings: an update keeps the tenant's. The command's validation checks their shape.
      const quota = context.body.quota ?? {};
      const settings = context.body.settings;
      // Decided where the command is checked: on the leader (a follower forwards the request).
      const exists = context.backend.machine.tenants().some((tenant) => tenant.name === name && tenant.createdIndex > 0);
      return context.commit([{ type: exists ? 'tenant.update' : 'tenant.create', name, quota, ...(settings !== undefined ? { settings } : {}) }]);
    },
  }),
  serve('DELETE /v1/tenants/:name', {
    async write(context) {
      return context.commit([{ type: 'tenant.delete', name: checkName(context.params.name!, 'name') }]);
    },
  }),
];

const appRoutes: Route[] = [
  deployRoute,
  serve('GET /v1/apps', {
    read(context) {
      return { apps: context.backend.machine.apps(listTenant(context)).filter((app) => context.sees(app.tenant)) };
    },
  }),
  serve('GET /v1/apps/:tenant/:name', {
    read(context) {
      const { tenant, name } = tenantAndName(context);
      const app = context.backend.machine.app(tenant, name);
      if (app === undefined) throw notFound(`tenant "${tenant}" has no app "${name}"`, 'name');
      return { ...app, spec: currentSpec(app), instances: context.backend.machine.instances({ tenant, app: name }) };
    },
  }),
  serve('POST /v1/apps/:tenant/:name/scale', {
    async write(context) {
      return context.commit([{ type: 'app.scale', ...tenantAndName(context), replicas: context.body.replicas }]);
    },
  }),
  serve('POST /v1/apps/:tenant/:name/rollback', {
    async write(context) {
      return context.commit([{ type: 'app.rollback', ...tenantAndName(context), ...context.body }]);
    },
  }),
  serve('DELETE /v1/apps/:tenant/:name', {
    async write(context) {
      return context.commit([{ type: 'app.delete', ...tenantAndName(context) }]);
    },
  }),
  serve('GET /v1/instances', {
    read(context) {
      const filter: { tenant?: string; app?: string; node?: string } = {};
      const tenant = listTenant(context);
      const app = queryName(context.query, 'app');
      const node = queryNodeId(context.query, 'node');
      if (tenant !== undefined) filter.tenant = tenant;
      if (app !== undefined) filter.app = app;
      if (node !== undefined) filter.node = node;
      return { instances: context.backend.machine.instances(filter).filter((instance) => context.sees(instance.tenant)) };
    },
  }),
];

const resourceRoutes: Route[] = [
  serve('GET /v1/policies', {
    read(context) {
      return { policies: context.backend.machine.policies(listTenant(context)).filter((policy) => context.sees(policy.tenant)) };
    },
  }),
  serve('GET /v1/policies/test', {
    read(context) {
      const from = context.query.get('from') ?? '';
      const to = context.query.get('to') ?? '';
      const port = queryInteger(context.query, 'port', { min: 1, max: 65535 });
      if (port === undefined) throw invalidArgument('port', 'port is required: a port number from 1 to 65535');
      const destination = appReference(to, 'to');
      const source = parseIpv4(from) !== undefined ? { address: from } : appReference(from, 'from');
      context.authorize('read', destination.tenant);
      if ('tenant' in source) context.authorize('read', source.tenant);
      return { from, to, port, ...decide(policyModelOf(context.backend.machine), source, destination, port) };
    },
  }),
  serve('PUT /v1/policies/:tenant/:name', {
    async write(context) {
      const { apps = [], ingress = [], egress } = context.body;
      return context.commit([{ type: 'policy.put', ...tenantAndName(context), apps, ingress, ...(egress !== undefined ? { egress } : {}) }]);
    },
  }),
  serve('DELETE /v1/policies/:tenant/:name', {
    async write(context) {
      return context.commit([{ type: 'policy.delete', ...tenantAndName(context) }]);
    },
  }),
  serve('GET /v1/volumes', {
    read(context) {
      const machine = context.backend.machine;
      const volumes = machine.volumes(listTenant(context)).filter((volume) => context.sees(volume.tenant));
      // Its users: the apps whose current version mounts it.
      const users = (volume: Volume): string[] => machine.apps(volume.tenant).filter((app) => currentSpec(app).volumes.some((mount) => mount.source === volume.name)).map((app) => app.name);
      // The sealed key stays inside: the answer says only whether there is one.
      return { volumes: volumes.map(({ encryption, ...volume }) => ({ ...volume, encrypted: encryption !== undefined, users: users(volume) })) };
    },
  }),
  serve('PUT /v1/volumes/:tenant/:name', {
    async write(context) {
      const { encrypted = false, ...body } = context.body;
      if (typeof encrypted !== 'boolean') throw invalidArgument('encrypted', 'encrypted must be true or false');
      const target = tenantAndName(context);
      const command = withVolumeKey({ type: 'volume.create', ...target, ...body }, { requested: encrypted, tenant: context.backend.machine.tenant(target.tenant), clusterKey: () => context.backend.clusterKey() });
      return context.commit([command]);
    },
  }),
  serve('PUT /v1/volumes/:tenant/:name/io', {
    async write(context) {
      return context.commit([{ type: 'volume.set-io', ...tenantAndName(context), io: context.body.io }]);
    },
  }),
  serve('DELETE /v1/volumes/:tenant/:name', {
    async write(context) {
      return context.commit([{ type: 'volume.delete', ...tenantAndName(context) }]);
    },
  }),
  serve('GET /v1/secrets', {
    read(context) {
      return { secrets: context.backend.machine.secrets(listTenant(context)).filter((secret) => context.sees(secret.tenant)) };
    },
  }),
  serve('PUT /v1/secrets/:tenant/:name', {
    async write(context) {
      const { tenant, name } = tenantAndName(context);
      const value: unknown = context.body.value;
      if (typeof value !== 'string') throw invalidArgument('value', 'value must be a string (the secret\'s value)');
      if (Buffer.byteLength(value, 'utf8') > SECRET_VALUE_BYTES_MAX) {
        throw invalidArgument('value', `value must be at most ${SECRET_VALUE_BYTES_MAX} bytes, got ${Buffer.byteLength(value, 'utf8')}`);
      }
      // Sealed here: the plaintext never enters the log.
      const sealed = sealSecret(context.backend.clusterKey(), value, secretAssociatedData(tenant, name));
      return context.commit([{ type: 'secret.put', tenant, name, ciphertext: sealed.ciphertext, nonce: sealed.nonce }]);
    },
  }),
  serve('DELETE /v1/secrets/:tenant/:name', {
    async write(context) {
      return context.commit([{ type: 'secret.delete', ...tenantAndName(context) }]);
    },
  }),
];

/** The key from the path, checked as the state checks keys. */
function kvKey(context: RouteContext): string {
  const key = context.params.key ?? '';
  const checked = validateKvKey(key);
  if (!checked.ok) throw fromStateError({ ...checked.error, message: `the config ${checked.error.message}` });
  return key;
}

function expectVersionQuery(context: RouteContext): { expectVersion?: number } {
  const expectVersion = queryInteger(context.query, 'expectVersion', { min: 0, max: Number.MAX_SAFE_INTEGER });
  return expectVersion === undefined ? {} : { expectVersion };
}

/**
 * A deliberately broken build, for the chaos harness's proof that its checker
 * catches stale reads (chaos/test/broken-build.test.ts): with
 * HIVEMIND_TEST_UNSAFE_LOCAL_READS=1 in the agent's environment, `GET
 * /v1/kv/{key}` skips ReadIndex and answers from the local replica, which a
 * partitioned node serves stale. Test-only: never set it anywhere else.
 */
const UNSAFE_LOCAL_KV_READS = process.env['HIVEMIND_TEST_UNSAFE_LOCAL_READS'] === '1';

function kvGet(context: RouteContext): unknown {
  const key = kvKey(context);
  const entry = context.backend.machine.kvGet(key);
  if (entry === undefined) throw notFound(`key ${JSON.stringify(key)} does not exist`, 'key');
  return entry;
}

function kvGetRoute(): Route {
  if (UNSAFE_LOCAL_KV_READS) {
    return { method: 'GET', path: '/v1/kv/*key', kind: 'open', access: { need: 'cluster-read' }, handle: async (context) => ({ status: 200, json: kvGet(context) }) };
  }
  return { method: 'GET', path: '/v1/kv/*key', kind: 'read', access: { need: 'cluster-read' }, read: kvGet };
}

const kvRoutes: Route[] = [
  serve('GET /v1/kv', {
    read(context) {
      const prefix = context.query.get('prefix') ?? '';
      if (Buffer.byteLength(prefix, 'utf8') > LIMITS.kvKeyBytesMax) throw invalidArgument('prefix', `prefix must be at most ${LIMITS.kvKeyBytesMax} bytes`);
      const limit = queryInteger(context.query, 'limit', { min: 1, max: KV_LIST_LIMIT_MAX }) ?? KV_LIST_LIMIT_DEFAULT;
      return { entries: context.backend.machine.kvList(prefix, limit) };
    },
  }),
  kvGetRoute(),
  serve('PUT /v1/kv/*key', {
    async write(context) {
      const key = kvKey(context);
      return context.commit([{ type: 'kv.put', key, ...context.body }]);
    },
  }),
  serve('DELETE /v1/kv/*key', {
    async write(context) {
      return context.commit([{ type: 'kv.delete', key: kvKey(context), ...expectVersionQuery(context) }]);
    },
  }),
  serve('GET /v1/history', {
    read(context) {
      const limit = queryInteger(context.query, 'limit', { min: 1, max: HISTORY_LIMIT_MAX }) ?? HISTORY_LIMIT_DEFAULT;
      const before = queryInteger(context.query, 'before', { min: 1, max: Number.MAX_SAFE_INTEGER });
      // A caller that is not cluster-wide sees its tenants' entries only, out of the retained history.
      const visible = isClusterWide(context.principal) ? context.backend.machine.history(limit, before) : context.backend.machine.history(HISTORY_MAX, before).filter((entry) => seesHistory(context.principal, entry));
      return { history: visible.slice(0, limit) };
    },
  }),
];

/** Tenants, apps, instances, policies, volumes, secrets, kv, history. */
export const stateRoutes: Route[] = [...tenantRoutes, ...appRoutes, ...resourceRoutes, ...kvRoutes];
