/**
 * CLI contexts against a real node: `context create` stores the nodes, the
 * token and the CA (0600, by value), `use` makes commands work from any
 * folder without flags, `--context` picks one, `ls` and `rm`; and several
 * node addresses are tried in turn (`--addr a,b`, a context's nodes): the
 * first that answers wins, and none answering names them all.
 */
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { startAgent, type AgentProcess } from './agent-process.js';
import { hasStackTrace, runCli } from './run-cli.js';

let agent: AgentProcess;
const scratch = mkdtempSync(join(tmpdir(), 'hivemind-cli-context-'));
const config = join(scratch, 'config');
/** A folder without a .hivemind: nothing there tells the CLI where to go. */
const elsewhere = mkdtempSync(join(scratch, 'elsewhere-'));
/** Nothing listens here: a connection is refused at once. */
const DEAD_ADDRESS = '127.0.0.1:1';

function cli(args: string[]): ReturnType<typeof runCli> {
  return runCli(args, { cwd: elsewhere, env: { HIVEMIND_CONFIG: config } });
}

test.before(async () => {
  agent = await startAgent();
});

test.after(async () => {
  await agent?.stop();
  rmSync(scratch, { recursive: true, force: true });
});

test('several --addr values: the first that answers wins; none answering names them all', async () => {
  const ca = join(agent.dataDir, 'tls', 'ca.crt');
  const status = await cli(['--addr', `${DEAD_ADDRESS},${agent.address}`, '--token', agent.token, '--ca', ca, 'status', '--json']);
  assert.is(status.status, 0, status.stderr);
  assert.is((JSON.parse(status.stdout) as { node: string }).node, agent.name);
  const repeated = await cli(['--addr', DEAD_ADDRESS, '--addr', agent.address, '--token', agent.token, '--ca', ca, 'apps', '--json']);
  assert.is(repeated.status, 0, repeated.stderr);
  const none = await cli(['--addr', `${DEAD_ADDRESS},127.0.0.1:2`, '--token', agent.token, 'status']);
  assert.is(none.status, 1);
  assert.match(none.stderr, /cannot reach the node at https:\/\/127\.0\.0\.1:1, https:\/\/127\.0\.0\.1:2 \(no node answered \(https:\/\/127\.0\.0\.1:1: ECONNREFUSED; https:\/\/127\.0\.0\.1:2: ECONNREFUSED\)\)/);
});

test('context create, use, ls, --context, rm', async () => {
  const tokenFile = join(scratch, 'prod.token');
  writeFileSync(tokenFile, `${agent.token}\n`);
  const created = await cli(['context', 'create', 'prod', '--addr', DEAD_ADDRESS, '--addr', agent.address, '--token-file', tokenFile, '--ca', join(agent.dataDir, 'tls', 'ca.crt')]);
  assert.is(created.status, 0, created.stderr);
  assert.match(created.stdout, /^context prod created \(https:\/\/127\.0\.0\.1:1, https:\/\/127\.0\.0\.1:\d+\)/);
  assert.is(statSync(join(config, 'contexts.json')).mode & 0o777, 0o600, 'the file holds a token: 0600');
  assert.is(statSync(config).mode & 0o777, 0o700);
  // The token and CA are kept by value: the files may go.
  rmSync(tokenFile);
  const again = await cli(['context', 'create', 'prod', '--addr', agent.address]);
  assert.is(again.status, 1);
  assert.match(again.stderr, /context "prod" exists already; use --force/);
  assert.is((await cli(['context', 'create', 'staging', '--addr', DEAD_ADDRESS])).status, 0);

  // No context in use yet: from a folder without .hivemind the CLI goes to 127.0.0.1:7070 and says so.
  const before = await cli(['status']);
  assert.is(before.status, 1);
  const picked = await cli(['--context', 'prod', 'status', '--json']);
  assert.is(picked.status, 0, picked.stderr);
  const unknown = await cli(['--context', 'nope', 'status']);
  assert.is(unknown.status, 2);
  assert.match(unknown.stderr, /--context: no context "nope"/);

  assert.is((await cli(['context', 'use', 'prod'])).status, 0);
  const listed = await cli(['context', 'ls']);
  assert.match(listed.stdout, /^NAME\s+NODES\s+TOKEN\s+CA\n/);
  assert.match(listed.stdout, /^prod \*\s+https:\/\/127\.0\.0\.1:1,https:\/\/127\.0\.0\.1:\d+\s+yes\s+yes$/m);
  assert.match(listed.stdout, /^staging\s+https:\/\/127\.0\.0\.1:1\s+no\s+no$/m);
  const used = await cli(['status', '--json']);
  assert.is(used.status, 0, used.stderr);
  assert.is((JSON.parse(used.stdout) as { node: string }).node, agent.name);
  // --addr beats the context in use.
  const overridden = await cli(['--addr', DEAD_ADDRESS, 'status']);
  assert.is(overridden.status, 1);
  assert.match(overridden.stderr, /cannot reach the node at https:\/\/127\.0\.0\.1:1/);

  assert.is((await cli(['context', 'rm', 'prod'])).status, 0);
  const json = await cli(['context', 'ls', '--json']);
  assert.equal(JSON.parse(json.stdout), { current: null, contexts: [{ name: 'staging', addresses: ['https://127.0.0.1:1'], token: false, ca: false }] });
  const missing = await cli(['context', 'use', 'prod']);
  assert.is(missing.status, 1);
  assert.match(missing.stderr, /no context "prod"/);
  const bad = await cli(['context', 'create', 'bad name', '--addr', agent.address]);
  assert.is(bad.status, 2);
  for (const each of [again, unknown, missing, bad, overridden]) assert.not.ok(hasStackTrace(each.stderr), each.stderr);
});

test.run();
