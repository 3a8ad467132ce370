/**
 * Rollout stepping: from an app, its instances and the time, the one
 * `rollout.step` command that moves its rollout on (or nothing). Pure and
 * synchronous; the leader proposes the step and plans again once it applied.
 *
 * Per slot (0..replicas-1), the instances meant to run are the slot's
 * "target" ones (at the rollout's `toVersion`) and its "others". The rules:
 * - slot rule (rolling, and whenever no rollout is active): once a slot has a
 *   target instance that is done (ready for monitorMs), the newest such one
 *   is kept, and the slot's instances of other versions and older target
 *   instances are retired (newer ones, still starting, stay). Nothing is
 *   retired before its replacement is ready, except by stop-first.
 * - rolling: a batch of `parallelism` slots (0 = all) without a target
 *   instance gets one each (stop-first also retires the slot's others at
 *   once); the next batch starts `delayMs` after the batch is done.
 * - blue-green: a target instance for every slot at once, beside the old;
 *   when all are done the rollout awaits `app.promote`.
 * - canary: target instances for the first `canaryInstances` slots beside the
 *   old; when done, it awaits promotion (then it finishes as rolling).
 * - start-first that does not fit: a batch's target instance that the
 *   scheduler found unplaceable (the app's `unplaceable` record, newer than
 *   the batch) but that would fit in place of its slot's others (the same
 *   host port on a one-node cluster, no room for both) retires those others
 *   at once: stop-first for that slot, and the rollout's message says so
 *   (only while no node is down or suspect: one that comes back may have room).
 *   While one cannot be placed even so, the message gives the reasons.
 * - failure: a target instance in the batch failed, or the batch is not done
 *   within the progress deadline: `failureAction` rollback starts a rollback
 *   (a rollback that fails pauses), pause pauses, continue goes on (failed
 *   instances are then left to healing).
 */
import type { App, AppSpec, Command, Instance, NodeRecord, Rollout, RolloutPatch } from '../state/types.js';
import { describeStatus, hasFailed, isDone, isReady } from './readiness.js';

type StepCommand = Extract<Command, { type: 'rollout.step' }>;

/** What stepping needs besides the app. */
export interface RolloutContext {
  /** The app's instances (any desired state). */
  instances: readonly Instance[];
  nodes: ReadonlyMap<string, NodeRecord>;
  /** The leader's clock, ms. */
  now: number;
  /** How long a batch may take to be done before it counts as failed. */
  progressDeadlineMs: number;
  /**
   * Whether `target` (not placed) would fit on the node of some of `others`
   * (its slot's instances of other versions) once those there are gone.
   * Absent: never asked (a start-first batch then waits for room).
   */
  fitsInPlaceOf?: (target: Instance, others: readonly Instance[]) => boolean;
  /**
   * The slot rule's retirements name their keeper (`retire[].keeper`, state
   * version 4), so that the state refuses the step if the keeper stopped
   * serving before it applied. Only once the cluster version allows it
   * (`KEEPERS_STATE_VERSION`, state/apply-rollouts.ts); absent or false: the steps of older releases.
   */
  namesKeepers?: boolean;
  /**
   * A slot's surplus instances of other versions that do not serve are
   * retired on condition (`retire[].unlessServing`, state version 5), so a
   * rollout that superseded another (or followed a failed one) has room.
   * Only once the cluster version allows it (`UNLESS_SERVING_STATE_VERSION`,
   * state/apply-rollouts.ts); absent or false: they stay until the slot's
   * target is done, as in older releases.
   */
  retiresUnavailable?: boolean;
}


/** The spec of `version`, else the app's newest. */
export function specOfVersion(app: App, version: number): AppSpec {
  const entry = app.versions.find((candidate) => candidate.version === version) ?? app.versions[app.versions.length - 1];
  if (entry === undefined) throw new Error(`app ${app.tenant}/${app.name} has no versions`);
  return entry.spec;
}

interface Slots {
  /** Per slot: target instances meant to run, newest first. */
  targets: Map<number, Instance[]>;
  others: Map<number, Instance[]>;
}

