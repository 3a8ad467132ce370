/**
 * The cryptography of joining: the join token never crosses the network.
 *
 * - The joiner proves it holds the token with an HMAC-SHA256 over everything
 *   it asks for (id, addresses, labels, resources, a timestamp and a fresh
 *   16-byte nonce), keyed by HKDF-SHA256(token, info "hivemind/join/proof").
 *   Changing any field breaks the proof; the timestamp bounds replays to
 *   JOIN_CLOCK_SKEW_MS either way, and a replay can only re-register the
 *   same node with the same addresses.
 * - The leader answers with the cluster key sealed (AES-256-GCM) under
 *   HKDF-SHA256(token, salt = the request's nonce, info "hivemind/join/cluster-key"),
 *   bound to the node id: only a holder of the token can open it.
 */
import { createHmac, hkdfSync, timingSafeEqual } from 'node:crypto';
import { openSecret, sealSecret, type Sealed } from '../state/secrets.js';
import type { NodeAddresses, Resources } from '../state/types.js';

/** How far the joiner's clock may be from the leader's. */
export const JOIN_CLOCK_SKEW_MS = 5 * 60 * 1000;
/** Length of the joiner's nonce. */
export const JOIN_NONCE_BYTES = 16;

/** What a joining node asks for; everything here is covered by the proof. */
export interface JoinClaim {
  nodeId: string;
  addresses: NodeAddresses;
  labels: Record<string, string>;
  resources: Resources;
  /** The joiner's clock, ms since the epoch. */
  timestampMs: number;
  nonce: Uint8Array;
  /** Sent by a member that found itself outside the cluster (not by `hivemind join`). */
  rejoin: boolean;
}

function derivedKey(token: string, salt: Uint8Array, info: string): Uint8Array {
  return new Uint8Array(hkdfSync('sha256', Buffer.from(token, 'utf8'), salt, Buffer.from(info, 'utf8'), 32));
}

/** The claim as one unambiguous string (labels sorted by key). */
export function canonicalClaim(claim: JoinClaim): string {
  const labels = Object.entries(claim.labels).sort(([left], [right]) => (left < right ? -1 : left > right ? 1 : 0));
  return JSON.stringify([
    'hivemind-join-v1',
    claim.nodeId,
    claim.addresses.api,
    claim.addresses.peer,
    claim.addresses.gossip,
    labels,
    claim.resources.cpuMillis ?? -1,
    claim.resources.memoryBytes ?? -1,
    claim.timestampMs,
    Buffer.from(claim.nonce).toString('hex'),
    claim.rejoin,
  ]);
}

/** The proof a joiner holding `token` sends with `claim`. */
export function joinProof(token: string, claim: JoinClaim): Uint8Array {
  const key = derivedKey(token, new Uint8Array(0), 'hivemind/join/proof');
  return new Uint8Array(createHmac('sha256', key).update(canonicalClaim(claim), 'utf8').digest());
}

/** Whether `proof` was made with `token` over `claim`; constant time. */
export function proofMatches(token: string, claim: JoinClaim, proof: Uint8Array): boolean {
  const expected = joinProof(token, claim);
  return proof.length === expected.length && timingSafeEqual(proof, expected);
}

function clusterKeyAssociatedData(nodeId: string): string {
  return `hivemind/join/cluster-key/${nodeId}`;
}

/** The cluster key sealed for the joiner of `claim`. */
export function sealClusterKeyForJoiner(token: string, claim: JoinClaim, clusterKey: Uint8Array): Sealed {
  return sealSecret(derivedKey(token, claim.nonce, 'hivemind/join/cluster-key'), clusterKey, clusterKeyAssociatedData(claim.nodeId));
}

/** Opens the sealed cluster key of a join answer; undefined if it does not open (wrong token or tampered). */
export function openClusterKeyFromJoin(token: string, claim: JoinClaim, sealed: Sealed): Uint8Array | undefined {
  const opened = openSecret(derivedKey(token, claim.nonce, 'hivemind/join/cluster-key'), sealed, clusterKeyAssociatedData(claim.nodeId));
  return opened.ok ? opened.plaintext : undefined;
}
