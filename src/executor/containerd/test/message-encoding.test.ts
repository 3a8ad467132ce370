// The hand-encoded content WRITE (protobuf-wire.ts) decodes, with
// proto-loader and the real .proto file, to the message it stands for, at
// the varint boundaries of every field that varies; and the reusable
// buffers (message-buffers.ts) hand out at most their count and reuse what
// is given back.
import { fileURLToPath } from 'node:url';
import * as protoLoader from '@grpc/proto-loader';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { MessageBuffers } from '../message-buffers.js';
import { writeContentHeadBytesMax, writeContentHeadInto } from '../protobuf-wire.js';

const PROTO = fileURLToPath(new URL('../../../../../proto/', import.meta.url));
// Decoded as the containerd client's loader options decode them.
const content = protoLoader.loadSync('content.proto', { includeDirs: [`${PROTO}containerd/`], keepCase: true, longs: Number, enums: String, defaults: true, oneofs: true });
const decodeWrite = (content['containerd.services.content.v1.Content'] as protoLoader.ServiceDefinition).Write!.requestDeserialize;

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

test('bad lengths are refused, naming the field', () => {
  const buffer = Buffer.alloc(64);
  assert.throws(() => writeContentHeadInto(buffer, { ref: 'r', offset: -1, dataBytes: 0 }), /offset must be a non-negative integer/);
  assert.throws(() => writeContentHeadInto(buffer, { ref: 'r', offset: 0, dataBytes: 1.5 }), /dataBytes must be a non-negative integer/);
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
