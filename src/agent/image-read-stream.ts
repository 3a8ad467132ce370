/**
 * The images service's `Read` (proto/images.proto), both ends, over Node's
 * own `http2` instead of grpc-js: the serving node writes each ReadChunk,
 * gRPC's framing included, into one of a few buffers reused for the blob and
 * hands it to the HTTP/2 stream as it is; the fetching node reads the data
 * out of the HTTP/2 frames as they come (read-chunk-wire.ts) without joining
 * a message into a buffer of its own. On the wire it is the same gRPC call
 * as before: grpc-js's clients and servers still speak it.
 *
 * Why: grpc-js copies every message it sends into a fresh buffer of its
 * size (its frame) and joins every message it receives into another; for a
 * blob that was two fresh buffers per 128 KiB chunk, and the copies and the
 * collections after them were about half of the fetching process's CPU
 * (bench:executor --mode images, docs/internals/containerd.md).
 *
 * Trust is the peer port's, unchanged: the server side runs on grpc-js's own
 * TLS listener (consensus/transport/raw-streams.ts routes this one path
 * here), and a call is served only when `refuse` finds a verified node
 * certificate, as every other method but Join; the client side presents
 * this node's certificate and accepts only the named peer's
 * (`NodeCredentials.tlsConnectOptions`).
 */
import * as http2 from 'node:http2';
import type { ConnectionOptions } from 'node:tls';
import type { PeerCall } from '../../consensus/transport-grpc.js';
import { MessageBuffers } from '../executor/containerd/message-buffers.js';
import type { ImageShare } from '../node/image-share.js';
import { Http2Link } from '../node/http2-link.js';
import { frameMessage } from '../../consensus/server/grpc-unary-server.js';
import { GRPC_PREFIX_BYTES } from '../executor/containerd/content-write.js';
import { READ_CHUNK_HEAD_BYTES_MAX, ReadChunkParser, writeReadChunkHead } from './read-chunk-wire.js';

/** The method's HTTP/2 path. */
export const READ_PATH = '/hivemind.images.Images/Read';
/** gRPC status codes used here (grpc-js's `status` has the same numbers). */
const STATUS = { OK: 0, CANCELLED: 1, INVALID_ARGUMENT: 3, DEADLINE_EXCEEDED: 4, NOT_FOUND: 5, INTERNAL: 13, UNAVAILABLE: 14, UNAUTHENTICATED: 16 } as const;
/** Longest ReadRequest taken, its prefix included (a digest is 71 characters). */
const REQUEST_BYTES_MAX = 1024;
/**
 * Most bytes of a blob in one ReadChunk. 128 KiB: the file is read in
 * pieces of that size (image-share.ts), and 32 of them in flight fill the
 * fetcher's 4 MiB receive window.
 */
export const READ_CHUNK_DATA_BYTES_MAX = 128 * 1024;
/** ReadChunks of one Read written and not yet sent at most (4 MiB): a slow reader holds back the reading, not this node's memory. */
const READ_CHUNKS_IN_FLIGHT_MAX = 32;
/** Longest message the fetcher takes (a server of another build may send larger chunks). */
const READ_MESSAGE_BYTES_MAX = 8 * 1024 * 1024;
/** HTTP/2 receive window of a connection blobs are read over (64 KiB by default), as toward containerd. */
export const FLOW_CONTROL_WINDOW_BYTES = 4 * 1024 * 1024;
/** How long a blob may take to arrive (a large layer over a slow link). */
export const READ_TIMEOUT_MS = 10 * 60_000;
const DIGEST = /^sha256:[0-9a-f]{64}$/;

