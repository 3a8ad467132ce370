// Three real node processes on loopback: bootstrap one, join two, deploy an
// app file and read it from every node; a retried request applies once; a
// bad token is refused; a learner removed out of the leader's reach still
// stops; kill -9 the leader, keep writing through the others (the new
// leader's election log says it won after a timeout), restart it, and all agree; a node joining a cluster whose log was compacted
// catches up by snapshot.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { TestCluster, eventually, sleep, type TestNode } from './harness.js';

const cluster = new TestCluster(50, ['--snapshot-every', '20']);
const HELLO = readFileSync(fileURLToPath(new URL('../../../../examples/hello.yaml', import.meta.url)), 'utf8');

test.after(async () => {
  await cluster.cleanup();
});

const withLogs = cluster.withLogs.bind(cluster);

test('bootstrap one node, join two: three voters', withLogs(async () => {
  const n1 = await cluster.bootstrap('n1');
  assert.match(cluster.token, /^hmca:[0-9a-f]{64}::hm1\./, 'the token printed is pinned to the cluster CA');
  assert.ok(n1.stdout.some((line) => line.includes(`hivemind join ${n1.peerAddress} --token ${cluster.token}`)), 'the first node prints how to join');
  await cluster.join('n2', n1);
  await cluster.join('n3', n1);
  await eventually('three voters', async () => {
    const status = await n1.status();
    return status.voters.length === 3 && status.learners.length === 0;
  });
  const nodes = await n1.request('GET', '/v1/nodes');
  assert.equal(nodes.body.nodes.map((node: { id: string }) => node.id), ['n1', 'n2', 'n3']);
  assert.ok(nodes.body.nodes.every((node: { status: string; role: string }) => node.status === 'up' && node.role === 'voter'));
}));

test('an app file deployed through a follower reads back the same from every node', withLogs(async () => {
  const leader = await cluster.leader();
  const follower = cluster.running().find((node) => node !== leader)!;
  const deployed = await follower.request('POST', '/v1/deploy', { fileName: 'hello.yaml', content: HELLO });
  assert.is(deployed.status, 200, JSON.stringify(deployed.body));
  assert.equal(deployed.body.apps, [{ tenant: 'default', name: 'hello', version: 1, replicas: 2 }]);
  for (const node of cluster.running()) {
    const app = await node.request('GET', '/v1/apps/default/hello');
    assert.is(app.status, 200, `${node.name}: ${JSON.stringify(app.body)}`);
    assert.is(app.body.version, 1);
    assert.is(app.body.spec.replicas, 2);
    assert.equal(app.body.spec.command.slice(0, 2), ['node', '-e']);
    assert.is(app.body.instances.length, 2);
    assert.ok(app.index >= deployed.index, 'a linearizable read reflects the write');
  }
}));

test('a retried request with the same Idempotency-Key is applied once', withLogs(async () => {
  const [a, b] = cluster.running();
  const headers = { 'idempotency-key': 'retry-test-1' };
  const first = await a!.request('PUT', '/v1/kv/retried', { value: 'one' }, { headers });
  const second = await b!.request('PUT', '/v1/kv/retried', { value: 'one' }, { headers });
  assert.is(first.status, 200);
  assert.is(second.status, 200);
  assert.equal(second.body, first.body, 'the retry gets the first answer');
  const history = await a!.request('GET', '/v1/history?limit=1000');
  const writes = history.body.history.filter((entry: { target: string }) => entry.target === 'kv retried');
  assert.is(writes.length, 1, 'one write in the history');
}));

