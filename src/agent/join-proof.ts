/**
 * The cryptography of joining: the join token never crosses the network.
 *
 * - The joiner proves it holds the token with an HMAC-SHA256 over everything
 *   it asks for (id, addresses, labels, resources, a timestamp and a fresh
 *   16-byte nonce), keyed by HKDF-SHA256(token, info "hivemind/join/proof").
 *   Changing any field breaks the proof; the timestamp bounds replays to
 *   JOIN_CLOCK_SKEW_MS either way, and a replay can only re-register the
 *   same node with the same addresses.
 *   The joiner's certificate request (PKCS#10, PEM) is part of the claim.
 * - The leader answers with the cluster key sealed (AES-256-GCM) under
 *   HKDF-SHA256(token, salt = the request's nonce, info "hivemind/join/cluster-key"),
 *   bound to the node id and to the TLS material of the answer (the node's
 *   new certificate and the CA certificates to trust) as associated data:
 *   only a holder of the token can open it, and an answer whose certificates
 *   were swapped on the way does not open. So the join itself needs no
 *   verified TLS: the token authenticates both ends and the material.
 */
import { createHash, createHmac, hkdfSync, timingSafeEqual } from 'node:crypto';
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
  /** PKCS#10 request (PEM) for the node's certificate, signed by its key. */
  certificateRequest: string;
}

/** The TLS material a join answer carries; sealed together with the cluster key. */
export interface JoinTlsMaterial {
  certificatePem: string;
  caPems: readonly string[];
  /** The joined index of the node's record (src/state/apply-nodes.ts), sealed alike: it decides which "left" counts. */
  joinedIndex: number;
}

function derivedKey(token: string, salt: Uint8Array, info: string): Uint8Array {
  return new Uint8Array(hkdfSync('sha256', Buffer.from(token, 'utf8'), salt, Buffer.from(info, 'utf8'), 32));
}

/** The claim as one unambiguous string (labels sorted by key). */
export function canonicalClaim(claim: JoinClaim): string {
  const labels = Object.entries(claim.labels).sort(([left], [right]) => (left < right ? -1 : left > right ? 1 : 0));
  return JSON.stringify([
    'hivemind-join-v2',
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
    claim.certificateRequest,
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

function clusterKeyAssociatedData(nodeId: string, tls: JoinTlsMaterial): string {
  const digest = createHash('sha256').update(JSON.stringify([tls.joinedIndex, tls.certificatePem, ...tls.caPems]), 'utf8').digest('hex');
  return `hivemind/join/cluster-key/v2/${nodeId}/${digest}`;
}

/** The cluster key sealed for the joiner of `claim`, bound to the TLS material of the answer. */
export function sealClusterKeyForJoiner(token: string, claim: JoinClaim, clusterKey: Uint8Array, tls: JoinTlsMaterial): Sealed {
  return sealSecret(derivedKey(token, claim.nonce, 'hivemind/join/cluster-key'), clusterKey, clusterKeyAssociatedData(claim.nodeId, tls));
}

/** Opens the sealed cluster key of a join answer; undefined if it does not open (wrong token, or the key or the TLS material tampered with). */
export function openClusterKeyFromJoin(token: string, claim: JoinClaim, sealed: Sealed, tls: JoinTlsMaterial): Uint8Array | undefined {
  const opened = openSecret(derivedKey(token, claim.nonce, 'hivemind/join/cluster-key'), sealed, clusterKeyAssociatedData(claim.nodeId, tls));
  return opened.ok ? opened.plaintext : undefined;
}
