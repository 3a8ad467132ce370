/**
 * gRPC's message framing on a bare HTTP/2 stream, for the transport's
 * methods served and called outside grpc-js (the peer `Stream`,
 * batch-stream.ts): each message is a 5-byte prefix (a compression flag, 0
 * here, and the length, 4 bytes big-endian) and the message's bytes; the
 * status travels in the trailers (`grpc-status`, `grpc-message`), or in the
 * only headers of an answer that has no message.
 *
 * Nothing a peer sends throws out of this module: a frame that cannot be
 * taken is a `FrameRefusal` naming the status to end the call with.
 */
import type * as http2 from 'node:http2';
import { status as GrpcStatus } from '@grpc/grpc-js';

/** Bytes of a message's prefix: the flag, then the length. */
export const GRPC_PREFIX_BYTES = 5;

/** The content type both ends send; a call whose `content-type` does not start with `application/grpc` is not gRPC. */
export const GRPC_CONTENT_TYPE = 'application/grpc+proto';

/** Why a frame was not taken: the status to end the call with, and its message. */
export interface FrameRefusal {
  code: GrpcStatus;
  details: string;
}

/**
 * Cuts a stream's bytes into gRPC messages, each at most `messageBytesMax`.
 * A message wholly inside one chunk is handed on as a view of it (no copy);
 * only a message cut across chunks is joined, once, when its last byte came.
 * After a refusal it takes nothing more.
 */
export class GrpcFrameReader {
  private readonly pending: Buffer[] = [];
  private pendingBytes = 0;
  /** The pending frame's size, prefix included, once its prefix is in; -1 before. */
  private frameBytes = -1;
  private refused = false;

  constructor(private readonly messageBytesMax: number) {}

  /** Whether every byte pushed so far belongs to a whole message (a stream may end here). */
  get atBoundary(): boolean {
    return this.pendingBytes === 0;
  }

  /**
   * Takes the next chunk of the stream, handing each message completed by it
   * to `onMessage` in order; `onMessage` answers false to stop (the rest is
   * dropped). Answers the refusal when a prefix is not acceptable.
   */
  push(chunk: Buffer, onMessage: (message: Buffer) => boolean): FrameRefusal | undefined {
    if (this.refused) return undefined;
    if (this.pendingBytes > 0) {
      this.pending.push(chunk);
      this.pendingBytes += chunk.length;
      if (this.frameBytes < 0) {
        if (this.pendingBytes < GRPC_PREFIX_BYTES) return undefined;
        const joined = Buffer.concat(this.pending, this.pendingBytes);
        this.pending.length = 0;
        this.pending.push(joined);
        const size = this.frameSize(joined, 0);
        if (typeof size !== 'number') return size;
        this.frameBytes = size;
      }
      if (this.pendingBytes < this.frameBytes) return undefined;
      const joined = Buffer.concat(this.pending, this.pendingBytes);
      const frameBytes = this.frameBytes;
      this.pending.length = 0;
      this.pendingBytes = 0;
      this.frameBytes = -1;
      if (!onMessage(joined.subarray(GRPC_PREFIX_BYTES, frameBytes))) return undefined;
      chunk = joined.subarray(frameBytes);
    }
    let offset = 0;
    while (chunk.length - offset >= GRPC_PREFIX_BYTES) {
      const size = this.frameSize(chunk, offset);
      if (typeof size !== 'number') return size;
      if (chunk.length - offset < size) {
        this.frameBytes = size;
        break;
      }
      if (!onMessage(chunk.subarray(offset + GRPC_PREFIX_BYTES, offset + size))) return undefined;
      offset += size;
    }
    if (offset < chunk.length) {
      this.pending.push(chunk.subarray(offset));
      this.pendingBytes += chunk.length - offset;
    }
    return undefined;
  }

  /** The size of the frame whose prefix starts at `offset`, prefix included, or why it is refused. */
  private frameSize(bytes: Buffer, offset: number): number | FrameRefusal {
    const flag = bytes[offset]!;
    const length = bytes.readUInt32BE(offset + 1);
    if (flag !== 0) {
      this.refused = true;
      return flag === 1
        ? { code: GrpcStatus.UNIMPLEMENTED, details: 'a compressed message; this peer takes identity encoding only' }
        : { code: GrpcStatus.INTERNAL, details: `a message prefix with flag ${flag} (0 or 1 expected)` };
    }
    if (length > this.messageBytesMax) {
      this.refused = true;
      return { code: GrpcStatus.RESOURCE_EXHAUSTED, details: `a message of ${length} bytes, over the limit of ${this.messageBytesMax} bytes` };
    }
    return GRPC_PREFIX_BYTES + length;
  }
}

/** The trailers (or trailers-only headers, with `:status`) carrying status `code`. */
export function statusTrailers(code: GrpcStatus, details?: string): http2.OutgoingHttpHeaders {
  return details === undefined || code === GrpcStatus.OK
    ? { 'grpc-status': String(code) }
    : { 'grpc-status': String(code), 'grpc-message': percentEncode(details) };
}

/**
 * The status an answer's trailers (or trailers-only headers) carry, or
 * undefined when they carry none. An unreadable `grpc-status` is UNKNOWN.
 */
export function statusOfTrailers(headers: http2.IncomingHttpHeaders): FrameRefusal | undefined {
  const value = headers['grpc-status'];
  if (value === undefined) return undefined;
  const code = Number(value);
  const text = headers['grpc-message'];
  let details = '';
  if (typeof text === 'string') {
    try {
      details = decodeURIComponent(text);
    } catch {
      details = text;
    }
  }
  return { code: Number.isInteger(code) && code >= 0 ? (code as GrpcStatus) : GrpcStatus.UNKNOWN, details };
}

/** grpc-message: UTF-8, with bytes outside printable ASCII and '%' percent-encoded. */
export function percentEncode(message: string): string {
  let encoded = '';
  for (const byte of Buffer.from(message, 'utf8')) {
    encoded += byte >= 0x20 && byte <= 0x7e && byte !== 0x25 ? String.fromCharCode(byte) : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return encoded;
}
