// Voter management, the leader's membership decisions: status, records and time in, one action out.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { VoterPlanner, learnerCaughtUp, votersTarget, type VoterView } from '../voters.js';
import type { NodeStatus } from '../../state/types.js';

type Role = 'voter' | 'learner' | 'none';

/** A view with `a` leading; `members` maps id → [raft role, recentActive, match]; records follow the members unless given. */
function view(
  members: Record<string, [Role, boolean, number]>,
  options: { now?: number; records?: Record<string, [NodeStatus, Role]>; lastIndex?: number; snapshotIndex?: number; isLeader?: boolean } = {},
): VoterView {
  const voters = Object.keys(members).filter((id) => members[id]![0] === 'voter').sort();
  const learners = Object.keys(members).filter((id) => members[id]![0] === 'learner').sort();
  const progress: VoterView['progress'] = {};
  for (const [id, [, recentActive, match]] of Object.entries(members)) progress[id] = { recentActive, match };
  const records = options.records
    ? Object.entries(options.records).map(([id, [status, role]]) => ({ id, status, role }))
    : Object.entries(members).map(([id, [role]]) => ({ id, status: 'up' as NodeStatus, role }));
  return { self: 'a', isLeader: options.isLeader ?? true, voters, learners, progress, lastIndex: options.lastIndex ?? 100, snapshotIndex: options.snapshotIndex ?? 0, records, now: options.now ?? 0 };
}

const GRACE = 2000;

test('voter targets: 3 below five nodes up, 5 from five', () => {
  assert.is(votersTarget(1), 3);
  assert.is(votersTarget(4), 3);
  assert.is(votersTarget(5), 5);
  assert.is(votersTarget(9), 5);
});

test('a follower plans nothing', () => {
  const planner = new VoterPlanner({ graceMs: GRACE });
  assert.is(planner.plan(view({ a: ['voter', true, 100], b: ['learner', true, 100] }, { isLeader: false })), undefined);
});

test('promotes the most caught-up healthy learner while voters are below 3', () => {
  const planner = new VoterPlanner({ graceMs: GRACE });
  const action = planner.plan(view({ a: ['voter', true, 100], b: ['learner', true, 90], c: ['learner', true, 99], d: ['learner', false, 100], e: ['learner', true, 1] }));
  assert.equal(action?.type, 'promote');
  assert.is(action?.id, 'c');
});

test('does not promote a learner that lags, is unreachable, or is not up', () => {
  const planner = new VoterPlanner({ graceMs: GRACE });
  const lagging = view({ a: ['voter', true, 1000], b: ['learner', true, 800] }, { lastIndex: 1000, records: { a: ['up', 'voter'], b: ['up', 'learner'] } });
  assert.is(planner.plan(lagging), undefined);
  const down = view({ a: ['voter', true, 100], b: ['learner', true, 100] }, { records: { a: ['up', 'voter'], b: ['down', 'learner'] } });
  assert.equal(planner.plan(down), { type: 'set-status', id: 'b', status: 'up', reason: 'reachable again' }, 'marked up first');
});

test('caught up is etcd\'s rule: match at least 90% of the leader\'s last index, and at least its snapshot index', () => {
  assert.not.ok(learnerCaughtUp(0, { lastIndex: 22, snapshotIndex: 0 }), 'match 0 of 22 has received nothing');
  assert.not.ok(learnerCaughtUp(19, { lastIndex: 22, snapshotIndex: 0 }), '19 of 22 is under 90%');
  assert.ok(learnerCaughtUp(20, { lastIndex: 22, snapshotIndex: 0 }), '20 of 22 is 90% rounded up');
  assert.ok(learnerCaughtUp(900, { lastIndex: 1000, snapshotIndex: 0 }));
  assert.not.ok(learnerCaughtUp(899, { lastIndex: 1000, snapshotIndex: 0 }));
  assert.not.ok(learnerCaughtUp(950, { lastIndex: 1000, snapshotIndex: 960 }), 'below the snapshot it still needs the snapshot');
  assert.ok(learnerCaughtUp(960, { lastIndex: 1000, snapshotIndex: 960 }));
  assert.ok(learnerCaughtUp(1, { lastIndex: 1, snapshotIndex: 0 }));
});

