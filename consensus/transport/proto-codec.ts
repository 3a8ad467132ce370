/**
 * The protobuf wire format of Hivemind's own peer services (proto/raft.proto,
 * proto/cluster.proto, proto/images.proto), by hand, and gRPC service
 * definitions built from it. These messages hold strings, bytes, bools,
 * uint64s, `map<string, string>` and `repeated string` only, so a table of
 * fields per message is enough; loading the .proto files through
 * `@grpc/proto-loader` (protobufjs) at start cost an agent about 1.5 MiB of
 * heap and a tenth of a second (docs/operations.md, "Footprint").
 *
 * What goes on the wire is what protobufjs writes for the same object (each
 * field present in the object, in field-number order; a map's entries in the
 * object's key order), and a decoded message is what proto-loader presents
 * with `keepCase`, `longs: Number` and `defaults` (every field there, absent
 * ones at their default; bytes as Buffers viewing the received message).
 * Unknown fields are skipped, so a newer peer may add fields.
 * src/agent/test/proto-codec.test.ts checks both against protobufjs.
 *
 * Encoding a field of the wrong type is a bug here and throws; decoding bytes
 * that are not such a message throws a `ProtoDecodeError` (gRPC then ends the
 * call with INTERNAL, as it did with proto-loader's decoder).
 */
import type * as grpc from '@grpc/grpc-js';

/** How a field is typed in its .proto file. */
export type ProtoFieldKind = 'string' | 'bytes' | 'bool' | 'uint64' | 'string-map' | 'strings';

/** One field of a message: its name as in the .proto file (`keepCase`), number and kind. */
export interface ProtoField {
  readonly name: string;
  readonly number: number;
  readonly kind: ProtoFieldKind;
}

/** Encodes and decodes one message type. */
export interface ProtoCodec<T> {
  encode(message: T): Buffer;
  /** Throws ProtoDecodeError when `bytes` is not such a message. */
  decode(bytes: Uint8Array): T;
}

/** Bytes that are not the message they were decoded as. */
export class ProtoDecodeError extends Error {
  override readonly name = 'ProtoDecodeError';
}

const WIRE_VARINT = 0;
const WIRE_FIXED64 = 1;
const WIRE_LENGTH = 2;
const WIRE_FIXED32 = 5;

function wireTypeOf(kind: ProtoFieldKind): number {
  return kind === 'bool' || kind === 'uint64' ? WIRE_VARINT : WIRE_LENGTH;
}

/** The codec of a message made of `fields` (numbers unique, each at least 1). */
export function protoCodec<T>(fields: readonly ProtoField[]): ProtoCodec<T> {
  const sorted = [...fields].sort((a, b) => a.number - b.number);
  const byNumber = new Map(sorted.map((field) => [field.number, field]));
  if (byNumber.size !== fields.length || sorted.some((field) => !Number.isInteger(field.number) || field.number < 1)) {
    throw new Error(`protoCodec: field numbers must be unique whole numbers from 1 (${fields.map((field) => `${field.name}=${field.number}`).join(', ')})`);
  }
  return {
    encode: (message) => encodeMessage(sorted, message as Record<string, unknown>),
    decode: (bytes) => decodeMessage(sorted, byNumber, bytes) as T,
  };
}

// ---------------------------------------------------------------------------
// Encoding

/** How many bytes protobuf's varint of `value` (a non-negative integer) takes. */
export function varintBytes(value: number): number {
  let bytes = 1;
  while (value >= 128) {
    value = Math.floor(value / 128);
    bytes++;
  }
  return bytes;
}

/** A field's value made ready to write: its encoded size known. */
type Prepared =
  | { field: ProtoField; kind: 'varint'; value: number }
  | { field: ProtoField; kind: 'bytes'; value: Uint8Array }
  | { field: ProtoField; kind: 'string'; value: string; bytes: number }
  | { field: ProtoField; kind: 'entry'; key: string; keyBytes: number; value: string; valueBytes: number };

