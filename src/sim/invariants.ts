/**
 * The whole-cluster simulator's safety checks, run around every apply of
 * every node (sim-agent.ts's hooks): pure reads of the replicas, never a
 * change to them.
 *
 * - state: every node's state, hashed, is the same at the same applied index
 *   (every HASH_EVERY_INDEXES-th index, and every restored snapshot);
 * - placement: an `instance.place` never moves an instance off a node that is
 *   up (it is placed once; a move takes a reschedule or a lost node);
 * - resources: no up node holds more reservations than its resources;
 * - quota: no tenant's usage grows past its quota (a lowered quota may leave
 *   it over; it may then only shrink);
 * - rolling updates (start-first): a ready instance is retired only while its
 *   slot holds a ready instance of the version being rolled out.
 *
 * The command checks run once per index, on the first node to apply it
 * (every node applies the same commands; the hashes show they end the same).
 * Readiness here is the rule as documented (state/readiness.ts, which the scheduler and the state share), written
 * out again so that a mutation of the scheduler's own cannot hide from it.
 */
import { createHash } from 'node:crypto';
import type { Entry } from '../../consensus/core/types.js';
import { decodeEnvelope } from '../node/replicated-state.js';
import { instanceResources } from '../state/quota.js';
import type { ClusterStateMachine } from '../state/machine.js';
import type { App, AppSpec, Command, CommandResult, Instance, NodeRecord } from '../state/types.js';
import { specOfVersion } from '../scheduler/rollout.js';
import type { ApplyHooks } from './sim-agent.js';

/** Violations kept per run; the first is the one that matters. */
const VIOLATIONS_MAX = 20;
/** State hashes are compared at every this many applied indexes (see `#checkHash`). */
const HASH_EVERY_INDEXES = 4;
/** Quota resources checked. */
const QUOTA_KEYS = ['instances', 'cpuMillis', 'memoryBytes', 'apps'] as const;

type Usage = Record<(typeof QUOTA_KEYS)[number], number>;

/** Whether `instance` serves, by the documented rule (state/readiness.ts). */
export function servesNow(instance: Instance, spec: AppSpec, nodes: ReadonlyMap<string, NodeRecord>): boolean {
  if (instance.desired !== 'running' || instance.node === undefined || nodes.get(instance.node)?.status !== 'up') return false;
  const checked = spec.healthcheck !== undefined && spec.healthcheck.test[0] !== 'NONE';
  return checked ? instance.status.state === 'healthy' : instance.status.state === 'running' || instance.status.state === 'healthy';
}

/** See the file comment. `violations` collects what broke, with the simulated time. */
export class ClusterChecker implements ApplyHooks {
  readonly violations: string[] = [];
  /** State hash by applied index, as the first node to reach it had it. */
  readonly #hashes = new Map<number, { hash: string; node: string }>();
  /** The highest index whose command was checked. */
  #checkedIndex = 0;
  /** Tenants' usage before the command being checked. */
  #usageBefore = new Map<string, Usage>();
  #checking = false;
  /** What the command being checked breaks if the state takes it (recorded after the apply, only if it did). */
  #pending: string[] = [];
  /** The command being checked, for the violations' text. */
  #command = '';
  hashesCompared = 0;
  /**
   * `rollout.step`s the state refused because a retirement's keeper no longer
   * served (the rolling update's plan/apply race, caught at apply): how often
   * the race happens in a run.
   */
  keeperRefusals = 0;

  constructor(private readonly nowMs: () => number) {}

  record(violation: string): void {
    if (this.violations.length < VIOLATIONS_MAX) this.violations.push(`${this.nowMs()}ms ${violation}`);
  }

