/**
 * The outcome of a run: figures, faults, checker findings and the verdict,
 * as JSON (`summary.json`) and as the text the CLI prints. Pure.
 */
import { checkDurability, findUnwrittenReads, longestGapInSortedMs, quantile, type DurabilityResult, type UnwrittenRead } from './checks.js';
import type { History } from './history.js';
import { checkLinearizability, type CheckResult, type Verdict } from './linearizability.js';
import type { FaultRecord } from './nemesis.js';
import type { AppOperationFunction } from './recorder.js';
import type { ConvergenceResult } from './workload-deploy.js';

/** The deploy workload's part of a run: its operations by kind and outcome, and the convergence after the heal. */
export interface DeploySummary {
  readonly operations: Readonly<Record<AppOperationFunction, { readonly ok: number; readonly fail: number; readonly info: number }>>;
  readonly convergence: ConvergenceResult;
}

/** A completed `ok` operation of a workload other than the register one, for the figures. */
export interface TimedOperation {
  readonly callTime: number;
  readonly returnTime: number;
}

/** Recovery after the final heal: per node, the time until it served a linearizable read. */
export interface RecoveryResult {
  readonly boundMs: number;
  /** Milliseconds from the heal until the node served; null if it did not within the bound. */
  readonly byNode: Readonly<Record<string, number | null>>;
  /** The slowest node's time; null if some node did not recover. */
  readonly ms: number | null;
  /** For each node that did not recover: the last answer it gave (status and message) or how the last request failed. */
  readonly lastFailure?: Readonly<Record<string, string>>;
}

/** A fault with the unavailability measured around it. */
export interface FaultSummary extends FaultRecord {
  /** The longest stretch, from the fault's start to the next fault (or the end of recovery), with no ok operation. */
  readonly unavailableMs: number;
}

/** Everything a run reports. */
export interface RunSummary {
  readonly seed: number;
  readonly command: string;
  readonly nodes: number;
  readonly timeMs: number;
  readonly nemesis: string;
  readonly workload: string;
  readonly outDirectory: string;
  readonly operations: { readonly total: number; readonly ok: number; readonly fail: number; readonly info: number; readonly okPerSecond: number };
  readonly latencyMs: { readonly p50: number; readonly p99: number; readonly max: number };
  readonly faults: readonly FaultSummary[];
  readonly healAtMs: number;
  readonly recovery: RecoveryResult;
  /** Present when the deploy workload ran. */
  readonly deploy?: DeploySummary;
  readonly checks: {
    readonly linearizability: Verdict;
    readonly linearizabilityReport: string;
    readonly unwrittenReads: readonly UnwrittenRead[];
    readonly durability: DurabilityResult;
    readonly recovered: boolean;
    /** Findings of other workloads (deploy convergence), one line each; empty when all is well. */
    readonly other: readonly string[];
  };
  /** `valid`: every check passed. `invalid`: some check found a violation. `unknown`: the linearizability search gave up. */
  readonly verdict: 'valid' | 'invalid' | 'unknown';
  readonly checkSeconds: number;
}

/** What `summarize` needs besides the history. */
export interface SummaryInput {
  readonly seed: number;
  readonly command: string;
  readonly nodes: number;
  readonly timeMs: number;
  readonly nemesis: string;
  readonly workload: string;
  readonly outDirectory: string;
  readonly history: History;
  /** Completions by type, from the raw events (the parsed history drops fails). */
  readonly counts: { readonly ok: number; readonly fail: number; readonly info: number; readonly invoked: number };
  readonly keys: readonly string[];
  readonly finalProcesses: ReadonlySet<number>;
  readonly faults: readonly FaultRecord[];
  /** When the workload started and stopped, on the history's clock. */
  readonly workloadEndMs: number;
  readonly healAtMs: number;
  readonly recovery: RecoveryResult;
  readonly deploy?: DeploySummary;
  /** The deploy workload's `ok` operations, counted in throughput, latency and unavailability with the register's. */
  readonly otherOkOperations?: readonly TimedOperation[];
  readonly other: readonly string[];
  readonly formatCheck: (result: CheckResult) => string;
}

