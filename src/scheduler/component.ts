/**
 * The scheduler as a node component: runs on every node, acts only while
 * this node leads. It plans a round (`planRound`, pure) over the local
 * replica and proposes the commands. This file is the I/O around the pure
 * planner: clock, timers, proposals, logs and metrics.
 *
 * When: the first apply after a quiet spell starts a round at once (on the
 * next turn of the event loop, so one burst of applies makes one round);
 * what arrives while a round runs or within `debounceMs` of the start of a
 * round that saw an apply is coalesced into one more round. A round also
 * runs every `periodMs`, for what time alone changes (grace, backoff,
 * monitor, delays, deadlines), unless the last round was quiet: it proposed
 * nothing and nothing in the state waits on time (`RoundPlan.waitsOnTime`),
 * and nothing happened since. Then a round over the same state would plan
 * nothing again, so none runs until the state changes: an idle leader
 * holding instances no node can take does not plan them every second.
 * While quiet the period timer itself slows to `quietSweepMs` (an idle node
 * does not wake for nothing every second); the first apply after it brings
 * the period back, and the sweep, should it come first, runs one round
 * anyway: a safety net, not a source of work (it plans nothing new unless
 * something was missed).
 * A periodic round, when no apply waited for it, does not open a debounce
 * window: at one per period it cannot make a burst, and a deploy committed
 * just after it would otherwise wait up to `debounceMs` for nothing.
 *
 * Pipelining: placements are proposed without waiting for the previous
 * ones: the next round plans while they commit, with the placements in
 * flight given to the planner (which then plans placements only, counting
 * them as placed), up to `placementCommandsInFlightMax` commands. Any other
 * command in flight (a rollout step, a reschedule, a report) holds the next
 * round back until it is answered, so that a round always sees what those
 * did.
 *
 * Tracing: a round is the span `scheduler.round`, a child of the first
 * traced apply it follows (a deploy's), linked to the others it coalesced
 * (up to ROUND_LINKS_MAX); each `instance.place` it proposes is a
 * `scheduler.placement` span under it, so the placement's entry carries the
 * deploy's trace to every node.
 */
import { Counter, Gauge, Histogram } from '../node/prometheus.js';
import { SYSTEM_CLOCK, type Clock } from '../node/clock.js';
import { isHeartbeatApply, type ComponentFactory, type NodeComponent, type NodeServices } from '../node/services.js';
import type { Command, CommandResult } from '../state/types.js';
import { newestStateTime, PlanningClock } from './planning-time.js';
import { planRound, SCHEDULER_DEFAULTS, type SchedulerOptions } from './round.js';
import { contextOf, contextWith, inSpan, linkTo, startSpan, withContext } from '../node/tracing.js';

/** Traced applies a round remembers (its parent and links); later ones in the same round are not linked. */
const ROUND_LINKS_MAX = 16;

/** How the component runs; the planning settings are `SchedulerOptions`. */
export interface SchedulerComponentOptions extends SchedulerOptions {
  /** Rounds start at most this often; applies in between are coalesced into the next round. */
  debounceMs: number;
  /** A round at least this often, for what time alone changes (grace, backoff, monitor, delays, deadlines). */
  periodMs: number;
  /** While the last round was quiet and nothing happened since, a round this often (a safety sweep) instead of every `periodMs`; at least `periodMs`. */
  quietSweepMs: number;
  /** A proposal's time limit. */
  proposalTimeoutMs: number;
  /** `instance.place` commands proposed and not yet answered, at most; the next round waits for room. */
  placementCommandsInFlightMax: number;
  /**
   * The clock and timers the rounds run on: the leader's time they plan with
   * (`now()`, never behind the newest time in the state: planning-time.ts), the debounce and period timers, and the durations measured
   * (`monotonicMs()`). Default `SYSTEM_CLOCK`; the simulator (src/sim) gives
   * each node's life its virtual one.
   */
  clock: Clock;
}

/**
 * Rounds of at most 20,000 placements (a round blocks the event loop while
 * it plans: bigger rounds delay Raft's heartbeats), up to 4 commands of
 * 5,000 in flight.
 */
export const SCHEDULER_COMPONENT_DEFAULTS: SchedulerComponentOptions = {
  ...SCHEDULER_DEFAULTS,
  placementsPerRoundMax: 20_000,
  debounceMs: 50,
  periodMs: 1_000,
  quietSweepMs: 60_000,
  proposalTimeoutMs: 10_000,
  placementCommandsInFlightMax: 4,
  clock: SYSTEM_CLOCK,
};

