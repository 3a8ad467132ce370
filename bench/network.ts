/**
 * `npm run bench:network`: the overlay's cost and the policy plane's speed,
 * on the chaos harness's namespace hosts (three real agents, each with its
 * own containerd), measured and printed, never asserted.
 *
 *   - throughput (iperf3, TCP, one stream) and latency (ICMP, `ping -A`)
 *     container to container across two hosts over the VXLAN overlay,
 *     beside the same between the two hosts' own namespaces over the bare
 *     veth path the overlay rides on, alternating in rounds;
 *   - connection rate (sequential TCP connect and close) from a container
 *     to an app's VIP beside the same to the instance's own address;
 *   - the time from a policy write to its rule being in every node's
 *     kernel: the write's request sent, its answer (the commit applied on
 *     the node that answered), and each node's first `iptables-save` that
 *     shows the rule (polled).
 * The issue's targets (overlay throughput at least 0.9 of bare, added
 * latency under 50 us, policy in force everywhere under 1 s) are printed
 * beside the figures.
 *
 * Usage: `npm run bench:network [-- --seconds 5 --rounds 3 --policy-trials 5 --json]`.
 * Needs root, iproute2, iptables, containerd, runc, the CNI plugins,
 * busybox and iperf3 (Debian's `iperf3`). Holds the chaos harness's machine
 * lock (it builds the same test hosts); the npm script holds the bench lock.
 * Everything it makes is removed at the end, also on failure or Ctrl-C.
 *
 * `node dist/bench/network.js --connect-worker ADDRESS PORT SECONDS` and
 * `--accept-worker PORT` are its own helpers, run inside a container's
 * network namespace.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { request } from 'undici';
import { buildBusyboxImage } from '../src/executor/containerd/oci-layout.js';
import { skipReason } from '../src/executor/containerd/test/harness.js';
import { dataDirApiAgent } from '../src/api/tls.js';
import { ApiClient, clusterCaBundle } from '../chaos/http.js';
import { missingPrerequisite, rangeInUse, removeLeftovers, TestNetwork, type Host } from '../chaos/network.js';
import { holdMachineLock } from '../chaos/machine-lock.js';
import { HostAgent, containerNetwork, removeContainerLeftovers, removeRuncLeftovers, sleepPids, until } from '../chaos/test/host-agents.js';
import { describeMachine } from './report.js';
import { median } from './stats.js';

const SELF = fileURLToPath(import.meta.url);
/** The containers run `sleep <this>`: unique, so the bench finds them (and kills strays). */
const SLEEP_SECONDS = { a: '3651', b: '3652', c: '3653' } as const;
const RUNC_APPS = [{ tenant: 'acme', app: 'a' }, { tenant: 'acme', app: 'b' }, { tenant: 'acme', app: 'c' }];
const IPERF_PORT = 5201;
const ACCEPT_PORT = 7000;
const PING_COUNT = 1000;
/** Between two `iptables-save` reads of one host while a policy trial waits. */
const POLL_PAUSE_MS = 10;

/** A namespace to run a tool in, named (`ip netns`) or a host's. */
interface Place {
  label: string;
  namespace: string;
  address: string;
}

/** Runs `file` in `namespace` (nsenter, the host's sysfs kept); answers stdout, rejects with stderr. */
function inNamespace(namespace: string, file: string, args: readonly string[], timeoutMs = 60_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('nsenter', [`--net=/run/netns/${namespace}`, file, ...args], { timeout: timeoutMs, maxBuffer: 16 * 2 ** 20 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`${file} ${args.join(' ')} in ${namespace}: ${stderr.trim() || error.message}`));
      else resolve(stdout);
    });
  });
}

/** Starts a long-running `file` in `namespace`; the caller kills it. */
function startIn(namespace: string, file: string, args: readonly string[]): ChildProcess {
  return spawn('nsenter', [`--net=/run/netns/${namespace}`, file, ...args], { stdio: 'ignore' });
}