test('a learner that has received little of a short log is not promoted (it was, at match 0 of 22)', () => {
  const planner = new VoterPlanner({ graceMs: GRACE });
  assert.is(planner.plan(view({ a: ['voter', true, 22], b: ['voter', true, 22], c: ['learner', true, 0] }, { lastIndex: 22 })), undefined);
  assert.is(planner.plan(view({ a: ['voter', true, 22], b: ['voter', true, 22], c: ['learner', true, 19] }, { lastIndex: 22 })), undefined);
  assert.equal(planner.plan(view({ a: ['voter', true, 22], b: ['voter', true, 22], c: ['learner', true, 20] }, { lastIndex: 22 }))?.id, 'c');
  const belowSnapshot = view({ a: ['voter', true, 1000], b: ['voter', true, 1000], c: ['learner', true, 950] }, { lastIndex: 1000, snapshotIndex: 960 });
  assert.is(planner.plan(belowSnapshot), undefined, 'a learner below the leader\'s snapshot still needs it');
});

test('three voters and a fourth node: the fourth stays a learner; five up: promoted', () => {
  const planner = new VoterPlanner({ graceMs: GRACE });
  assert.is(planner.plan(view({ a: ['voter', true, 100], b: ['voter', true, 100], c: ['voter', true, 100], d: ['learner', true, 100] })), undefined);
  const five = view({ a: ['voter', true, 100], b: ['voter', true, 100], c: ['voter', true, 100], d: ['learner', true, 100], e: ['learner', true, 100] });
  assert.equal(planner.plan(five)?.type, 'promote');
});

test('a voter unreachable past the grace is marked down, removed, and a learner promoted', () => {
  const planner = new VoterPlanner({ graceMs: GRACE });
  const members = { a: ['voter', true, 100], b: ['voter', false, 50], c: ['voter', true, 100], d: ['learner', true, 100] } as Record<string, [Role, boolean, number]>;
  assert.is(planner.plan(view(members, { now: 0 })), undefined, 'first seen unreachable');
  assert.is(planner.plan(view(members, { now: GRACE - 1 })), undefined, 'within the grace');
  const markDown = planner.plan(view(members, { now: GRACE }));
  assert.equal(markDown && { type: markDown.type, id: markDown.id }, { type: 'set-status', id: 'b' });
  assert.is((markDown as { status: string }).status, 'down');
  const records: Record<string, [NodeStatus, Role]> = { a: ['up', 'voter'], b: ['down', 'voter'], c: ['up', 'voter'], d: ['up', 'learner'] };
  const remove = planner.plan(view(members, { now: GRACE + 100, records }));
  assert.equal(remove && { type: remove.type, id: remove.id }, { type: 'remove', id: 'b' });
  const afterRemoval = { a: ['voter', true, 100], c: ['voter', true, 100], d: ['learner', true, 100] } as Record<string, [Role, boolean, number]>;
  const promote = planner.plan(view(afterRemoval, { now: GRACE + 200, records }));
  assert.equal(promote && { type: promote.type, id: promote.id }, { type: 'promote', id: 'd' });
  const afterPromotion = { a: ['voter', true, 100], c: ['voter', true, 100], d: ['voter', true, 100] } as Record<string, [Role, boolean, number]>;
  const role = planner.plan(view(afterPromotion, { now: GRACE + 300, records }));
  assert.equal(role && { type: role.type, id: role.id }, { type: 'set-role', id: 'b' }, 'b is no longer a voter');
  assert.is((role as { role: string }).role, 'none');
});

test('a down voter that registers again (it rejoined) gets a new grace before it can be removed', () => {
  const planner = new VoterPlanner({ graceMs: GRACE });
  const members = { a: ['voter', true, 100], b: ['voter', false, 50], c: ['voter', true, 100] } as Record<string, [Role, boolean, number]>;
  const down: Record<string, [NodeStatus, Role]> = { a: ['up', 'voter'], b: ['down', 'voter'], c: ['up', 'voter'] };
  const registered: Record<string, [NodeStatus, Role]> = { ...down, b: ['up', 'voter'] };
  planner.plan(view(members, { now: 0, records: down }));
  assert.is(planner.plan(view(members, { now: GRACE - 100, records: down })), undefined, 'within the grace');
  // Its Join re-registers it just before the grace runs out; Raft does not hear it yet (its streams reconnect), and
  // gossip still says dead, so it is marked down again at once.
  const gossip = { b: 'dead' as const };
  assert.equal(planner.plan({ ...view(members, { now: GRACE - 50, records: registered }), gossip }), { type: 'set-status', id: 'b', status: 'down', reason: 'gossip declared it dead' });
  assert.is(planner.plan({ ...view(members, { now: GRACE + 500, records: down }), gossip }), undefined, 'not removed half a second after it rejoined');
  assert.is(planner.plan({ ...view(members, { now: 2 * GRACE - 100, records: down }), gossip }), undefined);
  assert.equal(planner.plan({ ...view(members, { now: 2 * GRACE, records: down }), gossip })?.type, 'remove', 'removed once the new grace runs out unheard');
});

