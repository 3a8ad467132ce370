/**
 * Real agent processes for tests: each node is `node dist/src/agent/main.js`
 * on loopback with free ports and its own data directory under one temporary
 * folder. `cleanup()` kills whatever still runs (by pid) and removes the folder.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fetch } from 'undici';
import { dataDirApiAgent } from '../../api/tls.js';
import { readableLogLine } from '../agent-log.js';
import { isWarmNetworkName } from '../../executor/containerd/warm-pool.js';
import { freePorts } from '../../../consensus/test/fixtures/free-ports.js';

const MAIN = fileURLToPath(new URL('../main.js', import.meta.url));
/** The product's CLI, for what only it does (`join --discover`). */
export const CLI = fileURLToPath(new URL('../../../../bin/hivemind.js', import.meta.url));
const LOG_LINES_MAX = 400;

/** Loopback ports free for TCP and UDP that no outgoing connection takes (free-ports.ts). */
export { freePorts };

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `check` until it returns a value other than undefined/false, or throws after `timeoutMs`. */
export async function eventually<T>(what: string, check: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 15_000, intervalMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined && value !== false) return value;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError ? ` (last error: ${(lastError as Error).message})` : ''}`);
    await sleep(intervalMs);
  }
}

export interface HttpAnswer {
  status: number;
  body: any;
  index: number;
  headers: Headers;
}

/** One node: its ports, directory, and process (when running). */
export class TestNode {
  process: ChildProcess | undefined;
  exited: Promise<number | null> = Promise.resolve(null);
  readonly stdout: string[] = [];
  readonly stderr: string[] = [];

  constructor(
    readonly cluster: TestCluster,
    readonly name: string,
    readonly apiPort: number,
    readonly peerPort: number,
    readonly dataDir: string,
  ) {}

  get peerAddress(): string {
    return `127.0.0.1:${this.peerPort}`;
  }

  get running(): boolean {
    return this.process !== undefined && this.process.exitCode === null && this.process.signalCode === null;
  }

  /** Starts `main.js <command...>` with this node's flags. */
  start(command: string[], extraFlags: string[] = [], entry: string = this.cluster.entry): void {
    if (this.running) throw new Error(`${this.name} already runs`);
    const child = spawn(
      process.execPath,
      [...this.cluster.nodeFlags, entry, ...command, '--name', this.name, '--data-dir', this.dataDir, '--bind', '127.0.0.1', '--advertise', '127.0.0.1',
        '--api-port', String(this.apiPort), '--peer-port', String(this.peerPort), '--gossip-port', '0', '--dns-port', '0', '--proxy-port', '0', '--tick-ms', String(this.cluster.tickMs), ...this.cluster.extraFlags, ...extraFlags],
      { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, HIVEMIND_TOKEN: '' } },
    );
    this.process = child;
    collect(child.stdout!, this.stdout);
    collect(child.stderr!, this.stderr);
    this.exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
  }

  /** Runs `main.js <command...>` to completion (recover); resolves with its exit code and output. */
  async runOnce(command: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
    const child = spawn(process.execPath, [MAIN, ...command, '--data-dir', this.dataDir, '--name', this.name], { stdio: ['ignore', 'pipe', 'pipe'] });
    const stdout: string[] = [];
    const stderr: string[] = [];
    collect(child.stdout, stdout);
    collect(child.stderr, stderr);
    const code = await new Promise<number | null>((resolve) => child.once('exit', (exitCode) => resolve(exitCode)));
    return { code, stdout: stdout.join('\n'), stderr: stderr.join('\n') };
  }

  /** The exit code, once the process exits; throws if it still runs after `timeoutMs`. */
  async waitExit(timeoutMs = 30_000): Promise<number | null> {
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${this.name} still runs after ${timeoutMs} ms: ${this.stderr.slice(-5).join(' | ')}`)), timeoutMs);
    });
    try {
      return await Promise.race([this.exited, timedOut]);
    } finally {
      clearTimeout(timer);
    }
  }

  async kill9(): Promise<void> {
    if (!this.running) return;
    this.process!.kill('SIGKILL');
    await this.exited;
  }

  /** SIGTERM, then SIGKILL if it lingers. */
  async stop(): Promise<void> {
    if (!this.running) return;
    this.process!.kill('SIGTERM');
    await this.waitExit(5000).catch(() => this.kill9());
  }

  /** Waits until the API answers /v1/health with 200. */
  async waitHealthy(timeoutMs = 20_000): Promise<void> {
    await eventually(`${this.name} to serve`, async () => {
      if (!this.running) throw new Error(`${this.name} exited: ${this.stderr.slice(-5).join(' | ')}`);
      const answer = await this.request('GET', '/v1/health', undefined, { token: null });
      return answer.status === 200;
    }, timeoutMs);
  }

  /** One HTTP request to this node's API, with the cluster token unless `token` says otherwise. */
  async request(method: string, path: string, body?: unknown, options: { token?: string | null; headers?: Record<string, string>; timeoutMs?: number } = {}): Promise<HttpAnswer> {
    const token = options.token === undefined ? this.cluster.token : options.token;
    const headers: Record<string, string> = { ...(options.headers ?? {}) };
    if (token) headers.authorization = `Bearer ${token}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    const response = await fetch(`https://127.0.0.1:${this.apiPort}${path}`, {
      dispatcher: dataDirApiAgent(this.dataDir),
      method,
      headers,
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
      signal: AbortSignal.timeout(options.timeoutMs ?? 15_000),
    });
    const text = await response.text();
    let parsed: unknown = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      // Not JSON (metrics): keep the text.
    }
    return { status: response.status, body: parsed, index: Number(response.headers.get('x-hivemind-index') ?? -1), headers: response.headers };
  }

  async status(): Promise<any> {
    const answer = await this.request('GET', '/v1/status?stale=true');
    if (answer.status !== 200) throw new Error(`status of ${this.name}: ${answer.status} ${JSON.stringify(answer.body)}`);
    return answer.body;
  }

  logTail(lines = 40): string {
    return [...this.stderr.slice(-lines), ...this.stdout.slice(-5)].map((line) => `    [${this.name}] ${line}`).join('\n');
  }
}

