// The hand-encoded content WRITE (protobuf-wire.ts), with and without the
// first message's total and expected digest, the COMMIT (labels, and data
// for a whole small blob) after gRPC's prefix, and a peer's ReadChunk, decode,
// with proto-loader and the real .proto files, to the messages they stand
// for, at the varint boundaries of every field that varies; and the reusable
// buffers (message-buffers.ts) hand out at most their count and reuse what
// is given back.
import { fileURLToPath } from 'node:url';
import * as protoLoader from '@grpc/proto-loader';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { MessageBuffers } from '../message-buffers.js';
import { GRPC_PREFIX_BYTES, framedMessage } from '../content-write.js';
import { BYTES_FIELD_HEAD_BYTES_MAX, encodeContentCommit, writeBytesFieldHeadInto, writeContentHeadBytesMax, writeContentHeadInto } from '../protobuf-wire.js';

const PROTO = fileURLToPath(new URL('../../../../../proto/', import.meta.url));
// Decoded as the containerd client's loader options decode them.
const content = protoLoader.loadSync('content.proto', { includeDirs: [`${PROTO}containerd/`], keepCase: true, longs: Number, enums: String, defaults: true, oneofs: true });
const decodeWrite = (content['containerd.services.content.v1.Content'] as protoLoader.ServiceDefinition).Write!.requestDeserialize;
const images = protoLoader.loadSync('images.proto', { includeDirs: [PROTO], keepCase: true, longs: Number, defaults: true });
const decodeReadChunk = (images['hivemind.images.Images'] as protoLoader.ServiceDefinition).Read!.responseDeserialize;

function data(bytes: number): Buffer {
  const buffer = Buffer.alloc(bytes);
  for (let index = 0; index < bytes; index += 1) buffer[index] = (index * 31 + 7) & 0xff;
  return buffer;
}

test('a WRITE head followed by its data decodes to the WriteContentRequest it stands for', () => {
  for (const ref of ['r', 'hivemind-sha256-' + 'ab'.repeat(32) + '-0a1b2c3d', 'é'.repeat(70)]) {
    for (const offset of [0, 1, 127, 128, 16_383, 16_384, 1024 * 1024, 2 ** 40 + 5]) {
      for (const dataBytes of [0, 1, 127, 128, 1024 * 1024]) {
        const buffer = Buffer.alloc(writeContentHeadBytesMax(ref) + dataBytes);
        const start = writeContentHeadInto(buffer, { ref, offset, dataBytes });
        assert.ok(start <= writeContentHeadBytesMax(ref), `head of ${start} bytes over the maximum`);
        const payload = data(dataBytes);
        payload.copy(buffer, start);
        const decoded = decodeWrite(buffer.subarray(0, start + dataBytes)) as { action: string; ref: string; offset: number; data: Uint8Array; total: number };
        assert.is(decoded.action, 'WRITE');
        assert.is(decoded.ref, ref);
        assert.is(decoded.offset, offset);
        assert.is(decoded.total, 0);
        assert.ok(Buffer.from(decoded.data).equals(payload), `data of ${dataBytes} bytes at offset ${offset}`);
      }
    }
  }
});

test('the first WRITE of a blob carries its total and expected digest', () => {
  const ref = 'hivemind-sha256-' + 'cd'.repeat(32) + '-01020304';
  const expected = 'sha256:' + 'ef'.repeat(32);
  for (const total of [0, 1, 127, 128, 12 * 1024 * 1024, 2 ** 40 + 5]) {
    const dataBytes = 300;
    const buffer = Buffer.alloc(writeContentHeadBytesMax(ref, expected) + dataBytes);
    const start = writeContentHeadInto(buffer, { ref, offset: 0, dataBytes, total, expected });
    assert.ok(start <= writeContentHeadBytesMax(ref, expected), `head of ${start} bytes over the maximum`);
    data(dataBytes).copy(buffer, start);
    const decoded = decodeWrite(buffer.subarray(0, start + dataBytes)) as { action: string; ref: string; offset: number; data: Uint8Array; total: number; expected: string };
    assert.equal([decoded.action, decoded.ref, decoded.offset, decoded.total, decoded.expected], ['WRITE', ref, 0, total, expected]);
    assert.ok(Buffer.from(decoded.data).equals(data(dataBytes)));
  }
});

