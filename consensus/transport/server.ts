/**
 * The incoming side of the gRPC transport: the server, its `Stream` and
 * `InstallSnapshot` handlers, and any further services on the same port.
 * `Stream` is served on its bare HTTP/2 stream, past grpc-js's server
 * (raw-streams.ts, batch-stream.ts); `InstallSnapshot` through grpc-js.
 *
 * Every batch and snapshot header is decoded and validated field by field
 * (wire-codec.ts) before anything reaches the Raft node. A batch that fails
 * is dropped whole, counted, logged (rate-limited), and its stream is ended
 * with INVALID_ARGUMENT. Nothing a peer sends can crash the process.
 *
 * Security: with `security` set (the agent always sets it), the server and
 * the channels speak mutual TLS, and every Stream and InstallSnapshot call is
 * authenticated before its first message is read: the call's verified
 * certificate names a node, and every batch's `from` (and so every message's)
 * must be that node; a snapshot's sender likewise. A call or batch that fails
 * is refused whole and counted by reason (`security.onRejected`). Without
 * `security` the transport is plaintext and trusts the `from` it reads: for
 * tests of the core and for the KV benchmark server only.
 */
import type * as http2 from 'node:http2';
import * as grpc from '@grpc/grpc-js';
import type { NodeId } from '../core/types.js';
import type { TransportContext } from './context.js';
import type { GrpcExtraService, PeerCall, RawStreamHandler } from './options.js';
import { channelOptions, raftService, type AckWire } from './raft-service.js';
import { routeRawStreams } from './raw-streams.js';
import { assert } from '../core/assert.js';
import { BATCH_CODEC, BATCH_STREAM_PATH, EMPTY_ACK_FRAME } from './batch-stream.js';
import { GRPC_CONTENT_TYPE, GrpcFrameReader, statusTrailers } from './grpc-frames.js';
import { NODE_ID_CHARS_MAX, SnapshotAssembly, decodeBatch, type BatchWire, type SnapshotChunkWire } from './wire-codec.js';

/** How often a long-lived incoming stream's certificate is authenticated again (a revocation takes effect within it). */
const REAUTHENTICATE_AFTER_MS = 1000;

/** Incoming snapshot streams assembled at once (each may hold up to snapshotBytesMax). */
const SNAPSHOTS_INCOMING_MAX = 2;

/** The transport could not bind its listening address. */
export class TransportListenError extends Error {
  readonly code = 'TRANSPORT_LISTEN_FAILED';
}

/** The transport's gRPC server. `start` once, `stop` once. */
export class RaftServer {
  private server: grpc.Server | null = null;
  private snapshotsIncoming = 0;

  constructor(
    private readonly context: TransportContext,
    private readonly extraServices: GrpcExtraService[],
  ) {}

  /** Binds `listen`; resolves with the port bound. Rejects with TransportListenError when it cannot. */
  async start(listen: string): Promise<number> {
    // Channelz stays on for the server: grpc-js's forceShutdown only destroys the
    // sessions channelz tracks, and stop() must close every connection.
    const server = new grpc.Server({ ...channelOptions(this.context.settings), 'grpc.enable_channelz': 1 });
    // Stream is served past grpc-js (handleStream); grpc-js answers it only if the routing is not in place, which start asserts.
    server.addService(raftService().service, {
      InstallSnapshot: (call: grpc.ServerReadableStream<SnapshotChunkWire, AckWire>, callback: grpc.sendUnaryData<AckWire>) =>
        this.handleInstallSnapshot(call, callback),
    });
    const rawStreams = new Map<string, RawStreamHandler>([[BATCH_STREAM_PATH, (stream, headers, call) => this.handleStream(stream, headers, call)]]);
    for (const extra of this.extraServices) {
      server.addService(extra.definition, extra.implementation);
      for (const [path, handler] of extra.rawStreams ?? []) rawStreams.set(path, handler);
    }
    const routed = routeRawStreams(server, rawStreams);
    this.server = server;
    return new Promise<number>((resolve, reject) => {
      const credentials = this.context.security?.serverCredentials() ?? grpc.ServerCredentials.createInsecure();
      server.bindAsync(listen, credentials, (error, boundPort) => {
        if (error === null) {
          assert(routed(), 'grpc-js no longer makes its HTTP/2 servers through createHttp2Server: the raw stream methods cannot be routed (consensus/transport/raw-streams.ts)');
          return resolve(boundPort);
        }
        server.forceShutdown();
        this.server = null;
        reject(new TransportListenError(`cannot listen for Raft peers on "${listen}": ${error.message}; choose a free port`));
      });
    });
  }

