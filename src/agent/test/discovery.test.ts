// `--discoverable on` and `hivemind join --discover`, offline: a local DHT
// testnet on loopback is the only bootstrap (HIVEMIND_DISCOVERY_BOOTSTRAP).
// The first node announces itself under its token's topic; a second node
// that knows only the token finds it and joins.
import createTestnet from 'hyperdht/testnet.js';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { CLI, TestCluster, eventually } from './harness.js';

const cluster = new TestCluster(50);
let testnet: Awaited<ReturnType<typeof createTestnet>> | undefined;

test.after(async () => {
  await cluster.cleanup();
  await testnet?.destroy();
});

test('a node that knows only the token finds a discoverable member and joins', cluster.withLogs(async () => {
  testnet = await createTestnet(3, { host: '127.0.0.1' });
  assert.ok(testnet.bootstrap.every((node) => node.host === '127.0.0.1'), 'loopback only');
  process.env.HIVEMIND_DISCOVERY_BOOTSTRAP = testnet.bootstrap.map((node) => `${node.host}:${node.port}`).join(',');
  const first = await cluster.add('d1');
  first.start(['agent'], ['--discoverable', 'on']);
  cluster.token = await eventually('d1 to print its join token', () => first.stdout.find((line) => line.startsWith('join token: '))?.slice('join token: '.length).trim(), 20_000, 50);
  await first.waitHealthy();
  await eventually('d1 to announce itself', () => first.stderr.some((line) => line.includes('announced this node')), 30_000);
  const second = await cluster.add('d2');
  second.start(['join', '--discover', '--token', cluster.token], [], CLI);
  await second.waitHealthy(60_000);
  const nodes = await first.request('GET', '/v1/nodes');
  assert.equal(nodes.body.nodes.map((node: { id: string }) => node.id), ['d1', 'd2']);
}));

test.run();
