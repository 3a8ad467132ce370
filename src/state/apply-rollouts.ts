/**
 * Apply handlers for the scheduler's commands (rollout steps, reschedules,
 * removals, preemptions, unplaceable reports) and for the user's rollout
 * commands (promote, abort, rebalance). Pure: they read the state and the
 * command only.
 *
 * The scheduler plans on the leader and proposes; the state may have moved
 * on by the time a step applies, so every step names what it was planned for
 * (the rollout id, instance ids) and is refused when that is gone: the
 * scheduler plans again from the newer state.
 */
import { ErrorCode, type StateError } from './errors.js';
import { addInstance, isActive, retireInstance } from './apply-apps.js';
import { currentSpec, limitProblem, refuse, tenantKey, type ApplyContext, type ClusterState, type Plan } from './state.js';
import { addApp, quotaProblem, tenantUsage } from './quota.js';
import { isReady } from './readiness.js';
import type { App, Command, Instance, Rollout, RolloutPatch } from './types.js';
import { boolean, integer, list, object, oneOf, optional, refine } from './schema.js';
import { count, failureReason, freeText, identifier, name, nonEmptyText, repeatedId, LIMITS } from './fields.js';
import type { CommandModule } from './command.js';

type CommandOf<T extends Command['type']> = Extract<Command, { type: T }>;

/** The state version from which a `rollout.step`'s retirements may name their keeper (`retire[].keeper`), refused when it no longer serves. */
export const KEEPERS_STATE_VERSION = 4;

/**
 * The state version from which a `rollout.step` may retire an earlier
 * version's unavailable instances on condition (`retire[].unlessServing`),
 * refused when the instance serves by the time the step applies.
 */
export const UNLESS_SERVING_STATE_VERSION = 5;

function findApp(state: ClusterState, command: { tenant: string; name: string }, action: string): { ok: true; app: App } | { ok: false; error: StateError } {
  const app = state.apps.get(tenantKey(command.tenant, command.name));
  if (app) return { ok: true, app };
  return { ok: false, error: { code: ErrorCode.notFound, message: `${action}: tenant "${command.tenant}" has no app "${command.name}"`, field: 'name' } };
}

/**
 * Why restoring `rollout.fromVersion` would take the app's tenant past its
 * quota, if it would: the earlier version may ask for more than the current
 * one, and the quota may have been lowered since it ran.
 */
function restoreQuotaProblem(state: ClusterState, app: App, rollout: Rollout, action: string): StateError | undefined {
  const tenant = state.tenants.get(app.tenant);
  const from = app.versions.find((entry) => entry.version === rollout.fromVersion);
  if (tenant === undefined || from === undefined) return undefined;
  const before = tenantUsage(state, app.tenant);
  const after = addApp(addApp({ ...before }, currentSpec(app), app.replicas, -1), from.spec, app.replicas, 1);
  return quotaProblem({ tenant, before, after, action, fields: { instances: 'name', cpuMillis: 'name', memoryBytes: 'name' } });
}

function nodeProblem(state: ClusterState, id: string, action: string, field: string): StateError | undefined {
  const node = state.nodes.get(id);
  if (node === undefined) return { code: ErrorCode.notFound, message: `${action}: node "${id}" is not registered`, field };
  if (node.status !== 'up') return { code: ErrorCode.conflict, message: `${action}: node "${id}" is ${node.status}, not up; choose another node`, field };
  return undefined;
}

/**
 * Why the keeper a retirement names cannot take its place, if it cannot: it
 * must be one of the app's instances, not retired by the same step, and
 * serve now by the readiness rule the scheduler planned with. The step was
 * planned when it served; an exit, a failed healthcheck or its node's loss
 * may have applied since, and retiring the slot's ready instances then would
 * leave the slot with none (the rolling update's plan/apply race).
 */
