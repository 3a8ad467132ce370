/** `chaos:check` as a user runs it: a child process on a history file. */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { handHistory } from './register-history.js';

const cli = fileURLToPath(new URL('../check-cli.js', import.meta.url));
const directory = mkdtempSync(join(tmpdir(), 'hivemind-chaos-check-'));

function run(name: string, contents: string | null): { status: number | null; stdout: string; stderr: string } {
  const file = join(directory, name);
  if (contents !== null) writeFileSync(file, contents);
  const result = spawnSync(process.execPath, [cli, file], { encoding: 'utf8' });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

test('a linearizable history prints linearizable and exits 0', () => {
  const result = run('good.jsonl', handHistory([
    { process: 1, f: 'write', value: 1, call: 0, ret: 2 },
    { process: 2, f: 'read', value: 1, call: 1, ret: 3 },
  ]));
  assert.is(result.status, 0, result.stderr);
  assert.is(result.stdout.split('\n')[0], 'linearizable');
});

test('a stale read prints not linearizable with the failing part and exits 1', () => {
  const result = run('stale.jsonl', handHistory([
    { process: 1, f: 'write', value: 1, call: 0, ret: 1 },
    { process: 1, f: 'write', value: 2, call: 2, ret: 3 },
    { process: 2, f: 'read', value: 1, call: 4, ret: 5 },
  ]));
  assert.is(result.status, 1, result.stderr);
  assert.is(result.stdout.split('\n')[0], 'not linearizable');
  assert.match(result.stdout, 'key "x": not linearizable');
  assert.match(result.stdout, 'process 2 read -> 1 [ok]');
});

test('an invalid line or a missing file exits 2 with the reason', () => {
  const invalid = run('invalid.jsonl', '{"process": 1, "type": "invoke", "f": "read", "key": "k", "time": 1}\nnot json\n');
  assert.is(invalid.status, 2);
  assert.match(invalid.stderr, 'history line 2: not valid JSON');
  const missing = run('absent.jsonl', null);
  assert.is(missing.status, 2);
  assert.match(missing.stderr, 'cannot read history');
});

test.after(() => rmSync(directory, { recursive: true, force: true }));

test.run();
