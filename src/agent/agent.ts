/**
 * The agent: one Hivemind node. It wires the Raft node (LevelDB storage,
 * gRPC transport with the cluster service on the same port), the replicated
 * state, the HTTP API and the membership manager, and keeps them going:
 *
 * - start: bootstrap a one-node cluster (empty data directory), restart from
 *   the data directory, or join through a seed (docs/internals/agent.md);
 * - every WATCH_INTERVAL_MS: follow the leader, refresh peer addresses from
 *   the node records, keep the token file current, make sure this node's own
 *   record (and, on the leader, the join token) is in the state, notice that
 *   this node left or was dropped from the cluster, and on the leader run one
 *   step of the membership manager.
 *
 * One thread: the state machine is read between applies, so every
 * synchronous read is consistent.
 */
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { performance } from 'node:perf_hooks';
import { LevelStorage } from '../../consensus/storage-level.js';
import { GrpcTransport } from '../../consensus/transport-grpc.js';
import { RaftNode } from '../../consensus/node.js';
import { ConfigChangeError, NotLeaderError, ProposalLostError, TimeoutError } from '../../consensus/errors.js';
import { isMember, members } from '../../consensus/core/config.js';
import type { Status } from '../../consensus/core/types.js';
import { join } from 'node:path';
import { ApiServer, formatHostPort } from '../api/server.js';
import { AuditLog } from '../api/audit.js';
import { apiTokenId, generateApiToken } from '../api/routes-tokens.js';
import { ApiCode, ApiError } from '../api/errors.js';
import type { ApiBackend, LeaveOutcome } from '../api/backend.js';
import { Metrics, type ProposalOutcome } from '../api/metrics.js';
import { hasLeftMembership } from '../state/apply-nodes.js';
import { TOKEN_ASSOCIATED_DATA, generateClusterKey, generateToken, hashToken, openSecret, sealSecret } from '../state/secrets.js';
import type { Command, CommandResult, Envelope, NodeAddresses, NodeRecord, Resources } from '../state/types.js';
import { AgentError } from './agent-error.js';
import { ClusterClients, clusterServiceForServer, grpc } from './cluster-service.js';
import type { AgentConfig } from '../node/config.js';
import { DataDir, type NodeIdentity } from '../node/data-dir.js';
import { JoinService, describeJoinFailure, joinCluster, sendJoin, type JoinerIdentity } from './joining.js';
import { MembershipPlanner, type MembershipAction } from './membership.js';
import { ReplicatedState, decodeEnvelope, encodeEnvelope, encodeValue } from '../node/replicated-state.js';
import { MEMBER_COMMANDS, selfField, signSubmit, submitAuthProblem, type SubmitRequestWire } from './submit.js';
import { validateEnvelope } from '../state/validate.js';
import { STATE_VERSION } from '../state/version.js';
import { COMPONENT_FACTORIES } from './components.js';
import { NodeTrust } from './trust.js';
import { retryUntil } from '../node/retry.js';
import { certificateFingerprint } from '../security/certificates.js';
import { pinnedToken } from '../security/pinned-token.js';
import { TLS_SERVER_NAME, unverifiedChannelCredentials, type NodeCredentials } from '../security/node-credentials.js';
import type { BoundPorts, NodeComponent, NodeServices } from '../node/services.js';
import { isGossipView, type GossipView } from '../membership/component.js';
import type { DiscoveryAnnouncer } from '../membership/discovery.js';

/** How the agent starts. */
export type StartMode = 'bootstrap-or-restart' | { join: string };

/** How `startAgent` runs the node; all but `mode` have defaults. */
export interface StartAgentOptions {
  /**
   * `bootstrap-or-restart`: restart from the data directory, or bootstrap a
   * new one-node cluster if it is empty. `{ join: seed }`: join through a
   * member's peer address (`host[:port]`); a data directory that already
   * belongs to a member just restarts.
   */
  mode: StartMode;
  /** Lines for the operator (the join token on bootstrap). Default: stdout. */
  print?: (line: string) => void;
  /** Log lines (already prefixed with time and node name). Default: stderr. */
  log?: (line: string) => void;
  /** How long a join keeps trying. Default 60 s. */
  joinTimeoutMs?: number;
}

/** Why an agent stopped. */
export type AgentStopReason = { type: 'requested' } | { type: 'left' } | { type: 'fatal'; error: Error };

/** A running node. */
export interface Agent {
  readonly name: string;
  /** `host:port` the API is reachable at (advertised host, bound port). */
  readonly apiAddress: string;
  /** `host:port` peers reach this node at. */
  readonly peerAddress: string;
  /** This node's TLS credentials: the material in force (`current`); `update` puts new material in force everywhere, the API included. */
  readonly credentials: NodeCredentials;
  /** Settles once the agent stopped, saying why (it may stop by itself: left, fatal error). */
  readonly stopped: Promise<AgentStopReason>;
  /** This node's Raft status. */
  raftStatus(): Status;
  /** Stops the API, the membership manager and the Raft node; idempotent. */
  stop(): Promise<void>;
}

/** Starts a node; rejects with AgentError (or DataDirError) when it cannot. */
export async function startAgent(config: AgentConfig, options: StartAgentOptions): Promise<Agent> {
  const agent = new HivemindAgent(config, options);
  try {
    await agent.start();
  } catch (error) {
    await agent.stopWith({ type: 'requested' });
    agent.discardUnfinishedJoin();
    throw error;
  }
  return agent;
}

const WATCH_INTERVAL_MS = 100;
/** After leaving, the node lingers this long so the answer to the leave can get out. */
const LEAVE_STOP_DELAY_MS = 1000;
const REJOIN_INTERVAL_MS = 5000;
/**
 * One rejoin call: the leader registers the node and may add it to Raft as
 * a learner before it answers, which under faults takes seconds; a call cut
 * short is admitted all the same but its answer (the node's new certificate)
 * is lost, and the next try starts over.
 */
const REJOIN_CALL_TIMEOUT_MS = 15_000;
/**
 * A follower or learner that has not heard from its leader for this long
 * counts as outside the cluster (see maybeRejoin). A voter campaigns long
 * before; a learner never does, and a learner removed while the message
 * that said so was lost would otherwise wait for its leader forever.
 */
const LEADER_SILENCE_MS = 2000;
const ENSURE_INTERVAL_MS = 1000;
/**
 * The membership planner runs at once when the records or the Raft
 * configuration changed, else at most this often: it reads every node
 * record, and what time alone changes (graces of seconds or more, gossip's
 * and Raft's liveness) can wait this long.
 */
