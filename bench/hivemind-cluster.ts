import type { ChildProcess } from 'node:child_process';
import { appendFileSync, mkdirSync } from 'node:fs';
import { createInterface } from 'node:readline';
import type * as grpc from '@grpc/grpc-js';
import { clusterLabel, type BenchCluster, type MemberStatus } from './cluster.js';
import { freePorts, killAndWait, logTail, type Resources } from './processes.js';
import { makeClient, repositoryRoot, unaryCall, type ServiceSpec } from './rpc.js';
import type { ClientTls, ClusterTls } from './tls.js';

/** Log entries between snapshots: etcd 3.4's default snapshot count, for a like-for-like run. */
const SNAPSHOT_EVERY_ENTRIES = 100_000;

/**
 * Node.js flags every member runs with.
 *
 * - `--max-semi-space-size=2`: the agent's own (`bin/hivemind.js`,
 *   docs/operations.md), so the members are measured as Hivemind runs. A
 *   member's live heap is about 20-40 MiB; with V8's default (semi-spaces
 *   up to 16 MiB) the young generation and the garbage it promotes took its
 *   heap to 60-100 MiB (docs/internals/raft.md).
 * - `--heap-growing-percent=100`: after a full collection the old generation
 *   may grow to twice what survived it, as Go's default (GOGC=100) lets
 *   etcd's heap grow. V8's own factor rises to 4 for a process that
 *   allocates fast: the leader (client port, proposals) ended a run with a
 *   heap of 106-123 MiB of which 36-40 were live, the followers at 34-39,
 *   and that slack was most of what its RSS held beyond theirs. The agent
 *   does not run with it yet.
 */
export const MEMBER_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=2', '--heap-growing-percent=100'];

/** Hivemind's client service (proto/kv.proto). */
const kvService: ServiceSpec = { protoPath: 'proto/kv.proto', service: 'hivemind.kv.KV' };
/** The compiled server `npx tsc -b` builds from consensus/server/main.ts. */
export const defaultServerPath = `${repositoryRoot}dist/consensus/server/main.js`;
const readyTimeoutMs = 20_000;

interface Member {
  id: string;
  dataDirectory: string;
  logPath: string;
  peerAddress: string;
  clientAddress: string;
  process: ChildProcess | undefined;
  statusClient: grpc.Client | undefined;
}

/** The Status answer of proto/kv.proto, as proto-loader decodes it (uint64 as strings). */
interface StatusResponse {
  id: string;
  term: string;
  leader: string;
  role: string;
  commit: string;
}

/**
 * A 3-member Hivemind cluster of real `consensus/server/main.js` processes on
 * loopback, each with its own data dir under `workDirectory` (fsync on, as
 * the server always does). With `tls`, both ports of every member speak
 * mutual TLS (`--tls-dir`), as the agent's peer port and HTTPS API do.
 */
export class HivemindCluster implements BenchCluster {
  readonly system = 'hivemind';
  readonly memberIds = ['a', 'b', 'c'] as const;
  readonly putService = kvService;
  readonly timingSettings: string;
  readonly securitySettings: string;
  readonly tls: ClientTls | undefined;
  readonly label: string;
  private readonly members = new Map<string, Member>();

  constructor(
    private readonly options: {
      resources: Resources;
      workDirectory: string;
      /** The server's entry script, run with this Node binary. */
      serverPath: string;
      /** Node.js flags placed before the script. With any, `stop()` ends the servers with SIGTERM first. */
      nodeArgs: string[];
      tickMs: number;
      electionTicks: number;
      heartbeatTicks: number;
      /** The members' certificates (bench/tls.ts); undefined: plaintext on both ports. */
      tls: ClusterTls | undefined;
    },
  ) {
    const { tickMs, electionTicks, heartbeatTicks } = options;
    this.tls = options.tls?.client;
    this.label = clusterLabel(this.system, options.tls !== undefined);
    this.securitySettings =
      options.tls === undefined
        ? 'plaintext on both ports'
        : 'mutual TLS on both ports: peer port on grpc-js\'s TLS listener (Raft\'s batch stream on node:http2 at both ends), ' +
          'each member pinned by its certificate and every batch\'s sender checked ' +
          '(the transport\'s security hook); client port HTTP/2 over TLS, a client certificate of the CA required; ' +
          'ECDSA P-256 certificates from src/security/certificates.ts';
    this.timingSettings =
      `tick ${tickMs} ms, heartbeat ${heartbeatTicks} tick (${heartbeatTicks * tickMs} ms), ` +
      `election timeout ${electionTicks}-${2 * electionTicks} ticks (${electionTicks * tickMs}-${2 * electionTicks * tickMs} ms), ` +
      `pre-vote, check-quorum, snapshot every ${SNAPSHOT_EVERY_ENTRIES} entries (as etcd's default), ` +
      `Node.js flags ${MEMBER_NODE_FLAGS.join(' ')}`;
  }

