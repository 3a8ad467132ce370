/**
 * The simulated operator: the changes a user makes through the API during
 * the fault phase (deploys, updates, some of them versions that never work,
 * scales, promotes, aborts, quota changes, deletes), drawn from the seed,
 * and what an operator settles once the faults stop. It decides from the
 * leader's replica; the world proposes its commands through the leader.
 */
import type { SeededRandom } from '../../consensus/core/random.js';
import { simSpec } from '../scheduler/sim.js';
import { specOfVersion } from '../scheduler/rollout.js';
import type { ClusterStateMachine } from '../state/machine.js';
import { instanceResources } from '../state/quota.js';
import type { AppSpec, Command } from '../state/types.js';
import { HEALTHY_AFTER_START_MS_MAX } from './sim-runtime.js';

/** The start period of the operator's healthchecks: past the simulated runtime's slowest healthy start. */
const HEALTHCHECK_START_PERIOD_MS = 500 * Math.ceil(HEALTHY_AFTER_START_MS_MAX / 500);

/** The share of the cluster's resources the operator lets its apps ask for (see `#fits`). */
const DEMAND_SHARE_MAX = 0.4;

/** The tenants besides `default`, with the quotas they start with. */
export const TENANTS = [
  { name: 'acme', quota: { instances: 12, memoryBytes: 3 * 1024 ** 3 } },
  { name: 'globex', quota: { instances: 8, cpuMillis: 2000, apps: 3 } },
];

/** What the operator works with. */
export interface SimOperatorOptions {
  random: SeededRandom;
  /** Proposes `command` through the leader (`what` is for the trace). */
  operate(command: Command, what: string): void;
  /** The cluster's resources, all machines together. */
  capacity(): { cpuMillis: number; memoryBytes: number };
  /** The world's counts; the operator adds to deploys, updates, scales, promotes, aborts, quotaChanges, deletes. */
  stats: Record<string, number>;
}

/** See the file comment. */
export class SimOperator {
  #appNumber = 0;
  /** Numbers the updates' `REVISION` variable, so that every update is a new version. */
  #revision = 0;

  constructor(private readonly options: SimOperatorOptions) {}

