/**
 * `POST /v1/instances/{id}/exec`: runs a command in a running instance
 * (containerd's exec in its task; a process app's command in its cgroups, as
 * its user, with its environment and folder) and streams the output back as
 * it comes. Any node answers: a node that does not run the instance passes
 * the request on once to the API of the instance's node (`?forwarded=true`
 * marks the hop), as the log routes do. A deployer of the instance's tenant
 * may do it.
 *
 * The answer is `application/x-ndjson`, one JSON object a line:
 * `{ "stream": "stdout"|"stderr", "data": "<base64>" }` for each chunk of
 * output, then `{ "exitCode": N, "timedOut": bool }`, or `{ "error": { code,
 * message } }` when the command could not run after the answer began.
 */
import { Readable } from 'node:stream';
import { ExecError, type ExecInputEvent, type TerminalSize } from '../node/capabilities.js';
import { ExecFrameError, openSession, sessionEvents, SESSION_BODY_BYTES_MAX } from './exec-session.js';
import { ApiCode, ApiError, invalidArgument } from './errors.js';
import { readExecRequest, type ExecRequest } from './exec-request.js';

export { EXEC_TIMEOUT_SECONDS_DEFAULT, EXEC_TIMEOUT_SECONDS_MAX, readExecRequest, type ExecRequest } from './exec-request.js';
import { serve, type Answer, type Route, type RouteContext } from './router.js';

/** Output chunks waiting for a slow client before the command's output is dropped with a note (the command runs on). */
const QUEUED_CHUNKS_MAX = 4096;

const INSTANCE_ID_PATTERN = /^[a-z0-9][a-z0-9.-]{0,254}$/;

/** Where the instance runs: here, or the API of its node. */
function locate(context: RouteContext, id: string, forwarded: boolean): { type: 'local' } | { type: 'remote'; node: string; address: string } {
  const instance = context.backend.machine.instance(id);
  const here = instance === undefined || instance.node === context.backend.nodeId || context.backend.capabilities().logs?.runs(id) === true;
  if (here || forwarded) {
    if (instance === undefined && context.backend.capabilities().logs?.runs(id) !== true) throw new ApiError(404, ApiCode.notFound, `instance "${id}" does not exist`, 'id');
    return { type: 'local' };
  }
  if (instance.node === undefined) throw new ApiError(409, ApiCode.conflict, `instance "${id}" is not placed on any node yet, so nothing runs to exec in`, 'id');
  const address = context.backend.machine.node(instance.node)?.addresses.api;
  if (address === undefined) throw new ApiError(503, ApiCode.unavailable, `instance "${id}" runs on node ${instance.node}, whose API address is unknown`);
  return { type: 'remote', node: instance.node, address };
}

/** One NDJSON line. */
function line(value: unknown): Uint8Array {
  return Buffer.from(`${JSON.stringify(value)}\n`);
}

/**
 * Runs the command here; the answer streams its output, then its exit. A
 * command that cannot start at all (the instance does not run here, the
 * runtime refuses) is an error answer before any output.
 */
async function execHere(context: RouteContext, id: string, request: ExecRequest, session?: { stdin: boolean; tty?: TerminalSize; input: AsyncIterable<ExecInputEvent> }): Promise<Answer> {
  const exec = context.backend.capabilities().exec;
  if (exec === undefined) throw new ApiError(503, ApiCode.unavailable, `node ${context.backend.nodeId} runs no executor, so it cannot run commands in instances`);
  const queue: Uint8Array[] = [];
  let dropped = false;
  let wake: (() => void) | undefined;
  const push = (chunk: Uint8Array): void => {
    if (queue.length >= QUEUED_CHUNKS_MAX) dropped = true;
    else queue.push(chunk);
    wake?.();
  };
  const stop = new AbortController();
  const leave = (): void => stop.abort();
  context.signal.addEventListener('abort', leave, { once: true });
  // A bad input line ends the command: the session's answer then says which line.
  let badFrame: ExecFrameError | undefined;
  const running = exec.exec(id, request.command, {
    signal: stop.signal,
    timeoutMs: request.timeoutSeconds * 1000,
    output: (stream, chunk) => push(line({ stream, data: Buffer.from(chunk).toString('base64') })),
    ...(session === undefined
      ? {}
      : {
          stdin: session.stdin,
          ...(session.tty === undefined ? {} : { terminal: session.tty }),
          input: checkedInput(session.input, (error) => {
            badFrame = error;
            stop.abort();
          }),
        }),
  });
  let outcome: { exitCode: number; timedOut: boolean } | { error: { code: string; message: string } } | undefined;
  let refusedField = 'id';
  const settled = running.then(
    (result) => {
      outcome = badFrame === undefined ? result : { error: { code: ApiCode.invalidArgument, message: badFrame.message } };
    },
    (error: unknown) => {
      outcome = { error: { code: error instanceof ExecError ? error.code : 'exec-failed', message: (error as Error).message } };
      if (error instanceof ExecError && error.field !== undefined) refusedField = error.field;
    },
  );
  // Wait for the first output or the end, so an exec that cannot start is a plain error answer.
  await Promise.race([settled, new Promise<void>((resolve) => (wake = resolve))]);
  wake = undefined;
  if (outcome !== undefined && 'error' in outcome && queue.length === 0) {
    context.signal.removeEventListener('abort', leave);
    // Not running here: a conflict to retry later; a runtime without exec: unavailable; the command refused by the runtime (no such program): the command's fault.
    if (outcome.error.code === 'not-running') throw new ApiError(409, ApiCode.conflict, outcome.error.message, 'id');
    if (outcome.error.code === 'unsupported') throw new ApiError(501, ApiCode.unavailable, outcome.error.message, refusedField);
    // A bad input line of a session is the input's fault, not the command's.
    throw new ApiError(400, ApiCode.invalidArgument, outcome.error.message, badFrame === undefined ? 'command' : undefined);
  }
  async function* stream(): AsyncGenerator<Uint8Array> {
    try {
      for (;;) {
        while (queue.length > 0) yield queue.shift()!;
        if (outcome !== undefined) break;
        await Promise.race([settled, new Promise<void>((resolve) => (wake = resolve))]);
        wake = undefined;
      }
      while (queue.length > 0) yield queue.shift()!;
      if (dropped) yield line({ stream: 'stderr', data: Buffer.from(`hivemind: some output was dropped: the client read it too slowly\n`).toString('base64') });
      yield line(outcome);
    } finally {
      context.signal.removeEventListener('abort', leave);
      // A client that left: the command is killed.
      if (outcome === undefined) stop.abort();
    }
  }
  return { status: 200, stream: stream(), contentType: 'application/x-ndjson' };
}

