/**
 * `npm run bench:scheduler [-- --json] [--nodes 1000,5000] [--instances 10000,100000] [--node-args ARGS]`:
 * placements per second committed through Raft by the leader's scheduler on
 * a real 3-node cluster (three agent processes on loopback, fsync on), whose
 * state describes many simulated nodes.
 *
 * The simulated nodes are node records (label `bench=sim`) written into the
 * first node's Raft log before it restarts and the other two join, so they
 * reach every member through Raft; no process runs for them, and the apps
 * are constrained to them, so the real executors run nothing. `--voter-grace
 * 1h` keeps the membership manager from marking them down during the run.
 *
 * Per (nodes, instances): deploy process apps (10,000 replicas at most each)
 * in one app file, then count placements committed (the leader's
 * `hivemind_scheduler_placements_total`) from the deploy's commit until
 * every instance is placed. Commit latency of placement batches is read from
 * `hivemind_scheduler_proposal_seconds` (histogram buckets, interpolated).
 * Before the rows, on the first cluster: a one-instance deploy into a quiet
 * cluster, five times: how long from the deploy's proposal to its
 * placement's proposal (the leader's clock, from the history).
 *
 * `--node-args ARGS` runs the agents with these Node flags (e.g. `--cpu-prof
 * --cpu-prof-dir=/tmp/profiles`, which NODE_OPTIONS refuses) through a
 * wrapper script standing in for the node binary, and stops them with
 * SIGTERM at the end, so that profiles are written.
 * Run under `flock /tmp/hivemind-bench.lock`.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { EntryType, type Entry } from '../consensus/core/types.js';
import { LevelStorage } from '../consensus/storage-level.js';
import { encodeEnvelope } from '../src/node/replicated-state.js';
import { TestCluster, eventually, type TestNode } from '../src/agent/test/harness.js';
import type { Envelope } from '../src/state/types.js';
import { describeMachine } from './report.js';
import { rssBytes } from './processes.js';

const ANCHOR = "Nomad's C1M (2016): about 3,750 containers placed per second with five servers";
const REPLICAS_PER_APP_MAX = 10_000;
const TARGET_PLACEMENTS_PER_SECOND = 10_000;

function listFlag(args: string[], name: string, fallback: number[]): number[] {
  const position = args.indexOf(name);
  if (position === -1) return fallback;
  const values = (args[position + 1] ?? '').split(',').map(Number);
  if (values.length === 0 || values.some((value) => !Number.isSafeInteger(value) || value <= 0)) {
    console.error(`${name} must be a comma-separated list of whole numbers, got "${args[position + 1] ?? ''}"`);
    process.exit(2);
  }
  return values;
}

interface Row {
  nodes: number;
  instances: number;
  seconds: number;
  placementsPerSecond: number;
  batches: number;
  commitP50Ms: number | undefined;
  commitP99Ms: number | undefined;
  leaderRssMiB: number;
}

/** Writes `count` node.register entries after the last entry of the stopped node's log. */
async function seedNodeRecords(dataDir: string, count: number): Promise<void> {
  const storage = new LevelStorage({ directory: join(dataDir, 'raft') });
  await storage.open();
  try {
    const persisted = await storage.load();
    const last = persisted.entries[persisted.entries.length - 1];
    const lastIndex = last?.index ?? persisted.snapshot?.meta.index ?? 0;
    const term = Math.max(persisted.hardState.term, last?.term ?? 0);
    const entries: Entry[] = [];
    for (let position = 0; position < count; position++) {
      const id = `sim${String(position).padStart(5, '0')}`;
      const envelope: Envelope = {
        requestId: `bench:register:${id}`,
        time: Date.now(),
        actor: 'bench',
        command: {
          type: 'node.register',
          id,
          // Loopback's discard port: nothing answers, and nothing leaves the machine.
          addresses: { api: '127.0.0.1:9', peer: '127.0.0.1:9', gossip: '127.0.0.1:9' },
          labels: { bench: 'sim', zone: `z${position % 10}` },
          resources: { cpuMillis: 64_000, memoryBytes: 256 * 1024 ** 3 },
        },
      };
      entries.push({ term, index: lastIndex + 1 + position, type: EntryType.Normal, data: encodeEnvelope(envelope) });
    }
    await storage.persist({ entries }, true);
  } finally {
    await storage.close();
  }
}

