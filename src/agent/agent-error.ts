/**
 * Why an agent could not start or had to stop, with a stable `code` and a
 * message for the operator (what failed, on what, what to do).
 */

/** The stable codes of `AgentError`. */
export type AgentErrorCode =
  /** The cluster refused the join token. */
  | 'join-refused'
  /** Joining failed for another reason: bad seed, unreachable, no leader in time, refused request. */
  | 'join-failed'
  /** The node left its cluster; it must join again. */
  | 'left'
  /** The data directory cannot be used as it is. */
  | 'data-dir'
  /** A setting is missing or invalid for what was asked. */
  | 'config'
  /** A port could not be bound, or the node did not come up. */
  | 'start-failed';

/** A start or run failure of the agent; `message` is for the operator, `code` for programs. */
export class AgentError extends Error {
  constructor(
    readonly code: AgentErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
