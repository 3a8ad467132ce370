/**
 * `npm run bench:footprint [-- --idle-seconds 20 --apps 1000 --instances 10000 --json]`
 *
 * What a Hivemind agent costs when it does nothing, and what holding apps
 * costs it, measured on real agent processes (`dist/src/agent/main.js`, the
 * way src/agent/test/harness.ts starts them, with the `node` flags of
 * bin/hivemind.js's first line, as `hivemind agent` runs) from /proc, each
 * figure beside its target from issue 15 (a table at the end, `targets` in
 * the JSON) and the machine's load average:
 *
 * - Start to serving: from spawning `agent` to the first `200` of
 *   `GET /v1/health`, on a fresh data directory (the node makes its keys, CA
 *   and Raft log) and again on the same directory after a restart.
 * - Idle one-node agent: RSS (VmRSS, last and largest sample, once a second),
 *   CPU (utime + stime from /proc/PID/stat over the window, in % of one
 *   core) and wake-ups (context switches of all its threads a second) after a
 *   settling pause; then, after the window, its V8 heap from one scrape of
 *   its `/metrics` (the first scrape registers Node's own metrics, so it
 *   comes after the window it would disturb).
 * - A 3-node cluster holding N process apps with M instances in all: each
 *   agent's RSS and CPU empty, then loaded. By default no instance runs: every
 *   app carries a placement constraint no node satisfies, so the replicated
 *   state holds the N app records (with their spec) and the M instance
 *   records, the scheduler sees them all and marks them unplaceable, and no
 *   process is started. This measures the state's memory cost, not the
 *   executor's per-instance supervision. `--place` drops the constraint: the
 *   scheduler places the instances and every one runs `sleep 3600` as a
 *   supervised process (keep M small: these are real processes).
 * - etcd (when `etcd` is on PATH; Debian `etcd-server`): one member's start
 *   to serving (`/health` 200) and its idle RSS and CPU over the same window.
 *
 * Run it alone (flock): other processes' CPU shows in the figures.
 *
 * For trying a lever without changing the build: `--node-flags "..."`
 * replaces bin/hivemind.js's flags, `--entry FILE` runs another build of the
 * agent's launcher (a bundle, say) instead of `dist/src/agent/main.js`, and
 * `--single` measures the one-node figures only (no etcd, no cluster).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { contextSwitches, cpuTimeMs, freePorts, Resources, rssBytes, sleep } from './processes.js';
import { TestCluster, type TestNode } from '../src/agent/test/harness.js';

const MIB = 2 ** 20;
const SERVE_TIMEOUT_MS = 30_000;
const HEALTH_POLL_MS = 5;
/** Apps per app file: each file is one atomic replicated command (at most LIMITS.appsPerDeployMax). */
const APPS_PER_FILE = 50;
const CONSTRAINT_NOTHING_SATISFIES = 'node.labels.footprint-bench == never';
/** The targets of issue 15. */
const TARGETS = { idleRssMiBMax: 60, idleCpuPercentMax: 0.5, startMsMax: 1000, loadedRssMiBMax: 150, loadedApps: 1000, loadedInstances: 10_000 };

/**
 * The flags `hivemind` runs `node` with: those on the first line of
 * bin/hivemind.js (`#!/usr/bin/env -S node FLAGS`), so the agents measured
 * here run as `hivemind agent` does.
 */
function agentNodeFlags(): string[] {
  const shebang = readFileSync(new URL('../../bin/hivemind.js', import.meta.url), 'utf8').split('\n', 1)[0]!;
  const match = /^#!\/usr\/bin\/env -S node(.*)$/.exec(shebang);
  if (match === null) throw new Error(`bin/hivemind.js starts with ${JSON.stringify(shebang)}, not "#!/usr/bin/env -S node [flags]"`);
  return match[1]!.trim().split(/\s+/).filter(Boolean);
}