const MEMBERSHIP_INTERVAL_MS = 500;
const READY_TIMEOUT_MS = 30_000;
const INTERNAL_PROPOSAL_TIMEOUT_MS = 10_000;
const MEMBERSHIP_CHANGE_TIMEOUT_MS = 10_000;
const JOIN_TIMEOUT_MS_DEFAULT = 60_000;
const CONFIG_RETRY_DELAY_MS = 100;
const LOG_REPEAT_INTERVAL_MS = 10_000;

/** Hivemind's version, from package.json. */
const VERSION = readVersion();

function readVersion(): string {
  try {
    const packageJson = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version?: unknown };
    return typeof packageJson.version === 'string' ? packageJson.version : 'unknown';
  } catch {
    return 'unknown';
  }
}

type Plan = 'bootstrap' | 'join' | 'restart';

class HivemindAgent implements Agent, ApiBackend {
  readonly name: string;
  readonly version = VERSION;
  readonly metrics: Metrics;
  private readonly dataDir: DataDir;
  private readonly replicated = new ReplicatedState();
  private readonly trust: NodeTrust;
  private readonly clients: ClusterClients;
  private readonly planner: MembershipPlanner;
  private readonly print: (line: string) => void;
  private readonly writeLog: (line: string) => void;
  private readonly joinService: JoinService;
  private readonly stopController = new AbortController();
  private transportInstance: GrpcTransport | undefined;
  private raftInstance: RaftNode | undefined;
  private apiInstance: ApiServer | undefined;
  private readonly componentList: NodeComponent[] = [];
  private boundPorts: BoundPorts = {};
  private announcer: DiscoveryAnnouncer | undefined;
  private announcedToken: string | undefined;
  private discoveryBusy = false;
  private raftStarted = false;
  private identity: NodeIdentity | undefined;
  private key: Uint8Array | undefined;
  private token: { index: number; value: string } | undefined;
  /** The token record (its rotation index) last written to the token file. */
  private tokenFileIndex: number | undefined;
  /** A token to store when this node leads a cluster that has none (bootstrap). */
  private pendingToken: string | undefined;
  private advertised: NodeAddresses | undefined;
  private watchTimer: ReturnType<typeof setInterval> | undefined;
  /** The node records' revision and the Raft members that the peer addresses were last computed from (see peersKey). */
  private peersComputedFrom: string | undefined;
  private membershipRecordsCache: { revision: number; records: { id: string; status: NodeRecord['status']; role: NodeRecord['role'] }[] } | undefined;
  /** `peerMap()`'s last answer and what it was computed from (it runs on every forwarded submit). */
  private peerMapCache: { revision: number; identity: NodeIdentity | undefined; advertised: string | undefined; peers: Readonly<Record<string, string>> } | undefined;
  private lastLeader: string | undefined;
  private membershipBusy = false;
  /** When the membership planner last ran (ms, `performance.now()`), and on what records and configuration. */
  private membershipLast: { at: number; inputs: string } | undefined;
  private ensureBusy = false;
  private lastEnsureAt = 0;
  private rejoinBusy = false;
  private lastRejoinAt = 0;
  private outsideSince: number | undefined;
  private leaving = false;
  /** True from the start of a join until the node's identity is written. */
  private joining = false;
  private stopPromise: Promise<void> | undefined;
  private resolveStopped: (reason: AgentStopReason) => void = () => {};
  private readonly lastLogged = new Map<string, number>();
  readonly stopped: Promise<AgentStopReason>;

  constructor(
    private readonly config: AgentConfig,
    private readonly options: StartAgentOptions,
  ) {
    this.name = config.name;
    this.dataDir = new DataDir(config.dataDir);
    this.print = options.print ?? ((line) => process.stdout.write(`${line}\n`));
    this.writeLog = options.log ?? ((line) => process.stderr.write(`${line}\n`));
    this.planner = new MembershipPlanner({ graceMs: config.voterGraceMs });
    this.stopped = new Promise((resolve) => (this.resolveStopped = resolve));
    this.metrics = new Metrics({ nodeId: this.name, raft: () => this.gaugeSource() });
    this.replicated.onApplyDuration = (seconds) => this.metrics.applySeconds.observe(seconds);
    // A new trusted CA is in force here as soon as it applies: peers renewing from it connect within the second.
    this.replicated.listen((event) => {
      if ((event.type === 'applied' && event.commandType === 'ca.set') || event.type === 'restored') this.trust.maybeSync();
    });
    this.trust = new NodeTrust({
      nodeId: this.name,
      dataDir: this.dataDir,
      machine: this.replicated.machine,
      clusterKey: () => this.key,
      addresses: () => [config.advertise],
      log: (line) => this.log('trust', line),
      now: () => Date.now(),
    });
    this.clients = new ClusterClients({
      memberCredentials: () => this.trust.credentials.channelCredentials(),
      joinCredentials: unverifiedChannelCredentials,
      channelOptions: { 'grpc.ssl_target_name_override': TLS_SERVER_NAME },
    });
    const self = this;
    this.joinService = new JoinService({
      name: this.name,
      get raft() {
        return self.raft;
      },
      machine: this.replicated.machine,
      clients: this.clients,
      clusterKey: () => this.key,
      currentToken: () => this.currentToken(),
      propose: (envelope, timeoutMs) => this.propose(envelope, timeoutMs),
      peerMap: () => this.peerMap(),
      signJoiner: (requestPem, nodeId, addresses) => this.trust.signJoiner(requestPem, nodeId, addresses),
      log: (line) => this.log('join', line),
    });
  }

  // ---------------------------------------------------------------------------
  // Agent

  get raft(): RaftNode {
    if (this.raftInstance === undefined) throw new AgentError('start-failed', `node ${this.name} has no Raft node yet`);
    return this.raftInstance;
  }

  get nodeId(): string {
    return this.name;
  }

  get machine(): ApiBackend['machine'] {
    return this.replicated.machine;
  }

  /** This node's TLS credentials (its material in force; `update` puts new material in force everywhere, the API included). */
  get credentials(): NodeCredentials {
    return this.trust.credentials;
  }

    get apiAddress(): string {
    return this.advertisedAddresses().api;
  }

  get peerAddress(): string {
    return this.advertisedAddresses().peer;
  }

  raftStatus(): Status {
    return this.raft.status();
  }

  stop(): Promise<void> {
    return this.stopWith({ type: 'requested' });
  }

  /** After a join that did not complete: the empty Raft directory it made must not look like a member's. */
  discardUnfinishedJoin(): void {
    if (this.joining) this.dataDir.resetMembership();
  }

  stopWith(reason: AgentStopReason): Promise<void> {
    this.stopPromise ??= this.shutDown(reason);
    return this.stopPromise;
  }

