/**
 * The `hivemind.cluster.Cluster` gRPC service (proto/cluster.proto): its
 * definition for the server on the peer port, the client a joining node
 * uses, and the conversion between wire messages and `JoinClaim`s.
 *
 * The server side only adapts: what a Join does is the `JoinHandler` the
 * agent provides. Every failure reaches the caller as a gRPC status with a
 * message meant for an operator; nothing a caller sends can crash the server.
 */
import * as grpc from '@grpc/grpc-js';
import { protoCodec, protoServiceDefinition, type ProtoField, type ProtoMethod } from '../../consensus/transport/proto-codec.js';
import type { JoinClaim } from './join-proof.js';
import type { SubmitRequestWire } from './submit.js';
import { TRACEPARENT_KEY } from '../node/tracing.js';

/** Largest Join request or answer. */
const MESSAGE_BYTES_MAX = 1024 * 1024;

/** A JoinRequest as decoded (proto-codec.ts: uint64 as numbers, absent fields at their defaults). */
export interface JoinRequestWire {
  node_id: string;
  api_address: string;
  peer_address: string;
  gossip_address: string;
  labels: Record<string, string>;
  cpu_millis: number;
  memory_bytes: number;
  timestamp_ms: number;
  nonce: Uint8Array;
  proof: Uint8Array;
  rejoin: boolean;
  forwarded: boolean;
  certificate_request: string;
}

/** A JoinResponse as decoded (proto-codec.ts). */
export interface JoinResponseWire {
  cluster_key_sealed: Uint8Array;
  cluster_key_nonce: Uint8Array;
  peers: Record<string, string>;
  leader_id: string;
  already_member: boolean;
  certificate: string;
  ca_certificates: string[];
  /** See proto/cluster.proto; 0 from a member that does not send it. */
  joined_index: number;
}

/** A refusal: the gRPC status and the message the joiner shows. */
export interface JoinRefusal {
  status: grpc.status;
  message: string;
  /** What the joiner acts on without reading the message: `left`, the node has left the cluster (it must `hivemind join` again). */
  reason?: JoinRefusalReason;
}

/** Refusals a joiner tells apart; sent in the trailer `hivemind-refusal`. */
export type JoinRefusalReason = 'left';

const REFUSAL_TRAILER = 'hivemind-refusal';

function refusalStatus(refusal: JoinRefusal): Partial<grpc.StatusObject> {
  if (refusal.reason === undefined) return { code: refusal.status, details: refusal.message };
  const metadata = new grpc.Metadata();
  metadata.set(REFUSAL_TRAILER, refusal.reason);
  return { code: refusal.status, details: refusal.message, metadata };
}

/** What a `JoinHandler` answers: the response, or a refusal. */
export type JoinOutcome = { ok: true; response: JoinResponseWire } | { ok: false; refusal: JoinRefusal };

/** What the agent does with a Join. Must not throw; an exception becomes INTERNAL. */
export type JoinHandler = (request: JoinRequestWire) => Promise<JoinOutcome>;

/**
 * What the agent does with a Submit from `caller` (the node the call's
 * verified certificate names): the encoded result, or a refusal. Must not
 * throw. `traceparent`: the member's trace context (the call's metadata
 * TRACEPARENT_KEY), unchecked.
 */
export type SubmitHandler = (request: SubmitRequestWire, caller: string, traceparent: string | undefined) => Promise<{ ok: true; result: Uint8Array } | { ok: false; refusal: JoinRefusal }>;

/** Who made a server call, from its verified certificate; or why it is refused (see NodeCredentials.authenticate). */
export type CallAuthenticator = (call: { getAuthContext(): { transportSecurityType?: string; sslPeerCertificate?: object } | null }) => { ok: true; nodeId: string } | { ok: false; reason: string };

interface ClusterClient extends grpc.Client {
  Join(request: JoinRequestWire, options: grpc.CallOptions, callback: grpc.requestCallback<JoinResponseWire>): grpc.ClientUnaryCall;
  Submit(request: SubmitRequestWire, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<{ result: Uint8Array }>): grpc.ClientUnaryCall;
}

interface ClusterClientConstructor {
  new (address: string, credentials: grpc.ChannelCredentials, options: grpc.ChannelOptions): ClusterClient;
  service: grpc.ServiceDefinition;
}

