/**
 * The deterministic SWIM failure detector for one member, with the Lifeguard
 * refinements (nacks on indirect probes, local health awareness, dynamic
 * suspicion timeouts, suspect messages sent to the suspect). It never reads a
 * clock or a random source of its own and does no I/O: time arrives as
 * `nowMs` on every input, randomness through `random`, and its output is the
 * outbox and the event list, both drained by the caller.
 *
 * Ordering contract for the caller: after any input, drain `drainOutbox()`
 * and send each message; call `tick(nowMs)` no later than `nextDeadlineMs()`.
 */
import { assert } from '../../consensus/core/assert.js';
import { BroadcastQueue } from './broadcast-queue.js';
import { estimateBytes, type MemberInfo, type MemberSnapshot, type MemberState, type Message, type Update } from './messages.js';

/** Timings and limits; defaults follow memberlist's LAN profile. */
export interface SwimOptions {
  /** Time between probes at full health. */
  probeIntervalMs: number;
  /** How long a direct ping waits for its ack before indirect probes start. */
  probeTimeoutMs: number;
  /** Members asked to ping the target on our behalf (k). */
  indirectChecks: number;
  /** Minimum suspicion timeout = this × max(1, log10 n) × probe interval. */
  suspicionMultiplier: number;
  /** Maximum suspicion timeout = this × the minimum (Lifeguard starts here). */
  suspicionMaxMultiplier: number;
  /** Independent confirmations that shrink the timeout all the way to the minimum. */
  suspicionConfirmationsExpected: number;
  /** Each update is piggybacked this × ceil(log10(n + 1)) times (lambda). */
  retransmitMultiplier: number;
  /** Local health: the probe interval and timeout stretch up to this factor. */
  awarenessMax: number;
  /** Pending gossip is also pushed to `gossipNodes` random members this often. */
  gossipIntervalMs: number;
  gossipNodes: number;
  /** Byte budget of one datagram, gossip included (sync excepted). */
  packetBytesMax: number;
  /** False gives classic SWIM (fixed suspicion timeout, no nacks, no awareness, no buddy). */
  lifeguard: boolean;
  /**
   * Full-state exchange (`sync`, over a stream) with one random live member
   * this often, to heal what gossip missed; 0 turns it off.
   */
  pushPullIntervalMs: number;
  /**
   * A member held dead or left is forgotten (reaped) this long after it
   * became so, so the view, the full-state exchanges and the probe list do not
   * grow with churn. A reaped member that comes back is learned again like a
   * new one. It should be far longer than a detection plus a push-pull
   * interval, so every member has heard the verdict before anyone forgets it.
   */
  reapTimeoutMs: number;
}

/**
 * Hivemind's LAN profile. Against memberlist's LAN profile (1 s probes, 500 ms
 * probe timeout, suspicion 4 × log10 n periods) it probes twice as often and
 * waits 300 ms for an ack: a loopback or LAN round trip is well under 1 ms, so
 * 300 ms leaves room for a busy event loop, and Lifeguard's local health
 * stretches both when this member is the slow one. The suspicion minimum is
 * 3 × max(1, log10 n) periods = 1.5 s for up to 10 members (memberlist: 4 s),
 * and starts 6 times longer until two other members confirm it. `packetBytesMax` leaves room for
 * the 30 bytes of the encrypted envelope (see crypto.ts) within 1400.
 */
export const defaultSwimOptions: Readonly<SwimOptions> = {
  probeIntervalMs: 500,
  probeTimeoutMs: 300,
  indirectChecks: 3,
  suspicionMultiplier: 3,
  suspicionMaxMultiplier: 6,
  suspicionConfirmationsExpected: 2,
  retransmitMultiplier: 4,
  awarenessMax: 8,
  gossipIntervalMs: 200,
  gossipNodes: 3,
  packetBytesMax: 1300,
  lifeguard: true,
  pushPullIntervalMs: 30_000,
  reapTimeoutMs: 600_000,
};

/** Running totals of one member, for metrics. */
export interface SwimTotals {
  /** Own probes answered in time, directly or through a helper's indirect probe. */
  probesAcked: number;
  /** Own probes unanswered within the probe interval (the target becomes suspect). */
  probesFailed: number;
  /** Times this member outbid a suspicion (or death notice) of itself: a false positive elsewhere. */
  refutations: number;
}

/** A state change observed by this member, about another member. */
export interface SwimEvent {
  /** `up`: first seen; `alive-again`: a suspected or dead member proved alive. */
  readonly type: 'up' | 'suspect' | 'dead' | 'left' | 'alive-again';
  readonly id: string;
  readonly address: string;
  readonly incarnation: number;
  readonly atMs: number;
}

