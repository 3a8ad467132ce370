import { execFileSync, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import type * as grpc from '@grpc/grpc-js';
import { clusterLabel, type BenchCluster, type MemberStatus } from './cluster.js';
import { freePorts, killAndWait, logTail, sleep, type Resources } from './processes.js';
import { makeClient, unaryCall, type ServiceSpec } from './rpc.js';
import type { ClientTls, ClusterTls } from './tls.js';

const etcdProto = 'bench/proto/etcd-kv.proto';
const startTimeoutMs = 30_000;

interface Member {
  id: string;
  dataDirectory: string;
  logPath: string;
  peerUrl: string;
  clientAddress: string;
  process: ChildProcess | undefined;
  statusClient: grpc.Client | undefined;
}

/** etcd's Maintenance.Status answer as proto-loader decodes it (uint64 as decimal strings). */
interface StatusResponse {
  header: { member_id: string; raft_term: string };
  leader: string;
  raftIndex: string;
}

/** The `etcd` version line (`3.4.23`), or undefined when no etcd binary is on PATH. */
export function etcdVersion(): string | undefined {
  try {
    const output = execFileSync('etcd', ['--version'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    return /etcd Version:\s*(\S+)/.exec(output)?.[1] ?? output.split('\n')[0];
  } catch {
    return undefined;
  }
}

/**
 * A 3-member etcd cluster of real `etcd` processes on loopback with etcd's
 * default heartbeat (100 ms), election timeout (1000 ms) and snapshot count;
 * etcd fsyncs its WAL before acknowledging, as Hivemind does. With `tls`,
 * both ports speak mutual TLS with the benchmark's certificates
 * (`--cert-file`/`--client-cert-auth`, `--peer-cert-file`/`--peer-client-cert-auth`).
 */
export class EtcdCluster implements BenchCluster {
  readonly system = 'etcd';
  readonly memberIds = ['a', 'b', 'c'] as const;
  readonly putService: ServiceSpec = { protoPath: etcdProto, service: 'etcdserverpb.KV' };
  readonly timingSettings =
    'heartbeat 100 ms, election timeout 1000 ms (randomized 1000-2000 ms), pre-vote off, snapshot every 100000 entries (etcd 3.4 defaults)';
  readonly securitySettings: string;
  readonly tls: ClientTls | undefined;
  readonly label: string;
  private readonly members = new Map<string, Member>();
  /** etcd's uint64 member id (decimal string) to the benchmark's name. */
  private readonly nameByMemberId = new Map<string, string>();
  private readonly clusterToken = `hivemind-bench-${process.pid}-${Date.now()}`;

  constructor(
    private readonly options: {
      resources: Resources;
      workDirectory: string;
      /** The members' certificates (bench/tls.ts); undefined: plaintext on both ports. */
      tls: ClusterTls | undefined;
    },
  ) {
    this.tls = options.tls?.client;
    this.label = clusterLabel(this.system, options.tls !== undefined);
    this.securitySettings =
      options.tls === undefined
        ? 'plaintext on both ports'
        : 'mutual TLS on both ports: --peer-client-cert-auth and --client-cert-auth with the same CA and ' +
          'ECDSA P-256 certificates as Hivemind\'s (the issue\'s --peer-auto-tls/--auto-tls would check no client certificate)';
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
        peerUrl: `${this.options.tls === undefined ? 'http' : 'https'}://127.0.0.1:${ports[2 * index]}`,
        clientAddress: `127.0.0.1:${ports[2 * index + 1]}`,
        process: undefined,
        statusClient: undefined,
      });
    });
    for (const id of this.memberIds) this.launch(this.member(id));
    await Promise.all(this.memberIds.map((id) => this.waitAnswering(this.member(id))));
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
    const ownId = response.header.member_id;
    this.nameByMemberId.set(ownId, id);
    return {
      id,
      leader: response.leader === '0' ? undefined : this.nameByMemberId.get(response.leader) ?? `etcd-${response.leader}`,
      isLeader: response.leader === ownId,
      term: Number(response.header.raft_term),
      index: Number(response.raftIndex),
    };
  }

  async kill(id: string): Promise<void> {
    const member = this.member(id);
    const child = member.process;
    member.process = undefined;
    member.statusClient?.close();
    member.statusClient = undefined;
    if (child) await killAndWait(child);
  }

  /** Starts the member again on its data dir; etcd then ignores the --initial-* flags. */
  async restart(id: string): Promise<void> {
    await this.kill(id);
    this.launch(this.member(id));
    await this.waitAnswering(this.member(id));
  }

  async stop(): Promise<void> {
    await Promise.all(this.memberIds.map((id) => this.kill(id)));
  }

  private member(id: string): Member {
    const member = this.members.get(id);
    if (!member) throw new Error(`etcd: no member ${id}`);
    return member;
  }

  private launch(member: Member): void {
    const initialCluster = [...this.members.values()].map((peer) => `${peer.id}=${peer.peerUrl}`).join(',');
    const tls = this.options.tls;
    const clientUrl = `${tls === undefined ? 'http' : 'https'}://${member.clientAddress}`;
    const args = [
      ...['--name', member.id, '--data-dir', member.dataDirectory],
      ...['--listen-peer-urls', member.peerUrl, '--initial-advertise-peer-urls', member.peerUrl],
      ...['--listen-client-urls', clientUrl, '--advertise-client-urls', clientUrl],
      ...['--initial-cluster', initialCluster, '--initial-cluster-state', 'new'],
      ...['--initial-cluster-token', this.clusterToken],
      ...(tls === undefined ? [] : tlsFlags(tls, member.id)),
    ];
    member.process = this.options.resources.spawn({ command: 'etcd', args, logPath: member.logPath });
    member.statusClient = makeClient({ protoPath: etcdProto, service: 'etcdserverpb.Maintenance' }, member.clientAddress, this.tls);
  }

  /** Polls Maintenance.Status until the member answers; rejects with its log's tail. */
  private async waitAnswering(member: Member): Promise<void> {
    const deadline = Date.now() + startTimeoutMs;
    while (Date.now() < deadline) {
      const child = member.process;
      if (!child || child.exitCode !== null || child.signalCode !== null) break;
      try {
        await this.status(member.id, 500);
        return;
      } catch {
        await sleep(100);
      }
    }
    throw new Error(`etcd ${member.id} did not answer Status within ${startTimeoutMs} ms; last lines of ${member.logPath}:\n${logTail(member.logPath)}`);
  }
}

/** etcd 3.4's flags for mutual TLS on both ports, with member `id`'s key and certificate (one pair serves both). */
function tlsFlags(tls: ClusterTls, id: string): string[] {
  const key = tls.keyPath(id);
  const certificate = tls.certificatePath(id);
  return [
    ...['--cert-file', certificate, '--key-file', key, '--trusted-ca-file', tls.caPath, '--client-cert-auth'],
    ...['--peer-cert-file', certificate, '--peer-key-file', key, '--peer-trusted-ca-file', tls.caPath, '--peer-client-cert-auth'],
  ];
}
