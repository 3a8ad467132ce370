/**
 * `hivemind exec` against a real node (`hivemind agent`), on a process app:
 * the command runs with the instance's environment and folder, its stdout
 * and stderr come back apart, and the CLI exits with its exit code; a
 * deployer of the tenant may, one of another tenant may not; a command
 * that does not exist and an instance that does not run are clear refusals.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { request } from 'undici';
import { dataDirApiAgent } from '../../api/tls.js';
import { startAgent, type AgentProcess } from './agent-process.js';
import { hasStackTrace, runCli, type CliResult } from './run-cli.js';

let agent: AgentProcess;
const scratch = mkdtempSync(join(tmpdir(), 'hivemind-cli-exec-'));
let instance = '';

function hm(args: string[]): Promise<CliResult> {
  return runCli(['--addr', agent.address, '--token', agent.token, ...args]);
}

test.before(async () => {
  agent = await startAgent();
  assert.is((await hm(['tenants', 'create', 'acme'])).status, 0);
  const appFile = join(scratch, 'app.yaml');
  writeFileSync(appFile, 'services:\n  shell:\n    command: ["sh", "-c", "echo nofile $$(ulimit -n); exec sleep 1000"]\n    environment: { GREETING: hello }\n    working_dir: /tmp\n    ulimits: { nofile: 512 }\n');
  const deployed = await hm(['deploy', '-f', appFile, '--tenant', 'acme', '--wait', '--timeout', '60s']);
  // uvu does not show what fails in a hook: say it here.
  if (deployed.status !== 0) console.error(deployed.stdout + deployed.stderr);
  assert.is(deployed.status, 0, deployed.stdout + deployed.stderr);
  const shown = await hm(['app', 'acme/shell', '--json']);
  const instances = (JSON.parse(shown.stdout) as { instances: { id: string; status: { state: string } }[] }).instances;
  instance = instances.find((each) => each.status.state === 'running')?.id ?? '';
  assert.match(instance, /^acme\.shell\.0\.\d+$/, shown.stdout);
});

test.after(async () => {
  await agent?.stop();
  rmSync(scratch, { recursive: true, force: true });
});

test('exec prints stdout and stderr apart and exits with the command\'s code; it runs in the instance\'s environment and folder', async () => {
  const result = await hm(['exec', instance, '--', 'sh', '-c', 'echo "$GREETING from $HIVEMIND_INSTANCE in $(pwd)"; echo oops >&2; exit 3']);
  assert.is(result.status, 3, result.stderr);
  assert.is(result.stdout, `hello from ${instance} in /tmp\n`);
  // The instance itself runs with the app's ulimits (prlimit in front of it): it printed them at its start.
  const log = await hm(['logs', instance]);
  assert.is(log.stdout, 'nofile 512\n', log.stderr);
  assert.is(result.stderr, 'oops\n');
  const fine = await hm(['exec', instance, '--', 'true']);
  assert.is(fine.status, 0, fine.stderr);
  assert.is(fine.stdout, '');
});

test('a long output arrives whole, in order', async () => {
  const result = await hm(['exec', instance, '--', 'sh', '-c', 'i=0; while [ $i -lt 20000 ]; do echo "line $i"; i=$((i+1)); done']);
  assert.is(result.status, 0, result.stderr);
  const lines = result.stdout.split('\n');
  assert.is(lines.length, 20001);
  assert.is(lines[19999], 'line 19999');
});

test('exec -i sends stdin to the command as it comes, and its end is the command\'s end of input', async () => {
  const input = Array.from({ length: 5000 }, (_, index) => `row ${index}`).join('\n') + '\n';
  const echoed = await runCli(['--addr', agent.address, '--token', agent.token, 'exec', '-i', instance, '--', 'cat'], { input });
  assert.is(echoed.status, 0, echoed.stderr);
  assert.is(echoed.stdout, input);
  const counted = await runCli(['--addr', agent.address, '--token', agent.token, 'exec', '-i', instance, '--', 'sh', '-c', 'wc -l; exit 4'], { input: 'a\nb\n' });
  assert.is(counted.status, 4, counted.stderr);
  assert.is(counted.stdout.trim(), '2');
  // Without -i the command's stdin is empty, whatever the CLI's is.
  const ignored = await runCli(['--addr', agent.address, '--token', agent.token, 'exec', instance, '--', 'cat'], { input: 'not sent\n' });
  assert.is(ignored.status, 0, ignored.stderr);
  assert.is(ignored.stdout, '');
});

test('the session route refuses a bad request line by field, and a bad input line by its number, ending the command', async () => {
  const session = async (body: string): Promise<{ status: number; text: string }> => {
    const response = await request(`${agent.address}/v1/instances/${instance}/exec/session`, {
      method: 'POST',
      dispatcher: dataDirApiAgent(agent.dataDir),
      headers: { authorization: `Bearer ${agent.token}`, 'content-type': 'application/x-ndjson' },
      body,
    });
    return { status: response.statusCode, text: await response.body.text() };
  };
  const badTty = await session('{"command":["true"],"tty":{"columns":0,"rows":24}}\n');
  assert.is(badTty.status, 400, badTty.text);
  assert.is(JSON.parse(badTty.text).error.field, 'tty');
  // sleep prints nothing: the bad line ends it before any output, so the answer is a plain refusal.
  const badLine = await session('{"command":["sleep","100"],"stdin":true}\n{"stdin":"aGk="}\n{"paste":"x"}\n');
  assert.is(badLine.status, 400, badLine.text);
  assert.match(JSON.parse(badLine.text).error.message, /^input line 3: unknown field "paste"/);
  const wrongType = await request(`${agent.address}/v1/instances/${instance}/exec/session`, { method: 'POST', dispatcher: dataDirApiAgent(agent.dataDir), headers: { authorization: `Bearer ${agent.token}`, 'content-type': 'application/json' }, body: '{}' });
  assert.is(wrongType.statusCode, 415, await wrongType.body.text());
});

test('exec -t on a process app says it has no terminal; -it with piped input is a usage error', async () => {
  const refused = await hm(['exec', '-t', instance, '--', 'tty']);
  assert.is(refused.status, 1);
  assert.match(refused.stderr, /^hivemind: tty: instance "acme\.shell\.0\.\d+" is a process app, which runs without a terminal: run the command without -t/, refused.stderr);
  const piped = await hm(['exec', '-it', instance, '--', 'sh']);
  assert.is(piped.status, 2);
  assert.match(piped.stderr, /-it needs stdin to be a terminal/);
  for (const each of [refused, piped]) assert.not.ok(hasStackTrace(each.stderr), each.stderr);
});

test('a deployer of another tenant is refused; a missing program, an unknown instance and a bad id are clear errors', async () => {
  const created = await hm(['tokens', 'create', '--name', 'other', '--role', 'deployer', '--tenant', 'other']);
  assert.is(created.status, 0, created.stderr);
  const otherToken = created.stdout.trim().split('\n')[1]!;
  const refused = await runCli(['--addr', agent.address, '--ca', join(agent.dataDir, 'tls', 'ca.crt'), '--token', otherToken, 'exec', instance, '--', 'true']);
  assert.is(refused.status, 1);
  assert.match(refused.stderr, /^hivemind: POST \/v1\/instances\/:id\/exec needs the role deployer \(or above\) in tenant "acme"; the token "other" \([0-9a-f]{12}\) is deployer in other/, refused.stderr);
  const missing = await hm(['exec', instance, '--', 'no-such-program-here']);
  assert.is(missing.status, 127, missing.stderr);
  const unknown = await hm(['exec', 'acme.nothing.0.1', '--', 'true']);
  assert.is(unknown.status, 1);
  assert.match(unknown.stderr, /instance "acme\.nothing\.0\.1" does not exist/);
  const bad = await hm(['exec', 'web', '--', 'true']);
  assert.is(bad.status, 2);
  assert.match(bad.stderr, /is not an instance id/);
  for (const each of [refused, missing, unknown, bad]) assert.not.ok(hasStackTrace(each.stderr), each.stderr);
});

test.run();
