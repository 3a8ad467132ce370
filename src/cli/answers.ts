/**
 * Reading the API's answers (docs/api.md): lists come wrapped in an object
 * (`{ "apps": [...] }`). The contract (src/api/contract.ts) types each
 * answer; these check at run time the little the CLI relies on, so an
 * answer from a node of another version becomes one clear error rather than
 * a crash further down.
 */
import { CliError } from './errors.js';

/** The keys of `Body` that hold lists. */
type ListKeys<Body> = { [Key in keyof Body]-?: NonNullable<Body[Key]> extends readonly unknown[] ? Key : never }[keyof Body] & string;

/** The list under `key` in an answer such as `{ "apps": [...] }`. */
export function listIn<Body, Key extends ListKeys<Body>>(body: Body, key: Key): NonNullable<Body[Key]> {
  const value = typeof body === 'object' && body !== null ? (body as Record<string, unknown>)[key] : undefined;
  if (Array.isArray(value)) return value as NonNullable<Body[Key]>;
  throw new CliError(`the node's answer has no list of ${key}; is the node the same version as this CLI?`);
}

/** The answer as an object (every non-list answer of the API is one). */
export function objectOf<Body>(body: Body, what: string): Body {
  if (typeof body === 'object' && body !== null && !Array.isArray(body)) return body;
  throw new CliError(`the node's answer is not ${what}; is the node the same version as this CLI?`);
}