/** A datagram for the caller to send to `to` (an address). */
export interface Outgoing {
  readonly to: string;
  readonly message: Message;
}

export interface SwimInit {
  self: MemberInfo;
  /**
   * The incarnation to start at (default 0). A restarted member that starts
   * above its previous life's (the driver uses wall-clock seconds) is alive
   * again at once, without waiting to refute its own death notice.
   */
  incarnation?: number;
  random: { below(n: number): number };
  options?: Partial<SwimOptions>;
}

interface Member extends MemberInfo {
  meta: MemberInfo['meta'];
  incarnation: number;
  state: MemberState;
  /** When it became dead or left (for reaping); meaningless while alive or suspect. */
  downSinceMs: number;
}

interface Suspicion {
  readonly startMs: number;
  readonly minMs: number;
  readonly maxMs: number;
  /** Confirmations that reach the minimum; 0 means the minimum applies at once. */
  readonly expected: number;
  /** Members other than the first accuser that also suspect it. */
  readonly confirmedBy: Set<string>;
  readonly accuser: string;
}

interface Probe {
  readonly target: string;
  readonly sequence: number;
  readonly startMs: number;
  readonly indirectAtMs: number;
  readonly endMs: number;
  indirectSent: boolean;
  nacksExpected: number;
  nacksReceived: number;
}

/** A ping we send on behalf of another member's ping-req. */
interface Relay {
  readonly originAddress: string;
  readonly originSequence: number;
  readonly nackAtMs: number;
  readonly expiresAtMs: number;
  nackSent: boolean;
}

/** A member that became dead or left at `atMs`, due for reaping later. */
interface ReapCandidate {
  readonly id: string;
  readonly atMs: number;
}

/** Limits on the work any one input can cause. */
const relaysMax = 1024;
const eventsMax = 65536;
const outboxMax = 65536;
const roundTripsMax = 1024;
/** Random draws `pickRandom` tries before falling back to a full shuffle. */
const samplingAttemptsPerPick = 8;

export class Swim {
  readonly options: Readonly<SwimOptions>;
  private readonly self: MemberInfo;
  private readonly random: { below(n: number): number };
  private readonly members = new Map<string, Member>();
  private readonly suspicions = new Map<string, Suspicion>();
  private readonly broadcasts = new BroadcastQueue();
  /**
   * The other members that are alive or suspect, in no useful order, and
   * each one's position there: random picks and the live count in O(1)
   * instead of a scan of every member per datagram.
   */
  private readonly liveOthers: string[] = [];
  private readonly liveOthersIndex = new Map<string, number>();
  /** Dead and left members in the order they became so (times never decrease); stale entries are skipped. */
  private reapQueue: ReapCandidate[] = [];
  private reapHead = 0;
  private readonly relays = new Map<number, Relay>();
  private outbox: Outgoing[] = [];
  private events: SwimEvent[] = [];
  private probeOrder: string[] = [];
  private probeIndex = 0;
  private probe: Probe | undefined;
  private nextProbeMs: number | undefined;
  private nextGossipMs: number | undefined;
  private nextPushPullMs: number | undefined;
  /** Round-trip times of our own acknowledged direct probes, drained by the caller. */
  private probeRoundTripsMs: number[] = [];
  /** Running totals since this member started, for metrics (read, never reset). */
  private readonly totals: SwimTotals = { probesAcked: 0, probesFailed: 0, refutations: 0 };
  private sequence = 0;
  private incarnation = 0;
  private awarenessScore = 0;
  private leaving = false;
  private joined = false;
  /** Set while handling one message that suspected or buried us. */
  private accused = false;

  constructor(init: SwimInit) {
    this.options = { ...defaultSwimOptions, ...init.options };
    const o = this.options;
    assert(o.probeIntervalMs > 0 && o.probeTimeoutMs > 0 && o.probeTimeoutMs <= o.probeIntervalMs, 'swim: probe timeout must be in (0, probe interval]');
    assert(o.awarenessMax >= 1 && o.suspicionMaxMultiplier >= 1 && o.indirectChecks >= 0, 'swim: bad multipliers');
    assert(o.packetBytesMax >= 256, 'swim: packetBytesMax below 256 bytes leaves no room for gossip');
    assert(o.pushPullIntervalMs >= 0, 'swim: pushPullIntervalMs must not be negative');
    assert(o.reapTimeoutMs > 0, 'swim: reapTimeoutMs must be positive');
    const incarnation = init.incarnation ?? 0;
    assert(Number.isInteger(incarnation) && incarnation >= 0 && incarnation < 2 ** 32, 'swim: the incarnation must be a 32-bit unsigned integer');
    this.self = init.self;
    this.random = init.random;
    this.incarnation = incarnation;
    this.members.set(this.self.id, { ...this.self, incarnation, state: 'alive', downSinceMs: 0 });
  }

