/**
 * Network policies enforced across hosts: three network namespaces as hosts
 * (the chaos harness's TestNetwork), each a real agent with its own
 * containerd, as in overlay.test.ts. Tenant acme's `web` (busybox nc listeners
 * on 8080 and 9090) runs on n1, acme's `client` on n3, tenant evil's `probe`
 * on n2. By overlay address:
 *   - by default acme's client reaches web, evil's probe does not (nor
 *     does web reach probe: both ways);
 *   - a policy letting tenant evil into web on 8080: probe reaches 8080,
 *     not 9090, not by ICMP; client (not allowed by the policy) no longer;
 *   - a rule deleted by hand on n1 (the policy chain flushed, the jump from
 *     FORWARD deleted) is repaired, and counted in the metric;
 *   - the policy deleted: probe is denied again, the policy's chain is gone.
 * The overlay addresses come from the instances' endpoints in the state
 * (InstanceStatus.endpoint, reported by the executor).
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
import { shortHash } from '../../src/network/policy-plan.js';
import { buildBusyboxImage } from '../../src/executor/containerd/oci-layout.js';
import { skipReason } from '../../src/executor/containerd/test/harness.js';
import { ApiClient, clusterCaBundle } from '../http.js';
import { dataDirApiAgent } from '../../src/api/tls.js';
import { command, missingPrerequisite, rangeInUse, removeLeftovers, TestNetwork } from '../network.js';
import { holdMachineLock } from '../machine-lock.js';
import { HostAgent, containerNetwork, removeContainerLeftovers, removeRuncLeftovers, sleepPids, until } from './host-agents.js';

/** The containers' commands end in `sleep <these>`: unique, so the test finds their processes (and kills strays). */
const SLEEP = { web: '3621', client: '3622', probe: '3623' } as const;

/** The apps whose containers the test runs (for removeRuncLeftovers). */
const RUNC_APPS = [{ tenant: 'acme', app: 'web' }, { tenant: 'acme', app: 'client' }, { tenant: 'evil', app: 'probe' }];

const unavailable =
  (await missingPrerequisite()) ?? skipReason() ?? (existsSync('/usr/lib/cni/bridge') ? null : 'the CNI plugins are not installed (containernetworking-plugins)');
const policyTest = unavailable === null ? test : test.skip;
if (unavailable !== null) console.log(`skipping the policy test: ${unavailable}`);

/**
 * A TCP connection from `from`'s namespace to `address:port` (busybox nc,
 * 2 s): 'allow' when the listener's "ok" arrives, 'deny' when nothing does
 * (a dropped SYN). Every listener of the test answers "ok".
 */
function reach(from: { namespace: string }, address: string, port: number): Promise<'allow' | 'deny'> {
  return new Promise((resolve) => {
    execFile('ip', ['netns', 'exec', from.namespace, '/bin/busybox', 'timeout', '4', '/bin/busybox', 'sh', '-c', `/bin/busybox nc -w 2 ${address} ${port} </dev/null`], { timeout: 10_000 }, (error, stdout, stderr) => {
      if (stdout.includes('ok')) return resolve('allow');
      lastDenial = `${error?.message ?? ''} ${stderr}`.trim();
      resolve('deny');
    });
  });
}

/** Why the last `reach` said deny (named when a wait for 'allow' times out). */
let lastDenial = '';

async function ping(from: { namespace: string }, address: string): Promise<boolean> {
  return command('ip', ['netns', 'exec', from.namespace, '/bin/busybox', 'ping', '-c', '1', '-W', '2', address]).then(
    () => true,
    () => false,
  );
}

