// The proxy's worker mode with real worker processes (node:cluster; this
// test process is the primary, as the agent is) in front of real HTTP
// servers on loopback: the workers share one port; a change of the records
// (the traffic moves from version 1 to version 2) is in force on every
// worker once whenInForce resolves: every request after it, on connections
// opened before the change to each worker, reaches version 2; a worker that
// is killed is replaced, and the new one routes by the latest records before
// it takes a connection; metrics are merged over the workers.
import { createServer, type Server } from 'node:http';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Agent, request } from 'undici';
import type { App, Instance, NodeRecord } from '../../state/types.js';
import { eventually } from '../../agent/test/harness.js';
import { ProxyWorkers } from '../workers.js';

const WORKERS = 2;
const CONNECTIONS = 8;
const directory = mkdtempSync(join(tmpdir(), 'hivemind-proxy-workers-'));
const logged: string[] = [];

function backend(name: string): Promise<{ server: Server; port: number }> {
  const server = createServer((_request, response) => response.end(name));
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, port: (server.address() as { port: number }).port })));
}

const NODE = { id: 'n1', status: 'up', addresses: { api: '127.0.0.1:1', peer: '127.0.0.1:2', gossip: '127.0.0.1:3' } } as NodeRecord;

function records(version: number, port: number): { apps: App[]; instances: Instance[]; nodes: NodeRecord[] } {
  const app = { tenant: 'acme', name: 'web', version, replicas: 1, versions: [], createdIndex: 1, updatedIndex: 1 } as App;
  const instance = {
    id: `acme.web.0.${version}`,
    tenant: 'acme',
    app: 'web',
    slot: 0,
    version,
    node: 'n1',
    desired: 'running',
    status: { state: 'running', reportedAt: 0, updatedIndex: 1, endpoint: { address: '127.0.0.1', ports: [{ target: 80, port, protocol: 'tcp' }] } },
  } as Instance;
  return { apps: [app], instances: [instance], nodes: [NODE] };
}

/** One kept-alive connection per client, so each stays with the worker that accepted it. */
function clients(count: number): Agent[] {
  return Array.from({ length: count }, () => new Agent({ connections: 1, pipelining: 1 }));
}

async function ask(client: Agent, port: number): Promise<string> {
  const response = await request(`http://127.0.0.1:${port}/`, { dispatcher: client, headers: { host: 'web.acme.hivemind' } });
  return `${response.statusCode} ${await response.body.text()}`;
}

test('a change is in force on every worker once whenInForce resolves; a replaced worker starts from the latest records', async () => {
  const blue = await backend('blue');
  const green = await backend('green');
  let state = { ...records(1, blue.port), appliedIndex: 10 };
  const workers = new ProxyWorkers({ count: WORKERS, host: '127.0.0.1', port: 0, read: () => state, accessLogPath: join(directory, 'access.log'), log: (line) => logged.push(line) });
  const open = clients(CONNECTIONS);
  try {
    const port = await workers.start();
    assert.is(workers.listening(), WORKERS);
    assert.is(workers.inForce(), 10, 'every worker acknowledged the records it started with');
    // node:cluster hands the connections to the workers in turn: each holds CONNECTIONS / WORKERS of them.
    for (const client of open) assert.is(await ask(client, port), '200 blue');

    state = { ...records(2, green.port), appliedIndex: 11 };
    assert.ok(workers.publish());
    assert.not.ok(workers.publish(), 'the same index is not sent twice');
    await workers.whenInForce(11);
    assert.ok(workers.inForce() >= 11);
    for (let round = 0; round < 3; round++) {
      const answers = await Promise.all(open.map((client) => ask(client, port)));
      assert.equal(answers, Array(CONNECTIONS).fill('200 green'), 'every connection, on either worker, reaches version 2');
    }

    const pid = Object.values((await import('node:cluster')).default.workers ?? {})[0]!.process.pid!;
    process.kill(pid, 'SIGKILL');
    state = { ...records(1, blue.port), appliedIndex: 12 };
    workers.publish();
    await workers.whenInForce(12);
    await eventually('a worker in place of the killed one', () => workers.listening() === WORKERS);
    assert.ok(workers.inForce() >= 12, 'the new worker acknowledged the latest records before it listened');
    const fresh = clients(CONNECTIONS);
    try {
      const answers = await Promise.all(fresh.map((client) => ask(client, port)));
      assert.equal(answers, Array(CONNECTIONS).fill('200 blue'), 'new connections, the new worker among them, route by the latest records');
    } finally {
      await Promise.all(fresh.map((client) => client.close()));
    }
    assert.ok(logged.some((line) => /worker \d+ exited \(SIGKILL\)/.test(line)), logged.join('\n'));

    const merged = await (await workers.metrics()).getMetricsAsJSON();
    const requests = merged.find((metric) => metric.name === 'hivemind_proxy_requests_total')!;
    const total = requests.values.reduce((sum, value) => sum + value.value, 0);
    // The killed worker's counts are gone with it; at least the fresh round and the surviving worker's share remain.
    assert.ok(total >= CONNECTIONS, `merged requests_total ${total}`);
  } finally {
    await Promise.all(open.map((client) => client.close()));
    await workers.stop();
    blue.server.close();
    green.server.close();
  }
  const lines = readFileSync(join(directory, 'access.log'), 'utf8').trim().split('\n');
  // The surviving worker's lines (half of the first four rounds) and the last round's at least; the killed one's may be cut short.
  assert.ok(lines.length >= CONNECTIONS * 3, `${lines.length} access log lines`);
  assert.ok(lines.every((line) => / "GET web\.acme\.hivemind \/" 200 /.test(line)), 'whole lines from every worker, none torn');
});

test.after(() => rmSync(directory, { recursive: true, force: true }));

test.run();
