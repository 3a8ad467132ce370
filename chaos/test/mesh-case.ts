/**
 * The routing mesh across hosts (a case of `network-hosts.test.ts`). Tenant
 * acme's `web` publishes 8080 (target 8000) and runs two instances, on n2
 * and n3: busybox httpd whose CGI script answers with the instance's name
 * and the client address it sees (REMOTE_ADDR). The client is the harness
 * itself (10.213.0.1, outside the cluster):
 *   - port 8080 of every host answers, n1 included (no instance there);
 *   - from n1 and from n2 (one instance local, one remote) the answers come
 *     from both instances, each several times;
 *   - every answer names the harness's own address: the client's address
 *     is kept, also where the instance is on another host than the one the
 *     client connected to (the way back through the entry host);
 *   - n2's mesh rule back to n1 deleted by hand comes back (the repair
 *     metric counts it), and n1 reaches n2's instance again;
 *   - web deleted: the published-port chains are gone from every host.
 * When a published port gets no answer, each host's mesh chains, rules,
 * routes, VXLAN counters, neighbours and conntrack entries of the port are
 * printed.
 */
import { get } from 'node:http';
import * as assert from 'uvu/assert';
import { MESH_CHAIN, MESH_RULE_PRIORITY } from '../../src/network/mesh-plan.js';
import { PUBLISHED_CHAIN, publishedChainName } from '../../src/network/service-plan.js';
import { command, HARNESS_ADDRESS, type Host } from '../network.js';
import { until } from './host-agents.js';
import { containersOf, endpointsReported, metricAbove, metricValue, tableOf, STOP_GRACE_LINE, type NetworkCase } from './network-probes.js';

/** The containers' commands end in `sleep <this>`: unique, so the test finds their processes (and kills strays). */
const SLEEP_SECONDS = '3641';

/** What web's CGI script said: the instance's name and the client address it saw. */
interface Answer {
  instance: string;
  remote: string;
}

/** One HTTP request on a new connection to `address:8080` (3 s); its answer, or the reason there is none. */
function ask(address: string): Promise<Answer | string> {
  return new Promise((resolve) => {
    const call = get({ host: address, port: 8080, path: '/cgi-bin/who', agent: false, headers: { connection: 'close' }, timeout: 3000 }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (body += chunk));
      response.on('end', () => {
        const match = /^ok (\S+) (\S+)/.exec(body.trim());
        // httpd listens on IPv6 and names an IPv4 client as `[::ffff:a.b.c.d]`.
        const remote = match?.[2]!.replace(/^\[::ffff:(.*)\]$/, '$1');
        resolve(response.statusCode === 200 && match && remote !== undefined ? { instance: match[1]!, remote } : `status ${response.statusCode}: ${body.trim()}`);
      });
      response.on('error', (error) => resolve(error.message));
    });
    // Whether the connection was made tells a lost packet from a slow answer; the local port finds the connection in the hosts' conntrack tables.
    let connected = false;
    call.on('socket', (socket) => socket.on('connect', () => (connected = true)));
    call.on('timeout', () => call.destroy(new Error(`no answer within 3 s (${connected ? 'connected' : 'not connected'}, local port ${call.socket?.localPort ?? 'unknown'})`)));
    call.on('error', (error) => resolve(error.message));
  });
}

/** Asks `address` until both `instances` answered at least 3 times (at most 60 requests); every answer must come back (when one does not, the hosts' mesh state is printed). */
async function spreadOf(address: string, instances: readonly string[], hosts: readonly Host[]): Promise<Map<string, Answer[]>> {
  const reached = new Map<string, Answer[]>();
  const done = (): boolean => instances.every((instance) => (reached.get(instance)?.length ?? 0) >= 3);
  for (let attempt = 0; attempt < 60 && !done(); attempt++) {
    const answer = await ask(address);
    if (typeof answer === 'string') console.log(await diagnose(hosts));
    assert.ok(typeof answer !== 'string', `request ${attempt} to ${address}:8080 failed: ${answer as string}`);
    reached.set(answer.instance, [...(reached.get(answer.instance) ?? []), answer]);
  }
  return reached;
}

