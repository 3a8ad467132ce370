// Progress bars: drawn on a terminal with the label, the share done and the
// bytes; nothing at all when the stream is not a terminal or the output is
// JSON; a counted stream passes every byte through unchanged.
import { Readable, Writable } from 'node:stream';
import { text } from 'node:stream/consumers';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { byteProgress, counted } from '../progress.js';

/** A stream that says it is a terminal (or not) and keeps what is written to it. */
function screen(isTTY: boolean): { stream: NodeJS.WriteStream; written: () => string } {
  let written = '';
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      written += chunk.toString();
      done();
    },
  }) as unknown as NodeJS.WriteStream;
  Object.assign(stream, { isTTY, columns: 100, cursorTo: () => true, clearLine: () => true, moveCursor: () => true });
  return { stream, written: () => written };
}

test('on a terminal: the label, the share done and the bytes', () => {
  const { stream, written } = screen(true);
  const progress = byteProgress({ stream, json: false, label: 'sending busybox.tar', totalBytes: 4 * 1024 * 1024 });
  progress.add(2 * 1024 * 1024);
  progress.add(2 * 1024 * 1024);
  progress.stop();
  assert.match(written(), /sending busybox\.tar/);
  assert.match(written(), /100% 4 MiB of 4 MiB/);
});

test('an unknown size counts bytes; a restart starts over', () => {
  const { stream, written } = screen(true);
  const progress = byteProgress({ stream, json: false, label: 'backup of acme/data' });
  progress.add(1024 * 1024);
  progress.restart();
  progress.add(3 * 1024 * 1024);
  progress.stop();
  assert.match(written(), /backup of acme\/data 3 MiB/);
});

test('not a terminal, or JSON output: nothing is drawn', () => {
  for (const [isTTY, json] of [[false, false], [true, true]] as const) {
    const { stream, written } = screen(isTTY);
    const progress = byteProgress({ stream, json, label: 'x', totalBytes: 10 });
    progress.add(10);
    progress.stop();
    assert.is(written(), '', `isTTY ${isTTY}, json ${json}`);
  }
});

test('a counted stream passes its bytes through and counts them', async () => {
  let total = 0;
  const source = Readable.from([Buffer.from('abc'), Buffer.from('defg')]);
  const through = counted(source, { add: (bytes) => (total += bytes), restart: () => undefined, stop: () => undefined });
  assert.is(await text(through), 'abcdefg');
  assert.is(total, 7);
});

test.run();
