// Cluster.Submit: a member proposes a command through the leader, signed
// with the cluster key, over mutual TLS. Two real node processes; the test
// plays a member with the cluster key and the certificate from a node's data
// directory, and checks every
// refusal path (bad MAC, another node's actor, a command members may not
// submit, a non-member, garbage, a follower asked instead of the leader).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Packr } from 'msgpackr';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ClusterClients, grpc } from '../cluster-service.js';
import { signSubmit } from '../submit.js';
import { TestCluster, eventually, tlsMaterialOf, type TestNode } from './harness.js';
import { NodeCredentials, TLS_SERVER_NAME } from '../../security/node-credentials.js';

const cluster = new TestCluster(50);
const credentials = new NodeCredentials('s2');
const clients = new ClusterClients({ memberCredentials: () => credentials.channelCredentials(), channelOptions: { 'grpc.ssl_target_name_override': TLS_SERVER_NAME } });
const packr = new Packr({ useRecords: false });
let leader: TestNode;
let follower: TestNode;
let key: Uint8Array;

test.before(async () => {
  leader = await cluster.bootstrap('s1');
  follower = await cluster.join('s2', leader);
  key = new Uint8Array(readFileSync(join(follower.dataDir, 'cluster.key')));
  credentials.update(tlsMaterialOf(follower));
  await eventually('s2 registered', async () => (await leader.request('GET', '/v1/nodes/s2')).status === 200);
});

test.after(async () => {
  clients.close();
  await cluster.cleanup();
});

const withLogs = cluster.withLogs.bind(cluster);

function envelope(actor: string, command: unknown, requestId = `test:${Math.random()}`): Uint8Array {
  return new Uint8Array(packr.pack({ requestId, time: Date.now(), actor, command }));
}

test('a member\'s heartbeat goes through the leader and is applied', withLogs(async () => {
  const before = (await leader.request('GET', '/v1/nodes/s2')).body.lastSeenAt;
  const answer = await clients.submit(leader.peerAddress, signSubmit(key, 's2', envelope('s2', { type: 'node.heartbeat', id: 's2' })), 5000);
  assert.ok(answer.ok, JSON.stringify(answer));
  const result = packr.unpack(Buffer.from(answer.ok ? answer.result : new Uint8Array())) as { ok: boolean; index: number };
  assert.is(result.ok, true);
  assert.ok(result.index > 0);
  const after = await follower.request('GET', '/v1/nodes/s2');
  assert.ok(after.body.lastSeenAt >= before, 'the heartbeat is recorded');
}));

test('every refusal names its reason and changes nothing', withLogs(async () => {
  const before = (await leader.request('GET', '/v1/status')).body.commit;
  const cases: { what: string; address: string; request: ReturnType<typeof signSubmit>; status: grpc.status; message: RegExp }[] = [
    {
      what: 'wrong key',
      address: leader.peerAddress,
      request: signSubmit(new Uint8Array(32).fill(7), 's2', envelope('s2', { type: 'node.heartbeat', id: 's2' })),
      status: grpc.status.PERMISSION_DENIED,
      message: /mac does not match/,
    },
    {
      what: 'stale timestamp',
      address: leader.peerAddress,
      request: signSubmit(key, 's2', envelope('s2', { type: 'node.heartbeat', id: 's2' }), Date.now() - 3600_000),
      status: grpc.status.PERMISSION_DENIED,
      message: /timestamp_ms/,
    },
    {
      what: 'actor is another node',
      address: leader.peerAddress,
      request: signSubmit(key, 's2', envelope('s1', { type: 'node.heartbeat', id: 's1' })),
      status: grpc.status.INVALID_ARGUMENT,
      message: /envelope.actor/,
    },
    {
      what: 'a client command',
      address: leader.peerAddress,
      request: signSubmit(key, 's2', envelope('s2', { type: 'kv.put', key: 'k', value: 'v' })),
      status: grpc.status.INVALID_ARGUMENT,
      message: /members may submit only/,
    },
    {
      what: 'another node than the certificate\'s',
      address: leader.peerAddress,
      request: signSubmit(key, 'ghost', envelope('ghost', { type: 'node.heartbeat', id: 'ghost' })),
      status: grpc.status.PERMISSION_DENIED,
      message: /not the node of the connection's certificate \(s2\)/,
    },
    {
      what: 'a heartbeat for another node',
      address: leader.peerAddress,
      request: signSubmit(key, 's2', envelope('s2', { type: 'node.heartbeat', id: 's1' })),
      status: grpc.status.PERMISSION_DENIED,
      message: /only for itself/,
    },
    {
      what: 'garbage envelope',
      address: leader.peerAddress,
      request: signSubmit(key, 's2', new Uint8Array([0xc1, 0xff, 0x00])),
      status: grpc.status.INVALID_ARGUMENT,
      message: /does not decode/,
    },
    {
      what: 'asked a follower',
      address: follower.peerAddress,
      request: signSubmit(key, 's2', envelope('s2', { type: 'node.heartbeat', id: 's2' })),
      status: grpc.status.FAILED_PRECONDITION,
      message: /not the leader \(leader: s1\)/,
    },
  ];
  for (const { what, address, request, status, message } of cases) {
    const answer = await clients.submit(address, request, 5000);
    assert.is(answer.ok, false, what);
    if (answer.ok) continue;
    assert.is(answer.status, status, `${what}: ${answer.message}`);
    assert.match(answer.message, message, what);
  }
  const after = (await leader.request('GET', '/v1/status')).body.commit;
  assert.ok(after - before <= 2, `refused submits commit nothing (commit went ${before} -> ${after}; the watch loop may commit its own)`);
  assert.ok(leader.running && follower.running, 'both nodes still run');
}));

test.run();
