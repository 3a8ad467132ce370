// The executor over a real ClusterStateMachine with real processes: three
// replicas of an HTTP process app placed on this node all answer; one killed
// comes back; a new executor over the same folder adopts without restarting;
// scaling to 0 stops them all; status reports land in the state.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { request } from 'undici';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { appSpec, registerNode } from '../../state/test/fixtures.js';
import type { AppSpec } from '../../state/types.js';
import { Executor } from '../executor.js';
import { ProcessRuntime } from '../process-runtime.js';
import { eventually, freePorts } from './helpers.js';
import { TestCluster } from './services.js';

const root = mkdtempSync(join(tmpdir(), 'hivemind-executor-'));
const executors: Executor[] = [];

const SERVER = [
  "const http = require('node:http');",
  'const port = Number(process.env.BASE_PORT) + Number(process.env.HIVEMIND_SLOT);',
  "http.createServer((q, s) => s.end(process.env.HIVEMIND_INSTANCE + ' ' + process.pid)).listen(port, '127.0.0.1', () => console.log('listening on ' + port));",
  "process.on('SIGTERM', () => process.exit(0));",
].join(' ');

const CHECK = "fetch('http://127.0.0.1:' + (Number(process.env.BASE_PORT) + Number(process.env.HIVEMIND_SLOT))).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))";

function processApp(name: string, basePort: number, overrides: Partial<AppSpec> = {}): AppSpec {
  return appSpec({
    name,
    image: undefined,
    command: [process.execPath, '-e', SERVER],
    environment: { BASE_PORT: String(basePort) },
    ports: [],
    limits: {},
    reservations: {},
    replicas: 3,
    restart: { condition: 'any', delayMs: 100, windowMs: 0 },
    healthcheck: { test: ['CMD', process.execPath, '-e', CHECK], intervalMs: 500, timeoutMs: 5000, retries: 3, startPeriodMs: 0 },
    stopGraceMs: 3000,
    ...overrides,
  });
}

function executor(cluster: TestCluster, dataDir: string, registry = new Registry()): Executor {
  const made = new Executor(cluster.services('n1', dataDir, registry), {
    runtimes: [new ProcessRuntime({ stateDir: join(dataDir, 'executor', 'process'), pollIntervalMs: 100 })],
    reconcileIntervalMs: 500,
    statusFlushMs: 50,
  });
  executors.push(made);
  return made;
}

function placeAll(cluster: TestCluster, app: string): void {
  const ids = cluster.machine.instances({ app }).map((instance) => instance.id);
  cluster.ok({ type: 'instance.place', placements: ids.map((id) => ({ id, node: 'n1' })) });
}

async function answer(port: number): Promise<string | undefined> {
  try {
    const response = await request(`http://127.0.0.1:${port}/`, { headersTimeout: 2000, bodyTimeout: 2000 });
    return await response.body.text();
  } catch {
    return undefined;
  }
}

test.after(async () => {
  for (const made of executors) await made.stop();
  // Whatever the tests left running: kill each recorded process group.
  const runtime = new ProcessRuntime({ stateDir: join(root, 'node', 'executor', 'process') });
  await runtime.open();
  for (const workload of await runtime.list()) if (workload.state === 'running') await runtime.stop(workload.id, { signal: 'SIGKILL', graceMs: 0 });
  await runtime.close();
  rmSync(root, { recursive: true, force: true });
});