  /** Closes every connection at once. */
  stop(): void {
    this.server?.forceShutdown();
    this.server = null;
  }

  /**
   * The peer that made `call`: the authenticated node id, `null` when the
   * transport runs without security (anyone), or undefined after refusing
   * the call (answered with UNAUTHENTICATED, counted).
   */
  private callerOf(call: PeerCall, refuse: (error: Partial<grpc.StatusObject>) => void): NodeId | null | undefined {
    if (this.context.security === undefined) return null;
    const verdict = this.context.security.authenticate(call);
    if (verdict.ok) return verdict.nodeId;
    this.reject(verdict.reason, `call from ${call.getPeer()} refused: ${verdict.reason}`);
    refuse({ code: grpc.status.UNAUTHENTICATED, details: `refused: ${verdict.reason} (a member of this cluster presents a certificate of its CA)` });
    return undefined;
  }

  private reject(reason: string, line: string): void {
    this.context.security?.onRejected?.(reason);
    this.context.log.line(`rejected:${reason}`, `raft transport ${this.context.id}: ${line}`);
  }

  /**
   * Serves one batch stream (batch-stream.ts) on its bare HTTP/2 stream:
   * authenticates the caller before reading anything, answers its headers at
   * once (the sender's "connected"), then takes each framed Batch in the turn
   * it arrives: the caller's certificate looked at again now and then, the
   * sender checked against it, every message decoded and validated, all
   * before any reaches the Raft node. The first refusal ends the stream with
   * its status; the sender's end is answered with an Ack and OK. Never throws.
   */
  private handleStream(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, call: PeerCall): void {
    const context = this.context;
    stream.on('error', () => undefined);
    const contentType = headers['content-type'];
    if (typeof contentType !== 'string' || !contentType.startsWith('application/grpc')) {
      answerStatusOnly(stream, { ':status': 415 });
      return;
    }
    const caller = this.callerOf(call, (error) => answerStatusOnly(stream, { ':status': 200, 'content-type': GRPC_CONTENT_TYPE, ...statusTrailers(error.code!, error.details) }));
    if (caller === undefined) return;
    if (stream.destroyed || stream.closed) return;
    let trailers = statusTrailers(grpc.status.OK);
    stream.on('wantTrailers', () => stream.sendTrailers(trailers));
    stream.respond({ ':status': 200, 'content-type': GRPC_CONTENT_TYPE }, { waitForTrailers: true });
    let finished = false;
    const finish = (code: grpc.status, details?: string): void => {
      if (finished) return;
      finished = true;
      if (stream.destroyed || stream.closed) return;
      trailers = statusTrailers(code, details);
      // What the sender writes after a refusal is read and dropped; it stops at our trailers.
      if (code === grpc.status.OK) stream.end(EMPTY_ACK_FRAME);
      else stream.end();
    };
    // A stream lives as long as its connection: its certificate is looked at again now and then, so a serial revoked
    // since (its node left or was removed) ends the stream within REAUTHENTICATE_AFTER_MS.
    let authenticatedAtMs = Date.now();
    const take = (message: Buffer): boolean => {
      if (finished || context.stopped) return false;
      let batch: BatchWire;
      try {
        batch = BATCH_CODEC.decode(message);
      } catch (error) {
        context.counters.batchesRejected++;
        const details = `a message that is not a Batch: ${error instanceof Error ? error.message.slice(0, 200) : String(error)}`;
        context.log.line('batch-rejected', `raft transport ${context.id}: ${details}`);
        finish(grpc.status.INVALID_ARGUMENT, details);
        return false;
      }
      if (caller !== null && Date.now() - authenticatedAtMs >= REAUTHENTICATE_AFTER_MS) {
        authenticatedAtMs = Date.now();
        const verdict = context.security!.authenticate(call);
        if (!verdict.ok) {
          context.counters.batchesRejected++;
          this.reject(verdict.reason, `stream from ${JSON.stringify(caller)} ended: ${verdict.reason}`);
          finish(grpc.status.UNAUTHENTICATED, `refused: ${verdict.reason}`);
          return false;
        }
      }
      if (caller !== null && batch.from !== caller) {
        context.counters.batchesRejected++;
        const sender = JSON.stringify(String(batch.from).slice(0, NODE_ID_CHARS_MAX));
        this.reject('sender-mismatch', `batch claiming to be from ${sender} arrived on ${JSON.stringify(caller)}'s connection; dropped`);
        finish(grpc.status.PERMISSION_DENIED, `a batch from ${sender} on the connection of ${JSON.stringify(caller)}`);
        return false;
      }
      const decoded = decodeBatch(batch, context.id);
      if (!decoded.ok) {
        context.counters.batchesRejected++;
        const details = `batch from ${JSON.stringify(String(batch.from).slice(0, NODE_ID_CHARS_MAX))} rejected: ${decoded.reason}`;
        context.log.line('batch-rejected', `raft transport ${context.id}: ${details}`);
        finish(grpc.status.INVALID_ARGUMENT, details);
        return false;
      }
      context.counters.batchesReceived++;
      context.counters.messagesReceived += decoded.value.length;
      for (const decodedMessage of decoded.value) context.handlers?.onMessage(decodedMessage);
      return true;
    };
    const frames = new GrpcFrameReader(context.settings.messageBytesMax);
    stream.on('data', (chunk: Buffer) => {
      if (finished) return;
      const refusal = frames.push(chunk, take);
      if (refusal === undefined) return;
      context.counters.batchesRejected++;
      context.log.line('batch-rejected', `raft transport ${context.id}: stream from ${call.getPeer()} refused: ${refusal.details}`);
      finish(refusal.code, refusal.details);
    });
    stream.on('end', () => {
      if (frames.atBoundary) return finish(grpc.status.OK);
      context.counters.batchesRejected++;
      finish(grpc.status.INTERNAL, 'the stream ended inside a message');
    });
    stream.on('close', () => (finished = true));
  }

