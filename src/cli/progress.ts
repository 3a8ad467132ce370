/**
 * Progress bars for long transfers (an image sent to a node, a backup
 * received), on stderr, drawn only when stderr is a terminal and the output
 * is not JSON: piped or scripted runs print nothing extra. Built on
 * `cli-progress`.
 */
import { Transform, type Readable } from 'node:stream';
import { Presets, SingleBar } from 'cli-progress';
import { formatBytes } from '../state/errors.js';

/** A transfer's progress: `add` bytes as they pass, `restart` when a retry starts over, `stop` when it ends. */
export interface ByteProgress {
  add(bytes: number): void;
  restart(): void;
  stop(): void;
}

const SILENT: ByteProgress = { add: () => undefined, restart: () => undefined, stop: () => undefined };

/**
 * A bar labelled `label` on `stream`, of `totalBytes` when known (else a
 * running count); a no-op unless `stream` is a terminal and `json` is off.
 */
export function byteProgress(options: { stream: NodeJS.WriteStream; json: boolean; label: string; totalBytes?: number }): ByteProgress {
  if (options.json || options.stream.isTTY !== true) return SILENT;
  const known = options.totalBytes !== undefined && options.totalBytes > 0;
  const bar = new SingleBar(
    {
      stream: options.stream,
      format: known ? `${options.label} [{bar}] {percentage}% {done} of {size}` : `${options.label} {done}`,
      hideCursor: true,
      clearOnComplete: false,
      // At most 10 redraws a second, whatever the chunk rate.
      fps: 10,
    },
    Presets.shades_classic,
  );
  let done = 0;
  bar.start(known ? options.totalBytes! : 1, 0, { done: formatBytes(0), size: known ? formatBytes(options.totalBytes!) : '' });
  return {
    add(bytes) {
      done += bytes;
      bar.update(known ? Math.min(done, options.totalBytes!) : 0, { done: formatBytes(done) });
    },
    restart() {
      done = 0;
      bar.update(0, { done: formatBytes(0) });
    },
    stop() {
      bar.stop();
    },
  };
}

/** `source` as it is, counting each chunk into `progress` as it is read (an error of `source` ends the result with it). */
export function counted(source: Readable, progress: ByteProgress): Readable {
  const counter = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      progress.add(chunk.length);
      done(null, chunk);
    },
  });
  source.on('error', (error) => counter.destroy(error));
  return source.pipe(counter);
}