function keeperServes(state: ClusterState, app: App, keeperId: string, retire: readonly { id: string }[], action: string): Omit<StateError, 'field'> | undefined {
  const keeper = state.instances.get(keeperId);
  if (keeper === undefined || keeper.tenant !== app.tenant || keeper.app !== app.name) {
    return { code: ErrorCode.conflict, message: `${action}: keeper "${keeperId}" is not one of its instances (it may be gone); plan again` };
  }
  if (retire.some((item) => item.id === keeperId)) return { code: ErrorCode.invalidArgument, message: `${action}: keeper "${keeperId}" is retired by the same step` };
  const spec = app.versions.find((entry) => entry.version === keeper.version)?.spec;
  if (spec === undefined || !isReady(keeper, spec, state.nodes)) {
    const node = keeper.node === undefined ? 'unplaced' : `on node "${keeper.node}" (${state.nodes.get(keeper.node)?.status ?? 'not registered'})`;
    return { code: ErrorCode.conflict, message: `${action}: keeper "${keeperId}" no longer serves (${keeper.desired === 'running' ? keeper.status.state : 'retired'}, ${node}); plan again` };
  }
  return undefined;
}

/**
 * Why an instance retired on condition that it does not serve
 * (`unlessServing`) must stay, if it must: the scheduler planned it out as an
 * unavailable surplus of its slot; a health report applied since may have
 * made it serve, and its slot may hold nothing else that does.
 */
function servesAfterAll(state: ClusterState, app: App, instance: Instance, action: string): Omit<StateError, 'field'> | undefined {
  const spec = app.versions.find((entry) => entry.version === instance.version)?.spec;
  if (spec === undefined || !isReady(instance, spec, state.nodes)) return undefined;
  return { code: ErrorCode.conflict, message: `${action}: instance "${instance.id}" was to be retired as unavailable, but it serves now (${instance.status.state} on node "${instance.node}"); plan again` };
}

/** A rollback rollout that restores `rollout.fromVersion`, started at `context`. */
function rollbackOf(rollout: Rollout, replicas: number, message: string, context: ApplyContext): Rollout {
  return {
    id: context.index,
    kind: 'rollback',
    strategy: 'rolling',
    fromVersion: rollout.toVersion,
    toVersion: rollout.fromVersion,
    state: 'running',
    message,
    startedAt: context.time,
    updatedAt: context.time,
    batch: [],
    done: 0,
    total: replicas,
  };
}

/**
 * rollout.step: adds instances, retires instances, changes the rollout
 * record, or starts a rollback, all at once. `rollout` must name the app's
 * active rollout (0: the step needs none, as a rebalance move).
 */