  before(nodeId: string, entry: Entry, machine: ClusterStateMachine): void {
    this.#checking = entry.index > this.#checkedIndex;
    if (!this.#checking) return;
    this.#checkedIndex = entry.index;
    this.#pending = [];
    this.#usageBefore = usages(machine);
    const envelope = decodeEnvelope(entry.data) as { command?: Command } | undefined;
    const command = envelope?.command;
    this.#command = command === undefined ? 'no command' : `${command.type} ${JSON.stringify(command).slice(0, 300)}`;
    if (command?.type === 'instance.place') this.#checkPlacement(command, machine, entry.index);
    if (command?.type === 'rollout.step') this.#checkRetirements(command, machine, entry.index);
  }

  after(nodeId: string, index: number, machine: ClusterStateMachine, entry: Entry | undefined, result?: CommandResult): void {
    this.#checkHash(nodeId, index, machine, entry === undefined);
    if (entry === undefined || !this.#checking) return;
    this.#checking = false;
    if (result?.ok === true) for (const violation of this.#pending) this.record(violation);
    if (result?.ok === false && result.error.field?.endsWith('.keeper') === true) this.keeperRefusals++;
    this.#checkQuota(machine, index);
    this.#checkResources(machine, index);
  }

  #checkHash(nodeId: string, index: number, machine: ClusterStateMachine, restored: boolean): void {
    // Encoding the state is most of a run's time: every HASH_EVERY_INDEXES-th index, and every restored snapshot, is enough
    // to see a divergence (a replica that differs stays different until a snapshot replaces its state).
    if (!restored && index % HASH_EVERY_INDEXES !== 0) return;
    const hash = createHash('sha1').update(machine.snapshot()).digest('hex');
    const first = this.#hashes.get(index);
    if (first === undefined) {
      this.#hashes.set(index, { hash, node: nodeId });
      return;
    }
    this.hashesCompared++;
    if (first.hash !== hash) this.record(`state: ${nodeId} and ${first.node} differ at applied index ${index} (${hash.slice(0, 12)} vs ${first.hash.slice(0, 12)})`);
  }

  #checkPlacement(command: Extract<Command, { type: 'instance.place' }>, machine: ClusterStateMachine, index: number): void {
    for (const placement of command.placements) {
      if (placement.node === null) continue;
      const instance = machine.instance(placement.id);
      if (instance?.node === undefined || instance.node === placement.node) continue;
      if (machine.node(instance.node)?.status === 'up') {
        this.#pending.push(`placement: index ${index} places instance ${instance.id} on ${placement.node}, but it is placed on ${instance.node}, which is up (placed twice)`);
      }
    }
  }

  #checkRetirements(command: Extract<Command, { type: 'rollout.step' }>, machine: ClusterStateMachine, index: number): void {
    const app = machine.app(command.tenant, command.name);
    if (app === undefined || command.retire.length === 0) return;
    const rolling = app.rollout !== undefined && app.rollout.state === 'running';
    if (rolling && app.rollout!.strategy !== 'rolling') return;
    const targetVersion = rolling ? app.rollout!.toVersion : app.version;
    if (specOfVersion(app, targetVersion).update.order === 'stop-first' && rolling) return;
    const nodes = new Map(machine.nodes().map((node) => [node.id, node]));
    const instances = machine.instances({ tenant: app.tenant, app: app.name });
    const retired = new Set(command.retire.map((item) => item.id));
    for (const item of command.retire) {
      const instance = instances.find((candidate) => candidate.id === item.id);
      if (instance === undefined || instance.slot >= app.replicas || !servesNow(instance, specOfVersion(app, instance.version), nodes)) continue;
      const replaced = instances.some(
        (other) => !retired.has(other.id) && other.slot === instance.slot && other.version === targetVersion && servesNow(other, specOfVersion(app, other.version), nodes),
      );
      // Start-first falls back to stop-first for a slot whose new instance the scheduler found unplaceable since its batch started (src/scheduler/rollout.ts).
      const batchStartedAt = app.rollout?.batchStartedAt ?? app.rollout?.startedAt ?? Infinity;
      const fellBack =
        rolling &&
        app.unplaceable !== undefined &&
        app.unplaceable.updatedAt >= batchStartedAt &&
        instances.some((other) => other.slot === instance.slot && other.version === targetVersion && other.desired === 'running' && other.node === undefined);
      if (!replaced && !fellBack) {
        const slot = instances
          .filter((other) => other.slot === instance.slot)
          .map((other) => `${other.id} v${other.version} ${other.desired} ${other.status.state} on ${other.node ?? '-'} (${other.node === undefined ? '' : nodes.get(other.node)?.status})`);
        this.#pending.push(`rolling update: index ${index} retires ready instance ${instance.id} (slot ${instance.slot}, version ${instance.version}) of ${appName(app)} before a ready replacement at version ${targetVersion}; the slot: ${slot.join(', ')} (rollout ${JSON.stringify(app.rollout ?? null)}): ${this.#command}`);
      }
    }
  }

  #checkQuota(machine: ClusterStateMachine, index: number): void {
    const after = usages(machine);
    for (const tenant of machine.tenants()) {
      const now = after.get(tenant.name)!;
      const before = this.#usageBefore.get(tenant.name);
      for (const key of QUOTA_KEYS) {
        const limit = tenant.quota[key];
        if (limit === undefined || now[key] <= limit || (before !== undefined && now[key] <= before[key])) continue;
        this.record(`quota: index ${index} takes tenant ${tenant.name} to ${now[key]} ${key}, past its quota of ${limit} (before: ${before?.[key] ?? 0}): ${this.#command}`);
      }
    }
  }

  #checkResources(machine: ClusterStateMachine, index: number): void {
    // The live records, read now and not kept (copies of every instance after every apply would be most of a run's time).
    const view = machine.schedulerView();
    const nodes = new Map(view.nodes.map((node) => [node.id, node]));
    const apps = new Map(view.apps.map((app) => [`${app.tenant}/${app.name}`, app]));
    const used = new Map<string, { cpuMillis: number; memoryBytes: number }>();
    for (const instance of view.instances) {
      if (instance.node === undefined || nodes.get(instance.node)?.status !== 'up') continue;
      const terminal = ['stopped', 'exited', 'failed', 'oom-killed'].includes(instance.status.state);
      if (instance.desired === 'stopped' && terminal) continue;
      const app = apps.get(`${instance.tenant}/${instance.app}`);
      if (app === undefined) continue;
      const each = instanceResources(specOfVersion(app, instance.version));
      const total = used.get(instance.node) ?? { cpuMillis: 0, memoryBytes: 0 };
      total.cpuMillis += each.cpuMillis;
      total.memoryBytes += each.memoryBytes;
      used.set(instance.node, total);
    }
    for (const [id, total] of used) {
      const resources = nodes.get(id)!.resources;
      if (resources.cpuMillis !== undefined && total.cpuMillis > resources.cpuMillis) this.record(`resources: after index ${index} node ${id} holds ${total.cpuMillis} mCPU of ${resources.cpuMillis}`);
      if (resources.memoryBytes !== undefined && total.memoryBytes > resources.memoryBytes) this.record(`resources: after index ${index} node ${id} holds ${total.memoryBytes} bytes of memory of ${resources.memoryBytes}`);
    }
  }
}

function usages(machine: ClusterStateMachine): Map<string, Usage> {
  const out = new Map<string, Usage>();
  for (const tenant of machine.tenants()) {
    const usage = machine.usage(tenant.name);
    out.set(tenant.name, { instances: usage.instances, cpuMillis: usage.cpuMillis, memoryBytes: usage.memoryBytes, apps: usage.apps });
  }
  return out;
}

function appName(app: App): string {
  return `${app.tenant}/${app.name}`;
}
