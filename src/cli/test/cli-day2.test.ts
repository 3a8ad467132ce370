/**
 * Day-2 answers end to end, against a real node the CLI started: why an
 * instance does not run (the executor's own error in `ps`, `app`, the API,
 * and `deploy --wait` stopping early with it); a port a host process holds
 * is never published over it; node labels (`--label`, `nodes label`) and the
 * constraints that read them; a start-first update on a published port of
 * a one-node cluster, which falls back to stop-first.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { request } from 'undici';
import type { App, Instance, NodeRecord } from '../../state/types.js';
import { startAgent, type AgentProcess } from './agent-process.js';
import { runCli, type CliResult, type RunOptions } from './run-cli.js';

let agent: AgentProcess;
const scratch = mkdtempSync(join(tmpdir(), 'hivemind-cli-day2-'));

test.before(async () => {
  agent = await startAgent({ extraArgs: ['--label', 'zone=a', '--label', 'tier=web'] });
});

test.after(async () => {
  if (process.env.HIVEMIND_TEST_AGENT_OUTPUT) process.stderr.write(agent?.output() ?? '');
  await agent?.stop();
  rmSync(scratch, { recursive: true, force: true });
});

function hm(args: string[], options: RunOptions = {}): Promise<CliResult> {
  return runCli(['--addr', agent.address, '--token', agent.token, ...args], options);
}

async function hmJson<T>(args: string[]): Promise<T> {
  const result = await hm([...args, '--json']);
  assert.is(result.status, 0, `hivemind ${args.join(' ')} --json exited ${result.status}: ${result.stderr}`);
  return JSON.parse(result.stdout) as T;
}

function file(name: string, text: string): string {
  const path = join(scratch, name);
  writeFileSync(path, text);
  return path;
}

test('an executable that does not exist: deploy --wait stops early with the executor\'s error; ps, app and the API show it', async () => {
  const missing = join(scratch, 'no-such-program');
  const appFile = file('broken.yaml', `services:\n  broken:\n    command: [${JSON.stringify(missing)}, "--serve"]\n`);
  const deployed = await hm(['deploy', '-f', appFile, '--timeout', '2m']);
  assert.is(deployed.status, 1, deployed.stderr);
  const cause = `command "${missing}" is not found`;
  assert.ok(deployed.stderr.includes(cause), `deploy --wait names the cause: ${deployed.stderr}`);
  assert.match(deployed.stderr, /broken: instance default\.broken\.0\.\d+ failed on n1: /);
  assert.not.match(deployed.stderr, /gave up waiting/, 'it stopped early, not at the timeout');
  // The record keeps the cause while the instance waits and is placed again.
  const { instances } = await hmJson<{ instances: Instance[] }>(['ps', 'broken']);
  assert.is(instances.length, 1);
  const [instance] = instances;
  const said = instance!.lastFailure?.message ?? instance!.status.message ?? '';
  assert.ok(said.includes(cause), `the API's instance record says why: ${JSON.stringify(instance)}`);
  const ps = await hm(['ps', 'broken']);
  assert.is(ps.status, 0, ps.stderr);
  assert.ok(ps.stdout.includes(cause), `ps shows why: ${ps.stdout}`);
  const app = await hm(['app', 'broken']);
  assert.ok(app.stdout.includes(cause), `app shows why: ${app.stdout}`);
  assert.is((await hm(['delete', 'broken'])).status, 0);
});

/** Polls `read` every 250 ms until it returns a value, for up to `timeoutMs`. */
async function eventually<T>(what: string, read: () => Promise<T | undefined>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

async function listen(): Promise<Server> {
  const server = createServer((socket) => socket.end('host process\n'));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  return server;
}

const serve = "require('node:http').createServer((q, s) => s.end('app')).listen(Number(process.env.PORT), '127.0.0.1'); process.on('SIGTERM', () => process.exit(0));";

test('a port a host process listens on is never published over it: the app is unplaceable, saying so; a free port runs', async () => {
  const holder = await listen();
  const held = (holder.address() as AddressInfo).port;
  const freeServer = await listen();
  const free = (freeServer.address() as AddressInfo).port;
  await new Promise((resolve) => freeServer.close(resolve));
  try {
    await eventually('the node to report the held port', async () => {
      const nodes = await hmJson<{ nodes: NodeRecord[] }>(['nodes']);
      return nodes.nodes[0]?.hostPorts?.tcp.includes(held) ? true : undefined;
    }, 30_000);
    const reserved = (await hmJson<{ nodes: NodeRecord[] }>(['nodes'])).nodes[0]!.hostPorts!;
    const apiPort = Number(new URL(agent.address).port);
    assert.ok(reserved.tcp.includes(apiPort), `the API port is reserved: ${JSON.stringify(reserved)}`);
    const appFile = (name: string, port: number, release = '1'): string =>
      file(
        `${name}.yaml`,
        `services:\n  ${name}:\n    command: [${JSON.stringify(process.execPath)}, "-e", ${JSON.stringify(serve)}]\n    ports: ["${port}:${port}"]\n` +
          `    environment: { RELEASE: "${release}" }\n    deploy:\n      update_config: { order: start-first }\n`,
      );
    const taken = await hm(['deploy', '-f', appFile('taken', held), '--detach']);
    assert.is(taken.status, 0, taken.stderr);
    const app = await eventually('the app to be unplaceable', async () => {
      const found = await hmJson<App>(['app', 'taken']);
      return found.unplaceable !== undefined ? found : undefined;
    }, 30_000);
    assert.equal(app.unplaceable!.reasons, [`1 node: host port ${held}/tcp in use on the node (by a host process or Hivemind itself)`]);
    const ps = await hm(['ps', 'taken']);
    assert.ok(ps.stdout.includes(`unplaceable: 1 node: host port ${held}/tcp in use`), `ps says why: ${ps.stdout}`);
    const onApi = await hm(['deploy', '-f', appFile('on-api', apiPort), '--detach']);
    assert.is(onApi.status, 0, onApi.stderr);
    const apiApp = await eventually('the app on the API port to be unplaceable', async () => {
      const found = await hmJson<App>(['app', 'on-api']);
      return found.unplaceable !== undefined ? found : undefined;
    }, 30_000);
    assert.match(apiApp.unplaceable!.reasons[0]!, `host port ${apiPort}/tcp in use on the node`);
    const runs = await hm(['deploy', '-f', appFile('runs', free), '--timeout', '1m']);
    assert.is(runs.status, 0, runs.stderr);
    const answer = await request(`http://127.0.0.1:${free}/`);
    assert.is(await answer.body.text(), 'app');
    // start-first cannot start the new instance beside the old one on its host port: that slot goes stop-first, and says so.
    const updated = await hm(['deploy', '-f', appFile('runs', free, '2'), '--timeout', '2m']);
    assert.is(updated.status, 0, updated.stderr);
    assert.match(updated.stderr, 'slot 0: version 2 does not fit beside the old instance');
    assert.match(updated.stdout, 'runs: version 2 rolled out');
  } finally {
    await new Promise((resolve) => holder.close(resolve));
    for (const name of ['taken', 'on-api', 'runs']) await hm(['delete', name]);
  }
});

test('labels from --label and `nodes label` show in `nodes`; constraints on them, the role and the hostname place or refuse, naming the constraint', async () => {
  const nodes = await hm(['nodes']);
  assert.match(nodes.stdout, /tier=web, zone=a|zone=a, tier=web/);
  const labelled = await hm(['nodes', 'label', 'n1', 'disk=ssd']);
  assert.is(labelled.status, 0, labelled.stderr);
  assert.match(labelled.stdout, 'disk=ssd');
  const fromFlag = await hm(['nodes', 'label', 'n1', '--remove', 'zone']);
  assert.is(fromFlag.status, 1);
  assert.match(fromFlag.stderr, 'comes from its agent\'s --label flag');
  const own = await hm(['nodes', 'label', 'n1', 'hivemind.state-version=9']);
  assert.is(own.status, 1);
  assert.match(own.stderr, 'set.hivemind.state-version');
  const record = (await hmJson<{ nodes: NodeRecord[] }>(['nodes'])).nodes[0]!;
  assert.equal({ zone: record.labels.zone, tier: record.labels.tier, disk: record.labels.disk }, { zone: 'a', tier: 'web', disk: 'ssd' });
  const constrained = (name: string, constraints: string[]): string =>
    file(`${name}.yaml`, `services:\n  ${name}:\n    command: ["sleep", "1000"]\n    deploy:\n      placement:\n        constraints: ${JSON.stringify(constraints)}\n`);
  const fits = await hm(['deploy', '-f', constrained('fits', ['node.labels.disk == ssd', 'node.labels.zone != b', 'node.role == manager', 'node.hostname == n1']), '--timeout', '1m']);
  assert.is(fits.status, 0, fits.stderr);
  assert.is((await hm(['deploy', '-f', constrained('nowhere', ['node.labels.zone == a', 'node.role == worker']), '--detach'])).status, 0);
  const app = await eventually('nowhere to be unplaceable', async () => {
    const found = await hmJson<App>(['app', 'nowhere']);
    return found.unplaceable !== undefined ? found : undefined;
  }, 30_000);
  assert.equal(app.unplaceable!.reasons, ['1 node: constraint node.role == worker']);
  const badRole = await hm(['deploy', '-f', constrained('boss', ['node.role == boss']), '--detach']);
  assert.is(badRole.status, 1);
  assert.match(badRole.stderr, 'services.boss.deploy.placement.constraints[0]');
  for (const name of ['fits', 'nowhere']) await hm(['delete', name]);
  await hm(['nodes', 'label', 'n1', '--remove', 'disk']);
});

test.run();
