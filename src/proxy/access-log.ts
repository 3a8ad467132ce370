/**
 * Access log lines, one per request, appended to `<data-dir>/proxy/access.log`
 * through a buffered stream (the request path never waits on the disk).
 * Lines are gathered and written together once `ACCESS_LOG_FLUSH_BYTES` are
 * waiting or `ACCESS_LOG_FLUSH_MS` after the first of them (a write per line,
 * or per turn of the event loop, was 6% of the proxy's CPU under
 * `npm run bench:proxy`). A line:
 * time, client, "method host path", status, duration in ms, app, instance,
 * attempts, and the proxy's error code or "-".
 */
import { createWriteStream, mkdirSync, type WriteStream } from 'node:fs';
import { dirname } from 'node:path';
import type { RequestRecord } from './proxy.js';

/** Lines waiting for the disk past this many bytes are dropped (and counted), not buffered without end. */
export const ACCESS_LOG_BUFFER_BYTES_MAX = 4 * 1024 * 1024;
/** Gathered lines go to the file once this many characters wait... */
export const ACCESS_LOG_FLUSH_BYTES = 64 * 1024;
/** ...or this long after the first of them. */
export const ACCESS_LOG_FLUSH_MS = 100;

export class AccessLog {
  private readonly stream: WriteStream;
  private droppedLines = 0;
  /** Gathered lines, not yet given to the stream. */
  private pending = '';
  private timer: NodeJS.Timeout | undefined;
  private readonly flush = (): void => {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.pending === '') return;
    this.stream.write(this.pending);
    this.pending = '';
  };

  constructor(path: string) {
    mkdirSync(dirname(path), { recursive: true });
    this.stream = createWriteStream(path, { flags: 'a' });
    this.stream.on('error', () => {});
  }

  /** Lines dropped because the disk fell behind. */
  dropped(): number {
    return this.droppedLines;
  }

  /** Gathers the line of one request; it reaches the stream within `ACCESS_LOG_FLUSH_MS`. */
  write(record: RequestRecord, atMs: number): void {
    if (this.stream.writableLength + this.pending.length > ACCESS_LOG_BUFFER_BYTES_MAX) {
      this.droppedLines++;
      return;
    }
    this.pending += formatAccessLine(record, atMs);
    if (this.pending.length >= ACCESS_LOG_FLUSH_BYTES) this.flush();
    // Not ref'd: the log never keeps a process alive; close() writes what waits.
    else if (this.timer === undefined) this.timer = setTimeout(this.flush, ACCESS_LOG_FLUSH_MS).unref();
  }

  /** Writes what is queued and closes the file. */
  close(): Promise<void> {
    this.flush();
    return new Promise((resolve) => this.stream.end(() => resolve()));
  }
}

/** One line, ending in a newline. Pure. */
export function formatAccessLine(record: RequestRecord, atMs: number): string {
  const request = JSON.stringify(`${record.method} ${record.host} ${record.path}`);
  return `${new Date(atMs).toISOString()} ${record.client || '-'} ${request} ${record.status} ${record.durationMs.toFixed(1)}ms ${record.app ?? '-'} ${record.instance ?? '-'} ${record.attempts} ${record.error ?? '-'}\n`;
}
