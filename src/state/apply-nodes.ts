/**
 * Apply handlers for nodes and for the instance facts written by the
 * scheduler (placement) and the executors (status). Pure: they read the state
 * and the command only.
 *
 * A node that has left stays listed with status 'left'; it cannot change
 * status or heartbeat until it registers again. Registering again after a
 * leave begins a new membership: `joinedIndex` moves to that registration's
 * index, so a `left` status always belongs to the membership that began at
 * the record's `joinedIndex` (see `hasLeftMembership`). Heartbeats and instance
 * status reports are observed state, not changes anyone made: they are kept
 * out of history, which would otherwise hold nothing else.
 */
import { releaseSubnet } from './apply-network.js';
import { releaseSlices } from './apply-tenant-networks.js';
import { ErrorCode, type StateError } from './errors.js';
import { lowestFreeSubnet } from './ipam.js';
import { limitProblem, refuse, type ApplyContext, type ClusterState, type Plan } from './state.js';
import { AGENT_LABELS_LABEL, HOST_PORTS_MAX, RESERVED_LABEL_PREFIX, type Command, type Instance, type InstanceEndpoint, type NodeRecord } from './types.js';
import { isRevoked, recordCertificate, revokeNodeCertificates } from './apply-ca.js';
import { integer, list, nullable, object, oneOf, optional, refine, text } from './schema.js';
import { certificateRecord, count, freeText, identifier, instanceEndpoint, instanceState, labels, nonEmptyAddress, repeatedId, resources, LIMITS } from './fields.js';
import type { CommandModule } from './command.js';
import { stateMutations } from './mutations.js';
import { APP_NETWORKS_VERSION } from './version.js';

type CommandOf<T extends Command['type']> = Extract<Command, { type: T }>;

const failureStates: ReadonlySet<string> = new Set(['unhealthy', 'exited', 'oom-killed', 'failed']);
/** States that end an instance's `lastFailure`: it runs again. */
const runningStates: ReadonlySet<string> = new Set(['running', 'healthy']);

/** How many ignored instance ids an instance.status result names. */
export const IGNORED_IDS_SHOWN_MAX = 100;

function findNode(state: ClusterState, id: string, action: string, field = 'id'): { ok: true; node: NodeRecord } | { ok: false; error: StateError } {
  const node = state.nodes.get(id);
  if (node) return { ok: true, node };
  return { ok: false, error: { code: ErrorCode.notFound, message: `${action}: node "${id}" is not registered`, field } };
}

function hasLeft(node: NodeRecord, action: string): Plan | undefined {
  if (node.status !== 'left') return undefined;
  return refuse(ErrorCode.conflict, `${action}: node "${node.id}" has left the cluster; it must register again`, 'id');
}

/** The record of a node that is registered and has not left; else the refusal. */
function findMember(state: ClusterState, id: string, action: string): { ok: true; node: NodeRecord } | Exclude<Plan, { ok: true }> {
  const found = findNode(state, id, action);
  if (!found.ok) return found;
  const left = hasLeft(found.node, action);
  return left !== undefined && !left.ok ? left : found;
}

/**
 * Whether the record says that the membership which began at `joinedIndex`
 * (the `joinedIndex` this node was given when it joined) has ended. A record
 * of an earlier membership under the same name, one whose `left` a rejoined
 * node can read in a snapshot or log taken before its new registration
 * applied, says nothing about the current one. 0 stands for "unknown" (a node
 * that joined before the index was handed out): any `left` counts.
 */
export function hasLeftMembership(record: Pick<NodeRecord, 'status' | 'joinedIndex'> | undefined, joinedIndex: number): boolean {
  return record !== undefined && record.status === 'left' && record.joinedIndex >= joinedIndex;
}

/**
 * node.register: creates the node, or updates its addresses, labels and
 * resources; either way it is 'up'. A registration of a node that left
 * begins a new membership: `joinedIndex` becomes this entry's index. Once
 * the cluster network is configured, a node without a subnet gets the lowest
 * free one (refused with 'limit-reached' when none is free); a node keeps its
 * subnet across registrations until it leaves.
 */