interface Options {
  idleSeconds: number;
  settleSeconds: number;
  apps: number;
  instances: number;
  place: boolean;
  json: boolean;
  /** `node` flags instead of bin/hivemind.js's (undefined: those). */
  nodeFlags: string[] | undefined;
  /** The agent launcher to run instead of dist/src/agent/main.js (undefined: that). */
  entry: string | undefined;
  /** One-node figures only. */
  single: boolean;
}

function parseOptions(argv: string[]): Options {
  const options: Options = { idleSeconds: 20, settleSeconds: 5, apps: TARGETS.loadedApps, instances: TARGETS.loadedInstances, place: false, json: false, nodeFlags: undefined, entry: undefined, single: false };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = (): number => {
      const next = argv[++i];
      if (next === undefined) throw new Error(`${flag} needs a value`);
      return Number(next);
    };
    if (flag === '--help') {
      console.log('usage: node dist/bench/footprint.js [--idle-seconds 20] [--settle-seconds 5] [--apps 1000] [--instances 10000] [--place] [--json] [--node-flags "FLAGS"] [--entry FILE] [--single]');
      process.exit(0);
    }
    if (flag === '--json') options.json = true;
    else if (flag === '--idle-seconds') options.idleSeconds = value();
    else if (flag === '--settle-seconds') options.settleSeconds = value();
    else if (flag === '--apps') options.apps = value();
    else if (flag === '--instances') options.instances = value();
    else if (flag === '--place') options.place = true;
    else if (flag === '--single') options.single = true;
    else if (flag === '--node-flags') options.nodeFlags = (argv[++i] ?? '').split(/\s+/).filter(Boolean);
    else if (flag === '--entry') {
      const entry = argv[++i];
      if (entry === undefined || !existsSync(entry)) throw new Error(`--entry needs an existing file, got ${JSON.stringify(entry)}`);
      options.entry = resolve(entry);
    } else throw new Error(`unknown flag ${flag} (known: --idle-seconds S --settle-seconds S --apps N --instances M --place --json --node-flags "FLAGS" --entry FILE --single)`);
  }
  if (!Number.isInteger(options.idleSeconds) || options.idleSeconds < 1 || options.idleSeconds > 300) throw new Error('--idle-seconds must be in [1, 300]');
  if (!Number.isInteger(options.settleSeconds) || options.settleSeconds < 0 || options.settleSeconds > 120) throw new Error('--settle-seconds must be in [0, 120]');
  if (!Number.isInteger(options.apps) || options.apps < 0 || options.apps > 5000) throw new Error('--apps must be in [0, 5000]');
  if (!Number.isInteger(options.instances) || options.instances < options.apps || options.instances > 50_000) throw new Error('--instances must be in [apps, 50000]: every app has at least one');
  if (options.place && options.instances > 600) throw new Error('--place starts every instance as a real process: keep --instances at most 600');
  return options;
}

/** RSS and CPU of one process over a window. */
interface Usage {
  rssMiB: number;
  rssMiBMax: number;
  /**
   * The process's own pages at the window's end (Private_Clean + Private_Dirty
   * of /proc/PID/smaps_rollup), MiB: RSS less what it shares with other
   * processes, chiefly the `node` binary's text (about 41 MiB, counted in full
   * in every `node` process's RSS).
   */
  privateMiB: number;
  cpuPercent: number;
  /** Context switches of all the process's threads a second over the window: its wake-ups. */
  wakeupsPerSecond: number;
  /** The machine's 1-minute load average at the window's end: CPU figures taken under load read high. */
  loadAverage: number;
}

/** Samples `pids` once a second for `seconds`: last and largest RSS, and CPU over the window. */
async function measure(pids: number[], seconds: number): Promise<Usage[]> {
  const cpuStart = pids.map(cpuTimeMs);
  const switchesStart = pids.map(contextSwitches);
  const wallStartMs = performance.now();
  const rssMax = pids.map(() => 0);
  for (let s = 0; s < seconds; s++) {
    await sleep(1000);
    pids.forEach((pid, i) => (rssMax[i] = Math.max(rssMax[i]!, rssBytes(pid))));
  }
  const wallMs = performance.now() - wallStartMs;
  return pids.map((pid, i) => ({
    rssMiB: rssBytes(pid) / MIB,
    rssMiBMax: rssMax[i]! / MIB,
    privateMiB: privateBytes(pid) / MIB,
    cpuPercent: (100 * (cpuTimeMs(pid) - cpuStart[i]!)) / wallMs,
    wakeupsPerSecond: (1000 * (contextSwitches(pid) - switchesStart[i]!)) / wallMs,
    loadAverage: loadavg()[0]!,
  }));
}

