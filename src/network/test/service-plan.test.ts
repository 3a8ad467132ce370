import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { shortHash } from '../policy-plan.js';
import { parseSavedServices, pickProbability, planServiceChains, PUBLISHED_CHAIN, publishedChainName, serviceChainName, serviceRestoreInput, SERVICES_CHAIN, type PublishedInput, type ServiceInput, HOST_HOLDER } from '../service-plan.js';

function endpoint(instance: string, address: string, ports: [number, number][], protocol: 'tcp' | 'udp' = 'tcp'): ServiceInput['endpoints'][number] {
  return { instance, address, ports: ports.map(([target, port]) => ({ target, port, protocol })) };
}

const web: ServiceInput = {
  tenant: 'acme',
  app: 'web',
  vip: '10.211.0.2',
  ports: [{ target: 80, protocol: 'tcp' }, { target: 53, protocol: 'udp' }],
  endpoints: [endpoint('acme.web.0.1', '10.210.0.2', [[80, 80]]), endpoint('acme.web.1.1', '10.210.1.2', [[80, 80]]), endpoint('acme.web.2.1', '10.210.2.2', [[80, 80]])],
};
const api: ServiceInput = { tenant: 'acme', app: 'api', vip: '10.211.0.1', ports: [{ target: 8080, protocol: 'tcp' }], endpoints: [endpoint('acme.api.0.1', '192.0.2.7', [[8080, 31000]])] };
const idle: ServiceInput = { tenant: 'evil', app: 'idle', vip: '10.211.0.3', ports: [{ target: 80, protocol: 'tcp' }], endpoints: [] };

test('pick probabilities: 1/(n-i), so each of n endpoints is taken with probability 1/n', () => {
  assert.equal([0, 1, 2].map((index) => pickProbability(index, 3)), ['0.3333333333', '0.5000000000', '1.0000000000']);
  for (const count of [1, 2, 3, 5, 8]) {
    // The chance to reach endpoint i: the earlier ones not taken, then this one taken.
    let left = 1;
    for (let index = 0; index < count; index++) {
      const taken = index === count - 1 ? 1 : Number(pickProbability(index, count));
      assert.ok(Math.abs(left * taken - 1 / count) < 1e-9, `endpoint ${index} of ${count}: ${left * taken}`);
      left *= 1 - taken;
    }
  }
});

test('one chain per service, VIPs in order; DNAT spread over the serving endpoints of each port; the endpoint port (host port of a process app)', () => {
  const planned = planServiceChains([web, api, idle]);
  const webChain = `HM-S-${shortHash('acme/web')}`;
  const apiChain = serviceChainName('acme', 'api');
  assert.equal([...planned.chains.keys()], [SERVICES_CHAIN, apiChain, webChain, serviceChainName('evil', 'idle')]);
  assert.equal(planned.chains.get(SERVICES_CHAIN), [
    `-d 10.211.0.1/32 -m comment --comment "hivemind: acme/api" -g ${apiChain}`,
    `-d 10.211.0.2/32 -m comment --comment "hivemind: acme/web" -g ${webChain}`,
    `-d 10.211.0.3/32 -m comment --comment "hivemind: evil/idle" -g ${serviceChainName('evil', 'idle')}`,
  ]);
  assert.equal(planned.chains.get(webChain), [
    '-p tcp -m tcp --dport 80 -m statistic --mode random --probability 0.3333333333 -j DNAT --to-destination 10.210.0.2:80',
    '-p tcp -m tcp --dport 80 -m statistic --mode random --probability 0.5000000000 -j DNAT --to-destination 10.210.1.2:80',
    '-p tcp -m tcp --dport 80 -j DNAT --to-destination 10.210.2.2:80',
  ], 'the UDP port no endpoint has: no rule');
  assert.equal(planned.chains.get(apiChain), ['-p tcp -m tcp --dport 8080 -j DNAT --to-destination 192.0.2.7:31000']);
  assert.equal(planned.chains.get(serviceChainName('evil', 'idle')), [], 'nothing serving: an empty chain');
  assert.equal({ services: planned.serviceCount, endpoints: planned.endpointCount, rules: planned.ruleCount }, { services: 3, endpoints: 4, rules: 7 });
  assert.equal(planServiceChains([idle, api, web]), planned, 'the order of the input does not matter');
  assert.equal(planServiceChains([]).chains, new Map([[SERVICES_CHAIN, []]]));
});

test('an app on two networks: a client in the second network\'s block is sent to the instances\' addresses there, any other to their first', () => {
  const twoNetworks: ServiceInput = {
    tenant: 'shop',
    app: 'web',
    vip: '10.211.0.9',
    ports: [{ target: 8080, protocol: 'tcp' }],
    endpoints: [
      { ...endpoint('shop.web.0.1', '10.224.16.2', [[8080, 8080]]), addresses: ['10.224.16.2', '10.224.32.2'] },
      { ...endpoint('shop.web.1.1', '10.224.16.66', [[8080, 8080]]), addresses: ['10.224.16.66', '10.224.32.66'] },
    ],
    networkBlocks: ['10.224.32.0/20'],
  };
  const planned = planServiceChains([twoNetworks]);
  assert.equal(planned.chains.get(serviceChainName('shop', 'web')), [
    '-s 10.224.32.0/20 -p tcp -m tcp --dport 8080 -m statistic --mode random --probability 0.5000000000 -j DNAT --to-destination 10.224.32.2:8080',
    '-s 10.224.32.0/20 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.224.32.66:8080',
    '-p tcp -m tcp --dport 8080 -m statistic --mode random --probability 0.5000000000 -j DNAT --to-destination 10.224.16.2:8080',
    '-p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.224.16.66:8080',
  ]);
  assert.is(planned.endpointCount, 4);
});

