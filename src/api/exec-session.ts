/**
 * The framing of an interactive exec (`POST /v1/instances/:id/exec/session`,
 * `hivemind exec -i`/`-t`): the request body is NDJSON sent as the command
 * runs, one JSON object a line.
 *
 *   line 1: the request, as the plain exec's body plus `stdin` (bool: the
 *           command reads the lines' input) and `tty` ({ columns, rows }:
 *           the command runs on a terminal of that size)
 *   then:   { "stdin": "<base64>" }            bytes for the command's stdin
 *           { "stdinEnd": true }               the end of its input
 *           { "resize": { "columns", "rows" } } the terminal's new size
 *
 * The end of the body is the end of the input. The answer is the plain
 * exec's (output lines, then the exit). Lines are plain JSON so the API's
 * forwarding to the instance's node passes them on as bytes, untouched.
 *
 * Everything here is deterministic: bytes in, requests and events out, or a
 * typed refusal naming the line and field.
 */
import { TERMINAL_CELLS_MAX, type ExecInputEvent, type TerminalSize } from '../node/capabilities.js';
import { invalidArgument } from './errors.js';
import { readExecRequest, type ExecRequest } from './exec-request.js';

/** The longest line of a session's body: a stdin frame of STDIN_CHUNK_BYTES_MAX in base64 and its wrapping fit with room. */
export const SESSION_LINE_BYTES_MAX = 256 * 1024;
/** The most stdin bytes a client should put in one frame (the CLI's reads are at most this). */
export const STDIN_CHUNK_BYTES_MAX = 64 * 1024;
/** All a session may send, in bytes: a limit on everything, far above an interactive session's. */
export const SESSION_BODY_BYTES_MAX = 64 * 2 ** 30;

/** What the first line asks for. */
export interface ExecSessionRequest extends ExecRequest {
  stdin: boolean;
  tty?: TerminalSize;
}

/** A frame that cannot be read: which line, and why. */
export class ExecFrameError extends Error {
  readonly code = 'invalid-argument';
  constructor(
    readonly line: number,
    readonly field: string,
    message: string,
  ) {
    super(`input line ${line}: ${message}`);
  }
}

const REQUEST_FIELDS = new Set(['command', 'timeoutSeconds', 'stdin', 'tty']);

/** A terminal size, checked; `field` names it in a refusal. */
function readTerminalSize(value: unknown, field: string): TerminalSize | string {
  const size = value as Partial<Record<string, unknown>> | null;
  const cells = (side: unknown): boolean => typeof side === 'number' && Number.isInteger(side) && side >= 1 && side <= TERMINAL_CELLS_MAX;
  if (typeof size !== 'object' || size === null || Array.isArray(size) || !cells(size.columns) || !cells(size.rows) || Object.keys(size).length !== 2) {
    return `${field} must be { "columns": N, "rows": N }, each a whole number from 1 to ${TERMINAL_CELLS_MAX}`;
  }
  return { columns: size.columns as number, rows: size.rows as number };
}

