/**
 * A proxy worker process (node:cluster, forked by `workers.ts`): one
 * `ProxyServing` that routes by the records the main process sends. A
 * `table` message is applied at once (the route table is rebuilt before the
 * acknowledgement, so an acknowledged index is one this worker routes by);
 * `listen` joins the shared port; `stop` closes and exits. The worker exits
 * when its channel to the main process closes, so an agent that dies leaves
 * no proxy behind.
 */
import cluster from 'node:cluster';
import { Registry } from 'prom-client';
import { assert } from '../../consensus/core/assert.js';
import type { DiscoveryInput } from '../discovery/endpoints.js';
import { ProxyServing } from './serving.js';
import { readToWorker, WORKER_ENV, type FromWorker } from './worker-protocol.js';

function send(message: FromWorker): void {
  if (process.connected) process.send!(message);
}

function main(): void {
  assert(cluster.isWorker && process.send !== undefined, 'the proxy worker runs only as a node:cluster worker of the agent');
  const workerCount = Number(process.env[WORKER_ENV.workers] ?? '1');
  assert(Number.isSafeInteger(workerCount) && workerCount >= 1, `${WORKER_ENV.workers} is ${process.env[WORKER_ENV.workers]}, not a whole number of at least 1`);
  const accessLogPath = process.env[WORKER_ENV.accessLog] || undefined;
  let input: DiscoveryInput | undefined;
  let serving: ProxyServing | undefined;
  const registry = new Registry();
  const serve = (host: string, port: number): ProxyServing =>
    new ProxyServing({
      read: () => {
        assert(input !== undefined, 'a proxy worker serves only after its first table');
        return input;
      },
      registry,
      accessLogPath,
      log: (line) => send({ kind: 'log', line }),
      host,
      port,
      workerCount,
    });
  process.on('message', (raw: unknown) => {
    const message = readToWorker(raw);
    if (typeof message === 'string') return send({ kind: 'log', line: `dropped: ${message}` });
    switch (message.kind) {
      case 'table':
        input = message.input;
        if (serving !== undefined) {
          serving.proxy.invalidate();
          serving.proxy.routes();
        }
        send({ kind: 'applied', index: message.index });
        return;
      case 'listen': {
        if (serving !== undefined) return;
        const current = serve(message.host, message.port);
        serving = current;
        current.proxy.routes();
        current.listen().then(
          (port) => send({ kind: 'listening', port }),
          (error: unknown) => send({ kind: 'listen-failed', message: (error as Error).message }),
        );
        return;
      }
      case 'metrics':
        registry.getMetricsAsJSON().then(
          (metrics) => send({ kind: 'metrics', request: message.request, metrics }),
          () => send({ kind: 'metrics', request: message.request, metrics: [] }),
        );
        return;
      case 'stop':
        void (serving?.close() ?? Promise.resolve()).finally(() => process.exit(0));
        return;
    }
  });
  // SIGTERM ends the process through exit(), so a --cpu-prof profile is written.
  process.once('SIGTERM', () => process.exit(0));
  // The agent is gone: nothing feeds this worker any more.
  process.on('disconnect', () => void (serving?.close() ?? Promise.resolve()).finally(() => process.exit(0)));
  send({ kind: 'started' });
}

main();
