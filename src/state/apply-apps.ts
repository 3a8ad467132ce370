/**
 * Apply handlers for apps: deploy, scale, rollback, delete, and the instance
 * records they keep. Pure: they read the state and the command only.
 *
 * Instance records. An app of `replicas` R wants slots 0..R-1 running at
 * `app.version`. Ids are `${tenant}.${app}.${slot}.${serial}` (names are DNS
 * labels, so ids are unique; the serial grows per app), so an old and a new
 * copy of one slot can coexist while the scheduler replaces one by the other.
 * - the first deploy (or any deploy when nothing runs) makes one instance per
 *   slot at the new version, unplaced;
 * - a later deploy or rollback makes a new version and a rollout record
 *   (`app.rollout`); it creates no instance: the leader's scheduler steps the
 *   rollout (`rollout.step`, apply-rollouts.ts), adding new-version instances
 *   and retiring old ones as the strategy and update_config say;
 * - scale adds instances for empty slots at `app.version` and retires the
 *   instances of slots beyond the new count;
 * - delete removes the app and all its instances.
 * Retiring sets `desired: 'stopped'`: the executor stops the instance and the
 * scheduler removes the record once it stopped; an unplaced instance is
 * removed at once.
 */
import { APP_NETWORKS_VERSION, CONTAINER_SETTINGS_VERSION, NETWORK_ALIASES_VERSION } from './version.js';
import { planDeployNetworks } from './apply-tenant-networks.js';
import { assert } from '../../consensus/core/assert.js';
import { ErrorCode, stateError, type StateError } from './errors.js';
import { addApp, quotaProblem, tenantUsage, type Usage } from './quota.js';
import { maybeAllocateVip } from './vip.js';
import { sameValue } from './same-value.js';
import { confinementProblem } from './tenant-confinement.js';
import { volumeFitProblem } from './volume-fit.js';
import { VOLUME_FIT_VERSION } from './version.js';
import { clusterVersionOf } from './apply-cluster.js';
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
import { APP_VERSIONS_MAX, type App, type AppSpec, type Command, type Instance, type Quota, type Rollout, type Tenant } from './types.js';
import { boolean, integer, list, object, oneOf, optional } from './schema.js';
import { appSpec, deployNetwork, name, LIMITS } from './fields.js';
import type { CommandModule } from './command.js';

type CommandOf<T extends Command['type']> = Extract<Command, { type: T }>;

/** The id of an app's instance in `slot` with `serial` (see the file comment). */
export function instanceId(tenant: string, app: string, slot: number, serial: number): string {
  return `${tenant}.${app}.${slot}.${serial}`;
}

/** Makes a new instance of `app` in `slot` at `version` (unplaced unless `node`), with the app's next serial. */
export function addInstance(state: ClusterState, app: App, { slot, version, node }: { slot: number; version: number; node?: string }, context: ApplyContext): Instance {
  const serial = (app.instanceSerial ?? 0) + 1;
  app.instanceSerial = serial;
  const id = instanceId(app.tenant, app.name, slot, serial);
  assert(!state.instances.has(id), `instance ${id} exists already`);
  const instance: Instance = {
    id,
    tenant: app.tenant,
    app: app.name,
    version,
    slot,
    desired: 'running',
    status: pendingStatus(context),
    createdIndex: context.index,
  };
  if (node !== undefined) instance.node = node;
  state.instances.set(id, instance);
  return instance;
}

/** Retires `instance`: desired 'stopped' (the executor stops it), or removed at once when it was never placed. */
export function retireInstance(state: ClusterState, instance: Instance, reason: string, context: ApplyContext): void {
  if (instance.node === undefined) {
    state.instances.delete(instance.id);
    return;
  }
  if (instance.desired === 'stopped') return;
  instance.desired = 'stopped';
  instance.retiredAt = context.time;
  instance.retiredReason = reason;
}

/** The app's instances, in state order. A scan: apps are few next to instances only in tests; the scheduler reads its own view. */
export function instancesOf(state: ClusterState, app: { tenant: string; name: string }): Instance[] {
  const found: Instance[] = [];
  for (const instance of state.instances.values()) if (instance.tenant === app.tenant && instance.app === app.name) found.push(instance);
  return found;
}