test('a COMMIT, with labels and with or without data, decodes to the WriteContentRequest it stands for, after its gRPC prefix', () => {
  const ref = 'hivemind-sha256-' + 'ab'.repeat(32) + '-0a1b2c3d';
  const expected = 'sha256:' + 'ef'.repeat(32);
  const labelSets: Array<Record<string, string>> = [{}, { 'containerd.io/uncompressed': expected }, { 'containerd.io/gc.ref.content.config': expected, 'containerd.io/gc.ref.content.l.0': 'sha256:' + '01'.repeat(32), 'é': 'x'.repeat(200) }];
  for (const labels of labelSets) {
    for (const total of [0, 1, 127, 128, 12 * 1024 * 1024, 2 ** 40 + 5]) {
      for (const payload of [undefined, data(0), data(401), data(200_000)]) {
        const buffer = encodeContentCommit({ ref, offset: total, total, expected, labels, ...(payload !== undefined ? { data: payload } : {}) }, GRPC_PREFIX_BYTES);
        const framed = framedMessage(buffer, buffer.length);
        assert.is(framed[0], 0, 'not compressed');
        assert.is(framed.readUInt32BE(1), buffer.length - GRPC_PREFIX_BYTES, 'the prefix gives the message length');
        const decoded = decodeWrite(framed.subarray(GRPC_PREFIX_BYTES)) as { action: string; ref: string; offset: number; total: number; expected: string; labels: Record<string, string>; data: Uint8Array };
        assert.equal([decoded.action, decoded.ref, decoded.offset, decoded.total, decoded.expected], ['COMMIT', ref, total, total, expected]);
        assert.equal(decoded.labels, labels);
        assert.ok(Buffer.from(decoded.data).equals(payload ?? Buffer.alloc(0)), `data of ${payload?.length ?? 'no'} bytes`);
      }
    }
  }
});

test('a ReadChunk head followed by its data decodes to the ReadChunk it stands for', () => {
  for (const dataBytes of [0, 1, 127, 128, 16_383, 16_384, 1024 * 1024]) {
    const buffer = Buffer.alloc(BYTES_FIELD_HEAD_BYTES_MAX + dataBytes);
    const start = writeBytesFieldHeadInto(buffer, 1, dataBytes);
    assert.ok(start <= BYTES_FIELD_HEAD_BYTES_MAX);
    data(dataBytes).copy(buffer, start);
    const decoded = decodeReadChunk(buffer.subarray(0, start + dataBytes)) as { data: Uint8Array };
    assert.ok(Buffer.from(decoded.data).equals(data(dataBytes)), `data of ${dataBytes} bytes`);
  }
  assert.throws(() => writeBytesFieldHeadInto(Buffer.alloc(16), 16, 1), /fieldNumber must be 1 to 15/);
});

test('bad lengths are refused, naming the field', () => {
  const buffer = Buffer.alloc(64);
  assert.throws(() => writeContentHeadInto(buffer, { ref: 'r', offset: -1, dataBytes: 0 }), /offset must be a non-negative integer/);
  assert.throws(() => writeContentHeadInto(buffer, { ref: 'r', offset: 0, dataBytes: 1.5 }), /dataBytes must be a non-negative integer/);
  assert.throws(() => writeContentHeadInto(buffer, { ref: 'r', offset: 0, dataBytes: 0, total: -2 }), /total must be a non-negative integer/);
});

test('message buffers: at most countMax out at once, and given-back ones reused', () => {
  const buffers = new MessageBuffers(8, 2);
  const first = buffers.takeNow()!;
  const second = buffers.takeNow()!;
  assert.ok(first !== second);
  assert.is(buffers.takeNow(), undefined, 'a third buffer while two are out');
  buffers.give(first);
  assert.is(buffers.takeNow(), first, 'the buffer given back is reused');
  assert.throws(() => buffers.give(Buffer.alloc(4)), /did not make/);
});

test.run();
