/**
 * One life of one simulated node: the agent's parts wired on the node's
 * virtual clock, as `src/agent/` wires them on the real one. A crash ends
 * the life (its timers, network ends and promises go silent); a restart is
 * a new `SimAgent` over the same simulated disk.
 *
 * Real parts: `RaftNode` (consensus/node.ts) over the in-memory disk and the
 * simulated network; the cluster state machine behind `ReplicatedState`; the
 * agent's `Proposer` and the leader's `SubmitService`; the
 * `SchedulerComponent` (it acts while this node leads); the `VoterManager`
 * (marks nodes down and up, promotes and removes voters) in a
 * `PeriodicLoop`; SWIM's core (sim-gossip.ts); the `Executor` over the
 * simulated runtime (sim-process-runtime.ts) and host (sim-host.ts).
 * Re-implemented in little, and said so where: gossip's driver
 * (sim-gossip.ts), and the leader's registration of members that lack a
 * record (`registerMembers` below, what a join does).
 */
import { Registry } from 'prom-client';
import type { SeededRandom } from '../../consensus/core/random.js';
import type { Entry } from '../../consensus/core/types.js';
import { RaftNode, type RaftInspector, type RaftOverrides, type StateMachine } from '../../consensus/node.js';
import type { MemoryDisk } from '../../consensus/storage-memory.js';
import { MemoryStorage, type DiskOperation } from '../../consensus/storage-memory.js';
import type { Transport } from '../../consensus/transport.js';
import type { Timers } from '../../consensus/timers.js';
import { Metrics } from '../api/metrics.js';
import { Proposer } from '../agent/proposer.js';
import { SubmitService, type SubmitAnswer } from '../agent/submit-service.js';
import type { SubmitRequestWire } from '../agent/submit.js';
import { VoterManager, VOTER_INTERVAL_MS } from '../agent/voter-manager.js';
import { resolveConfig, type AgentConfig } from '../node/config.js';
import { PeriodicLoop } from '../node/periodic-loop.js';
import { ReplicatedState } from '../node/replicated-state.js';
import type { NodeServices } from '../node/services.js';
import { SchedulerComponent } from '../scheduler/component.js';
import type { ClusterStateMachine } from '../state/machine.js';
import { STATE_VERSION_LABEL, type Command, type CommandResult, type Resources } from '../state/types.js';
import { STATE_VERSION } from '../state/version.js';
import type { Message } from '../membership/messages.js';
import { NodeClock } from './node-clock.js';
import { Executor } from '../executor/executor.js';
import { TENANT_UID_RANGE_DEFAULT } from '../executor/tenant-users.js';
import { SimProcessRuntime } from './sim-process-runtime.js';
import { simHost } from './sim-host.js';
import { SimGossip } from './sim-gossip.js';
import { SimRuntime } from './sim-runtime.js';

/** How often the leader registers members that lack a record, ms (self-registration's interval). */
const REGISTER_INTERVAL_MS = 1000;

/** Hooks the world's checkers set around every apply of every node. */
export interface ApplyHooks {
  /** Before `entry` changes `machine` (the node's replica). */
  before(nodeId: string, entry: Entry, machine: ClusterStateMachine): void;
  /** After it did (`result` says whether the state took the command), or after a snapshot replaced the state (`entry` undefined). */
  after(nodeId: string, index: number, machine: ClusterStateMachine, entry: Entry | undefined, result?: CommandResult): void;
}

/**
 * The agent's `ReplicatedState` with the world's checks around it. The
 * checks read the replica only; the state machine itself is the real one.
 */
class CheckedState implements StateMachine {
  readonly replicated = new ReplicatedState();

  constructor(private readonly nodeId: string, private readonly hooks: ApplyHooks) {}

  apply(entry: Entry): unknown {
    this.hooks.before(this.nodeId, entry, this.replicated.machine);
    const result = this.replicated.apply(entry);
    this.hooks.after(this.nodeId, entry.index, this.replicated.machine, entry, result);
    return result;
  }

  snapshot(): Uint8Array {
    return this.replicated.snapshot();
  }

  restore(data: Uint8Array): void {
    this.replicated.restore(data);
    this.hooks.after(this.nodeId, this.replicated.machine.appliedIndex, this.replicated.machine, undefined);
  }
}

