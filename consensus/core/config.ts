import { Role, type ClusterConfig, type ConfigChange, type NodeId, type Result, type Status } from './types.js';

/** The smallest number of voters that makes a quorum of `voterCount`. */
export function quorumSize(voterCount: number): number {
  return Math.floor(voterCount / 2) + 1;
}

/**
 * Whether `nodeId` leads a cluster of one: the only voter, leading, no
 * learner. There no term can begin and there is no heartbeat to send, no
 * quorum but its own and no peer to watch until another member is added:
 * the driver stops ticking (consensus/node.ts, `updateTicking`) and the
 * agent's loops that watch for those slow down.
 */
export function leadsAlone(status: Pick<Status, 'role' | 'config'>, nodeId: NodeId): boolean {
  return status.role === Role.Leader && status.config.learners.length === 0 && status.config.voters.length === 1 && status.config.voters[0] === nodeId;
}

/**
 * The highest index that a quorum of `voters` has, given each voter's match
 * index. With no voters it is 0 (nothing can commit).
 */
export function quorumIndex(voters: readonly NodeId[], matchOf: (id: NodeId) => number): number {
  if (voters.length === 0) return 0;
  const matches = voters.map(matchOf).sort((a, b) => b - a);
  return matches[quorumSize(voters.length) - 1]!;
}

/** The outcome of an election so far. */
export const enum VoteOutcome {
  Pending = 0,
  Won = 1,
  Lost = 2,
}

/** Tallies `votes` (granted or refused, by voter) against `voters`. */
export function tallyVotes(voters: readonly NodeId[], votes: ReadonlyMap<NodeId, boolean>): VoteOutcome {
  let granted = 0;
  let refused = 0;
  for (const voter of voters) {
    const vote = votes.get(voter);
    if (vote === true) granted++;
    else if (vote === false) refused++;
  }
  const quorum = quorumSize(voters.length);
  if (granted >= quorum) return VoteOutcome.Won;
  if (refused > voters.length - quorum) return VoteOutcome.Lost;
  return VoteOutcome.Pending;
}

export function isVoter(config: ClusterConfig, id: NodeId): boolean {
  return config.voters.includes(id);
}

export function isMember(config: ClusterConfig, id: NodeId): boolean {
  return config.voters.includes(id) || config.learners.includes(id);
}

/** Every member, voters first. */
export function members(config: ClusterConfig): NodeId[] {
  return [...config.voters, ...config.learners];
}

function sorted(ids: NodeId[]): NodeId[] {
  return [...ids].sort();
}

/**
 * The configuration after `change`. Single-server changes only: at most one
 * voter is added or removed, which keeps every quorum of the old
 * configuration overlapping every quorum of the new one (Ongaro, §4.1).
 */
export function applyChange(config: ClusterConfig, change: ConfigChange): Result<ClusterConfig> {
  const refuse = (reason: string, noChange = false): Result<ClusterConfig> => ({
    ok: false,
    refusal: noChange ? { code: 'invalid-config-change', reason, noChange } : { code: 'invalid-config-change', reason },
  });
  if (typeof change.node !== 'string' || change.node === '') return refuse('node id must be a non-empty string');
  const node = change.node;
  const voter = isVoter(config, node);
  const learner = config.learners.includes(node);
  switch (change.type) {
    case 'add-learner':
      if (voter) return refuse(`${node} is a voter; remove it before adding it as a learner`);
      if (learner) return refuse(`${node} is already a learner`, true);
      return { ok: true, value: { voters: config.voters, learners: sorted([...config.learners, node]) } };
    case 'add-voter':
      if (voter) return refuse(`${node} is already a voter`, true);
      return {
        ok: true,
        value: {
          voters: sorted([...config.voters, node]),
          learners: config.learners.filter((id) => id !== node),
        },
      };
    case 'remove':
      if (!voter && !learner) return refuse(`${node} is not a member`, true);
      if (voter && config.voters.length === 1) return refuse(`${node} is the last voter`);
      return {
        ok: true,
        value: {
          voters: config.voters.filter((id) => id !== node),
          learners: config.learners.filter((id) => id !== node),
        },
      };
    default:
      return refuse(`unknown change type ${JSON.stringify((change as { type: unknown }).type)}`);
  }
}
