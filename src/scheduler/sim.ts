/**
 * A seeded simulation of the scheduler against a simulated cluster: the real
 * state machine, the real round planner, a simulated executor (instances
 * start, turn healthy or fail by their spec's `sim.fail` label, stop when
 * retired) and a simulated clock. All randomness comes from one seed, so a
 * seed replays a run exactly.
 *
 * `runSimulation` has a safety phase (faults and changes: nodes going down
 * and coming back, joins, deploys, scales, updates, some of which fail,
 * promotions, aborts, rebalances, deletes) with checks after every step,
 * then a liveness phase (every node up, rollouts promoted or aborted) that
 * requires every app to converge to its desired count of ready instances.
 *
 * Checks: no instance meant to run stays on a node that is down past the
 * reschedule grace; no up node holds more than its CPU or memory; no tenant
 * uses more than its quota; after faults stop, desired counts converge.
 */
import { assert } from '../../consensus/core/assert.js';
import { ClusterStateMachine } from '../state/machine.js';
import { instanceResources } from '../state/quota.js';
import type { AppSpec, Command, CommandResult, Instance, InstanceState, NodeRecord } from '../state/types.js';
import { hasHealthcheck, isReady } from './readiness.js';
import { planRound, SCHEDULER_DEFAULTS, type SchedulerOptions } from './round.js';
import { specOfVersion } from './rollout.js';

/** A small seeded generator (SplitMix32): the simulation's only randomness. */
export class SimRandom {
  #state: number;
  constructor(seed: number) {
    this.#state = seed >>> 0;
  }
  /** A 32-bit unsigned integer. */
  next(): number {
    this.#state = (this.#state + 0x9e3779b9) >>> 0;
    let z = this.#state;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  }
  /** An integer in [0, below). */
  below(below: number): number {
    return this.next() % below;
  }
  /** True with probability `chance` (0..1). */
  chance(chance: number): boolean {
    return this.next() / 0x1_0000_0000 < chance;
  }
  pick<T>(items: readonly T[]): T | undefined {
    return items.length === 0 ? undefined : items[this.below(items.length)];
  }
}

/** How the simulated executor answers for an instance: the state it settles in once started. */
export type SimBehaviour = (instance: Instance, spec: AppSpec) => InstanceState;

/** Healthy (or running without a healthcheck), unless the spec carries the label `sim.fail`: then unhealthy (or failed). */
export const labelBehaviour: SimBehaviour = (_instance, spec) => {
  const fails = spec.labels['sim.fail'] === 'true';
  if (hasHealthcheck(spec)) return fails ? 'unhealthy' : 'healthy';
  return fails ? 'failed' : 'running';
};

/** A full app spec for simulations and tests, with small reservations; `overrides` replace fields. */
export function simSpec(name: string, overrides: Partial<AppSpec> = {}): AppSpec {
  return {
    name,
    tenant: 'default',
    command: ['sleep', '1000'],
    readOnly: false,
    replicas: 1,
    environment: {},
    ports: [],
    volumes: [],
    limits: {},
    reservations: { cpuMillis: 100, memoryBytes: 64 * 1024 * 1024 },
    update: { parallelism: 1, delayMs: 0, failureAction: 'rollback', order: 'start-first', monitorMs: 0 },
    restart: { condition: 'any', delayMs: 0, windowMs: 0 },
    constraints: [],
    labels: {},
    hivemind: {},
    ...overrides,
  };
}

/** The real state machine with a simulated clock, executor and scheduler. */
export class SimWorld {
  readonly machine = new ClusterStateMachine();
  now = 1_700_000_000_000;
  readonly options: SchedulerOptions;
  #requests = 0;

  constructor(options: { scheduler?: Partial<SchedulerOptions>; behaviour?: SimBehaviour } = {}) {
    this.options = { ...SCHEDULER_DEFAULTS, ...options.scheduler };
    this.behaviour = options.behaviour ?? labelBehaviour;
  }

  behaviour: SimBehaviour;

  /** Applies `command` at the next index, stamped with the simulated time. */
  apply(command: Command, actor = 'sim'): CommandResult {
    this.#requests++;
    return this.machine.apply(this.machine.appliedIndex + 1, { requestId: `sim:${this.#requests}`, time: this.now, actor, command });
  }

