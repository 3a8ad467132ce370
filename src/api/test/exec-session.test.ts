// The framing of an exec session (POST /v1/instances/:id/exec/session): the
// request line checked field by field; input lines read in order however
// the bytes are cut; a bad line refused naming its number and field.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ApiError } from '../errors.js';
import { EXEC_TIMEOUT_SECONDS_DEFAULT } from '../exec-request.js';
import { ExecFrameError, openSession, readFrame, readSessionRequest, SESSION_LINE_BYTES_MAX, sessionEvents } from '../exec-session.js';
import type { ExecInputEvent } from '../../node/capabilities.js';

async function* chunks(...parts: (string | Buffer)[]): AsyncGenerator<Uint8Array> {
  for (const part of parts) yield Buffer.from(part);
}

async function collect(events: AsyncIterable<ExecInputEvent>): Promise<unknown[]> {
  const seen: unknown[] = [];
  for await (const event of events) seen.push(event.type === 'stdin' ? { stdin: Buffer.from(event.data).toString('utf8') } : event);
  return seen;
}

function refusal(text: string): string {
  try {
    readSessionRequest(text);
  } catch (error) {
    assert.instance(error, ApiError);
    return `${(error as ApiError).field}: ${(error as Error).message}`;
  }
  throw new Error('expected a refusal');
}

test('the request line: command, timeout, stdin and tty; each bad field refused by name', () => {
  assert.equal(readSessionRequest('{"command":["sh"],"stdin":true,"tty":{"columns":80,"rows":24}}'), {
    command: ['sh'],
    timeoutSeconds: EXEC_TIMEOUT_SECONDS_DEFAULT,
    stdin: true,
    tty: { columns: 80, rows: 24 },
  });
  assert.equal(readSessionRequest('{"command":["cat"],"timeoutSeconds":9}'), { command: ['cat'], timeoutSeconds: 9, stdin: false });
  assert.match(refusal('{"command":["sh"],"tty":{"columns":0,"rows":24}}'), /^tty: tty must be \{ "columns": N, "rows": N \}/);
  assert.match(refusal('{"command":["sh"],"tty":{"columns":80,"rows":24,"x":1}}'), /^tty: /);
  assert.match(refusal('{"command":["sh"],"stdin":"yes"}'), /^stdin: stdin must be true or false/);
  assert.match(refusal('{"command":["sh"],"shell":true}'), /^shell: unknown field "shell"/);
  assert.match(refusal('{"command":[]}'), /^command: /);
  assert.match(refusal('not json'), /^undefined: the first line of an exec session must be its request as JSON/);
  assert.match(refusal('[1]'), /must be a JSON object/);
});

test('frames: stdin bytes, their end, resizes; a bad frame names its line and field', () => {
  assert.equal(readFrame('{"stdin":"aGk="}', 2), { type: 'stdin', data: Buffer.from('hi') });
  assert.equal(readFrame('{"stdinEnd":true}', 3), { type: 'stdin-end' });
  assert.equal(readFrame('{"resize":{"columns":100,"rows":30}}', 4), { type: 'resize', size: { columns: 100, rows: 30 } });
  const cases: [string, RegExp][] = [
    ['{"stdin":"not base64!"}', /^input line 5: stdin must be base64 text$/],
    ['{"stdinEnd":false}', /^input line 5: stdinEnd must be true$/],
    ['{"resize":{"columns":100}}', /^input line 5: resize must be/],
    ['{"paste":"x"}', /^input line 5: unknown field "paste"/],
    ['{"stdin":"aGk=","resize":{"columns":1,"rows":1}}', /^input line 5: a frame is an object with one field/],
    ['{', /^input line 5: not JSON/],
  ];
  for (const [text, expected] of cases) {
    try {
      readFrame(text, 5);
      assert.unreachable(text);
    } catch (error) {
      assert.instance(error, ExecFrameError, text);
      assert.match((error as Error).message, expected);
    }
  }
});

test('a session body cut anywhere gives the same request and events; the rest passes on byte for byte', async () => {
  const body = '{"command":["cat"],"stdin":true}\n{"stdin":"b25l"}\n\n{"stdin":"dHdv"}\n{"stdinEnd":true}\n{"resize":{"columns":2,"rows":3}}';
  for (const cut of [1, 7, 33, 34, 40, body.length - 1]) {
    const session = await openSession(chunks(body.slice(0, cut), body.slice(cut)));
    assert.equal(session.request, { command: ['cat'], timeoutSeconds: EXEC_TIMEOUT_SECONDS_DEFAULT, stdin: true });
    assert.equal(await collect(sessionEvents(session.rest)), [{ stdin: 'one' }, { stdin: 'two' }, { type: 'stdin-end' }, { type: 'resize', size: { columns: 2, rows: 3 } }], `cut at ${cut}`);
  }
  const passed = await openSession(chunks(body.slice(0, 20), body.slice(20)));
  const bytes: Buffer[] = [passed.firstLine];
  for await (const chunk of passed.rest) bytes.push(Buffer.from(chunk));
  assert.is(Buffer.concat(bytes).toString('utf8'), body.replace('\n', ''));
});

test('a body without a request line, an overlong line and a bad line later are refused', async () => {
  try {
    await openSession(chunks());
    assert.unreachable();
  } catch (error) {
    assert.instance(error, ApiError);
    assert.is((error as ApiError).field, 'command');
  }
  const long = await openSession(chunks('{"command":["cat"]}\n', Buffer.alloc(SESSION_LINE_BYTES_MAX + 10, 0x61)));
  try {
    await collect(sessionEvents(long.rest));
    assert.unreachable();
  } catch (error) {
    assert.instance(error, ExecFrameError);
    assert.match((error as Error).message, /^input line 2: a line is over 262144 bytes$/);
  }
  const bad = await openSession(chunks('{"command":["cat"]}\n{"stdin":"aGk="}\n{"oops":1}\n'));
  const seen: unknown[] = [];
  try {
    for await (const event of sessionEvents(bad.rest)) seen.push(event.type);
    assert.unreachable();
  } catch (error) {
    assert.match((error as Error).message, /^input line 3: unknown field "oops"/);
  }
  assert.equal(seen, ['stdin']);
});

test.run();