  // ---------------------------------------------------------------- inputs

  /** Contacts seed addresses with a full-state exchange and starts probing. */
  join(seeds: readonly string[]): void {
    this.joined = true;
    let members: MemberSnapshot[] | undefined; // one snapshot shared by every seed (never mutated after)
    for (const seed of seeds) {
      if (seed === this.self.address) continue;
      members ??= this.snapshot();
      this.send(seed, { type: 'sync', from: this.self.id, reply: true, members, piggyback: [] });
    }
  }

  /**
   * Announces a graceful departure and stops probing. The caller keeps
   * delivering inputs and draining the outbox for a few probe intervals so
   * the news spreads, then shuts the member down.
   */
  leave(): void {
    if (this.leaving) return;
    this.leaving = true;
    this.probe = undefined;
    const update: Update = { type: 'dead', id: this.self.id, incarnation: this.incarnation, from: this.self.id };
    this.selfMember().state = 'left';
    this.enqueue(update);
    for (const id of this.pickRandom(Math.max(1, this.options.indirectChecks), new Set([this.self.id]))) {
      this.send(this.member(id).address, { type: 'gossip', from: this.self.id, piggyback: [] });
    }
  }

  /** Advances time: probe deadlines, relay nacks, suspicion timeouts. */
  tick(nowMs: number): void {
    this.expireSuspicions(nowMs);
    this.expireRelays(nowMs);
    this.reap(nowMs);
    if (this.leaving || !this.joined) return;
    this.nextProbeMs ??= nowMs;
    this.nextGossipMs ??= nowMs;
    if (this.options.pushPullIntervalMs > 0) {
      // The first exchange comes after a random part of the interval, so members that start together spread out.
      this.nextPushPullMs ??= nowMs + this.random.below(this.options.pushPullIntervalMs) + 1;
      if (nowMs >= this.nextPushPullMs) this.pushPull(nowMs);
    }
    if (nowMs >= this.nextGossipMs) this.gossip(nowMs);
    const probe = this.probe;
    if (probe !== undefined && !probe.indirectSent && nowMs >= probe.indirectAtMs) this.sendIndirectProbes(probe);
    if (probe !== undefined && nowMs >= probe.endMs) this.failProbe(probe, nowMs);
    if (this.nextProbeMs !== undefined && nowMs >= this.nextProbeMs) this.startProbe(nowMs);
  }

  /** Handles one datagram from `fromAddress`. */
  receive(fromAddress: string, message: Message, nowMs: number): void {
    this.accused = false;
    for (const update of message.piggyback) this.applyUpdate(update, nowMs);
    if (this.accused) {
      // Answer the accuser directly: gossip alone may miss it for a whole suspicion timeout.
      const self = this.selfMember();
      const alive: Update = { type: 'alive', id: self.id, address: self.address, meta: self.meta, incarnation: this.incarnation };
      this.send(fromAddress, { type: 'gossip', from: this.self.id, piggyback: [alive] });
    }
    switch (message.type) {
      case 'ping':
        if (message.target !== undefined && message.target !== this.self.id) return;
        this.send(fromAddress, { type: 'ack', sequence: message.sequence, from: this.self.id, piggyback: [] });
        return;
      case 'ping-req':
        this.handlePingRequest(fromAddress, message, nowMs);
        return;
      case 'ack':
        this.handleAck(message.sequence, nowMs);
        return;
      case 'nack':
        if (this.probe !== undefined && this.probe.sequence === message.sequence) this.probe.nacksReceived += 1;
        return;
      case 'gossip':
        return;
      case 'sync':
        for (const snapshot of message.members) this.mergeSnapshot(snapshot, message.from, nowMs);
        if (message.reply) this.send(fromAddress, { type: 'sync', from: this.self.id, reply: false, members: this.snapshot(), piggyback: [] });
        return;
    }
  }

  // ---------------------------------------------------------------- outputs

  /** The datagrams produced since the last call, in the order to send them. */
  drainOutbox(): Outgoing[] {
    const out = this.outbox;
    this.outbox = [];
    return out;
  }

