/**
 * A route's key, `METHOD /path/:param`, and what a client and the server
 * both read from it: the method, the path template, its parameters and the
 * path a set of parameters gives. Imports nothing, so the CLI uses it without
 * loading the contract's schemas (src/api/contract.ts).
 *
 * A template has one segment per `:param` (`/v1/apps/:tenant/:name`), or a
 * last segment `*param` that takes the rest of the path, slashes included
 * (`/v1/kv/*key`).
 */

/** The methods the API serves (HEAD is served as GET). */
export type Method = 'GET' | 'PUT' | 'POST' | 'DELETE';

/** `GET /v1/status`: a method, one space, a path template. */
export type RouteKey = `${Method} /${string}`;

/** The path template of key `Key`. */
export type PathOf<Key extends string> = Key extends `${Method} ${infer Path}` ? Path : never;

/** The names of the parameters in template `Path`. */
export type ParamNames<Path extends string> = Path extends `${string}:${infer Name}/${infer Rest}`
  ? Name | ParamNames<`/${Rest}`>
  : Path extends `${string}:${infer Name}`
    ? Name
    : Path extends `${string}/*${infer Name}`
      ? Name
      : never;

/** The parameters of route `Key`, each a string (percent-encoded by `fillPath`, decoded by the server). */
export type ParamsOf<Key extends string> = { [Name in ParamNames<PathOf<Key>>]: string };

/** The method and path template of `key`. Throws on a key that is not `METHOD /path` (a bug in a declaration). */
export function splitRouteKey(key: string): { method: Method; path: string } {
  const space = key.indexOf(' ');
  const method = key.slice(0, space);
  const path = key.slice(space + 1);
  if (space < 0 || !['GET', 'PUT', 'POST', 'DELETE'].includes(method) || !path.startsWith('/')) throw new Error(`route key ${JSON.stringify(key)} is not METHOD /path`);
  return { method: method as Method, path };
}

/** The parameter names of `template`, in order. */
export function paramNamesOf(template: string): string[] {
  return template
    .split('/')
    .filter((segment) => segment.startsWith(':') || segment.startsWith('*'))
    .map((segment) => segment.slice(1));
}

/**
 * The path `template` names with `params`: each `:param` percent-encoded
 * whole, a `*param` percent-encoded segment by segment (its slashes stay).
 * Throws when a parameter is missing or empty (a bug in the caller: the
 * server would answer 404 to a path it cannot match).
 */
export function fillPath(template: string, params: Readonly<Record<string, string>>): string {
  return template
    .split('/')
    .map((segment) => {
      if (!segment.startsWith(':') && !segment.startsWith('*')) return segment;
      const name = segment.slice(1);
      const value = params[name];
      if (value === undefined || value === '') throw new Error(`the path ${template} needs a value for ${name}`);
      return segment.startsWith('*') ? value.split('/').map(encodeURIComponent).join('/') : encodeURIComponent(value);
    })
    .join('/');
}
