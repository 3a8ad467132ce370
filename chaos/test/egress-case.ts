/**
 * Egress policies enforced across hosts (a case of `network-hosts.test.ts`).
 * Tenant acme's `web` (busybox nc listeners on 8080 and 9090) runs on n1,
 * acme's `db` (listener on 5432) on n2, acme's `client` on n3. By overlay
 * address:
 *   - by default client reaches web on both ports and db;
 *   - a policy giving client egress to web on 8080 only (and no ingress
 *     rule): client reaches web:8080, not web:9090, not db, not web by ICMP;
 *     `policies test` says so and names the egress rule; web still reaches
 *     client (client's ingress is untouched); n3 holds the egress chain,
 *     n1 none;
 *   - an egress rule by CIDR (db's address, 5432) added: client reaches db;
 *   - the policy deleted: client reaches everything again, n3's chain is gone.
 */
import * as assert from 'uvu/assert';
import { shortHash } from '../../src/network/policy-plan.js';
import { until } from './host-agents.js';
import { admitted, containersOf, endpointsReported, lastDenial, ping, reach, tableOf, STOP_GRACE_LINE, type NetworkCase } from './network-probes.js';

/** The containers' commands end in `sleep <these>`: unique, so the test finds their processes (and kills strays). */
const SLEEP = { web: '3661', db: '3662', client: '3663' } as const;

export const egressCase: NetworkCase = {
  title: 'an app whose egress a policy restricts reaches only what its egress rules allow; its ingress and other apps are untouched',
  sleepSeconds: Object.values(SLEEP),
  runcApps: [{ tenant: 'acme', app: 'web' }, { tenant: 'acme', app: 'db' }, { tenant: 'acme', app: 'client' }],
  async body(cluster) {
    const { api, image, network } = cluster;
    await api('PUT', '/v1/tenants/acme', {});
    const service = (name: string, node: string, command: string[]): string[] => [`  ${name}:`, `    image: ${image.name}`, `    command: ${JSON.stringify(command)}`, STOP_GRACE_LINE, '    deploy:', '      replicas: 1', `      placement: { constraints: ["node.id == ${node}"] }`];
    // One listening socket for the container's life (busybox nc -ll -e: a child per connection): a loop of one-shot listeners refused connections between two.
    const listen = (port: number): string => `nc -ll -p ${port} -e /bin/busybox echo ok &`;
    const acme = [
      'services:',
      ...service('web', 'n1', ['sh', '-c', `${listen(8080)} ${listen(9090)} exec sleep ${SLEEP.web}`]),
      ...service('db', 'n2', ['sh', '-c', `${listen(5432)} exec sleep ${SLEEP.db}`]),
      ...service('client', 'n3', ['sh', '-c', `exec sleep ${SLEEP.client}`]),
      '',
    ].join('\n');
    await api('POST', '/v1/deploy', { fileName: 'acme.yaml', content: acme, tenant: 'acme' });

    const [web] = await containersOf(cluster, SLEEP.web, 1);
    const [db] = await containersOf(cluster, SLEEP.db, 1);
    const [acmeClient] = await containersOf(cluster, SLEEP.client, 1);
    // Enforcement needs the addresses in the state: wait until every instance reported its endpoint.
    await endpointsReported(cluster, [web!.address, db!.address, acmeClient!.address]);
    const [n1, , n3] = network.hosts;

    // The default: the tenant's apps reach each other, across hosts (once every host's tenant chain knows them).
    for (const host of network.hosts) await admitted(host, [web!.address, db!.address, acmeClient!.address]);
    await until('client reaches web', async () => ((await reach(acmeClient!, web!.address, 8080)) === 'allow' ? true : `denied: ${lastDenial()}`), 15_000);
    assert.is(await reach(acmeClient!, web!.address, 9090), 'allow', 'client -> web:9090');
    assert.is(await reach(acmeClient!, db!.address, 5432), 'allow', 'client -> db:5432');

    // Egress to web on 8080 only.
    await api('PUT', '/v1/policies/acme/client-out', { apps: ['client'], ingress: [], egress: [{ toApps: ['web'], ports: [8080] }] });
    const egressChain = `HM-E-${shortHash('acme/client')}`;
    await until("n3's chains restrict client's egress", async () => ((await tableOf(n3!, 'filter')).includes(`-s ${acmeClient!.address}/32 -m comment --comment "hivemind: acme/client egress" -j ${egressChain}`) ? true : 'not yet'), 10_000);
    await until('client is denied db', async () => ((await reach(acmeClient!, db!.address, 5432)) === 'deny' ? true : 'allowed'), 10_000);
    assert.is(await reach(acmeClient!, web!.address, 8080), 'allow', 'client -> web:8080, allowed by the egress rule');
    assert.is(await reach(acmeClient!, web!.address, 9090), 'deny', 'client -> web:9090');
    assert.not.ok(await ping(acmeClient!, web!.address), 'client -> web, ICMP (the rule names ports)');
    assert.ok(await ping(web!, acmeClient!.address), "web -> client, ICMP: client's ingress is untouched");
    assert.is(await reach(web!, db!.address, 5432), 'allow', "web's egress is untouched");
    assert.not.ok((await tableOf(n1!, 'filter')).includes('HM-E-'), 'egress is enforced where the source runs: n1 has no egress chain');
    const tested = (await api('GET', '/v1/policies/test?from=acme/client&to=acme/db&port=5432')) as { verdict: string; reason: string };
    assert.equal(tested.verdict, 'deny');
    assert.match(tested.reason, /egress: no egress rule of policy acme\/client-out lets acme\/client reach acme\/db on 5432/);
    const allowed = (await api('GET', '/v1/policies/test?from=acme/client&to=acme/web&port=8080')) as { verdict: string; egress?: string };
    assert.equal([allowed.verdict, allowed.egress], ['allow', 'egress: policy acme/client-out egress rule 1']);

    // An egress rule by CIDR: db's address on 5432.
    await api('PUT', '/v1/policies/acme/client-out', { apps: ['client'], ingress: [], egress: [{ toApps: ['web'], ports: [8080] }, { toCidrs: [`${db!.address}/32`], ports: [5432] }] });
    await until('client reaches db by the CIDR rule', async () => ((await reach(acmeClient!, db!.address, 5432)) === 'allow' ? true : `denied: ${lastDenial()}`), 10_000);
    assert.is(await reach(acmeClient!, web!.address, 9090), 'deny', 'client -> web:9090, still');

    // The policy deleted: everything again, and the egress chain is gone.
    await api('DELETE', '/v1/policies/acme/client-out');
    await until('client reaches web:9090 again', async () => ((await reach(acmeClient!, web!.address, 9090)) === 'allow' ? true : 'denied'), 10_000);
    assert.not.ok((await tableOf(n3!, 'filter')).includes(egressChain), "n3's egress chain is deleted");
  },
};
