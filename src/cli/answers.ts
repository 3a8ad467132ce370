/**
 * Reading the API's answers (docs/api.md): lists come wrapped in an object
 * (`{ "apps": [...] }`). A surprising answer becomes one clear error rather
 * than a crash further down.
 */
import { CliError } from './errors.js';

/** The list under `key` in an answer such as `{ "apps": [...] }`. */
export function listIn<T>(body: unknown, key: string): T[] {
  const value = typeof body === 'object' && body !== null ? (body as Record<string, unknown>)[key] : undefined;
  if (Array.isArray(value)) return value as T[];
  throw new CliError(`the node's answer has no list of ${key}; is the node the same version as this CLI?`);
}

/** The answer as an object (every non-list answer of the API is one). */
export function objectOf<T>(body: unknown, what: string): T {
  if (typeof body === 'object' && body !== null && !Array.isArray(body)) return body as T;
  throw new CliError(`the node's answer is not ${what}; is the node the same version as this CLI?`);
}
