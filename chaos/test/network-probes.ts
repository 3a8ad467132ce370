/**
 * What the network tests (`network-hosts.test.ts` and its cases) use to look
 * at a cluster of host agents from outside: connections and pings from a
 * container's namespace, the containers a test runs (found by the unique
 * `sleep S` each runs), the endpoints the instances report, iptables-save of
 * a host, a metric's value.
 */
import { execFile, spawn } from 'node:child_process';
import { command, type Host } from '../network.js';
import { containerNetwork, sleepPids, until } from './host-agents.js';
import type { HostCluster } from './host-cluster.js';

/**
 * The `stop_grace_period` line of every test container. Their commands end
 * in `exec sleep S`: sleep is the container's PID 1 and has no handler for
 * SIGTERM, so the kernel drops the stop signal and each stop (a delete, an
 * update, a move, the emptying between cases) waited out the whole default
 * grace, 10 s, before the SIGKILL. No case checks the grace period; with
 * 1 s every stop still goes SIGTERM, then SIGKILL.
 */
export const STOP_GRACE_LINE = '    stop_grace_period: 1s';

/** One test of the network suite: its title, the containers it runs (for the clean-up) and its body. */
export interface NetworkCase {
  title: string;
  /** The `sleep` arguments that mark its containers. */
  sleepSeconds: readonly string[];
  /** The apps whose containers it runs. */
  runcApps: readonly { tenant: string; app: string }[];
  body(cluster: HostCluster): Promise<void>;
}

/** A container of the test: its named network namespace and eth0 address. */
export interface Container {
  namespace: string;
  address: string;
}

/**
 * What the listener at `address:port` says to a TCP connection from
 * `from`'s namespace (busybox nc, 2 s), trimmed, or undefined when nothing
 * arrives (a dropped SYN); then `lastDenial()` says what nc said.
 */
export function answerOf(from: { namespace: string }, address: string, port: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    execFile('ip', ['netns', 'exec', from.namespace, '/bin/busybox', 'timeout', '4', '/bin/busybox', 'sh', '-c', `/bin/busybox nc -w 2 ${address} ${port} </dev/null`], { timeout: 10_000 }, (error, stdout, stderr) => {
      if (stdout.startsWith('ok')) return resolve(stdout.trim());
      denial = `${error?.message ?? ''} ${stderr}`.trim();
      resolve(undefined);
    });
  });
}

/** 'allow' when the listener's "ok" arrives (every listener of the tests answers "ok ..."), 'deny' when nothing does. */
export async function reach(from: { namespace: string }, address: string, port: number): Promise<'allow' | 'deny'> {
  return (await answerOf(from, address, port)) === undefined ? 'deny' : 'allow';
}

let denial = '';

/** Why the last `reach` or `answerOf` got nothing (named when a wait for 'allow' times out). */
export function lastDenial(): string {
  return denial;
}

/** Whether one ICMP echo from `from`'s namespace to `address` is answered within 2 s. */
export function ping(from: { namespace: string }, address: string): Promise<boolean> {
  return command('ip', ['netns', 'exec', from.namespace, '/bin/busybox', 'ping', '-c', '1', '-W', '2', address]).then(
    () => true,
    () => false,
  );
}

/** The tenant network pool the agents' leader sets at bootstrap (`--tenant-network-cidr`'s default, 10.224.0.0/12). */
export const TENANT_POOL_ADDRESS = /^10\.(22[4-9]|23\d)\.\d+\.\d+$/;

/** The tenant network block (a /20 of the pool) that holds `address`. */
function networkBlockOf(address: string): string {
  const [a, b, c] = address.split('.').map(Number);
  return `${a}.${b}.${c! & 0xf0}.0/20`;
}

/**
 * Waits until exactly `count` containers run `sleep <seconds>` (2 minutes
 * at most); adds their namespaces to the cluster's clean-up. Every one is
 * on a tenant network (its eth0 address in the pool): tenant networks are
 * how containers are attached, and the cases hold them to it.
 */
export async function containersOf(cluster: HostCluster, seconds: string, count: number): Promise<Container[]> {
  const found = await until(
    `${count} containers with sleep ${seconds} run`,
    async () => {
      const found = sleepPids([seconds]).map(containerNetwork).filter((entry): entry is Container => entry !== undefined);
      for (const entry of found) cluster.containerNamespaces.add(entry.namespace);
      return found.length === count ? found : `${found.length} found`;
    },
    120_000,
  );
  const outside = found.filter((entry) => !TENANT_POOL_ADDRESS.test(entry.address));
  if (outside.length > 0) throw new Error(`containers with sleep ${seconds} are not on a tenant network: ${outside.map((entry) => entry.address).join(', ')}`);
  return found;
}

