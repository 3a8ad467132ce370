/**
 * The errors `RaftNode` rejects its promises with. Each has a stable `code`
 * (UPPER_SNAKE, like `StorageCorruptError` and `AssertionError`): callers
 * match on the code or the class, never on the message text. Every one of
 * them is an expected outcome of running a distributed system, not a bug.
 */
import type { NodeId, Refusal } from './core/types.js';

/** The base of every error `RaftNode` reports. */
export abstract class RaftError extends Error {
  abstract readonly code: string;
}

/**
 * This node does not lead, so it cannot take a proposal or a membership
 * change, or knows no leader to forward a read to. Retry at `leader` when it
 * is not empty; an empty `leader` means no leader is known yet (an election
 * is probably under way): retry shortly.
 */
export class NotLeaderError extends RaftError {
  readonly code = 'NOT_LEADER';
  constructor(
    readonly leader: NodeId,
    message = leader === ''
      ? 'this node is not the leader and knows no leader (an election may be under way); retry shortly'
      : `this node is not the leader; send the request to the leader, node "${leader}"`,
  ) {
    super(message);
  }
}

/** The leader is handing leadership to `to` and takes no proposals meanwhile; retry at `to` shortly. */
export class LeadershipTransferError extends RaftError {
  readonly code = 'LEADERSHIP_TRANSFER';
  constructor(readonly to: NodeId) {
    super(`the leader is handing leadership to node "${to}" and refuses proposals meanwhile; retry shortly`);
  }
}

/** A proposal's payload is over the limit; it will never be accepted as it is. */
export class EntryTooLargeError extends RaftError {
  readonly code = 'ENTRY_TOO_LARGE';
  constructor(
    readonly bytes: number,
    readonly maxBytes: number,
  ) {
    super(`the proposal is ${bytes} bytes, over the limit of ${maxBytes} bytes per entry; split it`);
  }
}

/**
 * A bounded queue is full (uncommitted bytes on the leader, ReadIndex rounds,
 * the driver's inbox): the node is overloaded. Retry after a back-off.
 */
export class OverloadedError extends RaftError {
  readonly code = 'OVERLOADED';
}

/** The core refused a membership change or a leadership transfer; `reason` says why. */
export class ConfigChangeError extends RaftError {
  readonly code = 'CONFIG_CHANGE_REFUSED';
  /**
   * @param retryable the same change may succeed shortly: another change is
   *   still being committed, or a new leader has not committed in its term yet
   * @param noChange the configuration already is what the change asks for
   */
  constructor(
    readonly reason: string,
    readonly retryable = false,
    readonly noChange = false,
  ) {
    super(`the membership change was refused: ${reason}`);
  }
}

/**
 * The proposal is certainly not in the log: another entry was committed at its
 * index, or an entry of a later term was committed before it. It may be
 * retried (with the same application-level request id, to stay exactly-once).
 */
export class ProposalLostError extends RaftError {
  readonly code = 'PROPOSAL_LOST';
  constructor(
    readonly index: number,
    readonly term: number,
  ) {
    super(
      `the proposal at index ${index}, term ${term} was overwritten after a change of leader and will never apply; retry it`,
    );
  }
}

/**
 * This node can no longer tell whether the proposal was committed: a snapshot
 * from the leader replaced the part of the log that held it. Retry with the
 * same application-level request id so that it applies at most once.
 */
export class OutcomeUnknownError extends RaftError {
  readonly code = 'OUTCOME_UNKNOWN';
  constructor(
    readonly index: number,
    readonly term: number,
  ) {
    super(
      `the proposal at index ${index}, term ${term} was covered by a snapshot from the leader; ` +
        'whether it applied is unknown; retry it with the same request id',
    );
  }
}

/** A ReadIndex round could not complete (leadership changed while it ran); retry the read. */
export class ReadRefusedError extends RaftError {
  readonly code = 'READ_REFUSED';
  constructor() {
    super('the linearizable read could not be confirmed (leadership changed meanwhile); retry it');
  }
}

/**
 * The request did not finish within its time limit. For a proposal the
 * outcome is unknown: it may still commit.
 */
export class TimeoutError extends RaftError {
  readonly code = 'TIMEOUT';
}

/** The caller's AbortSignal fired before the request finished; for a proposal the outcome is unknown. */
export class AbortedError extends RaftError {
  readonly code = 'ABORTED';
}

/**
 * The node is stopped, or stopped itself after a storage error (then `cause`
 * holds that error, and the process should restart from disk).
 */
export class StoppedError extends RaftError {
  readonly code = 'STOPPED';
}

/** The error a refusal of the core turns into. */
export function refusalError(refusal: Refusal): RaftError {
  switch (refusal.code) {
    case 'not-leader':
      return new NotLeaderError(refusal.leader);
    case 'transfer-in-progress':
      return new LeadershipTransferError(refusal.leader);
    case 'entry-too-large':
      return new EntryTooLargeError(refusal.bytes, refusal.maxBytes);
    case 'uncommitted-limit':
      return new OverloadedError(
        `the leader holds ${refusal.bytes} bytes of uncommitted proposals (limit ${refusal.maxBytes}); retry after a back-off`,
      );
    case 'read-queue-full':
      return new OverloadedError(`${refusal.max} linearizable reads are already waiting; retry after a back-off`);
    case 'config-change-pending':
      return new ConfigChangeError(`another membership change (index ${refusal.index}) is not committed yet; retry once it is`, true);
    case 'no-commit-in-term':
      return new ConfigChangeError('the new leader has not committed an entry of its term yet; retry shortly', true);
    case 'invalid-config-change':
      return new ConfigChangeError(refusal.reason, false, refusal.noChange === true);
  }
}
