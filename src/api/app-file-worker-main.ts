/**
 * The worker thread behind `AppFileParserPool`: parses one app file per
 * message, off the agent's event loop (Raft ticks share that loop, and a
 * hostile file can take the YAML parser seconds).
 */
import { parentPort } from 'node:worker_threads';
import { parseAppFile, type ParseAppFileOptions } from '../appfile/index.js';

interface Request {
  id: number;
  text: string;
  fileName: string;
  options: ParseAppFileOptions;
}

parentPort?.on('message', (request: Request) => {
  parentPort!.postMessage({ id: request.id, result: parseAppFile(request.text, request.fileName, request.options) });
});
