/**
 * What `ps`, `app` and `deploy --wait` say about one instance beside its
 * state: the executor's last word on it, else why it last failed (kept
 * while it is placed again), else, while it is not placed, why the
 * scheduler cannot place its app.
 */
import type { Instance, UnplaceableRecord } from '../../state/types.js';

/** The longest message shown in a table cell (the failure's cause is the point: keep most of it). */
export const INSTANCE_MESSAGE_CHARS_MAX = 160;

/**
 * The message of `instance` (see the file comment); `unplaceable` is its
 * app's record, if any. Empty when there is nothing to say.
 */
export function instanceMessage(instance: Instance, unplaceable?: UnplaceableRecord): string {
  const message = instance.status?.message;
  if (message !== undefined && message !== '') return message;
  const failure = instance.lastFailure;
  if (failure !== undefined) return `last failed${failure.node === undefined ? '' : ` on ${failure.node}`}: ${failure.message}`;
  const placed = instance.node !== undefined && instance.node !== null;
  if (!placed && instance.desired === 'running' && unplaceable !== undefined && unplaceable.count > 0) return `unplaceable: ${unplaceable.reasons.join('; ')}`;
  return '';
}
