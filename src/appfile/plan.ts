/**
 * What a deploy would change, as Nomad's `job plan` shows it: per app, a
 * create, an update to a new version (and which fields changed), a scale, or
 * nothing; the instances it would start and stop; each tenant's quota use
 * before and after. `hivemind deploy --dry-run` prints it. Also: where a
 * state machine's refusal of a deploy points in the user's file. Pure: the
 * caller passes the cluster's current apps and usage.
 */
import { addApp, type Usage } from '../state/quota.js';
import { sameValue } from '../state/same-value.js';
import { currentSpec } from '../state/state.js';
import type { App, AppSpec, Quota } from '../state/types.js';

/** What a deploy does to one app. `refused`: it belongs to another project (and the deploy is not forced). */
export type PlannedAction = 'create' | 'update' | 'scale' | 'unchanged' | 'refused';

/** One app of a plan. */
export interface PlannedApp {
  tenant: string;
  name: string;
  action: PlannedAction;
  /** The version now (absent for a create). */
  fromVersion?: number;
  /** The version after (a new one for create and update, the same otherwise). */
  toVersion?: number;
  fromReplicas?: number;
  replicas: number;
  /** The spec fields an update changes, in words: `image nginx:1.25 → nginx:1.27`, `environment (+DEBUG, ~MODE)`. */
  changes: string[];
  /** Instances the deploy starts and stops (an update replaces every instance, as its strategy says). */
  start: number;
  stop: number;
  /** The update's strategy (rolling, blue-green, canary). */
  strategy?: string;
  /** The project that holds the app now, when another than the deploy's. */
  owner?: string;
}

/** One tenant's quota use now and after the deploy; `quota` fields absent are unlimited. */
export interface PlannedQuota {
  tenant: string;
  before: Usage;
  after: Usage;
  quota: Quota;
}

/** A whole deploy's plan. */
export interface DeployPlan {
  project?: string;
  apps: PlannedApp[];
  quotas: PlannedQuota[];
}

/** What the plan reads of the cluster. */
export interface PlanInput {
  apps: readonly AppSpec[];
  project?: string;
  force: boolean;
  /** The app as the cluster holds it, if it exists. */
  current: (tenant: string, name: string) => App | undefined;
  /** The tenant's usage and quota; undefined for a tenant that does not exist yet (no quota). */
  tenant: (name: string) => { usage: Usage; quota: Quota } | undefined;
}

/** The plan of deploying `input.apps`: the same decisions `app.deploy-many` makes (see apply-apps.ts), without changing anything. */
export function planDeploy(input: PlanInput): DeployPlan {
  const apps = input.apps.map((spec) => planApp(spec, input));
  const tenants = [...new Set(input.apps.map((spec) => spec.tenant))];
  const quotas: PlannedQuota[] = [];
  for (const tenant of tenants) {
    const found = input.tenant(tenant);
    const before: Usage = found === undefined ? { cpuMillis: 0, memoryBytes: 0, instances: 0, apps: 0, volumes: 0, storageBytes: 0 } : { ...found.usage };
    const after: Usage = { ...before };
    for (const spec of input.apps) {
      if (spec.tenant !== tenant) continue;
      const existing = input.current(tenant, spec.name);
      if (existing !== undefined) addApp(after, currentSpec(existing), existing.replicas, -1);
      addApp(after, spec, spec.replicas, 1);
    }
    quotas.push({ tenant, before, after, quota: found?.quota ?? {} });
  }
  return input.project === undefined ? { apps, quotas } : { project: input.project, apps, quotas };
}

