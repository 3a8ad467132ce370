// The example app files in examples/ parse, and say what their comments say.
import { readFileSync } from 'node:fs';
import { Script } from 'node:vm';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { validateCommand } from '../../state/validate.js';
import { parseAppFile } from '../parse.js';

// Tests run from dist/src/appfile/test/; the examples stay in the source tree.
const examples = new URL('../../../../examples/', import.meta.url);

function parseExample(name: string): ReturnType<typeof parseAppFile> {
  return parseAppFile(readFileSync(new URL(name, examples), 'utf8'), name);
}

test('hello.yaml: a process app (no containerd), 2 replicas, healthcheck, rolling update', () => {
  const result = parseExample('hello.yaml');
  if (!result.ok) throw new Error(result.errors.map(String).join('\n'));
  assert.equal(result.warnings, []);
  assert.is(result.apps.length, 1);
  const [hello] = result.apps;
  assert.ok(hello);
  assert.ok(validateCommand({ type: 'app.deploy', spec: hello }).ok);
  assert.is(hello.name, 'hello');
  assert.is(hello.tenant, 'default');
  assert.is(hello.image, undefined);
  assert.equal(hello.command?.slice(0, 2), ['node', '-e']);
  assert.is(hello.replicas, 2);
  assert.is(hello.environment.PORT, undefined, 'the node gives each instance its port in PORT');
  assert.is(hello.environment.GREETING, 'hello');
  assert.equal(hello.ports, [{ target: 8080, protocol: 'tcp' }]);
  assert.is(hello.healthcheck?.test[0], 'CMD');
  assert.equal(hello.update, { parallelism: 1, delayMs: 2000, failureAction: 'rollback', order: 'start-first', monitorMs: 10_000 });
  assert.equal(hello.restart, { condition: 'on-failure', delayMs: 1000, windowMs: 0 });
  // The server and the healthcheck are JavaScript for `node -e`: they must at least compile.
  new Script(hello.command?.[2] ?? '', { filename: 'hello.yaml command' });
  new Script(hello.healthcheck?.test[3] ?? '', { filename: 'hello.yaml healthcheck' });
});

test('web.yaml: an image app with entrypoint, published port, resources, placement and a canary', () => {
  const result = parseExample('web.yaml');
  if (!result.ok) throw new Error(result.errors.map(String).join('\n'));
  assert.equal(result.warnings, []);
  const [web] = result.apps;
  assert.ok(web);
  assert.ok(validateCommand({ type: 'app.deploy', spec: web }).ok);
  assert.equal([web.name, web.tenant, web.image, web.replicas], ['web', 'demo', 'busybox:1.36', 3]);
  assert.equal(web.entrypoint?.slice(0, 2), ['sh', '-c']);
  assert.ok(web.entrypoint?.[2]?.includes('exec httpd -f -v -p 8080'));
  assert.equal(web.ports, [{ target: 8080, published: 8080, protocol: 'tcp' }]);
  assert.equal(web.healthcheck?.test, ['CMD-SHELL', 'wget -q -O /dev/null http://127.0.0.1:8080/ || exit 1']);
  assert.equal(web.limits, { cpuMillis: 500, memoryBytes: 64 * 1024 ** 2 });
  assert.equal(web.reservations, { cpuMillis: 100, memoryBytes: 16 * 1024 ** 2 });
  assert.equal(web.constraints, ['node.labels.role != db']);
  assert.equal(web.hivemind, { canary: { instances: 1 }, strategy: 'canary', maxPerNode: 2 });
  assert.equal(web.labels, { 'com.example.team': 'web', 'com.example.description': 'A static page' });
});

test.run();
