/**
 * containerd's content `Write` stream over Node's own `http2`, with gRPC's
 * framing written by the caller into its own buffers.
 *
 * Why not grpc-js for this one call: grpc-js copies every message it sends
 * into a fresh buffer of the message's size, with its 5-byte length prefix
 * in front. A blob's bytes go to containerd in 1 MiB WRITE messages that
 * `ImageStore.writeBlob` already encodes by hand into a few reused buffers
 * (message-buffers.ts); that copy into fresh memory was a third of the
 * copies a peer fetch makes, and most of what the garbage collector chased
 * (bench:executor --mode images). Here the caller leaves the first
 * `GRPC_PREFIX_BYTES` of each buffer free and `send` writes the prefix
 * there; Node's http2 sends the buffer as it is (no copy). Every other
 * containerd call stays on grpc-js (client.ts).
 *
 * The protocol, as much of gRPC over HTTP/2 as this call needs: a POST to
 * the method's path with `content-type: application/grpc` and
 * `te: trailers`, the metadata as headers; each message in either direction
 * is a byte 0 (not compressed), a 4-byte big-endian length and the
 * message; the call's status comes in the trailers (`grpc-status`,
 * `grpc-message`), or in the response headers when the server answers
 * with trailers only. Answers are counted, not decoded: the content
 * service answers every WRITE and the COMMIT in order, one answer each.
 */
import * as http2 from 'node:http2';
import { connect } from 'node:net';
import { Http2Link } from '../../node/http2-link.js';

/** Bytes of gRPC's prefix before each message: a compressed flag and a 4-byte length. */
export const GRPC_PREFIX_BYTES = 5;
const WRITE_PATH = '/containerd.services.content.v1.Content/Write';
/** gRPC status codes this module sets itself (grpc-js's `status` has the same numbers). */
const STATUS_CANCELLED = 1;
const STATUS_INTERNAL = 13;
const STATUS_UNAVAILABLE = 14;
/** Largest answer accepted: a WriteContentResponse is a few dozen bytes. */
const ANSWER_BYTES_MAX = 64 * 1024;

/** A failed call, shaped as grpc-js's `ServiceError` (`code`, `details`) so `mapError` reads it the same way. */
export class ContentWriteError extends Error {
  override readonly name = 'ContentWriteError';
  constructor(
    readonly code: number,
    readonly details: string,
  ) {
    super(`${code} ${details}`);
  }
}

/**
 * Writes the gRPC prefix of the message in `framed[GRPC_PREFIX_BYTES,
 * end)` into `framed[0, GRPC_PREFIX_BYTES)` and answers `framed[0, end)`.
 */
export function framedMessage(framed: Buffer, end: number): Buffer {
  framed[0] = 0;
  framed.writeUInt32BE(end - GRPC_PREFIX_BYTES, 1);
  return framed.subarray(0, end);
}

/** One content Write call; see the module's comment. */
export class ContentWriteCall {
  private readonly answers: Array<{ resolve(): void; reject(error: Error): void }> = [];
  private answered = 0;
  private waitingFor = 0;
  private pending: Buffer = Buffer.alloc(0);
  private failure: Error | undefined;
  private ended = false;

  constructor(private readonly stream: http2.ClientHttp2Stream) {
    // The status is read at the end of the stream, after every answer before it.
    let status: http2.IncomingHttpHeaders | undefined;
    stream.on('response', (headers) => {
      if (headers[':status'] !== 200) this.fail(new ContentWriteError(STATUS_INTERNAL, `content write: containerd answered HTTP ${headers[':status']}`));
      // A server that fails at once answers with trailers only: the status is in these headers.
      else if (headers['grpc-status'] !== undefined) status = headers;
    });
    stream.on('data', (chunk: Buffer) => this.receive(chunk));
    stream.on('trailers', (trailers) => (status = trailers));
    stream.on('end', () => this.finish(status));
    stream.on('error', (error: Error) => this.fail(new ContentWriteError(STATUS_UNAVAILABLE, `content write: ${error.message}`)));
    stream.on('close', () => this.fail(new ContentWriteError(STATUS_UNAVAILABLE, `content write: the stream closed (HTTP/2 code ${stream.rstCode ?? 0}) before its status came`)));
  }

