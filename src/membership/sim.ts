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

  constructor(readonly options: SimulationOptions) {
    this.random = new SeededRandom(options.seed);
    for (let i = 0; i < options.memberCount; i++) {
      const id = `m${i}`;
      const address = `10.0.0.${i}:7072`;
      this.ids.push(id);
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
    const fromAddress = `10.0.0.${index}:7072`;
    for (const event of swim.drainEvents()) this.observed.push({ observer: this.ids[index]!, event });
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
      const crashedAt = this.crashedAtMs.get(Number(o.event.id.slice(1)));
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
  lossRate: number;
  slowDelayMs: number;
  /** Members crashed one after another, each given `crashGapMs` to be detected. */
  crashes: number;
  crashGapMs: number;
  warmupMs: number;
}

export interface ScenarioResult {
  detectionPeriods: number[];
  undetected: number;
  falsePositives: number;
  falsePositivesPerMemberHour: number;
  messagesSent: number;
}

/**
 * The comparison run: after a warm-up, crash members one at a time (never the
 * slow one, member 1), then count detection times and false positives.
 */
export function runScenario(options: ScenarioOptions): ScenarioResult {
  const sim = new Simulation({
    seed: options.seed,
    memberCount: options.memberCount,
    swim: { lifeguard: options.lifeguard },
    lossRate: options.lossRate,
    delayMsMin: 1,
    delayMsMax: 10,
    slowMember: 1,
    slowDelayMs: options.slowDelayMs,
  });
  const intervalMs = sim.members[0]!.options.probeIntervalMs;
  for (let c = 0; c < options.crashes; c++) sim.crash(options.memberCount - 1 - c, options.warmupMs + c * options.crashGapMs);
  const endMs = options.warmupMs + Math.max(1, options.crashes) * options.crashGapMs;
  sim.runUntil(endMs);
  const times = sim.detectionTimesMs();
  const detected = times.filter((t): t is number => t !== undefined);
  const falsePositives = sim.falsePositives().length;
  const liveMembers = options.memberCount - options.crashes / 2; // crashes spread evenly over the run
  const memberHours = (liveMembers * endMs) / 3_600_000;
  return {
    detectionPeriods: detected.map((t) => t / intervalMs),
    undetected: times.length - detected.length,
    falsePositives,
    falsePositivesPerMemberHour: falsePositives / memberHours,
    messagesSent: sim.messagesSent,
  };
}