test('three replicas run and answer, a killed one comes back, an adopting executor restarts nothing, scale to 0 stops all', async () => {
  const [basePort] = await freePorts(1);
  // Three consecutive ports from a free one: good enough on loopback in a test.
  const ports = [basePort!, basePort! + 1, basePort! + 2];
  const cluster = new TestCluster();
  cluster.ok(registerNode('n1'));
  cluster.ok({ type: 'app.deploy', spec: processApp('web', basePort!) });
  placeAll(cluster, 'web');
  const dataDir = join(root, 'node');
  const registry = new Registry();
  const first = executor(cluster, dataDir, registry);
  await first.start();

  const answers = await eventually('all three replicas to answer', async () => {
    const all = await Promise.all(ports.map(answer));
    return all.every((text) => text !== undefined) ? (all as string[]) : undefined;
  }, 30_000);
  const ids = cluster.machine.instances({ app: 'web' }).map((instance) => instance.id);
  assert.equal(answers.map((text) => text.split(' ')[0]), ids);
  await eventually('the state to show three healthy instances', () => cluster.machine.instances({ app: 'web' }).every((instance) => instance.status.state === 'healthy' && instance.status.reportedBy === 'n1'), 30_000);
  const reports = cluster.submitted.filter((command) => command.type === 'instance.status');
  assert.ok(reports.length >= 1 && reports.length < 20, `status reports are batched (${reports.length} commands)`);
  assert.ok(readFileSync(join(dataDir, 'executor', 'logs', `${ids[1]}.log`), 'utf8').includes(`listening on ${ports[1]}`));

  // Kill the server of slot 1 from outside: the restart policy brings it back.
  const pidBefore = Number(answers[1]!.split(' ')[1]);
  process.kill(pidBefore, 'SIGKILL');
  const back = await eventually('slot 1 to come back with a new process', async () => {
    const text = await answer(ports[1]!);
    return text !== undefined && Number(text.split(' ')[1]) !== pidBefore ? text : undefined;
  }, 30_000);
  assert.ok(back.startsWith(`${ids[1]} `));
  const metrics = await registry.metrics();
  assert.match(metrics, /hivemind_executor_starts_total{outcome="started"} 4/);
  assert.match(metrics, /hivemind_executor_restarts_total 1/);
  assert.match(metrics, /hivemind_executor_start_duration_seconds_count 4/, 'each successful start is timed');
  const becameHealthy = /hivemind_executor_health_transitions_total\{to="healthy"\} (\d+)/.exec(metrics);
  assert.ok(becameHealthy !== null && Number(becameHealthy[1]) >= 3, `three replicas became healthy (${becameHealthy?.[1]})`);
  await eventually('slot 1 healthy again in the state', () => cluster.machine.instance(ids[1]!)?.status.state === 'healthy', 30_000);

  // A simulated agent restart: a new executor over the same data directory adopts the three processes.
  const pids = (await Promise.all(ports.map(answer))).map((text) => text?.split(' ')[1]);
  await first.stop();
  const second = executor(cluster, dataDir);
  await second.start();
  await new Promise((resolve) => setTimeout(resolve, 1500));
  assert.equal((await Promise.all(ports.map(answer))).map((text) => text?.split(' ')[1]), pids, 'the same processes answer: nothing restarted');
  assert.is(second.view().length, 3);

  // Scale to 0: the instances are gone from the state, so every process stops.
  cluster.ok({ type: 'app.scale', tenant: 'default', name: 'web', replicas: 0 });
  await eventually('the state to show them stopped', () => cluster.machine.instances({ app: 'web' }).every((instance) => instance.status.state === 'stopped'), 30_000);
  await eventually('every replica to stop', async () => (await Promise.all(ports.map(answer))).every((text) => text === undefined), 30_000);
  await eventually('the executor to forget them', () => second.view().length === 0 && !second.runs(ids[0]!), 10_000);
});

test('a node that leaves its cluster stops every workload it ran, those it started and those it adopted', async () => {
  const [basePort] = await freePorts(1);
  const ports = [basePort!, basePort! + 1];
  const cluster = new TestCluster();
  cluster.ok(registerNode('n1'));
  cluster.ok({ type: 'app.deploy', spec: processApp('leaving', basePort!, { replicas: 2 }) });
  placeAll(cluster, 'leaving');
  const dataDir = join(root, 'leaving-node');
  const first = executor(cluster, dataDir);
  await first.start();
  await eventually('both replicas to answer', async () => ((await Promise.all(ports.map(answer))).every((text) => text !== undefined) ? true : undefined), 30_000);

  // A restart in between: the second executor only adopts what the first started.
  await first.stop();
  const second = executor(cluster, dataDir);
  await second.start();
  await second.leave();
  assert.equal(await Promise.all(ports.map(answer)), [undefined, undefined], 'no replica answers once the node left');
  await second.stop();
  const runtime = new ProcessRuntime({ stateDir: join(dataDir, 'executor', 'process') });
  await runtime.open();
  assert.equal(await runtime.list(), [], 'the runtime holds no workload, running or exited');
  await runtime.close();
});

