// The API contract (src/api/contract.ts) against what is served and what is
// documented: every declared route is served once, as declared, and nothing
// else is; a path the client builds from a route's parameters finds that
// route on the server with the same parameters back; docs/api.md lists every
// route and no route that does not exist.
import { readFileSync } from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { contract, declarations } from '../contract.js';
import { READ_QUERY, checkQuery } from '../input.js';
import { paramNamesOf, splitRouteKey } from '../route-key.js';
import { Router, bodyFieldsOf } from '../router.js';
import { routes } from '../routes.js';
import { parseTarget } from '../server.js';
import { routePath } from '../../cli/client.js';

const declared = Object.entries(declarations);
const label = (route: { method: string; path: string }): string => `${route.method} ${route.path}`;

test('every declared route is served once, and every served route is declared', () => {
  const served = routes.map(label);
  const duplicates = served.filter((key, position) => served.indexOf(key) !== position);
  assert.equal(duplicates, [], 'a route served twice');
  const keys = declared.map(([key]) => key);
  assert.equal(keys.filter((key) => !served.includes(key)), [], 'declared but not served');
  assert.equal(served.filter((key) => !keys.includes(key)), [], 'served but not declared');
});

test('each served route has its declaration\'s kind, access, query and body', () => {
  for (const route of routes) {
    const declaration = declarations[label(route) as keyof typeof declarations]!;
    const where = label(route);
    assert.is(route.kind, declaration.kind, `${where}: kind`);
    assert.equal(route.access, declaration.access, `${where}: access`);
    assert.equal(route.query ?? [], declaration.query === undefined ? [] : Object.keys(declaration.query.shape), `${where}: query`);
    const body = route.kind === 'write' || route.kind === 'local' ? route.body : undefined;
    assert.equal(body, declaration.body === undefined ? undefined : bodyFieldsOf(declaration.body), `${where}: body`);
    // The query a client may send (a read's blocking one included) is what the server takes.
    const names = [...(declaration.query === undefined ? [] : Object.keys(declaration.query.shape)), ...(route.kind === 'read' ? READ_QUERY : [])];
    checkQuery(new URLSearchParams(names.map((name): [string, string] => [name, '1'])), route.kind === 'read' ? [...READ_QUERY, ...(route.query ?? [])] : (route.query ?? []));
  }
});

test('a required body field is one without .optional(), and an optional one is not required', () => {
  assert.equal(bodyFieldsOf(contract['POST /v1/apps/:tenant/:name/scale'].body!), { replicas: 'required' });
  assert.equal(bodyFieldsOf(contract['PUT /v1/kv/*key'].body!), { value: 'required', expectVersion: 'optional' });
});

/**
 * Parameter values: ones the routes' checks accept, and ones they refuse
 * later but the path must still carry intact (routing decodes before any check).
 */
const SAMPLE_VALUES: Record<string, string[]> = {
  tenant: ['acme', 'a b', 'x?y#z'],
  name: ['web', '100%', 'ü/ß'],
  id: ['default.web.0.1', 'n1@host:7071', '20261205T063000123Z', 'a&b=c'],
  key: ['app/web/color', 'a b/ç?#%/x', 'trailing/', 'x+y'],
};

test('the path the client builds for a route finds that route on the server, with the same parameters', () => {
  const router = new Router(routes);
  for (const [key] of declared) {
    const { method, path } = splitRouteKey(key);
    const names = paramNamesOf(path);
    const rounds = Math.max(1, ...names.map((name) => SAMPLE_VALUES[name]?.length ?? 0));
    for (let round = 0; round < rounds; round++) {
      const params: Record<string, string> = {};
      for (const name of names) {
        const values = SAMPLE_VALUES[name];
        assert.ok(values !== undefined, `${key}: no sample values for parameter ${name}; add some`);
        params[name] = values[round % values.length]!;
      }
      const target = routePath(key as 'GET /v1/apps/:tenant/:name', params as { tenant: string; name: string });
      const match = router.match(method, parseTarget(`${target}?stale`).pathname);
      assert.is(match.type, 'found', `${key}: ${target} is not routed`);
      if (match.type !== 'found') continue;
      assert.is(label(match.route), key, `${key}: ${target} found another route`);
      assert.equal(match.params, params, `${key}: ${target} gave other parameters`);
    }
  }
});

test('a parameter may hold a slash only where the template takes the rest of the path', () => {
  const router = new Router(routes);
  const target = routePath('GET /v1/apps/:tenant/:name', { tenant: 'acme', name: 'a/b' });
  assert.is(target, '/v1/apps/acme/a%2Fb');
  const match = router.match('GET', parseTarget(target).pathname);
  assert.is(match.type === 'found' ? match.params.name : undefined, 'a/b');
  assert.throws(() => routePath('GET /v1/apps/:tenant/:name', { tenant: 'acme', name: '' }), /needs a value for name/);
});

/** The routes docs/api.md names: `METHOD /path` in backticks, `{param}` for a parameter, the query left out. */
function documentedRoutes(): Set<string> {
  const text = readFileSync(new URL('../../../../docs/api.md', import.meta.url), 'utf8');
  const found = new Set<string>();
  for (const match of text.matchAll(/`(GET|PUT|POST|DELETE) (\/[^`?\s]*)[^`]*`/g)) {
    if (match[2]!.includes('...')) continue;
    found.add(`${match[1]} ${match[2]!.replace(/\{(\w+)\}/g, ':$1')}`);
  }
  return found;
}

test('docs/api.md lists every declared route, and no route that is not', () => {
  const documented = documentedRoutes();
  const keys = declared.map(([key]) => key.replace('/*', '/:'));
  assert.equal(keys.filter((key) => !documented.has(key)), [], 'declared but missing from docs/api.md');
  assert.equal([...documented].filter((key) => !keys.includes(key)), [], 'in docs/api.md but not declared');
});

test.run();