  private async shutDown(reason: AgentStopReason): Promise<void> {
    this.stopController.abort();
    clearInterval(this.watchTimer);
    // A node that left releases what it ran for the cluster first: its workloads now run elsewhere.
    if (reason.type === 'left') {
      for (const component of [...this.componentList].reverse()) {
        await component.leave?.().catch((error: unknown) => this.log(component.name, `leaving failed: ${(error as Error).message}`));
      }
    }
    // Every component, started or only bound (a start that failed half way leaves sockets to close).
    for (const component of [...this.componentList].reverse()) {
      await component.stop().catch((error: unknown) => this.log(component.name, `stopping failed: ${(error as Error).message}`));
    }
    await this.announcer?.stop().catch(() => {});
    if (this.apiInstance) this.apiInstance.ready = false;
    await this.apiInstance?.stop().catch((error: unknown) => this.log('api', `stopping the API failed: ${(error as Error).message}`));
    await this.raftInstance?.stop().catch((error: unknown) => this.log('raft', `stopping Raft failed: ${(error as Error).message}`));
    this.clients.close();
    this.log('agent', `stopped (${reason.type === 'fatal' ? `fatal: ${reason.error.message}` : reason.type})`);
    this.resolveStopped(reason);
  }

  // ---------------------------------------------------------------------------
  // Start

  async start(): Promise<void> {
    const plan = this.choosePlan();
    this.log('agent', `starting (${plan}) with data directory ${this.config.dataDir}${this.plaintextApiNote()}`);
    this.buildComponents();
    await this.apiInstance!.start();
    for (const component of this.componentList) {
      if (component.bind) this.boundPorts = { ...this.boundPorts, ...(await component.bind()) };
    }
    if (plan === 'bootstrap') {
      this.dataDir.writeClusterKey(this.key!);
      await this.trust.prepareBootstrap(this.key!);
      this.dataDir.writeIdentity(this.identity!);
    }
    if (plan === 'restart') this.trust.loadFromDisk();
    await this.raftInstance!.start(this.identity?.origin === 'bootstrap' || plan === 'bootstrap' ? { bootstrap: { voters: [this.name], learners: [] } } : {});
    this.raftStarted = true;
    this.advertised = this.computeAdvertised();
    if (plan === 'join') {
      this.joining = true;
      await this.join(this.config.token!);
      this.joining = false;
      this.dataDir.clearJoinPending();
    }
    this.raftInstance!.setPeers({ ...this.identity!.peers, ...this.peerMap() });
    this.watchTimer = setInterval(() => this.watch(), WATCH_INTERVAL_MS);
    this.watchTimer.unref();
    if (plan === 'bootstrap') await this.waitUntil(() => this.machine.token() !== undefined && this.machine.node(this.name) !== undefined, 'the new cluster to store its join token', true);
    // A joiner serves once it holds the state up to its own registration (the token included, which the API checks).
    if (plan === 'join') await this.waitUntil(() => this.ownRecord() !== undefined, 'this node to catch up with the cluster', false);
    this.apiInstance!.ready = true;
    this.syncTokenFile();
    for (const component of this.componentList) await component.start();
    this.log('agent', `serving: API on ${this.apiInstance!.scheme}://${this.apiAddress}, peers on ${this.peerAddress}${this.plaintextApiNote()}`);
  }

  /** With --insecure-api, what every line at start says. */
  private plaintextApiNote(): string {
    return this.config.insecureApi ? ' [API in PLAIN HTTP (--insecure-api): the token and secrets cross the network in clear]' : '';
  }

  private choosePlan(): Plan {
    this.dataDir.ensure();
    let identity = this.dataDir.readIdentity();
    const joinSeed = typeof this.options.mode === 'object' ? this.options.mode.join : undefined;
    if (identity !== undefined && identity.name !== this.name) {
      throw new AgentError('data-dir', `the data directory ${this.config.dataDir} belongs to node "${identity.name}", not "${this.name}"; use --name ${identity.name}, or another --data-dir`);
    }
    if (identity?.left) {
      if (joinSeed === undefined) {
        throw new AgentError('left', `node "${this.name}" has left its cluster; run \`hivemind join <seed>\` to join one again (the data directory is reset), or use an empty --data-dir to start a new cluster`);
      }
      this.log('agent', 'this node left its cluster earlier: resetting its data directory to join again');
      this.dataDir.resetMembership();
      identity = undefined;
    }
    if (identity !== undefined) {
      if (joinSeed !== undefined) this.log('agent', `the data directory already belongs to a member: restarting it, not joining through ${joinSeed}`);
      const key = this.dataDir.readClusterKey();
      if (key === undefined) throw new AgentError('data-dir', `the data directory ${this.config.dataDir} has node.json but no cluster.key; restore cluster.key from a backup, or start with an empty data directory and join again`);
      this.identity = identity;
      this.key = key;
      // A join that finished but died before it cleared its record: the membership is what counts.
      this.dataDir.clearJoinPending();
      return 'restart';
    }
    if (this.dataDir.hasRaftData()) {
      throw new AgentError('data-dir', `the data directory ${this.config.dataDir} holds Raft data but no node.json; restore node.json from a backup, or start with an empty data directory`);
    }
    if (joinSeed !== undefined) {
      if (this.config.token === undefined) throw new AgentError('config', 'joining needs the cluster\'s join token: pass --token (or HIVEMIND_TOKEN); `hivemind token` on a member shows it');
      this.dataDir.writeJoinPending(joinSeed);
      this.identity = { format: 1, name: this.name, origin: 'join', createdAt: new Date().toISOString(), peers: {} };
      return 'join';
    }
    // A join began here and did not finish: bootstrapping would make a second cluster beside the one it was joining.
    const pending = this.dataDir.readJoinPending();
    if (pending !== undefined) {
      throw new AgentError('data-dir', `the data directory ${this.config.dataDir} began joining a cluster through ${pending.seed} (${pending.startedAt}) and the join did not finish; run \`hivemind join ${pending.seed}\` again, or use an empty --data-dir to start a new cluster`);
    }
    // Written once the API port is bound (see start), so a failed first start leaves no half cluster.
    this.key = generateClusterKey();
    this.identity = { format: 1, name: this.name, origin: 'bootstrap', createdAt: new Date().toISOString(), peers: {} };
    this.pendingToken = this.config.token ?? generateToken();
    return 'bootstrap';
  }

