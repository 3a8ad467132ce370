/**
 * The whole-cluster simulator: simulated nodes running the agent's real parts
 * (sim-agent.ts) on one virtual clock, over a simulated network and
 * in-memory disks, with an operator deploying, scaling, updating, promoting,
 * aborting and changing quotas, and a nemesis crashing and restarting
 * machines, partitioning the network, slowing disks, jumping clocks and
 * killing instances, all drawn from one seed: a seed replays a run exactly.
 *
 * A run has a fault phase (the checks of invariants.ts around every apply)
 * and a liveness phase: the nemesis stops, every machine runs, the operator
 * settles what waits on it (promotes, aborts, fixes a version that cannot
 * run); then every app must converge to its spec, and every node apply the
 * same index, within `livenessBoundMs`, and no leader change may happen once
 * the leader of the healed cluster settled. See docs/internals/simulator.md.
 */
import { createHash } from 'node:crypto';
import { assert } from '../../consensus/core/assert.js';
import { SeededRandom } from '../../consensus/core/random.js';
import { EntryType, Role, type NodeId } from '../../consensus/core/types.js';
import { SimNetwork } from '../../consensus/sim/network.js';
import { settle, VirtualClock } from '../../consensus/sim/virtual-clock.js';
import { CRASH_MODES, MemoryDisk, type DiskOperation } from '../../consensus/storage-memory.js';
import type { SubmitRequestWire } from '../agent/submit.js';
import type { Message } from '../membership/messages.js';
import { convergenceProblems } from '../scheduler/sim.js';
import type { Command, CommandResult, Resources } from '../state/types.js';
import { ClusterChecker } from './invariants.js';
import { NodeClock } from './node-clock.js';
import { SimAgent } from './sim-agent.js';
import { SimOperator, TENANTS } from './operator.js';

/** Milliseconds per Raft tick, as the agent's default. */
const TICK_MS = 50;
/** Lines of trace kept for a failure report. */
const TRACE_LINES_MAX = 4000;
/** Once the healed cluster has a leader for this long, no other may follow. */
const LEADER_SETTLE_MS = 3000;
/** The liveness phase checks convergence this often, ms. */
const CONVERGENCE_CHECK_MS = 500;
/** Events per simulated second past which a run is a runaway. */
const EVENTS_PER_SIMULATED_SECOND_MAX = 50_000;
/** The cluster key every node holds (the simulator has no joins to hand it out). */
const CLUSTER_KEY = new Uint8Array(32).fill(7);

/**
 * How far a machine's wall clock may run ahead in all, ms (clock jumps add up
 * over its lives). Ten jumps of the largest size: more than a fault phase
 * makes. (It was 30 s while a leader's future timestamps could stall later
 * leaders' rollouts past the liveness bound, seed 2993; the scheduler now
 * plans with the newest time in the state carried forward, planning-time.ts.)
 */
const CLOCK_AHEAD_MS_MAX = 310_000;

/** The settings of one run, all drawn from its seed. */
export interface ClusterSettings {
  seed: number;
  nodes: number;
  faultPhaseMs: number;
  /** After the heal, every app converges within this bound. */
  livenessBoundMs: number;
  dropRate: number;
  duplicateRate: number;
  delayMsMax: number;
  nemesisIntervalMs: number;
  operatorIntervalMs: number;
  snapshotEveryEntries: number;
  rescheduleGraceMs: number;
  voterGraceMs: number;
  oomChance: number;
}

/** Draws a run's settings from its seed. */
export function clusterSettingsForSeed(seed: number): ClusterSettings {
  const random = new SeededRandom(seed ^ 0xc1a57e7);
  return {
    seed,
    nodes: 3 + random.below(3),
    faultPhaseMs: 15_000 + random.below(15_000),
    livenessBoundMs: 60_000,
    dropRate: [0, 0.01, 0.05][random.below(3)]!,
    duplicateRate: [0, 0.02][random.below(2)]!,
    delayMsMax: [2, 10, 30][random.below(3)]!,
    nemesisIntervalMs: 500 + random.below(2000),
    operatorIntervalMs: 150 + random.below(600),
    snapshotEveryEntries: [50, 200, 1000][random.below(3)]!,
    rescheduleGraceMs: [2000, 5000][random.below(2)]!,
    voterGraceMs: [3000, 8000][random.below(2)]!,
    oomChance: [0, 0.02, 0.1][random.below(3)]!,
  };
}

