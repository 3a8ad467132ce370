/**
 * The protobuf wire format by hand, where proto-loader's objects cost too
 * much or cannot reach. Decoding: the two task events Hivemind reads from
 * containerd's event stream (`containerd.events.TaskExit`,
 * `containerd.events.TaskOOM`, see proto/containerd/task-events.proto),
 * which an Envelope carries as `google.protobuf.Any` bytes that proto-loader
 * leaves encoded. Encoding: the head of a content WRITE, so the blob's
 * bytes go into a reused buffer right after it.
 */
import { assert } from '../../../consensus/core/assert.js';

/** A decoded TaskExit. `id` is the process id: the container id for the main process, the exec id otherwise. */
export interface TaskExitEvent {
  containerId: string;
  id: string;
  pid: number;
  exitStatus: number;
  exitedAtMs?: number;
}

type Field = { number: number; varint?: number; bytes?: Uint8Array };

/** Splits a message into its fields; throws on malformed input. */
function readFields(buffer: Uint8Array): Field[] {
  const fields: Field[] = [];
  let position = 0;
  const readVarint = (): number => {
    let result = 0;
    let multiplier = 1;
    for (let count = 0; count < 10; count += 1) {
      if (position >= buffer.length) throw new Error('truncated varint');
      const byte = buffer[position++]!;
      result += (byte & 0x7f) * multiplier;
      if ((byte & 0x80) === 0) return result;
      multiplier *= 128;
    }
    throw new Error('varint too long');
  };
  while (position < buffer.length) {
    const key = readVarint();
    const number = Math.floor(key / 8);
    const wireType = key & 7;
    if (wireType === 0) fields.push({ number, varint: readVarint() });
    else if (wireType === 2) {
      const length = readVarint();
      if (position + length > buffer.length) throw new Error('truncated field');
      fields.push({ number, bytes: buffer.subarray(position, position + length) });
      position += length;
    } else if (wireType === 1) position += 8;
    else if (wireType === 5) position += 4;
    else throw new Error(`unsupported wire type ${wireType}`);
  }
  return fields;
}

const text = new TextDecoder();

function stringField(fields: Field[], number: number): string {
  const field = fields.find((candidate) => candidate.number === number && candidate.bytes !== undefined);
  return field?.bytes ? text.decode(field.bytes) : '';
}

function varintField(fields: Field[], number: number): number {
  return fields.find((candidate) => candidate.number === number && candidate.varint !== undefined)?.varint ?? 0;
}

/** Decodes a `containerd.events.TaskExit`. */
export function decodeTaskExit(bytes: Uint8Array): TaskExitEvent {
  const fields = readFields(bytes);
  const exit: TaskExitEvent = {
    containerId: stringField(fields, 1),
    id: stringField(fields, 2),
    pid: varintField(fields, 3),
    exitStatus: varintField(fields, 4),
  };
  const exitedAt = fields.find((field) => field.number === 5 && field.bytes !== undefined);
  if (exitedAt?.bytes) {
    const timestamp = readFields(exitedAt.bytes);
    const seconds = varintField(timestamp, 1);
    if (seconds > 0) exit.exitedAtMs = seconds * 1000 + Math.floor(varintField(timestamp, 2) / 1e6);
  }
  return exit;
}

/** Decodes a `containerd.events.TaskOOM`: the container id. */
export function decodeTaskOom(bytes: Uint8Array): { containerId: string } {
  return { containerId: stringField(readFields(bytes), 1) };
}

// Encoding, for content writes: a message whose last field is a large
// `bytes` field is written as a short head (the other fields, then that
// field's key and length) with the bytes placed right after it, in a buffer
// the caller reuses (message-buffers.ts). Protobuf allows fields in any
// order, and this is the order protobufjs writes them in.

const WIRE_VARINT = 0;
const WIRE_LENGTH_DELIMITED = 2;
const utf8 = new TextEncoder();

function writeVarint(target: Uint8Array, position: number, value: number): number {
  while (value >= 128) {
    target[position++] = (value % 128) | 0x80;
    value = Math.floor(value / 128);
  }
  target[position++] = value;
  return position;
}

function checkLength(value: number, field: string): void {
  if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`${field} must be a non-negative integer, not ${value}`);
}

/** Most bytes a `writeContentHeadInto` head takes for `ref` (and `expected`, when the head carries it). */
export function writeContentHeadBytesMax(ref: string, expected = ''): number {
  // action (2) + ref key and length (1 + 10) + ref + total (1 + 10) + expected key and length (1 + 10)
  // + expected + offset (1 + 10) + data key and length (1 + 10).
  return 57 + utf8.encode(ref).length + utf8.encode(expected).length;
}

/**
 * Writes the head of a containerd `WriteContentRequest` {action: WRITE,
 * ref, [total, expected,] offset, data} into `target` from 0 and answers
 * its length; the message is the head followed directly by `dataBytes`
 * bytes of data. `total` and `expected` go in the first message of a write:
 * containerd opens the writer with them (and answers ALREADY_EXISTS at once
 * for a blob it holds).
 */
