/**
 * The sealed envelope every gossip datagram and push-pull frame travels in:
 *
 *   version (1 byte) | kind (1 byte) | nonce (12 bytes) | ciphertext | tag (16 bytes)
 *
 * AES-256-GCM under a key derived with HKDF-SHA256 from the cluster key
 * (`<dataDir>/cluster.key`, info `hivemind/gossip/v1`). The issue asks for a
 * key derived from the join token; every member holds the cluster key for
 * as long as it is a member, while the token rotates, so the cluster key is
 * the one secret all members share at all times. Version and kind are
 * authenticated as associated data, so a datagram cannot be replayed as a
 * stream frame or under another version. The nonce is 12 random bytes per
 * message (a collision needs ~2^48 messages under one key).
 */
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import { assert } from '../../consensus/core/assert.js';

/** The envelope's version byte; a receiver drops any other. */
export const ENVELOPE_VERSION = 1;
/** Bytes the envelope adds to a plaintext. */
export const ENVELOPE_OVERHEAD_BYTES = 2 + 12 + 16;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
const KEY_BYTES = 32;

/** What a sealed payload is: a UDP datagram, or a push-pull request or answer over TCP. */
export const EnvelopeKind = { datagram: 1, streamRequest: 2, streamAnswer: 3 } as const;
export type EnvelopeKind = (typeof EnvelopeKind)[keyof typeof EnvelopeKind];

/** Why an envelope was refused; the metrics' `reason` label. */
export type OpenFailure = 'short' | 'version' | 'kind' | 'auth';

/** The gossip key of a cluster, from its 32-byte cluster key. */
export function deriveGossipKey(clusterKey: Uint8Array): Buffer {
  assert(clusterKey.length === KEY_BYTES, `gossip: the cluster key must be ${KEY_BYTES} bytes, got ${clusterKey.length}`);
  return Buffer.from(hkdfSync('sha256', clusterKey, Buffer.alloc(0), 'hivemind/gossip/v1', KEY_BYTES));
}

/** Encrypts and authenticates `plaintext` as one envelope of `kind`. */
export function seal(key: Buffer, kind: EnvelopeKind, plaintext: Uint8Array): Buffer {
  const header = Buffer.from([ENVELOPE_VERSION, kind]);
  const nonce = randomBytes(NONCE_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key, nonce);
  cipher.setAAD(header);
  const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return Buffer.concat([header, nonce, body, cipher.getAuthTag()]);
}

/** Opens an envelope of `kind`; a failure is a value (the packet is dropped), never an exception. */
export function open(key: Buffer, kind: EnvelopeKind, envelope: Uint8Array): { ok: true; plaintext: Buffer } | { ok: false; reason: OpenFailure } {
  if (envelope.length < ENVELOPE_OVERHEAD_BYTES) return { ok: false, reason: 'short' };
  if (envelope[0] !== ENVELOPE_VERSION) return { ok: false, reason: 'version' };
  if (envelope[1] !== kind) return { ok: false, reason: 'kind' };
  const data = Buffer.from(envelope.buffer, envelope.byteOffset, envelope.length);
  const nonce = data.subarray(2, 2 + NONCE_BYTES);
  const tag = data.subarray(data.length - TAG_BYTES);
  const body = data.subarray(2 + NONCE_BYTES, data.length - TAG_BYTES);
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, nonce);
    decipher.setAAD(data.subarray(0, 2));
    decipher.setAuthTag(tag);
    return { ok: true, plaintext: Buffer.concat([decipher.update(body), decipher.final()]) };
  } catch {
    return { ok: false, reason: 'auth' };
  }
}