export function planRolloutStep(state: ClusterState, command: CommandOf<'rollout.step'>, context: ApplyContext): Plan {
  const action = `cannot step the rollout of "${command.name}"`;
  const found = findApp(state, command, action);
  if (!found.ok) return found;
  const { app } = found;
  const rollout = app.rollout;
  if (command.rollout !== 0 && (rollout === undefined || rollout.id !== command.rollout || !isActive(rollout))) {
    const now = rollout === undefined ? 'it has none' : `its rollout is ${rollout.id} (${rollout.state})`;
    return refuse(ErrorCode.conflict, `${action}: the step was planned for rollout ${command.rollout}, but ${now}; plan again`, 'rollout');
  }
  if ((command.set !== undefined || command.rollbackBecause !== undefined) && command.rollout === 0) {
    return refuse(ErrorCode.invalidArgument, `${action}: changing a rollout needs its id`, 'rollout');
  }
  for (const [position, item] of command.add.entries()) {
    if (item.slot >= app.replicas) return refuse(ErrorCode.conflict, `${action}: slot ${item.slot} is beyond the app's ${app.replicas} replicas`, `add[${position}].slot`);
    if (!app.versions.some((entry) => entry.version === item.version)) {
      return refuse(ErrorCode.notFound, `${action}: version ${item.version} is not kept`, `add[${position}].version`);
    }
    if (item.node !== undefined) {
      const problem = nodeProblem(state, item.node, action, `add[${position}].node`);
      if (problem) return { ok: false, error: problem };
    }
  }
  if (command.add.length > 0) {
    const limit = limitProblem('instances', state.instances.size + command.add.length - 1, action);
    if (limit) return { ok: false, error: limit };
  }
  const retired: Instance[] = [];
  for (const [position, item] of command.retire.entries()) {
    const instance = state.instances.get(item.id);
    if (instance === undefined || instance.tenant !== app.tenant || instance.app !== app.name) {
      return refuse(ErrorCode.notFound, `${action}: instance "${item.id}" is not one of its instances (it may be gone); plan again`, `retire[${position}].id`);
    }
    retired.push(instance);
    const keeperProblem = item.keeper === undefined ? undefined : keeperServes(state, app, item.keeper, command.retire, action);
    if (keeperProblem !== undefined) return { ok: false, error: { ...keeperProblem, field: `retire[${position}].keeper` } };
    const servingProblem = item.unlessServing === true ? servesAfterAll(state, app, instance, action) : undefined;
    if (servingProblem !== undefined) return { ok: false, error: { ...servingProblem, field: `retire[${position}].unlessServing` } };
  }
  if (command.rebalance !== undefined && app.rebalance === undefined) {
    return refuse(ErrorCode.conflict, `${action}: no rebalance was asked for`, 'rebalance');
  }
  // A rollback that would not fit the tenant's quota pauses the rollout instead, saying why: the quota holds for rollbacks too.
  const rollbackBlocked = rollout !== undefined && command.rollbackBecause !== undefined ? restoreQuotaProblem(state, app, rollout, `cannot roll back to version ${rollout.fromVersion}`) : undefined;
  return {
    ok: true,
    commit: () => {
      const summaries: string[] = [];
      const added = command.add.map((item) => addInstance(state, app, item, context).id);
      for (const [position, instance] of retired.entries()) retireInstance(state, instance, command.retire[position]!.reason, context);
      let changedState = false;
      if (rollout !== undefined && command.set !== undefined) {
        changedState = command.set.state !== undefined && command.set.state !== rollout.state;
        Object.assign(rollout, command.set);
        rollout.updatedAt = context.time;
        if (changedState) summaries.push(`rollout to version ${rollout.toVersion} ${rollout.state}: ${rollout.message}`);
      }
      if (rollout !== undefined && command.rollbackBecause !== undefined && rollbackBlocked !== undefined) {
        changedState = rollout.state !== 'paused';
        rollout.state = 'paused';
        rollout.message = `${command.rollbackBecause}; ${rollbackBlocked.message}; paused: raise the quota and abort, or deploy a version that works`;
        rollout.updatedAt = context.time;
        summaries.push(`update to version ${rollout.toVersion} failed: ${rollout.message}`);
      } else if (rollout !== undefined && command.rollbackBecause !== undefined) {
        app.version = rollout.fromVersion;
        const message = `rolling back to version ${rollout.fromVersion}: ${command.rollbackBecause}`;
        app.rollout = rollbackOf(rollout, app.replicas, message, context);
        changedState = true;
        summaries.push(`update to version ${rollout.toVersion} failed; ${message}`);
      }
      if (command.rebalance === 'moved' && app.rebalance) {
        app.rebalance.moves++;
        app.rebalance.moveStartedAt = context.time;
      }
      if (command.rebalance === 'done' && app.rebalance) {
        const moves = `${app.rebalance.moves} move${app.rebalance.moves === 1 ? '' : 's'}`;
        // A rebalance that ends by retiring a copy gave that move up: say which and why.
        const givenUp = command.retire[0];
        summaries.push(givenUp === undefined ? `rebalanced (${moves})` : `rebalance ended (${moves}); gave up the move of ${givenUp.id}: ${givenUp.reason}`);
        delete app.rebalance;
        changedState = true;
      }
      app.updatedIndex = context.index;
      const value = { added, retired: retired.map((instance) => instance.id) };
      if (!changedState) return { value };
      return { value, history: { target: `app ${app.tenant}/${app.name}`, summary: summaries.join('; ') } };
    },
  };
}

