import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { AssertionError } from '../../../consensus/core/assert.js';
import { formatBytes, formatCpu, httpStatus } from '../errors.js';
import {
  generateClusterKey,
  generateToken,
  hashToken,
  openSecret,
  sealSecret,
  secretAssociatedData,
  tokenMatches,
  TOKEN_PREFIX,
} from '../secrets.js';
import { validateCommand } from '../validate.js';

const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

test('seal then open gives the plaintext back; every seal uses a fresh nonce', () => {
  const key = generateClusterKey();
  assert.is(key.length, 32);
  const context = secretAssociatedData('acme', 'db-password');
  const first = sealSecret(key, 'hunter2', context);
  const second = sealSecret(key, 'hunter2', context);
  assert.is(first.nonce.length, 12);
  assert.is(first.ciphertext.length, 'hunter2'.length + 16);
  assert.not.equal(first.nonce, second.nonce);
  assert.not.equal(first.ciphertext, second.ciphertext);
  const opened = openSecret(key, first, context);
  assert.ok(opened.ok);
  if (opened.ok) assert.is(text(opened.plaintext), 'hunter2');
  const binary = new Uint8Array([0, 255, 1, 254]);
  const openedBinary = openSecret(key, sealSecret(key, binary));
  assert.ok(openedBinary.ok && openedBinary.plaintext.every((value, position) => value === binary[position]));
  const empty = openSecret(key, sealSecret(key, ''));
  assert.ok(empty.ok && empty.plaintext.length === 0);
});

test('sealed values pass command validation', () => {
  const sealed = sealSecret(generateClusterKey(), 'x'.repeat(1000));
  assert.ok(validateCommand({ type: 'secret.put', tenant: 'acme', name: 'db', ...sealed }).ok);
});

test('a changed byte, another key, other associated data or a wrong nonce is detected', () => {
  const key = generateClusterKey();
  const sealed = sealSecret(key, 'top secret', 'a');
  const cases = [
    { ...sealed, ciphertext: sealed.ciphertext.map((value, position) => (position === 0 ? value ^ 1 : value)) },
    { ...sealed, ciphertext: sealed.ciphertext.map((value, position) => (position === sealed.ciphertext.length - 1 ? value ^ 1 : value)) },
    { ...sealed, nonce: sealed.nonce.map((value, position) => (position === 3 ? value ^ 1 : value)) },
    { ...sealed, ciphertext: sealed.ciphertext.subarray(0, 10) },
    { ...sealed, nonce: sealed.nonce.subarray(0, 8) },
  ];
  for (const tampered of cases) {
    const opened = openSecret(key, tampered, 'a');
    assert.not.ok(opened.ok);
    if (!opened.ok) assert.is(opened.error.code, 'secret-unreadable');
  }
  assert.not.ok(openSecret(generateClusterKey(), sealed, 'a').ok);
  assert.not.ok(openSecret(key, sealed, 'b').ok);
  assert.ok(openSecret(key, sealed, 'a').ok);
});

test('a key of the wrong length is an invariant break', () => {
  assert.throws(() => sealSecret(new Uint8Array(16), 'x'), (error: unknown) => error instanceof AssertionError);
});

test('tokens: format, hash, constant-time match', () => {
  const token = generateToken();
  assert.ok(token.startsWith(TOKEN_PREFIX));
  assert.is(token.length, TOKEN_PREFIX.length + 43);
  assert.not.equal(generateToken(), token);
  const hash = hashToken(token);
  assert.match(hash, /^[0-9a-f]{64}$/);
  assert.is(hashToken('abc'), 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
  assert.ok(tokenMatches(token, hash));
  assert.not.ok(tokenMatches(`${token}x`, hash));
  assert.not.ok(tokenMatches(token, 'short'));
});

test('formatters', () => {
  assert.is(formatBytes(3.5 * 1024 ** 3), '3.5 GiB');
  assert.is(formatBytes(4 * 1024 ** 3), '4 GiB');
  assert.is(formatBytes(512 * 1024 ** 2), '512 MiB');
  assert.is(formatBytes(1536), '1.5 KiB');
  assert.is(formatBytes(100), '100 B');
  assert.is(formatBytes(0), '0 B');
  assert.is(formatCpu(1500), '1.5 cores');
  assert.is(formatCpu(1000), '1 core');
  assert.is(formatCpu(250), '0.25 cores');
  assert.is(httpStatus('not-found'), 404);
  assert.is(httpStatus('quota-exceeded'), 403);
  assert.is(httpStatus('something-else'), 400);
});

test.run();
