/**
 * The routing mesh across hosts: three network namespaces as hosts (the
 * chaos harness's TestNetwork), each a real agent with its own containerd,
 * as in service.test.ts. Tenant acme's `web` publishes 8080 (target 8000) and
 * runs two instances, on n2 and n3: busybox httpd whose CGI script answers
 * with the instance's name and the client address it sees (REMOTE_ADDR).
 * The client is the harness itself (10.213.0.1, outside the cluster):
 *   - port 8080 of every host answers, n1 included (no instance there);
 *   - from n1 and from n2 (one instance local, one remote) the answers come
 *     from both instances, each several times;
 *   - every answer names the harness's own address: the client's address
 *     is kept, also where the instance is on another host than the one the
 *     client connected to (the way back through the entry host);
 *   - n2's mesh rule back to n1 deleted by hand comes back (the repair
 *     metric counts it), and n1 reaches n2's instance again;
 *   - web deleted: the published-port chains are gone from every host.
 *
 * Teardown, also on failure: agents stopped, then whatever is left killed
 * and removed (container processes, their namespaces and the warm pool's,
 * the hosts' namespaces with their bridges, VXLAN devices, rules, tables and
 * iptables chains, the data folder). Needs root, iproute2, iptables,
 * containerd, runc, the CNI plugins and busybox; skipped otherwise, saying
 * why.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { get } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { request } from 'undici';
import { MESH_CHAIN, MESH_RULE_PRIORITY } from '../../src/network/mesh-plan.js';
import { PUBLISHED_CHAIN, publishedChainName } from '../../src/network/service-plan.js';
import { buildBusyboxImage } from '../../src/executor/containerd/oci-layout.js';
import { skipReason } from '../../src/executor/containerd/test/harness.js';
import { ApiClient, clusterCaBundle } from '../http.js';
import { dataDirApiAgent } from '../../src/api/tls.js';
import { command, HARNESS_ADDRESS, missingPrerequisite, rangeInUse, removeLeftovers, TestNetwork, type Host } from '../network.js';
import { holdMachineLock } from '../machine-lock.js';
import { HostAgent, containerNetwork, removeContainerLeftovers, removeRuncLeftovers, sleepPids, until } from './host-agents.js';

/** The containers' commands end in `sleep <this>`: unique, so the test finds their processes (and kills strays). */
const SLEEP_SECONDS = '3641';

/** The apps whose containers the test runs (for removeRuncLeftovers). */
const RUNC_APPS = [{ tenant: 'acme', app: 'web' }];

const unavailable =
  (await missingPrerequisite()) ?? skipReason() ?? (existsSync('/usr/lib/cni/bridge') ? null : 'the CNI plugins are not installed (containernetworking-plugins)');
const meshTest = unavailable === null ? test : test.skip;
if (unavailable !== null) console.log(`skipping the mesh test: ${unavailable}`);

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
    call.on('timeout', () => call.destroy(new Error('no answer within 3 s')));
    call.on('error', (error) => resolve(error.message));
  });
}

/** Asks `address` until both `instances` answered at least 3 times (at most 60 requests); every answer must come back. */
async function spreadOf(address: string, instances: readonly string[]): Promise<Map<string, Answer[]>> {
  const reached = new Map<string, Answer[]>();
  const done = (): boolean => instances.every((instance) => (reached.get(instance)?.length ?? 0) >= 3);
  for (let attempt = 0; attempt < 60 && !done(); attempt++) {
    const answer = await ask(address);
    assert.ok(typeof answer !== 'string', `request ${attempt} to ${address}:8080 failed: ${answer as string}`);
    reached.set(answer.instance, [...(reached.get(answer.instance) ?? []), answer]);
  }
  return reached;
}

function save(host: Host, table: 'nat' | 'mangle'): Promise<string> {
  return command('ip', ['netns', 'exec', host.namespace, 'iptables-save', '-t', table]);
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
    lines.push(await run('sh', ['-c', 'for f in all default eth0 hmvx0 hm0; do echo "$f rp_filter $(cat /proc/sys/net/ipv4/conf/$f/rp_filter)"; done; cat /proc/sys/net/ipv4/ip_forward']));
  }
  return lines.join('\n');
}