/** instance.reschedule: unplaces instances that failed, to be placed again after `notBefore`, elsewhere when possible. */
export function planInstanceReschedule(state: ClusterState, command: CommandOf<'instance.reschedule'>, context: ApplyContext): Plan {
  const instances: Instance[] = [];
  for (const [position, update] of command.updates.entries()) {
    const instance = state.instances.get(update.id);
    const action = `cannot reschedule instance "${update.id}"`;
    if (instance === undefined) return refuse(ErrorCode.notFound, `${action}: it does not exist`, `updates[${position}].id`);
    if (instance.desired !== 'running') return refuse(ErrorCode.conflict, `${action}: it is retired`, `updates[${position}].id`);
    instances.push(instance);
  }
  return {
    ok: true,
    commit: () => {
      for (const [position, instance] of instances.entries()) {
        const update = command.updates[position]!;
        delete instance.node;
        instance.attempt = (instance.attempt ?? 0) + 1;
        instance.notBefore = update.notBefore;
        if (update.avoidNode !== undefined) instance.avoidNode = update.avoidNode;
        const message = update.reason === undefined ? 'rescheduled after failing' : `rescheduled after failing${update.avoidNode === undefined ? '' : ` on ${update.avoidNode}`}: ${update.reason}`;
        instance.status = { state: 'pending', message, reportedAt: context.time, updatedIndex: context.index, since: context.time };
        if (update.reason !== undefined) instance.lastFailure = { message: update.reason, ...(update.avoidNode === undefined ? {} : { node: update.avoidNode }) };
      }
      const shown = instances.slice(0, 5).map((instance) => `${instance.id} (attempt ${instance.attempt})`);
      const more = instances.length > shown.length ? ` and ${instances.length - shown.length} more` : '';
      return { value: { rescheduled: instances.length }, history: { target: 'instances', summary: `rescheduled after failing: ${shown.join(', ')}${more}` } };
    },
  };
}

/** instance.remove: drops retired instances' records. Ids already gone are skipped; an instance meant to run is refused. Not in history. */
export function planInstanceRemove(state: ClusterState, command: CommandOf<'instance.remove'>): Plan {
  for (const [position, id] of command.ids.entries()) {
    const instance = state.instances.get(id);
    if (instance !== undefined && instance.desired === 'running') {
      return refuse(ErrorCode.conflict, `cannot remove instance "${id}": it is meant to run; retire it first`, `ids[${position}]`);
    }
  }
  return {
    ok: true,
    commit: () => {
      let removed = 0;
      for (const id of command.ids) if (state.instances.delete(id)) removed++;
      return { value: { removed } };
    },
  };
}

/** instance.preempt: unplaces the lower-priority victims and places `id` on `node`; the reasons go to history. */
export function planInstancePreempt(state: ClusterState, command: CommandOf<'instance.preempt'>, context: ApplyContext): Plan {
  const action = `cannot preempt for instance "${command.id}"`;
  const instance = state.instances.get(command.id);
  if (instance === undefined || instance.desired !== 'running') return refuse(ErrorCode.notFound, `${action}: it does not exist or is retired`, 'id');
  const problem = nodeProblem(state, command.node, action, 'node');
  if (problem) return { ok: false, error: problem };
  const victims: Instance[] = [];
  for (const [position, eviction] of command.evictions.entries()) {
    const victim = state.instances.get(eviction.id);
    if (victim === undefined || victim.desired !== 'running' || victim.node !== command.node) {
      return refuse(ErrorCode.conflict, `${action}: instance "${eviction.id}" no longer runs on node "${command.node}"; plan again`, `evictions[${position}].id`);
    }
    victims.push(victim);
  }
  return {
    ok: true,
    commit: () => {
      for (const victim of victims) {
        delete victim.node;
        victim.status = { state: 'pending', message: 'preempted', reportedAt: context.time, updatedIndex: context.index, since: context.time };
      }
      instance.node = command.node;
      instance.status = { state: 'pending', reportedAt: context.time, updatedIndex: context.index, since: context.time };
      const reasons = command.evictions.map((eviction) => eviction.reason).join('; ');
      return {
        value: { placed: instance.id, evicted: victims.map((victim) => victim.id) },
        history: { target: `instance ${instance.id}`, summary: `placed on ${command.node} by preemption: ${reasons}` },
      };
    },
  };
}

