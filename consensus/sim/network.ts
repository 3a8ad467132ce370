/**
 * The simulated network: a `Transport` per node life over one seeded
 * network that drops, duplicates, delays (and so reorders) messages and
 * honours the partitions the world sets. It keeps the transport contract:
 * every Snapshot message gets exactly one status report, and a message that
 * cannot get through may be reported unreachable.
 */
import { MessageType, type Message, type NodeId } from '../core/types.js';
import type { SeededRandom } from '../core/random.js';
import type { Transport, TransportHandlers } from '../transport.js';
import type { VirtualClock } from './virtual-clock.js';

/** How the network misbehaves; the world changes these as it runs (the heal sets them to 0). */
export interface NetworkFaults {
  dropRate: number;
  duplicateRate: number;
  /** A message takes 1 to this many milliseconds. */
  delayMsMax: number;
}

/** Chance that a message cut off by a partition makes the sender's transport report the peer unreachable. */
const UNREACHABLE_REPORT_CHANCE = 0.3;

/** One node life's end of the network. */
interface Endpoint {
  handlers: TransportHandlers;
  alive: () => boolean;
}

/** The network of one simulated world. Addresses play no part: messages go to node ids. */
export class SimNetwork {
  private readonly endpoints = new Map<NodeId, Endpoint>();
  /** Directed links cut by the current partition, as `from>to`. */
  private readonly blocked = new Set<string>();

  /** `onSend` sees every message as it leaves its sender (the world's checks and counts). */
  constructor(
    private readonly clock: VirtualClock,
    private readonly random: SeededRandom,
    readonly faults: NetworkFaults,
    private readonly onSend: (message: Message) => void,
  ) {}

  /** The transport of one life of node `id`; it falls silent once `alive()` is false. */
  transport(id: NodeId, alive: () => boolean): Transport {
    let endpoint: Endpoint | undefined;
    return {
      start: async (handlers) => {
        endpoint = { handlers, alive };
        this.endpoints.set(id, endpoint);
      },
      // The world routes by node id: the addresses the driver is given play no part here.
      setPeers: () => {},
      send: (messages) => {
        if (endpoint === undefined || !alive()) return;
        for (const message of messages) this.send(message, endpoint);
      },
      stop: async () => {
        if (this.endpoints.get(id) === endpoint) this.endpoints.delete(id);
      },
    };
  }

  /** Cuts the link from `from` to `to` (one way). */
  block(from: NodeId, to: NodeId): void {
    this.blocked.add(`${from}>${to}`);
  }

  /** Heals every cut link. */
  unblockAll(): void {
    this.blocked.clear();
  }

  private send(message: Message, sender: Endpoint): void {
    this.onSend(message);
    const isSnapshot = message.type === MessageType.Snapshot;
    const cut = this.blocked.has(`${message.from}>${message.to}`);
    if (cut || this.random.chance(this.faults.dropRate)) {
      if (isSnapshot) this.clock.schedule(5, () => this.report(sender, message.to, false));
      else if (cut && this.random.chance(UNREACHABLE_REPORT_CHANCE)) {
        this.clock.schedule(5, () => {
          if (sender.alive()) sender.handlers.onUnreachable(message.to);
        });
      }
      return;
    }
    const delayMs = 1 + this.random.below(this.faults.delayMsMax);
    this.clock.schedule(delayMs, () => this.deliver(message, sender));
    if (!isSnapshot && this.random.chance(this.faults.duplicateRate)) {
      this.clock.schedule(delayMs + this.random.below(20), () => this.deliver(message, undefined));
    }
  }

  /** `sender` is given for the copy whose delivery the sender hears of (Snapshot messages). */
  private deliver(message: Message, sender: Endpoint | undefined): void {
    const receiver = this.endpoints.get(message.to);
    const delivered = receiver !== undefined && receiver.alive();
    if (delivered) receiver.handlers.onMessage(message);
    if (message.type === MessageType.Snapshot && sender !== undefined) {
      this.clock.schedule(1, () => this.report(sender, message.to, delivered));
    }
  }

  private report(sender: Endpoint, to: NodeId, ok: boolean): void {
    if (sender.alive()) sender.handlers.onSnapshotStatus(to, ok);
  }
}
