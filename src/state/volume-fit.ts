/**
 * An app that mounts a node-local volume runs every replica on the volume's
 * node (scheduling follows the data, scheduler/volume-placement.ts). A deploy
 * or scale whose replicas could never all run on one node is refused with
 * the reason, instead of leaving the rest unplaceable for ever: more
 * replicas than `x-hivemind.max_per_node` allows, a published port (one
 * node binds it once), or more reserved CPU or memory than the volume's node
 * (or, while the volume is on no node yet, the largest node) has in all.
 * What other apps use there is not counted: that changes, and the scheduler
 * says so.
 *
 * A rule at apply, so it holds from cluster version VOLUME_FIT_VERSION (the
 * state of older code would accept such an app). Pure.
 */
import { formatBytes, formatCpu } from './errors.js';
import type { ClusterState } from './state.js';
import type { AppSpec, NodeRecord, Resources } from './types.js';
import { tenantKey } from './state.js';

/** Why `replicas` of `spec` cannot all run on one node, with the field to blame; undefined when they can (or it mounts no named volume). */
export function volumeFitProblem(state: ClusterState, spec: AppSpec, replicas: number): { text: string; field: string } | undefined {
  const position = spec.volumes.findIndex((mount) => !mount.source.startsWith('/'));
  if (position < 0 || replicas <= 1) return undefined;
  const volume = `volume "${spec.volumes[position]!.source}" (volumes[${position}].source)`;
  const together = `${replicas} replicas mount ${volume}, which lives on one node, so they all run there`;
  const maxPerNode = spec.hivemind.maxPerNode;
  if (maxPerNode !== undefined && maxPerNode < replicas) {
    return { text: `${together}, and x-hivemind.max_per_node allows ${maxPerNode} per node; run ${maxPerNode} replicas, or give each replica a volume of its own`, field: 'replicas' };
  }
  const published = spec.ports.find((port) => port.published !== undefined);
  if (published !== undefined) {
    return { text: `${together}, and only one of them can publish port ${published.published}; run 1 replica, or drop the published port and reach them by name`, field: 'replicas' };
  }
  const homes = boundNodes(state, spec);
  if (homes.size > 1) return { text: `it mounts volumes that live on different nodes (${[...homes].sort().join(', ')}); an instance runs on one node`, field: `volumes[${position}].source` };
  const candidates = homes.size === 1 ? [...homes].map((id) => state.nodes.get(id)).filter((node): node is NodeRecord => node !== undefined) : [...state.nodes.values()].filter((node) => node.status !== 'left');
  if (candidates.length === 0) return undefined;
  const needed = { cpuMillis: (spec.reservations.cpuMillis ?? 0) * replicas, memoryBytes: (spec.reservations.memoryBytes ?? 0) * replicas };
  if (candidates.some((node) => fits(needed, node.resources))) return undefined;
  const largest = candidates.reduce((best, node) => (capacityRank(node.resources) > capacityRank(best.resources) ? node : best));
  const where = homes.size === 1 ? `its node ${largest.id}` : `the largest node (${largest.id})`;
  return {
    text: `${together}: they reserve ${describe(needed)} in all, and ${where} has ${describe(largest.resources)}; run fewer replicas, reserve less, or give each replica a volume of its own`,
    field: 'replicas',
  };
}

/** The nodes holding the named volumes `spec` mounts (bound ones; a volume being moved counts where it goes). */
function boundNodes(state: ClusterState, spec: AppSpec): Set<string> {
  const nodes = new Set<string>();
  for (const mount of spec.volumes) {
    if (mount.source.startsWith('/')) continue;
    const volume = state.volumes.get(tenantKey(spec.tenant, mount.source));
    const home = volume?.moving ?? volume?.node;
    if (home !== undefined) nodes.add(home);
  }
  return nodes;
}

function fits(needed: Required<Resources>, capacity: Resources): boolean {
  return (capacity.cpuMillis === undefined || needed.cpuMillis <= capacity.cpuMillis) && (capacity.memoryBytes === undefined || needed.memoryBytes <= capacity.memoryBytes);
}

/** Orders nodes by size for the message: memory, then CPU. */
function capacityRank(capacity: Resources): number {
  return (capacity.memoryBytes ?? Number.MAX_SAFE_INTEGER) / 1024 ** 2 + (capacity.cpuMillis ?? Number.MAX_SAFE_INTEGER) / 1000;
}

function describe(resources: Resources): string {
  const parts: string[] = [];
  if (resources.cpuMillis !== undefined) parts.push(formatCpu(resources.cpuMillis));
  if (resources.memoryBytes !== undefined) parts.push(`${formatBytes(resources.memoryBytes)} of memory`);
  return parts.length > 0 ? parts.join(' and ') : 'no limit';
}
