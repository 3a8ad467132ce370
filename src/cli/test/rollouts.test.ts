// How the CLI words a rollout: `hivemind deploy`'s progress line and `hivemind app`'s fields.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { rolloutLines } from '../commands/apps.js';
import { rolloutLine } from '../commands/deploy.js';
import type { Rollout } from '../../state/types.js';

const rollout: Rollout = {
  id: 42,
  kind: 'update',
  strategy: 'canary',
  fromVersion: 2,
  toVersion: 3,
  state: 'awaiting-promotion',
  message: '1 canary instance of version 3 ready beside version 2; promote to roll out, abort to remove them',
  startedAt: 0,
  updatedAt: 0,
  batch: [],
  done: 1,
  total: 1,
  canaryInstances: 1,
  weights: [{ version: 2, percent: 75 }, { version: 3, percent: 25 }],
};

test('deploy progress names the rollout it follows, and a replaced one', () => {
  const app = { tenant: 'default', name: 'web', version: 3, replicas: 3, rollout: 42 };
  assert.is(rolloutLine(app, rollout), `web: canary update 2 → 3, awaiting-promotion: ${rollout.message}`);
  assert.is(rolloutLine(app, { ...rollout, id: 50, kind: 'update', fromVersion: 3, toVersion: 4 }), 'web: superseded by a later deploy');
  const rollback: Rollout = { ...rollout, id: 51, kind: 'rollback', strategy: 'rolling', fromVersion: 3, toVersion: 2, state: 'running', message: 'rolling back to version 2: 1 new instance failed' };
  assert.is(rolloutLine(app, rollback), 'web: version 3 failed; rolling back to version 2: 1 new instance failed');
});

test('app shows the rollout, its progress and the weights', () => {
  assert.equal(rolloutLines(rollout), [
    ['rollout', 'canary update from version 2 to 3: awaiting-promotion (1 of 1 done)'],
    ['progress', rollout.message],
    ['weights', 'version 2: 75%, version 3: 25%'],
  ]);
  assert.equal(rolloutLines(undefined), []);
});

test.run();
