/**
 * Images across the cluster: three network namespaces as hosts, each a real
 * agent with its own containerd, and the busybox image imported on n1 only.
 * An app with one instance per node runs on all three: n2 and n3 fetch the
 * image from a peer over the peer port (no registry holds it), keep it
 * under the same name and digest, and start from it. Teardown, also on
 * failure, as in the other multi-host tests. Needs root, iproute2,
 * iptables, containerd, runc, the CNI plugins and busybox; skipped
 * otherwise, saying why.
 */
import { existsSync } from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { skipReason } from '../../src/executor/containerd/test/harness.js';
import { missingPrerequisite } from '../network.js';
import { sleepPids, until } from './host-agents.js';
import { runOnHostCluster } from './host-cluster.js';

const SLEEP = '3671';
const RUNC_APPS = [{ tenant: 'acme', app: 'spread' }];

const unavailable =
  (await missingPrerequisite()) ?? skipReason() ?? (existsSync('/usr/lib/cni/bridge') ? null : 'the CNI plugins are not installed (containernetworking-plugins)');
const imagesTest = unavailable === null ? test : test.skip;
if (unavailable !== null) console.log(`skipping the peer image test: ${unavailable}`);

imagesTest('an image imported on one node runs on every node: the others fetch it from their peers', async () => {
  await runOnHostCluster({ prefix: 'hmimg', hosts: 3, runcApps: RUNC_APPS, sleepSeconds: [SLEEP], imageOnFirstNodeOnly: true }, async ({ nodes, client, image, api }) => {
    const imagesOn = async (origin: string): Promise<{ name: string; digest: string }[]> => {
      const answer = await client.call(origin, 'GET', '/v1/images', undefined, 5000);
      assert.ok(answer.kind === 'answer' && answer.status === 200, JSON.stringify(answer));
      return (answer as { body: { images: { name: string; digest: string }[] } }).body.images;
    };
    const [n1, n2, n3] = nodes as [typeof nodes[0], typeof nodes[0], typeof nodes[0]];
    const held = (await imagesOn(n1.origin)).find((entry) => entry.name === image.name);
    assert.ok(held !== undefined, 'n1 holds the image');
    assert.equal((await imagesOn(n2.origin)).map((entry) => entry.name), [], 'n2 holds no image before the deploy');

    await api('PUT', '/v1/tenants/acme', {});
    const file = ['services:', '  spread:', `    image: ${image.name}`, `    command: ["sleep", "${SLEEP}"]`, '    deploy:', '      replicas: 3', '      placement: { max_replicas_per_node: 1 }', ''].join('\n');
    await api('POST', '/v1/deploy', { fileName: 'spread.yaml', content: file, tenant: 'acme' });
    await until('an instance runs on every node', async () => {
      const instances = ((await api('GET', '/v1/instances')) as { instances: { node?: string; status: { state: string; message?: string } }[] }).instances;
      const running = instances.filter((instance) => instance.status.state === 'running' || instance.status.state === 'healthy');
      return running.length === 3 && new Set(running.map((instance) => instance.node)).size === 3 ? true : JSON.stringify(instances.map((instance) => [instance.node, instance.status.state, instance.status.message]));
    }, 120_000);
    assert.is(sleepPids([SLEEP]).length, 3, 'three containers run');
    for (const node of [n2, n3]) {
      const fetched = (await imagesOn(node.origin)).find((entry) => entry.name === image.name);
      assert.ok(fetched !== undefined, `${node.name} holds the image now`);
      assert.is(fetched.digest, held.digest, `${node.name} holds the same image as n1`);
    }
    await api('DELETE', '/v1/apps/acme/spread');
  });
});

test.run();
