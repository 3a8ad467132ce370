/**
 * The cluster network's apply handler, and the subnet bookkeeping that node
 * registration and departure share. Pure: reads the state and the command.
 *
 * The cluster network is fixed once, by the first `network.configure` (the
 * leader's network component proposes it with the `--cluster-cidr` it was
 * started with, so in practice the bootstrap node's). States written before
 * it existed have none: the first configure then gives every node its
 * subnet, in state order, the same on every node.
 */
import { ErrorCode } from './errors.js';
import { clusterNetworkProblem, lowestFreeSubnet } from './ipam.js';
import { allocateMissingVips, serviceCidrProblem } from './vip.js';
import { tenantPoolProblem } from './tenant-ipam.js';
import { TENANT_NETWORKS_VERSION } from './version.js';
import { refuse, type ApplyContext, type ClusterState, type Plan } from './state.js';
import type { Command, NodeRecord } from './types.js';
import { integer, object, oneOf, optional, text } from './schema.js';
import type { CommandModule } from './command.js';

type CommandOf<T extends Command['type']> = Extract<Command, { type: T }>;

/** The nodes given a subnet by one commit, and those left without (the cluster network is full). */
export interface SubnetAllocation {
  allocated: { id: string; subnet: string }[];
  unallocated: string[];
}

/**
 * Gives every node that is not 'left' and holds no subnet the lowest free
 * one, in state order. Call only inside a commit, with a configured network.
 */
export function allocateMissingSubnets(state: ClusterState): SubnetAllocation {
  const outcome: SubnetAllocation = { allocated: [], unallocated: [] };
  const network = state.network;
  if (network === undefined) return outcome;
  for (const node of state.nodes.values()) {
    if (node.status === 'left' || node.subnet !== undefined) continue;
    const subnet = lowestFreeSubnet(network, state.nodes.values());
    if (subnet === undefined) {
      outcome.unallocated.push(node.id);
      continue;
    }
    node.subnet = subnet;
    outcome.allocated.push({ id: node.id, subnet });
  }
  return outcome;
}

/** Gives the node's subnet back (a node that left for good). */
export function releaseSubnet(node: NodeRecord): void {
  delete node.subnet;
}

/**
 * network.configure: sets the cluster network when there is none; the same
 * values again are accepted (a new leader proposes it too); other values are
 * refused, since every node's subnet and every address hang on it. Either way
 * the commit gives a subnet to every node still without one.
 *
 * The service CIDR is set by the first configure that carries one (with the
 * cluster network, or later: a state configured before VIPs existed), which
 * gives a VIP to every app with ports; once set, another is refused, and a
 * configure without one leaves it as it is.
 */
