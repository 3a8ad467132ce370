/**
 * The `gossip` node component: runs this node's SWIM member (runtime.ts) on
 * the gossip port, joins through the gossip addresses in the node records
 * (and keeps contacting records it has no live view of), carries this node's
 * addresses, labels and resources as member metadata, announces a leave on
 * stop, and exposes the member view (to the API, and to the leader's
 * membership planner) and its metrics.
 */
import { randomInt } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { Counter, Gauge, Histogram } from '../node/prometheus.js';
import { SYSTEM_CLOCK } from '../node/clock.js';
import { PeriodicLoop } from '../node/periodic-loop.js';
import type { NodeComponent, NodeServices } from '../node/services.js';
import { DataDir } from '../node/data-dir.js';
import type { MemberMeta, MemberState } from './messages.js';
import { RecontactSchedule, type RecontactTarget } from './recontact.js';
import { GossipRuntime, type GossipMemberView, type GossipObserver } from './runtime.js';
import type { SwimOptions } from './swim.js';

/** How often the component hands out due re-contacts and checks its own metadata. */
export const REFRESH_INTERVAL_MS = 2000;
/**
 * How often it looks while no other node has a record (a cluster of one):
 * nothing can be due then, and the apply that registers another node or
 * changes this node's record (labels, addresses) pokes the refresh at once;
 * this slow look is only a safety sweep.
 */
export const REFRESH_QUIET_INTERVAL_MS = 30_000;
/**
 * A record gossip does not hold live (new, moved, dead, left, reaped) is
 * contacted again after this, then after twice as long for each contact
 * that brought no answer, up to RECONTACT_BACKOFF_MAX_MS; hearing from it or
 * a new address in its record starts over. Partitions heal within the first.
 */
export const RECONTACT_INTERVAL_MS = 10_000;
export const RECONTACT_BACKOFF_MAX_MS = 300_000;
/** Full-state exchanges started per refresh at most, below the runtime's STREAMS_MAX in flight. */
export const RECONTACTS_PER_REFRESH_MAX = 8;

/** What the API and the agent read of the gossip component. */
export interface GossipView {
  readonly name: 'gossip';
  /** Every member this node knows, itself included. */
  members(): GossipMemberView[];
  /** Member id → gossip status, for the membership planner (`MembershipView.gossip`). */
  statuses(): Record<string, MemberState>;
}

/** Whether a component is the gossip component (for `backend.component('gossip')`). */
export function isGossipView(component: unknown): component is GossipView {
  return typeof component === 'object' && component !== null && (component as { name?: unknown }).name === 'gossip' &&
    typeof (component as { members?: unknown }).members === 'function' && typeof (component as { statuses?: unknown }).statuses === 'function';
}

/** The metadata one node gossips about itself. */
export function nodeMeta(addresses: { api: string; peer: string }, labels: Record<string, string>, resources: object): MemberMeta {
  return { api: addresses.api, peer: addresses.peer, labels: JSON.stringify(labels), resources: JSON.stringify(resources) };
}

/** The registered factory. */
export function createGossipComponent(services: NodeServices): NodeComponent & GossipView {
  return new GossipComponent(services);
}

class GossipComponent implements NodeComponent, GossipView {
  readonly name = 'gossip' as const;
  private readonly runtime: GossipRuntime;
  private readonly refreshLoop = new PeriodicLoop({
    name: 'gossip-refresh',
    intervalMs: REFRESH_INTERVAL_MS,
    quiet: { intervalMs: REFRESH_QUIET_INTERVAL_MS, afterSteps: 1 },
    step: () => this.refresh(),
    clock: SYSTEM_CLOCK,
    onError: (error) => this.services.log('gossip', `refreshing from the node records failed: ${(error as Error).message}`),
  });
  private stopListening: (() => void) | undefined;
  private readonly recontacts = new RecontactSchedule({
    intervalMs: RECONTACT_INTERVAL_MS,
    backoffMaxMs: RECONTACT_BACKOFF_MAX_MS,
    contactsPerCallMax: RECONTACTS_PER_REFRESH_MAX,
    random: { below: (n) => (n <= 1 ? 0 : randomInt(Math.min(n, 2 ** 47))) },
  });
  /** The state's `nodesRevision` when the records were last read; -1 before the first read. */
  private seedsRevision = -1;
  private started = false;

