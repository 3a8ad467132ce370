/**
 * The Raft benchmark: Hivemind's replicated key-value server
 * (consensus/server) against etcd, 3 real processes each on loopback, the same
 * load generator for both. Both clusters run side by side; only one is under
 * load at a time, and the rows of the two systems alternate in rounds so that
 * each Hivemind/etcd ratio comes from two rows run back to back.
 *
 *   npm run bench:raft -- [--clients 1,16,64,256] [--rounds 3] [--seconds 5] [--json] ...   (--help lists all)
 *
 * With --tls both (the default) each system runs twice, with mutual TLS on
 * both ports and in plaintext, four clusters side by side in the same rounds;
 * --tls on or off runs one of the two.
 *
 * Prints the settings and the machine, then the table of rows, the medians
 * over rounds, the Hivemind/etcd ratios per security mode, the cost of TLS
 * per system and the failover trials. With --json the last line is
 * one JSON object holding every figure. Progress goes to stderr. Every
 * process it starts is killed and every temp dir removed when it ends, on
 * Ctrl-C, on an error, and when its time budget runs out.
 */
import Table from 'cli-table3';
import { mkdirSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { DEFAULT_OPTIONS } from '../consensus/core/index.js';
import { EtcdCluster, etcdVersion } from './etcd-cluster.js';
import { defaultServerPath, HivemindCluster } from './hivemind-cluster.js';
import { clusterLabel, type BenchCluster } from './cluster.js';
import { BenchCertificates } from './tls.js';
import { flushDisk, Resources } from './processes.js';
import {
  describeMachine,
  formatFailover,
  formatMedians,
  formatRatios,
  formatRows,
  formatSettings,
  formatTlsCost,
  roundRatios,
  summarizeRatios,
  summarizeTlsCost,
  type Machine,
  type RatioSummary,
  type RoundRatio,
  type TlsCost,
} from './report.js';
import { describeInterleaving, runRounds } from './rounds.js';
import { rowMedians, runFailoverTrials, startSystem, type BenchSettings, type Row, type SystemResult } from './run-system.js';
import { median, ratio } from './stats.js';

interface CommandLine {
  settings: BenchSettings;
  tickMs: number;
  electionTicks: number;
  heartbeatTicks: number;
  /** Which systems to run, in order; etcd is skipped with a note when it is not installed. */
  systems: ('hivemind' | 'etcd')[];
  /** Mutual TLS on both ports (`on`), plaintext (`off`), or each system both ways in the same rounds. */
  tls: TlsMode;
  /** Hivemind's server entry script. */
  serverPath: string;
  /** Node.js flags for Hivemind's server processes (e.g. `--cpu-prof --cpu-prof-dir=DIR`). */
  serverNodeArgs: string[];
  json: boolean;
}

function wholeNumber(text: string, flag: string, minimum: number): number {
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value < minimum) {
    throw new UsageError(`${flag} takes a whole number of at least ${minimum}, not "${text}"`);
  }
  return value;
}

function seconds(text: string, flag: string, options: { zeroAllowed: boolean }): number {
  const value = Number(text);
  const low = options.zeroAllowed ? value >= 0 : value > 0;
  if (text.trim() === '' || !Number.isFinite(value) || !low || value > 600) {
    throw new UsageError(`${flag} takes seconds in ${options.zeroAllowed ? '[0' : '(0'}, 600], not "${text}"`);
  }
  return value;
}

const USAGE = `usage: npm run bench:raft -- [options]   (or: node dist/bench/raft.js [options])
  --clients 1,16,64,256       client counts, one row each per system and round
  --rounds 3                  rounds: each round runs every client count on each system back to back, the
                              first system alternating; ratios are per round, then the median over rounds
  --seconds 5                 measured seconds per row (after the warm-up)
  --warmup-seconds 1          unmeasured seconds before each row
  --cluster-warmup-seconds 5  unmeasured load (16 clients) once after each cluster starts, before the
                              first row: Node.js compiles its hot code in the first seconds
  --value-bytes 256           size of every value
  --tick-ms 50                Hivemind's tick; --election-ticks 10, --heartbeat-ticks 1
  --load-processes 1          load processes; --channels 4 connections per load process
  --failover-trials 3         leader kills per system (0: none); --failover-clients 16
  --systems hivemind,etcd     which systems (etcd only if installed); the first runs first in the first pair
  --tls both                  on: mutual TLS on the peer and client ports of both systems, the load speaking TLS;
                              off: plaintext; both: each system both ways, 4 clusters in the same rounds, and the
                              cost of TLS per system (TLS clusters first in the first group)
  --server PATH               Hivemind's server script (default dist/consensus/server/main.js)
  --server-node-args=ARGS     Node.js flags for Hivemind's servers, e.g. --server-node-args="--cpu-prof --cpu-prof-dir=/tmp/prof"
                              (servers are then stopped with SIGTERM, so profiles get written)
  --json                      end with one JSON line holding every figure`;