/** An instance as `GET /v1/instances` lists it, with what the tests read. */
export interface ListedInstance {
  id: string;
  app: string;
  node: string;
  status: { endpoint?: { address: string } };
}

/**
 * Waits until the instances in the state report exactly `addresses` as
 * their endpoints (a minute at most): enforcement and services need them.
 */
export function endpointsReported(cluster: HostCluster, addresses: readonly string[]): Promise<ListedInstance[]> {
  const wanted = JSON.stringify([...addresses].sort());
  return until(
    'every instance reports its endpoint',
    async () => {
      const { instances } = (await cluster.api('GET', '/v1/instances')) as { instances: ListedInstance[] };
      const reported = JSON.stringify(instances.map((instance) => instance.status.endpoint?.address).sort());
      return reported === wanted ? instances : reported;
    },
    60_000,
  );
}

/** `iptables-save -t <table>` in a host's namespace. */
export function tableOf(host: Host, table: 'filter' | 'nat' | 'mangle'): Promise<string> {
  return command('ip', ['netns', 'exec', host.namespace, 'iptables-save', '-t', table]);
}

/** A metric's value in `metrics` (Prometheus text), 0 when absent. */
export function metricValue(metrics: string, name: string): number {
  return Number(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\d+)`, 'm').exec(metrics)?.[1] ?? 0);
}

/**
 * Waits until node `index`'s metric `name` exceeds `above` (15 s at most),
 * answering the metrics text: an agent counts a repair after it rewrote the
 * kernel's rules and read them back, so a test that saw the rules back may
 * read the counter before it moved.
 */
export async function metricAbove(cluster: HostCluster, index: number, name: string, above: number): Promise<string> {
  const { metrics } = await until(
    `${name} on n${index + 1} above ${above}`,
    async () => {
      const text = await cluster.text(index, '/metrics');
      // until() takes a string for "not yet": the text goes back wrapped.
      return metricValue(text, name) > above ? { metrics: text } : text.split('\n').filter((line) => line.startsWith(name)).join('; ') || `no ${name}`;
    },
    15_000,
  );
  return metrics;
}

/**
 * Waits until `host`'s chains let each of `addresses` in (30 s at most):
 * an address of the node subnets once its tenant chain lists it (the
 * instances' endpoint reports applied there and the rules written, which
 * takes a reconcile or two, seconds on a loaded machine); an address of a
 * tenant network once the chain of its network lets the network's block in
 * (a /20 of the pool). Before that, a connection between two instances of
 * one tenant may be dropped as from an unknown address.
 */
export function admitted(host: Host, addresses: readonly string[]): Promise<true> {
  return until(
    `${host.namespace} lets ${addresses.join(', ')} in`,
    async () => {
      const filter = await tableOf(host, 'filter');
      const missing = addresses.filter((address) => !filter.includes(TENANT_POOL_ADDRESS.test(address) ? `-s ${networkBlockOf(address)} ` : `-s ${address}/32 -j RETURN`));
      return missing.length === 0 ? true : `not yet: ${missing.join(', ')}`;
    },
    30_000,
  );
}

let lookupOutput = '';

/** What the last `lookupInside` printed, for failure messages. */
export function lastLookupOutput(): string {
  return lookupOutput;
}

/** busybox nslookup of `name` inside the container of `pid` (its root, its resolv.conf, its network): the A addresses in answer order, or 'NXDOMAIN'. */
export async function lookupInside(pid: number, name: string): Promise<string[] | 'NXDOMAIN'> {
  const output = await new Promise<string>((resolve) => {
    const child = spawn('nsenter', ['-t', String(pid), '-m', '-n', '-r', '/bin/busybox', 'nslookup', '-type=a', name], { stdio: ['ignore', 'pipe', 'pipe'] });
    let text = '';
    child.stdout.on('data', (chunk: Buffer) => (text += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (text += chunk.toString()));
    child.on('close', () => resolve(text));
  });
  lookupOutput = output;
  // busybox tries each search domain and prints the misses too: answers first, NXDOMAIN only without any.
  const answers = output.split('\n\n').slice(1).join('\n');
  const addresses = [...answers.matchAll(/^Address:\s+(\d+\.\d+\.\d+\.\d+)$/gm)].map((match) => match[1]!);
  return addresses.length === 0 && output.includes('NXDOMAIN') ? 'NXDOMAIN' : addresses;
}
