/**
 * `npm run bench:proxy`: requests per second and latency through Hivemind's
 * proxy against haproxy, both in front of the same nginx backends, driven by
 * wrk (Debian packages `wrk haproxy nginx-light`), in the same run, one after
 * the other, on loopback.
 *
 * Hivemind's side is the component's worker mode (`src/proxy/workers.ts`)
 * fed with a state that names the nginx backends: `--workers` processes
 * (node:cluster, one listen socket), each a `ProxyServing` (engine, server,
 * metrics, access log) holding the route table the feed sent it: one app
 * `web.bench.hivemind` of `--backends` instances, round-robin. No Raft or
 * agent around it, so the figure is the proxy's. After its run, a new
 * table is published and the time until every worker acknowledged it is
 * printed (the feed's latency).
 * haproxy gets the same backends (`balance roundrobin`, keep-alive to the
 * backends) with `nbthread` = `--workers`: the same number of cores. nginx
 * (one process, `--backends` ports) answers a 13-byte body from memory
 * (`return 200`). A row "nginx direct" is wrk against one backend without a
 * proxy: the ceiling of this machine.
 *
 * Each side gets a 2 s warm-up run, then one measured run; wrk's `--latency`
 * gives the p99. The CPU each proxy used during its run is read from /proc,
 * in % of one core, in microseconds per request, and the kernel's share of it: on a machine where
 * wrk, nginx and the proxy share the cores, CPU per request is the fair
 * comparison.
 *
 * Flags: --seconds 10  --connections 64  --threads 1 (wrk's)  --workers 1  --backends 2
 *        --access-log on|off  --json (last line: one JSON object)
 *        --worker-node-args "--cpu-prof --cpu-prof-dir=/tmp/prof" (Node flags for the proxy workers).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import cluster from 'node:cluster';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { get } from 'node:http';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleepFor } from 'node:timers/promises';
import type { DiscoveryInput } from '../src/discovery/endpoints.js';
import { ProxyWorkers } from '../src/proxy/workers.js';
import type { App, Instance } from '../src/state/types.js';
import { readFileSync } from 'node:fs';
import { cpuTimeMs, freePorts, killAndWait } from './processes.js';

const TENANT = 'bench';
const APP = 'web';
const HOST = `${APP}.${TENANT}.hivemind`;
const BODY = 'hello, proxy\n';

function flag(name: string, fallback: string): string {
  const index = process.argv.indexOf(`--${name}`);
  return index >= 0 && process.argv[index + 1] !== undefined ? process.argv[index + 1]! : fallback;
}

/** The replica's records as the proxy would read them: one app whose instances are the nginx ports. */
function stateNaming(backendPorts: readonly number[]): DiscoveryInput {
  const apps: App[] = [{ tenant: TENANT, name: APP, version: 1, replicas: backendPorts.length, versions: [], createdIndex: 1, updatedIndex: 1 }];
  const instances: Instance[] = backendPorts.map((port, slot) => ({
    id: `${TENANT}.${APP}.${slot}.${slot + 1}`,
    tenant: TENANT,
    app: APP,
    version: 1,
    slot,
    node: 'n1',
    desired: 'running',
    status: { state: 'running', reportedAt: 0, updatedIndex: 1, endpoint: { address: '127.0.0.1', ports: [{ target: 80, port, protocol: 'tcp' }] } },
    createdIndex: 1,
  }));
  return { apps, instances, nodes: [{ id: 'n1', addresses: { api: '127.0.0.1:7070', peer: '127.0.0.1:7071', gossip: '127.0.0.1:7072' }, labels: {}, resources: {}, status: 'up', role: 'voter', joinedIndex: 1, lastSeenAt: 0, updatedIndex: 1 }] };
}

interface Figures {
  requestsPerSecond: number;
  p50LatencyMs: number;
  p99LatencyMs: number;
  /** Non-2xx answers and socket errors. */
  errors: number;
  /** CPU the proxy used during the measured run, in % of one core (NaN for nginx direct). */
  proxyCpuPercent: number;
  /** CPU the proxy used per request answered, in microseconds (NaN for nginx direct). */
  proxyCpuPerRequestUs: number;
  /** The kernel's part of that CPU (system time: the socket calls, loopback TCP included), in %. */
  proxyKernelSharePercent: number;
}

/** A process's system (kernel) CPU time in milliseconds, from /proc (0 when it is gone). */
function systemTimeMs(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[12]) * 1000) / 100;
  } catch {
    return 0;
  }
}

function run(command: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const chunks: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => chunks.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => chunks.push(chunk));
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve(Buffer.concat(chunks).toString()) : reject(new Error(`${command} exited with ${code}: ${Buffer.concat(chunks).toString().slice(-500)}`))));
  });
}

/** wrk's latency text (`812.00us`, `1.20ms`, `2.00s`) in milliseconds. */
function milliseconds(text: string | undefined): number {
  const match = /^([\d.]+)(us|ms|s|m)$/.exec(text ?? '');
  if (match === null) return NaN;
  const scale = { us: 0.001, ms: 1, s: 1000, m: 60_000 }[match[2] as 'us' | 'ms' | 's' | 'm'];
  return Number(match[1]) * scale;
}

