/**
 * The cluster version (version.ts): `cluster.version` raises it once every
 * member's code applies the new version, and `versionGateProblem` refuses a
 * command newer than it. Pure: they read the state and the command only.
 */
import { ErrorCode, stateError, type StateError } from './errors.js';
import { integer, object, oneOf } from './schema.js';
import { refuse, type ApplyContext, type ClusterState, type Plan } from './state.js';
import { STATE_VERSION_LABEL, type CommandOf, type CommandType, type NodeRecord } from './types.js';
import { CLUSTER_VERSION_FLOOR, STATE_VERSION } from './version.js';
import type { CommandModule } from './command.js';

/** Members named in a refusal at most; the rest are counted. */
const NODES_NAMED_MAX = 5;

/** The cluster version of `state`. */
export function clusterVersionOf(state: ClusterState): number {
  return state.clusterVersion ?? CLUSTER_VERSION_FLOOR;
}

/** The highest state version a node's record says its code applies: its label, or the floor for a record without one (a build before the label). */
export function advertisedVersion(record: Pick<NodeRecord, 'labels'>): number {
  const label = record.labels[STATE_VERSION_LABEL];
  const version = label !== undefined && /^[1-9][0-9]{0,5}$/.test(label) ? Number(label) : CLUSTER_VERSION_FLOOR;
  return Math.max(version, CLUSTER_VERSION_FLOOR);
}

/** The members (records not left) whose code does not apply `version`. */
function membersBelow(state: ClusterState, version: number): NodeRecord[] {
  return [...state.nodes.values()].filter((record) => record.status !== 'left' && advertisedVersion(record) < version);
}

/**
 * The version the cluster can be raised to now, or undefined when it cannot
 * be raised: the lowest version any member applies, if above the cluster
 * version and within this code's. The leader proposes `cluster.version` with it.
 */
export function clusterVersionToRaise(state: ClusterState): number | undefined {
  let lowest = Number.POSITIVE_INFINITY;
  for (const record of state.nodes.values()) if (record.status !== 'left') lowest = Math.min(lowest, advertisedVersion(record));
  if (!Number.isFinite(lowest)) return undefined;
  const target = Math.min(lowest, STATE_VERSION);
  return target > clusterVersionOf(state) ? target : undefined;
}

/**
 * The refusal of a command of version `needed` (commands.ts, commandVersion)
 * in a cluster at a lower version, or undefined when it may apply.
 * `cluster.version` is exempt: its plan checks the members instead.
 */
export function versionGateProblem(state: ClusterState, type: CommandType, needed: number): StateError | undefined {
  const current = clusterVersionOf(state);
  if (type === 'cluster.version' || needed <= current) return undefined;
  return stateError(
    ErrorCode.clusterVersionTooOld,
    `cannot apply ${type}: it needs cluster version ${needed}, and the cluster is at version ${current} until every node runs a Hivemind of state version ${needed} or later; ` +
      'finish upgrading the nodes (hivemind nodes shows each one\'s hivemind.state-version label), then retry',
  );
}

/**
 * cluster.version: raises the cluster version. Refused unless it goes up,
 * this code applies it, and every member's record advertises it.
 */
export function planClusterVersion(state: ClusterState, command: CommandOf<'cluster.version'>, _context: ApplyContext): Plan {
  const current = clusterVersionOf(state);
  const action = `cannot raise the cluster version to ${command.version}`;
  if (command.version <= current) return refuse(ErrorCode.conflict, `${action}: the cluster is at version ${current} already; it never goes down`, 'version');
  if (command.version > STATE_VERSION) return refuse(ErrorCode.conflict, `${action}: this node's Hivemind applies state version ${STATE_VERSION} at most; upgrade it first`, 'version');
  const members = [...state.nodes.values()].filter((record) => record.status !== 'left');
  if (members.length === 0) return refuse(ErrorCode.conflict, `${action}: no node is registered yet`, 'version');
  const behind = membersBelow(state, command.version);
  if (behind.length > 0) {
    const named = behind.slice(0, NODES_NAMED_MAX).map((record) => `"${record.id}" (state version ${advertisedVersion(record)})`);
    const more = behind.length > NODES_NAMED_MAX ? ` and ${behind.length - NODES_NAMED_MAX} more` : '';
    return refuse(ErrorCode.conflict, `${action}: node${behind.length === 1 ? '' : 's'} ${named.join(', ')}${more} run an older Hivemind; upgrade ${behind.length === 1 ? 'it' : 'them'} (or remove a node gone for good)`, 'version');
  }
  return {
    ok: true,
    commit: () => {
      state.clusterVersion = command.version;
      return { value: { version: command.version, previous: current }, history: { target: 'cluster', summary: `version ${current} → ${command.version}` } };
    },
  };
}

/** `cluster.version`: written in the version it raises to, so a node too old for it stops at it. */
export const clusterVersionCommand: CommandModule<'cluster.version'> = {
  type: 'cluster.version',
  since: 3,
  versionOf: (command) => command.version,
  proposers: ['leader'],
  schema: object<CommandOf<'cluster.version'>>({ type: oneOf(['cluster.version']), version: integer({ min: 1, max: 1_000_000 }) }),
  plan: planClusterVersion,
};
