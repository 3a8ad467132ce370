// The proxy of a real agent (in process) in front of real process apps
// (small HTTP servers), asked over real HTTP on loopback: requests spread
// over instances with X-Forwarded-* headers; a backend that resets
// connections is retried around, its breaker opens and, once it serves
// again, closes; the bulkhead sheds load; a canary at 20% gets 20% (+-5) of
// 2,000 requests and abort moves it all back; blue-green promote moves all
// traffic; no request fails while traffic moves; an A/B rule steers by
// header; HTTP/2 with prior knowledge on the same port; WebSocket upgrades
// pass.
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as http2 from 'node:http2';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Agent as HttpAgent, fetch, request } from 'undici';
import { dataDirApiAgent } from '../../api/tls.js';
import { startAgent, type Agent } from '../../agent/agent.js';
import { eventually, freePorts, killWorkloadsUnder } from '../../agent/test/harness.js';
import { resolveConfig } from '../../node/config.js';

const directory = mkdtempSync(join(tmpdir(), 'hivemind-proxy-'));
// The backends run as the tenant's own user: they pass through this folder to read their script and the test's signal files.
chmodSync(directory, 0o711);
const backendPath = join(directory, 'backend.cjs');
let agent: Agent;
let proxyPort = 0;
let token = '';
const logged: string[] = [];
const client = new HttpAgent({ connections: 32 });

// An HTTP server: answers who it is; resets connections while <dir>/down-<app>-<slot> exists;
// /hold sends headers and ends when <dir>/release exists; /echo answers with the body it got;
// upgrades echo what they get.
const BACKEND = `
const http = require('node:http'); const fs = require('node:fs');
const dir = ${JSON.stringify(directory)};
const id = process.env.HIVEMIND_INSTANCE, app = process.env.HIVEMIND_APP, slot = process.env.HIVEMIND_SLOT;
const held = [];
const server = http.createServer((req, res) => {
  if (fs.existsSync(dir + '/down-' + app + '-' + slot)) { req.socket.destroy(); return; }
  if (req.url.startsWith('/hold')) { res.writeHead(200, { 'content-type': 'text/plain' }); res.flushHeaders(); held.push(res); return; }
  if (req.url.startsWith('/echo')) { let body = ''; req.on('data', (chunk) => (body += chunk)); req.on('end', () => res.end(JSON.stringify({ instance: id, received: body, headers: req.headers }))); return; }
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify({ instance: id, slot: Number(slot), version: Number(process.env.HIVEMIND_VERSION), headers: req.headers }));
});
server.on('upgrade', (req, socket) => {
  socket.write('HTTP/1.1 101 Switching Protocols\\r\\nupgrade: websocket\\r\\nconnection: upgrade\\r\\nx-instance: ' + id + '\\r\\n\\r\\n');
  socket.on('data', (data) => socket.write(data));
});
server.listen(Number(process.env.PORT), '127.0.0.1');
setInterval(() => { if (held.length && fs.existsSync(dir + '/release')) for (const res of held.splice(0)) res.end('released'); }, 50);
process.on('SIGTERM', () => process.exit(0));
`;

// The start period: a probe that finds the port closed before the process has
// listened once does not count (on a loaded machine node takes over 300 ms to
// start, and one failure would pause a blue-green or canary rollout).
function service(name: string, replicas: number, extra = '', version = '1'): string {
  return `
  ${name}:
    command: ["node", "${backendPath}"]
    environment: { RELEASE: "${version}" }
    ports: ["80"]
    healthcheck: { test: ["TCP", "127.0.0.1:80"], interval: 300ms, retries: 1, start_period: 30s }
    deploy:
      replicas: ${replicas}
      update_config: { parallelism: 1, delay: 0s, order: start-first, monitor: 0s }
${extra
  .split('\n')
  .map((line) => (line === '' ? '' : `    ${line}`))
  .join('\n')}`;
}