  /** The state changes observed since the last call, oldest first. */
  drainEvents(): SwimEvent[] {
    const out = this.events;
    this.events = [];
    return out;
  }

  /** The earliest time at which `tick` has work; undefined when idle. */
  nextDeadlineMs(): number | undefined {
    let earliest: number | undefined;
    const consider = (ms: number | undefined): void => {
      if (ms !== undefined && (earliest === undefined || ms < earliest)) earliest = ms;
    };
    if (!this.leaving && this.joined) {
      consider(this.nextProbeMs ?? 0);
      if (this.broadcasts.size > 0) consider(this.nextGossipMs ?? 0);
      if (this.probe !== undefined) consider(this.probe.indirectSent ? this.probe.endMs : this.probe.indirectAtMs);
      consider(this.nextPushPullMs);
    }
    for (const [id, suspicion] of this.suspicions) consider(suspicion.startMs + this.suspicionTimeoutMs(id)!);
    for (const relay of this.relays.values()) consider(relay.nackSent ? relay.expiresAtMs : relay.nackAtMs);
    const reapable = this.reapQueue[this.reapHead];
    if (reapable !== undefined) consider(reapable.atMs + this.options.reapTimeoutMs);
    return earliest;
  }

  /**
   * Whether this member is alone in its view with nothing pending: joined, not
   * leaving, no other member known (not even a dead one still to reap), no
   * probe, suspicion or relay under way. Then every deadline `nextDeadlineMs`
   * gives is a probe, gossip or push-pull with no one to send to, and a ticking
   * caller may wait for the next input instead (the only node of a cluster
   * does not wake for gossip). After that input, `nextDeadlineMs` says what is
   * due: an overdue probe at once.
   */
  get idleAlone(): boolean {
    return this.joined && !this.leaving && this.members.size === 1 && this.probe === undefined && this.suspicions.size === 0 && this.relays.size === 0;
  }

  /**
   * Changes this member's metadata: a new incarnation carries it to the
   * others (the only way a member's `alive` can change).
   */
  updateMeta(meta: MemberInfo['meta']): void {
    if (this.leaving) return;
    const self = this.selfMember();
    self.meta = meta;
    this.incarnation += 1;
    self.incarnation = this.incarnation;
    this.enqueue({ type: 'alive', id: self.id, address: self.address, meta, incarnation: this.incarnation });
  }

  /** Running totals since this member started (probes by outcome, refutations of suspicions of itself). */
  get counts(): Readonly<SwimTotals> {
    return this.totals;
  }

  /** Round-trip times (ms) of acknowledged direct probes since the last call. */
  drainProbeRoundTrips(): number[] {
    const out = this.probeRoundTripsMs;
    this.probeRoundTripsMs = [];
    return out;
  }

  /** This member's current incarnation. */
  get selfIncarnation(): number {
    return this.incarnation;
  }

  /** Local health multiplier: 1 when healthy, up to `awarenessMax`. */
  get healthMultiplier(): number {
    return this.options.lifeguard ? this.awarenessScore + 1 : 1;
  }

  /** A copy of every known member, self included. */
  snapshot(): MemberSnapshot[] {
    return [...this.members.values()].map((m) => ({ id: m.id, address: m.address, meta: m.meta, incarnation: m.incarnation, state: m.state }));
  }

  /** What this member holds of member `id` (itself included); undefined when it does not know it (or reaped it). */
  stateOf(id: string): MemberState | undefined {
    return this.members.get(id)?.state;
  }

  /** A copy of what this member holds of member `id`; undefined when it does not know it (or reaped it). */
  lookup(id: string): MemberSnapshot | undefined {
    const m = this.members.get(id);
    return m && { id: m.id, address: m.address, meta: m.meta, incarnation: m.incarnation, state: m.state };
  }

  /** How many members this member knows, itself and the dead and left not yet reaped included. */
  get memberCount(): number {
    return this.members.size;
  }

  /** The current suspicion timeout of a suspected member, or undefined. */
  suspicionTimeoutMs(id: string): number | undefined {
    const suspicion = this.suspicions.get(id);
    if (suspicion === undefined) return undefined;
    if (!this.options.lifeguard || suspicion.expected < 1) return suspicion.minMs;
    const confirmations = Math.min(suspicion.confirmedBy.size, suspicion.expected);
    const fraction = Math.log(confirmations + 1) / Math.log(suspicion.expected + 1);
    const timeoutMs = suspicion.maxMs - fraction * (suspicion.maxMs - suspicion.minMs);
    return Math.max(suspicion.minMs, Math.floor(timeoutMs));
  }

