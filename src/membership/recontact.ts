/**
 * Which node records the gossip component contacts again, and when. A record
 * gossip holds live needs nothing; one it does not (new, moved, dead, left,
 * reaped, never heard of) is contacted with a full-state exchange, and again
 * after a delay that doubles with each contact that brought no answer, up to
 * a cap, with a random part so records added together do not stay in step.
 * Hearing from the member (gossip raises `up` or `alive-again`), or a new
 * address in its record, starts the delay over.
 *
 * Deterministic: time arrives as `nowMs`, randomness through `random`, and
 * the live check as a function; the cost of a call is proportional to the
 * records that are due, not to every record (a heap of due times).
 */
import { assert } from '../../consensus/core/assert.js';
import { MinHeap } from './min-heap.js';

export interface RecontactOptions {
  /** The delay after a first unanswered contact; it doubles after each further one. */
  intervalMs: number;
  /** The delay never grows beyond this. */
  backoffMaxMs: number;
  /** Contacts one `due` call hands out at most; the rest stay due for the next call. */
  contactsPerCallMax: number;
  random: { below(n: number): number };
}

/** A node record as far as gossip cares: its member id and gossip address. */
export interface RecontactTarget {
  readonly id: string;
  readonly address: string;
}

interface Entry {
  address: string;
  /** Contacts since gossip last heard from it (or since its address changed). */
  failures: number;
  /** The live scheduled item, or undefined while idle (gossip holds it live). */
  scheduled: Scheduled | undefined;
}

interface Scheduled {
  readonly id: string;
  readonly dueMs: number;
  /** Random order among items due at the same time (so a cluster's seeds are not always tried in id order). */
  readonly tiebreak: number;
}

export class RecontactSchedule {
  private readonly entries = new Map<string, Entry>();
  private readonly heap = new MinHeap<Scheduled>((a, b) => a.dueMs < b.dueMs || (a.dueMs === b.dueMs && a.tiebreak < b.tiebreak));

  constructor(private readonly options: RecontactOptions) {
    assert(options.intervalMs > 0 && options.backoffMaxMs >= options.intervalMs, 'recontact: need 0 < intervalMs <= backoffMaxMs');
    assert(Number.isInteger(options.contactsPerCallMax) && options.contactsPerCallMax >= 1, 'recontact: contactsPerCallMax must be a positive integer');
  }

  /** Records followed. */
  get size(): number {
    return this.entries.size;
  }

  /**
   * Replaces the records followed: a new record, or one whose address
   * changed, is due at once with its delay started over; a record no longer
   * present is forgotten; the others keep their schedule. O(records).
   */
  setTargets(targets: readonly RecontactTarget[], nowMs: number): void {
    const seen = new Set<string>();
    for (const { id, address } of targets) {
      seen.add(id);
      const entry = this.entries.get(id);
      if (entry !== undefined && entry.address === address) continue;
      const fresh: Entry = { address, failures: 0, scheduled: undefined };
      this.entries.set(id, fresh);
      this.schedule(id, fresh, nowMs);
    }
    for (const id of this.entries.keys()) if (!seen.has(id)) this.entries.delete(id);
    if (this.heap.size > 2 * this.entries.size + 64) this.rebuild();
  }

  /** Gossip heard from member `id`: its next unanswered contact starts from the first delay again. */
  heard(id: string): void {
    const entry = this.entries.get(id);
    if (entry !== undefined) entry.failures = 0;
  }

  /** Gossip holds member `id` dead or gone: check it again after the first delay (sooner if already due). */
  lost(id: string, nowMs: number): void {
    const entry = this.entries.get(id);
    if (entry === undefined || entry.scheduled !== undefined) return;
    this.schedule(id, entry, nowMs + this.options.intervalMs);
  }

  /**
   * The addresses to contact now: due records that `isLive(id, address)`
   * says gossip does not hold live, at most `contactsPerCallMax`, earliest
   * due first. Each one handed out waits its next delay; a due record found
   * live goes idle until `lost` or a new address.
   */
  due(nowMs: number, isLive: (id: string, address: string) => boolean): string[] {
    const out: string[] = [];
    while (out.length < this.options.contactsPerCallMax) {
      const next = this.heap.peek();
      if (next === undefined || next.dueMs > nowMs) break;
      this.heap.pop();
      const entry = this.entries.get(next.id);
      if (entry === undefined || entry.scheduled !== next) continue; // stale
      entry.scheduled = undefined;
      if (isLive(next.id, entry.address)) {
        entry.failures = 0;
        continue;
      }
      out.push(entry.address);
      entry.failures += 1;
      this.schedule(next.id, entry, nowMs + this.delayMs(entry.failures));
    }
    return out;
  }

  /** When a record is next due; undefined when none is scheduled. For tests and metrics. */
  nextDueMs(): number | undefined {
    while (this.heap.size > 0) {
      const next = this.heap.peek()!;
      if (this.entries.get(next.id)?.scheduled === next) return next.dueMs;
      this.heap.pop();
    }
    return undefined;
  }

  /** Unanswered contacts of record `id` since gossip last heard from it; undefined for an unknown record. */
  failures(id: string): number | undefined {
    return this.entries.get(id)?.failures;
  }

  /** The delay after the `failures`-th unanswered contact: doubling from intervalMs, plus up to a quarter at random, capped. */
  private delayMs(failures: number): number {
    const { intervalMs, backoffMaxMs } = this.options;
    const baseMs = Math.min(backoffMaxMs, intervalMs * 2 ** Math.min(30, failures - 1));
    return Math.min(backoffMaxMs, baseMs + this.options.random.below(Math.floor(baseMs / 4) + 1));
  }

  private schedule(id: string, entry: Entry, dueMs: number): void {
    const scheduled: Scheduled = { id, dueMs, tiebreak: this.options.random.below(2 ** 31) };
    entry.scheduled = scheduled;
    this.heap.push(scheduled);
  }

  private rebuild(): void {
    while (this.heap.size > 0) this.heap.pop();
    for (const entry of this.entries.values()) if (entry.scheduled !== undefined) this.heap.push(entry.scheduled);
  }
}
