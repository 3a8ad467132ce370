// Whether a round may plan differently with time alone: what lets the component skip periodic rounds.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { HEALING_DEFAULTS } from '../healing.js';
import { planRound, SCHEDULER_DEFAULTS } from '../round.js';
import { waitsOnTime } from '../time-dependence.js';
import { app, instance, node } from './fixtures.js';

const NOW = 1_000_000;
const base = { now: NOW, options: HEALING_DEFAULTS };

test('an idle cluster, running instances on up nodes, waits on nothing', () => {
  assert.is(waitsOnTime({ ...base, nodes: [node('n1')], apps: [app('web')], instances: [instance('web', 0, 'n1')] }), false);
});

test('instances no node can take wait on nothing: only a change of the state can place them', () => {
  const apps = [app('web', { constraints: ['node.labels.zone == nowhere'] })];
  const instances = [instance('web', 0), instance('web', 1)];
  assert.is(waitsOnTime({ ...base, nodes: [node('n1')], apps, instances }), false);
  const round = planRound({ nodes: [node('n1')], apps, instances, now: NOW, seed: 1, options: SCHEDULER_DEFAULTS });
  assert.is(round.waitsOnTime, false);
});

test('a failure backoff waits on time until it ends', () => {
  const waiting = { ...instance('web', 0), notBefore: NOW + 1 };
  assert.is(waitsOnTime({ ...base, nodes: [node('n1')], apps: [app('web')], instances: [waiting] }), true);
  assert.is(waitsOnTime({ ...base, now: NOW + 1, nodes: [node('n1')], apps: [app('web')], instances: [waiting] }), false);
});

test('an instance on a down node waits on time within the grace, not after', () => {
  const down = node('n2', { status: 'down', statusSince: NOW - 1000 });
  const input = { ...base, nodes: [node('n1'), down], apps: [app('web')], instances: [instance('web', 0, 'n2')] };
  assert.is(waitsOnTime(input), true);
  assert.is(waitsOnTime({ ...input, now: NOW - 1000 + HEALING_DEFAULTS.rescheduleGraceMs }), false);
  assert.is(waitsOnTime({ ...input, nodes: [node('n1'), { ...down, status: 'left' }] }), false, 'a node that left: moved at once, no grace');
});

test('a retired instance still recorded waits on time (its removal timeout)', () => {
  const retired = { ...instance('web', 0, 'n1'), desired: 'stopped' as const, retiredAt: NOW };
  assert.is(waitsOnTime({ ...base, nodes: [node('n1')], apps: [app('web')], instances: [retired] }), true);
});

test('an active rollout or a rebalance waits on time', () => {
  const rolling = { ...app('web'), rollout: { state: 'running' } } as never;
  assert.is(waitsOnTime({ ...base, nodes: [node('n1')], apps: [rolling], instances: [] }), true);
  const done = { ...app('web'), rollout: { state: 'succeeded' } } as never;
  assert.is(waitsOnTime({ ...base, nodes: [node('n1')], apps: [done], instances: [] }), false);
  const rebalancing = { ...app('web'), rebalance: { requestedAt: NOW, moves: 0 } };
  assert.is(waitsOnTime({ ...base, nodes: [node('n1')], apps: [rebalancing], instances: [] }), true);
});

test.run();