function prepare(fields: readonly ProtoField[], message: Record<string, unknown>): { prepared: Prepared[]; size: number } {
  const prepared: Prepared[] = [];
  let size = 0;
  const text = (field: ProtoField, value: string): void => {
    const bytes = Buffer.byteLength(value, 'utf8');
    prepared.push({ field, kind: 'string', value, bytes });
    size += varintBytes(field.number * 8) + varintBytes(bytes) + bytes;
  };
  for (const field of fields) {
    const value = message[field.name];
    if (value === undefined || value === null) continue;
    switch (field.kind) {
      case 'string':
        text(field, String(value));
        break;
      case 'bytes': {
        const bytes = bytesOf(field, value);
        prepared.push({ field, kind: 'bytes', value: bytes });
        size += varintBytes(field.number * 8) + varintBytes(bytes.byteLength) + bytes.byteLength;
        break;
      }
      case 'bool':
      case 'uint64': {
        const number = field.kind === 'bool' ? (value ? 1 : 0) : uint64Of(field, value);
        prepared.push({ field, kind: 'varint', value: number });
        size += varintBytes(field.number * 8) + varintBytes(number);
        break;
      }
      case 'strings':
        if (!Array.isArray(value)) throw new TypeError(`field ${field.name} must be a list of strings`);
        for (const item of value) text(field, String(item));
        break;
      case 'string-map':
        if (typeof value !== 'object') throw new TypeError(`field ${field.name} must be an object of strings`);
        for (const [key, item] of Object.entries(value)) {
          const entryValue = String(item);
          const keyBytes = Buffer.byteLength(key, 'utf8');
          const valueBytes = Buffer.byteLength(entryValue, 'utf8');
          const entryBytes = 1 + varintBytes(keyBytes) + keyBytes + 1 + varintBytes(valueBytes) + valueBytes;
          prepared.push({ field, kind: 'entry', key, keyBytes, value: entryValue, valueBytes });
          size += varintBytes(field.number * 8) + varintBytes(entryBytes) + entryBytes;
        }
        break;
    }
  }
  return { prepared, size };
}

function encodeMessage(fields: readonly ProtoField[], message: Record<string, unknown>): Buffer {
  const { prepared, size } = prepare(fields, message);
  const buffer = Buffer.allocUnsafe(size);
  let at = 0;
  const varint = (value: number): void => {
    while (value >= 128) {
      buffer[at++] = (value % 128) | 0x80;
      value = Math.floor(value / 128);
    }
    buffer[at++] = value;
  };
  const string = (value: string, bytes: number): void => {
    varint(bytes);
    at += buffer.write(value, at, bytes, 'utf8');
  };
  for (const item of prepared) {
    switch (item.kind) {
      case 'varint':
        varint(item.field.number * 8 + WIRE_VARINT);
        varint(item.value);
        break;
      case 'bytes':
        varint(item.field.number * 8 + WIRE_LENGTH);
        varint(item.value.byteLength);
        buffer.set(item.value, at);
        at += item.value.byteLength;
        break;
      case 'string':
        varint(item.field.number * 8 + WIRE_LENGTH);
        string(item.value, item.bytes);
        break;
      case 'entry':
        varint(item.field.number * 8 + WIRE_LENGTH);
        varint(1 + varintBytes(item.keyBytes) + item.keyBytes + 1 + varintBytes(item.valueBytes) + item.valueBytes);
        buffer[at++] = (1 << 3) | WIRE_LENGTH;
        string(item.key, item.keyBytes);
        buffer[at++] = (2 << 3) | WIRE_LENGTH;
        string(item.value, item.valueBytes);
        break;
    }
  }
  if (at !== size) throw new Error(`protoCodec: wrote ${at} bytes of a message sized ${size}`);
  return buffer;
}

function bytesOf(field: ProtoField, value: unknown): Uint8Array {
  if (!(value instanceof Uint8Array)) throw new TypeError(`field ${field.name} must be bytes (a Uint8Array)`);
  return value;
}

function uint64Of(field: ProtoField, value: unknown): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) throw new TypeError(`field ${field.name} must be a whole number from 0 to 2^53 - 1, got ${String(value)}`);
  return value;
}

// ---------------------------------------------------------------------------
// Decoding

/** A varint of a 64-bit value takes at most 10 bytes. */
const VARINT_BYTES_MAX = 10;

/**
 * Reads protobuf varints and length-delimited fields from one message,
 * refusing what runs past its end: `fail` makes the error from a message
 * naming the byte (`a varint at byte 3 runs past the end`). Length-delimited
 * fields are views into `bytes` (a Buffer's are Buffers). Also the KV
 * server's Put codec's reader (consensus/server/kv-put-codec.ts).
 */
export class ProtoReader<Bytes extends Uint8Array = Uint8Array> {
  offset = 0;

  constructor(
    private readonly bytes: Bytes,
    private readonly fail: (message: string) => Error,
  ) {}

  get done(): boolean {
    return this.offset >= this.bytes.length;
  }

  /** A varint as a number; exact below 2^53, which is all a tag, a length, a log position or a size needs. */
  varint(): number {
    const start = this.offset;
    let value = 0;
    let scale = 1;
    for (let count = 0; count < VARINT_BYTES_MAX; count++) {
      if (this.offset >= this.bytes.length) throw this.fail(`a varint at byte ${start} runs past the end`);
      const byte = this.bytes[this.offset++]!;
      value += (byte & 0x7f) * scale;
      if (byte < 0x80) return value;
      scale *= 128;
    }
    throw this.fail(`the varint at byte ${start} is longer than ${VARINT_BYTES_MAX} bytes`);
  }

