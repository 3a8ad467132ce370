// Peer trust, tried as an attacker on the network would: three real node
// processes on loopback, and callers on their peer port that try to take the
// cluster over with forged Raft messages (Appends carrying a token.set, votes,
// snapshots) and submits, each with a higher term. A caller without a
// certificate, one with a certificate of another CA, and one holding a real
// member's certificate but claiming to be another member are all refused:
// nothing is applied, no leader changes, no term moves, and
// hivemind_peer_rejected_total counts each by reason. A removed node's
// certificate is refused from then on.
import { readFileSync } from 'node:fs';
import type { ConnectionOptions } from 'node:tls';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { encodeMessages, type BatchWire, type SnapshotChunkWire } from '../../../consensus/transport-grpc.js';
import { EntryType, MessageType, type Message } from '../../../consensus/core/types.js';
import { encodeEnvelope } from '../../node/replicated-state.js';
import { ClusterClients } from '../cluster-service.js';
import { certificateFingerprint, createClusterCa, createNodeKey, issueNodeCertificate } from '../../security/certificates.js';
import { NodeCredentials, TLS_SERVER_NAME, unverifiedChannelCredentials } from '../../security/node-credentials.js';
import { signSubmit } from '../submit.js';
import { remoteImageShare } from '../image-service.js';
import { TestCluster, eventually, sleep, type TestNode } from './harness.js';

const cluster = new TestCluster(50);
const withLogs = cluster.withLogs.bind(cluster);
const FORGED_TERM = 1_000_000;

test.after(async () => {
  await cluster.cleanup();
});

interface RaftClient extends grpc.Client {
  Stream(callback: grpc.requestCallback<unknown>): grpc.ClientWritableStream<BatchWire>;
  InstallSnapshot(callback: grpc.requestCallback<unknown>): grpc.ClientWritableStream<SnapshotChunkWire>;
}

function raftClient(address: string, credentials: grpc.ChannelCredentials): RaftClient {
  const definition = protoLoader.loadSync(fileURLToPath(new URL('../../../../proto/raft.proto', import.meta.url)), { keepCase: true, defaults: true });
  const root = grpc.loadPackageDefinition(definition) as unknown as {
    hivemind: { raft: { RaftTransport: new (address: string, credentials: grpc.ChannelCredentials, options: grpc.ChannelOptions) => RaftClient } };
  };
  return new root.hivemind.raft.RaftTransport(address, credentials, { 'grpc.ssl_target_name_override': TLS_SERVER_NAME });
}

/** Writes one batch on a Stream call; resolves with the call's status code (or the connection's failure). */
function sendBatch(client: RaftClient, from: string, messages: Message[]): Promise<grpc.status> {
  return new Promise((resolve) => {
    const call = client.Stream((error) => resolve(error === null ? grpc.status.OK : error.code));
    call.on('error', () => {});
    call.write({ from, payload: encodeMessages(messages) });
    call.end();
  });
}

/** Messages that would take node `to` over if believed: a vote request and an Append of a token.set, both at FORGED_TERM. */
function forgedMessages(claimedFrom: string, to: string, lastIndex: number): Message[] {
  const base = { from: claimedFrom, to, term: FORGED_TERM, commit: 0, reject: false, rejectHintIndex: 0, rejectHintTerm: 0, context: '', transfer: false, entries: [] };
  const tokenSet = encodeEnvelope({ requestId: 'forged', time: Date.now(), actor: 'attacker', command: { type: 'token.set', hash: 'f'.repeat(64), sealed: new Uint8Array(32), nonce: new Uint8Array(12) } });
  return [
    { ...base, type: MessageType.Vote, index: lastIndex + 1000, logTerm: FORGED_TERM },
    { ...base, type: MessageType.Append, index: lastIndex, logTerm: 1, commit: lastIndex + 1, entries: [{ term: FORGED_TERM, index: lastIndex + 1, type: EntryType.Normal, data: tokenSet }] },
  ];
}

