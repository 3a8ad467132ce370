/**
 * `npm run bench:dns`: queries per second and latency of Hivemind's DNS
 * server against dnsmasq serving the same records, both driven by dnsperf
 * (Debian packages `dnsperf dnsmasq`), in the same run, one after the other.
 *
 * Hivemind's side is its real server (`src/dns/server.ts`: the sockets, the
 * query reader, the zone and its kept replies) in this process, reading a
 * directory of APPS apps of INSTANCES serving instances each, as the
 * replica would give it; no Raft or agent around it, so the figure is the
 * server's. dnsmasq gets the same names and addresses as a hosts file
 * (`--addn-hosts`, `--local=/hivemind/` so unknown names there are NXDOMAIN,
 * `--no-resolv`: nothing forwarded). Queries: A for every app name, in turn.
 *
 * Latency: dnsperf's average; p99 from its verbose per-query lines
 * (`-v`), which cost dnsperf some throughput, so the p99 run is a second,
 * rate-limited run (`--p99-rate`, queries per second) on each side.
 *
 * Flags: --seconds 10  --clients 4  --outstanding 100  --p99-rate 20000  --json (last line: one JSON object).
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import type { DiscoveryInput } from '../src/discovery/endpoints.js';
import { DnsServer } from '../src/dns/server.js';
import type { App, Instance } from '../src/state/types.js';
import { freePorts } from './processes.js';

const APPS = 100;
const INSTANCES = 3;
const TENANT = 'bench';

function flag(name: string, fallback: string): string {
  const index = process.argv.indexOf(`--${name}`);
  return index >= 0 && process.argv[index + 1] !== undefined ? process.argv[index + 1]! : fallback;
}

function addressOf(app: number, slot: number): string {
  return `10.88.${app}.${slot + 1}`;
}

/** The records both servers serve. */
function directoryInput(): DiscoveryInput {
  const apps: App[] = [];
  const instances: Instance[] = [];
  for (let app = 0; app < APPS; app++) {
    apps.push({ tenant: TENANT, name: `app${app}`, version: 1, replicas: INSTANCES, versions: [], createdIndex: 1, updatedIndex: 1 });
    for (let slot = 0; slot < INSTANCES; slot++) {
      instances.push({
        id: `${TENANT}.app${app}.${slot}.${slot + 1}`,
        tenant: TENANT,
        app: `app${app}`,
        version: 1,
        slot,
        node: 'n1',
        desired: 'running',
        status: { state: 'running', reportedAt: 0, updatedIndex: 1, endpoint: { address: addressOf(app, slot), ports: [{ target: 80, port: 80, protocol: 'tcp' }] } },
        createdIndex: 1,
      });
    }
  }
  return { apps, instances, nodes: [{ id: 'n1', addresses: { api: '127.0.0.1:7070', peer: '127.0.0.1:7071', gossip: '127.0.0.1:7072' }, labels: {}, resources: {}, status: 'up', role: 'voter', joinedIndex: 1, lastSeenAt: 0, updatedIndex: 1 }] };
}

interface Figures {
  queriesPerSecond: number;
  averageLatencyMs: number;
  p99LatencyMs: number;
  lostQueries: number;
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

async function dnsperf(port: number, queryFile: string, options: { seconds: number; clients: number; outstanding: number; p99Rate: number }): Promise<Figures> {
  const base = ['-s', '127.0.0.1', '-p', String(port), '-d', queryFile, '-l', String(options.seconds), '-c', String(options.clients), '-q', String(options.outstanding)];
  const out = await run('dnsperf', base);
  const queriesPerSecond = Number(/Queries per second:\s+([\d.]+)/.exec(out)?.[1] ?? NaN);
  const averageLatencyMs = Number(/Average Latency \(s\):\s+([\d.]+)/.exec(out)?.[1] ?? NaN) * 1000;
  const lostQueries = Number(/Queries lost:\s+(\d+)/.exec(out)?.[1] ?? NaN);
  const verbose = await run('dnsperf', [...base.slice(0, -4), '-l', String(Math.min(options.seconds, 5)), '-Q', String(options.p99Rate), '-v']);
  const latencies = [...verbose.matchAll(/^> \S+ \S+ \S+ ([\d.]+)$/gm)].map((match) => Number(match[1]) * 1000).sort((left, right) => left - right);
  const p99LatencyMs = latencies.length === 0 ? NaN : latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * 0.99))]!;
  return { queriesPerSecond, averageLatencyMs, p99LatencyMs, lostQueries };
}

