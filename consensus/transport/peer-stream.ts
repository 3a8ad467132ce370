/**
 * Outgoing messages: one long-lived client stream (`Stream`) per peer, over
 * Node's http2 (batch-stream.ts), each batch written in the turn it is made.
 * `send` queues messages per peer; one flush per event-loop turn packs
 * everything queued since the last flush into as few `Batch`es as the byte
 * cap allows, except that a send after an idle spell (IDLE_FLUSH_GAP_MS since
 * the last flush) is written at once, since nothing would join it. Snapshot
 * messages go to the peer's `SnapshotSender` instead (snapshot-transfer.ts).
 * A failed stream drops what is queued for that peer, reports the peer
 * unreachable (once per failure episode) and reconnects with exponential
 * backoff; while it waits, messages to the peer are dropped. Raft tolerates loss.
 *
 * An Append without entries carries nothing but the leader's commit index
 * (the leader sends one to every follower when the commit index moves). It
 * waits up to `appendHoldMs` for a later Append to the same peer, which
 * carries a commit index at least as new and makes it redundant: under load
 * the commit rides on the next entries, and one Put at a time costs four
 * peer messages fewer (two sent, two acknowledged). Dropping the redundant
 * one is safe because Raft tolerates the loss of any message; the hold only
 * bounds how late a follower of an idle leader learns the commit.
 */
import * as http2 from 'node:http2';
import * as grpc from '@grpc/grpc-js';
import { assert } from '../core/assert.js';
import { MessageType } from '../core/types.js';
import type { Message, NodeId } from '../core/types.js';
import type { TransportContext } from './context.js';
import { channelOptions, raftService, type RaftClient } from './raft-service.js';
import { SnapshotSender } from './snapshot-transfer.js';
import { BatchFramer, PeerConnection } from './batch-stream.js';
import { statusOfTrailers, type FrameRefusal } from './grpc-frames.js';
import { encodeMessages, isNodeId, takeBatch } from './wire-codec.js';

/**
 * A send at least this long after the previous flush is written at once: the
 * line is idle and nothing would join it by the end of the turn. Sends that
 * come closer together wait for the end of the turn and share a batch.
 */
const IDLE_FLUSH_GAP_MS = 1;

/** One outgoing stream; identity tells a live stream's callbacks from a replaced one's. */
interface StreamAttempt {
  call: http2.ClientHttp2Stream | null;
  connectTimer: NodeJS.Timeout | null;
  /** The peer did not accept the stream within connectTimeoutMs, so we cancelled it. */
  timedOut: boolean;
}

/** How a peer asks for its queue to be flushed (the flush itself covers every peer). */
interface Flusher {
  /** Now when the line was idle, else at the end of the turn. */
  flushSoon(): void;
  /** At the end of the turn. */
  scheduleFlush(): void;
}

/**
 * Everything about one peer's outgoing side.
 * Invariant: `reconnectTimer !== null` (down) implies an empty queue.
 */
class PeerLink {
  /**
   * Made on the first stream or snapshot to this peer, not when the peer is
   * set: an agent names every node record's address, and most of those
   * nodes never hear from this one's Raft.
   */
  private client: RaftClient | null = null;
  /** The connection the batch stream goes over (not grpc-js's: snapshots keep `client`). */
  private readonly connection: PeerConnection;
  private queue: Message[] = [];
  private stream: StreamAttempt | null = null;
  /** The current stream's buffer is full; flushing waits for 'drain'. */
  private draining = false;
  /** Set while down: waiting to reconnect. Messages sent meanwhile are dropped. */
  private reconnectTimer: NodeJS.Timeout | null = null;
  private reconnectDelayMs: number;
  /** onUnreachable was called in the current failure episode. */
  private unreachableReported = false;
  private removed = false;
  /** An Append without entries waiting `appendHoldMs` for a later Append that supersedes it. */
  private heldAppend: Message | null = null;
  private holdTimer: NodeJS.Timeout | null = null;
  readonly snapshots: SnapshotSender;

