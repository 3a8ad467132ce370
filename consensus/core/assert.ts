/**
 * The one assertion helper. It stays on in production: a broken invariant
 * means this node can no longer be trusted, so it stops, and its supervisor
 * restarts it from disk.
 */
export class AssertionError extends Error {
  readonly code = 'ASSERTION_FAILED';
}

/** Throws `AssertionError` with `message` when `condition` is false. */
export function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new AssertionError(message);
}
