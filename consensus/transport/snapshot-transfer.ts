/**
 * Outgoing snapshots: one `InstallSnapshot` call per snapshot, in chunks of
 * `chunkBytes`, one at a time per peer, each bounded by `snapshotTimeoutMs`.
 * Every snapshot handed to a sender is reported exactly once through
 * `onSnapshotStatus` (delivered or not), from a later event than the send,
 * unless the transport stopped or the peer was removed first.
 */
import { once } from 'node:events';
import * as grpc from '@grpc/grpc-js';
import type { Message, NodeId } from '../core/types.js';
import type { TransportContext } from './context.js';
import type { RaftClient } from './raft-service.js';
import { encodeSnapshotHeader, type SnapshotChunkWire } from './wire-codec.js';

/** Snapshots per peer, the one in flight included; more are refused at once. */
const SNAPSHOTS_PER_PEER_MAX = 2;
const EMPTY = new Uint8Array(0);

/** The snapshots on their way to one peer. */
export class SnapshotSender {
  /** Snapshots to send; the first is in flight while `sending`. */
  private queue: Message[] = [];
  private sending = false;
  private abort: AbortController | null = null;
  private closed = false;

  /** `client` makes or returns the peer's client; it is not called after `close`. */
  constructor(
    private readonly context: TransportContext,
    private readonly peerId: NodeId,
    private readonly client: () => RaftClient,
  ) {}

  /** Queues a Snapshot message; refused (reported as not delivered) while the peer is down or the queue is full. */
  enqueue(message: Message, peerDown: boolean): void {
    const counters = this.context.counters;
    if (peerDown || this.queue.length >= SNAPSHOTS_PER_PEER_MAX) {
      counters.snapshotsFailed++;
      counters.messagesDropped++;
      setImmediate(() => this.report(false));
      return;
    }
    this.queue.push(message);
    void this.pump();
  }

  /** Drops what is queued (counted), aborts the transfer in flight; nothing is reported afterwards. */
  close(): void {
    this.closed = true;
    this.context.counters.messagesDropped += this.queue.length;
    this.queue = [];
    this.abort?.abort();
  }

  private report(delivered: boolean): void {
    if (!this.context.stopped && !this.closed) this.context.handlers?.onSnapshotStatus(this.peerId, delivered);
  }

  /** Sends the snapshots one after another; reports each outcome. */
  private async pump(): Promise<void> {
    if (this.sending) return;
    this.sending = true;
    // Let send() return first: handlers are never called from inside it.
    await new Promise<void>((resolve) => setImmediate(resolve));
    while (this.queue.length > 0 && !this.context.stopped && !this.closed) {
      const delivered = await this.transfer(this.queue[0]!);
      this.queue.shift();
      if (delivered) this.context.counters.snapshotsSent++;
      else this.context.counters.snapshotsFailed++;
      this.report(delivered);
    }
    this.sending = false;
  }

  /** One InstallSnapshot call; true once the peer acknowledged the whole snapshot. */
  private async transfer(message: Message): Promise<boolean> {
    const { id, settings, log } = this.context;
    const abort = new AbortController();
    this.abort = abort;
    let settle!: (delivered: boolean) => void;
    const outcome = new Promise<boolean>((resolve) => (settle = resolve));
    const deadline = Date.now() + settings.snapshotTimeoutMs;
    const call = this.client().InstallSnapshot({ deadline }, (error) => {
      abort.abort();
      if (error !== null) {
        log.line(`snapshot:${this.peerId}`, `raft transport ${id}: snapshot to "${this.peerId}" failed (${grpc.status[error.code] ?? error.code}: ${error.details})`);
      }
      settle(error === null);
    });
    call.on('error', () => {});
    abort.signal.addEventListener('abort', () => call.cancel(), { once: true });
    try {
      await writeSnapshotChunks(call, message, settings.chunkBytes, abort.signal);
      call.end();
    } catch {
      call.cancel(); // aborted or the stream failed; the callback settles the outcome
    }
    const delivered = await outcome;
    this.abort = null;
    return delivered;
  }
}

/** Writes header and data chunks, honouring backpressure; throws when `signal` aborts. */
async function writeSnapshotChunks(
  call: grpc.ClientWritableStream<SnapshotChunkWire>,
  message: Message,
  chunkBytes: number,
  signal: AbortSignal,
): Promise<void> {
  const header = encodeSnapshotHeader(message);
  const data = message.snapshot!.data;
  let offset = 0;
  do {
    signal.throwIfAborted();
    const end = Math.min(offset + chunkBytes, data.byteLength);
    const chunk = { header: offset === 0 ? header : EMPTY, data: data.subarray(offset, end), done: end === data.byteLength };
    offset = end;
    if (!call.write(chunk)) await once(call, 'drain', { signal });
  } while (offset < data.byteLength);
}
