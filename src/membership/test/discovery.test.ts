/**
 * Discovery by join token over hyperswarm, offline: a local DHT testnet on
 * loopback is the only bootstrap. A joiner with the token finds a member's
 * seed address; one that knows the topic but not the token learns nothing.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import createTestnet from 'hyperdht/testnet.js';
import { announceForDiscovery, discoverSeed, discoveryKeys, DiscoveryError } from '../discovery.js';

const token = 'hm1.test-token-for-discovery';

test('a joiner holding the token finds the member; a stranger on the topic gets no seed', async () => {
  const testnet = await createTestnet(3, { host: '127.0.0.1' });
  const bootstrap = testnet.bootstrap;
  assert.ok(bootstrap.every((node) => node.host === '127.0.0.1'), 'loopback only');
  const member = await announceForDiscovery({ token, seedAddress: '127.0.0.1:17071', bootstrap });
  try {
    const seed = await discoverSeed({ token, bootstrap, timeoutMs: 30_000 });
    assert.is(seed, '127.0.0.1:17071');
    // Same topic, wrong proof key: the member never sends its address.
    const stranger = { topic: discoveryKeys(token).topic, proofKey: Buffer.alloc(32, 7) };
    try {
      await discoverSeed({ token: 'unknown', keys: stranger, bootstrap, timeoutMs: 8000 });
      assert.unreachable('a stranger must not get a seed');
    } catch (error) {
      assert.instance(error, DiscoveryError);
    }
  } finally {
    await member.stop();
    await testnet.destroy();
  }
});

test('the topic depends on the token, and the proof key differs from the topic', () => {
  const a = discoveryKeys('hm1.a');
  const b = discoveryKeys('hm1.b');
  assert.not.equal(a.topic, b.topic);
  assert.not.equal(a.topic, a.proofKey);
  assert.equal(discoveryKeys('hm1.a'), a);
});

test.run();