/** The scheduler component (name `scheduler`). */
export class SchedulerComponent implements NodeComponent {
  readonly name = 'scheduler';
  readonly #services: NodeServices;
  readonly #options: SchedulerComponentOptions;
  #stopListening: (() => void) | undefined;
  /** Cancels the armed period timer. */
  #period: (() => void) | undefined;
  /** The armed period timer is the quiet sweep (`quietSweepMs`), not the period. */
  #periodIsSweep = false;
  /** Cancels the wait for the debounce window to end. */
  #delay: (() => void) | undefined;
  /** Cancels the round armed for the next turn. */
  #immediate: (() => void) | undefined;
  /** Something happened that no round has seen yet. */
  #pending = false;
  /** An apply (or a proposal's answer) happened that no round has seen yet: the next round opens a debounce window. */
  #appliedPending = false;
  /** The clock's `monotonicMs()` when the last round that saw an apply started (the debounce window's start). */
  #debounceStartedAt = -Infinity;
  /** Placements proposed and not yet answered: instance id → node id. */
  readonly #inFlight = new Map<string, string>();
  #placementCommandsInFlight = 0;
  #otherCommandsInFlight = 0;
  /** The last round proposed nothing and nothing it read waits on time: until something happens, another would plan nothing. */
  #lastRoundQuiet = false;
  #stopped = false;
  /** The trace contexts of the applies no round has seen yet (at most ROUND_LINKS_MAX). */
  #pendingTraces: string[] = [];
  /** The time rounds plan with: the wall clock, or the newest time in the state carried forward when that is later (planning-time.ts). */
  readonly #planningClock: PlanningClock;
  readonly #proposals: Counter<'command' | 'outcome'>;
  readonly #roundSeconds: Histogram;
  readonly #proposalSeconds: Histogram<'command'>;
  readonly #placed: Counter;
  /** The last round's unplaceable instances by reason kind, for the gauge. */
  #lastUnplaceable: ReadonlyMap<string, number> = new Map();