test('a single reachable moment restarts the grace', () => {
  const planner = new VoterPlanner({ graceMs: GRACE });
  const unreachable = { a: ['voter', true, 100], b: ['voter', false, 100], c: ['voter', true, 100] } as Record<string, [Role, boolean, number]>;
  const reachable = { ...unreachable, b: ['voter', true, 100] } as Record<string, [Role, boolean, number]>;
  planner.plan(view(unreachable, { now: 0 }));
  planner.plan(view(reachable, { now: 1500 }));
  planner.plan(view(unreachable, { now: 1600 }));
  assert.is(planner.plan(view(unreachable, { now: 3000 })), undefined);
  assert.is(planner.plan(view(unreachable, { now: 3600 }))?.type, 'set-status');
});

test('a new leader starts its own count', () => {
  const planner = new VoterPlanner({ graceMs: GRACE });
  const members = { a: ['voter', true, 100], b: ['voter', false, 100], c: ['voter', true, 100] } as Record<string, [Role, boolean, number]>;
  planner.plan(view(members, { now: 0 }));
  planner.plan(view(members, { now: 1000, isLeader: false }));
  assert.is(planner.plan(view(members, { now: 2500 })), undefined);
  assert.is(planner.plan(view(members, { now: 4500 }))?.type, 'set-status');
});

test('members whose record says left are removed; the leader never acts on itself', () => {
  const planner = new VoterPlanner({ graceMs: GRACE });
  const members = { a: ['voter', true, 100], b: ['voter', true, 100], c: ['learner', true, 100] } as Record<string, [Role, boolean, number]>;
  const records: Record<string, [NodeStatus, Role]> = { a: ['left', 'voter'], b: ['up', 'voter'], c: ['left', 'learner'] };
  const action = planner.plan(view(members, { records }));
  assert.equal(action && { type: action.type, id: action.id }, { type: 'remove', id: 'c' });
});

test('a record outside the configuration (after a recovery) is marked down after the grace, never re-added', () => {
  const planner = new VoterPlanner({ graceMs: GRACE });
  const members = { a: ['voter', true, 100] } as Record<string, [Role, boolean, number]>;
  const records: Record<string, [NodeStatus, Role]> = { a: ['up', 'voter'], b: ['up', 'voter'], c: ['up', 'voter'] };
  const first = planner.plan(view(members, { now: 0, records }));
  assert.equal(first && { type: first.type, id: first.id }, { type: 'set-role', id: 'b' });
  const later = planner.plan(view(members, { now: GRACE, records }));
  assert.equal(later && { type: later.type, id: later.id }, { type: 'set-status', id: 'b' });
  const settled: Record<string, [NodeStatus, Role]> = { a: ['up', 'voter'], b: ['down', 'none'], c: ['down', 'none'] };
  assert.is(planner.plan(view(members, { now: GRACE * 2, records: settled })), undefined);
});

test('a down member heard from again is marked up', () => {
  const planner = new VoterPlanner({ graceMs: GRACE });
  const members = { a: ['voter', true, 100], b: ['voter', true, 100], c: ['learner', true, 100] } as Record<string, [Role, boolean, number]>;
  const records: Record<string, [NodeStatus, Role]> = { a: ['up', 'voter'], b: ['up', 'voter'], c: ['down', 'learner'] };
  const action = planner.plan(view(members, { records }));
  assert.equal(action && { type: action.type, id: action.id }, { type: 'set-status', id: 'c' });
  assert.is((action as { status: string }).status, 'up');
});


// ---- gossip as the primary signal (view.gossip)