/** The outcome of one run. */
export interface ClusterRunResult {
  seed: number;
  violations: string[];
  trace: string[];
  stats: Record<string, number>;
  settings: ClusterSettings;
  simulatedMs: number;
  /** The SHA-1 of the leader's state at the end (empty without a leader): a replay ends with the same. */
  finalStateHash: string;
}

/** One simulated machine: its disk and wall clock outlive its crashes; each start is a new `SimAgent`. */
class Machine {
  readonly disk: MemoryDisk;
  agent: SimAgent | undefined;
  up = false;
  life = 0;
  /** Its wall clock's lead, ms (clock jumps), kept across lives. */
  aheadMs = 0;
  /** Disk operations take long until then (a slow disk). */
  slowDiskUntilMs = 0;

  constructor(readonly id: NodeId, readonly resources: Resources, nowMs: () => number) {
    this.disk = new MemoryDisk(nowMs);
  }

  get address(): string {
    return `sim:${this.id}`;
  }
}

/** See the file comment. */
export class ClusterWorld {
  readonly #random: SeededRandom;
  readonly #clock = new VirtualClock();
  readonly #network: SimNetwork;
  readonly #machines = new Map<NodeId, Machine>();
  readonly checker: ClusterChecker;
  readonly #operator: SimOperator;
  readonly #trace: string[] = [];
  /** Directed links cut by the current partition (gossip and submits; Raft's network has its own copy), as `from>to`. */
  readonly #blocked = new Set<string>();
  #healed = false;
  #healedAtMs = 0;
  #converged = false;
  #settledLeader: { id: string; term: number; sinceMs: number } | undefined;
  #lastLeader: { id: string; term: number } | undefined;
  #operatorRequests = 0;
  #eventsHandled = 0;
  /** The index of the latest configuration entry counted. */
  #configIndexSeen = 0;
  readonly stats: Record<string, number> = {
    crashes: 0,
    restarts: 0,
    partitions: 0,
    slowDisks: 0,
    clockJumps: 0,
    instanceFaults: 0,
    deploys: 0,
    updates: 0,
    scales: 0,
    promotes: 0,
    aborts: 0,
    quotaChanges: 0,
    deletes: 0,
    rejoins: 0,
    configChanges: 0,
    elections: 0,
    applied: 0,
    keeperRefusals: 0,
  };

