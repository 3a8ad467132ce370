/**
 * Access log lines, one per request, appended to `<data-dir>/proxy/access.log`
 * through a buffered stream (the request path never waits on the disk). A
 * line: time, client, "method host path", status, duration in ms, app,
 * instance, attempts, and the proxy's error code or "-".
 */
import { createWriteStream, mkdirSync, type WriteStream } from 'node:fs';
import { dirname } from 'node:path';
import type { RequestRecord } from './proxy.js';

/** Lines waiting for the disk past this many bytes are dropped (and counted), not buffered without end. */
export const ACCESS_LOG_BUFFER_BYTES_MAX = 4 * 1024 * 1024;

export class AccessLog {
  private readonly stream: WriteStream;
  private droppedLines = 0;

  constructor(path: string) {
    mkdirSync(dirname(path), { recursive: true });
    this.stream = createWriteStream(path, { flags: 'a' });
    this.stream.on('error', () => {});
  }

  /** Lines dropped because the disk fell behind. */
  dropped(): number {
    return this.droppedLines;
  }

  write(record: RequestRecord, atMs: number): void {
    if (this.stream.writableLength > ACCESS_LOG_BUFFER_BYTES_MAX) {
      this.droppedLines++;
      return;
    }
    this.stream.write(formatAccessLine(record, atMs));
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.stream.end(() => resolve()));
  }
}

/** One line, ending in a newline. Pure. */
export function formatAccessLine(record: RequestRecord, atMs: number): string {
  const request = JSON.stringify(`${record.method} ${record.host} ${record.path}`);
  return `${new Date(atMs).toISOString()} ${record.client || '-'} ${request} ${record.status} ${record.durationMs.toFixed(1)}ms ${record.app ?? '-'} ${record.instance ?? '-'} ${record.attempts} ${record.error ?? '-'}\n`;
}
