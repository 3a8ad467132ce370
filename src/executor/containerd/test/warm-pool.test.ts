// The warm pool of network namespaces against a real containerd, runc, the
// CNI plugins and iptables: a start takes a warm network (its label names
// it, no namespace of its own is made) and answers at its address; a
// published port works through a warm namespace and its portmap rules go
// when it stops; removing the container deletes the namespace and releases
// its lease; the pool refills; a warm namespace deleted behind the agent's
// back is discarded, not handed out, and so is every one when the node
// bridge is gone; after a crash (a holder process killed
// with SIGKILL) a new runtime adopts the free entries, keeps the one a
// container holds, and removes half-made and leaked ones, without leaking
// a namespace or a lease; closing drains the pool. A tenant network slice
// the node holds has a pool of its own, taken by a container whose one
// network it is, and discarded when the slice is given back; a former
// run's pool of a slice not held is swept at open.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { request } from 'undici';
import type { WorkloadSpec } from '../../runtime.js';
import { ContainerdRuntime } from '../containerd-runtime.js';
import { CniNetwork, createNamedNetns, netnsName } from '../network.js';
import { Label } from '../spec.js';
import { SLICE_WARM_NETWORKS_MAX } from '../slice-pools.js';
import type { WarmNetworkPool } from '../warm-pool.js';
import { TestContainerd, busyboxWorkload, eventually, iptablesSave, skipReason, closeTestRuntime, openTestRuntime } from './harness.js';

const skip = skipReason() ?? (existsSync('/usr/lib/cni/bridge') || existsSync('/opt/cni/bin/bridge') ? undefined : 'the CNI plugins are not installed (apt-get install containernetworking-plugins)');
const containerd = new TestContainerd();
let runtime: ContainerdRuntime;
let network: CniNetwork;

function workload(id: string, overrides: Partial<WorkloadSpec> = {}): WorkloadSpec {
  return busyboxWorkload(containerd.dataDir, id, overrides);
}
const POOL_SIZE = 2;
const HOLDER = fileURLToPath(new URL('./warm-pool-holder.js', import.meta.url));

function pool(of: ContainerdRuntime = runtime): WarmNetworkPool {
  const found = of.warmPool;
  assert.ok(found, 'the runtime keeps a warm pool');
  return found!;
}

async function labelsOf(id: string): Promise<Record<string, string>> {
  const { container } = await containerd.client!.unary<{ container: { labels: Record<string, string> } }>('containers', 'Get', { id });
  return container.labels;
}

async function networkPathOf(id: string): Promise<string | undefined> {
  const { container } = await containerd.client!.unary<{ container: { spec?: { value: Uint8Array } } }>('containers', 'Get', { id });
  const spec = JSON.parse(Buffer.from(container.spec?.value ?? []).toString('utf8')) as { linux: { namespaces: Array<{ type: string; path?: string }> } };
  return spec.linux.namespaces.find((namespace) => namespace.type === 'network')?.path;
}

function netnsExists(name: string): boolean {
  return existsSync(`/run/netns/${name}`);
}

/** What the container's httpd on port 8080 answers, once it answers. */
async function httpdAnswer(address: string | undefined): Promise<string> {
  let body = '';
  await eventually('httpd at the container address', async () => {
    body = await fetchText(`http://${address}:8080/`).catch(() => '');
    return body !== '';
  });
  return body;
}

async function fetchText(url: string): Promise<string> {
  const response = await request(url, { headersTimeout: 2_000, bodyTimeout: 2_000 });
  return response.body.text();
}

test.before(async () => {
  if (skip !== undefined) {
    console.log(`skipping the warm pool tests: ${skip}`);
    return;
  }
  await containerd.start();
  ({ runtime, network } = await openTestRuntime(containerd, { bridge: 'hmw0', subnet: '10.93.0.0/16', warmNetworks: POOL_SIZE }));
});

