/**
 * Apply handlers for apps: deploy, scale, rollback, delete, and the instance
 * records they keep. Pure: they read the state and the command only.
 *
 * Instance records. An app of `replicas` R has exactly the instances of slots
 * 0..R-1, with ids `${tenant}.${app}.${slot}` (names are DNS labels, so the
 * id is unique and stable across versions). Every instance's `desired` is
 * 'running'; an instance that is no longer wanted is removed, and the
 * executor stops whatever runs for an id that is gone.
 * - deploy and rollback make a new version: every instance takes the new
 *   version and is reset to 'pending', keeping its node (the scheduler of a
 *   later issue drives rolling updates from there); slots beyond the new
 *   replica count are removed, new slots are added unplaced.
 * - scale adds unplaced slots or removes the highest ones; no new version.
 * - delete removes the app and all its instances.
 * A deploy sets the replica count to the spec's; so does a rollback (the
 * earlier spec comes back whole, replicas included).
 */
import { assert } from '../../consensus/core/assert.js';
import { ErrorCode, stateError, type StateError } from './errors.js';
import { decodeState, encodeState } from './snapshot.js';
import { addApp, quotaProblem, tenantUsage, type Usage } from './quota.js';
import {
  adoptTenant,
  currentSpec,
  limitProblem,
  lookupTenant,
  refuse,
  tenantKey,
  type ApplyContext,
  type ClusterState,
  type Plan,
} from './state.js';
import { APP_VERSIONS_MAX, type App, type AppSpec, type Command, type Instance, type Quota, type Tenant } from './types.js';

type CommandOf<T extends Command['type']> = Extract<Command, { type: T }>;

/** The id of an app's instance in `slot`. */
export function instanceId(tenant: string, app: string, slot: number): string {
  return `${tenant}.${app}.${slot}`;
}

/** How a deploy names itself and its fields in refusals. */
interface DeployHow {
  /** "cannot deploy \"web\"". */
  action: string;
  /** The command field to blame for a problem at `path` of the spec. */
  field: (path: string) => string;
  summary: (version: number) => string;
}

/** app.deploy: creates the app or makes its next version. */
export function planAppDeploy(state: ClusterState, command: CommandOf<'app.deploy'>, context: ApplyContext): Plan {
  const { spec } = command;
  return planDeploy(state, spec, context, {
    action: `cannot deploy "${spec.name}"`,
    field: (path) => `spec.${path}`,
    summary: (version) => `deployed version ${version} (${describeSpec(spec)})`,
  });
}

/**
 * All the apps of one file, or none. Each deploy is planned and committed on a
 * scratch copy of the state, in order, so later apps see the quota the earlier
 * ones use; only if every one passes are they committed to the real state
 * (the same steps again, so the same outcome).
 */
export function planAppDeployMany(state: ClusterState, command: CommandOf<'app.deploy-many'>, context: ApplyContext): Plan {
  const names = new Set<string>();
  for (const [position, spec] of command.specs.entries()) {
    const key = tenantKey(spec.tenant, spec.name);
    if (names.has(key)) return refuse('invalid-argument', `app "${spec.name}" of tenant "${spec.tenant}" appears twice`, `specs[${position}].name`);
    names.add(key);
  }
  const scratch = decodeState(encodeState(state));
  for (const [position, spec] of command.specs.entries()) {
    const plan = planAppDeploy(scratch, { type: 'app.deploy', spec }, context);
    if (!plan.ok) {
      const field = plan.error.field === undefined ? `specs[${position}]` : `specs[${position}].${plan.error.field.replace(/^spec\./, '')}`;
      const others = command.specs.length - 1;
      const message = others > 0 ? `${plan.error.message}; none of the ${command.specs.length} apps was deployed` : plan.error.message;
      return { ok: false, error: stateError(plan.error.code, message, field) };
    }
    plan.commit();
  }
  return {
    ok: true,
    commit: () => {
      const deployed: unknown[] = [];
      const summaries: string[] = [];
      for (const spec of command.specs) {
        const plan = planAppDeploy(state, { type: 'app.deploy', spec }, context);
        assert(plan.ok, `deploy of ${spec.name} passed on the scratch state but not on the real one`);
        const outcome = plan.commit();
        deployed.push(outcome.value);
        if (outcome.history) summaries.push(`${outcome.history.target}: ${outcome.history.summary}`);
      }
      const targets = command.specs.map((spec) => `${spec.tenant}/${spec.name}`);
      return { value: { apps: deployed }, history: { target: `apps ${targets.join(', ')}`, summary: summaries.join('; ') } };
    },
  };
}

function describeSpec(spec: AppSpec): string {
  const what = spec.image !== undefined ? `image ${spec.image}` : `command ${(spec.command ?? []).join(' ')}`;
  const shown = what.length > 120 ? `${what.slice(0, 117)}...` : what;
  return `${shown}, ${spec.replicas} replica${spec.replicas === 1 ? '' : 's'}`;
}

