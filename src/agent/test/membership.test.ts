// Four real node processes: the fourth joins as a learner; a node leaves
// cleanly and its process ends; the leader leaves after handing leadership
// on, and the last voter cannot leave. (A voter lost for good, marked down
// and replaced by the learner, is a scenario of the whole-cluster simulator:
// src/sim/test/scenarios.test.ts.)
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { TestCluster, eventually } from './harness.js';

const cluster = new TestCluster(50, ['--voter-grace', '2s']);

test.after(async () => {
  await cluster.cleanup();
});

const withLogs = cluster.withLogs.bind(cluster);

test('four nodes: three voters and one learner', withLogs(async () => {
  const n1 = await cluster.bootstrap('n1');
  for (const name of ['n2', 'n3', 'n4']) await cluster.join(name, n1);
  const status = await eventually('3 voters and 1 learner', async () => {
    const current = await n1.status();
    return current.voters.length === 3 && current.learners.length === 1 ? current : undefined;
  });
  const nodes = await eventually('roles recorded', async () => {
    const answer = await n1.request('GET', '/v1/nodes');
    const roles = answer.body.nodes.map((node: { role: string }) => node.role).sort();
    return JSON.stringify(roles) === JSON.stringify(['learner', 'voter', 'voter', 'voter']) ? answer.body.nodes : undefined;
  });
  assert.is(nodes.length, 4);
  assert.is(status.learners.length, 1);
}));

test('a node leaves cleanly: removed from Raft, status left, its process ends', withLogs(async () => {
  const leader = await cluster.leader();
  const status = await leader.status();
  // The learner: the three voters stay, and no learner is left to promote in a leaving voter's place.
  const leaving = cluster.node(status.learners[0] as string);
  const answer = await leaving.request('POST', `/v1/nodes/${leaving.name}/leave`);
  assert.is(answer.status, 200, JSON.stringify(answer.body));
  assert.equal(answer.body, { id: leaving.name, status: 'left' });
  const code = await Promise.race([leaving.exited, new Promise((resolve) => setTimeout(() => resolve('still running'), 10_000))]);
  assert.is(code, 0, leaving.logTail());
  assert.ok(leaving.stderr.some((line) => line.includes('this node left the cluster')));
  await eventually('the leaving node out of the configuration', async () => {
    const current = await leader.status();
    return !current.voters.includes(leaving.name) && !current.learners.includes(leaving.name);
  });
  const record = await leader.request('GET', `/v1/nodes/${leaving.name}`);
  assert.is(record.body.status, 'left');
  const write = await leader.request('PUT', '/v1/kv/after-leave', { value: 'ok' });
  assert.is(write.status, 200);
}));

test('the leader leaves: leadership moves first; the last voter cannot leave', withLogs(async () => {
  // Three voters: one follower leaves first, then the leader, and one voter is left.
  const first = await cluster.leader();
  const follower = cluster.node((await first.status()).voters.find((id: string) => id !== first.name) as string);
  assert.is((await follower.request('POST', `/v1/nodes/${follower.name}/leave`)).status, 200);
  assert.is(await Promise.race([follower.exited, new Promise((resolve) => setTimeout(() => resolve('still running'), 10_000))]), 0, follower.logTail());
  await eventually('two voters', async () => (await first.status()).voters.length === 2);
  const leader = await cluster.leader();
  const unknown = await leader.request('POST', '/v1/nodes/no-such-node/leave');
  assert.is(unknown.status, 404);
  assert.is(unknown.body.error.code, 'not-found');
  const answer = await leader.request('POST', `/v1/nodes/${leader.name}/leave`);
  assert.is(answer.status, 200, JSON.stringify(answer.body));
  const code = await Promise.race([leader.exited, new Promise((resolve) => setTimeout(() => resolve('still running'), 10_000))]);
  assert.is(code, 0, leader.logTail());
  const [last] = cluster.running();
  assert.ok(last !== undefined);
  const status = await eventually('one voter left', async () => {
    const current = await last!.status();
    return current.voters.length === 1 && current.leader === last!.name ? current : undefined;
  });
  assert.equal(status.voters, [last!.name]);
  const refused = await last!.request('POST', `/v1/nodes/${last!.name}/leave`);
  assert.is(refused.status, 409);
  assert.is(refused.body.error.code, 'conflict');
  assert.match(refused.body.error.message, 'only voter');
}));

test.run();