  constructor(
    private readonly context: TransportContext,
    readonly id: NodeId,
    readonly address: string,
    private readonly flusher: Flusher,
    private readonly framer: BatchFramer,
  ) {
    const security = context.security;
    this.connection = new PeerConnection(address, security === undefined ? undefined : () => security.tlsConnectOptions(id));
    this.reconnectDelayMs = context.settings.reconnectDelayMsMin;
    this.snapshots = new SnapshotSender(context, id, () => this.clientOf());
  }

  /** Waiting to reconnect after a failure. */
  get down(): boolean {
    return this.reconnectTimer !== null;
  }

  get hasQueued(): boolean {
    return this.queue.length > 0;
  }

  /** Queues a message other than a Snapshot, or drops it (counted); true when something new awaits a flush. */
  send(message: Message): boolean {
    const { id, settings, counters, log } = this.context;
    if (this.reconnectTimer !== null) {
      counters.messagesDropped++;
      return false;
    }
    if (this.queue.length >= settings.queueMessagesMax) {
      counters.messagesDropped++;
      log.line(`queue-full:${this.id}`, `raft transport ${id}: queue to "${this.id}" full (${this.queue.length} messages), dropping`);
      return false;
    }
    if (message.type === MessageType.Append) return this.sendAppend(message);
    this.queue.push(message);
    return true;
  }

  /**
   * Queues an Append (answers true), or holds one without entries (see the
   * header); any Append supersedes a held one.
   */
  private sendAppend(message: Message): boolean {
    if (this.heldAppend !== null) {
      this.context.counters.appendsSuperseded++;
      this.heldAppend = null;
    }
    if (message.entries.length > 0 || this.context.settings.appendHoldMs === 0) {
      if (this.holdTimer !== null) clearTimeout(this.holdTimer);
      this.holdTimer = null;
      this.queue.push(message);
      return true;
    }
    this.heldAppend = message;
    this.holdTimer ??= setTimeout(() => this.releaseHeldAppend(), this.context.settings.appendHoldMs);
    return false;
  }

  private releaseHeldAppend(): void {
    this.holdTimer = null;
    const held = this.heldAppend;
    this.heldAppend = null;
    if (held === null || this.context.stopped || this.removed) return;
    // The peer went down meanwhile (or its queue filled): dropped, as it would have been at send.
    if (this.reconnectTimer !== null || this.queue.length >= this.context.settings.queueMessagesMax) {
      this.context.counters.messagesDropped++;
      return;
    }
    this.queue.push(held);
    this.flusher.flushSoon();
  }

  private clientOf(): RaftClient {
    assert(!this.removed, () => `a call to removed peer ${this.id}`);
    const security = this.context.security;
    const credentials = security?.channelCredentials(this.id) ?? grpc.credentials.createInsecure();
    this.client ??= new (raftService())(this.address, credentials, { ...channelOptions(this.context.settings), ...security?.channelOptions });
    return this.client;
  }

  /** Ends everything for this peer: timers, stream, queues (dropped, counted), snapshots, client. */
  remove(): void {
    const counters = this.context.counters;
    this.removed = true;
    if (this.reconnectTimer !== null) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
    if (this.holdTimer !== null) clearTimeout(this.holdTimer);
    this.holdTimer = null;
    if (this.heldAppend !== null) counters.messagesDropped++;
    this.heldAppend = null;
    this.closeStream();
    counters.messagesDropped += this.queue.length;
    this.queue = [];
    this.snapshots.close();
    this.connection.drop();
    this.client?.close();
    this.client = null;
  }

  /** Writes the queue as batches until it is empty or the stream pushes back. */
  flush(): void {
    const { id, settings, counters, log } = this.context;
    assert(this.reconnectTimer === null, `flushing to "${this.id}" while it is down`);
    const stream = this.stream ?? this.openStream();
    while (this.queue.length > 0 && !this.draining && this.stream === stream && stream.call !== null) {
      const batch = takeBatch(this.queue, settings.batchBytesMax);
      const payload = encodeMessages(batch);
      if (payload.byteLength > settings.messageBytesMax) {
        counters.messagesDropped += batch.length;
        log.line('batch-too-large', `raft transport ${id}: dropped ${batch.length} messages to "${this.id}": ${payload.byteLength} bytes exceed ${settings.messageBytesMax}`);
        continue;
      }
      counters.batchesSent++;
      counters.messagesSent += batch.length;
      if (!stream.call.write(this.framer.frame(payload))) this.waitForDrain(stream);
    }
  }

