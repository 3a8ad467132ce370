/**
 * `npm run bench:api`: what one HTTP API request costs on a one-node agent,
 * for one build or several side by side (an A/B of a change to the API).
 *
 * Each build runs a real agent (`node ROOT/bin/hivemind.js agent`, plain HTTP
 * on loopback, a fresh data directory); one client sends each workload's
 * requests one at a time over a kept-alive connection. A workload prints the
 * client's latency (p50, p99) and the node's own time per request, read from
 * its `hivemind_http_request_duration_seconds` histogram (sum / count over the
 * workload: from the request's arrival to its answer, without the client or
 * the network). Builds alternate within each round (A B, then B A) so load
 * that drifts over the run falls on both.
 *
 *   node dist/bench/api.js                               # this build
 *   node dist/bench/api.js --builds /tmp/base,.          # an older build (its dist built) against this one
 *   node dist/bench/api.js --requests 2000 --rounds 5    # more of each
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { Pool } from 'undici';
import { describeMachine } from './report.js';
import { median, quantile } from './stats.js';

const READY_MS_MAX = 60_000;
const STOP_MS_MAX = 10_000;
const WARM_UP_REQUESTS = 300;

/** One kind of request. `route` is the metrics label the server files it under. */
interface Workload {
  name: string;
  method: 'GET' | 'PUT';
  path: string;
  route: string;
  body?: string;
}

const WORKLOADS: readonly Workload[] = [
  { name: 'GET /v1/status?stale (no read barrier)', method: 'GET', path: '/v1/status?stale=true', route: '/v1/status' },
  { name: 'GET /v1/status (read barrier)', method: 'GET', path: '/v1/status', route: '/v1/status' },
  { name: 'GET /v1/apps/:tenant/:name (404)', method: 'GET', path: '/v1/apps/default/missing?stale=true', route: '/v1/apps/:tenant/:name' },
  { name: 'GET /v1/kv/*key', method: 'GET', path: '/v1/kv/bench/a/key?stale=true', route: '/v1/kv/*key' },
  { name: 'PUT /v1/kv/*key (a write: fsync)', method: 'PUT', path: '/v1/kv/bench/a/key', route: '/v1/kv/*key', body: JSON.stringify({ value: 'v' }) },
];

interface Figures {
  build: string;
  workload: string;
  p50Us: number;
  p99Us: number;
  serverMeanUs: number;
}

async function freePort(kind: 'tcp' | 'udp'): Promise<number> {
  if (kind === 'udp') {
    return new Promise((done, fail) => {
      const socket = createSocket('udp4');
      socket.on('error', fail);
      socket.bind(0, '127.0.0.1', () => {
        const { port } = socket.address();
        socket.close(() => done(port));
      });
    });
  }
  return new Promise((done, fail) => {
    const server = createServer();
    server.on('error', fail);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      if (address === null || typeof address === 'string') return fail(new Error('no port'));
      server.close(() => done(address.port));
    });
  });
}

/** A one-node agent of the build at `root`, serving; `stop` ends it and removes its data. */
async function startAgent(root: string): Promise<{ address: string; token: string; stop(): Promise<void> }> {
  const dataDir = mkdtempSync(join(tmpdir(), 'hivemind-bench-api-'));
  const apiPort = await freePort('tcp');
  const args = [
    join(root, 'bin/hivemind.js'), 'agent', '--name', 'n1', '--data-dir', dataDir, '--bind', '127.0.0.1',
    '--api-port', String(apiPort), '--peer-port', String(await freePort('tcp')), '--proxy-port', String(await freePort('tcp')),
    '--gossip-port', String(await freePort('udp')), '--dns-port', String(await freePort('udp')), '--insecure-api', 'on',
  ];
  const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('HIVEMIND_')));
  const child: ChildProcess = spawn(process.execPath, args, { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout?.setEncoding('utf8').on('data', (text: string) => (output += text));
  child.stderr?.setEncoding('utf8').on('data', (text: string) => (output += text));
  const exited = new Promise<void>((done) => child.on('exit', () => done()));
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), STOP_MS_MAX);
    await exited;
    clearTimeout(timer);
    rmSync(dataDir, { recursive: true, force: true });
  };
  const address = `http://127.0.0.1:${apiPort}`;
  const deadline = Date.now() + READY_MS_MAX;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) break;
    const token = /^join token: (\S+)$/m.exec(output)?.[1];
    const healthy = await fetch(`${address}/v1/health`).then((response) => response.ok, () => false);
    if (healthy && token !== undefined) return { address, token, stop };
    await new Promise((done) => setTimeout(done, 100));
  }
  await stop();
  throw new Error(`the agent of ${root} did not serve within ${READY_MS_MAX} ms:\n${output}`);
}

