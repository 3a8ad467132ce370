/**
 * The leader's side of Cluster.Submit: a member's command, authenticated
 * with the cluster key (submit.ts), checked for what members may propose,
 * then proposed as it stands. Refusals are answers, never exceptions
 * (docs/internals/agent.md, "Commands members propose").
 */
import type { RaftNode } from '../../consensus/node.js';
import type { Metrics } from '../api/metrics.js';
import type { ClusterStateMachine } from '../state/machine.js';
import type { Command, CommandResult, Envelope } from '../state/types.js';
import { validateEnvelope } from '../state/validate.js';
import { decodeEnvelope, encodeValue } from '../node/replicated-state.js';
import type { Clock } from '../node/clock.js';
import { grpc } from './cluster-service.js';
import { contextOf, inSpan, SpanKind } from '../node/tracing.js';
import { OWN_PROPOSAL_TIMEOUT_MS } from './proposer.js';
import { MEMBER_COMMANDS, selfField, submitAuthProblem, type SubmitRequestWire } from './submit.js';

/** A submit's answer: the encoded result, or a refusal with its gRPC status. */
export type SubmitAnswer = { ok: true; result: Uint8Array } | { ok: false; refusal: { status: grpc.status; message: string } };

/** What the service works with. */
export interface SubmitServiceContext {
  nodeId: string;
  /** Undefined until this node holds it. */
  clusterKey(): Uint8Array | undefined;
  /** The Raft node once it runs; undefined before. */
  raft(): RaftNode | undefined;
  machine: ClusterStateMachine;
  metrics: Metrics;
  propose(envelope: Envelope, timeoutMs: number): Promise<CommandResult>;
  clock: Clock;
  logOnce(key: string, component: string, line: string): void;
}

/** See the file comment. */
export class SubmitService {
  constructor(private readonly context: SubmitServiceContext) {}

  /**
   * Answers a submit from `caller` (the node of the connection's
   * certificate), in the span `cluster.submit.handle`, a child of the
   * member's `traceparent` when it sent a valid one. Never throws.
   */
  handle(request: SubmitRequestWire, caller: string, traceparent?: string): Promise<SubmitAnswer> {
    return inSpan('cluster.submit.handle', { kind: SpanKind.SERVER, parent: contextOf(traceparent), attributes: { 'hivemind.peer.id': caller } }, () => this.handleTraced(request, caller));
  }

  private async handleTraced(request: SubmitRequestWire, caller: string): Promise<SubmitAnswer> {
    const { context } = this;
    const key = context.clusterKey();
    const raft = context.raft();
    if (key === undefined || raft === undefined) return refuse(grpc.status.UNAVAILABLE, `node ${context.nodeId} is not ready`);
    if (request.node_id !== caller) {
      context.metrics.peerRejected.inc({ reason: 'sender-mismatch' });
      return refuse(grpc.status.PERMISSION_DENIED, `node_id ${JSON.stringify(String(request.node_id).slice(0, 64))} is not the node of the connection's certificate (${caller})`);
    }
    const problem = submitAuthProblem(key, request, context.clock.now());
    if (problem !== undefined) {
      context.logOnce(`submit-auth:${request.node_id}`, 'agent', `refused a submit claiming node "${String(request.node_id).slice(0, 64)}": ${problem}`);
      return refuse(grpc.status.PERMISSION_DENIED, problem);
    }
    const status = raft.status();
    if (status.role !== 'leader') return refuse(grpc.status.FAILED_PRECONDITION, `not the leader (leader: ${status.leader || 'unknown'})`);
    const checked = this.check(request);
    if (!checked.ok) return checked;
    const { envelope } = checked;
    try {
      const result = context.machine.rememberedResult(envelope.requestId) ?? (await context.propose({ ...envelope, time: context.clock.now() }, OWN_PROPOSAL_TIMEOUT_MS));
      return { ok: true, result: encodeValue(result) };
    } catch (error) {
      return refuse(grpc.status.UNAVAILABLE, `not committed: ${(error as Error).message}`);
    }
  }

  /** The envelope, if it is one a member may submit as itself and this leader's code accepts. */
  private check(request: SubmitRequestWire): { ok: true; envelope: Envelope } | Extract<SubmitAnswer, { ok: false }> {
    const envelope = decodeEnvelope(request.envelope) as Partial<Envelope> | undefined;
    const command = envelope?.command as Partial<Command> | undefined;
    if (typeof envelope !== 'object' || envelope === null || typeof command !== 'object' || command === null) {
      return refuse(grpc.status.INVALID_ARGUMENT, 'envelope: does not decode to an envelope with a command');
    }
    if (envelope.actor !== request.node_id) return refuse(grpc.status.INVALID_ARGUMENT, `envelope.actor: must be the submitting node "${request.node_id}"`);
    if (typeof command.type !== 'string' || !MEMBER_COMMANDS.has(command.type as Command['type'])) {
      return refuse(grpc.status.INVALID_ARGUMENT, `envelope.command.type: members may submit only ${[...MEMBER_COMMANDS].join(', ')}`);
    }
    const self = selfField(command.type as Command['type']);
    if (self !== undefined && (command as Record<string, unknown>)[self] !== request.node_id) {
      return refuse(grpc.status.PERMISSION_DENIED, `envelope.command.${self}: a node may submit ${command.type} only for itself ("${request.node_id}")`);
    }
    const record = this.context.machine.node(request.node_id);
    if (record === undefined || record.status === 'left') return refuse(grpc.status.PERMISSION_DENIED, `node "${request.node_id}" is not a member`);
    if (typeof envelope.requestId !== 'string') return refuse(grpc.status.INVALID_ARGUMENT, 'envelope.requestId: must be a string');
    // This leader's code must accept the command as it stands: a newer member's command that it would refuse must not
    // enter the log stamped with this leader's version, where newer followers would apply it and the others refuse it.
    const validated = validateEnvelope({ ...envelope, time: this.context.clock.now() });
    if (!validated.ok) return refuse(grpc.status.INVALID_ARGUMENT, `envelope: ${validated.error.message} (is the submitting node newer than the leader?)`);
    return { ok: true, envelope: envelope as Envelope };
  }
}

function refuse(status: grpc.status, message: string): Extract<SubmitAnswer, { ok: false }> {
  return { ok: false, refusal: { status, message } };
}
