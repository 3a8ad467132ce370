/**
 * One request's way through a backend: the attempts (each to a backend not
 * tried yet), the retry decision after a transport failure, and the relay of
 * the chosen backend's response to the client, written straight from
 * undici's dispatch callbacks. The engine (`proxy.ts`) counts the request
 * in its app's requests in flight before `start()`; the exchange gives that
 * back when it ends.
 *
 * Why callbacks and not `pool.request()` and a pipe: `request()` makes a
 * promise, a request handler and a `Readable` for every response body, and
 * piping that body to the client adds seven listeners on each side; on the
 * proxy's hot path (a small response, kept-alive connections) those were a
 * large share of the CPU per request (`npm run bench:proxy`, bench/README.md).
 * Here a request costs one object (this one) and one listener on the
 * client's response. Backpressure is undici's: a chunk the client cannot
 * take yet pauses the backend's connection until the response drains.
 *
 * Ordering rules: a backend's breaker hears of an attempt once (success on
 * its response's head, failure or abandonment on an error before it); its
 * requests-in-flight count covers dispatch to the end of its body; the
 * record (`onRequest`) is made once, when the response ends or fails.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Http2ServerRequest, Http2ServerResponse } from 'node:http2';
import type { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import { loadedUndici, type BackendPool } from './backend-pool.js';
import type { CircuitBreaker } from './breaker.js';
import { PROXY_ERROR_HEADER, refusal, type ProxyRefusal } from './errors.js';
import type { BalanceState } from './balancer.js';
import { downstreamResponseHeaders, IDEMPOTENT_METHODS } from './headers.js';
import type { OutlierDetector } from './outlier.js';
import { retryDelayMs, type RetryBudget, type RetryClock } from './retry.js';
import type { AppTarget, BackendTarget } from './route-table.js';

/** A client's request: HTTP/1.1, or HTTP/2 through node:http2's compatibility API. */
export type ClientRequest = IncomingMessage | Http2ServerRequest;
/** The response to a `ClientRequest`. */
export type ClientResponse = ServerResponse | Http2ServerResponse;

/** One backend as the proxy keeps it across table rebuilds. */
export interface BackendRecord {
  target: BackendTarget;
  readonly pool: BackendPool;
  readonly breaker: CircuitBreaker;
  readonly outlier: OutlierDetector;
  /** Requests dispatched to it whose response has not ended. */
  inFlight: number;
}

/** One app as the proxy keeps it across table rebuilds. */
export interface AppRecord {
  target: AppTarget;
  /** The records of `target.backends`, in the same order. */
  backends: BackendRecord[];
  readonly balance: BalanceState;
  readonly budget: RetryBudget;
  inFlight: number;
}

/** What one request came to, for the metrics and the access log. */
export interface RequestRecord {
  readonly method: string;
  readonly host: string;
  readonly path: string;
  readonly client: string;
  readonly status: number;
  readonly durationMs: number;
  /** `tenant/app`, when a route matched. */
  readonly app?: string;
  /** The matched rule (`web.default.hivemind`, `shop.example.com/api`). */
  readonly route?: string;
  /** The instance that answered, or the last one tried. */
  readonly instance?: string;
  readonly attempts: number;
  /** The proxy's own error code, when it answered itself. */
  readonly error?: string;
}

/** What of a request steers the choice of its backend. */
export interface Steering {
  /** The hash key (balance "hash"). */
  readonly hashKey: string | undefined;
  /** The version the A/B rule sends it to; undefined: the split decides. */
  readonly version: number | undefined;
}

/** What an exchange uses of the engine that made it. */
export interface ExchangeEngine {
  readonly clock: RetryClock;
  readonly random: () => number;
  readonly backoff: { baseMs: number; maxMs: number };
  /** The backend for the next attempt, not one of `tried`; undefined when none is available. */
  choose(app: AppRecord, tried: readonly string[], steer: Steering): BackendRecord | undefined;
  /** Whether one more of the app's backends may be ejected now. */
  mayEject(app: AppRecord): boolean;
  log(line: string): void;
  onRequest: ((record: RequestRecord) => void) | undefined;
}

/** What the exchange forwards: the request as the engine read it. */
export interface ExchangeRequest {
  readonly request: ClientRequest;
  readonly response: ClientResponse;
  readonly app: AppRecord;
  readonly route: string;
  readonly method: string;
  readonly host: string;
  readonly path: string;
  readonly client: string;
  /** The headers for the backend (`headers.ts`). */
  readonly headers: string[];
  readonly hasBody: boolean;
  readonly steer: Steering;
  readonly startedMs: number;
}

const CONNECT_FAILURE_CODES: ReadonlySet<string> = new Set(['ECONNREFUSED', 'UND_ERR_CONNECT_TIMEOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL', 'ENOTFOUND']);
const TIMEOUT_CODES: ReadonlySet<string> = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT']);
const ABANDONED_CODES: ReadonlySet<string> = new Set(['UND_ERR_ABORTED', 'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH']);

