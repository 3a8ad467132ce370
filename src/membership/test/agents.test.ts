/**
 * Gossip between real agent processes on loopback: five nodes; kill -9 one
 * and every other node's gossip view marks it dead (GET /v1/nodes) and the
 * state records it down; restart the killed node and it is alive again
 * everywhere with a higher incarnation (the real runtime's, from the wall
 * clock). That a node silent for less than the suspicion timeout is never
 * declared dead is a scenario of the whole-cluster simulator
 * (src/sim/test/scenarios.test.ts), which checks it without a real pause.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { eventually, TestCluster, type TestNode } from '../../agent/test/harness.js';

const cluster = new TestCluster(50, ['--voter-grace', '5s']);

interface NodeEntry {
  id: string;
  status: string;
  gossip?: { status: string; incarnation: number };
}

async function nodesSeenBy(node: TestNode): Promise<NodeEntry[]> {
  const answer = await node.request('GET', '/v1/nodes?stale=true');
  if (answer.status !== 200) throw new Error(`GET /v1/nodes on ${node.name}: ${answer.status}`);
  return answer.body.nodes as NodeEntry[];
}

async function gossipOf(observer: TestNode, id: string): Promise<NodeEntry['gossip']> {
  return (await nodesSeenBy(observer)).find((entry) => entry.id === id)?.gossip;
}

test('five agents: kill -9 is detected by all, a restart comes back', cluster.withLogs(async () => {
  const n1 = await cluster.bootstrap('n1');
  const others = [];
  for (const name of ['n2', 'n3', 'n4', 'n5']) others.push(await cluster.join(name, n1));
  const nodes = [n1, ...others];
  const names = nodes.map((node) => node.name);
  await eventually('every node to see all five alive in gossip', async () => {
    for (const node of nodes) {
      const seen = await nodesSeenBy(node);
      if (!names.every((name) => seen.find((entry) => entry.id === name)?.gossip?.status === 'alive')) return false;
    }
    return true;
  }, 30_000, 250);

  // kill -9 n5: every other node's gossip view says dead; the state records it down.
  const n5 = cluster.node('n5');
  const incarnationBefore = (await gossipOf(n1, 'n5'))!.incarnation;
  await n5.kill9();
  const survivors = nodes.filter((node) => node !== n5);
  await eventually('n1..n4 to mark n5 dead', async () => {
    for (const node of survivors) if ((await gossipOf(node, 'n5'))?.status !== 'dead') return false;
    return true;
  }, 30_000, 200);
  await eventually('the state to record n5 down', async () => (await nodesSeenBy(n1)).find((entry) => entry.id === 'n5')?.status === 'down', 30_000, 200);

  // Restart n5 from its data directory: alive again everywhere, at a higher incarnation.
  n5.start(['agent']);
  await eventually('n1..n4 to see n5 alive again at a higher incarnation', async () => {
    for (const node of survivors) {
      const gossip = await gossipOf(node, 'n5');
      if (gossip?.status !== 'alive' || gossip.incarnation <= incarnationBefore) return false;
    }
    return true;
  }, 30_000, 250);
}));

test.after(async () => {
  await cluster.cleanup();
});

test.run();