/** What a life is built from; the world owns all of it. */
export interface SimAgentOptions {
  id: string;
  life: number;
  disk: MemoryDisk;
  resources: Resources;
  random: SeededRandom;
  clock: NodeClock;
  timers: Timers;
  transport: Transport;
  raft: RaftOverrides;
  tickMs: number;
  snapshotEveryEntries: number;
  alive: () => boolean;
  diskDelay: (complete: () => void, kind: DiskOperation['kind']) => void;
  hooks: ApplyHooks;
  inspector: RaftInspector;
  clusterKey: Uint8Array;
  /** The scheduler's and voter manager's settings. */
  rescheduleGraceMs: number;
  voterGraceMs: number;
  progressDeadlineMs: number;
  /** Chance that a workload started now is OOM-killed. */
  oomChance: () => number;
  /** Every node's address (`sim:<id>`), gossip seeds included. */
  peerAddresses: () => Record<string, string>;
  /** The node's resources by id, for the leader's registration of members. */
  resourcesOf: (id: string) => Resources | undefined;
  /** Cluster.Submit over the simulated network: resolves with the leader's answer, or a failure. */
  submitTo: (from: string, address: string, request: SubmitRequestWire, timeoutMs: number) => Promise<{ ok: true; result: Uint8Array } | { ok: false; status: number; message: string }>;
  sendDatagram: (fromAddress: string, toAddress: string, message: Message) => void;
  log: (line: string) => void;
  onFatal: (error: Error) => void;
}

/** See the file comment. */
export class SimAgent {
  readonly id: string;
  readonly raft: RaftNode;
  readonly state: CheckedState;
  readonly proposer: Proposer;
  readonly submitService: SubmitService;
  readonly runtime: SimRuntime;
  /** The real executor, over the simulated runtime, on the node's clock. */
  readonly executor: Executor;
  readonly gossip: SimGossip;
  readonly clock: NodeClock;
  readonly #scheduler: SchedulerComponent;
  readonly #loops: PeriodicLoop[] = [];
  readonly #abort = new AbortController();
  #requests = 0;

