/**
 * Log routes: an instance's log from the node that runs it, and an app's
 * logs merged. Any node answers: a node that does not hold an instance's
 * log forwards the request once to the API of the instance's node
 * (`?forwarded=1` marks the hop so it is never forwarded again).
 *
 * `tail=N` (default 200) lines first, then with `follow=1` new lines as they
 * are written, chunked, until the client leaves.
 */
import { existsSync } from 'node:fs';
import type { InstanceLogs } from '../node/capabilities.js';
import { followLog, readTail, TAIL_LINES_MAX } from '../executor/log-files.js';
import type { Instance } from '../state/types.js';
import { ApiCode, ApiError, invalidArgument } from './errors.js';
import { serve, type Answer, type Route, type RouteContext } from './router.js';

/** Lines a log request shows before following, unless `tail` says. */
export const TAIL_LINES_DEFAULT = 200;

function logSource(context: RouteContext): InstanceLogs | undefined {
  return context.backend.capabilities().logs;
}

interface LogQuery {
  tail: number;
  follow: boolean;
  forwarded: boolean;
}

function readLogQuery(context: RouteContext): LogQuery {
  const tailText = context.query.get('tail');
  let tail = TAIL_LINES_DEFAULT;
  if (tailText !== null) {
    if (!/^\d+$/.test(tailText) || Number(tailText) > TAIL_LINES_MAX) throw invalidArgument('tail', `tail must be a whole number of lines from 0 to ${TAIL_LINES_MAX}, got ${JSON.stringify(tailText)}`);
    tail = Number(tailText);
  }
  const flag = (name: string): boolean => {
    const value = context.query.get(name);
    if (value === null || value === '0' || value === 'false') return false;
    if (value === '' || value === '1' || value === 'true') return true;
    throw invalidArgument(name, `${name} must be 1 or 0, got ${JSON.stringify(value)}`);
  };
  return { tail, follow: flag('follow'), forwarded: flag('forwarded') };
}

/** Where an instance's log comes from: this node's file, or the API of its node. */
function locate(context: RouteContext, id: string, query: LogQuery): { type: 'local'; path: string } | { type: 'remote'; node: string; address: string } {
  const source = logSource(context);
  const instance = context.backend.machine.instance(id);
  const path = source?.logPath(id);
  const here = instance === undefined || instance.node === context.backend.nodeId || source?.runs(id) === true;
  if (here || query.forwarded) {
    if (path !== undefined && existsSync(path)) return { type: 'local', path };
    if (instance === undefined) throw new ApiError(404, ApiCode.notFound, `instance "${id}" does not exist and node ${context.backend.nodeId} holds no log for it`, 'id');
    throw new ApiError(404, ApiCode.notFound, `instance "${id}" has no log on node ${context.backend.nodeId} yet (it has not started here)`, 'id');
  }
  if (instance.node === undefined) throw new ApiError(404, ApiCode.notFound, `instance "${id}" is not placed on any node yet, so it has no log`, 'id');
  const address = context.backend.machine.node(instance.node)?.addresses.api;
  if (address === undefined) throw new ApiError(503, ApiCode.unavailable, `instance "${id}" runs on node ${instance.node}, whose API address is unknown`);
  return { type: 'remote', node: instance.node, address };
}

/** The log of one instance as a stream of bytes. */
async function instanceLog(context: RouteContext, id: string, query: LogQuery): Promise<{ head: string; rest?: AsyncIterable<Uint8Array> }> {
  const where = locate(context, id, query);
  if (where.type === 'local') {
    const { text, offset } = readTail(where.path, query.tail);
    return query.follow ? { head: text, rest: followLog(where.path, offset, { signal: context.signal }) } : { head: text };
  }
  const search = new URLSearchParams({ tail: String(query.tail), follow: query.follow ? '1' : '0', forwarded: '1' });
  let response;
  try {
    response = await context.peers.request(where.node, where.address, `/v1/instances/${encodeURIComponent(id)}/logs?${search}`, {
      method: 'GET',
      headers: context.authorization ? { authorization: context.authorization } : {},
      signal: context.signal,
      headersTimeout: 10_000,
      bodyTimeout: 0,
    });
  } catch (error) {
    throw new ApiError(502, ApiCode.unavailable, `cannot reach node at ${where.address} for the log of instance "${id}": ${(error as Error).message}`);
  }
  if (response.statusCode !== 200) {
    const text = await response.body.text();
    let message = text.trim();
    try {
      message = (JSON.parse(text) as { error?: { message?: string } }).error?.message ?? message;
    } catch {
      // not JSON: keep the text
    }
    throw new ApiError(response.statusCode === 404 ? 404 : 502, response.statusCode === 404 ? ApiCode.notFound : ApiCode.unavailable, message || `the node at ${where.address} answered ${response.statusCode}`);
  }
  return { head: '', rest: response.body as AsyncIterable<Uint8Array> };
}