/** Private_Clean + Private_Dirty of `pid` (its own pages, shared with no other process), bytes; NaN once it is gone. */
function privateBytes(pid: number): number {
  try {
    const rollup = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
    const field = (name: string): number => Number(new RegExp(`^${name}:\\s+(\\d+)\\s+kB$`, 'm').exec(rollup)?.[1] ?? Number.NaN) * 1024;
    return field('Private_Clean') + field('Private_Dirty');
  } catch {
    return Number.NaN;
  }
}

async function waitServing(node: TestNode, startedAtMs: number): Promise<number> {
  for (;;) {
    if (!node.running) throw new Error(`${node.name} exited before serving:\n${node.logTail()}`);
    if (performance.now() - startedAtMs > SERVE_TIMEOUT_MS) throw new Error(`${node.name} did not serve within ${SERVE_TIMEOUT_MS} ms:\n${node.logTail()}`);
    const status = await node.request('GET', '/v1/health', undefined, { token: null, timeoutMs: 1000 }).then((answer) => answer.status, () => 0);
    if (status === 200) return performance.now() - startedAtMs;
    await sleep(HEALTH_POLL_MS);
  }
}

/** The node's V8 heap from one scrape of its /metrics (with the join token its data directory holds). */
async function heapOf(node: TestNode): Promise<{ usedMiB: number; externalMiB: number }> {
  const token = readFileSync(join(node.dataDir, 'token'), 'utf8').trim();
  const answer = await node.request('GET', '/metrics', undefined, { token });
  if (answer.status !== 200 || typeof answer.body !== 'string') throw new Error(`GET /metrics of ${node.name}: ${answer.status}`);
  const text = answer.body;
  const gauge = (name: string): number => Number(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text)?.[1] ?? Number.NaN) / MIB;
  return { usedMiB: gauge('hivemind_nodejs_heap_size_used_bytes'), externalMiB: gauge('hivemind_nodejs_external_memory_bytes') };
}

function pidOf(node: TestNode): number {
  const pid = node.process?.pid;
  if (pid === undefined) throw new Error(`${node.name} has no process`);
  return pid;
}

function directoryBytes(path: string): number {
  let bytes = 0;
  for (const name of readdirSync(path)) {
    const entry = join(path, name);
    const stat = statSync(entry, { throwIfNoEntry: false });
    if (stat === undefined) continue;
    bytes += stat.isDirectory() ? directoryBytes(entry) : stat.size;
  }
  return bytes;
}

/** A test cluster whose nodes run as the options say (bin/hivemind.js's flags and main.js by default). */
function newCluster(options: Options): TestCluster {
  const cluster = new TestCluster();
  cluster.nodeFlags = options.nodeFlags ?? agentNodeFlags();
  if (options.entry !== undefined) cluster.entry = options.entry;
  return cluster;
}

interface SingleNodeResult {
  startFreshMs: number;
  startRestartMs: number;
  /**
   * The agent's CPU time (utime + stime) when it first served, ms, fresh and
   * restart: what start-up costs whatever the machine's load (wall time under
   * load is this stretched).
   */
  startCpuFreshMs: number;
  startCpuRestartMs: number;
  idle: Usage;
  /** After the idle window: V8 heap used and Node's external memory, MiB (`hivemind_nodejs_heap_size_used_bytes`, `hivemind_nodejs_external_memory_bytes`; no collection forced). */
  heap: { usedMiB: number; externalMiB: number };
}

