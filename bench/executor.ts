/**
 * `npm run bench:executor`: time from deploy to all instances running for
 * 1, 10 and 100 busybox containers on one node, beside the same number of
 * `ctr run -d` calls in the same run (the floor for containerd + runc).
 *
 * `--mode agent` (default): one real agent (`bin/hivemind.js agent`, temp
 * data dir, free ports) on a containerd the benchmark starts; the image is
 * imported once through POST /v1/images/import; each round deploys an app of
 * N replicas (POST /v1/deploy) and waits, with blocking queries on
 * GET /v1/instances, until N instances report `running`; then deletes the app
 * and waits until its containers are gone. Beside it: N `ctr run -d` calls
 * (namespace `bench`, no network) and N `ctr run -d` calls into a network
 * namespace attached with the same CNI plugins the agent uses (`ctr+cni`),
 * so the share of the network is visible.
 *
 * The agent keeps a warm pool of attached network namespaces
 * (`--warm-networks N`, the agent's default 16 unless given; 0 = off). Each
 * round starts with the pool full, the steady state of a node: the benchmark
 * waits for the `hivemind_executor_warm_networks` gauge before the deploy,
 * and again before the floors so the pool's refill never runs beside them.
 * Before the first round one `ctr run -d` container is started and removed,
 * so that containerd's, the shim's and runc's first-container costs (cold
 * binaries and caches) land on neither side: without it they fell on the
 * first Hivemind round, which ran before its floors.
 *
 * `--mode runtime`: Hivemind's containerd runtime called directly in this
 * process (no agent, no Raft, no scheduler), beside the plain `ctr` floor.
 *
 * `--mode images`: an image imported on one node and fetched by two others
 * from it, beside `ctr image import` on one node (executor-images.ts).
 *
 * Flags: --mode agent|runtime|images  --counts 1,10,100  --concurrency 8
 *        --warm-networks N (agent mode; the agent's default when absent)
 *        --json (last line: one JSON object).
 * Run it under `flock /tmp/hivemind-bench.lock` (the npm script does).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { cpus, loadavg, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ContainerdRuntime } from '../src/executor/containerd/containerd-runtime.js';
import { CniNetwork, createNetns, deleteNetns, netnsName } from '../src/executor/containerd/network.js';
import { buildBusyboxImage } from '../src/executor/containerd/oci-layout.js';
import { findExecutable, OwnContainerd } from '../src/executor/containerd/own-containerd.js';
import type { WorkloadSpec } from '../src/executor/runtime.js';
import { freePorts, rssBytes, runCommand as run, sleep } from './processes.js';
import { fetch } from 'undici';
import { dataDirApiAgent } from '../src/api/tls.js';
import { imagesMode } from './executor-images.js';

const IMAGE = 'hivemind.local/busybox:latest';
/** The namespace of the `ctr` floors (the agent uses `hivemind`). */
const FLOOR_NAMESPACE = 'bench';
const CLI = fileURLToPath(new URL('../../bin/hivemind.js', import.meta.url));
/** Longest wait for one round's instances to run, or to be gone. */
const ROUND_TIMEOUT_MS = 300_000;
/** A blocking query's longest wait. */
const BLOCKING_WAIT = '5s';
/** Longest wait for the agent's warm pool to fill. */
const POOL_FILL_TIMEOUT_MS = 30_000;
/** The agent's pool size when `--warm-networks` is not given (src/agent/config.ts DEFAULT_WARM_NETWORKS). */
const WARM_NETWORKS_AGENT_DEFAULT = 16;

function flag(name: string, fallback: string): string {
  const index = process.argv.indexOf(`--${name}`);
  return index !== -1 && process.argv[index + 1] !== undefined ? process.argv[index + 1]! : fallback;
}

function percentile(values: number[], fraction: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil(fraction * sorted.length) - 1)] ?? 0;
}


