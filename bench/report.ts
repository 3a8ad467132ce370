import Table from 'cli-table3';
import { readFileSync } from 'node:fs';
import { cpus, loadavg, release, tmpdir, totalmem } from 'node:os';
import type { BenchSettings, Row, SystemResult } from './run-system.js';
import { ratio } from './stats.js';

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

/** Hivemind divided by etcd at one client count. */
export interface RowRatio {
  clients: number;
  throughput: number | undefined;
  p50: number | undefined;
  p99: number | undefined;
}

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
export function formatSettings(options: { settings: BenchSettings; machine: Machine; timings: Record<string, string> }): string {
  const { settings, machine, timings } = options;
  const lines = [
    'Raft benchmark: Hivemind (consensus/server) vs etcd',
    `  cluster           3 members, one process each, loopback, fsync on, data dirs under ${machine.dataDisk}`,
    `  workload          sequential unary Put of a ${settings.valueBytes}-byte value to distinct keys, sent to the leader`,
    `  clients           ${settings.clientCounts.join(', ')}; ${settings.warmupMs / 1000} s warm-up then ${settings.durationMs / 1000} s measured per row, after ${settings.clusterWarmupMs / 1000} s of unmeasured load at 16 clients once per cluster`,
    `  load              ${settings.shape.processes} load process(es), up to ${settings.shape.channelsPerProcess} gRPC connection(s) each, clients round-robin over them`,
    `  failover          ${settings.failoverClients} clients following the leader, SIGKILL the leader, ${settings.failoverTrials} trial(s)`,
    ...Object.entries(timings).map(([system, timing]) => `  ${`${system} timing`.padEnd(17)} ${timing}`),
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

/** The per-row table, both systems. */
export function formatRows(results: SystemResult[]): string {
  const table = new Table({
    head: ['system', 'clients', 'procs/conns', 'commits/s', 'p50 ms', 'p99 ms', 'errors', 'CPU % leader/followers', 'load CPU %', 'RSS MiB a/b/c'],
    style: { head: [], border: [] },
  });
  const notes: string[] = [];
  for (const result of results) {
    for (const row of result.rows) {
      table.push(formatRow(row));
      if (row.errors > 0) notes.push(`${row.system}, ${row.clients} clients: ${row.errors} failed Puts, the first: ${row.firstError}`);
    }
  }
  const legend =
    'CPU %: of one core, during the window, leader first; load CPU %: all load processes; RSS: after the row';
  return [table.toString(), legend, ...notes].join('\n');
}

function formatRow(row: Row): string[] {
  const followers = Object.keys(row.serverCpuPercent).filter((id) => id !== row.leader);
  const cpu = [row.leader, ...followers].map((id) => fixed(row.serverCpuPercent[id], 0)).join(' / ');
  const rss = Object.values(row.rssMiB).map((value) => fixed(value, 0)).join(' / ');
  return [
    row.system,
    String(row.clients),
    `${row.loadProcesses}/${row.channels}`,
    fixed(row.commitsPerSecond, 0),
    fixed(row.p50Ms, 2),
    fixed(row.p99Ms, 2),
    String(row.errors),
    cpu,
    fixed(row.loadCpuPercent, 0),
    rss,
  ];
}

/** Hivemind / etcd per client count (throughput above 1 and latency below 1 favour Hivemind). */
export function rowRatios(hivemind: SystemResult, etcd: SystemResult): RowRatio[] {
  return hivemind.rows.map((row) => {
    const other = etcd.rows.find((candidate) => candidate.clients === row.clients);
    return {
      clients: row.clients,
      throughput: ratio(row.commitsPerSecond, other?.commitsPerSecond),
      p50: ratio(row.p50Ms, other?.p50Ms),
      p99: ratio(row.p99Ms, other?.p99Ms),
    };
  });
}

export function formatRatios(ratios: RowRatio[]): string {
  const table = new Table({ head: ['clients', 'commits/s H/E', 'p50 H/E', 'p99 H/E'], style: { head: [], border: [] } });
  for (const row of ratios) table.push([String(row.clients), fixed(row.throughput, 2), fixed(row.p50, 2), fixed(row.p99, 2)]);
  return `Hivemind / etcd (commits/s above 1 and latency below 1 favour Hivemind)\n${table.toString()}`;
}

export function formatFailover(results: SystemResult[]): string {
  const table = new Table({
    head: ['system', 'trial', 'killed', 'new leader', 'no acked write, ms', 'kill to first ack, ms', 'failed Puts'],
    style: { head: [], border: [] },
  });
  for (const result of results) {
    result.failoverTrials.forEach((trial, index) =>
      table.push([result.system, String(index + 1), trial.killed, trial.newLeader ?? '-', fixed(trial.unavailableMs, 0), fixed(trial.killToFirstAckMs, 0), String(trial.errors)]),
    );
  }
  const medians = results.map((result) => `${result.system} median ${fixed(result.failoverMedianMs, 0)} ms`).join(', ');
  return `Failover: last acknowledged write before SIGKILL of the leader to first acknowledged write after it\n${table.toString()}\n${medians}`;
}
