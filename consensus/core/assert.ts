/**
 * The one assertion helper. It stays on in production: a broken invariant
 * means this node can no longer be trusted, so it stops, and its supervisor
 * restarts it from disk.
 */
export class AssertionError extends Error {
  readonly code = 'ASSERTION_FAILED';
}

/**
 * Throws `AssertionError` with `message` when `condition` is false. On paths
 * taken per entry or per message, pass the message as a function, so that it
 * is only built when the assertion fails.
 */
export function assert(condition: unknown, message: string | (() => string)): asserts condition {
  if (!condition) throw new AssertionError(typeof message === 'string' ? message : message());
}
