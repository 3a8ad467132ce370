/**
 * Egress policies enforced across hosts: three network namespaces as hosts
 * (the chaos harness's TestNetwork), each a real agent with its own
 * containerd, as in policy.test.ts. Tenant acme's `web` (busybox nc
 * listeners on 8080 and 9090) runs on n1, acme's `db` (listener on 5432) on
 * n2, acme's `client` on n3. By overlay address:
 *   - by default client reaches web on both ports and db;
 *   - a policy giving client egress to web on 8080 only (and no ingress
 *     rule): client reaches web:8080, not web:9090, not db, not web by ICMP;
 *     `policies test` says so and names the egress rule; web still reaches
 *     client (client's ingress is untouched); n3 holds the egress chain,
 *     n1 none;
 *   - an egress rule by CIDR (db's address, 5432) added: client reaches db;
 *   - the policy deleted: client reaches everything again, n3's chain is gone.
 *
 * Teardown, also on failure: agents stopped, then whatever is left killed
 * and removed (container processes, their namespaces and the warm pool's,
 * the hosts' namespaces with their bridges, VXLAN devices and iptables
 * chains, the data folder). Needs root, iproute2, iptables, containerd,
 * runc, the CNI plugins and busybox; skipped otherwise, saying why.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { shortHash } from '../../src/network/policy-plan.js';
import { skipReason } from '../../src/executor/containerd/test/harness.js';
import { command, missingPrerequisite } from '../network.js';
import { containerNetwork, sleepPids, until } from './host-agents.js';
import { runOnHostCluster } from './host-cluster.js';

/** The containers' commands end in `sleep <these>`: unique, so the test finds their processes (and kills strays). */
const SLEEP = { web: '3661', db: '3662', client: '3663' } as const;

/** The apps whose containers the test runs (for removeRuncLeftovers). */
const RUNC_APPS = [{ tenant: 'acme', app: 'web' }, { tenant: 'acme', app: 'db' }, { tenant: 'acme', app: 'client' }];

const unavailable =
  (await missingPrerequisite()) ?? skipReason() ?? (existsSync('/usr/lib/cni/bridge') ? null : 'the CNI plugins are not installed (containernetworking-plugins)');
const egressTest = unavailable === null ? test : test.skip;
if (unavailable !== null) console.log(`skipping the egress test: ${unavailable}`);

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