async function singleNode(options: Options): Promise<SingleNodeResult> {
  const cluster = newCluster(options);
  try {
    const node = await cluster.add('n1');
    let startedAtMs = performance.now();
    node.start(['agent']);
    const startFreshMs = await waitServing(node, startedAtMs);
    const startCpuFreshMs = cpuTimeMs(pidOf(node));
    await node.stop();
    startedAtMs = performance.now();
    node.start(['agent']);
    const startRestartMs = await waitServing(node, startedAtMs);
    const startCpuRestartMs = cpuTimeMs(pidOf(node));
    process.stderr.write(`bench: one node serves; settling ${options.settleSeconds} s, then ${options.idleSeconds} s idle\n`);
    await sleep(options.settleSeconds * 1000);
    const [idle] = await measure([pidOf(node)], options.idleSeconds);
    const heap = await heapOf(node);
    return { startFreshMs, startRestartMs, startCpuFreshMs, startCpuRestartMs, idle: idle!, heap };
  } finally {
    await cluster.cleanup();
  }
}

/** One app file of process apps `first..first+count-1`, with `replicas` each. */
function appFile(first: number, replicasOf: (index: number) => number, count: number, place: boolean): string {
  const lines = ['services:'];
  for (let i = first; i < first + count; i++) {
    lines.push(`  app-${i}:`, '    command: ["sleep", "3600"]', '    deploy:', `      replicas: ${replicasOf(i)}`);
    if (!place) lines.push('      placement:', `        constraints: ["${CONSTRAINT_NOTHING_SATISFIES}"]`);
  }
  return lines.join('\n') + '\n';
}

interface ClusterResult {
  empty: Usage[];
  loaded: Usage[];
  deploySeconds: number;
  appsStored: number;
  instancesStored: number;
  instancesPlaced: number;
  dataDirMiB: number[];
}

async function threeNodes(options: Options): Promise<ClusterResult> {
  const cluster = newCluster(options);
  try {
    const first = await cluster.bootstrap('n1');
    const nodes = [first, await cluster.join('n2', first), await cluster.join('n3', first)];
    await cluster.leader(nodes);
    process.stderr.write(`bench: 3 nodes serve; settling ${options.settleSeconds} s, then ${options.idleSeconds} s empty\n`);
    await sleep(options.settleSeconds * 1000);
    const empty = await measure(nodes.map(pidOf), options.idleSeconds);

    // M instances over N apps: the first M mod N apps get one more.
    const base = Math.floor(options.instances / Math.max(options.apps, 1));
    const extra = options.instances - base * options.apps;
    const replicasOf = (index: number): number => base + (index < extra ? 1 : 0);
    const deployStartMs = performance.now();
    for (let at = 0; at < options.apps; at += APPS_PER_FILE) {
      const count = Math.min(APPS_PER_FILE, options.apps - at);
      const answer = await first.request('POST', '/v1/deploy', { fileName: `footprint-${at}.yaml`, content: appFile(at, replicasOf, count, options.place) }, { timeoutMs: 60_000 });
      if (answer.status !== 200) throw new Error(`deploy of apps ${at}..${at + count - 1}: ${answer.status} ${JSON.stringify(answer.body).slice(0, 500)}`);
      process.stderr.write(`bench: deployed ${at + count} of ${options.apps} apps\n`);
    }
    const deploySeconds = (performance.now() - deployStartMs) / 1000;
    // Every node has applied everything, and the scheduler has done its part (placed or marked unplaceable).
    const { instancesStored, instancesPlaced, appsStored } = await settled(nodes, options);
    process.stderr.write(`bench: ${appsStored} apps, ${instancesStored} instances stored; settling ${options.settleSeconds} s, then ${options.idleSeconds} s loaded\n`);
    await sleep(options.settleSeconds * 1000);
    const loaded = await measure(nodes.map(pidOf), options.idleSeconds);
    const dataDirMiB = nodes.map((node) => directoryBytes(node.dataDir) / MIB);
    return { empty, loaded, deploySeconds, appsStored, instancesStored, instancesPlaced, dataDirMiB };
  } finally {
    await cluster.cleanup();
  }
}

