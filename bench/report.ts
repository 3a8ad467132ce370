import Table from 'cli-table3';
import { readFileSync } from 'node:fs';
import { cpus, loadavg, release, tmpdir, totalmem } from 'node:os';
import { clusterLabel } from './cluster.js';
import type { BenchSettings, Row, SystemResult } from './run-system.js';
import { median, ratio } from './stats.js';

/** The machine a run happened on, printed with every result. */
export interface Machine {
  cpuModel: string;
  cores: number;
  memoryGiB: number;
  kernel: string;
  node: string;
  etcd: string | undefined;
  /** Where the data dirs live, with its filesystem (tmpfs would make fsync free). */
  dataDisk: string;
  /** 1-minute load average when the run began: other work on the machine skews every figure. */
  loadAverageAtStart: number;
}

/** Hivemind divided by etcd at one client count (commits/s, p50, p99). */
export interface RowRatio {
  clients: number;
  throughput: number | undefined;
  p50: number | undefined;
  p99: number | undefined;
}

/** The ratios of one round: from the two rows of that client count that ran back to back. */
export interface RoundRatio extends RowRatio {
  round: number;
}

/** The smallest and largest per-round ratio. */
export interface RatioRange {
  min: number;
  max: number;
}

/** Per client count: the median of the per-round ratios (the `RowRatio` fields) and their range. */
export interface RatioSummary extends RowRatio {
  /** Rounds with both rows. */
  rounds: number;
  throughputRange: RatioRange | undefined;
  p50Range: RatioRange | undefined;
  p99Range: RatioRange | undefined;
}

/** The machine this process runs on; `etcd` is etcd's version, undefined when not installed. */
export function describeMachine(etcd: string | undefined): Machine {
  const processors = cpus();
  return {
    cpuModel: processors[0]?.model.trim() ?? 'unknown',
    cores: processors.length,
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    kernel: release(),
    node: process.version,
    etcd,
    dataDisk: `${tmpdir()} (${filesystemOf(tmpdir())})`,
    loadAverageAtStart: Math.round(loadavg()[0]! * 100) / 100,
  };
}

/** The filesystem type of the longest mount point containing `path`, from /proc/mounts. */
function filesystemOf(path: string): string {
  try {
    const mounts = readFileSync('/proc/mounts', 'utf8').trim().split('\n').map((line) => line.split(' '));
    const containing = mounts.filter(([, point]) => point !== undefined && (path === point || path.startsWith(point.endsWith('/') ? point : `${point}/`)));
    containing.sort((left, right) => right[1]!.length - left[1]!.length);
    const [device, , type] = containing[0] ?? [];
    return type ? `${type} on ${device}` : 'unknown filesystem';
  } catch {
    return 'unknown filesystem';
  }
}

/** The settings block printed before any figure. */
export function formatSettings(options: {
  settings: BenchSettings;
  machine: Machine;
  /** Per system. */
  timings: Record<string, string>;
  /** Per cluster label (`hivemind tls`): what speaks TLS, with what certificates. */
  security: Record<string, string>;
  /** How the rows of the clusters alternate, one line. */
  interleaving: string;
}): string {
  const { settings, machine, timings, security, interleaving } = options;
  const idle = Object.keys(security).length > 1 ? ', the other clusters idle' : '';
  const lines = [
    'Raft benchmark: Hivemind (consensus/server) vs etcd',
    `  cluster           3 members, one process each, loopback, fsync on, data dirs under ${machine.dataDisk}`,
    `  workload          sequential unary Put of a ${settings.valueBytes}-byte value to distinct keys, sent to the leader`,
    `  clients           ${settings.clientCounts.join(', ')}; ${settings.warmupMs / 1000} s warm-up then ${settings.durationMs / 1000} s measured per row, after ${settings.clusterWarmupMs / 1000} s of unmeasured load at 16 clients once per cluster`,
    `  clusters          ${Object.keys(security).join(', ')}`,
    `  rounds            ${settings.rounds}; every cluster started and warmed up before the first row, one under load at a time${idle}`,
    `  interleaving      ${interleaving}`,
    `  load              ${settings.shape.processes} load process(es), up to ${settings.shape.channelsPerProcess} gRPC connection(s) each, clients round-robin over them`,
    `  failover          ${settings.failoverClients} clients following the leader, SIGKILL the leader, ${settings.failoverTrials} trial(s) per cluster after all rows${idle}`,
    ...Object.entries(timings).map(([system, timing]) => `  ${`${system} timing`.padEnd(17)} ${timing}`),
    ...Object.entries(security).map(([label, text]) => `  ${label.padEnd(17)} ${text}`),
    `  machine           ${machine.cpuModel}, ${machine.cores} cores, ${machine.memoryGiB} GiB, Linux ${machine.kernel}`,
    `  software          node ${machine.node}, etcd ${machine.etcd ?? 'not installed (no etcd rows)'}`,
    `  load average      ${machine.loadAverageAtStart} (1 min) at start${busyWarning(machine)}`,
  ];
  return lines.join('\n');
}

