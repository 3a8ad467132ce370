/**
 * This node's short memory of elections: the terms and leaders it saw, when,
 * and why each began as far as this node can tell. Each node's own view
 * (kept in memory, not in the replicated state: two nodes may see different
 * things), answered by `GET /v1/elections` and shown by `hivemind status`
 * and the UI's cluster page.
 *
 * Deterministic: it is fed samples of the node's Raft status (term, role,
 * leader, transfer target, ticks since the leader was heard) with the time
 * they were taken, and classifies each change from the sample before it:
 *
 * - `transfer`: this node led and was handing leadership over, or it
 *   campaigned while it still heard its leader (only a leader's TimeoutNow
 *   makes a follower do that);
 * - `timeout`: the leader had gone silent for this node (no leader known, or
 *   silent for half an election timeout or more), or this node was already
 *   campaigning;
 * - `lost-quorum`: this node led and stepped down in its term (it no longer
 *   heard from a quorum), leaving the term without a leader;
 * - `start`: the term this node found when it started (or when its Raft
 *   node was made anew, its term starting over): a term learned before any
 *   leader was heard replaces the start's leaderless record (a joiner learns
 *   the cluster's term from its leader);
 * - `unknown`: a new term began elsewhere while this node still heard its
 *   leader (another node timed out, or a transfer between others).
 *
 * Sampling misses what happens between two samples (a term that came and
 * went); the log says what was seen, never more.
 */
import { assert } from '../../consensus/core/assert.js';

/** Why a term began (or, for `lost-quorum`, why its leader stepped down), as this node saw it. */
export type ElectionReason = 'start' | 'timeout' | 'transfer' | 'lost-quorum' | 'unknown';

/** One thing this node saw: a term and its leader (empty while none is known). */
export interface ElectionRecord {
  term: number;
  /** The leader of `term` this node heard of; empty while there is none (a step-down, or before one was elected). */
  leader: string;
  /** When this node saw the term begin (or its leader step down), ms since the epoch. */
  seenAt: number;
  /** When this node first heard of the term's leader, ms since the epoch; absent while there is none. */
  leaderSeenAt?: number;
  reason: ElectionReason;
}

/** What the log needs of a Raft status (consensus's `Status` has these fields). */
export interface RaftSample {
  term: number;
  role: string;
  leader: string;
  /** The node a leader hands leadership to; empty when none. */
  transferee: string;
  /** Ticks since this node last heard from a leader. */
  silentTicks: number;
}

/** Records kept, newest first; older ones are dropped. */
export const ELECTION_RECORDS_MAX = 20;

/** See the file comment. */
export class ElectionLog {
  readonly #records: ElectionRecord[] = [];
  #previous: RaftSample | undefined;
  /** Whether any leader was heard of since the start (a term learned before that is part of starting). */
  #heardLeader = false;
  readonly #electionTimeoutTicks: number;
  readonly #recordsMax: number;

  constructor(options: { electionTimeoutTicks: number; recordsMax?: number }) {
    assert(Number.isInteger(options.electionTimeoutTicks) && options.electionTimeoutTicks > 0, 'an election log needs a positive election timeout in ticks');
    this.#electionTimeoutTicks = options.electionTimeoutTicks;
    this.#recordsMax = options.recordsMax ?? ELECTION_RECORDS_MAX;
    assert(this.#recordsMax >= 1, 'an election log keeps at least one record');
  }

  /** Takes the status sampled at `nowMs`; records a new term, a leader learned, or a step-down. */
  observe(sample: RaftSample, nowMs: number): void {
    const previous = this.#previous;
    this.#previous = { term: sample.term, role: sample.role, leader: sample.leader, transferee: sample.transferee, silentTicks: sample.silentTicks };
    // A term that went back is a new Raft node (the node rejoined afresh): a start again.
    if (previous === undefined || sample.term < previous.term) {
      this.#heardLeader = false;
      this.#add({ term: sample.term, leader: '', seenAt: nowMs, reason: 'start' }, sample.leader, nowMs);
      return;
    }
    if (sample.term > previous.term) {
      // Before it ever heard a leader, a follower that learns a term is still starting (a joiner, or a restarted node, catching up).
      const starting = !this.#heardLeader && sample.role === 'follower';
      if (starting && this.#records[0]?.reason === 'start' && this.#records[0].leader === '') this.#records.shift();
      this.#add({ term: sample.term, leader: '', seenAt: nowMs, reason: starting ? 'start' : this.#whyNewTerm(previous, sample) }, sample.leader, nowMs);
      return;
    }
    if (sample.leader === previous.leader) return;
    if (sample.leader === '' && previous.role === 'leader') {
      this.#add({ term: sample.term, leader: '', seenAt: nowMs, reason: 'lost-quorum' }, '', nowMs);
      return;
    }
    const latest = this.#records[0];
    if (sample.leader !== '' && latest !== undefined && latest.term === sample.term && latest.leader === '') {
      this.#heardLeader = true;
      latest.leader = sample.leader;
      latest.leaderSeenAt = nowMs;
    }
  }

  /** What the node saw, newest first (copies). */
  records(): ElectionRecord[] {
    return this.#records.map((record) => ({ ...record }));
  }

  #add(record: ElectionRecord, leader: string, nowMs: number): void {
    if (leader !== '') {
      this.#heardLeader = true;
      record.leader = leader;
      record.leaderSeenAt = nowMs;
    }
    this.#records.unshift(record);
    if (this.#records.length > this.#recordsMax) this.#records.length = this.#recordsMax;
  }

  #whyNewTerm(previous: RaftSample, next: RaftSample): ElectionReason {
    if (previous.role === 'leader') return previous.transferee !== '' ? 'transfer' : 'unknown';
    const heardLeader = previous.leader !== '' && previous.silentTicks * 2 < this.#electionTimeoutTicks;
    if (previous.role === 'candidate' || previous.role === 'pre-candidate') return 'timeout';
    if (!heardLeader) return 'timeout';
    // Campaigning while the leader is still heard: only its TimeoutNow does that.
    return next.role !== 'follower' ? 'transfer' : 'unknown';
  }
}