test.after(async () => {
  if (skip !== undefined) return;
  await closeTestRuntime({ runtime, network });
  // The crash test's bridge, and the masquerade rule its holder process added.
  await new CniNetwork({ stateDir: join(containerd.dataDir, 'cni-hmw1'), bridge: 'hmw1', subnet: '10.94.0.0/16' }).removeBridge();
  await containerd.stop();
});

test('the pool fills; a start takes a warm network and answers at its address; remove deletes it and releases its lease', async () => {
  if (skip !== undefined) return;
  await pool().settled();
  const ready = pool().entries();
  assert.is(ready.length, POOL_SIZE, 'the pool is full');
  for (const entry of ready) assert.ok(netnsExists(entry.name), `${entry.name} exists`);
  const id = 'warm-web-1';
  const started = await runtime.start(workload(id, { command: ['httpd', '-f', '-p', '8080', '-h', '/www'] }));
  const taken = ready[0]!;
  assert.is((await labelsOf(id))[Label.networkId], taken.name, 'the container names the oldest warm network');
  assert.is(started.address, taken.address, 'its address is the warm network\'s');
  assert.is(await networkPathOf(id), `/run/netns/${taken.name}`, 'runc joins the warm namespace');
  assert.not.ok(netnsExists(netnsName(id)), 'no namespace of its own was made');
  assert.not.ok(pool().names().includes(taken.name), 'a taken network leaves the pool');
  assert.match(await httpdAnswer(started.address), /hello from hivemind busybox/);
  await runtime.remove(id);
  assert.not.ok(netnsExists(taken.name), 'its namespace is deleted');
  assert.not.ok((await network.leasedIds()).includes(taken.name), 'its lease is released');
  await pool().settled();
  assert.is(pool().count, POOL_SIZE, 'the pool refilled');
  assert.not.ok(pool().names().includes(taken.name), 'a used network never comes back');
});

test('a published port works through a warm namespace; its rules go when it stops', async () => {
  if (skip !== undefined) return;
  await pool().settled();
  const taken = pool().entries()[0]!;
  const id = 'warm-port-1';
  const published = 20_000 + Math.floor(Math.random() * 20_000);
  const started = await runtime.start(workload(id, { command: ['httpd', '-f', '-p', '8080', '-h', '/www'], ports: [{ target: 8080, published, protocol: 'tcp' }] }));
  assert.is((await labelsOf(id))[Label.networkId], taken.name, 'on a warm network');
  let body = '';
  await eventually('httpd on the published port of 127.0.0.1', async () => {
    body = await fetchText(`http://127.0.0.1:${published}/`).catch(() => '');
    return body !== '';
  });
  assert.match(body, /hello from hivemind busybox/);
  const mentions = (rules: string): string[] => rules.split('\n').filter((line) => line.includes(`"${taken.name}"`) || line.includes(`--dport ${published} `) || line.includes(`${started.address}:8080`));
  assert.ok(mentions(await iptablesSave()).some((line) => line.includes(`--dport ${published} `)), 'portmap has rules for it while it runs');
  await runtime.stop(id, { signal: 'SIGTERM', graceMs: 1_000 });
  assert.equal(mentions(await iptablesSave()), [], 'stopped: no rule of it is left');
  assert.not.ok((await network.leasedIds()).includes(taken.name), 'stopped: its lease is released');
  await runtime.remove(id);
  assert.not.ok(netnsExists(taken.name), 'removed: its namespace is deleted');
  assert.equal(mentions(await iptablesSave()), [], 'removed: still no rule');
});

test('a warm namespace deleted behind the agent\'s back is discarded, not handed out', async () => {
  if (skip !== undefined) return;
  await pool().settled();
  const [broken, healthy] = pool().names() as [string, string];
  assert.ok(broken !== undefined && healthy !== undefined, 'two ready entries');
  assert.is(spawnSync('ip', ['netns', 'delete', broken]).status, 0, 'deleted behind the runtime');
  const id = 'warm-after-broken-1';
  await runtime.start(workload(id, { command: ['sleep', '1000'] }));
  assert.is((await labelsOf(id))[Label.networkId], healthy, 'the start skipped the broken entry');
  await eventually('the broken entry\'s lease released', async () => !(await network.leasedIds()).includes(broken));
  await runtime.remove(id);
  await pool().settled();
  assert.is(pool().count, POOL_SIZE);
});