/** Sums a metric over the nodes' /metrics: `name{labels...} value` lines whose labels include `match`. */
async function metric(nodes: TestNode[], name: string, match = ''): Promise<number> {
  let total = 0;
  for (const node of nodes) {
    const answer = await node.request('GET', '/metrics');
    for (const line of String(answer.body).split('\n')) {
      if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
      if (match !== '' && !line.includes(match)) continue;
      total += Number(line.slice(line.lastIndexOf(' ') + 1));
    }
  }
  return total;
}

/** Cumulative bucket counts of the placement proposals' histogram, by upper bound in seconds. */
async function placementBuckets(nodes: TestNode[]): Promise<Map<number, number>> {
  const buckets = new Map<number, number>();
  for (const node of nodes) {
    const answer = await node.request('GET', '/metrics');
    for (const line of String(answer.body).split('\n')) {
      if (!line.startsWith('hivemind_scheduler_proposal_seconds_bucket{') || !line.includes('command="instance.place"')) continue;
      const bound = /le="([^"]+)"/.exec(line)?.[1];
      if (bound === undefined) continue;
      const upper = bound === '+Inf' ? Infinity : Number(bound);
      buckets.set(upper, (buckets.get(upper) ?? 0) + Number(line.slice(line.lastIndexOf(' ') + 1)));
    }
  }
  return buckets;
}

/** A quantile from cumulative bucket counts (differences of two snapshots), interpolated inside the bucket; ms. */
function bucketQuantile(after: Map<number, number>, before: Map<number, number>, fraction: number): number | undefined {
  const bounds = [...after.keys()].sort((left, right) => left - right);
  const total = (after.get(Infinity) ?? 0) - (before.get(Infinity) ?? 0);
  if (total <= 0) return undefined;
  const rank = fraction * total;
  let lower = 0;
  let below = 0;
  for (const bound of bounds) {
    const count = (after.get(bound) ?? 0) - (before.get(bound) ?? 0);
    if (count >= rank) {
      if (bound === Infinity) return lower * 1000;
      const inside = count - below;
      return (lower + (inside === 0 ? 0 : ((rank - below) / inside) * (bound - lower))) * 1000;
    }
    lower = bound;
    below = count;
  }
  return undefined;
}

function appFile(instances: number): { content: string; apps: string[] } {
  const lines = ['services:'];
  const apps: string[] = [];
  for (let remaining = instances, index = 0; remaining > 0; index++) {
    const replicas = Math.min(REPLICAS_PER_APP_MAX, remaining);
    remaining -= replicas;
    apps.push(`bench${index}`);
    lines.push(
      `  bench${index}:`,
      '    command: ["sleep", "1000"]',
      '    deploy:',
      `      replicas: ${replicas}`,
      '      resources:',
      '        reservations:',
      '          cpus: "0.01"',
      '          memory: 16M',
      '      placement:',
      '        constraints: ["node.labels.bench == sim"]',
    );
  }
  return { content: `${lines.join('\n')}\n`, apps };
}

const verbose = process.argv.includes('--verbose');

async function runOne(members: TestNode[], nodes: number, instances: number): Promise<Row> {
  const leader = members[0]!.cluster.nodes.get((await members[0]!.status()).leader)!;
  const before = await metric(members, 'hivemind_scheduler_placements_total');
  const bucketsBefore = await placementBuckets(members);
  const { content, apps } = appFile(instances);
  const deployed = await leader.request('POST', '/v1/deploy', { fileName: 'bench.yaml', content }, { timeoutMs: 120_000 });
  if (deployed.status !== 200) throw new Error(`deploy refused: ${deployed.status} ${JSON.stringify(deployed.body).slice(0, 400)}`);
  const committed = performance.now();
  let rssMax = 0;
  await eventually(`${instances} placements`, async () => {
    rssMax = Math.max(rssMax, rssBytes(leader.process!.pid!));
    const placed = (await metric(members, 'hivemind_scheduler_placements_total')) - before;
    if (verbose) console.log(`    ${Math.round(performance.now() - committed)} ms: ${placed} placed`);
    return placed >= instances;
  }, 600_000, 50);
  const seconds = (performance.now() - committed) / 1000;
  const bucketsAfter = await placementBuckets(members);
  const batches = (bucketsAfter.get(Infinity) ?? 0) - (bucketsBefore.get(Infinity) ?? 0);
  for (const app of apps) await leader.request('DELETE', `/v1/apps/default/${app}`, undefined, { timeoutMs: 60_000 });
  return {
    nodes,
    instances,
    seconds: Math.round(seconds * 1000) / 1000,
    placementsPerSecond: Math.round(instances / seconds),
    batches,
    commitP50Ms: round(bucketQuantile(bucketsAfter, bucketsBefore, 0.5)),
    commitP99Ms: round(bucketQuantile(bucketsAfter, bucketsBefore, 0.99)),
    leaderRssMiB: Math.round(rssMax / 2 ** 20),
  };
}

