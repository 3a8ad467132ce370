/**
 * The queue of pending gossip for one member: at most one update per member
 * id (a newer one replaces the older), handed out least-sent first until each
 * has been sent `limit` times.
 *
 * One stack per transmission count: among updates sent equally often, the
 * one most recently queued or sent goes first (at 0 sends, exactly the newest
 * first, so fresh news overtakes a backlog). Taking a packet's worth costs
 * O(taken) array pushes and pops instead of a sort of every pending update
 * per datagram (a 1,000-member join queues 1,000 updates in every member).
 * Replaced or deleted updates stay in their stack as stale entries until
 * they surface or the stacks are rebuilt, so they never hold more than twice
 * the live entries plus a small constant.
 */
import { assert } from '../../consensus/core/assert.js';
import { estimateBytes, type Update } from './messages.js';

/** Updates looked at and set aside in one `take` because they did not fit, before giving up on the packet. */
export const BROADCAST_SKIPS_MAX = 16;

/** No update is smaller than this (every field at its shortest), so a packet with less room is full. */
const UPDATE_BYTES_MIN = Math.min(
  estimateBytes({ type: 'alive', id: '', address: '', meta: {}, incarnation: 0 }),
  estimateBytes({ type: 'suspect', id: '', incarnation: 0, from: '' }),
  estimateBytes({ type: 'dead', id: '', incarnation: 0, from: '' }),
);

interface Entry {
  readonly update: Update;
  /** Its estimated encoded size, computed once. */
  readonly bytes: number;
  transmits: number;
  /** Replaced by a newer update about the member, deleted, or done: skipped wherever it lies. */
  stale: boolean;
}

export class BroadcastQueue {
  /** Member id → its current entry (never a stale one). */
  private readonly current = new Map<string, Entry>();
  /** `stacks[t]`: entries sent t times, the next to go last. */
  private stacks: Entry[][] = [[]];
  /** Entries in all stacks, stale ones included. */
  private stacked = 0;

  /** Pending updates (one per member). */
  get size(): number {
    return this.current.size;
  }

  /** Queues `update`, replacing any pending update about the same member; it starts unsent. */
  enqueue(update: Update): void {
    const entry: Entry = { update, bytes: estimateBytes(update), transmits: 0, stale: false };
    const replaced = this.current.get(update.id);
    if (replaced !== undefined) replaced.stale = true;
    this.current.set(update.id, entry);
    this.stacks[0]!.push(entry);
    this.stacked += 1;
    if (this.stacked > 2 * this.current.size + 64) this.rebuild();
  }

  /** The pending update about member `id`, if any. */
  get(id: string): Update | undefined {
    return this.current.get(id)?.update;
  }

  /** Drops the pending update about member `id`, if any. */
  delete(id: string): void {
    const entry = this.current.get(id);
    if (entry === undefined) return;
    entry.stale = true;
    this.current.delete(id);
  }

  /** Pending updates and how often each has been sent, in no particular order. */
  pending(): { update: Update; transmits: number }[] {
    return [...this.current.values()].map((entry) => ({ update: entry.update, transmits: entry.transmits }));
  }

  /**
   * Takes updates for one datagram with `bytesFree` bytes of room (2 of
   * them for the list's own prefix): least-sent first, skipping those in
   * `already` and those too large for what is left (at most
   * BROADCAST_SKIPS_MAX of them). Each taken update counts one transmission
   * and leaves the queue at its `limit`-th.
   */
  take(bytesFree: number, limit: number, already: readonly Update[]): Update[] {
    assert(limit >= 1, 'broadcast queue: the retransmit limit must be at least 1');
    const taken: Update[] = [];
    const sent: Entry[] = [];
    const skipped: Entry[] = [];
    let free = bytesFree - 2;
    for (let level = 0; level < this.stacks.length && free >= UPDATE_BYTES_MIN && skipped.length < BROADCAST_SKIPS_MAX; level++) {
      const stack = this.stacks[level]!;
      while (stack.length > 0 && free >= UPDATE_BYTES_MIN && skipped.length < BROADCAST_SKIPS_MAX) {
        const entry = stack.pop()!;
        this.stacked -= 1;
        if (entry.stale) continue;
        if (entry.bytes > free || already.includes(entry.update)) {
          skipped.push(entry);
          continue;
        }
        free -= entry.bytes;
        taken.push(entry.update);
        entry.transmits += 1;
        if (entry.transmits >= limit) this.delete(entry.update.id);
        else sent.push(entry);
      }
    }
    // Back only after the loop, so no update goes twice into one datagram; the skipped return to where they were.
    for (let i = skipped.length - 1; i >= 0; i--) this.place(skipped[i]!);
    for (let i = sent.length - 1; i >= 0; i--) this.place(sent[i]!); // the newest of them on top
    return taken;
  }

  private place(entry: Entry): void {
    while (this.stacks.length <= entry.transmits) this.stacks.push([]);
    this.stacks[entry.transmits]!.push(entry);
    this.stacked += 1;
  }

  /** Drops the stale entries; each stack keeps its order. */
  private rebuild(): void {
    const stacks = this.stacks.map((stack) => stack.filter((entry) => !entry.stale));
    this.stacks = stacks.length > 0 ? stacks : [[]];
    this.stacked = stacks.reduce((total, stack) => total + stack.length, 0);
  }
}
