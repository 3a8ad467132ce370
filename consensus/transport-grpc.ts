/**
 * The peer transport over gRPC (service `hivemind.raft.RaftTransport`, proto/raft.proto).
 * The public entry: the `GrpcTransport` class, which wires four parts, and
 * re-exports of what importers use.
 *
 *   transport/wire-codec.ts         the pure wire codec: tuples to and from bytes, every
 *                                   field validated (the wire format is described there)
 *   transport/peer-stream.ts        outgoing: per-peer queues, batching, held Appends, reconnects
 *   transport/batch-stream.ts       the peer Stream on node:http2 at both ends: framing, the connection
 *   transport/grpc-frames.ts        gRPC's message framing and status trailers on a bare HTTP/2 stream
 *   transport/snapshot-transfer.ts  outgoing snapshots, in chunks, one at a time per peer
 *   transport/server.ts             incoming: the handlers, mutual-TLS authentication of callers
 *
 * with transport/options.ts (options, security hook, counters), transport/context.ts
 * (what the parts share) and transport/raft-service.ts (proto loading, channel options).
 */
import { assert } from './core/assert.js';
import type { Message, NodeId } from './core/types.js';
import type { Transport, TransportHandlers } from './transport.js';
import { RateLimitedLog, zeroStats, type TransportContext } from './transport/context.js';
import { resolveSettings, type GrpcTransportOptions, type GrpcTransportStats } from './transport/options.js';
import { PeerStreams } from './transport/peer-stream.js';
import { RaftServer } from './transport/server.js';
import { isNodeId } from './transport/wire-codec.js';

export type {
  GrpcExtraService, GrpcTransportOptions, GrpcTransportSecurity, GrpcTransportStats, PeerCall, RawStreamHandler,
} from './transport/options.js';
export { TransportListenError } from './transport/server.js';
export { peerCallOfStream, routeRawStreams } from './transport/raw-streams.js';
export { decodeBatch, encodeMessages, messageFromTuple } from './transport/wire-codec.js';
export type { BatchWire, Decoded, SnapshotChunkWire } from './transport/wire-codec.js';

/**
 * A `Transport` over gRPC. Lifecycle: `setPeers` any time, `start` once,
 * then `send`; `stop` once ends everything and leaves no timer or socket.
 *
 * Handlers are never called from inside `send`: always from a later event,
 * so the driver may call `send` while it processes a Ready. No handler is
 * called after `stop`. An exception thrown by a handler is not caught.
 */
export class GrpcTransport implements Transport {
  private readonly listen: string;
  private readonly context: TransportContext;
  private readonly outgoing: PeerStreams;
  private readonly server: RaftServer;
  private boundAddress: string | null = null;

  constructor(options: GrpcTransportOptions) {
    assert(isNodeId(options.id), `transport id ${JSON.stringify(options.id)} is not a node id`);
    this.listen = options.listen;
    this.context = {
      id: options.id,
      settings: resolveSettings(options),
      counters: zeroStats(),
      log: new RateLimitedLog(options.logger),
      logger: options.logger,
      security: options.security,
      handlers: null,
      stopped: false,
    };
    this.outgoing = new PeerStreams(this.context);
    this.server = new RaftServer(this.context, [...(options.services ?? [])]);
  }

  /** `host:port` actually bound (the real port when `listen` named port 0). Only after `start`. */
  get address(): string {
    assert(this.boundAddress !== null, 'transport address read before start');
    return this.boundAddress;
  }

  /** A copy of the counters. */
  get stats(): GrpcTransportStats {
    return { ...this.context.counters };
  }

  /** Binds the server. Rejects with TransportListenError when the address cannot be bound. */
  async start(handlers: TransportHandlers): Promise<void> {
    assert(this.context.handlers === null && !this.context.stopped, 'transport started twice or after stop');
    this.context.handlers = handlers;
    const port = await this.server.start(this.listen);
    this.boundAddress = `${this.listen.slice(0, this.listen.lastIndexOf(':'))}:${port}`;
    this.context.logger?.(`raft transport ${this.context.id} listening on ${this.boundAddress}`);
  }

  /** Replaces the peer set. A peer whose address changed gets fresh connections. */
  setPeers(peers: Record<NodeId, string>): void {
    if (this.context.stopped) return;
    this.outgoing.setPeers(peers);
  }

  /** Queues messages for their peers; never blocks or throws for network reasons. */
  send(messages: Message[]): void {
    assert(this.context.handlers !== null, 'send before start');
    if (this.context.stopped) {
      this.context.counters.messagesDropped += messages.length;
      return;
    }
    this.outgoing.send(messages);
  }

  /** Closes every stream and the server; afterwards no timer or socket of this transport remains. */
  async stop(): Promise<void> {
    if (this.context.stopped) return;
    this.context.stopped = true;
    this.outgoing.stop();
    this.server.stop();
  }
}
