// The version gate (src/state/version.ts): an entry of a newer state version
// stops the node before anything changes; entries of this version or older
// (no version at all: before the gate) apply as always.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ClusterStateMachine } from '../machine.js';
import { validateEnvelope } from '../validate.js';
import { STATE_VERSION, StateVersionError } from '../version.js';

function envelope(requestId: string, version?: number): Record<string, unknown> {
  return { requestId, time: 1_700_000_000_000, actor: 'test', ...(version === undefined ? {} : { version }), command: { type: 'kv.put', key: requestId, value: 'v' } };
}

test('entries without a version (before the gate) and of this version apply', () => {
  const machine = new ClusterStateMachine();
  assert.is(machine.apply(1, envelope('old')).ok, true);
  assert.is(machine.apply(2, envelope('current', STATE_VERSION)).ok, true);
  assert.is(machine.kvGet('old')?.value, 'v');
  assert.is(machine.kvGet('current')?.value, 'v');
});

test('an entry of a newer version stops the node at it, changing nothing', () => {
  const machine = new ClusterStateMachine();
  machine.apply(1, envelope('before', STATE_VERSION));
  const hash = JSON.stringify(machine.kvList());
  let thrown: unknown;
  try {
    machine.apply(2, envelope('from-the-future', STATE_VERSION + 1));
  } catch (error) {
    thrown = error;
  }
  assert.instance(thrown, StateVersionError);
  assert.is((thrown as StateVersionError).code, 'STATE_VERSION_TOO_NEW');
  assert.match((thrown as Error).message, `log entry 2 was written by a Hivemind of state version ${STATE_VERSION + 1}`);
  assert.match((thrown as Error).message, 'upgrade this node');
  assert.is(machine.appliedIndex, 1, 'the applied index did not move');
  assert.is(JSON.stringify(machine.kvList()), hash);
  // Once upgraded (here: the entry at its index again, of a version this code knows), it resumes there.
  assert.is(machine.apply(2, envelope('after', STATE_VERSION)).ok, true);
});

test('a version that is not a whole number from 1 is malformed, refused like any bad envelope', () => {
  for (const version of [0, -1, 1.5, '2', null]) {
    const checked = validateEnvelope(envelope('bad', version as number));
    assert.is(checked.ok, false, `version ${JSON.stringify(version)}`);
  }
  const machine = new ClusterStateMachine();
  const result = machine.apply(1, envelope('bad', 0));
  assert.is(result.ok, false);
});

test.run();
