/** The pending-gossip queue on its own: order, replacement, the send limit and the byte budget. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BroadcastQueue } from '../broadcast-queue.js';
import { estimateBytes, type Update } from '../messages.js';

const alive = (id: string, incarnation = 0, meta: Record<string, string> = {}): Update => ({ type: 'alive', id, address: `${id}:7072`, meta, incarnation });
const ids = (updates: Update[]): string[] => updates.map((u) => `${u.id}@${u.incarnation}`);

test('least-sent first, newest first among the unsent; each leaves at its limit', () => {
  const queue = new BroadcastQueue();
  for (const id of ['a', 'b', 'c']) queue.enqueue(alive(id));
  const room = 2 + 2 * estimateBytes(alive('a')); // two per datagram
  assert.equal(ids(queue.take(room, 2, [])), ['c@0', 'b@0']);
  queue.enqueue(alive('d'));
  assert.equal(ids(queue.take(room, 2, [])), ['d@0', 'a@0'], 'the unsent before the sent-once');
  assert.equal(ids(queue.take(room, 2, [])), ['d@0', 'a@0'], 'among the sent-once, the most recently sent first');
  assert.equal(ids(queue.take(room, 2, [])), ['c@0', 'b@0']);
  assert.is(queue.size, 0);
  assert.equal(queue.take(room, 2, []), []);
});

test('a newer update about the same member replaces the older, unsent again', () => {
  const queue = new BroadcastQueue();
  queue.enqueue(alive('a', 1));
  queue.take(1000, 3, []);
  queue.enqueue(alive('a', 2));
  assert.is(queue.size, 1);
  assert.equal(queue.pending().map((p) => [p.update.incarnation, p.transmits]), [[2, 0]]);
  assert.equal(ids(queue.take(1000, 3, [])), ['a@2'], 'the stale one never goes out');
  for (let i = 0; i < 200; i++) queue.enqueue(alive('a', 3 + i));
  assert.equal(ids(queue.take(1000, 3, [])), ['a@202']);
});

test('never twice in one datagram, never one already carried, and within the byte budget', () => {
  const queue = new BroadcastQueue();
  const big = alive('big', 0, { labels: 'x'.repeat(300) });
  const carried = alive('carried');
  queue.enqueue(big);
  queue.enqueue(carried);
  for (let i = 0; i < 20; i++) queue.enqueue(alive(`m${i}`));
  const room = 200;
  const taken = queue.take(room, 5, [carried]);
  assert.ok(taken.length > 0);
  assert.not.ok(taken.includes(big) || taken.includes(carried));
  assert.ok(taken.reduce((total, u) => total + estimateBytes(u), 2) <= room);
  assert.is(new Set(taken).size, taken.length);
  // The big and the carried ones were set aside, not lost.
  assert.ok(queue.get('big') === big && queue.get('carried') === carried);
  assert.ok(queue.take(2000, 5, []).includes(big));
});

test.run();