/** Runs the checkers and computes the figures. */
export function summarize(input: SummaryInput): RunSummary {
  const { history } = input;
  const started = performance.now();
  const linearizability = checkLinearizability(history.operations);
  const checkSeconds = (performance.now() - started) / 1000;
  const workloadOperations = history.operations.filter((operation) => !input.finalProcesses.has(operation.process));
  const completed: TimedOperation[] = [...workloadOperations.filter((operation) => operation.outcome === 'ok'), ...(input.otherOkOperations ?? [])];
  const okTimes = completed.map((operation) => operation.returnTime).sort((a, b) => a - b);
  const latencies = completed.map((operation) => operation.returnTime - operation.callTime);
  const recoveryEndMs = input.healAtMs + (input.recovery.ms ?? input.recovery.boundMs);
  const faults = input.faults.map((fault, position): FaultSummary => {
    const windowEnd = input.faults[position + 1]?.startMs ?? Math.max(recoveryEndMs, fault.endMs ?? recoveryEndMs);
    return { ...fault, unavailableMs: Math.round(longestGapInSortedMs(okTimes, fault.startMs, Math.min(windowEnd, input.workloadEndMs))) };
  });
  const unwrittenReads = findUnwrittenReads(history.operations);
  const durability = checkDurability(history.operations, input.keys, input.finalProcesses);
  const recovered = input.recovery.ms !== null;
  const violation =
    linearizability.verdict === 'not linearizable' ||
    unwrittenReads.length > 0 ||
    durability.lost.length > 0 ||
    durability.disagreements.length > 0 ||
    !recovered ||
    (input.deploy !== undefined && input.deploy.convergence.ms === null) ||
    input.other.length > 0;
  const verdict = violation ? 'invalid' : linearizability.verdict === 'unknown' ? 'unknown' : 'valid';
  const activeSeconds = Math.max(0.001, input.workloadEndMs / 1000);
  return {
    seed: input.seed,
    command: input.command,
    nodes: input.nodes,
    timeMs: input.timeMs,
    nemesis: input.nemesis,
    workload: input.workload,
    outDirectory: input.outDirectory,
    operations: { total: input.counts.invoked, ok: input.counts.ok, fail: input.counts.fail, info: input.counts.info, okPerSecond: Math.round((completed.length / activeSeconds) * 10) / 10 },
    latencyMs: { p50: round(quantile(latencies, 0.5)), p99: round(quantile(latencies, 0.99)), max: round(quantile(latencies, 1)) },
    faults,
    healAtMs: input.healAtMs,
    recovery: input.recovery,
    ...(input.deploy === undefined ? {} : { deploy: input.deploy }),
    checks: { linearizability: linearizability.verdict, linearizabilityReport: input.formatCheck(linearizability), unwrittenReads, durability, recovered, other: input.other },
    verdict,
    checkSeconds: round(checkSeconds),
  };
}

