// Limits a node cannot enforce: the app's instances go only where they can be; refused at deploy when no node can.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { formatReasons, planPlacements } from '../placement.js';
import { limitControllers, nodeEnforces, unenforceableLimit } from '../limits.js';
import { LIMITS_LABEL } from '../../state/types.js';
import { app, instances, MiB, node } from './fixtures.js';

const cpuOnly = { [LIMITS_LABEL]: 'cpu' };
const both = { [LIMITS_LABEL]: 'cpu,memory' };

test('a node that says it cannot enforce a memory limit never gets an instance that has one, with the reason', () => {
  const limited = app('worker', { limits: { memoryBytes: 64 * MiB } });
  const plan = planPlacements({ nodes: [node('n1', { labels: cpuOnly }), node('n2', { labels: both })], apps: [limited], instances: instances('worker', 2), strategy: 'spread', seed: 1 });
  assert.equal(plan.placements.map((placement) => placement.node), ['n2', 'n2']);
  const none = planPlacements({ nodes: [node('n1', { labels: cpuOnly })], apps: [limited], instances: instances('worker', 1), strategy: 'spread', seed: 1 });
  assert.equal(formatReasons(none.unplaceable[0]!.reasons), ['1 node: cannot enforce a memory limit (no memory cgroup controller)']);
  const free = planPlacements({ nodes: [node('n1', { labels: cpuOnly })], apps: [app('free')], instances: instances('free', 1), strategy: 'spread', seed: 1 });
  assert.is(free.placements.length, 1, 'an app without limits goes anywhere');
  const older = planPlacements({ nodes: [node('n1')], apps: [limited], instances: instances('worker', 1), strategy: 'spread', seed: 1 });
  assert.is(older.placements.length, 1, 'a node that does not say (an older release) is not judged');
});

test('unenforceableLimit: refused only when every member says it cannot', () => {
  const spec = { limits: { memoryBytes: 64 * MiB, cpuMillis: 500 } };
  assert.equal(limitControllers(spec), ['memory', 'cpu']);
  assert.is(unenforceableLimit(spec, [{ labels: cpuOnly, status: 'up' }]), 'memory');
  assert.is(unenforceableLimit(spec, [{ labels: cpuOnly, status: 'up' }, { labels: both, status: 'down' }]), undefined, 'a down member may come back');
  assert.is(unenforceableLimit(spec, [{ labels: cpuOnly, status: 'up' }, { labels: both, status: 'left' }]), 'memory', 'one that left does not count');
  assert.is(unenforceableLimit(spec, [{ labels: cpuOnly, status: 'up' }, { labels: {}, status: 'up' }]), undefined, 'one that does not say may');
  assert.is(unenforceableLimit(spec, []), undefined, 'no node yet');
  assert.is(unenforceableLimit({ limits: {} }, [{ labels: { [LIMITS_LABEL]: '' }, status: 'up' }]), undefined);
  assert.is(unenforceableLimit({ limits: { cpuMillis: 100 } }, [{ labels: { [LIMITS_LABEL]: '' }, status: 'up' }]), 'cpu');
  assert.is(nodeEnforces({ labels: {} }, 'cpu'), undefined);
});

test.run();
