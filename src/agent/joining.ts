/**
 * Joining a cluster, both ends.
 *
 * Member side (`JoinService`): any member takes a Join; a follower passes it
 * to the leader once (`forwarded`), the leader admits it: it checks the
 * proof against the cluster's join token (opened from the state with the
 * cluster key) and the timestamp, proposes `node.register`, adds the node to
 * Raft as a learner (the membership manager promotes it later), and answers
 * with the cluster key sealed for the joiner and every member's peer address.
 * Admitting a node that is already a member only refreshes its record.
 *
 * Joiner side (`joinCluster`): sends Joins to the seed until one is admitted,
 * refused, or the time runs out. Refusals are `AgentError`s whose message is
 * what the operator reads.
 */
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { ConfigChangeError } from '../../consensus/errors.js';
import type { RaftNode } from '../../consensus/node.js';
import type { ClusterStateMachine } from '../state/machine.js';
import type { CertificateRecord, CommandResult, Envelope, NodeAddresses, Resources } from '../state/types.js';
import { CertificateRequestError, PEM_CHARS_MAX } from '../security/certificates.js';
import { validateCommand } from '../state/validate.js';
import { AgentError } from './agent-error.js';
import { retryUntil } from '../node/retry.js';
import { claimFromWire, claimToWire, grpc, type ClusterClients, type JoinOutcome, type JoinRefusal, type JoinRefusalReason, type JoinRequestWire, type JoinResponseWire } from './cluster-service.js';
import { JOIN_CLOCK_SKEW_MS, JOIN_NONCE_BYTES, joinProof, openClusterKeyFromJoin, proofMatches, sealClusterKeyForJoiner, type JoinClaim } from './join-proof.js';

/** The port of a seed given without one. */
export const DEFAULT_SEED_PORT = 7071;
/** Time a leader spends admitting one node (register, then the learner change). */
const ADMIT_TIMEOUT_MS = 15_000;
/** Time one Join call may take, forwarding included. */
const JOIN_CALL_TIMEOUT_MS = 20_000;
const RETRY_DELAY_MS = 500;
const CONFIG_RETRY_DELAY_MS = 100;

/** What the member side needs of its agent. */
export interface JoinServiceContext {
  readonly name: string;
  readonly raft: RaftNode;
  readonly machine: ClusterStateMachine;
  readonly clients: ClusterClients;
  /** Undefined until the node knows it (a joiner before its join completes). */
  clusterKey(): Uint8Array | undefined;
  currentToken(): string | undefined;
  propose(envelope: Envelope, timeoutMs: number): Promise<CommandResult>;
  /** Peer addresses of the members (records not left), this node's own included. */
  peerMap(): Record<string, string>;
  /** Signs a joiner's certificate request (the leader; see NodeTrust.signJoiner). Throws CertificateRequestError for a bad request. */
  signJoiner(requestPem: string, nodeId: string, addresses: string[]): Promise<{ certificatePem: string; caPems: string[]; record: CertificateRecord }>;
  log(line: string): void;
}

function refuse(status: grpc.status, message: string, reason?: JoinRefusal['reason']): JoinOutcome {
  return { ok: false, refusal: reason === undefined ? { status, message } : { status, message, reason } };
}

/** The member side of Join. */
export class JoinService {
  constructor(private readonly context: JoinServiceContext) {}

  async handle(request: JoinRequestWire): Promise<JoinOutcome> {
    const { context } = this;
    const claim = claimFromWire(request);
    const problem = claimProblem(claim, request);
    if (problem !== undefined) return refuse(grpc.status.INVALID_ARGUMENT, `the join request is malformed: ${problem}`);
    let status;
    try {
      status = context.raft.status();
    } catch {
      return refuse(grpc.status.UNAVAILABLE, `node ${context.name} is starting; retry`);
    }
    if (status.role !== 'leader') {
      if (request.forwarded) return refuse(grpc.status.UNAVAILABLE, `node ${context.name} does not lead (leader: ${status.leader || 'unknown'}); retry`);
      const address = status.leader === '' ? undefined : context.peerMap()[status.leader];
      if (address === undefined) return refuse(grpc.status.UNAVAILABLE, `node ${context.name} knows no leader right now (an election may be under way); retry`);
      const result = await context.clients.join(address, { ...request, forwarded: true }, JOIN_CALL_TIMEOUT_MS);
      if (result.ok) return result;
      return refuse(result.status, result.message, result.reason);
    }
    try {
      return await this.admit(claim, request.proof);
    } catch (error) {
      context.log(`join of ${claim.nodeId}: ${(error as Error).message}`);
      return refuse(grpc.status.UNAVAILABLE, `the leader could not admit ${claim.nodeId}: ${(error as Error).message}`);
    }
  }

