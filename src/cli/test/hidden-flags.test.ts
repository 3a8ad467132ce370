// A secret typed on the command line is not left in /proc/<pid>/cmdline for
// every user of the host to read: redaction of both spellings, and a real
// `hivemind` process whose command line another process reads.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { redactArgv } from '../hidden-flags.js';

const BIN = fileURLToPath(new URL('../../../../bin/hivemind.js', import.meta.url));

test('the value after --token and in --token= is replaced; nothing else changes', () => {
  assert.equal(redactArgv(['node', 'hivemind', 'agent', '--token', 'hm1.secret', '--name', 'n1']), ['node', 'hivemind', 'agent', '--token', '***', '--name', 'n1']);
  assert.equal(redactArgv(['node', 'hivemind', 'ps', '--token=hm1.secret']), ['node', 'hivemind', 'ps', '--token=***']);
  assert.equal(redactArgv(['node', 'hivemind', 'ps', '--tokens']), ['node', 'hivemind', 'ps', '--tokens']);
  assert.equal(redactArgv(['node', 'hivemind', 'ps', '--token']), ['node', 'hivemind', 'ps', '--token'], 'a flag with no value is left for the parser to refuse');
});

test('a running hivemind shows --token *** to other processes, not the token', async () => {
  const secret = 'hm1.hidden-flags-test-0123456789abcdef';
  // `kv put` without a value reads stdin: the CLI waits, with its command line rewritten, until stdin closes.
  const child = spawn(process.execPath, [BIN, 'kv', 'put', 'key', '--addr', '127.0.0.1:9', '--token', secret], { stdio: ['pipe', 'pipe', 'pipe'] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  // Waits for the CLI to have started (its title set before the command runs), however slow the machine.
  let seen = readFileSync(`/proc/${child.pid}/cmdline`, 'utf8');
  while (!seen.includes('--token ***') && child.exitCode === null) {
    await new Promise((resolve) => setTimeout(resolve, 10));
    seen = readFileSync(`/proc/${child.pid}/cmdline`, 'utf8');
  }
  child.stdin!.end();
  child.kill('SIGKILL');
  await exited;
  assert.ok(seen.includes('--token ***'), `cmdline: ${JSON.stringify(seen)}`);
  assert.not.ok(seen.includes(secret), 'the token is not readable');
});

test.run();
