/**
 * Tenant networks in the replicated state (state version 5): their blocks
 * of the tenant pool and their nodes' slices (tenant-ipam.ts), created,
 * attached, detached and deleted by commands, and the bookkeeping that
 * `tenant.create`, `tenant.delete`, `node.remove` and `node.status left`
 * share. Pure: reads the state and the command.
 *
 * Invariants, kept by every commit here and checked by
 * `tenantNetworksProblem` (tests): no two networks' blocks overlap; every
 * slice lies in its network's block; no two slices of a network are alike;
 * a node holds at most one slice of a network, and none once it has left.
 */
import { ErrorCode, stateError, type StateError } from './errors.js';
import { assert } from '../../consensus/core/assert.js';
import { containsAddress, parseCidr } from './ipam.js';
import { blockProblem, lowestFreeBlock, lowestFreeSlice, NETWORKS_PER_TENANT_MAX, overlaps } from './tenant-ipam.js';
import { adoptTenant, limitProblem, lookupTenant, refuse, tenantKey, type ApplyContext, type ClusterState, type Plan } from './state.js';
import type { CommandOf, DeployNetwork, TenantNetwork } from './types.js';
import { identifier, name } from './fields.js';
import { object, oneOf, optional, text } from './schema.js';
import type { CommandModule } from './command.js';
import { clusterVersionOf } from './apply-cluster.js';
import { TENANT_NETWORKS_VERSION } from './version.js';
import { DEFAULT_NETWORK, specNetworks, versionNetworks } from './app-networks.js';

// Re-exported: the state's own callers keep importing them from here.
export { DEFAULT_NETWORK, specNetworks, versionNetworks };

/** The networks an `app.deploy-many` makes, planned: the networks map as it will be, and the commit that makes them. */
export type DeployNetworksPlan = { ok: false; error: StateError } | { ok: true; networks: Map<string, TenantNetwork>; commit: () => string[] };

/**
 * Inside an `app.deploy-many`: the networks its file declares, each made as
 * `network.create` makes it when its tenant lacks it (the implicit `default`
 * tenant adopted, as a deploy adopts it), in order, so a later one sees the
 * blocks of the earlier ones. One that exists is left as it is; a `cidr`
 * other than its own is refused (`conflict`). Refusals name the field
 * `networks[N].<field>`. `networks` of the answer holds them all (what the
 * apps' references are checked against); `commit` makes them in `state` and
 * answers one history note per network made.
 */
export function planDeployNetworks(state: ClusterState, networks: readonly DeployNetwork[], context: ApplyContext): DeployNetworksPlan {
  // Most deploys make none: no copy of the maps for them.
  if (networks.length === 0) return { ok: true, networks: state.networks, commit: () => [] };
  const scratch: ClusterState = { ...state, networks: new Map(state.networks), tenants: new Map(state.tenants) };
  const made: DeployNetwork[] = [];
  for (const [position, network] of networks.entries()) {
    const key = tenantKey(network.tenant, network.name);
    const action = `cannot create network "${key}"`;
    if (networks.findIndex((other) => tenantKey(other.tenant, other.name) === key) !== position) return { ok: false, error: stateError(ErrorCode.invalidArgument, `${action}: it is listed twice`, `networks[${position}].name`) };
    const existing = scratch.networks.get(key);
    if (existing !== undefined) {
      if (network.cidr !== undefined && network.cidr !== existing.cidr) {
        const message = `${action}: it exists with ${existing.cidr}, not ${network.cidr}; write its own block, or leave the subnet out`;
        return { ok: false, error: stateError(ErrorCode.conflict, message, `networks[${position}].cidr`) };
      }
      continue;
    }
    const tenant = lookupTenant(scratch, network.tenant, { field: `networks[${position}].tenant`, action, context });
    if (!tenant.ok) return tenant;
    adoptTenant(scratch, tenant.tenant);
    const plan = planNetworkCreate(scratch, { type: 'network.create', ...network }, context);
    if (!plan.ok) return { ok: false, error: stateError(plan.error.code, plan.error.message, `networks[${position}]${plan.error.field === undefined ? '' : `.${plan.error.field}`}`) };
    plan.commit();
    made.push({ tenant: network.tenant, name: network.name, cidr: scratch.networks.get(key)!.cidr });
  }
  return {
    ok: true,
    networks: scratch.networks,
    commit: () =>
      made.map((network) => {
        const tenant = lookupTenant(state, network.tenant, { field: 'tenant', action: '', context });
        assert(tenant.ok, `tenant ${network.tenant} of network ${network.name} is gone between plan and commit`);
        adoptTenant(state, tenant.tenant);
        state.networks.set(tenantKey(network.tenant, network.name), { tenant: network.tenant, name: network.name, cidr: network.cidr!, createdIndex: context.index, slices: [] });
        return `network ${network.tenant}/${network.name} created (${network.cidr})`;
      }),
  };
}

