/**
 * App files are parsed on a worker thread, not on the agent's event loop:
 * the loop also runs Raft's ticks and heartbeats, and a hostile file (a
 * megabyte of nested or flat YAML collections) takes the YAML parser
 * seconds. One worker, one parse at a time (a queue of at most
 * QUEUED_PARSES_MAX); a parse that runs past its time limit ends the worker,
 * which is started again for the next, and the deploy is refused naming the
 * limit. The limit counts from when the worker is ready (it says so once its
 * modules are loaded): starting a worker takes seconds on a busy machine, and
 * that time is not the file's. No worker runs until the first app file
 * arrives, and none once the node has read none for WORKER_IDLE_MS.
 */
import { Worker } from 'node:worker_threads';
import type { AppFileSource, ParseAppFileOptions, ParseAppFileResult } from '../appfile/index.js';
import { ApiCode, ApiError } from './errors.js';

/** How long one parse may take on the worker. */
export const APP_FILE_PARSE_MS_MAX = 3000;
/** Parses waiting for the worker at most; one more is refused (503). */
const QUEUED_PARSES_MAX = 16;
/**
 * An idle worker ends after this long: it holds a V8 isolate with the YAML
 * parser loaded (about 20 MiB of RSS, 30 MiB once it has read a thousand
 * apps). The next parse starts one again (a few hundred milliseconds, not
 * counted against the parse's limit); a run of deploys keeps it.
 */
const WORKER_IDLE_MS = 15_000;
/** How long a new worker may take to load before the parse waiting for it is refused (503) and the worker ended. */
export const WORKER_START_MS_MAX = 60_000;

const WORKER_URL = new URL('./app-file-worker-main.js', import.meta.url);

interface Pending {
  id: number;
  sources: AppFileSource[];
  /** The files' names, for messages. */
  fileName: string;
  options: ParseAppFileOptions;
  resolve: (result: ParseAppFileResult) => void;
  reject: (error: Error) => void;
}

/** See the file comment. `close` ends the worker; a later `parse` starts it again. */
export class AppFileParserPool {
  private worker: Worker | undefined;
  /** Whether `worker` said it is loaded; until then the current parse's timer is the start limit, not the parse limit. */
  private workerReady = false;
  private readonly queue: Pending[] = [];
  private current: { pending: Pending; timer: NodeJS.Timeout } | undefined;
  private idleTimer: NodeJS.Timeout | undefined;
  private nextId = 1;

  constructor(private readonly parseMsMax = APP_FILE_PARSE_MS_MAX) {}

  /** Parses `sources` (one app file, or several merged) on the worker. Rejects with an ApiError (400 too slow, 503 too many waiting). */
  parse(sources: AppFileSource[], options: ParseAppFileOptions = {}): Promise<ParseAppFileResult> {
    const fileName = sources.map((source) => source.name).join('+');
    if (this.queue.length >= QUEUED_PARSES_MAX) {
      return Promise.reject(new ApiError(503, ApiCode.unavailable, `${QUEUED_PARSES_MAX} app files are already waiting to be read on this node; retry shortly`));
    }
    return new Promise((resolve, reject) => {
      this.queue.push({ id: this.nextId++, sources, fileName, options, resolve, reject });
      this.pump();
    });
  }

  private endIdleWorker(): void {
    this.idleTimer = undefined;
    if (this.current !== undefined || this.queue.length > 0) return;
    const worker = this.worker;
    this.worker = undefined;
    void worker?.terminate();
  }

  async close(): Promise<void> {
    clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
    for (const pending of this.queue.splice(0)) pending.reject(new ApiError(503, ApiCode.unavailable, 'the node is stopping'));
    if (this.current !== undefined) {
      clearTimeout(this.current.timer);
      this.current.pending.reject(new ApiError(503, ApiCode.unavailable, 'the node is stopping'));
      this.current = undefined;
    }
    const worker = this.worker;
    this.worker = undefined;
    await worker?.terminate();
  }

  private pump(): void {
    if (this.current !== undefined) return;
    const pending = this.queue.shift();
    if (pending === undefined) {
      this.idleTimer ??= setTimeout(() => this.endIdleWorker(), WORKER_IDLE_MS).unref();
      return;
    }
    clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
    const worker = this.ensureWorker();
    const timer = this.workerReady ? setTimeout(() => this.timedOut(), this.parseMsMax) : setTimeout(() => this.startTimedOut(), WORKER_START_MS_MAX);
    this.current = { pending, timer };
    worker.postMessage({ id: pending.id, sources: pending.sources, options: pending.options });
  }

  private ensureWorker(): Worker {
    if (this.worker !== undefined) return this.worker;
    const worker = new Worker(WORKER_URL);
    worker.unref();
    this.workerReady = false;
    worker.on('message', (message: { ready: true } | { id: number; result: ParseAppFileResult }) => {
      const current = this.current;
      if ('ready' in message) {
        if (this.worker !== worker) return;
        this.workerReady = true;
        // The parse already sent (the worker reads it next) gets its whole time limit from now.
        if (current !== undefined) {
          clearTimeout(current.timer);
          current.timer = setTimeout(() => this.timedOut(), this.parseMsMax);
        }
        return;
      }
      if (current === undefined || current.pending.id !== message.id) return;
      clearTimeout(current.timer);
      this.current = undefined;
      current.pending.resolve(message.result);
      this.pump();
    });
    worker.on('error', (error) => this.lost(worker, error));
    worker.on('exit', () => this.lost(worker, new Error('the app file reader stopped')));
    this.worker = worker;
    return worker;
  }

  /** The worker died (a bug in the parser or out of memory): the parse in progress fails, the next starts a new one. */
  private lost(worker: Worker, error: Error): void {
    if (this.worker !== worker) return;
    this.worker = undefined;
    const current = this.current;
    if (current === undefined) return;
    clearTimeout(current.timer);
    this.current = undefined;
    current.pending.reject(new ApiError(500, ApiCode.internal, `reading ${current.pending.fileName} failed on this node: ${error.message}`));
    this.pump();
  }

  /** A new worker did not load within WORKER_START_MS_MAX: the node is overloaded or broken, not the file. */
  private startTimedOut(): void {
    const current = this.current;
    if (current === undefined) return;
    this.current = undefined;
    const worker = this.worker;
    this.worker = undefined;
    void worker?.terminate();
    current.pending.reject(new ApiError(503, ApiCode.unavailable, `the app file reader did not start within ${WORKER_START_MS_MAX / 1000} s on this node; retry`));
    this.pump();
  }

  private timedOut(): void {
    const current = this.current;
    if (current === undefined) return;
    this.current = undefined;
    const worker = this.worker;
    this.worker = undefined;
    void worker?.terminate();
    current.pending.reject(
      new ApiError(400, ApiCode.invalidArgument, `cannot deploy ${current.pending.fileName}: it takes longer than ${this.parseMsMax / 1000} s to read (a very large or deeply nested file); split it or simplify it`, 'content'),
    );
    this.pump();
  }
}
