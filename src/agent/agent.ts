/**
 * The agent: one Hivemind node. This file is the composition root: it
 * builds the node's parts, its servers (servers.ts: the Raft node on LevelDB,
 * the gRPC transport with the cluster service on the same port, the HTTP API)
 * and the components, starts them in order (docs/internals/agent.md), and
 * runs the node's background duties, each a small loop or listener of its own:
 *
 * - raft-watch.ts: leader changes, peer addresses, pokes the voter manager;
 * - voter-manager.ts (leader): voters, learners, records up or down;
 * - self-registration.ts: this node's record, the join token, the CA, certificates;
 * - rejoin.ts: asks to be let in again after a long silence;
 * - leaving.ts: notices that this node left, and stops it;
 * - join-token.ts: the token file follows the state;
 * - discovery-announcement.ts (`--discoverable`).
 *
 * What the API needs of the node is api-adapter.ts. Every loop runs on the
 * injected clock (`Clock`). One thread: the state machine is read between
 * applies, so every synchronous read is consistent.
 */
import { readFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { RaftNode } from '../../consensus/node.js';
import type { Status } from '../../consensus/core/types.js';
import { formatHostPort } from '../api/server.js';
import { Metrics } from '../api/metrics.js';
import { registerCertificateMetrics, registerStateMetrics } from '../api/metrics-cluster.js';
import { generateToken } from '../state/secrets.js';
import { LIMITS_LABEL, TENANT_NETWORKS_ALWAYS, TENANT_NETWORKS_LABEL, type CommandResult, type Envelope, type HostPorts, type NodeAddresses, type NodeRecord, type Resources } from '../state/types.js';
import type { AgentConfig } from '../node/config.js';
import { DataDir } from '../node/data-dir.js';
import { ReplicatedState } from '../node/replicated-state.js';
import { SYSTEM_CLOCK, type Clock } from '../node/clock.js';
import { ElectionLog } from '../node/election-log.js';
import { DEFAULT_OPTIONS } from '../../consensus/core/types.js';
import { PeriodicLoop, type PeriodicLoopOptions } from '../node/periodic-loop.js';
import type { BoundPorts, NodeComponent, NodeServices } from '../node/services.js';
import { certificateFingerprint } from '../security/certificates.js';
import { TLS_SERVER_NAME, unverifiedChannelCredentials, type NodeCredentials } from '../security/node-credentials.js';
import { isGossipView } from '../membership/component.js';
import { AgentError } from './agent-error.js';
import { AgentLog } from './agent-log.js';
import { clusterIdOf, inSpan, SpanKind, startTracing, type Tracing } from '../node/tracing.js';
import { ClusterClients } from './cluster-service.js';
import { COMPONENT_FACTORIES } from './components.js';
import { DiscoveryAnnouncement, DISCOVERY_INTERVAL_MS } from './discovery-announcement.js';
import { joinCluster, type JoinerIdentity } from './joining.js';
import { JoinTokens } from './join-token.js';
import { LeaveWatch, leaveNode } from './leaving.js';
import { NodeMembership } from './node-membership.js';
import { PeerBook } from './peer-book.js';
import { OWN_PROPOSAL_TIMEOUT_MS, Proposer } from './proposer.js';
import { RaftWatch, WATCH_INTERVAL_MS, WATCH_QUIET_AFTER_STEPS, WATCH_QUIET_INTERVAL_MS } from './raft-watch.js';
import { leadsAlone } from '../../consensus/core/config.js';
import { REJOIN_CHECK_INTERVAL_MS, Rejoiner } from './rejoin.js';
import { SELF_REGISTRATION_INTERVAL_MS, SelfRegistration, ownLabels } from './self-registration.js';
import { HOST_PORTS_INTERVAL_MS, HostPortReport } from './host-port-report.js';
import { enforceableLimits } from '../executor/cgroups.js';
import { buildServers, type Servers } from './servers.js';
import { PeerImageClients } from './image-service.js';
import { capabilitiesOf } from '../node/capabilities.js';
import { normalizeReference } from '../executor/containerd/reference.js';
import { chooseStartPlan, type StartMode, type StartPlan } from './start-plan.js';
import { NodeTrust } from './trust.js';
import { VOTER_INTERVAL_MS, VoterManager } from './voter-manager.js';

export type { StartMode } from './start-plan.js';

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
  /** Readable log lines (prefixed with time, node and component: agent-log.ts). Default: stderr, as JSON unless it is a terminal. */
  log?: (line: string) => void;
  /** How long a join keeps trying. Default 60 s. */
  joinTimeoutMs?: number;
  /** The clock the node's loops run on. Default: the system clock. */
  clock?: Clock;
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

const READY_TIMEOUT_MS = 30_000;
const READY_POLL_MS = 20;
const JOIN_TIMEOUT_MS_DEFAULT = 60_000;
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

class HivemindAgent implements Agent {
  readonly name: string;
  readonly stopped: Promise<AgentStopReason>;
  private readonly clock: Clock;
  /** The elections this node saw (its own view, in memory: GET /v1/elections). */
  private readonly elections = new ElectionLog({ electionTimeoutTicks: DEFAULT_OPTIONS.electionTimeoutTicks });
  private readonly log: AgentLog;
  private readonly print: (line: string) => void;
  private readonly dataDir: DataDir;
  private readonly membership: NodeMembership;
  private readonly replicated = new ReplicatedState();
  private readonly metrics: Metrics;
  private readonly trust: NodeTrust;
  private readonly clients: ClusterClients;
  /** The other members' images, for the executor's container runtime (and the channels to close). */
  private readonly peerImages: PeerImageClients;
  private readonly stopController = new AbortController();
  private readonly peers: PeerBook;
  private readonly proposer: Proposer;
  private readonly tokens: JoinTokens;
  private readonly rejoiner: Rejoiner;
  private readonly leaveWatch: LeaveWatch;
  private readonly discovery: DiscoveryAnnouncement;
  private readonly loops: PeriodicLoop[] = [];
  /** The loops that end once this node noticed it left. */
  private readonly membershipLoops: PeriodicLoop[] = [];
  private readonly components: NodeComponent[] = [];
  private servers: Servers | undefined;
  /** Set while traces are exported (`--otlp-endpoint`). */
  private tracing: Tracing | undefined;
  /** The cluster id of the cluster key it was computed from (traces' `hivemind.cluster.id`). */
  private clusterId: { key: Uint8Array; id: string } | undefined;
  /** Set once Raft runs: what the parts read Raft through. */
  private runningRaft: RaftNode | undefined;
  private boundPorts: BoundPorts = {};
  private capabilities: Record<string, string> | undefined;
  private advertised: NodeAddresses | undefined;
  /** The join token to store when this node leads a cluster that has none: the bootstrap's, else `--token` or a fresh one. */
  private bootstrapToken: string | undefined;
  /** True from the start of a join until the node's identity is written. */
  private joining = false;
  private stopPromise: Promise<void> | undefined;
  private resolveStopped: (reason: AgentStopReason) => void = () => {};

  constructor(
    private readonly config: AgentConfig,
    private readonly options: StartAgentOptions,
  ) {
    this.name = config.name;
    this.clock = options.clock ?? SYSTEM_CLOCK;
    this.stopped = new Promise((resolve) => (this.resolveStopped = resolve));
    this.log = new AgentLog({ nodeId: this.name, ...(options.log !== undefined ? { write: options.log } : {}), clock: this.clock, repeatIntervalMs: LOG_REPEAT_INTERVAL_MS, level: config.logLevel });
    this.print = options.print ?? ((line) => process.stdout.write(`${line}\n`));
    this.dataDir = new DataDir(config.dataDir);
    this.membership = new NodeMembership(this.dataDir);
    this.metrics = new Metrics({ nodeId: this.name, raft: () => this.gaugeSource() });
    this.replicated.onApplyDuration = (seconds) => this.metrics.applySeconds.observe(seconds);
    this.replicated.onSnapshot = (operation, bytes, seconds) => this.metrics.observeSnapshot(operation, bytes, seconds);
    const machine = this.replicated.machine;
    const raft = (): RaftNode | undefined => this.runningRaft;
    const clusterKey = (): Uint8Array | undefined => this.membership.clusterKey;
    const logOnce = (component: string) => (key: string, line: string) => this.log.once(key, component, line);
    this.trust = new NodeTrust({
      nodeId: this.name,
      dataDir: this.dataDir,
      machine,
      clusterKey,
      addresses: () => [config.advertise],
      log: (line) => this.log.line('trust', line),
      now: () => this.clock.now(),
    });
    registerStateMetrics(this.metrics.registry, machine);
    registerCertificateMetrics(this.metrics.registry, () => {
      const material = this.trust.credentials.current;
      const ca = machine.ca()?.certificates[0] ?? material?.caPems[0];
      return { ...(material !== undefined ? { node: material.certificatePem } : {}), ...(ca !== undefined ? { ca } : {}) };
    });
    this.clients = new ClusterClients({
      memberCredentials: () => this.trust.credentials.channelCredentials(),
      joinCredentials: unverifiedChannelCredentials,
      channelOptions: { 'grpc.ssl_target_name_override': TLS_SERVER_NAME },
    });
    this.peerImages = new PeerImageClients({
      nodeId: this.name,
      machine,
      credentials: (nodeId) => this.trust.credentials.channelCredentials(nodeId),
      channelOptions: { 'grpc.ssl_target_name_override': TLS_SERVER_NAME },
      normalize: normalizeReference,
    });
    this.peers = new PeerBook({ nodeId: this.name, machine, membership: this.membership, advertisedPeer: () => this.advertised?.peer });
    this.proposer = new Proposer({
      nodeId: this.name,
      raft,
      machine,
      metrics: this.metrics,
      clusterKey: () => this.requireClusterKey(),
      peerMap: () => this.peers.peers(),
      clients: this.clients,
      clock: this.clock,
      logOnce: (key, component, line) => this.log.once(key, component, line),
    });
    this.tokens = new JoinTokens({
      machine,
      dataDir: this.dataDir,
      clusterKey,
      signingCaPem: () => this.trust.credentials.current?.caPems[0],
      peerAddress: () => this.peerAddress,
      proposeOwn: (command) => this.proposer.proposeOwn(command),
      print: this.print,
      log: (line) => this.log.line('agent', line),
      logOnce: logOnce('agent'),
    });
    this.rejoiner = new Rejoiner({
      nodeId: this.name,
      raft,
      membership: this.membership,
      dataDir: this.dataDir,
      trust: this.trust,
      clients: this.clients,
      currentToken: () => this.tokens.current(),
      peerMap: () => this.peers.peers(),
      joinerIdentity: () => this.joinerIdentity(),
      tickMs: config.tickMs,
      clock: this.clock,
      onLeft: () => void this.stopWith({ type: 'left' }),
      log: (line) => this.log.line('join', line),
      logOnce: logOnce('join'),
    });
    this.leaveWatch = new LeaveWatch({
      nodeId: this.name,
      machine,
      membership: this.membership,
      clock: this.clock,
      log: (line) => this.log.line('agent', line),
      onLeft: () => this.stopMembershipLoops(),
      stop: () => void this.stopWith({ type: 'left' }),
    });
    this.discovery = new DiscoveryAnnouncement({
      currentToken: () => this.tokens.current(),
      peerAddress: () => this.peerAddress,
      bootstrapList: process.env.HIVEMIND_DISCOVERY_BOOTSTRAP,
      signal: this.stopController.signal,
      log: (line) => this.log.line('discovery', line),
      logOnce: logOnce('discovery'),
    });
    this.replicated.listen((event) => {
      // A new trusted CA is in force here as soon as it applies: peers renewing from it connect within the second.
      if ((event.type === 'applied' && event.commandType === 'ca.set') || event.type === 'restored') this.trust.maybeSync();
      if ((event.type === 'applied' && event.commandType === 'token.set') || event.type === 'restored') this.clock.setTimer(0, () => this.tokens.syncFile());
    });
    this.replicated.listen(this.leaveWatch.onStateEvent);
  }

  // ---------------------------------------------------------------------------
  // Agent

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

  private get raft(): RaftNode {
    if (this.servers === undefined) throw new AgentError('start-failed', `node ${this.name} has no Raft node yet`);
    return this.servers.raft;
  }

  private async shutDown(reason: AgentStopReason): Promise<void> {
    this.stopController.abort();
    for (const loop of this.loops) loop.stop();
    // A node that left releases what it ran for the cluster first: its workloads now run elsewhere.
    if (reason.type === 'left') {
      for (const component of [...this.components].reverse()) {
        await component.leave?.().catch((error: unknown) => this.log.warn(component.name, `leaving failed: ${(error as Error).message}`));
      }
    }
    // Every component, started or only bound (a start that failed half way leaves sockets to close).
    for (const component of [...this.components].reverse()) {
      await component.stop().catch((error: unknown) => this.log.warn(component.name, `stopping failed: ${(error as Error).message}`));
    }
    await this.discovery.stop();
    const servers = this.servers;
    if (servers !== undefined) {
      servers.api.ready = false;
      await servers.api.stop().catch((error: unknown) => this.log.warn('api', `stopping the API failed: ${(error as Error).message}`));
      await servers.raft.stop().catch((error: unknown) => this.log.warn('raft', `stopping Raft failed: ${(error as Error).message}`));
    }
    this.clients.close();
    this.peerImages.close();
    this.log.at(reason.type === 'fatal' ? 'error' : 'info', 'agent', `stopped (${reason.type === 'fatal' ? `fatal: ${reason.error.message}` : reason.type})`);
    await this.tracing?.stop();
    this.resolveStopped(reason);
  }

  // ---------------------------------------------------------------------------
  // Start

  async start(): Promise<void> {
    if (this.config.otlpEndpoint !== undefined) {
      this.tracing = await startTracing({
        endpoint: this.config.otlpEndpoint,
        nodeId: this.name,
        version: VERSION,
        clusterId: () => this.currentClusterId(),
        log: (line) => this.log.once(`tracing:${line}`, 'tracing', line, 'warn'),
      });
      this.log.line('tracing', `exporting traces to ${this.config.otlpEndpoint} over OTLP/HTTP`);
    }
    const plan = chooseStartPlan({
      name: this.name,
      dataDir: this.dataDir,
      mode: this.options.mode,
      token: this.config.token,
      nowIso: new Date(this.clock.now()).toISOString(),
      log: (line) => this.log.line('agent', line),
    });
    this.membership.adopt(plan.identity, plan.type === 'join' ? undefined : plan.clusterKey);
    if (plan.type === 'bootstrap') this.bootstrapToken = plan.token;
    this.log.line('agent', `starting (${plan.type}) with data directory ${this.config.dataDir}${this.plaintextApiNote()}`);
    const servers = this.buildServers();
    this.servers = servers;
    this.buildComponents();
    await servers.api.start();
    for (const component of this.components) {
      if (component.bind) this.boundPorts = { ...this.boundPorts, ...(await component.bind()) };
    }
    if (plan.type === 'bootstrap') {
      this.membership.saveClusterKey(plan.clusterKey);
      await this.trust.prepareBootstrap(plan.clusterKey);
      this.membership.saveIdentity(plan.identity);
    }
    if (plan.type === 'restart') {
      this.trust.loadFromDisk();
      // A join that finished but died before it cleared its record: the membership is what counts.
      this.dataDir.clearJoinPending();
    }
    // Until the join finishes, a plain start in this directory must not bootstrap (see chooseStartPlan).
    if (plan.type === 'join') this.dataDir.writeJoinPending(plan.seed);
    const bootstrap = plan.identity.origin === 'bootstrap' || plan.type === 'bootstrap';
    await servers.raft.start(bootstrap ? { bootstrap: { voters: [this.name], learners: [] } } : {});
    this.runningRaft = servers.raft;
    this.advertised = this.computeAdvertised(servers);
    if (plan.type === 'join') {
      this.joining = true;
      await this.join(plan);
      this.joining = false;
      this.dataDir.clearJoinPending();
    }
    servers.raft.setPeers({ ...this.membership.identity!.peers, ...this.peers.peers() });
    // The only voter campaigns at once: its loops' first steps, leading, store the token and its record without waiting an interval.
    if (plan.type === 'bootstrap') await this.waitUntil(() => servers.raft.status().role === 'leader', 'this node to lead its new cluster', true);
    this.startLoops();
    if (plan.type === 'bootstrap') await this.waitUntil(() => this.replicated.machine.token() !== undefined && this.replicated.machine.node(this.name) !== undefined, 'the new cluster to store its join token', true);
    // A joiner serves once it holds the state up to its own registration (the token included, which the API checks).
    if (plan.type === 'join') await this.waitUntil(() => this.ownRecord() !== undefined, 'this node to catch up with the cluster', false);
    servers.api.ready = true;
    this.tokens.syncFile();
    for (const component of this.components) await component.start();
    this.log.line('agent', `serving: API on ${servers.api.scheme}://${this.apiAddress}, peers on ${this.peerAddress}${this.plaintextApiNote()}`);
  }

  /** With --insecure-api, what every line at start says. */
  private plaintextApiNote(): string {
    return this.config.insecureApi ? ' [API in PLAIN HTTP (--insecure-api): the token and secrets cross the network in clear]' : '';
  }

  private buildServers(): Servers {
    const machine = this.replicated.machine;
    const propose = (envelope: Envelope, timeoutMs: number): Promise<CommandResult> => this.proposer.propose(envelope, timeoutMs);
    return buildServers({
      nodeId: this.name,
      version: VERSION,
      config: this.config,
      dataDir: this.dataDir,
      peers: this.membership.identity?.peers ?? {},
      replicated: this.replicated,
      metrics: this.metrics,
      credentials: this.trust.credentials,
      clients: this.clients,
      clock: this.clock,
      log: this.log,
      raft: () => this.raft,
      runningRaft: () => this.runningRaft,
      clusterKey: () => this.membership.clusterKey,
      currentToken: () => this.tokens.current(),
      propose,
      peerMap: () => this.peers.peers(),
      signJoiner: (requestPem, nodeId, addresses) => this.trust.signJoiner(requestPem, nodeId, addresses),
      leave: (id, options) =>
        leaveNode({ nodeId: this.name, raft: this.raft, machine, propose, clock: this.clock, signal: this.stopController.signal, log: (component, line) => this.log.line(component, line) }, id, options),
      caRotation: () => this.trust.rotationCommand(),
      component: (name) => this.components.find((component) => component.name === name),
      capabilities: () => capabilitiesOf(this.components),
      elections: () => this.elections.records(),
      onFatal: (error) => void this.stopWith({ type: 'fatal', error }),
    });
  }

  private buildComponents(): void {
    const services = this.services();
    for (const factory of COMPONENT_FACTORIES) this.components.push(factory(services));
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
      isLeader: () => this.runningRaft !== undefined && this.runningRaft.status().role === 'leader',
      submit: (command, options) => this.proposer.submit(command, options?.timeoutMs ?? OWN_PROPOSAL_TIMEOUT_MS),
      addresses: () => this.advertisedAddresses(),
      boundPorts: () => this.boundPorts,
      log: (component, line, level) => this.log.at(level ?? 'info', component, line),
      registry: this.metrics.registry,
      signal: this.stopController.signal,
      peerTls: this.trust.credentials,
      peerImages: this.peerImages,
    };
  }

  /** The node's background loops (see the file comment), started once Raft runs and the node's identity is final. */
  private startLoops(): void {
    const machine = this.replicated.machine;
    const raft = (): RaftNode | undefined => this.runningRaft;
    const voters = new VoterManager({
      nodeId: this.name,
      raft,
      machine,
      gossip: () => {
        const gossip = this.components.find((component) => component.name === 'gossip');
        return isGossipView(gossip) ? gossip : undefined;
      },
      proposeOwn: (command) => this.proposer.proposeOwn(command),
      graceMs: this.config.voterGraceMs,
      clock: this.clock,
      signal: this.stopController.signal,
      log: (line) => this.log.line('membership', line),
      logOnce: (key, line) => this.log.once(key, 'membership', line),
    });
    // The membership loops slow down like the watch while this node leads alone (nothing to plan,
    // register or rejoin until another member is added; see leadsAlone in consensus/core/config.ts).
    const aloneQuiet = { intervalMs: WATCH_QUIET_INTERVAL_MS, afterSteps: WATCH_QUIET_AFTER_STEPS };
    const busyUnlessAlone = async (step: () => Promise<void>): Promise<boolean> => {
      await step();
      const running = raft();
      return running === undefined || !leadsAlone(running.status(), this.name);
    };
    const voterLoop = this.loop('voters', VOTER_INTERVAL_MS, () => busyUnlessAlone(() => voters.step()), aloneQuiet);

    const selfRegistration = new SelfRegistration({
      nodeId: this.name,
      raft,
      machine,
      trust: this.trust,
      tokens: this.tokens,
      tokenToStore: () => this.bootstrapToken ?? this.config.token ?? generateToken(),
      ownRecord: () => this.ownRecord(),
      addresses: () => this.advertisedAddresses(),
      resources: machineResources,
      agentLabels: () => this.config.labels,
      capabilityLabels: () => this.capabilityLabels(),
      proposeOwn: (command) => this.proposer.proposeOwn(command),
      submit: (command, timeoutMs) => this.proposer.submit(command, timeoutMs),
      refreshThroughLeader: (why) => this.rejoiner.rejoin(false, why),
      logOnce: (key, component, line) => this.log.once(key, component, line),
    });
    const selfRegistrationLoop = this.loop('self-registration', SELF_REGISTRATION_INTERVAL_MS, () => busyUnlessAlone(() => selfRegistration.step()), aloneQuiet);
    const hostPorts = new HostPortReport({
      nodeId: this.name,
      machine,
      ownRecord: () => this.ownRecord(),
      ownPorts: () => this.ownPorts(),
      submit: (command) => this.proposer.submit(command, OWN_PROPOSAL_TIMEOUT_MS),
      logOnce: (key, line) => this.log.once(key, 'agent', line),
      nowMs: () => this.clock.now(),
    });
    this.loop('host-ports', HOST_PORTS_INTERVAL_MS, () => hostPorts.step());
    const rejoinLoop = this.loop('rejoin', REJOIN_CHECK_INTERVAL_MS, () => busyUnlessAlone(() => this.rejoiner.step()), aloneQuiet);
    this.membershipLoops.push(voterLoop, selfRegistrationLoop, rejoinLoop);
    const watch = new RaftWatch({
      raft,
      machine,
      peers: this.peers,
      metrics: this.metrics,
      onMembershipInputs: () => voterLoop.poke(),
      onLeaderChange: () => selfRegistrationLoop.poke(),
      elections: this.elections,
      nowMs: () => this.clock.now(),
    });
    // Quiet only while this node leads alone: elsewhere the election log needs a sample every 100 ms to tell why a term began (the leader went silent before it).
    const watchLoop = this.loop('raft-watch', WATCH_INTERVAL_MS, () => watch.step(), { intervalMs: WATCH_QUIET_INTERVAL_MS, afterSteps: WATCH_QUIET_AFTER_STEPS });
    // An apply that moved the node records (a join, a leave, new addresses; not heartbeats) is looked at at once, quiet or not.
    let watchedRevision = machine.nodesRevision;
    this.replicated.listen((event) => {
      // Any apply but a heartbeat may be work for self-registration (a CA rotation, a label, a token): at once, quiet or not.
      if (event.type !== 'applied' || event.commandType !== 'node.heartbeat') selfRegistrationLoop.poke();
      if (machine.nodesRevision === watchedRevision) return;
      watchedRevision = machine.nodesRevision;
      watchLoop.poke();
    });
    if (this.config.discoverable) this.loop('discovery', DISCOVERY_INTERVAL_MS, () => this.discovery.step());
    this.leaveWatch.arm();
    for (const loop of this.loops) loop.start();
  }

  private loop(name: string, intervalMs: number, step: () => void | boolean | Promise<void | boolean>, quiet?: PeriodicLoopOptions['quiet']): PeriodicLoop {
    const loop = new PeriodicLoop({ name, intervalMs, step, clock: this.clock, ...(quiet === undefined ? {} : { quiet }), onError: (error) => this.log.once(`${name}:${(error as Error).message}`, 'agent', `${name}: ${(error as Error).message}`, 'warn') });
    this.loops.push(loop);
    return loop;
  }

  /** Once this node noticed it left: nothing more to plan, register or rejoin (the watch, the token file and discovery go on until the stop). */
  private stopMembershipLoops(): void {
    for (const loop of this.membershipLoops) loop.stop();
  }

  private computeAdvertised(servers: Servers): NodeAddresses {
    const port = (address: string): number => Number(address.slice(address.lastIndexOf(':') + 1));
    const host = this.config.advertise;
    return {
      api: formatHostPort(host, port(servers.api.address)),
      peer: formatHostPort(host, port(servers.transport.address)),
      gossip: formatHostPort(host, this.boundPorts.gossip ?? this.config.ports.gossip),
    };
  }

  /** What this node can enforce, as Hivemind's own labels (LIMITS_LABEL: its cgroup controllers, read once; TENANT_NETWORKS_LABEL: it carries every tenant network). */
  private capabilityLabels(): Record<string, string> {
    this.capabilities ??= { [LIMITS_LABEL]: enforceableLimits().join(','), [TENANT_NETWORKS_LABEL]: TENANT_NETWORKS_ALWAYS };
    return this.capabilities;
  }

  /** Hivemind's own ports on this node, reserved from placement (host-port-report.ts). */
  private ownPorts(): HostPorts {
    const port = (address: string): number => Number(address.slice(address.lastIndexOf(':') + 1));
    const addresses = this.advertisedAddresses();
    const dns = this.boundPorts.dns ?? this.config.ports.dns;
    const tcp = [port(this.apiAddress), port(this.peerAddress), port(addresses.api), port(addresses.peer), this.config.ports.proxy, dns];
    const udp = [port(addresses.gossip), dns];
    const clean = (ports: number[]): number[] => [...new Set(ports.filter((each) => Number.isInteger(each) && each > 0 && each <= 65_535))].sort((left, right) => left - right);
    return { tcp: clean(tcp), udp: clean(udp) };
  }

  private advertisedAddresses(): NodeAddresses {
    if (this.advertised === undefined) throw new AgentError('start-failed', `node ${this.name} is not started`);
    return this.advertised;
  }

  private joinerIdentity(): JoinerIdentity {
    // A refresh keeps the labels the record holds (those set with `hivemind nodes label`).
    return { nodeId: this.name, addresses: this.advertisedAddresses(), labels: ownLabels(this.ownRecord()?.labels ?? {}, this.config.labels, this.capabilityLabels()), resources: machineResources() };
  }

  /**
   * This node's record, unless it is of an earlier membership under this
   * name: a node that left and joined again reads that one (status `left`)
   * from a snapshot or log taken before its new registration applied.
   */
  private ownRecord(): NodeRecord | undefined {
    const record = this.replicated.machine.node(this.name);
    if (record === undefined || record.joinedIndex < this.membership.joinedIndex) return undefined;
    return record;
  }

  /** The traces' cluster id, once this node holds the cluster key. */
  private currentClusterId(): string | undefined {
    const key = this.membership.clusterKey;
    if (key === undefined) return undefined;
    if (this.clusterId?.key !== key) this.clusterId = { key, id: clusterIdOf(key) };
    return this.clusterId.id;
  }

  private requireClusterKey(): Uint8Array {
    const key = this.membership.clusterKey;
    if (key === undefined) throw new AgentError('start-failed', `node ${this.name} has not received the cluster key yet`);
    return key;
  }

  /** Joins through the plan's seed, in the span `cluster.join`. */
  private join(plan: Extract<StartPlan, { type: 'join' }>): Promise<void> {
    return inSpan('cluster.join', { kind: SpanKind.CLIENT, attributes: { 'hivemind.join.seed': plan.seed } }, () => this.joinTraced(plan));
  }

  private async joinTraced(plan: Extract<StartPlan, { type: 'join' }>): Promise<void> {
    const joined = await joinCluster(this.clients, {
      seed: plan.seed,
      token: plan.token,
      identity: this.joinerIdentity(),
      certificateRequest: await this.trust.prepareJoin(),
      timeoutMs: this.options.joinTimeoutMs ?? JOIN_TIMEOUT_MS_DEFAULT,
      log: (line) => this.log.line('join', line),
      signal: this.stopController.signal,
    });
    const pin = this.config.tokenCaFingerprint;
    if (pin !== undefined && !joined.caPems.some((pem) => certificateFingerprint(pem) === pin)) {
      throw new AgentError('join-failed', `the cluster's CA (${joined.caPems.map(certificateFingerprint).join(', ')}) is not the one the token pins (${pin}): the token is from another cluster, or its CA was rotated since; copy the token again from \`hivemind token\``);
    }
    this.trust.completeJoin(joined);
    this.membership.saveClusterKey(joined.clusterKey);
    this.membership.saveIdentity({ ...plan.identity, peers: joined.peers, ...(joined.joinedIndex > 0 ? { joinedIndex: joined.joinedIndex } : {}) });
    this.dataDir.writeToken(plan.token);
    this.raft.setPeers(joined.peers);
    this.log.line('join', `joined through ${plan.seed}: leader ${joined.leader}, ${Object.keys(joined.peers).length} members known`);
  }

  private async waitUntil(condition: () => boolean, what: string, required: boolean): Promise<void> {
    const deadline = this.clock.now() + READY_TIMEOUT_MS;
    while (!condition()) {
      if (this.stopController.signal.aborted) throw new AgentError('start-failed', `node ${this.name} stopped while waiting for ${what}`);
      if (this.clock.now() > deadline) {
        if (required) throw new AgentError('start-failed', `node ${this.name} gave up waiting for ${what} after ${READY_TIMEOUT_MS / 1000}s`);
        this.log.line('agent', `still waiting for ${what}; serving meanwhile`);
        return;
      }
      await this.clock.sleep(READY_POLL_MS);
    }
  }

  private gaugeSource(): ReturnType<ConstructorParameters<typeof Metrics>[0]['raft']> {
    if (this.runningRaft === undefined) return undefined;
    const status = this.runningRaft.status();
    return {
      term: status.term,
      commit: status.commit,
      applied: status.applied,
      lastIndex: status.lastIndex,
      isLeader: status.role === 'leader',
      voters: status.config.voters.length,
      learners: status.config.learners.length,
      followers: Object.entries(status.progress ?? {})
        .filter(([id]) => id !== status.id)
        .map(([id, progress]) => ({ id, match: progress.match })),
    };
  }
}

/** What this machine offers, as the node record's resources. */
function machineResources(): Resources {
  return { cpuMillis: cpus().length * 1000, memoryBytes: totalmem() };
}