export function planNodeRegister(state: ClusterState, command: CommandOf<'node.register'>, context: ApplyContext): Plan {
  const existing = state.nodes.get(command.id);
  const renewed = existing === undefined || existing.status === 'left';
  if (!existing) {
    const limit = limitProblem('nodes', state.nodes.size, `cannot register node "${command.id}"`);
    if (limit) return { ok: false, error: limit };
  }
  if (command.certificate !== undefined && isRevoked(state, command.certificate.serial)) {
    return refuse(ErrorCode.conflict, `cannot register node "${command.id}": its certificate ${command.certificate.serial} is revoked`, 'certificate.serial');
  }
  let subnet = existing?.status === 'left' ? undefined : existing?.subnet;
  if (subnet === undefined && state.network !== undefined) {
    subnet = lowestFreeSubnet(state.network, state.nodes.values());
    if (subnet === undefined) {
      return refuse(ErrorCode.limitReached, `cannot register node "${command.id}": the cluster network ${state.network.cidr} has no free /${state.network.nodePrefixLength} left; remove nodes that left for good (hivemind node rm)`);
    }
  }
  return {
    ok: true,
    commit: () => {
      const node: NodeRecord = {
        id: command.id,
        addresses: command.addresses,
        labels: command.labels,
        resources: command.resources,
        status: 'up',
        role: existing?.role ?? 'none',
        joinedIndex: renewed ? context.index : existing.joinedIndex,
        lastSeenAt: context.time,
        statusSince: existing?.status === 'up' ? (existing.statusSince ?? context.time) : context.time,
        updatedIndex: context.index,
        ...(subnet !== undefined ? { subnet } : {}),
      };
      // A node that left comes back with none of its old certificates (they are revoked).
      if (existing?.certificates !== undefined) node.certificates = existing.status === 'left' ? [] : [...existing.certificates];
      if (command.certificate !== undefined) recordCertificate(node, command.certificate);
      state.nodes.set(command.id, node);
      const verb = existing === undefined ? 'registered' : renewed ? 'registered again after leaving' : 're-registered';
      const summary = `${verb} (api ${command.addresses.api}${subnet !== undefined && subnet !== existing?.subnet ? `, subnet ${subnet}` : ''})`;
      return { value: { id: command.id }, history: { target: `node ${command.id}`, summary } };
    },
  };
}

/** node.status: membership's verdict. A node that has left changes status only by registering again. */
export function planNodeStatus(state: ClusterState, command: CommandOf<'node.status'>, context: ApplyContext): Plan {
  const action = `cannot mark node "${command.id}" ${command.status}`;
  const found = findNode(state, command.id, action);
  if (!found.ok) return found;
  const { node } = found;
  if (command.status !== 'left') {
    const left = hasLeft(node, action);
    if (left) return left;
  }
  return {
    ok: true,
    commit: () => {
      const from = node.status;
      if (from !== command.status) node.statusSince = context.time;
      node.status = command.status;
      if (node.status === 'left') revokeNodeCertificates(state, node, context);
      if (node.status === 'left') releaseSubnet(node);
      if (node.status === 'left') releaseSlices(state, node.id);
      node.updatedIndex = context.index;
      return { value: { id: node.id, status: node.status }, history: { target: `node ${node.id}`, summary: `status ${from} → ${node.status}` } };
    },
  };
}

/** node.role: the Raft role the leader recorded. */
export function planNodeRole(state: ClusterState, command: CommandOf<'node.role'>, context: ApplyContext): Plan {
  const found = findNode(state, command.id, `cannot set the role of node "${command.id}"`);
  if (!found.ok) return found;
  const { node } = found;
  return {
    ok: true,
    commit: () => {
      const from = node.role;
      node.role = command.role;
      node.updatedIndex = context.index;
      return { value: { id: node.id, role: node.role }, history: { target: `node ${node.id}`, summary: `role ${from} → ${node.role}` } };
    },
  };
}