  private handleInstallSnapshot(
    call: grpc.ServerReadableStream<SnapshotChunkWire, AckWire>,
    callback: grpc.sendUnaryData<AckWire>,
  ): void {
    const context = this.context;
    const caller = this.callerOf(call, (error) => callback(error));
    if (caller === undefined) return;
    if (this.snapshotsIncoming >= SNAPSHOTS_INCOMING_MAX) {
      context.counters.snapshotsRejected++;
      callback({ code: grpc.status.RESOURCE_EXHAUSTED, details: `already receiving ${SNAPSHOTS_INCOMING_MAX} snapshots; retry later` });
      return;
    }
    this.snapshotsIncoming++;
    const assembly = new SnapshotAssembly(context.id, context.settings.snapshotBytesMax);
    // Two separate facts: whether the call was answered, and whether its slot was given back.
    let answered = false;
    let slotHeld = true;
    const releaseSlot = (): void => {
      if (slotHeld) this.snapshotsIncoming--;
      slotHeld = false;
    };
    const abandon = (): void => {
      answered = true;
      releaseSlot();
    };
    const refuse = (reason: string): void => {
      abandon();
      context.counters.snapshotsRejected++;
      context.log.line('snapshot-rejected', `raft transport ${context.id}: snapshot stream rejected: ${reason}`);
      callback({ code: grpc.status.INVALID_ARGUMENT, details: `snapshot rejected: ${reason}` });
    };
    call.on('data', (chunk: SnapshotChunkWire) => {
      if (answered || context.stopped) return;
      const added = assembly.add(chunk);
      if (!added.ok) refuse(added.reason);
    });
    call.on('end', () => {
      if (answered || context.stopped) return;
      const message = assembly.finish();
      if (!message.ok) return refuse(message.reason);
      if (caller !== null && message.value.from !== caller) {
        this.reject('sender-mismatch', `snapshot claiming to be from ${JSON.stringify(message.value.from)} arrived on ${JSON.stringify(caller)}'s connection; dropped`);
        return refuse(`the snapshot names ${JSON.stringify(message.value.from)} as its sender, not the connection's ${JSON.stringify(caller)}`);
      }
      abandon();
      context.counters.snapshotsReceived++;
      context.handlers?.onMessage(message.value);
      callback(null, {});
    });
    call.on('error', abandon);
    call.on('cancelled', abandon);
    call.on('close', releaseSlot);
  }
}

/** Answers `stream` with `headers` alone, ending it, if it is not answered yet. */
function answerStatusOnly(stream: http2.ServerHttp2Stream, headers: http2.OutgoingHttpHeaders): void {
  if (stream.headersSent || stream.closed || stream.destroyed) return;
  try {
    stream.respond(headers, { endStream: true });
  } catch {
    // The connection went away between the check and the answer: nobody is left to answer.
  }
}
