// When a node leads a cluster of one: the only voter, leading, no learner; anything else is not alone.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { leadsAlone } from '../core/config.js';
import { Role } from '../core/types.js';

test('leads alone only as the only voter, leading, with no learner', () => {
  assert.ok(leadsAlone({ role: Role.Leader, config: { voters: ['n1'], learners: [] } }, 'n1'));
  assert.not.ok(leadsAlone({ role: Role.Leader, config: { voters: ['n1'], learners: ['n2'] } }, 'n1'), 'a learner to heartbeat');
  assert.not.ok(leadsAlone({ role: Role.Leader, config: { voters: ['n1', 'n2'], learners: [] } }, 'n1'), 'another voter');
  assert.not.ok(leadsAlone({ role: Role.Follower, config: { voters: ['n1'], learners: [] } }, 'n1'), 'not leading yet');
  assert.not.ok(leadsAlone({ role: Role.Leader, config: { voters: ['n2'], learners: [] } }, 'n1'), 'the voter is another node');
});

test.run();
