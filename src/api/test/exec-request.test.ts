// The body of POST /v1/instances/:id/exec: each bad field refused by name, the timeout defaulted.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ApiError } from '../errors.js';
import { EXEC_TIMEOUT_SECONDS_DEFAULT, readExecRequest } from '../routes-exec.js';

function refusal(body: unknown): string {
  try {
    readExecRequest(body);
  } catch (error) {
    assert.instance(error, ApiError);
    return `${(error as ApiError).field}: ${(error as Error).message}`;
  }
  throw new Error('expected a refusal');
}

test('a command and a timeout are read; bad ones are refused naming the field', () => {
  assert.equal(readExecRequest({ command: ['ls', '-l'] }), { command: ['ls', '-l'], timeoutSeconds: EXEC_TIMEOUT_SECONDS_DEFAULT });
  assert.equal(readExecRequest({ command: ['true'], timeoutSeconds: 5 }), { command: ['true'], timeoutSeconds: 5 });
  assert.match(refusal({}), /^command: command must be a list of 1 to 1024 strings/);
  assert.match(refusal({ command: [] }), /^command: /);
  assert.match(refusal({ command: 'ls' }), /^command: /);
  assert.match(refusal({ command: ['ls', 3] }), /^command\[1\]: command\[1\] must be a string/);
  assert.match(refusal({ command: ['a\0b'] }), /^command\[0\]: .*NUL/);
  assert.match(refusal({ command: [''] }), /^command\[0\]: command\[0\] must name a program/);
  assert.match(refusal({ command: ['ls'], timeoutSeconds: 0 }), /^timeoutSeconds: /);
  assert.match(refusal({ command: ['ls'], timeoutSeconds: 1.5 }), /^timeoutSeconds: /);
  assert.match(refusal({ command: ['ls'], timeoutSeconds: 86_401 }), /^timeoutSeconds: /);
  assert.match(refusal(null), /^command: /);
});

test.run();