function groupBySlot(instances: readonly Instance[], targetVersion: number): Slots {
  const targets = new Map<number, Instance[]>();
  const others = new Map<number, Instance[]>();
  for (const instance of instances) {
    if (instance.desired !== 'running') continue;
    const into = instance.version === targetVersion ? targets : others;
    const list = into.get(instance.slot);
    if (list === undefined) into.set(instance.slot, [instance]);
    else list.push(instance);
  }
  for (const list of targets.values()) list.sort((left, right) => right.createdIndex - left.createdIndex || (left.id < right.id ? 1 : -1));
  return { targets, others };
}

/**
 * The slot rule over all slots: the retirements it makes, and the slots done.
 * Retires others of done slots and the target duplicates but the newest done.
 */
function applySlotRule(app: App, slots: Slots, spec: AppSpec, context: RolloutContext, retire: StepCommand['retire']): Set<number> {
  const done = new Set<number>();
  for (const [slot, targets] of slots.targets) {
    const keeper = targets.find((instance) => isDone(instance, spec, context.nodes, context.now, spec.update.monitorMs));
    if (keeper === undefined || slot >= app.replicas) continue;
    done.add(slot);
    // Newer targets than the keeper are copies still starting (a rebalance move): they stay.
    const older = targets.filter((instance) => instance.createdIndex < keeper.createdIndex || (instance.createdIndex === keeper.createdIndex && instance.id < keeper.id));
    for (const instance of [...older, ...(slots.others.get(slot) ?? [])]) {
      retire.push({ id: instance.id, reason: `replaced by ${keeper.id}`, ...(context.namesKeepers === true ? { keeper: keeper.id } : {}) });
    }
  }
  return done;
}

/**
 * An earlier version's unavailable instances go first (as Kubernetes scales
 * down an old ReplicaSet's unavailable pods before anything else): in each
 * slot holding more than one instance meant to run, the others (not at the
 * target version) that do not serve are retired, keeping the slot's most
 * promising instance (serving, else not failed, else the newest) even when
 * it does not serve. An update that supersedes a running one, or follows
 * one that failed, otherwise keeps the earlier targets beside the old
 * version until its own instances are done, and in a full cluster they
 * never can be placed. Each retirement holds only while the instance does
 * not serve (`unlessServing`): a health report may apply before the step.
 */
function retireUnavailable(app: App, slots: Slots, context: RolloutContext, retire: StepCommand['retire']): void {
  if (context.retiresUnavailable !== true) return;
  const retiring = new Set(retire.map((item) => item.id));
  for (const [slot, others] of slots.others) {
    const members = [...others, ...(slots.targets.get(slot) ?? [])].filter((instance) => !retiring.has(instance.id));
    if (members.length < 2) continue;
    const rank = (instance: Instance): number => {
      const spec = specOfVersion(app, instance.version);
      if (isReady(instance, spec, context.nodes)) return 0;
      return hasFailed(instance, spec) ? 2 : 1;
    };
    const kept = [...members].sort((left, right) => rank(left) - rank(right) || right.createdIndex - left.createdIndex || (left.id < right.id ? 1 : -1))[0]!;
    for (const instance of others) {
      if (instance === kept || retiring.has(instance.id) || rank(instance) === 0) continue;
      retire.push({ id: instance.id, reason: `version ${instance.version} does not serve (${instance.status.state}); its slot keeps ${kept.id}`, unlessServing: true });
    }
  }
}

/** Adds `item` to `retire` unless that instance is retired by the step already (a step names each instance once). */
function retireOnce(retire: StepCommand['retire'], item: StepCommand['retire'][number]): void {
  if (!retire.some((existing) => existing.id === item.id)) retire.push(item);
}

function step(app: App, rollout: number, parts: Partial<StepCommand>): StepCommand {
  return { type: 'rollout.step', tenant: app.tenant, name: app.name, rollout, add: [], retire: [], ...parts };
}

/**
 * The step for `app` now, or undefined when there is nothing to do. Without
 * an active rollout only the slot rule runs (it settles rebalance moves and
 * leftovers of earlier versions).
 */
