/**
 * Day-2 answers end to end, against a real node the CLI started: why an
 * instance does not run (the executor's own error in `ps`, `app`, the API,
 * and `deploy --wait` stopping early with it).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { Instance } from '../../state/types.js';
import { startAgent, type AgentProcess } from './agent-process.js';
import { runCli, type CliResult, type RunOptions } from './run-cli.js';

let agent: AgentProcess;
const scratch = mkdtempSync(join(tmpdir(), 'hivemind-cli-day2-'));

test.before(async () => {
  agent = await startAgent();
});

test.after(async () => {
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
  if (process.env.SHOW) console.log(deployed.stderr, ps.stdout, app.stdout);
  assert.is((await hm(['delete', 'broken'])).status, 0);
});

test.run();
