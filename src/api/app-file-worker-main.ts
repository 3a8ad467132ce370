/**
 * The worker thread behind `AppFileParserPool`: parses one app file per
 * message (or several merged), off the agent's event loop (Raft ticks share that loop, and a
 * hostile file can take the YAML parser seconds).
 */
import { parentPort } from 'node:worker_threads';
import { parseAppFiles, type AppFileSource, type ParseAppFileOptions } from '../appfile/index.js';

interface Request {
  id: number;
  sources: AppFileSource[];
  options: ParseAppFileOptions;
}

parentPort?.on('message', (request: Request) => {
  parentPort!.postMessage({ id: request.id, result: parseAppFiles(request.sources, request.options) });
});

// Loaded (the parser's modules imported and compiled): from now on a parse's time limit counts.
parentPort?.postMessage({ ready: true });