export function planRolloutStep(app: App, context: RolloutContext): StepCommand | undefined {
  const rollout = app.rollout;
  if (rollout === undefined || rollout.state !== 'running') {
    if (rollout !== undefined && rollout.state !== 'succeeded' && rollout.state !== 'rolled-back' && rollout.state !== 'superseded') return undefined;
    if (settled(app, context.instances)) return undefined;
    const retire: StepCommand['retire'] = [];
    const slots = groupBySlot(context.instances, app.version);
    applySlotRule(app, slots, specOfVersion(app, app.version), context, retire);
    retireUnavailable(app, slots, context, retire);
    return retire.length > 0 ? step(app, 0, { retire }) : undefined;
  }
  const spec = specOfVersion(app, rollout.toVersion);
  const slots = groupBySlot(context.instances, rollout.toVersion);
  if (rollout.strategy === 'rolling') return stepRolling(app, rollout, spec, slots, context);
  return stepSideBySide(app, rollout, spec, slots, context);
}

/** Whether the slot rule has nothing to do: at most one instance meant to run per slot, all at the app's version. */
function settled(app: App, instances: readonly Instance[]): boolean {
  let running = 0;
  for (const instance of instances) {
    if (instance.desired !== 'running') continue;
    if (instance.version !== app.version) return false;
    running++;
  }
  return running <= app.replicas && new Set(instances.filter((instance) => instance.desired === 'running').map((instance) => instance.slot)).size === running;
}

/** What to do on a failure, per failureAction. */
function onFailure(app: App, rollout: Rollout, spec: AppSpec, reason: string, retire: StepCommand['retire']): StepCommand | undefined {
  const action = spec.update.failureAction;
  if (action === 'continue') return undefined;
  if (action === 'rollback' && rollout.kind === 'update') return step(app, rollout.id, { retire, rollbackBecause: reason });
  const why = rollout.kind === 'rollback' && action === 'rollback' ? `${reason} (while rolling back)` : reason;
  return step(app, rollout.id, { retire, set: { state: 'paused', message: `paused: ${why}; promote to resume, abort to restore version ${rollout.fromVersion}` } });
}