/** A warning when other processes already kept the cores busy before the run. */
function busyWarning(machine: Machine): string {
  return machine.loadAverageAtStart > 0.5 * machine.cores
    ? '; WARNING: other processes are busy on this machine, figures will be low and noisy'
    : '';
}

const fixed = (value: number | undefined, digits: number): string =>
  value === undefined || !Number.isFinite(value) ? '-' : value.toFixed(digits);

/**
 * The table of every row, sorted by client count, then round, then system
 * (in the order of `systems`), so the two rows of a round sit together.
 */
export function formatRows(rows: readonly Row[], systems: readonly string[]): string {
  const table = new Table({
    head: ['clients', 'round', 'system', 'procs/conns', 'commits/s', 'p50 ms', 'p99 ms', 'errors', 'CPU % leader/followers', 'load CPU %', 'CPU µs/commit servers/load', 'RSS MiB a/b/c'],
    style: { head: [], border: [] },
  });
  const sorted = [...rows].sort(
    (left, right) => left.clients - right.clients || left.round - right.round || systems.indexOf(rowLabel(left)) - systems.indexOf(rowLabel(right)),
  );
  const notes: string[] = [];
  for (const row of sorted) {
    table.push(formatRow(row));
    if (row.errors > 0) notes.push(`${rowLabel(row)}, round ${row.round}, ${row.clients} clients: ${row.errors} failed Puts, the first: ${row.firstError}`);
  }
  const legend =
    'CPU %: of one core, during the window, leader first; load CPU %: all load processes; ' +
    'CPU µs/commit: all members together, then the load processes, per acknowledged Put (from /proc); RSS: after the row';
  return [table.toString(), legend, ...notes].join('\n');
}

/** Per cluster and client count, the median over rounds of commits/s, p50, p99 and CPU per commit. */
export function formatMedians(results: readonly SystemResult[]): string {
  const table = new Table({
    head: ['system', 'clients', 'rounds', 'commits/s', 'p50 ms', 'p99 ms', 'CPU µs/commit servers', 'CPU µs/commit load'],
    style: { head: [], border: [] },
  });
  for (const result of results) {
    for (const row of result.medians) {
      table.push([
        result.label,
        String(row.clients),
        String(row.rounds),
        fixed(row.commitsPerSecond, 0),
        fixed(row.p50Ms, 2),
        fixed(row.p99Ms, 2),
        fixed(row.serverCpuPerCommitUs, 0),
        fixed(row.loadCpuPerCommitUs, 0),
      ]);
    }
  }
  return `Median over rounds\n${table.toString()}`;
}

/** The row's cluster label (`hivemind tls`), as `BenchCluster.label`. */
export function rowLabel(row: Row): string {
  return clusterLabel(row.system, row.tls);
}