/** Waits until every node's state holds every instance and the scheduler has placed them or marked them unplaceable. */
async function settled(nodes: TestNode[], options: Options): Promise<{ appsStored: number; instancesStored: number; instancesPlaced: number }> {
  const deadlineMs = performance.now() + 300_000;
  for (;;) {
    const statuses = await Promise.all(nodes.map((node) => node.status()));
    const instances = (await nodes[0]!.request('GET', '/v1/instances', undefined, { timeoutMs: 60_000 })).body.instances as { node?: string }[];
    const apps = (await nodes[0]!.request('GET', '/v1/apps', undefined, { timeoutMs: 60_000 })).body.apps as { unplaceable?: unknown }[];
    const placed = instances.filter((instance) => instance.node !== undefined).length;
    const sameIndex = statuses.every((status) => status.index === statuses[0].index);
    const scheduled = options.place ? placed === options.instances : apps.filter((app) => app.unplaceable !== undefined).length === options.apps;
    if (sameIndex && instances.length === options.instances && scheduled) {
      return { appsStored: apps.length, instancesStored: instances.length, instancesPlaced: placed };
    }
    if (performance.now() > deadlineMs) throw new Error(`the cluster did not settle: ${instances.length} instances, ${placed} placed, indexes ${statuses.map((s) => s.index).join('/')}`);
    await sleep(500);
  }
}

function etcdVersion(): string | undefined {
  try {
    return /etcd Version:\s*(\S+)/.exec(execFileSync('etcd', ['--version'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }))?.[1];
  } catch {
    return undefined;
  }
}

interface EtcdResult {
  startMs: number;
  idle: Usage;
}

