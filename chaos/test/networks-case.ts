/**
 * Several networks of one tenant across hosts (a case of
 * `network-hosts.test.ts`; the agents carry every tenant network). One
 * app file declares `front` and
 * `back`; `web` (n2) joins both, `api` (n1) front alone, `db` (n3) back
 * alone, each a busybox nc listener on 8080 naming its app:
 *   - the deploy made both networks (blocks of the pool) and the same file
 *     again changes nothing; the leader gave each node a slice of the
 *     networks its instance joins, and no other;
 *   - web's container has eth0 on front and eth1 on back (its endpoint
 *     reports both addresses), api and db one each;
 *   - web reaches api and db and each reaches web, over the network they
 *     share, across hosts; api and db, which share none, cannot reach each
 *     other (by address either way), nor api web's back address;
 *   - DNS, from inside the containers (their resolv.conf, their node's
 *     server): web's instance name gives api web's front address and db its
 *     back address, web's name gives both its VIP, and through the VIP both
 *     reach web (db over back); api asking for db gets NXDOMAIN (db for api);
 *   - a network made on its own (`PUT /v1/networks`) gets a block of its own;
 *     a network in use is not deleted; a file naming an external network
 *     that does not exist is refused at that service's `networks[N]`.
 */
import * as assert from 'uvu/assert';
import { sleepPids, until } from './host-agents.js';
import { containsAddress, parseCidr, parseIpv4 } from '../../src/state/ipam.js';
import { containersOf, endpointsReported, lastDenial, lastLookupOutput, lookupInside, reach, type Container, STOP_GRACE_LINE, type NetworkCase } from './network-probes.js';

/** The containers' commands end in `sleep <these>`: unique, so the test finds their processes (and kills strays). */
const SLEEP = { web: '3641', api: '3642', db: '3643' } as const;

/** The pid of the one container running `sleep <seconds>`. */
function pidOf(seconds: string): number {
  const [pid] = sleepPids([seconds]);
  assert.ok(pid !== undefined, `a container runs sleep ${seconds}`);
  return pid;
}