/** What each host's kernel holds for the mesh, with packet counters: printed when a request gets no answer. */
async function diagnose(hosts: readonly Host[]): Promise<string> {
  const lines: string[] = [];
  for (const host of hosts) {
    const run = (file: string, args: string[]): Promise<string> => command('ip', ['netns', 'exec', host.namespace, file, ...args]).catch((error: Error) => error.message);
    lines.push(`--- ${host.namespace}`);
    lines.push((await run('iptables-save', ['-c', '-t', 'nat'])).split('\n').filter((line) => /HM-|HIVEMIND|CNI-HOSTPORT|PREROUTING/.test(line)).join('\n'));
    lines.push(await run('iptables-save', ['-c', '-t', 'mangle']));
    lines.push((await run('iptables-save', ['-c', '-t', 'filter'])).split('\n').filter((line) => /HM-|HIVEMIND|FORWARD/.test(line)).join('\n'));
    lines.push(await run('ip', ['rule']), await run('ip', ['route', 'show', 'table', 'all']), await run('ip', ['-s', 'link', 'show', 'dev', 'hmvx0']));
    // A neighbour entry with a MAC no port has (an address's last holder) makes its new holder unreachable for seconds.
    lines.push(await run('ip', ['neigh', 'show', 'dev', 'hm0']), await run('bridge', ['fdb', 'show', 'br', 'hm0']));
    lines.push(await run('sh', ['-c', 'for f in all default eth0 hmvx0 hm0; do echo "$f rp_filter $(cat /proc/sys/net/ipv4/conf/$f/rp_filter)"; done; cat /proc/sys/net/ipv4/ip_forward']));
    // The connections of the mesh's ports: which got their NAT and mark, and in what state they are stuck.
    lines.push(await run('sh', ['-c', 'grep -E "port=(8080|8000) " /proc/net/nf_conntrack || true']));
  }
  return lines.join('\n');
}

/** The mesh's ip rules on a host, as `ip -j rule` shows them. */
interface Rule {
  priority: number;
  fwmark?: string;
  fwmask?: string;
  iif?: string;
  table: string;
}

async function meshRules(host: Host): Promise<Rule[]> {
  return (JSON.parse(await command('ip', ['-n', host.namespace, '-j', '-4', 'rule', 'show'])) as Rule[]).filter((rule) => rule.priority === MESH_RULE_PRIORITY);
}