  constructor(private readonly services: NodeServices, swimOptions?: Partial<SwimOptions>) {
    this.runtime = new GossipRuntime({
      bindHost: services.config.bind,
      port: services.config.ports.gossip,
      ...(swimOptions === undefined ? {} : { swimOptions }),
      observer: this.observer(),
      tls: services.peerTls,
    });
  }

  async bind(): Promise<{ gossip: number }> {
    return { gossip: await this.runtime.bind() };
  }

  async start(): Promise<void> {
    const key = new DataDir(this.services.dataDir).readClusterKey();
    if (key === undefined) {
      this.services.log('gossip', 'no cluster key in the data directory: gossip does not start');
      return;
    }
    const addresses = this.services.addresses();
    const nowMs = performance.now();
    this.rereadSeeds(nowMs);
    // The first seeds (a random few of them in a large cluster) are the join; the rest follow a few per refresh.
    const seeds = this.recontacts.due(nowMs, () => false);
    this.runtime.start({ id: this.services.nodeId, address: addresses.gossip, meta: this.ownMeta(), clusterKey: key, seeds });
    this.started = true;
    // A record that changed (a node registered, moved, left; this node's labels) is looked at at once, quiet or not.
    this.stopListening = this.services.listen(() => {
      if (this.services.machine.nodesRevision !== this.seedsRevision) this.refreshLoop.poke();
    });
    this.refreshLoop.start();
    this.services.log('gossip', `member on ${addresses.gossip} (UDP, and TCP for push-pull)`);
  }

  async stop(): Promise<void> {
    this.stopListening?.();
    this.refreshLoop.stop();
    await this.runtime.stop({ announceLeave: this.started }).catch((error: unknown) => this.services.log('gossip', `stopping: ${(error as Error).message}`));
  }

  members(): GossipMemberView[] {
    return this.runtime.members();
  }

  statuses(): Record<string, MemberState> {
    const out: Record<string, MemberState> = {};
    for (const member of this.runtime.members()) out[member.id] = member.status;
    return out;
  }

  private ownMeta(): MemberMeta {
    const record = this.services.machine.node(this.services.nodeId);
    return nodeMeta(this.services.addresses(), record?.labels ?? {}, record?.resources ?? {});
  }

  /** The gossip addresses of the other nodes whose records are not `left`. */
  private seeds(): RecontactTarget[] {
    return this.services.machine
      .nodeDirectory()
      .filter((record) => record.id !== this.services.nodeId && record.status !== 'left' && record.addresses.gossip !== '')
      .map((record) => ({ id: record.id, address: record.addresses.gossip }));
  }

  /** Reads the node records into the re-contact schedule if one changed since the last read (heartbeats do not count). */
  private rereadSeeds(nowMs: number): void {
    const revision = this.services.machine.nodesRevision;
    if (revision === this.seedsRevision) return;
    this.seedsRevision = revision;
    this.recontacts.setTargets(this.seeds(), nowMs);
  }

  /**
   * Follows the records: reads them again when one changed (the state's
   * `nodesRevision`), contacts the due records gossip has no
   * live view of (new records, moved addresses, members it holds dead: a
   * healed partition or a restart it missed) with a per-record backoff, and
   * republishes this node's metadata when its record changed. The cost of a
   * refresh follows what changed and what is due, not the number of records.
   * Returns false (the loop slows down) while no other node has a record
   * and this node's metadata is current: nothing can be due then.
   */
  private refresh(): boolean {
    try {
      const nowMs = performance.now();
      this.rereadSeeds(nowMs);
      const toContact = this.recontacts.due(nowMs, (id, address) => {
        const member = this.runtime.member(id);
        return member !== undefined && member.address === address && (member.status === 'alive' || member.status === 'suspect');
      });
      this.runtime.contact(toContact);
      const self = this.runtime.member(this.services.nodeId);
      const meta = this.ownMeta();
      const metaChanged = self !== undefined && !sameMeta(self.meta, meta);
      if (metaChanged) this.runtime.updateMeta(meta);
      return metaChanged || this.recontacts.size > 0;
    } catch (error) {
      this.services.log('gossip', `refreshing from the node records failed: ${(error as Error).message}`);
      return true;
    }
  }

