/**
 * The set-up and teardown the multi-host tests share: under the machine
 * lock, namespace hosts each running a real agent (the first bootstraps,
 * the others join it), every node holding an overlay subnet, and the test
 * busybox image uploaded to every node (or to the first only). After the tests, also on failure,
 * the agents stop and whatever their containers left outside the hosts is
 * removed. The agents' logs are kept, and their folder named, when a test
 * fails.
 *
 * Two ways to use it: `runOnHostCluster` runs one body on a cluster of its
 * own; `hostClusterSuite` runs several tests of one file on one cluster, set
 * up by the first test and torn down after the last, and between tests
 * deletes every app and policy and waits until their containers are gone,
 * so each test starts from an empty cluster whatever the one before left.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { dataDirApiAgent } from '../../src/api/tls.js';
import { buildBusyboxImage } from '../../src/executor/containerd/oci-layout.js';
import { ApiClient, clusterCaBundle } from '../http.js';
import { holdMachineLock } from '../machine-lock.js';
import { rangeInUse, removeLeftovers, TestNetwork } from '../network.js';
import { HostAgent, RUNC_STATE_DIRECTORY, removeContainerLeftovers, removeRuncLeftovers, removeWarmNamespacesSince, sleepPids, until, warmNamespaces } from './host-agents.js';

/** A running cluster of host agents, as a test body gets it. */
export interface HostCluster {
  readonly network: TestNetwork;
  readonly nodes: readonly HostAgent[];
  readonly client: ApiClient;
  readonly dataRoot: string;
  readonly token: string;
  /** The busybox image every node holds (the first only, with `imageOnFirstNodeOnly`). */
  readonly image: Awaited<ReturnType<typeof buildBusyboxImage>>;
  /** The namespaces of the test's containers, removed at the end: add each one the test finds. */
  readonly containerNamespaces: Set<string>;
  /** Sends `method path` through the first node; fails the test on an answer of 300 or more. */
  api(method: 'GET' | 'PUT' | 'POST' | 'DELETE', path: string, body?: unknown): Promise<unknown>;
  /** GET `path` of node `index` (from 0) with the token: metrics and other plain-text routes. */
  text(index: number, path: string): Promise<string>;
}

export interface HostClusterOptions {
  /** Names the token and the temporary folders (`hmegr` gives `hmegr-…`). */
  prefix: string;
  hosts: number;
  /** The apps whose containers the tests run (for removeRuncLeftovers). */
  runcApps: readonly { tenant: string; app: string }[];
  /** The `sleep` arguments that mark the tests' containers (for removeContainerLeftovers). */
  sleepSeconds: readonly string[];
  /** Upload the busybox image to the first node only (the others fetch it from their peers); default: to every node. */
  imageOnFirstNodeOnly?: boolean;
}

/** A cluster set up by `startHostCluster`: `stop` tears it down (once). */
interface StartedHostCluster extends HostCluster {
  stop(passed: boolean): Promise<void>;
}

/**
 * Takes the machine lock and sets the cluster up. When a step fails, what
 * was made is torn down (logs kept) before the error is thrown.
 */
