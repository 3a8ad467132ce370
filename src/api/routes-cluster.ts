/**
 * Cluster routes: health, status, nodes (and leaving), the join token, metrics.
 */
import { NotLeaderError } from '../../consensus/errors.js';
import { TOKEN_ASSOCIATED_DATA, generateToken, hashToken, sealSecret } from '../state/secrets.js';
import { pinnedToken } from '../security/pinned-token.js';
import type { NodeRecord } from '../state/types.js';
import { STATE_VERSION } from '../state/version.js';
import { certificateFingerprint } from '../security/certificates.js';
import type { CaStatusAnswer, ElectionsAnswer } from './answers.js';
import { ApiCode, ApiError, fromStateError } from './errors.js';
import { checkNodeId } from './input.js';
import { isGossipView } from '../membership/component.js';
import { serve, type Route, type RouteContext } from './router.js';

/** This node's gossip view of one node, if gossip runs here and knows it. */
type GossipOfNode = { status: 'alive' | 'suspect' | 'dead' | 'left'; incarnation: number; lastHeardAt?: number };

function nodeView(context: RouteContext, record: NodeRecord, gossip = gossipViews(context)): NodeRecord & { leader: boolean; gossip?: GossipOfNode } {
  const status = context.backend.raft.status();
  const role = status.config.voters.includes(record.id) ? 'voter' : status.config.learners.includes(record.id) ? 'learner' : 'none';
  const seen = gossip.get(record.id);
  return { ...record, role, leader: status.leader === record.id, ...(seen === undefined ? {} : { gossip: seen }) };
}

/** The answering node's SWIM view (an added `gossip` field per node: older clients ignore it). */
function gossipViews(context: RouteContext): Map<string, GossipOfNode> {
  const component = context.backend.component('gossip');
  if (!isGossipView(component)) return new Map();
  return new Map(component.members().map((member) => [member.id, { status: member.status, incarnation: member.incarnation, ...(member.lastHeardAt !== undefined ? { lastHeardAt: member.lastHeardAt } : {}) }]));
}