  /** Pending gossip and how often each has been sent (for tests and metrics). */
  pendingBroadcasts(): { update: Update; transmits: number }[] {
    return this.broadcasts.pending();
  }

  /** How many times each update is piggybacked at the current cluster size. */
  retransmitLimit(): number {
    return this.options.retransmitMultiplier * Math.ceil(Math.log10(this.liveCount() + 1));
  }

  // ---------------------------------------------------------------- probing

  private startProbe(nowMs: number): void {
    const multiplier = this.healthMultiplier;
    this.nextProbeMs = nowMs + this.options.probeIntervalMs * multiplier;
    if (this.probe !== undefined) return; // still running under a stretched interval
    const target = this.nextProbeTarget();
    if (target === undefined) return;
    const sequence = this.nextSequence();
    this.probe = {
      target: target.id,
      sequence,
      startMs: nowMs,
      indirectAtMs: nowMs + this.options.probeTimeoutMs * multiplier,
      endMs: nowMs + this.options.probeIntervalMs * multiplier,
      indirectSent: false,
      nacksExpected: 0,
      nacksReceived: 0,
    };
    // Lifeguard's buddy system: a suspect learns of its suspicion from the prober itself.
    const buddy = this.options.lifeguard && target.state === 'suspect'
      ? [{ type: 'suspect', id: target.id, incarnation: target.incarnation, from: this.self.id } as const]
      : [];
    this.send(target.address, { type: 'ping', sequence, from: this.self.id, target: target.id, piggyback: buddy });
  }

  /** Shuffled round-robin over alive and suspect members; reshuffles after each pass. */
  private nextProbeTarget(): Member | undefined {
    for (let attempts = 0; attempts < 2; attempts++) {
      while (this.probeIndex < this.probeOrder.length) {
        const member = this.members.get(this.probeOrder[this.probeIndex++]!);
        if (member !== undefined && member.id !== this.self.id && (member.state === 'alive' || member.state === 'suspect')) return member;
      }
      this.probeOrder = [...this.liveOthers];
      this.shuffle(this.probeOrder);
      this.probeIndex = 0;
    }
    return undefined;
  }

  /**
   * A new member takes a random place among those not yet probed this pass
   * (the one there moves to the end), so it is probed within the pass; a
   * swap rather than a splice keeps this O(1) while 1,000 members join.
   */
  private insertIntoProbeOrder(id: string): void {
    const order = this.probeOrder;
    order.push(id);
    const position = this.probeIndex + this.random.below(order.length - this.probeIndex);
    order[order.length - 1] = order[position]!;
    order[position] = id;
  }

  private sendIndirectProbes(probe: Probe): void {
    probe.indirectSent = true;
    const target = this.member(probe.target);
    const helpers = this.pickRandom(this.options.indirectChecks, new Set([this.self.id, probe.target]), true);
    for (const id of helpers) {
      this.send(this.member(id).address, { type: 'ping-req', sequence: probe.sequence, from: this.self.id, target: target.id, targetAddress: target.address, piggyback: [] });
    }
    probe.nacksExpected = this.options.lifeguard ? helpers.length : 0;
  }

  private handleAck(sequence: number, nowMs: number): void {
    if (this.probe !== undefined && this.probe.sequence === sequence) {
      if (this.probeRoundTripsMs.length < roundTripsMax) this.probeRoundTripsMs.push(nowMs - this.probe.startMs);
      this.totals.probesAcked += 1;
      this.probe = undefined;
      this.adjustAwareness(-1);
      return;
    }
    const relay = this.relays.get(sequence);
    if (relay === undefined) return;
    this.relays.delete(sequence);
    this.send(relay.originAddress, { type: 'ack', sequence: relay.originSequence, from: this.self.id, piggyback: [] });
  }

  /** No ack within the probe interval: suspect the target, and judge our own health by the nacks. */
  private failProbe(probe: Probe, nowMs: number): void {
    this.probe = undefined;
    this.totals.probesFailed += 1;
    if (!probe.indirectSent) this.sendIndirectProbes(probe);
    const missedNacks = probe.nacksExpected - probe.nacksReceived;
    this.adjustAwareness(probe.nacksExpected > 0 ? Math.max(0, missedNacks) : 1);
    const target = this.members.get(probe.target);
    if (target === undefined || (target.state !== 'alive' && target.state !== 'suspect')) return;
    this.applyUpdate({ type: 'suspect', id: target.id, incarnation: target.incarnation, from: this.self.id }, nowMs);
  }

