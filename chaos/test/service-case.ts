/**
 * Service VIPs across hosts (a case of `network-hosts.test.ts`). Tenant
 * acme's `web` (two instances, on n2 and n3; busybox nc listeners on 8080
 * and 9090 that answer with their instance id) gets a VIP; acme's `client`
 * and evil's `probe` run on n1:
 *   - web's name answers the VIP (n1's DNS server), and n1's nat chains
 *     DNAT VIP:8080 to both instances;
 *   - connections from client to VIP:8080 reach both instances, each
 *     several times;
 *   - policies see the real source and destination through the VIP: probe
 *     is denied by default; with a policy letting evil in on 8080, probe
 *     reaches VIP:8080, not VIP:9090, and client no longer does;
 *   - web's chain flushed and the jump from PREROUTING deleted by hand on n1
 *     come back (and the repair metric counts it);
 *   - web deleted: its chain is gone from every host.
 */
import * as assert from 'uvu/assert';
import dns2 from 'dns2';
import { connect } from 'node:net';
import { shortHash } from '../../src/network/policy-plan.js';
import { serviceChainName, SERVICES_CHAIN, SERVICES_JUMP_COMMENT } from '../../src/network/service-plan.js';
import { command } from '../network.js';
import { until } from './host-agents.js';
import { admitted, answerOf, containersOf, endpointsReported, lastDenial, metricAbove, metricValue, ping, reach, tableOf, STOP_GRACE_LINE, type NetworkCase } from './network-probes.js';
import { parseIpv4 } from '../../src/state/ipam.js';

/** The containers' commands end in `sleep <these>`: unique, so the test finds their processes (and kills strays). */
const SLEEP = { web: '3631', client: '3632', probe: '3633', holder: '3634' } as const;

/** What a TCP connection from the harness to `address:port` reads until the other side closes (3 s at most), trimmed; '' when nothing came. */
function harnessRead(address: string, port: number): Promise<string> {
  return new Promise((resolve) => {
    let text = '';
    const socket = connect({ host: address, port });
    const done = (): void => {
      socket.destroy();
      resolve(text.trim());
    };
    socket.setTimeout(3000, done);
    socket.on('data', (chunk: Buffer) => (text += chunk.toString('utf8')));
    socket.on('end', done);
    socket.on('error', done);
  });
}

