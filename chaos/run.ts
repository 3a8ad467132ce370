/**
 * One chaos run, start to end: test hosts, a cluster of real agents, the
 * workload, the faults of the schedule, the heal, the wait for recovery, the
 * final reads, the checks, and the files (history, summary, HTML report,
 * node logs). Whatever happens, `runChaos` kills the agents and removes the
 * hosts before it returns or throws.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatCheckResult } from './check-report.js';
import { readHistoryFile } from './history-file.js';
import { ApiClient, clusterCaBundle } from './http.js';
import { findLeader, NemesisRunner } from './nemesis.js';
import { missingPrerequisite, rangeInUse, removeLeftovers, TestNetwork } from './network.js';
import { ChaosNode } from './nodes.js';
import { HistoryRecorder, type EventCounts, type HistoryEvent } from './recorder.js';
import { renderReport } from './report-html.js';
import { TimelineBuilder } from './timeline.js';
import { planSchedule, type NemesisSelection } from './schedule.js';
import { formatSummary, summarize, type DeploySummary, type RecoveryResult, type RunSummary } from './summary.js';
import { awaitConvergence, DeployWorkload } from './workload-deploy.js';
import { killWorkloadsUnder } from './workload-processes.js';
import { readRegister, RegisterWorkload, type WorkloadTarget } from './workload-register.js';

/** Settings of one run (the CLI's flags). */
export interface RunOptions {
  readonly nodes: number;
  readonly timeMs: number;
  readonly selections: readonly NemesisSelection[];
  /** The workload flag as given (`register`, `deploy`, `register,deploy`), for the summary. */
  readonly workload: string;
  readonly workloads: { readonly register: boolean; readonly deploy: boolean };
  /** Clients of the deploy workload. */
  readonly deployClients: number;
  /** How long after the recovery the deploy workload's apps may take to converge. */
  readonly convergeBoundMs: number;
  /** The agents' `--reschedule-grace`, or undefined for their default. */
  readonly rescheduleGrace: string | undefined;
  readonly seed: number;
  readonly outDirectory: string;
  readonly tickMs: number;
  readonly voterGrace: string;
  readonly clientsPerNode: number;
  readonly keyCount: number;
  readonly recoveryBoundMs: number;
  /** Extra environment for the agents (the broken-build proof sets its test flag here). */
  readonly agentEnvironment: Readonly<Record<string, string>>;
  /** The command line that reproduces this run, for the summary. */
  readonly command: string;
  readonly log: (line: string) => void;
  /** Aborting ends the faulty phase early; the run still heals, cleans up and reports. */
  readonly signal: AbortSignal;
}

