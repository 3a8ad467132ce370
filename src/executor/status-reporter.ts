/**
 * Batches instance status reports into `instance.status` commands: at most
 * one command in flight, one flush at most every `flushMs` (a report after a
 * quiet spell goes out at once, with whatever came in the same turn of the
 * event loop; reports during a busy spell wait for the next slot), the newest
 * update per instance wins (coalescing), and a failed submit keeps its
 * updates (unless a newer one replaced them) for a retry after a backoff.
 */
import type { Command } from '../state/types.js';
import { untraced } from '../node/tracing.js';
import { SYSTEM_CLOCK, type Clock } from '../node/clock.js';

/** The most updates one command carries; the rest wait for the next flush. */
export const STATUS_BATCH_MAX = 500;
/** Updates waiting at once; beyond it the oldest are dropped (the next reconcile pass reports again). */
export const STATUS_PENDING_MAX = 10_000;
/**
 * The shortest spacing of two flushes. Short enough that a burst of starts is
 * seen running within a few tens of milliseconds of the last one; long
 * enough that 100 instances starting on one node make a few commands a
 * second, not one per instance.
 */
export const STATUS_FLUSH_MS_DEFAULT = 50;
const RETRY_DELAY_MS_MIN = 500;
const RETRY_DELAY_MS_MAX = 10_000;

/** One status update, as `instance.status` carries it, always with the version it is about. */
export type StatusUpdate = Extract<Command, { type: 'instance.status' }>['updates'][number] & { version: number };

export interface StatusReporterOptions {
  submit: (command: Command) => Promise<{ ok: boolean; error?: { message: string } }>;
  log: (line: string) => void;
  flushMs?: number;
  /** The clock of its flushes and retries (default: real time, `SYSTEM_CLOCK`). */
  clock?: Clock;
}

export class StatusReporter {
  private readonly pending = new Map<string, StatusUpdate>();
  private readonly flushMs: number;
  /** Cancels the flush waiting for its turn. */
  private timer: (() => void) | undefined;
  private readonly clock: Clock;
  private inFlight = false;
  private failures = 0;
  private closed = false;
  /** When the last flush started (ms, this process's clock); -Infinity before the first. */
  private lastFlushAt = Number.NEGATIVE_INFINITY;
  /** Updates sent and applied, for tests and metrics. */
  sentCount = 0;

  constructor(private readonly options: StatusReporterOptions) {
    this.flushMs = options.flushMs ?? STATUS_FLUSH_MS_DEFAULT;
    this.clock = options.clock ?? SYSTEM_CLOCK;
  }

  /** Queues an update; a newer one for the same instance replaces it. */
  report(update: StatusUpdate): void {
    if (this.closed) return;
    this.pending.delete(update.id);
    this.pending.set(update.id, update);
    while (this.pending.size > STATUS_PENDING_MAX) {
      const oldest = this.pending.keys().next();
      if (oldest.done) break;
      this.pending.delete(oldest.value);
    }
    this.schedule(Math.max(0, this.lastFlushAt + this.flushMs - this.clock.now()));
  }

  /** Whether an update for `id` waits or is being sent. */
  has(id: string): boolean {
    return this.pending.has(id);
  }

  close(): void {
    this.closed = true;
    this.timer?.();
    this.timer = undefined;
  }

  private schedule(delayMs: number): void {
    if (this.timer !== undefined || this.inFlight || this.closed) return;
    // A flush sends the reports of many instances, whatever trace the first report came in: it belongs to none.
    this.timer = this.clock.setTimer(delayMs, () => {
      this.timer = undefined;
      void untraced(() => this.flush());
    });
  }

  private async flush(): Promise<void> {
    if (this.inFlight || this.pending.size === 0 || this.closed) return;
    this.lastFlushAt = this.clock.now();
    const batch = [...this.pending.values()].slice(0, STATUS_BATCH_MAX);
    for (const update of batch) this.pending.delete(update.id);
    this.inFlight = true;
    let delayMs = this.flushMs;
    try {
      const result = await this.options.submit({ type: 'instance.status', updates: batch });
      if (!result.ok) this.options.log(`status report refused: ${result.error?.message ?? 'no reason given'}`);
      this.sentCount += batch.length;
      this.failures = 0;
    } catch (error) {
      this.failures++;
      // Put back what no newer update replaced, oldest first, for the retry.
      for (const update of batch) if (!this.pending.has(update.id)) this.pending.set(update.id, update);
      delayMs = Math.min(RETRY_DELAY_MS_MAX, RETRY_DELAY_MS_MIN * 2 ** Math.min(10, this.failures - 1));
      if (this.failures === 1 || this.failures % 10 === 0) this.options.log(`status report failed (${batch.length} updates, will retry): ${(error as Error).message}`);
    } finally {
      this.inFlight = false;
    }
    if (this.pending.size > 0) this.schedule(delayMs);
  }
}