/** node.heartbeat: `lastSeenAt` becomes the envelope's time. Not recorded in history. */
export function planNodeHeartbeat(state: ClusterState, command: CommandOf<'node.heartbeat'>, context: ApplyContext): Plan {
  const action = `cannot record a heartbeat of node "${command.id}"`;
  const found = findMember(state, command.id, action);
  if (!found.ok) return found;
  const { node } = found;
  return {
    ok: true,
    commit: () => {
      node.lastSeenAt = context.time;
      return { value: { id: node.id } };
    },
  };
}

/**
 * node.label: sets and removes labels of a node. Refused (naming the field)
 * for Hivemind's own labels (`hivemind.*`), for a key the node's agent was
 * started with (`--label`: it registers with it again), for a key both set
 * and removed, and for a node that is not registered or left. A label to
 * remove that the node lacks is no error.
 */
export function planNodeLabel(state: ClusterState, command: CommandOf<'node.label'>, context: ApplyContext): Plan {
  const action = `cannot label node "${command.id}"`;
  const found = findMember(state, command.id, action);
  if (!found.ok) return found;
  const { node } = found;
  const fromAgent = new Set((node.labels[AGENT_LABELS_LABEL] ?? '').split(',').filter((key) => key !== ''));
  const keys: [string, string][] = [...Object.keys(command.set).map((key): [string, string] => [key, `set.${key}`]), ...command.remove.map((key, position): [string, string] => [key, `remove[${position}]`])];
  for (const [key, field] of keys) {
    if (key.startsWith(RESERVED_LABEL_PREFIX)) return refuse(ErrorCode.invalidArgument, `${action}: labels starting with "${RESERVED_LABEL_PREFIX}" are Hivemind's own`, field);
    if (fromAgent.has(key)) {
      return refuse(ErrorCode.conflict, `${action}: its label "${key}" comes from its agent's --label flag, which sets it again whenever the node registers; change the flag and restart the agent`, field);
    }
  }
  const both = command.remove.findIndex((key) => Object.hasOwn(command.set, key));
  if (both >= 0) return refuse(ErrorCode.invalidArgument, `${action}: label "${command.remove[both]}" is both set and removed`, `remove[${both}]`);
  const count = Object.keys({ ...node.labels, ...command.set }).length;
  if (count > LIMITS.labelsMax) return refuse(ErrorCode.limitReached, `${action}: a node has at most ${LIMITS.labelsMax} labels`, 'set');
  return {
    ok: true,
    commit: () => {
      const labels = { ...node.labels, ...command.set };
      for (const key of command.remove) delete labels[key];
      node.labels = labels;
      node.updatedIndex = context.index;
      const changes = [...Object.entries(command.set).map(([key, value]) => `${key}=${value}`), ...command.remove.map((key) => `-${key}`)];
      return { value: { id: node.id, labels }, history: { target: `node ${node.id}`, summary: `labels ${changes.join(', ') || 'unchanged'}` } };
    },
  };
}

/**
 * node.ports: the ports the node's host listens on (`NodeRecord.hostPorts`),
 * reported by the node itself when they changed. Observed state: not in
 * history. Refused for a node not registered or that left.
 */
export function planNodePorts(state: ClusterState, command: CommandOf<'node.ports'>, context: ApplyContext): Plan {
  const action = `cannot record the host ports of node "${command.id}"`;
  const found = findMember(state, command.id, action);
  if (!found.ok) return found;
  const { node } = found;
  return {
    ok: true,
    commit: () => {
      node.hostPorts = { tcp: [...command.tcp], udp: [...command.udp] };
      node.updatedIndex = context.index;
      return { value: { id: node.id, tcp: command.tcp.length, udp: command.udp.length } };
    },
  };
}

