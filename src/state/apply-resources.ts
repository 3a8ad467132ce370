/**
 * Apply handlers for a tenant's network policies, volumes and secrets. Pure:
 * they read the state and the command only.
 *
 * An app's current version must find every volume, secret and policy it
 * names, so deleting one is refused while a current spec uses it. Earlier
 * versions are not checked: rolling back to one that names a deleted item is
 * refused then, naming it.
 */
import { ErrorCode, formatBytes } from './errors.js';
import { quotaProblem, tenantUsage } from './quota.js';
import { adoptTenant, currentSpec, limitProblem, lookupTenant, refuse, tenantKey, type ApplyContext, type ClusterState, type Plan } from './state.js';
import { VOLUME_KEY_BYTES, type App, type AppSpec, type Command, type Instance, type VolumeEncryption, type VolumeIoLimits } from './types.js';
import { bytes, integer, list, object, oneOf, optional } from './schema.js';
import { count, egressRule, identifier, name, names, nonce, policyRule, volumeIoLimits, LIMITS } from './fields.js';
import type { CommandModule } from './command.js';
import { ENCRYPTED_VOLUMES_VERSION } from './version.js';

type CommandOf<T extends Command['type']> = Extract<Command, { type: T }>;

/** The first app of `tenant` whose current spec satisfies `uses`, with the field that names the item. */
function userOf(state: ClusterState, tenant: string, uses: (spec: AppSpec) => string | undefined): { app: App; field: string } | undefined {
  for (const app of state.apps.values()) {
    if (app.tenant !== tenant) continue;
    const field = uses(currentSpec(app));
    if (field !== undefined) return { app, field };
  }
  return undefined;
}

function inUse(action: string, user: { app: App; field: string }): Plan {
  const message = `${action}: app "${user.app.name}" uses it (${user.field}); deploy the app without it, or delete the app, first`;
  return refuse(ErrorCode.conflict, message, 'name');
}

/** policy.put: creates or replaces a network policy. The apps and tenants it names need not exist yet. */
export function planPolicyPut(state: ClusterState, command: CommandOf<'policy.put'>, context: ApplyContext): Plan {
  const action = `cannot set network policy "${command.name}"`;
  const found = lookupTenant(state, command.tenant, { field: 'tenant', action, context });
  if (!found.ok) return found;
  const key = tenantKey(command.tenant, command.name);
  const existing = state.policies.get(key);
  const limit = existing ? undefined : limitProblem('policies', state.policies.size, action);
  if (limit) return { ok: false, error: limit };
  return {
    ok: true,
    commit: () => {
      adoptTenant(state, found.tenant);
      state.policies.set(key, {
        tenant: command.tenant,
        name: command.name,
        apps: command.apps,
        ingress: command.ingress,
        ...(command.egress !== undefined ? { egress: command.egress } : {}),
        createdIndex: existing?.createdIndex ?? context.index,
        updatedIndex: context.index,
      });
      const egress = command.egress === undefined ? '' : `, ${command.egress.length} egress rule${command.egress.length === 1 ? '' : 's'}`;
      const summary = `${existing ? 'replaced' : 'created'} (${command.ingress.length} ingress rule${command.ingress.length === 1 ? '' : 's'}${egress})`;
      return { value: { tenant: command.tenant, name: command.name }, history: { target: `policy ${key}`, summary } };
    },
  };
}

/** policy.delete: refused while an app's current spec lists it. */
export function planPolicyDelete(state: ClusterState, command: CommandOf<'policy.delete'>): Plan {
  const action = `cannot delete network policy "${command.name}"`;
  const key = tenantKey(command.tenant, command.name);
  if (!state.policies.has(key)) return refuse(ErrorCode.notFound, `${action}: tenant "${command.tenant}" has no such policy`, 'name');
  const user = userOf(state, command.tenant, (spec) => fieldOfName(spec.hivemind.policies, command.name, 'hivemind.policies'));
  if (user) return inUse(action, user);
  return deletion(() => state.policies.delete(key), { tenant: command.tenant, name: command.name }, `policy ${key}`);
}

function fieldOfName(names: string[] | undefined, name: string, path: string): string | undefined {
  const position = (names ?? []).indexOf(name);
  return position < 0 ? undefined : `${path}[${position}]`;
}

function deletion(remove: () => void, value: { tenant: string; name: string }, target: string): Plan {
  return {
    ok: true,
    commit: () => {
      remove();
      return { value, history: { target, summary: 'deleted' } };
    },
  };
}