async function etcdIdle(options: Options): Promise<EtcdResult> {
  const resources = new Resources();
  try {
    const directory = resources.makeTempDirectory('footprint-etcd-');
    const [clientPort, peerPort] = await freePorts(2);
    const client = `http://127.0.0.1:${clientPort}`;
    const peer = `http://127.0.0.1:${peerPort}`;
    const startedAtMs = performance.now();
    const child = resources.spawn({
      command: 'etcd',
      args: ['--name', 'e1', '--data-dir', join(directory, 'data'), '--listen-client-urls', client, '--advertise-client-urls', client,
        '--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer, '--initial-cluster', `e1=${peer}`],
      logPath: join(directory, 'etcd.log'),
    });
    let startMs = Number.NaN;
    while (Number.isNaN(startMs)) {
      if (child.exitCode !== null) throw new Error('etcd exited before serving');
      if (performance.now() - startedAtMs > SERVE_TIMEOUT_MS) throw new Error('etcd did not serve in time');
      const status = await fetch(`${client}/health`, { signal: AbortSignal.timeout(1000) }).then((response) => response.status, () => 0);
      if (status === 200) startMs = performance.now() - startedAtMs;
      else await sleep(HEALTH_POLL_MS);
    }
    process.stderr.write(`bench: etcd serves; settling ${options.settleSeconds} s, then ${options.idleSeconds} s idle\n`);
    await sleep(options.settleSeconds * 1000);
    const [idle] = await measure([child.pid!], options.idleSeconds);
    return { startMs, idle: idle! };
  } finally {
    resources.cleanup();
  }
}

function row(cells: string[], widths: number[]): string {
  return '  ' + cells.map((cell, i) => cell.padEnd(widths[i]!)).join('  ');
}

function usageCells(usage: Usage): string[] {
  return [usage.rssMiB.toFixed(1), usage.rssMiBMax.toFixed(1), usage.privateMiB.toFixed(1), usage.cpuPercent.toFixed(2), usage.wakeupsPerSecond.toFixed(1)];
}

function rounded(usage: Usage): Usage {
  return { rssMiB: Number(usage.rssMiB.toFixed(1)), rssMiBMax: Number(usage.rssMiBMax.toFixed(1)), privateMiB: Number(usage.privateMiB.toFixed(1)), cpuPercent: Number(usage.cpuPercent.toFixed(3)), wakeupsPerSecond: Number(usage.wakeupsPerSecond.toFixed(1)), loadAverage: Number(usage.loadAverage.toFixed(2)) };
}

/** One target of issue 15 against its figure (and etcd's, where it has one). */
interface TargetCheck {
  name: string;
  target: number;
  measured: number;
  etcd: number | null;
  met: boolean;
}

function targetChecks(options: Options, single: SingleNodeResult, etcd: EtcdResult | undefined, three: ClusterResult | undefined): TargetCheck[] {
  const check = (name: string, target: number, measured: number, etcdFigure: number | undefined): TargetCheck => ({
    name, target, measured: Number(measured.toFixed(2)), etcd: etcdFigure === undefined ? null : Number(etcdFigure.toFixed(2)), met: measured <= target,
  });
  const checks = [
    check('idle one node, RSS MiB', TARGETS.idleRssMiBMax, single.idle.rssMiB, etcd?.idle.rssMiB),
    check('idle one node, CPU % of a core', TARGETS.idleCpuPercentMax, single.idle.cpuPercent, etcd?.idle.cpuPercent),
    check('start to serving ms (restart)', TARGETS.startMsMax, single.startRestartMs, etcd?.startMs),
    check('start to serving ms (fresh data dir)', TARGETS.startMsMax, single.startFreshMs, undefined),
  ];
  // The per-agent target holds at its own cluster size only.
  if (three !== undefined && options.apps === TARGETS.loadedApps && options.instances === TARGETS.loadedInstances && !options.place) {
    checks.push(check(`3 nodes, ${TARGETS.loadedApps} apps / ${TARGETS.loadedInstances} instances, largest agent RSS MiB`, TARGETS.loadedRssMiBMax, Math.max(...three.loaded.map((usage) => usage.rssMiB)), undefined));
  }
  return checks;
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  const etcd = etcdVersion();
  const nodeFlags = options.nodeFlags ?? agentNodeFlags();
  const entry = options.entry ?? 'dist/src/agent/main.js';
  const what = options.place
    ? `placed and running as \`sleep 3600\` processes`
    : `stored, none placed (constraint "${CONSTRAINT_NOTHING_SATISFIES}"): the state's cost, no process runs`;
  console.log('footprint benchmark: real agents on loopback, RSS (VmRSS) and CPU (utime+stime) from /proc');
  console.log(`  machine   ${cpus()[0]?.model ?? 'unknown'}, ${cpus().length} cores, ${(totalmem() / 2 ** 30).toFixed(0)} GiB; load ${loadavg()[0]!.toFixed(2)} at start; node ${process.version}`);
  console.log(`  windows   settle ${options.settleSeconds} s, then ${options.idleSeconds} s measured (RSS sampled once a second: last, max); default agent settings (tick 50 ms), node ${nodeFlags.join(' ') || '(no flags)'} ${entry}`);
  console.log(`  cluster   3 nodes, ${options.apps} process apps, ${options.instances} instances ${what}`);
  console.log(`  etcd      ${etcd ?? 'not installed (no etcd row)'}${etcd ? ', one member, defaults' : ''}`);
  console.log(`  targets   idle RSS <= 60 MiB, idle CPU <= 0.5 % of a core, start to serving <= 1000 ms, <= 150 MiB per agent at 1000 apps / 10000 instances\n`);

  const single = await singleNode(options);
  const etcdResult = etcd === undefined || options.single ? undefined : await etcdIdle(options);
  const three = options.single ? undefined : await threeNodes(options);

  const widths = [34, 10, 10, 12, 8, 10, 14];
  console.log(row(['process', 'RSS MiB', 'max MiB', 'private MiB', 'CPU %', 'wakeups/s', 'start ms'], widths));
  console.log(row(['hivemind agent, 1 node, idle', ...usageCells(single.idle), `${single.startFreshMs.toFixed(0)} / ${single.startRestartMs.toFixed(0)}`], widths));
  if (etcdResult) console.log(row(['etcd, 1 member, idle', ...usageCells(etcdResult.idle), etcdResult.startMs.toFixed(0)], widths));
  three?.empty.forEach((usage, i) => console.log(row([`3 nodes, empty: n${i + 1}`, ...usageCells(usage), ''], widths)));
  three?.loaded.forEach((usage, i) => console.log(row([`3 nodes, ${options.apps} apps/${options.instances} inst: n${i + 1}`, ...usageCells(usage), ''], widths)));
  console.log(`\n  start ms: fresh data dir / restart on it; CPU time the agent used until it served: ${single.startCpuFreshMs.toFixed(0)} / ${single.startCpuRestartMs.toFixed(0)} ms`);
  console.log(`  idle one node after its window: V8 heap used ${single.heap.usedMiB.toFixed(1)} MiB, external ${single.heap.externalMiB.toFixed(1)} MiB (one /metrics scrape); wakeups/s: context switches of all its threads`);
  if (three !== undefined) {
    console.log(`  Deploy of ${options.apps} apps took ${three.deploySeconds.toFixed(1)} s; stored ${three.appsStored} apps, ${three.instancesStored} instances (${three.instancesPlaced} placed); data dirs ${three.dataDirMiB.map((m) => m.toFixed(2)).join(' / ')} MiB`);
    const growth = three.loaded.map((usage, i) => usage.rssMiB - three.empty[i]!.rssMiB);
    console.log(`  RSS growth empty -> loaded: ${growth.map((m) => m.toFixed(1)).join(' / ')} MiB`);
  }
  console.log(`  private MiB: the process's own pages (smaps_rollup Private_*), RSS less what it shares, chiefly the node binary's text`);
  console.log(`  load average at the windows' ends: idle ${single.idle.loadAverage.toFixed(1)}, etcd ${etcdResult?.idle.loadAverage.toFixed(1) ?? '-'}, empty ${three?.empty[0]!.loadAverage.toFixed(1) ?? '-'}, loaded ${three?.loaded[0]!.loadAverage.toFixed(1) ?? '-'}; agents run with node ${nodeFlags.join(' ') || '(no flags)'} ${entry}\n`);
  const checks = targetChecks(options, single, etcdResult, three);
  const checkWidths = [64, 8, 10, 8, 4];
  console.log(row(['target', 'target', 'measured', 'etcd', 'met'], checkWidths));
  for (const item of checks) console.log(row([item.name, String(item.target), String(item.measured), item.etcd === null ? '' : String(item.etcd), item.met ? 'yes' : 'no'], checkWidths));

  if (options.json) {
    console.log(JSON.stringify({
      benchmark: 'footprint',
      settings: { idleSeconds: options.idleSeconds, settleSeconds: options.settleSeconds, apps: options.apps, instances: options.instances, place: options.place, nodeFlags, entry },
      etcd: etcd ?? null,
      singleNode: { startFreshMs: Math.round(single.startFreshMs), startRestartMs: Math.round(single.startRestartMs), startCpuFreshMs: single.startCpuFreshMs, startCpuRestartMs: single.startCpuRestartMs, idle: rounded(single.idle), heapUsedMiB: Number(single.heap.usedMiB.toFixed(1)), externalMiB: Number(single.heap.externalMiB.toFixed(1)) },
      etcdIdle: etcdResult ? { startMs: Math.round(etcdResult.startMs), idle: rounded(etcdResult.idle) } : null,
      threeNodes: three === undefined ? null : {
        empty: three.empty.map(rounded), loaded: three.loaded.map(rounded), deploySeconds: Number(three.deploySeconds.toFixed(1)),
        appsStored: three.appsStored, instancesStored: three.instancesStored, instancesPlaced: three.instancesPlaced,
        dataDirMiB: three.dataDirMiB.map((m) => Number(m.toFixed(2))),
      },
      targets: checks,
    }));
  }
}

main().catch((error: unknown) => {
  console.error(`bench: ${(error as Error).message}`);
  process.exit(1);
});