export function planNetworkConfigure(state: ClusterState, command: CommandOf<'network.configure'>, context: ApplyContext): Plan {
  const action = `cannot configure the cluster network as ${command.cidr} (/${command.nodePrefixLength} per node${command.serviceCidr !== undefined ? `, services ${command.serviceCidr}` : ''})`;
  const problem = clusterNetworkProblem(command.cidr, command.nodePrefixLength);
  if (problem) return refuse(ErrorCode.invalidArgument, `${action}: ${problem.field} ${problem.reason}`, problem.field);
  const serviceProblem = command.serviceCidr === undefined ? undefined : serviceCidrProblem(command.serviceCidr, command.cidr);
  if (serviceProblem) return refuse(ErrorCode.invalidArgument, `${action}: serviceCidr ${serviceProblem}`, 'serviceCidr');
  const tenantProblem = command.tenantCidr === undefined ? undefined : tenantPoolProblem(command.tenantCidr, { 'cluster network': command.cidr, 'service range': command.serviceCidr ?? state.network?.serviceCidr });
  if (tenantProblem) return refuse(ErrorCode.invalidArgument, `${action}: tenantCidr ${tenantProblem}`, 'tenantCidr');
  const current = state.network;
  if (current !== undefined && (current.cidr !== command.cidr || current.nodePrefixLength !== command.nodePrefixLength)) {
    return refuse(ErrorCode.conflict, `${action}: the cluster network is ${current.cidr} (/${current.nodePrefixLength} per node) since index ${current.configuredIndex} and cannot change`, 'cidr');
  }
  if (current?.serviceCidr !== undefined && command.serviceCidr !== undefined && current.serviceCidr !== command.serviceCidr) {
    return refuse(ErrorCode.conflict, `${action}: the service range is ${current.serviceCidr} and cannot change (apps hold VIPs from it)`, 'serviceCidr');
  }
  if (current?.tenantCidr !== undefined && command.tenantCidr !== undefined && current.tenantCidr !== command.tenantCidr) {
    return refuse(ErrorCode.conflict, `${action}: the tenant network pool is ${current.tenantCidr} and cannot change (networks hold blocks of it)`, 'tenantCidr');
  }
  return {
    ok: true,
    commit: () => {
      const configured = current === undefined;
      if (configured) state.network = { cidr: command.cidr, nodePrefixLength: command.nodePrefixLength, configuredIndex: context.index };
      const network = state.network!;
      const servicesConfigured = network.serviceCidr === undefined && command.serviceCidr !== undefined;
      if (servicesConfigured) network.serviceCidr = command.serviceCidr;
      const poolConfigured = network.tenantCidr === undefined && command.tenantCidr !== undefined;
      if (poolConfigured) network.tenantCidr = command.tenantCidr;
      const allocation = allocateMissingSubnets(state);
      const vips = servicesConfigured ? allocateMissingVips(state) : { allocated: 0, unallocated: 0 };
      const value = { cidr: command.cidr, nodePrefixLength: command.nodePrefixLength, ...(network.serviceCidr !== undefined ? { serviceCidr: network.serviceCidr } : {}), ...(network.tenantCidr !== undefined ? { tenantCidr: network.tenantCidr } : {}), ...allocation, ...(servicesConfigured ? { vips } : {}) };
      if (!configured && !servicesConfigured && !poolConfigured && allocation.allocated.length === 0) return { value };
      const parts = [configured ? `cluster network ${command.cidr}, /${command.nodePrefixLength} per node` : ''];
      if (servicesConfigured) parts.push(`service range ${command.serviceCidr}${vips.allocated > 0 ? `, VIPs to ${vips.allocated} apps` : ''}${vips.unallocated > 0 ? `, no free VIP for ${vips.unallocated} apps` : ''}`);
      if (poolConfigured) parts.push(`tenant network pool ${command.tenantCidr}`);
      if (allocation.allocated.length > 0) parts.push(`subnets ${allocation.allocated.slice(0, 5).map((entry) => `${entry.subnet} to ${entry.id}`).join(', ')}${allocation.allocated.length > 5 ? ` and ${allocation.allocated.length - 5} more` : ''}`);
      if (allocation.unallocated.length > 0) parts.push(`no free subnet for ${allocation.unallocated.length} nodes`);
      return { value, history: { target: 'network', summary: parts.filter(Boolean).join('; ') } };
    },
  };
}

// -----------------------------------------------------------------------------
// The commands of this file as modules: schema, plan, proposers, version (listed in commands.ts).

/** `network.configure`. */
export const networkConfigureCommand: CommandModule<'network.configure'> = {
  type: 'network.configure',
  since: 2,
  proposers: ['leader'],
  changesNodeRecords: true,
  schema: object<CommandOf<'network.configure'>>({
    type: oneOf(['network.configure']),
    cidr: text({ bytesMin: 9, bytesMax: 18, pattern: /^[0-9.]+\/[0-9]{1,2}$/, patternHint: 'an IPv4 CIDR like 10.210.0.0/16' }),
    nodePrefixLength: integer({ min: 1, max: 32 }),
    serviceCidr: optional(text({ bytesMin: 9, bytesMax: 18, pattern: /^[0-9.]+\/[0-9]{1,2}$/, patternHint: 'an IPv4 CIDR like 10.211.0.0/16' })),
    tenantCidr: optional(text({ bytesMin: 9, bytesMax: 18, pattern: /^[0-9.]+\/[0-9]{1,2}$/, patternHint: 'an IPv4 CIDR like 10.224.0.0/12' })),
  }),
  versionOf: (command) => (command.tenantCidr !== undefined ? TENANT_NETWORKS_VERSION : 2),
  plan: planNetworkConfigure,
};
