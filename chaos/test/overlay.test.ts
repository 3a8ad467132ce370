/**
 * The overlay across hosts: three network namespaces as hosts (the chaos
 * harness's TestNetwork), each running a real agent that starts its own
 * containerd. An image app with one container per node is deployed; every
 * container must reach every other, on the other hosts, by its overlay
 * address (ICMP from inside its network namespace), and each host's VXLAN
 * device must carry exactly one forwarding entry per peer. A forwarding
 * entry deleted by hand must come back (drift repair).
 *
 * Teardown, also on failure: the app deleted, agents stopped, then whatever
 * is left killed and removed: container processes, their network
 * namespaces and the warm pool's, the hosts' namespaces (their bridges,
 * VXLAN devices and iptables rules go with them), the data folder. Needs
 * root, iproute2, iptables, containerd, runc, the CNI plugins and busybox;
 * skipped otherwise, saying why.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { request } from 'undici';
import { buildBusyboxImage } from '../../src/executor/containerd/oci-layout.js';
import { skipReason } from '../../src/executor/containerd/test/harness.js';
import { ApiClient, clusterCaBundle } from '../http.js';
import { dataDirApiAgent } from '../../src/api/tls.js';
import { command, missingPrerequisite, rangeInUse, removeLeftovers, TestNetwork } from '../network.js';
import { holdMachineLock } from '../machine-lock.js';
import { HostAgent, containerNetwork, removeContainerLeftovers, removeRuncLeftovers, sleepPids, until } from './host-agents.js';

const APP = 'overlay-probe';
/** The containers' command: unique, so the test finds their processes (and kills strays). */
const SLEEP_SECONDS = '3617';

/** The apps whose containers the test runs (for removeRuncLeftovers). */
const RUNC_APPS = [{ tenant: 'default', app: APP }];

const unavailable =
  (await missingPrerequisite()) ?? skipReason() ?? (existsSync('/usr/lib/cni/bridge') ? null : 'the CNI plugins are not installed (containernetworking-plugins)');
const overlayTest = unavailable === null ? test : test.skip;
if (unavailable !== null) console.log(`skipping the overlay test: ${unavailable}`);

overlayTest('containers on three hosts reach each other by overlay address; a forwarding entry deleted by hand comes back', async () => {
  // The hosts below are the chaos harness's: wait for any chaos run to end first.
  const lock = await holdMachineLock((line) => console.log(line));
  await removeLeftovers();
  removeRuncLeftovers(RUNC_APPS);
  const inUse = await rangeInUse();
  assert.is(inUse, null, `the test range is in use: ${inUse}`);
  const dataRoot = mkdtempSync(join(tmpdir(), 'hmov-'));
  // Kept when the test fails, and named then.
  const logDirectory = mkdtempSync(join(tmpdir(), 'hmov-logs-'));
  let passed = false;
  const token = `hmov.${randomBytes(16).toString('hex')}`;
  const client = new ApiClient({ token, connectTimeoutMs: 1000, requestTimeoutMs: 10_000, caBundle: () => clusterCaBundle([join(dataRoot, 'n1')]) });
  const containerNamespaces = new Set<string>();
  let network: TestNetwork | undefined;
  const nodes: HostAgent[] = [];
  try {
    network = await TestNetwork.create(3);
    for (const host of network.hosts) nodes.push(new HostAgent(host, { token, dataRoot, logDirectory }));
    const [first] = nodes;
    first!.start('agent');
    await until('the first agent serves', async () => ((await client.call(first!.origin, 'GET', '/v1/health', undefined, 1000)).kind === 'answer' ? true : 'no answer'), 30_000);
    for (const node of nodes.slice(1)) node.start({ join: first!.peerAddress });
    const subnets = await until('every node holds a subnet', async () => {
      const answer = await client.call(first!.origin, 'GET', '/v1/nodes', undefined, 2000);
      if (answer.kind !== 'answer' || answer.status !== 200) return JSON.stringify(answer);
      const records = ((answer.body as { nodes?: { id: string; status: string; subnet?: string }[] }).nodes ?? []).filter((node) => node.status === 'up');
      if (records.length < 3 || records.some((node) => node.subnet === undefined)) return JSON.stringify(records);
      return new Map(records.map((node) => [node.id, node.subnet!]));
    }, 60_000);
    assert.is(new Set(subnets.values()).size, 3, 'three distinct subnets');

    // The busybox image on every node, then one container per node.
    const archive = join(dataRoot, 'busybox.tar');
    const image = await buildBusyboxImage({ outputPath: archive });
    const bytes = readFileSync(archive);
    for (const node of nodes) {
      const answer = await request(`${node.origin}/v1/images/upload`, { dispatcher: dataDirApiAgent(join(dataRoot, 'n1')), method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/x-tar' }, body: bytes });
      assert.is(answer.statusCode, 200, `image upload to ${node.name}: ${await answer.body.text()}`);
      await answer.body.dump();
    }
    const content = ['services:', `  ${APP}:`, `    image: ${image.name}`, `    command: ["sleep", "${SLEEP_SECONDS}"]`, '    deploy:', '      replicas: 3', '    x-hivemind: { max_per_node: 1 }', ''].join('\n');
    const deployed = await client.call(first!.origin, 'POST', '/v1/deploy', { fileName: `${APP}.yaml`, content, tenant: 'default' });
    assert.ok(deployed.kind === 'answer' && deployed.status < 300, `deploy: ${JSON.stringify(deployed)}`);

    const containers = await until('three containers run, one per subnet', async () => {
      const found = sleepPids([SLEEP_SECONDS]).map(containerNetwork).filter((entry): entry is { namespace: string; address: string } => entry !== undefined);
      for (const entry of found) containerNamespaces.add(entry.namespace);
      const inSubnets = new Set(found.map((entry) => entry.address.split('.').slice(0, 3).join('.')));
      return found.length === 3 && inSubnets.size === 3 ? found : `${found.length} found: ${found.map((entry) => entry.address).join(', ')}`;
    }, 120_000);
    const prefixes = [...subnets.values()].map((subnet) => subnet.split('.').slice(0, 3).join('.'));
    for (const container of containers) assert.ok(prefixes.includes(container.address.split('.').slice(0, 3).join('.')), `${container.address} is in a node's subnet`);

    // Tenant isolation lets traffic through only between addresses the state holds: wait for every endpoint report.
    await until('every instance reports its endpoint', async () => {
      const answer = await client.call(first!.origin, 'GET', `/v1/instances?tenant=default&app=${APP}`, undefined, 2000);
      if (answer.kind !== 'answer' || answer.status !== 200) return JSON.stringify(answer);
      const reported = ((answer.body as { instances: { status: { endpoint?: { address: string } } }[] }).instances ?? []).map((instance) => instance.status.endpoint?.address).sort();
      return JSON.stringify(reported) === JSON.stringify(containers.map((entry) => entry.address).sort()) ? true : JSON.stringify(reported);
    }, 30_000);
    // Every container reaches every other, across hosts, once each node's rules follow those reports (within seconds of the commit).
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

    const removed = await client.call(first!.origin, 'DELETE', `/v1/apps/default/${APP}`);
    assert.ok(removed.kind === 'answer' && removed.status < 300, `delete: ${JSON.stringify(removed)}`);
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