export const serviceCase: NetworkCase = {
  title: 'a connection to VIP:port reaches instances on other hosts, keeps policies in force, and a chain deleted by hand is repaired',
  sleepSeconds: Object.values(SLEEP),
  runcApps: [{ tenant: 'acme', app: 'web' }, { tenant: 'acme', app: 'client' }, { tenant: 'evil', app: 'probe' }, { tenant: 'netcheck', app: 'holder' }],
  async body(cluster) {
    const { api, image, network } = cluster;
    await api('PUT', '/v1/tenants/acme', {});
    await api('PUT', '/v1/tenants/evil', {});
    // Tenant networks: the leader sets the pool once every node runs state version 5; a tenant created then gets a default network of its own.
    await until('the tenant network pool is set', async () => (((await api('GET', '/v1/network')) as { tenantCidr?: string | null }).tenantCidr === '10.224.0.0/12' ? true : 'not yet'), 30_000);
    await api('PUT', '/v1/tenants/netcheck', {});
    // A tenant without its default network, as one made before the pool (netcheck's deleted while it has no app): the leader gives it one again, through network.create, and holder's instances below land on it.
    const history = async (): Promise<{ index: number; command: string; target: string; summary: string }[]> => ((await api('GET', '/v1/history?limit=200')) as { history: { index: number; command: string; target: string; summary: string }[] }).history;
    await until('netcheck has its default network', async () => (((await api('GET', '/v1/network')) as { networks: { tenant: string; name: string }[] }).networks.some((entry) => entry.tenant === 'netcheck' && entry.name === 'default') ? true : 'not yet'), 10_000);
    await api('DELETE', '/v1/networks/netcheck/default');
    const deletedAt = await until('the deletion is in the history', async () => (await history()).find((entry) => entry.target === 'network netcheck/default' && entry.summary.startsWith('deleted'))?.index ?? 'not yet', 10_000);
    await until('the leader gives netcheck a default network again', async () => ((await history()).some((entry) => entry.target === 'network netcheck/default' && entry.command === 'network.create' && entry.index > deletedAt) ? true : JSON.stringify((await history()).filter((entry) => entry.target.startsWith('network netcheck')))), 20_000);
    const service = (name: string, placement: string, command: string[], extra: string[] = []): string[] => [`  ${name}:`, `    image: ${image.name}`, `    command: ${JSON.stringify(command)}`, STOP_GRACE_LINE, ...extra, '    deploy:', `      placement: ${placement}`];
    // Each answer names the instance (its hostname), so the test sees which one a connection reached.
    // One listening socket for the container's life (busybox nc -ll -e: a child per connection): a loop of one-shot listeners refused a connection
    // that came between two (a VIP spread failed so under load).
    const listen = (port: number): string => `nc -ll -p ${port} -e /bin/busybox sh -c 'echo "ok $$(hostname)"' &`;
    const serve = `${listen(8080)} ${listen(9090)} exec sleep ${SLEEP.web}`;
    const acme = [
      'services:',
      ...service('web', '{ constraints: ["node.id != n1"], max_replicas_per_node: 1 }', ['sh', '-c', serve], ['    ports: ["8080", "9090"]']),
      '      replicas: 2',
      ...service('client', '{ constraints: ["node.id == n1"] }', ['sh', '-c', `exec sleep ${SLEEP.client}`]),
      '      replicas: 1',
      '',
    ].join('\n');
    const evil = ['services:', ...service('probe', '{ constraints: ["node.id == n1"] }', ['sh', '-c', `exec sleep ${SLEEP.probe}`]), '      replicas: 1', ''].join('\n');
    await api('POST', '/v1/deploy', { fileName: 'acme.yaml', content: acme, tenant: 'acme' });
    await api('POST', '/v1/deploy', { fileName: 'evil.yaml', content: evil, tenant: 'evil' });
    // holder publishes 8090 (the routing mesh to a tenant network's endpoints): its listener names the instance.
    const holder = ['services:', ...service('holder', '{ constraints: ["node.id != n1"], max_replicas_per_node: 1 }', ['sh', '-c', `${listen(8000)} exec sleep ${SLEEP.holder}`], ['    ports: ["8090:8000"]']), '      replicas: 2', ''].join('\n');
    await api('POST', '/v1/deploy', { fileName: 'holder.yaml', content: holder, tenant: 'netcheck' });
    type Listing = { networks: { tenant: string; name: string; cidr: string; slices: { node: string; cidr: string }[] }[] };
    const netcheckNetwork = async (): Promise<Listing['networks'][number] | undefined> => ((await api('GET', '/v1/network')) as Listing).networks.find((entry) => entry.tenant === 'netcheck' && entry.name === 'default');

    const webs = await containersOf(cluster, SLEEP.web, 2);
    const [acmeClient] = await containersOf(cluster, SLEEP.client, 1);
    const [probe] = await containersOf(cluster, SLEEP.probe, 1);
    const holders = await containersOf(cluster, SLEEP.holder, 2);
    const instances = await endpointsReported(cluster, [...webs.map((web) => web.address), acmeClient!.address, probe!.address, ...holders.map((entry) => entry.address)]);
    const webInstances = instances.filter((instance) => instance.app === 'web');
    assert.equal(webInstances.map((instance) => instance.node).sort(), ['n2', 'n3'], 'web runs on the two other hosts');

    // The VIP: from the service range, in the app record and in DNS.
    const vip = ((await api('GET', '/v1/apps/acme/web')) as { vip?: string }).vip;
    assert.ok(vip !== undefined && vip.startsWith('10.211.'), `web's VIP: ${vip}`);
    assert.is(((await api('GET', '/v1/apps/acme/client')) as { vip?: string }).vip, undefined, 'an app without ports has none');
    const n1 = network.hosts[0]!;
    const webChain = serviceChainName('acme', 'web');
    await until("n1's service chain has both instances", async () => {
      const save = await tableOf(n1, 'nat');
      return webs.every((web) => save.includes(`--to-destination ${web.address}:8080`)) && save.includes(`-A PREROUTING -m comment --comment "hivemind: services" -j ${SERVICES_CHAIN}`) ? true : 'not yet';
    }, 15_000);
    const resolver = dns2.UDPClient({ dns: n1.address, port: 7053 });
    const resolved = await until('web.acme.hivemind answers the VIP', async () => {
      const answers = ((await resolver('web.acme.hivemind', 'A')) as { answers: { address?: string }[] }).answers.map((record) => record.address);
      return answers.length === 1 && answers[0] === vip ? answers : JSON.stringify(answers);
    }, 10_000);
    assert.equal(resolved, [vip]);

    // The network routes show the same: ranges, nodes, the VIP with its endpoints and the chain n1 programs.
    const listing = (await api('GET', '/v1/network')) as { clusterCidr: string; serviceCidr: string; nodes: { id: string; overlay: string; subnet: string | null }[]; services: { app: string; vip: string; endpoints: number }[] };
    assert.equal([listing.clusterCidr, listing.serviceCidr], ['10.210.0.0/16', '10.211.0.0/16']);
    assert.equal(listing.nodes.map((node) => [node.id, node.overlay, node.subnet !== null]), [['n1', 'on', true], ['n2', 'on', true], ['n3', 'on', true]]);
    assert.equal(listing.services.filter((entry) => entry.app !== 'holder').map((entry) => [entry.app, entry.vip, entry.endpoints]), [['web', vip, 2]], "web's VIP (holder, with a port, has one too)");
    // Tenant networks: netcheck's default network is a /20 of the pool apart from every other; the leader gave n2 and n3, where holder runs, a slice each (and no other node); each holder's address is from its node's slice, no address is held twice, and the holders reach each other across hosts over their own network while evil's probe (on its own tenant's network) does not; with holder deleted, the slices are given back after the grace (2 s here), checked at the end.
    const networks = ((await api('GET', '/v1/network')) as Listing).networks;
    const own = networks.find((entry) => entry.tenant === 'netcheck' && entry.name === 'default');
    assert.ok(own !== undefined && /^10\.2(2[4-9]|3\d)\.\d+\.0\/20$/.test(own.cidr), `netcheck/default is a /20 of the pool: ${JSON.stringify(networks)}`);
    assert.not.ok(networks.some((entry) => entry !== own && entry.cidr === own.cidr), 'no other network has its block');
    const attached = await until('n2 and n3 hold a slice of netcheck/default', async () => {
      const slices = (await netcheckNetwork())?.slices ?? [];
      return slices.length >= 2 ? slices : JSON.stringify(slices);
    }, 15_000);
    assert.equal(attached.map((slice) => slice.node).sort(), ['n2', 'n3'], `only the nodes running holder: ${JSON.stringify(attached)}`);
    const n2Slices = ((await api('GET', '/v1/network/nodes/n2')) as { slices: { tenant: string; network: string; cidr: string }[] }).slices.filter((slice) => slice.tenant === 'netcheck');
    assert.equal(n2Slices, [{ tenant: 'netcheck', network: 'default', cidr: attached.find((slice) => slice.node === 'n2')!.cidr }], 'the node view lists its slice');
    for (const instance of instances.filter((entry) => entry.app === 'holder')) {
      const slice = attached.find((entry) => entry.node === instance.node)!;
      const sliceBase = parseIpv4(slice.cidr.split('/')[0]!)!;
      const address = parseIpv4(instance.status.endpoint!.address)!;
      assert.ok(slice.cidr.endsWith('/26') && address > sliceBase + 1 && address < sliceBase + 63, `${instance.id} on ${instance.node}: ${instance.status.endpoint!.address} is in its node's slice ${slice.cidr}`);
    }
    const held = instances.map((instance) => instance.status.endpoint!.address);
    assert.is(new Set(held).size, held.length, `no address held twice: ${held.join(', ')}`);
    await until('a holder reaches the other across hosts over netcheck/default', async () => ((await ping(holders[0]!, holders[1]!.address)) ? true : 'no answer'), 20_000);
    assert.not.ok(await ping(probe!, holders[1]!.address), 'evil probe -> netcheck holder');
    assert.not.ok(await ping(acmeClient!, holders[1]!.address), 'acme client -> netcheck holder');
    // The mesh to a tenant network's endpoints: n1 (no holder) DNATs its port 8090 to both holders on their slices, and their answers find the way back through n1.
    const holderNames = instances.filter((entry) => entry.app === 'holder').map((entry) => entry.id.slice(0, 63)).sort();
    const meshAnswers = new Set<string>();
    await until('both holders answer through n1:8090', async () => {
      const said = await harnessRead(network.hosts[0]!.address, 8090);
      if (said.startsWith('ok ')) meshAnswers.add(said.slice(3));
      return holderNames.every((name) => meshAnswers.has(name)) ? true : `${said || 'nothing'}; heard ${[...meshAnswers].join(', ') || 'none'}`;
    }, 30_000);
    await api('DELETE', '/v1/apps/netcheck/holder');
    const inspected = (await api('GET', '/v1/network/apps/acme/web')) as { vip: string; endpoints: { address: string }[]; serviceChain: { name: string; rules: string[] } };
    assert.equal(inspected.endpoints.map((endpoint) => endpoint.address).sort(), webs.map((web) => web.address).sort());
    assert.is(inspected.serviceChain.name, webChain);
    const n1Save = await tableOf(n1, 'nat');
    for (const rule of inspected.serviceChain.rules) assert.ok(n1Save.includes(`-A ${webChain} ${rule.split(' --probability ')[0]}`), `n1 has ${rule}`);
    const node = (await api('GET', '/v1/network/nodes/n1')) as { peers: { id: string }[]; services: { vips: number } };
    assert.equal([node.peers.map((peer) => peer.id).sort(), node.services.vips], [['n2', 'n3'], 1]);

    // From n1, VIP:8080 reaches the instances on n2 and n3 (once both let the client in), each several times; the listener sees the client's own address (no SNAT: the policy below depends on it).
    for (const host of network.hosts.slice(1)) await admitted(host, [acmeClient!.address]);
    await until('acme client reaches the VIP', async () => ((await answerOf(acmeClient!, vip, 8080)) !== undefined ? true : `no answer: ${lastDenial()}`), 15_000);
    const reached = new Map<string, number>();
    for (let attempt = 0; attempt < 60 && !([...reached.values()].length === 2 && [...reached.values()].every((count) => count >= 3)); attempt++) {
      const answer = await answerOf(acmeClient!, vip, 8080);
      assert.ok(answer !== undefined, `connection ${attempt} to ${vip}:8080 failed: ${lastDenial()}`);
      const name = answer.slice('ok '.length);
      reached.set(name, (reached.get(name) ?? 0) + 1);
    }
    assert.equal([...reached.keys()].sort(), webInstances.map((instance) => instance.id.slice(0, 63)).sort(), `instances reached: ${JSON.stringify([...reached])}`);
    assert.ok([...reached.values()].every((count) => count >= 3), `each instance reached at least 3 times: ${JSON.stringify([...reached])}`);

    // Policies judge the real source and destination through the VIP: evil is denied by default (once n2 and n3 protect their instance), ...
    for (const host of network.hosts.slice(1)) {
      await until(`${host.namespace} protects its web instance`, async () => {
        const filter = await tableOf(host, 'filter');
        return webs.some((web) => filter.includes(`-d ${web.address}/32`)) ? true : 'not yet';
      }, 30_000);
    }
    assert.is(await reach(probe!, vip, 8080), 'deny', 'evil probe -> acme web by VIP');
    // ... and a policy letting evil in on 8080 only lets it in there, and keeps acme's client out.
    // The VIP spreads connections over n2 and n3, so each verdict below needs the policy (then its absence) in force on both.
    const policyChain = `HM-P-${shortHash('acme/web-from-evil')}`;
    const webHosts = network.hosts.slice(1);
    const policyInForce = (present: boolean): Promise<void> =>
      Promise.all(webHosts.map((host) => until(`${host.namespace} ${present ? 'enforces' : 'drops'} the policy`, async () => ((await tableOf(host, 'filter')).includes(`-A ${policyChain} -s ${probe!.address}/32`) === present ? true : 'not yet'), 30_000))).then(() => undefined);
    await api('PUT', '/v1/policies/acme/web-from-evil', { apps: ['web'], ingress: [{ fromTenants: ['evil'], ports: [8080] }] });
    await policyInForce(true);
    await until('evil probe reaches the VIP on 8080', async () => ((await reach(probe!, vip, 8080)) === 'allow' ? true : `denied: ${lastDenial()}`), 10_000);
    assert.is(await reach(probe!, vip, 9090), 'deny', 'evil probe -> VIP:9090');
    assert.is(await reach(acmeClient!, vip, 8080), 'deny', 'acme client -> VIP:8080, no longer allowed');
    await api('DELETE', '/v1/policies/acme/web-from-evil');
    await policyInForce(false);
    assert.is(await reach(probe!, vip, 8080), 'deny', 'evil probe -> VIP:8080, the policy deleted');

    // Drift: the service chain flushed and the jump from PREROUTING deleted by hand, on n1; both come back.
    const repairsBefore = metricValue(await cluster.text(0, '/metrics'), 'hivemind_network_service_repairs_total');
    await command('ip', ['netns', 'exec', n1.namespace, 'iptables', '-w', '-t', 'nat', '-F', webChain]);
    await command('ip', ['netns', 'exec', n1.namespace, 'iptables', '-w', '-t', 'nat', '-D', 'PREROUTING', '-m', 'comment', '--comment', 'hivemind: services', '-j', SERVICES_CHAIN]);
    await until('the service chains are repaired', async () => {
      const save = await tableOf(n1, 'nat');
      // PREROUTING's own jump: OUTPUT's (never deleted) also ends in `-j SERVICES_CHAIN`, and a repair pass may run between the flush and the delete above, mending the chain alone (the next pass brings the jump).
      return webs.every((web) => save.includes(`--to-destination ${web.address}:8080`)) && save.includes(`-A PREROUTING -m comment --comment "${SERVICES_JUMP_COMMENT}" -j ${SERVICES_CHAIN}`) ? true : 'not yet';
    }, 15_000);
    assert.is(await reach(acmeClient!, vip, 8080), 'allow', `after the repair: ${lastDenial()}`);
    const metrics = await metricAbove(cluster, 0, 'hivemind_network_service_repairs_total', repairsBefore);
    assert.is(metricValue(metrics, 'hivemind_network_services'), 1);
    assert.is(metricValue(metrics, 'hivemind_network_service_endpoints'), 4, 'two instances, two ports');

    // The app deleted: its chain is gone from every host.
    await api('DELETE', '/v1/apps/acme/web');
    for (const host of network.hosts) await until(`${host.namespace} drops web's chain`, async () => (!(await tableOf(host, 'nat')).includes(webChain) ? true : 'still there'), 15_000);

    // holder, deleted above, ran nowhere for longer than the grace: n3's slice is given back; the network goes with its tenant.
    await until('the slices of netcheck/default are given back', async () => (((await netcheckNetwork())?.slices ?? []).length === 0 ? true : JSON.stringify((await netcheckNetwork())?.slices)), 20_000);
    await api('DELETE', '/v1/tenants/netcheck');
    assert.not.ok(((await api('GET', '/v1/network')) as { networks: { tenant: string }[] }).networks.some((entry) => entry.tenant === 'netcheck'), 'the network goes with its tenant');
  },
};
