// POST /v1/deploy against one in-process node, with what the CLI sends for
// Compose files: several files, variables, attached files, --set, a project;
// the secrets a file gives values are created; the same files again change
// nothing; a dry run changes nothing and says what would; another project's
// app is refused unless forced; refusals name the user's file paths;
// configs and relative bind mounts come as localSources. The
// apps are constrained to a node label no node has, so nothing starts.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { fetch } from 'undici';
import { dataDirApiAgent } from '../tls.js';
import { startAgent, type Agent } from '../../agent/agent.js';
import { resolveConfig } from '../../node/config.js';
import { killWorkloadsUnder } from '../../agent/test/harness.js';

const TOKEN = 'hm1.deploy-compose-test-token-0123456789';
const directory = mkdtempSync(join(tmpdir(), 'hivemind-api-deploy-compose-'));
let agent: Agent;
let base = '';

async function call(method: string, path: string, json?: unknown): Promise<{ status: number; body: any }> {
  const headers: Record<string, string> = { authorization: `Bearer ${TOKEN}` };
  if (json !== undefined) headers['content-type'] = 'application/json';
  const response = await fetch(`${base}${path}`, {
    dispatcher: dataDirApiAgent(join(directory, 'solo')),
    method,
    headers,
    ...(json === undefined ? {} : { body: JSON.stringify(json) }),
    signal: AbortSignal.timeout(15_000),
  });
  return { status: response.status, body: JSON.parse(await response.text()) };
}

const base_yml = `
services:
  web:
    command: ["sleep", "1000"]
    environment: { GREETING: "\${GREETING:-hi}" }
    deploy:
      replicas: 2
      placement: { constraints: ["node.labels.zone == nowhere"] }
  db:
    command: ["sleep", "1000"]
    secrets: [db_password]
    environment: { PASSWORD_FILE: /run/secrets/db_password }
    deploy:
      placement: { constraints: ["node.labels.zone == nowhere"] }
secrets:
  db_password:
    file: ./db_password.txt
`;
const override_yml = 'services:\n  web:\n    deploy: { replicas: 3 }\n';

function request(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    files: [
      { fileName: 'compose.yml', content: base_yml },
      { fileName: 'compose.prod.yml', content: override_yml },
    ],
    projectFallback: 'shop',
    variables: { GREETING: 'hello' },
    attachments: { './db_password.txt': 'pw' },
    ...extra,
  };
}