/** The node's histogram sum and count for `route`, all methods and statuses. */
async function serverSeconds(pool: Pool, token: string, route: string): Promise<{ sum: number; count: number }> {
  const response = await pool.request({ method: 'GET', path: '/metrics', headers: { authorization: `Bearer ${token}` } });
  const text = await response.body.text();
  let sum = 0;
  let count = 0;
  for (const line of text.split('\n')) {
    if (!line.includes(`route="${route}"`)) continue;
    const value = Number(line.slice(line.lastIndexOf(' ') + 1));
    if (line.startsWith('hivemind_http_request_duration_seconds_sum')) sum += value;
    else if (line.startsWith('hivemind_http_request_duration_seconds_count')) count += value;
  }
  return { sum, count };
}

async function send(pool: Pool, token: string, workload: Workload): Promise<void> {
  const headers: Record<string, string> = { authorization: `Bearer ${token}` };
  if (workload.body !== undefined) headers['content-type'] = 'application/json';
  const response = await pool.request({ method: workload.method, path: workload.path, headers, body: workload.body ?? null });
  await response.body.dump();
  if (response.statusCode !== 200 && response.statusCode !== 404) throw new Error(`${workload.name}: the node answered ${response.statusCode}`);
}

async function measureBuild(root: string, requests: number): Promise<Figures[]> {
  const agent = await startAgent(root);
  const pool = new Pool(agent.address, { connections: 1, pipelining: 1 });
  try {
    // The first write also makes the key the reads find.
    const write = WORKLOADS.find((workload) => workload.method === 'PUT')!;
    await send(pool, agent.token, write);
    for (let position = 0; position < WARM_UP_REQUESTS; position++) await send(pool, agent.token, WORKLOADS[position % WORKLOADS.length]!);
    const figures: Figures[] = [];
    for (const workload of WORKLOADS) {
      const count = workload.method === 'PUT' ? Math.max(50, Math.floor(requests / 10)) : requests;
      const before = await serverSeconds(pool, agent.token, workload.route);
      const latencies: number[] = [];
      for (let position = 0; position < count; position++) {
        const started = performance.now();
        await send(pool, agent.token, workload);
        latencies.push((performance.now() - started) * 1000);
      }
      const after = await serverSeconds(pool, agent.token, workload.route);
      latencies.sort((left, right) => left - right);
      figures.push({ build: root, workload: workload.name, p50Us: quantile(latencies, 0.5), p99Us: quantile(latencies, 0.99), serverMeanUs: ((after.sum - before.sum) / Math.max(1, after.count - before.count)) * 1e6 });
    }
    return figures;
  } finally {
    await pool.close();
    await agent.stop();
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { builds: { type: 'string', default: '.' }, requests: { type: 'string', default: '1000' }, rounds: { type: 'string', default: '3' } } });
  const builds = values.builds.split(',').map((root) => resolve(root));
  const requests = Number(values.requests);
  const rounds = Number(values.rounds);
  console.log(JSON.stringify({ bench: 'api', builds, requestsPerRead: requests, rounds, machine: describeMachine(undefined) }, null, 2));
  const all: Figures[] = [];
  for (let round = 0; round < rounds; round++) {
    const order = round % 2 === 0 ? builds : [...builds].reverse();
    for (const root of order) all.push(...(await measureBuild(root, requests)));
  }
  const us = (value: number | undefined): string => (value === undefined ? '-' : value.toFixed(0).padStart(7));
  console.log(`\nmedians over ${rounds} rounds (µs): client p50, client p99, node's mean time per request`);
  for (const workload of WORKLOADS) {
    console.log(`\n${workload.name}`);
    for (const root of builds) {
      const mine = all.filter((figure) => figure.build === root && figure.workload === workload.name);
      console.log(`  ${root.padEnd(28)} p50 ${us(median(mine.map((figure) => figure.p50Us)))}  p99 ${us(median(mine.map((figure) => figure.p99Us)))}  node ${us(median(mine.map((figure) => figure.serverMeanUs)))}`);
    }
  }
}

await main();
