/**
 * Per-instance log files: where they live, size rotation, and reading them
 * (the last lines, then following new ones).
 *
 * Rotation is copy-truncate: the workload holds its log open with O_APPEND,
 * so after `truncate` its next write lands at the new end (offset 0) and
 * nothing needs reopening. Lines written between the copy and the truncate
 * are lost; that window is one copy of at most LOG_BYTES_MAX.
 */
import { copyFileSync, existsSync, openSync, readSync, closeSync, renameSync, rmSync, statSync, truncateSync } from 'node:fs';
import { join } from 'node:path';

/** The size at which a log file is rotated. */
export const LOG_BYTES_MAX = 10 * 1024 * 1024;
/** Rotated files kept (`.1` newest, `.2` oldest). */
export const LOG_ROTATED_KEEP = 2;
/** The most lines `tail` returns. */
export const TAIL_LINES_MAX = 100_000;
/** How much of the end of the files `readTail` reads at most. */
const TAIL_READ_BYTES_MAX = LOG_BYTES_MAX * (LOG_ROTATED_KEEP + 1);

/** The log file of an instance under the executor's folder. */
export function logPathOf(executorDir: string, id: string): string {
  return join(executorDir, 'logs', `${id}.log`);
}

/** Rotates `path` when it is over `bytesMax`: `.1` → `.2`, copy to `.1`, truncate. Says whether it rotated. */
export function maybeRotate(path: string, bytesMax = LOG_BYTES_MAX, keep = LOG_ROTATED_KEEP): boolean {
  let size: number;
  try {
    size = statSync(path).size;
  } catch {
    return false;
  }
  if (size <= bytesMax) return false;
  if (keep <= 0) {
    truncateSync(path, 0);
    return true;
  }
  rmSync(`${path}.${keep}`, { force: true });
  for (let generation = keep - 1; generation >= 1; generation--) {
    if (existsSync(`${path}.${generation}`)) renameSync(`${path}.${generation}`, `${path}.${generation + 1}`);
  }
  copyFileSync(path, `${path}.1`);
  truncateSync(path, 0);
  return true;
}

/** The whole files of a log, oldest first: `.2`, `.1`, then the current one. */
function generations(path: string): string[] {
  const found: string[] = [];
  for (let generation = LOG_ROTATED_KEEP; generation >= 1; generation--) if (existsSync(`${path}.${generation}`)) found.push(`${path}.${generation}`);
  if (existsSync(path)) found.push(path);
  return found;
}

/** The last `lines` lines of the log (across rotated files), and the current file's size to follow from. */
export function readTail(path: string, lines: number): { text: string; offset: number } {
  const files = generations(path);
  const offset = existsSync(path) ? statSync(path).size : 0;
  if (lines <= 0) return { text: '', offset };
  let collected = Buffer.alloc(0);
  let budget = TAIL_READ_BYTES_MAX;
  // Read backwards file by file until enough newlines are in hand.
  for (let position = files.length - 1; position >= 0 && budget > 0; position--) {
    const file = files[position]!;
    const size = file === path ? offset : statSync(file).size;
    const length = Math.min(size, budget);
    const chunk = readRange(file, size - length, length);
    collected = Buffer.concat([chunk, collected]);
    budget -= length;
    if (countNewlines(collected) > lines) break;
  }
  let text = collected.toString('utf8');
  const ends = text.endsWith('\n');
  const all = (ends ? text.slice(0, -1) : text).split('\n');
  text = all.slice(-lines).join('\n') + (ends ? '\n' : '');
  return { text: collected.length === 0 ? '' : text, offset };
}

/** Bytes of `path` from `start`, `length` long (shorter if the file is). */
export function readRange(path: string, start: number, length: number): Buffer {
  if (length <= 0) return Buffer.alloc(0);
  const fd = openSync(path, 'r');
  try {
    const buffer = Buffer.alloc(length);
    const read = readSync(fd, buffer, 0, length, start);
    return buffer.subarray(0, read);
  } finally {
    closeSync(fd);
  }
}

function countNewlines(buffer: Buffer): number {
  let count = 0;
  for (let index = buffer.indexOf(10); index !== -1; index = buffer.indexOf(10, index + 1)) count++;
  return count;
}

/**
 * New bytes of the log as they are written, from `offset`, until `signal`
 * aborts (or `stopWhen()` says so after a poll found nothing new). A file
 * that shrank was rotated: reading starts over at its beginning.
 */
export async function* followLog(path: string, offset: number, options: { signal: AbortSignal; pollMs?: number; stopWhen?: () => boolean }): AsyncGenerator<Buffer> {
  const pollMs = options.pollMs ?? 250;
  const chunkBytesMax = 64 * 1024;
  let position = offset;
  while (!options.signal.aborted) {
    let size = 0;
    try {
      size = statSync(path).size;
    } catch {
      size = 0;
    }
    if (size < position) position = 0;
    if (size > position) {
      const chunk = readRange(path, position, Math.min(size - position, chunkBytesMax));
      position += chunk.length;
      if (chunk.length > 0) yield chunk;
      continue;
    }
    if (options.stopWhen?.()) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, pollMs);
      function done(): void {
        clearTimeout(timer);
        options.signal.removeEventListener('abort', done);
        resolve();
      }
      options.signal.addEventListener('abort', done, { once: true });
    });
  }
}