/** Collects a child's output a line at a time; the agent's JSON log lines (its stderr is a pipe) in their readable form. */
function collect(stream: NodeJS.ReadableStream, into: string[]): void {
  let partial = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    const lines = (partial + chunk).split('\n');
    partial = lines.pop() ?? '';
    into.push(...lines.map(readableLogLine));
    if (into.length > LOG_LINES_MAX) into.splice(0, into.length - LOG_LINES_MAX);
  });
}

/** This node's TLS material, read from its data directory (tests that play a member). */
export function tlsMaterialOf(node: TestNode): { keyPem: string; certificatePem: string; caPems: string[] } {
  return {
    keyPem: readFileSync(join(node.dataDir, 'tls', 'node.key'), 'utf8'),
    certificatePem: readFileSync(join(node.dataDir, 'tls', 'node.crt'), 'utf8'),
    caPems: [readFileSync(join(node.dataDir, 'tls', 'ca.crt'), 'utf8')],
  };
}

/** A set of nodes sharing one temporary folder and one token. */
export class TestCluster {
  readonly root = mkdtempSync(join(tmpdir(), 'hivemind-cluster-'));
  readonly nodes = new Map<string, TestNode>();
  token = '';
  /** Flags for `node` itself (before the script), e.g. those `bin/hivemind.js` runs with (`agentNodeFlags()`). */
  nodeFlags: string[] = [];
  /** The script every node runs (`main.js`; bench/footprint.ts's `--entry` tries another build of it). */
  entry: string = MAIN;

