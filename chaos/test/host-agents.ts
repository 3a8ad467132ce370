/**
 * What the multi-host tests share (overlay, policies, services; the whole
 * set-up and teardown of a cluster is host-cluster.ts): a real
 * agent on one of the chaos harness's namespace hosts, a poll helper, and the
 * clean-up of what containers leave outside the hosts' namespaces. The tests
 * find their containers by the unique `sleep SECONDS` each runs.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, openSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Host } from '../network.js';

const BIN = fileURLToPath(new URL('../../../bin/hivemind.js', import.meta.url));

/**
 * An agent on a test host, entered with `nsenter --net` rather than `ip netns
 * exec`: the latter mounts a fresh sysfs, which hides the cgroup mounts runc
 * needs to start containers.
 */
export class HostAgent {
  readonly name: string;
  private child: ChildProcess | undefined;

  constructor(
    readonly host: Host,
    private readonly settings: { token: string; dataRoot: string; logDirectory: string },
  ) {
    this.name = `n${host.index + 1}`;
  }

  get origin(): string {
    return `https://${this.host.address}:7070`;
  }

  get peerAddress(): string {
    return `${this.host.address}:7071`;
  }

  start(mode: 'agent' | { join: string }): void {
    const log = openSync(join(this.settings.logDirectory, `${this.host.namespace}.log`), 'a');
    const subcommand = mode === 'agent' ? ['agent'] : ['join', mode.join];
    const args = [`--net=/run/netns/${this.host.namespace}`, process.execPath, BIN, ...subcommand, '--name', this.name, '--data-dir', join(this.settings.dataRoot, this.name), '--token', this.settings.token, '--bind', this.host.address, '--advertise', this.host.address, '--tick-ms', '50'];
    this.child = spawn('nsenter', args, { stdio: ['ignore', log, log], env: { ...process.env, HIVEMIND_WARM_NETWORKS: '1', HIVEMIND_NETWORK_DETACH_GRACE: '2s' } });
    closeSync(log);
  }

  async stop(): Promise<void> {
    const child = this.child;
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  }
}

/** Polls `check` every 250 ms until it answers a value, or fails after `timeoutMs` with the last reason. */
export async function until<T>(what: string, check: () => Promise<T | string>, timeoutMs: number): Promise<T> {
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

/** Pids of the processes running `sleep S` for any S of `seconds`. */
export function sleepPids(seconds: readonly string[]): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const line = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      if (seconds.some((value) => line === `sleep\0${value}\0`)) pids.push(Number(entry));
    } catch {
      // gone
    }
  }
  return pids;
}

/** The named network namespace of `pid` and its eth0 IPv4 address. */
export function containerNetwork(pid: number): { namespace: string; address: string } | undefined {
  const namespace = execFileSync('ip', ['netns', 'identify', String(pid)], { encoding: 'utf8' }).trim();
  if (namespace === '') return undefined;
  const links = JSON.parse(execFileSync('ip', ['-n', namespace, '-j', '-4', 'addr', 'show', 'dev', 'eth0'], { encoding: 'utf8' })) as { addr_info: { local: string }[] }[];
  const address = links[0]?.addr_info[0]?.local;
  return address === undefined ? undefined : { namespace, address };
}

/**
 * Kills what a failed run can leave outside the hosts' namespaces: the
 * containers' processes (`sleep S` for S of `seconds`), the container and
 * warm-pool namespaces under `dataRoot`, its mounts (volumes' views and
 * filesystems among them), the loop devices of its volumes, and the folder.
 */
export function removeContainerLeftovers(dataRoot: string, namespaces: Set<string>, seconds: readonly string[]): void {
  for (const pid of sleepPids(seconds)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
  if (existsSync(dataRoot)) {
    for (const node of readdirSync(dataRoot)) {
      // The node subnet's pool, and one pool per tenant network slice (`slice-pools.ts`).
      const slices = join(dataRoot, node, 'containerd-runtime', 'warm-networks-slices');
      const folders = [join(dataRoot, node, 'containerd-runtime', 'warm-networks'), ...(existsSync(slices) ? readdirSync(slices).map((bridge) => join(slices, bridge)) : [])];
      for (const folder of folders) {
        if (existsSync(folder)) for (const file of readdirSync(folder)) if (file.endsWith('.json')) namespaces.add(file.slice(0, -'.json'.length));
      }
    }
  }
  for (const namespace of namespaces) if (existsSync(`/run/netns/${namespace}`)) execFileSync('ip', ['netns', 'delete', namespace], { stdio: 'ignore' });
  const mounts = readFileSync('/proc/mounts', 'utf8').split('\n').map((line) => line.split(' ')[1] ?? '').filter((path) => path.startsWith(dataRoot)).sort().reverse();
  for (const mount of mounts) execFileSync('umount', ['-l', mount], { stdio: 'ignore' });
  // "/dev/loop3: [2049]:1234 (/tmp/…/n1/volumes/acme/data.12.ext4)"
  for (const line of execFileSync('losetup', ['-a'], { encoding: 'utf8' }).split('\n')) {
    if (line.includes(`(${dataRoot}/`)) execFileSync('losetup', ['-d', line.slice(0, line.indexOf(':'))], { stdio: 'ignore' });
  }
  rmSync(dataRoot, { recursive: true, force: true });
}

/** The warm-pool network namespaces (`hm-w-…`, src/executor/containerd/warm-pool.ts) in /run/netns now. */
export function warmNamespaces(): Set<string> {
  return new Set(existsSync('/run/netns') ? readdirSync('/run/netns').filter((name) => /^hm-w-[0-9a-f]{12}$/.test(name)) : []);
}

/**
 * Deletes the warm-pool namespaces made since `before` was taken: the test
 * agents' pools, free ones and those their containers took, which an agent
 * that is killed cannot release (and whose host namespace, with the bridge
 * they were attached to, is gone). Call it under the machine lock, so that
 * no other test's agents made any meanwhile.
 */
export function removeWarmNamespacesSince(before: ReadonlySet<string>): void {
  for (const name of warmNamespaces()) {
    if (before.has(name)) continue;
    try {
      execFileSync('ip', ['netns', 'delete', name], { stdio: 'ignore' });
    } catch {
      rmSync(`/run/netns/${name}`, { force: true });
    }
  }
}

/** Where runc keeps the state of the containers of containerd's `hivemind` namespace (shared by every containerd on the machine). */
export const RUNC_STATE_DIRECTORY = '/run/containerd/runc/hivemind';

/**
 * Deletes runc's state of containers of these apps (`tenant.app.` instance id
 * prefixes) left by an earlier run that died: instance ids repeat from run
 * to run, and a leftover makes the next start fail ("container with given ID
 * already exists"). Call it before and after a run.
 */
export function removeRuncLeftovers(apps: readonly { tenant: string; app: string }[]): void {
  if (!existsSync(RUNC_STATE_DIRECTORY)) return;
  for (const id of readdirSync(RUNC_STATE_DIRECTORY)) {
    if (!apps.some(({ tenant, app }) => id.startsWith(`${tenant}.${app}.`))) continue;
    try {
      execFileSync('runc', ['--root', RUNC_STATE_DIRECTORY, 'delete', '--force', id], { stdio: 'ignore' });
    } catch {
      rmSync(join(RUNC_STATE_DIRECTORY, id), { recursive: true, force: true });
    }
  }
}