/**
 * node.remove: the node is kept with status 'left' and gives its subnet
 * back; its instances keep their placement for the scheduler to move. With `joinedIndex`, it ends only that
 * membership: a remove proposed before the node left and joined again, and
 * applied after, is refused (conflict) rather than ending the new one.
 */
export function planNodeRemove(state: ClusterState, command: CommandOf<'node.remove'>, context: ApplyContext): Plan {
  const action = `cannot remove node "${command.id}"`;
  const found = findNode(state, command.id, action);
  if (!found.ok) return found;
  const { node } = found;
  if (command.joinedIndex !== undefined && command.joinedIndex !== node.joinedIndex) {
    return refuse(
      ErrorCode.conflict,
      `${action}: the leave was for its membership that began at index ${command.joinedIndex}, but its record is of the one that began at index ${node.joinedIndex}; ask again for the node to leave`,
      'joinedIndex',
    );
  }
  return {
    ok: true,
    commit: () => {
      if (node.status !== 'left') node.statusSince = context.time;
      node.status = 'left';
      revokeNodeCertificates(state, node, context);
      releaseSubnet(node);
      releaseSlices(state, node.id);
      node.updatedIndex = context.index;
      return { value: { id: node.id }, history: { target: `node ${node.id}`, summary: 'removed (left the cluster)' } };
    },
  };
}

/**
 * instance.place: all or nothing. Every instance must exist; every node must
 * be registered and 'up' (`null` unplaces). An instance placed on a node that
 * is up is not placed elsewhere (conflict: the plan is stale, its node came
 * back; found by the whole-cluster simulator, seed 182). An instance that
 * moves to another node is reset to 'pending'.
 */
export function planInstancePlace(state: ClusterState, command: CommandOf<'instance.place'>, context: ApplyContext): Plan {
  const moves: { instance: Instance; node: string | null }[] = [];
  for (const [position, placement] of command.placements.entries()) {
    const action = `cannot place instance "${placement.id}"`;
    const instance = state.instances.get(placement.id);
    if (!instance) return refuse(ErrorCode.notFound, `${action}: it does not exist (its app may have been scaled down or deleted)`, `placements[${position}].id`);
    if (placement.node !== null) {
      const problem = placementNodeProblem(state, placement.node, action, `placements[${position}].node`);
      if (problem) return { ok: false, error: problem };
      // Placed once: a plan made while its node was down (past the grace) is stale once the node is up again.
      const current = instance.node === undefined ? undefined : state.nodes.get(instance.node);
      // stateMutations: test only (src/sim's mutation checks), never set in production.
      if (instance.node !== placement.node && current?.status === 'up' && !stateMutations.placementConflictCheckOff) {
        return refuse(ErrorCode.conflict, `${action}: it is placed on node "${instance.node}", which is up; plan again`, `placements[${position}].node`);
      }
    }
    moves.push({ instance, node: placement.node });
  }
  return {
    ok: true,
    commit: () => {
      for (const move of moves) moveInstance(move.instance, move.node, context);
      return { value: { placed: moves.length }, history: { target: 'instances', summary: describePlacements(moves) } };
    },
  };
}

function placementNodeProblem(state: ClusterState, id: string, action: string, field: string): StateError | undefined {
  const found = findNode(state, id, action, field);
  if (!found.ok) return found.error;
  if (found.node.status === 'up') return undefined;
  return { code: ErrorCode.conflict, message: `${action}: node "${id}" is ${found.node.status}, not up; choose another node`, field };
}

function moveInstance(instance: Instance, node: string | null, context: ApplyContext): void {
  if ((instance.node ?? null) === node) return;
  if (node === null) delete instance.node;
  else instance.node = node;
  instance.status = { state: 'pending', reportedAt: context.time, updatedIndex: context.index, since: context.time };
}

