// Real agent processes: the leader's scheduler places a process app across three nodes, and after a node is
// killed (-9) and marked down, its instances come back on the others once the reschedule grace has passed.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { TestCluster, eventually } from '../../agent/test/harness.js';

// A short reschedule grace for this test.
const cluster = new TestCluster(50, ['--voter-grace', '2s', '--reschedule-grace', '2s']);

test.after(async () => {
  // Also kills the process workloads, which outlive their agents by design (TestCluster.cleanup).
  await cluster.cleanup();
});

const withLogs = cluster.withLogs.bind(cluster);

const APP_FILE = ['services:', '  sleeper:', '    command: ["sleep", "300"]', '    deploy:', '      replicas: 3', ''].join('\n');

interface InstanceView {
  id: string;
  node?: string;
  desired: string;
  slot: number;
}

test('instances are placed across nodes; a killed node\'s instances come back on the others after the grace', withLogs(async () => {
  const n1 = await cluster.bootstrap('n1');
  await cluster.join('n2', n1);
  await cluster.join('n3', n1);
  await eventually('3 voters', async () => (await n1.status()).voters.length === 3);
  const deployed = await n1.request('POST', '/v1/deploy', { fileName: 'app.yaml', content: APP_FILE });
  assert.is(deployed.status, 200, JSON.stringify(deployed.body));

  const instances = async (): Promise<InstanceView[]> => {
    const answer = await (await cluster.leader()).request('GET', '/v1/instances?app=sleeper');
    return (answer.body.instances as InstanceView[]).filter((instance) => instance.desired === 'running');
  };
  const placed = await eventually('3 instances placed', async () => {
    const found = await instances();
    return found.length === 3 && found.every((instance) => instance.node !== undefined) ? found : undefined;
  });
  assert.equal(new Set(placed.map((instance) => instance.node)).size, 3, `spread over the 3 nodes: ${JSON.stringify(placed)}`);

  const leader = await cluster.leader();
  const victim = cluster.node(['n1', 'n2', 'n3'].find((name) => name !== leader.name)!);
  const moved = placed.find((instance) => instance.node === victim.name)!;
  await victim.kill9();
  await eventually(`${victim.name} marked down`, async () => (await leader.request('GET', `/v1/nodes/${victim.name}`)).body.status === 'down', 20_000);
  const after = await eventually('the victim\'s instance placed on another node', async () => {
    const found = await instances();
    const again = found.find((instance) => instance.id === moved.id);
    return found.length === 3 && again?.node !== undefined && again.node !== victim.name ? found : undefined;
  }, 20_000);
  assert.ok(after.every((instance) => instance.node !== victim.name), JSON.stringify(after));
  const history = await leader.request('GET', '/v1/history?limit=50');
  assert.ok(history.body.history.some((entry: { command: string; summary: string }) => entry.command === 'instance.place' && entry.summary.includes(moved.id)));
}));

function webFile(check: string): string {
  return [
    'services:',
    '  web:',
    '    command: ["sleep", "300"]',
    '    healthcheck:',
    `      test: ["CMD", "${check}"]`,
    '      interval: 1s',
    '      timeout: 1s',
    '      retries: 1',
    '      start_period: 0s',
    '    deploy:',
    '      replicas: 2',
    '      update_config:',
    '        parallelism: 1',
    '        failure_action: rollback',
    '        order: start-first',
    '',
  ].join('\n');
}

test('a rolling update whose new version fails its health check rolls back by itself', withLogs(async () => {
  const leader = await cluster.leader();
  const first = await leader.request('POST', '/v1/deploy', { fileName: 'web.yaml', content: webFile('true') });
  assert.is(first.status, 200, JSON.stringify(first.body));
  const healthy = async (version: number): Promise<number> => {
    const answer = await (await cluster.leader()).request('GET', '/v1/instances?app=web');
    return (answer.body.instances as { desired: string; version: number; status: { state: string } }[]).filter(
      (instance) => instance.desired === 'running' && instance.version === version && instance.status.state === 'healthy',
    ).length;
  };
  await eventually('2 healthy instances of version 1', async () => (await healthy(1)) === 2, 30_000);
  const second = await leader.request('POST', '/v1/deploy', { fileName: 'web.yaml', content: webFile('false') });
  assert.is(second.status, 200, JSON.stringify(second.body));
  const app = await eventually('the rollback finished', async () => {
    const answer = await (await cluster.leader()).request('GET', '/v1/apps/default/web');
    return answer.body.rollout?.state === 'rolled-back' ? answer.body : undefined;
  }, 40_000);
  assert.is(app.version, 1);
  assert.equal([app.rollout.kind, app.rollout.fromVersion, app.rollout.toVersion], ['rollback', 2, 1]);
  assert.match(app.rollout.message, /rolled back to version 1/);
  assert.is(await healthy(1), 2, 'the old version never stopped serving');
  const history = await leader.request('GET', '/v1/history?limit=100');
  assert.ok(history.body.history.some((entry: { summary: string }) => /update to version 2 failed; rolling back to version 1: 1 new instance failed/.test(entry.summary)));
}));

test('promote, abort and rebalance routes: answers and refusals with the field', withLogs(async () => {
  const leader = await cluster.leader();
  const promote = await leader.request('POST', '/v1/apps/default/web/promote');
  assert.is(promote.status, 409);
  assert.equal([promote.body.error.code, promote.body.error.field], ['conflict', 'name']);
  assert.match(promote.body.error.message, /no rollout is in progress \(its last rollout rolled-back\)/);
  const abort = await leader.request('POST', '/v1/apps/default/ghost/abort');
  assert.is(abort.status, 404);
  const badName = await leader.request('POST', '/v1/rebalance', { name: 5 });
  assert.equal([badName.status, badName.body.error.field], [400, 'name']);
  const unknownField = await leader.request('POST', '/v1/rebalance', { app: 'web' });
  assert.is(unknownField.status, 400);
  const rebalance = await leader.request('POST', '/v1/rebalance', { name: 'web' });
  assert.is(rebalance.status, 200, JSON.stringify(rebalance.body));
  assert.equal(rebalance.body, { apps: 1 });
  await eventually('the rebalance to finish (2 nodes, 2 instances: already even)', async () => {
    const app = await (await cluster.leader()).request('GET', '/v1/apps/default/web');
    return app.body.rebalance === undefined;
  }, 15_000);
}));

test.run();
