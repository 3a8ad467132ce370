/**
 * `npm run bench:executor`: time from start to all instances running for
 * 1, 10 and 100 busybox containers on one node, through Hivemind's
 * containerd runtime (image resolved, network namespace + CNI bridge and
 * port plumbing, container + task), beside the same number of `ctr run -d`
 * calls in the same run (the floor: containerd + runc without Hivemind,
 * and without CNI). Same concurrency for both. Runs its own containerd in a
 * temporary folder and removes every container afterwards.
 *
 * Flags: --counts 1,10,100  --concurrency 8  --json (last line: one JSON object).
 * Run it under `flock /tmp/hivemind-bench.lock` (the npm script does).
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { ContainerdRuntime } from '../src/executor/containerd/containerd-runtime.js';
import { CniNetwork } from '../src/executor/containerd/network.js';
import { buildBusyboxImage } from '../src/executor/containerd/oci-layout.js';
import { findExecutable, OwnContainerd } from '../src/executor/containerd/own-containerd.js';
import type { WorkloadSpec } from '../src/executor/runtime.js';

const IMAGE = 'hivemind.local/busybox:latest';

function flag(name: string, fallback: string): string {
  const index = process.argv.indexOf(`--${name}`);
  return index !== -1 && process.argv[index + 1] !== undefined ? process.argv[index + 1]! : fallback;
}

function percentile(values: number[], fraction: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil(fraction * sorted.length) - 1)] ?? 0;
}

function run(command: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`${command} ${args.join(' ')}: ${stderr.trim()}`))));
  });
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

interface Round {
  instances: number;
  hivemind: { totalMs: number; p50Ms: number; p99Ms: number };
  ctr: { totalMs: number; p50Ms: number; p99Ms: number };
  ratio: number;
}

async function main(): Promise<void> {
  const counts = flag('counts', '1,10,100').split(',').map(Number);
  const concurrency = Number(flag('concurrency', '8'));
  const json = process.argv.includes('--json');
  for (const binary of ['containerd', 'runc', 'ctr']) {
    if (findExecutable(binary) === undefined) throw new Error(`${binary} is not installed (apt-get install containerd runc)`);
  }
  const dataDir = await mkdtemp('/tmp/hmb-');
  const own = new OwnContainerd({ dataDir, log: () => undefined });
  const network = new CniNetwork({ stateDir: join(dataDir, 'cni'), bridge: 'hmb0', subnet: '10.90.0.0/16' });
  const runtime = new ContainerdRuntime({ dataDir, log: () => undefined, manageContainerd: false, socketPath: own.socketPath, network });
  const rounds: Round[] = [];
  let rssBytesMax = 0;
  try {
    await own.start();
    await runtime.open();
    const archive = join(dataDir, 'busybox.tar');
    await buildBusyboxImage({ outputPath: archive });
    await runtime.importImage(archive);
    const ctr = (args: string[]): Promise<void> => run('ctr', ['-a', own.socketPath, '-n', 'hivemind', ...args]);
    console.log(`executor benchmark: containerd 1.6 (own, ${own.socketPath}), busybox image, concurrency ${concurrency}, counts ${counts.join(', ')}`);
    console.log(`machine: ${cpus().length} cpus (${cpus()[0]?.model ?? 'unknown'}), ${(totalmem() / 2 ** 30).toFixed(1)} GiB, node ${process.version}`);
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
      for (const workload of await runtime.list()) await runtime.remove(workload.id);
      const floor = await timed(count, concurrency, (index) => ctr(['run', '-d', IMAGE, `floor-${count}-${index}`, 'sleep', '100000']));
      for (let index = 0; index < count; index += 1) {
        const id = `floor-${count}-${index}`;
        await ctr(['task', 'kill', '-s', 'SIGKILL', id]).catch(() => undefined);
        await new Promise((resolve) => setTimeout(resolve, 20));
        await ctr(['task', 'rm', '-f', id]).catch(() => undefined);
        await ctr(['container', 'rm', id]).catch(() => undefined);
      }
      const figures = (result: { totalMs: number; eachMs: number[] }) => ({ totalMs: Math.round(result.totalMs), p50Ms: Math.round(percentile(result.eachMs, 0.5)), p99Ms: Math.round(percentile(result.eachMs, 0.99)) });
      const round: Round = { instances: count, hivemind: figures(ours), ctr: figures(floor), ratio: Number((ours.totalMs / floor.totalMs).toFixed(2)) };
      rounds.push(round);
      console.log(`${String(count).padStart(4)} instances: hivemind ${round.hivemind.totalMs} ms (p50 ${round.hivemind.p50Ms}, p99 ${round.hivemind.p99Ms} ms each)  ctr run -d ${round.ctr.totalMs} ms (p50 ${round.ctr.p50Ms}, p99 ${round.ctr.p99Ms})  ratio ${round.ratio}x`);
    }
    console.log(`memory: benchmark process (the runtime in it) rss max ${(rssBytesMax / 2 ** 20).toFixed(0)} MiB; target ratio <= 1.2x`);
    console.log('through a one-node agent (hivemind deploy): not measured here yet');
    if (json) console.log(JSON.stringify({ benchmark: 'executor', concurrency, rounds, rssBytesMax }));
  } finally {
    for (const workload of await runtime.list().catch(() => [])) await runtime.remove(workload.id).catch(() => undefined);
    await runtime.close();
    await own.stop();
    await network.removeBridge();
    await rm(dataDir, { recursive: true, force: true }).catch(() => undefined);
  }
}

main().catch((error: Error) => {
  console.error(`bench:executor: ${error.message}`);
  process.exit(1);
});
