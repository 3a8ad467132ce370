/**
 * Voter management: the leader's decisions on who is a Raft voter, a
 * learner, up or down (not gossip: that is src/membership/). A pure
 * planner: given the Raft
 * status (configuration, and each member's progress), the node records and
 * the time, it returns the one change to make next, or nothing.
 *
 * What it keeps healthy:
 * - a node gossip declares dead (SWIM with Lifeguard, `view.gossip`), and
 *   that Raft does not hear either, is marked `down` at once; a node gossip
 *   has no view of, or that Raft has not heard from (`recentActive` false) for
 *   longer than the grace, is marked `down` then; a down voter is removed
 *   from the Raft configuration once Raft has not heard it for the grace, so
 *   the quorum is counted over live voters only;
 * - while there are fewer voters than the target (3, or 5 once 5 or more
 *   nodes are up), the most caught-up healthy learner is promoted;
 * - a member heard from again (by Raft, and not dead to gossip) is marked
 *   `up`; a member whose record says
 *   `left` is removed; each record's `role` follows the configuration.
 *
 * One change per call, most urgent first: the core takes one membership
 * change at a time, and the caller plans again after each. Pure: no clock
 * (`now` comes in), no I/O; `plan` only updates the planner's own record of
 * when each member was last seen.
 */
import type { NodeRecord, NodeStatus } from '../state/types.js';

/** How many voters the cluster aims for with fewer than FIVE_VOTERS_FROM_NODES nodes up. */
export const VOTERS_TARGET_SMALL = 3;
/** How many voters it aims for with more nodes up. */
export const VOTERS_TARGET_LARGE = 5;
/** From this many nodes up, the target is VOTERS_TARGET_LARGE. */
export const FIVE_VOTERS_FROM_NODES = 5;
/**
 * A learner counts as caught up once its match is at least this share of the
 * leader's last index (etcd's rule of thumb for promoting a learner), and at
 * least the leader's snapshot index (below it, it still needs the snapshot).
 * A fixed lag ("within 100 entries") promoted a learner at match 0 of a
 * 22-entry log: one that had received nothing yet.
 */
export const CATCH_UP_MATCH_SHARE_MIN = 0.9;

/** Whether a learner at `match` is caught up with a leader at `lastIndex` whose snapshot is at `snapshotIndex` (see CATCH_UP_MATCH_SHARE_MIN). */
export function learnerCaughtUp(match: number, leader: { lastIndex: number; snapshotIndex: number }): boolean {
  return match >= leader.snapshotIndex && match >= Math.ceil(leader.lastIndex * CATCH_UP_MATCH_SHARE_MIN);
}

/** What the planner needs of the leader's Raft status. */
export interface VoterView {
  self: string;
  isLeader: boolean;
  voters: string[];
  learners: string[];
  /** The leader's view of each member (the leader's own entry included). */
  progress: Record<string, { match: number; recentActive: boolean }>;
  lastIndex: number;
  /** The leader's snapshot index (its log's first index minus one). */
  snapshotIndex: number;
  records: Pick<NodeRecord, 'id' | 'status' | 'role'>[];
  /** Milliseconds, any monotonic origin. */
  now: number;
  /**
   * The leader's gossip view (`statuses()` of the `gossip` component): node
   * id → SWIM status. Undefined when gossip does not run; a node missing from
   * it is one gossip has no view of. Either way Raft liveness decides alone.
   */
  gossip?: Record<string, GossipStatus>;
}

/** A node's status in the SWIM member view. */
export type GossipStatus = 'alive' | 'suspect' | 'dead' | 'left';

/** One change. `reason` is for the log line. */
export type VoterAction =
  | { type: 'set-status'; id: string; status: NodeStatus; reason: string }
  | { type: 'set-role'; id: string; role: 'voter' | 'learner' | 'none'; reason: string }
  | { type: 'remove'; id: string; reason: string }
  | { type: 'promote'; id: string; reason: string };

/** The planner's settings. */
export interface VoterPlannerOptions {
  /** How long a member may go unheard before it is marked down (and, if a voter, replaced). */
  graceMs: number;
}

/** The voter count the cluster aims for with `upNodes` nodes up. */
export function votersTarget(upNodes: number): number {
  return upNodes >= FIVE_VOTERS_FROM_NODES ? VOTERS_TARGET_LARGE : VOTERS_TARGET_SMALL;
}

/** Decides membership changes on the leader. Not thread-safe; one caller. */
export class VoterPlanner {
  private readonly graceMs: number;
  /**
   * Node id → when it was first seen unreachable, in the current run of
   * unreachability, and its record's status when last seen.
   */
  private readonly unreachable = new Map<string, { since: number; status: NodeStatus | undefined }>();

  constructor(options: VoterPlannerOptions) {
    this.graceMs = options.graceMs;
  }

  /** Since when `id` has been unreachable without a break, if it is. */
  unreachableFor(id: string, now: number): number {
    const run = this.unreachable.get(id);
    return run === undefined ? 0 : now - run.since;
  }

  /** The next change to make, or undefined when all is as it should be (or this node does not lead). */
  plan(view: VoterView): VoterAction | undefined {
    if (!view.isLeader) {
      // A new leader starts its own count: it cannot know how long others went unheard.
      this.unreachable.clear();
      return undefined;
    }
    this.observe(view);
    return (
      this.removeLeft(view) ??
      this.markDown(view) ??
      this.removeDownVoter(view) ??
      this.markUp(view) ??
      this.promote(view) ??
      this.recordRoles(view)
    );
  }

