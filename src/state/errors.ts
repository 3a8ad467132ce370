/**
 * The errors of the state machine: stable codes, the `{ code, message, field }`
 * shape that travels in a `CommandResult`, and the formatters that make
 * quota messages readable ("used 3.5 GiB of 4 GiB").
 *
 * Pure: no Node API, so apply can use it.
 */

/** Stable error codes. Clients match on these, never on message text. */
export const ErrorCode = {
  /** The command is malformed: a wrong type, an unknown field, a bad name, a value out of range. */
  invalidArgument: 'invalid-argument',
  /** The command names something that does not exist. */
  notFound: 'not-found',
  /** The command creates something that already exists. */
  alreadyExists: 'already-exists',
  /** The command would take a tenant beyond its quota. */
  quotaExceeded: 'quota-exceeded',
  /** A compare-and-set found another version than the one expected. */
  versionMismatch: 'version-mismatch',
  /** The command cannot apply to the current state (in use, not up, already current). */
  conflict: 'conflict',
  /** A cluster-wide limit on the number of some entity is reached. */
  limitReached: 'limit-reached',
  /** Sealed data could not be opened: wrong key, or the bytes were changed. */
  secretUnreadable: 'secret-unreadable',
  /** The tenant's settings do not allow it (host users, host mounts): a cluster-admin decision. */
  forbidden: 'forbidden',
  /** The command is newer than the cluster version: not every node runs a Hivemind that applies it yet (version.ts). */
  clusterVersionTooOld: 'cluster-version-too-old',
} as const;

/** One of the values of `ErrorCode`. */
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/** A refusal, as carried by `CommandResult` and returned by the API as JSON. */
export interface StateError {
  code: ErrorCode;
  /** Says what failed, on what, and what to do. */
  message: string;
  /** The path of the offending field in the command, such as `spec.replicas`. */
  field?: string;
}

/** Builds a `StateError`; `field` is left out (not `undefined`) when absent, so results encode compactly. */
export function stateError(code: ErrorCode, message: string, field?: string): StateError {
  return field === undefined ? { code, message } : { code, message, field };
}

const httpStatusByCode: Record<ErrorCode, number> = {
  'invalid-argument': 400,
  'not-found': 404,
  'already-exists': 409,
  'quota-exceeded': 403,
  'version-mismatch': 409,
  conflict: 409,
  'limit-reached': 409,
  'secret-unreadable': 500,
  forbidden: 403,
  'cluster-version-too-old': 409,
};

/** The HTTP status the API answers with for `code`; 400 for a code it does not know. */
export function httpStatus(code: string): number {
  return httpStatusByCode[code as ErrorCode] ?? 400;
}

const byteUnits = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB', 'EiB'] as const;

/** Formats a byte count with binary units and at most two decimals: 3758096384 → "3.5 GiB". */
export function formatBytes(bytes: number): string {
  let value = bytes;
  let unit = 0;
  while (Math.abs(value) >= 1024 && unit < byteUnits.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${trimDecimals(value, 2)} ${byteUnits[unit]}`;
}

/** Formats thousandths of a core as cores: 1500 → "1.5 cores", 1000 → "1 core". */
export function formatCpu(cpuMillis: number): string {
  const cores = trimDecimals(cpuMillis / 1000, 3);
  return `${cores} ${cores === '1' ? 'core' : 'cores'}`;
}

function trimDecimals(value: number, decimals: number): string {
  return String(Number(value.toFixed(decimals)));
}