async function* concat(head: string, rest: AsyncIterable<Uint8Array> | undefined): AsyncGenerator<Uint8Array> {
  if (head !== '') yield Buffer.from(head);
  if (rest) yield* rest;
}

const INSTANCE_ID_PATTERN = /^[a-z0-9][a-z0-9.-]{0,254}$/;

/** Prefixes each complete line of `source` with `[id] `. */
async function* prefixLines(id: string, source: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  let partial = '';
  for await (const chunk of source) {
    const text = partial + Buffer.from(chunk).toString('utf8');
    const lines = text.split('\n');
    partial = lines.pop() ?? '';
    if (lines.length > 0) yield Buffer.from(lines.map((line) => `[${id}] ${line}\n`).join(''));
  }
  if (partial !== '') yield Buffer.from(`[${id}] ${partial}\n`);
}

/** Interleaves several streams as their chunks arrive. */
async function* merge(sources: AsyncIterable<Uint8Array>[]): AsyncGenerator<Uint8Array> {
  const iterators = sources.map((source) => source[Symbol.asyncIterator]());
  const pending = new Map<number, Promise<{ index: number; result: IteratorResult<Uint8Array> }>>();
  const pull = (index: number): void => {
    pending.set(index, iterators[index]!.next().then((result) => ({ index, result }), () => ({ index, result: { done: true, value: undefined } as IteratorResult<Uint8Array> })));
  };
  iterators.forEach((_, index) => pull(index));
  try {
    while (pending.size > 0) {
      const { index, result } = await Promise.race(pending.values());
      pending.delete(index);
      if (result.done) continue;
      yield result.value;
      pull(index);
    }
  } finally {
    for (const iterator of iterators) void iterator.return?.();
  }
}

function streamAnswer(stream: AsyncIterable<Uint8Array>): Answer {
  return { status: 200, stream, contentType: 'text/plain; charset=utf-8' };
}

/** The log routes. */
export const logRoutes: Route[] = [
  serve('GET /v1/instances/:id/logs', {
    async handle(context) {
      const query = readLogQuery(context);
      const id = context.params.id!;
      // Instance ids are DNS labels joined by dots (tenant.app.slot.serial); nothing else names a log file.
      if (!INSTANCE_ID_PATTERN.test(id) || id.includes('..')) {
        throw invalidArgument('id', `id must be an instance id such as default.web.0.1 (lowercase letters, digits, - and .), got ${JSON.stringify(id.slice(0, 100))}`);
      }
      context.authorize('logs', id.split('.')[0]!);
      const { head, rest } = await instanceLog(context, id, query);
      return streamAnswer(concat(head, rest));
    },
  }),
  serve('GET /v1/apps/:tenant/:name/logs', {
    async handle(context) {
      const query = readLogQuery(context);
      const { tenant, name } = context.params as { tenant: string; name: string };
      if (context.backend.machine.app(tenant, name) === undefined) throw new ApiError(404, ApiCode.notFound, `tenant "${tenant}" has no app "${name}"`, 'name');
      const instances: Instance[] = context.backend.machine.instances({ tenant, app: name }).filter((instance) => instance.node !== undefined);
      const sources: AsyncIterable<Uint8Array>[] = [];
      for (const instance of instances) {
        try {
          const { head, rest } = await instanceLog(context, instance.id, { ...query, forwarded: false });
          sources.push(prefixLines(instance.id, concat(head, rest)));
        } catch (error) {
          sources.push(concat(`[${instance.id}] (no log: ${(error as Error).message})\n`, undefined));
        }
      }
      // Without follow, one instance after the other keeps each one's lines together.
      if (!query.follow) return streamAnswer((async function* () {
        for (const source of sources) yield* source;
      })());
      return streamAnswer(merge(sources));
    },
  }),
];