/** Mutual-TLS credentials from PEM material; like an attacker, they accept any server. */
function mutualCredentials(material: { keyPem: string; certificatePem: string; caPems: string[] }): grpc.ChannelCredentials {
  return grpc.credentials.createSsl(Buffer.from(material.caPems.join('\n')), Buffer.from(material.keyPem), Buffer.from(material.certificatePem), { rejectUnauthorized: false });
}

function readMaterial(node: TestNode): { keyPem: string; certificatePem: string; caPems: string[] } {
  return {
    keyPem: readFileSync(join(node.dataDir, 'tls', 'node.key'), 'utf8'),
    certificatePem: readFileSync(join(node.dataDir, 'tls', 'node.crt'), 'utf8'),
    caPems: [readFileSync(join(node.dataDir, 'tls', 'ca.crt'), 'utf8')],
  };
}

async function rejections(node: TestNode): Promise<Record<string, number>> {
  const answer = await node.request('GET', '/metrics');
  const counts: Record<string, number> = {};
  for (const match of String(answer.body).matchAll(/^hivemind_peer_rejected_total\{reason="([a-z-]+)"[^}]*\} (\d+)/gm)) counts[match[1]!] = Number(match[2]);
  return counts;
}

async function snapshotOf(nodes: TestNode[]): Promise<{ leader: string; term: number; token: string }[]> {
  return Promise.all(nodes.map(async (node) => {
    const status = await node.status();
    const history = await node.request('GET', '/v1/history?limit=1000');
    const tokenChanges = (history.body.history as { command: string }[]).filter((entry) => entry.command === 'token.set').length;
    return { leader: status.leader as string, term: status.term as number, token: `${tokenChanges}` };
  }));
}

test('a 3-node cluster forms over mutual TLS', withLogs(async () => {
  const n1 = await cluster.bootstrap('n1');
  await cluster.join('n2', n1);
  await cluster.join('n3', n1);
  await eventually('three voters', async () => (await n1.status()).voters.length === 3);
  for (const node of cluster.running()) {
    const material = readMaterial(node);
    assert.match(material.certificatePem, /BEGIN CERTIFICATE/);
  }
}));