/** The messages of proto/cluster.proto (src/agent/test/proto-codec.test.ts checks them against it). */
export const CLUSTER_MESSAGES = {
  SubmitRequest: [
    { name: 'node_id', number: 1, kind: 'string' },
    { name: 'envelope', number: 2, kind: 'bytes' },
    { name: 'timestamp_ms', number: 3, kind: 'uint64' },
    { name: 'nonce', number: 4, kind: 'bytes' },
    { name: 'mac', number: 5, kind: 'bytes' },
  ],
  SubmitResponse: [{ name: 'result', number: 1, kind: 'bytes' }],
  JoinRequest: [
    { name: 'node_id', number: 1, kind: 'string' },
    { name: 'api_address', number: 2, kind: 'string' },
    { name: 'peer_address', number: 3, kind: 'string' },
    { name: 'gossip_address', number: 4, kind: 'string' },
    { name: 'labels', number: 5, kind: 'string-map' },
    { name: 'cpu_millis', number: 6, kind: 'uint64' },
    { name: 'memory_bytes', number: 7, kind: 'uint64' },
    { name: 'timestamp_ms', number: 8, kind: 'uint64' },
    { name: 'nonce', number: 9, kind: 'bytes' },
    { name: 'proof', number: 10, kind: 'bytes' },
    { name: 'rejoin', number: 11, kind: 'bool' },
    { name: 'forwarded', number: 12, kind: 'bool' },
    { name: 'certificate_request', number: 13, kind: 'string' },
  ],
  JoinResponse: [
    { name: 'cluster_key_sealed', number: 1, kind: 'bytes' },
    { name: 'cluster_key_nonce', number: 2, kind: 'bytes' },
    { name: 'peers', number: 3, kind: 'string-map' },
    { name: 'leader_id', number: 4, kind: 'string' },
    { name: 'already_member', number: 5, kind: 'bool' },
    { name: 'certificate', number: 6, kind: 'string' },
    { name: 'ca_certificates', number: 7, kind: 'strings' },
    { name: 'joined_index', number: 8, kind: 'uint64' },
  ],
} as const satisfies Record<string, readonly ProtoField[]>;

/** The methods of `hivemind.cluster.Cluster`, as in proto/cluster.proto. */
export const CLUSTER_METHODS: readonly ProtoMethod[] = [
  { name: 'Join', requestStream: false, responseStream: false, request: protoCodec<JoinRequestWire>(CLUSTER_MESSAGES.JoinRequest), response: protoCodec<JoinResponseWire>(CLUSTER_MESSAGES.JoinResponse) },
  { name: 'Submit', requestStream: false, responseStream: false, request: protoCodec<SubmitRequestWire>(CLUSTER_MESSAGES.SubmitRequest), response: protoCodec<{ result: Uint8Array }>(CLUSTER_MESSAGES.SubmitResponse) },
];

let loaded: ClusterClientConstructor | undefined;

function clusterService(): ClusterClientConstructor {
  loaded ??= grpc.makeGenericClientConstructor(protoServiceDefinition('hivemind.cluster.Cluster', CLUSTER_METHODS), 'Cluster') as unknown as ClusterClientConstructor;
  return loaded;
}

/**
 * The service to add to the peer port's gRPC server. Join is open to a
 * caller without a certificate (the token authenticates it); Submit needs a
 * verified node certificate (`authenticate`), or is refused UNAUTHENTICATED
 * and reported to `onRejected`.
 */
