/**
 * The wire form of the images service's `Read` answers (proto/images.proto),
 * for the two ends that handle that method outside grpc-js
 * (image-read-stream.ts): each ReadChunk is gRPC's 5-byte prefix (a
 * compressed flag, always 0 here, and the message's length, big-endian),
 * then the message, which is field 1 (`data`, bytes) alone: its tag (0x0a),
 * the length as a varint, the bytes. An empty chunk is an empty message.
 *
 * `ReadChunkParser` takes the stream's bytes as HTTP/2 hands them over, cut
 * anywhere, and answers the `data` bytes as views into them: no message is
 * ever joined into a buffer of its own. A message that is not exactly that
 * (another field, a compressed flag, a length that disagrees) is refused
 * with what was wrong; the fetcher checks every blob's digest besides.
 */
import { GRPC_PREFIX_BYTES } from '../executor/containerd/content-write.js';
import { BYTES_FIELD_HEAD_BYTES_MAX, writeBytesFieldHeadInto } from '../executor/containerd/protobuf-wire.js';

/** Most bytes in front of a chunk's data: gRPC's prefix and the field's tag and length. */
export const READ_CHUNK_HEAD_BYTES_MAX = GRPC_PREFIX_BYTES + BYTES_FIELD_HEAD_BYTES_MAX;
/** The tag of ReadChunk's field 1 (`data`, length-delimited). */
const DATA_TAG = 0x0a;
/** Most bytes of the varint holding a data length (32 bits). */
const LENGTH_VARINT_BYTES_MAX = 5;

/**
 * Writes gRPC's prefix and the field head of a ReadChunk of `dataBytes`
 * bytes at the start of `buffer` (READ_CHUNK_HEAD_BYTES_MAX bytes suffice)
 * and answers the offset where its data goes; the message ends `dataBytes`
 * after it. An empty chunk is an empty message.
 */
export function writeReadChunkHead(buffer: Buffer, dataBytes: number): number {
  if (dataBytes === 0) {
    buffer[0] = 0;
    buffer.writeUInt32BE(0, 1);
    return GRPC_PREFIX_BYTES;
  }
  const dataStart = writeBytesFieldHeadInto(buffer.subarray(GRPC_PREFIX_BYTES), 1, dataBytes) + GRPC_PREFIX_BYTES;
  buffer[0] = 0;
  buffer.writeUInt32BE(dataStart - GRPC_PREFIX_BYTES + dataBytes, 1);
  return dataStart;
}

/** Reads ReadChunk messages off a byte stream; see the file comment. */
export class ReadChunkParser {
  /** The prefix or field head being read, which the stream may cut. */
  private readonly head = Buffer.alloc(GRPC_PREFIX_BYTES + 1 + LENGTH_VARINT_BYTES_MAX);
  private headBytes = 0;
  private state: 'prefix' | 'field' | 'data' = 'prefix';
  /** Bytes of the current message not yet read (field head and data). */
  private messageBytesLeft = 0;
  private dataBytesLeft = 0;

  /** @param messageBytesMax the longest message taken; a longer one is refused. */
  constructor(private readonly messageBytesMax: number) {}

  /** Whether the bytes so far end at a message's end (a stream may end only there). */
  get atBoundary(): boolean {
    return this.state === 'prefix' && this.headBytes === 0;
  }

  /**
   * Reads `chunk`; answers the data bytes in it (views into `chunk`, in
   * order), or why the stream is refused (nothing may be read after).
   */
  push(chunk: Buffer): Buffer[] | string {
    const pieces: Buffer[] = [];
    let offset = 0;
    while (offset < chunk.length) {
      if (this.state === 'data') {
        const take = Math.min(this.dataBytesLeft, chunk.length - offset);
        pieces.push(chunk.subarray(offset, offset + take));
        offset += take;
        this.dataBytesLeft -= take;
        if (this.dataBytesLeft === 0) this.state = 'prefix';
        continue;
      }
      this.head[this.headBytes++] = chunk[offset++]!;
      const refusal = this.state === 'prefix' ? this.readPrefix() : this.readField();
      if (refusal !== undefined) return refusal;
    }
    return pieces;
  }

  private readPrefix(): string | undefined {
    if (this.headBytes < GRPC_PREFIX_BYTES) return undefined;
    if (this.head[0] !== 0) return `a compressed message (flag ${this.head[0]}), which this reader does not take`;
    const length = this.head.readUInt32BE(1);
    if (length > this.messageBytesMax) return `a message of ${length} bytes, over the ${this.messageBytesMax} taken`;
    this.headBytes = 0;
    if (length > 0) {
      this.messageBytesLeft = length;
      this.state = 'field';
    }
    return undefined;
  }

  private readField(): string | undefined {
    if (this.head[0] !== DATA_TAG) return `a field with tag byte ${this.head[0]} where ReadChunk has only data (field 1, bytes)`;
    if (this.headBytes === 1) return undefined;
    const last = this.head[this.headBytes - 1]!;
    if ((last & 0x80) !== 0) return this.headBytes - 1 < LENGTH_VARINT_BYTES_MAX ? undefined : 'a data length over 32 bits';
    let length = 0;
    for (let index = this.headBytes - 1; index >= 1; index--) length = length * 128 + (this.head[index]! & 0x7f);
    if (this.headBytes + length !== this.messageBytesLeft) return `a data field of ${length} bytes in a message of ${this.messageBytesLeft}`;
    this.headBytes = 0;
    this.dataBytesLeft = length;
    this.state = length > 0 ? 'data' : 'prefix';
    return undefined;
  }
}