/** What the serving end needs. */
export interface ReadStreamServing {
  /** This node's images, or undefined while the runtime keeps none. */
  share(): ImageShare | undefined;
  /** Why `call` is refused, or undefined when it comes from a member. */
  refuse(call: PeerCall): string | undefined;
  /** Decodes a ReadRequest (throws on bad bytes). */
  decodeRequest(bytes: Uint8Array): { digest: unknown };
  log(line: string): void;
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Ends `stream` with gRPC status `code` alone (no message was sent): trailers-only. */
function answerStatusOnly(stream: http2.ServerHttp2Stream, code: number, details: string): void {
  if (stream.destroyed || stream.headersSent) return;
  stream.respond({ ':status': 200, 'content-type': 'application/grpc+proto', 'grpc-status': String(code), 'grpc-message': encodeURIComponent(details) }, { endStream: true });
}

/**
 * Serves one Read stream (a `RawStreamHandler` for READ_PATH): refuses a
 * caller without a member certificate before reading anything, reads the
 * ReadRequest, then streams the blob from `share` in ReadChunks (see the
 * file comment). Never throws; every outcome is a gRPC status.
 */
export function serveReadStream(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, call: PeerCall, serving: ReadStreamServing): void {
  stream.on('error', () => undefined);
  const contentType = headers['content-type'];
  if (typeof contentType !== 'string' || !contentType.startsWith('application/grpc')) {
    stream.respond({ ':status': 415 }, { endStream: true });
    return;
  }
  const refusal = serving.refuse(call);
  if (refusal !== undefined) return answerStatusOnly(stream, STATUS.UNAUTHENTICATED, refusal);
  const received: Buffer[] = [];
  let receivedBytes = 0;
  let started = false;
  const start = (): void => {
    const bytes = Buffer.concat(received, receivedBytes);
    if (bytes.length < GRPC_PREFIX_BYTES) return;
    const length = bytes.readUInt32BE(1);
    if (bytes.length < GRPC_PREFIX_BYTES + length) return;
    started = true;
    if (bytes[0] !== 0) return answerStatusOnly(stream, STATUS.INVALID_ARGUMENT, 'the request is compressed; send it plain');
    let digest: unknown;
    try {
      digest = serving.decodeRequest(bytes.subarray(GRPC_PREFIX_BYTES, GRPC_PREFIX_BYTES + length)).digest;
    } catch (error) {
      return answerStatusOnly(stream, STATUS.INVALID_ARGUMENT, `the request is not a ReadRequest: ${message(error)}`);
    }
    if (typeof digest !== 'string' || !DIGEST.test(digest)) return answerStatusOnly(stream, STATUS.INVALID_ARGUMENT, 'digest: must be sha256:<64 hex digits>');
    const images = serving.share();
    if (images === undefined) return answerStatusOnly(stream, STATUS.NOT_FOUND, `blob ${digest} is not on this node`);
    streamBlob(stream, images, digest, serving.log);
  };
  // Bytes after the request are read and dropped, so the stream's end still comes.
  stream.on('data', (chunk: Buffer) => {
    if (started) return;
    receivedBytes += chunk.length;
    if (receivedBytes > REQUEST_BYTES_MAX) {
      started = true;
      return answerStatusOnly(stream, STATUS.INVALID_ARGUMENT, `the request is over ${REQUEST_BYTES_MAX} bytes`);
    }
    received.push(chunk);
    start();
  });
  stream.on('end', () => {
    if (!started) answerStatusOnly(stream, STATUS.INVALID_ARGUMENT, 'the call ended before its ReadRequest');
  });
}

/**
 * Writes blob `digest` of `images` to `stream` as ReadChunks, each encoded
 * into one of a few buffers reused for the blob: the share's chunk is copied
 * in before the next is asked for (it may reuse its memory), and a buffer is
 * free again once HTTP/2 has sent it (its write's callback). The status goes
 * in the trailers; a failure before the first chunk is a trailers-only
 * answer. Stops reading when the caller goes away.
 */
function streamBlob(stream: http2.ServerHttp2Stream, images: ImageShare, digest: string, log: (line: string) => void): void {
  const abort = new AbortController();
  let finished = false;
  stream.on('close', () => {
    if (!finished) abort.abort();
  });
  let trailers: http2.OutgoingHttpHeaders = { 'grpc-status': String(STATUS.OK) };
  stream.on('wantTrailers', () => stream.sendTrailers(trailers));
  const respond = (): void => {
    if (!stream.headersSent) stream.respond({ ':status': 200, 'content-type': 'application/grpc+proto' }, { waitForTrailers: true });
  };
  void writeChunks(stream, images, digest, abort.signal, respond).then(
    () => {
      finished = true;
      if (abort.signal.aborted || stream.destroyed) return;
      respond();
      stream.end();
    },
    (error: unknown) => {
      finished = true;
      if (abort.signal.aborted || stream.destroyed) return;
      const notFound = (error as { code?: unknown }).code === 'not-found';
      if (!notFound) log(`serving blob ${digest} to a peer failed: ${message(error)}`);
      const code = notFound ? STATUS.NOT_FOUND : STATUS.UNAVAILABLE;
      if (!stream.headersSent) return answerStatusOnly(stream, code, message(error));
      trailers = { 'grpc-status': String(code), 'grpc-message': encodeURIComponent(message(error)) };
      stream.end();
    },
  );
}

async function writeChunks(stream: http2.ServerHttp2Stream, images: ImageShare, digest: string, signal: AbortSignal, respond: () => void): Promise<void> {
  let buffers: MessageBuffers | undefined;
  let wake: (() => void) | undefined;
  const wakeUp = (): void => {
    const waiting = wake;
    wake = undefined;
    waiting?.();
  };
  signal.addEventListener('abort', wakeUp, { once: true });
  const takeBuffer = async (pool: MessageBuffers): Promise<Buffer | undefined> => {
    for (;;) {
      if (signal.aborted) return undefined;
      const buffer = pool.takeNow();
      if (buffer !== undefined) return buffer;
      await new Promise<void>((resolve) => (wake = resolve));
    }
  };
  try {
    for await (const data of images.read(digest, signal)) {
      // Sized by the first chunk, so a small document takes a small buffer.
      buffers ??= new MessageBuffers(READ_CHUNK_HEAD_BYTES_MAX + Math.max(1, Math.min(data.length, READ_CHUNK_DATA_BYTES_MAX)), READ_CHUNKS_IN_FLIGHT_MAX);
      const pool = buffers;
      const dataBytesMax = pool.bufferBytes - READ_CHUNK_HEAD_BYTES_MAX;
      respond();
      for (let used = 0; used < data.length; ) {
        const buffer = await takeBuffer(pool);
        if (buffer === undefined || stream.destroyed) return;
        const piece = data.subarray(used, used + dataBytesMax);
        const start = writeReadChunkHead(buffer, piece.length);
        buffer.set(piece, start);
        used += piece.length;
        stream.write(buffer.subarray(0, start + piece.length), () => {
          pool.give(buffer);
          wakeUp();
        });
      }
    }
  } finally {
    signal.removeEventListener('abort', wakeUp);
  }
}

/** Most bytes received and not yet parsed before the stream is paused (HTTP/2 flow control then holds the sender back). */
const RECEIVED_BYTES_MAX = 1024 * 1024;

/**
 * The chunks of a readable HTTP/2 stream as they came, one at a time. Not
 * the stream's own async iterator: that reads with `read()`, which joins
 * every chunk buffered meanwhile into a fresh buffer (a copy of most of a
 * blob, measured at about a third of the fetching process's CPU).
 */
class ReceivedChunks {
  private readonly queue: Buffer[] = [];
  private queuedBytes = 0;
  private done = false;
  /** What ended the stream other than its end, if anything. */
  error: Error | undefined;
  private wake: (() => void) | undefined;

