/**
 * A seeded simulator of SWIM members over a simulated network: loss, delay,
 * partitions, crashes, and one slow member whose incoming messages wait
 * before it processes them (a starved event loop: its timers still fire on
 * time, so acks look late to it and its own acks reach others late). One seed
 * replays a run exactly. It measures detection time and false positives.
 */
import { SeededRandom } from '../../consensus/core/random.js';
import { EventQueue } from '../../consensus/sim/event-queue.js';
import type { Message } from './messages.js';
import { defaultSwimOptions, Swim, type SwimEvent, type SwimOptions } from './swim.js';

export interface SimulationOptions {
  seed: number;
  memberCount: number;
  swim?: Partial<SwimOptions>;
  /** Probability that any one datagram is lost. */
  lossRate?: number;
  /** One-way delay, drawn uniformly from [min, max]. */
  delayMsMin?: number;
  delayMsMax?: number;
  /** Index of the slow member, and how late it processes each incoming message. */
  slowMember?: number;
  slowDelayMs?: number;
}

/** One event observed by one member, stamped with simulated time. */
export interface ObservedEvent {
  readonly observer: string;
  readonly event: SwimEvent;
}

type SimEvent =
  | { kind: 'tick'; member: number }
  | { kind: 'deliver'; member: number; fromAddress: string; message: Message }
  | { kind: 'crash'; member: number };

export class Simulation {
  readonly members: Swim[] = [];
  readonly ids: string[] = [];
  readonly observed: ObservedEvent[] = [];
  /** Crash times by member index. */
  readonly crashedAtMs = new Map<number, number>();
  nowMs = 0;
  messagesSent = 0;
  private readonly queue = new EventQueue<SimEvent>();
  private readonly random: SeededRandom;
  private readonly scheduledTickMs: (number | undefined)[] = [];
  private readonly indexByAddress = new Map<string, number>();
  /** Group number per member index; members in different groups cannot talk. */
  private groups: number[] | undefined;
  private readonly indexById = new Map<string, number>();
  private readonly addresses: string[] = [];
  /** Crashed member index → the live members that declared it dead after its crash. */
  private readonly buriedBy = new Map<number, Set<number>>();

  constructor(readonly options: SimulationOptions) {
    this.random = new SeededRandom(options.seed);
    for (let i = 0; i < options.memberCount; i++) {
      const id = `m${i}`;
      const address = `10.0.0.${i}:7072`;
      this.ids.push(id);
      this.addresses.push(address);
      this.indexById.set(id, i);
      this.indexByAddress.set(address, i);
      this.members.push(new Swim({ self: { id, address, meta: {} }, random: this.random.fork(), options: options.swim }));
      this.scheduledTickMs.push(undefined);
    }
    // Everyone joins through member 0, staggered by 10 ms.
    for (let i = 0; i < options.memberCount; i++) {
      this.members[i]!.join(i === 0 ? [] : ['10.0.0.0:7072']);
      this.queue.push(i * 10, { kind: 'tick', member: i });
      this.scheduledTickMs[i] = i * 10;
    }
  }

  /** Stops a member at `atMs`: it neither receives nor ticks afterwards. */
  crash(member: number, atMs: number): void {
    this.queue.push(atMs, { kind: 'crash', member });
  }

  /** Splits the network: `groups[i]` is member i's side. Undefined heals it. */
  partition(groups: number[] | undefined): void {
    this.groups = groups;
  }

  /**
   * Every live member asks the members it holds dead for a full-state
   * exchange, as the gossip component does from the node records: after a
   * partition heals, neither side probes the other's dead, so this is what
   * merges them again.
   */
  recontactDead(): void {
    for (let i = 0; i < this.members.length; i++) {
      if (this.crashedAtMs.has(i)) continue;
      const swim = this.members[i]!;
      const dead = swim.snapshot().filter((m) => m.state === 'dead').map((m) => m.address);
      if (dead.length === 0) continue;
      swim.join(dead);
      this.flush(i);
    }
  }

  isCrashed(member: number): boolean {
    const at = this.crashedAtMs.get(member);
    return at !== undefined && at <= this.nowMs;
  }