/** One iperf3 TCP run from `from` to `to` (a server listens there): received bits per second. */
async function throughput(from: Place, to: Place, seconds: number): Promise<number> {
  const report = JSON.parse(await inNamespace(from.namespace, 'iperf3', ['-c', to.address, '-p', String(IPERF_PORT), '-t', String(seconds), '-J'], (seconds + 20) * 1000)) as { end?: { sum_received?: { bits_per_second?: number } }; error?: string };
  const bits = report.end?.sum_received?.bits_per_second;
  if (bits === undefined) throw new Error(`iperf3 ${from.label} -> ${to.label}: ${report.error ?? 'no result'}`);
  return bits;
}

/** ICMP round trips from `from` to `to`, back to back (`ping -A`): min and average in microseconds. */
async function latency(from: Place, to: Place): Promise<{ minUs: number; averageUs: number }> {
  const output = await inNamespace(from.namespace, 'busybox', ['ping', '-A', '-q', '-c', String(PING_COUNT), to.address]);
  const match = /min\/avg\/max = ([\d.]+)\/([\d.]+)\/([\d.]+) ms/.exec(output);
  if (!match) throw new Error(`ping ${from.label} -> ${to.label}: ${output.trim()}`);
  return { minUs: Number(match[1]) * 1000, averageUs: Number(match[2]) * 1000 };
}

/** Sequential connections from `from` to `address:port` for `seconds`: connections per second. */
async function connectionRate(from: Place, address: string, seconds: number): Promise<number> {
  const output = await inNamespace(from.namespace, process.execPath, [SELF, '--connect-worker', address, String(ACCEPT_PORT), String(seconds)], (seconds + 30) * 1000);
  return (JSON.parse(output.trim().split('\n').at(-1)!) as { perSecond: number }).perSecond;
}

/** The helper behind `connectionRate`: connect, wait for the server's close, repeat; prints `{ connections, perSecond, errors }`. */
async function connectWorker(address: string, port: number, seconds: number): Promise<void> {
  const started = process.hrtime.bigint();
  const deadline = started + BigInt(seconds * 1e9);
  let connections = 0;
  let errors = 0;
  while (process.hrtime.bigint() < deadline) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = connect({ host: address, port });
      socket.setTimeout(2000, () => socket.destroy(new Error('timeout')));
      socket.on('error', () => resolve(false));
      socket.on('close', (hadError) => resolve(!hadError));
      socket.resume();
    });
    if (ok) connections++;
    else errors++;
  }
  const elapsedSeconds = Number(process.hrtime.bigint() - started) / 1e9;
  console.log(JSON.stringify({ connections, perSecond: connections / elapsedSeconds, errors }));
}

/** The helper a `connectWorker` connects to: accepts and closes at once. */
function acceptWorker(port: number): void {
  createServer((socket) => socket.end()).listen(port, '0.0.0.0');
}

/** The policy trial: request sent, answer received, and each node's first sight of the rule, in ms from the request. */
interface PolicyTrial {
  answerMs: number;
  seenMs: Record<string, number>;
  /** The slowest node. */
  everywhereMs: number;
}

/** Polls `iptables-save -t filter` on every host until each shows `needle`; answers when each first did, in ms from `startedNs`. */
async function firstSeen(hosts: readonly Host[], needle: string, startedNs: bigint, timeoutMs: number): Promise<{ seen: Record<string, number>; pollMs: number[] }> {
  const seen: Record<string, number> = {};
  const pollMs: number[] = [];
  await Promise.all(
    hosts.map(async (host) => {
      for (;;) {
        const before = process.hrtime.bigint();
        const save = await inNamespace(host.namespace, 'iptables-save', ['-t', 'filter']);
        const after = process.hrtime.bigint();
        pollMs.push(Number(after - before) / 1e6);
        if (save.includes(needle)) {
          // The rule was there by the time the read began at the latest: the read's start is a fair upper bound.
          seen[`n${host.index + 1}`] = Number(before - startedNs) / 1e6;
          return;
        }
        if (Number(after - startedNs) / 1e6 > timeoutMs) throw new Error(`${host.namespace} never showed ${needle}`);
        // A pause between reads, so three pollers do not crowd the agents off two cores.
        await new Promise((resolve) => setTimeout(resolve, POLL_PAUSE_MS));
      }
    }),
  );
  return { seen, pollMs };
}

