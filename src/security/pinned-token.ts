/**
 * The two forms of a join token.
 *
 * - Bare: `hm1.<secret>`, what the state hashes and seals and the token file
 *   keeps. Only this form is ever hashed, compared or used as an HMAC key.
 * - Pinned: `hmca:<sha256 of the signing CA certificate's DER, 64 hex>::hm1.<secret>`,
 *   what a user copies (k3s's `K10<hash>::` idea). The pin lets a client that
 *   has nothing but the token trust the cluster's CA on first contact: it
 *   fetches the CA over unverified TLS (GET /v1/ca) and keeps it only if its
 *   fingerprint is the pin.
 *
 * Everything that takes a token (the API, `hivemind join --token`, the CLI)
 * takes either form and strips the pin with `parseJoinToken` first. Pure.
 */
// node:crypto only (not ./certificates.js and its X.509 library): the CLI loads this for every command.
import { X509Certificate, createHash } from 'node:crypto';

/** What a pinned token starts with. */
export const PINNED_TOKEN_PREFIX = 'hmca:';
/** Between the pin and the bare token. */
const PIN_SEPARATOR = '::';
const FINGERPRINT_PATTERN = /^[0-9a-f]{64}$/;

/** A token as given, split: the bare token, and the CA fingerprint it pins (lower-case hex), if any. */
export interface ParsedJoinToken {
  token: string;
  caFingerprint: string | undefined;
}

/** A token that starts like a pinned one but is not one; the message says what is wrong. */
export class PinnedTokenError extends Error {
  readonly code = 'TOKEN_INVALID';
}

/**
 * Splits `text` into the bare token and its pin. A bare token comes back as
 * is. Throws PinnedTokenError for `hmca:` text that is not
 * `hmca:<64 hex>::<token>`.
 */
export function parseJoinToken(text: string): ParsedJoinToken {
  if (!text.startsWith(PINNED_TOKEN_PREFIX)) return { token: text, caFingerprint: undefined };
  const rest = text.slice(PINNED_TOKEN_PREFIX.length);
  const separator = rest.indexOf(PIN_SEPARATOR);
  const fingerprint = separator === -1 ? '' : rest.slice(0, separator).toLowerCase();
  const token = separator === -1 ? '' : rest.slice(separator + PIN_SEPARATOR.length);
  if (!FINGERPRINT_PATTERN.test(fingerprint) || token === '') {
    throw new PinnedTokenError(`a token starting with "${PINNED_TOKEN_PREFIX}" must read ${PINNED_TOKEN_PREFIX}<64 hex digits>${PIN_SEPARATOR}<token> (copy it whole from \`hivemind token\`)`);
  }
  return { token, caFingerprint: fingerprint };
}

/** The bare token of either form; text that is not a well-formed pinned token comes back as is (it then simply fails to match). */
export function bareToken(text: string): string {
  try {
    return parseJoinToken(text).token;
  } catch {
    return text;
  }
}

/** The form a user copies: `token` (bare) pinned to the CA certificate `caPem`. */
export function pinnedToken(token: string, caPem: string): string {
  return `${PINNED_TOKEN_PREFIX}${caFingerprint(caPem)}${PIN_SEPARATOR}${bareToken(token)}`;
}

/** SHA-256 over the DER of a PEM certificate, lower-case hex (as `certificateFingerprint`). Throws when it does not parse. */
export function caFingerprint(pem: string): string {
  return createHash('sha256').update(new X509Certificate(pem).raw).digest('hex');
}

/** The CA certificates of a PEM bundle, each as its own PEM block (text outside the blocks is dropped). */
export function splitPemBundle(bundle: string): string[] {
  return bundle.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g)?.map((block) => `${block}\n`) ?? [];
}
