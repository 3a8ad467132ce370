/**
 * The node's Prometheus metrics (`GET /metrics`), in a registry of its own
 * (never prom-client's global one, so several agents in one process, as in
 * tests, do not collide).
 *
 * Raft gauges are read from the node's status when scraped; counters and
 * histograms are updated where things happen (proposals and HTTP requests by
 * the API, applies by the replicated state, leader changes by the agent).
 *
 * Node's own metrics (`hivemind_process_*`, `hivemind_nodejs_*`) are
 * registered at the first scrape, not at start: their event-loop delay
 * histogram samples on a timer of its own (4 wake-ups a second), which a node
 * nobody scrapes does without. Process CPU, memory, handles and heap are read
 * at each scrape and lose nothing by it; the event-loop delay histogram and
 * the garbage collections count from the first scrape on.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from '../node/prometheus.js';

/**
 * How often the event-loop delay histogram (`hivemind_nodejs_eventloop_lag_*`
 * but the plain gauge) takes a sample, ms: a stall shows in it when it holds
 * up a sample, so one shorter than this may be missed; about 60 samples
 * between scrapes 15 s apart.
 */
export const EVENT_LOOP_SAMPLE_MS = 250;

/** What the Raft gauges read at scrape time. */
export interface RaftGaugeSource {
  term: number;
  commit: number;
  applied: number;
  lastIndex: number;
  isLeader: boolean;
  voters: number;
  learners: number;
  /** On the leader: each other member's match index (the highest entry known stored there). Empty elsewhere. */
  followers: readonly { id: string; match: number }[];
}

/** What a snapshot operation did, for `hivemind_raft_snapshot_*`: `encode` (this node took one) or `restore` (installed one). */
export type SnapshotOperation = 'encode' | 'restore';

/** The outcome label of a proposal. */
export type ProposalOutcome = 'applied' | 'refused' | 'lost' | 'timeout' | 'not-leader' | 'error';

/** The node's metrics, registered in their own Registry. */
export class Metrics {
  readonly registry = new Registry();
  readonly proposals: Counter<'outcome'>;
  readonly proposalSeconds: Histogram;
  readonly applySeconds: Histogram;
  readonly leaderChanges: Counter;
  readonly peerRejected: Counter<'reason'>;
  readonly httpRequests: Counter<'method' | 'route' | 'status'>;
  readonly httpRequestSeconds: Histogram<'method' | 'route' | 'status'>;
  readonly forwardedRequests: Counter<'outcome'>;
  readonly snapshotSeconds: Histogram<'operation'>;
  readonly snapshotBytes: Gauge<'operation'>;
  /** Node's own metrics are still to be registered (at the first scrape: see the file comment). */
  #defaultMetricsPending: boolean;