function stepRolling(app: App, rollout: Rollout, spec: AppSpec, slots: Slots, context: RolloutContext): StepCommand | undefined {
  const retire: StepCommand['retire'] = [];
  const done = applySlotRule(app, slots, spec, context, retire);
  retireUnavailable(app, slots, context, retire);
  const continuing = spec.update.failureAction === 'continue';
  const inflight: Instance[] = [];
  const failed: Instance[] = [];
  const pending: number[] = [];
  for (let slot = 0; slot < app.replicas; slot++) {
    if (done.has(slot)) continue;
    const targets = slots.targets.get(slot);
    if (targets === undefined) {
      pending.push(slot);
      continue;
    }
    const newest = targets[0]!;
    if (hasFailed(newest, spec)) failed.push(newest);
    else inflight.push(newest);
  }
  if (failed.length > 0 && !continuing) {
    const reason = `${failed.length} new instance${failed.length === 1 ? '' : 's'} failed: ${failed.slice(0, 3).map(describeStatus).join('; ')}`;
    return onFailure(app, rollout, spec, reason, retire);
  }
  const set: RolloutPatch = {};
  if (done.size !== rollout.done) set.done = done.size;
  if (inflight.length > 0) {
    const started = rollout.batchStartedAt ?? rollout.startedAt;
    if (context.now - started > context.progressDeadlineMs) {
      const reason = `progress deadline exceeded: ${inflight.length} new instance${inflight.length === 1 ? '' : 's'} not ready after ${Math.round((context.now - started) / 1000)} s (${inflight.slice(0, 3).map(describeStatus).join('; ')})`;
      if (continuing) return step(app, rollout.id, { retire, set: { ...set, batch: [], nextBatchAt: context.now } });
      return onFailure(app, rollout, spec, reason, retire);
    }
    const stuck = unplacedSince(app, rollout, inflight);
    const fallback = spec.update.order === 'start-first' ? planStopFirstFallback(rollout, slots, stuck, context) : undefined;
    if (fallback !== undefined) {
      const why = reasonsText(app.unplaceable!.reasons);
      for (const item of fallback.retire) retireOnce(retire, item);
      const message = `${slotsText(fallback.slots)}: version ${rollout.toVersion} does not fit beside the old instance (${why}); falling back to stop-first there (stopping ${listText(fallback.retire.map((item) => item.id))} first)`;
      return step(app, rollout.id, { retire, set: { ...set, message } });
    }
    const notPlaced = stuck.length > 0 ? `; ${stuck.length} not placed: ${reasonsText(app.unplaceable!.reasons)}` : '';
    // Start-first retires a batch slot's others before its target is done only when falling back: say so for the whole batch.
    const fellBack = spec.update.order === 'start-first' ? inflight.filter((instance) => rollout.batch.includes(instance.slot) && (slots.others.get(instance.slot) ?? []).length === 0).map((instance) => instance.slot) : [];
    const stopFirst = fellBack.length > 0 ? `; ${slotsText(fellBack)}: version ${rollout.toVersion} does not fit beside the old instance, which stopped first (stop-first there)` : '';
    const message = `waiting for ${inflight.length} instance${inflight.length === 1 ? '' : 's'} of version ${rollout.toVersion} to be ready (${done.size} of ${app.replicas} done)${notPlaced}${stopFirst}`;
    if (message !== rollout.message) set.message = message;
    return retire.length > 0 || Object.keys(set).length > 0 ? step(app, rollout.id, { retire, set }) : undefined;
  }
  if (rollout.batch.length > 0) {
    return step(app, rollout.id, { retire, set: { ...set, batch: [], nextBatchAt: context.now + spec.update.delayMs, message: `batch done (${done.size} of ${app.replicas})` } });
  }
  if (pending.length === 0) {
    const failedNote = failed.length > 0 ? `, ${failed.length} failed and left to healing` : '';
    const message = rollout.kind === 'rollback' ? `rolled back to version ${rollout.toVersion}` : `all ${app.replicas} instances at version ${rollout.toVersion}${failedNote}`;
    return step(app, rollout.id, { retire, set: { state: rollout.kind === 'rollback' ? 'rolled-back' : 'succeeded', message, done: done.size, batch: [] } });
  }
  if (rollout.nextBatchAt !== undefined && context.now < rollout.nextBatchAt) {
    return retire.length > 0 || Object.keys(set).length > 0 ? step(app, rollout.id, { retire, set }) : undefined;
  }
  const size = spec.update.parallelism === 0 ? pending.length : spec.update.parallelism;
  const batch = pending.slice(0, size);
  const add = batch.map((slot) => ({ slot, version: rollout.toVersion }));
  if (spec.update.order === 'stop-first') {
    for (const slot of batch) for (const instance of slots.others.get(slot) ?? []) retireOnce(retire, { id: instance.id, reason: `stop-first update to version ${rollout.toVersion}` });
  }
  const message = `updating slot${batch.length === 1 ? '' : 's'} ${batch.join(', ')} (${done.size} of ${app.replicas} done)`;
  return step(app, rollout.id, { add, retire, set: { ...set, batch, batchStartedAt: context.now, message } });
}

/** The first unplaceable reasons, for a rollout's message (which the state bounds): at most 3, each cut to 200 characters. */
function reasonsText(reasons: readonly string[]): string {
  const shown = reasons.slice(0, 3).map((reason) => (reason.length > 200 ? `${reason.slice(0, 199)}…` : reason));
  return `${shown.join('; ')}${reasons.length > shown.length ? `; and ${reasons.length - shown.length} more` : ''}`;
}

/** `slot 2` or `slots 0, 1` (at most 10 named). */
function slotsText(slots: readonly number[]): string {
  return `slot${slots.length === 1 ? '' : 's'} ${listText(slots.map(String))}`;
}

/** The first 10 of `items`, comma-separated, and how many more: a rollout's message stays within the state's bound. */
function listText(items: readonly string[]): string {
  const shown = items.slice(0, 10);
  return `${shown.join(', ')}${items.length > shown.length ? ` and ${items.length - shown.length} more` : ''}`;
}

/**
 * The batch's target instances that are not placed, when the scheduler
 * recorded the app unplaceable since the batch started (so their turn to be
 * placed came and went); empty otherwise.
 */