  constructor(
    readonly tickMs = 50,
    readonly extraFlags: string[] = [],
  ) {}

  async add(name: string): Promise<TestNode> {
    const [apiPort, peerPort] = await freePorts(2);
    const node = new TestNode(this, name, apiPort!, peerPort!, join(this.root, name));
    this.nodes.set(name, node);
    return node;
  }

  node(name: string): TestNode {
    const node = this.nodes.get(name);
    if (node === undefined) throw new Error(`no node ${name}`);
    return node;
  }

  /** Starts the first node and reads the join token it prints. */
  async bootstrap(name: string): Promise<TestNode> {
    const node = await this.add(name);
    node.start(['agent']);
    this.token = await eventually(`${name} to print its join token`, () => {
      if (!node.running) throw new Error(`${name} exited: ${node.stderr.slice(-5).join(' | ')}`);
      const line = node.stdout.find((text) => text.startsWith('join token: '));
      return line?.slice('join token: '.length).trim();
    }, 20_000, 50);
    await node.waitHealthy();
    return node;
  }

  async join(name: string, seed: TestNode, extraFlags: string[] = []): Promise<TestNode> {
    const node = await this.add(name);
    node.start(['join', seed.peerAddress, '--token', this.token], extraFlags);
    await node.waitHealthy();
    return node;
  }

  running(): TestNode[] {
    return [...this.nodes.values()].filter((node) => node.running);
  }

  /** The node every running node agrees leads, once they do. */
  async leader(among: TestNode[] = this.running()): Promise<TestNode> {
    return eventually('a leader all agree on', async () => {
      const statuses = await Promise.all(among.map((node) => node.status()));
      const leader = statuses[0]?.leader;
      if (!leader || !statuses.every((status) => status.leader === leader)) return undefined;
      return this.nodes.get(leader);
    }, 20_000);
  }

  logs(): string {
    return [...this.nodes.values()].map((node) => node.logTail()).join('\n');
  }

  /** Wraps a test body so that a failure prints every node's recent log first. */
  withLogs<T>(body: () => Promise<T>): () => Promise<T> {
    return async () => {
      try {
        return await body();
      } catch (error) {
        console.error(this.logs());
        throw error;
      }
    };
  }

  async cleanup(): Promise<void> {
    await Promise.all([...this.nodes.values()].map((node) => node.kill9()));
    killWorkloadsUnder(this.root);
    removeWarmNetworksUnder(this.root);
    rmSync(this.root, { recursive: true, force: true });
  }
}

/**
 * Deletes the warm pool's network namespaces that killed agents under `root`
 * left (a crashed agent keeps its free entries for the next start to adopt;
 * a test's nodes never start again). Each entry has a record file named
 * after its namespace in `<data-dir>/containerd-runtime/warm-networks/`.
 */
export function removeWarmNetworksUnder(root: string): void {
  let nodes: string[];
  try {
    nodes = readdirSync(root);
  } catch {
    return;
  }
  for (const node of nodes) {
    let records: string[];
    try {
      records = readdirSync(join(root, node, 'containerd-runtime', 'warm-networks'));
    } catch {
      continue;
    }
    for (const record of records) {
      const name = record.replace(/\.json$/, '');
      if (isWarmNetworkName(name) && existsSync(`/run/netns/${name}`)) spawnSync('ip', ['netns', 'delete', name], { stdio: 'ignore' });
    }
  }
}

/**
 * Kills what the nodes' executors started and left running (workloads outlive
 * their agent by design): every process group whose leader's command line
 * names `root` (the process runtime's wrapper names its exit file there).
 */
export function killWorkloadsUnder(root: string): void {
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      if (!readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes(root)) continue;
      process.kill(-Number(entry), 'SIGKILL');
    } catch {
      // Gone in between, or not a group leader.
      try {
        process.kill(Number(entry), 'SIGKILL');
      } catch {
        // Gone.
      }
    }
  }
}
