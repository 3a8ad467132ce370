/**
 * Access log lines, one per request, appended to `<data-dir>/proxy/access.log`
 * through a buffered stream (the request path never waits on the disk). The
 * lines of one turn of the event loop go to the stream in one write (a
 * write per line cost a stream call and a buffer per request). A line:
 * time, client, "method host path", status, duration in ms, app, instance,
 * attempts, and the proxy's error code or "-".
 */
import { createWriteStream, mkdirSync, type WriteStream } from 'node:fs';
import { dirname } from 'node:path';
import type { RequestRecord } from './proxy.js';

/** Lines waiting for the disk past this many bytes are dropped (and counted), not buffered without end. */
export const ACCESS_LOG_BUFFER_BYTES_MAX = 4 * 1024 * 1024;

export class AccessLog {
  private readonly stream: WriteStream;
  private droppedLines = 0;
  /** Lines of this turn of the event loop, not yet given to the stream. */
  private pending = '';
  private flushScheduled = false;
  private readonly flush = (): void => {
    this.flushScheduled = false;
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

  /** Queues the line of one request; it reaches the stream at the end of this turn of the event loop. */
  write(record: RequestRecord, atMs: number): void {
    if (this.stream.writableLength + this.pending.length > ACCESS_LOG_BUFFER_BYTES_MAX) {
      this.droppedLines++;
      return;
    }
    this.pending += formatAccessLine(record, atMs);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(this.flush);
    }
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