type Failure = 'connect' | 'reset' | 'timeout';
type Phase = 'waiting' | 'streaming' | 'done';

/** The exchange a client response belongs to, for the listeners shared by all responses. */
const EXCHANGE = Symbol('hivemind.proxy.exchange');
type Tagged = ClientResponse & { [EXCHANGE]?: Exchange };

/**
 * One request forwarded to the app's backends. `start()` makes the first
 * attempt; the rest happens on undici's callbacks and the client response's
 * events. Never throws out of a callback: every failure ends in an answer
 * (or a destroyed response when the head was already sent) and one record.
 */
export class Exchange implements Dispatcher.DispatchHandler {
  private readonly tried: string[] = [];
  private backend: BackendRecord | undefined;
  private controller: Dispatcher.DispatchController | undefined;
  private phase: Phase = 'waiting';
  private status = 0;
  private clientGone = false;
  private readonly body: Readable | null;
  private readonly idempotent: boolean;
  private readonly deadlineMs: number;

  constructor(
    private readonly engine: ExchangeEngine,
    private readonly input: ExchangeRequest,
  ) {
    const request = input.request;
    // HTTP/2 says "no body" by ending the stream with the headers, not by a length.
    const withBody = request instanceof Http2ServerRequest ? !request.stream.endAfterHeaders : input.hasBody;
    this.body = withBody ? request : null;
    this.idempotent = IDEMPOTENT_METHODS.has(input.method) && !withBody;
    this.deadlineMs = input.startedMs + input.app.target.settings.timeoutMs;
  }

  /** Makes the first attempt. */
  start(): void {
    const response = this.input.response as Tagged;
    response[EXCHANGE] = this;
    response.on('close', onResponseClose);
    this.attempt();
  }

  /** The client's response closed: before its end, the client went away. */
  clientClosed(): void {
    if (this.input.response.writableFinished || this.phase === 'done') return;
    this.clientGone = true;
    // A controller exists once a pool dispatched, so undici is loaded.
    if (this.controller !== undefined) this.controller.abort(new (loadedUndici().errors.RequestAbortedError)('the client went away'));
  }

  /** The client's response drained: the backend may send more. */
  clientDrained(): void {
    this.controller?.resume();
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (this.clientGone) controller.abort(new (loadedUndici().errors.RequestAbortedError)('the client went away'));
  }