  constructor(private readonly options: SimAgentOptions) {
    this.id = options.id;
    this.clock = options.clock;
    this.state = new CheckedState(options.id, options.hooks);
    this.raft = new RaftNode({
      id: options.id,
      storage: new MemoryStorage({ disk: options.disk, delay: options.diskDelay }),
      transport: options.transport,
      stateMachine: this.state,
      tickMs: options.tickMs,
      raft: options.raft,
      seed: options.random.below(2 ** 31),
      snapshotEveryEntries: options.snapshotEveryEntries,
      timers: options.timers,
      readContextPrefix: `${options.id}.${options.life}`,
      logger: (line) => options.log(line),
      onFatal: options.onFatal,
      inspector: options.inspector,
    });
    const raft = (): RaftNode | undefined => this.raft;
    const metrics = new Metrics({ nodeId: options.id, raft: () => undefined, defaultMetrics: false });
    const logOnce = (_key: string, component: string, line: string): void => options.log(`${component}: ${line}`);
    this.proposer = new Proposer({
      nodeId: options.id,
      raft,
      machine: this.state.replicated.machine,
      metrics,
      clusterKey: () => options.clusterKey,
      peerMap: options.peerAddresses,
      clients: { submit: (address, request, timeoutMs) => options.submitTo(options.id, address, request, timeoutMs) },
      clock: options.clock,
      logOnce,
      requestId: () => `node:${options.id}:${options.life}:${++this.#requests}`,
    });
    this.submitService = new SubmitService({
      nodeId: options.id,
      clusterKey: () => options.clusterKey,
      raft,
      machine: this.machine,
      metrics,
      propose: (envelope, timeoutMs) => this.proposer.propose(envelope, timeoutMs),
      clock: options.clock,
      logOnce,
    });
    const services = this.#services(options);
    this.#scheduler = new SchedulerComponent(services, {
      clock: options.clock,
      rescheduleGraceMs: options.rescheduleGraceMs,
      progressDeadlineMs: options.progressDeadlineMs,
    });
    this.runtime = new SimRuntime({
      random: options.random,
      nowMs: () => options.clock.monotonicMs(),
      schedule: (delayMs, action) => void options.clock.setTimer(delayMs, action),
      oomChance: options.oomChance,
    });
    this.executor = new Executor(services, {
      runtimes: [new SimProcessRuntime({ runtime: this.runtime, clock: options.clock, specOf: (tenant, app, version) => this.machine.app(tenant, app)?.versions.find((entry) => entry.version === version)?.spec })],
      clock: options.clock,
      host: simHost(options.clock),
      clusterKey: () => options.clusterKey,
      tenantUids: TENANT_UID_RANGE_DEFAULT,
    });
    this.gossip = new SimGossip({
      id: options.id,
      address: `sim:${options.id}`,
      incarnation: options.life,
      seeds: () => Object.entries(options.peerAddresses()).filter(([id]) => id !== options.id).map(([, address]) => address),
      random: options.random.fork(),
      clock: options.clock,
      send: options.sendDatagram,
    });
    const voters = new VoterManager({
      nodeId: options.id,
      raft,
      machine: this.machine,
      gossip: () => this.gossip,
      proposeOwn: (command) => this.proposer.proposeOwn(command),
      graceMs: options.voterGraceMs,
      clock: options.clock,
      signal: this.#abort.signal,
      log: (line) => options.log(`voters: ${line}`),
      logOnce: (_key, line) => options.log(`voters: ${line}`),
    });
    const onError = (error: unknown): void => options.log(`loop failed: ${(error as Error).stack ?? String(error)}`);
    this.#loops.push(new PeriodicLoop({ name: 'voters', intervalMs: VOTER_INTERVAL_MS, step: () => voters.step(), clock: options.clock, onError }));
    this.#loops.push(new PeriodicLoop({ name: 'register', intervalMs: REGISTER_INTERVAL_MS, step: () => this.#registerMembers(), clock: options.clock, onError }));
  }

  get machine(): ClusterStateMachine {
    return this.state.replicated.machine;
  }

  /** Starts Raft (bootstrapping `founders` on a first start), then the components, as the agent does once Raft runs. */
  async start(founders: string[] | undefined): Promise<void> {
    await this.raft.start(founders === undefined ? {} : { bootstrap: { voters: founders, learners: [] } });
    if (!this.options.alive()) return;
    await this.#scheduler.start();
    await this.executor.start();
    this.gossip.start();
    for (const loop of this.#loops) loop.start();
  }

  /** Proposes a command as the operator would through the API (on the leader; rejects elsewhere). */
  proposeAsOperator(command: Command, requestId: string): Promise<CommandResult> {
    return this.proposer.propose({ requestId, time: this.clock.now(), actor: 'operator', command }, 5000);
  }

  /** Answers a Cluster.Submit from `caller`. */
  handleSubmit(request: SubmitRequestWire, caller: string): Promise<SubmitAnswer> {
    return this.submitService.handle(request, caller);
  }

  /**
   * The leader registers each Raft member that has no record yet (or one that
   * left), with the addresses and resources the world gives it: what a join
   * does through the leader (src/agent/joining.ts), re-implemented in little.
   */
  async #registerMembers(): Promise<void> {
    const status = this.raft.status();
    if (status.role !== 'leader') return;
    for (const id of [...status.config.voters, ...status.config.learners]) {
      const record = this.machine.node(id);
      const resources = this.options.resourcesOf(id);
      if ((record !== undefined && record.status !== 'left') || resources === undefined) continue;
      const address = `sim:${id}`;
      // The state version label, as every node registers (self-registration.ts's ownLabels): the cluster version follows it.
      await this.proposer.proposeOwn({ type: 'node.register', id, addresses: { api: address, peer: address, gossip: address }, labels: { [STATE_VERSION_LABEL]: String(STATE_VERSION) }, resources });
    }
    // What the leader's self-registration does once every member applies a higher version.
    const version = this.machine.clusterVersionToRaise();
    if (version !== undefined && this.machine.check({ type: 'cluster.version', version }).ok) await this.proposer.proposeOwn({ type: 'cluster.version', version });
  }

  #services(options: SimAgentOptions): NodeServices {
    const address = `sim:${options.id}`;
    return {
      nodeId: options.id,
      config: simConfig(options),
      dataDir: `/nonexistent/hivemind-sim/${options.id}`,
      machine: this.machine,
      listen: (listener) => this.state.replicated.listen(listener),
      raftStatus: () => this.raft.status(),
      isLeader: () => this.options.alive() && this.raft.status().role === 'leader',
      submit: (command, submitOptions) => this.proposer.submit(command, submitOptions?.timeoutMs ?? 10_000),
      addresses: () => ({ api: address, peer: address, gossip: address }),
      boundPorts: () => ({}),
      log: (component, line) => options.log(`${component}: ${line}`),
      registry: new Registry(),
      signal: this.#abort.signal,
      peerTls: { current: undefined, onUpdate: () => () => {}, verifyPeer: () => ({ ok: false, reason: 'the simulator runs no TLS' }) },
    };
  }
}

/** The agent's configuration as `resolveConfig` makes it for this node (nothing here reads a file or the host). */
function simConfig(options: SimAgentOptions): AgentConfig {
  const resolved = resolveConfig(
    { name: options.id, voterGrace: options.voterGraceMs, rescheduleGrace: options.rescheduleGraceMs, progressDeadline: options.progressDeadlineMs, tickMs: options.tickMs },
    {},
    { hostname: options.id, externalIpv4: [], cwd: '/nonexistent/hivemind-sim' },
  );
  if (!resolved.ok) throw new Error(`the simulator's agent settings are refused: ${resolved.problems.map((problem) => problem.message).join('; ')}`);
  return resolved.config;
}