async function startHostCluster(options: HostClusterOptions): Promise<StartedHostCluster> {
  const lock = await holdMachineLock((line) => console.log(line));
  const warmBefore = warmNamespaces();
  const dataRoot = mkdtempSync(join(tmpdir(), `${options.prefix}-`));
  const logDirectory = mkdtempSync(join(tmpdir(), `${options.prefix}-logs-`));
  const token = `${options.prefix}.${randomBytes(16).toString('hex')}`;
  // A connection includes the TLS handshake, which waits for the agent to be scheduled: 5 s, for a loaded machine.
  const client = new ApiClient({ token, connectTimeoutMs: 5000, requestTimeoutMs: 10_000, caBundle: () => clusterCaBundle([join(dataRoot, 'n1')]) });
  const containerNamespaces = new Set<string>();
  const nodes: HostAgent[] = [];
  let network: TestNetwork | undefined;
  let stopped = false;
  const stop = async (passed: boolean): Promise<void> => {
    if (stopped) return;
    stopped = true;
    if (passed) rmSync(logDirectory, { recursive: true, force: true });
    else console.log(`the agents' logs are kept in ${logDirectory}`);
    for (const node of nodes) await node.stop().catch(() => undefined);
    await client.close();
    removeContainerLeftovers(dataRoot, containerNamespaces, options.sleepSeconds);
    removeRuncLeftovers(options.runcApps);
    await network?.destroy().catch(() => undefined);
    removeWarmNamespacesSince(warmBefore);
    await removeLeftovers();
    lock.release();
  };
  try {
    await removeLeftovers();
    removeRuncLeftovers(options.runcApps);
    const inUse = await rangeInUse();
    assert.is(inUse, null, `the test range is in use: ${inUse}`);
    network = await TestNetwork.create(options.hosts);
    for (const host of network.hosts) nodes.push(new HostAgent(host, { token, dataRoot, logDirectory }));
    const first = nodes[0]!;
    const api = async (method: 'GET' | 'PUT' | 'POST' | 'DELETE', path: string, body?: unknown): Promise<unknown> => {
      const answer = await client.call(first.origin, method, path, body, 10_000);
      assert.ok(answer.kind === 'answer' && answer.status < 300, `${method} ${path}: ${JSON.stringify(answer)}`);
      return (answer as { body: unknown }).body;
    };
    const text = async (index: number, path: string): Promise<string> => {
      const answer = await request(`${nodes[index]!.origin}${path}`, { dispatcher: dataDirApiAgent(join(dataRoot, 'n1')), headers: { authorization: `Bearer ${token}` } });
      return answer.body.text();
    };
    first.start('agent');
    await until('the first agent serves', async () => ((await client.call(first.origin, 'GET', '/v1/health', undefined, 1000)).kind === 'answer' ? true : 'no answer'), 30_000);
    for (const node of nodes.slice(1)) node.start({ join: first.peerAddress });
    await until('every node holds a subnet', async () => {
      const answer = await client.call(first.origin, 'GET', '/v1/nodes', undefined, 2000);
      if (answer.kind !== 'answer' || answer.status !== 200) return JSON.stringify(answer);
      const records = ((answer.body as { nodes?: { id: string; status: string; subnet?: string }[] }).nodes ?? []).filter((node) => node.status === 'up');
      return records.length === options.hosts && records.every((node) => node.subnet !== undefined) ? true : JSON.stringify(records);
    }, 60_000);

    const archive = join(dataRoot, 'busybox.tar');
    const image = await buildBusyboxImage({ outputPath: archive });
    const bytes = readFileSync(archive);
    for (const node of options.imageOnFirstNodeOnly === true ? [first] : nodes) {
      const answer = await request(`${node.origin}/v1/images/upload`, { dispatcher: dataDirApiAgent(join(dataRoot, 'n1')), method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/x-tar' }, body: bytes });
      assert.is(answer.statusCode, 200, `image upload to ${node.name}: ${await answer.body.text()}`);
      await answer.body.dump();
    }
    return { network, nodes, client, dataRoot, token, image, containerNamespaces, api, text, stop };
  } catch (error) {
    await stop(false);
    throw error;
  }
}

/** Runs `body` on a cluster of its own, set up before and torn down after, also on failure. */
export async function runOnHostCluster(options: HostClusterOptions, body: (cluster: HostCluster) => Promise<void>): Promise<void> {
  const cluster = await startHostCluster(options);
  let passed = false;
  try {
    await body(cluster);
    passed = true;
  } finally {
    await cluster.stop(passed);
  }
}

/** The tests of one file on one cluster (`hostClusterSuite`). */
export interface HostClusterSuite {
  /** Adds a test; skipped, as the whole suite, when the suite is unavailable. */
  test(name: string, body: (cluster: HostCluster) => Promise<void>): void;
  /** Runs the tests in the order they were added, then tears the cluster down. */
  run(): void;
}

/**
 * Several tests on one cluster: the first test sets it up (a failed set-up
 * fails every test, naming why), each test gets it empty (every app and
 * policy of the one before deleted, their instances and containers gone,
 * also after a failure), and it is torn down after the last, its logs kept
 * when any test failed. `unavailable` (why the hosts cannot be built here)
 * skips them all.
 */
export function hostClusterSuite(name: string, options: HostClusterOptions & { unavailable: string | null }): HostClusterSuite {
  const tests = suite(name);
  let started: Promise<StartedHostCluster> | undefined;
  let failed = false;
  let added = 0;
  if (options.unavailable !== null) console.log(`skipping the ${name} tests: ${options.unavailable}`);
  tests.after(async () => {
    const cluster = await started?.catch(() => undefined);
    await cluster?.stop(!failed);
  });
  return {
    test(title, body) {
      if (options.unavailable !== null) {
        tests.skip(title, async () => undefined);
        return;
      }
      const first = added === 0;
      added++;
      tests(title, async () => {
        const beganMs = Date.now();
        started ??= startHostCluster(options);
        const cluster = await started;
        const readyMs = Date.now();
        try {
          if (!first) await emptyCluster(cluster, options);
          await body(cluster);
        } catch (error) {
          failed = true;
          throw error;
        }
        await emptyCluster(cluster, options).catch((error: Error) => {
          failed = true;
          throw new Error(`the test passed, but what it deployed could not be removed: ${error.message}`);
        });
        // Where a suite's time goes, for whoever runs the file by hand.
        console.log(`${name}: ${first ? `cluster set up in ${((readyMs - beganMs) / 1000).toFixed(1)} s; ` : ''}"${title}" ${((Date.now() - readyMs) / 1000).toFixed(1)} s`);
      });
    },
    run() {
      tests.run();
    },
  };
}

/**
 * Deletes every app and policy, then waits until no instance is left in the
 * state, no container of the suite runs, and runc holds no state of the
 * suite's apps: their instance ids come back when an app of the same name is
 * deployed again (`tenant.app.slot.serial`, the serial starting over).
 */
async function emptyCluster(cluster: HostCluster, options: HostClusterOptions): Promise<void> {
  const { apps } = (await cluster.api('GET', '/v1/apps')) as { apps: { tenant: string; name: string }[] };
  for (const app of apps) await cluster.api('DELETE', `/v1/apps/${app.tenant}/${app.name}`);
  const { policies } = (await cluster.api('GET', '/v1/policies')) as { policies: { tenant: string; name: string }[] };
  for (const policy of policies) await cluster.api('DELETE', `/v1/policies/${policy.tenant}/${policy.name}`);
  await until(
    'the cluster is empty',
    async () => {
      const { instances } = (await cluster.api('GET', '/v1/instances')) as { instances: { id: string }[] };
      const running = sleepPids(options.sleepSeconds).length;
      const runc = existsSync(RUNC_STATE_DIRECTORY) ? readdirSync(RUNC_STATE_DIRECTORY).filter((id) => options.runcApps.some(({ tenant, app }) => id.startsWith(`${tenant}.${app}.`))) : [];
      return instances.length === 0 && running === 0 && runc.length === 0 ? true : `${instances.length} instances, ${running} containers, runc state of ${runc.join(', ') || 'none'}`;
    },
    60_000,
  );
}
