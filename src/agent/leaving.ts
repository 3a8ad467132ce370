/**
 * Leaving the cluster, from both ends:
 *
 * - `leaveNode`, on the leader (`POST /v1/nodes/{id}/leave`): the leaving
 *   node's record first (`node.remove`), so that the node, still a member,
 *   applies it and knows it left; then its Raft membership. A leader asked
 *   to leave hands leadership to the most caught-up reachable voter first.
 * - `LeaveWatch`, on every node: notices that this node's own record says
 *   its membership ended, marks node.json `left` and stops the node a moment
 *   later, so the answer to the leave can still get out.
 */
import type { RaftNode } from '../../consensus/node.js';
import type { Status } from '../../consensus/core/types.js';
import { ApiCode, ApiError } from '../api/errors.js';
import type { LeaveOutcome } from '../api/backend.js';
import { hasLeftMembership } from '../state/apply-nodes.js';
import type { ClusterStateMachine } from '../state/machine.js';
import type { CommandResult, Envelope } from '../state/types.js';
import type { Clock } from '../node/clock.js';
import type { StateEvent } from '../node/replicated-state.js';
import { isHeartbeatApply } from '../node/services.js';
import type { NodeMembership } from './node-membership.js';
import { changeMembership } from './voter-manager.js';

/** After leaving, the node lingers this long so the answer to the leave can get out, ms. */
export const LEAVE_STOP_DELAY_MS = 1000;

/** What `leaveNode` works with. */
export interface LeaveContext {
  nodeId: string;
  raft: RaftNode;
  machine: ClusterStateMachine;
  propose(envelope: Envelope, timeoutMs: number): Promise<CommandResult>;
  clock: Clock;
  signal: AbortSignal;
  log(component: string, line: string): void;
}

/** Leader only: removes node `id` from the cluster (moving leadership away first if it is this node). Rejects with RaftErrors, or an ApiError. */
export async function leaveNode(context: LeaveContext, id: string, options: { requestId: string; actor: string; timeoutMs: number }): Promise<LeaveOutcome> {
  const { raft, machine, clock } = context;
  const deadline = clock.now() + options.timeoutMs;
  const remainingMs = (): number => Math.max(1, deadline - clock.now());
  const record = machine.node(id);
  const status = raft.status();
  const member = status.config.voters.includes(id) || status.config.learners.includes(id);
  if (record === undefined && !member) throw new ApiError(404, ApiCode.notFound, `node "${id}" is not registered in this cluster`, 'id');
  if (id === context.nodeId) {
    const target = transferTarget(status, context.nodeId);
    if (target === undefined) {
      throw new ApiError(
        409,
        ApiCode.conflict,
        `node "${id}" is the cluster's only voter and cannot leave: the cluster would have no quorum; join more nodes first (learners are promoted automatically), or stop it if the cluster should end`,
        'id',
      );
    }
    context.log('agent', `leaving: handing leadership to ${target} first`);
    await raft.transferLeadership(target, { timeoutMs: remainingMs() });
    return { type: 'moved', leader: target };
  }
  // The record first: the leaving node sees it is out and stops; then Raft membership.
  let result: CommandResult = { ok: true, index: machine.appliedIndex };
  if (record !== undefined) {
    // Ends the membership the record is of now: applied after the node left and joined again, it is refused.
    const envelope: Envelope = { requestId: options.requestId, time: clock.now(), actor: options.actor, command: { type: 'node.remove', id, joinedIndex: record.joinedIndex } };
    result = machine.rememberedResult(options.requestId) ?? (await context.propose(envelope, remainingMs()));
    if (!result.ok) return { type: 'done', result };
  }
  if (member) {
    try {
      await changeMembership((attemptMs) => raft.removeNode(id, { timeoutMs: attemptMs }), { deadline, clock, signal: context.signal });
    } catch (error) {
      // The record says left: the voter manager finishes the removal.
      context.log('membership', `removing ${id} from Raft did not finish yet (${(error as Error).message}); the membership manager will retry`);
    }
  }
  context.log('membership', `node ${id} left the cluster`);
  return { type: 'done', result };
}

/** The voter to hand leadership to: reachable first, then the most caught up. */
export function transferTarget(status: Status, self: string): string | undefined {
  const progress = status.progress ?? {};
  const others = status.config.voters.filter((id) => id !== self);
  others.sort((left, right) => {
    const active = Number(progress[right]?.recentActive ?? false) - Number(progress[left]?.recentActive ?? false);
    return active || (progress[right]?.match ?? 0) - (progress[left]?.match ?? 0);
  });
  return others[0];
}

/** What the watch works with. */
export interface LeaveWatchContext {
  nodeId: string;
  machine: ClusterStateMachine;
  membership: NodeMembership;
  clock: Clock;
  log(line: string): void;
  /** Called once, when this node's membership ended. */
  onLeft(): void;
  /** Stops the node; called `LEAVE_STOP_DELAY_MS` after `onLeft`. */
  stop(): void;
}

/** See the file comment. Checks after each apply but heartbeats, and after a restore, once armed. */
export class LeaveWatch {
  #left = false;
  #checkArmed = false;
  /** Checks run only once armed: before, a joiner's identity lacks the index that tells an earlier membership's `left` from its own. */
  #armed = false;

  constructor(private readonly context: LeaveWatchContext) {}

  /** Whether this node noticed that it left. */
  get left(): boolean {
    return this.#left;
  }

  /** Starts checking (once the node's identity is final: after a join completed), with a check now. */
  arm(): void {
    this.#armed = true;
    this.scheduleCheck();
  }

  /** The state listener: schedules a check (never on the apply itself: the check writes node.json). */
  readonly onStateEvent = (event: StateEvent): void => {
    if (!this.#armed) return;
    // Any apply may end the membership (node.remove, a node.status, a command that touches records in passing) but a heartbeat.
    if (isHeartbeatApply(event)) return;
    this.scheduleCheck();
  };

  /** Checks on a later turn (once, however many ask before it runs). */
  private scheduleCheck(): void {
    if (this.#left || this.#checkArmed) return;
    this.#checkArmed = true;
    this.context.clock.setTimer(0, () => {
      this.#checkArmed = false;
      this.check();
    });
  }

  /** True once this node's own record says its membership ended: node.json is marked `left` and the node stops. */
  private check(): boolean {
    if (this.#left) return true;
    const { membership, machine } = this.context;
    if (membership.identity === undefined || !hasLeftMembership(machine.node(this.context.nodeId), membership.joinedIndex)) return false;
    this.#left = true;
    this.context.log(`this node has left the cluster; stopping in ${LEAVE_STOP_DELAY_MS} ms`);
    membership.markLeft();
    this.context.onLeft();
    this.context.clock.setTimer(LEAVE_STOP_DELAY_MS, () => this.context.stop());
    return true;
  }
}
