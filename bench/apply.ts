/**
 * `npm run bench:apply [-- --build DIR] [--json]`: the cost of applying one
 * command on one node, in process: validation, plan and commit through
 * `ClusterStateMachine.apply`, and `check` (what the API runs before it
 * proposes). No Raft, no disk: the part of a commit that the state machine
 * adds, on the hot paths of bench:raft (kv.put) and bench:scheduler
 * (instance.place, instance.status, node.heartbeat).
 *
 * `--build DIR` loads the state machine from another build's `dist`
 * (`git worktree add` of an older commit, `npx tsc -b` there), for a
 * before/after on the same machine in one run: both builds run, interleaved
 * round by round, and the median of the rounds is printed.
 * Run under `flock /tmp/hivemind-bench.lock`.
 */
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describeMachine } from './report.js';

interface Machine {
  apply(index: number, envelope: unknown): { ok: boolean; error?: { message: string } };
  check(command: unknown): { ok: boolean; error?: { message: string } };
}

interface Build {
  label: string;
  create(): Machine;
}

/** One measured kind: a setup of the state, then one command per apply. */
interface Case {
  name: string;
  /** Commands applied once before the measured ones. */
  setup: unknown[];
  /** The i-th measured command (fresh request ids come from the driver). */
  command(position: number): unknown;
  /** Applies per round. */
  count: number;
  /** Measure `check` instead of `apply`. */
  checkOnly?: boolean;
}

const ROUNDS = 5;
const NODES = 20;
const INSTANCES = 200;

function appSpec(name: string, replicas: number): Record<string, unknown> {
  return {
    name,
    tenant: 'default',
    command: ['sleep', '1000'],
    readOnly: false,
    replicas,
    environment: { MODE: 'production' },
    ports: [{ target: 80, protocol: 'tcp' }],
    volumes: [],
    limits: { cpuMillis: 100, memoryBytes: 64 * 1024 * 1024 },
    reservations: {},
    update: { parallelism: 1, delayMs: 0, failureAction: 'pause', order: 'stop-first', monitorMs: 0 },
    restart: { condition: 'any', delayMs: 1000, windowMs: 0 },
    constraints: [],
    labels: {},
    hivemind: {},
  };
}

function registerNode(id: string): unknown {
  return { type: 'node.register', id, addresses: { api: `${id}:7070`, peer: `${id}:7071`, gossip: `${id}:7072` }, labels: { zone: 'a' }, resources: { cpuMillis: 64_000, memoryBytes: 256 * 1024 ** 3 } };
}

const nodeIds = Array.from({ length: NODES }, (_, position) => `n${position}`);
const instanceIds = Array.from({ length: INSTANCES }, (_, slot) => `default.web.${slot}.${slot + 1}`);
const baseSetup: unknown[] = [...nodeIds.map(registerNode), { type: 'app.deploy', spec: appSpec('web', INSTANCES) }];
const PLACE_COMMANDS = 200;
const placeIds = Array.from({ length: PLACE_COMMANDS * 50 }, (_, slot) => `default.web.${slot}.${slot + 1}`);
const placeSetup: unknown[] = [...nodeIds.map(registerNode), { type: 'app.deploy', spec: appSpec('web', PLACE_COMMANDS * 50) }];