function round(value: number): number {
  return Math.round(value * 10) / 10;
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

/** The summary as the CLI prints it; the last lines are the verdict and the command that reproduces the run. */
export function formatSummary(summary: RunSummary): string {
  const { operations, latencyMs, checks } = summary;
  const lines = [
    `chaos run: seed ${summary.seed}, ${summary.nodes} nodes, ${seconds(summary.timeMs)} of faults, nemesis ${summary.nemesis || 'none'}, workload ${summary.workload}`,
    `operations: ${operations.total} (ok ${operations.ok}, fail ${operations.fail}, info ${operations.info}); ${operations.okPerSecond} ok/s; latency of ok operations p50 ${latencyMs.p50} ms, p99 ${latencyMs.p99} ms, max ${latencyMs.max} ms`,
    `faults: ${summary.faults.length}${summary.faults.length > 0 ? ' (unavailable: the longest stretch with no ok operation, from the fault to the next one)' : ''}`,
  ];
  for (const fault of summary.faults) {
    const span = `${seconds(fault.startMs)} to ${fault.endMs === null ? 'never healed' : seconds(fault.endMs)}`;
    lines.push(`  #${fault.id} ${span}: ${fault.nemesis} ${fault.variant}: ${fault.description}; unavailable ${seconds(fault.unavailableMs)}`);
    for (const note of fault.notes) lines.push(`      note: ${note}`);
  }
  const recovery = summary.recovery;
  const perNode = Object.entries(recovery.byNode).map(([name, ms]) => `${name} ${ms === null ? `not recovered${recovery.lastFailure?.[name] === undefined ? '' : ` (last: ${recovery.lastFailure[name]})`}` : seconds(ms)}`).join(', ');
  lines.push(`recovery after the heal at ${seconds(summary.healAtMs)}: ${recovery.ms === null ? `NOT within ${seconds(recovery.boundMs)}` : `${seconds(recovery.ms)} (bound ${seconds(recovery.boundMs)})`}; ${perNode}`);
  lines.push('checks:');
  lines.push(`  linearizability: ${checks.linearizability} (checked in ${summary.checkSeconds} s)`);
  if (checks.linearizability !== 'linearizable') for (const line of checks.linearizabilityReport.split('\n')) lines.push(`    ${line}`);
  lines.push(`  acknowledged writes lost: ${checks.durability.lost.length === 0 ? 'none' : checks.durability.lost.length}`);
  for (const lost of checks.durability.lost.slice(0, 10)) {
    lines.push(`    key ${lost.key}: final value ${JSON.stringify(lost.finalValue)}, but process ${lost.lost.process}'s ${lost.lost.f} of ${JSON.stringify(lost.lost.value)} was acknowledged at ${seconds(lost.lost.returnTime)} (called after the final value's write returned)`);
  }
  for (const disagreement of checks.durability.disagreements) lines.push(`    key ${disagreement.key}: nodes disagree at the end: ${JSON.stringify(disagreement.values)}`);
  if (checks.durability.unjudged.length > 0) lines.push(`    not judged (no final read succeeded): ${checks.durability.unjudged.join(', ')}`);
  lines.push(`  reads of unwritten values: ${checks.unwrittenReads.length === 0 ? 'none' : checks.unwrittenReads.length}`);
  for (const read of checks.unwrittenReads.slice(0, 10)) lines.push(`    key ${read.key}: process ${read.process} read ${JSON.stringify(read.value)} at ${seconds(read.callTime)}`);
  lines.push(`  recovery within the bound: ${checks.recovered ? 'yes' : 'NO'}`);
  if (summary.deploy !== undefined) for (const line of formatDeploy(summary.deploy)) lines.push(line);
  for (const finding of checks.other) lines.push(`  ${finding}`);
  lines.push(`verdict: ${summary.verdict}`);
  lines.push(`output: ${summary.outDirectory}`);
  lines.push(`reproduce: ${summary.command}`);
  return lines.join('\n');
}

/** The deploy workload's lines of the summary: its operations, then the convergence check with its findings. */
function formatDeploy(deploy: DeploySummary): string[] {
  const kinds = (Object.entries(deploy.operations) as [string, { ok: number; fail: number; info: number }][])
    .map(([f, counts]) => `${f} ${counts.ok}/${counts.fail}/${counts.info}`)
    .join(', ');
  const { convergence } = deploy;
  const apps = convergence.apps;
  const lines = [
    `  deploy operations (ok/fail/info): ${kinds}`,
    `  deploy convergence: ${convergence.ms === null ? `NOT within ${seconds(convergence.boundMs)}` : `${seconds(convergence.ms)} after the recovery (bound ${seconds(convergence.boundMs)})`}; ` +
      `apps expected present ${apps.present}, deleted ${apps.absent}, either (an unknown outcome) ${apps.either}; ${convergence.instances} instance(s), ${convergence.processes} process(es) at the last of ${convergence.looks} look(s)`,
  ];
  for (const violation of convergence.violations.slice(0, 20)) lines.push(`    ${violation}`);
  if (convergence.violations.length > 20) lines.push(`    ... and ${convergence.violations.length - 20} more (summary.json has them all)`);
  return lines;
}