policyTest('tenant B reaches tenant A only once a policy allows it, only on its port; a rule deleted by hand is repaired', async () => {
  const lock = await holdMachineLock((line) => console.log(line));
  await removeLeftovers();
  removeRuncLeftovers(RUNC_APPS);
  const inUse = await rangeInUse();
  assert.is(inUse, null, `the test range is in use: ${inUse}`);
  const dataRoot = mkdtempSync(join(tmpdir(), 'hmpol-'));
  const logDirectory = mkdtempSync(join(tmpdir(), 'hmpol-logs-'));
  let passed = false;
  const token = `hmpol.${randomBytes(16).toString('hex')}`;
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
    const service = (name: string, node: string, command: string[]): string[] => [`  ${name}:`, `    image: ${image.name}`, `    command: ${JSON.stringify(command)}`, '    deploy:', '      replicas: 1', `      placement: { constraints: ["node.id == ${node}"] }`];
    const listen = (port: number): string => `(while true; do echo ok | nc -l -p ${port}; done) &`;
    const serve = `${listen(8080)} ${listen(9090)} exec sleep ${SLEEP.web}`;
    const acme = ['services:', ...service('web', 'n1', ['sh', '-c', serve]), ...service('client', 'n3', ['sh', '-c', `exec sleep ${SLEEP.client}`]), ''].join('\n');
    const evil = ['services:', ...service('probe', 'n2', ['sh', '-c', `exec sleep ${SLEEP.probe}`]), ''].join('\n');
    await api('POST', '/v1/deploy', { fileName: 'acme.yaml', content: acme, tenant: 'acme' });
    await api('POST', '/v1/deploy', { fileName: 'evil.yaml', content: evil, tenant: 'evil' });

    const containerOf = (seconds: string): Promise<{ namespace: string; address: string }> =>
      until(`the container with sleep ${seconds} runs`, async () => {
        const found = sleepPids([seconds]).map(containerNetwork).filter((entry): entry is { namespace: string; address: string } => entry !== undefined);
        for (const entry of found) containerNamespaces.add(entry.namespace);
        return found.length === 1 ? found[0]! : `${found.length} found`;
      }, 120_000);
    const web = await containerOf(SLEEP.web);
    const acmeClient = await containerOf(SLEEP.client);
    const probe = await containerOf(SLEEP.probe);
    // Enforcement needs the addresses in the state: wait until every instance reported its endpoint.
    await until('every instance reports its endpoint', async () => {
      const instances = ((await api('GET', '/v1/instances')) as { instances: { id: string; status: { endpoint?: { address: string } } }[] }).instances;
      const addresses = instances.map((instance) => instance.status.endpoint?.address).sort();
      return JSON.stringify(addresses) === JSON.stringify([web.address, acmeClient.address, probe.address].sort()) ? true : JSON.stringify(addresses);
    }, 60_000);
    const n1 = network.hosts[0]!;
    const save = (): Promise<string> => command('ip', ['netns', 'exec', n1.namespace, 'iptables-save', '-t', 'filter']);
    await until("n1's chains protect web", async () => ((await save()).includes(`-d ${web.address}/32`) ? true : 'not yet'), 15_000);

    // The default: one tenant reaches itself, across hosts; the other tenant is denied, both ways.
    assert.is(await until('acme client reaches web', async () => ((await reach(acmeClient, web.address, 8080)) === 'allow' ? true : `denied: ${lastDenial}`), 15_000), true);
    assert.is(await reach(probe, web.address, 8080), 'deny', 'evil probe -> acme web');
    assert.not.ok(await ping(probe, web.address), 'evil probe -> acme web, ICMP');
    assert.not.ok(await ping(web, probe.address), 'acme web -> evil probe, ICMP (both ways)');
    assert.ok(await ping(acmeClient, web.address), 'acme client -> acme web, ICMP');

    // A policy lets tenant evil into web on 8080, and only there.
    await api('PUT', '/v1/policies/acme/web-from-evil', { apps: ['web'], ingress: [{ fromTenants: ['evil'], ports: [8080] }] });
    await until('evil probe reaches web on 8080', async () => ((await reach(probe, web.address, 8080)) === 'allow' ? true : `denied: ${lastDenial}`), 10_000);
    assert.is(await reach(probe, web.address, 9090), 'deny', 'evil probe -> web:9090');
    assert.not.ok(await ping(probe, web.address), 'evil probe -> web, ICMP');
    assert.is(await reach(acmeClient, web.address, 8080), 'deny', 'once selected, web accepts only what the policy allows');

    // Drift: the policy chain flushed and the jump from FORWARD deleted by hand, on n1; both come back.
    const policyChain = `HM-P-${shortHash('acme/web-from-evil')}`;
    const before = await save();
    assert.ok(before.includes(`-A ${policyChain} -s ${probe.address}/32 -p tcp -m multiport --dports 8080`), before);
    await command('ip', ['netns', 'exec', n1.namespace, 'iptables', '-w', '-F', policyChain]);
    await command('ip', ['netns', 'exec', n1.namespace, 'iptables', '-w', '-D', 'FORWARD', '-m', 'comment', '--comment', 'hivemind: network policies', '-j', 'HIVEMIND-POLICY']);
    await until('the chains are repaired', async () => {
      const now = await save();
      return now.includes(`-A ${policyChain} -s ${probe.address}/32`) && now.includes('-j HIVEMIND-POLICY') ? true : 'not yet';
    }, 15_000);
    assert.is(await reach(probe, web.address, 8080), 'allow', 'after the repair');
    const metrics = await request(`${first!.origin}/metrics`, { dispatcher: dataDirApiAgent(join(dataRoot, 'n1')), headers: { authorization: `Bearer ${token}` } }).then((answer) => answer.body.text());
    const repairs = Number(/^hivemind_network_policy_repairs_total(?:\{[^}]*\})? (\d+)/m.exec(metrics)?.[1] ?? 0);
    assert.ok(repairs >= 1, `hivemind_network_policy_repairs_total is ${repairs}: ${metrics.split('\n').filter((line) => line.includes('policy')).join('; ') || metrics.slice(0, 200)}`);

    // The policy deleted: denied again, and its chain is gone.
    await api('DELETE', '/v1/policies/acme/web-from-evil');
    await until('evil probe is denied again', async () => ((await reach(probe, web.address, 8080)) === 'deny' ? true : 'allowed'), 10_000);
    assert.not.ok((await save()).includes(policyChain), 'the policy chain is deleted');
    assert.is(await reach(acmeClient, web.address, 8080), 'allow');

    await api('DELETE', '/v1/apps/acme/web');
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