/**
 * A one-instance deploy into a quiet cluster, `samples` times: ms from the
 * deploy's proposal to its placement's proposal, both stamped by the
 * leader's clock in the history (so it holds the deploy's commit and the
 * scheduler's reaction); and ms until the deploy request was answered
 * (its commit and apply, seen by the client). Medians.
 */
async function singleDeployMs(leader: TestNode, samples: number): Promise<{ placementMs: number; deployAnswerMs: number }> {
  const figures: number[] = [];
  const answers: number[] = [];
  for (let sample = 0; sample < samples; sample++) {
    const name = `quick${sample}`;
    const content = [
      'services:',
      `  ${name}:`,
      '    command: ["sleep", "1000"]',
      '    deploy:',
      '      replicas: 1',
      '      placement:',
      '        constraints: ["node.labels.bench == sim"]',
      '',
    ].join('\n');
    // A quiet spell first: the periodic round and the previous sample's applies are over.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const asked = performance.now();
    const deployed = await leader.request('POST', '/v1/deploy', { fileName: `${name}.yaml`, content }, { timeoutMs: 30_000 });
    answers.push(performance.now() - asked);
    if (deployed.status !== 200) throw new Error(`deploy refused: ${deployed.status} ${JSON.stringify(deployed.body).slice(0, 400)}`);
    let placedId: string | undefined;
    await eventually(`${name} placed`, async () => {
      const instances = (await leader.request('GET', `/v1/instances?app=${name}`)).body.instances as { id: string; node?: string }[] | undefined;
      placedId = instances?.find((instance) => instance.node !== undefined)?.id;
      return placedId !== undefined;
    }, 30_000, 5);
    const history = (await leader.request('GET', '/v1/history?limit=200')).body.history as { time: number; command: string; target: string; summary: string }[];
    const deploy = history.find((entry) => entry.command.startsWith('app.deploy') && entry.target.endsWith(`/${name}`));
    const place = history.find((entry) => entry.command === 'instance.place' && entry.summary.includes(placedId!));
    if (deploy === undefined || place === undefined) throw new Error(`${name}: no deploy or placement in the history`);
    figures.push(place.time - deploy.time);
    await leader.request('DELETE', `/v1/apps/default/${name}`, undefined, { timeoutMs: 30_000 });
  }
  const median = (values: number[]): number => values.sort((left, right) => left - right)[Math.floor(values.length / 2)]!;
  return { placementMs: median(figures), deployAnswerMs: Math.round(median(answers)) };
}

function round(value: number | undefined): number | undefined {
  return value === undefined ? undefined : Math.round(value * 10) / 10;
}

async function clusterWith(nodes: number): Promise<{ cluster: TestCluster; members: TestNode[] }> {
  const cluster = new TestCluster(50, ['--voter-grace', '1h']);
  const n1 = await cluster.bootstrap('n1');
  await eventually('n1 registered', async () => (await n1.request('GET', '/v1/nodes')).body.nodes?.length === 1, 20_000);
  await n1.stop();
  await seedNodeRecords(n1.dataDir, nodes);
  n1.start(['agent']);
  await n1.waitHealthy(60_000);
  await eventually(`${nodes} node records applied`, async () => (await n1.request('GET', '/v1/nodes?stale=true')).body.nodes?.length === nodes + 1, 60_000);
  const n2 = await cluster.join('n2', n1);
  const n3 = await cluster.join('n3', n1);
  await eventually('3 voters', async () => (await n1.status()).voters.length === 3, 30_000);
  return { cluster, members: [n1, n2, n3] };
}