  constructor(options: { nodeId: string; raft: () => RaftGaugeSource | undefined; defaultMetrics?: boolean }) {
    const registers = [this.registry];
    this.registry.setDefaultLabels({ node: options.nodeId });
    const gauge = (name: string, help: string, read: (source: RaftGaugeSource) => number): void => {
      new Gauge({
        name,
        help,
        registers,
        collect() {
          const source = options.raft();
          if (source !== undefined) this.set(read(source));
        },
      });
    };
    gauge('hivemind_raft_term', 'Current Raft term of this node.', (source) => source.term);
    gauge('hivemind_raft_commit_index', 'Highest log index known committed.', (source) => source.commit);
    gauge('hivemind_raft_applied_index', 'Highest log index applied to the state machine on this node.', (source) => source.applied);
    gauge('hivemind_raft_last_index', 'Index of the last entry in this node\'s log.', (source) => source.lastIndex);
    gauge('hivemind_raft_leader', '1 if this node leads, else 0 (sums to 1 over a healthy cluster).', (source) => (source.isLeader ? 1 : 0));
    gauge('hivemind_raft_is_leader', 'The same as hivemind_raft_leader (the older name, kept for existing dashboards).', (source) => (source.isLeader ? 1 : 0));
    gauge('hivemind_raft_apply_lag_entries', 'Entries committed and not yet applied on this node (commit index - applied index).', (source) => source.commit - source.applied);
    new Gauge({
      name: 'hivemind_raft_follower_lag_entries',
      help: 'On the leader: entries in its log each follower or learner has not yet stored (last index - match index), by peer; absent elsewhere.',
      labelNames: ['peer'],
      registers,
      collect() {
        this.reset();
        const source = options.raft();
        if (source === undefined || !source.isLeader) return;
        for (const follower of source.followers) this.set({ peer: follower.id }, Math.max(0, source.lastIndex - follower.match));
      },
    });
    gauge('hivemind_raft_voters', 'Voters in the Raft configuration.', (source) => source.voters);
    gauge('hivemind_raft_learners', 'Learners in the Raft configuration.', (source) => source.learners);
    this.proposals = new Counter({ name: 'hivemind_raft_proposals_total', help: 'Proposals made through this node, by outcome.', labelNames: ['outcome'], registers });
    this.proposalSeconds = new Histogram({
      name: 'hivemind_raft_proposal_duration_seconds',
      help: 'From proposal to applied on this node (commit on a quorum, fsync included).',
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    });
    this.applySeconds = new Histogram({
      name: 'hivemind_raft_apply_duration_seconds',
      help: 'Time the state machine takes to apply one entry.',
      buckets: [0.00001, 0.00005, 0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1],
      registers,
    });
    this.leaderChanges = new Counter({ name: 'hivemind_raft_leader_changes_total', help: 'Times this node saw the leader change.', registers });
    this.peerRejected = new Counter({
      name: 'hivemind_peer_rejected_total',
      help: 'Calls and messages on the peer port refused, by reason (no-verified-certificate, no-identity, revoked, sender-mismatch).',
      labelNames: ['reason'],
      registers,
    });
    this.httpRequests = new Counter({
      name: 'hivemind_http_requests_total',
      help: 'HTTP API requests, by method, route template and status.',
      labelNames: ['method', 'route', 'status'],
      registers,
    });
    this.httpRequestSeconds = new Histogram({
      name: 'hivemind_http_request_duration_seconds',
      help: 'HTTP API request latency, by method, route template and status.',
      labelNames: ['method', 'route', 'status'],
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    });
    this.forwardedRequests = new Counter({
      name: 'hivemind_http_forwarded_total',
      help: 'Requests this node forwarded to the leader, by outcome.',
      labelNames: ['outcome'],
      registers,
    });
    this.snapshotSeconds = new Histogram({
      name: 'hivemind_raft_snapshot_duration_seconds',
      help: 'Time to encode a snapshot of the state (encode) or to install one from the leader or the disk (restore).',
      labelNames: ['operation'],
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    });
    this.snapshotBytes = new Gauge({
      name: 'hivemind_raft_snapshot_bytes',
      help: 'Size of the last snapshot this node encoded (encode) or installed (restore).',
      labelNames: ['operation'],
      registers,
    });
    this.#defaultMetricsPending = options.defaultMetrics !== false;
  }

  /** Registers Node's own metrics once (at the first scrape; see the file comment). */
  #registerDefaultMetrics(): void {
    if (!this.#defaultMetricsPending) return;
    this.#defaultMetricsPending = false;
    // The event-loop delay histogram samples on a timer of its own: at prom-client's default 10 ms
    // precision that timer was 100 of an idle node's wake-ups a second, more than all else together.
    collectDefaultMetrics({ register: this.registry, prefix: 'hivemind_', eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS });
  }

  /** Records one snapshot encoded or installed. */
  observeSnapshot(operation: SnapshotOperation, bytes: number, seconds: number): void {
    this.snapshotSeconds.observe({ operation }, seconds);
    this.snapshotBytes.set({ operation }, bytes);
  }

  /** The text exposition format. */
  async render(): Promise<{ contentType: string; body: string }> {
    this.#registerDefaultMetrics();
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