async function wrk(port: number, pids: readonly number[], options: { seconds: number; connections: number; threads: number }): Promise<Figures> {
  const args = (seconds: number): string[] => ['-t', String(options.threads), '-c', String(options.connections), '-d', `${seconds}s`, '--latency', '-H', `Host: ${HOST}`, `http://127.0.0.1:${port}/`];
  await run('wrk', args(2));
  const cpuBefore = pids.reduce((sum, pid) => sum + cpuTimeMs(pid), 0);
  const systemBefore = pids.reduce((sum, pid) => sum + systemTimeMs(pid), 0);
  const startedMs = performance.now();
  const out = await run('wrk', args(options.seconds));
  const elapsedMs = performance.now() - startedMs;
  const cpuAfter = pids.reduce((sum, pid) => sum + cpuTimeMs(pid), 0);
  const systemAfter = pids.reduce((sum, pid) => sum + systemTimeMs(pid), 0);
  const socketErrors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const requests = Number(/(\d+) requests in /.exec(out)?.[1] ?? NaN);
  return {
    requestsPerSecond: Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? NaN),
    p50LatencyMs: milliseconds(/^\s+50%\s+(\S+)$/m.exec(out)?.[1]),
    p99LatencyMs: milliseconds(/^\s+99%\s+(\S+)$/m.exec(out)?.[1]),
    errors: Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0) + (socketErrors === null ? 0 : socketErrors.slice(1).reduce((sum, value) => sum + Number(value), 0)),
    proxyCpuPercent: pids.length === 0 ? NaN : ((cpuAfter - cpuBefore) / elapsedMs) * 100,
    proxyCpuPerRequestUs: pids.length === 0 ? NaN : ((cpuAfter - cpuBefore) * 1000) / requests,
    proxyKernelSharePercent: pids.length === 0 ? NaN : ((systemAfter - systemBefore) / (cpuAfter - cpuBefore)) * 100,
  };
}

function nginxConfig(folder: string, ports: readonly number[]): string {
  const servers = ports.map((port) => `  server { listen 127.0.0.1:${port} reuseport; access_log off; location / { return 200 ${JSON.stringify(BODY.trimEnd() + '\n')}; } }`).join('\n');
  return `daemon off;\nmaster_process off;\nworker_processes 1;\npid ${join(folder, 'nginx.pid')};\nerror_log ${join(folder, 'nginx-error.log')} warn;\nevents { worker_connections 4096; }\nhttp {\n  keepalive_requests 1000000;\n  client_body_temp_path ${folder};\n  proxy_temp_path ${folder};\n  fastcgi_temp_path ${folder};\n  uwsgi_temp_path ${folder};\n  scgi_temp_path ${folder};\n${servers}\n}\n`;
}

function haproxyConfig(port: number, backendPorts: readonly number[], threads: number): string {
  const servers = backendPorts.map((backend, index) => `  server b${index} 127.0.0.1:${backend}`).join('\n');
  return `global\n  nbthread ${threads}\n  maxconn 4096\ndefaults\n  mode http\n  timeout connect 2s\n  timeout client 30s\n  timeout server 30s\n  http-reuse always\nfrontend web\n  bind 127.0.0.1:${port}\n  default_backend nginx\nbackend nginx\n  balance roundrobin\n${servers}\n`;
}

async function waitForHttp(port: number): Promise<void> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const answered = await new Promise<boolean>((resolve) => {
      get({ host: '127.0.0.1', port, path: '/', headers: { host: HOST } }, (response) => {
        response.resume();
        resolve(response.statusCode === 200);
      }).once('error', () => resolve(false));
    });
    if (answered) return;
    await sleepFor(50);
  }
  throw new Error(`nothing answers 200 on 127.0.0.1:${port}`);
}

