/**
 * gRPC plumbing of the Raft transport: the `hivemind.raft.RaftTransport`
 * service of proto/raft.proto (its messages encoded by proto-codec.ts), its
 * typed client, and the channel options every channel and the server share.
 */
import * as grpc from '@grpc/grpc-js';
import type { BatchWire, SnapshotChunkWire } from './wire-codec.js';
import type { TransportSettings } from './options.js';
import { protoCodec, protoServiceDefinition, type ProtoField, type ProtoMethod } from './proto-codec.js';

/** The empty acknowledgement both calls answer with. */
export type AckWire = Record<string, never>;

/** A client of one peer's RaftTransport service. */
export interface RaftClient extends grpc.Client {
  Stream(callback: grpc.requestCallback<AckWire>): grpc.ClientWritableStream<BatchWire>;
  InstallSnapshot(
    options: grpc.CallOptions,
    callback: grpc.requestCallback<AckWire>,
  ): grpc.ClientWritableStream<SnapshotChunkWire>;
}

/** The generated client class, which also carries the service definition for the server. */
export interface RaftClientConstructor {
  new (address: string, credentials: grpc.ChannelCredentials, options: grpc.ChannelOptions): RaftClient;
  service: grpc.ServiceDefinition;
}

/** How often an idle connection to a peer is pinged, and how long the answer may take before the connection counts as dead. */
export const KEEPALIVE_TIME_MS = 10_000;
export const KEEPALIVE_TIMEOUT_MS = 5_000;

/** The messages of proto/raft.proto (src/agent/test/proto-codec.test.ts checks them against it). */
export const RAFT_MESSAGES = {
  Batch: [
    { name: 'from', number: 1, kind: 'string' },
    { name: 'payload', number: 2, kind: 'bytes' },
  ],
  Ack: [],
  SnapshotChunk: [
    { name: 'header', number: 1, kind: 'bytes' },
    { name: 'data', number: 2, kind: 'bytes' },
    { name: 'done', number: 3, kind: 'bool' },
  ],
  SnapshotAck: [],
} as const satisfies Record<string, readonly ProtoField[]>;

/** The methods of `hivemind.raft.RaftTransport`, as in proto/raft.proto. */
export const RAFT_METHODS: readonly ProtoMethod[] = [
  { name: 'Stream', requestStream: true, responseStream: false, request: protoCodec<BatchWire>(RAFT_MESSAGES.Batch), response: protoCodec<AckWire>(RAFT_MESSAGES.Ack) },
  { name: 'InstallSnapshot', requestStream: true, responseStream: false, request: protoCodec<SnapshotChunkWire>(RAFT_MESSAGES.SnapshotChunk), response: protoCodec<AckWire>(RAFT_MESSAGES.SnapshotAck) },
];

let loadedService: RaftClientConstructor | null = null;

/** The service's client class (and definition), made once per process. */
export function raftService(): RaftClientConstructor {
  loadedService ??= grpc.makeGenericClientConstructor(protoServiceDefinition('hivemind.raft.RaftTransport', RAFT_METHODS), 'RaftTransport') as unknown as RaftClientConstructor;
  return loadedService;
}

/** Options for the server and every channel: message limits, keepalive, reconnect backoff. */
export function channelOptions(settings: TransportSettings): grpc.ChannelOptions {
  return {
    'grpc.max_send_message_length': settings.messageBytesMax,
    'grpc.max_receive_message_length': settings.messageBytesMax,
    'grpc.keepalive_time_ms': KEEPALIVE_TIME_MS,
    'grpc.keepalive_timeout_ms': KEEPALIVE_TIMEOUT_MS,
    'grpc.initial_reconnect_backoff_ms': settings.reconnectDelayMsMin,
    'grpc.max_reconnect_backoff_ms': settings.reconnectDelayMsMax,
    // Own connections per transport, so that stop() really closes them.
    'grpc.use_local_subchannel_pool': 1,
    // Channelz keeps per-call and per-message counters that nothing here reads (channels only; see server.ts).
    'grpc.enable_channelz': 0,
  };
}
