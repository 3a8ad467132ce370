/**
 * Names from inside containers: one network namespace as a host (the chaos
 * harness's TestNetwork) running a real agent with its own containerd and
 * the overlay on. Tenant acme runs `web` (two busybox containers, network
 * alias `www`) and `client` (links `web:backend`); tenant globex runs
 * `hidden`. From inside the client container (its own mount and network
 * namespaces: its resolv.conf, its overlay address), busybox `nslookup`
 * must resolve the bare `web` (search domain), `web.acme.hivemind`, the
 * alias and the link to web's addresses, with the first address rotating
 * from one query to the next, and get NXDOMAIN for `hidden.globex.hivemind`,
 * which the node itself (a querier of no tenant) does resolve.
 *
 * Teardown, also on failure: the agent stopped, then the containers'
 * processes and namespaces, the host's namespace and the data folder
 * removed. Needs root, iproute2, iptables, containerd, runc, the CNI plugins
 * and busybox; skipped otherwise, saying why.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { request } from 'undici';
import { buildBusyboxImage } from '../../src/executor/containerd/oci-layout.js';
import { netnsName } from '../../src/executor/containerd/network.js';
import { skipReason } from '../../src/executor/containerd/test/harness.js';
import { ApiClient, clusterCaBundle } from '../http.js';
import { dataDirApiAgent } from '../../src/api/tls.js';
import { command, missingPrerequisite, rangeInUse, removeLeftovers, TestNetwork, type Host } from '../network.js';
import { holdMachineLock } from '../machine-lock.js';
import { bridgeMacOf } from '../../src/network/overlay-plan.js';
import { removeRuncLeftovers, removeWarmNamespacesSince, warmNamespaces } from './host-agents.js';
import { lastLookupOutput, lookupInside } from './network-probes.js';

const BIN = fileURLToPath(new URL('../../../bin/hivemind.js', import.meta.url));
/** The containers' command: unique, so the test finds their processes (and kills strays). */
const SLEEP_SECONDS = '3631';

/** The apps whose containers the test runs (for removeRuncLeftovers). */
const RUNC_APPS = [{ tenant: 'acme', app: 'web' }, { tenant: 'acme', app: 'client' }, { tenant: 'globex', app: 'hidden' }];

const unavailable =
  (await missingPrerequisite()) ?? skipReason() ?? (existsSync('/usr/lib/cni/bridge') ? null : 'the CNI plugins are not installed (containernetworking-plugins)');
const dnsTest = unavailable === null ? test : test.skip;
if (unavailable !== null) console.log(`skipping the container DNS test: ${unavailable}`);