test('exits follow the restart policy: exited without a restart, failed after max attempts', async () => {
  const cluster = new TestCluster();
  cluster.ok(registerNode('n1'));
  cluster.ok({
    type: 'app.deploy',
    spec: processApp('once', 0, { command: ['/bin/sh', '-c', 'echo done; exit 3'], replicas: 1, healthcheck: undefined, restart: { condition: 'none', delayMs: 0, windowMs: 0 } }),
  });
  cluster.ok({
    type: 'app.deploy',
    spec: processApp('crash', 0, { command: ['/bin/sh', '-c', 'exit 5'], replicas: 1, healthcheck: undefined, restart: { condition: 'on-failure', delayMs: 50, maxAttempts: 2, windowMs: 60_000 } }),
  });
  cluster.ok({ type: 'app.deploy', spec: appSpec({ name: 'boxed', replicas: 1, limits: {}, reservations: {} }) });
  placeAll(cluster, 'once');
  placeAll(cluster, 'crash');
  placeAll(cluster, 'boxed');
  const target = executor(cluster, join(root, 'policy'));
  await target.start();
  const once = await eventually('the one-shot app to be reported exited', () => {
    const status = cluster.machine.instances({ app: 'once' })[0]?.status;
    return status?.state === 'exited' ? status : undefined;
  }, 20_000);
  assert.is(once.exitCode, 3);
  assert.match(once.message ?? '', /not restarted: the restart policy is "none"/);
  const crash = await eventually('the crashing app to be reported failed', () => {
    const status = cluster.machine.instances({ app: 'crash' })[0]?.status;
    return status?.state === 'failed' ? status : undefined;
  }, 20_000);
  assert.is(crash.exitCode, 5);
  assert.match(crash.message ?? '', /gave up after 2 restarts within 60s/);
  const boxed = await eventually('the image app to be reported failed', () => {
    const status = cluster.machine.instances({ app: 'boxed' })[0]?.status;
    return status?.state === 'failed' ? status : undefined;
  }, 20_000);
  assert.match(boxed.message ?? '', /runs image "nginx:1.25" but node n1 has no containerd/);
  // Nothing more happens to them: the one-shot stays exited and is not started again.
  await new Promise((resolve) => setTimeout(resolve, 1000));
  assert.is(readFileSync(join(root, 'policy', 'executor', 'logs', `${cluster.machine.instances({ app: 'once' })[0]!.id}.log`), 'utf8'), 'done\n');
});


test('a workload whose healthcheck fails is stopped, reported with why, and counted as a failure (what a rollout\'s health gate reads)', async () => {
  const cluster = new TestCluster();
  cluster.ok(registerNode('n1'));
  cluster.ok({
    type: 'app.deploy',
    spec: processApp('sick', 0, {
      command: ['sleep', '300'],
      replicas: 1,
      healthcheck: { test: ['CMD', '/bin/sh', '-c', 'exit 1'], intervalMs: 200, timeoutMs: 2000, retries: 1, startPeriodMs: 0 },
      restart: { condition: 'on-failure', delayMs: 60_000, windowMs: 0 },
    }),
  });
  placeAll(cluster, 'sick');
  const target = executor(cluster, join(root, 'sick'));
  await target.start();
  const id = cluster.machine.instances({ app: 'sick' })[0]!.id;
  const reported = (): string[] => cluster.submitted.flatMap((command) => (command.type === 'instance.status' ? command.updates.filter((update) => update.id === id).map((update) => update.state) : []));
  // The executor stops a workload that failed its healthcheck (the restart policy then decides), reporting why; the
  // failure counts against a new version in a rollout (scheduler/readiness.ts, hasFailed).
  // Two reports: unhealthy (the failure counted), then the exit of the stop; a flush may send them apart.
  const instance = await eventually('the stop after the failing healthcheck to be reported', () => {
    const found = cluster.machine.instance(id);
    return found !== undefined && found.status.state !== 'unhealthy' && (found.failures ?? 0) > 0 ? found : undefined;
  }, 20_000);
  assert.match(instance.status.message ?? '', /after failing its health check/);
  assert.not.ok(reported().includes('healthy'), `never healthy: ${reported()}`);
  await target.stop();
});

test('an instance retired on this node before it ever ran is reported stopped', async () => {
  const cluster = new TestCluster();
  cluster.ok(registerNode('n1'));
  cluster.ok({ type: 'app.deploy', spec: processApp('early', 0, { command: ['sleep', '100000'], replicas: 2, healthcheck: undefined }) });
  placeAll(cluster, 'early');
  cluster.ok({ type: 'app.scale', tenant: 'default', name: 'early', replicas: 1 });
  const retired = cluster.machine.instances({ app: 'early' }).find((instance) => instance.desired === 'stopped');
  assert.ok(retired, 'scaling down retires a placed instance');
  const target = executor(cluster, join(root, 'retired'));
  await target.start();
  await eventually('the retired instance to be reported stopped', () => {
    const instance = cluster.machine.instance(retired.id);
    return instance === undefined || instance.status.state === 'stopped';
  }, 20_000);
  assert.ok(!target.runs(retired.id), 'nothing was started for it');
  const kept = cluster.machine.instances({ app: 'early' }).find((instance) => instance.desired === 'running');
  await eventually('the kept instance to run', () => cluster.machine.instance(kept!.id)?.status.state === 'running', 20_000);
  await target.stop();
  const runtime = new ProcessRuntime({ stateDir: join(root, 'retired', 'executor', 'process') });
  await runtime.open();
  for (const workload of await runtime.list()) if (workload.state === 'running') await runtime.stop(workload.id, { signal: 'SIGKILL', graceMs: 0 });
  await runtime.close();
});

test.run();