/** Runs `task(i)` for i in [0, count) with at most `concurrency` at once; answers each one's duration in ms. */
async function timed(count: number, concurrency: number, task: (index: number) => Promise<void>): Promise<{ totalMs: number; eachMs: number[] }> {
  const eachMs: number[] = [];
  let next = 0;
  const began = performance.now();
  const worker = async (): Promise<void> => {
    while (next < count) {
      const index = next++;
      const start = performance.now();
      await task(index);
      eachMs.push(performance.now() - start);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  return { totalMs: performance.now() - began, eachMs };
}

interface Figures {
  totalMs: number;
  p50Ms: number;
  p99Ms: number;
}

function figures(result: { totalMs: number; eachMs: number[] }): Figures {
  return { totalMs: Math.round(result.totalMs), p50Ms: Math.round(percentile(result.eachMs, 0.5)), p99Ms: Math.round(percentile(result.eachMs, 0.99)) };
}

function describe(name: string, value: Figures): string {
  return `${name} ${value.totalMs} ms (p50 ${value.p50Ms}, p99 ${value.p99Ms})`;
}

/** `ctr` against one containerd and namespace. */
class Ctr {
  constructor(readonly socketPath: string, readonly namespace: string) {}

  call(args: string[]): Promise<string> {
    return run('ctr', ['-a', this.socketPath, '-n', this.namespace, ...args]);
  }

  /** Kills and deletes every container of the namespace. */
  async removeAll(): Promise<void> {
    const ids = (await this.call(['containers', 'list', '-q'])).split('\n').map((line) => line.trim()).filter(Boolean);
    await timed(ids.length, 8, async (index) => {
      const id = ids[index]!;
      await this.call(['task', 'kill', '-s', 'SIGKILL', id]).catch(() => undefined);
      for (let attempt = 0; attempt < 50; attempt += 1) {
        if (await this.call(['task', 'rm', '-f', id]).then(() => true, (error: Error) => /not found/.test(error.message))) break;
        await sleep(20);
      }
      await this.call(['container', 'rm', id]).catch(() => undefined);
    });
  }
}

/** The floors: N `ctr run -d` (no network), and the same into a namespace attached by the agent's CNI plugins. */
async function floors(ctr: Ctr, network: CniNetwork, count: number, concurrency: number): Promise<{ ctr: Figures; ctrCni: Figures }> {
  const plain = await timed(count, concurrency, async (index) => {
    await ctr.call(['run', '-d', IMAGE, `floor-${count}-${index}`, 'sleep', '100000']);
  });
  await ctr.removeAll();
  const withNetwork = await timed(count, concurrency, async (index) => {
    const id = `floor-cni-${count}-${index}`;
    const netnsPath = await createNetns(id);
    await network.attach(id, netnsPath, []);
    await ctr.call(['run', '-d', '--with-ns', `network:${netnsPath}`, IMAGE, id, 'sleep', '100000']);
  });
  await ctr.removeAll();
  await timed(count, 8, async (index) => {
    const id = `floor-cni-${count}-${index}`;
    await network.detach(id, `/run/netns/${netnsName(id)}`, []).catch(() => undefined);
    await deleteNetns(id).catch(() => undefined);
  });
  return { ctr: figures(plain), ctrCni: figures(withNetwork) };
}

/** One agent process: `bin/hivemind.js agent` on loopback with free ports and its own data dir. */
class Agent {
  private child: ChildProcess | undefined;
  private readonly output: string[] = [];
  private token = '';
  apiPort = 0;

  constructor(readonly dataDir: string, readonly socketPath: string, readonly warmNetworksFlag: number | undefined) {}

  get pid(): number {
    return this.child?.pid ?? 0;
  }

  async start(): Promise<void> {
    const [apiPort, peerPort, dnsPort, proxyPort] = await freePorts(4);
    this.apiPort = apiPort!;
    const child = spawn(process.execPath, [CLI, 'agent', '--name', 'bench', '--data-dir', this.dataDir, '--bind', '127.0.0.1', '--advertise', '127.0.0.1',
      '--api-port', String(apiPort), '--peer-port', String(peerPort), '--gossip-port', '0', '--dns-port', String(dnsPort), '--proxy-port', String(proxyPort),
      ...(this.warmNetworksFlag !== undefined ? ['--warm-networks', String(this.warmNetworksFlag)] : [])], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, HIVEMIND_TOKEN: '', HIVEMIND_CONTAINERD_SOCKET: this.socketPath },
    });
    this.child = child;
    for (const stream of [child.stdout!, child.stderr!]) {
      stream.setEncoding('utf8');
      stream.on('data', (chunk: string) => {
        this.output.push(...chunk.split('\n'));
        if (this.output.length > 200) this.output.splice(0, this.output.length - 200);
      });
    }
    const deadline = Date.now() + 30_000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`the agent exited: ${this.output.slice(-10).join(' | ')}`);
      const line = this.output.find((text) => text.startsWith('join token: '));
      if (line !== undefined) this.token = line.slice('join token: '.length).trim();
      if (this.token !== '' && (await this.request('GET', '/v1/health').then((answer) => answer.status === 200, () => false))) return;
      if (Date.now() > deadline) throw new Error(`the agent did not serve within 30 s: ${this.output.slice(-10).join(' | ')}`);
      await sleep(100);
    }
  }

  async request(method: string, path: string, body?: unknown, timeoutMs = 30_000): Promise<{ status: number; body: any; index: number }> {
    const headers: Record<string, string> = {};
    if (this.token !== '') headers.authorization = `Bearer ${this.token}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    const response = await fetch(`https://127.0.0.1:${this.apiPort}${path}`, { dispatcher: dataDirApiAgent(this.dataDir), method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal: AbortSignal.timeout(timeoutMs) });
    const text = await response.text();
    let parsed: unknown = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      // not JSON
    }
    return { status: response.status, body: parsed, index: Number(response.headers.get('x-hivemind-index') ?? -1) };
  }

  async expectOk(method: string, path: string, body?: unknown): Promise<{ body: any; index: number }> {
    const answer = await this.request(method, path, body);
    if (answer.status !== 200) throw new Error(`${method} ${path}: ${answer.status} ${JSON.stringify(answer.body)}`);
    return answer;
  }

  /**
   * Blocking queries on GET /v1/instances?app=APP until `done(instances)` answers true;
   * `seen(instances, ms)` gets every answer with the time since `began`.
   */
  async watchInstances(app: string, began: number, done: (instances: InstanceWire[]) => boolean, seen: (instances: InstanceWire[], elapsedMs: number) => void = () => undefined): Promise<void> {
    let index = 0;
    const deadline = Date.now() + ROUND_TIMEOUT_MS;
    for (;;) {
      const answer = await this.expectOk('GET', `/v1/instances?app=${app}&index=${index}&wait=${BLOCKING_WAIT}`);
      const instances = (answer.body.instances ?? []) as InstanceWire[];
      seen(instances, performance.now() - began);
      if (done(instances)) return;
      if (Date.now() > deadline) throw new Error(`app ${app}: timed out; last: ${JSON.stringify(instances.map((instance) => instance.status?.state))}`);
      index = answer.index;
    }
  }

  /** The agent's warm pool size now (`hivemind_executor_warm_networks` on GET /metrics). */
  async warmNetworks(): Promise<number> {
    const answer = await this.request('GET', '/metrics');
    const match = /^hivemind_executor_warm_networks(?:\{[^}]*\})? (\d+)/m.exec(String(answer.body));
    return match ? Number(match[1]) : 0;
  }

  /** Waits until the warm pool holds `size` networks; answers how long that took. */
  async waitForPool(size: number): Promise<number> {
    const began = performance.now();
    while ((await this.warmNetworks()) < size) {
      if (performance.now() - began > POOL_FILL_TIMEOUT_MS) throw new Error(`the agent's warm pool did not reach ${size} within ${POOL_FILL_TIMEOUT_MS} ms (at ${await this.warmNetworks()}): ${this.output.slice(-10).join(' | ')}`);
      await sleep(50);
    }
    return Math.round(performance.now() - began);
  }

  async stop(): Promise<void> {
    const child = this.child;
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    if ((await Promise.race([exited.then(() => true), sleep(10_000).then(() => false)])) === false) {
      child.kill('SIGKILL');
      await exited;
    }
  }
}

