/**
 * SWIM's real core (`src/membership/swim.ts`) for one simulated node life,
 * over the world's simulated datagrams, on the node's clock: the gossip
 * view the leader's voter manager reads (`GossipView.statuses`).
 *
 * This driver re-implements, in little, `membership/runtime.ts` (tick at the
 * core's next deadline, drain its outbox after every input) and the
 * component's re-contact of dead members (`recontact.ts`: here every member
 * gossip holds dead is contacted again every RECONTACT_INTERVAL_MS), because
 * those are bound to UDP and TCP sockets. Full-state exchanges (`sync`) go as
 * datagrams like the rest.
 */
import type { SeededRandom } from '../../consensus/core/random.js';
import type { Clock } from '../node/clock.js';
import type { GossipView } from '../membership/component.js';
import type { Message, MemberState } from '../membership/messages.js';
import type { GossipMemberView } from '../membership/runtime.js';
import { Swim } from '../membership/swim.js';

/** Dead members are contacted again this often, ms (the component's RECONTACT_INTERVAL_MS). */
const RECONTACT_INTERVAL_MS = 10_000;

/** How a node's gossip reaches the others: the world delivers (or drops) each datagram. */
export type DatagramSender = (fromAddress: string, toAddress: string, message: Message) => void;

/** See the file comment. */
export class SimGossip implements GossipView {
  readonly name = 'gossip' as const;
  readonly swim: Swim;
  #cancelTick: (() => void) | undefined;
  #tickAtMs: number | undefined;
  #stopped = false;

  constructor(
    private readonly options: {
      id: string;
      address: string;
      /** Above every earlier life's (the runtime uses wall-clock seconds): a restart is alive again at once. */
      incarnation: number;
      seeds: () => string[];
      random: SeededRandom;
      clock: Clock;
      send: DatagramSender;
    },
  ) {
    this.swim = new Swim({ self: { id: options.id, address: options.address, meta: {} }, incarnation: options.incarnation, random: options.random });
  }

  start(): void {
    this.swim.join(this.options.seeds());
    this.#flush();
    this.#recontactLater();
  }

  stop(): void {
    this.#stopped = true;
    this.#cancelTick?.();
  }

  /** A datagram arrived for this node. */
  receive(fromAddress: string, message: Message): void {
    if (this.#stopped) return;
    this.swim.receive(fromAddress, message, this.options.clock.monotonicMs());
    this.#flush();
  }

  members(): GossipMemberView[] {
    return this.swim.snapshot().map((member) => ({ id: member.id, address: member.address, status: member.state, incarnation: member.incarnation, meta: member.meta }));
  }

  statuses(): Record<string, MemberState> {
    const out: Record<string, MemberState> = {};
    for (const member of this.swim.snapshot()) out[member.id] = member.state;
    return out;
  }

  #flush(): void {
    for (const outgoing of this.swim.drainOutbox()) this.options.send(this.options.address, outgoing.to, outgoing.message);
    this.swim.drainEvents();
    this.swim.drainProbeRoundTrips();
    this.#armTick();
  }

  #armTick(): void {
    if (this.#stopped) return;
    const deadline = this.swim.nextDeadlineMs();
    if (deadline === undefined || deadline === this.#tickAtMs) return;
    this.#cancelTick?.();
    this.#tickAtMs = deadline;
    this.#cancelTick = this.options.clock.setTimer(Math.max(0, deadline - this.options.clock.monotonicMs()), () => {
      this.#tickAtMs = undefined;
      this.#cancelTick = undefined;
      this.swim.tick(this.options.clock.monotonicMs());
      this.#flush();
    });
  }

  #recontactLater(): void {
    this.options.clock.setTimer(RECONTACT_INTERVAL_MS, () => {
      if (this.#stopped) return;
      const dead = this.swim.snapshot().filter((member) => member.state === 'dead').map((member) => member.address);
      if (dead.length > 0) {
        this.swim.join(dead);
        this.#flush();
      }
      this.#recontactLater();
    });
  }
}
