/**
 * The report's timeline, built while the run records (or from events read
 * back), in memory bounded whatever the run's length:
 *
 * - every operation is counted per lane (client process) and time bucket,
 *   by outcome (ok, fail, info, no completion), at its call time; the
 *   buckets' width starts at BUCKET_MS_MIN and doubles (neighbours merged)
 *   whenever the run outgrows BUCKETS_MAX of them;
 * - besides, while there are at most BARS_MAX operations, each one is kept
 *   as a bar (call to completion) so that a short run shows every operation.
 *
 * Lanes are the history's processes: a fixed number of clients per run, so
 * their count does not grow with time. Pure: events in, figures out.
 */
import type { HistoryEvent } from './recorder.js';

/** Operations kept one by one; past this the report draws the buckets only. */
export const BARS_MAX = 20_000;
/** Buckets per lane, at most: the width doubles when a run would need more. */
export const BUCKETS_MAX = 2048;
/** The narrowest bucket. */
export const BUCKET_MS_MIN = 250;
/** Lanes (history processes) the timeline keeps apart; further ones share one lane, OVERFLOW_PROCESS (a harness bug if reached). */
export const LANES_MAX = 512;
/** The process number of the shared lane past LANES_MAX. */
export const OVERFLOW_PROCESS = Number.MAX_SAFE_INTEGER;

/** How an operation ended: `open` had no completion by the end of the history. */
export type BarOutcome = 'ok' | 'fail' | 'info' | 'open';

/** One operation, from its call to its completion (or to the end, when open). */
export interface Bar {
  readonly process: number;
  readonly f: string;
  readonly key: string;
  readonly value: unknown;
  readonly node: string | undefined;
  readonly start: number;
  readonly end: number;
  readonly type: BarOutcome;
  readonly error: string | undefined;
}

/** Operations of one lane in one bucket, by outcome. */
export interface BucketCounts {
  ok: number;
  fail: number;
  info: number;
  open: number;
}

/** A lane: one history process, named with the node it talked to first. */
export interface Lane {
  readonly process: number;
  readonly node: string | undefined;
  /** Counts by bucket (index × `bucketMs` is the bucket's start); holes are empty buckets. */
  readonly buckets: readonly (BucketCounts | undefined)[];
}

/** Everything the report draws of the operations. */
export interface TimelineView {
  /** The last event's time (at least 1 ms). */
  readonly endMs: number;
  readonly bucketMs: number;
  /** Sorted by process. */
  readonly lanes: readonly Lane[];
  /** Every operation, when there were at most BARS_MAX; undefined past that. */
  readonly bars: readonly Bar[] | undefined;
  readonly totals: Readonly<BucketCounts>;
}

interface LaneState {
  readonly process: number;
  node: string | undefined;
  buckets: (BucketCounts | undefined)[];
  open: HistoryEvent | undefined;
}

/** Collects events (in time order, as a recorder writes them) into a bounded timeline. */
export class TimelineBuilder {
  private readonly lanes = new Map<number, LaneState>();
  private bucketMs = BUCKET_MS_MIN;
  private endMs = 1;
  private bars: Bar[] | undefined = [];
  private operations = 0;
  private readonly totals: BucketCounts = { ok: 0, fail: 0, info: 0, open: 0 };

  /** A timeline of `events` at once (tests, or a history read back). */
  static fromEvents(events: Iterable<HistoryEvent>): TimelineView {
    const builder = new TimelineBuilder();
    for (const event of events) builder.add(event);
    return builder.view();
  }

  /** Takes one event; an event of a process with nothing open, other than an invoke, is ignored. */
  add(event: HistoryEvent): void {
    if (event.time > this.endMs) this.endMs = event.time;
    const lane = this.lane(event.process);
    if (event.type === 'invoke') {
      lane.node ??= event.node;
      lane.open = event;
      return;
    }
    const invoke = lane.open;
    if (invoke === undefined) return;
    lane.open = undefined;
    this.count(lane, invoke, event.type, event.time, event.error, event.value !== undefined ? event.value : invoke.value);
  }

  /** The timeline so far: operations still open count as `open`, up to the last event. Does not change the builder. */
  view(): TimelineView {
    const lanes = [...this.lanes.values()].sort((left, right) => left.process - right.process);
    const bucketsOf = new Map<number, (BucketCounts | undefined)[]>();
    const totals = { ...this.totals };
    let openCount = 0;
    for (const lane of lanes) if (lane.open !== undefined) openCount++;
    const bars = this.bars !== undefined && this.operations + openCount <= BARS_MAX ? [...this.bars] : undefined;
    for (const lane of lanes) {
      const buckets = lane.buckets.map((counts) => (counts === undefined ? undefined : { ...counts }));
      bucketsOf.set(lane.process, buckets);
      const invoke = lane.open;
      if (invoke === undefined) continue;
      const index = Math.floor(invoke.time / this.bucketMs);
      const counts = (buckets[index] ??= { ok: 0, fail: 0, info: 0, open: 0 });
      counts.open++;
      totals.open++;
      bars?.push(barOf(invoke, 'open', this.endMs, 'no completion', invoke.value));
    }
    return {
      endMs: this.endMs,
      bucketMs: this.bucketMs,
      lanes: lanes.map((lane) => ({ process: lane.process, node: lane.node, buckets: bucketsOf.get(lane.process)! })),
      bars,
      totals,
    };
  }

  private lane(process: number): LaneState {
    let lane = this.lanes.get(process);
    if (lane === undefined) {
      if (this.lanes.size >= LANES_MAX) process = OVERFLOW_PROCESS;
      lane = this.lanes.get(process) ?? { process, node: undefined, buckets: [], open: undefined };
      this.lanes.set(process, lane);
    }
    return lane;
  }

  private count(lane: LaneState, invoke: HistoryEvent, type: 'ok' | 'fail' | 'info', endMs: number, error: string | undefined, value: unknown): void {
    this.operations++;
    this.totals[type]++;
    while (Math.floor(invoke.time / this.bucketMs) >= BUCKETS_MAX) this.widenBuckets();
    const index = Math.floor(invoke.time / this.bucketMs);
    const counts = (lane.buckets[index] ??= { ok: 0, fail: 0, info: 0, open: 0 });
    counts[type]++;
    if (this.bars === undefined) return;
    if (this.operations > BARS_MAX) {
      this.bars = undefined;
      return;
    }
    this.bars.push(barOf(invoke, type, endMs, error, value));
  }

  /** Doubles the bucket width: each pair of neighbours becomes one bucket. */
  private widenBuckets(): void {
    this.bucketMs *= 2;
    for (const lane of this.lanes.values()) {
      const merged: (BucketCounts | undefined)[] = [];
      lane.buckets.forEach((counts, index) => {
        if (counts === undefined) return;
        const target = (merged[index >> 1] ??= { ok: 0, fail: 0, info: 0, open: 0 });
        target.ok += counts.ok;
        target.fail += counts.fail;
        target.info += counts.info;
        target.open += counts.open;
      });
      lane.buckets = merged;
    }
  }
}

function barOf(invoke: HistoryEvent, type: BarOutcome, endMs: number, error: string | undefined, value: unknown): Bar {
  return { process: invoke.process, f: invoke.f, key: invoke.key, value, node: invoke.node, start: invoke.time, end: endMs, type, error };
}