export const meshCase: NetworkCase = {
  title: "a published port answers on every host, spread over instances on other hosts, and the instance sees the client's own address",
  sleepSeconds: [SLEEP_SECONDS],
  runcApps: [{ tenant: 'acme', app: 'web' }],
  async body(cluster) {
    const { api, image, network } = cluster;
    await api('PUT', '/v1/tenants/acme', {});
    // A CGI script that says who answers and whom it sees ($$: Compose's escape of $). Its header lines end in
    // CR LF (printf writes \r as CR): httpd passes a script's header through, and Node's parser wants HTTP's line ends.
    const script = `#!/bin/sh\\necho "Content-Type: text/plain\\r"\\necho "\\r"\\necho "ok $$(/bin/busybox hostname) $$REMOTE_ADDR"\\n`;
    const serve = `mkdir -p /tmp/www/cgi-bin && printf '${script}' > /tmp/www/cgi-bin/who && /bin/busybox chmod 755 /tmp/www/cgi-bin/who && (httpd -f -p 8000 -h /tmp/www &) && exec sleep ${SLEEP_SECONDS}`;
    const acme = [
      'services:',
      '  web:',
      `    image: ${image.name}`,
      `    command: ${JSON.stringify(['sh', '-c', serve])}`,
      STOP_GRACE_LINE,
      '    ports: ["8080:8000"]',
      '    deploy:',
      '      replicas: 2',
      '      placement: { constraints: ["node.id != n1"], max_replicas_per_node: 1 }',
      '',
    ].join('\n');
    await api('POST', '/v1/deploy', { fileName: 'acme.yaml', content: acme, tenant: 'acme' });

    const webs = await containersOf(cluster, SLEEP_SECONDS, 2);
    const instances = await endpointsReported(cluster, webs.map((web) => web.address));
    assert.equal(instances.map((instance) => instance.node).sort(), ['n2', 'n3'], 'web runs on the two other hosts');
    const names = instances.map((instance) => instance.id.slice(0, 63)).sort();
    const onNode = (node: string): string => instances.find((instance) => instance.node === node)!.id.slice(0, 63);

    // Every host's nat chains send its own port 8080 to both instances, with the services jump first (CNI's portmap on n2 and n3 inserts its own).
    const webChain = publishedChainName('acme', 'web');
    for (const host of network.hosts) {
      await until(`${host.namespace} publishes 8080 to both instances`, async () => {
        const nat = await tableOf(host, 'nat');
        const prerouting = nat.split('\n').filter((line) => line.startsWith('-A PREROUTING '));
        return webs.every((web) => nat.includes(`-A ${webChain} -p tcp -m tcp --dport 8080`) && nat.includes(`--to-destination ${web.address}:8000`)) && nat.includes(`-j ${PUBLISHED_CHAIN}`) && prerouting[0]?.endsWith('-j HIVEMIND-SERVICES')
          ? true
          : `PREROUTING: ${prerouting.join('; ')}`;
      }, 20_000);
    }

    // The network routes show the published port and each node's way back.
    const listing = (await api('GET', '/v1/network')) as { published: { tenant: string; app: string; ports: { published: number; target: number }[]; endpoints: number }[] };
    assert.equal(listing.published.map((entry) => [`${entry.tenant}/${entry.app}`, entry.ports.map((port) => `${port.published}:${port.target}`), entry.endpoints]), [['acme/web', ['8080:8000'], 2]]);
    const n1View = (await api('GET', '/v1/network/nodes/n1')) as { services: { published: number }; mesh: { returnRoutes: { peer: string }[] } };
    assert.equal([n1View.services.published, n1View.mesh.returnRoutes.map((route) => route.peer).sort()], [1, ['n2', 'n3']]);

    // Each host answers; from n1 (no instance) and from n2 (one local, one remote) both instances answer; every answer sees the harness's address.
    const [n1, n2, n3] = network.hosts;
    await until('n1:8080 answers', async () => {
      const answer = await ask(n1!.address);
      return typeof answer === 'string' ? answer : true;
    }, 20_000).catch(async (error: Error) => {
      console.log(await diagnose(network.hosts));
      throw error;
    });
    for (const host of [n1!, n2!]) {
      const reached = await spreadOf(host.address, names, network.hosts);
      assert.equal([...reached.keys()].sort(), names, `instances reached through ${host.namespace}: ${JSON.stringify([...reached])}`);
      assert.ok([...reached.values()].every((answers) => answers.length >= 3), `each reached 3 times through ${host.namespace}: ${JSON.stringify([...reached])}`);
      const remotes = new Set([...reached.values()].flat().map((answer) => answer.remote));
      assert.equal([...remotes], [HARNESS_ADDRESS], `the client address the instances saw through ${host.namespace}`);
    }
    const third = await ask(n3!.address);
    assert.ok(typeof third !== 'string' && third.remote === HARNESS_ADDRESS, `through n3: ${JSON.stringify(third)}`);

    // The way back on n2: one mark rule per peer and per bridge answers come from (hm0, and the bridge of each tenant network slice n2 holds: web's is on its tenant's), for answers from the bridges alone; the one to n1 from web's bridge deleted by hand comes back.
    const n2Rules = await meshRules(n2!);
    const bridges = [...new Set(n2Rules.map((rule) => rule.iif ?? 'any'))].sort();
    assert.ok(bridges.includes('hm0') && bridges.every((bridge) => bridge === 'hm0' || /^hmt[0-9a-f]{10}$/.test(bridge)) && bridges.length >= 2, `n2's mesh rules hold for answers from hm0 and its tenant network bridges alone: ${JSON.stringify(n2Rules)}`);
    assert.is(n2Rules.length, 2 * bridges.length, `n2's mesh rules, one per peer and bridge: ${JSON.stringify(n2Rules)}`);
    assert.ok((await tableOf(n2!, 'mangle')).includes(`-j ${MESH_CHAIN}`), "n2's mangle chain is hooked");
    const n1Subnet = ((await api('GET', '/v1/network')) as { nodes: { id: string; subnet: string }[] }).nodes.find((node) => node.id === 'n1')!.subnet;
    const toN1 = n2Rules.find((rule) => rule.iif !== 'hm0' && rule.table === String(4_210_000 + Number(n1Subnet.split('.')[2])));
    assert.ok(toN1 !== undefined, `n2 routes answers from web's bridge back to n1 (${n1Subnet}): ${JSON.stringify(n2Rules)}`);
    const repairsBefore = metricValue(await cluster.text(1, '/metrics'), 'hivemind_network_mesh_repairs_total');
    await command('ip', ['-n', n2!.namespace, 'rule', 'del', 'priority', String(MESH_RULE_PRIORITY), 'fwmark', `${toN1.fwmark}/${toN1.fwmask}`, 'iif', toN1.iif!, 'lookup', toN1.table]);
    await until("n2's rule back to n1 is repaired", async () => ((await meshRules(n2!)).length === n2Rules.length ? true : 'not yet'), 15_000);
    const n2Instance = onNode('n2');
    const again = await spreadOf(n1!.address, names, network.hosts);
    assert.ok((again.get(n2Instance)?.length ?? 0) >= 3 && again.get(n2Instance)!.every((answer) => answer.remote === HARNESS_ADDRESS), `n2's instance through n1 after the repair: ${JSON.stringify([...again])}`);
    const metrics = await metricAbove(cluster, 1, 'hivemind_network_mesh_repairs_total', repairsBefore);
    assert.is(metricValue(metrics, 'hivemind_network_published_ports'), 1);
    assert.is(metricValue(metrics, 'hivemind_network_mesh_return_routes'), 2);

    // The app deleted: the published-port chains are gone from every host.
    await api('DELETE', '/v1/apps/acme/web');
    for (const host of network.hosts) {
      await until(`${host.namespace} drops web's published chain`, async () => {
        const nat = await tableOf(host, 'nat');
        return !nat.includes(webChain) && !nat.includes(PUBLISHED_CHAIN) ? true : 'still there';
      }, 15_000);
    }
  },
};