/** Polls `check` every 250 ms until it answers a value, or fails after `timeoutMs` with the last reason. */
async function until<T>(what: string, check: () => Promise<T | string>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    const outcome = await check();
    if (typeof outcome !== 'string') return outcome;
    last = outcome;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms (${last})`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

/** Pids of the test's containers' processes. */
function containerPids(): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8') === `sleep\0${SLEEP_SECONDS}\0`) pids.push(Number(entry));
    } catch {
      // gone
    }
  }
  return pids;
}

/** The eth0 IPv4 address of a container process (in its network namespace), if any. */
function containerAddress(pid: number): string | undefined {
  try {
    const links = JSON.parse(execFileSync('nsenter', ['-t', String(pid), '-n', 'ip', '-j', '-4', 'addr', 'show', 'dev', 'eth0'], { encoding: 'utf8' })) as { addr_info: { local: string }[] }[];
    return links[0]?.addr_info[0]?.local;
  } catch {
    return undefined;
  }
}

/** Kills what a failed run can leave outside the host's namespace: the containers' processes, their network namespaces (named from the instance ids) and the warm pool's. */
function removeContainerLeftovers(dataRoot: string, instanceIds: ReadonlySet<string>): void {
  for (const pid of containerPids()) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
  const namespaces = new Set([...instanceIds].map(netnsName));
  if (existsSync(dataRoot)) {
    for (const node of readdirSync(dataRoot)) {
      const folder = join(dataRoot, node, 'containerd-runtime', 'warm-networks');
      if (existsSync(folder)) for (const file of readdirSync(folder)) if (file.endsWith('.json')) namespaces.add(file.slice(0, -'.json'.length));
    }
  }
  for (const namespace of namespaces) if (existsSync(`/run/netns/${namespace}`)) execFileSync('ip', ['netns', 'delete', namespace], { stdio: 'ignore' });
  const mounts = readFileSync('/proc/mounts', 'utf8').split('\n').map((line) => line.split(' ')[1] ?? '').filter((path) => path.startsWith(dataRoot)).sort().reverse();
  for (const mount of mounts) execFileSync('umount', ['-l', mount], { stdio: 'ignore' });
  rmSync(dataRoot, { recursive: true, force: true });
}

function startAgent(host: Host, settings: { token: string; dataRoot: string; logDirectory: string }): ChildProcess {
  const log = openSync(join(settings.logDirectory, `${host.namespace}.log`), 'a');
  const args = [`--net=/run/netns/${host.namespace}`, process.execPath, BIN, 'agent', '--name', 'n1', '--data-dir', join(settings.dataRoot, 'n1'), '--token', settings.token, '--bind', host.address, '--advertise', host.address, '--tick-ms', '50'];
  const child = spawn('nsenter', args, { stdio: ['ignore', log, log] });
  closeSync(log);
  return child;
}

async function stopAgent(child: ChildProcess | undefined): Promise<void> {
  if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

dnsTest('a container resolves its tenant\'s apps, aliases and links through its node\'s DNS server, rotated, and not another tenant\'s', async () => {
  // The host below is the chaos harness's: wait for any chaos run to end first.
  const lock = await holdMachineLock((line) => console.log(line));
  const warmBefore = warmNamespaces();
  await removeLeftovers();
  removeRuncLeftovers(RUNC_APPS);
  const inUse = await rangeInUse();
  assert.is(inUse, null, `the test range is in use: ${inUse}`);
  const dataRoot = mkdtempSync(join(tmpdir(), 'hmdns-'));
  const logDirectory = mkdtempSync(join(tmpdir(), 'hmdns-logs-'));
  let passed = false;
  const token = `hmdns.${randomBytes(16).toString('hex')}`;
  const client = new ApiClient({ token, connectTimeoutMs: 1000, requestTimeoutMs: 10_000, caBundle: () => clusterCaBundle([join(dataRoot, 'n1')]) });
  let network: TestNetwork | undefined;
  let agent: ChildProcess | undefined;
  const instanceIds = new Set<string>();
  try {
    network = await TestNetwork.create(1);
    const host = network.hosts[0]!;
    const origin = `https://${host.address}:7070`;
    agent = startAgent(host, { token, dataRoot, logDirectory });
    await until('the agent serves', async () => ((await client.call(origin, 'GET', '/v1/health', undefined, 1000)).kind === 'answer' ? true : 'no answer'), 30_000);
    const call = async (method: 'GET' | 'PUT' | 'POST' | 'DELETE', path: string, body?: unknown): Promise<unknown> => {
      const answer = await client.call(origin, method, path, body);
      assert.ok(answer.kind === 'answer' && answer.status < 300, `${method} ${path}: ${JSON.stringify(answer)}`);
      return (answer as { body: unknown }).body;
    };
    await until('the node is up with a subnet', async () => {
      const answer = await client.call(origin, 'GET', '/v1/nodes', undefined, 2000);
      if (answer.kind !== 'answer' || answer.status !== 200) return JSON.stringify(answer);
      const nodes = (answer.body as { nodes?: { status: string; subnet?: string }[] }).nodes ?? [];
      return nodes.some((node) => node.status === 'up' && node.subnet !== undefined) ? true : JSON.stringify(nodes);
    }, 60_000);
    await call('PUT', '/v1/tenants/acme', {});
    await call('PUT', '/v1/tenants/globex', {});

    const archive = join(dataRoot, 'busybox.tar');
    const image = await buildBusyboxImage({ outputPath: archive });
    const uploaded = await request(`${origin}/v1/images/upload`, { dispatcher: dataDirApiAgent(join(dataRoot, 'n1')), method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/x-tar' }, body: readFileSync(archive) });
    assert.is(uploaded.statusCode, 200, `image upload: ${await uploaded.body.text()}`);
    await uploaded.body.dump();
    const sleeper = [`    image: ${image.name}`, `    command: ["sleep", "${SLEEP_SECONDS}"]`, '    stop_grace_period: 1s'];
    const acme = ['services:', '  web:', ...sleeper, '    deploy: { replicas: 2 }', '    networks: { default: { aliases: [www] } }', '  client:', ...sleeper, '    links: ["web:backend"]', ''].join('\n');
    const globex = ['services:', '  hidden:', ...sleeper, ''].join('\n');
    await call('POST', '/v1/deploy', { fileName: 'acme.yaml', content: acme, tenant: 'acme' });
    await call('POST', '/v1/deploy', { fileName: 'globex.yaml', content: globex, tenant: 'globex' });

    type Listed = { instances: { id: string; app: string; tenant: string; status: { state: string; endpoint?: { address: string } } }[] };
    const endpoints = await until('four instances run with endpoints', async () => {
      const listed = (await call('GET', '/v1/instances')) as Listed;
      for (const entry of listed.instances) instanceIds.add(entry.id);
      const running = listed.instances.filter((entry) => entry.status.state === 'running' && entry.status.endpoint !== undefined);
      return running.length === 4 ? running : `${running.length} running: ${JSON.stringify(listed.instances.map((entry) => [entry.app, entry.status.state]))}`;
    }, 120_000);
    const addressesOf = (app: string): string[] => endpoints.filter((entry) => entry.app === app).map((entry) => entry.status.endpoint!.address).sort();
    const web = addressesOf('web');
    const clientAddress = addressesOf('client')[0]!;
    const clientPid = await until('the client container is found', async () => containerPids().find((pid) => containerAddress(pid) === clientAddress) ?? 'not yet', 30_000);

    const nodeNetwork = JSON.parse(readFileSync(join(dataRoot, 'n1', 'network', 'node-network.json'), 'utf8')) as { gateway: string; subnet: string };
    // The gateway keeps one MAC while warm-pool veths come and go (a bridge left to itself takes its lowest port's, and containers lost the gateway they had cached).
    const bridgeLink = JSON.parse(await command('ip', ['netns', 'exec', host.namespace, 'ip', '-j', 'link', 'show', 'dev', 'hm0'])) as { address: string }[];
    assert.is(bridgeLink[0]?.address, bridgeMacOf(nodeNetwork.subnet), "the bridge's MAC is the one its subnet names");
    const resolvConf = await command('nsenter', ['-t', String(clientPid), '-m', '-r', '/bin/busybox', 'cat', '/etc/resolv.conf']);
    assert.match(resolvConf, new RegExp(`^nameserver ${nodeNetwork.gateway.replaceAll('.', '\\.')}$`, 'm'));
    assert.match(resolvConf, /^search acme\.hivemind hivemind$/m);

    // The DNS component binds the gateway within a second of the network being ready: wait for the first answer.
    await until('the bare app name resolves inside the container', async () => {
      const found = await lookupInside(clientPid, 'web');
      return Array.isArray(found) && found.length === 2 ? true : `${JSON.stringify(found)}: ${lastLookupOutput()}`;
    }, 30_000);
    for (const name of ['web', 'web.acme.hivemind', 'www', 'backend.acme.hivemind']) {
      const found = await lookupInside(clientPid, name);
      assert.ok(Array.isArray(found), `${name}: ${found}`);
      assert.equal([...(found as string[])].sort(), web, name);
    }
    const first = await lookupInside(clientPid, 'web.acme.hivemind');
    const firstOutput = lastLookupOutput();
    const second = await lookupInside(clientPid, 'web.acme.hivemind');
    // What nslookup printed, to tell a lost answer from an empty one (seen once in a full run: the second answer had no address).
    const said = `nslookup said:\n${firstOutput}\n---\n${lastLookupOutput()}`;
    assert.equal([first[0], second[0]].sort(), web, `successive answers start with each address in turn: ${JSON.stringify([first, second])}; ${said}`);

    assert.is(await lookupInside(clientPid, 'hidden.globex.hivemind'), 'NXDOMAIN', "another tenant's app");
    assert.is(await lookupInside(clientPid, 'hidden'), 'NXDOMAIN');
    const fromNode = await command('ip', ['netns', 'exec', host.namespace, 'busybox', 'nslookup', '-type=a', 'hidden.globex.hivemind', nodeNetwork.gateway]);
    assert.ok(fromNode.includes(addressesOf('hidden')[0]!), `the node (a querier of no tenant) resolves it: ${fromNode}`);
    passed = true;
  } finally {
    if (passed) rmSync(logDirectory, { recursive: true, force: true });
    else console.log(`the agent's log is kept in ${logDirectory}`);
    await stopAgent(agent).catch(() => undefined);
    await client.close();
    removeContainerLeftovers(dataRoot, instanceIds);
    removeRuncLeftovers(RUNC_APPS);
    await network?.destroy().catch(() => undefined);
    removeWarmNamespacesSince(warmBefore);
    await removeLeftovers();
    lock.release();
  }
});

test.run();