/** `--tls`: which security modes run. */
type TlsMode = 'on' | 'off' | 'both';
const TLS_MODES: readonly TlsMode[] = ['on', 'off', 'both'];

/** Whether each cluster group speaks TLS, in the order the groups run: TLS first. */
function securityModes(mode: TlsMode): boolean[] {
  return mode === 'both' ? [true, false] : [mode === 'on'];
}

/** A bad command line: printed without a stack trace, exit code 2. */
class UsageError extends Error {
  readonly code = 'bench-usage';
}

function parseCommandLine(argv: string[]): CommandLine {
  try {
    return interpret(readFlags(argv));
  } catch (error) {
    if (error instanceof UsageError) throw error;
    throw new UsageError(`${(error as Error).message}\n${USAGE}`);
  }
}

function readFlags(argv: string[]) {
  return parseArgs({
    args: argv,
    options: {
      clients: { type: 'string', default: '1,16,64,256' },
      rounds: { type: 'string', default: '3' },
      seconds: { type: 'string', default: '5' },
      'warmup-seconds': { type: 'string', default: '1' },
      'cluster-warmup-seconds': { type: 'string', default: '5' },
      'value-bytes': { type: 'string', default: '256' },
      'tick-ms': { type: 'string', default: '50' },
      'election-ticks': { type: 'string', default: String(DEFAULT_OPTIONS.electionTimeoutTicks) },
      'heartbeat-ticks': { type: 'string', default: String(DEFAULT_OPTIONS.heartbeatIntervalTicks) },
      'load-processes': { type: 'string', default: '1' },
      channels: { type: 'string', default: '4' },
      'failover-trials': { type: 'string', default: '3' },
      'failover-clients': { type: 'string', default: '16' },
      systems: { type: 'string', default: 'hivemind,etcd' },
      tls: { type: 'string', default: 'both' },
      server: { type: 'string', default: defaultServerPath },
      'server-node-args': { type: 'string', default: '' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
  }).values;
}

function interpret(values: ReturnType<typeof readFlags>): CommandLine {
  const systems = values.systems.split(',').map((name) => name.trim());
  for (const name of systems) {
    if (name !== 'hivemind' && name !== 'etcd') throw new UsageError(`--systems takes hivemind and/or etcd, not "${name}"`);
  }
  if (new Set(systems).size !== systems.length) throw new UsageError(`--systems names each system at most once, not "${values.systems}"`);
  if (!TLS_MODES.includes(values.tls as TlsMode)) throw new UsageError(`--tls takes on, off or both, not "${values.tls}"`);
  const clientCounts = values.clients.split(',').map((part) => wholeNumber(part.trim(), '--clients', 1));
  return {
    settings: {
      clientCounts,
      rounds: wholeNumber(values.rounds, '--rounds', 1),
      durationMs: seconds(values.seconds, '--seconds', { zeroAllowed: false }) * 1000,
      warmupMs: seconds(values['warmup-seconds'], '--warmup-seconds', { zeroAllowed: true }) * 1000,
      clusterWarmupMs: seconds(values['cluster-warmup-seconds'], '--cluster-warmup-seconds', { zeroAllowed: true }) * 1000,
      valueBytes: wholeNumber(values['value-bytes'], '--value-bytes', 1),
      putDeadlineMs: 5000,
      shape: {
        processes: wholeNumber(values['load-processes'], '--load-processes', 1),
        channelsPerProcess: wholeNumber(values.channels, '--channels', 1),
      },
      failoverTrials: wholeNumber(values['failover-trials'], '--failover-trials', 0),
      failoverClients: wholeNumber(values['failover-clients'], '--failover-clients', 1),
    },
    tickMs: wholeNumber(values['tick-ms'], '--tick-ms', 1),
    electionTicks: wholeNumber(values['election-ticks'], '--election-ticks', 2),
    heartbeatTicks: wholeNumber(values['heartbeat-ticks'], '--heartbeat-ticks', 1),
    systems: systems as CommandLine['systems'],
    tls: values.tls as TlsMode,
    serverPath: values.server,
    serverNodeArgs: values['server-node-args'].split(' ').filter((part) => part !== ''),
    json: values.json,
  };
}

/**
 * The longest a run may take before it is stopped: start-up, every row of
 * every round (warm-up, window, drain, page-cache flush) and every failover
 * trial, per system, with slack.
 */
function timeBudgetMs(commandLine: CommandLine, systems: number): number {
  const { settings } = commandLine;
  const rowMs = settings.warmupMs + settings.durationMs + settings.putDeadlineMs + 5000;
  const rowsMs = settings.rounds * settings.clientCounts.length * rowMs;
  const perSystemMs = 30_000 + settings.clusterWarmupMs + rowsMs + settings.failoverTrials * 40_000;
  return 30_000 + systems * perSystemMs;
}

/** Hivemind over etcd per round and its summary, for the clusters of one security mode. */
interface ModeRatios {
  perRound: RoundRatio[];
  summary: RatioSummary[];
  /** Cluster CPU per commit of both systems and their ratio, per client count. */
  cpuPerCommit: CpuPerCommitSummary[];
  /** Each cluster's member RSS after its last row. */
  memberRssAtEnd: MemberRssAtEnd[];
}

/**
 * Cluster CPU per commit (all members, from /proc, per acknowledged Put) of
 * both systems at one client count: per round from the two rows run back to
 * back, then the medians. The figure that depends least on the load
 * generator and the machine's other work.
 */
interface CpuPerCommitSummary {
  clients: number;
  perRound: { round: number; hivemindUs: number | undefined; etcdUs: number | undefined; ratio: number | undefined; hivemindLeaderUs: number | undefined; etcdLeaderUs: number | undefined }[];
  hivemindUs: number | undefined;
  etcdUs: number | undefined;
  /** Median of the per-round ratios, Hivemind over etcd (below 1 favours Hivemind). */
  ratio: number | undefined;
  ratioRange: { min: number; max: number } | undefined;
}

/** One cluster's member RSS after its last row (MiB), and the largest of them. */
interface MemberRssAtEnd {
  label: string;
  rssMiB: Record<string, number>;
  largestMiB: number | undefined;
}

/** TLS over plaintext per system, per round and summarised, with the failover medians of both modes. */
interface TlsCostReport {
  perRound: { system: string; ratios: RoundRatio[] }[];
  summary: TlsCost[];
  failoverMedianMs: Record<string, { tls: number | undefined; plaintext: number | undefined }>;
  /** What the load generator negotiated with each system's TLS clusters. */
  negotiated: Record<string, string | undefined>;
}

/**
 * The single JSON object printed last with --json. The fields of earlier
 * runs keep their meaning for the clusters of the first security mode
 * (`systemsSecurity`: TLS unless --tls off); the plaintext clusters of
 * --tls both and the cost of TLS come in added fields.
 */
function jsonSummary(options: {
  commandLine: CommandLine;
  machine: Machine;
  results: SystemResult[];
  ratios: Map<boolean, ModeRatios | undefined>;
  tlsCost: TlsCostReport | undefined;
}): object {
  const { commandLine, machine, results, ratios, tlsCost } = options;
  const [primaryTls, secondaryTls] = securityModes(commandLine.tls);
  const systemsOf = (tls: boolean): object => Object.fromEntries(results.filter((result) => result.tls === tls).map((result) => [result.system, result]));
  return {
    benchmark: 'raft',
    date: new Date().toISOString(),
    settings: {
      ...commandLine.settings,
      clusterSize: 3,
      sentTo: 'leader',
      tickMs: commandLine.tickMs,
      electionTicks: commandLine.electionTicks,
      heartbeatTicks: commandLine.heartbeatTicks,
      tls: commandLine.tls,
    },
    machine,
    systems: systemsOf(primaryTls!),
    interleaving: describeInterleaving(results.map((result) => result.label)),
    ratiosHivemindOverEtcd: ratios.get(primaryTls!)?.summary ?? null,
    ratiosPerRound: ratios.get(primaryTls!)?.perRound ?? null,
    cpuPerCommitHivemindOverEtcd: ratios.get(primaryTls!)?.cpuPerCommit ?? null,
    memberRssAtEndMiB: ratios.get(primaryTls!)?.memberRssAtEnd ?? null,
    systemsSecurity: primaryTls ? 'mutual-tls' : 'plaintext',
    plaintext:
      secondaryTls === undefined
        ? null
        : {
            systems: systemsOf(secondaryTls),
            ratiosHivemindOverEtcd: ratios.get(secondaryTls)?.summary ?? null,
            ratiosPerRound: ratios.get(secondaryTls)?.perRound ?? null,
            cpuPerCommitHivemindOverEtcd: ratios.get(secondaryTls)?.cpuPerCommit ?? null,
            memberRssAtEndMiB: ratios.get(secondaryTls)?.memberRssAtEnd ?? null,
          },
    tlsCost: tlsCost ?? null,
  };
}

/**
 * The clusters to run, each with its own temp dir, none of them started yet:
 * per security mode (TLS first), the systems in the order asked. Clusters
 * that speak TLS get their certificates (bench/tls.ts) in `<dir>/tls`.
 */
async function makeClusters(options: { commandLine: CommandLine; resources: Resources; etcdInstalled: boolean }): Promise<BenchCluster[]> {
  const { commandLine, resources, etcdInstalled } = options;
  const modes = securityModes(commandLine.tls);
  const certificates = modes.includes(true) ? await BenchCertificates.create() : undefined;
  const clusterTls = async (workDirectory: string, tls: boolean) => {
    if (!tls) return undefined;
    const directory = `${workDirectory}/tls`;
    mkdirSync(directory);
    return certificates!.writeCluster(directory, ['a', 'b', 'c']);
  };
  const clusters: BenchCluster[] = [];
  for (const tls of modes) {
    for (const system of commandLine.systems) {
      if (system === 'hivemind') {
        const workDirectory = resources.makeTempDirectory(`hivemind-bench-raft-${tls ? 'tls' : 'plain'}-`);
        clusters.push(
          new HivemindCluster({
            resources,
            workDirectory,
            serverPath: commandLine.serverPath,
            nodeArgs: commandLine.serverNodeArgs,
            tickMs: commandLine.tickMs,
            electionTicks: commandLine.electionTicks,
            heartbeatTicks: commandLine.heartbeatTicks,
            tls: await clusterTls(workDirectory, tls),
          }),
        );
      } else if (etcdInstalled) {
        const workDirectory = resources.makeTempDirectory(`etcd-bench-raft-${tls ? 'tls' : 'plain'}-`);
        clusters.push(new EtcdCluster({ resources, workDirectory, tls: await clusterTls(workDirectory, tls) }));
      }
    }
  }
  return clusters;
}

/** Hivemind over etcd, per security mode that has both systems. */
function hivemindOverEtcd(rows: readonly Row[], commandLine: CommandLine): Map<boolean, ModeRatios | undefined> {
  const ratios = new Map<boolean, ModeRatios | undefined>();
  for (const tls of securityModes(commandLine.tls)) {
    const perRound = roundRatios(rows, {
      numerator: (row) => row.system === 'hivemind' && row.tls === tls,
      denominator: (row) => row.system === 'etcd' && row.tls === tls,
    });
    ratios.set(
      tls,
      perRound.length === 0
        ? undefined
        : {
            perRound,
            summary: summarizeRatios(perRound, commandLine.settings.clientCounts),
            cpuPerCommit: cpuPerCommitOf(rows.filter((row) => row.tls === tls), commandLine.settings.clientCounts),
            memberRssAtEnd: memberRssAtEnd(rows.filter((row) => row.tls === tls)),
          },
    );
  }
  return ratios;
}

/** Per client count, cluster CPU per commit of Hivemind and etcd per round, the medians and the ratio. */
function cpuPerCommitOf(rows: readonly Row[], clientCounts: readonly number[]): CpuPerCommitSummary[] {
  const known = (value: number | undefined): number | undefined => (value !== undefined && Number.isFinite(value) ? value : undefined);
  return clientCounts.map((clients) => {
    const rounds = [...new Set(rows.filter((row) => row.clients === clients).map((row) => row.round))].sort((a, b) => a - b);
    const perRound = rounds.map((round) => {
      const find = (system: string) => rows.find((row) => row.system === system && row.round === round && row.clients === clients);
      const hivemind = find('hivemind');
      const etcd = find('etcd');
      return {
        round,
        hivemindUs: known(hivemind?.serverCpuPerCommitUs),
        etcdUs: known(etcd?.serverCpuPerCommitUs),
        ratio: ratio(hivemind?.serverCpuPerCommitUs, etcd?.serverCpuPerCommitUs),
        hivemindLeaderUs: known(hivemind?.leaderCpuPerCommitUs),
        etcdLeaderUs: known(etcd?.leaderCpuPerCommitUs),
      };
    });
    const ratios = perRound.map((entry) => entry.ratio).filter((value): value is number => value !== undefined);
    return {
      clients,
      perRound,
      hivemindUs: median(perRound.map((entry) => entry.hivemindUs)),
      etcdUs: median(perRound.map((entry) => entry.etcdUs)),
      ratio: median(ratios),
      ratioRange: ratios.length === 0 ? undefined : { min: Math.min(...ratios), max: Math.max(...ratios) },
    };
  });
}

/** Each system's member RSS after its last row (rows in the order run). */
function memberRssAtEnd(rows: readonly Row[]): MemberRssAtEnd[] {
  const systems = [...new Set(rows.map((row) => row.system))];
  return systems.map((system) => {
    const last = rows.filter((row) => row.system === system).at(-1)!;
    const values = Object.values(last.rssMiB).filter((value) => Number.isFinite(value));
    return { label: clusterLabel(last.system, last.tls), rssMiB: last.rssMiB, largestMiB: values.length === 0 ? undefined : Math.max(...values) };
  });
}

/** The CPU-per-commit and end-of-run memory table of one security mode. */
function formatCpuAndMemory(modeRatios: ModeRatios, security: string): string {
  const fixed = (value: number | undefined, digits: number): string => (value === undefined ? '-' : value.toFixed(digits));
  const table = new Table({
    head: ['clients', 'round', 'CPU µs/commit hivemind', 'etcd', 'H/E', 'leader µs/commit hivemind', 'etcd'],
    style: { head: [], border: [] },
  });
  for (const summary of modeRatios.cpuPerCommit) {
    for (const entry of summary.perRound) {
      table.push([String(summary.clients), String(entry.round), fixed(entry.hivemindUs, 0), fixed(entry.etcdUs, 0), fixed(entry.ratio, 2), fixed(entry.hivemindLeaderUs, 0), fixed(entry.etcdLeaderUs, 0)]);
    }
    const range = summary.ratioRange ? ` (${summary.ratioRange.min.toFixed(2)}–${summary.ratioRange.max.toFixed(2)})` : '';
    table.push([String(summary.clients), 'median', fixed(summary.hivemindUs, 0), fixed(summary.etcdUs, 0), `${fixed(summary.ratio, 2)}${range}`, '', '']);
  }
  const memory = modeRatios.memberRssAtEnd
    .map((entry) => `${entry.label} ${Object.entries(entry.rssMiB).map(([id, value]) => `${id} ${fixed(value, 0)}`).join(', ')} (largest ${fixed(entry.largestMiB, 0)})`)
    .join('; ');
  return [
    `Cluster CPU per commit, ${security}: all members' CPU time (from /proc) during the window per acknowledged Put; H/E below 1 favours Hivemind`,
    table.toString(),
    `Member RSS at the end of the run, MiB: ${memory}`,
  ].join('\n');
}

/** TLS over plaintext per system that ran both ways; undefined unless --tls both. */
function tlsCostOf(results: readonly SystemResult[], commandLine: CommandLine): TlsCostReport | undefined {
  if (commandLine.tls !== 'both') return undefined;
  const rows = results.flatMap((result) => result.rows);
  const systems = [...new Set(results.map((result) => result.system))];
  const perRound = systems.map((system) => ({
    system,
    ratios: roundRatios(rows, {
      numerator: (row) => row.system === system && row.tls,
      denominator: (row) => row.system === system && !row.tls,
    }),
  }));
  const failoverOf = (system: string, tls: boolean): number | undefined =>
    results.find((result) => result.system === system && result.tls === tls)?.failoverMedianMs;
  return {
    perRound,
    summary: summarizeTlsCost({ perRound, results, clientCounts: commandLine.settings.clientCounts }),
    failoverMedianMs: Object.fromEntries(systems.map((system) => [system, { tls: failoverOf(system, true), plaintext: failoverOf(system, false) }])),
    negotiated: Object.fromEntries(systems.map((system) => [system, rows.find((row) => row.system === system && row.tlsDescription !== undefined)?.tlsDescription])),
  };
}

async function main(resources: Resources): Promise<void> {
  if (process.argv.includes('--help')) {
    console.log(USAGE);
    return;
  }
  const commandLine = parseCommandLine(process.argv.slice(2));
  const etcd = etcdVersion();
  const machine = describeMachine(etcd);
  const progress = (line: string): void => void process.stderr.write(`bench: ${line}\n`);
  const clusters = await makeClusters({ commandLine, resources, etcdInstalled: etcd !== undefined });
  if (commandLine.systems.includes('etcd') && etcd === undefined) {
    progress('no etcd binary on PATH (Debian package etcd-server): printing Hivemind figures only');
  }
  const timings = Object.fromEntries(clusters.map((cluster) => [cluster.system, cluster.timingSettings]));
  const budgetMs = timeBudgetMs(commandLine, clusters.length);
  const watchdog = setTimeout(() => {
    process.stderr.write(`bench: still running after its budget of ${Math.round(budgetMs / 1000)} s; stopping\n`);
    resources.cleanup();
    process.exit(1);
  }, budgetMs);

  const security = Object.fromEntries(clusters.map((cluster) => [cluster.label, cluster.securitySettings]));
  const interleaving = describeInterleaving(clusters.map((cluster) => cluster.label));
  console.log(formatSettings({ settings: commandLine.settings, machine, timings, security, interleaving }));
  const results = await benchSystems({ clusters, settings: commandLine.settings, resources, progress });
  clearTimeout(watchdog);

  const allRows = results.flatMap((result) => result.rows);
  console.log(`\n${formatRows(allRows, results.map((result) => result.label))}`);
  console.log(`\n${formatMedians(results)}`);
  const ratios = hivemindOverEtcd(allRows, commandLine);
  for (const [tls, modeRatios] of ratios) {
    if (!modeRatios) continue;
    const security = tls ? 'with mutual TLS on both ports' : 'in plaintext';
    console.log(`\n${formatRatios(modeRatios.summary, security)}`);
    console.log(`\n${formatCpuAndMemory(modeRatios, security)}`);
  }
  const tlsCost = tlsCostOf(results, commandLine);
  if (tlsCost) console.log(`\n${formatTlsCost(tlsCost.summary, tlsCost.negotiated)}`);
  if (commandLine.settings.failoverTrials > 0) console.log(`\n${formatFailover(results)}`);
  if (commandLine.json) console.log(JSON.stringify(jsonSummary({ commandLine, machine, results, ratios, tlsCost })));
}

/**
 * Starts and warms up every cluster, runs the rounds, then each system's
 * failover trials (the other clusters idle), and stops every cluster it
 * started, also on an error (`resources` kills the processes of one that
 * failed to start). Returns one result per cluster, in order.
 */
async function benchSystems(options: {
  clusters: BenchCluster[];
  settings: BenchSettings;
  resources: Resources;
  progress: (line: string) => void;
}): Promise<SystemResult[]> {
  const { clusters, settings, resources, progress } = options;
  const started: BenchCluster[] = [];
  try {
    flushDisk();
    for (const cluster of clusters) {
      await startSystem({ cluster, settings, resources, progress });
      started.push(cluster);
    }
    const rows = await runRounds({ clusters, settings, resources, progress });
    const results: SystemResult[] = [];
    for (const cluster of clusters) {
      const failoverTrials = await runFailoverTrials({ cluster, settings, progress });
      const own = rows.filter((row) => row.system === cluster.system && row.tls === (cluster.tls !== undefined));
      results.push({
        system: cluster.system,
        tls: cluster.tls !== undefined,
        label: cluster.label,
        timingSettings: cluster.timingSettings,
        securitySettings: cluster.securitySettings,
        rows: own,
        medians: rowMedians(own, settings.clientCounts),
        failoverTrials,
        failoverMedianMs: median(failoverTrials.map((trial) => trial.unavailableMs)),
      });
    }
    return results;
  } finally {
    for (const cluster of started.reverse()) await cluster.stop();
  }
}

const resources = new Resources();
main(resources).then(
  () => {
    resources.cleanup();
    process.exit(0);
  },
  (error: unknown) => {
    const usage = error instanceof UsageError;
    process.stderr.write(`bench: ${usage ? error.message : error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    resources.cleanup();
    process.exit(usage ? 2 : 1);
  },
);
