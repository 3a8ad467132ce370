// x-hivemind.routes and x-hivemind.proxy: the parsed spec, its validation by
// the state's own parser, and the errors for bad values.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { validateCommand } from '../../state/validate.js';
import { errorsOf, oneService, onlyApp } from './helpers.js';

test('routes and proxy settings become the app spec the state accepts', () => {
  const app = onlyApp(
    oneService(`
      image: app
      x-hivemind:
        routes:
          - Shop.Example.com
          - { host: api.example.com, path: /v1/ }
        proxy:
          balance: hash
          hash_on: header:X-User
          timeout: 5s
          connect_timeout: 500ms
          retries: 3
          retry_budget: 25%
          breaker: { failures: 4, open: 2s }
          outlier: { failures: 6, ejection: 30s }
          max_concurrent: 50
    `),
  );
  assert.equal(app.hivemind.routes, [{ host: 'shop.example.com' }, { host: 'api.example.com', path: '/v1' }]);
  assert.equal(app.hivemind.proxy, {
    balance: 'hash',
    hashHeader: 'x-user',
    timeoutMs: 5000,
    connectTimeoutMs: 500,
    retries: 3,
    retryBudgetPercent: 25,
    breakerFailures: 4,
    breakerOpenMs: 2000,
    outlierFailures: 6,
    outlierEjectionMs: 30_000,
    maxConcurrent: 50,
  });
  const checked = validateCommand({ type: 'app.deploy', spec: app });
  assert.ok(checked.ok, JSON.stringify(checked));
});

test('a file without routes or proxy keys parses as before', () => {
  const app = onlyApp(oneService('image: app\nx-hivemind: { strategy: canary, canary: { weight: 20 } }'));
  assert.is(app.hivemind.routes, undefined);
  assert.is(app.hivemind.proxy, undefined);
});

test('bad routes and proxy settings are errors naming the key', () => {
  assert.equal(errorsOf(oneService('image: app\nx-hivemind: { routes: ["shop.example.com:80"] }')), [
    'app.yaml: services.web.x-hivemind.routes[0]: must be a host name like "shop.example.com" (no port, no scheme), got "shop.example.com:80"',
  ]);
  assert.equal(errorsOf(oneService('image: app\nx-hivemind: { routes: [{ host: a.example, path: api }] }')), [
    'app.yaml: services.web.x-hivemind.routes[0].path: must start with / and have no spaces, got "api"',
  ]);
  assert.equal(errorsOf(oneService('image: app\nx-hivemind: { proxy: { balance: hash } }')), [
    'app.yaml: services.web.x-hivemind.proxy.hash_on: must be set when balance is "hash" (header:NAME or cookie:NAME)',
  ]);
  assert.equal(errorsOf(oneService('image: app\nx-hivemind: { proxy: { balance: random } }')), [
    'app.yaml: services.web.x-hivemind.proxy.balance: must be "round-robin", "least-request", "weighted" or "hash", got "random"',
  ]);
  assert.equal(errorsOf(oneService('image: app\nx-hivemind: { proxy: { breaker: { failures: 0 } } }')), [
    'app.yaml: services.web.x-hivemind.proxy.breaker.failures: must be a whole number >= 1, got 0',
  ]);
  assert.equal(errorsOf(oneService('image: app\nx-hivemind: { proxy: { timeout: 0 } }')), ['app.yaml: services.web.x-hivemind.proxy.timeout: must be longer than 0']);
});

test('the A/B rule: header or cookie, with or without a value; bad rules are errors; the state checks it too', () => {
  const byHeader = onlyApp(oneService('image: app\nx-hivemind: { strategy: blue-green, proxy: { ab: "header:X-Beta" } }'));
  assert.equal(byHeader.hivemind.proxy, { abHeader: 'x-beta' });
  const byCookie = onlyApp(oneService('image: app\nx-hivemind: { proxy: { ab: "cookie:group=b" } }'));
  assert.equal(byCookie.hivemind.proxy, { abCookie: 'group', abValue: 'b' });
  assert.ok(validateCommand({ type: 'app.deploy', spec: byCookie }).ok);
  assert.equal(errorsOf(oneService('image: app\nx-hivemind: { proxy: { ab: "query:beta" } }')), [
    'app.yaml: services.web.x-hivemind.proxy.ab: must be header:NAME, header:NAME=VALUE, cookie:NAME or cookie:NAME=VALUE, like "header:x-beta" or "cookie:group=b", got "query:beta"',
  ]);
  assert.equal(errorsOf(oneService('image: app\nx-hivemind: { proxy: { ab: "header:x-beta=a b" } }')).length, 1);
  const both = validateCommand({ type: 'app.deploy', spec: { ...byCookie, hivemind: { proxy: { abHeader: 'x', abCookie: 'y' } } } });
  assert.ok(!both.ok);
  const valueAlone = validateCommand({ type: 'app.deploy', spec: { ...byCookie, hivemind: { proxy: { abValue: 'b' } } } });
  assert.ok(!valueAlone.ok);
});

test('the state refuses a hash balance without a key and both keys at once', () => {
  const app = onlyApp(oneService('image: app'));
  const refused = validateCommand({ type: 'app.deploy', spec: { ...app, hivemind: { proxy: { balance: 'hash' } } } });
  assert.ok(!refused.ok);
  const both = validateCommand({ type: 'app.deploy', spec: { ...app, hivemind: { proxy: { hashHeader: 'x', hashCookie: 'y' } } } });
  assert.ok(!both.ok);
});

test.run();
