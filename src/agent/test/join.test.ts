// The join protocol: the proof binds every field to the token, the sealed
// cluster key opens only with the token, and a member refuses bad Joins with
// the right status, changing nothing. One in-process node on loopback.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import { fetch } from 'undici';
import { dataDirApiAgent } from '../../api/tls.js';
import * as assert from 'uvu/assert';
import { startAgent, type Agent } from '../agent.js';
import { ClusterClients, claimToWire, grpc } from '../cluster-service.js';
import { resolveConfig } from '../../node/config.js';
import { joinProof, openClusterKeyFromJoin, proofMatches, sealClusterKeyForJoiner, type JoinClaim } from '../join-proof.js';
import { parseSeed, sendJoin } from '../joining.js';
import { certificateFacts, certificateFingerprint, certificateSignedBy, createCertificateRequest, createNodeKey } from '../../security/certificates.js';
import { pinnedToken } from '../../security/pinned-token.js';
import { TLS_SERVER_NAME, unverifiedChannelCredentials } from '../../security/node-credentials.js';

const TOKEN = 'hm1.join-test-token-0123456789abcdef';
const directory = mkdtempSync(join(tmpdir(), 'hivemind-join-'));
const clients = new ClusterClients({ joinCredentials: unverifiedChannelCredentials, channelOptions: { 'grpc.ssl_target_name_override': TLS_SERVER_NAME } });
let agent: Agent;
/** A certificate request for "joiner", and one for "thief". */
let joinerRequest = '';
let thiefRequest = '';
const TLS = { certificatePem: 'certificate', caPems: ['ca'], joinedIndex: 7 };

function claim(overrides: Partial<JoinClaim> = {}): JoinClaim {
  return {
    nodeId: 'joiner',
    addresses: { api: '127.0.0.1:1', peer: '127.0.0.1:2', gossip: '127.0.0.1:3' },
    labels: { zone: 'a' },
    resources: { cpuMillis: 2000 },
    timestampMs: Date.now(),
    nonce: new Uint8Array(randomBytes(16)),
    rejoin: false,
    certificateRequest: joinerRequest,
    ...overrides,
  };
}

test.before(async () => {
  const { keyPem } = await createNodeKey();
  joinerRequest = await createCertificateRequest('joiner', keyPem);
  thiefRequest = await createCertificateRequest('thief', keyPem);
  const resolved = resolveConfig({ name: 'solo', dataDir: join(directory, 'solo'), bind: '127.0.0.1', apiPort: 0, peerPort: 0, gossipPort: 0, dnsPort: 0, proxyPort: 0, token: TOKEN, tickMs: 20 }, {}, { hostname: 'test', externalIpv4: [], cwd: directory });
  if (!resolved.ok) throw new Error(JSON.stringify(resolved.problems));
  agent = await startAgent(resolved.config, { mode: 'bootstrap-or-restart', print: () => {}, log: () => {} });
});

test.after(async () => {
  clients.close();
  await agent?.stop();
  rmSync(directory, { recursive: true, force: true });
});

test('the proof covers every field of the claim', () => {
  const original = claim();
  const proof = joinProof(TOKEN, original);
  assert.ok(proofMatches(TOKEN, original, proof));
  assert.not.ok(proofMatches('hm1.another-token-entirely-000', original, proof));
  assert.not.ok(proofMatches(TOKEN, { ...original, nodeId: 'other' }, proof));
  assert.not.ok(proofMatches(TOKEN, { ...original, addresses: { ...original.addresses, peer: '10.0.0.9:2' } }, proof));
  assert.not.ok(proofMatches(TOKEN, { ...original, labels: { zone: 'b' } }, proof));
  assert.not.ok(proofMatches(TOKEN, { ...original, resources: {} }, proof));
  assert.not.ok(proofMatches(TOKEN, { ...original, timestampMs: original.timestampMs + 1 }, proof));
  assert.not.ok(proofMatches(TOKEN, { ...original, rejoin: true }, proof));
  assert.not.ok(proofMatches(TOKEN, { ...original, certificateRequest: thiefRequest }, proof));
  assert.not.ok(proofMatches(TOKEN, original, proof.subarray(0, 16)));
});