async function main(): Promise<void> {
  const options = { seconds: Number(flag('seconds', '10')), connections: Number(flag('connections', '64')), threads: Number(flag('threads', '1')), workers: Number(flag('workers', '1')), backends: Number(flag('backends', '2')), accessLog: flag('access-log', 'on') };
  const json = process.argv.includes('--json');
  const folder = await mkdtemp(join(tmpdir(), 'hivemind-bench-proxy-'));
  const [hivemindPort, haproxyPort, ...backendPorts] = await freePorts(2 + options.backends);
  console.log(`settings: wrk ${options.seconds} s (after a 2 s warm-up), ${options.connections} connections, ${options.threads} thread(s), Host ${HOST}; ${options.backends} nginx backends (one nginx worker, a ${BODY.length}-byte body); proxies on ${options.workers} core(s): hivemind ${options.workers} worker process(es) (the proxy component's worker mode, src/proxy/workers.ts, fed a state naming the nginx backends; metrics, access log ${options.accessLog}), haproxy nbthread ${options.workers}; loopback only`);
  console.log(`machine: ${cpus().length} cpus (${cpus()[0]?.model ?? 'unknown'}), ${(totalmem() / 2 ** 30).toFixed(1)} GiB, node ${process.version}, load average ${loadavg()[0]!.toFixed(2)} at the start`);
  await writeFile(join(folder, 'nginx.conf'), nginxConfig(folder, backendPorts));
  await writeFile(join(folder, 'haproxy.cfg'), haproxyConfig(haproxyPort!, backendPorts, options.workers));
  const children: ChildProcess[] = [];
  const workerNodeArgs = flag('worker-node-args', '');
  let appliedIndex = 1;
  const input = stateNaming(backendPorts);
  const workers = new ProxyWorkers({
    count: options.workers,
    host: '127.0.0.1',
    port: hivemindPort!,
    read: () => ({ ...input, appliedIndex }),
    accessLogPath: options.accessLog === 'off' ? undefined : join(folder, 'access.log'),
    log: (line) => console.error(`hivemind proxy: ${line}`),
    execArgv: [...process.execArgv, ...(workerNodeArgs === '' ? [] : workerNodeArgs.split(' '))],
  });
  try {
    children.push(spawn('nginx', ['-c', join(folder, 'nginx.conf'), '-p', folder, '-e', join(folder, 'nginx-error.log')], { stdio: 'ignore' }));
    const haproxy = spawn('haproxy', ['-f', join(folder, 'haproxy.cfg'), '-db'], { stdio: 'ignore' });
    children.push(haproxy);
    await workers.start();
    await Promise.all([...backendPorts, haproxyPort!, hivemindPort!].map(waitForHttp));
    const direct = await wrk(backendPorts[0]!, [], options);
    // The primary (this process) accepts connections for the workers (node:cluster's round-robin): its CPU counts too.
    const hivemind = await wrk(hivemindPort!, [process.pid, ...Object.values(cluster.workers ?? {}).map((entry) => entry!.process.pid!)], options);
    // The feed: a new table (the same backends at a later index) until every worker routes by it.
    const feedMs: number[] = [];
    for (let round = 0; round < 20; round++) {
      appliedIndex++;
      const publishedMs = performance.now();
      workers.publish();
      await workers.whenInForce(appliedIndex);
      feedMs.push(performance.now() - publishedMs);
    }
    feedMs.sort((left, right) => left - right);
    const reference = await wrk(haproxyPort!, [haproxy.pid!], options);
    const row = (name: string, figures: Figures): string =>
      `${name.padEnd(14)} ${figures.requestsPerSecond.toFixed(0).padStart(10)} ${figures.p50LatencyMs.toFixed(2).padStart(8)} ${figures.p99LatencyMs.toFixed(2).padStart(8)} ${String(figures.errors).padStart(7)} ${(Number.isNaN(figures.proxyCpuPercent) ? '' : figures.proxyCpuPercent.toFixed(0)).padStart(12)} ${(Number.isNaN(figures.proxyCpuPerRequestUs) ? '' : figures.proxyCpuPerRequestUs.toFixed(1)).padStart(16)}`;
    console.log(`${'through'.padEnd(14)} ${'requests/s'.padStart(10)} ${'p50 ms'.padStart(8)} ${'p99 ms'.padStart(8)} ${'errors'.padStart(7)} ${'proxy CPU %'.padStart(12)} ${'proxy CPU us/req'.padStart(16)}`);
    console.log(row('nginx direct', direct));
    console.log(row('hivemind', hivemind));
    console.log(row('haproxy', reference));
    console.log(`ratio: ${(hivemind.requestsPerSecond / reference.requestsPerSecond).toFixed(2)}x haproxy's requests per second (target: at least 1.0x), p99 ${(hivemind.p99LatencyMs / reference.p99LatencyMs).toFixed(2)}x haproxy's (target: at most 1.2x); CPU per request ${(hivemind.proxyCpuPerRequestUs / reference.proxyCpuPerRequestUs).toFixed(2)}x haproxy's (kernel time: hivemind ${hivemind.proxyKernelSharePercent.toFixed(0)}%, haproxy ${reference.proxyKernelSharePercent.toFixed(0)}% of it); load average ${loadavg()[0]!.toFixed(2)} at the end`);
    const feed = { p50Ms: feedMs[Math.floor(feedMs.length / 2)]!, maxMs: feedMs.at(-1)! };
    console.log(`table feed: a new table in force on all ${options.workers} worker(s) ${feed.p50Ms.toFixed(2)} ms after its publication (median of ${feedMs.length}; max ${feed.maxMs.toFixed(2)} ms)`);
    if (json) console.log(JSON.stringify({ benchmark: 'proxy', settings: options, loadAverage: loadavg()[0], nginxDirect: direct, hivemind, haproxy: reference, tableFeed: feed }));
  } finally {
    await workers.stop();
    await Promise.all(children.map(killAndWait));
    await rm(folder, { recursive: true, force: true });
  }
}

void main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
