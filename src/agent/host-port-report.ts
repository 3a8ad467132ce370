/**
 * Reports the ports this node's host listens on (`node.ports`), a step every
 * HOST_PORTS_INTERVAL_MS: reads `/proc/self/net/{tcp,tcp6,udp,udp6}` (the
 * node's network namespace), keeps the ports seen in two scans in a row that
 * no instance placed here holds, adds Hivemind's own ports, and submits the
 * report through the leader only when it differs from the node's record
 * (src/node/host-ports.ts). Only once the cluster applies state version 4
 * (before, the command would be refused), and only for a registered node.
 *
 * A busy host's ports change every few seconds (other processes' servers
 * come and go), and each report is a Raft write every node applies: after a
 * burst of HOST_PORTS_REPORTS_BURST, a report goes out at most once per
 * HOST_PORTS_REPORT_REFILL_MS (`ReportAllowance`), unless it is the node's
 * first or changes a port that an app in the state publishes (a placement
 * may depend on it: those go out at once, always).
 */
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { changedHostPorts, HOST_PORTS_REPORT_REFILL_MS, HOST_PORTS_REPORTS_BURST, hostPortsReport, instanceHostPorts, listeningPorts, ReportAllowance, sameHostPorts } from '../node/host-ports.js';
import type { ClusterStateMachine } from '../state/machine.js';
import type { Command, CommandResult, HostPorts, NodeRecord } from '../state/types.js';

/** How often the node scans its host's ports, ms: a host process that starts listening is in the state within two of these. */
export const HOST_PORTS_INTERVAL_MS = 5_000;

/**
 * While the last scan read at most this many bytes in all, the next reads
 * the four files synchronously: a few hundred sockets' tables are read in
 * well under a millisecond, and an asynchronous read costs about five
 * thread-pool round trips a file (open, stat, reads, close), each waking a
 * pool thread and the event loop: most of an idle node's wake-ups from this
 * scan. Larger tables (a busy host) are read asynchronously, so the event
 * loop never blocks on the kernel building them.
 */
export const HOST_PORTS_SYNC_READ_BYTES_MAX = 256 * 1024;

/** The first state version that applies `node.ports`. */
const NODE_PORTS_VERSION = 4;

/** What the step works with. */
export interface HostPortReportContext {
  nodeId: string;
  machine: ClusterStateMachine;
  /** This node's record, unless it is of an earlier membership under this name. */
  ownRecord(): NodeRecord | undefined;
  /** Hivemind's own ports on this node (API, peer, proxy over TCP; gossip, DNS over UDP; DNS over TCP too). */
  ownPorts(): HostPorts;
  submit(command: Command): Promise<CommandResult>;
  logOnce(key: string, line: string): void;
  /** The time now, ms (the node's clock): paces reports no placement needs. */
  nowMs(): number;
  /** Reads a file of /proc; the real one by default (synchronously while the tables are small: `HOST_PORTS_SYNC_READ_BYTES_MAX`). */
  readProc?: (path: string) => Promise<string>;
}

/** See the file comment; `step` is the loop's step. */
export class HostPortReport {
  #previous: { tcp: Set<number>; udp: Set<number> } | undefined;
  /** The bytes the last scan read, all four files together (Infinity before the first: it reads asynchronously). */
  #lastScanBytes = Infinity;
  readonly #allowance = new ReportAllowance({ burst: HOST_PORTS_REPORTS_BURST, refillMs: HOST_PORTS_REPORT_REFILL_MS });

  constructor(private readonly context: HostPortReportContext) {}

  async step(): Promise<void> {
    const { context } = this;
    const scan = await this.scan();
    const previous = this.#previous;
    this.#previous = scan;
    // The first scan has nothing to confirm it: the next step reports.
    if (previous === undefined) return;
    const record = context.ownRecord();
    if (record === undefined || record.status === 'left' || context.machine.clusterVersion < NODE_PORTS_VERSION) return;
    const placed = context.machine.instances({ node: context.nodeId }).filter((instance) => instance.desired === 'running' || instance.status.state !== 'stopped');
    const held = instanceHostPorts(placed, (instance) => context.machine.app(instance.tenant, instance.app)?.versions.find((entry) => entry.version === instance.version)?.spec);
    const report = hostPortsReport({ scans: [scan, previous], own: context.ownPorts(), instances: held });
    if (sameHostPorts(record.hostPorts, report)) return;
    if (record.hostPorts !== undefined && !this.placementsNeed(changedHostPorts(record.hostPorts, report)) && !this.#allowance.take(context.nowMs())) return;
    const result = await context.submit({ type: 'node.ports', id: context.nodeId, tcp: report.tcp, udp: report.udp });
    if (!result.ok) context.logOnce(`node.ports:${result.error.message}`, `cannot record this node's host ports: ${result.error.message}`);
  }

  /** Whether an app in the state (any version) publishes one of `ports`: placing it depends on them. */
  private placementsNeed(ports: { tcp: Set<number>; udp: Set<number> }): boolean {
    if (ports.tcp.size === 0 && ports.udp.size === 0) return false;
    // The live records (read here, kept nowhere): copying every app each time a busy host's ports change would cost more than the check.
    for (const app of this.context.machine.schedulerView().apps) {
      for (const version of app.versions) {
        for (const port of version.spec.ports ?? []) if (port.published !== undefined && ports[port.protocol].has(port.published)) return true;
      }
    }
    return false;
  }

  /** The listening ports of one scan; a file that cannot be read (no IPv6) counts as empty. */
  private async scan(): Promise<{ tcp: Set<number>; udp: Set<number> }> {
    const read = this.context.readProc ?? (this.#lastScanBytes <= HOST_PORTS_SYNC_READ_BYTES_MAX ? readSync : (path: string) => readFile(path, 'utf8'));
    const text = async (name: string): Promise<string> => read(`/proc/self/net/${name}`).catch(() => '');
    const [tcp, tcp6, udp, udp6] = await Promise.all(['tcp', 'tcp6', 'udp', 'udp6'].map(text));
    this.#lastScanBytes = tcp!.length + tcp6!.length + udp!.length + udp6!.length;
    return {
      tcp: new Set([...listeningPorts(tcp!, 'tcp'), ...listeningPorts(tcp6!, 'tcp')]),
      udp: new Set([...listeningPorts(udp!, 'udp'), ...listeningPorts(udp6!, 'udp')]),
    };
  }
}

/** `readFileSync` behind the asynchronous signature (it settles on a later turn, like a read). */
async function readSync(path: string): Promise<string> {
  return readFileSync(path, 'utf8');
}