async function call(method: string, path: string, json?: unknown): Promise<{ status: number; body: any }> {
  const response = await fetch(`https://${agent.apiAddress}${path}`, {
    dispatcher: dataDirApiAgent(join(directory, 'solo')),
    method,
    headers: { authorization: `Bearer ${token}`, ...(json === undefined ? {} : { 'content-type': 'application/json' }) },
    body: json === undefined ? undefined : JSON.stringify(json),
    signal: AbortSignal.timeout(15_000),
  });
  const text = await response.text();
  return { status: response.status, body: text.startsWith('{') ? JSON.parse(text) : text };
}

async function deploy(content: string): Promise<void> {
  const deployed = await call('POST', '/v1/deploy', { fileName: 'proxy.yaml', content: `services:${content}\n` });
  assert.is(deployed.status, 200, JSON.stringify(deployed.body));
}

interface Answer {
  status: number;
  body: any;
  error?: string;
}

async function ask(host: string, path = '/', headers: Record<string, string> = {}): Promise<Answer> {
  const response = await request(`http://127.0.0.1:${proxyPort}${path}`, { headers: { host, ...headers }, dispatcher: client });
  const text = await response.body.text();
  const error = response.headers['x-hivemind-proxy-error'];
  return { status: response.statusCode, body: text.startsWith('{') ? JSON.parse(text) : text, ...(typeof error === 'string' ? { error } : {}) };
}

/** `count` requests, `parallel` at a time; the answers in order. */
async function askMany(host: string, count: number, parallel = 16): Promise<Answer[]> {
  const answers: Answer[] = new Array(count);
  let next = 0;
  await Promise.all(
    Array.from({ length: parallel }, async () => {
      while (next < count) {
        const index = next++;
        answers[index] = await ask(host);
      }
    }),
  );
  return answers;
}

/** Asks `host` in a loop until `stop()`; every answer that is not a 200 is kept. */
function loadUntil(host: string): { stop: () => Promise<{ total: number; failed: Answer[] }> } {
  let running = true;
  let total = 0;
  const failed: Answer[] = [];
  const workers = Array.from({ length: 4 }, async () => {
    while (running) {
      const answer = await ask(host).catch((error: Error) => ({ status: 0, body: error.message }));
      total++;
      if (answer.status !== 200) failed.push(answer);
    }
  });
  return {
    stop: async () => {
      running = false;
      await Promise.all(workers);
      return { total, failed };
    },
  };
}

async function servingInstances(name: string, count: number, version?: number): Promise<{ id: string; slot: number; version: number }[]> {
  return eventually(`${count} instances of ${name} healthy${version === undefined ? '' : ` at version ${version}`}`, async () => {
    const instances = (await call('GET', `/v1/instances?tenant=default&app=${name}`)).body.instances as { id: string; slot: number; version: number; desired: string; status: { state: string } }[];
    const serving = instances.filter((entry) => entry.desired === 'running' && entry.status.state === 'healthy' && (version === undefined || entry.version === version));
    return serving.length === count ? serving : undefined;
  }, 30_000);
}

function count<T>(items: readonly T[], key: (item: T) => string | number): Map<string | number, number> {
  const counts = new Map<string | number, number>();
  for (const item of items) counts.set(key(item), (counts.get(key(item)) ?? 0) + 1);
  return counts;
}

test.before(async () => {
  writeFileSync(backendPath, BACKEND);
  proxyPort = (await freePorts(1))[0]!;
  const resolved = resolveConfig({ name: 'solo', dataDir: join(directory, 'solo'), bind: '127.0.0.1', apiPort: 0, peerPort: 0, gossipPort: 0, dnsPort: 0, proxyPort, tickMs: 20 }, {}, { hostname: 'test', externalIpv4: [], cwd: directory });
  if (!resolved.ok) throw new Error(JSON.stringify(resolved.problems));
  const printed: string[] = [];
  agent = await startAgent(resolved.config, { mode: 'bootstrap-or-restart', print: (line) => printed.push(line), log: (line) => logged.push(line) });
  token = printed.find((line) => line.startsWith('join token: '))!.slice('join token: '.length);
});

