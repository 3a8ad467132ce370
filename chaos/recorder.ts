/**
 * Records a history as the checker reads it (chaos/history.ts): one event a
 * line, appended in the order events happen, times in milliseconds since the
 * start of the run on one monotonic clock.
 */
import { appendFileSync, writeFileSync } from 'node:fs';
import type { OperationFunction } from './history.js';

/** The deploy workload's operations (chaos/workload-deploy.ts); they go to their own file, never to a register history. */
export type AppOperationFunction = 'deploy' | 'scale' | 'delete';

/** One history event, as written to the file. */
export interface HistoryEvent {
  readonly process: number;
  readonly type: 'invoke' | 'ok' | 'fail' | 'info';
  /** A register operation, or (in the deploy history, where `key` is the app's name and `value` its replica count) an app operation. */
  readonly f: OperationFunction | AppOperationFunction;
  readonly key: string;
  readonly value?: unknown;
  readonly time: number;
  /** Why a fail or info happened (an HTTP status and code, or a connection error); the checker ignores it. */
  readonly error?: string;
  /** The node the operation was sent to; the checker ignores it. */
  readonly node?: string;
}

/** How a recorder keeps what it records besides the file. */
export interface RecorderOptions {
  /**
   * Keep every event in `events` (default true). A register history of a
   * long run is too large to hold: leave it off and read the file back, or
   * take each event through `onEvent`.
   */
  readonly keepEvents?: boolean;
  /** Called with every event as it is recorded, in order. */
  readonly onEvent?: (event: HistoryEvent) => void;
}

/** Completions by type, and invocations. */
export interface EventCounts {
  invoked: number;
  ok: number;
  fail: number;
  info: number;
}

/** Appends events to `path` in batches; counts them, and keeps them in memory unless told not to. */
export class HistoryRecorder {
  /** Every event so far; stays empty with `keepEvents: false`. */
  readonly events: HistoryEvent[] = [];
  /** Events so far by type: a running count, whatever `keepEvents` says. */
  readonly counts: EventCounts = { invoked: 0, ok: 0, fail: 0, info: 0 };
  private unwritten: string[] = [];
  private readonly keepEvents: boolean;
  private readonly onEvent: ((event: HistoryEvent) => void) | undefined;
  /**
   * `startedAt` (a `performance.now()` reading) is the clock's zero; recorders
   * of one run share it so their times compare.
   */
  constructor(
    private readonly path: string,
    private readonly startedAt: number = performance.now(),
    options: RecorderOptions = {},
  ) {
    this.keepEvents = options.keepEvents ?? true;
    this.onEvent = options.onEvent;
    writeFileSync(path, '');
  }

  /** Milliseconds since the recorder was made, to 0.01 ms. */
  now(): number {
    return Math.round((performance.now() - this.startedAt) * 100) / 100;
  }

  /** Records an event stamped now and returns it. */
  record(event: Omit<HistoryEvent, 'time'>): HistoryEvent {
    const stamped: HistoryEvent = { ...event, time: this.now() };
    if (this.keepEvents) this.events.push(stamped);
    if (stamped.type === 'invoke') this.counts.invoked++;
    else this.counts[stamped.type]++;
    this.onEvent?.(stamped);
    this.unwritten.push(JSON.stringify(stamped));
    if (this.unwritten.length >= 200) this.flush();
    return stamped;
  }

  flush(): void {
    if (this.unwritten.length === 0) return;
    appendFileSync(this.path, this.unwritten.join('\n') + '\n');
    this.unwritten = [];
  }
}
