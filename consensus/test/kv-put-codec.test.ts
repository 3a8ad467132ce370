// The hand-written PutRequest / PutResponse codec (consensus/server/kv-put-codec.ts)
// against proto-loader's codecs for the same messages: what one encodes, the other
// decodes the same, and malformed requests are refused with an Error, never a crash.
// Seeded; SEED=N replays a run.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { SeededRandom } from '../core/random.js';
import { decodePutRequest, encodePutResponse } from '../server/kv-put-codec.js';
import { kvServiceDefinition } from '../server/kv-service.js';

const put = kvServiceDefinition().service.Put!;
const seed = Number(process.env.SEED ?? 1);

/** A whole number in [low, high). */
function between(random: SeededRandom, low: number, high: number): number {
  return low + random.below(high - low);
}

function randomBytes(random: SeededRandom, lengthMax: number): Buffer {
  const bytes = Buffer.alloc(between(random, 0, lengthMax + 1));
  for (let offset = 0; offset < bytes.length; offset++) bytes[offset] = between(random, 0, 256);
  return bytes;
}

function randomText(random: SeededRandom): string {
  const alphabet = ['a', 'Z', '7', '-', 'é', '漢', '🙂', ' '];
  let text = '';
  for (let count = between(random, 0, 12); count > 0; count--) text += alphabet[between(random, 0, alphabet.length)]!;
  return text;
}

test('decodes what proto-loader encodes, with key and value as views', () => {
  const random = new SeededRandom(seed);
  for (let round = 0; round < 500; round++) {
    const request = { key: randomBytes(random, 40), value: randomBytes(random, 600), request_id: between(random, 0, 2) === 0 ? '' : randomText(random) };
    const bytes = put.requestSerialize(request);
    const expected = put.requestDeserialize(bytes) as { key: Buffer; value: Buffer; request_id: string };
    const decoded = decodePutRequest(bytes);
    assert.equal(Buffer.from(decoded.key), Buffer.from(expected.key), `seed ${seed} round ${round}: key`);
    assert.equal(Buffer.from(decoded.value), Buffer.from(expected.value), `seed ${seed} round ${round}: value`);
    assert.is(decoded.request_id, expected.request_id, `seed ${seed} round ${round}: request_id`);
    if (decoded.value.length > 0) assert.is(decoded.value.buffer, bytes.buffer, 'value is a view into the request, not a copy');
  }
});

test('an empty request is a Put of empty fields; a repeated field keeps its last value; unknown fields are skipped', () => {
  assert.equal(decodePutRequest(new Uint8Array(0)), { key: new Uint8Array(0), value: new Uint8Array(0), request_id: '' });
  // key "a", then key "bc"; an unknown varint field 9, fixed64 field 10, fixed32 field 11, bytes field 12.
  const bytes = Buffer.from([0x0a, 1, 0x61, 0x0a, 2, 0x62, 0x63, 0x48, 0x96, 0x01, 0x51, 1, 2, 3, 4, 5, 6, 7, 8, 0x5d, 1, 2, 3, 4, 0x62, 1, 0xff, 0x12, 1, 0x76]);
  const decoded = decodePutRequest(bytes);
  assert.equal(Buffer.from(decoded.key).toString(), 'bc');
  assert.equal(Buffer.from(decoded.value).toString(), 'v');
  assert.is(decoded.request_id, '');
  const expected = put.requestDeserialize(bytes) as { key: Buffer; value: Buffer };
  assert.equal(Buffer.from(expected.key).toString(), 'bc', 'proto-loader reads the same');
});

test('malformed requests are refused with an error naming the problem', () => {
  const cases: [number[], RegExp][] = [
    [[0x0a], /varint at byte 1 runs past the end/],
    [[0x0a, 5, 1, 2], /declares 5 bytes, past the end/],
    [[0x08, 1], /field 1 at byte 0 has wire type 0, not 2/],
    [[0x1d, 1, 2, 3, 4], /field 3 at byte 0 has wire type 5, not 2/],
    [[0x4b], /wire type 3/],
    [[0x02, 0], /number 0/],
    [[0x49, 1, 2], /runs past the end/],
    [[0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01], /longer than 10 bytes/],
  ];
  for (const [bytes, pattern] of cases) {
    assert.throws(() => decodePutRequest(Buffer.from(bytes)), pattern, `bytes ${Buffer.from(bytes).toString('hex')}`);
  }
  // Whatever the bytes, decoding returns or throws an Error: nothing else escapes.
  const random = new SeededRandom(seed);
  for (let round = 0; round < 2000; round++) {
    const bytes = randomBytes(random, 30);
    try {
      decodePutRequest(bytes);
    } catch (error) {
      assert.instance(error, Error, `seed ${seed} round ${round}: ${bytes.toString('hex')}`);
    }
  }
});

test('encodes the answer byte for byte as proto-loader does, and refuses what is not a log position', () => {
  const random = new SeededRandom(seed);
  const values = [0, 1, 127, 128, 300, 2 ** 31, 2 ** 32 + 5, Number.MAX_SAFE_INTEGER];
  for (let round = 0; round < 300; round++) values.push(between(random, 0, 2 ** 31) * between(random, 1, 2 ** 20));
  for (let round = 0; round < values.length; round++) {
    const response = { index: values[round]!, term: values[(round * 7) % values.length]! };
    const bytes = encodePutResponse(response);
    assert.equal(bytes, put.responseSerialize(response), `index ${response.index} term ${response.term}`);
    assert.equal(put.responseDeserialize(bytes), response);
  }
  assert.throws(() => encodePutResponse({ index: -1, term: 1 }), /non-negative safe integers/);
  assert.throws(() => encodePutResponse({ index: 1.5, term: 1 }), /non-negative safe integers/);
  assert.throws(() => encodePutResponse({ index: 2 ** 53, term: 1 }), /non-negative safe integers/);
});

test.run();