test.after(async () => {
  await client.close();
  await agent?.stop();
  killWorkloadsUnder(directory);
  if (process.env.KEEP === undefined) rmSync(directory, { recursive: true, force: true });
});

test('requests spread over the instances, with X-Forwarded headers; unknown hosts get 404 with a clear body', async () => {
  await deploy(service('web', 3));
  const instances = await servingInstances('web', 3);
  const answers = await askMany('web.default.hivemind:7080', 30, 1);
  assert.ok(answers.every((answer) => answer.status === 200), JSON.stringify(answers.find((answer) => answer.status !== 200)));
  const perInstance = count(answers, (answer) => answer.body.instance);
  assert.equal([...perInstance.keys()].sort(), instances.map((entry) => entry.id).sort());
  assert.equal([...perInstance.values()], [10, 10, 10], 'round-robin gives each instance a third');
  const headers = answers[0]!.body.headers;
  assert.is(headers['x-forwarded-for'], '127.0.0.1');
  assert.is(headers['x-forwarded-proto'], 'http');
  assert.is(headers['x-forwarded-host'], 'web.default.hivemind:7080');
  assert.is(headers.host, 'web.default.hivemind:7080');
  const unknown = await ask('nothing.default.hivemind');
  assert.is(unknown.status, 404);
  assert.is(unknown.error, 'NO_ROUTE');
  assert.match(unknown.body, /no app serves host "nothing.default.hivemind"/);
});

test('a backend that resets connections is retried around; its breaker opens, then closes once it serves again', async () => {
  await deploy(service('flaky', 3, 'x-hivemind:\n  proxy: { retries: 2, breaker: { failures: 2, open: 200ms } }'));
  const instances = await servingInstances('flaky', 3);
  const victim = instances.find((entry) => entry.slot === 0)!;
  writeFileSync(join(directory, 'down-flaky-0'), '');
  const answers = await askMany('flaky.default.hivemind', 30, 1);
  assert.ok(answers.every((answer) => answer.status === 200), JSON.stringify(answers.find((answer) => answer.status !== 200)));
  assert.ok(answers.every((answer) => answer.body.instance !== victim.id), 'the failing instance answered nothing');
  assert.ok(logged.some((line) => line.includes(`circuit breaker of ${victim.id}`) && line.includes('opened')), 'its breaker opened');
  rmSync(join(directory, 'down-flaky-0'));
  await eventually('the instance serves again through the proxy', async () => (await askMany('flaky.default.hivemind', 6, 1)).some((answer) => answer.body.instance === victim.id));
  const metrics = (await call('GET', '/metrics')).body as string;
  const line = metrics.split('\n').find((entry) => entry.startsWith('hivemind_proxy_breaker_state') && entry.includes(victim.id));
  assert.ok(line?.endsWith(' 0'), `its breaker is closed: ${line}`);
  assert.match(metrics, /hivemind_proxy_requests_total\{[^}]*route="flaky.default.hivemind",app="default\/flaky",class="2xx",error=""[^}]*\} \d+/);
  assert.match(metrics, /hivemind_proxy_retries_total\{[^}]*app="default\/flaky"[^}]*\} [1-9]/);
});

test('the bulkhead answers 503 beyond max_concurrent requests in flight, and serves again once they end', async () => {
  await deploy(service('held', 1, 'x-hivemind:\n  proxy: { max_concurrent: 2 }'));
  await servingInstances('held', 1);
  const first = await request(`http://127.0.0.1:${proxyPort}/hold`, { headers: { host: 'held.default.hivemind' }, dispatcher: client });
  const second = await request(`http://127.0.0.1:${proxyPort}/hold`, { headers: { host: 'held.default.hivemind' }, dispatcher: client });
  assert.is(first.statusCode, 200);
  assert.is(second.statusCode, 200);
  const shed = await ask('held.default.hivemind');
  assert.is(shed.status, 503);
  assert.is(shed.error, 'OVERLOADED');
  assert.match(shed.body, /default\/held has 2 requests in flight through this node, its limit/);
  writeFileSync(join(directory, 'release'), '');
  assert.is(await first.body.text(), 'released');
  assert.is(await second.body.text(), 'released');
  assert.is((await ask('held.default.hivemind')).status, 200);
});