  constructor(services: NodeServices, options: Partial<SchedulerComponentOptions> = {}) {
    this.#services = services;
    this.#options = { ...SCHEDULER_COMPONENT_DEFAULTS, ...options };
    this.#planningClock = new PlanningClock(this.#options.clock);
    this.#proposals = new Counter({
      name: 'hivemind_scheduler_proposals_total',
      help: 'Commands the scheduler proposed, by type and outcome (ok, refused, error).',
      labelNames: ['command', 'outcome'],
      registers: [services.registry],
    });
    this.#roundSeconds = new Histogram({ name: 'hivemind_scheduler_round_seconds', help: 'Time to plan one scheduling round.', registers: [services.registry] });
    this.#proposalSeconds = new Histogram({
      name: 'hivemind_scheduler_proposal_seconds',
      help: 'From proposing a scheduler command to its apply result, by command type.',
      labelNames: ['command'],
      buckets: [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10],
      registers: [services.registry],
    });
    const lastUnplaceable = (): ReadonlyMap<string, number> => this.#lastUnplaceable;
    const isLeader = (): boolean => services.isLeader();
    new Gauge({
      name: 'hivemind_scheduler_unplaceable_instances',
      help: 'On the leader: instances its last round could not place, by the reason that refused them on the most nodes (memory, cpu, port, constraint, max-per-node, status, no-nodes, no-app, invalid-constraint); absent elsewhere.',
      labelNames: ['reason'],
      registers: [services.registry],
      collect() {
        this.reset();
        if (!isLeader()) return;
        for (const [reason, count] of lastUnplaceable()) this.set({ reason }, count);
      },
    });
    this.#placed = new Counter({ name: 'hivemind_scheduler_placements_total', help: 'Instances placed by committed instance.place commands.', registers: [services.registry] });
  }

  async start(): Promise<void> {
    this.#stopListening = this.#services.listen((event) => {
      if (isHeartbeatApply(event)) return;
      if (event.type === 'applied' && event.traceparent !== undefined && this.#pendingTraces.length < ROUND_LINKS_MAX) this.#pendingTraces.push(event.traceparent);
      this.#trigger();
    });
    this.#armPeriod();
    this.#trigger();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#stopListening?.();
    this.#period?.();
    this.#delay?.();
    this.#immediate?.();
  }

  /**
   * The period's timer, armed again each time it fires (a `Clock` has
   * one-shot timers only): every `periodMs`, or every `quietSweepMs` while
   * quiet (the last round was quiet and nothing happened since).
   */
  #armPeriod(): void {
    this.#period?.();
    this.#periodIsSweep = this.#lastRoundQuiet && !this.#pending;
    this.#period = this.#options.clock.setTimer(this.#periodIsSweep ? this.#options.quietSweepMs : this.#options.periodMs, () => {
      if (this.#stopped) return;
      const sweep = this.#periodIsSweep;
      this.#period = undefined;
      this.#triggerByPeriod(sweep);
      this.#armPeriod();
    });
  }

  /** Brings the period back if the quiet sweep is armed: something happened, and what follows may wait on time. */
  #leaveQuiet(): void {
    if (this.#periodIsSweep && !this.#stopped) this.#armPeriod();
  }

  /** Something changed: a round will see it, at once after a quiet spell. */
  #trigger(): void {
    this.#pending = true;
    this.#appliedPending = true;
    this.#leaveQuiet();
    this.#wake();
  }

  /** The period passed: a round will look at what time alone changes, if anything may have; the quiet sweep always looks. */
  #triggerByPeriod(sweep: boolean): void {
    if (this.#lastRoundQuiet && !this.#pending && !sweep) return;
    this.#pending = true;
    this.#wake();
  }

  /** Runs `#maybeRound` on the next turn of the event loop (once, however many call), unless a debounce wait is armed. */
  #wake(): void {
    if (this.#stopped || this.#immediate !== undefined || this.#delay !== undefined) return;
    this.#immediate = this.#options.clock.setTimer(0, () => {
      this.#immediate = undefined;
      this.#maybeRound();
    });
  }

  #maybeRound(): void {
    if (this.#stopped || !this.#pending || !this.#services.isLeader()) return;
    // Proposals hold the round back; their answers wake it.
    if (this.#otherCommandsInFlight > 0 || this.#placementCommandsInFlight >= this.#options.placementCommandsInFlightMax) return;
    const waitMs = this.#debounceStartedAt + this.#options.debounceMs - this.#options.clock.monotonicMs();
    if (waitMs > 0) {
      this.#delay = this.#options.clock.setTimer(waitMs, () => {
        this.#delay = undefined;
        this.#maybeRound();
      });
      return;
    }
    this.#round();
  }

  #round(): void {
    const clock = this.#options.clock;
    const startedAt = clock.monotonicMs();
    const startedAtMs = clock.now();
    this.#pending = false;
    if (this.#appliedPending) this.#debounceStartedAt = startedAt;
    this.#appliedPending = false;
    this.#lastRoundQuiet = false;
    const traces = this.#pendingTraces;
    this.#pendingTraces = [];
    let commands: Command[];
    try {
      const view = this.#services.machine.schedulerView();
      const plan = planRound({ ...view, now: this.#planningClock.now(newestStateTime(view)), seed: view.appliedIndex >>> 0, options: this.#options, inFlight: this.#inFlight });
      commands = plan.commands;
      this.#lastUnplaceable = plan.unplaceableByKind;
      this.#lastRoundQuiet = commands.length === 0 && !plan.waitsOnTime;
      if (!this.#lastRoundQuiet) this.#leaveQuiet();
    } catch (error) {
      this.#services.log('scheduler', `round failed: ${(error as Error).stack ?? String(error)}`, 'error');
      return;
    }
    this.#roundSeconds.observe((clock.monotonicMs() - startedAt) / 1000);
    // A periodic round that followed no traced apply and proposes nothing is no one's business: no span.
    if (traces.length === 0 && commands.length === 0) return;
    const [first, ...others] = traces;
    const links = others.map(linkTo).filter((link) => link !== undefined);
    const span = startSpan('scheduler.round', { parent: contextOf(first), links, startTimeMs: startedAtMs, attributes: { 'hivemind.scheduler.commands': commands.length } });
    withContext(contextWith(span), () => {
      for (const command of commands) {
        if (command.type !== 'instance.place') void this.#propose(command);
        else void inSpan('scheduler.placement', { attributes: { 'hivemind.scheduler.placements': command.placements.length } }, () => this.#propose(command));
      }
    });
    span.end();
  }

  /** Proposes one command, keeping the in-flight books; never throws. */
  async #propose(command: Command): Promise<void> {
    const placements = command.type === 'instance.place' ? command.placements : undefined;
    if (placements !== undefined) {
      this.#placementCommandsInFlight++;
      for (const placement of placements) if (placement.node !== null) this.#inFlight.set(placement.id, placement.node);
    } else {
      this.#otherCommandsInFlight++;
    }
    let result: CommandResult | undefined;
    const proposed = this.#options.clock.monotonicMs();
    try {
      result = await this.#services.submit(command, { timeoutMs: this.#options.proposalTimeoutMs });
      this.#proposalSeconds.observe({ command: command.type }, (this.#options.clock.monotonicMs() - proposed) / 1000);
    } catch (error) {
      this.#proposals.inc({ command: command.type, outcome: 'error' });
      this.#services.log('scheduler', `could not propose ${command.type}: ${(error as Error).message}`, 'warn');
    } finally {
      if (placements !== undefined) {
        this.#placementCommandsInFlight--;
        // Only this command's entries: a later command may have proposed the same instance again.
        for (const placement of placements) if (this.#inFlight.get(placement.id) === placement.node) this.#inFlight.delete(placement.id);
      } else {
        this.#otherCommandsInFlight--;
      }
    }
    if (result !== undefined) {
      this.#proposals.inc({ command: command.type, outcome: result.ok ? 'ok' : 'refused' });
      if (result.ok && placements !== undefined) this.#placed.inc(placements.length);
      // A refusal means the state moved on since the round planned; the next round plans again.
      if (!result.ok && result.error.code !== 'conflict' && result.error.code !== 'not-found') {
        this.#services.log('scheduler', `${command.type} refused: ${result.error.message}`);
      }
    }
    // Plan again at once after progress; after refusals or errors only, the period retries, unless something else waits.
    if (result?.ok === true) this.#trigger();
    else this.#wake();
  }
}

/** The factory listed in `src/agent/components.ts`. */
export const schedulerComponent: ComponentFactory = (services) =>
  new SchedulerComponent(services, { rescheduleGraceMs: services.config.rescheduleGraceMs, progressDeadlineMs: services.config.progressDeadlineMs });
