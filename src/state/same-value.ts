/**
 * Structural equality of plain values (what a command carries: objects,
 * arrays, strings, numbers, booleans, null, byte arrays). Key order does not
 * count, and a key set to `undefined` counts as absent, so a spec that came
 * through the log equals the one built from the same file. Pure.
 */

/** Whether `left` and `right` hold the same plain value. */
export function sameValue(left: unknown, right: unknown): boolean {
  if (left === right) return true;
  if (left instanceof Uint8Array || right instanceof Uint8Array) {
    if (!(left instanceof Uint8Array && right instanceof Uint8Array) || left.length !== right.length) return false;
    return left.every((byte, position) => byte === right[position]);
  }
  if (Array.isArray(left) || Array.isArray(right)) {
    if (!(Array.isArray(left) && Array.isArray(right)) || left.length !== right.length) return false;
    return left.every((item, position) => sameValue(item, right[position]));
  }
  if (typeof left !== 'object' || typeof right !== 'object' || left === null || right === null) return false;
  const leftRecord = left as Record<string, unknown>;
  const rightRecord = right as Record<string, unknown>;
  const keys = new Set([...Object.keys(leftRecord), ...Object.keys(rightRecord)]);
  for (const key of keys) if (!sameValue(leftRecord[key], rightRecord[key])) return false;
  return true;
}
