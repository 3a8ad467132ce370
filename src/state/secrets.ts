/**
 * Sealing secrets and tokens under the cluster key (AES-256-GCM), and making
 * and hashing join tokens. These use randomness and node:crypto, so apply
 * never calls them: the API seals before proposing, and only ciphertext
 * enters the log. The cluster key itself never enters the log in clear.
 *
 * Sealed form: `ciphertext` is the encrypted bytes followed by GCM's 16-byte
 * tag; `nonce` is 12 random bytes, fresh for every seal.
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { ErrorCode, stateError, type StateError } from './errors.js';
import { assert } from '../../consensus/core/assert.js';

/** Length of the cluster key in bytes (AES-256). */
export const CLUSTER_KEY_BYTES = 32;
/** Length of a GCM nonce in bytes. */
export const NONCE_BYTES = 12;
/** Length of the GCM tag that ends every ciphertext. */
export const TAG_BYTES = 16;
/** The prefix of every join token, naming its format. */
export const TOKEN_PREFIX = 'hm1.';

/** A sealed value: what `secret.put` and `token.set` carry. */
export interface Sealed {
  ciphertext: Uint8Array;
  nonce: Uint8Array;
}

/** A fresh random cluster key (32 bytes). The caller keeps it out of the log. */
export function generateClusterKey(): Uint8Array {
  return new Uint8Array(randomBytes(CLUSTER_KEY_BYTES));
}

/**
 * What a sealed value is bound to, so a ciphertext copied onto another
 * secret does not open there. Use the same string to seal and to open.
 */
export function secretAssociatedData(tenant: string, name: string): string {
  return `hivemind/secret/${tenant}/${name}`;
}

/** What a volume's sealed key is bound to (see VolumeEncryption). */
export function volumeKeyAssociatedData(tenant: string, name: string): string {
  return `hivemind/volume-key/${tenant}/${name}`;
}

/** The associated data of the sealed join token. */
export const TOKEN_ASSOCIATED_DATA = 'hivemind/join-token';

/** Encrypts `plaintext` (bytes, or a string as UTF-8) under `key`, bound to `associatedData`. */
export function sealSecret(key: Uint8Array, plaintext: Uint8Array | string, associatedData = ''): Sealed {
  assert(key.length === CLUSTER_KEY_BYTES, `the cluster key must be ${CLUSTER_KEY_BYTES} bytes, got ${key.length}`);
  const nonce = randomBytes(NONCE_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key, nonce, { authTagLength: TAG_BYTES });
  cipher.setAAD(Buffer.from(associatedData, 'utf8'));
  const data = typeof plaintext === 'string' ? Buffer.from(plaintext, 'utf8') : plaintext;
  const ciphertext = Buffer.concat([cipher.update(data), cipher.final(), cipher.getAuthTag()]);
  return { ciphertext: new Uint8Array(ciphertext), nonce: new Uint8Array(nonce) };
}

/**
 * Decrypts a sealed value. A wrong key, wrong associated data, or any changed
 * byte gives 'secret-unreadable' (GCM authenticates everything), never
 * wrong plaintext.
 */
export function openSecret(key: Uint8Array, sealed: Sealed, associatedData = ''): { ok: true; plaintext: Uint8Array } | { ok: false; error: StateError } {
  assert(key.length === CLUSTER_KEY_BYTES, `the cluster key must be ${CLUSTER_KEY_BYTES} bytes, got ${key.length}`);
  const { ciphertext, nonce } = sealed;
  if (nonce.length !== NONCE_BYTES || ciphertext.length < TAG_BYTES) return unreadable('it is not a sealed value');
  const decipher = createDecipheriv('aes-256-gcm', key, nonce, { authTagLength: TAG_BYTES });
  decipher.setAAD(Buffer.from(associatedData, 'utf8'));
  decipher.setAuthTag(ciphertext.subarray(ciphertext.length - TAG_BYTES));
  const body = decipher.update(ciphertext.subarray(0, ciphertext.length - TAG_BYTES));
  try {
    // final() is where GCM checks the tag; its only failure is authentication.
    return { ok: true, plaintext: new Uint8Array(Buffer.concat([body, decipher.final()])) };
  } catch {
    return unreadable('the cluster key is wrong or the data was changed');
  }
}

function unreadable(reason: string): { ok: false; error: StateError } {
  return { ok: false, error: stateError(ErrorCode.secretUnreadable, `cannot open sealed value: ${reason}`) };
}

/** A fresh join token: `hm1.` and 32 random bytes in base64url. Shown once; the log keeps only its hash and sealed copy. */
export function generateToken(): string {
  return `${TOKEN_PREFIX}${randomBytes(32).toString('base64url')}`;
}

/** The SHA-256 of a token, lowercase hex: what `token.set` carries as `hash`. */
export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

/** Whether `token` hashes to `hash`, compared in constant time. */
export function tokenMatches(token: string, hash: string): boolean {
  const expected = Buffer.from(hash, 'utf8');
  const actual = Buffer.from(hashToken(token), 'utf8');
  return expected.length === actual.length && timingSafeEqual(expected, actual);
}
