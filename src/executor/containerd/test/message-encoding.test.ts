// The hand-encoded content messages (protobuf-wire.ts) decode, with
// protobufjs and the real .proto files, to the messages they stand for, at
// the varint boundaries of every field that varies; and the reusable
// buffers (message-buffers.ts) hand out at most their count, reuse what is
// given back, and let a wait be abandoned.
import { fileURLToPath } from 'node:url';
import * as protoLoader from '@grpc/proto-loader';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { MessageBuffers } from '../message-buffers.js';
import { bytesFieldHeadBytes, bytesFieldHeadInto, writeContentHeadBytesMax, writeContentHeadInto } from '../protobuf-wire.js';

const PROTO = fileURLToPath(new URL('../../../../../proto/', import.meta.url));
// Decoded as containerd's client and a fetching peer decode them (the same loader options).
const content = protoLoader.loadSync('content.proto', { includeDirs: [`${PROTO}containerd/`], keepCase: true, longs: Number, enums: String, defaults: true, oneofs: true });
const images = protoLoader.loadSync(`${PROTO}images.proto`, { keepCase: true, longs: Number, defaults: true });
const decodeWrite = (content['containerd.services.content.v1.Content'] as protoLoader.ServiceDefinition).Write!.requestDeserialize;
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

test('a ReadChunk head followed by its data decodes to the chunk', () => {
  for (const dataBytes of [0, 1, 127, 128, 16_384, 1024 * 1024 + 3]) {
    const buffer = Buffer.alloc(16 + dataBytes);
    const start = bytesFieldHeadInto(buffer, 1, dataBytes);
    assert.is(start, bytesFieldHeadBytes(1, dataBytes));
    const payload = data(dataBytes);
    payload.copy(buffer, start);
    const decoded = decodeReadChunk(buffer.subarray(0, start + dataBytes)) as { data: Uint8Array };
    assert.ok(Buffer.from(decoded.data).equals(payload));
  }
});

test('bad lengths are refused, naming the field', () => {
  const buffer = Buffer.alloc(64);
  assert.throws(() => writeContentHeadInto(buffer, { ref: 'r', offset: -1, dataBytes: 0 }), /offset must be a non-negative integer/);
  assert.throws(() => writeContentHeadInto(buffer, { ref: 'r', offset: 0, dataBytes: 1.5 }), /dataBytes must be a non-negative integer/);
  assert.throws(() => bytesFieldHeadInto(buffer, 1, Number.NaN), /dataBytes must be a non-negative integer/);
});

test('message buffers: at most countMax out, given-back ones reused, a wait handed the next one back or abandoned', async () => {
  const buffers = new MessageBuffers(8, 2);
  const first = buffers.takeNow()!;
  const second = buffers.takeNow()!;
  assert.ok(first !== second);
  assert.is(buffers.takeNow(), undefined, 'a third buffer while two are out');
  const waiting = buffers.take();
  buffers.give(first);
  assert.is(await waiting, first, 'the waiter got the buffer given back');
  const abort = new AbortController();
  const abandoned = buffers.take(abort.signal);
  abort.abort();
  assert.is(await abandoned, undefined);
  buffers.give(second);
  assert.is(buffers.takeNow(), second, 'the abandoned wait did not take the buffer given back');
  assert.throws(() => buffers.give(Buffer.alloc(4)), /did not make/);
});

test.run();