/**
 * Inside a `tenant.create` commit: makes the tenant's `default` network in
 * the lowest free block, when the cluster version has tenant networks and
 * the pool is set. Answers the block, or why there is none (for the history
 * line); undefined when tenant networks are not on.
 */
export function createDefaultNetwork(state: ClusterState, tenant: string, context: ApplyContext): { cidr: string } | { missing: string } | undefined {
  const pool = state.network?.tenantCidr;
  if (pool === undefined || clusterVersionOf(state) < TENANT_NETWORKS_VERSION) return undefined;
  if (state.networks.has(tenantKey(tenant, DEFAULT_NETWORK))) return { cidr: state.networks.get(tenantKey(tenant, DEFAULT_NETWORK))!.cidr };
  const cidr = lowestFreeBlock(pool, state.networks.values());
  if (cidr === undefined) return { missing: `the tenant pool ${pool} is full` };
  if (limitProblem('networks', state.networks.size, '') !== undefined) return { missing: 'the cluster holds the most networks it allows' };
  state.networks.set(tenantKey(tenant, DEFAULT_NETWORK), { tenant, name: DEFAULT_NETWORK, cidr, createdIndex: context.index, slices: [] });
  return { cidr };
}

/** Inside a `tenant.delete` commit: removes the tenant's networks. */
export function deleteTenantNetworks(state: ClusterState, tenant: string): void {
  for (const [key, network] of state.networks) if (network.tenant === tenant) state.networks.delete(key);
}

/** Inside a commit that makes a node leave for good: gives back every slice it holds. Answers how many. */
export function releaseSlices(state: ClusterState, node: string): number {
  let released = 0;
  for (const network of state.networks.values()) {
    const kept = network.slices.filter((slice) => slice.node !== node);
    released += network.slices.length - kept.length;
    network.slices = kept;
  }
  return released;
}

/** The first broken invariant of the tenant networks (see the file comment), or undefined. For tests and checkers. */
export function tenantNetworksProblem(state: ClusterState): string | undefined {
  const networks = [...state.networks.values()];
  for (const [index, network] of networks.entries()) {
    const block = parseCidr(network.cidr);
    if (!block.ok) return `network ${network.tenant}/${network.name}: ${block.reason}`;
    for (const other of networks.slice(index + 1)) {
      const otherBlock = parseCidr(other.cidr);
      if (otherBlock.ok && overlaps(block.network, otherBlock.network)) return `networks ${network.tenant}/${network.name} and ${other.tenant}/${other.name} overlap`;
    }
    const cidrs = new Set<string>();
    const nodes = new Set<string>();
    for (const slice of network.slices) {
      const parsed = parseCidr(slice.cidr);
      if (!parsed.ok || !containsAddress(block.network, parsed.network.base)) return `network ${network.tenant}/${network.name}: slice ${slice.cidr} lies outside ${network.cidr}`;
      if (cidrs.has(slice.cidr)) return `network ${network.tenant}/${network.name}: slice ${slice.cidr} held twice`;
      if (nodes.has(slice.node)) return `network ${network.tenant}/${network.name}: node ${slice.node} holds two slices`;
      const record = state.nodes.get(slice.node);
      if (record === undefined || record.status === 'left') return `network ${network.tenant}/${network.name}: node ${slice.node} holds a slice but is gone`;
      cidrs.add(slice.cidr);
      nodes.add(slice.node);
    }
  }
  return undefined;
}

/**
 * network.create: the given block (refused with `invalid-argument` when it
 * is no /20 of the pool, `conflict` when it overlaps a network) or the
 * lowest free one (`limit-reached` when the pool is full). Refused when the
 * tenant does not exist, the pool is not set, the network exists, or the
 * tenant holds NETWORKS_PER_TENANT_MAX.
 */
