/**
 * The agent as the API sees it (`ApiBackend`): a thin adapter over the
 * agent's parts, adding only the API's errors (a 503 before the cluster key
 * is known).
 */
import type { NodeCapabilities } from '../node/capabilities.js';
import type { ElectionRecord } from '../node/election-log.js';
import type { RaftNode } from '../../consensus/node.js';
import { ApiCode, ApiError } from '../api/errors.js';
import type { ApiBackend, LeaveOutcome } from '../api/backend.js';
import type { Metrics } from '../api/metrics.js';
import type { ClusterStateMachine } from '../state/machine.js';
import type { CommandResult, Envelope } from '../state/types.js';
import type { NodeComponent } from '../node/services.js';
import type { ReplicatedState } from '../node/replicated-state.js';

/** What the adapter forwards to. */
export interface ApiAdapterParts {
  nodeId: string;
  version: string;
  machine: ClusterStateMachine;
  replicated: ReplicatedState;
  /** The Raft node (the API serves only once it runs). */
  raft(): RaftNode;
  metrics: Metrics;
  clusterKey(): Uint8Array | undefined;
  currentToken(): string | undefined;
  propose(envelope: Envelope, timeoutMs: number): Promise<CommandResult>;
  leave(id: string, options: { requestId: string; actor: string; timeoutMs: number }): Promise<LeaveOutcome>;
  caRotation: ApiBackend['caRotation'];
  component(name: string): NodeComponent | undefined;
  capabilities(): NodeCapabilities;
  elections(): ElectionRecord[];
  log(component: string, line: string): void;
}

/** The `ApiBackend` over `parts`. */
export function apiBackend(parts: ApiAdapterParts): ApiBackend {
  return {
    nodeId: parts.nodeId,
    version: parts.version,
    machine: parts.machine,
    get raft() {
      return parts.raft();
    },
    metrics: parts.metrics,
    clusterKey: () => {
      const key = parts.clusterKey();
      if (key === undefined) throw new ApiError(503, ApiCode.unavailable, `node ${parts.nodeId} has not received the cluster key yet; retry shortly`);
      return key;
    },
    propose: (envelope, timeoutMs) => parts.propose(envelope, timeoutMs),
    waitBeyond: (index, timeoutMs, signal) => parts.replicated.waitBeyond(index, timeoutMs, signal),
    leave: (id, options) => parts.leave(id, options),
    caRotation: () => parts.caRotation(),
    currentToken: () => parts.currentToken(),
    log: (line) => parts.log('api', line),
    component: (name) => parts.component(name),
    capabilities: () => parts.capabilities(),
    elections: () => parts.elections(),
  };
}
