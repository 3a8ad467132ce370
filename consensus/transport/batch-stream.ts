/**
 * The peer `Stream` (Raft's batches: Appends, heartbeats, votes and their
 * answers) over Node's own `http2`, at both ends, instead of grpc-js: the
 * sender writes each batch, gRPC's framing and the `Batch` message's
 * protobuf included, as one buffer in the turn it is handed over; the
 * receiver (server.ts) cuts the frames off the HTTP/2 stream
 * (grpc-frames.ts) and decodes them in the turn they arrive. On the wire it
 * is the same gRPC call as before, so a build that still speaks it through
 * grpc-js at either end interoperates with this one.
 *
 * Why: grpc-js's client and server paths per message (its call chain,
 * interceptors, a fresh buffer per message sent and per message received,
 * its stream decoder) were the largest part of a follower's main thread
 * per batch, and a leader's write of a batch to the socket took 160-170 us
 * through them at one client (docs/internals/raft.md).
 *
 * Trust is unchanged: the server side runs on grpc-js's own listener
 * (raw-streams.ts routes this one path to server.ts, which checks the
 * caller's certificate and every batch's sender as before); the client side
 * presents this node's certificate and accepts only the named peer's
 * (`GrpcTransportSecurity.tlsConnectOptions`).
 */
import * as http2 from 'node:http2';
import type { ConnectionOptions } from 'node:tls';
import { assert } from '../core/assert.js';
import type { NodeId } from '../core/types.js';
import { GRPC_CONTENT_TYPE, GRPC_PREFIX_BYTES } from './grpc-frames.js';
import { KEEPALIVE_TIME_MS, KEEPALIVE_TIMEOUT_MS, RAFT_MESSAGES } from './raft-service.js';
import { protoCodec, varintBytes } from './proto-codec.js';
import type { BatchWire } from './wire-codec.js';

/** The method's HTTP/2 path (service `hivemind.raft.RaftTransport`, method `Stream`). */
export const BATCH_STREAM_PATH = '/hivemind.raft.RaftTransport/Stream';

/** The `Batch` message's codec (proto/raft.proto), for the receiving end. */
export const BATCH_CODEC = protoCodec<BatchWire>(RAFT_MESSAGES.Batch);

/** The answer to a stream the sender ended: one empty `Ack` message, framed. */
export const EMPTY_ACK_FRAME: Buffer = Buffer.alloc(GRPC_PREFIX_BYTES);

/** protobuf's field keys of `Batch`: field number << 3 | wire type 2 (length-delimited). */
const FROM_KEY = (1 << 3) | 2;
const PAYLOAD_KEY = (2 << 3) | 2;

function writeVarint(target: Buffer, offset: number, value: number): number {
  while (value >= 0x80) {
    target[offset++] = (value % 0x80) | 0x80;
    value = Math.floor(value / 0x80);
  }
  target[offset++] = value;
  return offset;
}

/**
 * Frames this node's batches: each `Batch { from, payload }` as protobuf
 * writes it (field 1, then field 2), behind gRPC's prefix, in one buffer
 * made for it (HTTP/2 holds it until sent). `from` is encoded once.
 */
export class BatchFramer {
  private readonly fromField: Buffer;

  constructor(from: NodeId) {
    const fromBytes = Buffer.from(from, 'utf8');
    this.fromField = Buffer.allocUnsafe(1 + varintBytes(fromBytes.length) + fromBytes.length);
    const at = writeVarint(this.fromField, 1, fromBytes.length);
    this.fromField[0] = FROM_KEY;
    fromBytes.copy(this.fromField, at);
  }

  /** One framed Batch carrying `payload` (encodeMessages' bytes). */
  frame(payload: Uint8Array): Buffer {
    const messageBytes = this.fromField.length + 1 + varintBytes(payload.length) + payload.length;
    const frame = Buffer.allocUnsafe(GRPC_PREFIX_BYTES + messageBytes);
    frame[0] = 0;
    frame.writeUInt32BE(messageBytes, 1);
    this.fromField.copy(frame, GRPC_PREFIX_BYTES);
    let at = GRPC_PREFIX_BYTES + this.fromField.length;
    frame[at++] = PAYLOAD_KEY;
    at = writeVarint(frame, at, payload.length);
    frame.set(payload, at);
    assert(at + payload.length === frame.length, 'a framed batch fills its buffer exactly');
    return frame;
  }
}

/** The request headers of a batch stream. */
const STREAM_HEADERS: http2.OutgoingHttpHeaders = {
  ':method': 'POST',
  ':path': BATCH_STREAM_PATH,
  'content-type': GRPC_CONTENT_TYPE,
  te: 'trailers',
};

/**
 * The HTTP/2 connection to one peer that its batch streams go over: made on
 * the first stream and again after it closes, goes away or is dropped. A
 * connection with a stream open is pinged every KEEPALIVE_TIME_MS and
 * destroyed when a ping is not answered within KEEPALIVE_TIMEOUT_MS (a peer
 * gone without closing its socket), which ends its stream, as grpc-js's
 * keepalive did.
 */
export class PeerConnection {
  private session: http2.ClientHttp2Session | null = null;
  private keepaliveTimer: NodeJS.Timeout | null = null;

  /** `tls` gives the options of each new connection (it may throw); undefined: plaintext. */
  constructor(
    private readonly address: string,
    private readonly tls: (() => ConnectionOptions) | undefined,
  ) {}

  /** Opens a batch stream, on a new connection when there is none usable. Throws what `tls` or connecting throws. */
  openStream(): http2.ClientHttp2Stream {
    return this.sessionNow().request(STREAM_HEADERS);
  }

  /**
   * Drops the connection if it is still being made: a stream that was not
   * accepted in time may be waiting on a connect whose packets are lost (a
   * partition). The kernel would retry that connect at growing intervals
   * (1, 3, 7, 15, 31 s...) and the next stream would wait for it even after
   * the path heals; a new connection is dialled at once. A connection that
   * was made stays: its peer is only slow.
   */
  dropIfConnecting(): void {
    if (this.session?.connecting === true) this.drop();
  }

  /** Forgets the connection and closes it: the next stream gets a new one (with a new handshake). */
  drop(): void {
    const session = this.session;
    this.forget(session);
    session?.destroy();
  }

  private sessionNow(): http2.ClientHttp2Session {
    if (this.session !== null && !this.session.closed && !this.session.destroyed) return this.session;
    const tls = this.tls?.();
    const session = http2.connect(`${tls === undefined ? 'http' : 'https'}://${this.address}`, tls ?? {});
    // A failure of the connection reaches its stream as the stream's error and close.
    session.on('error', () => undefined);
    session.on('close', () => this.forget(session));
    session.on('goaway', () => this.forget(session));
    this.session = session;
    this.keepaliveTimer ??= setInterval(() => this.ping(), KEEPALIVE_TIME_MS).unref();
    return session;
  }

  private forget(session: http2.ClientHttp2Session | null): void {
    if (session === null || this.session !== session) return;
    this.session = null;
    if (this.keepaliveTimer !== null) clearInterval(this.keepaliveTimer);
    this.keepaliveTimer = null;
  }

  private ping(): void {
    const session = this.session;
    if (session === null || session.connecting || session.destroyed) return;
    const timeout = setTimeout(() => session.destroy(new Error(`no answer to a keepalive ping within ${KEEPALIVE_TIMEOUT_MS} ms`)), KEEPALIVE_TIMEOUT_MS).unref();
    const sent = session.ping((error) => {
      clearTimeout(timeout);
      if (error !== null) session.destroy(error);
    });
    if (!sent) clearTimeout(timeout);
  }
}
