/**
 * Apply handlers for tenants. Pure: they read the state and the command only.
 *
 * The `default` tenant exists implicitly: any command naming it works before
 * it has a record, and the first successful one stores it with no quota.
 * `tenant.create default` is allowed while it has no record (to give it a
 * quota at once); `tenant.update default` works at any time; it cannot be
 * deleted.
 */
import { createDefaultNetwork, DEFAULT_NETWORK, deleteTenantNetworks } from './apply-tenant-networks.js';
import { CONTAINER_SETTINGS_VERSION, ENCRYPTED_VOLUMES_VERSION } from './version.js';
import { ErrorCode, formatBytes, formatCpu } from './errors.js';
import { overQuota, tenantUsage } from './quota.js';
import { adoptTenant, limitProblem, lookupTenant, refuse, type ApplyContext, type ClusterState, type Plan } from './state.js';
import { DEFAULT_TENANT, type Command, type Quota, type TenantSettings } from './types.js';
import { object, oneOf, optional } from './schema.js';
import { name, quota, tenantSettings } from './fields.js';
import type { CommandModule } from './command.js';

type CommandOf<T extends Command['type']> = Extract<Command, { type: T }>;

/** "memory 4 GiB, apps 3", or "no quota". */
export function describeQuota(quota: Quota): string {
  const parts: string[] = [];
  if (quota.cpuMillis !== undefined) parts.push(`CPU ${formatCpu(quota.cpuMillis)}`);
  if (quota.memoryBytes !== undefined) parts.push(`memory ${formatBytes(quota.memoryBytes)}`);
  if (quota.instances !== undefined) parts.push(`instances ${quota.instances}`);
  if (quota.apps !== undefined) parts.push(`apps ${quota.apps}`);
  if (quota.volumes !== undefined) parts.push(`volumes ${quota.volumes}`);
  if (quota.storageBytes !== undefined) parts.push(`storage ${formatBytes(quota.storageBytes)}`);
  return parts.length > 0 ? parts.join(', ') : 'no quota';
}

/** "host users allowed, host mounts allowed", or "confined" when nothing is allowed. */
export function describeSettings(settings: TenantSettings | undefined): string {
  const allowed: string[] = [];
  if (settings?.hostUsers === true) allowed.push('host users');
  if (settings?.hostMounts === true) allowed.push('host mounts');
  if (settings?.capabilities !== undefined && settings.capabilities.length > 0) allowed.push(`capabilities ${settings.capabilities.join(',')}`);
  const confinement = allowed.length > 0 ? `${allowed.join(' and ')} allowed` : 'confined';
  return settings?.encryptVolumes === true ? `${confinement}, volumes encrypted` : confinement;
}

/** Settings as stored: only the fields that allow something (absent means false). */
function storedSettings(settings: TenantSettings): TenantSettings | undefined {
  const stored: TenantSettings = {
    ...(settings.hostUsers === true ? { hostUsers: true } : {}),
    ...(settings.hostMounts === true ? { hostMounts: true } : {}),
    ...(settings.encryptVolumes === true ? { encryptVolumes: true } : {}),
    ...(settings.capabilities !== undefined && settings.capabilities.length > 0 ? { capabilities: [...settings.capabilities] } : {}),
  };
  return Object.keys(stored).length > 0 ? stored : undefined;
}

/**
 * tenant.create: a new tenant; 'already-exists' if it has a record. It takes
 * the next tenant user id offset (`Tenant.uidOffset`); `default` keeps 0.
 */
export function planTenantCreate(state: ClusterState, command: CommandOf<'tenant.create'>, context: ApplyContext): Plan {
  const action = `cannot create tenant "${command.name}"`;
  if (state.tenants.has(command.name)) {
    return refuse(ErrorCode.alreadyExists, `${action}: it already exists; change its quota with tenant.update`, 'name');
  }
  const limit = limitProblem('tenants', state.tenants.size, action);
  if (limit) return { ok: false, error: limit };
  return {
    ok: true,
    commit: () => {
      let uidOffset = 0;
      if (command.name !== DEFAULT_TENANT) {
        uidOffset = state.tenantUidOffsetLast + 1;
        state.tenantUidOffsetLast = uidOffset;
      }
      const settings = command.settings === undefined ? undefined : storedSettings(command.settings);
      state.tenants.set(command.name, { name: command.name, quota: command.quota, createdIndex: context.index, createdAt: context.time, uidOffset, ...(settings ? { settings } : {}) });
      const network = createDefaultNetwork(state, command.name, context);
      const networkNote = network === undefined ? '' : 'cidr' in network ? `; network ${DEFAULT_NETWORK} ${network.cidr}` : `; no ${DEFAULT_NETWORK} network: ${network.missing}`;
      const summary = `created (${describeQuota(command.quota)}${settings ? `; ${describeSettings(settings)}` : ''}${networkNote})`;
      return { value: { name: command.name, ...(network !== undefined && 'cidr' in network ? { network: network.cidr } : {}) }, history: { target: `tenant ${command.name}`, summary } };
    },
  };
}