test('restore input: chains declared and filled, stale chains deleted, missing jumps inserted; parse reads them back', () => {
  const planned = planServiceChains([api]);
  const apiChain = serviceChainName('acme', 'api');
  const fresh = serviceRestoreInput(planned, { chains: [], text: '', hooked: [], misplaced: [] });
  assert.equal(fresh.split('\n'), [
    '*nat',
    `:${SERVICES_CHAIN} - [0:0]`,
    `:${apiChain} - [0:0]`,
    `-A ${SERVICES_CHAIN} -d 10.211.0.1/32 -m comment --comment "hivemind: acme/api" -g ${apiChain}`,
    `-A ${apiChain} -p tcp -m tcp --dport 8080 -j DNAT --to-destination 192.0.2.7:31000`,
    `-I PREROUTING 1 -m comment --comment "hivemind: services" -j ${SERVICES_CHAIN}`,
    `-I OUTPUT 1 -m comment --comment "hivemind: services" -j ${SERVICES_CHAIN}`,
    'COMMIT',
    '',
  ]);
  const save = [
    '*nat',
    ':PREROUTING ACCEPT [0:0]',
    ':OUTPUT ACCEPT [0:0]',
    ':POSTROUTING ACCEPT [0:0]',
    `:${SERVICES_CHAIN} - [0:0]`,
    ':HM-S-000000000000 - [0:0]',
    ':CNI-abc - [0:0]',
    `-A PREROUTING -m comment --comment "hivemind: services" -j ${SERVICES_CHAIN}`,
    '-A POSTROUTING -s 10.210.0.0/24 ! -d 10.210.0.0/16 -j MASQUERADE',
    `-A ${SERVICES_CHAIN} -d 10.211.0.9/32 -g HM-S-000000000000`,
    'COMMIT',
  ].join('\n');
  const found = parseSavedServices(save);
  assert.equal(found, { chains: [SERVICES_CHAIN, 'HM-S-000000000000'], text: `-A ${SERVICES_CHAIN} -d 10.211.0.9/32 -g HM-S-000000000000`, hooked: ['PREROUTING'], misplaced: [] });
  const again = serviceRestoreInput(planned, found).split('\n');
  assert.ok(again.includes(':HM-S-000000000000 - [0:0]') && again.includes('-X HM-S-000000000000'), 'the stale chain is flushed and deleted');
  assert.ok(!again.some((line) => line.includes('CNI-abc') || line.includes('POSTROUTING')), 'nothing else is touched');
  assert.equal(again.filter((line) => line.startsWith('-I ')), [`-I OUTPUT 1 -m comment --comment "hivemind: services" -j ${SERVICES_CHAIN}`], 'only the missing jump');
});

