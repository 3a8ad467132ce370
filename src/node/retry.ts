/**
 * One way to retry until a deadline: every call site that waits out a
 * passing refusal (a membership change still being committed, a leader not
 * known yet) goes through `retryUntil`, with the clock injected so the same
 * loop runs on virtual time in a simulator.
 */

/** What a retry waits on. */
export interface RetryClock {
  /** ms since the epoch (or any fixed origin, the same as the deadline's). */
  now(): number;
  sleep(ms: number): Promise<void>;
}

/** The real clock. */
export const REAL_CLOCK: RetryClock = {
  now: () => Date.now(),
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
};

/** How `retryUntil` retries. */
export interface RetryOptions {
  /** No attempt starts at or after this time (the clock's ms). */
  deadline: number;
  /** The pause between attempts. */
  delayMs: number;
  /** Whether an error is worth another attempt; any other error is thrown at once. */
  retryable: (error: unknown) => boolean;
  clock?: RetryClock;
  /** Stops the retries: the last error is thrown. */
  signal?: AbortSignal;
}

/**
 * Runs `attempt` (given the time left, in ms) until it resolves, throws an
 * error that is not retryable, or the next attempt would start past the
 * deadline; then the last error is thrown.
 */
export async function retryUntil<T>(attempt: (remainingMs: number) => Promise<T>, options: RetryOptions): Promise<T> {
  const clock = options.clock ?? REAL_CLOCK;
  for (;;) {
    try {
      return await attempt(Math.max(1, options.deadline - clock.now()));
    } catch (error) {
      if (!options.retryable(error) || options.signal?.aborted === true || clock.now() + options.delayMs >= options.deadline) throw error;
    }
    await clock.sleep(options.delayMs);
  }
}
