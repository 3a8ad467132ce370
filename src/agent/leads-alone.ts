/**
 * Whether a node leads a cluster of one: it is the only voter and there is
 * no learner. There no term can begin, no leader change, no voter to plan
 * and no peer to rejoin until another member is added, so the loops that
 * watch for those slow down while it holds (and Raft does not tick:
 * consensus/node.ts, `updateTicking`).
 */
import type { Status } from '../../consensus/core/types.js';

/** See the file comment; `nodeId` is this node's id. */
export function leadsAlone(status: Pick<Status, 'role' | 'config'>, nodeId: string): boolean {
  return status.role === 'leader' && status.config.learners.length === 0 && status.config.voters.length === 1 && status.config.voters[0] === nodeId;
}