/** The first process number of the final reads (one process per node). */
const FINAL_PROCESS_BASE = 10_000;
/** The agents' data directories live in a temporary folder named so. */
const DATA_FOLDER_PREFIX = 'hmchaos-data-';
const READY_WAIT_MS = 90_000;
const SETTLE_AFTER_RECOVERY_MS = 2000;
const CONVERGENCE_LOOK_INTERVAL_MS = 1000;

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function until<T>(what: string, timeoutMs: number, check: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}`);
    await sleep(200);
  }
}

/** Voters the membership manager aims at for `count` nodes (docs/internals/agent.md). */
function expectedVoters(count: number): number {
  return count <= 3 ? count : count >= 5 ? 5 : 3;
}

async function startCluster(nodes: readonly ChaosNode[], client: ApiClient, log: (line: string) => void): Promise<void> {
  const healthy = (node: ChaosNode) =>
    until(`${node.name} to serve`, READY_WAIT_MS, async () => {
      if (!node.alive) throw new Error(`${node.name} exited while starting (see logs/${node.host.namespace}.log)`);
      const answer = await client.call(node.origin, 'GET', '/v1/health', undefined, 1000);
      return answer.kind === 'answer' && answer.status === 200 ? true : undefined;
    });
  const [first, ...rest] = nodes;
  first!.start('agent');
  await healthy(first!);
  for (const node of rest) {
    node.start({ join: first!.peerAddress });
    await healthy(node);
  }
  const voters = expectedVoters(nodes.length);
  await until(`${voters} voters and one leader`, READY_WAIT_MS, async () => {
    const answer = await client.call(first!.origin, 'GET', '/v1/status', undefined, 2000);
    if (answer.kind !== 'answer' || answer.status !== 200) return undefined;
    return answer.body.voters?.length === voters && typeof answer.body.leader === 'string' ? true : undefined;
  });
  log(`cluster ready: ${nodes.map((node) => `${node.name} at ${node.host.address}`).join(', ')}; leader ${(await findLeader(nodes, client))?.name ?? 'unknown'}`);
}

/** Waits until every node serves a linearizable read; per node the time it took, null past the bound. */
async function awaitRecovery(nodes: readonly ChaosNode[], client: ApiClient, key: string, boundMs: number): Promise<RecoveryResult> {
  const started = Date.now();
  const byNode: Record<string, number | null> = {};
  const lastFailure: Record<string, string> = {};
  await Promise.all(
    nodes.map(async (node) => {
      let last = 'no request sent';
      for (;;) {
        const elapsed = Date.now() - started;
        // An agent that exited on its own (not by a fault) cannot recover: that is a finding, not a wait.
        if (elapsed > boundMs || !node.alive) {
          byNode[node.name] = null;
          lastFailure[node.name] = node.alive ? last : 'the agent exited';
          return;
        }
        const answer = await client.call(node.origin, 'GET', `/v1/kv/${encodeURIComponent(key)}`, undefined, Math.max(500, Math.min(3000, boundMs - elapsed)));
        if (answer.kind === 'answer' && (answer.status === 200 || answer.status === 404)) {
          byNode[node.name] = Date.now() - started;
          return;
        }
        last = answer.kind === 'answer' ? `${answer.status} ${describeBody(answer.body)}` : `${answer.kind}: ${answer.message}`;
        await sleep(100);
      }
    }),
  );
  const times = Object.values(byNode);
  let slowestMs = 0;
  for (const time of times) if (time !== null && time > slowestMs) slowestMs = time;
  const failed = Object.keys(lastFailure).length > 0;
  return { boundMs, byNode, ms: times.some((time) => time === null) ? null : slowestMs, ...(failed ? { lastFailure } : {}) };
}

/** An answer's body in one short line: its error's code and message when it has one (src/api/errors.ts). */
function describeBody(body: unknown): string {
  const error = typeof body === 'object' && body !== null ? (body as { error?: { code?: unknown; message?: unknown } }).error : undefined;
  const text = typeof error?.message === 'string' ? `${String(error.code)}: ${error.message}` : JSON.stringify(body) ?? '';
  return text.length > 200 ? `${text.slice(0, 200)}...` : text;
}

/** Runs a chaos run and returns its summary; files are in `options.outDirectory`. */
export async function runChaos(options: RunOptions): Promise<RunSummary> {
  const { log } = options;
  const missing = await missingPrerequisite();
  if (missing !== null) throw new Error(missing);
  const leftovers = await removeLeftovers();
  // Data folders of a harness that was killed outright; the machine-wide lock means no run uses them now.
  const strays = killWorkloadsUnder(join(tmpdir(), DATA_FOLDER_PREFIX));
  if (strays > 0) leftovers.push(`${strays} workload process group(s)`);
  for (const name of readdirSync(tmpdir()).filter((entry) => entry.startsWith(DATA_FOLDER_PREFIX))) {
    rmSync(join(tmpdir(), name), { recursive: true, force: true });
    leftovers.push(`folder ${join(tmpdir(), name)}`);
  }
  if (leftovers.length > 0) log(`removed leftovers of an earlier run: ${leftovers.join(', ')}`);
  const inUse = await rangeInUse();
  if (inUse !== null) throw new Error(`the test range is already in use on this machine: ${inUse}`);
  mkdirSync(options.outDirectory, { recursive: true });
  const dataRoot = mkdtempSync(join(tmpdir(), DATA_FOLDER_PREFIX));
  const token = `hmchaos.${randomBytes(16).toString('hex')}`;
  let network: TestNetwork | undefined;
  let nodes: ChaosNode[] = [];
  const client = new ApiClient({ token, connectTimeoutMs: 1000, requestTimeoutMs: 3000, caBundle: () => clusterCaBundle(nodes.map((node) => node.dataDirectory)) });
  try {
    network = await TestNetwork.create(options.nodes);
    const settings = { token, tickMs: options.tickMs, voterGrace: options.voterGrace, rescheduleGrace: options.rescheduleGrace, dataRoot, logDirectory: join(options.outDirectory, 'logs'), environment: options.agentEnvironment };
    nodes = network.hosts.map((host) => new ChaosNode(host, settings));
    await startCluster(nodes, client, log);
    return await exercise(options, network, nodes, client, dataRoot);
  } finally {
    await Promise.all(nodes.map((node) => node.stop(3000)));
    // Workloads outlive their agent by design (a restarted agent adopts them).
    killWorkloadsUnder(dataRoot);
    await removeLeftovers();
    await client.close();
    rmSync(dataRoot, { recursive: true, force: true });
  }
}

async function exercise(options: RunOptions, network: TestNetwork, nodes: ChaosNode[], client: ApiClient, dataRoot: string): Promise<RunSummary> {
  const { log } = options;
  const historyPath = join(options.outDirectory, 'history.jsonl');
  const startedAt = performance.now();
  // The register history is not kept in memory (a long run's is millions of events): the timeline takes each event, the checker reads the file back.
  const timeline = new TimelineBuilder();
  const recorder = new HistoryRecorder(historyPath, startedAt, { keepEvents: false, onEvent: (event) => timeline.add(event) });
  // App operations have their own file: history.jsonl stays a register history that `chaos:check` reads.
  // Their events stay in memory for the convergence check (a few per second at most).
  const deployRecorder = options.workloads.deploy
    ? new HistoryRecorder(join(options.outDirectory, 'deploy-history.jsonl'), startedAt, { onEvent: (event) => timeline.add(event) })
    : undefined;
  const keys = Array.from({ length: options.keyCount }, (_, index) => `chaos/k${index}`);
  const targets: WorkloadTarget[] = nodes.map((node) => ({ name: () => node.name, origin: node.origin }));
  const workload = options.workloads.register
    ? new RegisterWorkload({ seed: options.seed, keys, targets, clientsPerNode: options.clientsPerNode, client, recorder, thinkMsMax: 30, backoffMs: 200 })
    : undefined;
  const deployWorkload =
    deployRecorder === undefined
      ? undefined
      : new DeployWorkload({ seed: options.seed, clients: options.deployClients, targets, client, recorder: deployRecorder, thinkMsMax: 300, backoffMs: 300 });
  const schedule = planSchedule({ seed: options.seed, nodeCount: nodes.length, timeMs: options.timeMs, selections: options.selections });
  log(`schedule: ${schedule.length} fault(s): ${schedule.map((fault) => `#${fault.id} ${fault.nemesis} ${fault.variant} at ${(fault.startMs / 1000).toFixed(1)} s for ${(fault.durationMs / 1000).toFixed(1)} s`).join('; ') || 'none'}`);
  const nemesis = new NemesisRunner({ network, nodes, client, now: () => recorder.now(), log });
  const phase = new AbortController();
  const stopPhase = () => phase.abort();
  options.signal.addEventListener('abort', stopPhase, { once: true });
  const timer = setTimeout(stopPhase, options.timeMs);
  workload?.start();
  deployWorkload?.start();
  const progress = setInterval(() => {
    recorder.flush();
    deployRecorder?.flush();
    const ok = recorder.counts.ok + (deployRecorder?.counts.ok ?? 0);
    log(`${(recorder.now() / 1000).toFixed(0)} s: ${ok} ok operations`);
  }, 10_000);
  try {
    await nemesis.run(schedule, phase.signal);
    if (!phase.signal.aborted) await new Promise((resolve) => phase.signal.addEventListener('abort', resolve, { once: true }));
  } finally {
    clearTimeout(timer);
    options.signal.removeEventListener('abort', stopPhase);
    await nemesis.healEverything();
  }
  const healAtMs = recorder.now();
  log(`healed everything at ${(healAtMs / 1000).toFixed(1)} s; waiting for every node to serve a linearizable read`);
  const recovery = await awaitRecovery(nodes, client, keys[0]!, options.recoveryBoundMs);
  log(`recovery: ${recovery.ms === null ? 'not within the bound' : `${(recovery.ms / 1000).toFixed(1)} s`}`);
  if (!options.signal.aborted) await sleep(SETTLE_AFTER_RECOVERY_MS);
  await Promise.all([workload?.stop(), deployWorkload?.stop()]);
  clearInterval(progress);
  const workloadEndMs = recorder.now();
  let deploy: DeploySummary | undefined;
  if (deployRecorder !== undefined) {
    deployRecorder.flush();
    log(`waiting for the apps to converge (bound ${(options.convergeBoundMs / 1000).toFixed(0)} s)`);
    const convergence = await awaitConvergence({
      nodes: nodes.map((node) => ({ name: node.name, origin: node.origin })),
      client,
      dataRoot,
      events: deployRecorder.events,
      boundMs: options.convergeBoundMs,
      intervalMs: CONVERGENCE_LOOK_INTERVAL_MS,
    });
    log(`convergence: ${convergence.ms === null ? `not within the bound; ${convergence.violations.length} finding(s)` : `${(convergence.ms / 1000).toFixed(1)} s`}`);
    const operations = { deploy: { ok: 0, fail: 0, info: 0 }, scale: { ok: 0, fail: 0, info: 0 }, delete: { ok: 0, fail: 0, info: 0 } };
    for (const event of deployRecorder.events) {
      if (event.type !== 'invoke' && (event.f === 'deploy' || event.f === 'scale' || event.f === 'delete')) operations[event.f][event.type]++;
    }
    deploy = { operations, convergence };
  }
  // The workloads' operations, before the final reads are recorded.
  const counts: EventCounts = { ...recorder.counts };
  for (const type of ['invoked', 'ok', 'fail', 'info'] as const) counts[type] += deployRecorder?.counts[type] ?? 0;
  const finalProcesses = new Set<number>();
  for (const node of options.workloads.register ? nodes : []) {
    const process = FINAL_PROCESS_BASE + node.host.index;
    finalProcesses.add(process);
    for (const key of keys) {
      for (let attempt = 0; attempt < 3; attempt++) {
        const read = await readRegister({ client, recorder }, process, { name: () => node.name, origin: node.origin }, key);
        if (read.outcome.type === 'ok') break;
        await sleep(500);
      }
    }
  }
  recorder.flush();
  const parsed = readHistoryFile(historyPath);
  if (!parsed.ok) throw new Error(`the recorded history is invalid (a harness bug): ${parsed.error.message}`);
  const summary = summarize({
    seed: options.seed,
    command: options.command,
    nodes: nodes.length,
    timeMs: options.timeMs,
    nemesis: options.selections.map((selection) => selection.nemesis).join(','),
    workload: options.workload,
    outDirectory: options.outDirectory,
    history: parsed.history,
    counts,
    keys: options.workloads.register ? keys : [],
    finalProcesses,
    faults: nemesis.records,
    workloadEndMs,
    healAtMs,
    recovery,
    ...(deploy === undefined ? {} : { deploy, otherOkOperations: timedOkOperations(deployRecorder!.events) }),
    other: [],
    formatCheck: formatCheckResult,
  });
  writeFileSync(join(options.outDirectory, 'summary.json'), JSON.stringify(summary, null, 2) + '\n');
  writeFileSync(join(options.outDirectory, 'summary.txt'), formatSummary(summary) + '\n');
  writeFileSync(join(options.outDirectory, 'report.html'), renderReport(summary, timeline.view()));
  return summary;
}

/** The `ok` operations of a history (each process does one at a time), with call and return times. */
function timedOkOperations(events: readonly HistoryEvent[]): { callTime: number; returnTime: number }[] {
  const calls = new Map<number, number>();
  const result: { callTime: number; returnTime: number }[] = [];
  for (const event of events) {
    if (event.type === 'invoke') calls.set(event.process, event.time);
    else if (event.type === 'ok' && calls.has(event.process)) result.push({ callTime: calls.get(event.process)!, returnTime: event.time });
  }
  return result;
}