async function main(): Promise<void> {
  const options = { seconds: Number(flag('seconds', '10')), clients: Number(flag('clients', '4')), outstanding: Number(flag('outstanding', '100')), p99Rate: Number(flag('p99-rate', '20000')) };
  const json = process.argv.includes('--json');
  const folder = await mkdtemp(join(tmpdir(), 'hivemind-bench-dns-'));
  const [hivemindPort, dnsmasqPort] = await freePorts(2);
  const queryFile = join(folder, 'queries.txt');
  await writeFile(queryFile, Array.from({ length: APPS }, (_, app) => `app${app}.${TENANT}.hivemind A`).join('\n') + '\n');
  const hostsFile = join(folder, 'hosts');
  await writeFile(hostsFile, Array.from({ length: APPS }, (_, app) => Array.from({ length: INSTANCES }, (_, slot) => `${addressOf(app, slot)} app${app}.${TENANT}.hivemind`).join('\n')).join('\n') + '\n');
  console.log(`settings: ${APPS} apps x ${INSTANCES} instances (A queries for the app names, in turn); dnsperf ${options.seconds} s, ${options.clients} clients, ${options.outstanding} outstanding; p99 from a ${Math.min(options.seconds, 5)} s run at ${options.p99Rate} q/s`);
  console.log(`machine: ${cpus().length} cpus (${cpus()[0]?.model ?? 'unknown'}), ${(totalmem() / 2 ** 30).toFixed(1)} GiB, node ${process.version}, load average ${loadavg()[0]!.toFixed(2)} at the start`);
  const input = directoryInput();
  const server = new DnsServer({ host: '127.0.0.1', port: hivemindPort!, upstreams: [], read: () => input, log: (line) => console.log(`hivemind dns: ${line}`) });
  await server.listen();
  const dnsmasq = spawn('dnsmasq', ['--keep-in-foreground', '--no-resolv', '--no-hosts', `--addn-hosts=${hostsFile}`, '--local=/hivemind/', `--port=${dnsmasqPort}`, '--listen-address=127.0.0.1', '--bind-interfaces', '--user=root', '--pid-file=', '--cache-size=1000', '--log-facility=-'], { stdio: 'ignore' });
  try {
    await new Promise((resolve) => setTimeout(resolve, 500));
    const hivemind = await dnsperf(hivemindPort!, queryFile, options);
    const reference = await dnsperf(dnsmasqPort!, queryFile, options);
    const row = (name: string, figures: Figures): string =>
      `${name.padEnd(10)} ${figures.queriesPerSecond.toFixed(0).padStart(10)} ${figures.averageLatencyMs.toFixed(3).padStart(10)} ${figures.p99LatencyMs.toFixed(3).padStart(10)} ${String(figures.lostQueries).padStart(8)}`;
    console.log(`${'server'.padEnd(10)} ${'queries/s'.padStart(10)} ${'avg ms'.padStart(10)} ${'p99 ms'.padStart(10)} ${'lost'.padStart(8)}`);
    console.log(row('hivemind', hivemind));
    console.log(row('dnsmasq', reference));
    console.log(`ratio: ${(hivemind.queriesPerSecond / reference.queriesPerSecond).toFixed(2)}x dnsmasq's queries per second (target: at least 1.0x)`);
    if (json) console.log(JSON.stringify({ benchmark: 'dns', settings: { ...options, apps: APPS, instances: INSTANCES }, loadAverage: loadavg()[0], hivemind, dnsmasq: reference }));
  } finally {
    dnsmasq.kill();
    await server.close();
    await rm(folder, { recursive: true, force: true });
  }
}

void main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
