// The audit log's file: one Kubernetes-style event per line, rotated at its
// size limit with the oldest file dropped, read back filtered.
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { AuditLog, type AuditRecord } from '../audit.js';
import { parseSince } from '../routes-tokens.js';

const directory = mkdtempSync(join(tmpdir(), 'hivemind-audit-'));

test.after(() => rmSync(directory, { recursive: true, force: true }));

function record(position: number, overrides: Partial<AuditRecord> = {}): AuditRecord {
  return { time: 1_700_000_000_000 + position * 1000, node: 'n1', user: `user${position % 3}`, tokenId: 'abc123abc123', role: 'deployer', sourceAddress: '127.0.0.1', method: 'POST', path: `/v1/apps/t${position % 2}/web/scale`, route: '/v1/apps/:tenant/:name/scale', tenant: `t${position % 2}`, status: 200, outcome: 'allowed', raftIndex: position, ...overrides };
}

test('rotates at the size limit, keeps filesKept older files, and reads back across them', async () => {
  const folder = join(directory, 'rotating');
  const log = new AuditLog(folder, { bytesMax: 4096, filesKept: 2 });
  for (let position = 0; position < 60; position++) log.append(record(position));
  log.close();
  assert.equal(readdirSync(folder).sort(), ['audit.log', 'audit.log.1', 'audit.log.2']);
  for (const name of readdirSync(folder)) assert.ok(statSync(join(folder, name)).size <= 4096, `${name} is over the limit`);
  const all = await new AuditLog(folder, { filesKept: 2 }).read({ limit: 1000 });
  const indexes = all.map((event) => Number(event.annotations['hivemind/raft-index']));
  // The newest survive, in order, ending with the last one written; the oldest were dropped with the oldest file.
  assert.is(indexes.at(-1), 59);
  assert.ok(indexes.length < 60 && indexes.every((index, position) => position === 0 || index === indexes[position - 1]! + 1));
  const line = JSON.parse(readFileSync(join(folder, 'audit.log'), 'utf8').split('\n')[0]!);
  assert.is(line.apiVersion, 'audit.k8s.io/v1');
  assert.is(line.kind, 'Event');
  assert.is(line.stage, 'ResponseComplete');
});

test('read filters by tenant, user, time and visible tenants, and keeps the newest `limit`', async () => {
  const folder = join(directory, 'filtering');
  const log = new AuditLog(folder);
  for (let position = 0; position < 12; position++) log.append(record(position));
  log.append(record(12, { tenant: undefined, route: '/v1/kv/*key', path: '/v1/kv/a', user: 'unknown', status: 401, outcome: 'refused', raftIndex: undefined }));
  const indexes = (events: { annotations: Record<string, string> }[]) => events.map((event) => event.annotations['hivemind/raft-index'] ?? '-');
  assert.equal(indexes(await log.read({ tenant: 't1', limit: 100 })), ['1', '3', '5', '7', '9', '11']);
  assert.equal(indexes(await log.read({ user: 'user0', limit: 100 })), ['0', '3', '6', '9']);
  assert.equal(indexes(await log.read({ sinceMs: 1_700_000_010_000, limit: 100 })), ['10', '11', '-']);
  assert.equal(indexes(await log.read({ visibleTenants: ['t0'], limit: 2 })), ['8', '10']);
  log.close();
});

test('since: a duration back from now or an ISO time; anything else is a 400', () => {
  assert.is(parseSince('90s', 1_000_000), 910_000);
  assert.is(parseSince('1h', 10_000_000), 6_400_000);
  assert.is(parseSince('2026-01-01T00:00:00Z', 0), Date.UTC(2026, 0, 1));
  assert.throws(() => parseSince('yesterday', 0), /since must be/);
});

test.run();
