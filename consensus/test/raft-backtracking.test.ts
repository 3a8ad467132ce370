/**
 * Fast backtracking, counted: a follower whose log diverges from the
 * leader's over many entries is repaired in a number of rejected Appends
 * bounded by the terms involved, not by the entries (Raft §5.3, as in
 * etcd-io/raft's rejectHint / findConflictByTerm).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { MessageType, type Message } from '../core/types.js';
import { RaftCluster } from './raft-harness.js';

const DIVERGENT_ENTRIES = 200;

function rejectionsFrom(messages: Message[], from: string): number {
  return messages.filter((message) => message.type === MessageType.AppendResponse && message.reject && message.from === from).length;
}

function logOf(cluster: RaftCluster, id: string): string[] {
  const log = cluster.raw(id).raftForInspection.log;
  const entries: string[] = [];
  for (let index = log.firstIndex(); index <= log.lastIndex(); index++) entries.push(`${index}/${log.term(index)}`);
  return entries;
}

/**
 * b leads term 2 cut off and appends `DIVERGENT_ENTRIES` entries; a leads
 * term 3 and c term 4, each committing `leaderEntries` entries of its own;
 * then b rejoins under c.
 */
function divergedCluster(leaderEntries: number): RaftCluster {
  const cluster = new RaftCluster(['a', 'b', 'c'], { preVote: false, checkQuorum: false, heartbeatIntervalTicks: 5 });
  cluster.campaign('b');
  cluster.stabilize();
  cluster.isolate('b');
  for (let k = 0; k < DIVERGENT_ENTRIES; k++) assert.ok(cluster.propose('b', `old${k}`).ok);
  cluster.stabilize();
  for (const leader of ['a', 'c']) {
    cluster.campaign(leader);
    cluster.stabilize();
    assert.is(cluster.leader(), leader);
    for (let k = 0; k < leaderEntries; k++) assert.ok(cluster.propose(leader, `${leader}${k}`).ok);
    cluster.stabilize();
  }
  cluster.take();
  return cluster;
}

test(`a follower with ${DIVERGENT_ENTRIES} divergent entries is repaired after one rejection`, () => {
  const cluster = divergedCluster(50);
  cluster.heal();
  cluster.delivered = [];
  cluster.tick('c', 5);
  cluster.stabilize();
  // The divergence spans 200 entries of b and 100 of terms 3 and 4 on the
  // leader; the probe at c's last index is refused once, with hint 2xx/2,
  // and c jumps straight to index 2, the last entry of a term <= 2.
  assert.is(rejectionsFrom(cluster.delivered, 'b'), 1);
  assert.equal(logOf(cluster, 'b'), logOf(cluster, 'c'));
  assert.is(cluster.raw('b').status().commit, cluster.raw('c').status().commit);
});

test('a follower that is merely behind is caught up after one rejection', () => {
  const cluster = new RaftCluster(['a', 'b', 'c'], { heartbeatIntervalTicks: 5 });
  cluster.campaign('a');
  cluster.stabilize();
  cluster.isolate('c');
  for (let k = 0; k < 100; k++) assert.ok(cluster.propose('a', `x${k}`).ok);
  cluster.stabilize();
  // A new leader term, so that the leader's probe starts at its last index.
  assert.ok(cluster.transfer('a', 'b').ok);
  cluster.stabilize();
  assert.is(cluster.leader(), 'b');
  cluster.heal();
  cluster.delivered = [];
  cluster.tick('b', 5);
  cluster.stabilize();
  assert.is(rejectionsFrom(cluster.delivered, 'c'), 1);
  assert.equal(logOf(cluster, 'c'), logOf(cluster, 'b'));
});

test.run();
