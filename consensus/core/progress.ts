import { assert } from './assert.js';
import { ProgressState, type ProgressStatus } from './types.js';

/**
 * The Append messages in flight to one follower, bounded in count and bytes.
 * Each element is the last index a message carried and its payload bytes.
 */
export class Inflights {
  private readonly lastIndexes: number[] = [];
  private readonly sizes: number[] = [];
  bytes = 0;

  constructor(
    private readonly messagesMax: number,
    private readonly bytesMax: number,
  ) {
    assert(messagesMax > 0 && bytesMax > 0, 'in-flight limits must be positive');
  }

  get count(): number {
    return this.lastIndexes.length;
  }

  add(lastIndex: number, bytes: number): void {
    assert(!this.full(), 'in-flight window overflow');
    const previous = this.lastIndexes[this.lastIndexes.length - 1];
    assert(previous === undefined || lastIndex > previous, 'in-flight indexes must grow');
    this.lastIndexes.push(lastIndex);
    this.sizes.push(bytes);
    this.bytes += bytes;
  }

  /** Frees every message whose last index is at or below `index` (acknowledged). */
  freeLE(index: number): void {
    let count = 0;
    while (count < this.lastIndexes.length && this.lastIndexes[count]! <= index) {
      this.bytes -= this.sizes[count]!;
      count++;
    }
    this.lastIndexes.splice(0, count);
    this.sizes.splice(0, count);
  }

  /** Frees the oldest message: used when a heartbeat shows the follower alive but the window is stuck. */
  freeFirst(): void {
    if (this.lastIndexes.length === 0) return;
    this.bytes -= this.sizes.shift()!;
    this.lastIndexes.shift();
  }

  full(): boolean {
    return this.lastIndexes.length >= this.messagesMax || this.bytes >= this.bytesMax;
  }

  reset(): void {
    this.lastIndexes.length = 0;
    this.sizes.length = 0;
    this.bytes = 0;
  }
}

/**
 * The leader's view of one follower's log (after etcd-io/raft's tracker).
 *
 * Invariant: match < next. In Probe, at most one Append is outstanding
 * (`probeSent`); in Replicate, Appends are pipelined within `inflights` and
 * `next` is optimistic; in Snapshot, nothing is sent until the snapshot at
 * `pendingSnapshot` is reported.
 */
export class Progress {
  match = 0;
  next: number;
  state: ProgressState = ProgressState.Probe;
  probeSent = false;
  pendingSnapshot = 0;
  /** Heard from within the current election timeout (check-quorum). */
  recentActive = false;
  /** A learner's copy never counts toward a quorum. */
  learner: boolean;
  readonly inflights: Inflights;

  constructor(options: { next: number; learner: boolean; inflightMessagesMax: number; inflightBytesMax: number }) {
    this.next = options.next;
    this.learner = options.learner;
    this.inflights = new Inflights(options.inflightMessagesMax, options.inflightBytesMax);
  }

  becomeProbe(): void {
    if (this.state === ProgressState.Snapshot) {
      // A snapshot finished (or failed): resume after what it covered.
      this.next = Math.max(this.match + 1, this.pendingSnapshot + 1);
    } else {
      this.next = this.match + 1;
    }
    this.resetState(ProgressState.Probe);
  }

  becomeReplicate(): void {
    this.next = this.match + 1;
    this.resetState(ProgressState.Replicate);
  }

  becomeSnapshot(snapshotIndex: number): void {
    this.resetState(ProgressState.Snapshot);
    this.pendingSnapshot = snapshotIndex;
  }

  private resetState(state: ProgressState): void {
    this.state = state;
    this.probeSent = false;
    this.pendingSnapshot = 0;
    this.inflights.reset();
  }

  /** The follower acknowledged `index`; returns false when the answer is stale. */
  maybeUpdate(index: number): boolean {
    let updated = false;
    if (index > this.match) {
      this.match = index;
      updated = true;
      this.probeSent = false;
    }
    this.next = Math.max(this.next, index + 1);
    return updated;
  }

  /**
   * The follower refused an Append at `rejected`, hinting that its log may
   * match up to `matchHint`. Returns false when the refusal is stale.
   */
  maybeDecrementTo(rejected: number, matchHint: number): boolean {
    if (this.state === ProgressState.Replicate) {
      if (rejected <= this.match) return false;
      this.next = this.match + 1;
      return true;
    }
    if (this.next - 1 !== rejected) return false;
    this.next = Math.max(Math.min(rejected, matchHint + 1), this.match + 1, 1);
    this.probeSent = false;
    return true;
  }

  /** Records an Append carrying entries up to `lastIndex` (`count` entries, `bytes` payload). */
  sentEntries(count: number, lastIndex: number, bytes: number): void {
    if (this.state === ProgressState.Replicate) {
      if (count > 0) {
        this.next = lastIndex + 1;
        this.inflights.add(lastIndex, bytes);
      }
    } else if (this.state === ProgressState.Probe) {
      this.probeSent = true;
    }
  }

  isPaused(): boolean {
    switch (this.state) {
      case ProgressState.Probe:
        return this.probeSent;
      case ProgressState.Replicate:
        return this.inflights.full();
      case ProgressState.Snapshot:
        return true;
    }
  }

  status(): ProgressStatus {
    return {
      match: this.match,
      next: this.next,
      state: this.state,
      inflightMessages: this.inflights.count,
      inflightBytes: this.inflights.bytes,
      recentActive: this.recentActive,
      learner: this.learner,
    };
  }
}