/**
 * tenant.update: replaces the whole quota (an absent field is unlimited), and
 * the settings when the command has them (absent: unchanged). A quota below
 * current usage is allowed; the result's value lists the resources over it
 * (`overQuota`), and the tenant cannot grow them further. Taking a setting
 * away stops nothing that runs: each node refuses the next start it no
 * longer allows.
 */
export function planTenantUpdate(state: ClusterState, command: CommandOf<'tenant.update'>, context: ApplyContext): Plan {
  const found = lookupTenant(state, command.name, { field: 'name', action: `cannot update tenant "${command.name}"`, context });
  if (!found.ok) return found;
  const tenant = found.tenant;
  return {
    ok: true,
    commit: () => {
      adoptTenant(state, tenant);
      tenant.quota = command.quota;
      // A record from before tenant user ids gets its offset at its first update.
      if (tenant.uidOffset === undefined) {
        tenant.uidOffset = command.name === DEFAULT_TENANT ? 0 : state.tenantUidOffsetLast + 1;
        state.tenantUidOffsetLast = Math.max(state.tenantUidOffsetLast, tenant.uidOffset);
      }
      if (command.settings !== undefined) {
        const settings = storedSettings(command.settings);
        if (settings) tenant.settings = settings;
        else delete tenant.settings;
      }
      const over = overQuota(command.quota, tenantUsage(state, command.name));
      const settingsPart = command.settings === undefined ? '' : `; settings: ${describeSettings(tenant.settings)}`;
      return {
        value: { name: command.name, overQuota: over },
        history: { target: `tenant ${command.name}`, summary: `quota set (${describeQuota(command.quota)})${settingsPart}` },
      };
    },
  };
}

/** tenant.delete: refused while the tenant has apps, volumes or secrets; its network policies go with it. */
export function planTenantDelete(state: ClusterState, command: CommandOf<'tenant.delete'>): Plan {
  const action = `cannot delete tenant "${command.name}"`;
  if (command.name === DEFAULT_TENANT) {
    return refuse(ErrorCode.conflict, `${action}: it always exists; change its quota with tenant.update instead`, 'name');
  }
  if (!state.tenants.has(command.name)) return refuse(ErrorCode.notFound, `${action}: it does not exist`, 'name');
  const owned = ownedCounts(state, command.name);
  if (owned.length > 0) return refuse(ErrorCode.conflict, `${action}: it still has ${owned.join(', ')}; delete them first`, 'name');
  return {
    ok: true,
    commit: () => {
      state.tenants.delete(command.name);
      for (const [key, policy] of state.policies) if (policy.tenant === command.name) state.policies.delete(key);
      deleteTenantNetworks(state, command.name);
      return { value: { name: command.name }, history: { target: `tenant ${command.name}`, summary: 'deleted' } };
    },
  };
}

function ownedCounts(state: ClusterState, tenant: string): string[] {
  const counts: [string, number][] = [
    ['app', countOf(state.apps.values(), tenant)],
    ['volume', countOf(state.volumes.values(), tenant)],
    ['secret', countOf(state.secrets.values(), tenant)],
  ];
  return counts.filter(([, found]) => found > 0).map(([kind, found]) => `${found} ${kind}${found === 1 ? '' : 's'}`);
}

function countOf(values: Iterable<{ tenant: string }>, tenant: string): number {
  let found = 0;
  for (const value of values) if (value.tenant === tenant) found++;
  return found;
}

// -----------------------------------------------------------------------------
// The commands of this file as modules: schema, plan, proposers, version (listed in commands.ts).

/** `tenant.create`. */
export const tenantCreateCommand: CommandModule<'tenant.create'> = {
  type: 'tenant.create',
  since: 1,
  proposers: ['user'],
  schema: object<CommandOf<'tenant.create'>>({ type: oneOf(['tenant.create']), name, quota, settings: optional(tenantSettings) }),
  versionOf: (command) => (command.settings?.encryptVolumes !== undefined || command.settings?.capabilities !== undefined ? Math.max(ENCRYPTED_VOLUMES_VERSION, CONTAINER_SETTINGS_VERSION) : 1),
  plan: planTenantCreate,
};

/** `tenant.update`. */
export const tenantUpdateCommand: CommandModule<'tenant.update'> = {
  type: 'tenant.update',
  since: 1,
  proposers: ['user'],
  schema: object<CommandOf<'tenant.update'>>({ type: oneOf(['tenant.update']), name, quota, settings: optional(tenantSettings) }),
  versionOf: (command) => (command.settings?.encryptVolumes !== undefined || command.settings?.capabilities !== undefined ? Math.max(ENCRYPTED_VOLUMES_VERSION, CONTAINER_SETTINGS_VERSION) : 1),
  plan: planTenantUpdate,
};

/** `tenant.delete`. */
export const tenantDeleteCommand: CommandModule<'tenant.delete'> = {
  type: 'tenant.delete',
  since: 1,
  proposers: ['user'],
  schema: object<CommandOf<'tenant.delete'>>({ type: oneOf(['tenant.delete']), name }),
  plan: planTenantDelete,
};
