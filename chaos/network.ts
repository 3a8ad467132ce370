/**
 * Test hosts made of network namespaces: one bridge in the root namespace
 * (the harness's own address, `.1`), and per host a namespace with a veth
 * pair on the bridge and one address in the test range. Faults are iptables
 * rules in each namespace's own chain `hmchaos` (hooked into INPUT), so
 * healing is one flush per namespace, and only traffic between test hosts is
 * touched: the harness (`.1`) always reaches every node, as a client would.
 *
 * Everything is named with the prefix `hmchaos`; `removeLeftovers` removes
 * whatever an interrupted run left behind (processes in those namespaces
 * first, then the namespaces and links).
 */
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { isLiveNetns } from '../src/executor/containerd/network.js';

const run = promisify(execFile);
/** Where `ip netns` keeps its namespace files. */
const NETNS_FOLDER = '/run/netns';

/** Prefix of every namespace, link and chain the harness creates. */
export const NAME_PREFIX = 'hmchaos';
/** The test range: a /24 that must not be in use on the machine. */
export const SUBNET_PREFIX = '10.213.0';
const BRIDGE = `${NAME_PREFIX}-br`;
const CHAIN = NAME_PREFIX;
/** The harness's address on the bridge. */
export const HARNESS_ADDRESS = `${SUBNET_PREFIX}.1`;
/** Hosts at most (addresses .11 to .(10 + HOSTS_MAX)). */
export const HOSTS_MAX = 9;

/** One test host. `index` counts from 0. */
export interface Host {
  readonly index: number;
  readonly namespace: string;
  readonly address: string;
}

/** Runs a command, throwing an error with its stderr when it fails. */
export async function command(file: string, args: readonly string[]): Promise<string> {
  try {
    const { stdout } = await run(file, args, { timeout: 20_000 });
    return stdout;
  } catch (error) {
    const detail = (error as { stderr?: string }).stderr?.trim() || (error as Error).message;
    throw new Error(`${file} ${args.join(' ')}: ${detail}`);
  }
}

function inNamespace(host: Host, file: string, args: readonly string[]): Promise<string> {
  return command('ip', ['netns', 'exec', host.namespace, file, ...args]);
}

/** Why the harness cannot run here (not root, no `ip` or `iptables`), or null. */
export async function missingPrerequisite(): Promise<string | null> {
  if (typeof process.getuid === 'function' && process.getuid() !== 0) return 'the chaos harness needs root (network namespaces and iptables)';
  for (const [tool, args] of [['ip', ['-V']], ['iptables', ['--version']]] as const) {
    try {
      await command(tool, args);
    } catch {
      return `the chaos harness needs \`${tool}\` (Debian packages iproute2 and iptables)`;
    }
  }
  return null;
}

/** Kills processes left in the harness's namespaces and removes its namespaces and links. */
export async function removeLeftovers(): Promise<string[]> {
  const removed: string[] = [];
  const namespaces = (await command('ip', ['netns', 'list'])).split('\n').map((line) => line.split(' ')[0] ?? '').filter((name) => name.startsWith(`${NAME_PREFIX}-`));
  for (const namespace of namespaces) {
    const pids = (await command('ip', ['netns', 'pids', namespace]).catch(() => '')).split(/\s+/).filter((pid) => /^\d+$/.test(pid));
    for (const pid of pids) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {
        // Already gone.
      }
    }
    await command('ip', ['netns', 'delete', namespace]).catch(() => '');
    removed.push(`namespace ${namespace}${pids.length > 0 ? ` (killed ${pids.length} process(es))` : ''}`);
  }
  // Namespace files of agents run in `ip netns exec` and killed: held by no mount, so no one uses them.
  for (const name of existsSync(NETNS_FOLDER) ? readdirSync(NETNS_FOLDER) : []) {
    if (!name.startsWith('hm-') || isLiveNetns(join(NETNS_FOLDER, name))) continue;
    rmSync(join(NETNS_FOLDER, name), { force: true });
    removed.push(`stale namespace file ${name}`);
  }
  const links = (await command('ip', ['-o', 'link', 'show'])).split('\n').map((line) => /^\d+:\s+([^:@]+)/.exec(line)?.[1] ?? '').filter((name) => name.startsWith(`${NAME_PREFIX}-`));
  for (const link of links) {
    await command('ip', ['link', 'delete', link]).catch(() => '');
    removed.push(`link ${link}`);
  }
  return removed;
}