  private async admit(claim: JoinClaim, proof: Uint8Array): Promise<JoinOutcome> {
    const { context } = this;
    const clusterKey = context.clusterKey();
    if (context.machine.token() === undefined || clusterKey === undefined) {
      return refuse(grpc.status.UNAVAILABLE, 'the cluster is still starting (it has no join token yet); retry');
    }
    const token = context.currentToken();
    if (token === undefined) return refuse(grpc.status.INTERNAL, `node ${context.name} cannot open the cluster's join token with its cluster key`);
    const skewMs = Date.now() - claim.timestampMs;
    if (Math.abs(skewMs) > JOIN_CLOCK_SKEW_MS) {
      return refuse(
        grpc.status.FAILED_PRECONDITION,
        `the joining node's clock is ${Math.round(skewMs / 1000)}s off the leader's (at most ${JOIN_CLOCK_SKEW_MS / 1000}s allowed); synchronize the clocks (NTP) and retry`,
      );
    }
    if (!proofMatches(token, claim, proof)) return refuse(grpc.status.PERMISSION_DENIED, 'the join token was refused');
    if (claim.nodeId === context.name) {
      return refuse(grpc.status.ALREADY_EXISTS, `"${claim.nodeId}" is the name of this cluster's leader; give the joining node another --name`);
    }
    const existing = context.machine.node(claim.nodeId);
    if (claim.rejoin && existing?.status === 'left') {
      return refuse(grpc.status.FAILED_PRECONDITION, `node "${claim.nodeId}" has left the cluster; to bring it back, run \`hivemind join\` on it`, 'left');
    }
    const deadline = Date.now() + ADMIT_TIMEOUT_MS;
    let issued;
    try {
      issued = await context.signJoiner(claim.certificateRequest, claim.nodeId, hostsOf(claim.addresses));
    } catch (error) {
      if (error instanceof CertificateRequestError) return refuse(grpc.status.INVALID_ARGUMENT, `the join request is malformed: ${error.message}`);
      throw error;
    }
    const envelope: Envelope = {
      requestId: `join:${claim.nodeId}:${Buffer.from(claim.nonce).toString('hex')}`,
      time: Date.now(),
      actor: claim.nodeId,
      command: { type: 'node.register', id: claim.nodeId, addresses: claim.addresses, labels: claim.labels, resources: claim.resources, certificate: issued.record },
    };
    const result = await context.propose(envelope, ADMIT_TIMEOUT_MS);
    if (!result.ok) {
      const status = result.error.code === 'invalid-argument' ? grpc.status.INVALID_ARGUMENT : result.error.code === 'limit-reached' ? grpc.status.RESOURCE_EXHAUSTED : grpc.status.FAILED_PRECONDITION;
      return refuse(status, result.error.message);
    }
    const config = context.raft.status().config;
    const alreadyMember = config.voters.includes(claim.nodeId) || config.learners.includes(claim.nodeId);
    if (alreadyMember) context.raft.setPeers({ ...context.raft.peerAddresses(), [claim.nodeId]: claim.addresses.peer });
    else await addLearner(context.raft, claim.nodeId, claim.addresses.peer, deadline);
    context.log(`${alreadyMember ? 're-admitted member' : 'admitted new learner'} ${claim.nodeId} (peer ${claim.addresses.peer}, api ${claim.addresses.api})`);
    const joinedIndex = context.machine.node(claim.nodeId)?.joinedIndex ?? 0;
    const sealed = sealClusterKeyForJoiner(token, claim, clusterKey, { certificatePem: issued.certificatePem, caPems: issued.caPems, joinedIndex });
    const response: JoinResponseWire = {
      cluster_key_sealed: sealed.ciphertext,
      cluster_key_nonce: sealed.nonce,
      peers: context.peerMap(),
      leader_id: context.name,
      already_member: alreadyMember,
      certificate: issued.certificatePem,
      ca_certificates: issued.caPems,
      joined_index: joinedIndex,
    };
    return { ok: true, response };
  }
}