test.before(async () => {
  const resolved = resolveConfig(
    { name: 'solo', dataDir: join(directory, 'solo'), bind: '127.0.0.1', apiPort: 0, peerPort: 0, gossipPort: 0, dnsPort: 0, proxyPort: 0, token: TOKEN, tickMs: 20 },
    {},
    { hostname: 'test', externalIpv4: [], cwd: directory },
  );
  if (!resolved.ok) throw new Error(JSON.stringify(resolved.problems));
  agent = await startAgent(resolved.config, { mode: 'bootstrap-or-restart', print: () => {}, log: () => {} });
  base = `https://${agent.apiAddress}`;
  const deadline = Date.now() + 10_000;
  for (;;) {
    const nodes = await call('GET', '/v1/nodes');
    if (nodes.body.nodes?.[0]?.status === 'up') break;
    if (Date.now() > deadline) throw new Error(`the node did not come up: ${JSON.stringify(nodes.body)}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
});

test.after(async () => {
  await agent?.stop();
  killWorkloadsUnder(directory);
  rmSync(directory, { recursive: true, force: true });
});

test('two files, variables, a secret file and --set: deployed in project shop, the secret created', async () => {
  const first = await call('POST', '/v1/deploy', request({ sets: ['web.environment.EXTRA=1'] }));
  assert.is(first.status, 200, JSON.stringify(first.body));
  assert.is(first.body.project, 'shop');
  assert.equal(first.body.apps.map((app: { name: string; version: number; replicas: number }) => [app.name, app.version, app.replicas]), [['web', 1, 3], ['db', 1, 1]]);
  const web = await call('GET', '/v1/apps/default/web');
  assert.equal(web.body.spec.environment, { GREETING: 'hello', EXTRA: '1' });
  assert.is(web.body.project, 'shop');
  const db = await call('GET', '/v1/apps/default/db');
  assert.equal([db.body.spec.hivemind.secrets, db.body.spec.environment.PASSWORD_FILE], [['db-password'], '/run/secrets/db-password']);
  const secrets = await call('GET', '/v1/secrets?tenant=default');
  assert.ok(JSON.stringify(secrets.body).includes('"db-password"'), JSON.stringify(secrets.body));
});

test('the same files again: unchanged, no new version; a dry run of a change says what would change and changes nothing', async () => {
  const again = await call('POST', '/v1/deploy', request({ sets: ['web.environment.EXTRA=1'] }));
  assert.is(again.status, 200, JSON.stringify(again.body));
  assert.equal(again.body.apps.map((app: { name: string; version: number; unchanged?: boolean }) => [app.name, app.version, app.unchanged]), [['web', 1, true], ['db', 1, true]]);
  const dryRun = await call('POST', '/v1/deploy', request({ dryRun: true }));
  assert.is(dryRun.status, 200, JSON.stringify(dryRun.body));
  assert.is(dryRun.body.dryRun, true);
  assert.equal(dryRun.body.apps.map((app: { name: string; action: string; fromVersion: number; toVersion: number }) => [app.name, app.action, app.fromVersion, app.toVersion]), [['web', 'update', 1, 2], ['db', 'unchanged', 1, 1]]);
  assert.equal(dryRun.body.apps[0].changes, ['environment (-EXTRA)']);
  assert.is((await call('GET', '/v1/apps/default/web')).body.version, 1, 'the dry run changed nothing');
});

test('another project is refused at services.NAME unless forced; a missing secret is named where the file uses it', async () => {
  const other = await call('POST', '/v1/deploy', request({ project: 'blog' }));
  assert.is(other.status, 409, JSON.stringify(other.body));
  assert.equal([other.body.error.code, other.body.error.field], ['conflict', 'services.web']);
  assert.match(other.body.error.message, /belongs to project "shop", not "blog"/);
  const forced = await call('POST', '/v1/deploy', request({ project: 'blog', force: true }));
  assert.is(forced.status, 200, JSON.stringify(forced.body));
  assert.is((await call('GET', '/v1/apps/default/web')).body.project, 'blog');

  const missing = await call('POST', '/v1/deploy', {
    fileName: 'app.yml',
    content: 'services:\n  api:\n    command: ["sleep", "1"]\n    secrets: [token]\nsecrets:\n  token:\n    external: true\n',
    projectFallback: 'api',
  });
  assert.is(missing.status, 404, JSON.stringify(missing.body));
  assert.is(missing.body.error.field, 'services.api.secrets[0]');
  assert.match(missing.body.error.message, /secret "token" \(services\.api\.secrets\[0\]\) does not exist/);
});

test('networks on a cluster without tenant networks (loopback, no pool): deployed on the one network, with a warning; an undeclared one is refused at its path; PUT /v1/networks waits for the pool', async () => {
  const content = 'services:\n  api:\n    command: ["sleep", "1"]\n    networks: [back]\n    deploy: { placement: { constraints: ["node.labels.zone == nowhere"] } }\nnetworks:\n  back: {}\n';
  const deployed = await call('POST', '/v1/deploy', { fileName: 'net.yml', content, projectFallback: 'net' });
  assert.is(deployed.status, 200, JSON.stringify(deployed.body));
  assert.ok(deployed.body.warnings.some((line: string) => /^net\.yml: networks: is ignored: the cluster has no tenant network pool/.test(line)), JSON.stringify(deployed.body.warnings));
  const api = (await call('GET', '/v1/apps/default/api')).body;
  assert.equal([api.spec.name, api.spec.networks], ['api', undefined]);
  const undeclared = await call('POST', '/v1/deploy', { fileName: 'net.yml', content: content.replace('  back: {}\n', '  front: {}\n'), projectFallback: 'net' });
  assert.is(undeclared.status, 400, JSON.stringify(undeclared.body));
  assert.equal(undeclared.body.errors?.[0]?.path ?? undeclared.body.error?.errors?.[0]?.path, 'services.api.networks[0]', JSON.stringify(undeclared.body));
  const made = await call('PUT', '/v1/networks/default/ops', {});
  assert.is(made.status, 409, JSON.stringify(made.body));
  assert.match(made.body.error.message, /no tenant network pool yet/);
  const gone = await call('DELETE', '/v1/networks/default/ops');
  assert.equal([gone.status, gone.body.error.code, gone.body.error.field], [404, 'not-found', 'name']);
});

test('configs and relative bind mounts come with the deploy as localSources; a bad one is refused naming the field', async () => {
  const proxy = 'services:\n  proxy:\n    image: nginx:1.25\n    volumes: ["./nginx.conf:/etc/nginx/nginx.conf:ro", "./certs:/etc/nginx/certs:ro"]\n    deploy:\n      placement: { constraints: ["node.labels.zone == nowhere"] }\n';
  const data = (text: string): string => Buffer.from(text).toString('base64');
  const localSources = { './nginx.conf': { kind: 'file', data: data('events {}\n') }, './certs': { kind: 'folder', files: [{ path: 'site.crt', data: data('CRT') }] } };
  const deployed = await call('POST', '/v1/deploy', { fileName: 'compose.yml', content: proxy, project: 'edge', localSources });
  assert.is(deployed.status, 200, JSON.stringify(deployed.body));
  const app = await call('GET', '/v1/apps/default/proxy');
  assert.equal(app.body.spec.configs.map((config: { target: string }) => config.target), ['/etc/nginx/nginx.conf', '/etc/nginx/certs']);
  const bad = await call('POST', '/v1/deploy', { fileName: 'compose.yml', content: proxy, project: 'edge', localSources: { './nginx.conf': { kind: 'file', data: 'not base64!' } } });
  assert.is(bad.status, 400);
  assert.is(bad.body.error.field, 'localSources../nginx.conf.data');
  const large = await call('POST', '/v1/deploy', { fileName: 'compose.yml', content: proxy, project: 'edge', localSources: { ...localSources, './certs': { kind: 'too-large', files: 100, bytes: 10 } } });
  assert.is(large.status, 400);
  assert.match(JSON.stringify(large.body), /services\.proxy\.volumes\[1\].*named volume/, JSON.stringify(large.body));
});

test.run();