interface InstanceWire {
  id: string;
  node?: string;
  desired?: string;
  status?: { state?: string };
}

interface AgentRound {
  instances: number;
  hivemind: Figures;
  ctr: Figures;
  ctrCni: Figures;
  ratio: number;
  ratioToCni: number;
  /** From the deploy request until all N instances were seen placed on the node (scheduler + Raft). */
  placedMs: number;
  removeMs: number;
  agentRssBytes: number;
  /** Warm networks ready when the deploy was sent. */
  warmNetworksAtDeploy: number;
  /** Containers of the round that started on a warm network (the rest made their own). */
  startsOnWarmNetworks: number;
}

function appFile(replicas: number): string {
  return [
    'services:',
    '  bench:',
    `    image: ${IMAGE}`,
    '    command: ["sleep", "100000"]',
    // sleep ignores SIGTERM as PID 1: a short grace keeps the (unmeasured) delete short.
    '    stop_grace_period: 1s',
    `    deploy: { replicas: ${replicas} }`,
  ].join('\n');
}

async function agentMode(options: { counts: number[]; concurrency: number; json: boolean; warmNetworks: number | undefined }): Promise<void> {
  const dataDir = await mkdtemp('/tmp/hmb-');
  const own = new OwnContainerd({ dataDir: join(dataDir, 'own'), log: () => undefined });
  const agent = new Agent(join(dataDir, 'agent'), own.socketPath, options.warmNetworks);
  const poolSize = options.warmNetworks ?? WARM_NETWORKS_AGENT_DEFAULT;
  // The same plugins and plugin config as the agent's network, on another bridge and subnet so the IPAM state stays apart.
  const network = new CniNetwork({ stateDir: join(dataDir, 'floor-cni'), bridge: 'hmb1', subnet: '10.91.0.0/16' });
  const ctr = new Ctr(own.socketPath, FLOOR_NAMESPACE);
  const hivemindCtr = new Ctr(own.socketPath, 'hivemind');
  const rounds: AgentRound[] = [];
  // The agent makes the default bridge hm0; remove it at the end only if this run made it.
  const agentBridgeExisted = existsSync('/sys/class/net/hm0');
  try {
    await own.start();
    const archive = join(dataDir, 'busybox.tar');
    await buildBusyboxImage({ outputPath: archive });
    await ctr.call(['images', 'import', archive]);
    await agent.start();
    await agent.expectOk('POST', '/v1/images/import', { path: archive });
    await ctr.call(['run', '-d', IMAGE, 'warm-up', 'sleep', '100000']);
    await ctr.removeAll();
    console.log(`executor benchmark (agent): one agent (${CLI}) on containerd 1.6 (own, ${own.socketPath}); busybox image; app: image ${IMAGE}, command sleep 100000, replicas N; floors: ctr run -d in namespace ${FLOOR_NAMESPACE}, concurrency ${options.concurrency}, with and without a CNI network; counts ${options.counts.join(', ')}; warm networks ${poolSize}${options.warmNetworks === undefined ? ' (the agent\'s default)' : ''}`);
    console.log('warm-up: one ctr run -d container started and removed before the first round (containerd\'s and runc\'s first-container costs paid by neither side)');
    if (poolSize > 0) console.log(`each round starts with the agent's warm pool full (${poolSize}), the steady state of a node; the floors wait for its refill too, so it never runs beside them`);
    console.log(`machine: ${cpus().length} cpus (${cpus()[0]?.model ?? 'unknown'}), ${(totalmem() / 2 ** 30).toFixed(1)} GiB, node ${process.version}, load average ${loadavg()[0]!.toFixed(2)} at the start`);
    for (const count of options.counts) {
      const firstRunningMs = new Map<string, number>();
      let placedMs = Number.NaN;
      await agent.waitForPool(poolSize);
      const warmNetworksAtDeploy = await agent.warmNetworks();
      const began = performance.now();
      await agent.expectOk('POST', '/v1/deploy', { fileName: 'bench.yaml', content: appFile(count) });
      await agent.watchInstances('bench', began, (instances) => instances.length === count && instances.every((instance) => instance.status?.state === 'running'), (instances, elapsedMs) => {
        if (Number.isNaN(placedMs) && instances.length === count && instances.every((instance) => Boolean(instance.node))) placedMs = Math.round(elapsedMs);
        for (const instance of instances) if (instance.status?.state === 'running' && !firstRunningMs.has(instance.id)) firstRunningMs.set(instance.id, elapsedMs);
      });
      const totalMs = performance.now() - began;
      const agentRssBytes = rssBytes(agent.pid);
      const startsOnWarmNetworks = (await hivemindCtr.call(['containers', 'list', '-q', 'labels."hivemind.network-id"'])).split('\n').filter((line) => line.trim() !== '').length;
      const removeBegan = performance.now();
      await agent.expectOk('DELETE', '/v1/apps/default/bench');
      await agent.watchInstances('bench', removeBegan, (instances) => instances.length === 0);
      for (;;) {
        if ((await hivemindCtr.call(['containers', 'list', '-q'])).trim() === '') break;
        if (performance.now() - removeBegan > ROUND_TIMEOUT_MS) throw new Error('the agent did not remove its containers');
        await sleep(100);
      }
      const removeMs = Math.round(performance.now() - removeBegan);
      await agent.waitForPool(poolSize);
      const floor = await floors(ctr, network, count, options.concurrency);
      const hivemind = figures({ totalMs, eachMs: [...firstRunningMs.values()] });
      const round: AgentRound = { instances: count, hivemind, ...floor, ratio: Number((totalMs / floor.ctr.totalMs).toFixed(2)), ratioToCni: Number((totalMs / floor.ctrCni.totalMs).toFixed(2)), placedMs, removeMs, agentRssBytes, warmNetworksAtDeploy, startsOnWarmNetworks };
      rounds.push(round);
      console.log(`${String(count).padStart(4)} instances: ${describe('hivemind deploy -> running', hivemind)} (all placed at ${placedMs} ms)  ${describe('ctr run -d', floor.ctr)}  ${describe('ctr+cni', floor.ctrCni)}  ratio ${round.ratio}x (${round.ratioToCni}x of ctr+cni)  delete -> gone ${removeMs} ms  agent rss ${(agentRssBytes / 2 ** 20).toFixed(0)} MiB  warm networks ${warmNetworksAtDeploy} at the deploy, ${startsOnWarmNetworks} of ${count} started on one  load ${loadavg()[0]!.toFixed(2)}`);
    }
    console.log('per-instance p50/p99 for hivemind: time from the deploy request until the instance was first seen running; for ctr: each call. Target ratio <= 1.2x of ctr run -d.');
    if (options.json) console.log(JSON.stringify({ benchmark: 'executor', mode: 'agent', concurrency: options.concurrency, warmNetworks: poolSize, loadAverage: loadavg()[0], rounds }));
  } finally {
    await agent.request('DELETE', '/v1/apps/default/bench').catch(() => undefined);
    await agent.stop();
    await ctr.removeAll().catch(() => undefined);
    await hivemindCtr.removeAll().catch(() => undefined);
    await own.stop();
    await network.removeBridge();
    if (!agentBridgeExisted) await new CniNetwork({ stateDir: join(dataDir, 'agent', 'cni') }).removeBridge();
    await rm(dataDir, { recursive: true, force: true }).catch(() => undefined);
  }
}