  private observer(): GossipObserver {
    const registers = [this.services.registry];
    const packets = new Counter({ name: 'hivemind_gossip_packets_total', help: 'Gossip datagrams (udp) and push-pull frames (tcp) by direction', labelNames: ['direction', 'transport'], registers });
    const bytes = new Counter({ name: 'hivemind_gossip_bytes_total', help: 'Gossip bytes by direction and transport', labelNames: ['direction', 'transport'], registers });
    const dropped = new Counter({ name: 'hivemind_gossip_packets_dropped_total', help: 'Gossip packets dropped: failed authentication, did not parse, too large, ...', labelNames: ['reason'], registers });
    const roundTrips = new Histogram({
      name: 'hivemind_gossip_probe_rtt_seconds',
      help: 'Round-trip time of acknowledged direct probes',
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
      registers,
    });
    const events = new Counter({ name: 'hivemind_gossip_events_total', help: 'Membership changes this node observed, by type', labelNames: ['type'], registers });
    const runtime = (): GossipRuntime => this.runtime;
    new Gauge({
      name: 'hivemind_gossip_members',
      help: 'Members this node knows, by gossip status (itself included)',
      labelNames: ['status'],
      registers,
      collect() {
        const counts: Record<MemberState, number> = { alive: 0, suspect: 0, dead: 0, left: 0 };
        for (const member of runtime().members()) counts[member.status] += 1;
        for (const [status, count] of Object.entries(counts)) this.set({ status }, count);
      },
    });
    new Counter({
      name: 'hivemind_gossip_probes_total',
      help: 'This node\'s failure-detection probes, by outcome (acked: answered directly or through a helper; failed: unanswered, the target became suspect)',
      labelNames: ['outcome'],
      registers,
      collect() {
        const counts = runtime().counts;
        this.reset();
        this.inc({ outcome: 'acked' }, counts.probesAcked);
        this.inc({ outcome: 'failed' }, counts.probesFailed);
      },
    });
    new Counter({
      name: 'hivemind_gossip_refutations_total',
      help: 'Times this node refuted a suspicion of itself (another member suspected it while it was alive: a false positive)',
      registers,
      collect() {
        this.reset();
        this.inc(runtime().counts.refutations);
      },
    });
    new Gauge({
      name: 'hivemind_gossip_health_multiplier',
      help: 'Lifeguard local health: 1 when healthy; probe interval and timeout are stretched by it',
      registers,
      collect() {
        this.set(runtime().healthMultiplier);
      },
    });
    return {
      packet: (direction, transport, size) => {
        packets.inc({ direction, transport });
        bytes.inc({ direction, transport }, size);
      },
      dropped: (reason) => dropped.inc({ reason }),
      probeRoundTrip: (ms) => roundTrips.observe(ms / 1000),
      event: (event) => {
        events.inc({ type: event.type });
        if (event.type === 'up' || event.type === 'alive-again') this.recontacts.heard(event.id);
        if (event.type === 'dead' || event.type === 'left') this.recontacts.lost(event.id, performance.now());
        if (event.type !== 'up') this.services.log('gossip', `${event.id} is ${event.type} (incarnation ${event.incarnation})`);
      },
      log: (line) => this.services.log('gossip', line),
    };
  }
}

function sameMeta(left: MemberMeta, right: MemberMeta): boolean {
  const leftKeys = Object.keys(left);
  return leftKeys.length === Object.keys(right).length && leftKeys.every((key) => left[key] === right[key]);
}
