import { cpuTimeMs, rssBytes, sleep } from './processes.js';
import type { ServiceSpec } from './rpc.js';
import type { ClientTls } from './tls.js';

/** One member's answer to a status request, in terms common to both systems. */
export interface MemberStatus {
  /** The benchmark's name for the member (`a`, `b`, `c`). */
  id: string;
  /** The member this one believes leads, by benchmark name; undefined when it knows none. */
  leader: string | undefined;
  isLeader: boolean;
  term: number;
  /** Commit index as the member reports it (Hivemind `commit`, etcd `raftIndex`). */
  index: number;
}

/**
 * A cluster of real server processes on loopback, started and owned by the
 * benchmark. Members are named `a`, `b`, `c`. `kill` is SIGKILL; `restart`
 * starts the member again on its own data dir and ports.
 */
export interface BenchCluster {
  /** `hivemind` or `etcd`. */
  readonly system: string;
  /**
   * What a client needs to reach the members when both their ports speak
   * mutual TLS; undefined when they speak plaintext.
   */
  readonly tls: ClientTls | undefined;
  /** `system` with its transport security: `hivemind tls`, `etcd plain`; unique in a run. */
  readonly label: string;
  readonly memberIds: readonly string[];
  /** The service whose `Put({ key = 1, value = 2 })` the load generator calls. */
  readonly putService: ServiceSpec;
  /** Human-readable timing settings for the report (tick, heartbeat, election). */
  readonly timingSettings: string;
  /** Human-readable transport security for the report (what speaks TLS, with what certificates). */
  readonly securitySettings: string;
  start(): Promise<void>;
  clientAddress(id: string): string;
  /** The member's OS process id while it runs. */
  pid(id: string): number | undefined;
  /** Rejects when the member cannot be reached within `deadlineMs`. */
  status(id: string, deadlineMs: number): Promise<MemberStatus>;
  kill(id: string): Promise<void>;
  restart(id: string): Promise<void>;
  stop(): Promise<void>;
}

/** Statuses of every running member that answered within `deadlineMs`. */
export async function statuses(cluster: BenchCluster, deadlineMs: number): Promise<MemberStatus[]> {
  const running = cluster.memberIds.filter((id) => cluster.pid(id) !== undefined);
  const settled = await Promise.allSettled(running.map((id) => cluster.status(id, deadlineMs)));
  return settled.flatMap((outcome) => (outcome.status === 'fulfilled' ? [outcome.value] : []));
}

/** The running member that says it leads (the highest term wins a tie), or undefined. */
export async function findLeader(cluster: BenchCluster, deadlineMs = 250): Promise<string | undefined> {
  const leaders = (await statuses(cluster, deadlineMs)).filter((status) => status.isLeader);
  leaders.sort((left, right) => right.term - left.term);
  return leaders[0]?.id;
}

/**
 * Waits until every running member answers, all name the same leader, that
 * leader says so itself, and no member's commit index trails by more than
 * `indexLagMax`. Returns the leader; throws after `timeoutMs`.
 */
export async function waitHealthy(
  cluster: BenchCluster,
  options: { timeoutMs: number; indexLagMax?: number },
): Promise<string> {
  const indexLagMax = options.indexLagMax ?? 100;
  const deadline = Date.now() + options.timeoutMs;
  let last = 'no member answered';
  while (Date.now() < deadline) {
    const answers = await statuses(cluster, 500);
    const running = cluster.memberIds.filter((id) => cluster.pid(id) !== undefined).length;
    const leader = answers.find((status) => status.isLeader);
    const indexes = answers.map((status) => status.index);
    const agreed = leader !== undefined && answers.every((status) => status.leader === leader.id);
    if (answers.length === running && agreed && Math.max(...indexes) - Math.min(...indexes) <= indexLagMax) {
      return leader.id;
    }
    last = JSON.stringify(answers);
    await sleep(100);
  }
  throw new Error(`${cluster.system}: no healthy cluster after ${options.timeoutMs} ms; last statuses: ${last}`);
}

/** Per-member resident memory (bytes) and CPU time so far (ms), by member id. */
export function memberUsage(cluster: BenchCluster): Record<string, { rssBytes: number; cpuMs: number }> {
  const usage: Record<string, { rssBytes: number; cpuMs: number }> = {};
  for (const id of cluster.memberIds) {
    const pid = cluster.pid(id);
    usage[id] = pid === undefined ? { rssBytes: Number.NaN, cpuMs: Number.NaN } : { rssBytes: rssBytes(pid), cpuMs: cpuTimeMs(pid) };
  }
  return usage;
}

/** `system` with its transport security, as `BenchCluster.label`. */
export function clusterLabel(system: string, tls: boolean): string {
  return `${system} ${tls ? 'tls' : 'plain'}`;
}