  /** Applies `command` and throws when it is refused. */
  ok(command: Command, actor = 'sim'): CommandResult & { ok: true } {
    const result = this.apply(command, actor);
    if (!result.ok) throw new Error(`${command.type} refused: ${result.error.code}: ${result.error.message}${result.error.field ? ` (${result.error.field})` : ''}`);
    return result;
  }

  /** Registers an up node with `cpuMillis` and `memoryBytes` (defaults: 4 cores, 8 GiB) and `labels`. */
  addNode(id: string, { cpuMillis = 4000, memoryBytes = 8 * 1024 ** 3, labels = {} }: { cpuMillis?: number; memoryBytes?: number; labels?: Record<string, string> } = {}): void {
    this.ok({ type: 'node.register', id, addresses: { api: `${id}:7070`, peer: `${id}:7071`, gossip: `${id}:7072` }, labels, resources: { cpuMillis, memoryBytes } });
  }

  /** The executors of every up node report one change per instance: pending → starting → settled; retired → stopped. */
  executorTick(): number {
    const view = this.machine.schedulerView();
    const nodes = new Map(view.nodes.map((node) => [node.id, node]));
    const apps = new Map(view.apps.map((app) => [`${app.tenant}/${app.name}`, app]));
    const updates: Extract<Command, { type: 'instance.status' }>['updates'] = [];
    for (const instance of view.instances) {
      if (instance.node === undefined || nodes.get(instance.node)?.status !== 'up') continue;
      const app = apps.get(`${instance.tenant}/${instance.app}`);
      if (app === undefined) continue;
      const report = (state: InstanceState): void => {
        updates.push({ id: instance.id, state, reportedBy: instance.node!, reportedAt: this.now, version: instance.version });
      };
      const state = instance.status.state;
      if (instance.desired === 'stopped') {
        if (state !== 'stopped' && state !== 'exited' && state !== 'failed' && state !== 'oom-killed') report('stopped');
      } else if (state === 'pending') report('starting');
      else if (state === 'starting') report(this.behaviour(instance, specOfVersion(app, instance.version)));
    }
    for (let start = 0; start < updates.length; start += 10_000) this.ok({ type: 'instance.status', updates: updates.slice(start, start + 10_000) }, 'executor');
    return updates.length;
  }

  /** One scheduler round, its commands applied in order. Returns the commands and their results. */
  schedulerRound(): { command: Command; result: CommandResult }[] {
    const view = this.machine.schedulerView();
    const plan = planRound({ ...view, now: this.now, seed: view.appliedIndex >>> 0, options: this.options });
    if (plan.commands.length === 0 && !plan.waitsOnTime) this.checkQuietStaysQuiet(view);
    return plan.commands.map((command) => ({ command, result: this.apply(command, 'scheduler') }));
  }

  /**
   * The component skips periodic rounds after a quiet one (time-dependence.ts):
   * that is safe only if the same state, however much later, plans nothing.
   */
  private checkQuietStaysQuiet(view: ReturnType<ClusterStateMachine['schedulerView']>): void {
    const { options } = this;
    const laterMs = Math.max(options.progressDeadlineMs, options.backoffMaxMs, options.retiredTimeoutMs, options.rescheduleGraceMs) + 1;
    const later = planRound({ ...view, now: this.now + laterMs, seed: view.appliedIndex >>> 0, options });
    assert(later.commands.length === 0, () => `a quiet round at ${this.now} plans ${later.commands.map((command) => command.type).join(', ')} ${laterMs} ms later over the same state: waitsOnTime misses what it waits on`);
  }

  /** Advances the clock by `ms`, then one executor tick and one scheduler round. */
  step(ms = 1000): void {
    this.now += ms;
    this.executorTick();
    this.schedulerRound();
  }

  /** Steps until `done()` holds, at most `stepsMax` times; returns whether it held. */
  runUntil(done: () => boolean, stepsMax = 200, ms = 1000): boolean {
    for (let count = 0; count < stepsMax; count++) {
      if (done()) return true;
      this.step(ms);
    }
    return done();
  }

