/**
 * The queue of pending gossip for one member: at most one update per member
 * id (a newer one replaces the older), handed out least-sent first and, among
 * equals, newest first, until each has been sent `limit` times.
 *
 * A binary heap ordered by (transmits, newest first) makes taking a packet's
 * worth cost O(taken × log pending) instead of sorting every pending update
 * for every datagram (at 1,000 members a join queues 1,000 updates). Replaced
 * or deleted updates stay in the heap as stale entries until they surface or
 * the heap is rebuilt, so the heap never holds more than twice the live
 * entries plus a small constant.
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
  /** Insertion order: larger is newer. */
  readonly order: number;
  transmits: number;
}

export class BroadcastQueue {
  /** Member id → its current entry; an entry in the heap but not here is stale. */
  private readonly current = new Map<string, Entry>();
  private heap: Entry[] = [];
  private nextOrder = 0;

  /** Pending updates (one per member). */
  get size(): number {
    return this.current.size;
  }

  /** Queues `update`, replacing any pending update about the same member; it starts unsent. */
  enqueue(update: Update): void {
    const entry: Entry = { update, bytes: estimateBytes(update), order: this.nextOrder++, transmits: 0 };
    this.current.set(update.id, entry);
    this.push(entry);
    if (this.heap.length > 2 * this.current.size + 64) this.rebuild();
  }

  /** The pending update about member `id`, if any. */
  get(id: string): Update | undefined {
    return this.current.get(id)?.update;
  }

  /** Drops the pending update about member `id`, if any. */
  delete(id: string): void {
    this.current.delete(id);
  }

  /** Pending updates and how often each has been sent, in no particular order. */
  pending(): { update: Update; transmits: number }[] {
    return [...this.current.values()].map((entry) => ({ update: entry.update, transmits: entry.transmits }));
  }

  /**
   * Takes updates for one datagram with `bytesFree` bytes of room (2 of
   * them for the list's own prefix): least-sent first, newest among equals,
   * skipping those in `already` and those too large for what is left (at
   * most BROADCAST_SKIPS_MAX of them). Each taken update counts one
   * transmission and leaves the queue at its `limit`-th.
   */
  take(bytesFree: number, limit: number, already: readonly Update[]): Update[] {
    assert(limit >= 1, 'broadcast queue: the retransmit limit must be at least 1');
    const taken: Update[] = [];
    const putBack: Entry[] = [];
    let free = bytesFree - 2;
    let skips = 0;
    while (this.heap.length > 0 && free >= UPDATE_BYTES_MIN && skips < BROADCAST_SKIPS_MAX) {
      const entry = this.pop();
      if (this.current.get(entry.update.id) !== entry) continue; // stale: replaced or deleted
      putBack.push(entry);
      if (entry.bytes > free || already.includes(entry.update)) {
        skips += 1;
        continue;
      }
      free -= entry.bytes;
      taken.push(entry.update);
      entry.transmits += 1;
      if (entry.transmits >= limit) {
        this.current.delete(entry.update.id);
        putBack.pop();
      }
    }
    // Put back only after the loop, so no update goes twice into one datagram.
    for (const entry of putBack) this.push(entry);
    return taken;
  }

  // ---------------------------------------------------------------- heap

  /** Whether `a` goes out before `b`: fewer transmissions, then newer. */
  private static before(a: Entry, b: Entry): boolean {
    return a.transmits < b.transmits || (a.transmits === b.transmits && a.order > b.order);
  }

  private rebuild(): void {
    this.heap = [];
    for (const entry of this.current.values()) this.push(entry);
  }

  private push(entry: Entry): void {
    const heap = this.heap;
    let position = heap.length;
    heap.push(entry);
    while (position > 0) {
      const parent = (position - 1) >> 1;
      if (!BroadcastQueue.before(entry, heap[parent]!)) break;
      heap[position] = heap[parent]!;
      position = parent;
    }
    heap[position] = entry;
  }

  private pop(): Entry {
    const heap = this.heap;
    const top = heap[0];
    assert(top !== undefined, 'broadcast queue: pop from an empty heap');
    const last = heap.pop()!;
    if (heap.length === 0) return top;
    let position = 0;
    for (;;) {
      const left = 2 * position + 1;
      if (left >= heap.length) break;
      const right = left + 1;
      const child = right < heap.length && BroadcastQueue.before(heap[right]!, heap[left]!) ? right : left;
      if (!BroadcastQueue.before(heap[child]!, last)) break;
      heap[position] = heap[child]!;
      position = child;
    }
    heap[position] = last;
    return top;
  }
}