test('a canary at 20% gets 20% of 2,000 requests; abort moves all traffic back with no failed request', async () => {
  const canary = 'x-hivemind:\n  strategy: canary\n  canary: { weight: 20 }';
  await deploy(service('shop', 4, canary));
  await servingInstances('shop', 4, 1);
  await deploy(service('shop', 4, canary, '2'));
  await servingInstances('shop', 1, 2);
  await servingInstances('shop', 5);
  const answers = await askMany('shop.default.hivemind', 2000);
  assert.ok(answers.every((answer) => answer.status === 200));
  const newVersion = answers.filter((answer) => answer.body.version === 2).length;
  assert.ok(newVersion >= 300 && newVersion <= 500, `version 2 got ${newVersion} of 2000`);
  const load = loadUntil('shop.default.hivemind');
  const aborted = await call('POST', '/v1/apps/default/shop/abort');
  assert.is(aborted.status, 200, JSON.stringify(aborted.body));
  const after = await askMany('shop.default.hivemind', 50);
  assert.ok(after.every((answer) => answer.status === 200 && answer.body.version === 1), 'all traffic is back on version 1 once the abort is applied');
  await servingInstances('shop', 4);
  const { total, failed } = await load.stop();
  assert.equal(failed, [], `${failed.length} of ${total} requests failed`);
});

test('blue-green: traffic stays on the old version until promote, then all of it moves, with no failed request', async () => {
  const blueGreen = 'x-hivemind:\n  strategy: blue-green';
  await deploy(service('bg', 2, blueGreen));
  await servingInstances('bg', 2, 1);
  await deploy(service('bg', 2, blueGreen, '2'));
  await servingInstances('bg', 2, 2);
  await eventually('awaiting promotion', async () => (await call('GET', '/v1/apps/default/bg')).body.rollout?.state === 'awaiting-promotion');
  const before = await askMany('bg.default.hivemind', 40);
  assert.ok(before.every((answer) => answer.status === 200 && answer.body.version === 1), 'green waits for promote');
  const load = loadUntil('bg.default.hivemind');
  const promoted = await call('POST', '/v1/apps/default/bg/promote');
  assert.is(promoted.status, 200, JSON.stringify(promoted.body));
  const after = await askMany('bg.default.hivemind', 40);
  assert.ok(after.every((answer) => answer.status === 200 && answer.body.version === 2), 'all traffic on version 2 once the promote is applied');
  await servingInstances('bg', 2);
  const { total, failed } = await load.stop();
  assert.equal(failed, [], `${failed.length} of ${total} requests failed`);
});

test('an A/B rule on a blue-green update: requests with the header go to the new version, the others stay on the old; promote moves all', async () => {
  const withRule = 'x-hivemind:\n  strategy: blue-green\n  proxy: { ab: "header:x-beta=1" }';
  await deploy(service('ab', 2, withRule));
  await servingInstances('ab', 2, 1);
  await deploy(service('ab', 2, withRule, '2'));
  await servingInstances('ab', 2, 2);
  await eventually('awaiting promotion', async () => (await call('GET', '/v1/apps/default/ab')).body.rollout?.state === 'awaiting-promotion');
  const beta = await Promise.all(Array.from({ length: 20 }, () => ask('ab.default.hivemind', '/', { 'x-beta': '1' })));
  assert.equal([...count(beta, (answer) => answer.body.version)], [[2, 20]], 'the rule sends x-beta: 1 to version 2');
  const others = await Promise.all([...Array.from({ length: 10 }, () => ask('ab.default.hivemind')), ...Array.from({ length: 10 }, () => ask('ab.default.hivemind', '/', { 'x-beta': '0' }))]);
  assert.equal([...count(others, (answer) => answer.body.version)], [[1, 20]], 'everyone else stays on version 1');
  const promoted = await call('POST', '/v1/apps/default/ab/promote');
  assert.is(promoted.status, 200, JSON.stringify(promoted.body));
  const after = await askMany('ab.default.hivemind', 20);
  assert.ok(after.every((answer) => answer.status === 200 && answer.body.version === 2), 'all traffic on version 2 once promoted');
});