/** Adds a learner, waiting out a membership change still in flight; "already a member" counts as done. */
async function addLearner(raft: RaftNode, id: string, address: string, deadline: number): Promise<void> {
  try {
    await retryUntil((remainingMs) => raft.addLearner(id, address, { timeoutMs: remainingMs }), {
      deadline,
      delayMs: CONFIG_RETRY_DELAY_MS,
      retryable: (error) => error instanceof ConfigChangeError && error.retryable,
    });
  } catch (error) {
    if (!(error instanceof ConfigChangeError && error.noChange)) throw error;
  }
}

/** What is wrong with a claim's fields, or undefined. The command's own validation names the field. */
function claimProblem(claim: JoinClaim, request: JoinRequestWire): string | undefined {
  if (claim.nonce.length !== JOIN_NONCE_BYTES) return `nonce must be ${JOIN_NONCE_BYTES} bytes`;
  if (request.proof.length !== 32) return 'proof must be 32 bytes (an HMAC-SHA256)';
  if (claim.nodeId.length > 63) return 'node_id must be at most 63 characters';
  if (typeof claim.certificateRequest !== 'string' || claim.certificateRequest.length === 0) return 'certificate_request is missing (the joining node runs a Hivemind without peer TLS: upgrade it)';
  if (claim.certificateRequest.length > PEM_CHARS_MAX) return `certificate_request must be at most ${PEM_CHARS_MAX} characters`;
  const validated = validateCommand({ type: 'node.register', id: claim.nodeId, addresses: claim.addresses, labels: claim.labels, resources: claim.resources });
  return validated.ok ? undefined : validated.error.message;
}

/** A Join failure as the operator reads it: transport noise becomes "no member answers there". */
export function describeJoinFailure(result: { status: grpc.status; message: string }): string {
  if ((result.status === grpc.status.UNAVAILABLE || result.status === grpc.status.DEADLINE_EXCEEDED) && /No connection|ECONNREFUSED|connect|Deadline/i.test(result.message)) {
    return 'no member answers there';
  }
  return result.message;
}

/** `host:port` from a seed given as `host`, `host:port` or `[v6]:port`; undefined if malformed. */
export function parseSeed(seed: string): string | undefined {
  const bracketed = /^\[([0-9a-fA-F:.]+)\](?::(\d{1,5}))?$/.exec(seed);
  const plain = /^([A-Za-z0-9.-]+)(?::(\d{1,5}))?$/.exec(seed);
  const match = bracketed ?? plain;
  if (!match) return undefined;
  const port = match[2] === undefined ? DEFAULT_SEED_PORT : Number(match[2]);
  if (port < 1 || port > 65535) return undefined;
  return bracketed ? `[${match[1]}]:${port}` : `${match[1]}:${port}`;
}

/** Who joins, and with what. */
export interface JoinerIdentity {
  nodeId: string;
  addresses: NodeAddresses;
  labels: Record<string, string>;
  resources: Resources;
}

/** The hosts of a node's addresses (`host:port` each), for its certificate's names. */
function hostsOf(addresses: NodeAddresses): string[] {
  const hosts = new Set<string>();
  for (const address of [addresses.api, addresses.peer, addresses.gossip]) {
    const host = address.startsWith('[') ? address.slice(1, address.indexOf(']')) : address.slice(0, address.lastIndexOf(':'));
    if (host !== '') hosts.add(host);
  }
  return [...hosts];
}

/** What a successful join brings back. */
export interface Joined {
  /** This node's certificate and the CA certificates to trust, authenticated with the token. */
  certificatePem: string;
  caPems: string[];
  clusterKey: Uint8Array;
  peers: Record<string, string>;
  leader: string;
  alreadyMember: boolean;
  /** The record's `joinedIndex` once registered (the membership this join began or refreshed); 0 when the leader did not say. */
  joinedIndex: number;
}