const withGossip = (base: VoterView, gossip: VoterView['gossip']): VoterView => ({ ...base, gossip });

test('gossip: a node declared dead, that Raft does not hear either, is marked down at once (no grace)', () => {
  const planner = new VoterPlanner({ graceMs: 60_000 });
  const base = view({ a: ['voter', true, 100], b: ['voter', true, 100], c: ['voter', false, 100] }, { now: 10 });
  assert.equal(planner.plan(withGossip(base, { a: 'alive', b: 'alive', c: 'dead' })), { type: 'set-status', id: 'c', status: 'down', reason: 'gossip declared it dead' });
  // Suspect is not enough, however long Raft has been quiet below the grace.
  assert.is(new VoterPlanner({ graceMs: 60_000 }).plan(withGossip(base, { a: 'alive', b: 'alive', c: 'suspect' })), undefined);
});

test('gossip: Raft liveness vetoes a dead verdict (a node the leader hears is not down)', () => {
  const planner = new VoterPlanner({ graceMs: GRACE });
  const base = view({ a: ['voter', true, 100], b: ['voter', true, 100], c: ['voter', true, 100] });
  assert.is(planner.plan(withGossip(base, { a: 'alive', b: 'alive', c: 'dead' })), undefined);
});

test('gossip: a node that left gossip (stopped) is marked down, not left', () => {
  const planner = new VoterPlanner({ graceMs: 60_000 });
  const base = view({ a: ['voter', true, 100], b: ['voter', true, 100], c: ['learner', false, 100] });
  const action = planner.plan(withGossip(base, { a: 'alive', b: 'alive', c: 'left' }));
  assert.equal(action, { type: 'set-status', id: 'c', status: 'down', reason: 'it left gossip (stopped)' });
});

test('gossip: a down node is marked up only once Raft hears it and gossip no longer holds it dead', () => {
  const planner = new VoterPlanner({ graceMs: GRACE });
  const records = { a: ['up', 'voter'], b: ['up', 'voter'], c: ['down', 'voter'] } as Record<string, [NodeStatus, Role]>;
  const base = view({ a: ['voter', true, 100], b: ['voter', true, 100], c: ['voter', true, 100] }, { records });
  assert.is(planner.plan(withGossip(base, { a: 'alive', b: 'alive', c: 'dead' })), undefined, 'Raft hears it but gossip still holds it dead: wait');
  assert.equal(planner.plan(withGossip(base, { a: 'alive', b: 'alive', c: 'alive' })), { type: 'set-status', id: 'c', status: 'up', reason: 'reachable again (gossip: alive)' });
  const silent = view({ a: ['voter', true, 100], b: ['voter', true, 100], c: ['voter', false, 100] }, { records });
  assert.is(new VoterPlanner({ graceMs: GRACE }).plan(withGossip(silent, { a: 'alive', b: 'alive', c: 'alive' })), undefined, 'gossip alone does not mark it up');
});

test('gossip: no view of a node (or no gossip at all) falls back to Raft liveness and the grace', () => {
  const planner = new VoterPlanner({ graceMs: GRACE });
  const at = (now: number): VoterView => withGossip(view({ a: ['voter', true, 100], b: ['voter', true, 100], c: ['voter', false, 100] }, { now }), { a: 'alive', b: 'alive' });
  assert.is(planner.plan(at(0)), undefined);
  assert.is(planner.plan(at(GRACE - 1)), undefined);
  assert.equal(planner.plan(at(GRACE))?.type, 'set-status');
  assert.is(planner.plan(at(GRACE))?.id, 'c');
});

test('gossip: the voter marked down by gossip is replaced once Raft has not heard it for the grace', () => {
  const planner = new VoterPlanner({ graceMs: GRACE });
  const records = { a: ['up', 'voter'], b: ['up', 'voter'], c: ['down', 'voter'], d: ['up', 'learner'] } as Record<string, [NodeStatus, Role]>;
  const at = (now: number): VoterView =>
    withGossip(view({ a: ['voter', true, 100], b: ['voter', true, 100], c: ['voter', false, 100], d: ['learner', true, 100] }, { now, records }), { a: 'alive', b: 'alive', c: 'dead', d: 'alive' });
  assert.is(planner.plan(at(0)), undefined);
  assert.equal(planner.plan(at(GRACE))?.type, 'remove');
});

test.run();
