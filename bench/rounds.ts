import type { BenchCluster } from './cluster.js';
import { flushDisk, type Resources } from './processes.js';
import { runRow, type BenchSettings, type Row } from './run-system.js';

/** One row to run: a client count in a round, on one cluster. */
export interface PlannedRow {
  /** 1-based. */
  round: number;
  clients: number;
  /** The cluster's label (`BenchCluster.label`: `hivemind tls`). */
  system: string;
}

/**
 * The order of every row of a run: round by round, client count by client
 * count, each client count on every system back to back. The first system of
 * a pair alternates from one pair to the next (ABBA: H,E then E,H then H,E)
 * and, for one client count, from one round to the next, so that neither
 * system always runs first while the machine's speed drifts. With an even
 * number of client counts the last pair of a round and the first pair of the
 * next keep the same order; that is what makes each client count alternate.
 * With more than two clusters (TLS and plaintext of each system) the same
 * holds for the whole group: A,B,C,D then D,C,B,A.
 */
export function planRows(options: { systems: readonly string[]; clientCounts: readonly number[]; rounds: number }): PlannedRow[] {
  const { systems, clientCounts, rounds } = options;
  if (!Number.isSafeInteger(rounds) || rounds < 1) throw new Error(`rounds must be a whole number of at least 1, not ${rounds}`);
  const reversed = [...systems].reverse();
  const plan: PlannedRow[] = [];
  for (let round = 1; round <= rounds; round++) {
    clientCounts.forEach((clients, index) => {
      const order = (round - 1 + index) % 2 === 0 ? systems : reversed;
      for (const system of order) plan.push({ round, clients, system });
    });
  }
  return plan;
}

/** How the interleaving reads in the settings block, e.g. `hivemind,etcd then etcd,hivemind, alternating`. */
export function describeInterleaving(systems: readonly string[]): string {
  if (systems.length < 2) return `${systems.join('')} alone`;
  return `per client count ${systems.join(',')} then ${[...systems].reverse().join(',')}, alternating from pair to pair and from round to round`;
}

/**
 * Runs every row of `planRows` on the already started and warmed-up
 * `clusters` (one per system), one row at a time: only one cluster is under
 * load, the others only exchange heartbeats. The page cache is flushed before
 * each row so one row's write-back does not land in the next. Returns the rows
 * in the order run.
 */
export async function runRounds(options: {
  clusters: readonly BenchCluster[];
  settings: BenchSettings;
  resources: Resources;
  progress: (line: string) => void;
}): Promise<Row[]> {
  const { clusters, settings, resources, progress } = options;
  const byLabel = new Map(clusters.map((cluster) => [cluster.label, cluster]));
  const plan = planRows({ systems: clusters.map((cluster) => cluster.label), clientCounts: settings.clientCounts, rounds: settings.rounds });
  const rows: Row[] = [];
  for (const { round, clients, system } of plan) {
    const cluster = byLabel.get(system)!;
    flushDisk();
    const row = await runRow({ cluster, settings, resources, clients, round, keyTag: `r${round}/c${clients}` });
    progress(
      `round ${round}/${settings.rounds}, ${system}, ${clients} clients: ${row.commitsPerSecond.toFixed(0)} commits/s, ` +
        `p50 ${row.p50Ms.toFixed(2)} ms, p99 ${row.p99Ms.toFixed(2)} ms, ${row.errors} errors`,
    );
    rows.push(row);
  }
  return rows;
}