function describePlacements(moves: { instance: Instance; node: string | null }[]): string {
  const shown = moves.slice(0, 5).map(({ instance, node }) => (node === null ? `unplaced ${instance.id}` : `${instance.id} on ${node}`));
  const more = moves.length > shown.length ? ` and ${moves.length - shown.length} more` : '';
  return `placed ${shown.join(', ')}${more}`;
}

/**
 * instance.status: records each reported status (a running or healthy one
 * clears the instance's `lastFailure`). Updates for instances that
 * no longer exist, or that name a version other than the instance's current
 * one, are ignored (a report can race with a scale-down, a delete or a new
 * deploy); the result's value counts them and names the first
 * IGNORED_IDS_SHOWN_MAX (results are remembered, so they stay small).
 * Never refused; not in history.
 */
export function planInstanceStatus(state: ClusterState, command: CommandOf<'instance.status'>, context: ApplyContext): Plan {
  return {
    ok: true,
    commit: () => {
      const ignored: string[] = [];
      for (const update of command.updates) {
        const instance = state.instances.get(update.id);
        if (!instance || (update.version !== undefined && update.version !== instance.version)) {
          ignored.push(update.id);
          continue;
        }
        const since = instance.status.state === update.state ? (instance.status.since ?? context.time) : context.time;
        if (failureStates.has(update.state) && instance.status.state !== update.state) instance.failures = (instance.failures ?? 0) + 1;
        // Only records written at state version 4 carry it: older code never meets one.
        if (instance.lastFailure !== undefined && runningStates.has(update.state)) delete instance.lastFailure;
        instance.status = {
          state: update.state,
          since,
          ...(update.exitCode !== undefined ? { exitCode: update.exitCode } : {}),
          ...(update.message !== undefined ? { message: update.message } : {}),
          reportedBy: update.reportedBy,
          reportedAt: update.reportedAt,
          updatedIndex: context.index,
          ...(update.endpoint !== undefined ? { endpoint: copyEndpoint(update.endpoint) } : {}),
        };
      }
      const applied = command.updates.length - ignored.length;
      return { value: { applied, ignoredCount: ignored.length, ignored: ignored.slice(0, IGNORED_IDS_SHOWN_MAX) } };
    },
  };
}

// -----------------------------------------------------------------------------
// The commands of this file as modules: schema, plan, proposers, version (listed in commands.ts).

/** `instance.place`. */
export const instancePlaceCommand: CommandModule<'instance.place'> = {
  type: 'instance.place',
  since: 1,
  proposers: ['scheduler'],
  schema: refine(
    object<CommandOf<'instance.place'>>({
      type: oneOf(['instance.place']),
      placements: list(object<CommandOf<'instance.place'>['placements'][number]>({ id: identifier, node: nullable(identifier) }), {
        min: 1,
        max: LIMITS.batchItemsMax,
      }),
    }),
    (value) => repeatedId(value.placements, 'placements'),
  ),
  plan: planInstancePlace,
};

/** `instance.status`. */
export const instanceStatusCommand: CommandModule<'instance.status'> = {
  type: 'instance.status',
  since: 1,
  proposers: ['member'],
  schema: refine(
    object<CommandOf<'instance.status'>>({
      type: oneOf(['instance.status']),
      updates: list(
        object<CommandOf<'instance.status'>['updates'][number]>({
          id: identifier,
          state: instanceState,
          exitCode: optional(integer({ min: -2147483648, max: 2147483647 })),
          message: optional(freeText),
          reportedBy: identifier,
          reportedAt: count,
          version: optional(integer({ min: 1, max: Number.MAX_SAFE_INTEGER })),
          endpoint: optional(instanceEndpoint),
        }),
        { min: 1, max: LIMITS.batchItemsMax },
      ),
    }),
    (value) => repeatedId(value.updates, 'updates'),
  ),
  versionOf: (command) => (command.updates.some((update) => update.endpoint?.addresses !== undefined) ? APP_NETWORKS_VERSION : 1),
  plan: planInstanceStatus,
};

