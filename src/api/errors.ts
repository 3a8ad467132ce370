/**
 * The API's errors: a stable `code`, an HTTP status, a message that says
 * what failed, on what, and what to do, and the offending `field` when there
 * is one. Answered as `{ "error": { "code", "message", "field" } }`.
 */
import {
  ConfigChangeError,
  EntryTooLargeError,
  LeadershipTransferError,
  NotLeaderError,
  OutcomeUnknownError,
  OverloadedError,
  ProposalLostError,
  ReadRefusedError,
  StoppedError,
  TimeoutError,
  AbortedError,
} from '../../consensus/errors.js';
import { httpStatus, type StateError } from '../state/errors.js';

/** The API's own codes (the state machine's are in src/state/errors.ts). */
export const ApiCode = {
  invalidArgument: 'invalid-argument',
  invalidAppFile: 'invalid-app-file',
  unauthenticated: 'unauthenticated',
  forbidden: 'forbidden',
  notFound: 'not-found',
  methodNotAllowed: 'method-not-allowed',
  conflict: 'conflict',
  /** An image pull found no registry at the address (502). */
  registryUnreachable: 'registry-unreachable',
  /** The registry answered an image pull with an error (502). */
  registryError: 'registry-error',
  /** An Idempotency-Key this caller already used for another request (422). */
  idempotencyKeyReused: 'idempotency-key-reused',
  payloadTooLarge: 'payload-too-large',
  unsupportedMediaType: 'unsupported-media-type',
  noLeader: 'no-leader',
  unavailable: 'unavailable',
  overloaded: 'overloaded',
  timeout: 'timeout',
  internal: 'internal',
} as const;

/** An error answer. Thrown by handlers for expected refusals; the server turns it into JSON. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly field?: string,
    /** Extra members of the `error` object (such as `errors` of an app file). */
    readonly extra: Record<string, unknown> = {},
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }

  toJSON(): { error: Record<string, unknown> } {
    return { error: { code: this.code, message: this.message, ...(this.field === undefined ? {} : { field: this.field }), ...this.extra } };
  }
}

/** A 400 `invalid-argument` naming `field`. */
export function invalidArgument(field: string | undefined, message: string): ApiError {
  return new ApiError(400, ApiCode.invalidArgument, message, field);
}

/** A state machine refusal as an API error, with its mapped status. */
export function fromStateError(error: StateError | { code: string; message: string; field?: string }): ApiError {
  return new ApiError(httpStatus(error.code), error.code, error.message, error.field);
}

/** Raft errors a write or read may retry (with the same request id, a write stays exactly-once). */
export function isRetryable(error: unknown): boolean {
  return (
    error instanceof NotLeaderError ||
    error instanceof LeadershipTransferError ||
    error instanceof ProposalLostError ||
    error instanceof OutcomeUnknownError ||
    error instanceof ReadRefusedError ||
    (error instanceof ConfigChangeError && error.retryable)
  );
}

/** The answer for a Raft error that was not (or no longer) retried. Unknown errors become undefined (a bug: 500). */
export function fromRaftError(error: unknown, what: 'write' | 'read'): ApiError | undefined {
  const retry = what === 'write' ? 'retry with the same Idempotency-Key' : 'retry';
  if (error instanceof NotLeaderError || error instanceof LeadershipTransferError) {
    return new ApiError(503, ApiCode.noLeader, `no leader is available (an election is under way, or the cluster lost its quorum); ${retry}`);
  }
  if (error instanceof TimeoutError || error instanceof AbortedError || error instanceof OutcomeUnknownError) {
    const outcome = what === 'write' ? 'the write may or may not have been applied; ' : '';
    return new ApiError(504, ApiCode.timeout, `the ${what} did not complete in time: ${outcome}${retry}`);
  }
  if (error instanceof ProposalLostError || error instanceof ReadRefusedError) {
    return new ApiError(503, ApiCode.noLeader, `the leader changed while the ${what} was in flight; ${retry}`);
  }
  if (error instanceof OverloadedError) return new ApiError(503, ApiCode.overloaded, `the node is overloaded: ${error.message}`);
  if (error instanceof EntryTooLargeError) return new ApiError(413, ApiCode.payloadTooLarge, `the request is too large to replicate: ${error.message}`);
  if (error instanceof ConfigChangeError) return new ApiError(409, ApiCode.conflict, error.message);
  if (error instanceof StoppedError) return new ApiError(503, ApiCode.unavailable, 'the node is stopping; send the request to another node');
  return undefined;
}
