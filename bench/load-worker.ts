/**
 * Entry point of one load process, forked by load-fleet.ts. It speaks a small
 * IPC protocol: it receives `prepare` (LoadOptions), connects and answers
 * `ready`; on `go` it runs the load and answers `result` (or `failed`), then
 * exits. It never outlives its parent: a closed IPC channel ends it.
 */
import { prepareLoad, type LoadOptions, type LoadResult, type PreparedLoad } from './load.js';

/** Messages from the fleet to a load process. */
export type ToWorker = { type: 'prepare'; options: LoadOptions } | { type: 'go' };
/** Messages from a load process to the fleet. */
export type FromWorker =
  | { type: 'ready' }
  | { type: 'result'; result: LoadResult }
  | { type: 'failed'; message: string };

function send(message: FromWorker): void {
  process.send!(message);
}

function fail(error: unknown): void {
  send({ type: 'failed', message: error instanceof Error ? error.message : String(error) });
}

let prepared: PreparedLoad | undefined;

process.on('disconnect', () => process.exit(0));
process.on('message', (message: ToWorker) => {
  if (message.type === 'prepare') {
    prepareLoad(message.options).then((load) => {
      prepared = load;
      send({ type: 'ready' });
    }, fail);
  } else if (message.type === 'go' && prepared) {
    const load = prepared;
    load.run().then((result) => {
      load.close();
      send({ type: 'result', result });
    }, fail);
  }
});