  private handlePingRequest(fromAddress: string, message: Extract<Message, { type: 'ping-req' }>, nowMs: number): void {
    if (this.relays.size >= relaysMax) return; // overloaded: the requester's missing nack lowers its trust in us, as it should
    const sequence = this.nextSequence();
    const timeoutMs = this.options.probeTimeoutMs;
    this.relays.set(sequence, {
      originAddress: fromAddress,
      originSequence: message.sequence,
      nackAtMs: nowMs + Math.floor(timeoutMs * 0.8),
      expiresAtMs: nowMs + this.options.probeIntervalMs * this.options.awarenessMax,
      nackSent: !this.options.lifeguard,
    });
    this.send(message.targetAddress, { type: 'ping', sequence, from: this.self.id, target: message.target, piggyback: [] });
  }

  private expireRelays(nowMs: number): void {
    for (const [sequence, relay] of this.relays) {
      if (!relay.nackSent && nowMs >= relay.nackAtMs) {
        relay.nackSent = true;
        this.send(relay.originAddress, { type: 'nack', sequence: relay.originSequence, from: this.self.id, piggyback: [] });
      }
      if (nowMs >= relay.expiresAtMs) this.relays.delete(sequence);
    }
  }

  /** Starts a full-state exchange with one random live member (it answers with its own). */
  private pushPull(nowMs: number): void {
    this.nextPushPullMs = nowMs + this.options.pushPullIntervalMs;
    const [id] = this.pickRandom(1, new Set([this.self.id]), true);
    if (id === undefined) return;
    this.send(this.member(id).address, { type: 'sync', from: this.self.id, reply: true, members: this.snapshot(), piggyback: [] });
  }

  /**
   * Pushes pending gossip to a few random members, so news does not wait for
   * probe traffic (which local health may have slowed down).
   */
  private gossip(nowMs: number): void {
    this.nextGossipMs = nowMs + this.options.gossipIntervalMs;
    if (this.broadcasts.size === 0) return;
    for (const id of this.pickRandom(this.options.gossipNodes, new Set([this.self.id]))) {
      if (this.broadcasts.size === 0) return;
      this.send(this.member(id).address, { type: 'gossip', from: this.self.id, piggyback: [] });
    }
  }

  private adjustAwareness(delta: number): void {
    if (!this.options.lifeguard) return;
    this.awarenessScore = Math.min(this.options.awarenessMax - 1, Math.max(0, this.awarenessScore + delta));
  }

  // ---------------------------------------------------------------- state changes

  /** Applies one gossiped update; returns whether it changed anything. */
  private applyUpdate(update: Update, nowMs: number): boolean {
    switch (update.type) {
      case 'alive':
        return this.applyAlive(update, nowMs);
      case 'suspect':
        return this.applySuspect(update, nowMs);
      case 'dead':
        return this.applyDead(update, nowMs);
    }
  }

  private applyAlive(update: Extract<Update, { type: 'alive' }>, nowMs: number): boolean {
    if (update.id === this.self.id) {
      if (update.incarnation > this.incarnation && !this.leaving) this.refute(update.incarnation);
      return false;
    }
    const known = this.members.get(update.id);
    if (known === undefined) {
      const member: Member = { id: update.id, address: update.address, meta: update.meta, incarnation: update.incarnation, state: 'alive', downSinceMs: 0 };
      this.members.set(member.id, member);
      this.addLive(member.id);
      this.insertIntoProbeOrder(member.id);
      this.enqueue(update);
      this.emit('up', member, nowMs);
      return true;
    }
    if (update.incarnation <= known.incarnation) return false;
    const wasState = known.state;
    Object.assign(known, { address: update.address, meta: update.meta, incarnation: update.incarnation, state: 'alive' as const });
    if (wasState === 'dead' || wasState === 'left') this.addLive(known.id);
    this.suspicions.delete(known.id);
    this.enqueue(update);
    if (wasState !== 'alive') this.emit('alive-again', known, nowMs);
    return true;
  }