interface RuntimeRound {
  instances: number;
  hivemind: Figures;
  ctr: Figures;
  ratio: number;
}

/** `--mode runtime`: the containerd runtime called in this process, beside the plain `ctr run -d` floor (namespace `hivemind`). */
async function runtimeMode(options: { counts: number[]; concurrency: number; json: boolean }): Promise<void> {
  const { counts, concurrency, json } = options;
  const dataDir = await mkdtemp('/tmp/hmb-');
  const own = new OwnContainerd({ dataDir, log: () => undefined });
  const network = new CniNetwork({ stateDir: join(dataDir, 'cni'), bridge: 'hmb0', subnet: '10.90.0.0/16' });
  const runtime = new ContainerdRuntime({ dataDir, log: () => undefined, manageContainerd: false, socketPath: own.socketPath, network });
  const rounds: RuntimeRound[] = [];
  let rssBytesMax = 0;
  try {
    await own.start();
    await runtime.open();
    const archive = join(dataDir, 'busybox.tar');
    await buildBusyboxImage({ outputPath: archive });
    await runtime.importImage(archive);
    const ctr = new Ctr(own.socketPath, 'hivemind');
    console.log(`executor benchmark (runtime): containerd 1.6 (own, ${own.socketPath}), busybox image, concurrency ${concurrency}, counts ${counts.join(', ')}`);
    console.log(`machine: ${cpus().length} cpus (${cpus()[0]?.model ?? 'unknown'}), ${(totalmem() / 2 ** 30).toFixed(1)} GiB, node ${process.version}, load average ${loadavg()[0]!.toFixed(2)} at the start`);
    for (const count of counts) {
      const spec = (index: number): WorkloadSpec => ({
        id: `bench-${count}-${index}`, tenant: 'bench', app: 'bench', version: 1, specHash: 'bench', image: IMAGE,
        command: ['sleep', '100000'], environment: {}, readOnly: false, ports: [], limits: {}, mounts: [], secrets: [],
        logPath: join(dataDir, 'logs', `bench-${count}-${index}.log`), stopSignal: 'SIGTERM', stopGraceMs: 1000, labels: {},
      });
      const ours = await timed(count, concurrency, async (index) => {
        await runtime.start(spec(index));
      });
      rssBytesMax = Math.max(rssBytesMax, process.memoryUsage().rss);
      await timed(count, concurrency, async (index) => runtime.remove(spec(index).id));
      const floor = await timed(count, concurrency, async (index) => {
        await ctr.call(['run', '-d', IMAGE, `floor-${count}-${index}`, 'sleep', '100000']);
      });
      await ctr.removeAll();
      const round: RuntimeRound = { instances: count, hivemind: figures(ours), ctr: figures(floor), ratio: Number((ours.totalMs / floor.totalMs).toFixed(2)) };
      rounds.push(round);
      console.log(`${String(count).padStart(4)} instances: ${describe('runtime.start', round.hivemind)}  ${describe('ctr run -d', round.ctr)}  ratio ${round.ratio}x`);
    }
    console.log(`memory: benchmark process (the runtime in it) rss max ${(rssBytesMax / 2 ** 20).toFixed(0)} MiB; target ratio <= 1.2x`);
    if (json) console.log(JSON.stringify({ benchmark: 'executor', mode: 'runtime', concurrency, rounds, rssBytesMax }));
  } finally {
    for (const workload of await runtime.list().catch(() => [])) await runtime.remove(workload.id).catch(() => undefined);
    await runtime.close();
    await own.stop();
    await network.removeBridge();
    await rm(dataDir, { recursive: true, force: true }).catch(() => undefined);
  }
}

