/**
 * Follows this node's Raft view, a step every `WATCH_INTERVAL_MS` (every
 * `WATCH_QUIET_INTERVAL_MS` while this node leads a cluster of one, and at
 * once when an apply moved the node records): counts
 * leader changes (metrics) and says so (self-registration then runs at once:
 * a new leader stores what the state lacks without waiting its interval),
 * hands Raft the peer addresses when the records or the configuration
 * changed, and pokes the voter manager when what it plans from changed (it
 * then plans at once rather than at its interval).
 * Each step only compares a few numbers unless something changed. A new
 * term (an election) is traced as the event `raft.term` (a span of no length:
 * term, role, leader), one trace per election and node, and kept in the
 * node's election log (what `GET /v1/elections` answers).
 */
import type { RaftNode } from '../../consensus/node.js';
import type { Metrics } from '../api/metrics.js';
import type { ClusterStateMachine } from '../state/machine.js';
import type { PeerBook } from './peer-book.js';
import { recordEvent } from '../node/tracing.js';
import type { ElectionLog } from '../node/election-log.js';
import { leadsAlone } from '../../consensus/core/config.js';

/**
 * How often the watch looks, ms, idle or not, in a cluster of more than one.
 * A quiet mode for every node (once a second after 3 s of no change) was
 * tried and dropped: the election log classifies a new term by the sample
 * before it, and a leader's silence lasts about one election timeout, so
 * samples a second apart called most elections `unknown`.
 */
export const WATCH_INTERVAL_MS = 100;

/**
 * How often the watch looks while this node leads a cluster of one (the only
 * voter, no learner), ms, after `WATCH_QUIET_AFTER_STEPS` looks that found
 * nothing: no term can begin there and no leader change before another
 * member is added, and the apply that registers a joiner pokes the watch
 * (it is fast again from then on). The agent's voter manager,
 * self-registration and rejoin loops slow to it too: each is poked by the
 * applies that give it work, and a lone leader has none that time alone
 * brings sooner (its certificate's renewal is due after days).
 */
export const WATCH_QUIET_INTERVAL_MS = 30_000;

/** Quiet looks in a row (see `WATCH_QUIET_INTERVAL_MS`) before the watch slows down. */
export const WATCH_QUIET_AFTER_STEPS = 10;

/** What the watch works with. */
export interface RaftWatchContext {
  /** The Raft node once it runs; undefined before. */
  raft(): RaftNode | undefined;
  machine: ClusterStateMachine;
  peers: PeerBook;
  metrics: Metrics;
  /** Called when the node records, the term or the Raft configuration changed. */
  onMembershipInputs(): void;
  /** Called when the leader changed (this node may lead now). */
  onLeaderChange(): void;
  /** This node's memory of elections, fed every step (src/node/election-log.ts). */
  elections: ElectionLog;
  /** The time now, ms since the epoch (the node's clock). */
  nowMs(): number;
}

/** See the file comment; `step` is the loop's step. */
export class RaftWatch {
  #leader: string | undefined;
  #membershipInputs: string | undefined;
  #term: number | undefined;

  constructor(private readonly context: RaftWatchContext) {}

  /**
   * One look. Returns false when nothing it follows changed and this node
   * leads a cluster of one (a loop with `quiet` slows down while it returns
   * false); true otherwise.
   */
  step(): boolean {
    const raft = this.context.raft();
    if (raft === undefined) return true;
    const status = raft.status();
    let changed = false;
    this.context.elections.observe(status, this.context.nowMs());
    if (status.term !== this.#term) {
      changed = true;
      this.#term = status.term;
      recordEvent('raft.term', { attributes: { 'hivemind.raft.term': status.term, 'hivemind.raft.role': status.role, 'hivemind.raft.leader': status.leader } });
    }
    if (status.leader !== this.#leader) {
      changed = true;
      if (this.#leader !== undefined) this.context.metrics.leaderChanges.inc();
      this.#leader = status.leader;
      this.context.onLeaderChange();
    }
    this.context.peers.maybeRefresh(raft, status);
    const inputs = `${this.context.machine.nodesRevision}|${status.term}|${status.config.voters.join(',')}|${status.config.learners.join(',')}`;
    if (inputs !== this.#membershipInputs) {
      changed = true;
      this.#membershipInputs = inputs;
      this.context.onMembershipInputs();
    }
    return changed || !leadsAlone(status, raft.id);
  }
}
