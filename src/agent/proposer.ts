/**
 * How this node gets commands into the log:
 *
 * - `propose`: on the leader, an envelope as it stands (the API's writes,
 *   joins, forwarded submits), written in the state version the replicated
 *   state gives it (the cluster version; src/state/version.ts) and counted in
 *   the proposal metrics; a command newer than the cluster version is
 *   refused here and never enters the log;
 * - `proposeOwn`: on the leader, a command of the node's own (registration,
 *   the join token, voter changes), under a fresh request id;
 * - `submit`: from any node, a command as this node (`services.submit`):
 *   proposed here on the leader, else sent to the leader's Cluster.Submit,
 *   signed with the cluster key (submit.ts; the leader's side is
 *   submit-service.ts).
 *
 * Tracing (docs/internals/tracing.md): `propose` is the span `raft.propose`,
 * and its `raft.commit` child the wait from the append to the apply here (a
 * quorum's acknowledgement); the envelope carries the `raft.propose` span's
 * `traceparent` once the cluster version allows it (TRACE_CONTEXT_VERSION),
 * so that every node's apply joins the trace. `submit` from a follower sends
 * the active `traceparent` in the call's metadata instead: the leader's
 * `raft.propose` is then a child of the member's span.
 */
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { RaftNode } from '../../consensus/node.js';
import { NotLeaderError, ProposalLostError, TimeoutError } from '../../consensus/errors.js';
import type { Metrics, ProposalOutcome } from '../api/metrics.js';
import type { ClusterStateMachine } from '../state/machine.js';
import type { Command, CommandResult, Envelope } from '../state/types.js';
import { decodeEnvelope, encodeEnvelope } from '../node/replicated-state.js';
import type { Clock } from '../node/clock.js';
import type { ClusterClients } from './cluster-service.js';
import { signSubmit } from './submit.js';
import { TRACE_CONTEXT_VERSION } from '../state/version.js';
import { inSpan, markFailed, SpanKind, traceparentOf } from '../node/tracing.js';

/** The time limit of a proposal the node makes for itself, ms. */
export const OWN_PROPOSAL_TIMEOUT_MS = 10_000;

/** What a `Proposer` works with. */
export interface ProposerContext {
  nodeId: string;
  /** The Raft node once it runs; undefined before. */
  raft(): RaftNode | undefined;
  /** The replicated state: the cluster version an envelope is written in. */
  machine: ClusterStateMachine;
  metrics: Metrics;
  /** The cluster key (throws when this node has none yet). */
  clusterKey(): Uint8Array;
  /** Peer addresses by node id (the leader's, to submit to). */
  peerMap(): Readonly<Record<string, string>>;
  /** Only `submit` is used: the simulator (src/sim) hands in its own, over its simulated network. */
  clients: Pick<ClusterClients, 'submit'>;
  clock: Clock;
  /** A fresh request id for this node's own commands. Default: `node:<id>:<random UUID>`; the simulator's come from its seed. */
  requestId?: () => string;
  /** Logs a line at most once in a while for the same key. */
  logOnce(key: string, component: string, line: string): void;
}

/** See the file comment. */
export class Proposer {
  constructor(private readonly context: ProposerContext) {}

  /**
   * Leader only: proposes `envelope` and resolves with its result once it is
   * applied here. A command newer than the cluster version resolves at once
   * with the refusal apply would give ('cluster-version-too-old'), proposing
   * nothing. Rejects with the RaftErrors of `RaftNode.propose`
   * (NotLeaderError before Raft runs).
   */
  propose(envelope: Envelope, timeoutMs: number): Promise<CommandResult> {
    return inSpan('raft.propose', { attributes: { 'hivemind.command.type': envelope.command.type, 'hivemind.request.id': envelope.requestId } }, async (span) => {
      const result = await this.proposeTraced(envelope, timeoutMs);
      span.setAttribute('hivemind.raft.index', result.index);
      if (!result.ok) markFailed(span, result.error.message);
      return result;
    });
  }

