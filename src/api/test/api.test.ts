// The API's endpoints doing their job on one in-process node: tenants, apps,
// policies, volumes, secrets (never a value), kv with compare-and-set,
// history, blocking queries, token rotation, metrics; HTTPS with the node's
// certificate, GET /v1/ca, and a renewed certificate served without restart.
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect as tlsConnect, type PeerCertificate } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { fetch } from 'undici';
import { certificateFacts, certificateFingerprint, createClusterCa, issueNodeCertificate } from '../../security/certificates.js';
import { parseJoinToken } from '../../security/pinned-token.js';
import { clusterApiAgent, dataDirApiAgent } from '../tls.js';
import { startAgent, type Agent } from '../../agent/agent.js';
import { resolveConfig } from '../../node/config.js';
import { readLocalToken } from '../../node/data-dir.js';
import { eventually, killWorkloadsUnder } from '../../agent/test/harness.js';
import { STATE_VERSION } from '../../state/version.js';

const directory = mkdtempSync(join(tmpdir(), 'hivemind-api-'));
const HELLO = readFileSync(fileURLToPath(new URL('../../../../examples/hello.yaml', import.meta.url)), 'utf8');
let agent: Agent;
let base = '';
/** The bare token, and the pinned form the node printed. */
let token = '';
let pinned = '';
const printed: string[] = [];