  /** Runs every event up to and including `untilMs`. */
  runUntil(untilMs: number): void {
    for (;;) {
      const time = this.queue.peekTime();
      if (time === undefined || time > untilMs) break;
      const { value } = this.queue.pop()!;
      this.nowMs = time;
      this.step(value);
    }
    this.nowMs = untilMs;
  }

  /**
   * Runs until `done()` holds, checked every `checkIntervalMs` of simulated
   * time, or until `untilMs`; returns whether it held. The run stops at the
   * first check that passes, so a seed still replays exactly.
   */
  runUntilDone(untilMs: number, done: () => boolean, checkIntervalMs: number): boolean {
    if (done()) return true;
    while (this.nowMs < untilMs) {
      this.runUntil(Math.min(untilMs, this.nowMs + checkIntervalMs));
      if (done()) return true;
    }
    return false;
  }

  /** Whether every live member (other than `member`) has declared the crashed `member` dead since its crash. */
  buriedByAll(member: number): boolean {
    const buriers = this.buriedBy.get(member);
    if (buriers === undefined) return false;
    for (let i = 0; i < this.members.length; i++) {
      if (i !== member && !this.isCrashed(i) && !buriers.has(i)) return false;
    }
    return true;
  }

  /** Member index of a simulated member id (`m17` → 17). */
  indexOf(id: string): number {
    const index = this.indexById.get(id);
    if (index === undefined) throw new Error(`sim: unknown member id ${JSON.stringify(id)}`);
    return index;
  }

  private step(event: SimEvent): void {
    if (event.kind === 'crash') {
      this.crashedAtMs.set(event.member, this.nowMs);
      return;
    }
    if (this.crashedAtMs.has(event.member)) return;
    const swim = this.members[event.member]!;
    if (event.kind === 'tick') {
      if (this.scheduledTickMs[event.member] !== this.nowMs) return; // superseded
      this.scheduledTickMs[event.member] = undefined;
      swim.tick(this.nowMs);
    } else {
      swim.receive(event.fromAddress, event.message, this.nowMs);
    }
    this.flush(event.member);
  }

  private flush(index: number): void {
    const swim = this.members[index]!;
    const fromAddress = this.addresses[index]!;
    for (const event of swim.drainEvents()) {
      this.observed.push({ observer: this.ids[index]!, event });
      if (event.type === 'dead') this.noteBurial(index, event);
    }
    for (const { to, message } of swim.drainOutbox()) {
      this.messagesSent++;
      const target = this.indexByAddress.get(to);
      if (target === undefined) continue;
      if (this.groups !== undefined && this.groups[target] !== this.groups[index]) continue;
      // Sync travels over a stream transport in the real system: never lost, only delayed.
      if (message.type !== 'sync' && this.random.chance(this.options.lossRate ?? 0)) continue;
      const min = this.options.delayMsMin ?? 1;
      const max = this.options.delayMsMax ?? 5;
      let delayMs = min + this.random.below(max - min + 1);
      if (target === this.options.slowMember) delayMs += this.options.slowDelayMs ?? 0;
      this.queue.push(this.nowMs + delayMs, { kind: 'deliver', member: target, fromAddress, message });
    }
    const deadline = swim.nextDeadlineMs();
    if (deadline === undefined) return;
    const at = Math.max(this.nowMs, deadline);
    const scheduled = this.scheduledTickMs[index];
    if (scheduled !== undefined && scheduled <= at) return;
    this.scheduledTickMs[index] = at;
    this.queue.push(at, { kind: 'tick', member: index });
  }

  private noteBurial(observer: number, event: SwimEvent): void {
    const subject = this.indexById.get(event.id);
    if (subject === undefined) return;
    const crashedAtMs = this.crashedAtMs.get(subject);
    if (crashedAtMs === undefined || crashedAtMs > event.atMs) return;
    let buriers = this.buriedBy.get(subject);
    if (buriers === undefined) this.buriedBy.set(subject, (buriers = new Set()));
    buriers.add(observer);
  }

  // ---------------------------------------------------------------- measures