export function planNetworkCreate(state: ClusterState, command: CommandOf<'network.create'>, context: ApplyContext): Plan {
  const action = `cannot create network "${command.tenant}/${command.name}"`;
  if (!state.tenants.has(command.tenant)) return refuse(ErrorCode.notFound, `${action}: tenant "${command.tenant}" does not exist; create it first`, 'tenant');
  const pool = state.network?.tenantCidr;
  if (pool === undefined) return refuse(ErrorCode.conflict, `${action}: the cluster has no tenant network pool yet (network.configure sets it); try again once the cluster network is configured`);
  if (state.networks.has(tenantKey(command.tenant, command.name))) return refuse(ErrorCode.alreadyExists, `${action}: it already exists`, 'name');
  const held = [...state.networks.values()].filter((network) => network.tenant === command.tenant).length;
  if (held >= NETWORKS_PER_TENANT_MAX) return refuse(ErrorCode.limitReached, `${action}: tenant "${command.tenant}" holds ${held} networks, the most a tenant may; delete one first`, 'name');
  const limit = limitProblem('networks', state.networks.size, action);
  if (limit) return { ok: false, error: limit };
  let cidr = command.cidr;
  if (cidr !== undefined) {
    const problem = blockProblem(cidr, pool, state.networks.values());
    if (problem) return refuse(problem.kind === 'overlap' ? ErrorCode.conflict : ErrorCode.invalidArgument, `${action}: cidr ${problem.reason}`, 'cidr');
  } else {
    cidr = lowestFreeBlock(pool, state.networks.values());
    if (cidr === undefined) return refuse(ErrorCode.limitReached, `${action}: the tenant pool ${pool} is full; delete a network first`);
  }
  const block = cidr;
  return {
    ok: true,
    commit: () => {
      state.networks.set(tenantKey(command.tenant, command.name), { tenant: command.tenant, name: command.name, cidr: block, createdIndex: context.index, slices: [] });
      return { value: { tenant: command.tenant, name: command.name, cidr: block }, history: { target: `network ${command.tenant}/${command.name}`, summary: `created (${block})` } };
    },
  };
}

/** network.delete: refused while a node holds a slice of it, and for `default` while the tenant has apps (they are on it). */
export function planNetworkDelete(state: ClusterState, command: CommandOf<'network.delete'>): Plan {
  const action = `cannot delete network "${command.tenant}/${command.name}"`;
  const network = state.networks.get(tenantKey(command.tenant, command.name));
  if (network === undefined) return refuse(ErrorCode.notFound, `${action}: it does not exist`, 'name');
  if (network.slices.length > 0) return refuse(ErrorCode.conflict, `${action}: ${network.slices.length} node(s) still hold a slice of it (${network.slices.map((slice) => slice.node).join(', ')}); delete the apps on it first`, 'name');
  if (command.name === DEFAULT_NETWORK && [...state.apps.values()].some((app) => app.tenant === command.tenant && app.versions.some((entry) => entry.spec.networks === undefined))) {
    return refuse(ErrorCode.conflict, `${action}: the tenant's apps are on it; delete them first`, 'name');
  }
  const user = [...state.apps.values()].find((app) => app.tenant === command.tenant && app.versions.some((entry) => entry.spec.networks?.includes(command.name) === true));
  if (user !== undefined) return refuse(ErrorCode.conflict, `${action}: app "${user.name}" is on it (its app file names it); delete the app, or deploy it without the network, first`, 'name');
  return {
    ok: true,
    commit: () => {
      state.networks.delete(tenantKey(command.tenant, command.name));
      return { value: { tenant: command.tenant, name: command.name }, history: { target: `network ${command.tenant}/${command.name}`, summary: `deleted (${network.cidr})` } };
    },
  };
}

/** network.attach: the node's slice of the network, the lowest free one; the same again answers the slice it holds. Refused for a node that is unknown or has left, and when every slice is held (`limit-reached`). */
export function planNetworkAttach(state: ClusterState, command: CommandOf<'network.attach'>): Plan {
  const action = `cannot attach node "${command.node}" to network "${command.tenant}/${command.name}"`;
  const network = state.networks.get(tenantKey(command.tenant, command.name));
  if (network === undefined) return refuse(ErrorCode.notFound, `${action}: the network does not exist`, 'name');
  const node = state.nodes.get(command.node);
  if (node === undefined || node.status === 'left') return refuse(ErrorCode.notFound, `${action}: the node ${node === undefined ? 'is unknown' : 'has left'}`, 'node');
  const held = network.slices.find((slice) => slice.node === command.node);
  if (held !== undefined) return { ok: true, commit: () => ({ value: { tenant: command.tenant, name: command.name, node: command.node, cidr: held.cidr } }) };
  const cidr = lowestFreeSlice(network);
  if (cidr === undefined) return refuse(ErrorCode.limitReached, `${action}: every slice of ${network.cidr} is held (${network.slices.length} nodes); detach a node first`);
  return {
    ok: true,
    commit: () => {
      network.slices.push({ node: command.node, cidr });
      return { value: { tenant: command.tenant, name: command.name, node: command.node, cidr }, history: { target: `network ${command.tenant}/${command.name}`, summary: `slice ${cidr} to ${command.node}` } };
    },
  };
}

/** The states in which an instance being stopped may still hold an address on its node. */
const HOLDING_STATES: ReadonlySet<string> = new Set(['starting', 'running', 'healthy', 'unhealthy']);