  /** The next length-delimited field's bytes, as a view. */
  lengthDelimited(): Bytes {
    const start = this.offset;
    const length = this.varint();
    if (length > this.bytes.length - this.offset) throw this.fail(`the field at byte ${start} declares ${length} bytes, past the end of the message`);
    // A Buffer's subarray is a Buffer: the view is of the reader's own kind.
    const view = this.bytes.subarray(this.offset, this.offset + length) as Bytes;
    this.offset += length;
    return view;
  }

  /** Skips an unknown field's value of wire type `wireType`; `at` is the byte its tag began at. */
  skipValue(wireType: number, at: number): void {
    if (wireType === WIRE_VARINT) this.varint();
    else if (wireType === WIRE_FIXED64) this.skip(8, at);
    else if (wireType === WIRE_LENGTH) this.lengthDelimited();
    else if (wireType === WIRE_FIXED32) this.skip(4, at);
    else throw this.fail(`the field at byte ${at} has wire type ${wireType}, which this message does not use`);
  }

  private skip(count: number, at: number): void {
    if (count > this.bytes.length - this.offset) throw this.fail(`the field at byte ${at} runs past the end`);
    this.offset += count;
  }
}

function readerOf(bytes: Uint8Array): ProtoReader<Buffer> {
  return new ProtoReader(Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength), (message) => new ProtoDecodeError(message));
}

function defaultOf(kind: ProtoFieldKind): unknown {
  switch (kind) {
    case 'string':
      return '';
    case 'bytes':
      return Buffer.alloc(0);
    case 'bool':
      return false;
    case 'uint64':
      return 0;
    case 'strings':
      return [];
    case 'string-map':
      return {};
  }
}

function decodeMessage(fields: readonly ProtoField[], byNumber: ReadonlyMap<number, ProtoField>, bytes: Uint8Array): Record<string, unknown> {
  const message: Record<string, unknown> = {};
  for (const field of fields) message[field.name] = defaultOf(field.kind);
  const reader = readerOf(bytes);
  while (!reader.done) {
    const at = reader.offset;
    const key = reader.varint();
    const number = Math.floor(key / 8);
    const wireType = key % 8;
    const field = byNumber.get(number);
    if (field === undefined) {
      reader.skipValue(wireType, at);
      continue;
    }
    if (wireType !== wireTypeOf(field.kind)) throw new ProtoDecodeError(`field ${field.name} at byte ${at} came with wire type ${wireType}`);
    switch (field.kind) {
      case 'string':
        message[field.name] = reader.lengthDelimited().toString('utf8');
        break;
      case 'bytes':
        message[field.name] = reader.lengthDelimited();
        break;
      case 'bool':
        message[field.name] = reader.varint() !== 0;
        break;
      case 'uint64':
        message[field.name] = reader.varint();
        break;
      case 'strings':
        (message[field.name] as string[]).push(reader.lengthDelimited().toString('utf8'));
        break;
      case 'string-map': {
        const [key, value] = decodeMapEntry(reader.lengthDelimited());
        // As protobufjs: a `__proto__` key sets no entry.
        if (key !== '__proto__') (message[field.name] as Record<string, string>)[key] = value;
        break;
      }
    }
  }
  return message;
}

function decodeMapEntry(bytes: Buffer): [string, string] {
  const reader = readerOf(bytes);
  let key = '';
  let value = '';
  while (!reader.done) {
    const at = reader.offset;
    const tag = reader.varint();
    const number = Math.floor(tag / 8);
    const wireType = tag % 8;
    if ((number === 1 || number === 2) && wireType === WIRE_LENGTH) {
      const text = reader.lengthDelimited().toString('utf8');
      if (number === 1) key = text;
      else value = text;
    } else reader.skipValue(wireType, at);
  }
  return [key, value];
}

// ---------------------------------------------------------------------------
// gRPC

/** One method of a service: its name as in the .proto file, whether each side streams, and its messages. */
export interface ProtoMethod {
  readonly name: string;
  readonly requestStream: boolean;
  readonly responseStream: boolean;
  readonly request: ProtoCodec<any>;
  readonly response: ProtoCodec<any>;
}

/**
 * The gRPC service definition of `service` (its full name,
 * `hivemind.raft.RaftTransport`) for grpc-js: for `Server.addService`, and
 * for `makeGenericClientConstructor`, whose clients call each method by its
 * .proto name.
 */
export function protoServiceDefinition(service: string, methods: readonly ProtoMethod[]): grpc.ServiceDefinition {
  const definition: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
  for (const method of methods) {
    definition[method.name] = {
      path: `/${service}/${method.name}`,
      requestStream: method.requestStream,
      responseStream: method.responseStream,
      requestSerialize: (value: unknown) => method.request.encode(value),
      requestDeserialize: (bytes: Buffer) => method.request.decode(bytes),
      responseSerialize: (value: unknown) => method.response.encode(value),
      responseDeserialize: (bytes: Buffer) => method.response.decode(bytes),
      originalName: method.name.charAt(0).toLowerCase() + method.name.slice(1),
    };
  }
  return definition;
}
