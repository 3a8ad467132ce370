// The DNS server of a real agent (in process), with real process apps,
// asked over real UDP and TCP on loopback: app and SRV names, a process app
// resolving through HIVEMIND_DNS (with --dns-port 0: the bound port), an
// exited instance leaving the answers as soon as its status is applied,
// NXDOMAIN in the zone, forwarding with a cache to an upstream resolver the
// test runs, and the containers' listener on the gateway of the node network
// file (loopback addresses stand in for the bridge's; needs root for port 53).
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { getuid } from 'node:process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import dns2 from 'dns2';
import { fetch } from 'undici';
import { dataDirApiAgent } from '../../api/tls.js';
import { startAgent, type Agent } from '../../agent/agent.js';
import { eventually, killWorkloadsUnder } from '../../agent/test/harness.js';
import { resolveConfig } from '../../node/config.js';
import { writeNodeNetwork } from '../../node/node-network.js';
import { CONTAINER_DNS_PORT } from '../component.js';

const { Packet, UDPClient, TCPClient } = dns2;
type DnsPacket = InstanceType<typeof Packet>;

const directory = mkdtempSync(join(tmpdir(), 'hivemind-dns-'));
// The apps run as the tenant's own user: they pass through this folder and write only into `shared`.
chmodSync(directory, 0o711);
const shared = join(directory, 'shared');
mkdirSync(shared);
chmodSync(shared, 0o1777);
let agent: Agent;
let dnsPort = 0;
let token = '';
let upstreamQueries = 0;
let upstream: ReturnType<typeof dns2.createUDPServer>;

async function call(method: string, path: string, json?: unknown): Promise<{ status: number; body: any }> {
  const response = await fetch(`https://${agent.apiAddress}${path}`, {
    dispatcher: dataDirApiAgent(join(directory, 'solo')),
    method,
    headers: { authorization: `Bearer ${token}`, ...(json === undefined ? {} : { 'content-type': 'application/json' }) },
    body: json === undefined ? undefined : JSON.stringify(json),
    signal: AbortSignal.timeout(15_000),
  });
  return { status: response.status, body: await response.json() };
}

function ask(name: string, type: string, transport: 'udp' | 'tcp' = 'udp', server = { host: '127.0.0.1', port: dnsPort }): Promise<DnsPacket> {
  const client = transport === 'udp' ? UDPClient({ dns: server.host, port: server.port }) : TCPClient({ dns: server.host, port: server.port });
  return client(name, type) as Promise<DnsPacket>;
}

// web: a process app that waits for its stop file, then exits (and is not restarted);
// probe: resolves web's SRV name through HIVEMIND_DNS until both instances are in it, and writes what it got.
const APP = (stopDir: string, resultPath: string): string => `
services:
  web:
    command: ["sh", "-c", "while [ ! -e ${stopDir}/stop-$$HIVEMIND_SLOT ]; do sleep 0.1; done; exit 3"]
    ports: ["80"]
    restart: "no"
    deploy:
      replicas: 2
  probe:
    command:
      - node
      - -e
      - >-
        const { Resolver } = require('node:dns').promises;
        const resolver = new Resolver();
        resolver.setServers([process.env.HIVEMIND_DNS]);
        const attempt = () => resolver.resolveSrv('_80._tcp.web.default.hivemind').then(
        (records) => records.length === 2 ? require('node:fs').writeFileSync('${resultPath}', JSON.stringify({ server: process.env.HIVEMIND_DNS, records })) : setTimeout(attempt, 100),
        () => setTimeout(attempt, 100));
        attempt();
        setInterval(() => {}, 1000);
    restart: "no"
`;

test.before(async () => {
  upstream = dns2.createUDPServer((request, send) => {
    upstreamQueries++;
    const response = Packet.createResponseFromRequest(request);
    const question = request.questions[0]!;
    if (question.name === 'upstream.test') response.answers.push({ name: question.name, type: Packet.TYPE.A, class: Packet.CLASS.IN, ttl: 300, address: '192.0.2.7' } as never);
    else response.header.rcode = 3;
    send(response);
  });
  await upstream.listen(0, '127.0.0.1');
  process.env.HIVEMIND_DNS_UPSTREAMS = `127.0.0.1:${(upstream.address() as { port: number }).port}`;
  // Port 0: the DNS component binds a free port, and process apps must get that one in HIVEMIND_DNS.
  const resolved = resolveConfig({ name: 'solo', dataDir: join(directory, 'solo'), bind: '127.0.0.1', apiPort: 0, peerPort: 0, gossipPort: 0, dnsPort: 0, proxyPort: 0, tickMs: 20 }, {}, { hostname: 'test', externalIpv4: [], cwd: directory });
  if (!resolved.ok) throw new Error(JSON.stringify(resolved.problems));
  const printed: string[] = [];
  const logged: string[] = [];
  agent = await startAgent(resolved.config, { mode: 'bootstrap-or-restart', print: (line) => printed.push(line), log: (line) => logged.push(line) });
  token = printed.find((line) => line.startsWith('join token: '))!.slice('join token: '.length);
  const serving = logged.map((line) => / serving the hivemind zone on 127\.0\.0\.1:(\d+) /.exec(line)).find((match) => match !== null);
  dnsPort = Number(serving?.[1]);
  assert.ok(dnsPort > 0, 'the DNS component bound a port and said which');
});

test.after(async () => {
  await agent?.stop();
  killWorkloadsUnder(directory);
  upstream?.close();
  delete process.env.HIVEMIND_DNS_UPSTREAMS;
  rmSync(directory, { recursive: true, force: true });
});