  private waitForDrain(stream: StreamAttempt): void {
    this.draining = true;
    stream.call?.once('drain', () => {
      if (this.stream !== stream) return;
      this.draining = false;
      if (this.queue.length > 0) this.flusher.scheduleFlush();
    });
  }

  private openStream(): StreamAttempt {
    const stream: StreamAttempt = { call: null, connectTimer: null, timedOut: false };
    this.stream = stream;
    this.draining = false;
    let call: http2.ClientHttp2Stream;
    try {
      call = this.connection.openStream();
    } catch (error) {
      // No connection could be begun (no certificate yet, say): a failed stream, reported from a later event than send's.
      const details = error instanceof Error ? error.message : String(error);
      setImmediate(() => this.handleStreamEnd(stream, { code: grpc.status.UNAVAILABLE, details }));
      return stream;
    }
    stream.call = call;
    let status: FrameRefusal | undefined;
    let failure: Error | undefined;
    // The server answers its headers as soon as it accepts the stream: that is our "connected". Headers that carry a
    // status are the whole answer (a refusal).
    call.on('response', (headers) => {
      status = statusOfTrailers(headers);
      if (status === undefined && headers[':status'] === 200) this.markConnected(stream);
    });
    call.on('trailers', (trailers) => (status = statusOfTrailers(trailers) ?? status));
    // The only message that comes back is the Ack at the end: read and dropped, so the stream's end comes.
    call.on('data', () => undefined);
    call.on('error', (error: Error) => (failure ??= error));
    call.on('close', () => this.handleStreamEnd(stream, statusOfClosed(call, status, failure)));
    stream.connectTimer = setTimeout(() => {
      stream.connectTimer = null;
      if (this.stream !== stream) return;
      stream.timedOut = true;
      call.close(http2.constants.NGHTTP2_CANCEL);
    }, this.context.settings.connectTimeoutMs);
    return stream;
  }

  /** Detaches and cancels the current stream; its callbacks then see it is no longer current. */
  private closeStream(): void {
    const stream = this.stream;
    if (stream === null) return;
    this.stream = null;
    this.draining = false;
    if (stream.connectTimer !== null) clearTimeout(stream.connectTimer);
    stream.connectTimer = null;
    if (stream.call !== null && !stream.call.destroyed) stream.call.close(http2.constants.NGHTTP2_CANCEL);
  }

  private markConnected(stream: StreamAttempt): void {
    if (this.stream !== stream) return;
    if (stream.connectTimer !== null) clearTimeout(stream.connectTimer);
    stream.connectTimer = null;
    if (this.unreachableReported) this.context.logger?.(`raft transport ${this.context.id}: peer "${this.id}" reachable again`);
    this.unreachableReported = false;
    this.reconnectDelayMs = this.context.settings.reconnectDelayMsMin;
  }

  private handleStreamEnd(stream: StreamAttempt, error: FrameRefusal | null): void {
    if (this.stream !== stream) return; // closed on purpose, or replaced
    const context = this.context;
    this.closeStream();
    if (context.stopped || this.removed) return;
    context.counters.messagesDropped += this.queue.length;
    this.queue = [];
    if (stream.timedOut) this.connection.dropIfConnecting();
    if (error?.code === grpc.status.UNAUTHENTICATED) {
      // The peer did not verify our certificate on this connection (it may not trust a renewed one's CA yet):
      // a connection is verified once, at its handshake, so only a new one can do better.
      this.connection.drop();
      this.client?.close();
      this.client = null;
    }
    const why = stream.timedOut
      ? `not accepted within ${context.settings.connectTimeoutMs} ms`
      : error === null ? 'the peer ended the stream' : `${grpc.status[error.code] ?? error.code}: ${error.details}`;
    // One line and one callback per failure episode; the retries within it are quiet.
    if (!this.unreachableReported) {
      this.unreachableReported = true;
      context.log.line(`stream:${this.id}`, `raft transport ${context.id}: stream to "${this.id}" at ${this.address} failed (${why}); retrying`);
      context.handlers?.onUnreachable(this.id);
    }
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    const delayMs = Math.round(this.reconnectDelayMs * (0.5 + Math.random() / 2));
    this.reconnectDelayMs = Math.min(this.reconnectDelayMs * 2, this.context.settings.reconnectDelayMsMax);
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      if (!this.context.stopped && !this.removed) this.openStream();
    }, delayMs);
  }
}