  /**
   * Sends the message in `framed[GRPC_PREFIX_BYTES, end)` (the prefix goes
   * in front of it). The buffer is Node's until the message's answer is in
   * (`next`): the caller must not touch it before.
   */
  send(framed: Buffer, end: number): void {
    if (this.failure !== undefined || this.ended) return;
    this.stream.write(framedMessage(framed, end));
  }

  /** Resolves when the next answer is in; rejects with the call's failure. */
  next(): Promise<void> {
    const position = this.waitingFor++;
    if (position < this.answered) return Promise.resolve();
    if (this.failure !== undefined) return Promise.reject(this.failure);
    return new Promise<void>((resolve, reject) => this.answers.push({ resolve, reject }));
  }

  /** Ends the sending side; the answers still come. */
  end(): void {
    if (this.ended) return;
    this.ended = true;
    this.stream.end();
  }

  /** Cancels the call (RST_STREAM CANCEL); waiting answers reject. Idempotent. */
  cancel(): void {
    this.fail(new ContentWriteError(STATUS_CANCELLED, 'content write: cancelled'));
    if (!this.stream.destroyed) this.stream.close(http2.constants.NGHTTP2_CANCEL);
  }

  private receive(chunk: Buffer): void {
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    while (this.pending.length >= GRPC_PREFIX_BYTES) {
      const length = this.pending.readUInt32BE(1);
      if (this.pending[0] !== 0 || length > ANSWER_BYTES_MAX) {
        this.cancel();
        this.fail(new ContentWriteError(STATUS_INTERNAL, `content write: containerd sent an answer this client cannot read (flag ${this.pending[0]}, ${length} bytes)`));
        return;
      }
      if (this.pending.length < GRPC_PREFIX_BYTES + length) return;
      this.pending = this.pending.subarray(GRPC_PREFIX_BYTES + length);
      this.answered += 1;
      this.answers.shift()?.resolve();
    }
  }

  private finish(trailers: http2.IncomingHttpHeaders | undefined): void {
    if (trailers === undefined) {
      this.fail(new ContentWriteError(STATUS_INTERNAL, 'content write: the call ended without a status'));
      return;
    }
    const code = Number(trailers['grpc-status']);
    if (code === 0) {
      this.fail(new ContentWriteError(STATUS_INTERNAL, 'content write: the call ended before every message was answered'));
      return;
    }
    const message = trailers['grpc-message'];
    const details = typeof message === 'string' ? decodeURIComponent(message) : 'no message';
    this.fail(new ContentWriteError(Number.isInteger(code) ? code : STATUS_INTERNAL, details));
  }

  /** The first failure stands; every answer still awaited rejects with it. */
  private fail(error: Error): void {
    if (this.failure !== undefined) return;
    this.failure = error;
    for (const waiting of this.answers.splice(0)) waiting.reject(error);
  }
}

/**
 * One HTTP/2 connection to containerd's socket for content writes, made on
 * the first call and again after it closes. It keeps the process alive only
 * while a call is open.
 */
export class ContentWriteChannel {
  private readonly link: Http2Link;

  constructor(
    private readonly socketPath: string,
    private readonly namespace: string,
  ) {
    this.link = new Http2Link(() => http2.connect('http://localhost', { createConnection: () => connect(socketPath) }));
  }

  /** Opens a Write call under `lease` (the `containerd-lease` header) when given. */
  call(options: { lease?: string }): ContentWriteCall {
    if (this.link.closed) throw new ContentWriteError(STATUS_CANCELLED, `containerd client of ${this.socketPath} is closed`);
    const session = this.link.session();
    const headers: http2.OutgoingHttpHeaders = {
      ':method': 'POST',
      ':path': WRITE_PATH,
      ':authority': 'localhost',
      'content-type': 'application/grpc',
      te: 'trailers',
      'containerd-namespace': this.namespace,
    };
    if (options.lease !== undefined) headers['containerd-lease'] = options.lease;
    const stream = this.link.request(session, headers);
    return new ContentWriteCall(stream);
  }

  /** Closes the connection; calls after this throw. Idempotent. */
  close(): void {
    this.link.close('close');
  }
}