/**
 * Whether an instance placed on a node may hold an address of its network's
 * slice there: desired running (about to start, or runs), or being stopped
 * from a state that holds one. The leader's attach plan
 * (`src/network/attach-plan.ts`) and the detach refusal below read the same.
 */
export function mayHoldSliceAddress(desired: string, state: string): boolean {
  return desired === 'running' || HOLDING_STATES.has(state);
}

/**
 * An instance on network `tenant/name` placed on `node` that may hold an
 * address of the node's slice (desired running, or stopping from a state
 * that holds one), or undefined. Every app of a tenant is on its `default`
 * network until the app file names networks.
 */
function sliceHolder(state: ClusterState, tenant: string, name: string, node: string): string | undefined {
  for (const instance of state.instances.values()) {
    if (instance.tenant !== tenant || instance.node !== node) continue;
    if (!mayHoldSliceAddress(instance.desired, instance.status.state)) continue;
    if (instanceNetworks(state, instance).includes(name)) return instance.id;
  }
  return undefined;
}

/** The networks an instance joins: those of its version's spec (an instance of an app or version no longer kept: its tenant's `default`). */
export function instanceNetworks(state: ClusterState, instance: { tenant: string; app: string; version: number }): readonly string[] {
  return versionNetworks(state.apps.get(tenantKey(instance.tenant, instance.app)), instance.version);
}


/**
 * network.detach: gives the node's slice back; a node without one is a
 * no-op. Refused (`conflict`) while an instance of the network is placed on
 * the node: the leader proposes a detach once the slice has been idle for
 * the grace, and an instance placed back on the node in the meantime would
 * otherwise start on a slice its node no longer holds (its address free to
 * be given to another node).
 */
export function planNetworkDetach(state: ClusterState, command: CommandOf<'network.detach'>): Plan {
  const action = `cannot detach node "${command.node}" from network "${command.tenant}/${command.name}"`;
  const network = state.networks.get(tenantKey(command.tenant, command.name));
  if (network === undefined) return refuse(ErrorCode.notFound, `${action}: the network does not exist`, 'name');
  const held = network.slices.find((slice) => slice.node === command.node);
  const holder = held === undefined ? undefined : sliceHolder(state, command.tenant, command.name, command.node);
  if (holder !== undefined) return refuse(ErrorCode.conflict, `${action}: instance ${holder} is placed there and may hold an address of its slice ${held!.cidr}; it is detached once none is`, 'node');
  return {
    ok: true,
    commit: () => {
      if (held === undefined) return { value: { tenant: command.tenant, name: command.name, node: command.node } };
      network.slices = network.slices.filter((slice) => slice !== held);
      return { value: { tenant: command.tenant, name: command.name, node: command.node, released: held.cidr }, history: { target: `network ${command.tenant}/${command.name}`, summary: `slice ${held.cidr} of ${command.node} released` } };
    },
  };
}

// -----------------------------------------------------------------------------
// The commands of this file as modules: schema, plan, proposers, version (listed in commands.ts).

const cidr = text({ bytesMin: 9, bytesMax: 18, pattern: /^[0-9.]+\/[0-9]{1,2}$/, patternHint: 'an IPv4 CIDR like 10.224.16.0/20' });

/** `network.create`. */
export const networkCreateCommand: CommandModule<'network.create'> = {
  type: 'network.create',
  since: TENANT_NETWORKS_VERSION,
  // The leader: the `default` of a tenant made before the pool (src/network/default-networks.ts).
  proposers: ['user', 'leader'],
  schema: object<CommandOf<'network.create'>>({ type: oneOf(['network.create']), tenant: name, name, cidr: optional(cidr) }),
  plan: planNetworkCreate,
};

/** `network.delete`. */
export const networkDeleteCommand: CommandModule<'network.delete'> = {
  type: 'network.delete',
  since: TENANT_NETWORKS_VERSION,
  proposers: ['user'],
  schema: object<CommandOf<'network.delete'>>({ type: oneOf(['network.delete']), tenant: name, name }),
  plan: planNetworkDelete,
};

/** `network.attach`. */
export const networkAttachCommand: CommandModule<'network.attach'> = {
  type: 'network.attach',
  since: TENANT_NETWORKS_VERSION,
  proposers: ['leader'],
  schema: object<CommandOf<'network.attach'>>({ type: oneOf(['network.attach']), tenant: name, name, node: identifier }),
  plan: planNetworkAttach,
};

/** `network.detach`. */
export const networkDetachCommand: CommandModule<'network.detach'> = {
  type: 'network.detach',
  since: TENANT_NETWORKS_VERSION,
  proposers: ['leader'],
  schema: object<CommandOf<'network.detach'>>({ type: oneOf(['network.detach']), tenant: name, name, node: identifier }),
  plan: planNetworkDetach,
};