/** volume.create: a named volume of a fixed size; counts against the volumes and storage quotas. */
export function planVolumeCreate(state: ClusterState, command: CommandOf<'volume.create'>, context: ApplyContext): Plan {
  const action = `cannot create volume "${command.name}"`;
  const found = lookupTenant(state, command.tenant, { field: 'tenant', action, context });
  if (!found.ok) return found;
  const key = tenantKey(command.tenant, command.name);
  if (state.volumes.has(key)) return refuse(ErrorCode.alreadyExists, `${action}: tenant "${command.tenant}" already has it`, 'name');
  const before = tenantUsage(state, command.tenant);
  const after = { ...before, volumes: before.volumes + 1, storageBytes: before.storageBytes + command.sizeBytes };
  if (command.node !== undefined) {
    const node = state.nodes.get(command.node);
    if (node === undefined || node.status === 'left') return refuse(ErrorCode.notFound, `${action}: there is no node "${command.node}" in the cluster (see hivemind nodes)`, 'node');
  }
  if (found.tenant.settings?.encryptVolumes === true && command.encryption === undefined) {
    return refuse(ErrorCode.invalidArgument, `${action}: tenant "${command.tenant}" encrypts its volumes, and this command carries no key (create it through the API, which seals one)`, 'encryption');
  }
  const problem =
    limitProblem('volumes', state.volumes.size, action) ??
    quotaProblem({ tenant: found.tenant, before, after, action, fields: { volumes: 'name', storageBytes: 'sizeBytes' } });
  if (problem) return { ok: false, error: problem };
  return {
    ok: true,
    commit: () => {
      adoptTenant(state, found.tenant);
      const io = command.io !== undefined && Object.keys(command.io).length > 0 ? { io: { ...command.io } } : {};
      const encryption = command.encryption !== undefined ? { encryption: { ciphertext: command.encryption.ciphertext, nonce: command.encryption.nonce } } : {};
      const node = command.node !== undefined ? { node: command.node } : {};
      state.volumes.set(key, { tenant: command.tenant, name: command.name, sizeBytes: command.sizeBytes, createdIndex: context.index, ...io, ...encryption, ...node });
      const limits = io.io !== undefined ? `, I/O ${describeIo(io.io)}` : '';
      const encrypted = command.encryption !== undefined ? ', encrypted' : '';
      const where = command.node !== undefined ? `, on node ${command.node}` : '';
      return { value: { tenant: command.tenant, name: command.name }, history: { target: `volume ${key}`, summary: `created (${formatBytes(command.sizeBytes)}${limits}${encrypted}${where})` } };
    },
  };
}

/** volume.delete: refused while an app's current spec mounts it. */
export function planVolumeDelete(state: ClusterState, command: CommandOf<'volume.delete'>): Plan {
  const action = `cannot delete volume "${command.name}"`;
  const key = tenantKey(command.tenant, command.name);
  if (!state.volumes.has(key)) return refuse(ErrorCode.notFound, `${action}: tenant "${command.tenant}" has no such volume`, 'name');
  const user = userOf(state, command.tenant, (spec) => {
    const position = spec.volumes.findIndex((mount) => mount.source === command.name);
    return position < 0 ? undefined : `volumes[${position}].source`;
  });
  if (user) return inUse(action, user);
  return deletion(() => state.volumes.delete(key), { tenant: command.tenant, name: command.name }, `volume ${key}`);
}

/**
 * volume.bind: records the node holding the volume's data. Binding again to
 * the same node is accepted (a retry after a lost reply); to another node is
 * refused, so two nodes that both created the volume on first use agree on
 * one, and the other's instance fails its start and is placed again.
 */
export function planVolumeBind(state: ClusterState, command: CommandOf<'volume.bind'>): Plan {
  const action = `cannot bind volume "${command.name}" to node ${command.node}`;
  const key = tenantKey(command.tenant, command.name);
  const volume = state.volumes.get(key);
  if (volume === undefined) return refuse(ErrorCode.notFound, `${action}: tenant "${command.tenant}" has no such volume`, 'name');
  if (!state.nodes.has(command.node)) return refuse(ErrorCode.notFound, `${action}: no such node in the cluster`, 'node');
  if (volume.node !== undefined && volume.node !== command.node) {
    return refuse(ErrorCode.conflict, `${action}: its data lives on node ${volume.node}; instances that mount it run there`, 'node');
  }
  const already = volume.node === command.node;
  return {
    ok: true,
    commit: () => {
      volume.node = command.node;
      return { value: { tenant: command.tenant, name: command.name, node: command.node }, history: { target: `volume ${key}`, summary: already ? `still on node ${command.node}` : `created on node ${command.node}` } };
    },
  };
}