test('callers without a certificate, with another CA\'s, or posing as another member are refused, and nothing changes', withLogs(async () => {
  const nodes = cluster.running();
  const leader = await cluster.leader();
  const target = nodes.find((node) => node !== leader)!;
  const before = await snapshotOf(nodes);
  const lastIndex = (await target.status()).commit as number;

  // No certificate at all (TLS, but nothing presented).
  const anonymous = raftClient(target.peerAddress, unverifiedChannelCredentials());
  assert.is(await sendBatch(anonymous, leader.name, forgedMessages(leader.name, target.name, lastIndex)), grpc.status.UNAUTHENTICATED);
  anonymous.close();

  // Plaintext: the TLS port does not speak it.
  const plaintext = raftClient(target.peerAddress, grpc.credentials.createInsecure());
  assert.is.not(await sendBatch(plaintext, leader.name, forgedMessages(leader.name, target.name, lastIndex)), grpc.status.OK);
  plaintext.close();

  // A certificate naming the leader, from a CA of the attacker's own.
  const foreignCa = await createClusterCa({ now: Date.now() });
  const { keyPem } = await createNodeKey();
  const foreignCertificate = await issueNodeCertificate(foreignCa, keyPem, { nodeId: leader.name, now: Date.now() });
  const foreign = raftClient(target.peerAddress, mutualCredentials({ keyPem, certificatePem: foreignCertificate, caPems: [foreignCa.certificatePem] }));
  assert.is(await sendBatch(foreign, leader.name, forgedMessages(leader.name, target.name, lastIndex)), grpc.status.UNAUTHENTICATED);
  foreign.close();

  // A real member's certificate (the third node's), claiming to be the leader.
  const third = nodes.find((node) => node !== leader && node !== target)!;
  const impostor = raftClient(target.peerAddress, mutualCredentials(readMaterial(third)));
  assert.is(await sendBatch(impostor, leader.name, forgedMessages(leader.name, target.name, lastIndex)), grpc.status.PERMISSION_DENIED);
  impostor.close();

  // Submits: without a certificate, and with a member's certificate for another node id.
  const anonymousClients = new ClusterClients({ memberCredentials: unverifiedChannelCredentials, channelOptions: { 'grpc.ssl_target_name_override': TLS_SERVER_NAME } });
  const envelope = encodeEnvelope({ requestId: 'forged-submit', time: Date.now(), actor: leader.name, command: { type: 'node.status', id: third.name, status: 'down' } });
  const request = signSubmit(new Uint8Array(32), leader.name, envelope);
  const anonymousSubmit = await anonymousClients.submit(leader.peerAddress, request, 5000);
  assert.is(anonymousSubmit.ok ? 'ok' : anonymousSubmit.status, grpc.status.UNAUTHENTICATED);
  anonymousClients.close();
  const posing = new ClusterClients({ memberCredentials: () => mutualCredentials(readMaterial(third)), channelOptions: { 'grpc.ssl_target_name_override': TLS_SERVER_NAME } });
  const posingSubmit = await posing.submit(leader.peerAddress, request, 5000);
  assert.is(posingSubmit.ok ? 'ok' : posingSubmit.status, grpc.status.PERMISSION_DENIED);
  posing.close();

  // Images: a caller without a certificate learns nothing of what the node holds, and reads no blob.
  const anonymousImages = remoteImageShare(target.peerAddress, target.name, {
    credentials: unverifiedChannelCredentials(),
    channelOptions: { 'grpc.ssl_target_name_override': TLS_SERVER_NAME },
    tls: () => ({ rejectUnauthorized: false, servername: TLS_SERVER_NAME }),
  });
  await anonymousImages.images.describe('hivemind.local/busybox:latest').then(
    () => assert.unreachable('an anonymous caller was told about an image'),
    (error: unknown) => assert.match((error as Error).message, /refused: .*certificate/),
  );
  const readBlob = async () => {
    for await (const _ of anonymousImages.images.read(`sha256:${'0'.repeat(64)}`)) void _;
  };
  await readBlob().then(
    () => assert.unreachable('an anonymous caller read a blob'),
    (error: unknown) => assert.match((error as Error).message, /refused: .*certificate/),
  );
  anonymousImages.close();
  // Blob reads go past grpc-js (image-read-stream.ts) on the same TLS port: another CA's certificate is refused as
  // there, plaintext gets no answer, and a member's certificate is served (the blob is not here: NOT_FOUND, not a refusal).
  const blobOf = (tls: (() => ConnectionOptions) | undefined) => {
    const share = remoteImageShare(target.peerAddress, target.name, { credentials: unverifiedChannelCredentials(), ...(tls !== undefined ? { tls } : {}) });
    const missing = `sha256:${'0'.repeat(64)}`;
    return (async () => {
      for await (const _ of share.images.read(missing)) void _;
    })().then(
      () => 'read',
      (error: unknown) => (error as Error).message,
    ).finally(() => share.close());
  };
  const foreignTls = (): ConnectionOptions => ({ key: keyPem, cert: foreignCertificate, rejectUnauthorized: false, servername: TLS_SERVER_NAME });
  assert.match(await blobOf(foreignTls), /refused: no-verified-certificate/);
  assert.not.match(await blobOf(undefined), /^read$|not on this node/);
  const member = new NodeCredentials(third.name);
  member.update(readMaterial(third));
  assert.match(await blobOf(() => member.tlsConnectOptions(target.name)), /not on this node/);
  // The fetcher's side: a server whose certificate names another node is not read from.
  assert.match(await blobOf(() => member.tlsConnectOptions(leader.name)), /names node/);

  // Give a forged message every chance to have acted, then compare.
  await sleep(1000);
  const after = await snapshotOf(nodes);
  assert.equal(after.map((view) => view.leader), before.map((view) => view.leader), 'no leader changed');
  assert.ok(after.every((view, position) => view.term === before[position]!.term && view.term < FORGED_TERM), `no term moved: ${JSON.stringify(after)}`);
  assert.equal(after.map((view) => view.token), before.map((view) => view.token), 'no token.set applied');
  const targetCounts = await rejections(target);
  // The anonymous callers (Raft and images) and the foreign CA's (Raft and a blob read).
  assert.ok((targetCounts['no-verified-certificate'] ?? 0) >= 5, JSON.stringify(targetCounts));
  assert.ok((targetCounts['sender-mismatch'] ?? 0) >= 1, JSON.stringify(targetCounts));
  const leaderCounts = await rejections(leader);
  assert.ok((leaderCounts['no-verified-certificate'] ?? 0) >= 1 && (leaderCounts['sender-mismatch'] ?? 0) >= 1, JSON.stringify(leaderCounts));
}));