  constructor(private readonly stream: http2.ClientHttp2Stream) {
    const wakeUp = (): void => {
      const waiting = this.wake;
      this.wake = undefined;
      waiting?.();
    };
    stream.on('data', (chunk: Buffer) => {
      this.queue.push(chunk);
      this.queuedBytes += chunk.length;
      if (this.queuedBytes >= RECEIVED_BYTES_MAX) stream.pause();
      wakeUp();
    });
    const finish = (): void => {
      this.done = true;
      wakeUp();
    };
    stream.on('end', finish);
    stream.on('close', finish);
    stream.on('error', (error: Error) => {
      this.error ??= error;
      finish();
    });
  }

  /** The next chunk, or undefined once the stream is over (see `error`). */
  async next(): Promise<Buffer | undefined> {
    for (;;) {
      const chunk = this.queue.shift();
      if (chunk !== undefined) {
        this.queuedBytes -= chunk.length;
        if (this.queuedBytes < RECEIVED_BYTES_MAX / 2 && this.stream.isPaused()) this.stream.resume();
        return chunk;
      }
      if (this.done) return undefined;
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }

  /** Drops what is queued. */
  stop(): void {
    this.queue.length = 0;
    this.queuedBytes = 0;
  }
}

/** A failed Read: `status` is its gRPC status code; `code` is `not-found` for NOT_FOUND, as `ImageShare.read` promises. */
export class BlobReadError extends Error {
  override readonly name = 'BlobReadError';
  readonly code: 'not-found' | undefined;
  constructor(
    readonly status: number,
    text: string,
  ) {
    super(text);
    this.code = status === STATUS.NOT_FOUND ? 'not-found' : undefined;
  }
}

/** How to reach one peer's port for blob reads. */
export interface BlobReadTarget {
  /** `host:port` (a `[v6]:port` too). */
  address: string;
  /** The peer's node id, for messages. */
  nodeId: string;
  /** TLS options for each new connection (read when connecting); undefined: plaintext, for tests and benchmarks. */
  tls?: () => ConnectionOptions;
}

/**
 * Reads blobs from one peer over one HTTP/2 connection, made on the first
 * read and again after it closes (or after a refusal: a connection is
 * verified once, at its handshake, so a refused one is not reused). It
 * keeps the process alive only while a read is open.
 */
export class BlobReadChannel {
  private readonly link: Http2Link;

