/**
 * Retries: a budget (retries as a share of requests), backoff with full
 * jitter, and the one retry helper the proxy uses, with an injected clock.
 * The budget and the backoff are pure; the helper awaits only what the
 * caller gives it (the attempt and the clock's sleep).
 */
import { assert } from '../../consensus/core/assert.js';

/**
 * Retries allowed as `percent` of requests, as Finagle's budget: every
 * request deposits percent/100 of a token, every retry withdraws one. A
 * reserve of `RETRY_RESERVE` tokens lets a quiet app retry at all; the
 * balance never exceeds `RETRY_BALANCE_MAX`, so a long calm spell does not
 * pay for a storm.
 */
export class RetryBudget {
  /** In hundredths of a token: whole numbers, so 10 requests at 20% pay for exactly 2 retries. */
  private balance = RETRY_RESERVE * 100;

  constructor(private percent: number) {
    assert(Number.isInteger(percent) && percent >= 0 && percent <= 100, 'RetryBudget: percent in [0, 100]');
  }

  configure(percent: number): void {
    this.percent = percent;
  }

  /** A request arrived. */
  deposit(): void {
    this.balance = Math.min(RETRY_BALANCE_MAX * 100, this.balance + this.percent);
  }

  /** Takes a token for one retry; false (and nothing taken) when the budget is spent. */
  tryWithdraw(): boolean {
    if (this.balance < 100) return false;
    this.balance -= 100;
    return true;
  }

  tokens(): number {
    return this.balance / 100;
  }
}

export const RETRY_RESERVE = 10;
export const RETRY_BALANCE_MAX = 100;

/** Backoff before retry number `retry` (1 for the first): uniform in [0, min(maxMs, baseMs * 2^(retry-1))). */
export function backoffMs(retry: number, options: { baseMs: number; maxMs: number }, random: () => number): number {
  assert(retry >= 1, 'backoffMs: retries count from 1');
  const ceiling = Math.min(options.maxMs, options.baseMs * 2 ** Math.min(retry - 1, 30));
  return Math.floor(random() * ceiling);
}

/** Time as the retry helper sees it. */
export interface RetryClock {
  nowMs(): number;
  sleep(ms: number): Promise<void>;
}

export interface RetryOptions<T> extends RetryPolicy {
  readonly clock: RetryClock;
  /** Whether this outcome may be retried (a transport failure of an idempotent request, say). */
  readonly retryable: (outcome: T) => boolean;
  /** Asked before each retry: the budget's say (false: return the outcome as it is). */
  readonly mayRetry: () => boolean;
}

/** What the retry decision reads of the request so far. */
export interface RetryPolicy {
  /** Retries after the first attempt, at most. */
  readonly retriesMax: number;
  /** No attempt starts at or after this time (the clock's). */
  readonly deadlineMs: number;
  readonly backoff: { baseMs: number; maxMs: number };
  readonly random: () => number;
}

/**
 * Whether to make retry number `retry` (1 for the first) of an outcome the
 * caller found retryable, and after how long: the wait in milliseconds, or
 * undefined when retries are spent, the deadline would pass during the
 * backoff, or `mayRetry` (the budget, asked last so a refusal for another
 * reason takes no token) says no. Pure but for `mayRetry` and `random`.
 */
export function retryDelayMs(retry: number, nowMs: number, policy: RetryPolicy, mayRetry: () => boolean): number | undefined {
  if (retry > policy.retriesMax) return undefined;
  const waitMs = backoffMs(retry, policy.backoff, policy.random);
  if (nowMs + waitMs >= policy.deadlineMs) return undefined;
  if (!mayRetry()) return undefined;
  return waitMs;
}

/**
 * Runs `attempt(0)`, and again (`attempt(1)`, ...) while its outcome is
 * retryable and `retryDelayMs` allows (retries left, the deadline not
 * reached after the backoff, the budget). Returns the last outcome; never
 * throws unless an attempt does. The proxy's request path, which runs on
 * callbacks rather than promises, makes the same decision with
 * `retryDelayMs` directly.
 */
export async function withRetries<T>(attempt: (number: number) => Promise<T>, options: RetryOptions<T>): Promise<{ outcome: T; attempts: number }> {
  let outcome = await attempt(0);
  let attempts = 1;
  for (let retry = 1; retry <= options.retriesMax; retry++) {
    if (!options.retryable(outcome)) break;
    const waitMs = retryDelayMs(retry, options.clock.nowMs(), options, options.mayRetry);
    if (waitMs === undefined) break;
    if (waitMs > 0) await options.clock.sleep(waitMs);
    outcome = await attempt(retry);
    attempts++;
  }
  return { outcome, attempts };
}