  /**
   * Time from each crash to the moment the last live member declared the
   * crashed one dead, in ms; undefined for a crash not yet detected by all.
   */
  detectionTimesMs(): (number | undefined)[] {
    const times: (number | undefined)[] = [];
    // observer + subject → dead declarations, oldest first (an index: n² events at 1,000 members).
    const deaths = new Map<string, ObservedEvent[]>();
    for (const o of this.observed) {
      if (o.event.type !== 'dead') continue;
      const key = `${o.observer} ${o.event.id}`;
      const list = deaths.get(key) ?? [];
      list.push(o);
      deaths.set(key, list);
    }
    for (const [crashed, atMs] of this.crashedAtMs) {
      let latest = atMs;
      let complete = true;
      for (let i = 0; i < this.members.length; i++) {
        if (i === crashed || this.crashedAtMs.has(i)) continue;
        const seen = deaths.get(`${this.ids[i]} ${this.ids[crashed]}`)?.find((o) => o.event.atMs >= atMs);
        if (seen === undefined) complete = false;
        else latest = Math.max(latest, seen.event.atMs);
      }
      times.push(complete ? latest - atMs : undefined);
    }
    return times;
  }

  /** Dead declarations about members that had not crashed at that moment. */
  falsePositives(): ObservedEvent[] {
    return this.observed.filter((o) => {
      if (o.event.type !== 'dead') return false;
      const crashedAt = this.crashedAtMs.get(this.indexOf(o.event.id));
      return crashedAt === undefined || crashedAt > o.event.atMs;
    });
  }
}

/**
 * The slowest a crash may take to reach every live member, from the
 * parameters: the first probe of the crashed member (at most one probe
 * round, bounded here by n periods, though with n probers it is nearly
 * always within the first), one period for the probe to fail, the maximum
 * suspicion timeout (Lifeguard starts there), and two periods for the
 * verdict to spread.
 */
export function detectionBoundMs(memberCount: number, swim: Partial<SwimOptions> = {}): number {
  const o = { ...defaultSwimOptions, ...swim };
  const minMs = o.suspicionMultiplier * Math.max(1, Math.log10(memberCount)) * o.probeIntervalMs;
  const maxMs = o.lifeguard ? minMs * o.suspicionMaxMultiplier : minMs;
  return memberCount * o.probeIntervalMs + o.probeIntervalMs + maxMs + 2 * o.probeIntervalMs;
}

/** The value at quantile `q` (0..1) of `values`, nearest-rank. */
export function quantile(values: readonly number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[rank]!;
}

export interface ScenarioOptions {
  seed: number;
  memberCount: number;
  lifeguard: boolean;
  /** Probability that any one datagram is lost (push-pull, over a stream, is never lost). */
  lossRate: number;
  /** How late the slow member (m1) processes each incoming message. */
  slowDelayMs: number;
  /** Time for every member to join through m0 before anything is measured. */
  warmupMs: number;
  /** The false-positive window: the cluster runs with loss and the slow member, and nothing crashes. */
  healthyMs: number;
  /**
   * Members crashed one after another (never m0, m1, or those a partition
   * cuts off). Each crash's window ends as soon as every live member has
   * declared it dead, or at the detection bound; the next crash follows
   * `crashSpacingMs` later.
   */
  crashes: number;
  crashSpacingMs: number;
  /** Then cut 10 % of the members off for up to the bound, heal, and re-contact the dead as the component does. */
  partition: boolean;
}

export interface ScenarioResult {
  /** Detection time of each crash that every live member declared dead, in probe periods. */
  detectionPeriods: number[];
  /** Crashes not declared dead by every live member within the bound. */
  undetected: number;
  detectionBoundMs: number;
  /** Dead declarations about members that had not crashed, after the warm-up and before any partition. */
  falsePositives: number;
  firstFalsePositive: ObservedEvent | undefined;
  falsePositivesPerMemberHour: number;
  /** Live member time over which false positives were counted (from the end of the warm-up). */
  memberHours: number;
  /**
   * Dead declarations about healthy members during the warm-up, while every
   * member joins through m0 in quick succession: reported apart, because a
   * join storm delays every refutation behind the join's own gossip.
   */
  warmupFalsePositives: number;
  messagesSent: number;
  simulatedMs: number;
  /** With `partition`: whether the majority declared the cut-off members dead within the bound, and whether all saw all alive after the heal. */
  partition?: { buried: boolean; healed: boolean };
}

/** Re-contact rounds after a partition heals, one every 10 s, as the gossip component does from the node records. */
const healRounds = 3;
const healRoundMs = 10_000;

/**
 * The comparison run: join, a quiet window with loss and the slow member
 * (m1) for false positives, crashes one at a time, each ended once every
 * live member has declared it dead, and optionally a partition and its heal.
 */
