/**
 * Tenant quotas: what a tenant uses, and whether a change would take it past
 * its quota. Apply runs these checks, and `ClusterStateMachine.check` runs the
 * same code before a proposal, so the API's answer and the log's agree.
 * Pure: no Node API.
 */
import { ErrorCode, formatBytes, formatCpu, stateError, type StateError } from './errors.js';
import { currentSpec, type ClusterState } from './state.js';
import type { AppSpec, Quota, Tenant } from './types.js';
import { stateMutations } from './mutations.js';

/** What a tenant uses of each quota resource. CPU in thousandths of a core, sizes in bytes. */
export type Usage = Required<Quota>;

/** Usage of nothing. */
export function zeroUsage(): Usage {
  return { cpuMillis: 0, memoryBytes: 0, instances: 0, apps: 0, volumes: 0, storageBytes: 0 };
}

/**
 * What one instance of `spec` counts against the quota: its reservations, or
 * its limits for a resource it reserves nothing of, else 0.
 */
export function instanceResources(spec: AppSpec): { cpuMillis: number; memoryBytes: number } {
  return {
    cpuMillis: spec.reservations.cpuMillis ?? spec.limits.cpuMillis ?? 0,
    memoryBytes: spec.reservations.memoryBytes ?? spec.limits.memoryBytes ?? 0,
  };
}

/** Adds (`sign` 1) or removes (`sign` -1) one app of `replicas` instances of `spec` to `usage`, in place. */
export function addApp(usage: Usage, spec: AppSpec, replicas: number, sign: 1 | -1): Usage {
  const each = instanceResources(spec);
  usage.apps += sign;
  usage.instances += sign * replicas;
  usage.cpuMillis += sign * replicas * each.cpuMillis;
  usage.memoryBytes += sign * replicas * each.memoryBytes;
  return usage;
}

/** Everything `tenant` uses now: its apps (current spec × current replicas) and volumes. */
export function tenantUsage(state: ClusterState, tenant: string): Usage {
  const usage = zeroUsage();
  for (const app of state.apps.values()) {
    if (app.tenant !== tenant) continue;
    // The desired size at the target version: a rollout's surge (old and new side by side) is not counted.
    addApp(usage, currentSpec(app), app.replicas, 1);
  }
  for (const volume of state.volumes.values()) {
    if (volume.tenant !== tenant) continue;
    usage.volumes += 1;
    // What the volume really takes on disk (its node's last report): a sparse volume costs what is written to it.
    usage.storageBytes += volume.usedBytes ?? 0;
  }
  return usage;
}

interface ResourceInfo {
  key: keyof Quota;
  label: string;
  format: (amount: number) => string;
}

const resourceInfos: ResourceInfo[] = [
  { key: 'cpuMillis', label: 'CPU', format: formatCpu },
  { key: 'memoryBytes', label: 'memory', format: formatBytes },
  { key: 'instances', label: 'instances', format: String },
  { key: 'apps', label: 'apps', format: String },
  { key: 'volumes', label: 'volumes', format: String },
  { key: 'storageBytes', label: 'storage', format: formatBytes },
];

/** What a quota check needs to word its refusal. */
export interface QuotaCheck {
  tenant: Tenant;
  before: Usage;
  after: Usage;
  /** "cannot deploy \"web\"". */
  action: string;
  /** The command field to blame for each resource, such as `spec.replicas`. */
  fields: Partial<Record<keyof Quota, string>>;
}

/**
 * Refuses a change that would take a resource past the tenant's quota. Only
 * a resource the change increases counts: a tenant already over a lowered
 * quota may still scale down or redeploy at the same size.
 */
export function quotaProblem({ tenant, before, after, action, fields }: QuotaCheck): StateError | undefined {
  // stateMutations: test only (src/sim's mutation checks), never set in production.
  if (stateMutations.quotaCheckOff) return undefined;
  for (const { key, label, format } of resourceInfos) {
    const limit = tenant.quota[key];
    if (limit === undefined || after[key] <= limit || after[key] <= before[key]) continue;
    const numbers = `used ${format(before[key])} of ${format(limit)}, needs ${format(after[key] - before[key])} more`;
    const message = `${action}: tenant "${tenant.name}" would exceed its ${label} quota (${numbers}); ask for less, free some, or raise the quota`;
    return stateError(ErrorCode.quotaExceeded, message, fields[key]);
  }
  return undefined;
}

/** A resource a tenant uses beyond its quota. */
export interface OverQuota {
  resource: keyof Quota;
  used: number;
  limit: number;
  message: string;
}

/** The resources where `usage` exceeds `quota` (a lowered quota is allowed; this reports it). */
export function overQuota(quota: Quota, usage: Usage): OverQuota[] {
  const over: OverQuota[] = [];
  for (const { key, label, format } of resourceInfos) {
    const limit = quota[key];
    if (limit === undefined || usage[key] <= limit) continue;
    over.push({ resource: key, used: usage[key], limit, message: `${label}: uses ${format(usage[key])} of ${format(limit)}` });
  }
  return over;
}
