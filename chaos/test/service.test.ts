/**
 * Service VIPs across hosts: three network namespaces as hosts (the chaos
 * harness's TestNetwork), each a real agent with its own containerd, as in
 * overlay.test.ts and policy.test.ts. Tenant acme's `web` (two instances, on
 * n2 and n3; busybox nc listeners on 8080 and 9090 that answer with their
 * instance id) gets a VIP; acme's `client` and evil's `probe` run on n1:
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
 *
 * Teardown, also on failure: agents stopped, then whatever is left killed
 * and removed (container processes, their namespaces and the warm pool's,
 * the hosts' namespaces with their bridges, VXLAN devices and iptables
 * chains, the data folder). Needs root, iproute2, iptables, containerd,
 * runc, the CNI plugins and busybox; skipped otherwise, saying why.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { request } from 'undici';
import dns2 from 'dns2';
import { serviceChainName, SERVICES_CHAIN } from '../../src/network/service-plan.js';
import { buildBusyboxImage } from '../../src/executor/containerd/oci-layout.js';
import { skipReason } from '../../src/executor/containerd/test/harness.js';
import { ApiClient, clusterCaBundle } from '../http.js';
import { dataDirApiAgent } from '../../src/api/tls.js';
import { command, missingPrerequisite, rangeInUse, removeLeftovers, TestNetwork, type Host } from '../network.js';
import { holdMachineLock } from '../machine-lock.js';
import { HostAgent, containerNetwork, removeContainerLeftovers, removeRuncLeftovers, sleepPids, until } from './host-agents.js';

/** The containers' commands end in `sleep <these>`: unique, so the test finds their processes (and kills strays). */
const SLEEP = { web: '3631', client: '3632', probe: '3633' } as const;

/** The apps whose containers the test runs (for removeRuncLeftovers). */
const RUNC_APPS = [{ tenant: 'acme', app: 'web' }, { tenant: 'acme', app: 'client' }, { tenant: 'evil', app: 'probe' }];

const unavailable =
  (await missingPrerequisite()) ?? skipReason() ?? (existsSync('/usr/lib/cni/bridge') ? null : 'the CNI plugins are not installed (containernetworking-plugins)');
const serviceTest = unavailable === null ? test : test.skip;
if (unavailable !== null) console.log(`skipping the service test: ${unavailable}`);

/**
 * A TCP connection from `from`'s namespace to `address:port` (busybox nc,
 * 2 s): 'allow' when the listener's "ok" arrives, 'deny' when nothing does
 * (a dropped SYN). Every listener of the test answers "ok".
 */
function reach(from: { namespace: string }, address: string, port: number): Promise<'allow' | 'deny'> {
  return answerOf(from, address, port).then((answer) => (answer === undefined ? 'deny' : 'allow'));
}

/** What the listener at `address:port` says to a connection from `from` ("ok <instance id>"), or undefined when nothing answers. */
function answerOf(from: { namespace: string }, address: string, port: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    execFile('ip', ['netns', 'exec', from.namespace, '/bin/busybox', 'timeout', '4', '/bin/busybox', 'sh', '-c', `/bin/busybox nc -w 2 ${address} ${port} </dev/null`], { timeout: 10_000 }, (error, stdout, stderr) => {
      if (stdout.startsWith('ok')) return resolve(stdout.trim());
      lastDenial = `${error?.message ?? ''} ${stderr}`.trim();
      resolve(undefined);
    });
  });
}

/** Why the last `reach` said deny (named when a wait for 'allow' times out). */
let lastDenial = '';

/** The `-A` lines of n's nat table. */
function natSave(host: Host): Promise<string> {
  return command('ip', ['netns', 'exec', host.namespace, 'iptables-save', '-t', 'nat']);
}