/** app.unplaceable: records (or clears, count 0) why apps' instances cannot be placed. Apps gone are skipped. Not in history. */
export function planAppUnplaceable(state: ClusterState, command: CommandOf<'app.unplaceable'>, context: ApplyContext): Plan {
  return {
    ok: true,
    commit: () => {
      for (const update of command.updates) {
        const app = state.apps.get(tenantKey(update.tenant, update.name));
        if (app === undefined) continue;
        if (update.count === 0) delete app.unplaceable;
        else app.unplaceable = { count: update.count, reasons: update.reasons, updatedAt: context.time };
      }
      return { value: { updated: command.updates.length } };
    },
  };
}

function activeRollout(app: App, action: string): { ok: true; rollout: Rollout } | { ok: false; error: StateError } {
  const rollout = app.rollout;
  if (rollout !== undefined && isActive(rollout)) return { ok: true, rollout };
  const last = rollout === undefined ? 'it was never updated' : `its last rollout ${rollout.state}`;
  return { ok: false, error: { code: ErrorCode.conflict, message: `${action}: no rollout is in progress (${last})`, field: 'name' } };
}

/**
 * app.promote: blue-green awaiting promotion: retire the old version's
 * instances (the switch). Canary: finish as a rolling update. Paused rolling
 * update: resume.
 */
export function planAppPromote(state: ClusterState, command: CommandOf<'app.promote'>, context: ApplyContext): Plan {
  const action = `cannot promote "${command.name}"`;
  const found = findApp(state, command, action);
  if (!found.ok) return found;
  const { app } = found;
  const active = activeRollout(app, action);
  if (!active.ok) return active;
  const { rollout } = active;
  if (rollout.strategy === 'blue-green' && rollout.state !== 'awaiting-promotion') {
    return refuse(ErrorCode.conflict, `${action}: the new version is not ready yet (${rollout.done} of ${rollout.total} instances ready); wait, or abort`, 'name');
  }
  if (rollout.strategy === 'rolling' && rollout.state !== 'paused') {
    return refuse(ErrorCode.conflict, `${action}: a rolling update runs by itself; only a paused one can be promoted (resumed)`, 'name');
  }
  return {
    ok: true,
    commit: () => {
      let summary: string;
      if (rollout.strategy === 'blue-green') {
        let retired = 0;
        for (const instance of [...state.instances.values()]) {
          if (instance.tenant !== app.tenant || instance.app !== app.name || instance.desired !== 'running' || instance.version === rollout.toVersion) continue;
          retireInstance(state, instance, `blue-green promoted to version ${rollout.toVersion}`, context);
          retired++;
        }
        Object.assign(rollout, { state: 'succeeded', message: `promoted: version ${rollout.toVersion} serves, ${retired} old instances retired`, done: rollout.total });
        summary = rollout.message;
      } else if (rollout.strategy === 'canary') {
        Object.assign(rollout, {
          strategy: 'rolling',
          state: 'running',
          message: `canary promoted: rolling the rest to version ${rollout.toVersion}`,
          total: app.replicas,
          weights: [{ version: rollout.toVersion, percent: 100 }],
          batch: [],
        });
        summary = rollout.message;
      } else {
        Object.assign(rollout, { state: 'running', message: 'resumed', batch: [] });
        delete rollout.batchStartedAt;
        summary = `rollout to version ${rollout.toVersion} resumed`;
      }
      rollout.updatedAt = context.time;
      app.updatedIndex = context.index;
      return { value: { rollout: { ...rollout } }, history: { target: `app ${app.tenant}/${app.name}`, summary } };
    },
  };
}

