import { memberUsage, waitHealthy, type BenchCluster } from './cluster.js';
import { runFailoverTrial, type FailoverTrial } from './failover.js';
import { runFleet, type FleetShape } from './load-fleet.js';
import type { Resources } from './processes.js';
import { median, quantile } from './stats.js';

/** Clients of the unmeasured load after a cluster starts. */
const CLUSTER_WARMUP_CLIENTS = 16;

/** What every system is measured with; the same for Hivemind and etcd. */
export interface BenchSettings {
  clientCounts: number[];
  durationMs: number;
  warmupMs: number;
  /** Unmeasured load once after the cluster starts, before the first row (JIT warm-up); 0 for none. */
  clusterWarmupMs: number;
  valueBytes: number;
  /** Deadline of one Put under load; a miss counts as an error. */
  putDeadlineMs: number;
  shape: FleetShape;
  failoverTrials: number;
  failoverClients: number;
}

/** One row of the table: one system at one client count. */
export interface Row {
  system: string;
  clients: number;
  loadProcesses: number;
  channels: number;
  /** Member the load was sent to. */
  leader: string;
  commitsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  errors: number;
  firstError: string | undefined;
  /** Resident memory of each member after the row, MiB. */
  rssMiB: Record<string, number>;
  /** CPU of each member during the measurement window, % of one core. */
  serverCpuPercent: Record<string, number>;
  /** CPU of all load processes during the window, % of one core. */
  loadCpuPercent: number;
}

/** Every figure measured for one system. */
export interface SystemResult {
  system: string;
  timingSettings: string;
  rows: Row[];
  failoverTrials: FailoverTrial[];
  failoverMedianMs: number | undefined;
}

/**
 * Starts `cluster`, runs one row per client count, then the failover trials,
 * then stops it. Progress lines go to `progress` (stderr), figures are returned.
 */
export async function benchSystem(options: {
  cluster: BenchCluster;
  settings: BenchSettings;
  resources: Resources;
  progress: (line: string) => void;
}): Promise<SystemResult> {
  const { cluster, settings, resources, progress } = options;
  progress(`${cluster.system}: starting 3 members`);
  await cluster.start();
  try {
    if (settings.clusterWarmupMs > 0) {
      progress(`${cluster.system}: ${settings.clusterWarmupMs / 1000} s of unmeasured load at ${CLUSTER_WARMUP_CLIENTS} clients`);
      await runRow({ cluster, settings: { ...settings, warmupMs: settings.clusterWarmupMs, durationMs: 100 }, resources, clients: CLUSTER_WARMUP_CLIENTS, keyTag: 'warmup' });
    }
    const rows: Row[] = [];
    for (const clients of settings.clientCounts) {
      const row = await runRow({ cluster, settings, resources, clients, keyTag: `c${clients}` });
      progress(`${cluster.system}: ${clients} clients: ${row.commitsPerSecond.toFixed(0)} commits/s, p50 ${row.p50Ms.toFixed(2)} ms, p99 ${row.p99Ms.toFixed(2)} ms, ${row.errors} errors`);
      rows.push(row);
    }
    const failoverTrials: FailoverTrial[] = [];
    for (let trial = 1; trial <= settings.failoverTrials; trial++) {
      const result = await runFailoverTrial(cluster, {
        clients: settings.failoverClients,
        valueBytes: settings.valueBytes,
        preKillMs: 1000,
        deadlineMs: 1000,
        trialTimeoutMs: 20_000,
        keyPrefix: `${cluster.system}/failover/${trial}`,
      });
      progress(`${cluster.system}: failover ${trial}: killed ${result.killed}, ${result.unavailableMs?.toFixed(0) ?? 'no'} ms without acknowledged writes`);
      failoverTrials.push(result);
    }
    return {
      system: cluster.system,
      timingSettings: cluster.timingSettings,
      rows,
      failoverTrials,
      failoverMedianMs: median(failoverTrials.map((trial) => trial.unavailableMs)),
    };
  } finally {
    await cluster.stop();
  }
}

/** One row: `clients` clients against the leader for the window, then each member's RSS. */
async function runRow(options: { cluster: BenchCluster; settings: BenchSettings; resources: Resources; clients: number; keyTag: string }): Promise<Row> {
  const { cluster, settings, resources, clients, keyTag } = options;
  const leader = await waitHealthy(cluster, { timeoutMs: 30_000 });
  const sample = (): { usage: ReturnType<typeof memberUsage>; atMs: number } => ({ usage: memberUsage(cluster), atMs: performance.now() });
  let atOpen = sample();
  let atClose = atOpen;
  const result = await runFleet({
    load: {
      service: cluster.putService,
      address: cluster.clientAddress(leader),
      clients,
      channels: settings.shape.channelsPerProcess,
      valueBytes: settings.valueBytes,
      warmupMs: settings.warmupMs,
      durationMs: settings.durationMs,
      deadlineMs: settings.putDeadlineMs,
      keyPrefix: `${cluster.system}/${keyTag}`,
    },
    shape: settings.shape,
    resources,
    onWindow: { open: () => (atOpen = sample()), close: () => (atClose = sample()) },
  });
  const usageAfter = memberUsage(cluster);
  const perMember = (pick: (id: string) => number): Record<string, number> =>
    Object.fromEntries(cluster.memberIds.map((id) => [id, pick(id)]));
  return {
    system: cluster.system,
    clients,
    loadProcesses: result.processes,
    channels: result.channels,
    leader,
    commitsPerSecond: (result.operations * 1000) / result.windowMs,
    p50Ms: quantile(result.latenciesNs, 0.5) / 1e6,
    p99Ms: quantile(result.latenciesNs, 0.99) / 1e6,
    errors: result.errors,
    firstError: result.firstError,
    rssMiB: perMember((id) => usageAfter[id]!.rssBytes / 2 ** 20),
    serverCpuPercent: perMember((id) => (100 * (atClose.usage[id]!.cpuMs - atOpen.usage[id]!.cpuMs)) / (atClose.atMs - atOpen.atMs)),
    loadCpuPercent: result.loadCpuPercent,
  };
}
