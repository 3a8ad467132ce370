// `ps` shows an instance whose node is down or suspect as unknown, with what
// it last said; otherwise its report as it is.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { Instance } from '../../state/types.js';
import { stateText } from '../commands/ps.js';

function instance(state: Instance['status']['state'], exitCode?: number): Instance {
  return { status: { state, ...(exitCode !== undefined ? { exitCode } : {}) } } as Instance;
}

test('a node down or suspect: unknown, with the last report; up: the report', () => {
  assert.is(stateText(instance('healthy'), 'down'), 'unknown (node down; last healthy)');
  assert.is(stateText(instance('running'), 'suspect'), 'unknown (node suspect; last running)');
  assert.is(stateText(instance('healthy'), 'up'), 'healthy');
  assert.is(stateText(instance('exited', 1), 'down'), 'exited (exit 1)', 'a stopped instance says so whatever its node');
  assert.is(stateText(instance('pending'), undefined), 'pending');
});

test.run();
