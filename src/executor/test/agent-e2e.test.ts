// End to end with a real agent process: deploy a process app of 3 replicas
// through the API; once the scheduler places them, all 3 answer, the logs
// route serves their output, and an agent restart restarts none of them.
// It needs the leader's scheduler to place instances: it waits for that.
import { join } from 'node:path';
import { request } from 'undici';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { TestCluster, eventually, freePorts } from '../../agent/test/harness.js';
import { ProcessRuntime } from '../process-runtime.js';

const cluster = new TestCluster(50);

async function answer(port: number): Promise<string | undefined> {
  try {
    const response = await request(`http://127.0.0.1:${port}/`, { headersTimeout: 2000, bodyTimeout: 2000 });
    return await response.body.text();
  } catch {
    return undefined;
  }
}

test.after(async () => {
  await cluster.cleanup().catch(() => {});
});

test('a process app deployed to a one-node cluster runs 3 replicas, serves logs, and survives an agent restart', cluster.withLogs(async () => {
  const node = await cluster.bootstrap('e1');
  const [basePort] = await freePorts(1);
  const ports = [basePort!, basePort! + 1, basePort! + 2];
  const server = "const p = Number(process.env.BASE_PORT) + Number(process.env.HIVEMIND_SLOT); require('node:http').createServer((q, s) => s.end(String(process.pid))).listen(p, '127.0.0.1', () => console.log('listening on ' + p)); process.on('SIGTERM', () => process.exit(0));";
  const content = [
    'services:',
    '  web:',
    `    command: [${JSON.stringify(process.execPath)}, "-e", ${JSON.stringify(server)}]`,
    `    environment: { BASE_PORT: "${basePort}" }`,
    '    deploy: { replicas: 3 }',
  ].join('\n');
  const deployed = await node.request('POST', '/v1/deploy', { fileName: 'web.yaml', content });
  assert.is(deployed.status, 200, JSON.stringify(deployed.body));
  try {
    const pids = await eventually('the 3 replicas to answer (after the scheduler places them)', async () => {
      const all = await Promise.all(ports.map(answer));
      return all.every((text) => text !== undefined) ? all : undefined;
    }, 60_000, 250);
    const instances = await eventually('the state to show them running', async () => {
      const found = (await node.request('GET', '/v1/apps/default/web')).body?.instances as { id: string; status: { state: string } }[] | undefined;
      return found?.length === 3 && found.every((instance) => instance.status.state === 'running') ? found : undefined;
    }, 30_000, 250);
    const log = await node.request('GET', `/v1/instances/${instances[0]!.id}/logs?tail=5`);
    assert.is(log.status, 200);
    const appLog = await node.request('GET', '/v1/apps/default/web/logs?tail=5');
    for (const instance of instances) assert.ok(String(appLog.body).includes(`[${instance.id}] listening on`), `app log has ${instance.id}: ${appLog.body}`);
    const escape = await node.request('GET', '/v1/instances/..%2F..%2Fraft%2FLOG/logs');
    assert.is(escape.status, 400, 'an id that is not an instance id names no file');

    await node.stop();
    node.start(['agent']);
    await node.waitHealthy();
    await new Promise((resolve) => setTimeout(resolve, 3000));
    assert.equal(await Promise.all(ports.map(answer)), pids, 'the same processes still answer: nothing restarted');
  } finally {
    const runtime = new ProcessRuntime({ stateDir: join(node.dataDir, 'executor', 'process') });
    await runtime.open();
    for (const workload of await runtime.list()) if (workload.state === 'running') await runtime.stop(workload.id, { signal: 'SIGKILL', graceMs: 0 });
    await runtime.close();
  }
}));

test.run();
