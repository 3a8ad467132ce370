// The agent's deterministic parts, without a running node: the start plan, the rejoin rule, the log's repeat limit.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Status } from '../../../consensus/core/types.js';
import { DataDir } from '../../node/data-dir.js';
import { ManualClock } from '../../node/manual-clock.js';
import { AgentLog, readableLogLine } from '../agent-log.js';
import { AgentError } from '../agent-error.js';
import { LEADER_SILENCE_MS, outsideReason, rejoinAfterMs } from '../rejoin.js';
import { chooseStartPlan, type StartMode } from '../start-plan.js';

function withDataDir(run: (dataDir: DataDir) => void): void {
  const path = mkdtempSync(join(tmpdir(), 'hivemind-start-plan-'));
  try {
    run(new DataDir(path));
  } finally {
    rmSync(path, { recursive: true, force: true });
  }
}

function plan(dataDir: DataDir, mode: StartMode, token?: string) {
  const lines: string[] = [];
  const chosen = chooseStartPlan({ name: 'n1', dataDir, mode, token, nowIso: '2026-12-05T00:00:00.000Z', log: (line) => lines.push(line) });
  return { chosen, lines };
}

test('start plan: an empty directory bootstraps (with the given token, or a fresh one), or joins with a token', () => {
  withDataDir((dataDir) => {
    const given = plan(dataDir, 'bootstrap-or-restart', 'hm1.given').chosen;
    assert.is(given.type, 'bootstrap');
    if (given.type !== 'bootstrap') return;
    assert.is(given.token, 'hm1.given');
    assert.is(given.clusterKey.length, 32);
    assert.equal(given.identity, { format: 1, name: 'n1', origin: 'bootstrap', createdAt: '2026-12-05T00:00:00.000Z', peers: {} });
    const fresh = plan(dataDir, 'bootstrap-or-restart').chosen;
    assert.ok(fresh.type === 'bootstrap' && fresh.token.length > 0 && fresh.token !== 'hm1.given');
    const joining = plan(dataDir, { join: 'seed:7071' }, 'hm1.given').chosen;
    assert.equal(joining.type === 'join' ? [joining.seed, joining.token, joining.identity.origin] : undefined, ['seed:7071', 'hm1.given', 'join']);
    assert.throws(() => plan(dataDir, { join: 'seed:7071' }), (error: unknown) => error instanceof AgentError && /needs the cluster's join token/.test(error.message));
  });
});

test('start plan: a member restarts, even when asked to join; another name or a lost key is refused', () => {
  withDataDir((dataDir) => {
    dataDir.ensure();
    dataDir.writeIdentity({ format: 1, name: 'n1', origin: 'join', createdAt: 'then', joinedIndex: 7, peers: { n2: 'b:7071' } });
    assert.throws(() => plan(dataDir, 'bootstrap-or-restart'), /has node.json but no cluster.key/);
    dataDir.writeClusterKey(new Uint8Array(32).fill(1));
    const restart = plan(dataDir, { join: 'seed' }, 'hm1.x');
    assert.is(restart.chosen.type, 'restart');
    assert.is(restart.chosen.identity.joinedIndex, 7);
    assert.match(restart.lines.join('\n'), /already belongs to a member: restarting it, not joining through seed/);
    assert.throws(
      () => chooseStartPlan({ name: 'other', dataDir, mode: 'bootstrap-or-restart', token: undefined, nowIso: '', log: () => {} }),
      (error: unknown) => error instanceof AgentError && error.code === 'data-dir' && /belongs to node "n1", not "other"/.test(error.message),
    );
  });
});

test('start plan: a node that left only joins again (resetting its directory); Raft data without node.json is refused', () => {
  withDataDir((dataDir) => {
    dataDir.ensure();
    dataDir.writeIdentity({ format: 1, name: 'n1', origin: 'join', createdAt: 'then', left: true, peers: {} });
    dataDir.writeClusterKey(new Uint8Array(32));
    assert.throws(() => plan(dataDir, 'bootstrap-or-restart'), (error: unknown) => error instanceof AgentError && error.code === 'left');
    const again = plan(dataDir, { join: 'seed' }, 'hm1.x');
    assert.is(again.chosen.type, 'join');
    assert.is(dataDir.readClusterKey(), undefined, 'the old membership is reset');
  });
  withDataDir((dataDir) => {
    mkdirSync(dataDir.raftPath, { recursive: true });
    writeFileSync(join(dataDir.raftPath, 'CURRENT'), 'x');
    assert.throws(() => plan(dataDir, 'bootstrap-or-restart'), /holds Raft data but no node.json/);
  });
});

function status(overrides: Partial<Status>): Status {
  return { id: 'n2', term: 3, vote: '', commit: 10, applied: 10, lastIndex: 10, firstIndex: 1, role: 'follower' as Status['role'], leader: 'n1', config: { voters: ['n1', 'n2', 'n3'], learners: [] }, transferee: '', silentTicks: 0, ...overrides };
}

test('rejoin: a node is outside without a leader, after the leader fell silent, or outside the configuration; never as leader', () => {
  const tickMs = 50;
  assert.is(outsideReason(status({}), 'n2', tickMs), undefined);
  assert.is(outsideReason(status({ leader: '' }), 'n2', tickMs), 'no leader heard');
  assert.is(outsideReason(status({ silentTicks: LEADER_SILENCE_MS / tickMs - 1 }), 'n2', tickMs), undefined);
  assert.is(outsideReason(status({ silentTicks: LEADER_SILENCE_MS / tickMs }), 'n2', tickMs), 'no leader heard');
  assert.is(outsideReason(status({ config: { voters: ['n1', 'n3'], learners: [] } }), 'n2', tickMs), 'not in the Raft configuration');
  assert.is(outsideReason(status({ config: { voters: ['n1'], learners: ['n2'] } }), 'n2', tickMs), undefined, 'a learner is in');
  assert.is(outsideReason(status({ role: 'leader' as Status['role'], leader: 'n2', config: { voters: [], learners: [] } }), 'n2', tickMs), undefined);
  assert.is(rejoinAfterMs(50), 5000);
  assert.is(rejoinAfterMs(100), 10_000, 'long ticks: 100 of them');
});

test('log: a keyed line at most once per interval; plain lines always', async () => {
  const clock = new ManualClock(Date.UTC(2026, 11, 5));
  const lines: string[] = [];
  const log = new AgentLog({ nodeId: 'n1', write: (line) => lines.push(line), clock, repeatIntervalMs: 10_000 });
  log.once('k', 'agent', 'first');
  log.once('k', 'agent', 'again');
  log.line('agent', 'plain');
  log.line('agent', 'plain');
  assert.equal(lines, ['2026-12-05T00:00:00.000Z n1 agent: first', '2026-12-05T00:00:00.000Z n1 agent: plain', '2026-12-05T00:00:00.000Z n1 agent: plain']);
  await clock.advance(10_000);
  log.once('k', 'agent', 'after the interval');
  log.once('other', 'trust', 'another key');
  assert.equal(lines.slice(3), ['2026-12-05T00:00:10.000Z n1 agent: after the interval', '2026-12-05T00:00:10.000Z n1 trust: another key']);
});

test('log: a JSON line reads back as the readable line, with its level when not info and its trace id', () => {
  const json = '{"level":"warn","time":"2026-12-05T00:00:00.000Z","node":"n1","component":"executor","trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","span_id":"00f067aa0ba902b7","msg":"start failed"}\n';
  assert.is(readableLogLine(json), '2026-12-05T00:00:00.000Z n1 executor WARN: start failed [trace 4bf92f3577b34da6a3ce929d0e0e4736]');
  assert.is(readableLogLine('{"level":"info","time":"t","node":"n1","component":"agent","msg":"plain"}'), 't n1 agent: plain');
  assert.is(readableLogLine('hivemind: not a log line'), 'hivemind: not a log line', 'other output as it is');
  assert.is(readableLogLine('{"not":"ours"}'), '{"not":"ours"}');
});

test('log: levels below the configured one are not written', () => {
  const lines: string[] = [];
  const log = new AgentLog({ nodeId: 'n1', write: (line) => lines.push(line), clock: new ManualClock(Date.UTC(2026, 11, 5)), repeatIntervalMs: 10_000, level: 'warn' });
  log.line('agent', 'info is quiet');
  log.at('debug', 'agent', 'debug is quiet');
  log.warn('agent', 'a warning');
  log.error('raft', 'an error');
  assert.equal(lines, ['2026-12-05T00:00:00.000Z n1 agent WARN: a warning', '2026-12-05T00:00:00.000Z n1 raft ERROR: an error']);
});

test.run();