function copyEndpoint(endpoint: InstanceEndpoint): InstanceEndpoint {
  return { address: endpoint.address, ports: endpoint.ports.map((entry) => ({ ...entry })), ...(endpoint.addresses === undefined ? {} : { addresses: [...endpoint.addresses] }) };
}

/** `node.register`. */
export const nodeRegisterCommand: CommandModule<'node.register'> = {
  type: 'node.register',
  since: 1,
  proposers: ['leader'],
  changesNodeRecords: true,
  schema: object<CommandOf<'node.register'>>({
    type: oneOf(['node.register']),
    id: identifier,
    addresses: object<CommandOf<'node.register'>['addresses']>({ api: nonEmptyAddress(), peer: nonEmptyAddress(), gossip: nonEmptyAddress() }),
    labels,
    resources,
    certificate: optional(certificateRecord),
  }),
  plan: planNodeRegister,
};

/** `node.status`. */
export const nodeStatusCommand: CommandModule<'node.status'> = {
  type: 'node.status',
  since: 1,
  proposers: ['leader', 'member'],
  changesNodeRecords: true,
  schema: object<CommandOf<'node.status'>>({ type: oneOf(['node.status']), id: identifier, status: oneOf(['up', 'suspect', 'down', 'left']) }),
  plan: planNodeStatus,
};

/** `node.role`. */
export const nodeRoleCommand: CommandModule<'node.role'> = {
  type: 'node.role',
  since: 1,
  proposers: ['leader'],
  changesNodeRecords: true,
  schema: object<CommandOf<'node.role'>>({ type: oneOf(['node.role']), id: identifier, role: oneOf(['voter', 'learner', 'none']) }),
  plan: planNodeRole,
};

/** `node.heartbeat`. */
export const nodeHeartbeatCommand: CommandModule<'node.heartbeat'> = {
  type: 'node.heartbeat',
  since: 1,
  proposers: ['member'],
  memberSelf: 'id',
  schema: object<CommandOf<'node.heartbeat'>>({ type: oneOf(['node.heartbeat']), id: identifier }),
  plan: planNodeHeartbeat,
};

/** `node.label`. */
export const nodeLabelCommand: CommandModule<'node.label'> = {
  type: 'node.label',
  since: 4,
  proposers: ['user'],
  changesNodeRecords: true,
  schema: object<CommandOf<'node.label'>>({
    type: oneOf(['node.label']),
    id: identifier,
    set: labels,
    remove: list(text({ bytesMin: 1, bytesMax: LIMITS.labelBytesMax, pattern: /^\S+$/, patternHint: 'a key without spaces' }), { max: LIMITS.labelsMax, unique: true }),
  }),
  plan: planNodeLabel,
};

/** A list of host ports: sorted, unique, each 1..65535, at most HOST_PORTS_MAX. */
const hostPortList = refine(list(integer({ min: 1, max: 65_535 }), { max: HOST_PORTS_MAX, unique: true }), (ports) => {
  const position = ports.findIndex((port, at) => at > 0 && ports[at - 1]! > port);
  return position < 0 ? undefined : { field: `[${position}]`, text: 'must not be lower than the port before it (sort the list)' };
});

/** `node.ports`. */
export const nodePortsCommand: CommandModule<'node.ports'> = {
  type: 'node.ports',
  since: 4,
  proposers: ['member'],
  memberSelf: 'id',
  changesNodeRecords: true,
  schema: object<CommandOf<'node.ports'>>({ type: oneOf(['node.ports']), id: identifier, tcp: hostPortList, udp: hostPortList }),
  plan: planNodePorts,
};

/** `node.remove`. */
export const nodeRemoveCommand: CommandModule<'node.remove'> = {
  type: 'node.remove',
  since: 1,
  proposers: ['leader'],
  changesNodeRecords: true,
  schema: object<CommandOf<'node.remove'>>({ type: oneOf(['node.remove']), id: identifier, joinedIndex: optional(count) }),
  plan: planNodeRemove,
};