  /** `propose`'s work, inside its span. */
  private async proposeTraced(envelope: Envelope, timeoutMs: number): Promise<CommandResult> {
    const raft = this.context.raft();
    if (raft === undefined) throw new NotLeaderError('');
    const { machine, metrics } = this.context;
    const gate = machine.versionGateProblem(envelope.command);
    if (gate !== undefined) {
      metrics.proposals.inc({ outcome: 'refused' });
      return { ok: false, index: machine.appliedIndex, error: gate };
    }
    const started = performance.now();
    try {
      // Written in the cluster version (version.ts): every member applies it as this node does, and one too old stops at it.
      const version = machine.envelopeVersion(envelope.command);
      const { traceparent: _given, ...bare } = envelope;
      const traceparent = version >= TRACE_CONTEXT_VERSION ? traceparentOf() : undefined;
      const data = encodeEnvelope({ ...bare, version, ...(traceparent !== undefined ? { traceparent } : {}) });
      const proposed = await inSpan('raft.commit', { attributes: { 'hivemind.entry.bytes': data.byteLength } }, () => raft.propose(data, { timeoutMs }));
      const result = proposed.result as CommandResult;
      metrics.proposals.inc({ outcome: result.ok ? 'applied' : 'refused' });
      metrics.proposalSeconds.observe((performance.now() - started) / 1000);
      return result;
    } catch (error) {
      metrics.proposals.inc({ outcome: proposalOutcome(error) });
      throw error;
    }
  }

  /** Leader only: proposes a command of this node's own; a refusal is logged (once in a while) and returned. */
  async proposeOwn(command: Command): Promise<CommandResult> {
    const result = await this.propose(this.envelope(command), OWN_PROPOSAL_TIMEOUT_MS);
    if (!result.ok) this.context.logOnce(`refused:${result.error.message}`, 'agent', `${command.type} was refused: ${result.error.message}`);
    return result;
  }

  /**
   * Proposes `command` as this node: here on the leader, else through the
   * leader's Submit. Rejects (NotLeaderError, TimeoutError,
   * ProposalLostError, or an Error saying why) when it was not proposed.
   */
  async submit(command: Command, timeoutMs: number): Promise<CommandResult> {
    const envelope = this.envelope(command);
    const raft = this.context.raft();
    if (raft === undefined) throw new NotLeaderError('');
    const status = raft.status();
    if (status.role === 'leader') return this.propose(envelope, timeoutMs);
    const address = status.leader === '' ? undefined : this.context.peerMap()[status.leader];
    if (address === undefined) throw new NotLeaderError(status.leader);
    const request = signSubmit(this.context.clusterKey(), this.context.nodeId, encodeEnvelope(envelope), this.context.clock.now());
    const answer = await inSpan('cluster.submit', { kind: SpanKind.CLIENT, attributes: { 'hivemind.command.type': command.type, 'hivemind.leader.id': status.leader } }, () =>
      this.context.clients.submit(address, request, timeoutMs, traceparentOf()),
    );
    if (!answer.ok) throw new Error(`leader ${status.leader} (${address}) did not take ${command.type}: ${answer.message}`);
    const result = decodeEnvelope(answer.result) as CommandResult | undefined;
    if (typeof result !== 'object' || result === null || typeof (result as { ok?: unknown }).ok !== 'boolean') {
      throw new Error(`leader ${status.leader} answered ${command.type} with something that is not a result`);
    }
    return result;
  }

  private envelope(command: Command): Envelope {
    const requestId = this.context.requestId?.() ?? `node:${this.context.nodeId}:${randomUUID()}`;
    return { requestId, time: this.context.clock.now(), actor: this.context.nodeId, command };
  }
}

function proposalOutcome(error: unknown): ProposalOutcome {
  if (error instanceof NotLeaderError) return 'not-leader';
  if (error instanceof ProposalLostError) return 'lost';
  if (error instanceof TimeoutError) return 'timeout';
  return 'error';
}