/** A fresh claim for one Join call. */
function makeClaim(identity: JoinerIdentity, rejoin: boolean, certificateRequest: string): JoinClaim {
  return { ...identity, timestampMs: Date.now(), nonce: new Uint8Array(randomBytes(JOIN_NONCE_BYTES)), rejoin, certificateRequest };
}

/** Sends one Join; the claim is fresh each time. */
export async function sendJoin(
  clients: ClusterClients,
  options: { address: string; token: string; identity: JoinerIdentity; rejoin: boolean; timeoutMs: number; certificateRequest: string },
): Promise<{ ok: true; joined: Joined } | { ok: false; status: grpc.status; message: string; reason?: JoinRefusalReason }> {
  const claim = makeClaim(options.identity, options.rejoin, options.certificateRequest);
  const result = await clients.join(options.address, claimToWire(claim, joinProof(options.token, claim)), options.timeoutMs);
  if (!result.ok) return result;
  const joinedIndex = Number(result.response.joined_index ?? 0);
  const tls = { certificatePem: result.response.certificate, caPems: [...result.response.ca_certificates], joinedIndex };
  const clusterKey = openClusterKeyFromJoin(options.token, claim, { ciphertext: new Uint8Array(result.response.cluster_key_sealed), nonce: new Uint8Array(result.response.cluster_key_nonce) }, tls);
  if (clusterKey === undefined) return { ok: false, status: grpc.status.PERMISSION_DENIED, message: 'the cluster key in the answer does not open with the join token (or the answer was tampered with)' };
  return { ok: true, joined: { certificatePem: tls.certificatePem, caPems: tls.caPems, clusterKey, peers: { ...result.response.peers }, leader: result.response.leader_id, alreadyMember: result.response.already_member, joinedIndex } };
}

/**
 * Joins through `seed` (`host[:port]`), retrying while the seed is
 * unreachable or has no leader, until `timeoutMs`. Rejects with AgentError
 * `join-refused` (wrong token) or `join-failed` (anything else that will not
 * pass by retrying, or the time ran out).
 */
export async function joinCluster(
  clients: ClusterClients,
  options: { seed: string; token: string; identity: JoinerIdentity; timeoutMs: number; certificateRequest: string; log: (line: string) => void; signal?: AbortSignal },
): Promise<Joined> {
  const address = parseSeed(options.seed);
  if (address === undefined) throw new AgentError('join-failed', `cannot join via ${JSON.stringify(options.seed)}: the seed must be a member's peer address, host or host:port (the port defaults to ${DEFAULT_SEED_PORT})`);
  const deadline = Date.now() + options.timeoutMs;
  let lastMessage = '';
  let attempts = 0;
  while (Date.now() < deadline && !options.signal?.aborted) {
    attempts++;
    const result = await sendJoin(clients, { address, token: options.token, identity: options.identity, rejoin: false, certificateRequest: options.certificateRequest, timeoutMs: Math.min(JOIN_CALL_TIMEOUT_MS, Math.max(1, deadline - Date.now())) });
    if (result.ok) return result.joined;
    if (result.status === grpc.status.PERMISSION_DENIED) {
      throw new AgentError('join-refused', `cannot join via ${address}: the join token was refused (check --token; \`hivemind token\` on a member shows it)`);
    }
    if (result.status === grpc.status.INVALID_ARGUMENT || result.status === grpc.status.FAILED_PRECONDITION || result.status === grpc.status.ALREADY_EXISTS || result.status === grpc.status.RESOURCE_EXHAUSTED) {
      throw new AgentError('join-failed', `cannot join via ${address}: ${result.message}`);
    }
    lastMessage = describeJoinFailure(result);
    if (attempts === 1 || attempts % 10 === 0) options.log(`join via ${address}: ${lastMessage}; retrying`);
    await sleep(RETRY_DELAY_MS);
  }
  throw new AgentError('join-failed', `cannot join via ${address}: ${lastMessage || 'gave up'} (tried for ${Math.round(options.timeoutMs / 1000)}s); check the address is a member's peer address and that it runs`);
}