export function clusterServiceForServer(options: {
  join: JoinHandler;
  submit: SubmitHandler;
  authenticate: CallAuthenticator;
  onRejected: (reason: string) => void;
  log: (line: string) => void;
}): {
  definition: grpc.ServiceDefinition;
  implementation: grpc.UntypedServiceImplementation;
} {
  const { join: handler, submit, authenticate, onRejected, log } = options;
  const implementation: grpc.UntypedServiceImplementation = {
    Join: (call: grpc.ServerUnaryCall<JoinRequestWire, JoinResponseWire>, callback: grpc.sendUnaryData<JoinResponseWire>) => {
      handler(call.request).then(
        (outcome) => {
          if (outcome.ok) callback(null, outcome.response);
          else callback(refusalStatus(outcome.refusal));
        },
        (error: unknown) => {
          log(`join from ${call.getPeer()} failed unexpectedly: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
          callback({ code: grpc.status.INTERNAL, details: 'the join failed on the member (a bug; its log says more); retry' });
        },
      );
    },
    Submit: (call: grpc.ServerUnaryCall<SubmitRequestWire, { result: Uint8Array }>, callback: grpc.sendUnaryData<{ result: Uint8Array }>) => {
      const caller = authenticate(call);
      if (!caller.ok) {
        onRejected(caller.reason);
        callback({ code: grpc.status.UNAUTHENTICATED, details: `refused: ${caller.reason} (a member of this cluster presents a certificate of its CA)` });
        return;
      }
      const traceparent = call.metadata.get(TRACEPARENT_KEY)[0];
      submit(call.request, caller.nodeId, typeof traceparent === 'string' ? traceparent : undefined).then(
        (outcome) => {
          if (outcome.ok) callback(null, { result: outcome.result });
          else callback({ code: outcome.refusal.status, details: outcome.refusal.message });
        },
        (error: unknown) => {
          log(`submit from ${call.getPeer()} failed unexpectedly: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
          callback({ code: grpc.status.INTERNAL, details: 'the submit failed on the leader (a bug; its log says more); retry' });
        },
      );
    },
  };
  return { definition: clusterService().service, implementation };
}

/** The outcome of a Join call; `unreachable` covers every transport failure. */
export type JoinCallResult = { ok: true; response: JoinResponseWire } | { ok: false; status: grpc.status; message: string; reason?: JoinRefusalReason };

/** How ClusterClients reach members. */
export interface ClusterClientsOptions {
  /** For Submit: mutual TLS with this node's certificate (undefined: plaintext, tests only). */
  memberCredentials?: () => grpc.ChannelCredentials;
  /** For Join: TLS without a client certificate (the token authenticates the answer). */
  joinCredentials?: () => grpc.ChannelCredentials;
  /** Options for every channel (a TLS server name). */
  channelOptions?: grpc.ChannelOptions;
}

/** Clients of the Cluster service, one channel per address and kind, closed together. */
export class ClusterClients {
  private readonly clients = new Map<string, ClusterClient>();

  constructor(private readonly options: ClusterClientsOptions = {}) {}

  /** Sends one Join to `address` (`host:port`). Never rejects. */
  join(address: string, request: JoinRequestWire, timeoutMs: number): Promise<JoinCallResult> {
    const client = this.client(address, 'join');
    return new Promise((resolve) => {
      client.Join(request, { deadline: Date.now() + timeoutMs }, (error, response) => {
        if (error) {
          const reason = error.metadata?.get(REFUSAL_TRAILER)[0];
          resolve({ ok: false, status: error.code ?? grpc.status.UNKNOWN, message: error.details || error.message, ...(reason === 'left' ? { reason } : {}) });
        }
        else if (response === undefined) resolve({ ok: false, status: grpc.status.INTERNAL, message: 'empty answer' });
        else resolve({ ok: true, response });
      });
    });
  }

  /** Sends one Submit to `address`, with `traceparent` (tracing.ts) in its metadata when given. Never rejects. */
  submit(address: string, request: SubmitRequestWire, timeoutMs: number, traceparent?: string): Promise<{ ok: true; result: Uint8Array } | { ok: false; status: grpc.status; message: string }> {
    const client = this.client(address, 'member');
    const metadata = new grpc.Metadata();
    if (traceparent !== undefined) metadata.set(TRACEPARENT_KEY, traceparent);
    return new Promise((resolve) => {
      client.Submit(request, metadata, { deadline: Date.now() + timeoutMs }, (error, response) => {
        if (error?.code === grpc.status.UNAUTHENTICATED) this.forget(`member ${address}`, client);
        if (error) resolve({ ok: false, status: error.code ?? grpc.status.UNKNOWN, message: error.details || error.message });
        else if (response === undefined) resolve({ ok: false, status: grpc.status.INTERNAL, message: 'empty answer' });
        else resolve({ ok: true, result: new Uint8Array(response.result) });
      });
    });
  }

  close(): void {
    for (const client of this.clients.values()) client.close();
    this.clients.clear();
  }

  /**
   * Drops a client whose connection the member did not verify (it did not
   * trust our certificate's CA yet, after a renewal): a connection is
   * verified once, at its handshake, so the next call makes a new one.
   */
  private forget(key: string, client: ClusterClient): void {
    if (this.clients.get(key) !== client) return;
    this.clients.delete(key);
    client.close();
  }

  private client(address: string, kind: 'join' | 'member'): ClusterClient {
    const key = `${kind} ${address}`;
    let client = this.clients.get(key);
    if (client === undefined) {
      const Constructor = clusterService();
      const credentials = (kind === 'join' ? this.options.joinCredentials : this.options.memberCredentials)?.() ?? grpc.credentials.createInsecure();
      client = new Constructor(address, credentials, {
        ...this.options.channelOptions,
        'grpc.max_send_message_length': MESSAGE_BYTES_MAX,
        'grpc.max_receive_message_length': MESSAGE_BYTES_MAX,
        'grpc.use_local_subchannel_pool': 1,
        'grpc.initial_reconnect_backoff_ms': 100,
        'grpc.max_reconnect_backoff_ms': 1000,
      });
      this.clients.set(key, client);
    }
    return client;
  }
}

/** The wire form of a claim with its proof. */
export function claimToWire(claim: JoinClaim, proof: Uint8Array): JoinRequestWire {
  return {
    node_id: claim.nodeId,
    api_address: claim.addresses.api,
    peer_address: claim.addresses.peer,
    gossip_address: claim.addresses.gossip,
    labels: claim.labels,
    cpu_millis: claim.resources.cpuMillis ?? 0,
    memory_bytes: claim.resources.memoryBytes ?? 0,
    timestamp_ms: claim.timestampMs,
    nonce: claim.nonce,
    proof,
    rejoin: claim.rejoin,
    forwarded: false,
    certificate_request: claim.certificateRequest,
  };
}

/** The claim a wire request makes (fields unchecked: validate with `joinClaimProblem`). */
export function claimFromWire(request: JoinRequestWire): JoinClaim {
  const resources: JoinClaim['resources'] = {};
  if (request.cpu_millis > 0) resources.cpuMillis = request.cpu_millis;
  if (request.memory_bytes > 0) resources.memoryBytes = request.memory_bytes;
  return {
    nodeId: request.node_id,
    addresses: { api: request.api_address, peer: request.peer_address, gossip: request.gossip_address },
    labels: { ...request.labels },
    resources,
    timestampMs: request.timestamp_ms,
    nonce: new Uint8Array(request.nonce),
    rejoin: request.rejoin,
    certificateRequest: request.certificate_request,
  };
}

/** grpc-js itself, for its status codes. */
export { grpc };