  /** One change of the fault phase, drawn from the seed. */
  change(machine: ClusterStateMachine): void {
    const apps = machine.apps();
    const random = this.options.random;
    // A canary waiting for promotion is what an operator decides on first. Left to the rollout draw below (12% of
    // changes, among every active rollout), one seed in eight promoted anything, and promotes went almost untested.
    const waiting = apps.filter((app) => app.rollout?.state === 'awaiting-promotion');
    if (waiting.length > 0 && random.chance(0.4)) {
      const app = waiting[random.below(waiting.length)]!;
      const abort = random.chance(0.3);
      this.options.stats[abort ? 'aborts' : 'promotes']!++;
      this.options.operate({ type: abort ? 'app.abort' : 'app.promote', tenant: app.tenant, name: app.name }, `${abort ? 'abort' : 'promote'} ${app.tenant}/${app.name}`);
      return;
    }
    const roll = random.below(100);
    if (roll < 22 && apps.length < 8) {
      const name = `app${this.#appNumber++}`;
      const tenant = ['default', 'default', 'acme', 'globex'][random.below(4)]!;
      const checked = random.chance(0.6);
      const spec = simSpec(name, {
        tenant,
        replicas: 1 + random.below(4),
        reservations: { cpuMillis: 100 * (1 + random.below(5)), memoryBytes: 128 * 1024 ** 2 * (1 + random.below(6)) },
        // A start period past the runtime's slowest healthy start, as an operator gives an app that takes that long (seed 8127).
        ...(checked ? { healthcheck: { test: ['CMD', 'true'], intervalMs: 500, timeoutMs: 500, retries: 2, startPeriodMs: HEALTHCHECK_START_PERIOD_MS } } : {}),
        restart: { condition: 'any', delayMs: 200, windowMs: 0 },
        update: {
          parallelism: random.below(3),
          delayMs: random.below(2) * 500,
          failureAction: random.chance(0.8) ? 'rollback' : 'pause',
          order: random.chance(0.7) ? 'start-first' : 'stop-first',
          monitorMs: random.below(2) * 500,
        },
        hivemind: { strategy: (['rolling', 'rolling', 'blue-green', 'canary'] as const)[random.below(4)]!, canary: { instances: 1 } },
      });
      if (!this.#fits(machine, spec.replicas, spec)) return;
      this.options.stats.deploys!++;
      this.options.operate({ type: 'app.deploy', spec }, `deploy ${tenant}/${name}`);
    } else if (roll < 45) {
      const app = apps[random.below(Math.max(1, apps.length))];
      if (app === undefined) return;
      const spec = structuredClone(specOfVersion(app, app.version));
      const failing = random.chance(0.2);
      spec.environment = { ...spec.environment, REVISION: String(++this.#revision) };
      spec.labels = failing ? { ...spec.labels, 'sim.fail': 'true' } : {};
      if (random.chance(0.3)) spec.reservations = { ...spec.reservations, memoryBytes: 128 * 1024 ** 2 * (1 + random.below(6)) };
      if (!this.#fits(machine, app.replicas, spec)) return;
      this.options.stats.updates!++;
      this.options.operate({ type: 'app.deploy', spec }, `update ${app.tenant}/${app.name}${failing ? ' (failing)' : ''}`);
    } else if (roll < 62) {
      const app = apps[random.below(Math.max(1, apps.length))];
      if (app === undefined) return;
      const replicas = random.below(7);
      if (replicas > app.replicas && !this.#fits(machine, replicas - app.replicas, specOfVersion(app, app.version))) return;
      this.options.stats.scales!++;
      this.options.operate({ type: 'app.scale', tenant: app.tenant, name: app.name, replicas }, `scale ${app.tenant}/${app.name} to ${replicas}`);
    } else if (roll < 74) {
      // A rollout that waits (for promotion, or paused) is promoted or aborted; one still running may be aborted too.
      const active = apps.filter((app) => app.rollout?.state === 'awaiting-promotion' || app.rollout?.state === 'paused' || app.rollout?.state === 'running');
      const app = active[random.below(Math.max(1, active.length))];
      if (app === undefined) return;
      const abort = app.rollout?.state !== 'awaiting-promotion' || random.chance(0.3);
      this.options.stats[abort ? 'aborts' : 'promotes']!++;
      this.options.operate({ type: abort ? 'app.abort' : 'app.promote', tenant: app.tenant, name: app.name }, `${abort ? 'abort' : 'promote'} ${app.tenant}/${app.name}`);
    } else if (roll < 84) {
      const tenant = TENANTS[random.below(TENANTS.length)]!;
      const quota = { instances: 2 + random.below(14), memoryBytes: 1024 ** 3 * (1 + random.below(4)), ...(random.chance(0.5) ? { cpuMillis: 500 * (1 + random.below(6)) } : {}) };
      this.options.stats.quotaChanges!++;
      this.options.operate({ type: 'tenant.update', name: tenant.name, quota }, `quota of ${tenant.name} to ${JSON.stringify(quota)}`);
    } else if (roll < 88) {
      const app = apps[random.below(Math.max(1, apps.length))];
      if (app === undefined) return;
      this.options.stats.deletes!++;
      this.options.operate({ type: 'app.delete', tenant: app.tenant, name: app.name }, `delete ${app.tenant}/${app.name}`);
    }
  }

  /**
   * Whether `replicas` more instances of `spec` keep what the apps ask for
   * within DEMAND_SHARE_MAX of the cluster's resources. What they ask for:
   * every instance meant to run, placed or not, old versions of a rollout
   * included. The operator keeps within it, so that every app can converge
   * once the faults stop (an app that cannot fit would never converge).
   */
  #fits(machine: ClusterStateMachine, replicas: number, spec: AppSpec): boolean {
    const capacity = this.options.capacity();
    const demand = { cpuMillis: 0, memoryBytes: 0 };
    const add = (count: number, resources: { cpuMillis: number; memoryBytes: number }): void => {
      demand.cpuMillis += count * resources.cpuMillis;
      demand.memoryBytes += count * resources.memoryBytes;
    };
    const view = machine.schedulerView();
    const apps = new Map(view.apps.map((app) => [`${app.tenant}/${app.name}`, app]));
    for (const instance of view.instances) {
      const app = apps.get(`${instance.tenant}/${instance.app}`);
      if (app !== undefined && instance.desired === 'running') add(1, instanceResources(specOfVersion(app, instance.version)));
    }
    add(replicas, instanceResources(spec));
    return demand.cpuMillis <= capacity.cpuMillis * DEMAND_SHARE_MAX && demand.memoryBytes <= capacity.memoryBytes * DEMAND_SHARE_MAX;
  }

  /** `spec` as a new version that works: no `sim.fail`, a new `REVISION`. */
  #fixed(spec: AppSpec): AppSpec {
    const fixed = structuredClone(spec);
    fixed.labels = {};
    fixed.environment = { ...fixed.environment, REVISION: String(++this.#revision) };
    return fixed;
  }

  /** Once the faults stop: what an operator settles (lift quotas, promote, abort, fix a version that cannot run). */
  settle(machine: ClusterStateMachine): void {
    // The quotas the operator lowered go, so that the fixed versions it deploys are not refused.
    for (const tenant of machine.tenants()) {
      if (tenant.name !== 'default' && Object.keys(tenant.quota).length > 0) this.options.operate({ type: 'tenant.update', name: tenant.name, quota: {} }, `lift the quota of ${tenant.name}`);
    }
    for (const app of machine.apps()) {
      const rollout = app.rollout;
      if (rollout?.state === 'awaiting-promotion') this.options.operate({ type: 'app.promote', tenant: app.tenant, name: app.name }, `promote ${app.tenant}/${app.name}`);
      else if (rollout?.state === 'paused') {
        const from = specOfVersion(app, rollout.fromVersion);
        // A rollback that paused again is not aborted once more (that flips the app between its two versions): the
        // operator deploys a fixed version, a new one, as a user whose rollback also failed would (seed 8127).
        if (rollout.kind === 'rollback') this.options.operate({ type: 'app.deploy', spec: this.#fixed(specOfVersion(app, app.version)) }, `fix ${app.tenant}/${app.name} (its rollback paused)`);
        else if (from.labels['sim.fail'] === 'true') this.options.operate({ type: 'app.deploy', spec: { ...structuredClone(from), labels: {} } }, `fix ${app.tenant}/${app.name}`);
        else this.options.operate({ type: 'app.abort', tenant: app.tenant, name: app.name }, `abort ${app.tenant}/${app.name}`);
      } else {
        const spec = specOfVersion(app, app.version);
        const active = rollout !== undefined && ['running', 'paused', 'awaiting-promotion'].includes(rollout.state);
        if (spec.labels['sim.fail'] === 'true' && !active) this.options.operate({ type: 'app.deploy', spec: { ...structuredClone(spec), labels: {} } }, `fix ${app.tenant}/${app.name}`);
      }
    }
  }
}