/** The session's first line, checked field by field (an ApiError naming the field). */
export function readSessionRequest(text: string): ExecSessionRequest {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch (error) {
    throw invalidArgument(undefined, `the first line of an exec session must be its request as JSON: ${(error as Error).message}`);
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw invalidArgument(undefined, 'the first line of an exec session must be a JSON object: { "command": [...], "stdin": true, "tty": { "columns": 80, "rows": 24 } }');
  const fields = body as Record<string, unknown>;
  for (const name of Object.keys(fields)) {
    if (!REQUEST_FIELDS.has(name)) throw invalidArgument(name, `unknown field ${JSON.stringify(name)}: an exec session's request takes ${[...REQUEST_FIELDS].join(', ')}`);
  }
  const request = readExecRequest({ command: fields.command, ...(fields.timeoutSeconds === undefined ? {} : { timeoutSeconds: fields.timeoutSeconds }) });
  if (fields.stdin !== undefined && typeof fields.stdin !== 'boolean') throw invalidArgument('stdin', 'stdin must be true or false');
  if (fields.tty === undefined) return { ...request, stdin: fields.stdin === true };
  const tty = readTerminalSize(fields.tty, 'tty');
  if (typeof tty === 'string') throw invalidArgument('tty', tty);
  return { ...request, stdin: fields.stdin === true, tty };
}

/** One frame after the first line (line `number`, counted from 1), checked. */
export function readFrame(text: string, number: number): ExecInputEvent {
  let frame: unknown;
  try {
    frame = JSON.parse(text);
  } catch (error) {
    throw new ExecFrameError(number, '', `not JSON: ${(error as Error).message}`);
  }
  if (typeof frame !== 'object' || frame === null || Array.isArray(frame) || Object.keys(frame).length !== 1) {
    throw new ExecFrameError(number, '', 'a frame is an object with one field: stdin, stdinEnd or resize');
  }
  const fields = frame as Record<string, unknown>;
  if ('stdin' in fields) {
    const data = fields.stdin;
    if (typeof data !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(data) || data.length % 4 !== 0) throw new ExecFrameError(number, 'stdin', 'stdin must be base64 text');
    return { type: 'stdin', data: Buffer.from(data, 'base64') };
  }
  if ('stdinEnd' in fields) {
    if (fields.stdinEnd !== true) throw new ExecFrameError(number, 'stdinEnd', 'stdinEnd must be true');
    return { type: 'stdin-end' };
  }
  if ('resize' in fields) {
    const size = readTerminalSize(fields.resize, 'resize');
    if (typeof size === 'string') throw new ExecFrameError(number, 'resize', size);
    return { type: 'resize', size };
  }
  throw new ExecFrameError(number, Object.keys(fields)[0]!, `unknown field ${JSON.stringify(Object.keys(fields)[0])}: a frame is stdin, stdinEnd or resize`);
}

/**
 * Splits `body` into lines of at most SESSION_LINE_BYTES_MAX (an
 * ExecFrameError past it); a last line without its newline counts. Yields
 * each line's bytes without the newline; blank lines are skipped.
 */
export async function* sessionLines(body: AsyncIterable<Uint8Array>, firstLineNumber = 1): AsyncGenerator<{ number: number; bytes: Buffer }> {
  let pending = Buffer.alloc(0);
  let number = firstLineNumber;
  for await (const chunk of body) {
    pending = pending.length === 0 ? Buffer.from(chunk) : Buffer.concat([pending, chunk]);
    for (;;) {
      const end = pending.indexOf(0x0a);
      if (end < 0) break;
      const bytes = pending.subarray(0, end);
      pending = pending.subarray(end + 1);
      if (bytes.length > SESSION_LINE_BYTES_MAX) throw new ExecFrameError(number, '', `a line is over ${SESSION_LINE_BYTES_MAX} bytes`);
      if (bytes.length > 0) yield { number, bytes };
      number++;
    }
    if (pending.length > SESSION_LINE_BYTES_MAX) throw new ExecFrameError(number, '', `a line is over ${SESSION_LINE_BYTES_MAX} bytes`);
  }
  if (pending.length > 0) yield { number, bytes: pending };
}

/**
 * Reads a session body's first line and hands back the rest as raw bytes
 * (to run here, or to pass on to the instance's node as they come).
 * Refuses (ApiError 400) a body that ends before its first line or whose
 * first line is too long.
 */
export async function openSession(body: AsyncIterable<Uint8Array>): Promise<{ request: ExecSessionRequest; firstLine: Buffer; rest: AsyncIterable<Uint8Array> }> {
  const iterator = body[Symbol.asyncIterator]();
  let pending = Buffer.alloc(0);
  for (;;) {
    const end = pending.indexOf(0x0a);
    if (end >= 0) {
      const firstLine = pending.subarray(0, end);
      const leftover = pending.subarray(end + 1);
      return { request: readSessionRequest(firstLine.toString('utf8')), firstLine, rest: restOf(leftover, iterator) };
    }
    if (pending.length > SESSION_LINE_BYTES_MAX) throw invalidArgument(undefined, `the first line of an exec session is over ${SESSION_LINE_BYTES_MAX} bytes`);
    const next = await iterator.next();
    if (next.done === true) {
      if (pending.length === 0) throw invalidArgument('command', 'an exec session\'s body must begin with its request line: { "command": [...] }');
      return { request: readSessionRequest(pending.toString('utf8')), firstLine: pending, rest: restOf(Buffer.alloc(0), iterator) };
    }
    pending = Buffer.concat([pending, next.value]);
  }
}

async function* restOf(leftover: Buffer, iterator: AsyncIterator<Uint8Array>): AsyncGenerator<Uint8Array> {
  if (leftover.length > 0) yield leftover;
  for (;;) {
    const next = await iterator.next();
    if (next.done === true) return;
    yield next.value;
  }
}

/** The input events of a session's body after its first line (an ExecFrameError at the first bad line). */
export async function* sessionEvents(rest: AsyncIterable<Uint8Array>): AsyncGenerator<ExecInputEvent> {
  for await (const line of sessionLines(rest, 2)) yield readFrame(line.bytes.toString('utf8'), line.number);
}