/** The outgoing side of a transport: its peers, and one flush per event-loop turn across them. */
export class PeerStreams implements Flusher {
  private readonly peers = new Map<NodeId, PeerLink>();
  private readonly framer: BatchFramer;
  private flushImmediate: NodeJS.Immediate | null = null;
  private lastFlushAtMs = Number.NEGATIVE_INFINITY;

  constructor(private readonly context: TransportContext) {
    this.framer = new BatchFramer(context.id);
  }

  /** Replaces the peer set. A peer whose address changed gets fresh connections. */
  setPeers(peers: Record<NodeId, string>): void {
    for (const peer of [...this.peers.values()]) {
      if (peers[peer.id] !== peer.address) this.removePeer(peer);
    }
    for (const [id, address] of Object.entries(peers)) {
      if (id === this.context.id || this.peers.has(id)) continue;
      assert(isNodeId(id) && address.length > 0, `peer ${JSON.stringify(id)} has no valid id or address`);
      this.peers.set(id, new PeerLink(this.context, id, address, this, this.framer));
    }
  }

  /** Queues messages for their peers (the transport has not stopped); never blocks or throws for network reasons. */
  send(messages: Message[]): void {
    const { id, counters, log } = this.context;
    let queued = false;
    for (const message of messages) {
      assert(message.from === id, () => `sending a message from "${message.from}" through the transport of "${id}"`);
      const peer = this.peers.get(message.to);
      if (peer === undefined) {
        counters.messagesDropped++;
        log.line('unknown-peer', `raft transport ${id}: dropped message to unknown peer "${message.to}"`);
      } else if (message.type === MessageType.Snapshot) {
        peer.snapshots.enqueue(message, peer.down);
      } else {
        queued = peer.send(message) || queued;
      }
    }
    if (queued) this.flushSoon();
  }

  /** Ends every peer and the pending flush; leaves no timer. */
  stop(): void {
    if (this.flushImmediate !== null) clearImmediate(this.flushImmediate);
    this.flushImmediate = null;
    for (const peer of [...this.peers.values()]) this.removePeer(peer);
  }

  private removePeer(peer: PeerLink): void {
    this.peers.delete(peer.id);
    peer.remove();
  }

  flushSoon(): void {
    if (this.flushImmediate !== null) return;
    if (performance.now() - this.lastFlushAtMs < IDLE_FLUSH_GAP_MS) this.scheduleFlush();
    else this.flushQueues();
  }

  scheduleFlush(): void {
    if (this.flushImmediate !== null) return;
    this.flushImmediate = setImmediate(() => {
      this.flushImmediate = null;
      this.flushQueues();
    });
  }

  private flushQueues(): void {
    this.lastFlushAtMs = performance.now();
    for (const peer of this.peers.values()) {
      if (peer.hasQueued) peer.flush();
    }
  }
}

/**
 * How a batch stream ended: null for OK (the peer ended it), else its status,
 * from the answer's trailers (or trailers-only headers) when there were
 * any, else from how the stream or its connection failed.
 */
function statusOfClosed(call: http2.ClientHttp2Stream, status: FrameRefusal | undefined, failure: Error | undefined): FrameRefusal | null {
  if (status !== undefined) return status.code === grpc.status.OK ? null : status;
  if (failure !== undefined) return { code: grpc.status.UNAVAILABLE, details: failure.message };
  return { code: grpc.status.UNAVAILABLE, details: `the stream closed without a status (HTTP/2 code ${call.rstCode ?? 'none'})` };
}
