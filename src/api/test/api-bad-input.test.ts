// Bad input against every endpoint of one in-process node: each case gets
// its exact status, code and field; afterwards the state's index has not
// moved and the node still serves.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect } from 'node:tls';
import { tmpdir } from 'node:os';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { fetch } from 'undici';
import { dataDirApiAgent, nodeIdentityCheck } from '../tls.js';
import { pinnedToken } from '../../security/pinned-token.js';
import { startAgent, type Agent } from '../../agent/agent.js';
import { resolveConfig } from '../../node/config.js';
import { killWorkloadsUnder } from '../../agent/test/harness.js';

const TOKEN = 'hm1.bad-input-test-token-0123456789';
const directory = mkdtempSync(join(tmpdir(), 'hivemind-api-bad-input-'));
const logs: string[] = [];
let agent: Agent;
let base = '';

interface Answer {
  status: number;
  body: any;
  headers: Headers;
}

async function call(method: string, path: string, options: { body?: string | Uint8Array; json?: unknown; token?: string | null; headers?: Record<string, string> } = {}): Promise<Answer> {
  const headers: Record<string, string> = { ...(options.headers ?? {}) };
  const token = options.token === undefined ? TOKEN : options.token;
  if (token !== null) headers.authorization = `Bearer ${token}`;
  let body = options.body;
  if (options.json !== undefined) {
    body = JSON.stringify(options.json);
    headers['content-type'] ??= 'application/json';
  } else if (body !== undefined) {
    headers['content-type'] ??= 'application/json';
  }
  const response = await fetch(`${base}${path}`, { dispatcher: dataDirApiAgent(join(directory, 'solo')), method, headers, body, signal: AbortSignal.timeout(15_000) });
  const text = await response.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // metrics
  }
  return { status: response.status, body: parsed, headers: response.headers };
}

async function stateIndex(): Promise<number> {
  const answer = await call('GET', '/v1/status?stale=true');
  return Number(answer.headers.get('x-hivemind-index'));
}

/** Expects an error answer: status, code, and field (null: no field). */
function expectError(answer: Answer, status: number, code: string, field: string | null, what: string): void {
  assert.is(answer.status, status, `${what}: ${JSON.stringify(answer.body)}`);
  assert.type(answer.body?.error, 'object', `${what}: the body is {"error": ...}`);
  assert.is(answer.body.error.code, code, `${what}: ${JSON.stringify(answer.body)}`);
  assert.type(answer.body.error.message, 'string');
  assert.ok(answer.body.error.message.length > 10, `${what}: a message that says something`);
  assert.not.match(answer.body.error.message, /\n\s+at /, `${what}: no stack trace`);
  if (field === null) assert.is(answer.body.error.field, undefined, `${what}: no field`);
  else assert.is(answer.body.error.field, field, `${what}: field`);
  assert.ok(answer.headers.get('x-hivemind-index') !== null, `${what}: X-Hivemind-Index on every answer`);
}

let indexBefore = 0;

/** Whether the membership manager has recorded the node's voter role (GET /v1/nodes shows Raft's role at once, the record's later). */
async function roleRecorded(): Promise<boolean> {
  const history = await call('GET', '/v1/history?limit=100');
  return (history.body.history as { command: string }[] | undefined)?.some((entry) => entry.command === 'node.role') === true;
}