test('when the node bridge is gone, no warm network is handed out: all are discarded and the pool refills', async () => {
  if (skip !== undefined) return;
  await pool().settled();
  const before = pool().names();
  assert.is(before.length, POOL_SIZE);
  assert.is(spawnSync('ip', ['link', 'delete', 'hmw0']).status, 0, 'the bridge deleted behind the runtime');
  const id = 'warm-no-bridge-1';
  const started = await runtime.start(workload(id, { command: ['httpd', '-f', '-p', '8080', '-h', '/www'] }));
  assert.is((await labelsOf(id))[Label.networkId], undefined, 'the start made its own network');
  assert.match(await httpdAnswer(started.address), /hello from hivemind busybox/);
  await runtime.remove(id);
  await pool().settled();
  for (const name of before) {
    assert.not.ok(netnsExists(name), `${name} is deleted`);
    assert.not.ok((await network.leasedIds()).includes(name), `${name}'s lease is released`);
  }
  assert.is(pool().count, POOL_SIZE, 'the pool refilled on the new bridge');
});

test('after a crash a new runtime adopts the pool, keeps what a container holds, and removes half-made and leaked entries', async () => {
  if (skip !== undefined) return;
  const dataDir = join(containerd.dataDir, 'crash');
  const crashNetwork = new CniNetwork({ stateDir: join(dataDir, 'cni'), bridge: 'hmw1', subnet: '10.94.0.0/16' });
  const holder = spawn(process.execPath, [HOLDER, dataDir, containerd.own!.socketPath, 'hmw1', '10.94.0.0/16', '3'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  let errors = '';
  holder.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  holder.stderr.on('data', (chunk: Buffer) => (errors += chunk.toString()));
  const exited = new Promise((resolve) => holder.once('exit', resolve));
  try {
    await eventually('the holder\'s pool', () => output.includes('\n') || holder.exitCode !== null, 60_000);
  } finally {
    // The crash.
    holder.kill('SIGKILL');
    await exited;
  }
  assert.ok(output.includes('\n'), `the holder ran: ${errors}`);
  const state = JSON.parse(output.split('\n')[0]!) as { names: string[]; held: string; address: string };
  assert.is(state.names.length, 3, 'the holder filled its pool');
  assert.match(state.held, /^hm-w-/, 'its container took a warm network');
  // What a crash mid-refill leaves: a record of a namespace still being made, and a lease whose record was lost.
  const halfMade = 'hm-w-00000000000a';
  await createNamedNetns(halfMade);
  await writeFile(join(dataDir, 'containerd-runtime', 'warm-networks', `${halfMade}.json`), JSON.stringify({ name: halfMade, state: 'making' }));
  const leaked = 'hm-w-00000000000b';
  await crashNetwork.attach(leaked, await createNamedNetns(leaked), []);
  const everyName = [...state.names, state.held, halfMade, leaked];
  for (const name of everyName) assert.ok(netnsExists(name), `${name} exists before the restart`);
  assert.is((await crashNetwork.leasedIds()).length, 5, 'three free, one held, one leaked');

  const second = new ContainerdRuntime({ dataDir, log: () => undefined, socketPath: containerd.own!.socketPath, manageContainerd: false, network: crashNetwork, warmNetworks: 3 });
  try {
    await second.open();
    assert.equal([...pool(second).names()].sort(), [...state.names].sort(), 'the free entries are adopted');
    await pool(second).settled();
    assert.not.ok(netnsExists(halfMade), 'the half-made namespace is deleted');
    assert.not.ok(netnsExists(leaked), 'the leaked namespace is deleted');
    assert.equal((await crashNetwork.leasedIds()).sort(), [...state.names, state.held].sort(), 'leases: the pool\'s and the held one\'s, nothing else');
    assert.ok(netnsExists(state.held), 'the held namespace is left alone');
    const adopted = (await second.list()).find((candidate) => candidate.id === 'crash-held-1');
    assert.is(adopted?.state, 'running');
    assert.is(adopted?.address, state.address);
    await second.remove('crash-held-1');
    assert.not.ok(netnsExists(state.held), 'removing the adopted container deletes its warm namespace');
    assert.equal((await crashNetwork.leasedIds()).sort(), [...state.names].sort());
  } finally {
    // Drains the pool: what the checks below look at.
    await second.close();
  }
  for (const name of everyName) assert.not.ok(netnsExists(name), `closed: ${name} is gone`);
  assert.equal(await crashNetwork.leasedIds(), [], 'closed: no lease is left');
  assert.equal(readdirSync(join(dataDir, 'containerd-runtime', 'warm-networks')), [], 'closed: no record is left');
});

/** Deletes the nat rules whose comment has `marker` (the slice test's masquerade and RETURN rules). */
async function deleteNatRules(marker: string): Promise<void> {
  const rules = spawnSync('iptables-save', ['-t', 'nat'], { encoding: 'utf8' }).stdout.split('\n').filter((line) => line.startsWith('-A ') && line.includes(marker));
  for (const line of rules) spawnSync('iptables', ['-w', '-t', 'nat', '-D', ...line.slice(3).match(/"[^"]*"|\S+/g)!.map((part) => part.replace(/^"|"$/g, ''))]);
}

test("a tenant network slice the node holds has a warm pool of its own; a start on it takes one; the slice given back, its free entries are discarded", async () => {
  if (skip !== undefined) return;
  const dataDir = join(containerd.dataDir, 'slices');
  const file = join(dataDir, 'node-network.json');
  const [nodeBridge, sliceBridge, marker] = ['hmw2', 'hmw3', 'hm-slice-pool-test'];
  const slice = { state: 'ready', network: 'acme/default', bridge: sliceBridge, subnet: '10.96.0.64/26', gateway: '10.96.0.65', block: '10.96.0.0/20' };
  const nodeNetwork = { state: 'ready', bridge: nodeBridge, subnet: '10.95.1.0/24', gateway: '10.95.1.1', clusterCidr: '10.95.0.0/16', mtu: 1450, tenantCidr: '10.96.0.0/16' };
  await mkdir(dataDir, { recursive: true });
  await writeFile(file, JSON.stringify({ ...nodeNetwork, networks: { 'acme/default': slice } }));
  const sliceNetwork = new CniNetwork({ stateDir: join(dataDir, 'cni'), nodeNetworkFile: file, name: marker });
  const third = new ContainerdRuntime({ dataDir, log: () => undefined, socketPath: containerd.own!.socketPath, manageContainerd: false, network: sliceNetwork, warmNetworks: POOL_SIZE });
  const inSlice = (address: string | undefined): boolean => /^10\.96\.0\.(6[6-9]|[7-9]\d|1[01]\d|12[0-6])$/.test(address ?? '');
  // What a former run left for a slice given back while it was down: a pool folder with a half-made entry.
  const leftFolder = join(dataDir, 'containerd-runtime', 'warm-networks-slices', 'hmw4');
  const halfMade = 'hm-w-00000000000c';
  await mkdir(leftFolder, { recursive: true });
  await createNamedNetns(halfMade);
  await writeFile(join(leftFolder, `${halfMade}.json`), JSON.stringify({ name: halfMade, state: 'making' }));
  try {
    await third.open();
    const pools = third.sliceWarmPools!;
    assert.ok(pools, 'the runtime keeps slice pools');
    await eventually("the former run's pool swept", () => !existsSync(leftFolder));
    assert.not.ok(netnsExists(halfMade), 'its entry is deleted');
    await eventually('the slice pool', () => pools.poolOf('acme/default') !== undefined);
    const slicePool = pools.poolOf('acme/default')!;
    await slicePool.settled();
    const ready = slicePool.entries();
    assert.is(ready.length, Math.min(POOL_SIZE, SLICE_WARM_NETWORKS_MAX), 'the slice pool is full');
    for (const entry of ready) assert.ok(inSlice(entry.address), `${entry.name} has an address of the slice: ${entry.address}`);
    assert.equal((await sliceNetwork.leasedIds(sliceBridge)).sort(), ready.map((entry) => entry.name).sort(), "the leases are in the slice's store");
    await pool(third).settled();
    assert.ok(pool(third).entries().every((entry) => entry.address.startsWith('10.95.1.')), 'the node pool stays on the node subnet');

    const id = 'warm-slice-web-1';
    const started = await third.start(workload(id, { tenant: 'acme', command: ['httpd', '-f', '-p', '8080', '-h', '/www'] }));
    assert.is((await labelsOf(id))[Label.networkId], ready[0]!.name, "acme's container takes its slice's oldest warm network");
    assert.is(started.address, ready[0]!.address);
    assert.match(await httpdAnswer(started.address), /hello from hivemind busybox/);
    const other = await third.start(workload('warm-slice-other-1', { tenant: 'beta', command: ['sleep', '60'] }));
    assert.match(other.address ?? '', /^10\.95\.1\./, 'a tenant with no network here takes from the node pool');

    await slicePool.settled();
    const free = slicePool.names();
    assert.ok(free.length > 0, 'the slice pool refilled');
    // The node gives the slice back: the file lists the network pending.
    await writeFile(file, JSON.stringify({ ...nodeNetwork, networks: { 'acme/default': { state: 'pending', network: 'acme/default' } } }));
    await eventually('the slice pool discarded', () => pools.poolOf('acme/default') === undefined, 10_000);
    // The folder goes last, once the drain is done.
    await eventually("the pool's folder removed", () => !existsSync(join(dataDir, 'containerd-runtime', 'warm-networks-slices', sliceBridge)), 10_000);
    for (const name of free) assert.not.ok(netnsExists(name), `${name} is deleted`);
    assert.equal(await sliceNetwork.leasedIds(sliceBridge), [ready[0]!.name], "only the running container's lease is left in the slice's store");
    await third.remove(id);
    assert.equal(await sliceNetwork.leasedIds(sliceBridge), [], 'removed: no lease of the released slice is left');
  } finally {
    for (const workload of await third.list().catch(() => [])) await third.remove(workload.id).catch(() => undefined);
    await third.close();
    for (const bridge of [nodeBridge, sliceBridge]) spawnSync('ip', ['link', 'delete', bridge]);
    spawnSync('ip', ['netns', 'delete', halfMade]);
    await deleteNatRules(marker);
  }
  assert.not.match(await iptablesSave(), marker, 'the test leaves no rule behind');
});

test("a container on two tenant networks starts warm: it takes its first network's warm entry, and eth1 is added on the second's slice; removed, both leases go", async () => {
  if (skip !== undefined) return;
  const dataDir = join(containerd.dataDir, 'two-slices');
  const file = join(dataDir, 'node-network.json');
  const [nodeBridge, frontBridge, backBridge, marker] = ['hmw5', 'hmw6', 'hmw7', 'hm-two-slices-test'];
  const front = { state: 'ready', network: 'acme/front', bridge: frontBridge, subnet: '10.96.16.64/26', gateway: '10.96.16.65', block: '10.96.16.0/20' };
  const back = { state: 'ready', network: 'acme/back', bridge: backBridge, subnet: '10.96.32.64/26', gateway: '10.96.32.65', block: '10.96.32.0/20' };
  const nodeNetwork = { state: 'ready', bridge: nodeBridge, subnet: '10.95.2.0/24', gateway: '10.95.2.1', clusterCidr: '10.95.0.0/16', mtu: 1450, tenantCidr: '10.96.0.0/16' };
  await mkdir(dataDir, { recursive: true });
  await writeFile(file, JSON.stringify({ ...nodeNetwork, networks: { 'acme/front': front, 'acme/back': back } }));
  const slicesNetwork = new CniNetwork({ stateDir: join(dataDir, 'cni'), nodeNetworkFile: file, name: marker });
  const fourth = new ContainerdRuntime({ dataDir, log: () => undefined, socketPath: containerd.own!.socketPath, manageContainerd: false, network: slicesNetwork, warmNetworks: POOL_SIZE });
  const ip = (args: string[]): string => spawnSync('ip', args, { encoding: 'utf8' }).stdout.trim();
  try {
    await fourth.open();
    const pools = fourth.sliceWarmPools!;
    await eventually('both slice pools', () => pools.poolOf('acme/front') !== undefined && pools.poolOf('acme/back') !== undefined);
    const frontPool = pools.poolOf('acme/front')!;
    const backPool = pools.poolOf('acme/back')!;
    await Promise.all([frontPool.settled(), backPool.settled()]);
    const frontReady = frontPool.entries();
    const backReady = backPool.names();
    assert.ok(frontReady.length > 0 && backReady.length > 0, 'both pools filled');

    const id = 'warm-two-nets-web-1';
    const started = await fourth.start(workload(id, { tenant: 'acme', networks: ['front', 'back'], command: ['httpd', '-f', '-p', '8080', '-h', '/www'] }));
    const labels = await labelsOf(id);
    assert.is(labels[Label.networkId], frontReady[0]!.name, "it takes the front slice's oldest warm network");
    assert.is(started.address, frontReady[0]!.address, 'eth0 is the warm entry on front');
    assert.equal(started.addresses?.length, 2);
    assert.match(started.addresses?.[1] ?? '', /^10\.96\.32\.(6[6-9]|[7-9]\d|1[01]\d|12[0-6])$/, `eth1 is on back's slice: ${started.addresses?.[1]}`);
    assert.is(labels[Label.addresses], started.addresses!.join(','), 'the addresses are on the container for adoption');
    assert.is(await networkPathOf(id), `/run/netns/${frontReady[0]!.name}`, 'no namespace of its own');
    const routes = ip(['-n', frontReady[0]!.name, 'route', 'show']);
    assert.match(routes, /^default via 10\.96\.16\.65 dev eth0/m, routes);
    assert.match(routes, /^10\.96\.32\.0\/20 via 10\.96\.32\.65 dev eth1/m, routes);
    assert.match(await httpdAnswer(started.addresses![1]), /hello from hivemind busybox/, 'it answers at its back address');
    assert.ok((await slicesNetwork.leasedIds(backBridge)).includes(frontReady[0]!.name), "eth1's lease is in back's store under the warm network's id");
    assert.ok(backReady.every((name) => backPool.names().includes(name) || !netnsExists(name)), "back's own warm entries are not used for it");

    await fourth.remove(id);
    assert.not.ok((await slicesNetwork.leasedIds(frontBridge)).includes(frontReady[0]!.name), "front's lease is released");
    assert.not.ok((await slicesNetwork.leasedIds(backBridge)).includes(frontReady[0]!.name), "and back's");
    assert.not.ok(netnsExists(frontReady[0]!.name), 'the namespace is deleted');
  } finally {
    for (const workload of await fourth.list().catch(() => [])) await fourth.remove(workload.id).catch(() => undefined);
    await fourth.close();
    for (const bridge of [nodeBridge, frontBridge, backBridge]) spawnSync('ip', ['link', 'delete', bridge]);
    await deleteNatRules(marker);
  }
  assert.not.match(await iptablesSave(), marker, 'the test leaves no rule behind');
});

test.run();