function formatRow(row: Row): string[] {
  const followers = Object.keys(row.serverCpuPercent).filter((id) => id !== row.leader);
  const cpu = [row.leader, ...followers].map((id) => fixed(row.serverCpuPercent[id], 0)).join(' / ');
  const rss = Object.values(row.rssMiB).map((value) => fixed(value, 0)).join(' / ');
  return [
    String(row.clients),
    String(row.round),
    rowLabel(row),
    `${row.loadProcesses}/${row.channels}`,
    fixed(row.commitsPerSecond, 0),
    fixed(row.p50Ms, 2),
    fixed(row.p99Ms, 2),
    String(row.errors),
    cpu,
    fixed(row.loadCpuPercent, 0),
    `${fixed(row.serverCpuPerCommitUs, 0)} / ${fixed(row.loadCpuPerCommitUs, 0)}`,
    rss,
  ];
}

/**
 * Numerator over denominator per round and client count, from the rows of
 * that round and client count each picks (Hivemind over etcd with the same
 * security: throughput above 1 and latency below 1 favour Hivemind; TLS over
 * plaintext of one system: the cost of TLS). A round without both rows gives
 * no ratio.
 */
export function roundRatios(rows: readonly Row[], pick: { numerator: (row: Row) => boolean; denominator: (row: Row) => boolean }): RoundRatio[] {
  const ratios: RoundRatio[] = [];
  for (const row of rows) {
    if (!pick.numerator(row)) continue;
    const other = rows.find((candidate) => pick.denominator(candidate) && candidate.round === row.round && candidate.clients === row.clients);
    if (!other) continue;
    ratios.push({
      round: row.round,
      clients: row.clients,
      throughput: ratio(row.commitsPerSecond, other.commitsPerSecond),
      p50: ratio(row.p50Ms, other.p50Ms),
      p99: ratio(row.p99Ms, other.p99Ms),
    });
  }
  return ratios.sort((left, right) => left.clients - right.clients || left.round - right.round);
}

/** Per client count (in the order of `clientCounts`), the median and range of the per-round ratios. */
export function summarizeRatios(ratios: readonly RoundRatio[], clientCounts: readonly number[]): RatioSummary[] {
  return clientCounts.map((clients) => {
    const same = ratios.filter((entry) => entry.clients === clients);
    const pick = (field: 'throughput' | 'p50' | 'p99'): number[] =>
      same.map((entry) => entry[field]).filter((value): value is number => value !== undefined);
    const range = (values: number[]): RatioRange | undefined =>
      values.length === 0 ? undefined : { min: Math.min(...values), max: Math.max(...values) };
    return {
      clients,
      rounds: same.length,
      throughput: median(pick('throughput')),
      p50: median(pick('p50')),
      p99: median(pick('p99')),
      throughputRange: range(pick('throughput')),
      p50Range: range(pick('p50')),
      p99Range: range(pick('p99')),
    };
  });
}

/** The Hivemind/etcd ratio table of one security mode: per client count, the median of the per-round ratios, then their min–max. */
export function formatRatios(ratios: readonly RatioSummary[], security: string): string {
  const table = new Table({
    head: ['clients', 'rounds', 'commits/s H/E', '(min–max)', 'p50 H/E', '(min–max)', 'p99 H/E', '(min–max)'],
    style: { head: [], border: [] },
  });
  const span = (range: RatioRange | undefined): string => (range ? `${fixed(range.min, 2)}–${fixed(range.max, 2)}` : '-');
  for (const row of ratios) {
    table.push([
      String(row.clients),
      String(row.rounds),
      fixed(row.throughput, 2),
      span(row.throughputRange),
      fixed(row.p50, 2),
      span(row.p50Range),
      fixed(row.p99, 2),
      span(row.p99Range),
    ]);
  }
  return [
    `Hivemind / etcd, both ${security}: per round, from the two rows of a client count run back to back; the median over rounds, then the range`,
    '(commits/s above 1 and latency below 1 favour Hivemind)',
    table.toString(),
  ].join('\n');
}