/** `read 10 MiB/s, write 200 IOPS`: a volume's I/O limits for history. */
function describeIo(io: VolumeIoLimits): string {
  const parts: string[] = [];
  if (io.readBytesPerSecond !== undefined) parts.push(`read ${formatBytes(io.readBytesPerSecond)}/s`);
  if (io.writeBytesPerSecond !== undefined) parts.push(`write ${formatBytes(io.writeBytesPerSecond)}/s`);
  if (io.readIops !== undefined) parts.push(`read ${io.readIops} IOPS`);
  if (io.writeIops !== undefined) parts.push(`write ${io.writeIops} IOPS`);
  return parts.join(', ') || 'unlimited';
}

/** volume.set-io: sets or (an empty `io`) removes a volume's I/O limits; workloads that start from then on get them. */
export function planVolumeSetIo(state: ClusterState, command: CommandOf<'volume.set-io'>): Plan {
  const key = tenantKey(command.tenant, command.name);
  const volume = state.volumes.get(key);
  if (volume === undefined) return refuse(ErrorCode.notFound, `cannot set the I/O limits of volume "${command.name}": tenant "${command.tenant}" has no such volume`, 'name');
  return {
    ok: true,
    commit: () => {
      if (Object.keys(command.io).length === 0) delete volume.io;
      else volume.io = { ...command.io };
      return { value: { tenant: command.tenant, name: command.name, io: volume.io ?? {} }, history: { target: `volume ${key}`, summary: `I/O limits: ${describeIo(command.io)}` } };
    },
  };
}

/**
 * volume.report: what the volume's backing file takes on disk, from its node.
 * A report that comes late (the volume deleted, made again, bound elsewhere
 * or moving) is ignored rather than refused: the node sends the next one.
 */
export function planVolumeReport(state: ClusterState, command: CommandOf<'volume.report'>): Plan {
  const volume = state.volumes.get(tenantKey(command.tenant, command.name));
  const current = volume !== undefined && volume.createdIndex === command.createdIndex && volume.node === command.node && volume.moving === undefined;
  return {
    ok: true,
    commit: () => {
      if (current) volume.usedBytes = command.usedBytes;
      return { value: { applied: current } };
    },
  };
}

/** The instances whose version mounts volume `name` of `tenant` and that have a node. */
function placedUsersOf(state: ClusterState, tenant: string, name: string): Instance[] {
  const users: Instance[] = [];
  for (const instance of state.instances.values()) {
    if (instance.tenant !== tenant || instance.node === undefined) continue;
    const app = state.apps.get(tenantKey(tenant, instance.app));
    const spec = app?.versions.find((entry) => entry.version === instance.version)?.spec;
    if (spec?.volumes.some((mount) => mount.source === name)) users.push(instance);
  }
  return users;
}

/**
 * volume.move: starts moving a bound volume to node `to`. Every instance
 * that mounts it is unplaced (its node stops it) and none is placed again
 * until `volume.move-end` (the scheduler pins it to no node meanwhile), so
 * nothing writes while the data is copied. Asking again for the same target
 * is accepted (a retry); another target while one move runs is refused.
 */
export function planVolumeMove(state: ClusterState, command: CommandOf<'volume.move'>, context: ApplyContext): Plan {
  const action = `cannot move volume "${command.name}" to node ${command.to}`;
  const key = tenantKey(command.tenant, command.name);
  const volume = state.volumes.get(key);
  if (volume === undefined) return refuse(ErrorCode.notFound, `${action}: tenant "${command.tenant}" has no such volume`, 'name');
  const target = state.nodes.get(command.to);
  if (target === undefined || target.status === 'left') return refuse(ErrorCode.notFound, `${action}: no such node in the cluster`, 'to');
  if (target.status !== 'up') return refuse(ErrorCode.conflict, `${action}: the node is ${target.status}, not up`, 'to');
  if (volume.node === undefined) return refuse(ErrorCode.conflict, `${action}: it holds no data yet (no instance has used it); it is created where its first instance runs`, 'name');
  if (volume.moving !== undefined && volume.moving !== command.to) return refuse(ErrorCode.conflict, `${action}: it is being moved to node ${volume.moving}`, 'to');
  if (volume.moving === undefined && volume.node === command.to) return refuse(ErrorCode.conflict, `${action}: it is on that node already`, 'to');
  const source = state.nodes.get(volume.node);
  if (source?.status !== 'up') return refuse(ErrorCode.conflict, `${action}: its data is on node ${volume.node}, which is ${source?.status ?? 'gone'}; the data can only be copied from a node that is up`, 'name');
  return {
    ok: true,
    commit: () => {
      volume.moving = command.to;
      const stopped = placedUsersOf(state, command.tenant, command.name);
      for (const instance of stopped) {
        delete instance.node;
        instance.status = { state: 'pending', reportedAt: context.time, updatedIndex: context.index, since: context.time };
      }
      const summary = `moving from node ${volume.node} to ${command.to}${stopped.length > 0 ? ` (stopped ${stopped.map((instance) => instance.id).join(', ')})` : ''}`;
      return { value: { tenant: command.tenant, name: command.name, from: volume.node, to: command.to, stopped: stopped.map((instance) => instance.id) }, history: { target: `volume ${key}`, summary } };
    },
  };
}