function planDeploy(state: ClusterState, spec: AppSpec, context: ApplyContext, how: DeployHow): Plan {
  const found = lookupTenant(state, spec.tenant, { field: how.field('tenant'), action: how.action, context });
  if (!found.ok) return found;
  const tenant = found.tenant;
  const existing = state.apps.get(tenantKey(spec.tenant, spec.name));
  const problem =
    referenceProblem(state, spec, how) ??
    (existing ? undefined : limitProblem('apps', state.apps.size, how.action)) ??
    instanceLimitProblem(state, spec.replicas - (existing?.replicas ?? 0), how.action) ??
    deployQuotaProblem(state, { tenant, spec, existing, how });
  if (problem) return { ok: false, error: problem };
  return {
    ok: true,
    commit: () => {
      adoptTenant(state, tenant);
      const app = commitVersion(state, { spec, existing, context });
      syncInstances(state, app, context, { resetVersion: true });
      return {
        value: { tenant: app.tenant, name: app.name, version: app.version, replicas: app.replicas },
        history: { target: `app ${app.tenant}/${app.name}`, summary: how.summary(app.version) },
      };
    },
  };
}

/** Named volumes, secrets and policies of the spec must exist in its tenant. */
function referenceProblem(state: ClusterState, spec: AppSpec, how: DeployHow): StateError | undefined {
  for (const [position, mount] of spec.volumes.entries()) {
    if (mount.source.startsWith('/') || state.volumes.has(tenantKey(spec.tenant, mount.source))) continue;
    return missing('volume', mount.source, spec.tenant, how, `volumes[${position}].source`);
  }
  for (const [position, secret] of (spec.hivemind.secrets ?? []).entries()) {
    if (state.secrets.has(tenantKey(spec.tenant, secret))) continue;
    return missing('secret', secret, spec.tenant, how, `hivemind.secrets[${position}]`);
  }
  for (const [position, policy] of (spec.hivemind.policies ?? []).entries()) {
    if (state.policies.has(tenantKey(spec.tenant, policy))) continue;
    return missing('network policy', policy, spec.tenant, how, `hivemind.policies[${position}]`);
  }
  return undefined;
}

function missing(kind: string, name: string, tenant: string, how: DeployHow, path: string): StateError {
  const message = `${how.action}: ${kind} "${name}" (${path}) does not exist in tenant "${tenant}"; create it first`;
  return { code: ErrorCode.notFound, message, field: how.field(path) };
}

function instanceLimitProblem(state: ClusterState, added: number, action: string): StateError | undefined {
  return added > 0 ? limitProblem('instances', state.instances.size + added - 1, action) : undefined;
}

function deployQuotaProblem(
  state: ClusterState,
  { tenant, spec, existing, how }: { tenant: Tenant; spec: AppSpec; existing: App | undefined; how: DeployHow },
): StateError | undefined {
  const before = tenantUsage(state, tenant.name);
  const after: Usage = { ...before };
  if (existing) addApp(after, currentSpec(existing), existing.replicas, -1);
  addApp(after, spec, spec.replicas, 1);
  const fields: Partial<Record<keyof Quota, string>> = {
    apps: how.field('name'),
    instances: how.field('replicas'),
    cpuMillis: how.field(spec.reservations.cpuMillis !== undefined ? 'reservations.cpuMillis' : 'limits.cpuMillis'),
    memoryBytes: how.field(spec.reservations.memoryBytes !== undefined ? 'reservations.memoryBytes' : 'limits.memoryBytes'),
  };
  return quotaProblem({ tenant, before, after, action: how.action, fields });
}

function commitVersion(state: ClusterState, { spec, existing, context }: { spec: AppSpec; existing: App | undefined; context: ApplyContext }): App {
  const version = (existing?.version ?? 0) + 1;
  const entry = { version, spec, deployedIndex: context.index, deployedAt: context.time };
  if (!existing) {
    const app: App = {
      tenant: spec.tenant,
      name: spec.name,
      version,
      replicas: spec.replicas,
      versions: [entry],
      createdIndex: context.index,
      updatedIndex: context.index,
    };
    state.apps.set(tenantKey(spec.tenant, spec.name), app);
    return app;
  }
  existing.version = version;
  existing.replicas = spec.replicas;
  existing.versions.push(entry);
  if (existing.versions.length > APP_VERSIONS_MAX) existing.versions.splice(0, existing.versions.length - APP_VERSIONS_MAX);
  existing.updatedIndex = context.index;
  return existing;
}

function pendingStatus(context: ApplyContext): Instance['status'] {
  return { state: 'pending', reportedAt: context.time, updatedIndex: context.index };
}