  /** Instances of an app meant to run and ready, at `version` when given. */
  ready(tenant: string, name: string, version?: number): Instance[] {
    const view = this.machine.schedulerView();
    const app = view.apps.find((candidate) => candidate.tenant === tenant && candidate.name === name);
    if (app === undefined) return [];
    const nodes = new Map(view.nodes.map((node) => [node.id, node]));
    return view.instances
      .filter((instance) => instance.tenant === tenant && instance.app === name && (version === undefined || instance.version === version))
      .filter((instance) => isReady(instance, specOfVersion(app, instance.version), nodes))
      .map((instance) => structuredClone(instance));
  }
}

/** Settings of a simulation run. */
export interface SimulationOptions {
  seed: number;
  nodes: number;
  /** Steps of the safety phase (each one simulated second). */
  steps: number;
  /** Steps the liveness phase may take to converge. */
  livenessSteps: number;
}

export const SIMULATION_DEFAULTS: Omit<SimulationOptions, 'seed'> = { nodes: 1000, steps: 300, livenessSteps: 400 };

/** What a run found. `violations` is empty when it passed. */
export interface SimulationResult {
  seed: number;
  steps: number;
  violations: string[];
  /** Counts for the report. */
  stats: { deploys: number; updates: number; failingUpdates: number; downs: number; ups: number; joins: number; instances: number; placements: number };
}

const TENANTS = [
  { name: 'acme', quota: { instances: 300, memoryBytes: 40 * 1024 ** 3 } },
  { name: 'globex', quota: { instances: 150, cpuMillis: 30_000 } },
];

/** Runs one seeded simulation (see the file comment). Deterministic: the same options give the same result. */
export function runSimulation(options: SimulationOptions): SimulationResult {
  const random = new SimRandom(options.seed);
  const grace = 5_000;
  const world = new SimWorld({ scheduler: { rescheduleGraceMs: grace, progressDeadlineMs: 30_000, retiredTimeoutMs: 20_000 } });
  const stats = { deploys: 0, updates: 0, failingUpdates: 0, downs: 0, ups: 0, joins: 0, instances: 0, placements: 0 };
  const violations: string[] = [];
  const zones = ['a', 'b', 'c'];
  let nodeCount = 0;
  const addNode = (): void => {
    const id = `n${String(nodeCount).padStart(4, '0')}`;
    // Sizes vary (1 to 4 cores, 1 to 8 GiB), so that small clusters run out of room and placement has to choose.
    world.addNode(id, { cpuMillis: 1000 * (1 + random.below(4)), memoryBytes: 1024 ** 3 * (1 + random.below(8)), labels: { zone: zones[nodeCount % zones.length]! } });
    nodeCount++;
  };
  for (let count = 0; count < options.nodes; count++) addNode();
  for (const tenant of TENANTS) world.ok({ type: 'tenant.create', name: tenant.name, quota: tenant.quota });
  let appCount = 0;

  const safetyStep = (step: number): void => {
    const view = world.machine.schedulerView();
    const nodes = view.nodes;
    const apps = view.apps;
    const roll = random.below(100);
    if (roll < 4) {
      const node = random.pick(nodes.filter((candidate) => candidate.status === 'up'));
      if (node) {
        world.ok({ type: 'node.status', id: node.id, status: 'down' });
        stats.downs++;
      }
    } else if (roll < 8) {
      const node = random.pick(nodes.filter((candidate) => candidate.status === 'down'));
      if (node) {
        world.ok({ type: 'node.status', id: node.id, status: 'up' });
        stats.ups++;
      }
    } else if (roll < 9) {
      addNode();
      stats.joins++;
    } else if (roll < 16 && apps.length < 150) {
      const name = `app${appCount++}`;
      const tenant = random.pick(['default', 'default', ...TENANTS.map((entry) => entry.name)])!;
      const strategies = ['rolling', 'rolling', 'blue-green', 'canary'] as const;
      const spec = simSpec(name, {
        tenant,
        replicas: 1 + random.below(12),
        reservations: { cpuMillis: 100 * (1 + random.below(5)), memoryBytes: 64 * 1024 * 1024 * (1 + random.below(8)) },
        healthcheck: random.chance(0.5) ? { test: ['CMD', 'true'], intervalMs: 1000, timeoutMs: 1000, retries: 1, startPeriodMs: 0 } : undefined,
        constraints: random.chance(0.2) ? [`node.labels.zone != ${random.pick(zones)}`] : [],
        update: {
          parallelism: random.below(3),
          delayMs: random.below(3) * 1000,
          failureAction: random.chance(0.8) ? 'rollback' : 'pause',
          order: random.chance(0.5) ? 'start-first' : 'stop-first',
          monitorMs: random.below(2) * 1000,
        },
        hivemind: { strategy: random.pick(strategies)!, ...(random.chance(0.2) ? { maxPerNode: 1 } : {}), canary: { instances: 1 + random.below(2) } },
      });
      if (spec.healthcheck === undefined) delete spec.healthcheck;
      if (world.apply({ type: 'app.deploy', spec }).ok) stats.deploys++;
    } else if (roll < 24) {
      const app = random.pick(apps);
      if (app) {
        const spec = structuredClone(specOfVersion(app, app.version));
        const failing = random.chance(0.25);
        spec.environment = { ...spec.environment, REVISION: String(step) };
        spec.labels = failing ? { ...spec.labels, 'sim.fail': 'true' } : Object.fromEntries(Object.entries(spec.labels).filter(([key]) => key !== 'sim.fail'));
        if (world.apply({ type: 'app.deploy', spec }).ok) {
          stats.updates++;
          if (failing) stats.failingUpdates++;
        }
      }
    } else if (roll < 28) {
      const app = random.pick(apps);
      if (app) world.apply({ type: 'app.scale', tenant: app.tenant, name: app.name, replicas: random.below(15) });
    } else if (roll < 31) {
      const app = random.pick(apps.filter((candidate) => candidate.rollout?.state === 'awaiting-promotion' || candidate.rollout?.state === 'paused'));
      if (app) {
        const type = app.rollout?.state === 'paused' || random.chance(0.3) ? 'app.abort' : 'app.promote';
        world.apply({ type, tenant: app.tenant, name: app.name });
      }
    } else if (roll < 32) {
      world.apply({ type: 'app.rebalance' });
    } else if (roll < 33) {
      const app = random.pick(apps);
      if (app) world.apply({ type: 'app.delete', tenant: app.tenant, name: app.name });
    }
    world.step(1000);
  };

  let step = 0;
  for (; step < options.steps && violations.length === 0; step++) {
    safetyStep(step);
    violations.push(...checkSafety(world, grace).map((text) => `step ${step}: ${text}`));
  }
  if (violations.length === 0) {
    for (const node of world.machine.nodes()) if (node.status !== 'up') world.ok({ type: 'node.status', id: node.id, status: 'up' });
    let converged = false;
    for (let extra = 0; extra < options.livenessSteps && !converged; extra++, step++) {
      for (const app of world.machine.apps()) {
        if (app.rollout?.state === 'awaiting-promotion') world.apply({ type: 'app.promote', tenant: app.tenant, name: app.name });
        if (app.rollout?.state === 'paused') {
          // Aborting restores the version the rollout started from; when that one fails too, deploy a fixed one.
          const from = specOfVersion(app, app.rollout.fromVersion);
          if (from.labels['sim.fail'] === 'true') world.apply({ type: 'app.deploy', spec: { ...structuredClone(from), labels: {} } });
          else world.apply({ type: 'app.abort', tenant: app.tenant, name: app.name });
          continue;
        }
        // A failing version with nothing to roll back to (it was deployed while the app had no instances) cannot
        // converge by itself: the operator deploys a fixed one.
        const spec = specOfVersion(app, app.version);
        if (spec.labels['sim.fail'] === 'true' && (app.rollout === undefined || !['running', 'paused', 'awaiting-promotion'].includes(app.rollout.state))) {
          world.apply({ type: 'app.deploy', spec: { ...structuredClone(spec), labels: {} } });
        }
      }
      world.step(1000);
      violations.push(...checkSafety(world, grace).map((text) => `step ${step}: ${text}`));
      if (violations.length > 0) break;
      converged = convergenceProblems(world).length === 0;
    }
    if (!converged && violations.length === 0) violations.push(...convergenceProblems(world).slice(0, 10).map((text) => `did not converge: ${text}`));
  }
  stats.instances = world.machine.schedulerView().instances.length;
  stats.placements = world.machine.history().filter((entry) => entry.command === 'instance.place').length;
  return { seed: options.seed, steps: step, violations, stats };
}

/** The safety checks; each problem as a sentence. */
export function checkSafety(world: SimWorld, graceMs: number): string[] {
  const problems: string[] = [];
  const view = world.machine.schedulerView();
  const nodes = new Map(view.nodes.map((node) => [node.id, node]));
  const apps = new Map(view.apps.map((app) => [`${app.tenant}/${app.name}`, app]));
  const used = new Map<string, { cpuMillis: number; memoryBytes: number }>();
  for (const instance of view.instances) {
    if (instance.node === undefined) continue;
    const node = nodes.get(instance.node);
    if (node === undefined) {
      problems.push(`instance ${instance.id} is on unknown node ${instance.node}`);
      continue;
    }
    if (instance.desired === 'running' && node.status === 'down' && world.now - (node.statusSince ?? 0) >= graceMs) {
      problems.push(`instance ${instance.id} is still on node ${node.id}, down for ${world.now - (node.statusSince ?? 0)} ms (grace ${graceMs} ms)`);
    }
    const terminal = ['stopped', 'exited', 'failed', 'oom-killed'].includes(instance.status.state);
    if (node.status !== 'up' || (instance.desired === 'stopped' && terminal)) continue;
    const app = apps.get(`${instance.tenant}/${instance.app}`);
    if (app === undefined) continue;
    const each = instanceResources(specOfVersion(app, instance.version));
    const total = used.get(node.id) ?? { cpuMillis: 0, memoryBytes: 0 };
    total.cpuMillis += each.cpuMillis;
    total.memoryBytes += each.memoryBytes;
    used.set(node.id, total);
  }
  for (const [id, total] of used) problems.push(...overCommit(nodes.get(id)!, total));
  for (const tenant of world.machine.tenants()) {
    const usage = world.machine.usage(tenant.name);
    for (const key of ['instances', 'cpuMillis', 'memoryBytes'] as const) {
      const limit = tenant.quota[key];
      if (limit !== undefined && usage[key] > limit) problems.push(`tenant ${tenant.name} uses ${usage[key]} ${key}, quota ${limit}`);
    }
  }
  return problems;
}

function overCommit(node: NodeRecord, total: { cpuMillis: number; memoryBytes: number }): string[] {
  const problems: string[] = [];
  if (node.resources.cpuMillis !== undefined && total.cpuMillis > node.resources.cpuMillis) problems.push(`node ${node.id} holds ${total.cpuMillis} mCPU of ${node.resources.cpuMillis}`);
  if (node.resources.memoryBytes !== undefined && total.memoryBytes > node.resources.memoryBytes) problems.push(`node ${node.id} holds ${total.memoryBytes} bytes of ${node.resources.memoryBytes}`);
  return problems;
}

/** What keeps the cluster from its desired state: apps short of ready instances, rollouts still active, unplaced instances. */
export function convergenceProblems(world: { readonly machine: ClusterStateMachine }): string[] {
  const problems: string[] = [];
  const view = world.machine.schedulerView();
  const nodes = new Map(view.nodes.map((node) => [node.id, node]));
  const byApp = new Map<string, Instance[]>();
  for (const instance of view.instances) {
    const key = `${instance.tenant}/${instance.app}`;
    byApp.set(key, [...(byApp.get(key) ?? []), instance]);
  }
  for (const app of view.apps) {
    const key = `${app.tenant}/${app.name}`;
    const running = (byApp.get(key) ?? []).filter((instance) => instance.desired === 'running');
    const ready = running.filter((instance) => instance.version === app.version && isReady(instance, specOfVersion(app, instance.version), nodes));
    const slots = new Set(ready.map((instance) => instance.slot));
    if (slots.size !== app.replicas) problems.push(`${key}: ${slots.size} of ${app.replicas} slots ready at version ${app.version}`);
    if (running.length !== app.replicas) problems.push(`${key}: ${running.length} instances meant to run, ${app.replicas} wanted`);
    if (app.rollout !== undefined && ['running', 'paused', 'awaiting-promotion'].includes(app.rollout.state)) {
      problems.push(`${key}: rollout ${app.rollout.state}: ${app.rollout.message}`);
    }
  }
  return problems;
}
