/**
 * What the API needs of the node it serves. The agent implements it; the API
 * never reaches past it into Raft storage, transport or the data directory.
 */
import type { ElectionRecord } from '../node/election-log.js';
import type { NodeCapabilities } from '../node/capabilities.js';
import type { RaftNode } from '../../consensus/node.js';
import type { ClusterStateMachine } from '../state/machine.js';
import type { Command, CommandResult, Envelope } from '../state/types.js';
import type { Metrics } from './metrics.js';
import type { NodeComponent } from '../node/services.js';

/** The outcome of a leave on the leader. */
export type LeaveOutcome =
  /** Done: the result of the `node.remove` command. */
  | { type: 'done'; result: CommandResult }
  /** The leaving node was the leader; leadership moved to `leader`, where the request must go now. */
  | { type: 'moved'; leader: string };

/** The node as the API sees it. Every method may be called concurrently from requests. */
export interface ApiBackend {
  readonly nodeId: string;
  /** Hivemind's version, for `/v1/status`. */
  readonly version: string;
  /** Read between applies only (one thread: any synchronous read is consistent). */
  readonly machine: ClusterStateMachine;
  readonly raft: Pick<RaftNode, 'status' | 'read'>;
  readonly metrics: Metrics;
  /** The cluster key, to seal secrets and the join token. */
  clusterKey(): Uint8Array;
  /**
   * Leader only: proposes the envelope and resolves with its result once it
   * is applied here. Rejects with the RaftErrors of `RaftNode.propose`.
   */
  propose(envelope: Envelope, timeoutMs: number): Promise<CommandResult>;
  /** See `ReplicatedState.waitBeyond`. */
  waitBeyond(index: number, timeoutMs: number, signal?: AbortSignal): Promise<boolean> | undefined;
  /**
   * Leader only: removes node `id` from the cluster (moving leadership away
   * first if it is this node). Rejects with RaftErrors, or an ApiError.
   */
  leave(id: string, options: { requestId: string; actor: string; timeoutMs: number }): Promise<LeaveOutcome>;
  /**
   * A `ca.set` that starts a CA rotation (a new CA that signs, trusted beside
   * the current one), or why there is none (one is in progress).
   */
  caRotation(): Promise<{ ok: true; command: Command } | { ok: false; reason: string }>;
  /** The join token in clear, if the cluster has one. */
  currentToken(): string | undefined;
  log(line: string): void;
  /** A component of the node by name (`gossip`, `network`), for routes that show its own view. */
  component(name: string): NodeComponent | undefined;
  /** What the node's components offer the API: instance logs, volumes, images (each absent on a node without it). */
  capabilities(): NodeCapabilities;
  /** The elections this node saw, newest first (its own view; absent on a backend that keeps none). */
  elections?(): ElectionRecord[];
}