/** Health, status, nodes, leave, token, metrics, the cluster CA. */
export const clusterRoutes: Route[] = [
  serve('GET /v1/health', {
    async handle(context) {
      if (!context.serving) throw new ApiError(503, ApiCode.unavailable, `node ${context.backend.nodeId} is starting`);
      return { status: 200, json: { ok: true, node: context.backend.nodeId } };
    },
  }),
  serve('GET /v1/ca', {
    // Open: a client holding only a pinned token fetches this over unverified TLS and keeps a certificate only if its fingerprint is the pin.
    async handle(context) {
      const caPems = context.trustedCaPems();
      if (caPems.length === 0) throw new ApiError(503, ApiCode.unavailable, `node ${context.backend.nodeId} has no TLS material yet; retry shortly`);
      return { status: 200, text: caPems.map((pem) => pem.trimEnd()).join('\n') + '\n', contentType: 'application/x-pem-file' };
    },
  }),
  serve('GET /metrics', {
    publicWithMetrics: true,
    async handle(context) {
      const { contentType, body } = await context.backend.metrics.render();
      return { status: 200, text: body, contentType };
    },
  }),
  serve('GET /v1/status', {
    read(context) {
      const { backend } = context;
      const status = backend.raft.status();
      return {
        node: backend.nodeId,
        leader: status.leader,
        role: status.role,
        term: status.term,
        commit: status.commit,
        applied: status.applied,
        index: backend.machine.appliedIndex,
        voters: status.config.voters,
        learners: status.config.learners,
        version: backend.version,
        clusterVersion: backend.machine.clusterVersion,
        stateVersion: STATE_VERSION,
      };
    },
  }),
  serve('GET /v1/elections', {
    // Answered by this node alone: each node keeps its own view, in memory.
    async handle(context) {
      const answer: ElectionsAnswer = { node: context.backend.nodeId, elections: context.backend.elections?.() ?? [] };
      return { status: 200, json: answer };
    },
  }),
  serve('GET /v1/nodes', {
    read(context) {
      const gossip = gossipViews(context);
      return { nodes: context.backend.machine.nodes().map((record) => nodeView(context, record, gossip)) };
    },
  }),
  serve('GET /v1/nodes/:id', {
    read(context) {
      const id = checkNodeId(context.params.id!, 'id');
      const record = context.backend.machine.node(id);
      if (record === undefined) throw new ApiError(404, ApiCode.notFound, `node "${id}" is not registered in this cluster`, 'id');
      return nodeView(context, record);
    },
  }),
  serve('POST /v1/nodes/:id/labels', {
    async write(context) {
      const id = checkNodeId(context.params.id!, 'id');
      // The command's schema checks the body's fields and names them (`set.zone`, `remove[0]`).
      return context.commit([{ type: 'node.label', id, set: context.body.set ?? {}, remove: context.body.remove ?? [] }]);
    },
  }),
  serve('POST /v1/nodes/:id/leave', {
    async write(context) {
      const id = checkNodeId(context.params.id!, 'id');
      return context.onLeader(
        async (remainingMs) => {
          const outcome = await context.backend.leave(id, { requestId: context.requestId, actor: context.actor, timeoutMs: remainingMs });
          // Leadership moved away first: the request goes on to the new leader.
          if (outcome.type === 'moved') throw new NotLeaderError(outcome.leader);
          if (!outcome.result.ok) throw fromStateError(outcome.result.error);
          return { status: 200, json: { id, status: 'left' }, index: outcome.result.index };
        },
        { mayForwardAgain: true },
      );
    },
  }),
  serve('GET /v1/token', {
    read(context) {
      const token = context.backend.currentToken();
      if (token === undefined) throw new ApiError(503, ApiCode.unavailable, 'the cluster has no join token yet; retry shortly');
      return tokenAnswer(context, token);
    },
  }),
  serve('POST /v1/token/rotate', {
    async write(context) {
      const token = generateToken();
      const sealed = sealSecret(context.backend.clusterKey(), token, TOKEN_ASSOCIATED_DATA);
      const command = { type: 'token.set' as const, hash: hashToken(token), sealed: sealed.ciphertext, nonce: sealed.nonce };
      // The answer reads the token back from the state: a retry gets the token the first attempt stored.
      return context.commit([command], () => {
        const stored = context.backend.currentToken();
        return stored === undefined ? {} : tokenAnswer(context, stored);
      });
    },
  }),
  serve('GET /v1/ca/status', {
    read(context) {
      return caStatus(context);
    },
  }),
  serve('POST /v1/ca/rotate', {
    async write(context) {
      const rotation = await context.backend.caRotation();
      if (!rotation.ok) throw new ApiError(409, ApiCode.conflict, `cannot rotate the cluster CA: ${rotation.reason}`);
      return context.commit([rotation.command], () => caStatus(context));
    },
  }),
];

/** The CA's trusted certificates by fingerprint, whether a rotation runs, and which CA each node's newest certificate is from. */
function caStatus(context: RouteContext): CaStatusAnswer {
  const ca = context.backend.machine.ca();
  if (ca === undefined) throw new ApiError(503, ApiCode.unavailable, 'the cluster has no CA yet; retry shortly');
  const fingerprints = ca.certificates.map((pem) => certificateFingerprint(pem));
  return {
    signing: fingerprints[0],
    trusted: fingerprints,
    rotating: fingerprints.length > 1,
    setIndex: ca.setIndex,
    revoked: ca.revoked.length,
    nodes: context.backend.machine.nodeDirectory().filter((node) => node.status !== 'left').map((node) => {
      const newest = node.certificates?.at(-1);
      return { id: node.id, status: node.status, serial: newest?.serial ?? null, notAfter: newest?.notAfter ?? null, issuer: newest?.issuer ?? null };
    }),
  };
}

/** `{ token, bareToken }`: the token pinned to the cluster's signing CA (what a user copies), and the bare one. */
function tokenAnswer(context: RouteContext, token: string): { token: string; bareToken: string } {
  const signingCa = context.trustedCaPems()[0];
  return { token: signingCa === undefined ? token : pinnedToken(token, signingCa), bareToken: token };
}
