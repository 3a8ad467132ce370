// The proxy workers' table feed (which index is in force on every worker),
// the messages between the agent and its workers, and the worker count
// setting. Pure: no processes, no sockets.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { proxyWorkerCount } from '../component.js';
import { TableFeed } from '../table-feed.js';
import { readFromWorker, readToWorker } from '../worker-protocol.js';

test('table feed: a change is in force once every serving worker acknowledged it', () => {
  const feed = new TableFeed();
  assert.ok(feed.maybePublish(5));
  feed.join(1);
  feed.join(2);
  assert.is(feed.inForce(), 5, 'joining workers serve nothing yet, so nothing is stale');
  feed.markServing(1);
  assert.is(feed.inForce(), 0, 'a worker told to listen counts at once, with what it acknowledged (nothing)');
  feed.acknowledge(1, 5);
  assert.is(feed.inForce(), 5);
  feed.markServing(2);
  assert.is(feed.inForce(), 0);
  feed.acknowledge(2, 5);
  assert.is(feed.inForce(), 5);
  assert.ok(feed.maybePublish(9), 'a weight change applied at 9');
  assert.is(feed.inForce(), 5, 'not in force before any worker has it');
  feed.acknowledge(1, 9);
  assert.is(feed.inForce(), 5, 'not in force while worker 2 routes by the older table');
  feed.acknowledge(2, 9);
  assert.is(feed.inForce(), 9);
  assert.equal(feed.counts(), { serving: 2, joining: 0 });
});

test('table feed: the same index is not published twice; a worker that leaves holds nothing back; one that joins counts from its order to listen', () => {
  const feed = new TableFeed();
  feed.maybePublish(3);
  feed.join(1);
  feed.markServing(1);
  feed.acknowledge(1, 3);
  assert.not.ok(feed.maybePublish(3), 'no new records at the same index');
  assert.not.ok(feed.maybePublish(2), 'nor at an older one');
  feed.maybePublish(4);
  feed.join(2);
  feed.markServing(2);
  feed.acknowledge(2, 4);
  assert.is(feed.inForce(), 3, 'worker 1 has not acknowledged 4');
  feed.leave(1);
  assert.is(feed.inForce(), 4, 'worker 1 exited: it routes nothing any more');
  feed.join(3);
  assert.is(feed.inForce(), 4, 'worker 3 is not told to listen yet');
  feed.markServing(3);
  assert.is(feed.inForce(), 0, 'worker 3 listens before its first acknowledgement reached the agent');
  feed.acknowledge(3, 4);
  assert.is(feed.inForce(), 4);
  assert.equal(feed.counts(), { serving: 2, joining: 0 });
});

test('table feed: acknowledgements that break its invariants fail loudly', () => {
  const feed = new TableFeed();
  feed.maybePublish(7);
  assert.throws(() => feed.acknowledge(1, 7), /without having joined/);
  feed.join(1);
  assert.throws(() => feed.join(1), /joined twice/);
  assert.throws(() => feed.acknowledge(1, 8), /above the published 7/);
  feed.acknowledge(1, 7);
  assert.throws(() => feed.acknowledge(1, 6), /after 7/);
  assert.throws(() => feed.maybePublish(-1), /not a whole number/);
});

test('worker messages: well-formed ones are read, anything else is a sentence saying what is wrong', () => {
  assert.equal(readFromWorker({ kind: 'applied', index: 12 }), { kind: 'applied', index: 12 });
  assert.equal(readFromWorker({ kind: 'listening', port: 7080 }), { kind: 'listening', port: 7080 });
  assert.match(readFromWorker({ kind: 'applied', index: -1 }) as string, /index -1/);
  assert.match(readFromWorker({ kind: 'applied', index: 1.5 }) as string, /not a whole number/);
  assert.match(readFromWorker({ kind: 'listening', port: 70000 }) as string, /port 70000/);
  assert.match(readFromWorker({ kind: 'metrics', request: 1 }) as string, /lacks/);
  assert.match(readFromWorker({ kind: 'shout' }) as string, /unknown kind "shout"/);
  assert.match(readFromWorker('applied') as string, /not an object/);
  assert.match(readFromWorker(null) as string, /not an object/);
  const input = { apps: [], instances: [], nodes: [] };
  assert.equal(readToWorker({ kind: 'table', index: 3, input }), { kind: 'table', index: 3, input });
  assert.match(readToWorker({ kind: 'table', index: 3, input: { apps: [] } }) as string, /lacks the apps, instances and nodes/);
  assert.match(readToWorker({ kind: 'table', index: '3', input }) as string, /index 3, not a whole number/);
  assert.equal(readToWorker({ kind: 'listen', host: '127.0.0.1', port: 0 }), { kind: 'listen', host: '127.0.0.1', port: 0 });
  assert.match(readToWorker({ kind: 'listen', port: 1 }) as string, /lacks its host or port/);
  assert.equal(readToWorker({ kind: 'stop' }), { kind: 'stop' });
});

test('worker count: unset is the agent process alone; auto is one per core; anything else names the variable', () => {
  assert.is(proxyWorkerCount(undefined, 8), 1);
  assert.is(proxyWorkerCount('', 8), 1);
  assert.is(proxyWorkerCount('auto', 8), 8);
  assert.is(proxyWorkerCount('auto', 0), 1);
  assert.is(proxyWorkerCount('3', 8), 3);
  assert.throws(() => proxyWorkerCount('0', 8), /HIVEMIND_PROXY_WORKERS is "0": give a whole number of proxy worker processes from 1 to 64, or auto/);
  assert.throws(() => proxyWorkerCount('two', 8), /HIVEMIND_PROXY_WORKERS is "two"/);
  assert.throws(() => proxyWorkerCount('65', 8), /from 1 to 64/);
});

test.run();