/** A metric's value in `metrics` (Prometheus text), 0 when absent. */
function metricValue(metrics: string, name: string): number {
  return Number(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\d+)`, 'm').exec(metrics)?.[1] ?? 0);
}

meshTest('a published port answers on every host, spread over instances on other hosts, and the instance sees the client\'s own address', async () => {
  const lock = await holdMachineLock((line) => console.log(line));
  await removeLeftovers();
  removeRuncLeftovers(RUNC_APPS);
  const inUse = await rangeInUse();
  assert.is(inUse, null, `the test range is in use: ${inUse}`);
  const dataRoot = mkdtempSync(join(tmpdir(), 'hmmesh-'));
  const logDirectory = mkdtempSync(join(tmpdir(), 'hmmesh-logs-'));
  let passed = false;
  const token = `hmmesh.${randomBytes(16).toString('hex')}`;
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
    // A CGI script that says who answers and whom it sees ($$: Compose's escape of $). Its header lines end in
    // CR LF (printf writes \r as CR): httpd passes a script's header through, and Node's parser wants HTTP's line ends.
    const script = `#!/bin/sh\\necho "Content-Type: text/plain\\r"\\necho "\\r"\\necho "ok $$(/bin/busybox hostname) $$REMOTE_ADDR"\\n`;
    const serve = `mkdir -p /tmp/www/cgi-bin && printf '${script}' > /tmp/www/cgi-bin/who && /bin/busybox chmod 755 /tmp/www/cgi-bin/who && (httpd -f -p 8000 -h /tmp/www &) && exec sleep ${SLEEP_SECONDS}`;
    const acme = [
      'services:',
      '  web:',
      `    image: ${image.name}`,
      `    command: ${JSON.stringify(['sh', '-c', serve])}`,
      '    ports: ["8080:8000"]',
      '    deploy:',
      '      replicas: 2',
      '      placement: { constraints: ["node.id != n1"], max_replicas_per_node: 1 }',
      '',
    ].join('\n');
    await api('POST', '/v1/deploy', { fileName: 'acme.yaml', content: acme, tenant: 'acme' });

    const webs = await until('2 web containers run', async () => {
      const found = sleepPids([SLEEP_SECONDS]).map(containerNetwork).filter((entry): entry is { namespace: string; address: string } => entry !== undefined);
      for (const entry of found) containerNamespaces.add(entry.namespace);
      return found.length === 2 ? found : `${found.length} found`;
    }, 120_000);
    const instances = await until('both instances report their endpoints', async () => {
      const listed = ((await api('GET', '/v1/instances')) as { instances: { id: string; app: string; node: string; status: { endpoint?: { address: string } } }[] }).instances;
      const addresses = listed.map((instance) => instance.status.endpoint?.address).sort();
      return JSON.stringify(addresses) === JSON.stringify(webs.map((web) => web.address).sort()) ? listed : JSON.stringify(addresses);
    }, 60_000);
    assert.equal(instances.map((instance) => instance.node).sort(), ['n2', 'n3'], 'web runs on the two other hosts');
    const names = instances.map((instance) => instance.id.slice(0, 63)).sort();
    const onNode = (node: string): string => instances.find((instance) => instance.node === node)!.id.slice(0, 63);

    // Every host's nat chains send its own port 8080 to both instances, with the services jump first (CNI's portmap on n2 and n3 inserts its own).
    const webChain = publishedChainName('acme', 'web');
    for (const host of network.hosts) {
      await until(`${host.namespace} publishes 8080 to both instances`, async () => {
        const nat = await save(host, 'nat');
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
    assert.equal([n1View.services.published, n1View.mesh.returnRoutes.map((route) => route.peer).sort()], [1, ["n2", "n3"]]);

    // Each host answers; from n1 (no instance) and from n2 (one local, one remote) both instances answer; every answer sees the harness's address.
    const [n1, n2, n3] = network.hosts;
    await until('n1:8080 answers', async () => {
      const answer = await ask(n1!.address);
      return typeof answer === 'string' ? answer : true;
    }, 20_000).catch(async (error: Error) => {
      console.log(await diagnose(network!.hosts));
      throw error;
    });
    for (const host of [n1!, n2!]) {
      const reached = await spreadOf(host.address, names);
      assert.equal([...reached.keys()].sort(), names, `instances reached through ${host.namespace}: ${JSON.stringify([...reached])}`);
      assert.ok([...reached.values()].every((answers) => answers.length >= 3), `each reached 3 times through ${host.namespace}: ${JSON.stringify([...reached])}`);
      const remotes = new Set([...reached.values()].flat().map((answer) => answer.remote));
      assert.equal([...remotes], [HARNESS_ADDRESS], `the client address the instances saw through ${host.namespace}`);
    }
    const third = await ask(n3!.address);
    assert.ok(typeof third !== 'string' && third.remote === HARNESS_ADDRESS, `through n3: ${JSON.stringify(third)}`);

    // The way back on n2: one mark rule per peer; the one to n1 deleted by hand comes back.
    type Rule = { priority: number; fwmark?: string; fwmask?: string; iif?: string; table: string };
    const rules = async (host: Host): Promise<Rule[]> => (JSON.parse(await command('ip', ['-n', host.namespace, '-j', '-4', 'rule', 'show'])) as Rule[]).filter((rule) => rule.priority === MESH_RULE_PRIORITY);
    const n2Rules = await rules(n2!);
    assert.is(n2Rules.length, 2, `n2's mesh rules: ${JSON.stringify(n2Rules)}`);
    assert.ok(n2Rules.every((rule) => rule.iif === 'hm0'), `n2's mesh rules hold for answers from the bridge alone: ${JSON.stringify(n2Rules)}`);
    assert.ok((await save(n2!, 'mangle')).includes(`-j ${MESH_CHAIN}`), "n2's mangle chain is hooked");
    const n1Subnet = ((await api('GET', '/v1/network')) as { nodes: { id: string; subnet: string }[] }).nodes.find((node) => node.id === 'n1')!.subnet;
    const toN1 = n2Rules.find((rule) => rule.table === String(4_210_000 + Number(n1Subnet.split('.')[2])));
    assert.ok(toN1 !== undefined, `n2 routes back to n1 (${n1Subnet}): ${JSON.stringify(n2Rules)}`);
    await command('ip', ['-n', n2!.namespace, 'rule', 'del', 'priority', String(MESH_RULE_PRIORITY), 'fwmark', `${toN1.fwmark}/${toN1.fwmask}`, 'iif', 'hm0', 'lookup', toN1.table]);
    await until("n2's rule back to n1 is repaired", async () => ((await rules(n2!)).length === 2 ? true : 'not yet'), 15_000);
    const n2Instance = onNode('n2');
    const again = await spreadOf(n1!.address, names);
    assert.ok((again.get(n2Instance)?.length ?? 0) >= 3 && again.get(n2Instance)!.every((answer) => answer.remote === HARNESS_ADDRESS), `n2's instance through n1 after the repair: ${JSON.stringify([...again])}`);
    const metrics = await request(`${nodes[1]!.origin}/metrics`, { dispatcher: dataDirApiAgent(join(dataRoot, 'n1')), headers: { authorization: `Bearer ${token}` } }).then((answer) => answer.body.text());
    assert.ok(metricValue(metrics, 'hivemind_network_mesh_repairs_total') >= 1, metrics.split('\n').filter((line) => line.includes('mesh')).join('; '));
    assert.is(metricValue(metrics, 'hivemind_network_published_ports'), 1);
    assert.is(metricValue(metrics, 'hivemind_network_mesh_return_routes'), 2);

    // The app deleted: the published-port chains are gone from every host.
    await api('DELETE', '/v1/apps/acme/web');
    for (const host of network.hosts) {
      await until(`${host.namespace} drops web's published chain`, async () => {
        const nat = await save(host, 'nat');
        return !nat.includes(webChain) && !nat.includes(PUBLISHED_CHAIN) ? true : 'still there';
      }, 15_000);
    }
    await until('the containers stop', async () => (sleepPids([SLEEP_SECONDS]).length === 0 ? true : `${sleepPids([SLEEP_SECONDS]).length} still run`), 60_000);
    passed = true;
  } finally {
    if (passed) rmSync(logDirectory, { recursive: true, force: true });
    else console.log(`the agents' logs are kept in ${logDirectory}`);
    for (const node of nodes) await node.stop().catch(() => undefined);
    await client.close();
    removeContainerLeftovers(dataRoot, containerNamespaces, [SLEEP_SECONDS]);
    removeRuncLeftovers(RUNC_APPS);
    await network?.destroy().catch(() => undefined);
    await removeLeftovers();
    lock.release();
  }
});

test.run();
