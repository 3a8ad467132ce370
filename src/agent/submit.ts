/**
 * Commands a member proposes through the leader (`Cluster.Submit`): instance
 * status reports, heartbeats. Members hold the cluster key, so a request is
 * authenticated with HMAC-SHA256 keyed by HKDF-SHA256(cluster key, info
 * "hivemind/submit/mac") over the node id, a timestamp, a fresh nonce and
 * the envelope. The timestamp bounds replays to SUBMIT_CLOCK_SKEW_MS, and a
 * replay within it only returns the remembered result of the same request id.
 */
import { createHmac, hkdfSync, randomBytes, timingSafeEqual } from 'node:crypto';
import { COMMANDS, MEMBER_COMMAND_TYPES } from '../state/commands.js';
import type { CommandType } from '../state/types.js';

export const SUBMIT_CLOCK_SKEW_MS = 5 * 60 * 1000;
const NONCE_BYTES = 16;

/**
 * What a member may propose through the leader: the commands whose module
 * (src/state/commands.ts) lists `member` among its proposers. Everything
 * else is the leader's or a client's. The volume commands carry the
 * proposing node (`node`): its executor binds a volume it is about to
 * create, and reports what the volumes it holds take on disk.
 */
export const MEMBER_COMMANDS: ReadonlySet<CommandType> = MEMBER_COMMAND_TYPES;

/** The field of a member command that must name the submitting node itself, if it has one (its module's `memberSelf`). */
export function selfField(type: CommandType): 'id' | 'node' | undefined {
  return COMMANDS[type].memberSelf;
}

export interface SubmitRequestWire {
  node_id: string;
  envelope: Uint8Array;
  timestamp_ms: number;
  nonce: Uint8Array;
  mac: Uint8Array;
}

function macKey(clusterKey: Uint8Array): Uint8Array {
  return new Uint8Array(hkdfSync('sha256', clusterKey, new Uint8Array(0), Buffer.from('hivemind/submit/mac', 'utf8'), 32));
}

function mac(clusterKey: Uint8Array, request: Omit<SubmitRequestWire, 'mac'>): Uint8Array {
  const hmac = createHmac('sha256', macKey(clusterKey));
  hmac.update(`hivemind-submit-v1\0${request.node_id}\0${request.timestamp_ms}\0${Buffer.from(request.nonce).toString('hex')}\0`);
  hmac.update(request.envelope);
  return new Uint8Array(hmac.digest());
}

/** A signed request for `envelope` from `nodeId`. */
export function signSubmit(clusterKey: Uint8Array, nodeId: string, envelope: Uint8Array, now = Date.now()): SubmitRequestWire {
  const unsigned = { node_id: nodeId, envelope, timestamp_ms: now, nonce: new Uint8Array(randomBytes(NONCE_BYTES)) };
  return { ...unsigned, mac: mac(clusterKey, unsigned) };
}

/** Why a request fails authentication, or undefined when it passes. */
export function submitAuthProblem(clusterKey: Uint8Array, request: SubmitRequestWire, now = Date.now()): string | undefined {
  if (typeof request.node_id !== 'string' || request.node_id.length === 0) return 'node_id is missing';
  if (!(request.mac instanceof Uint8Array) || request.mac.length !== 32) return 'mac must be 32 bytes';
  if (!(request.nonce instanceof Uint8Array) || request.nonce.length !== NONCE_BYTES) return `nonce must be ${NONCE_BYTES} bytes`;
  if (!Number.isSafeInteger(request.timestamp_ms) || Math.abs(now - request.timestamp_ms) > SUBMIT_CLOCK_SKEW_MS) {
    return `timestamp_ms is more than ${SUBMIT_CLOCK_SKEW_MS / 60000} minutes off the leader's clock`;
  }
  const expected = mac(clusterKey, request);
  if (!timingSafeEqual(Buffer.from(expected), Buffer.from(request.mac))) return 'the mac does not match (not signed with this cluster\'s key)';
  return undefined;
}
