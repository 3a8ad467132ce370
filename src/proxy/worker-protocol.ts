/**
 * The messages between the proxy's main process and its workers (`workers.ts`,
 * `worker-main.ts`), over node:cluster's IPC channel with structured-clone
 * serialization. Each side checks what it receives with the readers here
 * and drops what does not fit (a message is logged, never thrown on). Pure.
 */
import type { MetricObjectWithValues, MetricValue } from 'prom-client';
import type { DiscoveryInput } from '../discovery/endpoints.js';

/** Main to worker. Sent in this order per worker: `table` (at least one) before `listen`. */
export type ToWorker =
  /** The replica's records at applied index `index`: rebuild the route table, then acknowledge. */
  | { readonly kind: 'table'; readonly index: number; readonly input: DiscoveryInput }
  /** Start serving on the shared port (node:cluster hands connections round-robin). */
  | { readonly kind: 'listen'; readonly host: string; readonly port: number }
  /** Send your metrics (prom-client JSON), answering with the same `request`. */
  | { readonly kind: 'metrics'; readonly request: number }
  /** Close the server and pools, flush the access log, exit. */
  | { readonly kind: 'stop' };

/** Worker to main. */
export type FromWorker =
  /** The worker can take messages. */
  | { readonly kind: 'started' }
  /** The worker routes by the records of `index` from now on. */
  | { readonly kind: 'applied'; readonly index: number }
  | { readonly kind: 'listening'; readonly port: number }
  | { readonly kind: 'listen-failed'; readonly message: string }
  | { readonly kind: 'metrics'; readonly request: number; readonly metrics: MetricObjectWithValues<MetricValue<string>>[] }
  /** A breaker, ejection or route-conflict line, for the agent's log. */
  | { readonly kind: 'log'; readonly line: string };

/** Environment variables a worker is started with. */
export const WORKER_ENV = {
  /** Number of workers: each enforces this share of an app's `max_concurrent`. */
  workers: 'HIVEMIND_PROXY_WORKER_COUNT',
  /** The access log file; absent: none. */
  accessLog: 'HIVEMIND_PROXY_WORKER_ACCESS_LOG',
} as const;

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null;
}

function isIndex(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

/** `message` as a message from a worker, or a sentence saying what is wrong with it. */
export function readFromWorker(message: unknown): FromWorker | string {
  if (!isRecord(message)) return 'a message from a proxy worker is not an object';
  switch (message.kind) {
    case 'started':
      return { kind: 'started' };
    case 'applied':
      return isIndex(message.index) ? { kind: 'applied', index: message.index } : `a proxy worker's "applied" message has index ${String(message.index)}, not a whole number`;
    case 'listening':
      return isIndex(message.port) && message.port <= 65535 ? { kind: 'listening', port: message.port } : `a proxy worker's "listening" message has port ${String(message.port)}`;
    case 'listen-failed':
      return { kind: 'listen-failed', message: String(message.message) };
    case 'metrics':
      return isIndex(message.request) && Array.isArray(message.metrics) ? { kind: 'metrics', request: message.request, metrics: message.metrics as MetricObjectWithValues<MetricValue<string>>[] } : `a proxy worker's "metrics" message lacks its request number or metrics`;
    case 'log':
      return { kind: 'log', line: String(message.line) };
    default:
      return `a proxy worker sent a message of unknown kind ${JSON.stringify(message.kind)}`;
  }
}

/** `message` as a message from the main process, or a sentence saying what is wrong with it. */
export function readToWorker(message: unknown): ToWorker | string {
  if (!isRecord(message)) return 'a message to a proxy worker is not an object';
  switch (message.kind) {
    case 'table': {
      const input = message.input;
      if (!isIndex(message.index)) return `a "table" message has index ${String(message.index)}, not a whole number`;
      if (!isRecord(input) || !Array.isArray(input.apps) || !Array.isArray(input.instances) || !Array.isArray(input.nodes)) return 'a "table" message lacks the apps, instances and nodes of the state';
      return { kind: 'table', index: message.index, input: input as unknown as DiscoveryInput };
    }
    case 'listen':
      return typeof message.host === 'string' && isIndex(message.port) && message.port <= 65535 ? { kind: 'listen', host: message.host, port: message.port } : 'a "listen" message lacks its host or port';
    case 'metrics':
      return isIndex(message.request) ? { kind: 'metrics', request: message.request } : 'a "metrics" message lacks its request number';
    case 'stop':
      return { kind: 'stop' };
    default:
      return `a message of unknown kind ${JSON.stringify(message.kind)} came to a proxy worker`;
  }
}
