/**
 * The gRPC transport's options, its security hook and its counters, and the
 * settings resolved from the options (every limit with its default).
 */
import type { ConnectionOptions } from 'node:tls';
import type * as grpc from '@grpc/grpc-js';
import type * as http2 from 'node:http2';
import { assert } from '../core/assert.js';
import type { NodeId } from '../core/types.js';

/** Settings of one transport. Every limit has a default; sizes are in bytes. */
export interface GrpcTransportOptions {
  /** This node's id: sent as `from`, and every incoming message must name it as `to`. */
  id: NodeId;
  /** `host:port` to listen on; port 0 picks a free port (read it from `address`). */
  listen: string;
  /** Snapshot data bytes per InstallSnapshot chunk. Default 1 MiB. */
  chunkBytes?: number;
  /** Soft cap on one Batch's size (a single larger message still goes alone). Default 4 MiB. */
  batchBytesMax?: number;
  /** Messages queued per peer awaiting a flush; beyond it new ones are dropped. Default 4096. */
  queueMessagesMax?: number;
  /** Largest gRPC message sent or accepted. Default 16 MiB. */
  messageBytesMax?: number;
  /** Largest snapshot accepted from a peer. Default 1 GiB. */
  snapshotBytesMax?: number;
  /** Time allowed for one outgoing snapshot transfer. Default 10 minutes. */
  snapshotTimeoutMs?: number;
  /** Time a new stream may take to be accepted by the peer before it counts as failed. Default 3 s. */
  connectTimeoutMs?: number;
  /** First reconnect delay after a failure; doubles per failure. Default 50 ms. */
  reconnectDelayMsMin?: number;
  /** Largest reconnect delay. Default 2 s. */
  reconnectDelayMsMax?: number;
  /**
   * How long an Append without entries waits for a later Append to the same
   * peer that supersedes it (see peer-stream.ts); 0 sends it at once. Default 5 ms.
   */
  appendHoldMs?: number;
  /** Receives one line per notable event (failures are rate-limited). */
  logger?: (line: string) => void;
  /**
   * Further gRPC services to serve on the same port, beside RaftTransport
   * (the agent's cluster and images services). Added before the server
   * binds; the transport neither inspects nor wraps them. A service's
   * `rawStreams` are routed past grpc-js (raw-streams.ts).
   */
  services?: GrpcExtraService[];
  /** Mutual TLS and peer authentication (see server.ts). Absent: plaintext, for tests and benchmarks. */
  security?: GrpcTransportSecurity;
}

/** What the transport reads of a server call to authenticate it (grpc-js's server calls). */
export interface PeerCall {
  getPeer(): string;
  getAuthContext(): { transportSecurityType?: string; sslPeerCertificate?: object } | null;
}

/**
 * Serves one HTTP/2 stream whose `:path` it was registered for. `call`
 * authenticates it as grpc-js's server calls are (`getAuthContext`). The
 * handler owns the stream: it must answer it (headers, messages, trailers)
 * and must not throw.
 */
export type RawStreamHandler = (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, call: PeerCall) => void;

/**
 * How the transport authenticates its peers. The transport knows nothing of
 * certificates: it asks `authenticate` who made a call and compares that with
 * the sender the call's messages name.
 */
export interface GrpcTransportSecurity {
  /** The server's credentials (TLS that requests a client certificate). */
  serverCredentials(): grpc.ServerCredentials;
  /** Credentials for the channel to peer `id`: this node's certificate, and only `id`'s accepted. */
  channelCredentials(id: NodeId): grpc.ChannelCredentials;
  /**
   * node:tls options for a connection to peer `id` made outside grpc-js (the
   * batch stream, batch-stream.ts), accepting the server as
   * `channelCredentials(id)` does: this node's certificate, and only `id`'s
   * accepted. Read for each new connection; may throw (no certificate yet),
   * which fails that stream like an unreachable peer.
   */
  tlsConnectOptions(id: NodeId): ConnectionOptions;
  /** Channel options for every channel (such as a fixed TLS server name). */
  channelOptions?: grpc.ChannelOptions;
  /** Who made a server call: the node id its verified certificate names, or why it is refused. */
  authenticate(call: PeerCall): { ok: true; nodeId: NodeId } | { ok: false; reason: string };
  /** Hears every refused call, batch or snapshot, by reason (a metric); must not throw. */
  onRejected?(reason: string): void;
}

