import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { LoadOptions, LoadResult } from './load.js';
import type { FromWorker, ToWorker } from './load-worker.js';
import type { Resources } from './processes.js';

/** How a row's clients are spread: over processes, and over connections inside each. */
export interface FleetShape {
  /** Load processes (each its own Node event loop); at most one per client. */
  processes: number;
  /** gRPC connections per load process; at most one per client of that process. */
  channelsPerProcess: number;
}

/** One row's load, merged over every load process. */
export interface FleetResult {
  operations: number;
  errors: number;
  firstError: string | undefined;
  /** Sorted ascending, nanoseconds. */
  latenciesNs: Float64Array;
  windowMs: number;
  /** CPU used by all load processes during the window, as a percentage of one core. */
  loadCpuPercent: number;
  processes: number;
  channels: number;
  /** What the load's first connection negotiated; undefined for cleartext. */
  tlsDescription: string | undefined;
}

const workerPath = fileURLToPath(new URL('./load-worker.js', import.meta.url));

/**
 * Runs `options.clients` clients spread over `shape.processes` forked load
 * processes, all starting together. Every load process is tracked by
 * `resources`, so it dies with the benchmark.
 */
export async function runFleet(options: {
  load: LoadOptions;
  shape: FleetShape;
  resources: Resources;
  /** Called when the measurement window opens and closes (by this process's clock). */
  onWindow?: { open(): void; close(): void };
}): Promise<FleetResult> {
  const { load, shape, resources, onWindow } = options;
  const processCount = Math.max(1, Math.min(shape.processes, load.clients));
  const workers: ChildProcess[] = [];
  for (let index = 0; index < processCount; index++) {
    const worker = fork(workerPath, [], { serialization: 'advanced', stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    resources.track(worker);
    workers.push(worker);
  }
  try {
    return await driveWorkers({ workers, load, shape, onWindow });
  } finally {
    for (const worker of workers) if (worker.connected) worker.disconnect(); // each load process exits on this
  }
}

/** Prepares every load process, starts them together, and merges their results. */
async function driveWorkers(options: {
  workers: ChildProcess[];
  load: LoadOptions;
  shape: FleetShape;
  onWindow: { open(): void; close(): void } | undefined;
}): Promise<FleetResult> {
  const { workers, load, shape, onWindow } = options;
  const shares = splitEvenly(load.clients, workers.length);
  const channelCounts = shares.map((clients) => Math.max(1, Math.min(shape.channelsPerProcess, clients)));
  const readies = workers.map((worker) => nextMessage(worker));
  workers.forEach((worker, index) =>
    send(worker, {
      type: 'prepare',
      options: { ...load, clients: shares[index]!, channels: channelCounts[index]!, keyPrefix: `${load.keyPrefix}/p${index}` },
    }),
  );
  await Promise.all(readies.map((ready) => ready.then((message) => expect(message, 'ready'))));
  const finished = workers.map((worker) => nextMessage(worker));
  workers.forEach((worker) => send(worker, { type: 'go' }));
  const edges = onWindow ? windowEdges(onWindow, load) : undefined;
  const messages = await Promise.all(finished).finally(() => edges?.finish());
  const loadResults = messages.map((message) => expect(message, 'result').result);
  return merge(loadResults, { processes: workers.length, channels: channelCounts.reduce((a, b) => a + b, 0) });
}

/**
 * Calls `open` and `close` on this process's clock as the load processes'
 * window opens and closes. A load process may answer a moment before the
 * `close` timer fires; `finish` then closes at once.
 */
function windowEdges(onWindow: { open(): void; close(): void }, load: LoadOptions): { finish(): void } {
  const state = { opened: false, closed: false };
  const open = (): void => {
    state.opened = true;
    onWindow.open();
  };
  const close = (): void => {
    if (state.closed) return;
    if (!state.opened) open();
    state.closed = true;
    onWindow.close();
  };
  const timers = [setTimeout(open, load.warmupMs), setTimeout(close, load.warmupMs + load.durationMs)];
  return {
    finish: () => {
      timers.forEach(clearTimeout);
      close();
    },
  };
}

function send(worker: ChildProcess, message: ToWorker): void {
  worker.send(message);
}

function nextMessage(worker: ChildProcess): Promise<FromWorker> {
  return new Promise((resolve, reject) => {
    const onExit = (code: number | null): void => reject(new Error(`a load process exited (code ${code}) before answering`));
    worker.once('exit', onExit);
    worker.once('message', (message: FromWorker) => {
      worker.off('exit', onExit);
      resolve(message);
    });
  });
}

function expect<Type extends FromWorker['type']>(message: FromWorker, type: Type): Extract<FromWorker, { type: Type }> {
  if (message.type === 'failed') throw new Error(`a load process failed: ${message.message}`);
  if (message.type !== type) throw new Error(`a load process answered ${message.type}, expected ${type}`);
  return message as Extract<FromWorker, { type: Type }>;
}

/** `total` split into `parts` whole shares differing by at most one. */
function splitEvenly(total: number, parts: number): number[] {
  return Array.from({ length: parts }, (_, index) => Math.floor(total / parts) + (index < total % parts ? 1 : 0));
}

function merge(results: LoadResult[], shape: { processes: number; channels: number }): FleetResult {
  const total = results.reduce((sum, result) => sum + result.latenciesNs.length, 0);
  const latenciesNs = new Float64Array(total);
  let offset = 0;
  for (const result of results) {
    latenciesNs.set(result.latenciesNs, offset);
    offset += result.latenciesNs.length;
  }
  latenciesNs.sort();
  const windowMs = results[0]?.windowMs ?? 0;
  const cpuMs = results.reduce((sum, result) => sum + result.cpuMs, 0);
  return {
    operations: results.reduce((sum, result) => sum + result.operations, 0),
    errors: results.reduce((sum, result) => sum + result.errors, 0),
    firstError: results.find((result) => result.firstError !== undefined)?.firstError,
    latenciesNs,
    windowMs,
    loadCpuPercent: windowMs > 0 ? (100 * cpuMs) / windowMs : 0,
    tlsDescription: results.find((result) => result.tlsDescription !== undefined)?.tlsDescription,
    ...shape,
  };
}
