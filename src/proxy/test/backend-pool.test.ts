/**
 * BackendPool against a real HTTP server on loopback: requests dispatched
 * before undici has loaded (the first pool of the process) wait for it and
 * all go out; a pool destroyed while it loads fails what waited. The first
 * test must run first: it is the one that finds undici not loaded yet.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { Dispatcher } from 'undici';
import { BackendPool, loadedUndici } from '../backend-pool.js';

interface Outcome {
  status?: number;
  body: string;
  error?: Error;
}

/** A handler that records the answer; resolves when the request ended either way. */
function recorder(): { handler: Dispatcher.DispatchHandler; done: Promise<Outcome> } {
  const outcome: Outcome = { body: '' };
  let settle!: (outcome: Outcome) => void;
  const done = new Promise<Outcome>((resolve) => (settle = resolve));
  const handler: Dispatcher.DispatchHandler = {
    onRequestStart() {},
    onResponseStart(_controller, statusCode) {
      outcome.status = statusCode;
    },
    onResponseData(_controller, chunk: Buffer) {
      outcome.body += chunk.toString('utf8');
    },
    onResponseEnd() {
      settle(outcome);
    },
    onResponseError(_controller, error) {
      outcome.error = error;
      settle(outcome);
    },
  };
  return { handler, done };
}

async function echoServer(): Promise<{ server: Server; origin: string }> {
  const server = createServer((request, response) => response.end(`path ${request.url}`));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

test('requests dispatched while undici loads wait for it and are all answered', async () => {
  assert.throws(() => loadedUndici(), /undici used before any backend pool loaded it/, 'nothing in this process loaded undici through a pool yet');
  const { server, origin } = await echoServer();
  const pool = new BackendPool(origin, { connections: 2 });
  const requests = ['/a', '/b', '/c'].map((path) => {
    const { handler, done } = recorder();
    assert.ok(pool.dispatch({ method: 'GET', path }, handler));
    return done;
  });
  const outcomes = await Promise.all(requests);
  assert.equal(outcomes.map((outcome) => [outcome.status, outcome.body]), [[200, 'path /a'], [200, 'path /b'], [200, 'path /c']]);
  assert.ok(loadedUndici().Pool, 'undici is loaded once a pool dispatched');
  await pool.close();
  server.close();
});

test('a pool made once undici is loaded dispatches at once, and after close refuses', async () => {
  const { server, origin } = await echoServer();
  const pool = new BackendPool(origin, {});
  const { handler, done } = recorder();
  pool.dispatch({ method: 'GET', path: '/now' }, handler);
  assert.equal((await done).body, 'path /now');
  await pool.close();
  const late = recorder();
  pool.dispatch({ method: 'GET', path: '/late' }, late.handler);
  const outcome = await late.done;
  assert.is(outcome.status, undefined);
  assert.ok(outcome.error, 'a closed pool answers with an error, not a request');
  server.close();
});

test.run();
