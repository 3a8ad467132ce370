// The election log classifies what a node's Raft status shows from one
// sample to the next: a start, a timeout, a transfer (from the old leader's
// side and the new one's), a leader that lost its quorum, a term begun
// elsewhere; it keeps the newest 20.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ELECTION_RECORDS_MAX, ElectionLog, type RaftSample } from '../election-log.js';

const TIMEOUT_TICKS = 10;

function sample(term: number, role: string, leader: string, extra: Partial<RaftSample> = {}): RaftSample {
  return { term, role, leader, transferee: '', silentTicks: role === 'leader' ? 0 : 1, ...extra };
}

/** Feeds `samples` one a second from t=1000; the log's records, oldest first, as `term leader reason`. */
function seen(samples: RaftSample[]): string[] {
  const log = new ElectionLog({ electionTimeoutTicks: TIMEOUT_TICKS });
  samples.forEach((each, index) => log.observe(each, 1000 * (index + 1)));
  return log.records().reverse().map((record) => `${record.term} ${record.leader || '-'} ${record.reason}`);
}

test('the first sample is the start; a leader learned later fills its term', () => {
  const log = new ElectionLog({ electionTimeoutTicks: TIMEOUT_TICKS });
  log.observe(sample(3, 'follower', ''), 1000);
  log.observe(sample(3, 'follower', 'n2'), 2000);
  log.observe(sample(3, 'follower', 'n2'), 3000);
  assert.equal(log.records(), [{ term: 3, leader: 'n2', seenAt: 1000, leaderSeenAt: 2000, reason: 'start' }]);
});

test('a joiner (or a restarted node) that learns the cluster\'s term from its leader records that term as its start', () => {
  assert.equal(seen([sample(0, 'follower', ''), sample(0, 'follower', ''), sample(2, 'follower', 'n1'), sample(2, 'follower', 'n1', { silentTicks: 12 }), sample(3, 'follower', ''), sample(3, 'follower', 'n2')]), ['2 n1 start', '3 n2 timeout']);
  assert.equal(seen([sample(0, 'follower', ''), sample(2, 'follower', ''), sample(2, 'follower', 'n1')]), ['2 n1 start']);
});

test('a follower whose leader went silent, and a candidate, see a timeout', () => {
  assert.equal(seen([sample(1, 'follower', 'n1'), sample(1, 'follower', 'n1', { silentTicks: 9 }), sample(2, 'leader', 'n2')]), ['1 n1 start', '2 n2 timeout']);
  assert.equal(seen([sample(1, 'follower', 'n1'), sample(1, 'follower', ''), sample(2, 'follower', ''), sample(2, 'follower', 'n3')]), ['1 n1 start', '2 n3 timeout']);
  assert.equal(seen([sample(4, 'follower', ''), sample(4, 'pre-candidate', ''), sample(5, 'candidate', ''), sample(6, 'leader', 'n1')]), ['4 - start', '5 - timeout', '6 n1 timeout']);
});

test('a transfer, from the old leader and from the node it went to; a term begun elsewhere is unknown', () => {
  assert.equal(seen([sample(2, 'leader', 'n1'), sample(2, 'leader', 'n1', { transferee: 'n2' }), sample(3, 'follower', 'n2')]), ['2 n1 start', '3 n2 transfer']);
  assert.equal(seen([sample(2, 'follower', 'n1'), sample(3, 'leader', 'n2', { silentTicks: 0 })]), ['2 n1 start', '3 n2 transfer']);
  assert.equal(seen([sample(2, 'follower', 'n1'), sample(3, 'follower', 'n3')]), ['2 n1 start', '3 n3 unknown']);
  assert.equal(seen([sample(2, 'leader', 'n1'), sample(3, 'follower', '')]), ['2 n1 start', '3 - unknown']);
});

test('a leader that steps down in its term lost its quorum; the next term is its timeout', () => {
  assert.equal(seen([sample(5, 'leader', 'n1'), sample(5, 'follower', '', { silentTicks: 0 }), sample(5, 'pre-candidate', '', { silentTicks: 12 }), sample(6, 'leader', 'n1')]), [
    '5 n1 start',
    '5 - lost-quorum',
    '6 n1 timeout',
  ]);
});

test('only the newest 20 are kept, newest first; a term going back (a Raft node made anew) is a start', () => {
  const log = new ElectionLog({ electionTimeoutTicks: TIMEOUT_TICKS });
  for (let term = 1; term <= 30; term++) log.observe(sample(term, 'follower', `n${term}`, { silentTicks: 20 }), term);
  const records = log.records();
  assert.is(records.length, ELECTION_RECORDS_MAX);
  assert.equal([records[0]!.term, records.at(-1)!.term], [30, 11]);
  log.observe(sample(0, 'follower', ''), 31);
  assert.equal(log.records()[0], { term: 0, leader: '', seenAt: 31, reason: 'start' });
});

test.run();
