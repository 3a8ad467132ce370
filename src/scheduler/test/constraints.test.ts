import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { constraintHolds, parseConstraint } from '../constraints.js';
import { node } from './fixtures.js';

function parsed(text: string) {
  const result = parseConstraint(text);
  if (!result.ok) throw new Error(result.error.message);
  return result.constraint;
}

test('labels: == and != against present and missing labels', () => {
  const zoneA = node('n1', { labels: { zone: 'a' } });
  const bare = node('n2');
  assert.ok(constraintHolds(parsed('node.labels.zone == a'), zoneA));
  assert.not.ok(constraintHolds(parsed('node.labels.zone == b'), zoneA));
  assert.not.ok(constraintHolds(parsed('node.labels.zone == a'), bare));
  assert.ok(constraintHolds(parsed('node.labels.zone != b'), zoneA));
  assert.ok(constraintHolds(parsed('node.labels.zone != a'), bare));
});

test('node.id, node.hostname and node.role', () => {
  const n1 = node('n1', { role: 'learner' });
  assert.ok(constraintHolds(parsed('node.id == n1'), n1));
  assert.ok(constraintHolds(parsed('node.hostname != n2'), n1));
  assert.not.ok(constraintHolds(parsed('node.hostname == n2'), n1));
  assert.ok(constraintHolds(parsed('node.role == learner'), n1));
});

test('whitespace is normalized and values may hold spaces', () => {
  const constraint = parsed('  node.labels.rack==r 1 ');
  assert.is(constraint.text, 'node.labels.rack == r 1');
  assert.ok(constraintHolds(constraint, node('n1', { labels: { rack: 'r 1' } })));
});

test('malformed constraints get clear errors', () => {
  for (const [text, fragment] of [
    ['node.labels.zone = a', 'is malformed'],
    ['node.labels.zone ==', 'is malformed'],
    ['', 'is malformed'],
    ['engine.labels.os == linux', 'does not know; use node.id'],
    ['node.labels. == a', 'does not know'],
  ] as const) {
    const result = parseConstraint(text);
    assert.not.ok(result.ok, text);
    if (!result.ok) {
      assert.is(result.error.code, 'invalid-constraint');
      assert.ok(result.error.message.includes(fragment), `${text}: ${result.error.message}`);
    }
  }
});

test('node.role: Swarm\'s manager is a voter, worker any other node; other values are refused', () => {
  const voter = node('n1', { role: 'voter' });
  const learner = node('n2', { role: 'learner' });
  const none = node('n3', { role: 'none' });
  assert.ok(constraintHolds(parsed('node.role == manager'), voter));
  assert.not.ok(constraintHolds(parsed('node.role == manager'), learner));
  assert.ok(constraintHolds(parsed('node.role == worker'), learner));
  assert.ok(constraintHolds(parsed('node.role == worker'), none));
  assert.not.ok(constraintHolds(parsed('node.role == worker'), voter));
  assert.ok(constraintHolds(parsed('node.role != manager'), none));
  const refused = parseConstraint('node.role == boss');
  assert.ok(!refused.ok && refused.error.message.includes('a node\'s role is manager, worker, voter, learner, none'));
});

test.run();
