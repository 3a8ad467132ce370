/**
 * A backend's connection pool (undici's `Pool`), with undici loaded by the
 * first pool the proxy makes rather than when the agent starts: a node whose
 * proxy routes to nothing (an idle or empty cluster) never loads it, about
 * 10 MiB of RSS. Requests dispatched while undici loads (the first few
 * hundred milliseconds after the first backend appears) wait for it and go
 * out in order; none is refused for it.
 */
import type { Dispatcher, Pool } from 'undici';
import { assert } from '../../consensus/core/assert.js';

type Undici = typeof import('undici');

let undiciLoaded: Undici | undefined;
let undiciLoading: Promise<Undici> | undefined;

/** Starts loading undici once; resolves with it. */
function loadUndici(): Promise<Undici> {
  undiciLoading ??= import('undici').then((module) => (undiciLoaded = module));
  return undiciLoading;
}

/**
 * undici, for code that runs only once a pool has dispatched (an exchange's
 * controller exists): it is loaded by then. Throws (an assertion) otherwise.
 */
export function loadedUndici(): Undici {
  assert(undiciLoaded !== undefined, 'proxy: undici used before any backend pool loaded it');
  return undiciLoaded;
}

/** Sends a request that waited; an argument undici refuses (it throws) fails that request alone, as an error would have at the caller. */
function dispatchOrFail(pool: Pool, options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): void {
  try {
    pool.dispatch(options, handler);
  } catch (error) {
    handler.onResponseError?.(undefined as never, error as Error);
  }
}

/** What `Pool` takes here. */
export type BackendPoolOptions = Pool.Options;

/** One backend's pool. `dispatch`, `close` and `destroy` as undici's `Pool`; dispatches made before undici loaded wait for it. */
export class BackendPool {
  #pool: Pool | undefined;
  /** Dispatches made before the pool existed, sent in order when it does. */
  #waiting: [Dispatcher.DispatchOptions, Dispatcher.DispatchHandler][] = [];
  #ended: 'closed' | 'destroyed' | undefined;

  constructor(origin: string, options: BackendPoolOptions) {
    if (undiciLoaded !== undefined) {
      this.#pool = new undiciLoaded.Pool(origin, options);
      return;
    }
    loadUndici().then(
      (undici) => this.#opened(new undici.Pool(origin, options)),
      (error: unknown) => this.#failWaiting(new Error(`the proxy's HTTP client (undici) did not load: ${(error as Error).message}`)),
    );
  }

  /** As `Pool.dispatch`; before undici loaded, the request waits for it. */
  dispatch(options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    if (this.#pool !== undefined) return this.#pool.dispatch(options, handler);
    if (this.#ended !== undefined) {
      handler.onResponseError?.(undefined as never, Object.assign(new Error('the backend\'s pool is closed'), { code: 'UND_ERR_CLOSED' }));
      return false;
    }
    this.#waiting.push([options, handler]);
    return true;
  }

  /** As `Pool.close`: requests under way finish, no new ones are taken. */
  async close(): Promise<void> {
    this.#ended ??= 'closed';
    await this.#pool?.close();
  }

  /** As `Pool.destroy`: requests under way end. */
  async destroy(): Promise<void> {
    this.#ended = 'destroyed';
    await this.#pool?.destroy();
  }

  #opened(pool: Pool): void {
    this.#pool = pool;
    const waiting = this.#waiting;
    this.#waiting = [];
    // A pool closed while undici loaded still sends what was dispatched before the close (as undici's close does).
    if (this.#ended !== 'destroyed') for (const [options, handler] of waiting) dispatchOrFail(pool, options, handler);
    else for (const [, handler] of waiting) handler.onResponseError?.(undefined as never, Object.assign(new Error('the backend\'s pool was destroyed'), { code: 'UND_ERR_DESTROYED' }));
    if (this.#ended === 'closed') void pool.close().catch(() => {});
    if (this.#ended === 'destroyed') void pool.destroy().catch(() => {});
  }

  #failWaiting(error: Error): void {
    const waiting = this.#waiting;
    this.#waiting = [];
    for (const [, handler] of waiting) handler.onResponseError?.(undefined as never, error);
  }
}