const cases: Case[] = [
  { name: 'kv.put', setup: [], command: (position) => ({ type: 'kv.put', key: `k${position % 64}`, value: 'x'.repeat(256) }), count: 20_000 },
  { name: 'node.heartbeat', setup: baseSetup, command: (position) => ({ type: 'node.heartbeat', id: nodeIds[position % NODES] }), count: 20_000 },
  {
    // Each command places 50 instances no node holds yet: the state refuses to move an instance off a node that is up.
    name: 'instance.place (50)',
    setup: placeSetup,
    command: (position) => ({ type: 'instance.place', placements: placeIds.slice(position * 50, position * 50 + 50).map((id, slot) => ({ id, node: nodeIds[(slot + position) % NODES] })) }),
    count: PLACE_COMMANDS,
  },
  {
    name: 'instance.status (50)',
    setup: baseSetup,
    command: (position) => ({
      type: 'instance.status',
      updates: instanceIds.slice((position % 4) * 50, (position % 4) * 50 + 50).map((id) => ({
        id,
        state: position % 2 === 0 ? 'running' : 'healthy',
        reportedBy: 'n0',
        reportedAt: 1_700_000_000_000 + position,
        version: 1,
        endpoint: { address: '10.210.0.5', ports: [{ target: 80, port: 80, protocol: 'tcp' }] },
      })),
    }),
    count: 2_000,
  },
  { name: 'check app.deploy', setup: baseSetup, command: (position) => ({ type: 'app.deploy', spec: appSpec(`app${position % 8}`, 3) }), count: 5_000, checkOnly: true },
];

/** Microseconds per command of one round of `testCase` on a fresh machine. */
function runRound(build: Build, testCase: Case): number {
  const machine = build.create();
  let index = 0;
  const time = 1_700_000_000_000;
  const envelope = (command: unknown): unknown => ({ requestId: `r${index}`, time: time + index, actor: 'bench', command });
  for (const command of testCase.setup) {
    index++;
    const result = machine.apply(index, envelope(command));
    if (!result.ok) throw new Error(`${build.label}: setup of ${testCase.name} refused: ${result.error?.message}`);
  }
  const commands = Array.from({ length: testCase.count }, (_, position) => testCase.command(position));
  const started = process.hrtime.bigint();
  for (const command of commands) {
    index++;
    const result = testCase.checkOnly ? machine.check(command) : machine.apply(index, envelope(command));
    if (!result.ok) throw new Error(`${build.label}: ${testCase.name} refused: ${result.error?.message}`);
  }
  return Number(process.hrtime.bigint() - started) / 1000 / testCase.count;
}

async function loadBuild(label: string, distDirectory: string): Promise<Build> {
  const module = (await import(pathToFileURL(resolve(distDirectory, 'src/state/machine.js')).href)) as { ClusterStateMachine: new () => Machine };
  return { label, create: () => new module.ClusterStateMachine() };
}

function median(values: number[]): number {
  const sorted = [...values].sort((left, right) => left - right);
  return sorted[Math.floor(sorted.length / 2)]!;
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const buildAt = args.indexOf('--build');
  const json = args.includes('--json');
  const builds = [await loadBuild('this build', resolve(import.meta.dirname, '..'))];
  if (buildAt !== -1) {
    const directory = args[buildAt + 1];
    if (directory === undefined) throw new Error('--build needs the other build\'s dist directory');
    builds.push(await loadBuild(`build in ${directory}`, directory));
  }
  console.log(`bench:apply: ${ROUNDS} rounds, builds interleaved; state of ${NODES} nodes and ${INSTANCES} instances where a case needs one (instance.place: ${PLACE_COMMANDS * 50}, each placed once)`);
  const machine = describeMachine(undefined);
  console.log(`machine: ${machine.cpuModel}, ${machine.cores} cores, Node ${machine.node}, load average ${machine.loadAverageAtStart} at start`);
  const figures: Record<string, Record<string, number>> = {};
  for (const testCase of cases) {
    const samples = new Map<string, number[]>(builds.map((build) => [build.label, []]));
    for (let round = 0; round < ROUNDS; round++) {
      const order = round % 2 === 0 ? builds : [...builds].reverse();
      for (const build of order) samples.get(build.label)!.push(runRound(build, testCase));
    }
    figures[testCase.name] = Object.fromEntries([...samples].map(([label, values]) => [label, median(values)]));
    console.log(`${testCase.name.padEnd(22)} ${[...samples].map(([label, values]) => `${label}: ${median(values).toFixed(2)} µs`).join('   ')}`);
  }
  if (json) console.log(JSON.stringify(figures));
}

await main();