/**
 * The session's input events, handed on until the first bad line, which
 * goes to `refuse` (the command is then ended) and ends the input. A
 * client that went away mid-body ends the input too.
 */
async function* checkedInput(input: AsyncIterable<ExecInputEvent>, refuse: (error: ExecFrameError) => void): AsyncGenerator<ExecInputEvent> {
  try {
    yield* input;
  } catch (error) {
    if (error instanceof ExecFrameError) refuse(error);
    else if (error instanceof ApiError) refuse(new ExecFrameError(0, error.field ?? '', error.message));
  }
}

/**
 * Passes the request to the API of the instance's node, streaming its
 * answer back. `body` is the plain exec's request, or a session's bytes as
 * they come (its first line, then the rest) to the session route.
 */
async function forward(context: RouteContext, id: string, target: { node: string; address: string }, body: { request: ExecRequest } | { session: AsyncIterable<Uint8Array> }): Promise<Answer> {
  const session = 'session' in body;
  const headers: Record<string, string> = { 'content-type': session ? 'application/x-ndjson' : 'application/json' };
  if (context.authorization) headers.authorization = context.authorization;
  let response;
  try {
    response = await context.peers.request(target.node, target.address, `/v1/instances/${encodeURIComponent(id)}/exec${session ? '/session' : ''}?forwarded=true`, {
      method: 'POST',
      headers,
      body: session ? Readable.from(body.session, { objectMode: false }) : Readable.from([Buffer.from(JSON.stringify(body.request))]),
      signal: context.signal,
      headersTimeout: 30_000,
      bodyTimeout: 0,
    });
  } catch (error) {
    throw new ApiError(502, ApiCode.unavailable, `cannot reach node ${target.node} at ${target.address} to run a command in instance "${id}": ${(error as Error).message}`);
  }
  const contentType = typeof response.headers['content-type'] === 'string' ? response.headers['content-type'] : 'application/json';
  if (response.statusCode === 200) return { status: 200, stream: response.body as AsyncIterable<Uint8Array>, contentType };
  return { status: response.statusCode, text: Buffer.from(await response.body.arrayBuffer()), contentType };
}

/** The instance id of the path, checked, after the caller's right to exec in its tenant. */
function instanceOf(context: RouteContext): string {
  const id = context.params.id!;
  if (!INSTANCE_ID_PATTERN.test(id) || id.includes('..')) {
    throw invalidArgument('id', `id must be an instance id such as default.web.0.1 (lowercase letters, digits, - and .), got ${JSON.stringify(id.slice(0, 100))}`);
  }
  context.authorize('deploy', id.split('.')[0]!);
  return id;
}

async function* prefixed(first: Uint8Array, rest: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  yield first;
  yield* rest;
}

/** The exec routes: the plain one, and the session (input and terminal; exec-session.ts). */
export const execRoutes: Route[] = [
  serve('POST /v1/instances/:id/exec', {
    async handle(context) {
      const id = instanceOf(context);
      const request = readExecRequest(context.body);
      const forwarded = ['1', 'true'].includes(context.query.get('forwarded') ?? '');
      const where = locate(context, id, forwarded);
      return where.type === 'local' ? execHere(context, id, request) : forward(context, id, where, { request });
    },
  }),
  serve('POST /v1/instances/:id/exec/session', {
    contentTypes: ['application/x-ndjson'],
    bytesMax: SESSION_BODY_BYTES_MAX,
    openEndedBody: true,
    async upload(context, body) {
      const id = instanceOf(context);
      const { request, firstLine, rest } = await openSession(body);
      const forwarded = ['1', 'true'].includes(context.query.get('forwarded') ?? '');
      const where = locate(context, id, forwarded);
      if (where.type === 'remote') return forward(context, id, where, { session: prefixed(Buffer.concat([firstLine, Buffer.from('\n')]), rest) });
      return execHere(context, id, request, { stdin: request.stdin, ...(request.tty === undefined ? {} : { tty: request.tty }), input: sessionEvents(rest) });
    },
  }),
];
