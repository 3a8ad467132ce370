/**
 * The set-up and teardown the multi-host tests share: under the machine
 * lock, namespace hosts each running a real agent (the first bootstraps,
 * the others join it), every node holding an overlay subnet, and the test
 * busybox image uploaded to every node (or to the first only). The test runs in `body`; after it,
 * also on failure, the agents stop and whatever their containers left
 * outside the hosts is removed. The agents' logs are kept, and their folder
 * named, when `body` fails.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import * as assert from 'uvu/assert';
import { dataDirApiAgent } from '../../src/api/tls.js';
import { buildBusyboxImage } from '../../src/executor/containerd/oci-layout.js';
import { ApiClient, clusterCaBundle } from '../http.js';
import { holdMachineLock } from '../machine-lock.js';
import { rangeInUse, removeLeftovers, TestNetwork } from '../network.js';
import { HostAgent, removeContainerLeftovers, removeRuncLeftovers, until } from './host-agents.js';

/** A running cluster of host agents, as `body` gets it. */
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
}

export interface HostClusterOptions {
  /** Names the token and the temporary folders (`hmegr` gives `hmegr-…`). */
  prefix: string;
  hosts: number;
  /** The apps whose containers the test runs (for removeRuncLeftovers). */
  runcApps: readonly { tenant: string; app: string }[];
  /** The `sleep` arguments that mark the test's containers (for removeContainerLeftovers). */
  sleepSeconds: readonly string[];
  /** Upload the busybox image to the first node only (the others fetch it from their peers); default: to every node. */
  imageOnFirstNodeOnly?: boolean;
}

export async function runOnHostCluster(options: HostClusterOptions, body: (cluster: HostCluster) => Promise<void>): Promise<void> {
  const lock = await holdMachineLock((line) => console.log(line));
  await removeLeftovers();
  removeRuncLeftovers(options.runcApps);
  const inUse = await rangeInUse();
  assert.is(inUse, null, `the test range is in use: ${inUse}`);
  const dataRoot = mkdtempSync(join(tmpdir(), `${options.prefix}-`));
  const logDirectory = mkdtempSync(join(tmpdir(), `${options.prefix}-logs-`));
  let passed = false;
  const token = `${options.prefix}.${randomBytes(16).toString('hex')}`;
  const client = new ApiClient({ token, connectTimeoutMs: 1000, requestTimeoutMs: 10_000, caBundle: () => clusterCaBundle([join(dataRoot, 'n1')]) });
  const containerNamespaces = new Set<string>();
  let network: TestNetwork | undefined;
  const nodes: HostAgent[] = [];
  try {
    network = await TestNetwork.create(options.hosts);
    for (const host of network.hosts) nodes.push(new HostAgent(host, { token, dataRoot, logDirectory }));
    const first = nodes[0]!;
    const api = async (method: 'GET' | 'PUT' | 'POST' | 'DELETE', path: string, body?: unknown): Promise<unknown> => {
      const answer = await client.call(first.origin, method, path, body, 10_000);
      assert.ok(answer.kind === 'answer' && answer.status < 300, `${method} ${path}: ${JSON.stringify(answer)}`);
      return (answer as { body: unknown }).body;
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
    await body({ network, nodes, client, dataRoot, token, image, containerNamespaces, api });
    passed = true;
  } finally {
    if (passed) rmSync(logDirectory, { recursive: true, force: true });
    else console.log(`the agents' logs are kept in ${logDirectory}`);
    for (const node of nodes) await node.stop().catch(() => undefined);
    await client.close();
    removeContainerLeftovers(dataRoot, containerNamespaces, options.sleepSeconds);
    removeRuncLeftovers(options.runcApps);
    await network?.destroy().catch(() => undefined);
    await removeLeftovers();
    lock.release();
  }
}
