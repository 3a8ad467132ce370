// Access on one in-process node: every route × every role (a table; the
// table must name every route), refusals that name the role, reads filtered
// by tenant, revoked and expired tokens, the join token as a cluster-admin,
// and the audit log of allowed and refused calls.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { fetch } from 'undici';
import { parseJoinToken } from '../../security/pinned-token.js';
import { dataDirApiAgent } from '../tls.js';
import { startAgent, type Agent } from '../../agent/agent.js';
import { resolveConfig } from '../../node/config.js';
import { readLocalAdminToken } from '../../node/data-dir.js';
import { killWorkloadsUnder } from '../../agent/test/harness.js';
import { routes } from '../routes.js';

const directory = mkdtempSync(join(tmpdir(), 'hivemind-access-'));
let agent: Agent;
let base = '';
let joinToken = '';
let adminToken = '';
const printed: string[] = [];

/** The roles of the matrix's columns, in order. */
const ROLES = ['cluster-admin', 'tenant-admin', 'deployer', 'viewer', 'viewer-all'] as const;
type Role = (typeof ROLES)[number];
/** Each role's token, acting in tenant `acme` (viewer-all and cluster-admin: every tenant). */
const tokens = new Map<Role, string>();

async function call(method: string, path: string, token: string | undefined, json?: unknown, headers: Record<string, string> = {}): Promise<{ status: number; body: any; index: number }> {
  const response = await fetch(`${base}${path}`, {
    dispatcher: dataDirApiAgent(join(directory, 'solo')),
    method,
    headers: { ...(token === undefined ? {} : { authorization: `Bearer ${token}` }), ...(json === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
    body: json === undefined ? undefined : typeof json === 'string' ? json : JSON.stringify(json),
    signal: AbortSignal.timeout(15_000),
  });
  const text = await response.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // metrics, logs
  }
  return { status: response.status, body, index: Number(response.headers.get('x-hivemind-index')) };
}

function appFile(tenant: string, name: string): { fileName: string; content: string } {
  return { fileName: `${name}.yaml`, content: ['services:', `  ${name}:`, '    command: ["sleep", "600"]', '    deploy: { replicas: 0 }', '    x-hivemind:', `      tenant: ${tenant}`, ''].join('\n') };
}

test.before(async () => {
  const resolved = resolveConfig({ name: 'solo', dataDir: join(directory, 'solo'), bind: '127.0.0.1', apiPort: 0, peerPort: 0, gossipPort: 0, dnsPort: 0, proxyPort: 0, tickMs: 20 }, {}, { hostname: 'test', externalIpv4: [], cwd: directory });
  if (!resolved.ok) throw new Error(JSON.stringify(resolved.problems));
  agent = await startAgent(resolved.config, { mode: 'bootstrap-or-restart', print: (line) => printed.push(line), log: () => {} });
  base = `https://${agent.apiAddress}`;
  joinToken = parseJoinToken(printed.find((line) => line.startsWith('join token: '))!.slice('join token: '.length)).token;
  const deadline = Date.now() + 10_000;
  while (readLocalAdminToken(join(directory, 'solo')) === undefined) {
    if (Date.now() > deadline) throw new Error('the node wrote no admin token');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  adminToken = readLocalAdminToken(join(directory, 'solo'))!;
  for (const tenant of ['acme', 'beta']) assert.is((await call('PUT', `/v1/tenants/${tenant}`, adminToken, {})).status, 200);
  const grants: Record<Role, { role: string; tenants: string[] }> = {
    'cluster-admin': { role: 'cluster-admin', tenants: ['*'] },
    'tenant-admin': { role: 'tenant-admin', tenants: ['acme'] },
    deployer: { role: 'deployer', tenants: ['acme'] },
    viewer: { role: 'viewer', tenants: ['acme'] },
    'viewer-all': { role: 'viewer', tenants: ['*'] },
  };
  for (const role of ROLES) {
    const created = await call('POST', '/v1/tokens', adminToken, { name: `robot-${role}`, ...grants[role] });
    assert.is(created.status, 200, JSON.stringify(created.body));
    tokens.set(role, created.body.token);
  }
  for (const [tenant, name] of [['acme', 'web'], ['beta', 'db']]) assert.is((await call('POST', '/v1/deploy', adminToken, appFile(tenant!, name!))).status, 200);
});

test.after(async () => {
  await agent?.stop();
  killWorkloadsUnder(directory);
  rmSync(directory, { recursive: true, force: true });
});

test('the founding node prints an admin token pinned to its CA and keeps the bare one in admin-token', () => {
  assert.match(adminToken, /^hma1\.[A-Za-z0-9_-]{43}$/);
  const line = printed.find((printedLine) => printedLine.startsWith('admin token: '));
  assert.ok(line !== undefined, printed.join('\n'));
  assert.is(parseJoinToken(line!.slice('admin token: '.length).split(' ')[0]!).token, adminToken);
});

/**
 * Every route, a request to it, and the expected outcome per role (columns
 * in ROLES order): A allowed (any status but 401/403), D refused with 403.
 * The requests touch tenant acme unless they say beta (the roles' other tenant).
 */
const MATRIX: { route: string; method: string; path: string; body?: unknown; contentType?: string; expect: string }[] = [
  { route: '/v1/health', method: 'GET', path: '/v1/health', expect: 'AAAAA' },
  { route: '/v1/ca', method: 'GET', path: '/v1/ca', expect: 'AAAAA' },
  { route: '/metrics', method: 'GET', path: '/metrics', expect: 'ADDDA' },
  { route: '/v1/status', method: 'GET', path: '/v1/status', expect: 'AAAAA' },
  { route: '/v1/elections', method: 'GET', path: '/v1/elections', expect: 'AAAAA' },
  { route: '/v1/nodes', method: 'GET', path: '/v1/nodes', expect: 'AAAAA' },
  { route: '/v1/nodes/:id', method: 'GET', path: '/v1/nodes/solo', expect: 'AAAAA' },
  { route: '/v1/nodes/:id/labels', method: 'POST', path: '/v1/nodes/ghost/labels', body: { set: { zone: 'a' } }, expect: 'ADDDD' },
  { route: '/v1/nodes/:id/leave', method: 'POST', path: '/v1/nodes/ghost/leave', expect: 'ADDDD' },
  { route: '/v1/token', method: 'GET', path: '/v1/token', expect: 'ADDDD' },
  { route: '/v1/token/rotate', method: 'POST', path: '/v1/token/rotate', expect: 'ADDDD' },
  { route: '/v1/ca/status', method: 'GET', path: '/v1/ca/status', expect: 'ADDDA' },
  { route: '/v1/network', method: 'GET', path: '/v1/network', expect: 'ADDDA' },
  { route: '/v1/network/nodes/:id', method: 'GET', path: '/v1/network/nodes/solo', expect: 'ADDDA' },
  { route: '/v1/network/apps/:tenant/:name', method: 'GET', path: '/v1/network/apps/acme/web', expect: 'AAAAA' },
  { route: '/v1/network/apps/:tenant/:name', method: 'GET', path: '/v1/network/apps/beta/db', expect: 'ADDDA' },
  { route: '/v1/images', method: 'GET', path: '/v1/images', expect: 'AAAAA' },
  { route: '/v1/images/pull', method: 'POST', path: '/v1/images/pull', body: { ref: '' }, expect: 'ADDDD' },
  { route: '/v1/images/upload', method: 'POST', path: '/v1/images/upload', body: '{}', contentType: 'application/json', expect: 'ADDDD' },
  { route: '/v1/images/import', method: 'POST', path: '/v1/images/import', body: { path: 'relative.tar' }, expect: 'ADDDD' },
  { route: '/v1/instances/:id/logs', method: 'GET', path: '/v1/instances/acme.web.0.1/logs', expect: 'AAADD' },
  { route: '/v1/instances/:id/logs', method: 'GET', path: '/v1/instances/beta.db.0.1/logs', expect: 'ADDDD' },
  { route: '/v1/instances/:id/exec', method: 'POST', path: '/v1/instances/acme.web.0.1/exec', body: { command: ['true'] }, expect: 'AAADD' },
  { route: '/v1/instances/:id/exec', method: 'POST', path: '/v1/instances/beta.db.0.1/exec', body: { command: ['true'] }, expect: 'ADDDD' },
  { route: '/v1/instances/:id/exec/session', method: 'POST', path: '/v1/instances/acme.web.0.1/exec/session', body: '{"command":["true"],"stdin":true}\n', contentType: 'application/x-ndjson', expect: 'AAADD' },
  { route: '/v1/instances/:id/exec/session', method: 'POST', path: '/v1/instances/beta.db.0.1/exec/session', body: '{"command":["true"]}\n', contentType: 'application/x-ndjson', expect: 'ADDDD' },
  { route: '/v1/apps/:tenant/:name/logs', method: 'GET', path: '/v1/apps/acme/web/logs', expect: 'AAADD' },
  { route: '/v1/apps/:tenant/:name/logs', method: 'GET', path: '/v1/apps/beta/db/logs', expect: 'ADDDD' },
  { route: '/v1/tenants', method: 'GET', path: '/v1/tenants', expect: 'AAAAA' },
  { route: '/v1/tenants/:name', method: 'GET', path: '/v1/tenants/acme', expect: 'AAAAA' },
  { route: '/v1/tenants/:name', method: 'GET', path: '/v1/tenants/beta', expect: 'ADDDA' },
  { route: '/v1/tenants/:name', method: 'PUT', path: '/v1/tenants/gamma', body: {}, expect: 'ADDDD' },
  { route: '/v1/tenants/:name', method: 'DELETE', path: '/v1/tenants/gamma', expect: 'ADDDD' },
  { route: '/v1/deploy', method: 'POST', path: '/v1/deploy', body: appFile('acme', 'web'), expect: 'AAADD' },
  { route: '/v1/deploy', method: 'POST', path: '/v1/deploy', body: appFile('beta', 'db'), expect: 'ADDDD' },
  { route: '/v1/apps', method: 'GET', path: '/v1/apps', expect: 'AAAAA' },
  { route: '/v1/apps', method: 'GET', path: '/v1/apps?tenant=beta', expect: 'ADDDA' },
  { route: '/v1/apps/:tenant/:name', method: 'GET', path: '/v1/apps/acme/web', expect: 'AAAAA' },
  { route: '/v1/apps/:tenant/:name', method: 'GET', path: '/v1/apps/beta/db', expect: 'ADDDA' },
  { route: '/v1/apps/:tenant/:name/scale', method: 'POST', path: '/v1/apps/acme/web/scale', body: { replicas: 0 }, expect: 'AAADD' },
  { route: '/v1/apps/:tenant/:name/scale', method: 'POST', path: '/v1/apps/beta/db/scale', body: { replicas: 0 }, expect: 'ADDDD' },
  { route: '/v1/apps/:tenant/:name/rollback', method: 'POST', path: '/v1/apps/acme/web/rollback', body: {}, expect: 'AAADD' },
  { route: '/v1/apps/:tenant/:name/promote', method: 'POST', path: '/v1/apps/acme/web/promote', expect: 'AAADD' },
  { route: '/v1/apps/:tenant/:name/abort', method: 'POST', path: '/v1/apps/acme/web/abort', expect: 'AAADD' },
  { route: '/v1/apps/:tenant/:name', method: 'DELETE', path: '/v1/apps/acme/ghost', expect: 'AADDD' },
  { route: '/v1/apps/:tenant/:name', method: 'DELETE', path: '/v1/apps/beta/ghost', expect: 'ADDDD' },
  { route: '/v1/instances', method: 'GET', path: '/v1/instances', expect: 'AAAAA' },
  { route: '/v1/instances', method: 'GET', path: '/v1/instances?tenant=beta', expect: 'ADDDA' },
  { route: '/v1/policies', method: 'GET', path: '/v1/policies', expect: 'AAAAA' },
  { route: '/v1/policies/test', method: 'GET', path: '/v1/policies/test?from=acme/a&to=acme/web&port=80', expect: 'AAAAA' },
  { route: '/v1/policies/test', method: 'GET', path: '/v1/policies/test?from=acme/web&to=beta/db&port=80', expect: 'ADDDA' },
  { route: '/v1/policies/:tenant/:name', method: 'PUT', path: '/v1/policies/acme/p', body: {}, expect: 'AADDD' },
  { route: '/v1/policies/:tenant/:name', method: 'PUT', path: '/v1/policies/beta/p', body: {}, expect: 'ADDDD' },
  { route: '/v1/policies/:tenant/:name', method: 'DELETE', path: '/v1/policies/acme/p', expect: 'AADDD' },
  { route: '/v1/networks/:tenant/:name', method: 'PUT', path: '/v1/networks/acme/back', body: {}, expect: 'AADDD' },
  { route: '/v1/networks/:tenant/:name', method: 'PUT', path: '/v1/networks/beta/back', body: {}, expect: 'ADDDD' },
  { route: '/v1/networks/:tenant/:name', method: 'DELETE', path: '/v1/networks/acme/back', expect: 'AADDD' },
  { route: '/v1/volumes', method: 'GET', path: '/v1/volumes', expect: 'AAAAA' },
  { route: '/v1/volumes/:tenant/:name', method: 'PUT', path: '/v1/volumes/acme/v', body: { sizeBytes: 1024 }, expect: 'AADDD' },
  { route: '/v1/volumes/:tenant/:name', method: 'DELETE', path: '/v1/volumes/acme/v', expect: 'AADDD' },
  { route: '/v1/volumes/:tenant/:name/io', method: 'PUT', path: '/v1/volumes/acme/v/io', body: { io: {} }, expect: 'AADDD' },
  { route: '/v1/volumes/:tenant/:name/snapshots', method: 'GET', path: '/v1/volumes/acme/v/snapshots', expect: 'AAAAA' },
  { route: '/v1/volumes/:tenant/:name/snapshots', method: 'GET', path: '/v1/volumes/beta/v/snapshots', expect: 'ADDDA' },
  { route: '/v1/volumes/:tenant/:name/snapshots', method: 'POST', path: '/v1/volumes/acme/v/snapshots', expect: 'AADDD' },
  { route: '/v1/volumes/:tenant/:name/snapshots/:id', method: 'DELETE', path: '/v1/volumes/acme/v/snapshots/20261205T063000123Z', expect: 'AADDD' },
  { route: '/v1/volumes/:tenant/:name/backup', method: 'GET', path: '/v1/volumes/acme/v/backup', expect: 'AADDD' },
  { route: '/v1/volumes/:tenant/:name/backup', method: 'GET', path: '/v1/volumes/beta/v/backup', expect: 'ADDDD' },
  { route: '/v1/volumes/:tenant/:name/restore', method: 'PUT', path: '/v1/volumes/acme/v/restore', body: 'archive', contentType: 'application/zstd', expect: 'AADDD' },
  { route: '/v1/volumes/:tenant/:name/move', method: 'POST', path: '/v1/volumes/acme/v/move', body: { to: 'solo' }, expect: 'AADDD' },
  { route: '/v1/volumes/:tenant/:name/move/copy', method: 'POST', path: '/v1/volumes/acme/v/move/copy', expect: 'AADDD' },
  { route: '/v1/volumes/:tenant/:name/move/data', method: 'PUT', path: '/v1/volumes/acme/v/move/data', body: 'archive', contentType: 'application/zstd', expect: 'AADDD' },
  { route: '/v1/volumes/:tenant/:name/move/end', method: 'POST', path: '/v1/volumes/acme/v/move/end', body: { node: 'solo' }, expect: 'AADDD' },
  { route: '/v1/secrets', method: 'GET', path: '/v1/secrets', expect: 'AAAAA' },
  { route: '/v1/secrets/:tenant/:name', method: 'PUT', path: '/v1/secrets/acme/s', body: { value: 'x' }, expect: 'AADDD' },
  { route: '/v1/secrets/:tenant/:name', method: 'PUT', path: '/v1/secrets/beta/s', body: { value: 'x' }, expect: 'ADDDD' },
  { route: '/v1/secrets/:tenant/:name', method: 'DELETE', path: '/v1/secrets/acme/s', expect: 'AADDD' },
  { route: '/v1/kv', method: 'GET', path: '/v1/kv', expect: 'ADDDA' },
  { route: '/v1/kv/*key', method: 'GET', path: '/v1/kv/k', expect: 'ADDDA' },
  { route: '/v1/kv/*key', method: 'PUT', path: '/v1/kv/k', body: { value: 'v' }, expect: 'ADDDD' },
  { route: '/v1/kv/*key', method: 'DELETE', path: '/v1/kv/k', expect: 'ADDDD' },
  { route: '/v1/history', method: 'GET', path: '/v1/history', expect: 'AAAAA' },
  { route: '/v1/rebalance', method: 'POST', path: '/v1/rebalance', body: { tenant: 'acme' }, expect: 'AAADD' },
  { route: '/v1/rebalance', method: 'POST', path: '/v1/rebalance', body: {}, expect: 'ADDDD' },
  { route: '/v1/tokens', method: 'GET', path: '/v1/tokens', expect: 'ADDDD' },
  { route: '/v1/tokens', method: 'POST', path: '/v1/tokens', body: { name: 'extra', role: 'viewer' }, expect: 'ADDDD' },
  { route: '/v1/tokens/:id', method: 'DELETE', path: '/v1/tokens/ghost0', expect: 'ADDDD' },
  { route: '/v1/audit', method: 'GET', path: '/v1/audit', expect: 'AADDD' },
  { route: '/v1/audit', method: 'GET', path: '/v1/audit?tenant=beta', expect: 'ADDDD' },
  { route: '/v1/ca/rotate', method: 'POST', path: '/v1/ca/rotate', expect: 'ADDDD' },
];

test('the matrix names every route of the API', () => {
  const covered = new Set(MATRIX.map((row) => `${row.method} ${row.route}`));
  const missing = routes.map((route) => `${route.method} ${route.path}`).filter((route) => !covered.has(route));
  assert.equal(missing, []);
});

test('every route × every role: allowed, or 403 naming the role needed', async () => {
  const wrong: string[] = [];
  for (const row of MATRIX) {
    for (const [column, role] of ROLES.entries()) {
      const expected = row.expect[column];
      const headers: Record<string, string> = row.contentType === undefined ? {} : { 'content-type': row.contentType };
      const answer = await call(row.method, row.path, tokens.get(role), row.body, headers);
      const refused = answer.status === 403;
      if (answer.status === 401 || refused !== (expected === 'D')) wrong.push(`${row.method} ${row.path} as ${role}: ${answer.status} (expected ${expected === 'D' ? '403' : 'allowed'}) ${JSON.stringify(answer.body).slice(0, 200)}`);
      if (refused && (answer.body.error?.code !== 'forbidden' || typeof answer.body.error?.needed?.role !== 'string' || !answer.body.error.message.includes(answer.body.error.needed.role))) {
        wrong.push(`${row.method} ${row.path} as ${role}: a 403 that does not name the role: ${JSON.stringify(answer.body)}`);
      }
    }
  }
  assert.equal(wrong, []);
});

test('reads are filtered: a viewer of acme sees only acme\'s tenants, apps and history', async () => {
  const viewer = tokens.get('viewer');
  assert.equal((await call('GET', '/v1/tenants', viewer)).body.tenants.map((tenant: { name: string }) => tenant.name), ['acme']);
  assert.equal((await call('GET', '/v1/apps', viewer)).body.apps.map((app: { tenant: string; name: string }) => `${app.tenant}/${app.name}`), ['acme/web']);
  const history = (await call('GET', '/v1/history?limit=1000', viewer)).body.history as { target: string }[];
  assert.ok(history.length > 0);
  assert.ok(history.every((entry) => /^(app acme\/|apps acme\/|tenant acme$|instance acme\.|secret acme\/|volume acme\/|policy acme\/)/.test(entry.target)), JSON.stringify(history));
  const all = (await call('GET', '/v1/apps', tokens.get('viewer-all'))).body.apps.map((app: { tenant: string; name: string }) => `${app.tenant}/${app.name}`);
  assert.equal(all.sort(), ['acme/web', 'beta/db']);
});

test('history names the token\'s user', async () => {
  await call('POST', '/v1/apps/acme/web/scale', tokens.get('deployer'), { replicas: 0 });
  const history = (await call('GET', '/v1/history?limit=5', adminToken)).body.history as { actor: string; target: string }[];
  assert.ok(history.some((entry) => entry.actor.startsWith('user:robot-deployer/') && entry.target === 'app acme/web'), JSON.stringify(history));
});

test('the join token still acts as a cluster-admin; no token, a revoked one and an expired one are 401', async () => {
  // The matrix rotated the join token: the current one.
  joinToken = (await call('GET', '/v1/token', adminToken)).body.bareToken;
  assert.is((await call('GET', '/v1/tokens', joinToken)).status, 200);
  assert.is((await call('GET', '/v1/apps', undefined)).status, 401);
  const created = await call('POST', '/v1/tokens', adminToken, { name: 'short', role: 'viewer', tenants: ['acme'] });
  assert.is((await call('GET', '/v1/apps', created.body.token)).status, 200);
  assert.is((await call('DELETE', `/v1/tokens/${created.body.id}`, adminToken)).status, 200);
  const revoked = await call('GET', '/v1/apps', created.body.token);
  assert.is(revoked.status, 401);
  assert.match(revoked.body.error.message, /revoked/);
  // Expiry is checked at each request against the record: one that expires 2 s after it is made (ample for the create to land).
  const expiring = await call('POST', '/v1/tokens', adminToken, { name: 'brief', role: 'viewer', tenants: ['*'], expiresAt: Date.now() + 2000 });
  assert.is(expiring.status, 200);
  const listed = (await call('GET', '/v1/tokens', adminToken)).body.tokens as { id: string; hash?: string }[];
  assert.ok(listed.some((token) => token.id === expiring.body.id) && listed.every((token) => token.hash === undefined));
  while (Date.now() <= expiring.body.expiresAt) await new Promise((resolve) => setTimeout(resolve, 50));
  const expired = await call('GET', '/v1/status', expiring.body.token);
  assert.is(expired.status, 401);
  assert.match(expired.body.error.message, /expired/);
});

test('the audit log records allowed writes and refused calls: who, from where, route, tenant, outcome, Raft index', async () => {
  const allowed = await call('PUT', '/v1/secrets/acme/audited', tokens.get('tenant-admin'), { value: 'x' });
  assert.is(allowed.status, 200);
  assert.is((await call('PUT', '/v1/secrets/beta/audited', tokens.get('tenant-admin'), { value: 'x' })).status, 403);
  assert.is((await call('GET', '/v1/kv', tokens.get('viewer'))).status, 403);
  const lines = readFileSync(join(directory, 'solo', 'audit', 'audit.log'), 'utf8').trim().split('\n').map((line) => JSON.parse(line));
  const write = lines.find((event) => event.requestURI === '/v1/secrets/acme/audited' && event.verb === 'put');
  assert.ok(write !== undefined);
  assert.is(write.kind, 'Event');
  assert.is(write.user.username, 'robot-tenant-admin');
  assert.equal(write.user.groups, ['hivemind:tenant-admin']);
  assert.equal(write.sourceIPs, ['127.0.0.1']);
  assert.equal(write.objectRef, { namespace: 'acme' });
  assert.is(write.responseStatus.code, 200);
  assert.is(write.annotations['hivemind/outcome'], 'allowed');
  assert.is(write.annotations['hivemind/route'], '/v1/secrets/:tenant/:name');
  assert.is(write.annotations['hivemind/raft-index'], String(allowed.index));
  const refused = lines.find((event) => event.requestURI === '/v1/secrets/beta/audited');
  assert.is(refused?.annotations['hivemind/outcome'], 'refused');
  assert.is(refused?.responseStatus.code, 403);
  assert.ok(lines.some((event) => event.requestURI === '/v1/kv' && event.verb === 'get' && event.annotations['hivemind/outcome'] === 'refused'));
  // Reads that were allowed are not recorded.
  assert.not.ok(lines.some((event) => event.verb === 'get' && event.responseStatus.code === 200));

  const byUser = (await call('GET', '/v1/audit?user=robot-tenant-admin&since=1h', adminToken)).body.events as { requestURI: string }[];
  assert.ok(byUser.length >= 2 && byUser.every((event: any) => event.user.username === 'robot-tenant-admin'));
  // A tenant-admin reads its tenants' records only.
  const own = (await call('GET', '/v1/audit', tokens.get('tenant-admin'))).body.events as { objectRef?: { namespace: string } }[];
  assert.ok(own.length > 0 && own.every((event) => event.objectRef?.namespace === 'acme'));
});

test.run();