  private buildComponents(): void {
    const { config } = this;
    const credentials = this.trust.credentials;
    const authenticate = (call: { getAuthContext(): object | null }) => {
      const verdict = credentials.authenticate(call.getAuthContext());
      return verdict.ok ? { ok: true as const, nodeId: verdict.nodeId } : verdict;
    };
    const onRejected = (reason: string) => this.metrics.peerRejected.inc({ reason });
    this.transportInstance = new GrpcTransport({
      id: this.name,
      listen: formatHostPort(config.bind, config.ports.peer),
      logger: (line) => this.log('transport', line),
      security: {
        serverCredentials: () => credentials.serverCredentials(),
        channelCredentials: (id) => credentials.channelCredentials(id),
        channelOptions: { 'grpc.ssl_target_name_override': TLS_SERVER_NAME },
        authenticate,
        onRejected,
      },
      services: [
        clusterServiceForServer({
          join: (request) => this.joinService.handle(request),
          submit: (request, caller) => this.handleSubmit(request, caller),
          authenticate,
          onRejected,
          log: (line) => this.log('join', line),
        }),
      ],
    });
    this.raftInstance = new RaftNode({
      id: this.name,
      storage: new LevelStorage({ directory: this.dataDir.raftPath, logger: (line) => this.log('storage', line) }),
      transport: this.transportInstance,
      stateMachine: this.replicated,
      peers: this.identity?.peers ?? {},
      tickMs: config.tickMs,
      snapshotEveryEntries: config.snapshotEveryEntries,
      logger: (line) => this.log('raft', line),
      onFatal: (error) => void this.stopWith({ type: 'fatal', error }),
    });
    const audit = new AuditLog(join(config.dataDir, 'audit'), { log: (line) => this.logOnce(line, 'api', line) });
    this.apiInstance = new ApiServer({ backend: this, host: config.bind, port: config.ports.api, metricsPublic: config.metricsPublic, credentials, insecure: config.insecureApi, audit });
    const services = this.services();
    for (const factory of COMPONENT_FACTORIES) this.componentList.push(factory(services));
  }

  /** What components get of this node (see services.ts). */
  private services(): NodeServices {
    return {
      nodeId: this.name,
      config: this.config,
      dataDir: this.config.dataDir,
      machine: this.replicated.machine,
      listen: (listener) => this.replicated.listen(listener),
      raftStatus: () => this.raft.status(),
      isLeader: () => this.raftStarted && this.raft.status().role === 'leader',
      submit: (command, options) => this.submit(command, options?.timeoutMs ?? INTERNAL_PROPOSAL_TIMEOUT_MS),
      addresses: () => this.advertisedAddresses(),
      boundPorts: () => this.boundPorts,
      log: (component, line) => this.log(component, line),
      registry: this.metrics.registry,
      signal: this.stopController.signal,
      peerTls: this.trust.credentials,
    };
  }

  caRotation(): ReturnType<ApiBackend['caRotation']> {
    return this.trust.rotationCommand();
  }

  /** A component by name (for the API's routes into it). */
  component(name: string): NodeComponent | undefined {
    return this.componentList.find((component) => component.name === name);
  }

  private computeAdvertised(): NodeAddresses {
    const port = (address: string): number => Number(address.slice(address.lastIndexOf(':') + 1));
    const host = this.config.advertise;
    return {
      api: formatHostPort(host, port(this.apiInstance!.address)),
      peer: formatHostPort(host, port(this.transportInstance!.address)),
      gossip: formatHostPort(host, this.boundPorts.gossip ?? this.config.ports.gossip),
    };
  }

  private advertisedAddresses(): NodeAddresses {
    if (this.advertised === undefined) throw new AgentError('start-failed', `node ${this.name} is not started`);
    return this.advertised;
  }

  private joinerIdentity(): JoinerIdentity {
    return { nodeId: this.name, addresses: this.advertisedAddresses(), labels: {}, resources: machineResources() };
  }

  private async join(token: string): Promise<void> {
    const seed = (this.options.mode as { join: string }).join;
    const joined = await joinCluster(this.clients, {
      seed,
      token,
      identity: this.joinerIdentity(),
      certificateRequest: await this.trust.prepareJoin(),
      timeoutMs: this.options.joinTimeoutMs ?? JOIN_TIMEOUT_MS_DEFAULT,
      log: (line) => this.log('join', line),
      signal: this.stopController.signal,
    });
    const pin = this.config.tokenCaFingerprint;
    if (pin !== undefined && !joined.caPems.some((pem) => certificateFingerprint(pem) === pin)) {
      throw new AgentError('join-failed', `the cluster's CA (${joined.caPems.map(certificateFingerprint).join(', ')}) is not the one the token pins (${pin}): the token is from another cluster, or its CA was rotated since; copy the token again from \`hivemind token\``);
    }
    this.trust.completeJoin(joined);
    this.key = joined.clusterKey;
    this.dataDir.writeClusterKey(joined.clusterKey);
    this.identity = { ...this.identity!, peers: joined.peers, ...(joined.joinedIndex > 0 ? { joinedIndex: joined.joinedIndex } : {}) };
    this.dataDir.writeIdentity(this.identity);
    this.dataDir.writeToken(token);
    this.raft.setPeers(joined.peers);
    this.log('join', `joined through ${seed}: leader ${joined.leader}, ${Object.keys(joined.peers).length} members known`);
  }