test('the sealed cluster key opens only with the token, for that node, nonce and TLS material', () => {
  const key = new Uint8Array(randomBytes(32));
  const original = claim();
  const sealed = sealClusterKeyForJoiner(TOKEN, original, key, TLS);
  assert.equal(openClusterKeyFromJoin(TOKEN, original, sealed, TLS), key);
  assert.is(openClusterKeyFromJoin('hm1.another-token-entirely-000', original, sealed, TLS), undefined);
  assert.is(openClusterKeyFromJoin(TOKEN, { ...original, nodeId: 'thief' }, sealed, TLS), undefined);
  assert.is(openClusterKeyFromJoin(TOKEN, { ...original, nonce: new Uint8Array(16) }, sealed, TLS), undefined);
  // An answer whose certificate or CA was swapped on the way does not open.
  assert.is(openClusterKeyFromJoin(TOKEN, original, sealed, { ...TLS, certificatePem: 'forged' }), undefined);
  assert.is(openClusterKeyFromJoin(TOKEN, original, sealed, { ...TLS, caPems: ['ca', 'forged-ca'] }), undefined);
  assert.is(openClusterKeyFromJoin(TOKEN, original, sealed, { ...TLS, joinedIndex: 8 }), undefined);
});

test('seeds: host, host:port, [v6]:port; the port defaults to 7071', () => {
  assert.is(parseSeed('10.0.0.1'), '10.0.0.1:7071');
  assert.is(parseSeed('node-1.lan:9000'), 'node-1.lan:9000');
  assert.is(parseSeed('[::1]:7000'), '[::1]:7000');
  assert.is(parseSeed('[::1]'), '[::1]:7071');
  assert.is(parseSeed('host:99999'), undefined);
  assert.is(parseSeed('http://host:7071'), undefined);
  assert.is(parseSeed(''), undefined);
});

test('a member refuses bad Joins with the fitting status, and registers nothing', async () => {
  const address = agent.peerAddress;
  const send = async (made: JoinClaim, proofToken = TOKEN, mutate: (wire: ReturnType<typeof claimToWire>) => void = () => {}) => {
    const wire = claimToWire(made, joinProof(proofToken, made));
    mutate(wire);
    return clients.join(address, wire, 5000);
  };
  const wrongToken = await send(claim(), 'hm1.not-the-cluster-token-000');
  assert.equal(wrongToken.ok ? 'ok' : [wrongToken.status, wrongToken.message], [grpc.status.PERMISSION_DENIED, 'the join token was refused']);
  const shortNonce = await send(claim({ nonce: new Uint8Array(4) }));
  assert.is(shortNonce.ok ? 'ok' : shortNonce.status, grpc.status.INVALID_ARGUMENT);
  const badId = await send(claim({ nodeId: 'has space' }));
  assert.is(badId.ok ? 'ok' : badId.status, grpc.status.INVALID_ARGUMENT);
  assert.match(badId.ok ? '' : badId.message, 'id');
  const noAddress = await send(claim({ addresses: { api: '', peer: '127.0.0.1:2', gossip: 'x:1' } }));
  assert.is(noAddress.ok ? 'ok' : noAddress.status, grpc.status.INVALID_ARGUMENT);
  const noProof = await send(claim(), TOKEN, (wire) => (wire.proof = new Uint8Array(0)));
  assert.is(noProof.ok ? 'ok' : noProof.status, grpc.status.INVALID_ARGUMENT);
  const stale = await send(claim({ timestampMs: Date.now() - 3600_000 }));
  assert.is(stale.ok ? 'ok' : stale.status, grpc.status.FAILED_PRECONDITION);
  assert.match(stale.ok ? '' : stale.message, 'clock');
  const noRequest = await send(claim({ certificateRequest: '' }));
  assert.is(noRequest.ok ? 'ok' : noRequest.status, grpc.status.INVALID_ARGUMENT);
  const otherNodesRequest = await send(claim({ certificateRequest: thiefRequest }));
  assert.is(otherNodesRequest.ok ? 'ok' : otherNodesRequest.status, grpc.status.INVALID_ARGUMENT);
  assert.match(otherNodesRequest.ok ? '' : otherNodesRequest.message, 'thief');
  const garbageRequest = await send(claim({ certificateRequest: '-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n' }));
  assert.is(garbageRequest.ok ? 'ok' : garbageRequest.status, grpc.status.INVALID_ARGUMENT);
  const sameName = await send(claim({ nodeId: 'solo' }));
  assert.is(sameName.ok ? 'ok' : sameName.status, grpc.status.ALREADY_EXISTS);
  const nodes = await fetch(`https://${agent.apiAddress}/v1/nodes`, { dispatcher: dataDirApiAgent(join(directory, 'solo')), headers: { authorization: `Bearer ${TOKEN}` } }).then((response) => response.json() as Promise<{ nodes: { id: string }[] }>);
  assert.equal(nodes.nodes.map((node) => node.id), ['solo']);
});