function planApp(spec: AppSpec, input: PlanInput): PlannedApp {
  const existing = input.current(spec.tenant, spec.name);
  const base = { tenant: spec.tenant, name: spec.name, replicas: spec.replicas };
  if (existing === undefined) return { ...base, action: 'create', toVersion: 1, changes: [], start: spec.replicas, stop: 0 };
  const from = { fromVersion: existing.version, fromReplicas: existing.replicas };
  if (input.project !== undefined && existing.project !== undefined && existing.project !== input.project && !input.force) {
    return { ...base, ...from, action: 'refused', changes: [], start: 0, stop: 0, owner: existing.project };
  }
  const current = currentSpec(existing);
  if (input.project !== undefined && sameValue(current, spec)) {
    if (existing.replicas === spec.replicas) return { ...base, ...from, action: 'unchanged', toVersion: existing.version, changes: [], start: 0, stop: 0 };
    const delta = spec.replicas - existing.replicas;
    return { ...base, ...from, action: 'scale', toVersion: existing.version, changes: [`replicas ${existing.replicas} → ${spec.replicas}`], start: Math.max(0, delta), stop: Math.max(0, -delta) };
  }
  const newest = Math.max(existing.version, ...existing.versions.map((entry) => entry.version));
  return {
    ...base,
    ...from,
    action: 'update',
    toVersion: newest + 1,
    changes: specChanges(current, spec, existing.replicas),
    start: spec.replicas,
    stop: existing.replicas,
    strategy: spec.hivemind.strategy ?? 'rolling',
  };
}

/** The fields that differ between two specs, in words; records list the keys added (+), removed (-) and changed (~). */
export function specChanges(before: AppSpec, after: AppSpec, replicasBefore: number): string[] {
  const changes: string[] = [];
  if (replicasBefore !== after.replicas) changes.push(`replicas ${replicasBefore} → ${after.replicas}`);
  const keys = new Set([...Object.keys(before), ...Object.keys(after)]);
  keys.delete('replicas');
  for (const key of keys) {
    const left = (before as unknown as Record<string, unknown>)[key];
    const right = (after as unknown as Record<string, unknown>)[key];
    if (sameValue(left, right)) continue;
    if ((typeof left === 'string' || typeof left === 'number' || left === undefined) && (typeof right === 'string' || typeof right === 'number' || right === undefined)) {
      changes.push(`${key} ${shown(left)} → ${shown(right)}`);
    } else if (key === 'environment' || key === 'labels') {
      changes.push(`${key} (${recordChanges(left as Record<string, string>, right as Record<string, string>)})`);
    } else {
      changes.push(key);
    }
  }
  return changes;
}

function shown(value: unknown): string {
  if (value === undefined) return '(none)';
  const text = String(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

function recordChanges(before: Record<string, string> = {}, after: Record<string, string> = {}): string {
  const parts: string[] = [];
  for (const key of Object.keys(after)) if (!Object.hasOwn(before, key)) parts.push(`+${key}`);
  for (const key of Object.keys(before)) if (!Object.hasOwn(after, key)) parts.push(`-${key}`);
  for (const key of Object.keys(after)) if (Object.hasOwn(before, key) && before[key] !== after[key]) parts.push(`~${key}`);
  return parts.join(', ');
}

/** The spec fields whose place in a Compose service is fixed. */
const composeOfSpecField: Readonly<Record<string, string>> = {
  name: '',
  replicas: '.deploy.replicas',
  'reservations.memoryBytes': '.deploy.resources.reservations.memory',
  'reservations.cpuMillis': '.deploy.resources.reservations.cpus',
  'limits.memoryBytes': '.deploy.resources.limits.memory',
  'limits.cpuMillis': '.deploy.resources.limits.cpus',
  image: '.image',
};

/**
 * Where a field of an `app.deploy-many` command (`specs[0].hivemind.secrets[1]`,
 * as the state machine names it in a refusal) was written in the user's file
 * (`services.db.secrets[0]`); undefined when it has no one place.
 * `origins` is the parse result's.
 */
export function composeFieldOf(field: string, apps: readonly AppSpec[], origins: Readonly<Record<string, Readonly<Record<string, string>>>>): string | undefined {
  const match = /^specs\[(\d+)\](?:\.(.+))?$/.exec(field);
  if (match === null) return undefined;
  const app = apps[Number(match[1])];
  if (app === undefined) return undefined;
  const own = origins[app.name] ?? {};
  const service = own.name ?? `services.${app.name}`;
  const rest = match[2];
  if (rest === undefined) return service;
  if (Object.hasOwn(own, rest)) return own[rest];
  const fixed = composeOfSpecField[rest];
  return fixed === undefined ? service : `${service}${fixed}`;
}