test('a CA rotation moves every node to a new CA while writes go on; the old CA\'s certificates are refused after', withLogs(async () => {
  const leader = await cluster.leader();
  const nodes = cluster.running();
  const oldMaterial = readMaterial(nodes.find((node) => node !== leader)!);
  const before = await leader.request('GET', '/v1/ca/status');
  assert.is(before.status, 200, JSON.stringify(before.body));
  assert.is(before.body.rotating, false);
  assert.ok(before.body.nodes.every((node: { issuer: string | null }) => node.issuer === before.body.signing), `every node's certificate is recorded with its issuer: ${JSON.stringify(before.body)}`);
  const rotated = await leader.request('POST', '/v1/ca/rotate', {});
  assert.is(rotated.status, 200, JSON.stringify(rotated.body));
  assert.is(rotated.body.trusted.length, 2);
  assert.is(rotated.body.trusted[1], before.body.signing, 'the old CA stays trusted during the rotation');
  const again = await leader.request('POST', '/v1/ca/rotate', {});
  assert.is(again.status, 409, 'one rotation at a time');
  // Writes through the whole rotation, each acknowledged.
  let writes = 0;
  const finished = await eventually('the rotation to finish', async () => {
    const write = await nodes[writes % nodes.length]!.request('PUT', `/v1/kv/rotation-${writes}`, { value: String(writes) });
    assert.is(write.status, 200, `write ${writes} during the rotation: ${JSON.stringify(write.body)}`);
    writes++;
    const status = await leader.request('GET', '/v1/ca/status');
    return status.body.rotating === false ? status.body : undefined;
  }, 30_000, 200);
  assert.is(finished.signing, rotated.body.signing);
  assert.equal(finished.trusted, [rotated.body.signing]);
  assert.ok(writes >= 1);
  for (const node of nodes) {
    const value = await node.request('GET', `/v1/kv/rotation-${writes - 1}`);
    assert.is(value.status, 200, `${node.name} reads the last write`);
    await eventually(`${node.name} to trust only the new CA`, () => readMaterial(node).caPems[0]!.match(/BEGIN CERTIFICATE/g)?.length === 1);
  }
  // A certificate of the old CA no longer gets in.
  const client = raftClient(leader.peerAddress, mutualCredentials(oldMaterial));
  const lastIndex = (await leader.status()).commit as number;
  assert.is(await sendBatch(client, nodes.find((node) => node !== leader)!.name, forgedMessages('nobody', leader.name, lastIndex)), grpc.status.UNAUTHENTICATED);
  client.close();
}));