test('a valid Join registers the node, adds it as a learner, and is idempotent', async () => {
  const identity = { nodeId: 'joiner', addresses: { api: '127.0.0.1:1', peer: '127.0.0.1:2', gossip: '127.0.0.1:3' }, labels: {}, resources: {} };
  const first = await sendJoin(clients, { address: agent.peerAddress, token: TOKEN, identity, rejoin: false, timeoutMs: 10_000, certificateRequest: joinerRequest });
  assert.ok(first.ok, first.ok ? '' : first.message);
  if (!first.ok) return;
  assert.ok(certificateSignedBy(first.joined.certificatePem, first.joined.caPems, 'joiner'), 'the certificate is the CA\'s, for the joiner');
  assert.is(certificateFacts(first.joined.certificatePem).nodeId, 'joiner');
  assert.is(first.joined.leader, 'solo');
  assert.is(first.joined.alreadyMember, false);
  assert.is(first.joined.peers.solo, agent.peerAddress);
  assert.is(first.joined.clusterKey.length, 32);
  assert.ok(agent.raftStatus().config.learners.includes('joiner'));
  const again = await sendJoin(clients, { address: agent.peerAddress, token: TOKEN, identity, rejoin: false, timeoutMs: 10_000, certificateRequest: joinerRequest });
  assert.ok(again.ok && again.joined.alreadyMember);
  assert.ok(first.joined.joinedIndex > 0, 'the answer says which membership the join began');
  assert.is(again.ok && again.joined.joinedIndex, first.joined.joinedIndex, 'joining again as a member keeps it');
  assert.equal(again.ok && again.joined.clusterKey, first.joined.clusterKey);
});


test('a joiner given a pinned token refuses a cluster whose CA is not the pinned one, and accepts its own', async () => {
  const caPem = readFileSync(join(directory, 'solo', 'tls', 'ca.crt'), 'utf8');
  const start = (name: string, token: string) => {
    const resolved = resolveConfig({ name, dataDir: join(directory, name), bind: '127.0.0.1', apiPort: 0, peerPort: 0, gossipPort: 0, dnsPort: 0, proxyPort: 0, token, tickMs: 20 }, {}, { hostname: 'test', externalIpv4: [], cwd: directory });
    if (!resolved.ok) throw new Error(JSON.stringify(resolved.problems));
    return startAgent(resolved.config, { mode: { join: agent.peerAddress }, print: () => {}, log: () => {}, joinTimeoutMs: 10_000 });
  };
  const wrongPin = `hmca:${'ab'.repeat(32)}::${TOKEN}`;
  const refused = await start('pinned-wrong', wrongPin).then(
    async (joined) => {
      await joined.stop();
      return 'joined';
    },
    (error: Error) => error.message,
  );
  assert.match(refused, `is not the one the token pins (${'ab'.repeat(32)})`);
  assert.match(refused, certificateFingerprint(caPem));
  // The unfinished join's directory: a plain start must not bootstrap a second cluster there (the soak found one doing so).
  const plain = resolveConfig({ name: 'pinned-wrong', dataDir: join(directory, 'pinned-wrong'), bind: '127.0.0.1', apiPort: 0, peerPort: 0, gossipPort: 0, dnsPort: 0, proxyPort: 0, token: TOKEN, tickMs: 20 }, {}, { hostname: 'test', externalIpv4: [], cwd: directory });
  if (!plain.ok) throw new Error(JSON.stringify(plain.problems));
  const bootstrapped = await startAgent(plain.config, { mode: 'bootstrap-or-restart', print: () => {}, log: () => {} }).then(
    async (started) => {
      await started.stop();
      return 'bootstrapped';
    },
    (error: Error) => error.message,
  );
  assert.match(bootstrapped, `began joining a cluster through ${agent.peerAddress}`);
  assert.match(bootstrapped, `run \`hivemind join ${agent.peerAddress}\` again`);
  const joined = await start('pinned-right', pinnedToken(TOKEN, caPem));
  try {
    assert.ok(joined.credentials.current !== undefined, 'it has its certificate');
    assert.is(readFileSync(join(directory, 'pinned-right', 'token'), 'utf8').trim(), TOKEN, 'the token file keeps the bare token');
    assert.not.ok(existsSync(join(directory, 'pinned-right', 'join-pending.json')), 'a finished join clears its record');
  } finally {
    await joined.stop();
  }
});

test.run();