test.before(async () => {
  const resolved = resolveConfig(
    { name: 'solo', dataDir: join(directory, 'solo'), bind: '127.0.0.1', apiPort: 0, peerPort: 0, gossipPort: 0, dnsPort: 0, proxyPort: 0, token: TOKEN, tickMs: 20 },
    {},
    { hostname: 'test', externalIpv4: [], cwd: directory },
  );
  if (!resolved.ok) throw new Error(JSON.stringify(resolved.problems));
  agent = await startAgent(resolved.config, { mode: 'bootstrap-or-restart', print: () => {}, log: (line) => logs.push(line) });
  base = `https://${agent.apiAddress}`;
  // Let the start-up writes settle before counting: the CA, the token, the
  // registration with the node's certificate, its subnet, its role and its
  // host ports (reported once two scans, HOST_PORTS_INTERVAL_MS apart, agree).
  const deadline = Date.now() + 20_000;
  for (;;) {
    const nodes = await call('GET', '/v1/nodes');
    const node = nodes.body.nodes?.[0];
    if (node?.role === 'voter' && node.status === 'up' && node.certificates?.length === 1 && node.subnet !== undefined && node.hostPorts !== undefined && (await roleRecorded())) break;
    if (Date.now() > deadline) throw new Error(`the node did not settle: ${JSON.stringify(nodes.body)}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  indexBefore = await stateIndex();
});

test.after(async () => {
  await agent?.stop();
  killWorkloadsUnder(directory);
  rmSync(directory, { recursive: true, force: true });
});

test('routes, methods and tokens', async () => {
  expectError(await call('GET', '/v1/nope'), 404, 'not-found', null, 'unknown route');
  expectError(await call('GET', '/'), 404, 'not-found', null, 'root');
  expectError(await call('GET', '/v1/apps/a/b/c/d'), 404, 'not-found', null, 'too deep');
  const wrongMethod = await call('PATCH', '/v1/tenants/acme', { json: {} });
  expectError(wrongMethod, 405, 'method-not-allowed', null, 'PATCH a tenant');
  assert.is(wrongMethod.headers.get('allow'), 'GET, PUT, DELETE');
  expectError(await call('DELETE', '/v1/tenants'), 405, 'method-not-allowed', null, 'DELETE the tenant list');
  expectError(await call('POST', '/v1/status'), 405, 'method-not-allowed', null, 'POST status');
  expectError(await call('GET', '/v1/deploy'), 405, 'method-not-allowed', null, 'GET deploy');
  expectError(await call('GET', '/v1/apps', { token: null }), 401, 'unauthenticated', null, 'no token');
  expectError(await call('GET', '/v1/apps', { token: 'hm1.wrong-token-wrong-token' }), 401, 'unauthenticated', null, 'wrong token');
  expectError(await call('PUT', '/v1/kv/x', { json: { value: 'x' }, token: 'hm1.wrong-token-wrong-token' }), 401, 'unauthenticated', null, 'wrong token on a write');
  expectError(await call('GET', '/v1/apps', { token: null, headers: { authorization: 'Basic abc' } }), 401, 'unauthenticated', null, 'not a bearer token');
  expectError(await call('GET', '/v1/apps', { token: `hmca:${'0'.repeat(64)}::hm1.wrong-token-wrong-token` }), 401, 'unauthenticated', null, 'a wrong token in the pinned form');
  expectError(await call('GET', '/v1/apps', { token: `hmca:not-a-fingerprint::${TOKEN}` }), 401, 'unauthenticated', null, 'a malformed pinned token');
  assert.is((await call('GET', '/v1/apps', { token: `hmca:${'0'.repeat(64)}::${TOKEN}` })).status, 200, 'the API checks the token, not the pin (the pin is for clients)');
  const health = await call('GET', '/v1/health', { token: null });
  assert.is(health.status, 200);
  assert.equal(health.body, { ok: true, node: 'solo' });
  // Metrics describe the cluster (its term and log index among them): they need a token unless --metrics-public.
  expectError(await call('GET', '/metrics', { token: null }), 401, 'unauthenticated', null, 'metrics without a token');
  const metrics = await call('GET', '/metrics');
  assert.is(metrics.status, 200);
  assert.match(metrics.body, /hivemind_raft_term\{node="solo"\} \d+/);
  assert.match(metrics.body, /hivemind_http_requests_total\{[^}]*route="\/v1\/tenants\/:name"[^}]*status="405"/);
});

test('bodies: bad JSON, not an object, wrong media type, oversize, unknown fields', async () => {
  expectError(await call('PUT', '/v1/tenants/acme', { body: '{"quota": ' }), 400, 'invalid-argument', null, 'truncated JSON');
  expectError(await call('PUT', '/v1/tenants/acme', { body: '[1, 2]' }), 400, 'invalid-argument', null, 'a JSON list');
  expectError(await call('PUT', '/v1/tenants/acme', { body: '"text"' }), 400, 'invalid-argument', null, 'a JSON string');
  expectError(await call('PUT', '/v1/tenants/acme', { body: 'quota=1', headers: { 'content-type': 'application/x-www-form-urlencoded' } }), 415, 'unsupported-media-type', null, 'a form');
  expectError(await call('PUT', '/v1/tenants/acme', { body: new Uint8Array(5 * 1024 * 1024).fill(32) }), 413, 'payload-too-large', null, '5 MiB body');
  expectError(await call('PUT', '/v1/tenants/acme', { json: { quota: {}, owner: 'me' } }), 400, 'invalid-argument', 'owner', 'unknown field');
  expectError(await call('PUT', '/v1/tenants/acme', { body: '{"__proto__": {"quota": {}}}' }), 400, 'invalid-argument', '__proto__', 'a __proto__ field');
  expectError(await call('PUT', '/v1/tenants/acme', { body: `${'['.repeat(100_000)}${']'.repeat(100_000)}` }), 400, 'invalid-argument', null, 'deeply nested JSON');
});

test('tenants', async () => {
  expectError(await call('PUT', '/v1/tenants/acme', { json: { quota: { cpuMillis: 'lots' } } }), 400, 'invalid-argument', 'quota.cpuMillis', 'a string quota');
  expectError(await call('PUT', '/v1/tenants/acme', { json: { quota: { gpus: 1 } } }), 400, 'invalid-argument', 'quota.gpus', 'unknown quota field');
  expectError(await call('PUT', '/v1/tenants/acme', { json: { quota: { memoryBytes: -1 } } }), 400, 'invalid-argument', 'quota.memoryBytes', 'negative memory');
  expectError(await call('PUT', '/v1/tenants/acme', { json: { quota: [] } }), 400, 'invalid-argument', 'quota', 'quota as a list');
  expectError(await call('PUT', '/v1/tenants/Not_A_Name', { json: {} }), 400, 'invalid-argument', 'name', 'invalid tenant name');
  expectError(await call('PUT', `/v1/tenants/${'a'.repeat(64)}`, { json: {} }), 400, 'invalid-argument', 'name', 'a 64-character name');
  expectError(await call('GET', '/v1/tenants/-bad'), 400, 'invalid-argument', 'name', 'GET an invalid name');
  expectError(await call('GET', '/v1/tenants/nobody'), 404, 'not-found', 'name', 'GET a missing tenant');
  expectError(await call('DELETE', '/v1/tenants/nobody'), 404, 'not-found', 'name', 'DELETE a missing tenant');
  expectError(await call('GET', '/v1/tenants?sort=name'), 400, 'invalid-argument', 'sort', 'unknown query parameter');
});

test('deploy and the app file', async () => {
  expectError(await call('POST', '/v1/deploy', { json: { fileName: 'app.yaml' } }), 400, 'invalid-argument', 'content', 'no content');
  expectError(await call('POST', '/v1/deploy', { json: { content: 'services: {}' } }), 400, 'invalid-argument', 'fileName', 'no file name');
  expectError(await call('POST', '/v1/deploy', { json: { fileName: 7, content: 'x' } }), 400, 'invalid-argument', 'fileName', 'a numeric file name');
  expectError(await call('POST', '/v1/deploy', { json: { fileName: 'a.yaml', content: ['services'] } }), 400, 'invalid-argument', 'content', 'content as a list');
  expectError(await call('POST', '/v1/deploy', { json: { fileName: 'a.yaml', content: 'x', tenant: 'Bad' } }), 400, 'invalid-argument', 'tenant', 'invalid tenant');
  expectError(await call('POST', '/v1/deploy', { json: { fileName: 'a.yaml', content: 'x', colour: 'blue' } }), 400, 'invalid-argument', 'colour', 'unknown field');
  expectError(await call('POST', '/v1/deploy', { json: { fileName: 'a.yaml', content: 'x', force: 'yes' } }), 400, 'invalid-argument', 'force', 'force not a boolean');
  expectError(await call('POST', '/v1/deploy', { json: { fileName: 'a.yaml', content: 'x', project: 'Bad_Name' } }), 400, 'invalid-argument', 'project', 'invalid project');
  expectError(await call('POST', '/v1/deploy', { json: { fileName: 'a.yaml', content: 'x', variables: { A: 1 } } }), 400, 'invalid-argument', 'variables.A', 'a variable not a string');
  expectError(await call('POST', '/v1/deploy', { json: { fileName: 'a.yaml', content: 'x', sets: 'web.image=x' } }), 400, 'invalid-argument', 'sets', 'sets not a list');
  expectError(await call('POST', '/v1/deploy', { json: { files: [] } }), 400, 'invalid-argument', 'files', 'no files');
  expectError(await call('POST', '/v1/deploy', { json: { files: [{ fileName: 'a.yaml' }] } }), 400, 'invalid-argument', 'files[0].content', 'a file without content');
  expectError(await call('POST', '/v1/deploy', { json: { files: [{ fileName: 'a.yaml', content: 'x' }], fileName: 'b.yaml', content: 'y' } }), 400, 'invalid-argument', 'files', 'files and fileName');
  const syntax = await call('POST', '/v1/deploy', { json: { fileName: 'a.yaml', content: 'services:\n  web: [unclosed\n' } });
  expectError(syntax, 400, 'invalid-app-file', null, 'YAML syntax error');
  assert.ok(Array.isArray(syntax.body.error.errors) && syntax.body.error.errors.length >= 1);
  assert.is(syntax.body.error.errors[0].file, 'a.yaml');
  const replicas = await call('POST', '/v1/deploy', { json: { fileName: 'a.yaml', content: 'services:\n  web:\n    image: nginx\n    deploy:\n      replicas: three\n' } });
  expectError(replicas, 400, 'invalid-app-file', null, 'replicas: three');
  assert.is(replicas.body.error.errors[0].path, 'services.web.deploy.replicas');
  assert.match(replicas.body.error.message, 'services.web.deploy.replicas');
  const unknownKey = await call('POST', '/v1/deploy', { json: { fileName: 'a.yaml', content: 'services:\n  web:\n    image: nginx\n    privileged: true\n' } });
  expectError(unknownKey, 400, 'invalid-app-file', null, 'an unsupported Compose key');
  const badName = await call('POST', '/v1/deploy', { json: { fileName: 'a.yaml', content: 'services:\n  Web_App:\n    image: nginx\n' } });
  expectError(badName, 400, 'invalid-app-file', null, 'an invalid service name');
  const empty = await call('POST', '/v1/deploy', { json: { fileName: 'a.yaml', content: '' } });
  expectError(empty, 400, 'invalid-app-file', null, 'an empty file');
  const tooManyTenants = await call('POST', '/v1/deploy', { json: { fileName: 'a.yaml', content: 'services:\n  web:\n    image: nginx\n', tenant: 'ghost' } });
  expectError(tooManyTenants, 404, 'not-found', 'tenant', 'a tenant that does not exist');
});

test('a hostile app file does not stall the node: it is read off the event loop and refused', async () => {
  // Each of these took the YAML parser 5 to 7 s on this machine's main thread, stalling Raft's ticks.
  const hostile = {
    nested: `services:\n  a:\n    command: ${'['.repeat(200_000)}${']'.repeat(200_000)}\n`,
    flat: `x: [${'1,'.repeat(300_000)}1]\n`,
  };
  for (const [what, content] of Object.entries(hostile)) {
    const delay = monitorEventLoopDelay({ resolution: 10 });
    delay.enable();
    const answer = await call('POST', '/v1/deploy', { json: { fileName: `${what}.yaml`, content } });
    delay.disable();
    assert.is(answer.status, 400, `${what}: ${JSON.stringify(answer.body).slice(0, 300)}`);
    // The loop kept turning: its longest stall stays far below the parse's seconds (the bound leaves room for a loaded machine).
    const stallMs = delay.max / 1e6;
    assert.ok(stallMs < 500, `${what}: the event loop stalled ${stallMs.toFixed(0)} ms`);
    if (process.env.HIVEMIND_TEST_VERBOSE) console.log(`${what}: ${answer.body.error.message}; longest stall ${stallMs.toFixed(1)} ms`);
  }
  // The reader is back for the next file.
  const fine = await call('POST', '/v1/deploy', { json: { fileName: 'a.yaml', content: 'services:\n  web:\n    image: nginx\n', tenant: 'ghost' } });
  assert.is(fine.status, 404, 'an ordinary file is read again (and refused for its tenant)');
});

test('apps and instances', async () => {
  expectError(await call('GET', '/v1/apps/ACME/web'), 400, 'invalid-argument', 'tenant', 'invalid tenant in the path');
  expectError(await call('GET', '/v1/apps/acme/we_b'), 400, 'invalid-argument', 'name', 'invalid app in the path');
  expectError(await call('GET', '/v1/apps/default/nothing'), 404, 'not-found', 'name', 'missing app');
  expectError(await call('GET', '/v1/apps?tenant=UPPER'), 400, 'invalid-argument', 'tenant', 'invalid tenant filter');
  expectError(await call('GET', '/v1/apps/%E0%A4%A/web'), 400, 'invalid-argument', 'tenant', 'malformed percent-encoding');
  expectError(await call('POST', '/v1/apps/default/web/scale', { json: {} }), 400, 'invalid-argument', 'replicas', 'scale without replicas');
  expectError(await call('POST', '/v1/apps/default/web/scale', { json: { replicas: '3' } }), 400, 'invalid-argument', 'replicas', 'replicas as a string');
  expectError(await call('POST', '/v1/apps/default/web/scale', { json: { replicas: -1 } }), 400, 'invalid-argument', 'replicas', 'negative replicas');
  expectError(await call('POST', '/v1/apps/default/web/scale', { json: { replicas: 2.5 } }), 400, 'invalid-argument', 'replicas', 'fractional replicas');
  expectError(await call('POST', '/v1/apps/default/web/scale', { json: { replicas: 1, now: true } }), 400, 'invalid-argument', 'now', 'unknown field');
  expectError(await call('POST', '/v1/apps/default/web/scale', { json: { replicas: 1 } }), 404, 'not-found', 'name', 'scale a missing app');
  expectError(await call('POST', '/v1/apps/default/web/rollback', { json: { toVersion: 0 } }), 400, 'invalid-argument', 'toVersion', 'version 0');
  expectError(await call('POST', '/v1/apps/default/web/rollback', { json: { toVersion: 'previous' } }), 400, 'invalid-argument', 'toVersion', 'version as text');
  expectError(await call('DELETE', '/v1/apps/default/web'), 404, 'not-found', 'name', 'delete a missing app');
  expectError(await call('GET', '/v1/instances?node=has%20space'), 400, 'invalid-argument', 'node', 'invalid node filter');
  expectError(await call('GET', '/v1/instances?app=A'), 400, 'invalid-argument', 'app', 'invalid app filter');
  expectError(await call('GET', '/v1/instances?tenant=a&tenant=b'), 400, 'invalid-argument', 'tenant', 'a repeated parameter');
});

test('policies, volumes, secrets', async () => {
  expectError(await call('PUT', '/v1/policies/default/p1', { json: { apps: 'web' } }), 400, 'invalid-argument', 'apps', 'apps as a string');
  expectError(await call('PUT', '/v1/policies/default/p1', { json: { ingress: [{ ports: [70000] }] } }), 400, 'invalid-argument', 'ingress[0].ports[0]', 'a port out of range');
  expectError(await call('PUT', '/v1/policies/default/p1', { json: { ingress: [{ fromApps: ['Bad'] }] } }), 400, 'invalid-argument', 'ingress[0].fromApps[0]', 'an invalid app name');
  expectError(await call('PUT', '/v1/policies/default/p1', { json: { ingres: [] } }), 400, 'invalid-argument', 'ingres', 'unknown field (a misspelt ingress)');
  expectError(await call('PUT', '/v1/policies/default/p1', { json: { egress: [{ toPorts: [80] }] } }), 400, 'invalid-argument', 'egress[0].toPorts', 'an unknown field in an egress rule');
  expectError(await call('PUT', '/v1/policies/nobody/p1', { json: {} }), 404, 'not-found', 'tenant', 'a missing tenant');
  expectError(await call('DELETE', '/v1/policies/default/p1'), 404, 'not-found', 'name', 'delete a missing policy');
  expectError(await call('GET', '/v1/policies?tenant=_'), 400, 'invalid-argument', 'tenant', 'invalid filter');
  expectError(await call('PUT', '/v1/volumes/default/data', { json: {} }), 400, 'invalid-argument', 'sizeBytes', 'no size');
  expectError(await call('PUT', '/v1/volumes/default/data', { json: { sizeBytes: 0 } }), 400, 'invalid-argument', 'sizeBytes', 'size 0');
  expectError(await call('PUT', '/v1/volumes/default/data', { json: { sizeBytes: '1G' } }), 400, 'invalid-argument', 'sizeBytes', 'size as text');
  expectError(await call('PUT', '/v1/volumes/default/Data', { json: { sizeBytes: 1 } }), 400, 'invalid-argument', 'name', 'invalid volume name');
  expectError(await call('DELETE', '/v1/volumes/default/data'), 404, 'not-found', 'name', 'delete a missing volume');
  expectError(await call('GET', '/v1/volumes?limit=1'), 400, 'invalid-argument', 'limit', 'unknown parameter');
  expectError(await call('PUT', '/v1/secrets/default/db', { json: { value: 42 } }), 400, 'invalid-argument', 'value', 'a numeric secret');
  expectError(await call('PUT', '/v1/secrets/default/db', { json: {} }), 400, 'invalid-argument', 'value', 'no value');
  expectError(await call('PUT', '/v1/secrets/default/db', { json: { value: 'x'.repeat(70_000) } }), 400, 'invalid-argument', 'value', 'a value over 64 KiB');
  expectError(await call('PUT', '/v1/secrets/default/db', { json: { value: 'x', ciphertext: 'y' } }), 400, 'invalid-argument', 'ciphertext', 'unknown field');
  expectError(await call('PUT', '/v1/secrets/default/DB', { json: { value: 'x' } }), 400, 'invalid-argument', 'name', 'invalid secret name');
  expectError(await call('DELETE', '/v1/secrets/default/db'), 404, 'not-found', 'name', 'delete a missing secret');
});

test('kv and history', async () => {
  expectError(await call('PUT', '/v1/kv/k', { json: { value: 1 } }), 400, 'invalid-argument', 'value', 'a numeric value');
  expectError(await call('PUT', '/v1/kv/k', { json: {} }), 400, 'invalid-argument', 'value', 'no value');
  expectError(await call('PUT', '/v1/kv/k', { json: { value: 'v', expectVersion: -1 } }), 400, 'invalid-argument', 'expectVersion', 'negative version');
  expectError(await call('PUT', '/v1/kv/k', { json: { value: 'v', ttl: 5 } }), 400, 'invalid-argument', 'ttl', 'unknown field');
  expectError(await call('PUT', `/v1/kv/${'k'.repeat(600)}`, { json: { value: 'v' } }), 400, 'invalid-argument', 'key', 'a 600-byte key');
  expectError(await call('PUT', '/v1/kv/', { json: { value: 'v' } }), 400, 'invalid-argument', 'key', 'an empty key');
  expectError(await call('PUT', '/v1/kv/k', { json: { value: 'v'.repeat(600 * 1024) } }), 400, 'invalid-argument', 'value', 'a 600 KiB value');
  expectError(await call('PUT', '/v1/kv/k', { json: { value: 'v', expectVersion: 99 } }), 409, 'version-mismatch', 'expectVersion', 'compare-and-set on a missing key');
  expectError(await call('DELETE', '/v1/kv/k?expectVersion=abc'), 400, 'invalid-argument', 'expectVersion', 'version as text');
  expectError(await call('DELETE', '/v1/kv/k?force=1'), 400, 'invalid-argument', 'force', 'unknown parameter');
  expectError(await call('GET', '/v1/kv/missing'), 404, 'not-found', 'key', 'a missing key');
  expectError(await call('GET', '/v1/kv?limit=0'), 400, 'invalid-argument', 'limit', 'limit 0');
  expectError(await call('GET', '/v1/kv?limit=ten'), 400, 'invalid-argument', 'limit', 'limit as text');
  expectError(await call('GET', '/v1/history?limit=5000'), 400, 'invalid-argument', 'limit', 'limit over 1000');
  expectError(await call('GET', '/v1/history?before=yesterday'), 400, 'invalid-argument', 'before', 'before as text');
});

test('reads: stale, index, wait; writes: Idempotency-Key; nodes and token', async () => {
  expectError(await call('GET', '/v1/apps?stale=maybe'), 400, 'invalid-argument', 'stale', 'stale=maybe');
  expectError(await call('GET', '/v1/apps?index=-1'), 400, 'invalid-argument', 'index', 'negative index');
  expectError(await call('GET', '/v1/apps?index=1&wait=forever'), 400, 'invalid-argument', 'wait', 'wait=forever');
  expectError(await call('GET', '/v1/apps?index=1&wait=10m'), 400, 'invalid-argument', 'wait', 'wait over 5m');
  expectError(await call('PUT', '/v1/kv/k', { json: { value: 'v' }, headers: { 'idempotency-key': 'x'.repeat(200) } }), 400, 'invalid-argument', 'Idempotency-Key', 'a 200-character key');
  expectError(await call('GET', '/v1/nodes/has%20space'), 400, 'invalid-argument', 'id', 'invalid node id');
  expectError(await call('GET', '/v1/nodes/ghost'), 404, 'not-found', 'id', 'a missing node');
  expectError(await call('POST', '/v1/nodes/ghost/leave'), 404, 'not-found', 'id', 'leave of a missing node');
  expectError(await call('POST', '/v1/nodes/solo/leave'), 409, 'conflict', 'id', 'the only voter leaves');
  expectError(await call('GET', '/v1/token?rotate=true'), 400, 'invalid-argument', 'rotate', 'unknown parameter');
  const token = await call('GET', '/v1/token');
  assert.equal(token.body, { token: pinnedToken(TOKEN, readFileSync(join(directory, 'solo', 'tls', 'ca.crt'), 'utf8')), bareToken: TOKEN });
});

/** Sends raw bytes to the API port (over TLS) and returns the first line of the answer. */
function raw(bytes: string): Promise<string> {
  const [host, port] = agent.apiAddress.split(':');
  return new Promise((resolve, reject) => {
    const ca = readFileSync(join(directory, 'solo', 'tls', 'ca.crt'), 'utf8');
    const socket = connect({ port: Number(port), host: host!, ca, checkServerIdentity: nodeIdentityCheck('solo') }, () => socket.end(bytes));
    let answer = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (answer += chunk));
    socket.on('close', () => resolve(answer.split('\r\n')[0] ?? ''));
    socket.on('error', reject);
    socket.setTimeout(5000, () => socket.destroy(new Error('no answer')));
  });
}

test('raw requests: odd targets and broken HTTP get a 4xx', async () => {
  assert.is(await raw('GET // HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'), 'HTTP/1.1 400 Bad Request');
  assert.is(await raw('GET * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'), 'HTTP/1.1 400 Bad Request');
  assert.is(await raw('GET /v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'), 'HTTP/1.1 200 OK');
  assert.is(await raw('NONSENSE\r\n\r\n'), 'HTTP/1.1 400 Bad Request');
  assert.is(await raw(`GET /v1/health HTTP/1.1\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`), 'HTTP/1.1 431 Request Header Fields Too Large');
  const chunked = 'PUT /v1/kv/x HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ' + TOKEN + '\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n';
  const chunk = 'a'.repeat(1024 * 1024);
  const body = Array.from({ length: 5 }, () => `${chunk.length.toString(16)}\r\n${chunk}\r\n`).join('') + '0\r\n\r\n';
  assert.is(await raw(chunked + body), 'HTTP/1.1 413 Payload Too Large', 'a chunked body over 4 MiB');
});

test('nothing changed, and the node still serves', async () => {
  const indexAfter = await stateIndex();
  const changes = indexAfter === indexBefore ? [] : (await call('GET', '/v1/history?limit=10')).body.history.filter((entry: { index: number }) => entry.index > indexBefore);
  assert.is(indexAfter, indexBefore, `no bad request reached the log; these did: ${JSON.stringify(changes)}`);
  const blocking = await call('GET', `/v1/kv?index=${indexBefore}&wait=100ms`);
  assert.is(blocking.status, 200);
  const write = await call('PUT', '/v1/tenants/acme', { json: { quota: { apps: 3 } } });
  assert.is(write.status, 200, JSON.stringify(write.body));
  assert.ok(Number(write.headers.get('x-hivemind-index')) > indexBefore);
  const read = await call('GET', '/v1/tenants/acme');
  assert.is(read.body.quota.apps, 3);
  assert.is(read.body.usage.apps, 0);
  assert.not.ok(logs.some((line) => /internal error/.test(line)), logs.filter((line) => /internal error/.test(line)).join('\n'));
});

test.run();
