/**
 * `hivemind exec` through a node that does not run the instance: n1's API
 * passes the request to n2's, which runs the command and streams it back;
 * an exec session's input (-i) is passed on as it comes.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { startAgent, type AgentProcess } from './agent-process.js';
import { runCli } from './run-cli.js';

const running: AgentProcess[] = [];
const scratch = mkdtempSync(join(tmpdir(), 'hivemind-cli-exec-cluster-'));

test.after(async () => {
  for (const agent of running.reverse()) await agent.stop();
  rmSync(scratch, { recursive: true, force: true });
});

async function until<T>(read: () => Promise<T>, done: (value: T) => boolean, what: string, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (done(value)) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; last: ${JSON.stringify(value)}`);
    await new Promise((resolve) => setTimeout(resolve, 300));
  }
}

test('exec through n1 runs the command on n2, where the instance is', async () => {
  const first = await startAgent({ name: 'n1' });
  running.push(first);
  const second = await startAgent({ name: 'n2', join: { seed: first.peerAddress, token: first.token } });
  running.push(second);
  const viaFirst = (args: string[]): ReturnType<typeof runCli> => runCli(['--addr', first.address, '--token', first.token, ...args]);
  await until(() => viaFirst(['nodes', '--json']), (result) => result.status === 0 && result.stdout.includes('"n2"'), 'n2 in the node list');
  const appFile = join(scratch, 'app.yaml');
  writeFileSync(appFile, 'services:\n  there:\n    command: ["sleep", "1000"]\n    deploy:\n      placement:\n        constraints: ["node.id == n2"]\n');
  const deployed = await viaFirst(['deploy', '-f', appFile, '--wait', '--timeout', '90s']);
  assert.is(deployed.status, 0, deployed.stdout + deployed.stderr);
  const app = await viaFirst(['app', 'there', '--json']);
  const placed = (JSON.parse(app.stdout) as { instances: { id: string; node?: string; status: { state: string } }[] }).instances.find((instance) => instance.status.state === 'running');
  assert.is(placed?.node, 'n2', app.stdout);
  const result = await viaFirst(['exec', placed!.id, '--', 'sh', '-c', 'echo "on $HIVEMIND_INSTANCE"; echo warn >&2; exit 5']);
  assert.is(result.status, 5, result.stderr);
  assert.is(result.stdout, `on ${placed!.id}\n`);
  assert.is(result.stderr, 'warn\n');
  // A session (-i) is passed on as it comes: its input reaches the command on n2.
  const echoed = await runCli(['--addr', first.address, '--token', first.token, 'exec', '-i', placed!.id, '--', 'sh', '-c', 'cat; exit 6'], { input: 'through n1\n' });
  assert.is(echoed.status, 6, echoed.stderr);
  assert.is(echoed.stdout, 'through n1\n');
});

test.run();
