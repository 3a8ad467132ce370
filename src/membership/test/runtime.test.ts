/**
 * Real members on loopback (UDP and TCP), in one process: join through a
 * seed, metadata, a crash detected by the others, a graceful leave, hostile
 * datagrams dropped and counted, and a member with another key kept out.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createSocket } from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { createConnection } from 'node:net';
import { GossipRuntime, type DropReason } from '../runtime.js';
import { deriveGossipKey, EnvelopeKind, seal } from '../crypto.js';
import type { PeerTls } from '../../node/peer-tls.js';
import { createClusterCa, createNodeKey, issueNodeCertificate, type CertificateAuthority } from '../../security/certificates.js';
import { NodeCredentials } from '../../security/node-credentials.js';

/** Credentials for `id` (the certificate names `certificateName`, by default `id`) from `ca`. */
async function credentialsOf(ca: CertificateAuthority, id: string, certificateName = id): Promise<NodeCredentials> {
  const { keyPem } = await createNodeKey();
  const certificatePem = await issueNodeCertificate(ca, keyPem, { nodeId: certificateName, now: Date.now() });
  const credentials = new NodeCredentials(id);
  credentials.update({ keyPem, certificatePem, caPems: [ca.certificatePem] });
  return credentials;
}

const clusterKey = randomBytes(32);

interface Member {
  id: string;
  runtime: GossipRuntime;
  dropped: Map<DropReason, number>;
}

async function startMember(id: string, seeds: string[], key: Uint8Array = clusterKey, tls?: PeerTls): Promise<Member> {
  const dropped = new Map<DropReason, number>();
  const runtime = new GossipRuntime({ bindHost: '127.0.0.1', port: 0, observer: { dropped: (reason) => dropped.set(reason, (dropped.get(reason) ?? 0) + 1) }, ...(tls === undefined ? {} : { tls }) });
  const port = await runtime.bind();
  runtime.start({ id, address: `127.0.0.1:${port}`, meta: { api: `127.0.0.1:${port + 1}` }, clusterKey: key, seeds });
  return { id, runtime, dropped };
}

async function eventually(what: string, check: () => boolean, detail?: () => string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${detail ? `: ${detail()}` : ""}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

const statusOf = (member: Member, id: string): string | undefined => member.runtime.members().find((m) => m.id === id)?.status;
const address = (member: Member): string => `127.0.0.1:${member.runtime.port}`;

test('members join, spread metadata, detect a crash, see a leave, and drop hostile packets', async () => {
  const a = await startMember('a', []);
  const b = await startMember('b', [address(a)]);
  const c = await startMember('c', [address(a)]);
  const d = await startMember('d', [address(b)]);
  const all = [a, b, c, d];
  try {
    await eventually('every member to know all four as alive', () => all.every((m) => ['a', 'b', 'c', 'd'].every((id) => statusOf(m, id) === 'alive')), () => JSON.stringify(all.map((m) => m.runtime.members().map((x) => `${x.id}:${x.status}`))));
    assert.is(c.runtime.members().find((m) => m.id === 'd')?.meta.api, `127.0.0.1:${d.runtime.port + 1}`);
    // When each was last heard from: the others' messages keep it recent; a member has no such time for itself.
    await eventually('a to hear from every other member', () => ['b', 'c', 'd'].every((id) => (a.runtime.member(id)?.lastHeardAt ?? 0) > Date.now() - 10_000));
    assert.is(a.runtime.member('a')?.lastHeardAt, undefined);

    // Hostile input to a: random bytes, a sealed envelope under another key, and well-sealed garbage, by UDP and TCP.
    const socket = createSocket('udp4');
    const send = (bytes: Buffer): Promise<void> => new Promise((resolve) => socket.send(bytes, a.runtime.port, '127.0.0.1', () => resolve()));
    await send(randomBytes(300));
    await send(seal(deriveGossipKey(randomBytes(32)), EnvelopeKind.datagram, Buffer.from('hello')));
    await send(seal(deriveGossipKey(clusterKey), EnvelopeKind.datagram, Buffer.from([0xc1, 0xc1])));
    await send(Buffer.alloc(0));
    socket.close();
    const stream = createConnection({ host: '127.0.0.1', port: a.runtime.port });
    await new Promise((resolve) => stream.once('connect', resolve));
    stream.end(Buffer.concat([Buffer.from([0, 0, 0, 40]), randomBytes(40)]));
    await eventually('the hostile packets to be counted', () => (a.dropped.get('auth') ?? 0) >= 1 && (a.dropped.get('malformed') ?? 0) >= 1 && [...a.dropped.values()].reduce((x, y) => x + y, 0) >= 5, () => JSON.stringify([...a.dropped]));

    // Crash: d stops without a word.
    await d.runtime.stop({ announceLeave: false });
    await eventually('a, b and c to declare d dead', () => [a, b, c].every((m) => statusOf(m, 'd') === 'dead'));
    // Graceful leave: others see left, not dead.
    await c.runtime.stop();
    await eventually('a and b to see c leave', () => [a, b].every((m) => statusOf(m, 'c') === 'left'));
    assert.is(statusOf(a, 'b'), 'alive');
    assert.is(statusOf(b, 'a'), 'alive');
  } finally {
    await Promise.all(all.map((m) => m.runtime.stop({ announceLeave: false })));
  }
});

test('a member with another cluster key never joins; its packets are refused', async () => {
  const a = await startMember('a', []);
  const stranger = await startMember('x', [address(a)], randomBytes(32));
  try {
    stranger.runtime.contact([address(a)]);
    await eventually('a to refuse the stranger\'s push-pull', () => (a.dropped.get('auth') ?? 0) >= 1);
    assert.equal(a.runtime.members().map((m) => m.id), ['a']);
    assert.equal(stranger.runtime.members().map((m) => m.id), ['x']);
  } finally {
    await Promise.all([a, stranger].map((m) => m.runtime.stop({ announceLeave: false })));
  }
});

test('with TLS, push-pull needs a certificate of the cluster CA that names the member who speaks', async () => {
  const ca = await createClusterCa({ now: Date.now() });
  const foreignCa = await createClusterCa({ now: Date.now() });
  const a = await startMember('a', [], clusterKey, await credentialsOf(ca, 'a'));
  const b = await startMember('b', [address(a)], clusterKey, await credentialsOf(ca, 'b'));
  // Holds the cluster key (a member that was removed keeps it) but not a certificate of this CA.
  const outsider = await startMember('o', [], clusterKey, await credentialsOf(foreignCa, 'o'));
  // A certificate of this CA, for another node than the one it claims to be.
  const impostor = await startMember('i', [], clusterKey, await credentialsOf(ca, 'i', 'b'));
  try {
    await eventually('a and b to know each other over TLS', () => statusOf(a, 'b') === 'alive' && statusOf(b, 'a') === 'alive');
    outsider.runtime.contact([address(a)]);
    await eventually('a to refuse the outsider\'s handshake', () => (a.dropped.get('untrusted') ?? 0) >= 1, () => JSON.stringify([...a.dropped]));
    impostor.runtime.contact([address(a)]);
    await eventually('a to drop the impostor\'s sync', () => (a.dropped.get('sender-mismatch') ?? 0) >= 1, () => JSON.stringify([...a.dropped]));
    assert.is(a.runtime.members().some((m) => m.id === 'i'), false, 'the impostor is not taken in through push-pull');
  } finally {
    await Promise.all([a, b, outsider, impostor].map((m) => m.runtime.stop({ announceLeave: false })));
  }
});

test.run();