interface Options {
  seconds: number;
  rounds: number;
  policyTrials: number;
  json: boolean;
}

function options(): Options {
  const { values } = parseArgs({
    options: { seconds: { type: 'string', default: '5' }, rounds: { type: 'string', default: '3' }, 'policy-trials': { type: 'string', default: '5' }, json: { type: 'boolean', default: false }, help: { type: 'boolean', default: false } },
  });
  if (values.help) {
    console.log('npm run bench:network [-- --seconds 5 --rounds 3 --policy-trials 5 --json]');
    process.exit(0);
  }
  const number = (name: string, text: string, min: number, max: number): number => {
    const value = Number(text);
    if (!Number.isInteger(value) || value < min || value > max) throw new Error(`--${name} must be an integer from ${min} to ${max}, got ${JSON.stringify(text)}`);
    return value;
  };
  return { seconds: number('seconds', values.seconds!, 1, 60), rounds: number('rounds', values.rounds!, 1, 20), policyTrials: number('policy-trials', values['policy-trials']!, 1, 50), json: values.json! };
}

function log(line: string): void {
  process.stderr.write(`${line}\n`);
}

async function main(): Promise<void> {
  const settings = options();
  const unavailable = (await missingPrerequisite()) ?? skipReason() ?? (existsSync('/usr/lib/cni/bridge') ? null : 'the CNI plugins are not installed (containernetworking-plugins)');
  if (unavailable !== null) throw new Error(`cannot run the network bench: ${unavailable}`);
  const iperf = await new Promise<string | undefined>((resolve) => execFile('iperf3', ['--version'], (error, stdout) => resolve(error ? undefined : stdout.split('\n')[0])));
  if (iperf === undefined) throw new Error('cannot run the network bench: iperf3 is not installed (apt-get install iperf3)');
  const machine = describeMachine(undefined);
  const lock = await holdMachineLock(log);
  await removeLeftovers();
  removeRuncLeftovers(RUNC_APPS);
  const inUse = await rangeInUse();
  if (inUse !== null) throw new Error(`the test range is in use: ${inUse}`);
  const dataRoot = mkdtempSync(join(tmpdir(), 'hmnetbench-'));
  const logDirectory = mkdtempSync(join(tmpdir(), 'hmnetbench-logs-'));
  const token = `hmnb.${randomBytes(16).toString('hex')}`;
  // 5 s to connect: the TLS handshake waits for the agent to be scheduled, and the bench loads the machine.
  const client = new ApiClient({ token, connectTimeoutMs: 5000, requestTimeoutMs: 10_000, caBundle: () => clusterCaBundle([join(dataRoot, 'n1')]) });
  const containerNamespaces = new Set<string>();
  const helpers: ChildProcess[] = [];
  const nodes: HostAgent[] = [];
  let network: TestNetwork | undefined;
  let finished = false;
  let cleaned: Promise<void> | undefined;
  const cleanUp = (): Promise<void> =>
    (cleaned ??= (async () => {
      for (const helper of helpers) helper.kill('SIGKILL');
      for (const node of nodes) await node.stop().catch(() => undefined);
      await client.close();
      removeContainerLeftovers(dataRoot, containerNamespaces, Object.values(SLEEP_SECONDS));
      removeRuncLeftovers(RUNC_APPS);
      await network?.destroy().catch(() => undefined);
      await removeLeftovers();
      lock.release();
      if (finished) rmSync(logDirectory, { recursive: true, force: true });
      else log(`the agents' logs are kept in ${logDirectory}`);
    })());
  const interrupted = (): void => {
    log('interrupted: cleaning up');
    void cleanUp().finally(() => process.exit(130));
  };
  process.once('SIGINT', interrupted);
  try {
    network = await TestNetwork.create(3);
    for (const host of network.hosts) nodes.push(new HostAgent(host, { token, dataRoot, logDirectory }));
    const first = nodes[0]!;
    const api = async (method: 'GET' | 'PUT' | 'POST' | 'DELETE', path: string, body?: unknown): Promise<unknown> => {
      const answer = await client.call(first.origin, method, path, body, 10_000);
      if (answer.kind !== 'answer' || answer.status >= 300) throw new Error(`${method} ${path}: ${JSON.stringify(answer)}`);
      return answer.body;
    };
    log('starting 3 agents on namespace hosts');
    first.start('agent');
    await until('the first agent serves', async () => ((await client.call(first.origin, 'GET', '/v1/health', undefined, 1000)).kind === 'answer' ? true : 'no answer'), 30_000);
    for (const node of nodes.slice(1)) node.start({ join: first.peerAddress });
    await until('every node holds a subnet', async () => {
      const answer = await client.call(first.origin, 'GET', '/v1/nodes', undefined, 2000);
      if (answer.kind !== 'answer' || answer.status !== 200) return JSON.stringify(answer);
      const records = ((answer.body as { nodes?: { status: string; subnet?: string }[] }).nodes ?? []).filter((node) => node.status === 'up');
      return records.length === 3 && records.every((node) => node.subnet !== undefined) ? true : JSON.stringify(records);
    }, 60_000);
    const archive = join(dataRoot, 'busybox.tar');
    const image = await buildBusyboxImage({ outputPath: archive });
    const bytes = readFileSync(archive);
    for (const node of nodes) {
      const answer = await request(`${node.origin}/v1/images/upload`, { dispatcher: dataDirApiAgent(join(dataRoot, 'n1')), method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/x-tar' }, body: bytes });
      if (answer.statusCode !== 200) throw new Error(`image upload to ${node.name}: ${await answer.body.text()}`);
      await answer.body.dump();
    }
    await api('PUT', '/v1/tenants/acme', {});
    const app = (name: keyof typeof SLEEP_SECONDS, node: string, ports: string[]): string[] => [
      `  ${name}:`,
      `    image: ${image.name}`,
      `    command: ["sleep", "${SLEEP_SECONDS[name]}"]`,
      ...(ports.length > 0 ? [`    ports: ${JSON.stringify(ports)}`] : []),
      '    deploy:',
      '      replicas: 1',
      `      placement: { constraints: ["node.id == ${node}"] }`,
    ];
    const file = ['services:', ...app('a', 'n1', []), ...app('b', 'n2', [String(IPERF_PORT), String(ACCEPT_PORT)]), ...app('c', 'n3', []), ''].join('\n');
    await api('POST', '/v1/deploy', { fileName: 'bench.yaml', content: file, tenant: 'acme' });
    const containerOf = (name: keyof typeof SLEEP_SECONDS): Promise<Place> =>
      until(`container ${name} runs`, async () => {
        const [found] = sleepPids([SLEEP_SECONDS[name]]).map(containerNetwork).filter((entry): entry is { namespace: string; address: string } => entry !== undefined);
        if (found === undefined) return 'not yet';
        containerNamespaces.add(found.namespace);
        return { label: `container ${name}`, ...found };
      }, 120_000);
    const containerA = await containerOf('a');
    const containerB = await containerOf('b');
    await containerOf('c');
    const [n1, n2] = network.hosts;
    const hostA: Place = { label: 'host n1', namespace: n1!.namespace, address: n1!.address };
    const hostB: Place = { label: 'host n2', namespace: n2!.namespace, address: n2!.address };
    await until('every instance reports its endpoint', async () => {
      const listed = ((await api('GET', '/v1/instances')) as { instances: { status: { endpoint?: { address: string } } }[] }).instances;
      return listed.filter((instance) => instance.status.endpoint !== undefined).length === 3 ? true : 'not yet';
    }, 60_000);
    await until('container a reaches b over the overlay', async () => (await latencyOnce(containerA, containerB)) ? true : 'no answer', 20_000);

    // Throughput and latency, overlay and bare alternating, so drift hits both alike.
    for (const place of [containerB, hostB]) helpers.push(startIn(place.namespace, 'iperf3', ['-s', '-p', String(IPERF_PORT)]));
    await new Promise((resolve) => setTimeout(resolve, 500));
    const rows: { round: number; path: string; bitsPerSecond: number; minUs: number; averageUs: number }[] = [];
    for (let round = 1; round <= settings.rounds; round++) {
      const order = round % 2 === 1 ? (['overlay', 'bare'] as const) : (['bare', 'overlay'] as const);
      for (const path of order) {
        const [from, to] = path === 'overlay' ? [containerA, containerB] : [hostA, hostB];
        log(`round ${round}: ${path} (${from.label} -> ${to.label})`);
        const bitsPerSecond = await throughput(from, to, settings.seconds);
        const { minUs, averageUs } = await latency(from, to);
        rows.push({ round, path, bitsPerSecond, minUs, averageUs });
      }
    }

    // Connections through the VIP beside straight to the instance.
    const vip = ((await api('GET', '/v1/apps/acme/b')) as { vip?: string }).vip;
    helpers.push(startIn(containerB.namespace, process.execPath, [SELF, '--accept-worker', String(ACCEPT_PORT)]));
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const connections: { round: number; target: string; perSecond: number }[] = [];
    for (let round = 1; round <= settings.rounds; round++) {
      const targets = vip === undefined ? [['direct', containerB.address]] : round % 2 === 1 ? [['vip', vip], ['direct', containerB.address]] : [['direct', containerB.address], ['vip', vip]];
      for (const [target, address] of targets) {
        log(`round ${round}: connections to ${target} ${address}`);
        connections.push({ round, target: target!, perSecond: await connectionRate(containerA, address!, Math.min(settings.seconds, 3)) });
      }
    }

    // A policy write until its rule is in every node's kernel: a tenant-wide policy, so every node (each runs one of acme's apps) enforces it.
    const trials: PolicyTrial[] = [];
    const pollMs: number[] = [];
    for (let trial = 1; trial <= settings.policyTrials; trial++) {
      const port = 10_000 + trial;
      const started = process.hrtime.bigint();
      const watching = firstSeen(network.hosts, `--dports ${port}`, started, 10_000);
      await api('PUT', `/v1/policies/acme/bench-${trial}`, { apps: [], ingress: [{ fromTenants: ['acme'] }, { fromCidrs: ['0.0.0.0/0'], ports: [port] }] });
      const answerMs = Number(process.hrtime.bigint() - started) / 1e6;
      const { seen, pollMs: polls } = await watching;
      pollMs.push(...polls);
      trials.push({ answerMs, seenMs: seen, everywhereMs: Math.max(...Object.values(seen)) });
      log(`policy ${trial}: answered in ${answerMs.toFixed(1)} ms, in every kernel by ${Math.max(...Object.values(seen)).toFixed(1)} ms`);
      await api('DELETE', `/v1/policies/acme/bench-${trial}`);
    }

    report({ settings, machine: { ...machine, iperf3: iperf }, rows, connections, vip, trials, pollMedianMs: median(pollMs) ?? 0 });
    finished = true;
  } finally {
    process.removeListener('SIGINT', interrupted);
    await cleanUp();
  }
}

/** One ping from `from` to `to`: whether it came back. */
async function latencyOnce(from: Place, to: Place): Promise<boolean> {
  return inNamespace(from.namespace, 'busybox', ['ping', '-c', '1', '-W', '1', to.address]).then(
    () => true,
    () => false,
  );
}

interface Report {
  settings: Options;
  machine: ReturnType<typeof describeMachine> & { iperf3: string };
  rows: { round: number; path: string; bitsPerSecond: number; minUs: number; averageUs: number }[];
  connections: { round: number; target: string; perSecond: number }[];
  vip: string | undefined;
  trials: PolicyTrial[];
  pollMedianMs: number;
}

function report(result: Report): void {
  const { settings, machine, rows, connections, trials } = result;
  const of = (path: string, pick: (row: Report['rows'][number]) => number): number => median(rows.filter((row) => row.path === path).map(pick)) ?? Number.NaN;
  const overlayGbps = of('overlay', (row) => row.bitsPerSecond) / 1e9;
  const bareGbps = of('bare', (row) => row.bitsPerSecond) / 1e9;
  const addedUs = of('overlay', (row) => row.averageUs) - of('bare', (row) => row.averageUs);
  // The minimum RTT is what the path costs with no wait for a busy core: on a loaded machine the average is mostly scheduling.
  const addedMinUs = of('overlay', (row) => row.minUs) - of('bare', (row) => row.minUs);
  const rate = (target: string): number => median(connections.filter((entry) => entry.target === target).map((entry) => entry.perSecond)) ?? Number.NaN;
  const everywhere = trials.map((trial) => trial.everywhereMs).sort((left, right) => left - right);
  const lines = [
    'network bench: overlay against bare veth, VIP against direct, policy write to enforcement',
    `settings: ${settings.rounds} rounds, iperf3 ${settings.seconds} s one TCP stream, ping -A x${PING_COUNT}, connections ${Math.min(settings.seconds, 3)} s sequential, ${settings.policyTrials} policy trials`,
    `machine: ${machine.cpuModel}, ${machine.cores} cores, ${machine.memoryGiB} GiB, kernel ${machine.kernel}, node ${machine.node}, ${machine.iperf3}, load ${machine.loadAverageAtStart} at start`,
    'paths: overlay = container on n1 -> container on n2 (veth, bridge hm0, VXLAN hmvx0, the hosts\' veth and bridge); bare = host n1 -> host n2 (the veth and bridge the overlay rides on)',
    '',
    'round  path     Gbit/s   ping min us  ping avg us',
    ...rows.map((row) => `${String(row.round).padEnd(6)} ${row.path.padEnd(8)} ${(row.bitsPerSecond / 1e9).toFixed(2).padStart(6)}   ${row.minUs.toFixed(0).padStart(11)}  ${row.averageUs.toFixed(0).padStart(11)}`),
    '',
    `median throughput: overlay ${overlayGbps.toFixed(2)} Gbit/s, bare ${bareGbps.toFixed(2)} Gbit/s, ratio ${(overlayGbps / bareGbps).toFixed(2)} (target >= 0.9)`,
    `median added latency (avg RTT, overlay - bare): ${addedUs.toFixed(0)} us (target < 50 us); by min RTT: ${addedMinUs.toFixed(0)} us`,
    `connections/s, median: ${result.vip === undefined ? 'no VIP' : `VIP ${result.vip} ${rate('vip').toFixed(0)}`}, direct ${rate('direct').toFixed(0)}`,
    '',
    'policy trial  answer ms  ' + ['n1', 'n2', 'n3'].map((node) => `${node} ms`.padStart(8)).join(' ') + '  everywhere ms',
    ...trials.map((trial, index) => `${String(index + 1).padEnd(12)}  ${trial.answerMs.toFixed(1).padStart(9)}  ${['n1', 'n2', 'n3'].map((node) => (trial.seenMs[node] ?? Number.NaN).toFixed(1).padStart(8)).join(' ')}  ${trial.everywhereMs.toFixed(1).padStart(13)}`),
    `policy in force everywhere (from the request sent): median ${(median(everywhere) ?? Number.NaN).toFixed(1)} ms, max ${(everywhere.at(-1) ?? Number.NaN).toFixed(1)} ms (target < 1000 ms); resolution: one iptables-save per node (median ${result.pollMedianMs.toFixed(1)} ms) and a ${POLL_PAUSE_MS} ms pause`,
  ];
  console.log(lines.join('\n'));
  if (settings.json) console.log(JSON.stringify({ ...result, summary: { overlayGbps, bareGbps, throughputRatio: overlayGbps / bareGbps, addedLatencyUs: addedUs, addedMinLatencyUs: addedMinUs, vipConnectionsPerSecond: rate('vip'), directConnectionsPerSecond: rate('direct'), policyEverywhereMedianMs: median(everywhere), policyEverywhereMaxMs: everywhere.at(-1) } }));
}

const argv = process.argv.slice(2);
if (argv[0] === '--connect-worker') await connectWorker(argv[1]!, Number(argv[2]), Number(argv[3]));
else if (argv[0] === '--accept-worker') acceptWorker(Number(argv[1]));
else
  await main().catch((error: Error) => {
    console.error(error.message);
    process.exitCode = 1;
  });