  private applySuspect(update: Extract<Update, { type: 'suspect' }>, nowMs: number): boolean {
    if (update.id === this.self.id) {
      if (this.leaving) return false;
      if (update.incarnation >= this.incarnation) {
        this.refute(update.incarnation);
        this.adjustAwareness(1); // being suspected hints that we are the slow one
      } else {
        this.reassertAlive(); // a stale accusation: someone missed our refutation
      }
      return false;
    }
    const known = this.members.get(update.id);
    if (known === undefined || update.incarnation < known.incarnation) return false;
    if (known.state === 'dead' || known.state === 'left') return false;
    if (known.state === 'suspect') {
      const suspicion = this.suspicions.get(known.id);
      if (suspicion === undefined || update.incarnation !== known.incarnation) return false;
      if (!this.options.lifeguard || update.from === suspicion.accuser || suspicion.confirmedBy.has(update.from)) return false;
      if (suspicion.confirmedBy.size >= suspicion.expected) return false;
      suspicion.confirmedBy.add(update.from);
      this.enqueue(update); // pass the confirmation on so others shrink their timeouts too
      return true;
    }
    known.incarnation = update.incarnation;
    known.state = 'suspect';
    this.startSuspicion(known.id, update.from, nowMs);
    this.enqueue(update);
    this.emit('suspect', known, nowMs);
    if (this.options.lifeguard) {
      // Tell the suspect directly so it can refute at once.
      this.send(known.address, { type: 'gossip', from: this.self.id, piggyback: [update] });
    }
    return true;
  }

  private startSuspicion(id: string, accuser: string, nowMs: number): void {
    const n = this.liveCount();
    const minMs = Math.floor(this.options.suspicionMultiplier * Math.max(1, Math.log10(Math.max(1, n))) * this.options.probeIntervalMs);
    const lifeguard = this.options.lifeguard;
    this.suspicions.set(id, {
      startMs: nowMs,
      minMs,
      maxMs: lifeguard ? minMs * this.options.suspicionMaxMultiplier : minMs,
      // Fewer members than accuser + self + k cannot give k independent confirmations.
      expected: lifeguard ? Math.max(0, Math.min(this.options.suspicionConfirmationsExpected, n - 2)) : 0,
      confirmedBy: new Set(),
      accuser,
    });
  }

  private applyDead(update: Extract<Update, { type: 'dead' }>, nowMs: number): boolean {
    if (update.id === this.self.id) {
      if (this.leaving) return false;
      if (update.incarnation >= this.incarnation) this.refute(update.incarnation);
      else this.reassertAlive();
      return false;
    }
    const known = this.members.get(update.id);
    if (known === undefined || update.incarnation < known.incarnation) return false;
    if (known.state === 'dead' || known.state === 'left') return false;
    known.incarnation = update.incarnation;
    known.state = update.from === update.id ? 'left' : 'dead';
    known.downSinceMs = nowMs;
    this.removeLive(known.id);
    this.reapQueue.push({ id: known.id, atMs: nowMs });
    this.suspicions.delete(known.id);
    this.enqueue(update);
    this.emit(known.state === 'left' ? 'left' : 'dead', known, nowMs);
    return true;
  }

  private expireSuspicions(nowMs: number): void {
    for (const [id, suspicion] of [...this.suspicions]) {
      if (nowMs < suspicion.startMs + this.suspicionTimeoutMs(id)!) continue;
      const member = this.member(id);
      this.applyDead({ type: 'dead', id, incarnation: member.incarnation, from: this.self.id }, nowMs);
    }
  }

  /** Someone doubts us: outbid their incarnation and tell everyone we are alive. */
  private refute(incarnation: number): void {
    this.accused = true;
    this.totals.refutations += 1;
    this.incarnation = incarnation + 1;
    const self = this.selfMember();
    self.incarnation = this.incarnation;
    this.enqueue({ type: 'alive', id: self.id, address: self.address, meta: self.meta, incarnation: this.incarnation });
  }

  /** Re-queues our current alive, unless it is still being gossiped. */
  private reassertAlive(): void {
    this.accused = true;
    const pending = this.broadcasts.get(this.self.id);
    if (pending !== undefined && pending.type === 'alive' && pending.incarnation === this.incarnation) return;
    const self = this.selfMember();
    this.enqueue({ type: 'alive', id: self.id, address: self.address, meta: self.meta, incarnation: this.incarnation });
  }

  private mergeSnapshot(snapshot: MemberSnapshot, sender: string, nowMs: number): void {
    const { id, address, meta, incarnation } = snapshot;
    if (!this.members.has(id) && snapshot.state !== 'alive' && id !== this.self.id) return; // no news worth adding
    if (snapshot.state === 'left') {
      this.applyDead({ type: 'dead', id, incarnation, from: id }, nowMs);
      return;
    }
    this.applyAlive({ type: 'alive', id, address, meta, incarnation }, nowMs);
    // A remote "dead" is only a suspicion here: we give the member the chance to refute (as memberlist does).
    if (snapshot.state !== 'alive') this.applySuspect({ type: 'suspect', id, incarnation, from: sender }, nowMs);
  }

  // ---------------------------------------------------------------- dissemination