/** app.abort: the active rollout ends; a rollback rollout restores its `fromVersion` (the scheduler retires the new instances). */
export function planAppAbort(state: ClusterState, command: CommandOf<'app.abort'>, context: ApplyContext): Plan {
  const action = `cannot abort the rollout of "${command.name}"`;
  const found = findApp(state, command, action);
  if (!found.ok) return found;
  const { app } = found;
  const active = activeRollout(app, action);
  if (!active.ok) return active;
  const { rollout } = active;
  const overQuota = restoreQuotaProblem(state, app, rollout, `${action}: restoring version ${rollout.fromVersion}`);
  if (overQuota) return { ok: false, error: overQuota };
  return {
    ok: true,
    commit: () => {
      app.version = rollout.fromVersion;
      const message = `aborted by ${context.actor}; restoring version ${rollout.fromVersion}`;
      app.rollout = rollbackOf(rollout, app.replicas, message, context);
      app.updatedIndex = context.index;
      return { value: { rollout: { ...app.rollout } }, history: { target: `app ${app.tenant}/${app.name}`, summary: `rollout to version ${rollout.toVersion} ${message}` } };
    },
  };
}

/** app.rebalance: marks one app, a tenant's apps, or all apps for the scheduler to even out. */
export function planAppRebalance(state: ClusterState, command: CommandOf<'app.rebalance'>, context: ApplyContext): Plan {
  const action = 'cannot rebalance';
  if (command.name !== undefined && command.tenant === undefined) return refuse(ErrorCode.invalidArgument, `${action}: naming an app needs its tenant`, 'tenant');
  const apps = [...state.apps.values()].filter(
    (app) => (command.tenant === undefined || app.tenant === command.tenant) && (command.name === undefined || app.name === command.name),
  );
  if (command.name !== undefined && apps.length === 0) {
    return refuse(ErrorCode.notFound, `${action}: tenant "${command.tenant}" has no app "${command.name}"`, 'name');
  }
  return {
    ok: true,
    commit: () => {
      for (const app of apps) app.rebalance = { requestedAt: context.time, moves: 0 };
      const target = command.name !== undefined ? `app ${command.tenant}/${command.name}` : command.tenant !== undefined ? `tenant ${command.tenant}` : 'apps';
      return { value: { apps: apps.length }, history: { target, summary: `rebalance asked for ${apps.length} app${apps.length === 1 ? '' : 's'}` } };
    },
  };
}

// -----------------------------------------------------------------------------
// The commands of this file as modules: schema, plan, proposers, version (listed in commands.ts).

/** `rollout.step`. */
export const rolloutStepCommand: CommandModule<'rollout.step'> = {
  type: 'rollout.step',
  since: 1,
  // A retirement that names its keeper, or retires only unless it serves, is refused by a rule older code would not apply.
  versionOf: (command) => {
    if (command.retire.some((item) => item.unlessServing !== undefined)) return UNLESS_SERVING_STATE_VERSION;
    return command.retire.some((item) => item.keeper !== undefined) ? KEEPERS_STATE_VERSION : 1;
  },
  proposers: ['scheduler'],
  schema: object<CommandOf<'rollout.step'>>({
    type: oneOf(['rollout.step']),
    tenant: name,
    name,
    rollout: count,
    add: list(
      object<CommandOf<'rollout.step'>['add'][number]>({
        slot: integer({ min: 0, max: LIMITS.replicasMax - 1 }),
        version: integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
        node: optional(identifier),
      }),
      { max: LIMITS.replicasMax },
    ),
    retire: refine(
      list(
        object<CommandOf<'rollout.step'>['retire'][number]>({ id: identifier, reason: freeText, keeper: optional(identifier), unlessServing: optional(boolean()) }),
        { max: LIMITS.batchItemsMax },
      ),
      (value, path) => {
        const found = repeatedId(value, path);
        return found;
      },
    ),
    set: optional(
      object<RolloutPatch>({
        state: optional(oneOf(['running', 'paused', 'awaiting-promotion', 'succeeded', 'rolled-back', 'superseded'])),
        message: optional(freeText),
        batch: optional(list(integer({ min: 0, max: LIMITS.replicasMax - 1 }), { max: LIMITS.replicasMax, unique: true })),
        batchStartedAt: optional(count),
        nextBatchAt: optional(count),
        done: optional(integer({ min: 0, max: LIMITS.replicasMax })),
      }),
    ),
    rollbackBecause: optional(nonEmptyText),
    rebalance: optional(oneOf(['moved', 'done'])),
  }),
  plan: planRolloutStep,
};