function unplacedSince(app: App, rollout: Rollout, inflight: readonly Instance[]): Instance[] {
  const record = app.unplaceable;
  if (record === undefined || record.count === 0 || record.updatedAt < (rollout.batchStartedAt ?? rollout.startedAt)) return [];
  return inflight.filter((instance) => instance.node === undefined);
}

/**
 * Start-first that cannot start beside: for each `stuck` target whose slot
 * still runs others, and that fits in their place, the others to retire;
 * undefined when there is none.
 */
function planStopFirstFallback(rollout: Rollout, slots: Slots, stuck: readonly Instance[], context: RolloutContext): { slots: number[]; retire: StepCommand['retire'] } | undefined {
  const fitsInPlaceOf = context.fitsInPlaceOf;
  if (fitsInPlaceOf === undefined) return undefined;
  // A node down or suspect may come back with room: stop nothing that runs for room missing only for a while.
  for (const node of context.nodes.values()) if (node.status === 'down' || node.status === 'suspect') return undefined;
  const fallback: { slots: number[]; retire: StepCommand['retire'] } = { slots: [], retire: [] };
  for (const target of stuck) {
    const others = (slots.others.get(target.slot) ?? []).filter((instance) => instance.node !== undefined);
    if (others.length === 0 || !fitsInPlaceOf(target, others)) continue;
    fallback.slots.push(target.slot);
    for (const instance of others) fallback.retire.push({ id: instance.id, reason: `start-first update to version ${rollout.toVersion} fell back to stop-first: the new instance does not fit beside it` });
  }
  return fallback.slots.length > 0 ? fallback : undefined;
}

/** Blue-green and canary: the new version beside the old until promotion. */
function stepSideBySide(app: App, rollout: Rollout, spec: AppSpec, slots: Slots, context: RolloutContext): StepCommand | undefined {
  const wanted = rollout.strategy === 'canary' ? Math.min(app.replicas, rollout.canaryInstances ?? 1) : app.replicas;
  const add: StepCommand['add'] = [];
  const inflight: Instance[] = [];
  const failed: Instance[] = [];
  let done = 0;
  for (let slot = 0; slot < wanted; slot++) {
    const newest = slots.targets.get(slot)?.[0];
    if (newest === undefined) add.push({ slot, version: rollout.toVersion });
    else if (isDone(newest, spec, context.nodes, context.now, spec.update.monitorMs)) done++;
    else if (hasFailed(newest, spec)) failed.push(newest);
    else inflight.push(newest);
  }
  const label = rollout.strategy === 'canary' ? 'canary' : 'green';
  const retire: StepCommand['retire'] = [];
  retireUnavailable(app, slots, context, retire);
  if (add.length > 0) {
    const message = `starting ${add.length} ${label} instance${add.length === 1 ? '' : 's'} of version ${rollout.toVersion} beside version ${rollout.fromVersion}`;
    return step(app, rollout.id, { add, retire, set: { batch: add.map((item) => item.slot), batchStartedAt: context.now, message, done } });
  }
  if (failed.length > 0 && spec.update.failureAction !== 'continue') {
    return onFailure(app, rollout, spec, `${failed.length} ${label} instance${failed.length === 1 ? '' : 's'} failed: ${failed.slice(0, 3).map(describeStatus).join('; ')}`, []);
  }
  if (inflight.length > 0) {
    const started = rollout.batchStartedAt ?? rollout.startedAt;
    if (context.now - started > context.progressDeadlineMs && spec.update.failureAction !== 'continue') {
      return onFailure(app, rollout, spec, `progress deadline exceeded: ${inflight.length} ${label} instances not ready after ${Math.round((context.now - started) / 1000)} s`, []);
    }
    if (done !== rollout.done) return step(app, rollout.id, { retire, set: { done } });
    return retire.length > 0 ? step(app, rollout.id, { retire }) : undefined;
  }
  const message =
    rollout.strategy === 'canary'
      ? `${done} canary instance${done === 1 ? '' : 's'} of version ${rollout.toVersion} ready beside version ${rollout.fromVersion}; promote to roll out, abort to remove them`
      : `version ${rollout.toVersion} ready at full size beside version ${rollout.fromVersion}; promote to switch, abort to retire it`;
  return step(app, rollout.id, { retire, set: { state: 'awaiting-promotion', message, done, batch: [] } });
}