  constructor(readonly settings: ClusterSettings) {
    this.#random = new SeededRandom(settings.seed);
    this.#operator = new SimOperator({
      random: this.#random,
      operate: (command, what) => this.#operate(command, what),
      capacity: () => {
        const capacity = { cpuMillis: 0, memoryBytes: 0 };
        for (const machine of this.#machines.values()) {
          capacity.cpuMillis += machine.resources.cpuMillis ?? 0;
          capacity.memoryBytes += machine.resources.memoryBytes ?? 0;
        }
        return capacity;
      },
      stats: this.stats,
    });
    this.checker = new ClusterChecker(() => this.#clock.nowMs);
    const faults = { dropRate: settings.dropRate, duplicateRate: settings.duplicateRate, delayMsMax: settings.delayMsMax };
    this.#network = new SimNetwork(this.#clock, this.#random, faults, () => {});
  }

  // ---------------------------------------------------------------------------
  // Running

  async run(): Promise<ClusterRunResult> {
    this.#boot(() => ({ cpuMillis: 1000 * (2 + this.#random.below(3)), memoryBytes: 1024 ** 3 * (2 + this.#random.below(5)) }));
    this.#schedule(500, () => this.#setUpTenants());
    this.#schedule(1000, () => this.#operatorLoop());
    this.#schedule(this.settings.nemesisIntervalMs, () => this.#nemesisLoop());
    this.#schedule(this.settings.faultPhaseMs, () => this.#heal());
    this.#schedule(1000, () => this.#rejoinLoop());
    const endMs = this.settings.faultPhaseMs + this.settings.livenessBoundMs;
    while (this.checker.violations.length === 0 && !this.#converged) {
      const next = this.#clock.nextTimeMs();
      if (next === undefined || next > endMs) break;
      this.#clock.runNext();
      await settle();
      this.#afterEvent();
    }
    if (this.checker.violations.length === 0 && !this.#converged) {
      const problems = this.#convergenceProblems();
      this.checker.record(`liveness: not converged ${this.settings.livenessBoundMs} ms after the heal: ${problems.slice(0, 5).join('; ')}`);
      this.#describeUnconverged();
    }
    const leader = this.#leader();
    const finalStateHash = leader === undefined ? '' : createHash('sha1').update(leader.machine.snapshot()).digest('hex');
    this.stats.keeperRefusals = this.checker.keeperRefusals;
    return { seed: this.settings.seed, violations: this.checker.violations, trace: this.#trace, stats: this.stats, settings: this.settings, simulatedMs: this.#clock.nowMs, finalStateHash };
  }

  /** Makes the machines (n1..), each with `resourcesOf()`, and starts them: the first `founderCount` as the founding voters, the others empty. */
  #boot(resourcesOf: () => Resources, founderCount = this.settings.nodes): void {
    const founders: NodeId[] = [];
    for (let number = 1; number <= this.settings.nodes; number++) {
      const id = `n${number}`;
      if (number <= founderCount) founders.push(id);
      this.#machines.set(id, new Machine(id, resourcesOf(), () => this.#clock.nowMs));
    }
    this.#record(`settings ${JSON.stringify(this.settings)}`);
    for (const machine of this.#machines.values()) {
      this.#schedule(this.#random.below(TICK_MS), () => this.#start(machine, founders.includes(machine.id) ? founders : undefined));
    }
  }

  // ---------------------------------------------------------------------------
  // Scenarios: a test drives the world step by step instead of the operator and the nemesis (the checks run as in a seed).

  /**
   * Starts the machines, each with `resources`, and no operator or nemesis:
   * the test changes things itself (`operate`, `crash`). The first
   * `founders` (default: all) found the cluster as voters; the others start
   * empty and join as learners (the rejoin loop, what a join does).
   */
  startScenario(resources: Resources, { founders = this.settings.nodes }: { founders?: number } = {}): void {
    assert(this.#machines.size === 0, 'ClusterWorld.startScenario: the world has started already');
    assert(founders >= 1 && founders <= this.settings.nodes, `ClusterWorld.startScenario: founders must be from 1 to ${this.settings.nodes}, got ${founders}`);
    this.#boot(() => ({ ...resources }), founders);
    this.#schedule(1000, () => this.#rejoinLoop());
  }

  /**
   * Runs events until `done()` holds (true) or `boundMs` of simulated time
   * passed or a check found a violation (false).
   */
  async runUntil(done: () => boolean, boundMs: number): Promise<boolean> {
    const endMs = this.#clock.nowMs + boundMs;
    while (this.checker.violations.length === 0) {
      if (done()) return true;
      const next = this.#clock.nextTimeMs();
      if (next === undefined || next > endMs) return false;
      this.#clock.runNext();
      await settle();
      this.#afterEvent();
    }
    return false;
  }

  /** The leader with the highest term among the running machines, if any. */
  leader(): SimAgent | undefined {
    return this.#leader();
  }

  /** The running agent of machine `id`, if it runs. */
  agent(id: NodeId): SimAgent | undefined {
    const machine = this.#machines.get(id);
    return machine?.up === true ? machine.agent : undefined;
  }

  /** Proposes `command` as the operator through the leader (there must be one); its result once applied there. */
  async operate(command: Command): Promise<CommandResult> {
    const leader = this.#leader();
    assert(leader !== undefined, 'ClusterWorld.operate: no leader');
    let answer: CommandResult | undefined;
    leader.proposeAsOperator(command, `op:${++this.#operatorRequests}`).then((result) => (answer = result), () => undefined);
    await this.runUntil(() => answer !== undefined, 10_000);
    assert(answer !== undefined, `ClusterWorld.operate: ${command.type} got no answer within 10 s`);
    return answer;
  }

  /** Crashes machine `id` (its disk keeps what a random crash mode lets it). */
  crash(id: NodeId): void {
    const machine = this.#machines.get(id);
    assert(machine !== undefined, `ClusterWorld.crash: no machine ${id}`);
    this.#crash(machine);
  }

  /** Starts machine `id` again after a crash. */
  restart(id: NodeId): void {
    const machine = this.#machines.get(id);
    assert(machine !== undefined && !machine.up, `ClusterWorld.restart: ${id} is not a crashed machine`);
    this.#restart(machine);
  }

  /** Cuts machine `id` off from every other, both ways (Raft, gossip and submits alike), until `healNetwork`. */
  isolate(id: NodeId): void {
    for (const other of this.#machines.keys()) {
      if (other === id) continue;
      this.#block(id, other);
      this.#block(other, id);
    }
  }

  /** Machine `id`'s wall clock jumps `ms` ahead (it keeps running from there, across its lives). */
  jumpClock(id: NodeId, ms: number): void {
    const machine = this.#machines.get(id);
    assert(machine?.agent !== undefined, `ClusterWorld.jumpClock: ${id} does not run`);
    machine.aheadMs += ms;
    machine.agent.clock.jump(ms);
  }

  /** Every partition ends. */
  healNetwork(): void {
    this.#healNetwork();
  }

  /** The trace so far (its last TRACE_LINES_MAX lines), for a failing scenario's report. */
  get trace(): readonly string[] {
    return this.#trace;
  }

  /** The simulated time, ms since the run started. */
  get nowMs(): number {
    return this.#clock.nowMs;
  }

  #afterEvent(): void {
    this.#eventsHandled++;
    const eventsMax = ((this.#clock.nowMs + 1000) / 1000) * EVENTS_PER_SIMULATED_SECOND_MAX;
    if (this.#eventsHandled > eventsMax) this.checker.record(`runaway: ${this.#eventsHandled} events in ${this.#clock.nowMs} ms simulated`);
  }

  #schedule(delayMs: number, action: () => void): void {
    this.#clock.schedule(delayMs, action);
  }

  #record(line: string): void {
    this.#trace.push(`${String(this.#clock.nowMs).padStart(7)}ms ${line}`);
    if (this.#trace.length > TRACE_LINES_MAX) this.#trace.splice(0, this.#trace.length - TRACE_LINES_MAX);
  }

  // ---------------------------------------------------------------------------
  // Machines

  #start(machine: Machine, founders?: NodeId[]): void {
    machine.life++;
    machine.up = true;
    const life = machine.life;
    const alive = (): boolean => machine.up && machine.life === life;
    const clock = new NodeClock(this.#clock, alive, machine.aheadMs);
    const agent = new SimAgent({
      id: machine.id,
      life,
      disk: machine.disk,
      resources: machine.resources,
      random: this.#random.fork(),
      clock,
      timers: this.#clock.timers(alive),
      transport: this.#network.transport(machine.id, alive),
      raft: { preVote: true, checkQuorum: true },
      tickMs: TICK_MS,
      snapshotEveryEntries: this.settings.snapshotEveryEntries,
      alive,
      diskDelay: (complete, kind) => this.#diskDelay(machine, alive, complete, kind),
      hooks: this.checker,
      inspector: {
        readyTaken: (_ready, raw) => {
          if (raw.role === Role.Leader) this.#leaderSeen(machine.id, raw.term);
        },
        entryApplied: (entry) => {
          this.stats.applied!++;
          // Counted once per change: the first node to apply it.
          if (entry.type === EntryType.Config && entry.index > this.#configIndexSeen) {
            this.#configIndexSeen = entry.index;
            this.stats.configChanges!++;
            this.#record(`configuration at index ${entry.index}: voters [${entry.config?.voters}] learners [${entry.config?.learners}]`);
          }
        },
      },
      clusterKey: CLUSTER_KEY,
      rescheduleGraceMs: this.settings.rescheduleGraceMs,
      voterGraceMs: this.settings.voterGraceMs,
      progressDeadlineMs: 20_000,
      // OOM kills are a fault: none start after the heal.
      oomChance: () => (this.#healed ? 0 : this.settings.oomChance),
      peerAddresses: () => Object.fromEntries([...this.#machines.values()].map((each) => [each.id, each.address])),
      resourcesOf: (id) => this.#machines.get(id)?.resources,
      submitTo: (from, address, request, timeoutMs) => this.#submitTo(from, address, request, timeoutMs, clock),
      sendDatagram: (fromAddress, toAddress, message) => this.#sendDatagram(fromAddress, toAddress, message),
      log: (line) => {
        if (alive()) this.#record(`${machine.id} ${line}`);
      },
      onFatal: (error) => this.checker.record(`${machine.id} stopped after a fatal error: ${error.message}`),
    });
    machine.agent = agent;
    this.#record(`${machine.id} starting (life ${life})`);
    agent.start(founders).catch((error: unknown) => {
      if (alive()) this.checker.record(`${machine.id} failed to start: ${(error as Error).stack ?? String(error)}`);
    });
  }

  /** The machine stops at once: its agent is abandoned mid-flight, its workloads die, its disk keeps what the crash mode lets it. */
  #crash(machine: Machine): void {
    if (!machine.up) return;
    machine.up = false;
    machine.agent = undefined;
    const mode = CRASH_MODES[this.#random.below(CRASH_MODES.length)]!;
    machine.disk.crash(mode, this.#random);
    this.stats.crashes!++;
    this.#record(`${machine.id} crashed (${mode})`);
  }

  #diskDelay(machine: Machine, alive: () => boolean, complete: () => void, _kind: DiskOperation['kind']): void {
    const slow = this.#clock.nowMs < machine.slowDiskUntilMs;
    const latencyMs = slow ? 50 + this.#random.below(400) : 1 + this.#random.below(3);
    this.#schedule(latencyMs, () => {
      if (alive()) complete();
    });
  }

  #live(): Machine[] {
    return [...this.#machines.values()].filter((machine) => machine.up && machine.agent !== undefined);
  }

  #leader(): SimAgent | undefined {
    let best: SimAgent | undefined;
    let bestTerm = -1;
    for (const machine of this.#live()) {
      const raw = machine.agent!.raft.rawForInspection;
      if (raw?.role === Role.Leader && raw.term > bestTerm) {
        best = machine.agent;
        bestTerm = raw.term;
      }
    }
    return best;
  }

  #leaderSeen(id: string, term: number): void {
    if (this.#lastLeader?.id === id && this.#lastLeader.term === term) return;
    this.#lastLeader = { id, term };
    this.stats.elections!++;
    this.#record(`${id} leads in term ${term}`);
    if (!this.#healed) return;
    const settled = this.#settledLeader;
    if (settled !== undefined && this.#clock.nowMs - settled.sinceMs >= LEADER_SETTLE_MS && !(settled.id === id && settled.term === term)) {
      this.checker.record(`leadership: ${id} leads in term ${term} after the heal, though ${settled.id} led term ${settled.term} since ${settled.sinceMs}ms with no fault since`);
    }
    this.#settledLeader = { id, term, sinceMs: this.#clock.nowMs };
  }

  // ---------------------------------------------------------------------------
  // The network beside Raft's: gossip datagrams and Cluster.Submit calls

  #reachable(from: string, to: string): boolean {
    return !this.#blocked.has(`${from}>${to}`) && !this.#random.chance(this.#network.faults.dropRate);
  }

  #delayMs(): number {
    return 1 + this.#random.below(this.#network.faults.delayMsMax);
  }

  #sendDatagram(fromAddress: string, toAddress: string, message: Message): void {
    const from = fromAddress.slice(4);
    const to = toAddress.slice(4);
    if (!this.#reachable(from, to)) return;
    this.#schedule(this.#delayMs(), () => {
      const target = this.#machines.get(to);
      if (target?.up) target.agent?.gossip.receive(fromAddress, message);
    });
  }

  #submitTo(
    from: string,
    address: string,
    request: SubmitRequestWire,
    timeoutMs: number,
    clock: NodeClock,
  ): Promise<{ ok: true; result: Uint8Array } | { ok: false; status: number; message: string }> {
    const to = address.slice(4);
    return new Promise((resolve) => {
      let settled = false;
      const finish = (answer: { ok: true; result: Uint8Array } | { ok: false; status: number; message: string }): void => {
        if (settled) return;
        settled = true;
        resolve(answer);
      };
      clock.setTimer(timeoutMs, () => finish({ ok: false, status: 4, message: 'deadline exceeded' }));
      if (!this.#reachable(from, to)) return;
      this.#schedule(this.#delayMs(), () => {
        const target = this.#machines.get(to)?.agent;
        if (target === undefined) return;
        void target.handleSubmit(request, from).then((answer) => {
          if (!this.#reachable(to, from)) return;
          this.#schedule(this.#delayMs(), () =>
            finish(answer.ok ? answer : { ok: false, status: answer.refusal.status, message: answer.refusal.message }),
          );
        });
      });
    });
  }

  // ---------------------------------------------------------------------------
  // The operator

  /** Proposes `command` as the operator through the leader; the outcome goes to the trace. */
  #operate(command: Command, what: string): void {
    const leader = this.#leader();
    if (leader === undefined) return;
    const requestId = `op:${++this.#operatorRequests}`;
    leader.proposeAsOperator(command, requestId).then(
      (result) => this.#record(`operator ${what}: ${result.ok ? 'ok' : `refused (${result.error.code}: ${result.error.message})`}`),
      (error: unknown) => this.#record(`operator ${what}: ${(error as Error).message}`),
    );
  }

  /** The tenants with quotas, created once a leader is there (again until each exists). */
  #setUpTenants(): void {
    const leader = this.#leader();
    const missing = leader === undefined ? TENANTS : TENANTS.filter((tenant) => leader.machine.tenant(tenant.name) === undefined);
    if (missing.length === 0) return;
    for (const tenant of missing) this.#operate({ type: 'tenant.create', name: tenant.name, quota: tenant.quota }, `create tenant ${tenant.name}`);
    this.#schedule(1000, () => this.#setUpTenants());
  }

  #operatorLoop(): void {
    const leader = this.#leader();
    if (leader !== undefined) {
      if (this.#healed) this.#operator.settle(leader.machine);
      else this.#operator.change(leader.machine);
    }
    this.#schedule(this.#healed ? 1000 : this.settings.operatorIntervalMs, () => this.#operatorLoop());
  }

  // ---------------------------------------------------------------------------
  // The nemesis

  #nemesisLoop(): void {
    if (this.#healed) return;
    const roll = this.#random.below(100);
    if (roll < 18) this.#partition();
    else if (roll < 30) this.#healNetwork();
    else if (roll < 42) this.#crashSomeone();
    else if (roll < 56) this.#restartSomeone();
    else if (roll < 64) this.#slowDisk();
    else if (roll < 72) this.#jumpClock();
    else this.#instanceFault();
    this.#schedule(this.settings.nemesisIntervalMs, () => this.#nemesisLoop());
  }

  #block(from: string, to: string): void {
    this.#blocked.add(`${from}>${to}`);
    this.#network.block(from, to);
  }

  #partition(): void {
    this.#healNetwork();
    const ids = [...this.#machines.keys()];
    for (let k = ids.length - 1; k > 0; k--) {
      const j = this.#random.below(k + 1);
      [ids[k], ids[j]] = [ids[j]!, ids[k]!];
    }
    const shape = this.#random.below(3);
    if (shape === 0) {
      const leader = this.#leader()?.id ?? ids[0]!;
      for (const other of ids) if (other !== leader) {
        this.#block(leader, other);
        this.#block(other, leader);
      }
      this.#record(`partition: isolate ${leader}`);
    } else if (shape === 1) {
      const minority = ids.slice(0, Math.floor(ids.length / 2));
      for (const a of minority) for (const b of ids.slice(minority.length)) {
        this.#block(a, b);
        this.#block(b, a);
      }
      this.#record(`partition: [${minority}] | [${ids.slice(minority.length)}]`);
    } else {
      const target = ids[0]!;
      for (const other of ids.slice(1)) this.#block(other, target);
      this.#record(`partition: ${target} deaf (one-way)`);
    }
    this.stats.partitions!++;
  }

  #healNetwork(): void {
    this.#blocked.clear();
    this.#network.unblockAll();
  }

  /** At most a minority down at once, so that the cluster can always make progress once healed. */
  #crashSomeone(): void {
    const live = this.#live();
    const down = this.#machines.size - live.length;
    if (down + 1 > Math.floor((this.#machines.size - 1) / 2) || live.length === 0) return;
    const target = this.#random.chance(0.4) ? (this.#machineOf(this.#leader()) ?? live[0]!) : live[this.#random.below(live.length)]!;
    this.#crash(target);
    this.#schedule(500 + this.#random.below(8000), () => {
      if (!target.up && !this.#healed) this.#restart(target);
    });
  }

  #machineOf(agent: SimAgent | undefined): Machine | undefined {
    return agent === undefined ? undefined : this.#machines.get(agent.id);
  }

  #restartSomeone(): void {
    const down = [...this.#machines.values()].filter((machine) => !machine.up);
    if (down.length > 0) this.#restart(down[this.#random.below(down.length)]!);
  }

  #restart(machine: Machine): void {
    this.stats.restarts!++;
    this.#start(machine);
  }

  #slowDisk(): void {
    const live = this.#live();
    if (live.length === 0) return;
    const target = live[this.#random.below(live.length)]!;
    target.slowDiskUntilMs = this.#clock.nowMs + 1000 + this.#random.below(4000);
    this.stats.slowDisks!++;
    this.#record(`${target.id}'s disk is slow until ${target.slowDiskUntilMs}ms`);
  }

  #jumpClock(): void {
    const live = this.#live();
    if (live.length === 0) return;
    const target = live[this.#random.below(live.length)]!;
    // Within CLOCK_AHEAD_MS_MAX in all: a limit on everything.
    const ms = Math.min(1000 + this.#random.below(30_000), CLOCK_AHEAD_MS_MAX - target.aheadMs);
    if (ms <= 0) return;
    target.aheadMs += ms;
    target.agent!.clock.jump(ms);
    this.stats.clockJumps!++;
    this.#record(`${target.id}'s wall clock jumps ${ms} ms ahead`);
  }

  #instanceFault(): void {
    const live = this.#live();
    if (live.length === 0) return;
    const target = live[this.#random.below(live.length)]!;
    const running = target.agent!.runtime.list().filter((workload) => workload.state === 'running').map((workload) => workload.id);
    if (running.length === 0) return;
    const id = running[this.#random.below(running.length)]!;
    const kind = this.#random.below(3);
    const runtime = target.agent!.runtime;
    const done = kind === 0 ? runtime.kill(id, false) : kind === 1 ? runtime.kill(id, true) : runtime.sicken(id, 500 + this.#random.below(3000));
    if (!done) return;
    this.stats.instanceFaults!++;
    this.#record(`${target.id}: instance ${id} ${kind === 0 ? 'killed' : kind === 1 ? 'OOM-killed' : 'fails its healthcheck for a while'}`);
  }

  /** A machine that restarted outside the Raft configuration (the voter manager removed it while it was gone) joins again as a learner: what rejoin.ts does. */
  #rejoinLoop(): void {
    const leader = this.#leader();
    if (leader !== undefined) {
      const config = leader.raft.status().config;
      const members = new Set([...config.voters, ...config.learners]);
      for (const machine of this.#live()) {
        if (members.has(machine.id)) continue;
        this.stats.rejoins!++;
        this.#record(`${machine.id} rejoins as a learner through ${leader.id}`);
        leader.raft.addLearner(machine.id, machine.address).then(
          () => this.#record(`${machine.id} rejoined`),
          (error: unknown) => this.#record(`${machine.id} rejoin: ${(error as Error).message}`),
        );
      }
    }
    this.#schedule(1000, () => this.#rejoinLoop());
  }

  // ---------------------------------------------------------------------------
  // The heal and convergence

  #heal(): void {
    this.#healed = true;
    this.#healedAtMs = this.#clock.nowMs;
    this.#healNetwork();
    this.#network.faults.dropRate = 0;
    this.#network.faults.duplicateRate = 0;
    for (const machine of this.#machines.values()) {
      machine.slowDiskUntilMs = 0;
      if (!machine.up) this.#restart(machine);
    }
    this.#record('healed: faults off, every machine runs');
    this.#schedule(CONVERGENCE_CHECK_MS, () => this.#checkConvergence());
  }

  #checkConvergence(): void {
    if (this.#convergenceProblems().length === 0) {
      this.#converged = true;
      this.#record(`converged ${this.#clock.nowMs - this.#healedAtMs} ms after the heal`);
      return;
    }
    this.#schedule(CONVERGENCE_CHECK_MS, () => this.#checkConvergence());
  }

  /** Into the trace: the instances of every app that did not converge, as the leader holds them. */
  #describeUnconverged(): void {
    const leader = this.#leader();
    if (leader === undefined) return;
    const nodes = leader.machine.nodes().map((node) => `${node.id} ${node.status} ${node.resources.cpuMillis}m/${node.resources.memoryBytes}B`);
    this.#record(`at the end: nodes ${nodes.join(', ')}`);
    for (const app of leader.machine.apps()) {
      const instances = leader.machine.instances({ tenant: app.tenant, app: app.name });
      const shown = instances.map((instance) => `${instance.id} v${instance.version} slot ${instance.slot} on ${instance.node ?? '-'} ${instance.desired} ${instance.status.state}`);
      this.#record(`at the end: ${app.tenant}/${app.name} v${app.version} x${app.replicas} rollout ${JSON.stringify(app.rollout ?? null)} unplaceable ${JSON.stringify(app.unplaceable ?? null)}: ${shown.join('; ')}`);
    }
  }

  #convergenceProblems(): string[] {
    const leader = this.#leader();
    if (leader === undefined) return ['no leader'];
    const problems = convergenceProblems({ machine: leader.machine });
    const config = leader.raft.status().config;
    for (const id of config.voters.concat(config.learners)) if (!this.#machines.get(id)?.up) problems.push(`member ${id} is down`);
    for (const machine of this.#machines.values()) {
      const record = leader.machine.node(machine.id);
      if (record?.status !== 'up') problems.push(`node ${machine.id} is ${record?.status ?? 'unregistered'}`);
    }
    const applied = leader.machine.appliedIndex;
    for (const machine of this.#live()) {
      if (machine.agent!.machine.appliedIndex !== applied) problems.push(`${machine.id} applied ${machine.agent!.machine.appliedIndex}, the leader ${applied}`);
    }
    return problems;
  }
}

/** Runs one seed to the end and reports what it found. */
export function runClusterSeed(seed: number, overrides: Partial<ClusterSettings> = {}): Promise<ClusterRunResult> {
  return new ClusterWorld({ ...clusterSettingsForSeed(seed), ...overrides }).run();
}