  onResponseStart(controller: Dispatcher.DispatchController, statusCode: number, headers: Record<string, string | string[] | undefined>): void {
    const backend = this.backend!;
    const app = this.input.app;
    backend.breaker.recordSuccess();
    backend.outlier.recordStatus(statusCode, this.engine.clock.nowMs(), statusCode >= 500 && this.engine.mayEject(app));
    this.status = statusCode;
    if (this.clientGone) return;
    this.phase = 'streaming';
    const response = this.input.response;
    try {
      response.writeHead(statusCode, downstreamResponseHeaders(headers));
      // A streamed body (no length) may be slow to start: the client gets the headers now, not with the first chunk.
      // (HTTP/2's writeHead sends them at once.)
      if (headers['content-length'] === undefined && !(response instanceof Http2ServerResponse)) response.flushHeaders();
    } catch {
      this.phase = 'done';
      backend.inFlight--;
      controller.abort(new (loadedUndici().errors.RequestAbortedError)('the backend sent headers the client cannot be sent'));
      response.destroy();
      this.finish(502, 'BAD_UPSTREAM_HEADERS');
    }
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.phase !== 'streaming') return;
    const response = this.input.response;
    // Both kinds of response take a Buffer; their overloads only do not unify in the type.
    if (!(response as ServerResponse).write(chunk)) {
      controller.pause();
      response.once('drain', onResponseDrain);
    }
  }

  onResponseEnd(): void {
    if (this.phase !== 'streaming') {
      // The client went away before the head could be sent.
      if (this.phase === 'waiting') this.settleWithoutClient();
      return;
    }
    this.phase = 'done';
    this.backend!.inFlight--;
    this.input.response.end();
    this.finish(this.status, undefined);
  }

  onResponseError(_controller: Dispatcher.DispatchController | undefined, error: Error): void {
    if (this.phase === 'done') return;
    const backend = this.backend!;
    if (this.phase === 'streaming') {
      // The body broke off after the head was sent: the client's response cannot be completed.
      this.phase = 'done';
      backend.inFlight--;
      this.input.response.destroy();
      this.finish(this.status, undefined);
      return;
    }
    if (this.status !== 0) {
      // The head came (and was counted a success), the client was gone already.
      this.settleWithoutClient();
      return;
    }
    backend.inFlight--;
    const code = (error as { code?: string }).code ?? '';
    const failure: Failure = CONNECT_FAILURE_CODES.has(code) ? 'connect' : TIMEOUT_CODES.has(code) ? 'timeout' : 'reset';
    if (ABANDONED_CODES.has(code)) backend.breaker.recordAbandoned();
    else if (backend.breaker.recordFailure(this.engine.clock.nowMs())) this.engine.log(`circuit breaker of ${backend.target.instance} (${backend.target.authority}) opened: ${describeError(error)}`);
    const waitMs = this.retryable(failure) ? retryDelayMs(this.tried.length, this.engine.clock.nowMs(), { retriesMax: this.input.app.target.settings.retries, deadlineMs: this.deadlineMs, backoff: this.engine.backoff, random: this.engine.random }, () => this.input.app.budget.tryWithdraw()) : undefined;
    if (waitMs === undefined) return this.fail(failureRefusal(failure, describeError(error), this.input.app.target.key, this.tried.length, backend.target));
    if (waitMs === 0) return this.attempt();
    this.engine.clock.sleep(waitMs).then(
      () => (this.clientGone ? this.fail(failureRefusal(failure, describeError(error), this.input.app.target.key, this.tried.length, backend.target)) : this.attempt()),
      () => this.fail(failureRefusal(failure, describeError(error), this.input.app.target.key, this.tried.length, backend.target)),
    );
  }

  /** A transport failure may go to another backend: an idempotent request, or one refused before its body was read. */
  private retryable(failure: Failure): boolean {
    if (this.clientGone) return false;
    return this.idempotent || (failure === 'connect' && !this.input.request.readableDidRead);
  }

  private attempt(): void {
    const { app, steer } = this.input;
    const backend = this.engine.choose(app, this.tried, steer);
    if (backend === undefined) {
      const target = app.target;
      return this.fail(
        target.backends.length === 0
          ? refusal(503, 'NO_INSTANCE', `hivemind proxy: ${target.key} has no serving instance (none running and healthy with a TCP port); see hivemind ps`)
          : refusal(503, 'ALL_INSTANCES_UNAVAILABLE', `hivemind proxy: every instance of ${target.key} is unavailable (${target.backends.length} with open circuit breakers, ejected, or already tried); retry later`),
      );
    }
    this.tried.push(backend.target.instance);
    this.backend = backend;
    this.controller = undefined;
    backend.inFlight++;
    const { method, path, headers } = this.input;
    // An error here (the pool closed since the choice) comes back through onResponseError.
    backend.pool.dispatch({ method: method as Dispatcher.HttpMethod, path, headers, body: this.body, headersTimeout: Math.max(1, this.deadlineMs - this.engine.clock.nowMs()), bodyTimeout: app.target.settings.timeoutMs }, this);
  }

  /** No backend's response reaches the client: answer it (unless it is gone) and record. */
  private fail(answered: ProxyRefusal): void {
    this.phase = 'done';
    if (!this.clientGone) answer(this.input.response, answered);
    this.finish(answered.status, answered.code);
  }

  /** The backend answered but the client was gone before its head: nothing to send. */
  private settleWithoutClient(): void {
    this.phase = 'done';
    this.backend!.inFlight--;
    this.finish(this.status, undefined);
  }

  /** The one end of the exchange: the app's count given back, the record made. */
  private finish(status: number, error: string | undefined): void {
    const { input } = this;
    input.app.inFlight--;
    const onRequest = this.engine.onRequest;
    if (onRequest === undefined) return;
    onRequest({
      method: input.method,
      host: input.host,
      path: input.path,
      client: input.client,
      status,
      durationMs: this.engine.clock.nowMs() - input.startedMs,
      app: input.app.target.key,
      route: input.route,
      instance: this.backend?.target.instance,
      attempts: this.tried.length,
      error,
    });
  }
}

function onResponseClose(this: Tagged): void {
  this[EXCHANGE]?.clientClosed();
}

function onResponseDrain(this: Tagged): void {
  this[EXCHANGE]?.clientDrained();
}

function failureRefusal(failure: Failure, message: string, app: string, attempts: number, backend: BackendTarget): ProxyRefusal {
  const where = ` (last: ${backend.instance} at ${backend.authority})`;
  const tries = `${attempts} attempt${attempts === 1 ? '' : 's'}`;
  if (failure === 'timeout') return refusal(504, 'UPSTREAM_TIMEOUT', `hivemind proxy: ${app} did not answer in time after ${tries}${where}: ${message}; raise x-hivemind.proxy.timeout if it needs longer`);
  return refusal(502, 'UPSTREAM_UNREACHABLE', `hivemind proxy: cannot reach ${app} after ${tries}${where}: ${message}`);
}

/** Answers a request the proxy cannot forward, or cuts the response off when its head was already sent. */
export function answer(response: ClientResponse, refused: ProxyRefusal): void {
  if (response.headersSent) {
    response.destroy();
    return;
  }
  const body = `${refused.message}\n`;
  response.writeHead(refused.status, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body), [PROXY_ERROR_HEADER]: refused.code });
  response.end(body);
}

function describeError(error: unknown): string {
  const code = (error as { code?: string }).code;
  const message = (error as Error).message ?? String(error);
  return code !== undefined && !message.includes(code) ? `${message} (${code})` : message;
}