/** `instance.reschedule`. */
export const instanceRescheduleCommand: CommandModule<'instance.reschedule'> = {
  type: 'instance.reschedule',
  since: 1,
  // The failure's cause (`reason`, kept in `lastFailure`) came with state version 4.
  versionOf: (command) => (command.updates.some((update) => update.reason !== undefined) ? 4 : 1),
  proposers: ['scheduler'],
  schema: refine(
    object<CommandOf<'instance.reschedule'>>({
      type: oneOf(['instance.reschedule']),
      updates: list(
        object<CommandOf<'instance.reschedule'>['updates'][number]>({ id: identifier, notBefore: count, avoidNode: optional(identifier), reason: optional(failureReason) }),
        { min: 1, max: LIMITS.batchItemsMax },
      ),
    }),
    (value) => repeatedId(value.updates, 'updates'),
  ),
  plan: planInstanceReschedule,
};

/** `instance.remove`. */
export const instanceRemoveCommand: CommandModule<'instance.remove'> = {
  type: 'instance.remove',
  since: 1,
  proposers: ['scheduler'],
  schema: object<CommandOf<'instance.remove'>>({
    type: oneOf(['instance.remove']),
    ids: list(identifier, { min: 1, max: LIMITS.batchItemsMax, unique: true }),
  }),
  plan: planInstanceRemove,
};

/** `instance.preempt`. */
export const instancePreemptCommand: CommandModule<'instance.preempt'> = {
  type: 'instance.preempt',
  since: 1,
  proposers: ['scheduler'],
  schema: refine(
    object<CommandOf<'instance.preempt'>>({
      type: oneOf(['instance.preempt']),
      id: identifier,
      node: identifier,
      evictions: list(object<CommandOf<'instance.preempt'>['evictions'][number]>({ id: identifier, reason: freeText }), { min: 1, max: LIMITS.batchItemsMax }),
    }),
    (value) => repeatedId(value.evictions, 'evictions') ?? (value.evictions.some((eviction) => eviction.id === value.id) ? { field: 'evictions', text: `must not evict the instance it makes room for ("${value.id}")` } : undefined),
  ),
  plan: planInstancePreempt,
};

/** `app.unplaceable`. */
export const appUnplaceableCommand: CommandModule<'app.unplaceable'> = {
  type: 'app.unplaceable',
  since: 1,
  proposers: ['scheduler'],
  schema: object<CommandOf<'app.unplaceable'>>({
    type: oneOf(['app.unplaceable']),
    updates: list(
      object<CommandOf<'app.unplaceable'>['updates'][number]>({
        tenant: name,
        name,
        count: integer({ min: 0, max: LIMITS.batchItemsMax * 100 }),
        reasons: list(freeText, { max: 32 }),
      }),
      { min: 1, max: LIMITS.batchItemsMax },
    ),
  }),
  plan: planAppUnplaceable,
};

/** `app.promote`. */
export const appPromoteCommand: CommandModule<'app.promote'> = {
  type: 'app.promote',
  since: 1,
  proposers: ['user'],
  schema: object<CommandOf<'app.promote'>>({ type: oneOf(['app.promote']), tenant: name, name }),
  plan: planAppPromote,
};

/** `app.abort`. */
export const appAbortCommand: CommandModule<'app.abort'> = {
  type: 'app.abort',
  since: 1,
  proposers: ['user'],
  schema: object<CommandOf<'app.abort'>>({ type: oneOf(['app.abort']), tenant: name, name }),
  plan: planAppAbort,
};

/** `app.rebalance`. */
export const appRebalanceCommand: CommandModule<'app.rebalance'> = {
  type: 'app.rebalance',
  since: 1,
  proposers: ['user'],
  schema: object<CommandOf<'app.rebalance'>>({ type: oneOf(['app.rebalance']), tenant: optional(name), name: optional(name) }),
  plan: planAppRebalance,
};