/**
 * volume.move-end: the move is over, the data is on `node`: the target once
 * copied, or the source again when the copy failed. The instances are placed
 * there again. Refused when no move runs or `node` is neither end of it.
 */
export function planVolumeMoveEnd(state: ClusterState, command: CommandOf<'volume.move-end'>): Plan {
  const action = `cannot end the move of volume "${command.name}"`;
  const key = tenantKey(command.tenant, command.name);
  const volume = state.volumes.get(key);
  if (volume === undefined) return refuse(ErrorCode.notFound, `${action}: tenant "${command.tenant}" has no such volume`, 'name');
  if (volume.moving === undefined) return refuse(ErrorCode.conflict, `${action}: it is not being moved`, 'name');
  if (command.node !== volume.moving && command.node !== volume.node) return refuse(ErrorCode.invalidArgument, `${action}: node ${command.node} is neither where it was (${volume.node}) nor where it goes (${volume.moving})`, 'node');
  const from = volume.node;
  return {
    ok: true,
    commit: () => {
      delete volume.moving;
      volume.node = command.node;
      const summary = command.node === from ? `move abandoned, stays on node ${from}` : `moved from node ${from} to ${command.node}`;
      return { value: { tenant: command.tenant, name: command.name, node: command.node }, history: { target: `volume ${key}`, summary } };
    },
  };
}

/** secret.put: creates the secret (version 1) or replaces its value (version + 1). Only ciphertext is stored. */
export function planSecretPut(state: ClusterState, command: CommandOf<'secret.put'>, context: ApplyContext): Plan {
  const action = `cannot set secret "${command.name}"`;
  const found = lookupTenant(state, command.tenant, { field: 'tenant', action, context });
  if (!found.ok) return found;
  const key = tenantKey(command.tenant, command.name);
  const existing = state.secrets.get(key);
  const limit = existing ? undefined : limitProblem('secrets', state.secrets.size, action);
  if (limit) return { ok: false, error: limit };
  return {
    ok: true,
    commit: () => {
      adoptTenant(state, found.tenant);
      const version = (existing?.version ?? 0) + 1;
      state.secrets.set(key, {
        tenant: command.tenant,
        name: command.name,
        version,
        ciphertext: command.ciphertext,
        nonce: command.nonce,
        createdIndex: existing?.createdIndex ?? context.index,
        updatedIndex: context.index,
      });
      return { value: { tenant: command.tenant, name: command.name, version }, history: { target: `secret ${key}`, summary: `set (version ${version})` } };
    },
  };
}

/** secret.delete: refused while an app's current spec mounts it. */
export function planSecretDelete(state: ClusterState, command: CommandOf<'secret.delete'>): Plan {
  const action = `cannot delete secret "${command.name}"`;
  const key = tenantKey(command.tenant, command.name);
  if (!state.secrets.has(key)) return refuse(ErrorCode.notFound, `${action}: tenant "${command.tenant}" has no such secret`, 'name');
  const user = userOf(state, command.tenant, (spec) => fieldOfName(spec.hivemind.secrets, command.name, 'hivemind.secrets'));
  if (user) return inUse(action, user);
  return deletion(() => state.secrets.delete(key), { tenant: command.tenant, name: command.name }, `secret ${key}`);
}

// -----------------------------------------------------------------------------
// The commands of this file as modules: schema, plan, proposers, version (listed in commands.ts).

/** `policy.put`. */
export const policyPutCommand: CommandModule<'policy.put'> = {
  type: 'policy.put',
  since: 1,
  proposers: ['user'],
  schema: object<CommandOf<'policy.put'>>({
    type: oneOf(['policy.put']),
    tenant: name,
    name,
    apps: names,
    ingress: list(policyRule, { max: LIMITS.policyRulesMax }),
    egress: optional(list(egressRule, { max: LIMITS.policyRulesMax })),
  }),
  plan: planPolicyPut,
};

