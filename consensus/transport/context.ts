/**
 * What the parts of one gRPC transport share: its identity, settings,
 * counters, log, the Raft handlers and whether it has stopped. One object,
 * owned by `GrpcTransport`, read and updated in place by the peer streams,
 * the snapshot senders and the server.
 */
import type { NodeId } from '../core/types.js';
import type { TransportHandlers } from '../transport.js';
import type { GrpcTransportSecurity, GrpcTransportStats, TransportSettings } from './options.js';

/** The shared state of one transport (see the file header). */
export interface TransportContext {
  readonly id: NodeId;
  readonly settings: TransportSettings;
  readonly counters: GrpcTransportStats;
  /** Rate-limited lines for failures. */
  readonly log: RateLimitedLog;
  /** Plain lines for rare events (listening, a peer reachable again). */
  readonly logger: ((line: string) => void) | undefined;
  readonly security: GrpcTransportSecurity | undefined;
  /** Set once by `start`. */
  handlers: TransportHandlers | null;
  /** Set once by `stop`; afterwards no handler is called. */
  stopped: boolean;
}

/** Counters at zero. */
export function zeroStats(): GrpcTransportStats {
  return {
    messagesSent: 0, batchesSent: 0, messagesDropped: 0, appendsSuperseded: 0, messagesReceived: 0, batchesReceived: 0,
    batchesRejected: 0, snapshotsSent: 0, snapshotsFailed: 0, snapshotsReceived: 0, snapshotsRejected: 0,
  };
}

const LOG_INTERVAL_MS = 1000;

/** At most one line per key per interval; says how many were suppressed. Keys are a bounded set. */
export class RateLimitedLog {
  private readonly lastByKey = new Map<string, { atMs: number; suppressed: number }>();

  constructor(private readonly logger: ((line: string) => void) | undefined) {}

  line(key: string, text: string): void {
    if (this.logger === undefined) return;
    const nowMs = Date.now();
    const last = this.lastByKey.get(key);
    if (last !== undefined && nowMs - last.atMs < LOG_INTERVAL_MS) {
      last.suppressed++;
      return;
    }
    const suffix = last !== undefined && last.suppressed > 0 ? ` (${last.suppressed} similar suppressed)` : '';
    this.lastByKey.set(key, { atMs: nowMs, suppressed: 0 });
    this.logger(text + suffix);
  }
}