export function writeContentHeadInto(target: Uint8Array, fields: { ref: string; offset: number; dataBytes: number; total?: number; expected?: string }): number {
  checkLength(fields.offset, 'offset');
  checkLength(fields.dataBytes, 'dataBytes');
  const ref = utf8.encode(fields.ref);
  let position = 0;
  target[position++] = (1 << 3) | WIRE_VARINT; // action
  target[position++] = 1; // WRITE
  target[position++] = (2 << 3) | WIRE_LENGTH_DELIMITED; // ref
  position = writeVarint(target, position, ref.length);
  target.set(ref, position);
  position += ref.length;
  if (fields.total !== undefined) {
    checkLength(fields.total, 'total');
    target[position++] = (3 << 3) | WIRE_VARINT; // total
    position = writeVarint(target, position, fields.total);
  }
  if (fields.expected !== undefined) {
    const expected = utf8.encode(fields.expected);
    target[position++] = (4 << 3) | WIRE_LENGTH_DELIMITED; // expected
    position = writeVarint(target, position, expected.length);
    target.set(expected, position);
    position += expected.length;
  }
  target[position++] = (5 << 3) | WIRE_VARINT; // offset
  position = writeVarint(target, position, fields.offset);
  target[position++] = (6 << 3) | WIRE_LENGTH_DELIMITED; // data
  position = writeVarint(target, position, fields.dataBytes);
  return position;
}

/** Most bytes a `writeBytesFieldHeadInto` head takes: a one-byte key and a length of up to 10. */
export const BYTES_FIELD_HEAD_BYTES_MAX = 11;

/**
 * Writes the key and length of `bytes` field `fieldNumber` (1 to 15) into
 * `target` from 0 and answers the head's length: a message of that one
 * field is the head followed directly by `dataBytes` bytes (a peer's
 * `hivemind.images.ReadChunk`, proto/images.proto).
 */
export function writeBytesFieldHeadInto(target: Uint8Array, fieldNumber: number, dataBytes: number): number {
  if (!Number.isInteger(fieldNumber) || fieldNumber < 1 || fieldNumber > 15) throw new RangeError(`fieldNumber must be 1 to 15, not ${fieldNumber}`);
  checkLength(dataBytes, 'dataBytes');
  target[0] = (fieldNumber << 3) | WIRE_LENGTH_DELIMITED;
  return writeVarint(target, 1, dataBytes);
}

function varintBytes(value: number): number {
  let bytes = 1;
  while (value >= 128) {
    value = Math.floor(value / 128);
    bytes += 1;
  }
  return bytes;
}

/**
 * Encodes a containerd `WriteContentRequest` {action: COMMIT, ref, total,
 * expected, offset, [data,] labels} into a fresh buffer after `prefixBytes`
 * bytes left free at its front (for gRPC's framing, content-write.ts);
 * answers the buffer, whose message ends at its end. `data` makes it a
 * whole small blob in one message.
 */
export function encodeContentCommit(fields: { ref: string; offset: number; total: number; expected: string; labels: Record<string, string>; data?: Uint8Array }, prefixBytes: number): Buffer {
  checkLength(fields.offset, 'offset');
  checkLength(fields.total, 'total');
  checkLength(prefixBytes, 'prefixBytes');
  const ref = utf8.encode(fields.ref);
  const expected = utf8.encode(fields.expected);
  const entries = Object.entries(fields.labels).map(([key, value]) => {
    const keyBytes = utf8.encode(key);
    const valueBytes = utf8.encode(value);
    const entryBytes = 1 + varintBytes(keyBytes.length) + keyBytes.length + 1 + varintBytes(valueBytes.length) + valueBytes.length;
    return { keyBytes, valueBytes, entryBytes };
  });
  const dataBytes = fields.data?.length ?? 0;
  let size = 2 + 1 + varintBytes(ref.length) + ref.length + 1 + varintBytes(fields.total) + 1 + varintBytes(expected.length) + expected.length + 1 + varintBytes(fields.offset);
  if (fields.data !== undefined) size += 1 + varintBytes(dataBytes) + dataBytes;
  for (const entry of entries) size += 1 + varintBytes(entry.entryBytes) + entry.entryBytes;
  const buffer = Buffer.allocUnsafe(prefixBytes + size);
  let position = prefixBytes;
  const bytesField = (number: number, bytes: Uint8Array): void => {
    buffer[position++] = (number << 3) | WIRE_LENGTH_DELIMITED;
    position = writeVarint(buffer, position, bytes.length);
    buffer.set(bytes, position);
    position += bytes.length;
  };
  buffer[position++] = (1 << 3) | WIRE_VARINT; // action
  buffer[position++] = 2; // COMMIT
  bytesField(2, ref);
  buffer[position++] = (3 << 3) | WIRE_VARINT; // total
  position = writeVarint(buffer, position, fields.total);
  bytesField(4, expected);
  buffer[position++] = (5 << 3) | WIRE_VARINT; // offset
  position = writeVarint(buffer, position, fields.offset);
  if (fields.data !== undefined) bytesField(6, fields.data);
  for (const entry of entries) {
    // A map entry is a message of key (1) and value (2).
    buffer[position++] = (7 << 3) | WIRE_LENGTH_DELIMITED;
    position = writeVarint(buffer, position, entry.entryBytes);
    bytesField(1, entry.keyBytes);
    bytesField(2, entry.valueBytes);
  }
  assert(position === buffer.length, () => `encodeContentCommit wrote ${position - prefixBytes} bytes of ${size}`);
  return buffer;
}