test('a wrong join token is refused with a clear error, and the API refuses a wrong token', withLogs(async () => {
  const n1 = cluster.node('n1');
  const intruder = await cluster.add('intruder');
  intruder.start(['join', n1.peerAddress, '--token', 'hm1.this-is-not-the-token']);
  const code = await intruder.waitExit();
  assert.is(code, 1);
  assert.ok(
    intruder.stderr.some((line) => line.includes(`cannot join via ${n1.peerAddress}: the join token was refused (check --token; \`hivemind token\` on a member shows it)`)),
    intruder.stderr.join('\n'),
  );
  const nodes = await n1.request('GET', '/v1/nodes');
  assert.not.ok(nodes.body.nodes.some((node: { id: string }) => node.id === 'intruder'), 'nothing registered');
  const refused = await n1.request('GET', '/v1/apps', undefined, { token: 'hm1.this-is-not-the-token' });
  assert.is(refused.status, 401);
  assert.is(refused.body.error.code, 'unauthenticated');
  // The refused attempt left nothing behind: the right token joins from the same data directory, and a learner leaves.
  intruder.start(['join', n1.peerAddress, '--token', cluster.token]);
  await intruder.waitHealthy();
  await eventually('the fourth node a learner', async () => (await n1.status()).learners.includes('intruder'));
  const left = await n1.request('POST', '/v1/nodes/intruder/leave');
  assert.is(left.status, 200, JSON.stringify(left.body));
  assert.is(await intruder.waitExit(), 0, 'the node that left stops');
  await eventually('the learner out of the configuration', async () => !(await n1.status()).learners.includes('intruder'));
}));

test('a learner removed while the leader could not reach it stops once it can', withLogs(async () => {
  const n1 = cluster.node('n1');
  const cutOff = await cluster.join('cut-off', n1);
  await eventually('the new node a learner', async () => (await n1.status()).learners.includes('cut-off'));
  // Every message to the learner is refused: it never hears the commit that says it left.
  const restore = refuseConnections(cutOff.peerPort);
  try {
    const left = await n1.request('POST', '/v1/nodes/cut-off/leave');
    assert.is(left.status, 200, JSON.stringify(left.body));
    await eventually('the learner out of the configuration', async () => !(await n1.status()).learners.includes('cut-off'));
    await sleep(1000);
  } finally {
    restore();
  }
  assert.is(await cutOff.waitExit(), 0, 'the removed learner notices its leader went silent, asks, and stops');
  assert.ok(cutOff.stderr.some((line) => line.includes('the cluster says this node left')), cutOff.logTail());
}));

test('kill -9 the leader, keep writing through the others, restart it: all agree', withLogs(async () => {
  const leader = await cluster.leader();
  await leader.kill9();
  const survivors = cluster.running();
  assert.is(survivors.length, 2);
  for (let position = 0; position < 6; position++) {
    const node = survivors[position % 2]!;
    const answer = await node.request('PUT', `/v1/kv/after-crash/${position}`, { value: `v${position}` }, { headers: { 'idempotency-key': `after-crash-${position}` } });
    assert.is(answer.status, 200, `write ${position} through ${node.name}: ${JSON.stringify(answer.body)}`);
  }
  const newLeader = await cluster.leader(survivors);
  assert.is.not(newLeader.name, leader.name);
  // The new leader's election log (GET /v1/elections) has its term: won after the old leader went silent.
  // The log samples Raft's status every 100 ms, so the record may come a moment after the API says who leads.
  const term = (await newLeader.status()).term;
  let elections: unknown;
  const won = await eventually(`${newLeader.name} records term ${term}`, async () => {
    const seen = await newLeader.request('GET', '/v1/elections');
    assert.is(seen.status, 200, JSON.stringify(seen.body));
    elections = seen.body;
    return (seen.body.elections as { term: number; leader: string; reason: string }[]).find((election) => election.term === term && election.leader !== '');
  }, 5000);
  assert.equal([won.leader, won.reason], [newLeader.name, 'timeout'], JSON.stringify(elections));
  leader.start(['agent']);
  await leader.waitHealthy();
  const all: TestNode[] = cluster.running();
  assert.is(all.length, 3);
  await eventually('every node to hold the same state', async () => {
    const answers = await Promise.all(all.map((node) => node.request('GET', '/v1/kv?prefix=after-crash/&stale=true')));
    const bodies = answers.map((answer) => JSON.stringify(answer.body));
    const indexes = answers.map((answer) => answer.index);
    return answers[0]!.body.entries?.length === 6 && bodies.every((body) => body === bodies[0]) && indexes.every((index) => index === indexes[0]);
  });
  const restarted = await leader.request('GET', '/v1/kv/after-crash/5');
  assert.is(restarted.body.value, 'v5');
  await eventually('three voters again', async () => (await newLeader.status()).voters.length === 3);
}));