async function main(): Promise<void> {
  const mode = flag('mode', 'agent');
  const warmNetworksText = flag('warm-networks', '');
  const warmNetworks = warmNetworksText === '' ? undefined : Number(warmNetworksText);
  if (warmNetworks !== undefined && (!Number.isSafeInteger(warmNetworks) || warmNetworks < 0)) throw new Error(`--warm-networks must be a whole number (0 turns the pool off), got "${warmNetworksText}"`);
  const options = { counts: flag('counts', '1,10,100').split(',').map(Number), concurrency: Number(flag('concurrency', '8')), json: process.argv.includes('--json'), warmNetworks };
  for (const binary of ['containerd', 'runc', 'ctr']) {
    if (findExecutable(binary) === undefined) throw new Error(`${binary} is not installed (apt-get install containerd runc)`);
  }
  if (mode === 'agent') await agentMode(options);
  else if (mode === 'runtime') await runtimeMode(options);
  else if (mode === 'images') await imagesMode({ rounds: Number(flag('rounds', '3')), imageMib: Number(flag('image-mib', '10')), json: options.json });
  else throw new Error(`--mode must be agent, runtime or images, not "${mode}"`);
}

main().catch((error: Error) => {
  console.error(`bench:executor: ${error.message}`);
  process.exit(1);
});
