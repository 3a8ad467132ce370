/**
 * The Raft benchmark: Hivemind's replicated key-value server
 * (consensus/server) against etcd, 3 real processes each on loopback, the same
 * load generator for both. Both clusters run side by side; only one is under
 * load at a time, and the rows of the two systems alternate in rounds so that
 * each Hivemind/etcd ratio comes from two rows run back to back.
 *
 *   npm run bench:raft -- [--clients 1,16,64,256] [--rounds 3] [--seconds 5] [--json] ...   (--help lists all)
 *
 * Prints the settings and the machine, then the table of rows, the medians
 * over rounds, the Hivemind/etcd ratios and the failover trials. With --json the last line is
 * one JSON object holding every figure. Progress goes to stderr. Every
 * process it starts is killed and every temp dir removed when it ends, on
 * Ctrl-C, on an error, and when its time budget runs out.
 */
import { parseArgs } from 'node:util';
import { DEFAULT_OPTIONS } from '../consensus/core/index.js';
import { EtcdCluster, etcdVersion } from './etcd-cluster.js';
import { defaultServerPath, HivemindCluster } from './hivemind-cluster.js';
import type { BenchCluster } from './cluster.js';
import { flushDisk, Resources } from './processes.js';
import {
  describeMachine,
  formatFailover,
  formatMedians,
  formatRatios,
  formatRows,
  formatSettings,
  roundRatios,
  summarizeRatios,
  type Machine,
  type RatioSummary,
  type RoundRatio,
} from './report.js';
import { describeInterleaving, runRounds } from './rounds.js';
import { rowMedians, runFailoverTrials, startSystem, type BenchSettings, type SystemResult } from './run-system.js';
import { median } from './stats.js';

interface CommandLine {
  settings: BenchSettings;
  tickMs: number;
  electionTicks: number;
  heartbeatTicks: number;
  /** Which systems to run, in order; etcd is skipped with a note when it is not installed. */
  systems: ('hivemind' | 'etcd')[];
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
  --server PATH               Hivemind's server script (default dist/consensus/server/main.js)
  --server-node-args=ARGS     Node.js flags for Hivemind's servers, e.g. --server-node-args="--cpu-prof --cpu-prof-dir=/tmp/prof"
                              (servers are then stopped with SIGTERM, so profiles get written)
  --json                      end with one JSON line holding every figure`;

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

/** The single JSON object printed last with --json. */
function jsonSummary(options: {
  commandLine: CommandLine;
  machine: Machine;
  results: SystemResult[];
  ratios: { perRound: RoundRatio[]; summary: RatioSummary[] } | undefined;
}): object {
  const { commandLine, machine, results, ratios } = options;
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
    },
    machine,
    systems: Object.fromEntries(results.map((result) => [result.system, result])),
    interleaving: describeInterleaving(results.map((result) => result.system)),
    ratiosHivemindOverEtcd: ratios?.summary ?? null,
    ratiosPerRound: ratios?.perRound ?? null,
  };
}

/** The clusters to run, in the order asked, each with its own temp dir; none of them started yet. */
function makeClusters(options: { commandLine: CommandLine; resources: Resources; etcdInstalled: boolean }): BenchCluster[] {
  const { commandLine, resources, etcdInstalled } = options;
  const clusters: BenchCluster[] = [];
  for (const system of commandLine.systems) {
    if (system === 'hivemind') {
      clusters.push(
        new HivemindCluster({
          resources,
          workDirectory: resources.makeTempDirectory('hivemind-bench-raft-'),
          serverPath: commandLine.serverPath,
          nodeArgs: commandLine.serverNodeArgs,
          tickMs: commandLine.tickMs,
          electionTicks: commandLine.electionTicks,
          heartbeatTicks: commandLine.heartbeatTicks,
        }),
      );
    } else if (etcdInstalled) {
      clusters.push(new EtcdCluster({ resources, workDirectory: resources.makeTempDirectory('etcd-bench-raft-') }));
    }
  }
  return clusters;
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
  const clusters = makeClusters({ commandLine, resources, etcdInstalled: etcd !== undefined });
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

  console.log(formatSettings({ settings: commandLine.settings, machine, timings, interleaving: describeInterleaving(clusters.map((cluster) => cluster.system)) }));
  const results = await benchSystems({ clusters, settings: commandLine.settings, resources, progress });
  clearTimeout(watchdog);

  const allRows = results.flatMap((result) => result.rows);
  console.log(`\n${formatRows(allRows, results.map((result) => result.system))}`);
  console.log(`\n${formatMedians(results)}`);
  const hasBoth = results.some((result) => result.system === 'hivemind') && results.some((result) => result.system === 'etcd');
  const perRound = roundRatios(allRows);
  const ratios = hasBoth ? { perRound, summary: summarizeRatios(perRound, commandLine.settings.clientCounts) } : undefined;
  if (ratios) console.log(`\n${formatRatios(ratios.summary)}`);
  if (commandLine.settings.failoverTrials > 0) console.log(`\n${formatFailover(results)}`);
  if (commandLine.json) console.log(JSON.stringify(jsonSummary({ commandLine, machine, results, ratios })));
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
      const own = rows.filter((row) => row.system === cluster.system);
      results.push({
        system: cluster.system,
        timingSettings: cluster.timingSettings,
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