  private observe(view: VoterView): void {
    const members = new Set([...view.voters, ...view.learners]);
    const tracked = new Set<string>();
    for (const record of view.records) {
      if (record.id === view.self || record.status === 'left') continue;
      tracked.add(record.id);
      const active = members.has(record.id) && view.progress[record.id]?.recentActive === true;
      const run = this.unreachable.get(record.id);
      if (active) this.unreachable.delete(record.id);
      // A down record turned up while Raft does not hear the node: only a join or rejoin registers it again (markUp needs
      // Raft to hear it), so it is alive and reconnecting; its grace starts over. Counted on, a voter that rejoined just
      // before its grace ran out was removed half a second later and had to rejoin again (trust nemesis, seed 108).
      else if (run === undefined || (run.status === 'down' && record.status === 'up')) this.unreachable.set(record.id, { since: view.now, status: record.status });
      else run.status = record.status;
    }
    for (const id of members) {
      if (id === view.self || tracked.has(id)) continue;
      tracked.add(id);
      if (view.progress[id]?.recentActive === true) this.unreachable.delete(id);
      else if (!this.unreachable.has(id)) this.unreachable.set(id, { since: view.now, status: undefined });
    }
    for (const id of [...this.unreachable.keys()]) if (!tracked.has(id)) this.unreachable.delete(id);
  }

  private isGone(id: string, now: number): boolean {
    return this.unreachable.has(id) && this.unreachableFor(id, now) >= this.graceMs;
  }

  private removeLeft(view: VoterView): VoterAction | undefined {
    for (const id of [...view.voters, ...view.learners]) {
      if (id === view.self) continue;
      if (recordOf(view, id)?.status === 'left') return { type: 'remove', id, reason: 'it has left the cluster' };
    }
    return undefined;
  }

  private markDown(view: VoterView): VoterAction | undefined {
    for (const record of sortedRecords(view)) {
      if (record.id === view.self || record.status === 'down' || record.status === 'left') continue;
      const gossip = view.gossip?.[record.id];
      // Raft liveness can veto gossip: a node the leader still hears is not down, whatever UDP says.
      if ((gossip === 'dead' || gossip === 'left') && !raftActive(view, record.id)) {
        // A gossip leave is a process that shut down, not a cluster leave: the record's `left` belongs to the leave API.
        const reason = gossip === 'dead' ? 'gossip declared it dead' : 'it left gossip (stopped)';
        return { type: 'set-status', id: record.id, status: 'down', reason };
      }
      if (this.isGone(record.id, view.now)) {
        const seconds = Math.round(this.unreachableFor(record.id, view.now) / 1000);
        return { type: 'set-status', id: record.id, status: 'down', reason: `unreachable for ${seconds}s (grace ${this.graceMs / 1000}s)` };
      }
    }
    return undefined;
  }

  private removeDownVoter(view: VoterView): VoterAction | undefined {
    if (view.voters.length <= 1) return undefined;
    for (const id of view.voters) {
      if (id === view.self) continue;
      if (recordOf(view, id)?.status === 'down' && this.isGone(id, view.now)) {
        return { type: 'remove', id, reason: 'the voter is down past its grace; a healthy learner takes its place' };
      }
    }
    return undefined;
  }

  private markUp(view: VoterView): VoterAction | undefined {
    for (const id of [...view.voters, ...view.learners]) {
      const record = recordOf(view, id);
      if (record === undefined || (record.status !== 'down' && record.status !== 'suspect')) continue;
      const gossip = view.gossip?.[id];
      const reachable = id === view.self || (view.progress[id]?.recentActive === true && gossip !== 'dead' && gossip !== 'left');
      if (reachable) return { type: 'set-status', id, status: 'up', reason: gossip === undefined ? 'reachable again' : `reachable again (gossip: ${gossip})` };
    }
    return undefined;
  }

  private promote(view: VoterView): VoterAction | undefined {
    const members = new Set([...view.voters, ...view.learners]);
    const upNodes = view.records.filter((record) => record.status === 'up' && members.has(record.id)).length;
    const target = votersTarget(upNodes);
    if (view.voters.length >= target) return undefined;
    const candidates = view.learners
      .filter((id) => recordOf(view, id)?.status === 'up')
      .map((id) => ({ id, progress: view.progress[id] }))
      .filter(
        (candidate) =>
          candidate.progress !== undefined &&
          candidate.progress.recentActive &&
          learnerCaughtUp(candidate.progress.match, view),
      )
      .sort((left, right) => right.progress!.match - left.progress!.match || compare(left.id, right.id));
    const best = candidates[0];
    if (best === undefined) return undefined;
    return { type: 'promote', id: best.id, reason: `${view.voters.length} voters, target ${target}; it is caught up (match ${best.progress!.match} of ${view.lastIndex})` };
  }

  private recordRoles(view: VoterView): VoterAction | undefined {
    for (const record of sortedRecords(view)) {
      const role = view.voters.includes(record.id) ? 'voter' : view.learners.includes(record.id) ? 'learner' : 'none';
      if (record.role !== role) return { type: 'set-role', id: record.id, role, reason: 'the Raft configuration changed' };
    }
    return undefined;
  }
}

/** Whether the leader's Raft hears `id` now (a member with `recentActive`). */
function raftActive(view: VoterView, id: string): boolean {
  return (view.voters.includes(id) || view.learners.includes(id)) && view.progress[id]?.recentActive === true;
}

function recordOf(view: VoterView, id: string): VoterView['records'][number] | undefined {
  return view.records.find((record) => record.id === id);
}

function sortedRecords(view: VoterView): VoterView['records'] {
  return [...view.records].sort((left, right) => compare(left.id, right.id));
}

function compare(left: string, right: string): number {
  return left < right ? -1 : left > right ? 1 : 0;
}
