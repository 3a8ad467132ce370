// Placement never publishes a port the node's host holds: its reported host ports, and its API, peer and gossip ports.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { formatReasons, planPlacements } from '../placement.js';
import { app, instances, node } from './fixtures.js';

test('a published port a node\'s host holds keeps the instance off that node, per protocol, with the reason', () => {
  const nodes = [node('n1', { hostPorts: { tcp: [22, 8080], udp: [] } }), node('n2', { hostPorts: { tcp: [], udp: [8080] } })];
  const web = app('web', { ports: [{ target: 80, published: 8080, protocol: 'tcp' }] });
  const plan = planPlacements({ nodes, apps: [web], instances: instances('web', 1), strategy: 'spread', seed: 1 });
  assert.equal(plan.placements, [{ id: 'web-0', node: 'n2' }], 'n2 holds 8080 over UDP only');
  const both = [node('n1', { hostPorts: { tcp: [8080], udp: [] } }), node('n2', { hostPorts: { tcp: [8080], udp: [] } })];
  const none = planPlacements({ nodes: both, apps: [web], instances: instances('web', 1), strategy: 'spread', seed: 1 });
  assert.equal(formatReasons(none.unplaceable[0]!.reasons), ['2 nodes: host port 8080/tcp in use on the node (by a host process or Hivemind itself)']);
});

test('the API, peer and gossip ports of a node are reserved before it reports any', () => {
  const nodes = [node('n1', { addresses: { api: '10.0.0.1:7070', peer: '10.0.0.1:7071', gossip: '10.0.0.1:7072' } })];
  const reasons = (port: number, protocol: 'tcp' | 'udp'): string[] => {
    const plan = planPlacements({ nodes, apps: [app('x', { ports: [{ target: 1, published: port, protocol }] })], instances: instances('x', 1), strategy: 'spread', seed: 1 });
    return formatReasons(plan.unplaceable[0]?.reasons ?? []);
  };
  assert.equal(reasons(7070, 'tcp'), ['1 node: host port 7070/tcp in use on the node (by a host process or Hivemind itself)']);
  assert.equal(reasons(7071, 'tcp'), ['1 node: host port 7071/tcp in use on the node (by a host process or Hivemind itself)']);
  assert.equal(reasons(7072, 'udp'), ['1 node: host port 7072/udp in use on the node (by a host process or Hivemind itself)']);
  assert.equal(reasons(7072, 'tcp'), [], 'gossip is UDP: 7072/tcp is free');
});

test.run();
