// After a cluster loses its quorum for good, `recover --force-new-cluster` on
// the lone survivor (its agent stopped) brings it back into service with its
// state; and a node restarted on its data directory keeps its state.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { TestCluster, eventually } from './harness.js';

const cluster = new TestCluster(50, ['--voter-grace', '2s']);

test.after(async () => {
  await cluster.cleanup();
});

const withLogs = cluster.withLogs.bind(cluster);

test('a lone survivor is brought back by recover --force-new-cluster', withLogs(async () => {
  const n1 = await cluster.bootstrap('n1');
  await cluster.join('n2', n1);
  await cluster.join('n3', n1);
  await eventually('three voters', async () => (await n1.status()).voters.length === 3);
  const before = await n1.request('PUT', '/v1/kv/before-disaster', { value: 'kept' });
  assert.is(before.status, 200);

  await cluster.node('n2').kill9();
  await cluster.node('n3').kill9();
  const stuck = await n1.request('PUT', '/v1/kv/during-disaster', { value: 'x' }, { timeoutMs: 30_000 });
  assert.ok(stuck.status === 503 || stuck.status === 504, `without a quorum a write fails: ${stuck.status} ${JSON.stringify(stuck.body)}`);

  await n1.stop();
  const refused = await n1.runOnce(['recover']);
  assert.is(refused.code, 2, 'recover without --force-new-cluster is a usage error');
  const recovered = await n1.runOnce(['recover', '--force-new-cluster']);
  assert.is(recovered.code, 0, recovered.stderr);
  assert.match(recovered.stdout, 'node n1 is now the only voter');

  n1.start(['agent']);
  await n1.waitHealthy();
  const status = await eventually('n1 to lead alone', async () => {
    const current = await n1.status();
    return current.leader === 'n1' ? current : undefined;
  });
  assert.equal(status.voters, ['n1']);
  const after = await n1.request('PUT', '/v1/kv/after-recovery', { value: 'ok' });
  assert.is(after.status, 200, JSON.stringify(after.body));
  const kept = await n1.request('GET', '/v1/kv/before-disaster');
  assert.is(kept.body.value, 'kept');
  await eventually('the lost nodes marked down', async () => {
    const nodes = await n1.request('GET', '/v1/nodes');
    const down = nodes.body.nodes.filter((node: { status: string }) => node.status === 'down').map((node: { id: string }) => node.id);
    return JSON.stringify(down) === JSON.stringify(['n2', 'n3']);
  }, 45_000, 500);
}));

test('a node restarted on its data directory comes back with its state; a wiped node joins again', withLogs(async () => {
  const n1 = cluster.node('n1');
  await n1.stop();
  n1.start(['agent']);
  await n1.waitHealthy();
  const kept = await n1.request('GET', '/v1/kv/after-recovery');
  assert.is(kept.body.value, 'ok');
  const n4 = await cluster.join('n4', n1);
  const read = await n4.request('GET', '/v1/kv/before-disaster');
  assert.is(read.body.value, 'kept');
}));

test.run();
