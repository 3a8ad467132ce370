/**
 * proto/kv.proto's `PutRequest` and `PutResponse` in protobuf's wire format,
 * by hand, for the one method every client request of the benchmark takes.
 *
 * Why not proto-loader's codecs, as the other methods use: its decoder copies
 * `key` and `value` into new Buffers (`toObject`) and builds the message
 * through protobufjs's reader and a generated object, about 2-3 µs and two
 * copies per Put on the leader before the entry is even encoded; its encoder
 * goes through protobufjs's `Writer`. Here `key` and `value` are views into
 * the request's bytes (the Put handler copies them into the entry, see
 * `encodePut`), and the answer is two varints written into one buffer.
 *
 * Decoding follows protobuf's rules for these fields: a field may be absent
 * (then empty), repeated (the last one wins) or unknown (skipped, whatever its
 * number). Malformed input (a varint or a length running past the end, a
 * known field with another wire type, a group) throws an `Error` naming the
 * problem and its byte offset; the unary server answers it as a decoding
 * failure. `consensus/test/kv-put-codec.test.ts` checks both directions
 * against proto-loader's codecs.
 */
import { ProtoReader } from '../transport/proto-codec.js';

/** A Put request as proto-loader presents it (keepCase, defaults on): the server's handlers take this shape. */
export interface PutRequestMessage {
  key: Uint8Array;
  value: Uint8Array;
  request_id: string;
}

/** A Put answer; both are log positions, non-negative safe integers. */
export interface PutResponseMessage {
  index: number;
  term: number;
}

const WIRE_VARINT = 0;
const WIRE_LENGTH_DELIMITED = 2;
const FIELD_KEY = 1;
const FIELD_VALUE = 2;
const FIELD_REQUEST_ID = 3;
const FIELD_INDEX = 1;
const FIELD_TERM = 2;
/** A varint of a 64-bit value takes at most 10 bytes. */
const VARINT_BYTES_MAX = 10;
const EMPTY: Uint8Array = new Uint8Array(0);

/** Decodes a `PutRequest`; `key` and `value` are views into `bytes`. Throws on malformed input (see the file comment). */
export function decodePutRequest(bytes: Uint8Array): PutRequestMessage {
  const reader = new ProtoReader(bytes, (message) => new Error(`PutRequest: ${message}`));
  let key = EMPTY;
  let value = EMPTY;
  let requestId = EMPTY;
  while (!reader.done) {
    const at = reader.offset;
    const tag = reader.varint();
    const field = Math.floor(tag / 8);
    const wireType = tag % 8;
    if (field === 0) throw new Error(`PutRequest: the field at byte ${at} has number 0`);
    if (field !== FIELD_KEY && field !== FIELD_VALUE && field !== FIELD_REQUEST_ID) {
      reader.skipValue(wireType, at);
      continue;
    }
    if (wireType !== WIRE_LENGTH_DELIMITED) {
      throw new Error(`PutRequest: field ${field} at byte ${at} has wire type ${wireType}, not 2 (length-delimited)`);
    }
    const content = reader.lengthDelimited();
    if (field === FIELD_KEY) key = content;
    else if (field === FIELD_VALUE) value = content;
    else requestId = content;
  }
  return { key, value, request_id: requestId.length === 0 ? '' : Buffer.from(requestId.buffer, requestId.byteOffset, requestId.byteLength).toString('utf8') };
}

/** Encodes a `PutResponse`: both fields, even at zero, byte for byte as proto-loader's encoder writes them. */
export function encodePutResponse(response: PutResponseMessage): Buffer {
  const { index, term } = response;
  if (!Number.isSafeInteger(index) || index < 0 || !Number.isSafeInteger(term) || term < 0) {
    throw new Error(`PutResponse: index ${index} and term ${term} must be non-negative safe integers`);
  }
  const bytes = Buffer.allocUnsafe(2 * (1 + VARINT_BYTES_MAX));
  let offset = 0;
  bytes[offset++] = (FIELD_INDEX << 3) | WIRE_VARINT;
  offset = writeVarint(bytes, offset, index);
  bytes[offset++] = (FIELD_TERM << 3) | WIRE_VARINT;
  offset = writeVarint(bytes, offset, term);
  return bytes.subarray(0, offset);
}

/** Writes `value` (a non-negative safe integer) as a varint at `offset`; returns the offset after it. */
function writeVarint(bytes: Buffer, offset: number, value: number): number {
  let rest = value;
  while (rest >= 0x80) {
    bytes[offset++] = (rest % 0x80) | 0x80;
    rest = Math.floor(rest / 0x80);
  }
  bytes[offset++] = rest;
  return offset;
}