  /** Queues gossip about a member; a newer update about the same member replaces the older. */
  private enqueue(update: Update): void {
    this.broadcasts.enqueue(update);
  }

  private send(to: string, message: Message): void {
    assert(this.outbox.length < outboxMax, 'swim: outbox overflow; the caller must drain it after every input');
    let piggyback = message.piggyback;
    if (message.type !== 'sync') {
      const used = estimateBytes(message);
      assert(used <= this.options.packetBytesMax, `swim: a bare ${message.type} message exceeds packetBytesMax`);
      if (this.broadcasts.size > 0) piggyback = [...piggyback, ...this.broadcasts.take(this.options.packetBytesMax - used, this.retransmitLimit(), piggyback)];
    }
    this.outbox.push({ to, message: { ...message, piggyback } as Message });
  }

  // ---------------------------------------------------------------- helpers

  private emit(type: SwimEvent['type'], member: Member, nowMs: number): void {
    assert(this.events.length < eventsMax, 'swim: event list overflow; the caller must drain it');
    this.events.push({ type, id: member.id, address: member.address, incarnation: member.incarnation, atMs: nowMs });
  }

  private member(id: string): Member {
    const member = this.members.get(id);
    assert(member !== undefined, `swim: unknown member ${id}`);
    return member;
  }

  private selfMember(): Member {
    return this.member(this.self.id);
  }

  /** Members not known to be dead or gone, self included. */
  private liveCount(): number {
    return this.liveOthers.length + (this.selfMember().state === 'left' ? 0 : 1);
  }

  private addLive(id: string): void {
    if (this.liveOthersIndex.has(id)) return;
    this.liveOthersIndex.set(id, this.liveOthers.length);
    this.liveOthers.push(id);
  }

  private removeLive(id: string): void {
    const position = this.liveOthersIndex.get(id);
    if (position === undefined) return;
    const last = this.liveOthers.pop()!;
    this.liveOthersIndex.delete(id);
    if (last !== id) {
      this.liveOthers[position] = last;
      this.liveOthersIndex.set(last, position);
    }
  }

  /**
   * Forgets the members that have been dead or left for `reapTimeoutMs`: the
   * view, pending gossip about them and the probe list. One that was revived
   * (or died again later) since its queue entry is skipped: a newer entry
   * covers it.
   */
  private reap(nowMs: number): void {
    const timeoutMs = this.options.reapTimeoutMs;
    while (this.reapHead < this.reapQueue.length) {
      const candidate = this.reapQueue[this.reapHead]!;
      if (nowMs < candidate.atMs + timeoutMs) break;
      this.reapHead += 1;
      const member = this.members.get(candidate.id);
      if (member === undefined || member.id === this.self.id) continue;
      if ((member.state !== 'dead' && member.state !== 'left') || member.downSinceMs !== candidate.atMs) continue;
      assert(!this.liveOthersIndex.has(member.id) && !this.suspicions.has(member.id), 'swim: a reaped member is neither live nor suspected');
      this.members.delete(member.id);
      this.broadcasts.delete(member.id);
    }
    if (this.reapHead > 1024 && this.reapHead * 2 > this.reapQueue.length) {
      this.reapQueue = this.reapQueue.slice(this.reapHead);
      this.reapHead = 0;
    }
  }

  /** Up to `count` distinct random members, excluding `exclude`; `aliveOnly` skips suspects. */
  private pickRandom(count: number, exclude: Set<string>, aliveOnly = false): string[] {
    const eligible = (id: string): boolean => !exclude.has(id) && (!aliveOnly || this.members.get(id)!.state === 'alive');
    const pool = this.liveOthers;
    if (count <= 0) return [];
    if (pool.length > 4 * count + 8) {
      // Large view: draw at random instead of shuffling every member for a handful.
      const chosen: string[] = [];
      for (let attempts = samplingAttemptsPerPick * count; attempts > 0 && chosen.length < count; attempts--) {
        const id = pool[this.random.below(pool.length)]!;
        if (eligible(id) && !chosen.includes(id)) chosen.push(id);
      }
      if (chosen.length === count) return chosen;
    }
    const candidates = pool.filter(eligible);
    this.shuffle(candidates);
    return candidates.slice(0, count);
  }

  private shuffle(items: string[]): void {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.random.below(i + 1);
      const tmp = items[i]!;
      items[i] = items[j]!;
      items[j] = tmp;
    }
  }

  private nextSequence(): number {
    this.sequence = (this.sequence + 1) >>> 0;
    return this.sequence;
  }
}
