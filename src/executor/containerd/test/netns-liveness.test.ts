// isLiveNetns tells a network namespace held by its bind mount from a stale
// file under /run/netns (what a killed agent in `ip netns exec` leaves), which
// CNI's DEL refuses with "unknown FS magic". Real namespaces, root only.
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { isLiveNetns } from '../network.js';

const LIVE = `hm-t-live-${process.pid}`;
const STALE = `hm-t-stale-${process.pid}`;

test.after(() => {
  for (const name of [LIVE, STALE]) spawnSync('ip', ['netns', 'delete', name]);
});

test('a namespace is live while mounted; a stale file, a missing path and no path are not', () => {
  assert.is(spawnSync('ip', ['netns', 'add', LIVE]).status, 0, 'ip netns add');
  mkdirSync('/run/netns', { recursive: true });
  writeFileSync(`/run/netns/${STALE}`, '');
  assert.ok(isLiveNetns(`/run/netns/${LIVE}`));
  assert.not.ok(isLiveNetns(`/run/netns/${STALE}`));
  assert.not.ok(isLiveNetns(`/run/netns/hm-t-missing-${process.pid}`));
  assert.not.ok(isLiveNetns(''));
  // `ip netns delete` removes a stale file as it does a live one.
  assert.is(spawnSync('ip', ['netns', 'delete', STALE]).status, 0);
});

test.run();