export function runScenario(options: ScenarioOptions): ScenarioResult {
  const { memberCount } = options;
  const swim = { lifeguard: options.lifeguard };
  const sim = new Simulation({ seed: options.seed, memberCount, swim, lossRate: options.lossRate, delayMsMin: 1, delayMsMax: 10, slowMember: 1, slowDelayMs: options.slowDelayMs });
  const intervalMs = sim.members[0]!.options.probeIntervalMs;
  const boundMs = detectionBoundMs(memberCount, swim);
  const cut = Math.max(1, Math.floor(memberCount / 10));
  const crashable = memberCount - 2 - (options.partition ? cut : 0);
  if (!Number.isInteger(options.crashes) || options.crashes < 0 || options.crashes > crashable) {
    throw new Error(`sim: crashes must be an integer in [0, ${crashable}] for ${memberCount} members, got ${options.crashes}`);
  }
  sim.runUntil(options.warmupMs);
  const warmupFalsePositives = sim.falsePositives().length;
  sim.runUntil(options.warmupMs + options.healthyMs);
  let undetected = 0;
  for (let c = 0; c < options.crashes; c++) {
    const member = memberCount - 1 - c;
    const atMs = sim.nowMs;
    sim.crash(member, atMs);
    if (!sim.runUntilDone(atMs + boundMs, () => sim.buriedByAll(member), intervalMs / 5)) undetected += 1;
    sim.runUntil(sim.nowMs + options.crashSpacingMs);
  }
  const measuredUntilMs = sim.nowMs;
  const falsePositives = sim.falsePositives().filter((f) => f.event.atMs > options.warmupMs);
  let liveMs = 0;
  for (let i = 0; i < memberCount; i++) liveMs += Math.min(measuredUntilMs, sim.crashedAtMs.get(i) ?? measuredUntilMs) - options.warmupMs;
  const memberHours = liveMs / 3_600_000;
  const detected = sim.detectionTimesMs().filter((t): t is number => t !== undefined && t <= boundMs);
  const result: ScenarioResult = {
    detectionPeriods: detected.map((t) => t / intervalMs),
    undetected,
    detectionBoundMs: boundMs,
    falsePositives: falsePositives.length,
    firstFalsePositive: falsePositives[0],
    falsePositivesPerMemberHour: falsePositives.length / memberHours,
    memberHours,
    warmupFalsePositives,
    messagesSent: sim.messagesSent,
    simulatedMs: measuredUntilMs,
  };
  if (options.partition) result.partition = partitionAndHeal(sim, cut, boundMs, intervalMs);
  result.messagesSent = sim.messagesSent;
  result.simulatedMs = sim.nowMs;
  return result;
}

/** Cuts members 2 .. 2 + cut off, waits for the majority to bury them, heals, re-contacts the dead, and checks. */
function partitionAndHeal(sim: Simulation, cut: number, boundMs: number, intervalMs: number): { buried: boolean; healed: boolean } {
  const memberCount = sim.members.length;
  const groups = Array.from({ length: memberCount }, (_, i) => (i >= 2 && i < 2 + cut ? 1 : 0));
  const live = (i: number): boolean => !sim.isCrashed(i);
  const majority = groups.flatMap((group, i) => (group === 0 && live(i) ? [i] : []));
  const minority = groups.flatMap((group, i) => (group === 1 ? [i] : []));
  sim.partition(groups);
  const buriedAll = (): boolean => majority.every((m) => minority.every((c) => sim.members[m]!.stateOf(sim.ids[c]!) === 'dead'));
  const buried = sim.runUntilDone(sim.nowMs + boundMs, buriedAll, intervalMs * 2);
  sim.partition(undefined);
  sim.runUntil(sim.nowMs + 1000);
  for (let round = 0; round < healRounds; round++) {
    sim.recontactDead();
    sim.runUntil(sim.nowMs + healRoundMs);
  }
  // Suspect is a live state (loss causes suspicions that are refuted); dead, left or unknown is not.
  const healed = sim.members.every((swim, i) => !live(i) || sim.ids.every((id, j) => !live(j) || swim.stateOf(id) === 'alive' || swim.stateOf(id) === 'suspect'));
  return { buried, healed };
}