test('a node down through a whole rotation joins again by itself with a certificate of the new CA', withLogs(async () => {
  const leader = await cluster.leader();
  const sleeper = cluster.running().find((node) => node !== leader)!;
  await sleeper.stop();
  await eventually(`${sleeper.name} to be marked down`, async () => (await leader.request('GET', `/v1/nodes/${sleeper.name}`)).body.status === 'down', 60_000, 250);
  const rotated = await leader.request('POST', '/v1/ca/rotate', {});
  assert.is(rotated.status, 200, JSON.stringify(rotated.body));
  await eventually('the rotation to finish without the down node', async () => (await leader.request('GET', '/v1/ca/status')).body.rotating === false, 30_000, 200);
  sleeper.start(['agent']);
  await eventually(`${sleeper.name} to hold a certificate of the new CA`, async () => {
    const status = await leader.request('GET', '/v1/ca/status');
    const record = status.body.nodes.find((node: { id: string }) => node.id === sleeper.name);
    return record?.issuer === rotated.body.signing && record.status === 'up';
  }, 60_000, 250);
  // The leader records the node's new certificate when it admits it, a moment before the node installs it and serves it:
  // wait for the node's own files, then give its API the moment between writing them and serving the new certificate.
  await eventually(`${sleeper.name} to install the new CA`, () => certificateFingerprint(readMaterial(sleeper).caPems[0]!) === rotated.body.signing);
  const write = await eventually('a write through the node that came back', async () => {
    const answer = await sleeper.request('PUT', '/v1/kv/after-rotation', { value: 'ok' });
    return answer.status === 200 ? answer : undefined;
  }, 5000);
  assert.is(write.status, 200);
}));

test('a removed node\'s certificate is refused from then on', withLogs(async () => {
  const leader = await cluster.leader();
  const removed = cluster.running().find((node) => node !== leader)!;
  const material = readMaterial(removed);
  // A stream opened with the node's certificate while it is a member, and kept open past its removal.
  const early = raftClient(leader.peerAddress, mutualCredentials(material));
  let earlyStatus: grpc.status | undefined;
  const earlyCall = early.Stream((error) => (earlyStatus = error === null ? grpc.status.OK : error.code));
  earlyCall.on('error', () => {});
  const stale = { from: removed.name, to: leader.name, term: 1, index: 0, logTerm: 0, commit: 0, reject: false, rejectHintIndex: 0, rejectHintTerm: 0, context: '', transfer: false, entries: [] };
  // The server sends its metadata once it accepted (and authenticated) the stream.
  const accepted = new Promise((resolve) => earlyCall.once('metadata', resolve));
  earlyCall.write({ from: removed.name, payload: encodeMessages([{ ...stale, type: MessageType.HeartbeatResponse }]) });
  await accepted;
  const left = await leader.request('POST', `/v1/nodes/${removed.name}/leave`, {});
  assert.is(left.status, 200, JSON.stringify(left.body));
  await removed.waitExit(30_000);
  const remaining = cluster.running();
  await eventually('the removal to reach every remaining node', async () => {
    const answers = await Promise.all(remaining.map((node) => node.request('GET', `/v1/nodes`)));
    return answers.every((answer) => answer.body.nodes.find((node: { id: string }) => node.id === removed.name)?.status === 'left');
  });
  const before = await rejections(leader);
  const client = raftClient(leader.peerAddress, mutualCredentials(material));
  const lastIndex = (await leader.status()).commit as number;
  assert.is(await sendBatch(client, removed.name, forgedMessages(removed.name, leader.name, lastIndex)), grpc.status.UNAUTHENTICATED);
  client.close();
  // The stream opened before the removal is ended by the first batch past the re-authentication interval.
  await sleep(1100);
  earlyCall.write({ from: removed.name, payload: encodeMessages([{ ...stale, type: MessageType.HeartbeatResponse }]) });
  await eventually('the stream opened before the removal to end', () => earlyStatus !== undefined);
  assert.is(earlyStatus, grpc.status.UNAUTHENTICATED);
  early.close();
  const after = await rejections(leader);
  assert.ok((after.revoked ?? 0) >= (before.revoked ?? 0) + 2, `${JSON.stringify(before)} -> ${JSON.stringify(after)}`);
  assert.is((await leader.status()).leader, leader.name);
}));

test.run();