test('a node joining far behind catches up by snapshot and is promoted while voters are below 3', withLogs(async () => {
  const [first] = cluster.running();
  for (let position = 0; position < 30; position++) {
    const answer = await first!.request('PUT', `/v1/kv/bulk/${position}`, { value: String(position) });
    assert.is(answer.status, 200);
  }
  const leader = await cluster.leader();
  await eventually('the leader to compact its log', () => leader.stderr.some((line) => line.includes('log compacted')));
  const late = await cluster.join('late', first!);
  await eventually('the late node to install a snapshot', () => late.stderr.some((line) => line.includes('installed a snapshot from the leader')));
  const read = await late.request('GET', '/v1/kv/bulk/29');
  assert.is(read.body.value, '29');
  const status = await late.status();
  assert.is(status.voters.length, 3, 'three voters already: the fourth node stays a learner');
  assert.equal(status.learners, ['late']);
}));

test('a node that left joins again under its name through a snapshot taken after its leave: it stays, and restarts', withLogs(async () => {
  const late = cluster.node('late');
  const [first] = cluster.running().filter((node) => node !== late);
  const leaving = await first!.request('POST', '/v1/nodes/late/leave');
  assert.is(leaving.status, 200, JSON.stringify(leaving.body));
  assert.is(await late.waitExit(), 0, late.logTail());
  // The leader's next snapshot holds the record that says late left; the rejoined node installs it first.
  const leader = await cluster.leader();
  const compactions = leader.stderr.filter((line) => line.includes('log compacted')).length;
  for (let position = 0; position < 30; position++) {
    const answer = await first!.request('PUT', `/v1/kv/after-leave/${position}`, { value: String(position) });
    assert.is(answer.status, 200);
  }
  await eventually('the leader to compact its log past the leave', () => leader.stderr.filter((line) => line.includes('log compacted')).length > compactions);
  const installs = late.stderr.filter((line) => line.includes('installed a snapshot from the leader')).length;
  const leaves = late.stderr.filter((line) => line.includes('this node has left the cluster')).length;
  late.start(['join', first!.peerAddress, '--token', cluster.token]);
  await late.waitHealthy();
  assert.ok(late.stderr.filter((line) => line.includes('installed a snapshot from the leader')).length > installs, 'it caught up by a snapshot');
  const record = await eventually('its record up again, on itself', async () => {
    const answer = await late.request('GET', '/v1/nodes/late?stale=true');
    return answer.body.status === 'up' ? answer.body : undefined;
  });
  const identity = JSON.parse(readFileSync(`${late.dataDir}/node.json`, 'utf8'));
  assert.is(identity.joinedIndex, record.joinedIndex, 'the data directory holds the membership it joined');
  assert.is(identity.left, undefined, late.logTail());
  assert.ok(late.running, late.logTail());
  // A restart replays the installed snapshot (which says it left) before its registration: it must not stop.
  await late.stop();
  late.start(['agent']);
  await late.waitHealthy();
  const read = await late.request('GET', '/v1/kv/after-leave/29');
  assert.is(read.body.value, '29');
  assert.is(late.stderr.filter((line) => line.includes('this node has left the cluster')).length, leaves, late.logTail());
}));

/** Refuses (with a reset) every TCP connection and packet to a loopback port until the returned function runs. */
function refuseConnections(port: number): () => void {
  const rule = ['INPUT', '-i', 'lo', '-p', 'tcp', '--dport', String(port), '-j', 'REJECT', '--reject-with', 'tcp-reset'];
  execFileSync('iptables', ['-w', '-I', ...rule]);
  return () => execFileSync('iptables', ['-w', '-D', ...rule]);
}

test.run();
