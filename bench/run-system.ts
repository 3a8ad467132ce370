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
  /** Times every client count is measured on every system; at least 1. */
  rounds: number;
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

/** One row of the table: one system at one client count in one round. */
export interface Row {
  system: string;
  /** Whether both ports of the members spoke mutual TLS, the load's included. */
  tls: boolean;
  /** What the load generator's connection negotiated (`TLSv1.3 TLS_AES_256_GCM_SHA384`); undefined for plaintext. */
  tlsDescription: string | undefined;
  /** 1-based round the row ran in. */
  round: number;
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
  /** CPU time of all members together during the window per acknowledged Put, µs (from /proc/PID/stat). */
  serverCpuPerCommitUs: number;
  /** The leader's share of `serverCpuPerCommitUs`. */
  leaderCpuPerCommitUs: number;
  /** The load processes' CPU time during the window per acknowledged Put, µs. */
  loadCpuPerCommitUs: number;
}

/** Every figure measured for one system. */
export interface SystemResult {
  system: string;
  /** Whether its ports spoke mutual TLS. */
  tls: boolean;
  /** `system` and its security, unique in a run (`hivemind tls`). */
  label: string;
  timingSettings: string;
  securitySettings: string;
  /** Every row of this system, in the order run (round by round). */
  rows: Row[];
  /** Per client count, the median over rounds of its rows. */
  medians: RowMedian[];
  failoverTrials: FailoverTrial[];
  failoverMedianMs: number | undefined;
}

/** One system at one client count: the median over rounds of each figure. */
export interface RowMedian {
  clients: number;
  rounds: number;
  commitsPerSecond: number | undefined;
  p50Ms: number | undefined;
  p99Ms: number | undefined;
  serverCpuPerCommitUs: number | undefined;
  loadCpuPerCommitUs: number | undefined;
}

/**
 * Starts `cluster` and, unless `settings.clusterWarmupMs` is 0, runs the
 * unmeasured warm-up load on it. The caller owns stopping it (also when this
 * throws after `start` resolved).
 */
export async function startSystem(options: {
  cluster: BenchCluster;
  settings: BenchSettings;
  resources: Resources;
  progress: (line: string) => void;
}): Promise<void> {
  const { cluster, settings, resources, progress } = options;
  progress(`${cluster.label}: starting 3 members`);
  await cluster.start();
  if (settings.clusterWarmupMs > 0) {
    progress(`${cluster.label}: ${settings.clusterWarmupMs / 1000} s of unmeasured load at ${CLUSTER_WARMUP_CLIENTS} clients`);
    await runRow({
      cluster,
      settings: { ...settings, warmupMs: settings.clusterWarmupMs, durationMs: 100 },
      resources,
      clients: CLUSTER_WARMUP_CLIENTS,
      round: 0,
      keyTag: 'warmup',
    });
  }
}

/**
 * Runs `settings.failoverTrials` leader kills on the running `cluster`, one
 * after the other; each trial leaves the cluster healthy with 3 members.
 */
export async function runFailoverTrials(options: {
  cluster: BenchCluster;
  settings: BenchSettings;
  progress: (line: string) => void;
}): Promise<FailoverTrial[]> {
  const { cluster, settings, progress } = options;
  const trials: FailoverTrial[] = [];
  for (let trial = 1; trial <= settings.failoverTrials; trial++) {
    const result = await runFailoverTrial(cluster, {
      clients: settings.failoverClients,
      valueBytes: settings.valueBytes,
      preKillMs: 1000,
      deadlineMs: 1000,
      trialTimeoutMs: 20_000,
      keyPrefix: `${cluster.system}/failover/${trial}`,
    });
    progress(`${cluster.label}: failover ${trial}: killed ${result.killed}, ${result.unavailableMs?.toFixed(0) ?? 'no'} ms without acknowledged writes`);
    trials.push(result);
  }
  return trials;
}

/** Per client count (in the order of `clientCounts`), the median over rounds of `rows` (one system's). */
export function rowMedians(rows: readonly Row[], clientCounts: readonly number[]): RowMedian[] {
  return clientCounts.map((clients) => {
    const same = rows.filter((row) => row.clients === clients);
    const known = (value: number): number | undefined => (Number.isFinite(value) ? value : undefined);
    return {
      clients,
      rounds: same.length,
      commitsPerSecond: median(same.map((row) => known(row.commitsPerSecond))),
      p50Ms: median(same.map((row) => known(row.p50Ms))),
      p99Ms: median(same.map((row) => known(row.p99Ms))),
      serverCpuPerCommitUs: median(same.map((row) => known(row.serverCpuPerCommitUs))),
      loadCpuPerCommitUs: median(same.map((row) => known(row.loadCpuPerCommitUs))),
    };
  });
}

/**
 * One row: `clients` clients against the leader of the running `cluster` for
 * the warm-up and the window, then each member's RSS. Keys carry `keyTag`, so
 * rows given distinct tags write distinct keys.
 */
export async function runRow(options: {
  cluster: BenchCluster;
  settings: BenchSettings;
  resources: Resources;
  clients: number;
  /** Recorded in the row; 1-based (0 for the cluster warm-up). */
  round: number;
  keyTag: string;
}): Promise<Row> {
  const { cluster, settings, resources, clients, round, keyTag } = options;
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
      tls: cluster.tls,
    },
    shape: settings.shape,
    resources,
    onWindow: { open: () => (atOpen = sample()), close: () => (atClose = sample()) },
  });
  const usageAfter = memberUsage(cluster);
  const perMember = (pick: (id: string) => number): Record<string, number> =>
    Object.fromEntries(cluster.memberIds.map((id) => [id, pick(id)]));
  const windowCpuMs = (id: string): number => atClose.usage[id]!.cpuMs - atOpen.usage[id]!.cpuMs;
  const serverCpuPercent = perMember((id) => (100 * windowCpuMs(id)) / (atClose.atMs - atOpen.atMs));
  const perCommitUs = (cpuMs: number): number => (result.operations > 0 ? (1000 * cpuMs) / result.operations : Number.NaN);
  return {
    system: cluster.system,
    tls: cluster.tls !== undefined,
    tlsDescription: result.tlsDescription,
    round,
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
    serverCpuPercent,
    loadCpuPercent: result.loadCpuPercent,
    serverCpuPerCommitUs: perCommitUs(cluster.memberIds.reduce((sum, id) => sum + windowCpuMs(id), 0)),
    leaderCpuPerCommitUs: perCommitUs(windowCpuMs(leader)),
    loadCpuPerCommitUs: perCommitUs((result.loadCpuPercent * result.windowMs) / 100),
  };
}