test('HTTP/2 with prior knowledge on the same port: streams spread over the instances, bodies pass both ways, HTTP/1.1 still answers', async () => {
  const session = http2.connect(`http://127.0.0.1:${proxyPort}`);
  session.on('error', () => {});
  const exchange = (headers: http2.OutgoingHttpHeaders, body?: string): Promise<{ status: number; body: any; error?: string }> =>
    new Promise((resolve, reject) => {
      const stream = session.request(headers, { endStream: body === undefined });
      let text = '';
      let status = 0;
      let error: string | undefined;
      stream.on('response', (head) => {
        status = Number(head[':status']);
        error = head['x-hivemind-proxy-error'] as string | undefined;
      });
      stream.setEncoding('utf8');
      stream.on('data', (chunk: string) => (text += chunk));
      stream.on('end', () => resolve({ status, body: text.startsWith('{') ? JSON.parse(text) : text, ...(error === undefined ? {} : { error }) }));
      stream.on('error', reject);
      if (body !== undefined) stream.end(body);
    });
  try {
    const answers = await Promise.all(Array.from({ length: 12 }, () => exchange({ ':path': '/', ':authority': 'web.default.hivemind' })));
    assert.ok(answers.every((answer) => answer.status === 200), JSON.stringify(answers.find((answer) => answer.status !== 200)));
    assert.equal([...count(answers, (answer) => answer.body.instance).values()], [4, 4, 4], '12 streams of one connection, round-robin over 3 instances');
    assert.is(answers[0]!.body.headers.host, 'web.default.hivemind', ':authority becomes the Host');
    assert.is(answers[0]!.body.headers['x-forwarded-host'], 'web.default.hivemind');
    assert.ok(Object.keys(answers[0]!.body.headers).every((name) => !name.startsWith(':')), 'no pseudo-header reaches the backend');
    const posted = await exchange({ ':method': 'POST', ':path': '/echo', ':authority': 'web.default.hivemind', cookie: ['a=1', 'b=2'] }, 'a body over HTTP/2');
    assert.is(posted.status, 200);
    assert.is(posted.body.received, 'a body over HTTP/2');
    assert.is(posted.body.headers.cookie, 'a=1; b=2', 'HTTP/2 cookie fields are joined into one header');
    const unknown = await exchange({ ':path': '/', ':authority': 'nothing.default.hivemind' });
    assert.is(unknown.status, 404);
    assert.is(unknown.error, 'NO_ROUTE');
  } finally {
    session.close();
  }
  assert.is((await ask('web.default.hivemind')).status, 200, 'HTTP/1.1 on the same port');
});

test('a WebSocket upgrade passes through both ways', async () => {
  const socket = connect(proxyPort, '127.0.0.1');
  await new Promise((resolve) => socket.once('connect', resolve));
  socket.write('GET /chat HTTP/1.1\r\nhost: web.default.hivemind\r\nconnection: Upgrade\r\nupgrade: websocket\r\nsec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n');
  let received = '';
  socket.on('data', (data) => (received += data.toString()));
  await eventually('the 101', () => received.includes('\r\n\r\n'), 5000, 10);
  assert.match(received, /^HTTP\/1\.1 101 /);
  assert.match(received, /x-instance: default\.web\./);
  received = '';
  socket.write('ping through the tunnel');
  await eventually('the echo', () => received === 'ping through the tunnel', 5000, 10);
  socket.destroy();
});

test.run();