async function call(method: string, path: string, json?: unknown, headers: Record<string, string> = {}): Promise<{ status: number; body: any; index: number }> {
  const response = await fetch(`${base}${path}`, {
    dispatcher: dataDirApiAgent(join(directory, 'solo')),
    method,
    headers: { authorization: `Bearer ${token}`, ...(json === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
    body: json === undefined ? undefined : JSON.stringify(json),
    signal: AbortSignal.timeout(15_000),
  });
  const text = await response.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // metrics
  }
  return { status: response.status, body, index: Number(response.headers.get('x-hivemind-index')) };
}

/** Whether the membership manager has recorded the node's voter role (GET /v1/nodes shows Raft's role at once, the record's later). */
async function roleRecorded(): Promise<boolean> {
  const history = await call('GET', '/v1/history?limit=100');
  return (history.body.history as { command: string }[] | undefined)?.some((entry) => entry.command === 'node.role') === true;
}

test.before(async () => {
  const resolved = resolveConfig({ name: 'solo', dataDir: join(directory, 'solo'), bind: '127.0.0.1', apiPort: 0, peerPort: 0, gossipPort: 0, dnsPort: 0, proxyPort: 0, tickMs: 20 }, {}, { hostname: 'test', externalIpv4: [], cwd: directory });
  if (!resolved.ok) throw new Error(JSON.stringify(resolved.problems));
  agent = await startAgent(resolved.config, { mode: 'bootstrap-or-restart', print: (line) => printed.push(line), log: () => {} });
  base = `https://${agent.apiAddress}`;
  pinned = printed.find((line) => line.startsWith('join token: '))!.slice('join token: '.length);
  token = parseJoinToken(pinned).token;
  // The start-up writes (the registration with its certificate, the subnet, the voter role) land before any test's.
  const deadline = Date.now() + 10_000;
  for (;;) {
    const node = (await call('GET', '/v1/nodes')).body.nodes?.[0];
    if (node?.role === 'voter' && node.status === 'up' && node.certificates?.length === 1 && node.subnet !== undefined && (await roleRecorded())) break;
    if (Date.now() > deadline) throw new Error(`the node did not settle: ${JSON.stringify(node)}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
});

test.after(async () => {
  await agent?.stop();
  killWorkloadsUnder(directory);
  rmSync(directory, { recursive: true, force: true });
});

test('the first node prints a fresh token pinned to its CA, and keeps the bare token in its data directory', () => {
  assert.match(token, /^hm1\.[A-Za-z0-9_-]{43}$/);
  const caPem = readFileSync(join(directory, 'solo', 'tls', 'ca.crt'), 'utf8');
  assert.is(pinned, `hmca:${certificateFingerprint(caPem)}::${token}`);
  assert.is(readLocalToken(join(directory, 'solo')), token);
  assert.ok(printed.some((line) => line === `to add a node: hivemind join ${agent.peerAddress} --token ${pinned}`));
});

/** The certificate chain the API presents, read over TLS that verifies nothing. */
function servedChain(): Promise<PeerCertificate & { issuerCertificate?: PeerCertificate }> {
  const [host, port] = agent.apiAddress.split(':');
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: host!, port: Number(port), rejectUnauthorized: false }, () => {
      const chain = socket.getPeerCertificate(true);
      socket.end();
      resolve(chain);
    });
    socket.on('error', reject);
  });
}

test('the API speaks HTTPS with a certificate that names the node and chains to the cluster CA', async () => {
  const caPem = readFileSync(join(directory, 'solo', 'tls', 'ca.crt'), 'utf8');
  const chain = await servedChain();
  assert.is(chain.subject.CN, 'solo');
  assert.match(chain.subjectaltname ?? '', 'URI:hivemind://node/solo');
  assert.is(chain.issuerCertificate?.fingerprint256, new X509Certificate(caPem).fingerprint256, 'the chain sent ends with the CA');
  assert.ok(new X509Certificate(chain.raw).verify(new X509Certificate(caPem).publicKey), 'signed by the CA');
  // A client trusting only the CA (no host name checks) is served; one trusting nothing is refused.
  assert.is((await call('GET', '/v1/status')).status, 200);
  const untrusting = await fetch(`${base}/v1/health`).then(() => 'served', (error: Error & { cause?: { code?: string } }) => error.cause?.code ?? error.message);
  assert.is(untrusting, 'SELF_SIGNED_CERT_IN_CHAIN');
  // Plain HTTP on the HTTPS port gets no answer.
  const plain = await fetch(`http://${agent.apiAddress}/v1/health`).then((response) => response.status, () => 'refused');
  assert.is.not(plain, 200);
});

test('GET /v1/ca answers without a token with the trusted CA certificates, whose fingerprint the token pins', async () => {
  const answer = await fetch(`${base}/v1/ca`, { dispatcher: dataDirApiAgent(join(directory, 'solo')) });
  assert.is(answer.status, 200);
  assert.is(answer.headers.get('content-type'), 'application/x-pem-file');
  const text = await answer.text();
  assert.is(text.trim(), readFileSync(join(directory, 'solo', 'tls', 'ca.crt'), 'utf8').trim());
  assert.is(parseJoinToken(pinned).caFingerprint, certificateFingerprint(text));
});

test('both token forms open the API: bare and pinned', async () => {
  assert.is((await call('GET', '/v1/apps', undefined, { authorization: `Bearer ${pinned}` })).status, 200);
  assert.is((await call('GET', '/v1/apps', undefined, { authorization: `Bearer ${token}` })).status, 200);
  assert.equal((await call('GET', '/v1/token')).body, { token: pinned, bareToken: token });
});

test('new material (a renewal, a CA change) is served at the next handshake, without a restart', async () => {
  const before = await servedChain();
  const material = agent.credentials.current!;
  // A certificate for the same key from another CA: what a rotation brings. (Only the cluster can sign with its own CA.)
  const otherCa = await createClusterCa({ now: Date.now() });
  const certificatePem = await issueNodeCertificate(otherCa, material.keyPem, { nodeId: 'solo', now: Date.now(), addresses: ['127.0.0.1'] });
  agent.credentials.update({ ...material, certificatePem, caPems: [otherCa.certificatePem, ...material.caPems] });
  try {
    const after = await servedChain();
    assert.is(after.serialNumber.toUpperCase(), certificateFacts(certificatePem).serial, 'the new certificate is served');
    assert.is(after.issuerCertificate?.fingerprint256, new X509Certificate(otherCa.certificatePem).fingerprint256, 'with its own issuer in the chain');
    assert.is.not(after.serialNumber, before.serialNumber);
    const newTrust = await fetch(`${base}/v1/health`, { dispatcher: clusterApiAgent(otherCa.certificatePem) });
    assert.is(newTrust.status, 200, 'a client trusting the new CA is served');
  } finally {
    agent.credentials.update(material);
  }
  // The cluster's CA again once restored: the restored certificate, or the one the agent renewed it with meanwhile
  // (a certificate from another CA in force for a moment may start a renewal that lands after the restore).
  assert.is((await servedChain()).issuerCertificate?.fingerprint256, before.issuerCertificate?.fingerprint256, 'and the cluster CA again once restored');
  assert.is((await call('GET', '/v1/status')).status, 200);
});

test('status and nodes', async () => {
  const status = await call('GET', '/v1/status');
  assert.is(status.status, 200);
  assert.is(status.body.node, 'solo');
  assert.is(status.body.leader, 'solo');
  assert.is(status.body.role, 'leader');
  assert.equal(status.body.voters, ['solo']);
  assert.is(status.body.version, '0.1.0');
  const nodes = await call('GET', '/v1/nodes');
  assert.is(nodes.body.nodes[0].addresses.api, agent.apiAddress);
  assert.is(nodes.body.nodes[0].leader, true);
});

test('tenants: create, update, read with usage, delete', async () => {
  const created = await call('PUT', '/v1/tenants/acme', { quota: { apps: 2, memoryBytes: 1073741824 } });
  assert.is(created.status, 200, JSON.stringify(created.body));
  const updated = await call('PUT', '/v1/tenants/acme', { quota: { apps: 5 } });
  assert.is(updated.status, 200);
  const read = await call('GET', '/v1/tenants/acme');
  assert.equal(read.body.quota, { apps: 5 });
  assert.is(read.body.usage.apps, 0);
  const list = await call('GET', '/v1/tenants');
  assert.equal(list.body.tenants.map((tenant: { name: string }) => tenant.name), ['acme', 'default']);
  const deleted = await call('DELETE', '/v1/tenants/acme');
  assert.is(deleted.status, 200);
  assert.is((await call('GET', '/v1/tenants/acme')).status, 404);
});

test('apps: deploy, scale, rollback, instances, delete', async () => {
  const deployed = await call('POST', '/v1/deploy', { fileName: 'hello.yaml', content: HELLO });
  assert.is(deployed.status, 200, JSON.stringify(deployed.body));
  assert.equal(deployed.body.apps, [{ tenant: 'default', name: 'hello', version: 1, replicas: 2 }]);
  assert.ok(Array.isArray(deployed.body.warnings));
  const again = await call('POST', '/v1/deploy', { fileName: 'hello.yaml', content: HELLO.replace('GREETING: hello', 'GREETING: hi') });
  assert.is(again.body.apps[0].version, 2);
  const scaled = await call('POST', '/v1/apps/default/hello/scale', { replicas: 3 });
  assert.is(scaled.status, 200);
  assert.is(scaled.body.replicas, 3);
  const instances = await call('GET', '/v1/instances?app=hello');
  // The scheduler may already be rolling version 2 out beside version 1: count slots, not records.
  const running = instances.body.instances.filter((instance: { desired: string }) => instance.desired === 'running');
  assert.is(new Set(running.map((instance: { slot: number }) => instance.slot)).size, 3);
  const rolledBack = await call('POST', '/v1/apps/default/hello/rollback', {});
  assert.is(rolledBack.status, 200, JSON.stringify(rolledBack.body));
  assert.is(rolledBack.body.version, 3);
  const app = await call('GET', '/v1/apps/default/hello');
  assert.is(app.body.spec.environment.GREETING, 'hello');
  assert.is(app.body.versions.length, 3);
  const apps = await call('GET', '/v1/apps?tenant=default');
  assert.is(apps.body.apps.length, 1);
  assert.is((await call('DELETE', '/v1/apps/default/hello')).status, 200);
  assert.is((await call('GET', '/v1/instances')).body.instances.length, 0);
});

test('promote, abort and rebalance routes: answers and refusals with the field', async () => {
  const deployed = await call('POST', '/v1/deploy', { fileName: 'hello.yaml', content: HELLO });
  assert.is(deployed.status, 200, JSON.stringify(deployed.body));
  const promote = await call('POST', '/v1/apps/default/hello/promote');
  assert.is(promote.status, 409);
  assert.equal([promote.body.error.code, promote.body.error.field], ['conflict', 'name']);
  assert.match(promote.body.error.message, /no rollout is in progress \(it was never updated\)/);
  const abort = await call('POST', '/v1/apps/default/ghost/abort');
  assert.is(abort.status, 404);
  const badName = await call('POST', '/v1/rebalance', { name: 5 });
  assert.equal([badName.status, badName.body.error.field], [400, 'name']);
  const unknownField = await call('POST', '/v1/rebalance', { app: 'hello' });
  assert.is(unknownField.status, 400);
  const rebalance = await call('POST', '/v1/rebalance', { name: 'hello' });
  assert.is(rebalance.status, 200, JSON.stringify(rebalance.body));
  assert.equal(rebalance.body, { apps: 1 });
  await eventually('the rebalance to finish (one node: already even)', async () => (await call('GET', '/v1/apps/default/hello')).body.rebalance === undefined, 15_000);
  assert.is((await call('DELETE', '/v1/apps/default/hello')).status, 200);
});

test('policies, volumes, secrets: a secret list never shows a value', async () => {
  assert.is((await call('PUT', '/v1/policies/default/web-in', { apps: ['web'], ingress: [{ fromApps: ['api'], ports: [80] }] })).status, 200);
  assert.equal((await call('GET', '/v1/policies')).body.policies.map((policy: { name: string }) => policy.name), ['web-in']);
  const allowed = await call('GET', '/v1/policies/test?from=default/api&to=default/web&port=80');
  assert.equal([allowed.status, allowed.body.verdict, allowed.body.reason], [200, 'allow', 'policy default/web-in rule 1']);
  const denied = await call('GET', '/v1/policies/test?from=default/api&to=default/web&port=81');
  assert.equal([denied.body.verdict, denied.body.selecting], ['deny', ['default/web-in']]);
  assert.is((await call('GET', '/v1/policies/test?from=203.0.113.9&to=default/db&port=5432')).body.verdict, 'allow', 'from outside the cluster network, no policy');
  assert.is((await call('GET', '/v1/policies/test?from=web&to=default/db&port=1')).status, 400);
  assert.is((await call('DELETE', '/v1/policies/default/web-in')).status, 200);
  assert.is((await call('PUT', '/v1/volumes/default/data', { sizeBytes: 1048576 })).status, 200);
  const duplicate = await call('PUT', '/v1/volumes/default/data', { sizeBytes: 1048576 });
  assert.is(duplicate.status, 409);
  assert.is(duplicate.body.error.code, 'already-exists');
  assert.is((await call('DELETE', '/v1/volumes/default/data')).status, 200);
  const secret = await call('PUT', '/v1/secrets/default/db-password', { value: 'hunter2-very-secret' });
  assert.is(secret.status, 200, JSON.stringify(secret.body));
  assert.is(secret.body.version, 1);
  const list = await call('GET', '/v1/secrets');
  assert.is(list.body.secrets.length, 1);
  const text = JSON.stringify(list.body);
  assert.not.match(text, 'hunter2');
  assert.not.ok('ciphertext' in list.body.secrets[0]);
  const history = await call('GET', '/v1/history?limit=5');
  assert.not.match(JSON.stringify(history.body), 'hunter2');
});

test('volumes: I/O limits, users in the list, and the data routes refuse clearly what cannot be done', async () => {
  assert.is((await call('PUT', '/v1/volumes/default/limited', { sizeBytes: 1048576, io: { writeBytesPerSecond: 1048576 } })).status, 200);
  const badLimit = await call('PUT', '/v1/volumes/default/limited/io', { io: { writeIops: -1 } });
  assert.equal([badLimit.status, badLimit.body.error.field], [400, 'io.writeIops']);
  assert.is((await call('PUT', '/v1/volumes/default/limited/io', { io: { readIops: 100 } })).status, 200);
  const listed = (await call('GET', '/v1/volumes')).body.volumes.find((volume: { name: string }) => volume.name === 'limited');
  assert.equal([listed.io, listed.users, listed.node, listed.usedBytes], [{ readIops: 100 }, [], undefined, undefined]);
  const unbound = await call('POST', '/v1/volumes/default/limited/move', { to: 'solo' });
  assert.equal([unbound.status, unbound.body.error.code], [409, 'conflict']);
  assert.match(unbound.body.error.message, /holds no data yet/);
  assert.equal((await call('GET', '/v1/volumes/default/limited/snapshots')).body, { snapshots: [] });
  const backup = await call('GET', '/v1/volumes/default/limited/backup');
  assert.is(backup.status, 400);
  assert.match(backup.body.error.message, /holds no data yet/);
  const badId = await call('GET', '/v1/volumes/default/limited/backup?snapshot=..%2Fetc');
  assert.equal([badId.status, badId.body.error.field], [400, 'snapshot']);
  const notMoving = await call('POST', '/v1/volumes/default/limited/move/copy');
  assert.equal([notMoving.status, notMoving.body.error.code], [409, 'conflict']);
  const noVolume = await call('POST', '/v1/volumes/default/ghost/snapshots');
  assert.is(noVolume.status, 404);
  const notArchive = await call('PUT', '/v1/volumes/default/limited/restore', 'plain text', { 'content-type': 'text/plain' });
  assert.is(notArchive.status, 415);
  assert.is((await call('DELETE', '/v1/volumes/default/limited')).status, 200);
});

test('encrypted volumes: on request, or every volume of a tenant that says so; the list says which and never shows a key', async () => {
  // Encrypted volumes need this release's cluster version, which the leader raises soon after it starts.
  while ((await call('GET', '/v1/status')).body.clusterVersion < STATE_VERSION) await new Promise((resolve) => setTimeout(resolve, 50));
  assert.is((await call('PUT', '/v1/volumes/default/vault', { sizeBytes: 1048576, encrypted: true })).status, 200);
  assert.is((await call('PUT', '/v1/volumes/default/open', { sizeBytes: 1048576 })).status, 200);
  assert.is((await call('PUT', '/v1/tenants/sealed', { quota: {}, settings: { encryptVolumes: true } })).status, 200);
  assert.is((await call('PUT', '/v1/volumes/sealed/data', { sizeBytes: 1048576 })).status, 200);
  const listed = (await call('GET', '/v1/volumes')).body.volumes as Array<Record<string, unknown>>;
  const encryptedOf = (tenant: string, name: string) => listed.find((volume) => volume.tenant === tenant && volume.name === name)?.encrypted;
  assert.equal([encryptedOf('default', 'vault'), encryptedOf('default', 'open'), encryptedOf('sealed', 'data')], [true, false, true]);
  assert.ok(listed.every((volume) => !('encryption' in volume)), 'the sealed key stays inside');
  const badFlag = await call('PUT', '/v1/volumes/default/other', { sizeBytes: 1048576, encrypted: 'yes' });
  assert.equal([badFlag.status, badFlag.body.error.field], [400, 'encrypted']);
  for (const [tenant, name] of [['default', 'vault'], ['default', 'open'], ['sealed', 'data']]) assert.is((await call('DELETE', `/v1/volumes/${tenant}/${name}`)).status, 200);
  assert.is((await call('DELETE', '/v1/tenants/sealed')).status, 200);
});

test('kv: put, compare-and-set, list, delete', async () => {
  const first = await call('PUT', '/v1/kv/config/db/url', { value: 'postgres://a' });
  assert.is(first.status, 200);
  assert.is(first.body.version, first.index);
  const mismatch = await call('PUT', '/v1/kv/config/db/url', { value: 'postgres://b', expectVersion: first.body.version - 1 });
  assert.is(mismatch.status, 409);
  assert.is(mismatch.body.error.code, 'version-mismatch');
  const swapped = await call('PUT', '/v1/kv/config/db/url', { value: 'postgres://b', expectVersion: first.body.version });
  assert.is(swapped.status, 200);
  const absentOnly = await call('PUT', '/v1/kv/config/db/user', { value: 'app', expectVersion: 0 });
  assert.is(absentOnly.status, 200);
  const listed = await call('GET', '/v1/kv?prefix=config/db/');
  assert.equal(listed.body.entries.map((entry: { key: string }) => entry.key), ['config/db/url', 'config/db/user']);
  const read = await call('GET', `/v1/kv/${encodeURIComponent('config/db/url')}`);
  assert.is(read.body.value, 'postgres://b');
  const deleted = await call('DELETE', `/v1/kv/config/db/url?expectVersion=${swapped.body.version}`);
  assert.is(deleted.status, 200);
  assert.equal(deleted.body, { key: 'config/db/url', deleted: true });
});

test('Idempotency-Key: a retry gets the first answer; the same key on another request is a 422; another caller\'s equal key is its own', async () => {
  const key = { 'idempotency-key': 'deploy-42' };
  const first = await call('PUT', '/v1/kv/idem/a', { value: 'one' }, key);
  assert.is(first.status, 200, JSON.stringify(first.body));
  const retry = await call('PUT', '/v1/kv/idem/a', { value: 'one' }, key);
  assert.is(retry.status, 200);
  assert.equal(retry.body, first.body, 'the retry is answered with the first result');
  const otherBody = await call('PUT', '/v1/kv/idem/a', { value: 'two' }, key);
  assert.is(otherBody.status, 422, JSON.stringify(otherBody.body));
  assert.is(otherBody.body.error.code, 'idempotency-key-reused');
  assert.is(otherBody.body.error.field, 'Idempotency-Key');
  const otherRoute = await call('PUT', '/v1/kv/idem/b', { value: 'one' }, key);
  assert.is(otherRoute.status, 422, 'the same key on another route');
  assert.is((await call('GET', '/v1/kv/idem/a')).body.value, 'one', 'the refused requests changed nothing');
  const admin = readFileSync(join(directory, 'solo', 'admin-token'), 'utf8').trim();
  const otherCaller = await call('PUT', '/v1/kv/idem/a', { value: 'three' }, { ...key, authorization: `Bearer ${admin}` });
  assert.is(otherCaller.status, 200, `another caller's equal key is a new request: ${JSON.stringify(otherCaller.body)}`);
  assert.is((await call('GET', '/v1/kv/idem/a')).body.value, 'three');
});

test('statuses the fuzz run found wrong: a control character in a KV key, a bad image name', async () => {
  const control = await call('PUT', '/v1/kv/a%0Ab', { value: 'v' });
  assert.is(control.status, 400);
  assert.is(control.body.error.field, 'key');
  assert.match(control.body.error.message, /^the config key must not contain control characters/);
  assert.not.match(control.body.error.message, /kv\.delete/);
  for (const ref of ['../../x', 'UPPER', 'x@sha256:zz']) {
    const pull = await call('POST', '/v1/images/pull', { ref });
    assert.is(pull.status, 400, `${ref}: ${JSON.stringify(pull.body)}`);
    assert.is(pull.body.error.field, 'ref');
  }
});

test('tenant settings: confined by default, a deploy with a host path refused 403, allowed once a cluster-admin says so', async () => {
  assert.is((await call('PUT', '/v1/tenants/hosted', { quota: {} })).status, 200);
  const file = 'services:\n  reader:\n    command: ["sleep", "300"]\n    volumes: ["/srv:/srv:ro"]\n    deploy: { replicas: 0 }\n';
  const refused = await call('POST', '/v1/deploy', { fileName: 'reader.yaml', content: file, tenant: 'hosted' });
  assert.is(refused.status, 403, JSON.stringify(refused.body));
  assert.is(refused.body.error.code, 'forbidden');
  assert.match(refused.body.error.message, /tenant "hosted" may not bind host paths/);
  const bad = await call('PUT', '/v1/tenants/hosted', { quota: {}, settings: { hostMounts: 'yes' } });
  assert.is(bad.status, 400);
  assert.is(bad.body.error.field, 'settings.hostMounts');
  assert.is((await call('PUT', '/v1/tenants/hosted', { quota: {}, settings: { hostMounts: true } })).status, 200);
  assert.equal((await call('GET', '/v1/tenants/hosted')).body.settings, { hostMounts: true });
  const allowed = await call('POST', '/v1/deploy', { fileName: 'reader.yaml', content: file, tenant: 'hosted' });
  assert.is(allowed.status, 200, JSON.stringify(allowed.body));
  assert.is((await call('DELETE', '/v1/apps/hosted/reader')).status, 200);
});

test('a blocking query answers once the state passes its index', async () => {
  const current = await call('GET', '/v1/kv/config/db/user');
  const started = Date.now();
  const waiting = call('GET', `/v1/kv?prefix=watch/&index=${current.index}&wait=10s`);
  await new Promise((resolve) => setTimeout(resolve, 200));
  const write = await call('PUT', '/v1/kv/watch/me', { value: 'now' });
  let answered = await waiting;
  // Background writers (the scheduler, executors) may wake the query first: follow the index until the write shows.
  while (answered.index < write.index) answered = await call('GET', `/v1/kv?prefix=watch/&index=${answered.index}&wait=10s`);
  assert.ok(Date.now() - started < 5000, 'woken by the write, not the wait');
  assert.ok(answered.index >= write.index);
  assert.is(answered.body.entries[0].value, 'now');
  const timedOut = await call('GET', `/v1/kv?index=${write.index}&wait=200ms&stale=true`);
  assert.is(timedOut.status, 200);
  assert.ok(timedOut.index >= write.index);
});

test('history lists changes newest first with the actor', async () => {
  const history = await call('GET', '/v1/history?limit=3');
  assert.is(history.body.history.length, 3);
  assert.is(history.body.history[0].target, 'kv watch/me');
  assert.match(history.body.history[0].actor, /^token:[0-9a-f]{8}$/);
  const older = await call('GET', `/v1/history?limit=1&before=${history.body.history[0].index}`);
  assert.ok(older.body.history[0].index < history.body.history[0].index);
});

test('token rotation: the old token stops working at once, the new one works', async () => {
  const old = token;
  const rotated = await call('POST', '/v1/token/rotate');
  assert.is(rotated.status, 200, JSON.stringify(rotated.body));
  assert.match(rotated.body.bareToken, /^hm1\./);
  assert.match(rotated.body.token, /^hmca:[0-9a-f]{64}::hm1\./);
  assert.is.not(rotated.body.bareToken, old);
  assert.is((await call('GET', '/v1/apps')).status, 401, 'the old token is refused');
  token = rotated.body.bareToken;
  assert.equal((await call('GET', '/v1/token')).body, { token: rotated.body.token, bareToken: token });
  const deadline = Date.now() + 3000;
  while (readLocalToken(join(directory, 'solo')) !== token && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
  assert.is(readLocalToken(join(directory, 'solo')), token, 'the token file follows');
});

test('metrics in Prometheus format', async () => {
  const metrics = await call('GET', '/metrics');
  for (const name of ['hivemind_raft_term', 'hivemind_raft_commit_index', 'hivemind_raft_applied_index', 'hivemind_raft_proposals_total', 'hivemind_raft_apply_duration_seconds_bucket', 'hivemind_raft_leader_changes_total', 'hivemind_http_request_duration_seconds_bucket']) {
    assert.match(metrics.body, name);
  }
  assert.match(metrics.body, /hivemind_http_requests_total\{method="PUT",route="\/v1\/kv\/\*key",status="200",node="solo"\} \d+/);
  assert.match(metrics.body, /hivemind_raft_proposals_total\{outcome="applied",node="solo"\} \d+/);
  assert.match(metrics.body, /^hivemind_raft_leader\{node="solo"\} 1$/m, 'the only node leads');
  assert.match(metrics.body, /^hivemind_state_nodes\{status="up",node="solo"\} 1$/m);
  const expiry = /^hivemind_certificate_expiry_timestamp_seconds\{certificate="node",node="solo"\} (\d+)$/m.exec(metrics.body);
  assert.ok(expiry !== null, 'the node certificate\'s expiry is exported');
  const daysLeft = (Number(expiry[1]) - Date.now() / 1000) / 86400;
  assert.ok(daysLeft > 89 && daysLeft <= 90, `a fresh node certificate has 90 days left (${daysLeft})`);
});

test.run();