/** `policy.delete`. */
export const policyDeleteCommand: CommandModule<'policy.delete'> = {
  type: 'policy.delete',
  since: 1,
  proposers: ['user'],
  schema: object<CommandOf<'policy.delete'>>({ type: oneOf(['policy.delete']), tenant: name, name }),
  plan: planPolicyDelete,
};

/** `volume.create`. */
export const volumeCreateCommand: CommandModule<'volume.create'> = {
  type: 'volume.create',
  since: 1,
  proposers: ['user'],
  schema: object<CommandOf<'volume.create'>>({
    type: oneOf(['volume.create']),
    tenant: name,
    name,
    sizeBytes: integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
    io: optional(volumeIoLimits),
    encryption: optional(object<VolumeEncryption>({ ciphertext: bytes({ bytesMin: LIMITS.sealTagBytes + VOLUME_KEY_BYTES, bytesMax: LIMITS.sealTagBytes + VOLUME_KEY_BYTES }), nonce })),
    node: optional(identifier),
  }),
  versionOf: (command) => (command.encryption !== undefined || command.node !== undefined ? ENCRYPTED_VOLUMES_VERSION : 1),
  plan: planVolumeCreate,
};

/** `volume.set-io`. */
export const volumeSetIoCommand: CommandModule<'volume.set-io'> = {
  type: 'volume.set-io',
  since: 2,
  proposers: ['user'],
  schema: object<CommandOf<'volume.set-io'>>({ type: oneOf(['volume.set-io']), tenant: name, name, io: volumeIoLimits }),
  plan: planVolumeSetIo,
};

/** `volume.delete`. */
export const volumeDeleteCommand: CommandModule<'volume.delete'> = {
  type: 'volume.delete',
  since: 1,
  proposers: ['user'],
  schema: object<CommandOf<'volume.delete'>>({ type: oneOf(['volume.delete']), tenant: name, name }),
  plan: planVolumeDelete,
};

/** `volume.bind`. */
export const volumeBindCommand: CommandModule<'volume.bind'> = {
  type: 'volume.bind',
  since: 2,
  proposers: ['member'],
  memberSelf: 'node',
  schema: object<CommandOf<'volume.bind'>>({ type: oneOf(['volume.bind']), tenant: name, name, node: identifier }),
  plan: planVolumeBind,
};

/** `volume.report`. */
export const volumeReportCommand: CommandModule<'volume.report'> = {
  type: 'volume.report',
  since: 2,
  proposers: ['member'],
  memberSelf: 'node',
  schema: object<CommandOf<'volume.report'>>({
    type: oneOf(['volume.report']),
    tenant: name,
    name,
    createdIndex: integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
    node: identifier,
    usedBytes: count,
  }),
  plan: planVolumeReport,
};

/** `volume.move`. */
export const volumeMoveCommand: CommandModule<'volume.move'> = {
  type: 'volume.move',
  since: 2,
  proposers: ['user'],
  schema: object<CommandOf<'volume.move'>>({ type: oneOf(['volume.move']), tenant: name, name, to: identifier }),
  plan: planVolumeMove,
};

/** `volume.move-end`. */
export const volumeMoveEndCommand: CommandModule<'volume.move-end'> = {
  type: 'volume.move-end',
  since: 2,
  proposers: ['user'],
  schema: object<CommandOf<'volume.move-end'>>({ type: oneOf(['volume.move-end']), tenant: name, name, node: identifier }),
  plan: planVolumeMoveEnd,
};

/** `secret.put`. */
export const secretPutCommand: CommandModule<'secret.put'> = {
  type: 'secret.put',
  since: 1,
  proposers: ['user'],
  schema: object<CommandOf<'secret.put'>>({
    type: oneOf(['secret.put']),
    tenant: name,
    name,
    ciphertext: bytes({ bytesMin: LIMITS.sealTagBytes, bytesMax: LIMITS.secretCiphertextBytesMax }),
    nonce,
  }),
  plan: planSecretPut,
};

/** `secret.delete`. */
export const secretDeleteCommand: CommandModule<'secret.delete'> = {
  type: 'secret.delete',
  since: 1,
  proposers: ['user'],
  schema: object<CommandOf<'secret.delete'>>({ type: oneOf(['secret.delete']), tenant: name, name }),
  plan: planSecretDelete,
};
