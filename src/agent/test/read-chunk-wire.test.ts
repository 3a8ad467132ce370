// ReadChunks as the blob Read's two raw ends frame and read them
// (read-chunk-wire.ts): messages written with writeReadChunkHead and cut
// anywhere come back as the same bytes, and what is not a ReadChunk is
// refused with what was wrong, never read on.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { protoCodec } from '../../../consensus/transport/proto-codec.js';
import { IMAGES_MESSAGES } from '../image-service.js';
import { READ_CHUNK_HEAD_BYTES_MAX, ReadChunkParser, writeReadChunkHead } from '../read-chunk-wire.js';

const SEED = Number(process.env.SEED ?? 20261206);

/** A small seeded generator (xorshift32), so a failure replays with SEED. */
function generator(seed: number): (below: number) => number {
  let state = seed >>> 0 || 1;
  return (below) => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) % below;
  };
}

function frame(data: Buffer): Buffer {
  const buffer = Buffer.alloc(READ_CHUNK_HEAD_BYTES_MAX + data.length);
  const start = writeReadChunkHead(buffer, data.length);
  data.copy(buffer, start);
  return buffer.subarray(0, start + data.length);
}

function readAll(parser: ReadChunkParser, cuts: Buffer[]): Buffer | string {
  const pieces: Buffer[] = [];
  for (const cut of cuts) {
    const read = parser.push(cut);
    if (typeof read === 'string') return read;
    pieces.push(...read.map((piece) => Buffer.from(piece)));
  }
  return Buffer.concat(pieces);
}

test(`messages cut anywhere read back as their data, byte for byte (seed ${SEED})`, () => {
  const random = generator(SEED);
  for (let round = 0; round < 50; round++) {
    const sizes = Array.from({ length: 1 + random(6) }, () => [0, 1, 127, 128, 16_383, 16_384, 70_000][random(7)]!);
    const datas = sizes.map((size) => Buffer.from(Array.from({ length: size }, () => random(256))));
    const stream = Buffer.concat(datas.map(frame));
    const cuts: Buffer[] = [];
    for (let offset = 0; offset < stream.length; ) {
      const length = 1 + random(random(2) === 0 ? 7 : 20_000);
      cuts.push(stream.subarray(offset, offset + length));
      offset += length;
    }
    const parser = new ReadChunkParser(1024 * 1024);
    const read = readAll(parser, cuts);
    assert.ok(Buffer.isBuffer(read), `round ${round}: ${String(read)}`);
    assert.ok((read as Buffer).equals(Buffer.concat(datas)), `round ${round}: the data differs`);
    assert.ok(parser.atBoundary, `round ${round}: ends at a message's end`);
  }
});

test('a frame is the ReadChunk protobuf encodes, behind gRPC\'s prefix', () => {
  const codec = protoCodec<{ data: Uint8Array }>(IMAGES_MESSAGES.ReadChunk);
  for (const size of [1, 300, 200_000]) {
    const data = Buffer.alloc(size, 7);
    const framed = frame(data);
    assert.is(framed[0], 0);
    assert.is(framed.readUInt32BE(1), framed.length - 5);
    assert.ok(Buffer.from(codec.decode(framed.subarray(5)).data).equals(data), `size ${size}`);
  }
  assert.equal([...frame(Buffer.alloc(0))], [0, 0, 0, 0, 0], 'an empty chunk is an empty message');
});

test('a stream cut inside a message is not at a boundary', () => {
  const parser = new ReadChunkParser(1024);
  const framed = frame(Buffer.alloc(100, 1));
  assert.ok(Array.isArray(parser.push(framed.subarray(0, 3))));
  assert.not.ok(parser.atBoundary, 'inside the prefix');
  assert.ok(Array.isArray(parser.push(framed.subarray(3, 50))));
  assert.not.ok(parser.atBoundary, 'inside the data');
  assert.ok(Array.isArray(parser.push(framed.subarray(50))));
  assert.ok(parser.atBoundary);
});

test('what is not a ReadChunk is refused with the reason', () => {
  const refusal = (bytes: number[], max = 1024): string => {
    const read = new ReadChunkParser(max).push(Buffer.from(bytes));
    assert.type(read, 'string', `${JSON.stringify(bytes)} is refused`);
    return read as string;
  };
  assert.match(refusal([1, 0, 0, 0, 2, 0x0a, 0]), /compressed/);
  assert.match(refusal([0, 0, 0, 8, 0]), /over the 1024/);
  assert.match(refusal([0, 0, 0, 0, 2, 0x12, 0]), /tag byte 18/);
  assert.match(refusal([0, 0, 0, 0, 3, 0x0a, 5, 1]), /data field of 5 bytes in a message of 3/);
  assert.match(refusal([0, 0, 0, 0, 9, 0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]), /over 32 bits/);
});

test.run();