egressTest('an app whose egress a policy restricts reaches only what its egress rules allow; its ingress and other apps are untouched', async () => {
  await runOnHostCluster({ prefix: 'hmegr', hosts: 3, runcApps: RUNC_APPS, sleepSeconds: Object.values(SLEEP) }, async ({ network, image, containerNamespaces, api }) => {
    await api('PUT', '/v1/tenants/acme', {});
    const service = (name: string, node: string, command: string[]): string[] => [`  ${name}:`, `    image: ${image.name}`, `    command: ${JSON.stringify(command)}`, '    deploy:', '      replicas: 1', `      placement: { constraints: ["node.id == ${node}"] }`];
    const listen = (port: number): string => `(while true; do echo ok | nc -l -p ${port}; done) &`;
    const acme = [
      'services:',
      ...service('web', 'n1', ['sh', '-c', `${listen(8080)} ${listen(9090)} exec sleep ${SLEEP.web}`]),
      ...service('db', 'n2', ['sh', '-c', `${listen(5432)} exec sleep ${SLEEP.db}`]),
      ...service('client', 'n3', ['sh', '-c', `exec sleep ${SLEEP.client}`]),
      '',
    ].join('\n');
    await api('POST', '/v1/deploy', { fileName: 'acme.yaml', content: acme, tenant: 'acme' });

    const containerOf = (seconds: string): Promise<{ namespace: string; address: string }> =>
      until(`the container with sleep ${seconds} runs`, async () => {
        const found = sleepPids([seconds]).map(containerNetwork).filter((entry): entry is { namespace: string; address: string } => entry !== undefined);
        for (const entry of found) containerNamespaces.add(entry.namespace);
        return found.length === 1 ? found[0]! : `${found.length} found`;
      }, 120_000);
    const web = await containerOf(SLEEP.web);
    const db = await containerOf(SLEEP.db);
    const acmeClient = await containerOf(SLEEP.client);
    // Enforcement needs the addresses in the state: wait until every instance reported its endpoint.
    await until('every instance reports its endpoint', async () => {
      const instances = ((await api('GET', '/v1/instances')) as { instances: { status: { endpoint?: { address: string } } }[] }).instances;
      const addresses = instances.map((instance) => instance.status.endpoint?.address).sort();
      return JSON.stringify(addresses) === JSON.stringify([web.address, db.address, acmeClient.address].sort()) ? true : JSON.stringify(addresses);
    }, 60_000);
    const [n1, , n3] = network.hosts;
    const save = (host: { namespace: string }): Promise<string> => command('ip', ['netns', 'exec', host.namespace, 'iptables-save', '-t', 'filter']);

    // The default: the tenant's apps reach each other, across hosts.
    await until('client reaches web', async () => ((await reach(acmeClient, web.address, 8080)) === 'allow' ? true : `denied: ${lastDenial}`), 15_000);
    assert.is(await reach(acmeClient, web.address, 9090), 'allow', 'client -> web:9090');
    assert.is(await reach(acmeClient, db.address, 5432), 'allow', 'client -> db:5432');

    // Egress to web on 8080 only.
    await api('PUT', '/v1/policies/acme/client-out', { apps: ['client'], ingress: [], egress: [{ toApps: ['web'], ports: [8080] }] });
    const egressChain = `HM-E-${shortHash('acme/client')}`;
    await until("n3's chains restrict client's egress", async () => ((await save(n3!)).includes(`-s ${acmeClient.address}/32 -m comment --comment "hivemind: acme/client egress" -j ${egressChain}`) ? true : 'not yet'), 10_000);
    await until('client is denied db', async () => ((await reach(acmeClient, db.address, 5432)) === 'deny' ? true : 'allowed'), 10_000);
    assert.is(await reach(acmeClient, web.address, 8080), 'allow', 'client -> web:8080, allowed by the egress rule');
    assert.is(await reach(acmeClient, web.address, 9090), 'deny', 'client -> web:9090');
    assert.not.ok(await ping(acmeClient, web.address), 'client -> web, ICMP (the rule names ports)');
    assert.ok(await ping(web, acmeClient.address), "web -> client, ICMP: client's ingress is untouched");
    assert.is(await reach(web, db.address, 5432), 'allow', "web's egress is untouched");
    assert.not.ok((await save(n1!)).includes('HM-E-'), 'egress is enforced where the source runs: n1 has no egress chain');
    const tested = (await api('GET', '/v1/policies/test?from=acme/client&to=acme/db&port=5432')) as { verdict: string; reason: string };
    assert.equal(tested.verdict, 'deny');
    assert.match(tested.reason, /egress: no egress rule of policy acme\/client-out lets acme\/client reach acme\/db on 5432/);
    const allowed = (await api('GET', '/v1/policies/test?from=acme/client&to=acme/web&port=8080')) as { verdict: string; egress?: string };
    assert.equal([allowed.verdict, allowed.egress], ['allow', 'egress: policy acme/client-out egress rule 1']);

    // An egress rule by CIDR: db's address on 5432.
    await api('PUT', '/v1/policies/acme/client-out', { apps: ['client'], ingress: [], egress: [{ toApps: ['web'], ports: [8080] }, { toCidrs: [`${db.address}/32`], ports: [5432] }] });
    await until('client reaches db by the CIDR rule', async () => ((await reach(acmeClient, db.address, 5432)) === 'allow' ? true : `denied: ${lastDenial}`), 10_000);
    assert.is(await reach(acmeClient, web.address, 9090), 'deny', 'client -> web:9090, still');

    // The policy deleted: everything again, and the egress chain is gone.
    await api('DELETE', '/v1/policies/acme/client-out');
    await until('client reaches web:9090 again', async () => ((await reach(acmeClient, web.address, 9090)) === 'allow' ? true : 'denied'), 10_000);
    assert.not.ok((await save(n3!)).includes(egressChain), "n3's egress chain is deleted");

    await api('DELETE', '/v1/apps/acme/web');
    await api('DELETE', '/v1/apps/acme/db');
    await api('DELETE', '/v1/apps/acme/client');
    await until('the containers stop', async () => (sleepPids(Object.values(SLEEP)).length === 0 ? true : `${sleepPids(Object.values(SLEEP)).length} still run`), 60_000);
  });
});

test.run();