export const networksCase: NetworkCase = {
  title: 'two networks of one tenant: an app on both reaches each side, apps on one side alone do not reach each other, DNS answers per network',
  sleepSeconds: Object.values(SLEEP),
  runcApps: [{ tenant: 'shop', app: 'web' }, { tenant: 'shop', app: 'api' }, { tenant: 'shop', app: 'db' }],
  async body(cluster) {
    const { api, image } = cluster;
    await until('the tenant network pool is set', async () => (((await api('GET', '/v1/network')) as { tenantCidr?: string | null }).tenantCidr === '10.224.0.0/12' ? true : 'not yet'), 30_000);
    await api('PUT', '/v1/tenants/shop', {});
    const listen = `nc -ll -p 8080 -e /bin/busybox sh -c 'echo "ok $$HIVEMIND_APP"' &`;
    const service = (name: string, node: string, networks: string, extra: string[] = []): string[] => [
      `  ${name}:`,
      `    image: ${image.name}`,
      `    command: ${JSON.stringify(['sh', '-c', `${listen} exec sleep ${SLEEP[name as keyof typeof SLEEP]}`])}`,
      `    networks: ${networks}`,
      STOP_GRACE_LINE,
      ...extra,
      '    deploy:',
      `      placement: { constraints: ["node.id == ${node}"] }`,
    ];
    const file = ['services:', ...service('web', 'n2', '[front, back]', ['    ports: ["8080"]']), ...service('api', 'n1', '[front]'), ...service('db', 'n3', '[back]'), 'networks:', '  front: {}', '  back: {}', ''].join('\n');
    const deployed = (await api('POST', '/v1/deploy', { fileName: 'shop.yaml', content: file, tenant: 'shop', projectFallback: 'shop' })) as { warnings: string[] };
    assert.equal(deployed.warnings, [], 'the file deploys without a warning');

    type Listing = { networks: { tenant: string; name: string; cidr: string; slices: { node: string; cidr: string }[] }[] };
    const shopNetworks = async (): Promise<Listing['networks']> => ((await api('GET', '/v1/network')) as Listing).networks.filter((entry) => entry.tenant === 'shop');
    const made = await shopNetworks();
    assert.equal(made.map((entry) => entry.name).sort(), ['back', 'default', 'front'], 'the deploy made front and back (default came with the tenant)');
    assert.ok(made.every((entry) => /^10\.2(2[4-9]|3\d)\.\d+\.0\/20$/.test(entry.cidr)), `blocks of the pool: ${JSON.stringify(made)}`);

    const [webContainer] = await containersOf(cluster, SLEEP.web, 1);
    const [apiContainer] = await containersOf(cluster, SLEEP.api, 1);
    const [dbContainer] = await containersOf(cluster, SLEEP.db, 1);
    const instances = (await endpointsReported(cluster, [webContainer!.address, apiContainer!.address, dbContainer!.address])) as unknown as { app: string; node: string; status: { endpoint: { address: string; addresses?: string[] } } }[];
    const endpointOf = (app: string): { address: string; addresses?: string[] } => instances.find((instance) => instance.app === app)!.status.endpoint;
    const inBlock = (address: string, name: string): boolean => {
      const block = parseCidr(made.find((entry) => entry.name === name)!.cidr);
      return block.ok && containsAddress(block.network, parseIpv4(address) ?? -1);
    };
    const web = endpointOf('web');
    assert.ok(web.addresses !== undefined && web.addresses.length === 2 && web.addresses[0] === web.address, `web reports two addresses: ${JSON.stringify(web)}`);
    const [webFront, webBack] = web.addresses as [string, string];
    assert.ok(inBlock(webFront, 'front') && inBlock(webBack, 'back'), `web's eth0 on front, eth1 on back: ${webFront}, ${webBack}`);
    assert.ok(inBlock(endpointOf('api').address, 'front') && endpointOf('api').addresses === undefined, `api on front alone: ${JSON.stringify(endpointOf('api'))}`);
    assert.ok(inBlock(endpointOf('db').address, 'back'), `db on back: ${endpointOf('db').address}`);
    // The slices: front on n1 and n2, back on n2 and n3, none elsewhere.
    await until('the slices of front and back are where their instances are', async () => {
      const slices = Object.fromEntries((await shopNetworks()).map((entry) => [entry.name, entry.slices.map((slice) => slice.node).sort().join(',')]));
      return slices.front === 'n1,n2' && slices.back === 'n2,n3' ? true : JSON.stringify(slices);
    }, 20_000);

    // Reachability over the shared network, across hosts (waits for each side's chains to know the addresses).
    const expectReach = async (from: Container, address: string, what: string): Promise<void> => {
      await until(what, async () => ((await reach(from, address, 8080)) === 'allow' ? true : `denied (${lastDenial()})`), 30_000);
    };
    await expectReach(apiContainer!, webFront, 'api reaches web over front');
    await expectReach(dbContainer!, webBack, 'db reaches web over back');
    await expectReach(webContainer!, endpointOf('api').address, 'web reaches api over front');
    await expectReach(webContainer!, endpointOf('db').address, 'web reaches db over back');
    assert.is(await reach(apiContainer!, endpointOf('db').address, 8080), 'deny', 'api -> db: they share no network');
    assert.is(await reach(dbContainer!, endpointOf('api').address, 8080), 'deny', 'db -> api');
    assert.is(await reach(apiContainer!, webBack, 8080), 'deny', "api -> web's back address: api is not on back");

    // DNS from inside the containers: web's instance by its front address to api, by its back address to db; its VIP to both.
    const resolves = async (pid: number, name: string, wanted: string): Promise<void> => {
      const found = await until(`${name} resolves to ${wanted}`, async () => {
        const answer = await lookupInside(pid, name);
        return Array.isArray(answer) && answer.length === 1 && answer[0] === wanted ? answer : `${JSON.stringify(answer)}: ${lastLookupOutput()}`;
      }, 20_000);
      assert.equal(found, [wanted]);
    };
    await resolves(pidOf(SLEEP.api), '0.web.shop.hivemind', webFront);
    await resolves(pidOf(SLEEP.db), '0.web.shop.hivemind', webBack);
    const vip = ((await api('GET', '/v1/apps/shop/web')) as { vip?: string }).vip;
    assert.ok(vip !== undefined && vip.startsWith('10.211.'), `web's VIP: ${vip}`);
    await resolves(pidOf(SLEEP.api), 'web.shop.hivemind', vip);
    await resolves(pidOf(SLEEP.db), 'web.shop.hivemind', vip);
    // The VIP takes each client to web over the network they share: db (back only) is sent to web's back address.
    await expectReach(apiContainer!, vip, 'api reaches web through its VIP (front)');
    await expectReach(dbContainer!, vip, 'db reaches web through its VIP (back)');
    assert.is(await lookupInside(pidOf(SLEEP.api), 'db.shop.hivemind'), 'NXDOMAIN', 'api does not see db');
    assert.is(await lookupInside(pidOf(SLEEP.db), 'api.shop.hivemind'), 'NXDOMAIN', 'db does not see api');
    assert.equal(await lookupInside(pidOf(SLEEP.web), 'db.shop.hivemind'), [endpointOf('db').address], 'web sees db');

    // The same file again changes nothing.
    const again = (await api('POST', '/v1/deploy', { fileName: 'shop.yaml', content: file, tenant: 'shop', projectFallback: 'shop' })) as { apps: { unchanged?: boolean }[] };
    assert.ok(again.apps.every((entry) => entry.unchanged === true), `unchanged: ${JSON.stringify(again.apps)}`);
    assert.equal((await shopNetworks()).map((entry) => [entry.name, entry.cidr]), made.map((entry) => [entry.name, entry.cidr]), 'the networks as they were');

    // A network of its own (PUT /v1/networks), named external by a file; the refusals say why.
    const refusal = async (method: 'PUT' | 'POST' | 'DELETE', path: string, body?: unknown): Promise<string> => {
      try {
        await api(method, path, body);
      } catch (error) {
        return (error as Error).message;
      }
      throw new Error(`${method} ${path} was accepted`);
    };
    const ops = (await api('PUT', '/v1/networks/shop/ops', {})) as { cidr: string };
    assert.ok(/^10\.2(2[4-9]|3\d)\.\d+\.0\/20$/.test(ops.cidr) && !made.some((entry) => entry.cidr === ops.cidr), `ops has a block of its own: ${ops.cidr}`);
    assert.match(await refusal('DELETE', '/v1/networks/shop/back'), /"status":409/, 'back is in use');
    const admin = ['services:', '  admin:', `    image: ${image.name}`, '    command: ["sleep", "1"]', '    networks: [ops, gone]', 'networks:', '  ops: { external: true }', '  gone: { external: true }', ''].join('\n');
    const missing = await refusal('POST', '/v1/deploy', { fileName: 'admin.yaml', content: admin, tenant: 'shop' });
    assert.match(missing, /"status":404.*"field":"services\.admin\.networks\[1\]"/, missing);
    await api('DELETE', '/v1/networks/shop/ops');

    for (const name of ['web', 'api', 'db']) await api('DELETE', `/v1/apps/shop/${name}`);
    await until('the slices of shop are given back', async () => ((await shopNetworks()).every((entry) => entry.slices.length === 0) ? true : JSON.stringify(await shopNetworks())), 30_000);
    await api('DELETE', '/v1/tenants/shop');
  },
};