  constructor(
    private readonly target: BlobReadTarget,
    private readonly encodeRequest: (request: { digest: string }) => Uint8Array,
  ) {
    this.link = new Http2Link(() => {
      const tls = target.tls?.();
      const authority = `${tls === undefined ? 'http' : 'https'}://${target.address}`;
      const session = http2.connect(authority, { ...tls, settings: { initialWindowSize: FLOW_CONTROL_WINDOW_BYTES } });
      session.once('connect', () => session.setLocalWindowSize(FLOW_CONTROL_WINDOW_BYTES));
      return session;
    });
  }

  /**
   * The bytes of blob `digest`, in order, as views into the frames
   * received: a chunk is the caller's until it asks for the next. Rejects
   * with a BlobReadError naming the digest and the peer.
   */
  async *read(digest: string, signal?: AbortSignal): AsyncIterable<Uint8Array> {
    const failure = (status: number, details: string) => new BlobReadError(status, `reading ${digest} from node ${this.target.nodeId}: ${details}`);
    if (this.link.closed) throw failure(STATUS.CANCELLED, 'the channel is closed');
    if (signal?.aborted) throw failure(STATUS.CANCELLED, 'cancelled');
    let session: http2.ClientHttp2Session;
    try {
      session = this.link.session();
    } catch (error) {
      throw failure(STATUS.UNAVAILABLE, message(error));
    }
    const stream = this.link.request(session, {
      ':method': 'POST',
      ':path': READ_PATH,
      'content-type': 'application/grpc',
      te: 'trailers',
      'grpc-timeout': `${READ_TIMEOUT_MS}m`,
    });
    let status: http2.IncomingHttpHeaders | undefined;
    let httpStatus: number | undefined;
    stream.on('response', (headers) => {
      httpStatus = headers[':status'];
      if (headers['grpc-status'] !== undefined) status = headers;
    });
    stream.on('trailers', (trailers) => (status = trailers));
    let stopped: string | undefined;
    const stop = (why: string): void => {
      stopped ??= why;
      if (!stream.destroyed) stream.close(http2.constants.NGHTTP2_CANCEL);
    };
    const timer = setTimeout(() => stop(`no end within ${READ_TIMEOUT_MS} ms`), READ_TIMEOUT_MS);
    timer.unref();
    const cancel = () => stop('cancelled');
    signal?.addEventListener('abort', cancel, { once: true });
    stream.end(frameMessage(this.encodeRequest({ digest })));
    const parser = new ReadChunkParser(READ_MESSAGE_BYTES_MAX);
    const received = new ReceivedChunks(stream);
    try {
      for (;;) {
        const chunk = await received.next();
        if (chunk === undefined) break;
        const pieces = parser.push(chunk);
        if (typeof pieces === 'string') {
          stop('bad answer');
          throw failure(STATUS.INTERNAL, `the peer sent ${pieces}`);
        }
        for (const piece of pieces) yield piece;
      }
      if (received.error !== undefined && stopped === undefined && status === undefined) throw failure(STATUS.UNAVAILABLE, message(received.error));
      if (stopped !== undefined) throw failure(stopped === 'cancelled' ? STATUS.CANCELLED : STATUS.DEADLINE_EXCEEDED, stopped);
      if (status === undefined) throw failure(STATUS.UNAVAILABLE, httpStatus !== undefined && httpStatus !== 200 ? `the peer answered HTTP ${httpStatus}` : 'the call ended without a status');
      const code = Number(status['grpc-status']);
      if (code !== STATUS.OK) {
        const text = status['grpc-message'];
        if (code === STATUS.UNAUTHENTICATED) this.link.drop(session);
        throw failure(Number.isInteger(code) ? code : STATUS.INTERNAL, typeof text === 'string' ? decodeURIComponent(text) : `status ${code}`);
      }
      if (!parser.atBoundary) throw failure(STATUS.INTERNAL, 'the answer ended inside a message');
    } finally {
      received.stop();
      clearTimeout(timer);
      signal?.removeEventListener('abort', cancel);
      if (!stream.destroyed) stream.close(http2.constants.NGHTTP2_CANCEL);
    }
  }

  /** Closes the connection at once: reads under way reject, and so do reads after this. Idempotent. */
  close(): void {
    this.link.close('destroy');
  }
}
