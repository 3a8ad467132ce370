/**
 * The overlay across hosts (a case of `network-hosts.test.ts`): one busybox
 * container per host; each pings every other by overlay address from its
 * own namespace, every address in its node's slice of its tenant's network. `hmvx0` learns nothing
 * and holds one forwarding entry per peer, and one deleted by hand comes
 * back.
 *
 * Images across the cluster, on the way: the suite imports the image on n1
 * only, so the other two nodes start their containers from the image they
 * fetched from a peer over the peer port (no registry holds it), and keep
 * it under the same name and digest as n1.
 */
import * as assert from 'uvu/assert';
import { containsAddress, parseCidr, parseIpv4 } from '../../src/state/ipam.js';
import { command } from '../network.js';
import { until } from './host-agents.js';
import { admitted, containersOf, endpointsReported, STOP_GRACE_LINE, type NetworkCase } from './network-probes.js';

const APP = 'overlay-probe';
/** The containers' command: unique, so the test finds their processes (and kills strays). */
const SLEEP_SECONDS = '3617';

export const overlayCase: NetworkCase = {
  title: 'containers on three hosts reach each other by overlay address; a forwarding entry deleted by hand comes back',
  sleepSeconds: [SLEEP_SECONDS],
  runcApps: [{ tenant: 'default', app: APP }],
  async body(cluster) {
    const { api, image, network, nodes: agents, client } = cluster;
    const imagesOn = async (origin: string): Promise<{ name: string; digest: string }[]> => {
      const answer = await client.call(origin, 'GET', '/v1/images', undefined, 5000);
      assert.ok(answer.kind === 'answer' && answer.status === 200, JSON.stringify(answer));
      return (answer as { body: { images: { name: string; digest: string }[] } }).body.images;
    };
    const held = (await imagesOn(agents[0]!.origin)).find((entry) => entry.name === image.name);
    assert.ok(held !== undefined, 'n1 holds the image');
    const { nodes } = (await api('GET', '/v1/nodes')) as { nodes: { id: string; status: string; subnet?: string }[] };
    const subnets = nodes.filter((node) => node.status === 'up').map((node) => node.subnet!);
    assert.is(new Set(subnets).size, network.hosts.length, `distinct subnets: ${subnets.join(', ')}`);

    const content = ['services:', `  ${APP}:`, `    image: ${image.name}`, `    command: ["sleep", "${SLEEP_SECONDS}"]`, STOP_GRACE_LINE, '    deploy:', '      replicas: 3', '    x-hivemind: { max_per_node: 1 }', ''].join('\n');
    await api('POST', '/v1/deploy', { fileName: `${APP}.yaml`, content, tenant: 'default' });
    const containers = await containersOf(cluster, SLEEP_SECONDS, 3);
    for (const agent of agents.slice(1)) {
      const fetched = (await imagesOn(agent.origin)).find((entry) => entry.name === image.name);
      assert.is(fetched?.digest, held.digest, `${agent.name} runs from the image it fetched from a peer, the same as n1's`);
    }
    // On the tenant's network (the implicit `default` tenant's `default`, made by its first deploy): one container in each node's slice of it.
    const listing = (await api('GET', '/v1/network')) as { networks: { tenant: string; name: string; slices: { node: string; cidr: string }[] }[] };
    const slices = listing.networks.find((entry) => entry.tenant === 'default' && entry.name === 'default')?.slices ?? [];
    const sliceOf = (address: string): string | undefined =>
      slices.find((slice) => {
        const parsed = parseCidr(slice.cidr);
        return parsed.ok && containsAddress(parsed.network, parseIpv4(address)!);
      })?.cidr;
    assert.is(new Set(containers.map((container) => sliceOf(container.address))).size, 3, `one container in each node's slice of default/default: ${containers.map((container) => container.address).join(', ')} in ${JSON.stringify(slices)}`);
    assert.ok(containers.every((container) => sliceOf(container.address) !== undefined), `every container in a slice: ${JSON.stringify(slices)}`);

    // Tenant isolation lets traffic through only between addresses the state holds: wait for every endpoint report.
    await endpointsReported(cluster, containers.map((container) => container.address));
    // Each node's tenant chain lets every one of them in: the reports applied and the rules written (a reconcile can take seconds on a loaded machine).
    for (const host of network.hosts) await admitted(host, containers.map((container) => container.address));
    // Every container reaches every other, across hosts.
    for (const from of containers) {
      for (const to of containers) {
        if (from === to) continue;
        await until(`${from.address} to reach ${to.address}`, () => command('ip', ['netns', 'exec', from.namespace, '/bin/busybox', 'ping', '-c', '1', '-W', '1', to.address]).then(() => true, (error: Error) => error.message), 5000);
      }
    }

    // The VXLAN device: no learning, one forwarding entry per peer; a deleted one is repaired.
    const host = network.hosts[0]!;
    const details = await command('ip', ['-n', host.namespace, '-d', 'link', 'show', 'hmvx0']);
    assert.ok(details.includes('nolearning'), details);
    const forwarding = (): Promise<{ mac: string; dst: string }[]> =>
      command('ip', ['netns', 'exec', host.namespace, 'bridge', '-j', 'fdb', 'show', 'dev', 'hmvx0']).then((text) => (JSON.parse(text) as { mac: string; dst?: string }[]).filter((entry): entry is { mac: string; dst: string } => entry.dst !== undefined));
    const entries = await forwarding();
    assert.equal(entries.map((entry) => entry.dst).sort(), network.hosts.slice(1).map((peer) => peer.address).sort());
    await command('ip', ['netns', 'exec', host.namespace, 'bridge', 'fdb', 'del', entries[0]!.mac, 'dev', 'hmvx0', 'self']);
    await until('the deleted forwarding entry comes back', async () => ((await forwarding()).length === 2 ? true : 'still missing'), 15_000);
  },
};