/** Whether some address or route on the machine already uses the test range (after leftovers are gone). */
export async function rangeInUse(): Promise<string | null> {
  const addresses = await command('ip', ['-o', 'addr', 'show']);
  const routes = await command('ip', ['route', 'show']);
  const needle = `${SUBNET_PREFIX}.`;
  const line = [...addresses.split('\n'), ...routes.split('\n')].find((text) => text.includes(needle));
  return line === undefined ? null : line.trim();
}

/** The bridge and the hosts; `destroy()` removes them. */
export class TestNetwork {
  private constructor(readonly hosts: readonly Host[]) {}

  /** Creates the bridge and `count` hosts. Cleans up what it made if a step fails. */
  static async create(count: number): Promise<TestNetwork> {
    if (count < 1 || count > HOSTS_MAX) throw new Error(`hosts must be 1 to ${HOSTS_MAX}, got ${count}`);
    const hosts = Array.from({ length: count }, (_, index): Host => ({ index, namespace: `${NAME_PREFIX}-h${index + 1}`, address: `${SUBNET_PREFIX}.${11 + index}` }));
    const network = new TestNetwork(hosts);
    try {
      await command('ip', ['link', 'add', BRIDGE, 'type', 'bridge']);
      await command('ip', ['addr', 'add', `${HARNESS_ADDRESS}/24`, 'dev', BRIDGE]);
      await command('ip', ['link', 'set', BRIDGE, 'up']);
      for (const host of hosts) await network.createHost(host);
    } catch (error) {
      await network.destroy();
      throw error;
    }
    return network;
  }

  private async createHost(host: Host): Promise<void> {
    const link = `${NAME_PREFIX}-v${host.index + 1}`;
    await command('ip', ['netns', 'add', host.namespace]);
    await command('ip', ['link', 'add', link, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', host.namespace]);
    await command('ip', ['link', 'set', link, 'master', BRIDGE, 'up']);
    await inNamespace(host, 'ip', ['addr', 'add', `${host.address}/24`, 'dev', 'eth0']);
    await inNamespace(host, 'ip', ['link', 'set', 'eth0', 'up']);
    await inNamespace(host, 'ip', ['link', 'set', 'lo', 'up']);
    await inNamespace(host, 'iptables', ['-w', '-N', CHAIN]);
    await inNamespace(host, 'iptables', ['-w', '-A', 'INPUT', '-j', CHAIN]);
  }

  /** Drops, at each host, packets arriving from the hosts listed for it. */
  async drop(grudge: ReadonlyMap<number, readonly number[]>): Promise<void> {
    for (const [at, from] of grudge) {
      const host = this.hosts[at]!;
      for (const source of from) await inNamespace(host, 'iptables', ['-w', '-A', CHAIN, '-s', this.hosts[source]!.address, '-j', 'DROP']);
    }
  }

  /** Drops, at each listed host, each packet from any other test host with `probability`. */
  async loss(at: readonly number[], probability: number): Promise<void> {
    for (const index of at) {
      const host = this.hosts[index]!;
      for (const source of this.hosts) {
        if (source.index === index) continue;
        await inNamespace(host, 'iptables', ['-w', '-A', CHAIN, '-s', source.address, '-m', 'statistic', '--mode', 'random', '--probability', String(probability), '-j', 'DROP']);
      }
    }
  }

  /** Removes every fault rule from every host. */
  async heal(): Promise<void> {
    await Promise.all(this.hosts.map((host) => inNamespace(host, 'iptables', ['-w', '-F', CHAIN])));
  }

  /** Removes the hosts and the bridge. Processes inside must be gone first (see `removeLeftovers`). */
  async destroy(): Promise<void> {
    await removeLeftovers();
  }
}