/** A metric's value in `metrics` (Prometheus text), 0 when absent. */
function metricValue(metrics: string, name: string): number {
  return Number(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\d+)`, 'm').exec(metrics)?.[1] ?? 0);
}

serviceTest('a connection to VIP:port reaches instances on other hosts, keeps policies in force, and a chain deleted by hand is repaired', async () => {
  const lock = await holdMachineLock((line) => console.log(line));
  await removeLeftovers();
  removeRuncLeftovers(RUNC_APPS);
  const inUse = await rangeInUse();
  assert.is(inUse, null, `the test range is in use: ${inUse}`);
  const dataRoot = mkdtempSync(join(tmpdir(), 'hmvip-'));
  const logDirectory = mkdtempSync(join(tmpdir(), 'hmvip-logs-'));
  let passed = false;
  const token = `hmvip.${randomBytes(16).toString('hex')}`;
  const client = new ApiClient({ token, connectTimeoutMs: 1000, requestTimeoutMs: 10_000, caBundle: () => clusterCaBundle([join(dataRoot, 'n1')]) });
  const containerNamespaces = new Set<string>();
  let network: TestNetwork | undefined;
  const nodes: HostAgent[] = [];
  try {
    network = await TestNetwork.create(3);
    for (const host of network.hosts) nodes.push(new HostAgent(host, { token, dataRoot, logDirectory }));
    const [first] = nodes;
    const api = async (method: 'GET' | 'PUT' | 'POST' | 'DELETE', path: string, body?: unknown): Promise<unknown> => {
      const answer = await client.call(first!.origin, method, path, body, 10_000);
      assert.ok(answer.kind === 'answer' && answer.status < 300, `${method} ${path}: ${JSON.stringify(answer)}`);
      return (answer as { body: unknown }).body;
    };
    first!.start('agent');
    await until('the first agent serves', async () => ((await client.call(first!.origin, 'GET', '/v1/health', undefined, 1000)).kind === 'answer' ? true : 'no answer'), 30_000);
    for (const node of nodes.slice(1)) node.start({ join: first!.peerAddress });
    await until('every node holds a subnet', async () => {
      const answer = await client.call(first!.origin, 'GET', '/v1/nodes', undefined, 2000);
      if (answer.kind !== 'answer' || answer.status !== 200) return JSON.stringify(answer);
      const records = ((answer.body as { nodes?: { id: string; status: string; subnet?: string }[] }).nodes ?? []).filter((node) => node.status === 'up');
      return records.length === 3 && records.every((node) => node.subnet !== undefined) ? true : JSON.stringify(records);
    }, 60_000);

    const archive = join(dataRoot, 'busybox.tar');
    const image = await buildBusyboxImage({ outputPath: archive });
    const bytes = readFileSync(archive);
    for (const node of nodes) {
      const answer = await request(`${node.origin}/v1/images/upload`, { dispatcher: dataDirApiAgent(join(dataRoot, 'n1')), method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/x-tar' }, body: bytes });
      assert.is(answer.statusCode, 200, `image upload to ${node.name}: ${await answer.body.text()}`);
      await answer.body.dump();
    }
    await api('PUT', '/v1/tenants/acme', {});
    await api('PUT', '/v1/tenants/evil', {});
    const service = (name: string, placement: string, command: string[], extra: string[] = []): string[] => [`  ${name}:`, `    image: ${image.name}`, `    command: ${JSON.stringify(command)}`, ...extra, '    deploy:', `      placement: ${placement}`];
    // Each answer names the instance (its hostname), so the test sees which one a connection reached.
    const listen = (port: number): string => `(while true; do echo "ok $$(hostname)" | nc -l -p ${port}; done) &`;
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

    const containersOf = (seconds: string, count: number): Promise<{ namespace: string; address: string }[]> =>
      until(`${count} containers with sleep ${seconds} run`, async () => {
        const found = sleepPids([seconds]).map(containerNetwork).filter((entry): entry is { namespace: string; address: string } => entry !== undefined);
        for (const entry of found) containerNamespaces.add(entry.namespace);
        return found.length === count ? found : `${found.length} found`;
      }, 120_000);
    const webs = await containersOf(SLEEP.web, 2);
    const [acmeClient] = await containersOf(SLEEP.client, 1);
    const [probe] = await containersOf(SLEEP.probe, 1);
    const instances = await until('every instance reports its endpoint', async () => {
      const listed = ((await api('GET', '/v1/instances')) as { instances: { id: string; app: string; node: string; status: { endpoint?: { address: string } } }[] }).instances;
      const addresses = listed.map((instance) => instance.status.endpoint?.address).sort();
      return JSON.stringify(addresses) === JSON.stringify([...webs.map((web) => web.address), acmeClient!.address, probe!.address].sort()) ? listed : JSON.stringify(addresses);
    }, 60_000);
    const webInstances = instances.filter((instance) => instance.app === 'web');
    assert.equal(webInstances.map((instance) => instance.node).sort(), ['n2', 'n3'], 'web runs on the two other hosts');

    // The VIP: from the service range, in the app record and in DNS.
    const vip = ((await api('GET', '/v1/apps/acme/web')) as { vip?: string }).vip;
    assert.ok(vip !== undefined && vip.startsWith('10.211.'), `web's VIP: ${vip}`);
    assert.is(((await api('GET', '/v1/apps/acme/client')) as { vip?: string }).vip, undefined, 'an app without ports has none');
    const n1 = network.hosts[0]!;
    const webChain = serviceChainName('acme', 'web');
    await until("n1's service chain has both instances", async () => {
      const save = await natSave(n1);
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
    assert.equal(listing.services.map((entry) => [entry.app, entry.vip, entry.endpoints]), [['web', vip, 2]]);
    const inspected = (await api('GET', '/v1/network/apps/acme/web')) as { vip: string; endpoints: { address: string }[]; serviceChain: { name: string; rules: string[] } };
    assert.equal(inspected.endpoints.map((endpoint) => endpoint.address).sort(), webs.map((web) => web.address).sort());
    assert.is(inspected.serviceChain.name, webChain);
    const n1Save = await natSave(n1);
    for (const rule of inspected.serviceChain.rules) assert.ok(n1Save.includes(`-A ${webChain} ${rule.split(' --probability ')[0]}`), `n1 has ${rule}`);
    const node = (await api('GET', '/v1/network/nodes/n1')) as { peers: { id: string }[]; services: { vips: number } };
    assert.equal([node.peers.map((peer) => peer.id), node.services.vips], [['n2', 'n3'], 1]);

    // From n1, VIP:8080 reaches the instances on n2 and n3, each several times; the listener sees the client's own address (no SNAT: the policy below depends on it).
    await until('acme client reaches the VIP', async () => ((await answerOf(acmeClient!, vip, 8080)) !== undefined ? true : `no answer: ${lastDenial}`), 15_000);
    const reached = new Map<string, number>();
    for (let attempt = 0; attempt < 60 && !([...reached.values()].length === 2 && [...reached.values()].every((count) => count >= 3)); attempt++) {
      const answer = await answerOf(acmeClient!, vip, 8080);
      assert.ok(answer !== undefined, `connection ${attempt} to ${vip}:8080 failed: ${lastDenial}`);
      const name = answer.slice('ok '.length);
      reached.set(name, (reached.get(name) ?? 0) + 1);
    }
    assert.equal([...reached.keys()].sort(), webInstances.map((instance) => instance.id.slice(0, 63)).sort(), `instances reached: ${JSON.stringify([...reached])}`);
    assert.ok([...reached.values()].every((count) => count >= 3), `each instance reached at least 3 times: ${JSON.stringify([...reached])}`);

    // Policies judge the real source and destination through the VIP: evil is denied by default, ...
    assert.is(await reach(probe!, vip, 8080), 'deny', 'evil probe -> acme web by VIP');
    // ... and a policy letting evil in on 8080 only lets it in there, and keeps acme's client out.
    await api('PUT', '/v1/policies/acme/web-from-evil', { apps: ['web'], ingress: [{ fromTenants: ['evil'], ports: [8080] }] });
    await until('evil probe reaches the VIP on 8080', async () => ((await reach(probe!, vip, 8080)) === 'allow' ? true : `denied: ${lastDenial}`), 10_000);
    assert.is(await reach(probe!, vip, 9090), 'deny', 'evil probe -> VIP:9090');
    assert.is(await reach(acmeClient!, vip, 8080), 'deny', 'acme client -> VIP:8080, no longer allowed');
    await api('DELETE', '/v1/policies/acme/web-from-evil');
    await until('evil probe is denied again', async () => ((await reach(probe!, vip, 8080)) === 'deny' ? true : 'allowed'), 10_000);

    // Drift: the service chain flushed and the jump from PREROUTING deleted by hand, on n1; both come back.
    await command('ip', ['netns', 'exec', n1.namespace, 'iptables', '-w', '-t', 'nat', '-F', webChain]);
    await command('ip', ['netns', 'exec', n1.namespace, 'iptables', '-w', '-t', 'nat', '-D', 'PREROUTING', '-m', 'comment', '--comment', 'hivemind: services', '-j', SERVICES_CHAIN]);
    await until('the service chains are repaired', async () => {
      const save = await natSave(n1);
      return webs.every((web) => save.includes(`--to-destination ${web.address}:8080`)) && save.includes(`-j ${SERVICES_CHAIN}`) ? true : 'not yet';
    }, 15_000);
    assert.is(await reach(acmeClient!, vip, 8080), 'allow', 'after the repair');
    const metrics = await request(`${first!.origin}/metrics`, { dispatcher: dataDirApiAgent(join(dataRoot, 'n1')), headers: { authorization: `Bearer ${token}` } }).then((answer) => answer.body.text());
    assert.ok(metricValue(metrics, 'hivemind_network_service_repairs_total') >= 1, metrics.split('\n').filter((line) => line.includes('service')).join('; '));
    assert.is(metricValue(metrics, 'hivemind_network_services'), 1);
    assert.is(metricValue(metrics, 'hivemind_network_service_endpoints'), 4, 'two instances, two ports');

    // The app deleted: its chain is gone from every host, its VIP free.
    await api('DELETE', '/v1/apps/acme/web');
    for (const host of network.hosts) await until(`${host.namespace} drops web's chain`, async () => (!(await natSave(host)).includes(webChain) ? true : 'still there'), 15_000);
    await api('DELETE', '/v1/apps/acme/client');
    await api('DELETE', '/v1/apps/evil/probe');
    await until('the containers stop', async () => (sleepPids(Object.values(SLEEP)).length === 0 ? true : `${sleepPids(Object.values(SLEEP)).length} still run`), 60_000);
    passed = true;
  } finally {
    if (passed) rmSync(logDirectory, { recursive: true, force: true });
    else console.log(`the agents' logs are kept in ${logDirectory}`);
    for (const node of nodes) await node.stop().catch(() => undefined);
    await client.close();
    removeContainerLeftovers(dataRoot, containerNamespaces, Object.values(SLEEP));
    removeRuncLeftovers(RUNC_APPS);
    await network?.destroy().catch(() => undefined);
    await removeLeftovers();
    lock.release();
  }
});

test.run();