/** How a deploy names itself and its fields in refusals. */
interface DeployHow {
  /** "cannot deploy \"web\"". */
  action: string;
  /** The command field to blame for a problem at `path` of the spec. */
  field: (path: string) => string;
  summary: (version: number) => string;
  /** A rollback's rollout says so. */
  kind?: Rollout['kind'];
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
 * (the same steps again, so the same outcome). One app needs no scratch:
 * planning never changes the state.
 *
 * With a `project` (commands written before projects have none, and apply as
 * they always did): an app that belongs to another project is refused unless
 * `force`; an app whose current spec and replicas are the file's already is
 * left as it is, and one whose spec is the file's but was scaled by hand is
 * scaled back, without a new version; every app deployed joins the project.
 */
export function planAppDeployMany(state: ClusterState, command: CommandOf<'app.deploy-many'>, context: ApplyContext): Plan {
  const names = new Set<string>();
  for (const [position, spec] of command.specs.entries()) {
    const key = tenantKey(spec.tenant, spec.name);
    if (names.has(key)) return refuse('invalid-argument', `app "${spec.name}" of tenant "${spec.tenant}" appears twice`, `specs[${position}].name`);
    names.add(key);
  }
  const owner = command.force === true ? undefined : ownerProblem(state, command);
  if (owner !== undefined) return { ok: false, error: owner };
  const networks = planDeployNetworks(state, command.networks ?? [], context);
  if (!networks.ok) return networks;
  // The apps are planned against the networks as the commit leaves them (those it makes included).
  const planned: ClusterState = command.networks === undefined ? state : { ...state, networks: networks.networks };
  const changes = command.specs.map((spec) => changeOf(state, spec, command.project));
  const deployed = command.specs.filter((_, position) => changes[position] === 'deploy');
  const scratch = deployed.length <= 1 ? undefined : deployScratch(planned, deployed);
  for (const [position, spec] of command.specs.entries()) {
    const plan = planChange(scratch ?? planned, spec, changes[position]!, context);
    if (!plan.ok) {
      const field = plan.error.field === undefined ? `specs[${position}]` : `specs[${position}].${plan.error.field.replace(/^spec\./, '')}`;
      const others = command.specs.length - 1;
      const message = others > 0 ? `${plan.error.message}; none of the ${command.specs.length} apps was deployed` : plan.error.message;
      return { ok: false, error: stateError(plan.error.code, message, field) };
    }
    if (scratch !== undefined) plan.commit();
  }
  return {
    ok: true,
    commit: () => {
      const values: unknown[] = [];
      const summaries: string[] = networks.commit();
      for (const [position, spec] of command.specs.entries()) {
        const plan = planChange(state, spec, changes[position]!, context);
        assert(plan.ok, `deploy of ${spec.name} passed on the scratch state but not on the real one`);
        const outcome = plan.commit();
        const app = state.apps.get(tenantKey(spec.tenant, spec.name));
        assert(app !== undefined, `app ${spec.tenant}/${spec.name} is missing after its deploy`);
        if (command.project !== undefined) app.project = command.project;
        values.push(outcome.value);
        if (outcome.history) summaries.push(`${outcome.history.target}: ${outcome.history.summary}`);
      }
      const targets = command.specs.map((spec) => `${spec.tenant}/${spec.name}`);
      const project = command.project === undefined ? '' : ` (project ${command.project}${command.force === true ? ', forced' : ''})`;
      return { value: { apps: values }, history: { target: `apps ${targets.join(', ')}`, summary: `${summaries.join('; ')}${project}` } };
    },
  };
}

/** What a project's deploy does to one app: a new version, a scale back to the file's replicas, or nothing. */
type Change = 'deploy' | 'scale' | 'none';

function changeOf(state: ClusterState, spec: AppSpec, project: string | undefined): Change {
  const existing = state.apps.get(tenantKey(spec.tenant, spec.name));
  if (project === undefined || existing === undefined || !sameValue(currentSpec(existing), spec)) return 'deploy';
  return existing.replicas === spec.replicas ? 'none' : 'scale';
}

function planChange(state: ClusterState, spec: AppSpec, change: Change, context: ApplyContext): Plan {
  if (change === 'deploy') return planAppDeploy(state, { type: 'app.deploy', spec }, context);
  if (change === 'scale') return planAppScale(state, { type: 'app.scale', tenant: spec.tenant, name: spec.name, replicas: spec.replicas }, context);
  const app = state.apps.get(tenantKey(spec.tenant, spec.name));
  assert(app !== undefined, `unchanged app ${spec.tenant}/${spec.name} is missing`);
  return {
    ok: true,
    commit: () => ({
      value: { tenant: app.tenant, name: app.name, version: app.version, replicas: app.replicas, unchanged: true },
      history: { target: `app ${app.tenant}/${app.name}`, summary: `unchanged at version ${app.version}` },
    }),
  };
}

/** The first app of the command that belongs to another project than the command's. */
function ownerProblem(state: ClusterState, command: CommandOf<'app.deploy-many'>): StateError | undefined {
  if (command.project === undefined) return undefined;
  for (const [position, spec] of command.specs.entries()) {
    const owner = state.apps.get(tenantKey(spec.tenant, spec.name))?.project;
    if (owner === undefined || owner === command.project) continue;
    const message =
      `cannot deploy "${spec.name}": app "${spec.name}" of tenant "${spec.tenant}" belongs to project "${owner}", not "${command.project}"; ` +
      `rename the service, deploy into another tenant, or deploy with --force to take it over`;
    return stateError(ErrorCode.conflict, message, `specs[${position}].name`);
  }
  return undefined;
}

/**
 * A scratch state for planning and committing `specs` in turn, without
 * touching `state`, and without copying all of it (a deep copy of a large
 * cluster's state costs a second or more, on every node, for every deploy).
 * A deploy's commit changes only: the tenants, apps and instances maps
 * (entries set or deleted), the records of the app it deploys, and that
 * app's instances. So the scratch has its own copies of those three maps,
 * and its own deep copies of the apps the file names and of their
 * instances; everything else is shared, read only.
 */
function deployScratch(state: ClusterState, specs: readonly AppSpec[]): ClusterState {
  const named = new Set(specs.map((spec) => tenantKey(spec.tenant, spec.name)));
  const apps = new Map(state.apps);
  for (const key of named) {
    const app = apps.get(key);
    if (app !== undefined) apps.set(key, structuredClone(app));
  }
  const instances = new Map(state.instances);
  for (const [id, instance] of instances) if (named.has(tenantKey(instance.tenant, instance.app))) instances.set(id, structuredClone(instance));
  return { ...state, tenants: new Map(state.tenants), apps, instances };
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
    confinementRefusal(spec, tenant, how) ??
    referenceProblem(state, spec, how) ??
    (existing ? undefined : limitProblem('apps', state.apps.size, how.action)) ??
    instanceLimitProblem(state, spec.replicas - (existing?.replicas ?? 0), how.action) ??
    volumeFitRefusal(state, spec, spec.replicas, how.action, how.field) ??
    deployQuotaProblem(state, { tenant, spec, existing, how });
  if (problem) return { ok: false, error: problem };
  return {
    ok: true,
    commit: () => {
      adoptTenant(state, tenant);
      const from = existing?.version;
      const app = commitVersion(state, { spec, existing, context });
      const vip = maybeAllocateVip(state, app);
      const rollout = startRollout(state, app, { from, kind: how.kind ?? 'update' }, context);
      syncInstances(state, app, context);
      return {
        value: { tenant: app.tenant, name: app.name, version: app.version, replicas: app.replicas, ...(rollout ? { rollout: rollout.id } : {}), ...(app.vip !== undefined ? { vip: app.vip } : {}) },
        history: { target: `app ${app.tenant}/${app.name}`, summary: `${how.summary(app.version)}${vip !== undefined ? `; VIP ${vip}` : ''}` },
      };
    },
  };
}

/** What the tenant's settings do not allow (host mounts, host users): a 403, a cluster-admin's decision. */
function confinementRefusal(spec: AppSpec, tenant: Tenant, how: DeployHow): StateError | undefined {
  const problem = confinementProblem(spec, tenant.settings);
  return problem && { code: ErrorCode.forbidden, message: `${how.action}: ${problem.text}`, field: how.field(problem.field) };
}

/** Replicas that share a node-local volume but could never all run on its node (volume-fit.ts); from cluster version VOLUME_FIT_VERSION. */
function volumeFitRefusal(state: ClusterState, spec: AppSpec, replicas: number, action: string, field: (path: string) => string): StateError | undefined {
  if (clusterVersionOf(state) < VOLUME_FIT_VERSION) return undefined;
  const problem = volumeFitProblem(state, spec, replicas);
  return problem && { code: ErrorCode.invalidArgument, message: `${action}: ${problem.text}`, field: field(problem.field) };
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
  for (const [position, network] of (spec.networks ?? []).entries()) {
    if (state.networks.has(tenantKey(spec.tenant, network))) continue;
    return missing('network', network, spec.tenant, how, `networks[${position}]`);
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
  // After a rollback `version` is not the newest: the next number follows the newest kept.
  const version = Math.max(existing?.version ?? 0, ...(existing?.versions.map((entry) => entry.version) ?? [0])) + 1;
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
  return { state: 'pending', reportedAt: context.time, updatedIndex: context.index, since: context.time };
}

/**
 * Starts a rollout when the app has instances meant to run at another
 * version; a rollout still active is superseded (the new one starts from its
 * target). Returns the new rollout, or undefined when none is needed.
 */
function startRollout(state: ClusterState, app: App, { from, kind }: { from: number | undefined; kind: Rollout['kind'] }, context: ApplyContext): Rollout | undefined {
  const previous = app.rollout;
  const others = from === undefined ? [] : instancesOf(state, app).filter((instance) => instance.desired === 'running' && instance.version !== app.version);
  if (from === undefined || others.length === 0) {
    if (previous && isActive(previous)) app.rollout = { ...previous, state: 'superseded', message: `superseded by version ${app.version}`, updatedAt: context.time };
    return undefined;
  }
  const spec = currentSpec(app);
  const strategy = kind === 'rollback' ? 'rolling' : (spec.hivemind.strategy ?? 'rolling');
  const rollout: Rollout = {
    id: context.index,
    kind,
    strategy,
    fromVersion: from,
    toVersion: app.version,
    state: 'running',
    message: `starting: ${strategy} update from version ${from} to ${app.version}`,
    startedAt: context.time,
    updatedAt: context.time,
    batch: [],
    done: 0,
    total: app.replicas,
  };
  if (strategy === 'canary') {
    const canary = canarySize(spec.hivemind.canary, app.replicas);
    rollout.canaryInstances = canary.instances;
    rollout.weights = [
      { version: from, percent: 100 - canary.percent },
      { version: app.version, percent: canary.percent },
    ];
    rollout.total = canary.instances;
  }
  app.rollout = rollout;
  return rollout;
}

/** A canary's size: `instances`, else `weightPercent` of the replicas (at least 1); its weight: `weightPercent`, else its share of all instances. */
export function canarySize(canary: { instances?: number; weightPercent?: number } | undefined, replicas: number): { instances: number; percent: number } {
  const byWeight = canary?.weightPercent !== undefined ? Math.ceil((replicas * canary.weightPercent) / 100) : 1;
  const instances = Math.max(1, Math.min(Math.max(replicas, 1), canary?.instances ?? byWeight));
  const percent = canary?.weightPercent ?? Math.round((100 * instances) / (replicas + instances));
  return { instances, percent };
}

/** Whether a rollout still needs the scheduler or the user. */
export function isActive(rollout: Rollout): boolean {
  return rollout.state === 'running' || rollout.state === 'paused' || rollout.state === 'awaiting-promotion';
}

/**
 * Keeps slots 0..replicas-1 occupied and nothing beyond: a slot with no
 * instance meant to run gets one at `app.version`; instances of slots beyond
 * the count are retired.
 */
function syncInstances(state: ClusterState, app: App, context: ApplyContext): void {
  const occupied = new Set<number>();
  for (const instance of instancesOf(state, app)) {
    if (instance.desired !== 'running') continue;
    if (instance.slot >= app.replicas) retireInstance(state, instance, `scaled to ${app.replicas}`, context);
    else occupied.add(instance.slot);
  }
  for (let slot = 0; slot < app.replicas; slot++) if (!occupied.has(slot)) addInstance(state, app, { slot, version: app.version }, context);
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
    volumeFitRefusal(state, spec, command.replicas, action, (path) => path) ??
    quotaProblem({ tenant, before, after, action, fields: { instances: 'replicas', cpuMillis: 'replicas', memoryBytes: 'replicas' } });
  if (problem) return { ok: false, error: problem };
  return {
    ok: true,
    commit: () => {
      const from = app.replicas;
      app.replicas = command.replicas;
      app.updatedIndex = context.index;
      syncInstances(state, app, context);
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
    kind: 'rollback',
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
    // The kept version before the current one (after an automatic rollback the current is not the newest).
    const position = app.versions.findIndex((candidate) => candidate.version === app.version);
    const previous = position > 0 ? app.versions[position - 1] : undefined;
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
      for (const instance of instancesOf(state, app)) state.instances.delete(instance.id);
      return {
        value: { tenant: app.tenant, name: app.name },
        history: { target: `app ${app.tenant}/${app.name}`, summary: `deleted (was version ${app.version}, ${app.replicas} replicas)` },
      };
    },
  };
}

// -----------------------------------------------------------------------------
// The commands of this file as modules: schema, plan, proposers, version (listed in commands.ts).

/** The state version a spec needs: its newest field's. */
function specVersion(spec: AppSpec): number {
  if (spec.hivemind.networkAliases !== undefined) return NETWORK_ALIASES_VERSION;
  if (spec.networks !== undefined) return APP_NETWORKS_VERSION;
  return spec.container !== undefined || spec.configs !== undefined ? CONTAINER_SETTINGS_VERSION : 1;
}

/** `app.deploy`. */
export const appDeployCommand: CommandModule<'app.deploy'> = {
  type: 'app.deploy',
  since: 1,
  proposers: ['user'],
  schema: object<CommandOf<'app.deploy'>>({ type: oneOf(['app.deploy']), spec: appSpec }),
  versionOf: (command) => specVersion(command.spec),
  plan: planAppDeploy,
};

/** `app.deploy-many`. */
export const appDeployManyCommand: CommandModule<'app.deploy-many'> = {
  type: 'app.deploy-many',
  since: 1,
  proposers: ['user'],
  schema: object<CommandOf<'app.deploy-many'>>({
    type: oneOf(['app.deploy-many']),
    specs: list(appSpec, { min: 1, max: LIMITS.appsPerDeployMax }),
    project: optional(name),
    force: optional(boolean()),
    networks: optional(list(deployNetwork, { max: LIMITS.appsPerDeployMax })),
  }),
  versionOf: (command) => Math.max(command.networks === undefined ? 1 : APP_NETWORKS_VERSION, ...command.specs.map(specVersion)),
  plan: planAppDeployMany,
};

/** `app.scale`. */
export const appScaleCommand: CommandModule<'app.scale'> = {
  type: 'app.scale',
  since: 1,
  proposers: ['user'],
  schema: object<CommandOf<'app.scale'>>({
    type: oneOf(['app.scale']),
    tenant: name,
    name,
    replicas: integer({ min: 0, max: LIMITS.replicasMax }),
  }),
  plan: planAppScale,
};

/** `app.rollback`. */
export const appRollbackCommand: CommandModule<'app.rollback'> = {
  type: 'app.rollback',
  since: 1,
  proposers: ['user'],
  schema: object<CommandOf<'app.rollback'>>({
    type: oneOf(['app.rollback']),
    tenant: name,
    name,
    toVersion: optional(integer({ min: 1, max: Number.MAX_SAFE_INTEGER })),
  }),
  plan: planAppRollback,
};

/** `app.delete`. */
export const appDeleteCommand: CommandModule<'app.delete'> = {
  type: 'app.delete',
  since: 1,
  proposers: ['user'],
  schema: object<CommandOf<'app.delete'>>({ type: oneOf(['app.delete']), tenant: name, name }),
  plan: planAppDelete,
};