test('published ports: every node DNATs its own addresses to the containers on any node; process endpoints left out; one holder per port', () => {
  const shop: PublishedInput = {
    tenant: 'acme',
    app: 'shop',
    ports: [{ target: 80, published: 8080, protocol: 'tcp' }, { target: 53, published: 5353, protocol: 'udp' }],
    endpoints: [endpoint('acme.shop.0.1', '10.210.1.5', [[80, 80]]), endpoint('acme.shop.1.1', '10.210.2.5', [[80, 80], [53, 53]], 'tcp'), endpoint('acme.shop.2.1', '192.0.2.7', [[80, 31000]])],
  };
  const rival: PublishedInput = { tenant: 'zeta', app: 'rival', ports: [{ target: 8000, published: 8080, protocol: 'tcp' }, { target: 9000, published: 9000, protocol: 'tcp' }], endpoints: [] };
  const planned = planServiceChains([web], { published: [rival, shop], clusterCidr: '10.210.0.0/16' });
  const shopChain = publishedChainName('acme', 'shop');
  const rivalChain = publishedChainName('zeta', 'rival');
  assert.equal(planned.chains.get(SERVICES_CHAIN)!.at(-1), `-m addrtype --dst-type LOCAL -m comment --comment "hivemind: published ports" -j ${PUBLISHED_CHAIN}`, 'the node\'s own addresses last, after the VIPs');
  assert.equal(planned.chains.get(PUBLISHED_CHAIN), [
    `-p udp -m udp --dport 5353 -m comment --comment "hivemind: acme/shop" -g ${shopChain}`,
    `-p tcp -m tcp --dport 8080 -m comment --comment "hivemind: acme/shop" -g ${shopChain}`,
    `-p tcp -m tcp --dport 9000 -m comment --comment "hivemind: zeta/rival" -g ${rivalChain}`,
  ], 'by port; 8080 held by acme/shop, the first by tenant and name');
  assert.equal(planned.chains.get(shopChain), [
    '-p tcp -m tcp --dport 8080 -m statistic --mode random --probability 0.5000000000 -j DNAT --to-destination 10.210.1.5:80',
    '-p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.210.2.5:80',
  ], 'the process endpoint (outside the cluster network) is no mesh target; the UDP port no endpoint has: no rule');
  assert.equal(planned.chains.get(rivalChain), [], 'nothing serving: an empty chain');
  assert.equal(planned.publishedConflicts, [{ tenant: 'zeta', app: 'rival', published: 8080, protocol: 'tcp', heldBy: 'acme/shop' }]);
  assert.equal({ published: planned.publishedCount, endpoints: planned.endpointCount }, { published: 3, endpoints: 3 + 2 });
  assert.equal(planServiceChains([web], { published: [shop, rival], clusterCidr: '10.210.0.0/16' }), planned, 'the order of the input does not matter');
  assert.equal([...planServiceChains([web], { published: [], clusterCidr: '10.210.0.0/16' }).chains.keys()], [...planServiceChains([web]).chains.keys()], 'no published port: no mesh chains and no jump');
  assert.throws(() => planServiceChains([], { published: [shop] }), /cluster network/);
  const reserved = planServiceChains([], { published: [shop, rival], clusterCidr: '10.210.0.0/16', reservedPorts: [7070, 8080] });
  assert.equal(reserved.chains.get(PUBLISHED_CHAIN), [`-p udp -m udp --dport 5353 -m comment --comment "hivemind: acme/shop" -g ${shopChain}`, `-p tcp -m tcp --dport 9000 -m comment --comment "hivemind: zeta/rival" -g ${rivalChain}`], "a port the node's agent listens on is never published");
  assert.equal(reserved.publishedConflicts.map((conflict) => [conflict.app, conflict.published, conflict.heldBy]), [['shop', 8080, 'the node agent'], ['rival', 8080, 'the node agent']]);
  const hosted = planServiceChains([], { published: [shop, rival], clusterCidr: '10.210.0.0/16', hostPorts: { tcp: [9000], udp: [] } });
  assert.ok(!hosted.chains.get(PUBLISHED_CHAIN)!.some((rule) => rule.includes('--dport 9000')), "a port a process of the node's host listens on is not taken over on that node");
  assert.equal(hosted.publishedConflicts.filter((conflict) => conflict.heldBy === HOST_HOLDER).map((conflict) => [conflict.app, conflict.published]), [['rival', 9000]]);
});

test("published ports: an endpoint on a tenant network's slice (the pool) is a mesh target too, with the pool set", () => {
  const holder: PublishedInput = {
    tenant: 'acme',
    app: 'holder',
    ports: [{ target: 80, published: 8080, protocol: 'tcp' }],
    endpoints: [endpoint('acme.holder.0.1', '10.224.0.66', [[80, 80]]), endpoint('acme.holder.1.1', '10.210.2.5', [[80, 80]])],
  };
  const chain = publishedChainName('acme', 'holder');
  assert.equal(planServiceChains([], { published: [holder], clusterCidr: '10.210.0.0/16', tenantCidr: '10.224.0.0/12' }).chains.get(chain), [
    '-p tcp -m tcp --dport 8080 -m statistic --mode random --probability 0.5000000000 -j DNAT --to-destination 10.224.0.66:80',
    '-p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.210.2.5:80',
  ]);
  assert.equal(planServiceChains([], { published: [holder], clusterCidr: '10.210.0.0/16' }).chains.get(chain), ['-p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.210.2.5:80'], 'no pool: the cluster network only');
  assert.throws(() => planServiceChains([], { published: [holder], clusterCidr: '10.210.0.0/16', tenantCidr: '10.224.0.0/33' }), /tenant network pool/);
});

test('a jump behind another rule (CNI portmap inserted first) is moved back to the front', () => {
  const save = ['*nat', ':PREROUTING ACCEPT [0:0]', ':OUTPUT ACCEPT [0:0]', `:${SERVICES_CHAIN} - [0:0]`, '-A PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT', `-A PREROUTING -m comment --comment "hivemind: services" -j ${SERVICES_CHAIN}`, `-A OUTPUT -m comment --comment "hivemind: services" -j ${SERVICES_CHAIN}`, '-A OUTPUT -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT', 'COMMIT'].join('\n');
  const found = parseSavedServices(save);
  assert.equal([found.hooked, found.misplaced], [['OUTPUT'], ['PREROUTING']]);
  const lines = serviceRestoreInput(planServiceChains([]), found).split('\n').filter((line) => line.startsWith('-D ') || line.startsWith('-I '));
  assert.equal(lines, [`-D PREROUTING -m comment --comment "hivemind: services" -j ${SERVICES_CHAIN}`, `-I PREROUTING 1 -m comment --comment "hivemind: services" -j ${SERVICES_CHAIN}`]);
});

test.run();