/** A gRPC service to serve on the transport's port. */
export interface GrpcExtraService {
  definition: grpc.ServiceDefinition;
  implementation: grpc.UntypedServiceImplementation;
  /** Methods served outside grpc-js, by `:path` (raw-streams.ts); they are not in `definition`. */
  rawStreams?: ReadonlyMap<string, RawStreamHandler>;
}

/** Counters since start; for metrics and tests. */
export interface GrpcTransportStats {
  /** Messages written to a stream (delivery is not confirmed). */
  messagesSent: number;
  batchesSent: number;
  /** Messages dropped before sending: queue full, peer down or unknown, too large, stop. */
  messagesDropped: number;
  /** Appends without entries not sent because a later Append to the same peer superseded them. */
  appendsSuperseded: number;
  messagesReceived: number;
  batchesReceived: number;
  /** Incoming batches that failed to decode or validate, dropped whole. */
  batchesRejected: number;
  snapshotsSent: number;
  snapshotsFailed: number;
  snapshotsReceived: number;
  /** Incoming snapshot streams refused: malformed, too large, or too many at once. */
  snapshotsRejected: number;
}

/** The limits of one transport, every one resolved. */
export type TransportSettings = Required<Omit<GrpcTransportOptions, 'id' | 'listen' | 'logger' | 'services' | 'security'>>;

const KIB = 1024;
const MIB = 1024 * KIB;
const DEFAULTS: TransportSettings = {
  chunkBytes: MIB,
  batchBytesMax: 4 * MIB,
  queueMessagesMax: 4096,
  messageBytesMax: 16 * MIB,
  snapshotBytesMax: 1024 * MIB,
  snapshotTimeoutMs: 10 * 60 * 1000,
  connectTimeoutMs: 3000,
  reconnectDelayMsMin: 50,
  reconnectDelayMsMax: 2000,
  appendHoldMs: 5,
};

/** Room left in a gRPC message beside a snapshot chunk's data, for the header and framing. */
const CHUNK_OVERHEAD_BYTES_MAX = 64 * KIB;

/** The options' limits with defaults filled in; asserts they are consistent. */
export function resolveSettings(options: GrpcTransportOptions): TransportSettings {
  const s: TransportSettings = {
    chunkBytes: options.chunkBytes ?? DEFAULTS.chunkBytes,
    batchBytesMax: options.batchBytesMax ?? DEFAULTS.batchBytesMax,
    queueMessagesMax: options.queueMessagesMax ?? DEFAULTS.queueMessagesMax,
    messageBytesMax: options.messageBytesMax ?? DEFAULTS.messageBytesMax,
    snapshotBytesMax: options.snapshotBytesMax ?? DEFAULTS.snapshotBytesMax,
    snapshotTimeoutMs: options.snapshotTimeoutMs ?? DEFAULTS.snapshotTimeoutMs,
    connectTimeoutMs: options.connectTimeoutMs ?? DEFAULTS.connectTimeoutMs,
    reconnectDelayMsMin: options.reconnectDelayMsMin ?? DEFAULTS.reconnectDelayMsMin,
    reconnectDelayMsMax: options.reconnectDelayMsMax ?? DEFAULTS.reconnectDelayMsMax,
    appendHoldMs: options.appendHoldMs ?? DEFAULTS.appendHoldMs,
  };
  assert(s.chunkBytes > 0 && s.chunkBytes + CHUNK_OVERHEAD_BYTES_MAX <= s.messageBytesMax, 'chunkBytes must leave room for framing within messageBytesMax');
  assert(s.batchBytesMax > 0 && s.batchBytesMax <= s.messageBytesMax, 'batchBytesMax must be positive and at most messageBytesMax');
  assert(s.queueMessagesMax > 0, 'queueMessagesMax must be positive');
  assert(s.reconnectDelayMsMin > 0 && s.reconnectDelayMsMin <= s.reconnectDelayMsMax, 'reconnect delays must satisfy 0 < min <= max');
  assert(Number.isSafeInteger(s.appendHoldMs) && s.appendHoldMs >= 0, 'appendHoldMs must be a whole number of milliseconds, 0 or more');
  return s;
}