/** Makes the app's instances exactly slots 0..replicas-1 (see the file comment). */
function syncInstances(state: ClusterState, app: App, context: ApplyContext, { resetVersion }: { resetVersion: boolean }): void {
  for (let slot = 0; slot < app.replicas; slot++) {
    const id = instanceId(app.tenant, app.name, slot);
    const instance = state.instances.get(id);
    if (!instance) {
      state.instances.set(id, {
        id,
        tenant: app.tenant,
        app: app.name,
        version: app.version,
        slot,
        desired: 'running',
        status: pendingStatus(context),
        createdIndex: context.index,
      });
    } else if (resetVersion) {
      instance.version = app.version;
      instance.status = pendingStatus(context);
    }
  }
  for (let slot = app.replicas; state.instances.delete(instanceId(app.tenant, app.name, slot)); slot++);
}

function findApp(state: ClusterState, command: { tenant: string; name: string }, action: string): { ok: true; app: App } | { ok: false; error: StateError } {
  const app = state.apps.get(tenantKey(command.tenant, command.name));
  if (app) return { ok: true, app };
  return { ok: false, error: { code: ErrorCode.notFound, message: `${action}: tenant "${command.tenant}" has no app "${command.name}"`, field: 'name' } };
}

/** app.scale: sets the replica count without a new version; quota-checked. */
export function planAppScale(state: ClusterState, command: CommandOf<'app.scale'>, context: ApplyContext): Plan {
  const action = `cannot scale "${command.name}" to ${command.replicas} replicas`;
  const found = findApp(state, command, action);
  if (!found.ok) return found;
  const { app } = found;
  const tenant = state.tenants.get(app.tenant);
  assert(tenant !== undefined, `app ${app.tenant}/${app.name} outlived its tenant`);
  const spec = currentSpec(app);
  const before = tenantUsage(state, app.tenant);
  const after = addApp(addApp({ ...before }, spec, app.replicas, -1), spec, command.replicas, 1);
  const problem =
    instanceLimitProblem(state, command.replicas - app.replicas, action) ??
    quotaProblem({ tenant, before, after, action, fields: { instances: 'replicas', cpuMillis: 'replicas', memoryBytes: 'replicas' } });
  if (problem) return { ok: false, error: problem };
  return {
    ok: true,
    commit: () => {
      const from = app.replicas;
      app.replicas = command.replicas;
      app.updatedIndex = context.index;
      syncInstances(state, app, context, { resetVersion: false });
      return {
        value: { tenant: app.tenant, name: app.name, version: app.version, replicas: app.replicas },
        history: { target: `app ${app.tenant}/${app.name}`, summary: `scaled from ${from} to ${app.replicas} replicas` },
      };
    },
  };
}

/**
 * app.rollback: a new version whose spec is an earlier version's (default:
 * the one before the current). Checked like a deploy (quota, references).
 */
export function planAppRollback(state: ClusterState, command: CommandOf<'app.rollback'>, context: ApplyContext): Plan {
  const action = `cannot roll back "${command.name}"`;
  const found = findApp(state, command, action);
  if (!found.ok) return found;
  const { app } = found;
  const target = rollbackTarget(app, command.toVersion, action);
  if (!target.ok) return target;
  const { version, spec } = target.entry;
  return planDeploy(state, spec, context, {
    action: `${action} to version ${version}`,
    field: () => 'toVersion',
    summary: (made) => `rolled back to version ${version} as version ${made} (${describeSpec(spec)})`,
  });
}

function rollbackTarget(
  app: App,
  toVersion: number | undefined,
  action: string,
): { ok: true; entry: App['versions'][number] } | { ok: false; error: StateError } {
  if (toVersion === undefined) {
    const previous = app.versions[app.versions.length - 2];
    if (previous) return { ok: true, entry: previous };
    return { ok: false, error: { code: ErrorCode.conflict, message: `${action}: it has no earlier version kept (current is version ${app.version})` } };
  }
  if (toVersion === app.version) {
    const message = `${action} to version ${toVersion}: it is already the current version; name an earlier one`;
    return { ok: false, error: { code: ErrorCode.conflict, message, field: 'toVersion' } };
  }
  const entry = app.versions.find((candidate) => candidate.version === toVersion);
  if (entry) return { ok: true, entry };
  const kept = app.versions.map((candidate) => candidate.version);
  const message = `${action} to version ${toVersion}: no such version is kept (kept: ${kept[0]} to ${kept[kept.length - 1]})`;
  return { ok: false, error: { code: ErrorCode.notFound, message, field: 'toVersion' } };
}

/** app.delete: removes the app and its instances. */
export function planAppDelete(state: ClusterState, command: CommandOf<'app.delete'>): Plan {
  const found = findApp(state, command, `cannot delete "${command.name}"`);
  if (!found.ok) return found;
  const { app } = found;
  return {
    ok: true,
    commit: () => {
      state.apps.delete(tenantKey(app.tenant, app.name));
      for (let slot = 0; slot < app.replicas; slot++) state.instances.delete(instanceId(app.tenant, app.name, slot));
      return {
        value: { tenant: app.tenant, name: app.name },
        history: { target: `app ${app.tenant}/${app.name}`, summary: `deleted (was version ${app.version}, ${app.replicas} replicas)` },
      };
    },
  };
}
