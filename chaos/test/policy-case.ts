/**
 * Network policies enforced across hosts (a case of
 * `network-hosts.test.ts`). Tenant acme's `web` (busybox nc listeners on 8080
 * and 9090) runs on n1, acme's `client` on n3, tenant evil's `probe` on n2.
 * By overlay address:
 *   - by default acme's client reaches web, evil's probe does not (nor
 *     does web reach probe: both ways);
 *   - a policy letting tenant evil into web on 8080: probe reaches 8080,
 *     not 9090, not by ICMP; client (not allowed by the policy) no longer;
 *   - a rule deleted by hand on n1 (the policy chain flushed, the jump from
 *     FORWARD deleted) is repaired, and counted in the metric;
 *   - the policy deleted: probe is denied again, the policy's chain is gone.
 * The overlay addresses come from the instances' endpoints in the state
 * (InstanceStatus.endpoint, reported by the executor).
 */
import * as assert from 'uvu/assert';
import { shortHash } from '../../src/network/policy-plan.js';
import { command } from '../network.js';
import { until } from './host-agents.js';
import { containersOf, endpointsReported, lastDenial, metricAbove, metricValue, ping, reach, tableOf, STOP_GRACE_LINE, type NetworkCase } from './network-probes.js';

/** The containers' commands end in `sleep <these>`: unique, so the test finds their processes (and kills strays). */
const SLEEP = { web: '3621', client: '3622', probe: '3623' } as const;

export const policyCase: NetworkCase = {
  title: 'tenant B reaches tenant A only once a policy allows it, only on its port; a rule deleted by hand is repaired',
  sleepSeconds: Object.values(SLEEP),
  runcApps: [{ tenant: 'acme', app: 'web' }, { tenant: 'acme', app: 'client' }, { tenant: 'evil', app: 'probe' }],
  async body(cluster) {
    const { api, image, network } = cluster;
    await api('PUT', '/v1/tenants/acme', {});
    await api('PUT', '/v1/tenants/evil', {});
    const service = (name: string, node: string, command: string[]): string[] => [`  ${name}:`, `    image: ${image.name}`, `    command: ${JSON.stringify(command)}`, STOP_GRACE_LINE, '    deploy:', '      replicas: 1', `      placement: { constraints: ["node.id == ${node}"] }`];
    // One listening socket for the container's life (busybox nc -ll -e: a child per connection): a loop of one-shot listeners refused connections between two.
    const listen = (port: number): string => `nc -ll -p ${port} -e /bin/busybox echo ok &`;
    const serve = `${listen(8080)} ${listen(9090)} exec sleep ${SLEEP.web}`;
    const acme = ['services:', ...service('web', 'n1', ['sh', '-c', serve]), ...service('client', 'n3', ['sh', '-c', `exec sleep ${SLEEP.client}`]), ''].join('\n');
    const evil = ['services:', ...service('probe', 'n2', ['sh', '-c', `exec sleep ${SLEEP.probe}`]), ''].join('\n');
    await api('POST', '/v1/deploy', { fileName: 'acme.yaml', content: acme, tenant: 'acme' });
    await api('POST', '/v1/deploy', { fileName: 'evil.yaml', content: evil, tenant: 'evil' });

    const [web] = await containersOf(cluster, SLEEP.web, 1);
    const [acmeClient] = await containersOf(cluster, SLEEP.client, 1);
    const [probe] = await containersOf(cluster, SLEEP.probe, 1);
    // Enforcement needs the addresses in the state: wait until every instance reported its endpoint.
    await endpointsReported(cluster, [web!.address, acmeClient!.address, probe!.address]);
    const n1 = network.hosts[0]!;
    const save = (): Promise<string> => tableOf(n1, 'filter');
    await until("n1's chains protect web", async () => ((await save()).includes(`-d ${web!.address}/32`) ? true : 'not yet'), 15_000);

    // The default: one tenant reaches itself, across hosts; the other tenant is denied, both ways.
    await until('acme client reaches web', async () => ((await reach(acmeClient!, web!.address, 8080)) === 'allow' ? true : `denied: ${lastDenial()}`), 15_000);
    assert.is(await reach(probe!, web!.address, 8080), 'deny', 'evil probe -> acme web');
    assert.not.ok(await ping(probe!, web!.address), 'evil probe -> acme web, ICMP');
    assert.not.ok(await ping(web!, probe!.address), 'acme web -> evil probe, ICMP (both ways)');
    assert.ok(await ping(acmeClient!, web!.address), 'acme client -> acme web, ICMP');

    // A policy lets tenant evil into web on 8080, and only there.
    await api('PUT', '/v1/policies/acme/web-from-evil', { apps: ['web'], ingress: [{ fromTenants: ['evil'], ports: [8080] }] });
    await until('evil probe reaches web on 8080', async () => ((await reach(probe!, web!.address, 8080)) === 'allow' ? true : `denied: ${lastDenial()}`), 10_000);
    assert.is(await reach(probe!, web!.address, 9090), 'deny', 'evil probe -> web:9090');
    assert.not.ok(await ping(probe!, web!.address), 'evil probe -> web, ICMP');
    assert.is(await reach(acmeClient!, web!.address, 8080), 'deny', 'once selected, web accepts only what the policy allows');

    // Drift: the policy chain flushed and the jump from FORWARD deleted by hand, on n1; both come back.
    const policyChain = `HM-P-${shortHash('acme/web-from-evil')}`;
    const before = await save();
    assert.ok(before.includes(`-A ${policyChain} -s ${probe!.address}/32 -p tcp -m multiport --dports 8080`), before);
    const repairsBefore = metricValue(await cluster.text(0, '/metrics'), 'hivemind_network_policy_repairs_total');
    await command('ip', ['netns', 'exec', n1.namespace, 'iptables', '-w', '-F', policyChain]);
    await command('ip', ['netns', 'exec', n1.namespace, 'iptables', '-w', '-D', 'FORWARD', '-m', 'comment', '--comment', 'hivemind: network policies', '-j', 'HIVEMIND-POLICY']);
    await until('the chains are repaired', async () => {
      const now = await save();
      return now.includes(`-A ${policyChain} -s ${probe!.address}/32`) && now.includes('-j HIVEMIND-POLICY') ? true : 'not yet';
    }, 15_000);
    assert.is(await reach(probe!, web!.address, 8080), 'allow', 'after the repair');
    await metricAbove(cluster, 0, 'hivemind_network_policy_repairs_total', repairsBefore);

    // The policy deleted: denied again, and its chain is gone.
    await api('DELETE', '/v1/policies/acme/web-from-evil');
    await until('evil probe is denied again', async () => ((await reach(probe!, web!.address, 8080)) === 'deny' ? true : 'allowed'), 10_000);
    assert.not.ok((await save()).includes(policyChain), 'the policy chain is deleted');
    assert.is(await reach(acmeClient!, web!.address, 8080), 'allow');
  },
};