  private async waitUntil(condition: () => boolean, what: string, required: boolean): Promise<void> {
    const deadline = Date.now() + READY_TIMEOUT_MS;
    while (!condition()) {
      if (this.stopController.signal.aborted) throw new AgentError('start-failed', `node ${this.name} stopped while waiting for ${what}`);
      if (Date.now() > deadline) {
        if (required) throw new AgentError('start-failed', `node ${this.name} gave up waiting for ${what} after ${READY_TIMEOUT_MS / 1000}s`);
        this.log('agent', `still waiting for ${what}; serving meanwhile`);
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  /** Tells the operator the token of a cluster this node just founded. */
  private printToken(token: string): void {
    const signingCa = this.trust.credentials.current?.caPems[0];
    const shown = signingCa === undefined ? token : pinnedToken(token, signingCa);
    this.print(`join token: ${shown}`);
    this.print(`to add a node: hivemind join ${this.peerAddress} --token ${shown}`);
  }

  // ---------------------------------------------------------------------------
  // ApiBackend

  clusterKey(): Uint8Array {
    if (this.key === undefined) throw new ApiError(503, ApiCode.unavailable, `node ${this.name} has not received the cluster key yet; retry shortly`);
    return this.key;
  }

  currentToken(): string | undefined {
    const record = this.machine.token();
    if (record === undefined || this.key === undefined) return undefined;
    if (this.token?.index === record.rotatedIndex) return this.token.value;
    const opened = openSecret(this.key, { ciphertext: record.sealed, nonce: record.nonce }, TOKEN_ASSOCIATED_DATA);
    if (!opened.ok) {
      this.logOnce('token-unreadable', 'agent', `cannot open the cluster's join token with this node's cluster key: ${opened.error.message}`);
      return undefined;
    }
    const value = Buffer.from(opened.plaintext).toString('utf8');
    this.token = { index: record.rotatedIndex, value };
    return value;
  }

  async propose(envelope: Envelope, timeoutMs: number): Promise<CommandResult> {
    const started = performance.now();
    try {
      // Stamped with this code's state version, whoever asked (version.ts): a node too old for it stops rather than diverge.
      const proposed = await this.raft.propose(encodeEnvelope({ ...envelope, version: STATE_VERSION }), { timeoutMs });
      const result = proposed.result as CommandResult;
      this.metrics.proposals.inc({ outcome: result.ok ? 'applied' : 'refused' });
      this.metrics.proposalSeconds.observe((performance.now() - started) / 1000);
      return result;
    } catch (error) {
      this.metrics.proposals.inc({ outcome: proposalOutcome(error) });
      throw error;
    }
  }

  waitBeyond(index: number, timeoutMs: number, signal?: AbortSignal): Promise<boolean> | undefined {
    return this.replicated.waitBeyond(index, timeoutMs, signal);
  }

  async leave(id: string, options: { requestId: string; actor: string; timeoutMs: number }): Promise<LeaveOutcome> {
    const deadline = Date.now() + options.timeoutMs;
    const record = this.machine.node(id);
    const status = this.raft.status();
    const member = status.config.voters.includes(id) || status.config.learners.includes(id);
    if (record === undefined && !member) throw new ApiError(404, ApiCode.notFound, `node "${id}" is not registered in this cluster`, 'id');
    if (id === this.name) {
      const target = this.transferTarget(status);
      if (target === undefined) {
        throw new ApiError(
          409,
          ApiCode.conflict,
          `node "${id}" is the cluster's only voter and cannot leave: the cluster would have no quorum; join more nodes first (learners are promoted automatically), or stop it if the cluster should end`,
          'id',
        );
      }
      this.log('agent', `leaving: handing leadership to ${target} first`);
      await this.raft.transferLeadership(target, { timeoutMs: Math.max(1, deadline - Date.now()) });
      return { type: 'moved', leader: target };
    }
    // The record first: the leaving node sees it is out and stops; then Raft membership.
    let result: CommandResult = { ok: true, index: this.machine.appliedIndex };
    if (record !== undefined) {
      // Ends the membership the record is of now: applied after the node left and joined again, it is refused.
      const envelope: Envelope = { requestId: options.requestId, time: Date.now(), actor: options.actor, command: { type: 'node.remove', id, joinedIndex: record.joinedIndex } };
      result = this.machine.rememberedResult(options.requestId) ?? (await this.propose(envelope, Math.max(1, deadline - Date.now())));
      if (!result.ok) return { type: 'done', result };
    }
    if (member) {
      try {
        await this.changeMembership(() => this.raft.removeNode(id, { timeoutMs: Math.max(1, deadline - Date.now()) }), deadline);
      } catch (error) {
        // The record says left: the membership manager finishes the removal.
        this.log('membership', `removing ${id} from Raft did not finish yet (${(error as Error).message}); the membership manager will retry`);
      }
    }
    this.log('membership', `node ${id} left the cluster`);
    return { type: 'done', result };
  }

  log(componentOrLine: string, line?: string): void {
    const [component, text] = line === undefined ? ['api', componentOrLine] : [componentOrLine, line];
    this.writeLog(`${new Date().toISOString()} ${this.name} ${component}: ${text}`);
  }

  // ---------------------------------------------------------------------------
  // The watch loop

  private watch(): void {
    if (this.stopController.signal.aborted || !this.raftStarted) return;
    const status = this.raft.status();
    if (status.leader !== this.lastLeader) {
      if (this.lastLeader !== undefined) this.metrics.leaderChanges.inc();
      this.lastLeader = status.leader;
    }
    if (this.peersComputedFrom !== this.peersKey(status)) this.refreshPeers(status);
    this.syncTokenFile();
    this.discoverySync();
    if (this.checkLeft()) return;
    if (status.role === 'leader' && !this.membershipBusy && this.membershipDue(status)) void this.membershipStep(status);
    if (!this.ensureBusy && Date.now() - this.lastEnsureAt >= ENSURE_INTERVAL_MS) void this.ensureSelf(status);
    this.maybeRejoin(status);
  }

  /**
   * Peer addresses: the node records (not left) over the last known ones.
   * Computed again only when the records, the identity or the advertised
   * address changed; callers get a fresh object they may change.
   */
  private peerMap(): Record<string, string> {
    const revision = this.machine.nodesRevision;
    const advertised = this.advertised?.peer;
    const cached = this.peerMapCache;
    if (cached !== undefined && cached.revision === revision && cached.identity === this.identity && cached.advertised === advertised) return { ...cached.peers };
    const peers: Record<string, string> = { ...(this.identity?.peers ?? {}) };
    for (const record of this.machine.nodeDirectory()) {
      if (record.status === 'left') delete peers[record.id];
      else peers[record.id] = record.addresses.peer;
    }
    if (advertised !== undefined) peers[this.name] = advertised;
    this.peerMapCache = { revision, identity: this.identity, advertised, peers: Object.freeze({ ...peers }) };
    return peers;
  }

  private peersKey(status: Status): string {
    return `${this.machine.nodesRevision}|${members(status.config).join(',')}`;
  }

  /**
   * Hands Raft the peer addresses. A node whose record says it left keeps
   * its address while it is still a Raft member: the leader's next messages
   * carry the commit index that tells it it left, so it stops on its own.
   */
  private refreshPeers(status: Status): void {
    this.peersComputedFrom = this.peersKey(status);
    const peers = this.peerMap();
    const current = this.raft.peerAddresses();
    // Keep addresses Raft learned beyond the records (a learner being added).
    const merged = { ...current, ...peers };
    for (const record of this.machine.nodeDirectory()) {
      if (record.status !== 'left') continue;
      if (isMember(status.config, record.id)) merged[record.id] ??= record.addresses.peer;
      else delete merged[record.id];
    }
    if (JSON.stringify(merged) !== JSON.stringify(current)) this.raft.setPeers(merged);
    if (this.identity !== undefined && JSON.stringify(peers) !== JSON.stringify(this.identity.peers)) {
      this.identity = { ...this.identity, peers };
      this.dataDir.writeIdentity(this.identity);
    }
  }

  private syncTokenFile(): void {
    const record = this.machine.token();
    if (record === undefined || this.tokenFileIndex === record.rotatedIndex) return;
    const token = this.currentToken();
    if (token === undefined) return;
    this.dataDir.writeToken(token);
    this.tokenFileIndex = record.rotatedIndex;
  }

  /**
   * This node's record, unless it is of an earlier membership under this
   * name: a node that left and joined again reads that one (status `left`)
   * from a snapshot or log taken before its new registration applied.
   */
  private ownRecord(): NodeRecord | undefined {
    const record = this.machine.node(this.name);
    if (record === undefined || record.joinedIndex < (this.identity?.joinedIndex ?? 0)) return undefined;
    return record;
  }

  /** True once this node's own record says its membership ended: it then stops. */
  private checkLeft(): boolean {
    if (this.leaving) return true;
    if (this.identity === undefined || !hasLeftMembership(this.machine.node(this.name), this.identity.joinedIndex ?? 0)) return false;
    this.leaving = true;
    this.log('agent', `this node has left the cluster; stopping in ${LEAVE_STOP_DELAY_MS} ms`);
    this.identity = { ...this.identity, left: true };
    this.dataDir.writeIdentity(this.identity);
    setTimeout(() => void this.stopWith({ type: 'left' }), LEAVE_STOP_DELAY_MS).unref();
    return true;
  }

  /**
   * Makes sure the state holds the join token (the leader sets one if the
   * cluster has none: a bootstrap, or one interrupted) and this node's
   * record with its current addresses. A follower fixes its record through a
   * Join to the leader (idempotent).
   */
  private async ensureSelf(status: Status): Promise<void> {
    this.ensureBusy = true;
    this.lastEnsureAt = Date.now();
    try {
      const record = this.ownRecord();
      const addresses = this.advertisedAddresses();
      const registered = record !== undefined && record.status !== 'left' && JSON.stringify(record.addresses) === JSON.stringify(addresses);
      this.trust.maybeSync();
      if (status.role === 'leader') {
        await this.trust.maybeStoreCa((command) => this.proposeInternal(command));
        await this.trust.maybeFinishRotation((command) => this.proposeInternal(command));
        if (this.machine.token() === undefined) await this.storeToken(this.pendingToken ?? this.config.token ?? generateToken());
        if (!registered) {
          const certificate = this.trust.ownCertificateRecord();
          await this.proposeInternal({ type: 'node.register', id: this.name, addresses, labels: record?.labels ?? {}, resources: machineResources(), ...(certificate === undefined ? {} : { certificate }) });
        }
        else await this.maybeRenewCertificate();
        return;
      }
      const member = isMember(status.config, this.name);
      const caughtUp = status.applied >= status.commit && status.leader !== '';
      if (!registered && record !== undefined && member && caughtUp) await this.rejoin(false, 'its addresses changed');
      // Renewal reads only the CA record and this node's own: a lagging replica renews late, never wrongly.
      if (registered) await this.maybeRenewCertificate();
    } catch (error) {
      this.logOnce(`ensure:${(error as Error).message}`, 'agent', `cannot update this node's record yet: ${(error as Error).message}`);
    } finally {
      this.ensureBusy = false;
    }
  }

  /** Renews this node's certificate when due (or records it where the state lacks it), through the leader. */
  private async maybeRenewCertificate(): Promise<void> {
    const command = await this.trust.maybeRenew();
    if (command === undefined) return;
    const result = await this.submit(command, INTERNAL_PROPOSAL_TIMEOUT_MS);
    if (!result.ok) this.logOnce(`certificate:${result.error.message}`, 'trust', `cannot record this node's certificate: ${result.error.message}`);
  }

  private async storeToken(token: string): Promise<void> {
    const sealed = sealSecret(this.clusterKey(), token, TOKEN_ASSOCIATED_DATA);
    const result = await this.proposeInternal({ type: 'token.set', hash: hashToken(token), sealed: sealed.ciphertext, nonce: sealed.nonce });
    if (!result.ok) return;
    this.log('agent', 'stored the cluster\'s join token');
    this.printToken(token);
    if (this.machine.apiTokens().length === 0) await this.storeAdminToken();
  }

  /**
   * The cluster's first API token, a cluster-admin named `admin`, made by the
   * node that stores the first join token: printed, and kept in the data
   * directory's `admin-token` file for the CLI on this machine.
   */
  private async storeAdminToken(): Promise<void> {
    const token = generateApiToken();
    const result = await this.proposeInternal({ type: 'apitoken.create', id: apiTokenId(token), name: 'admin', role: 'cluster-admin', tenants: ['*'], hash: hashToken(token) });
    if (!result.ok) return;
    this.dataDir.writeAdminToken(token);
    const signingCa = this.trust.credentials.current?.caPems[0];
    this.print(`admin token: ${signingCa === undefined ? token : pinnedToken(token, signingCa)} (also in ${this.dataDir.adminTokenPath}; \`hivemind tokens create\` makes others)`);
  }

  /**
   * A member that knows no leader for long, or finds itself outside the Raft
   * configuration, asks to be let in again (it may have been removed while
   * down). Harmless when it is in: the leader only refreshes its record.
   */
  private maybeRejoin(status: Status): void {
    if (this.identity === undefined || this.rejoinBusy || status.role === 'leader') return;
    const member = isMember(status.config, this.name);
    const silent = status.silentTicks * this.config.tickMs >= LEADER_SILENCE_MS;
    const outside = status.leader === '' || !member || silent;
    if (!outside) {
      this.outsideSince = undefined;
      return;
    }
    const now = Date.now();
    this.outsideSince ??= now;
    const rejoinAfterMs = Math.max(5000, 100 * this.config.tickMs);
    if (now - this.outsideSince < rejoinAfterMs || now - this.lastRejoinAt < REJOIN_INTERVAL_MS) return;
    void this.rejoin(true, status.leader === '' || silent ? 'no leader heard' : 'not in the Raft configuration');
  }

  private async rejoin(outside: boolean, why: string): Promise<void> {
    const token = this.currentToken() ?? this.dataDir.readToken();
    if (token === undefined) {
      this.logOnce('rejoin-no-token', 'join', `cannot ask to rejoin (${why}): this node knows no join token`);
      return;
    }
    this.rejoinBusy = true;
    this.lastRejoinAt = Date.now();
    try {
      const status = this.raft.status();
      const leaderAddress = status.leader !== '' ? this.peerMap()[status.leader] : undefined;
      const candidates = leaderAddress !== undefined ? [leaderAddress] : Object.entries(this.peerMap()).filter(([id]) => id !== this.name).map(([, address]) => address);
      for (const address of candidates) {
        const certificateRequest = await this.trust.prepareJoin();
        // Marked as a member's (rejoin), refresh or not: the leader refuses it once this node's record says it left, so a refresh racing
        // a leave cannot register the node again (only `hivemind join`, from an empty data directory, starts a new membership).
        const result = await sendJoin(this.clients, { address, token, identity: this.joinerIdentity(), rejoin: true, timeoutMs: REJOIN_CALL_TIMEOUT_MS, certificateRequest });
        if (result.ok) {
          this.trust.completeJoin(result.joined);
          this.log('join', `${outside ? 'rejoined' : 'refreshed this node\'s record'} through ${address} (${why}); leader ${result.joined.leader}`);
          this.raft.setPeers({ ...this.raft.peerAddresses(), ...result.joined.peers });
          this.outsideSince = undefined;
          return;
        }
        if (result.status === grpc.status.FAILED_PRECONDITION && result.reason === 'left') {
          this.log('join', `the cluster says this node left: ${result.message}`);
          if (this.identity !== undefined) this.dataDir.writeIdentity({ ...this.identity, left: true });
          void this.stopWith({ type: 'left' });
          return;
        }
        const reason = describeJoinFailure(result);
        this.logOnce(`rejoin:${address}:${reason}`, 'join', `cannot rejoin through ${address} (${why}): ${reason}`);
      }
    } finally {
      this.rejoinBusy = false;
    }
  }

  // ---------------------------------------------------------------------------
  // Membership manager (leader only)

  /** Whether the membership planner should run now (see MEMBERSHIP_INTERVAL_MS); records that it does. */
  private membershipDue(status: Status): boolean {
    const inputs = `${this.machine.nodesRevision}|${status.term}|${status.config.voters.join(',')}|${status.config.learners.join(',')}`;
    const now = performance.now();
    const last = this.membershipLast;
    if (last !== undefined && last.inputs === inputs && now - last.at < MEMBERSHIP_INTERVAL_MS) return false;
    this.membershipLast = { at: now, inputs };
    return true;
  }

  private async membershipStep(status: Status): Promise<void> {
    this.membershipBusy = true;
    try {
      const progress: Record<string, { match: number; recentActive: boolean }> = {};
      for (const [id, value] of Object.entries(status.progress ?? {})) progress[id] = { match: value.match, recentActive: value.recentActive };
      const action = this.planner.plan({
        self: this.name,
        isLeader: status.role === 'leader',
        voters: status.config.voters,
        learners: status.config.learners,
        progress,
        lastIndex: status.lastIndex,
        records: this.membershipRecords(),
        now: performance.now(),
        gossip: this.gossipStatuses(),
      });
      if (action === undefined) return;
      await this.perform(action);
    } catch (error) {
      this.logOnce(`membership:${(error as Error).message}`, 'membership', `a membership change did not go through yet: ${(error as Error).message}`);
    } finally {
      this.membershipBusy = false;
    }
  }

  /** The records as the membership planner reads them, shared while `nodesRevision` stays (the planner runs ten times a second). */
  private membershipRecords(): { id: string; status: NodeRecord['status']; role: NodeRecord['role'] }[] {
    const revision = this.machine.nodesRevision;
    if (this.membershipRecordsCache?.revision !== revision) {
      const records = this.machine.nodeDirectory().map(({ id, status, role }) => ({ id, status, role }));
      this.membershipRecordsCache = { revision, records };
    }
    return this.membershipRecordsCache.records;
  }

  /** Gossip's view of every member, when the gossip component runs. */
  private gossipStatuses(): ReturnType<GossipView['statuses']> | undefined {
    const gossip = this.component('gossip');
    return isGossipView(gossip) ? gossip.statuses() : undefined;
  }

  // ---------------------------------------------------------------------------
  // Discovery (--discoverable on): announce under the token's topic; again when the token rotates.

  private discoverySync(): void {
    if (!this.config.discoverable || this.discoveryBusy) return;
    const token = this.currentToken();
    if (token === undefined || token === this.announcedToken) return;
    this.discoveryBusy = true;
    void (async () => {
      try {
        await this.announcer?.stop();
        this.announcer = undefined;
        const { announceForDiscovery, parseBootstrapList } = await import('../membership/discovery.js');
        const parsed = parseBootstrapList(process.env.HIVEMIND_DISCOVERY_BOOTSTRAP);
        if (!parsed.ok) throw new Error(parsed.problem);
        this.announcer = await announceForDiscovery({ token, seedAddress: this.peerAddress, ...(parsed.nodes === undefined ? {} : { bootstrap: parsed.nodes }) });
        this.announcedToken = token;
        if (this.stopController.signal.aborted) await this.announcer.stop();
        else this.log('discovery', 'announced this node for `hivemind join --discover`');
      } catch (error) {
        this.logOnce(`discovery:${(error as Error).message}`, 'discovery', `cannot announce for discovery yet: ${(error as Error).message}`);
      } finally {
        this.discoveryBusy = false;
      }
    })();
  }

  private async perform(action: MembershipAction): Promise<void> {
    const deadline = Date.now() + MEMBERSHIP_CHANGE_TIMEOUT_MS;
    switch (action.type) {
      case 'set-status':
        this.log('membership', `marking ${action.id} ${action.status}: ${action.reason}`);
        await this.proposeInternal({ type: 'node.status', id: action.id, status: action.status });
        return;
      case 'set-role':
        await this.proposeInternal({ type: 'node.role', id: action.id, role: action.role });
        return;
      case 'remove':
        this.log('membership', `removing ${action.id} from the Raft configuration: ${action.reason}`);
        await this.changeMembership(() => this.raft.removeNode(action.id, { timeoutMs: Math.max(1, deadline - Date.now()) }), deadline);
        return;
      case 'promote':
        this.log('membership', `promoting ${action.id} to voter: ${action.reason}`);
        await this.changeMembership(() => this.raft.addVoter(action.id, { timeoutMs: Math.max(1, deadline - Date.now()) }), deadline);
        return;
    }
  }

  /** Runs a membership change, waiting out one still in flight. */
  private async changeMembership(change: () => Promise<unknown>, deadline: number): Promise<void> {
    await retryUntil(change, { deadline, delayMs: CONFIG_RETRY_DELAY_MS, retryable: (error) => error instanceof ConfigChangeError && error.retryable, signal: this.stopController.signal });
  }

  // ---------------------------------------------------------------------------
  // Commands from members (services.submit, Cluster.Submit)

  /** Proposes `command` as this node: here on the leader, else through the leader's Submit. */
  private async submit(command: Command, timeoutMs: number): Promise<CommandResult> {
    const envelope: Envelope = { requestId: `node:${this.name}:${randomUUID()}`, time: Date.now(), actor: this.name, command };
    if (!this.raftStarted) throw new NotLeaderError('');
    const status = this.raft.status();
    if (status.role === 'leader') return this.propose(envelope, timeoutMs);
    const address = status.leader === '' ? undefined : this.peerMap()[status.leader];
    if (address === undefined) throw new NotLeaderError(status.leader);
    const request = signSubmit(this.clusterKey(), this.name, encodeEnvelope(envelope));
    const answer = await this.clients.submit(address, request, timeoutMs);
    if (!answer.ok) throw new Error(`leader ${status.leader} (${address}) did not take ${command.type}: ${answer.message}`);
    const result = decodeEnvelope(answer.result) as CommandResult | undefined;
    if (typeof result !== 'object' || result === null || typeof (result as { ok?: unknown }).ok !== 'boolean') {
      throw new Error(`leader ${status.leader} answered ${command.type} with something that is not a result`);
    }
    return result;
  }

  /** The leader's side of Cluster.Submit. Never throws. */
  private async handleSubmit(request: SubmitRequestWire, caller: string): Promise<{ ok: true; result: Uint8Array } | { ok: false; refusal: { status: grpc.status; message: string } }> {
    const refuse = (status: grpc.status, message: string) => ({ ok: false as const, refusal: { status, message } });
    if (this.key === undefined || !this.raftStarted) return refuse(grpc.status.UNAVAILABLE, `node ${this.name} is not ready`);
    if (request.node_id !== caller) {
      this.metrics.peerRejected.inc({ reason: 'sender-mismatch' });
      return refuse(grpc.status.PERMISSION_DENIED, `node_id ${JSON.stringify(String(request.node_id).slice(0, 64))} is not the node of the connection's certificate (${caller})`);
    }
    const problem = submitAuthProblem(this.key, request);
    if (problem !== undefined) {
      this.logOnce(`submit-auth:${request.node_id}`, 'agent', `refused a submit claiming node "${String(request.node_id).slice(0, 64)}": ${problem}`);
      return refuse(grpc.status.PERMISSION_DENIED, problem);
    }
    const status = this.raft.status();
    if (status.role !== 'leader') return refuse(grpc.status.FAILED_PRECONDITION, `not the leader (leader: ${status.leader || 'unknown'})`);
    const envelope = decodeEnvelope(request.envelope) as Partial<Envelope> | undefined;
    const command = envelope?.command as Partial<Command> | undefined;
    if (typeof envelope !== 'object' || envelope === null || typeof command !== 'object' || command === null) {
      return refuse(grpc.status.INVALID_ARGUMENT, 'envelope: does not decode to an envelope with a command');
    }
    if (envelope.actor !== request.node_id) return refuse(grpc.status.INVALID_ARGUMENT, `envelope.actor: must be the submitting node "${request.node_id}"`);
    if (typeof command.type !== 'string' || !MEMBER_COMMANDS.has(command.type as Command['type'])) {
      return refuse(grpc.status.INVALID_ARGUMENT, `envelope.command.type: members may submit only ${[...MEMBER_COMMANDS].join(', ')}`);
    }
    const self = selfField(command.type as Command['type']);
    if (self !== undefined && (command as Record<string, unknown>)[self] !== request.node_id) {
      return refuse(grpc.status.PERMISSION_DENIED, `envelope.command.${self}: a node may submit ${command.type} only for itself ("${request.node_id}")`);
    }
    const record = this.machine.node(request.node_id);
    if (record === undefined || record.status === 'left') return refuse(grpc.status.PERMISSION_DENIED, `node "${request.node_id}" is not a member`);
    if (typeof envelope.requestId !== 'string') return refuse(grpc.status.INVALID_ARGUMENT, 'envelope.requestId: must be a string');
    // This leader's code must accept the command as it stands: a newer member's command that it would refuse must not
    // enter the log stamped with this leader's version, where newer followers would apply it and the others refuse it.
    const validated = validateEnvelope({ ...envelope, time: Date.now() });
    if (!validated.ok) return refuse(grpc.status.INVALID_ARGUMENT, `envelope: ${validated.error.message} (is the submitting node newer than the leader?)`);
    try {
      const result = this.machine.rememberedResult(envelope.requestId) ?? (await this.propose({ ...(envelope as Envelope), time: Date.now() }, INTERNAL_PROPOSAL_TIMEOUT_MS));
      return { ok: true, result: encodeValue(result) };
    } catch (error) {
      return refuse(grpc.status.UNAVAILABLE, `not committed: ${(error as Error).message}`);
    }
  }

  /** Proposes a command of this node's own (membership, registration, token). Leader only. */
  private async proposeInternal(command: Command): Promise<CommandResult> {
    const envelope: Envelope = { requestId: `node:${this.name}:${randomUUID()}`, time: Date.now(), actor: this.name, command };
    const result = await this.propose(envelope, INTERNAL_PROPOSAL_TIMEOUT_MS);
    if (!result.ok) this.logOnce(`refused:${result.error.message}`, 'agent', `${command.type} was refused: ${result.error.message}`);
    return result;
  }

  // ---------------------------------------------------------------------------
  // Helpers

  private transferTarget(status: Status): string | undefined {
    const progress = status.progress ?? {};
    const others = status.config.voters.filter((id) => id !== this.name);
    others.sort((left, right) => {
      const active = Number(progress[right]?.recentActive ?? false) - Number(progress[left]?.recentActive ?? false);
      return active || (progress[right]?.match ?? 0) - (progress[left]?.match ?? 0);
    });
    return others[0];
  }

  private gaugeSource(): ReturnType<ConstructorParameters<typeof Metrics>[0]['raft']> {
    if (!this.raftStarted || this.raftInstance === undefined) return undefined;
    const status = this.raftInstance.status();
    return {
      term: status.term,
      commit: status.commit,
      applied: status.applied,
      lastIndex: status.lastIndex,
      isLeader: status.role === 'leader',
      voters: status.config.voters.length,
      learners: status.config.learners.length,
    };
  }

  /** Logs a line at most once per LOG_REPEAT_INTERVAL_MS for the same key. */
  private logOnce(key: string, component: string, line: string): void {
    const now = Date.now();
    const last = this.lastLogged.get(key);
    if (last !== undefined && now - last < LOG_REPEAT_INTERVAL_MS) return;
    if (this.lastLogged.size > 1000) this.lastLogged.clear();
    this.lastLogged.set(key, now);
    this.log(component, line);
  }
}

/** What this machine offers, as the node record's resources. */
function machineResources(): Resources {
  return { cpuMillis: cpus().length * 1000, memoryBytes: totalmem() };
}

function proposalOutcome(error: unknown): ProposalOutcome {
  if (error instanceof NotLeaderError) return 'not-leader';
  if (error instanceof ProposalLostError) return 'lost';
  if (error instanceof TimeoutError) return 'timeout';
  return 'error';
}
