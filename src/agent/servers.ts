/**
 * The node's servers, built together once the start plan is known: the
 * Raft transport (gRPC, TLS, with the cluster service's Join and Submit on
 * the same port), the Raft node over LevelDB, and the HTTP API over its
 * adapter. Building binds nothing: the agent starts each in its turn.
 */
import type { NodeCapabilities } from '../node/capabilities.js';
import { imagesServiceForServer } from './image-service.js';
import { join } from 'node:path';
import { LevelStorage } from '../../consensus/storage-level.js';
import { GrpcTransport } from '../../consensus/transport-grpc.js';
import { RaftNode } from '../../consensus/node.js';
import { systemTimers } from '../../consensus/timers.js';
import { inSpan, SpanKind, untracedTimers } from '../node/tracing.js';
import { ApiServer, formatHostPort } from '../api/server.js';
import { AuditLog } from '../api/audit.js';
import type { Metrics } from '../api/metrics.js';
import type { ApiBackend, LeaveOutcome } from '../api/backend.js';
import type { CertificateRecord, CommandResult, Envelope } from '../state/types.js';
import type { AgentConfig } from '../node/config.js';
import type { DataDir } from '../node/data-dir.js';
import type { ReplicatedState } from '../node/replicated-state.js';
import type { Clock } from '../node/clock.js';
import type { NodeComponent } from '../node/services.js';
import { TLS_SERVER_NAME, type NodeCredentials } from '../security/node-credentials.js';
import type { AgentLog } from './agent-log.js';
import { apiBackend } from './api-adapter.js';
import type { ElectionRecord } from '../node/election-log.js';
import { clusterServiceForServer, type ClusterClients } from './cluster-service.js';
import { JoinService } from './joining.js';
import { SubmitService } from './submit-service.js';

/** The node's Raft transport, Raft node and API server. */
export interface Servers {
  transport: GrpcTransport;
  raft: RaftNode;
  api: ApiServer;
}

/** What the servers are built from. */
export interface ServersInput {
  nodeId: string;
  version: string;
  config: AgentConfig;
  dataDir: DataDir;
  /** The peer addresses Raft starts with (node.json's). */
  peers: Record<string, string>;
  replicated: ReplicatedState;
  metrics: Metrics;
  credentials: NodeCredentials;
  clients: ClusterClients;
  clock: Clock;
  log: AgentLog;
  /** The Raft node (throws before it is built). */
  raft(): RaftNode;
  /** The Raft node once it runs; undefined before. */
  runningRaft(): RaftNode | undefined;
  clusterKey(): Uint8Array | undefined;
  currentToken(): string | undefined;
  propose(envelope: Envelope, timeoutMs: number): Promise<CommandResult>;
  peerMap(): Record<string, string>;
  signJoiner(requestPem: string, nodeId: string, addresses: string[]): Promise<{ certificatePem: string; caPems: string[]; record: CertificateRecord }>;
  leave(id: string, options: { requestId: string; actor: string; timeoutMs: number }): Promise<LeaveOutcome>;
  caRotation: ApiBackend['caRotation'];
  component(name: string): NodeComponent | undefined;
  /** What the node's components offer the API and the peer port (logs, volumes, images). */
  capabilities(): NodeCapabilities;
  /** The elections this node saw, newest first. */
  elections(): ElectionRecord[];
  /** A storage or state error Raft cannot go on after. */
  onFatal(error: Error): void;
}

/** Builds the servers (see the file comment). */
export function buildServers(input: ServersInput): Servers {
  const { config, credentials, log } = input;
  const authenticate = (call: { getAuthContext(): object | null }) => {
    const verdict = credentials.authenticate(call.getAuthContext());
    return verdict.ok ? { ok: true as const, nodeId: verdict.nodeId } : verdict;
  };
  const onRejected = (reason: string) => input.metrics.peerRejected.inc({ reason });
  const machine = input.replicated.machine;
  const joinService = new JoinService({
    name: input.nodeId,
    get raft(): RaftNode {
      return input.raft();
    },
    machine,
    clients: input.clients,
    clusterKey: input.clusterKey,
    currentToken: input.currentToken,
    propose: input.propose,
    peerMap: input.peerMap,
    signJoiner: input.signJoiner,
    log: (line) => log.line('join', line),
  });
  const submitService = new SubmitService({
    nodeId: input.nodeId,
    clusterKey: input.clusterKey,
    raft: input.runningRaft,
    machine,
    metrics: input.metrics,
    propose: input.propose,
    clock: input.clock,
    logOnce: (key, component, line) => log.once(key, component, line),
  });
  const transport = new GrpcTransport({
    id: input.nodeId,
    listen: formatHostPort(config.bind, config.ports.peer),
    logger: (line) => log.line('transport', line),
    security: {
      serverCredentials: () => credentials.serverCredentials(),
      channelCredentials: (id) => credentials.channelCredentials(id),
      tlsConnectOptions: (id) => credentials.tlsConnectOptions(id),
      channelOptions: { 'grpc.ssl_target_name_override': TLS_SERVER_NAME },
      authenticate,
      onRejected,
    },
    services: [
      clusterServiceForServer({
        join: (request) => inSpan('cluster.join.handle', { kind: SpanKind.SERVER, attributes: { 'hivemind.joiner.id': String(request.node_id).slice(0, 64), 'hivemind.join.rejoin': request.rejoin === true } }, () => joinService.handle(request)),
        submit: (request, caller, traceparent) => submitService.handle(request, caller, traceparent),
        authenticate,
        onRejected,
        log: (line) => log.line('join', line),
      }),
      imagesServiceForServer({ share: () => input.capabilities().imageShare, authenticate, onRejected, log: (line) => log.line('images', line) }),
    ],
  });
  const raft = new RaftNode({
    id: input.nodeId,
    storage: new LevelStorage({ directory: input.dataDir.raftPath, logger: (line) => log.line('storage', line) }),
    transport,
    stateMachine: input.replicated,
    peers: input.peers,
    tickMs: config.tickMs,
    // Its loop runs in no request's trace context, whoever woke it (tracing.ts).
    timers: untracedTimers(systemTimers),
    snapshotEveryEntries: config.snapshotEveryEntries,
    logger: (line) => log.line('raft', line),
    onFatal: input.onFatal,
  });
  const audit = new AuditLog(join(config.dataDir, 'audit'), { log: (line) => log.once(line, 'api', line) });
  const backend = apiBackend({
    nodeId: input.nodeId,
    version: input.version,
    machine,
    replicated: input.replicated,
    raft: input.raft,
    metrics: input.metrics,
    clusterKey: input.clusterKey,
    currentToken: input.currentToken,
    propose: input.propose,
    leave: input.leave,
    caRotation: input.caRotation,
    component: input.component,
    capabilities: input.capabilities,
    elections: input.elections,
    log: (component, line) => log.line(component, line),
  });
  const api = new ApiServer({ backend, host: config.bind, port: config.ports.api, metricsPublic: config.metricsPublic, credentials, insecure: config.insecureApi, audit });
  return { transport, raft, api };
}
