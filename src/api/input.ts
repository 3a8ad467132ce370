/**
 * Checks of what a client sends besides command bodies (those go through the
 * state's own validation): the shape of a JSON body, path names, query
 * parameters. Each failure is an `ApiError` naming the field; the server
 * answers it as 400 and changes nothing.
 */
import { NAME_PATTERN } from '../state/types.js';
import { IDENTIFIER_PATTERN } from '../state/validate.js';
import { invalidArgument } from './errors.js';

/** Which top-level fields a body may have. */
export type BodyFields = Record<string, 'required' | 'optional'>;

const NAME_HINT = 'a DNS label: 1 to 63 lowercase letters, digits and -, starting and ending with a letter or digit';

/**
 * The body as an object holding only the fields of `fields`. An absent body
 * counts as `{}`. Unknown fields, missing required ones and non-objects are refused.
 */
export function bodyObject(body: unknown, fields: BodyFields): Record<string, unknown> {
  const value = body === undefined ? {} : body;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw invalidArgument(undefined, `the request body must be a JSON object${describeFields(fields)}`);
  }
  const object = value as Record<string, unknown>;
  for (const key of Object.keys(object)) {
    if (!Object.hasOwn(fields, key)) throw invalidArgument(key, `${key} is not a known field; remove it${describeFields(fields)}`);
  }
  for (const [key, presence] of Object.entries(fields)) {
    if (presence === 'required' && object[key] === undefined) throw invalidArgument(key, `${key} is required`);
  }
  return object;
}

function describeFields(fields: BodyFields): string {
  const names = Object.keys(fields);
  return names.length === 0 ? ' with no fields' : ` (fields: ${names.join(', ')})`;
}

/** A tenant, app, volume, secret or policy name from the path or query. */
export function checkName(value: string, field: string): string {
  if (!NAME_PATTERN.test(value)) throw invalidArgument(field, `${field} ${JSON.stringify(shown(value))} is not a valid name: it must be ${NAME_HINT}`);
  return value;
}

/** A node id from the path or query. */
export function checkNodeId(value: string, field: string): string {
  if (value.length > 256 || !IDENTIFIER_PATTERN.test(value)) {
    throw invalidArgument(field, `${field} ${JSON.stringify(shown(value))} is not a valid node id (letters, digits and . _ : @ -)`);
  }
  return value;
}

function shown(value: string): string {
  return value.length > 64 ? `${value.slice(0, 61)}...` : value;
}

/** Query parameters every read takes. */
export const READ_QUERY = ['stale', 'index', 'wait'] as const;

/** Refuses query parameters not in `allowed`, and any given twice. */
export function checkQuery(query: URLSearchParams, allowed: readonly string[]): void {
  const seen = new Set<string>();
  for (const key of query.keys()) {
    if (!allowed.includes(key)) {
      const known = allowed.length > 0 ? ` (known: ${allowed.join(', ')})` : ' (this route takes none)';
      throw invalidArgument(key, `query parameter ${JSON.stringify(shown(key))} is not known here${known}`);
    }
    if (seen.has(key)) throw invalidArgument(key, `query parameter ${key} is given more than once`);
    seen.add(key);
  }
}

/** A name-valued query parameter, checked; undefined when absent. */
export function queryName(query: URLSearchParams, key: string): string | undefined {
  const value = query.get(key);
  return value === null ? undefined : checkName(value, key);
}

/** A node-id-valued query parameter, checked; undefined when absent. */
export function queryNodeId(query: URLSearchParams, key: string): string | undefined {
  const value = query.get(key);
  return value === null ? undefined : checkNodeId(value, key);
}

/** A whole-number query parameter within `range`; undefined when absent. */
export function queryInteger(query: URLSearchParams, key: string, range: { min: number; max: number }): number | undefined {
  const value = query.get(key);
  if (value === null) return undefined;
  const number = /^\d{1,16}$/.test(value) ? Number(value) : Number.NaN;
  if (!Number.isSafeInteger(number) || number < range.min || number > range.max) {
    throw invalidArgument(key, `${key} must be a whole number from ${range.min} to ${range.max}, got ${JSON.stringify(shown(value))}`);
  }
  return number;
}

/** A boolean query parameter: absent or `false` is false; `true` or empty (`?stale`) is true. */
export function queryBoolean(query: URLSearchParams, key: string): boolean {
  const value = query.get(key);
  if (value === null || value === 'false') return false;
  if (value === '' || value === 'true') return true;
  throw invalidArgument(key, `${key} must be true or false, got ${JSON.stringify(shown(value))}`);
}

/** `wait` of a blocking query: `30s`, `500ms`, `5m`; at most `maxMs`. */
export function queryDuration(query: URLSearchParams, key: string, maxMs: number): number | undefined {
  const value = query.get(key);
  if (value === null) return undefined;
  const match = /^(\d{1,9})(ms|s|m)$/.exec(value);
  const ms = match ? Number(match[1]) * (match[2] === 'ms' ? 1 : match[2] === 's' ? 1000 : 60_000) : Number.NaN;
  if (!Number.isSafeInteger(ms) || ms > maxMs) {
    throw invalidArgument(key, `${key} must be a duration such as 30s, 500ms or 5m, at most ${maxMs / 60_000}m, got ${JSON.stringify(shown(value))}`);
  }
  return ms;
}