/**
 * The harness starts agents with `process.execPath`; point it at a script
 * that runs node with `nodeArgs` (this process already runs, so it is not affected).
 */
function useNodeArgs(nodeArgs: string): void {
  const directory = mkdtempSync(join(tmpdir(), 'hivemind-bench-node-'));
  const wrapper = join(directory, 'node');
  writeFileSync(wrapper, `#!/bin/sh\nexec ${JSON.stringify(process.execPath)} ${nodeArgs} "$@"\n`, { mode: 0o755 });
  process.execPath = wrapper;
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const json = args.includes('--json');
  const nodeCounts = listFlag(args, '--nodes', [1000, 5000]);
  const instanceCounts = listFlag(args, '--instances', [10_000, 100_000]);
  const nodeArgsAt = args.indexOf('--node-args');
  const nodeArgs = nodeArgsAt === -1 ? undefined : args[nodeArgsAt + 1];
  if (nodeArgs !== undefined) useNodeArgs(nodeArgs);
  const machine = describeMachine(undefined);
  console.log('scheduler benchmark: placements committed through Raft by the leader\'s scheduler');
  console.log(`  cluster: 3 agent processes on loopback (fsync on), tick 50 ms; simulated nodes: ${nodeCounts.join(', ')}; instances: ${instanceCounts.join(', ')}`);
  console.log('  apps: process apps of at most 10,000 replicas, 0.01 CPU and 16 MiB reserved each, constrained to the simulated nodes; strategy spread');
  console.log(`  machine: ${machine.cpuModel}, ${machine.cores} cores, ${machine.memoryGiB} GiB, Linux ${machine.kernel}, Node ${machine.node}, disk ${machine.dataDisk}`);
  console.log(`  anchor: ${ANCHOR}; target here: ${TARGET_PLACEMENTS_PER_SECOND.toLocaleString('en')}/s`);
  if (nodeArgs !== undefined) console.log(`  agents run as: node ${nodeArgs}`);
  console.log(`  load average at start: ${loadavg().map((value) => value.toFixed(2)).join(' ')} (other work on the machine slows every figure)`);
  const rows: Row[] = [];
  let singleDeploy: { placementMs: number; deployAnswerMs: number } | undefined;
  for (const nodes of nodeCounts) {
    const { cluster, members } = await clusterWith(nodes);
    try {
      if (nodes === nodeCounts[0]) {
        const leader = members[0]!.cluster.nodes.get((await members[0]!.status()).leader)!;
        singleDeploy = await singleDeployMs(leader, 5);
        console.log(
          `  one-instance deploy into a quiet cluster (${nodes} nodes): placement proposed ${singleDeploy.placementMs} ms after the deploy was proposed; ` +
            `the deploy request was answered after ${singleDeploy.deployAnswerMs} ms (medians of 5)`,
        );
      }
      for (const instances of instanceCounts) {
        const row = await runOne(members, nodes, instances);
        rows.push(row);
        console.log(
          `  ${String(nodes).padStart(5)} nodes, ${String(instances).padStart(6)} instances: ${row.placementsPerSecond.toLocaleString('en')} placements/s ` +
            `(${row.seconds} s, ${row.batches} batches; commit p50 ${row.commitP50Ms ?? '-'} ms, p99 ${row.commitP99Ms ?? '-'} ms; leader RSS ${row.leaderRssMiB} MiB)`,
        );
      }
      if (verbose) console.log(cluster.logs());
    } catch (error) {
      console.error(cluster.logs());
      throw error;
    } finally {
      // A graceful stop lets Node write what --node-args asked for (profiles).
      if (nodeArgs !== undefined) await Promise.all(members.map((member) => member.stop()));
      await cluster.cleanup();
    }
  }
  console.log(`  load average at end: ${loadavg().map((value) => value.toFixed(2)).join(' ')}`);
  if (json) console.log(JSON.stringify({ benchmark: 'scheduler', machine, anchor: ANCHOR, targetPlacementsPerSecond: TARGET_PLACEMENTS_PER_SECOND, singleDeploy, rows }));
}

main().catch((error: unknown) => {
  console.error(`bench:scheduler failed: ${(error as Error).stack ?? String(error)}`);
  process.exit(1);
});
