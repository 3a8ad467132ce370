/**
 * Reading a history file line by line, so that a long run's history (a
 * million events and more) is parsed without holding its whole text.
 */
import { closeSync, openSync, readSync } from 'node:fs';
import { StringDecoder } from 'node:string_decoder';
import { parseHistoryLines, type ParseResult } from './history.js';

const CHUNK_BYTES = 1 << 20;

/** The lines of a UTF-8 file, without their "\n", read CHUNK_BYTES at a time. Throws what `openSync` and `readSync` throw. */
export function* readLines(path: string): Generator<string> {
  const descriptor = openSync(path, 'r');
  try {
    const buffer = Buffer.alloc(CHUNK_BYTES);
    const decoder = new StringDecoder('utf8');
    let partial = '';
    for (;;) {
      const read = readSync(descriptor, buffer, 0, CHUNK_BYTES, null);
      if (read === 0) break;
      const lines = (partial + decoder.write(buffer.subarray(0, read))).split('\n');
      partial = lines.pop() ?? '';
      yield* lines;
    }
    partial += decoder.end();
    if (partial !== '') yield partial;
  } finally {
    closeSync(descriptor);
  }
}

/** Parses the history file at `path` (see `parseHistory`). Throws when it cannot be read. */
export function readHistoryFile(path: string): ParseResult {
  return parseHistoryLines(readLines(path));
}
