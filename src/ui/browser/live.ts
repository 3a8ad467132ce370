/**
 * Live pages: load the page's reads, show them, then wait on the node with
 * a blocking query (`GET /v1/status?index=N&wait=30s`, as the CLI's
 * `--watch` does) and load again once its state moved past what was shown.
 * No polling while nothing changes, no reload of the page.
 */
import { ApiRequestError, type ApiClient } from './api.js';

/** How long one blocking query waits before it is asked again. */
export const BLOCKING_WAIT_SECONDS = 30;
/** Least time between two loads: node heartbeats move the state every few seconds, and a burst of changes makes one redraw. */
export const REDRAW_PAUSE_MS = 400;
/** After a failed read, the pause before the next try; it doubles at each failure in a row. */
export const RETRY_PAUSE_MS_MIN = 500;
/** The longest pause between tries while reads keep failing. */
export const RETRY_PAUSE_MS_MAX = 8000;

/** What a live page does each time the state changed. */
export interface LiveOptions {
  api: ApiClient;
  /** Aborted when the user leaves the page: the loop ends. */
  signal: AbortSignal;
  /** Reads and shows the page; resolves with the largest state index it read. */
  load: () => Promise<number>;
  /** Told of each failure (the loop goes on, after a pause), and of recovery (`undefined`). */
  onError: (error: unknown) => void;
}

/** Runs the load–wait loop until `signal` aborts. A 401 ends it too (the session is over). */
export async function follow(options: LiveOptions): Promise<void> {
  const { api, signal } = options;
  let retryPauseMs = RETRY_PAUSE_MS_MIN;
  while (!signal.aborted) {
    try {
      const index = await options.load();
      options.onError(undefined);
      retryPauseMs = RETRY_PAUSE_MS_MIN;
      await api.read('/v1/status?stale=true', { blocking: { index, waitSeconds: BLOCKING_WAIT_SECONDS }, signal });
      await pause(REDRAW_PAUSE_MS, signal);
    } catch (error) {
      if (signal.aborted) return;
      if (error instanceof ApiRequestError && error.status === 401) return;
      options.onError(error);
      await pause(retryPauseMs, signal);
      retryPauseMs = Math.min(RETRY_PAUSE_MS_MAX, retryPauseMs * 2);
    }
  }
}

/** Resolves after `durationMs`, or at once when `signal` aborts. */
export function pause(durationMs: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, durationMs);
    signal.addEventListener('abort', done, { once: true });
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
  });
}