test('app names over UDP and TCP, SRV with host ports, a process app resolving through HIVEMIND_DNS, and an exited instance leaving the answers', async () => {
  const stopDir = join(shared, 'stops');
  const resultPath = join(shared, 'probe.json');
  const deployed = await call('POST', '/v1/deploy', { fileName: 'dns.yaml', content: APP(stopDir, resultPath) });
  assert.is(deployed.status, 200, JSON.stringify(deployed.body));
  mkdirSync(stopDir, { recursive: true });
  const running = await eventually('both web instances running with endpoints', async () => {
    const instances = (await call('GET', '/v1/instances?tenant=default&app=web')).body.instances as { id: string; slot: number; status: { state: string; endpoint?: { address: string; ports: { port: number }[] } } }[];
    return instances.length === 2 && instances.every((entry) => entry.status.state === 'running' && entry.status.endpoint !== undefined) ? instances : undefined;
  });
  for (const entry of running) assert.is(entry.status.endpoint?.address, '127.0.0.1', 'a process app is at its node address');

  const a = await ask('web.default.hivemind', 'A');
  assert.is(a.header.aa, 1);
  assert.equal(a.answers.map((record) => record.address), ['127.0.0.1'], 'two process apps on one node share one address');
  const srv = await ask('_80._tcp.web.default.hivemind', 'SRV', 'tcp');
  assert.equal(srv.answers.map((record) => record.port).sort(), running.map((entry) => entry.status.endpoint!.ports[0]!.port).sort());
  assert.equal(srv.answers.map((record) => record.target).sort(), running.map((entry) => `${entry.slot}-${entry.id.split('.').pop()}.web.default.hivemind`).sort());

  const probe = await eventually('the probe app wrote what it resolved', () => (existsSync(resultPath) ? JSON.parse(readFileSync(resultPath, 'utf8')) : undefined));
  assert.is(probe.server, `127.0.0.1:${dnsPort}`);
  assert.is(probe.records?.length, 2, JSON.stringify(probe));

  const victim = running.find((entry) => entry.slot === 1)!;
  writeFileSync(join(stopDir, 'stop-1'), '');
  await eventually('slot 1 exited', async () => (await call('GET', `/v1/instances?tenant=default&app=web`)).body.instances.some((entry: { id: string; status: { state: string } }) => entry.id === victim.id && entry.status.state === 'exited'));
  // The replica that answered the API has applied the status: the DNS answer must already follow it.
  const after = await ask('_80._tcp.web.default.hivemind', 'SRV');
  assert.is(after.answers.length, 1);
  assert.ok(!after.answers[0]?.target?.startsWith('1-'));
  assert.is((await ask(`1-${victim.id.split('.').pop()}.web.default.hivemind`, 'A')).header.rcode, 3, 'its instance name is gone');
});

test('NXDOMAIN in the zone; other names are forwarded upstream and cached', async () => {
  assert.is((await ask('nothing.default.hivemind', 'A')).header.rcode, 3);
  assert.is((await ask('web.nobody.hivemind', 'A', 'tcp')).header.rcode, 3);
  const before = upstreamQueries;
  const first = await ask('upstream.test', 'A');
  assert.equal(first.answers.map((record) => record.address), ['192.0.2.7']);
  const second = await ask('UPSTREAM.test', 'A', 'tcp');
  assert.equal(second.answers.map((record) => record.address), ['192.0.2.7']);
  assert.ok(second.answers[0]!.ttl <= 300);
  assert.is(upstreamQueries - before, 1, 'the second answer came from the cache');
  assert.is((await ask('missing.test', 'A')).header.rcode, 3, 'the upstream NXDOMAIN passes through');
});

const asRoot = getuid?.() === 0 ? test : test.skip;

asRoot('containers are served on the gateway of the node network file, port 53; a new gateway moves the listener', async () => {
  const dataDir = join(directory, 'solo');
  // The network component writes this file with the overlay on; this agent (on loopback) has none, so the test writes it.
  writeNodeNetwork(dataDir, { state: 'ready', bridge: 'hm0', subnet: '127.0.2.0/24', gateway: '127.0.2.1', clusterCidr: '127.0.0.0/16', mtu: 1450 });
  const gateway = { host: '127.0.2.1', port: CONTAINER_DNS_PORT };
  await eventually('the DNS component serves on 127.0.2.1', () => ask('web.default.hivemind', 'A', 'tcp', gateway).then(() => true));
  assert.is((await ask('web.default.hivemind', 'A', 'udp', gateway)).header.aa, 1);
  assert.is((await ask('nothing.default.hivemind', 'A', 'tcp', gateway)).header.rcode, 3);
  writeNodeNetwork(dataDir, { state: 'ready', bridge: 'hm0', subnet: '127.0.3.0/24', gateway: '127.0.3.1', clusterCidr: '127.0.0.0/16', mtu: 1450 });
  const moved = { host: '127.0.3.1', port: CONTAINER_DNS_PORT };
  await eventually('the listener moved to 127.0.3.1', () => ask('web.default.hivemind', 'A', 'tcp', moved).then(() => true));
  assert.is((await ask('web.default.hivemind', 'A', 'udp', moved)).header.aa, 1);
  const refused = await ask('web.default.hivemind', 'A', 'tcp', gateway).then(() => false, () => true);
  assert.ok(refused, 'the old gateway is no longer served');
  writeNodeNetwork(dataDir, { state: 'pending' });
  await eventually('no gateway served while the network is pending', () => ask('web.default.hivemind', 'A', 'tcp', moved).then(() => false, () => true));
});

test.run();
