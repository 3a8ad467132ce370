// API tokens on three real nodes: a token created through one node works on
// every node once that node applied its entry; a revocation committed through
// a follower is refused by each node as soon as the node applied it (each
// node checks the bearer against its own replica, no cache). The audit log is
// the called node's. Prints how long after the revoke's answer each node
// refused the token (a figure, not an assertion).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { TestCluster, eventually, type TestNode } from '../../agent/test/harness.js';

const cluster = new TestCluster(50);
const withLogs = cluster.withLogs.bind(cluster);
let admin = '';

test.after(async () => {
  await cluster.cleanup();
});

async function appliedIndex(node: TestNode): Promise<number> {
  const answer = await node.request('GET', '/v1/status?stale=true', undefined, { token: admin });
  assert.is(answer.status, 200);
  return answer.body.applied as number;
}

test('three nodes; the founder prints an admin token that every node accepts', withLogs(async () => {
  const n1 = await cluster.bootstrap('n1');
  admin = await eventually('the admin token', () => n1.stdout.find((line) => line.startsWith('admin token: '))?.slice('admin token: '.length).split(' ')[0]);
  assert.match(admin, /^hmca:[0-9a-f]{64}::hma1\./);
  await cluster.join('n2', n1);
  await cluster.join('n3', n1);
  for (const node of cluster.running()) await eventually(`${node.name} to accept the admin token`, async () => (await node.request('GET', '/v1/status?stale=true', undefined, { token: admin })).status === 200);
}));

test('a revocation committed through a follower is refused by every node once it applied the entry', withLogs(async () => {
  const leader = await cluster.leader();
  const follower = cluster.running().find((node) => node !== leader)!;
  const created = await follower.request('POST', '/v1/tokens', { name: 'ci', role: 'deployer', tenants: ['default'] }, { token: admin });
  assert.is(created.status, 200, JSON.stringify(created.body));
  const token = created.body.token as string;
  for (const node of cluster.running()) {
    await eventually(`${node.name} to apply the token`, async () => (await appliedIndex(node)) >= created.index);
    assert.is((await node.request('GET', '/v1/apps?stale=true', undefined, { token })).status, 200, `${node.name} accepts the new token`);
  }
  const revoked = await follower.request('DELETE', `/v1/tokens/${created.body.id}`, undefined, { token: admin });
  assert.is(revoked.status, 200);
  const answeredAt = performance.now();
  const refusedAfterMs: Record<string, number> = {};
  await Promise.all(cluster.running().map(async (node) => {
    // Stale reads answer from the node's replica as it is: refused exactly once the entry is applied there.
    await eventually(`${node.name} to refuse the revoked token`, async () => (await node.request('GET', '/v1/apps?stale=true', undefined, { token })).status === 401, 5000, 10);
    refusedAfterMs[node.name] = Math.round(performance.now() - answeredAt);
    assert.ok((await appliedIndex(node)) >= revoked.index, `${node.name} refused before applying the revocation`);
  }));
  // A linearizable read waits for the node to catch up first: refused on every node right away.
  for (const node of cluster.running()) assert.is((await node.request('GET', '/v1/apps', undefined, { token })).status, 401);
  console.log(`revoked token refused after (ms from the revoke's answer): ${JSON.stringify(refusedAfterMs)}`);
  // The revoke was recorded by the node the client called, with the index it produced, and by the leader, marked forwarded.
  const auditOf = (node: TestNode) => readFileSync(join(node.dataDir, 'audit', 'audit.log'), 'utf8').trim().split('\n').map((line) => JSON.parse(line));
  const isRevoke = (event: any) => event.verb === 'delete' && event.requestURI === `/v1/tokens/${created.body.id}`;
  const record = auditOf(follower).find(isRevoke);
  assert.is(record?.annotations['hivemind/raft-index'], String(revoked.index));
  assert.is(record?.user.username, 'admin');
  assert.is(record?.annotations['hivemind/forwarded'], undefined);
  const onLeader = auditOf(leader).find(isRevoke);
  assert.is(onLeader?.annotations['hivemind/forwarded'], '1');
  assert.is(onLeader?.user.username, 'admin');
  // Gathered from every node, through a third one.
  const third = cluster.running().find((node) => node !== leader && node !== follower) ?? follower;
  const gathered = await third.request('GET', `/v1/audit?all=true&user=admin&limit=1000`, undefined, { token: admin });
  assert.is(gathered.status, 200, JSON.stringify(gathered.body));
  assert.equal([...gathered.body.nodes].sort(), ['n1', 'n2', 'n3']);
  assert.equal(gathered.body.unreachable, []);
  const revokes = gathered.body.events.filter(isRevoke);
  assert.equal(revokes.map((event: any) => [event.annotations['hivemind/node'], event.annotations['hivemind/forwarded'] ?? '-']).sort(), [[follower.name, '-'], [leader.name, '1']].sort());
}));

test.run();
