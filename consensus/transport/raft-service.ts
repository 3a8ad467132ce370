/**
 * gRPC plumbing of the Raft transport: the `hivemind.raft.RaftTransport`
 * service loaded from proto/raft.proto, its typed client, and the channel
 * options every channel and the server share.
 */
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import type { BatchWire, SnapshotChunkWire } from './wire-codec.js';
import type { TransportSettings } from './options.js';

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

const KEEPALIVE_TIME_MS = 10_000;
const KEEPALIVE_TIMEOUT_MS = 5_000;
/** From dist/consensus/transport/ to the repository's proto/. */
const PROTO_URL = new URL('../../../proto/raft.proto', import.meta.url);

let loadedService: RaftClientConstructor | null = null;

/** Loads proto/raft.proto once per process. */
export function raftService(): RaftClientConstructor {
  if (loadedService !== null) return loadedService;
  const definition = protoLoader.loadSync(fileURLToPath(PROTO_URL), { keepCase: true, defaults: true });
  const root = grpc.loadPackageDefinition(definition) as unknown as {
    hivemind: { raft: { RaftTransport: RaftClientConstructor } };
  };
  loadedService = root.hivemind.raft.RaftTransport;
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