/** The cost of TLS for one system at one client count: TLS over plaintext, and CPU per commit in each mode. */
export interface TlsCost extends RatioSummary {
  system: string;
  /** Median over rounds, µs of CPU per acknowledged Put. */
  serverCpuPerCommitUs: { tls: number | undefined; plaintext: number | undefined };
  loadCpuPerCommitUs: { tls: number | undefined; plaintext: number | undefined };
}

/**
 * Per system and client count: TLS over plaintext from the per-round ratios
 * (`perRound`, one entry per system), with the medians of CPU per commit in
 * each mode (`results`: the TLS and plaintext results of every system).
 */
export function summarizeTlsCost(options: {
  perRound: { system: string; ratios: RoundRatio[] }[];
  results: readonly SystemResult[];
  clientCounts: readonly number[];
}): TlsCost[] {
  const { perRound, results, clientCounts } = options;
  return perRound.flatMap(({ system, ratios }) => {
    const medianOf = (tls: boolean, clients: number) =>
      results.find((result) => result.system === system && result.tls === tls)?.medians.find((row) => row.clients === clients);
    return summarizeRatios(ratios, clientCounts).map((summary) => ({
      system,
      ...summary,
      serverCpuPerCommitUs: { tls: medianOf(true, summary.clients)?.serverCpuPerCommitUs, plaintext: medianOf(false, summary.clients)?.serverCpuPerCommitUs },
      loadCpuPerCommitUs: { tls: medianOf(true, summary.clients)?.loadCpuPerCommitUs, plaintext: medianOf(false, summary.clients)?.loadCpuPerCommitUs },
    }));
  });
}

/** The TLS-cost table, with what the load generator negotiated with each system. */
export function formatTlsCost(costs: readonly TlsCost[], negotiated: Record<string, string | undefined>): string {
  const table = new Table({
    head: ['system', 'clients', 'rounds', 'commits/s TLS/plain', '(min–max)', 'p50 TLS/plain', 'p99 TLS/plain', 'CPU µs/commit servers TLS / plain', 'CPU µs/commit load TLS / plain'],
    style: { head: [], border: [] },
  });
  const span = (range: RatioRange | undefined): string => (range ? `${fixed(range.min, 2)}–${fixed(range.max, 2)}` : '-');
  for (const cost of costs) {
    table.push([
      cost.system,
      String(cost.clients),
      String(cost.rounds),
      fixed(cost.throughput, 2),
      span(cost.throughputRange),
      fixed(cost.p50, 2),
      fixed(cost.p99, 2),
      `${fixed(cost.serverCpuPerCommitUs.tls, 0)} / ${fixed(cost.serverCpuPerCommitUs.plaintext, 0)}`,
      `${fixed(cost.loadCpuPerCommitUs.tls, 0)} / ${fixed(cost.loadCpuPerCommitUs.plaintext, 0)}`,
    ]);
  }
  const protocols = Object.entries(negotiated).map(([system, description]) => `${system} ${description ?? 'unknown'}`).join(', ');
  return [
    'The cost of TLS: each system with mutual TLS on both ports over the same system in plaintext, per round, then the median over rounds',
    '(commits/s below 1 and latency above 1 are what TLS costs; CPU: medians over rounds)',
    table.toString(),
    `negotiated by the load generator: ${protocols}`,
  ].join('\n');
}

/** The failover trials of every system, then each system's median. */
export function formatFailover(results: readonly SystemResult[]): string {
  const table = new Table({
    head: ['system', 'trial', 'killed', 'new leader', 'no acked write, ms', 'kill to first ack, ms', 'failed Puts'],
    style: { head: [], border: [] },
  });
  for (const result of results) {
    result.failoverTrials.forEach((trial, index) =>
      table.push([result.label, String(index + 1), trial.killed, trial.newLeader ?? '-', fixed(trial.unavailableMs, 0), fixed(trial.killToFirstAckMs, 0), String(trial.errors)]),
    );
  }
  const medians = results.map((result) => `${result.label} median ${fixed(result.failoverMedianMs, 0)} ms`).join(', ');
  return `Failover: last acknowledged write before SIGKILL of the leader to first acknowledged write after it\n${table.toString()}\n${medians}`;
}
