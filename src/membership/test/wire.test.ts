/**
 * The sealed envelope and the message parser against hostile input: random
 * bytes, truncations, flipped bits, another key, and well-sealed garbage.
 * Every case must come back as a refusal value, never an exception.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { randomBytes } from 'node:crypto';
import { Packr } from 'msgpackr';
import { SeededRandom } from '../../../consensus/core/random.js';
import { deriveGossipKey, ENVELOPE_OVERHEAD_BYTES, EnvelopeKind, open, seal } from '../crypto.js';
import type { Message } from '../messages.js';
import { decodeMessage, encodeMessage } from '../wire.js';

const key = deriveGossipKey(randomBytes(32));
const otherKey = deriveGossipKey(randomBytes(32));

const samples: Message[] = [
  { type: 'ping', sequence: 1, from: 'a', target: 'b', piggyback: [{ type: 'alive', id: 'c', address: '127.0.0.1:7072', meta: { api: '127.0.0.1:7070', labels: '{"zone":"é"}' }, incarnation: 1_700_000_000 }] },
  { type: 'ping', sequence: 2, from: 'a', piggyback: [] },
  { type: 'ping-req', sequence: 3, from: 'a', target: 'b', targetAddress: '[::1]:7072', piggyback: [{ type: 'suspect', id: 'b', incarnation: 4, from: 'a' }] },
  { type: 'ack', sequence: 4, from: 'b', piggyback: [{ type: 'dead', id: 'd', incarnation: 9, from: 'd' }] },
  { type: 'nack', sequence: 5, from: 'b', piggyback: [] },
  { type: 'gossip', from: 'b', piggyback: [] },
  { type: 'sync', from: 'a', reply: true, members: [{ id: 'a', address: 'h:1', meta: {}, incarnation: 0, state: 'left' }], piggyback: [] },
];

test('every message survives encode, seal, open, decode unchanged', () => {
  for (const message of samples) {
    const sealed = seal(key, EnvelopeKind.datagram, encodeMessage(message));
    const opened = open(key, EnvelopeKind.datagram, sealed);
    assert.ok(opened.ok);
    assert.equal(decodeMessage(opened.plaintext), message);
  }
});

test('random bytes, truncations and flipped bits are refused, never thrown', () => {
  const random = new SeededRandom(7);
  const sealed = seal(key, EnvelopeKind.datagram, encodeMessage(samples[0]!));
  for (let i = 0; i < 2000; i++) {
    const garbage = randomBytes(random.below(1500));
    if (garbage.length > 0 && random.chance(0.5)) garbage[0] = 1; // past the version check
    assert.not.ok(open(key, EnvelopeKind.datagram, garbage).ok);
    const parsed = decodeMessage(garbage); // must not throw
    assert.ok(parsed === undefined || typeof parsed.type === 'string');
  }
  for (let length = 0; length < sealed.length; length++) {
    const result = open(key, EnvelopeKind.datagram, sealed.subarray(0, length));
    assert.not.ok(result.ok, `truncated to ${length}`);
    if (!result.ok) assert.is(result.reason, length < ENVELOPE_OVERHEAD_BYTES ? 'short' : 'auth');
  }
  for (let bit = 0; bit < sealed.length * 8; bit++) {
    const flipped = Buffer.from(sealed);
    flipped[bit >> 3]! ^= 1 << (bit & 7);
    const result = open(key, EnvelopeKind.datagram, flipped);
    assert.not.ok(result.ok, `bit ${bit} flipped`);
  }
});

test('another key, another version, another kind: refused with the reason', () => {
  const sealed = seal(key, EnvelopeKind.datagram, encodeMessage(samples[1]!));
  assert.equal(open(otherKey, EnvelopeKind.datagram, sealed), { ok: false, reason: 'auth' });
  assert.equal(open(key, EnvelopeKind.streamRequest, sealed), { ok: false, reason: 'kind' });
  const versioned = Buffer.from(sealed);
  versioned[0] = 2;
  assert.equal(open(key, EnvelopeKind.datagram, versioned), { ok: false, reason: 'version' });
});

test('well-sealed garbage does not parse: wrong shapes, types, limits', () => {
  const packr = new Packr({ useRecords: false });
  const bad: unknown[] = [
    null, 42, 'ping', [], {},
    { type: 'ping', from: 'a', piggyback: [] }, // no sequence
    { type: 'ping', sequence: -1, from: 'a', piggyback: [] },
    { type: 'ping', sequence: 1.5, from: 'a', piggyback: [] },
    { type: 'ping', sequence: 2 ** 32, from: 'a', piggyback: [] },
    { type: 'ping', sequence: 1, from: '', piggyback: [] },
    { type: 'ping', sequence: 1, from: 'x'.repeat(129), piggyback: [] },
    { type: 'ping', sequence: 1, from: 'a', piggyback: {} },
    { type: 'ping', sequence: 1, from: 'a', target: 5, piggyback: [] },
    { type: 'ping', sequence: 1, from: 'a', piggyback: [{ type: 'alive', id: 'b', address: 'h:1', meta: { k: 5 }, incarnation: 0 }] },
    { type: 'ping', sequence: 1, from: 'a', piggyback: [{ type: 'alive', id: 'b', address: 'h:1', meta: {}, incarnation: 0 }, { type: 'zombie', id: 'b', incarnation: 0 }] },
    { type: 'ping', sequence: 1, from: 'a', piggyback: Array.from({ length: 257 }, () => ({ type: 'dead', id: 'b', incarnation: 0, from: 'c' })) },
    { type: 'ping-req', sequence: 1, from: 'a', target: 'b', piggyback: [] },
    { type: 'sync', from: 'a', reply: 'yes', members: [], piggyback: [] },
    { type: 'sync', from: 'a', reply: true, members: [{ id: 'b', address: 'h:1', meta: {}, incarnation: 0, state: 'undead' }], piggyback: [] },
    { type: 'teleport', from: 'a', piggyback: [] },
  ];
  for (const value of bad) {
    const sealed = seal(key, EnvelopeKind.datagram, packr.pack(value));
    const opened = open(key, EnvelopeKind.datagram, sealed);
    assert.ok(opened.ok);
    assert.is(decodeMessage(opened.plaintext), undefined, JSON.stringify(value)?.slice(0, 80));
  }
  const random = new SeededRandom(3);
  for (let i = 0; i < 2000; i++) {
    const bytes = encodeMessage(samples[random.below(samples.length)]!);
    bytes[random.below(bytes.length)] = random.below(256);
    const parsed = decodeMessage(bytes.subarray(0, 1 + random.below(bytes.length))); // must not throw; may parse
    assert.ok(parsed === undefined || typeof parsed.type === 'string');
  }
});

test.run();