  async start(): Promise<void> {
    const ports = await freePorts(2 * this.memberIds.length);
    this.memberIds.forEach((id, index) => {
      const dataDirectory = `${this.options.workDirectory}/${id}`;
      mkdirSync(dataDirectory, { recursive: true });
      this.members.set(id, {
        id,
        dataDirectory,
        logPath: `${this.options.workDirectory}/${id}.log`,
        peerAddress: `127.0.0.1:${ports[2 * index]}`,
        clientAddress: `127.0.0.1:${ports[2 * index + 1]}`,
        process: undefined,
        statusClient: undefined,
      });
    });
    await Promise.all(this.memberIds.map((id) => this.launch(this.member(id))));
  }

  clientAddress(id: string): string {
    return this.member(id).clientAddress;
  }

  pid(id: string): number | undefined {
    return this.member(id).process?.pid;
  }

  async status(id: string, deadlineMs: number): Promise<MemberStatus> {
    const member = this.member(id);
    if (!member.statusClient) throw new Error(`${id} is not running`);
    const response = await unaryCall<StatusResponse>({ client: member.statusClient, method: 'Status', request: {}, deadlineMs });
    const isLeader = response.role.toLowerCase() === 'leader';
    return { id, leader: response.leader || undefined, isLeader, term: Number(response.term), index: Number(response.commit) };
  }

  async kill(id: string): Promise<void> {
    const member = this.member(id);
    const child = member.process;
    member.process = undefined;
    member.statusClient?.close();
    member.statusClient = undefined;
    if (child) await killAndWait(child);
  }

  async restart(id: string): Promise<void> {
    await this.kill(id);
    await this.launch(this.member(id));
  }

  async stop(): Promise<void> {
    if (this.options.nodeArgs.length > 0) await Promise.all(this.memberIds.map((id) => this.terminate(id)));
    await Promise.all(this.memberIds.map((id) => this.kill(id)));
  }

  /** Asks `id` to stop (SIGTERM), so that exit-time output such as a CPU profile is written; waits at most 10 s. */
  private async terminate(id: string): Promise<void> {
    const child = this.member(id).process;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGTERM');
    await Promise.race([exited, new Promise<void>((resolve) => setTimeout(resolve, 10_000).unref())]);
  }

  private member(id: string): Member {
    const member = this.members.get(id);
    if (!member) throw new Error(`hivemind: no member ${id}`);
    return member;
  }

  /** Starts `member`'s process and resolves once it prints its ready line. */
  private async launch(member: Member): Promise<void> {
    const cluster = [...this.members.values()].map((peer) => `${peer.id}=${peer.peerAddress}/${peer.clientAddress}`).join(',');
    const args = [
      ...MEMBER_NODE_FLAGS,
      ...this.options.nodeArgs,
      this.options.serverPath,
      ...['--id', member.id, '--data-dir', member.dataDirectory],
      ...['--peer-listen', member.peerAddress, '--client-listen', member.clientAddress],
      ...['--cluster', cluster, '--tick-ms', String(this.options.tickMs)],
      ...['--election-ticks', String(this.options.electionTicks), '--heartbeat-ticks', String(this.options.heartbeatTicks)],
      // The same snapshot interval as etcd's default (--snapshot-count 100000), so both pay alike.
      ...['--snapshot-every', String(SNAPSHOT_EVERY_ENTRIES)],
      ...(this.options.tls === undefined ? [] : ['--tls-dir', this.options.tls.directory]),
    ];
    const child = this.options.resources.spawn({ command: process.execPath, args, logPath: member.logPath, pipeStdout: true });
    member.process = child;
    await waitForReadyLine({ child, logPath: member.logPath, timeoutMs: readyTimeoutMs, name: `hivemind ${member.id}` });
    member.statusClient = makeClient(kvService, member.clientAddress, this.tls);
  }
}

/**
 * Resolves when `child` prints `{"event":"ready",...}` on stdout. Every stdout
 * line is also appended to `logPath`. Rejects with the log's tail if the
 * process exits first or `timeoutMs` passes.
 */
function waitForReadyLine(options: { child: ChildProcess; logPath: string; timeoutMs: number; name: string }): Promise<void> {
  const { child, logPath, timeoutMs, name } = options;
  return new Promise((resolve, reject) => {
    const failure = (why: string): Error => new Error(`${name} ${why}; last lines of ${logPath}:\n${logTail(logPath)}`);
    const timer = setTimeout(() => reject(failure(`printed no ready line within ${timeoutMs} ms`)), timeoutMs);
    const onExit = (code: number | null, signal: string | null): void => {
      clearTimeout(timer);
      reject(failure(`exited (code ${code}, signal ${signal}) before it was ready`));
    };
    child.once('exit', onExit);
    createInterface({ input: child.stdout! }).on('line', (line) => {
      appendFileSync(logPath, `${line}\n`);
      if (isReadyLine(line)) {
        clearTimeout(timer);
        child.off('exit', onExit);
        resolve();
      }
    });
  });
}

function isReadyLine(line: string): boolean {
  try {
    return (JSON.parse(line) as { event?: unknown }).event === 'ready';
  } catch {
    return false;
  }
}
