import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { isIpAddress, validateCommand, validateEnvelope, LIMITS } from '../validate.js';
import type { Command } from '../types.js';
import { MiB, appSpec, registerNode } from './fixtures.js';

function refusal(command: unknown): { code: string; message: string; field?: string } {
  const validated = validateCommand(command);
  if (validated.ok) throw new Error(`expected a refusal of ${JSON.stringify(command).slice(0, 200)}`);
  return validated.error;
}

function expectRefusal(command: unknown, field: string | undefined, text: string): void {
  const error = refusal(command);
  assert.is(error.code, 'invalid-argument');
  assert.is(error.field, field, error.message);
  assert.ok(error.message.includes(text), `"${error.message}" should include "${text}"`);
}

const validCommands: Command[] = [
  { type: 'tenant.create', name: 'acme', quota: { memoryBytes: 4 * 1024 ** 3, apps: 3 } },
  { type: 'tenant.update', name: 'acme', quota: {} },
  { type: 'tenant.delete', name: 'acme' },
  { type: 'app.deploy', spec: appSpec() },
  { type: 'app.deploy', spec: appSpec({ image: undefined, command: ['node', 'server.js'] }) },
  { type: 'app.deploy', spec: appSpec({ hivemind: { aliases: ['www', 'site'], links: [{ app: 'db', alias: 'database' }] } }) },
  { type: 'app.scale', tenant: 'default', name: 'web', replicas: 0 },
  { type: 'app.rollback', tenant: 'default', name: 'web' },
  { type: 'app.rollback', tenant: 'default', name: 'web', toVersion: 2 },
  { type: 'app.delete', tenant: 'default', name: 'web' },
  { type: 'instance.place', placements: [{ id: 'default.web.0', node: 'n1' }, { id: 'default.web.1', node: null }] },
  { type: 'instance.status', updates: [{ id: 'default.web.0', state: 'running', reportedBy: 'n1', reportedAt: 5, version: 1 }] },
  {
    type: 'instance.status',
    updates: [
      { id: 'default.web.0', state: 'running', reportedBy: 'n1', reportedAt: 5, endpoint: { address: '10.1.2.3', ports: [{ target: 80, port: 31000, protocol: 'tcp' }] } },
      { id: 'default.web.1', state: 'running', reportedBy: 'n1', reportedAt: 5, endpoint: { address: 'fd00::1:2', ports: [] } },
    ],
  },
  registerNode('n1'),
  { type: 'node.status', id: 'n1', status: 'suspect' },
  { type: 'node.role', id: 'n1', role: 'voter' },
  { type: 'node.heartbeat', id: 'n1' },
  { type: 'node.remove', id: 'n1' },
  { type: 'policy.put', tenant: 'acme', name: 'db-only', apps: ['db'], ingress: [{ fromApps: ['web'], ports: [5432] }] },
  { type: 'policy.put', tenant: 'acme', name: 'web-out', apps: ['web'], ingress: [], egress: [{ toApps: ['db'], ports: [5432] }, { toCidrs: ['0.0.0.0/0'] }] },
  { type: 'policy.delete', tenant: 'acme', name: 'db-only' },
  { type: 'volume.create', tenant: 'acme', name: 'data', sizeBytes: 1024 },
  { type: 'volume.delete', tenant: 'acme', name: 'data' },
  { type: 'volume.bind', tenant: 'acme', name: 'data', node: 'n1' },
  { type: 'secret.put', tenant: 'acme', name: 'db-password', ciphertext: new Uint8Array(20), nonce: new Uint8Array(12) },
  { type: 'secret.delete', tenant: 'acme', name: 'db-password' },
  { type: 'kv.put', key: 'config/web/color', value: 'blue', expectVersion: 0 },
  { type: 'kv.delete', key: 'config/web/color' },
  { type: 'token.set', hash: 'a'.repeat(64), sealed: new Uint8Array(40), nonce: new Uint8Array(12) },
];

test('every valid command passes and comes back as an equal, separate copy', () => {
  for (const command of validCommands) {
    const validated = validateCommand(command);
    assert.ok(validated.ok, `${command.type}: ${validated.ok ? '' : validated.error.message}`);
    assert.equal(validated.command, command);
    assert.is.not(validated.command, command);
  }
});

test('bytes from a decoder (Buffer) come back as plain Uint8Array copies', () => {
  const ciphertext = Buffer.alloc(32, 7);
  const validated = validateCommand({ type: 'secret.put', tenant: 'a', name: 'b', ciphertext, nonce: Buffer.alloc(12) });
  assert.ok(validated.ok);
  const command = validated.command as Extract<Command, { type: 'secret.put' }>;
  assert.is(Object.getPrototypeOf(command.ciphertext), Uint8Array.prototype);
  ciphertext[0] = 9;
  assert.is(command.ciphertext[0], 7);
});

test('not an object, missing or unknown command type', () => {
  expectRefusal(null, undefined, 'it must be an object with a "type" field');
  expectRefusal([1, 2], undefined, 'it must be an object with a "type" field');
  expectRefusal({}, 'type', 'is missing, not a known command type');
  expectRefusal({ type: 'app.explode' }, 'type', '"app.explode", not a known command type');
  expectRefusal({ type: 42 }, 'type', 'not a known command type');
});

test('unknown and missing fields name their path', () => {
  expectRefusal({ type: 'tenant.delete', name: 'acme', force: true }, 'force', 'force is not a known field; remove it');
  expectRefusal({ type: 'tenant.delete' }, 'name', 'name is required');
  expectRefusal({ type: 'app.deploy', spec: { ...appSpec(), colour: 'red' } }, 'spec.colour', 'not a known field');
  expectRefusal({ type: 'app.deploy', spec: { ...appSpec(), limits: { cpus: 1 } } }, 'spec.limits.cpus', 'not a known field');
  const { restart: _restart, ...withoutRestart } = appSpec();
  expectRefusal({ type: 'app.deploy', spec: withoutRestart }, 'spec.restart', 'is required');
});

test('names must be DNS labels', () => {
  for (const name of ['', 'Acme', 'acme_corp', '-acme', 'acme-', 'a'.repeat(64), 'ac me', 'é']) {
    const error = refusal({ type: 'tenant.create', name, quota: {} });
    assert.is(error.field, 'name', name);
  }
  expectRefusal({ type: 'app.deploy', spec: appSpec({ name: 'Web' }) }, 'spec.name', 'must be a DNS label');
  expectRefusal({ type: 'app.scale', tenant: 'UPPER', name: 'web', replicas: 1 }, 'tenant', 'DNS label');
  expectRefusal({ type: 'app.deploy', spec: appSpec({ hivemind: { aliases: ['ok', 'Not_Ok'] } }) }, 'spec.hivemind.aliases[1]', 'must be a DNS label');
  expectRefusal({ type: 'app.deploy', spec: appSpec({ hivemind: { links: [{ app: 'db', alias: 'a.b' }] } }) }, 'spec.hivemind.links[0].alias', 'must be a DNS label');
});

test('numbers: negative, fractional, huge, wrong type', () => {
  const scale = (replicas: unknown) => ({ type: 'app.scale', tenant: 'default', name: 'web', replicas });
  expectRefusal(scale(-1), 'replicas', 'must be a whole number from 0 to 10000, got -1');
  expectRefusal(scale(1.5), 'replicas', 'got 1.5');
  expectRefusal(scale(LIMITS.replicasMax + 1), 'replicas', 'from 0 to 10000');
  expectRefusal(scale('3'), 'replicas', 'got "3"');
  expectRefusal(scale(Number.NaN), 'replicas', 'whole number');
  expectRefusal(scale(Number.POSITIVE_INFINITY), 'replicas', 'whole number');
  expectRefusal(scale(10n), 'replicas', 'whole number');
  expectRefusal({ type: 'tenant.create', name: 'a', quota: { memoryBytes: 2 ** 60 } }, 'quota.memoryBytes', 'whole number');
  expectRefusal({ type: 'volume.create', tenant: 'a', name: 'v', sizeBytes: 0 }, 'sizeBytes', 'from 1');
  expectRefusal({ type: 'kv.put', key: 'k', value: 'v', expectVersion: -1 }, 'expectVersion', 'whole number');
});

test('-0 is stored as 0', () => {
  const validated = validateCommand({ type: 'app.scale', tenant: 'default', name: 'web', replicas: -0 });
  assert.ok(validated.ok);
  assert.ok(Object.is((validated.command as { replicas: number }).replicas, 0));
});

test('ports are 1..65535 and published once', () => {
  const withPorts = (ports: unknown) => ({ type: 'app.deploy', spec: { ...appSpec(), ports } });
  expectRefusal(withPorts([{ target: 0, protocol: 'tcp' }]), 'spec.ports[0].target', 'from 1 to 65535');
  expectRefusal(withPorts([{ target: 80, published: 65536, protocol: 'tcp' }]), 'spec.ports[0].published', 'from 1 to 65535');
  expectRefusal(withPorts([{ target: 80, protocol: 'sctp' }]), 'spec.ports[0].protocol', 'must be one of "tcp", "udp"');
  expectRefusal(
    withPorts([
      { target: 80, published: 8080, protocol: 'tcp' },
      { target: 81, published: 8080, protocol: 'tcp' },
    ]),
    'spec.ports[1].published',
    'publishes 8080/tcp twice',
  );
  expectRefusal({ type: 'policy.put', tenant: 'a', name: 'p', apps: [], ingress: [{ ports: [70000] }] }, 'ingress[0].ports[0]', '65535');
  expectRefusal({ type: 'policy.put', tenant: 'a', name: 'p', apps: [], ingress: [], egress: [{ toCidrs: ['10.0.0.1/8'] }] }, 'egress[0].toCidrs[0]', 'host bits');
  expectRefusal({ type: 'policy.put', tenant: 'a', name: 'p', apps: [], ingress: [], egress: [{ toPlaces: ['x'] }] }, 'egress[0].toPlaces', '');
});

test('doubtful values a fuzz run found are refused, each naming its field: memory 1, cpus 1e9, odd image references, a line break in an argument', () => {
  expectRefusal({ type: 'app.deploy', spec: appSpec({ limits: { memoryBytes: 1 }, reservations: {} }) }, 'spec.limits.memoryBytes', 'a bare number is bytes');
  expectRefusal({ type: 'app.deploy', spec: appSpec({ reservations: { memoryBytes: 1 } }) }, 'spec.reservations.memoryBytes', 'from 4 MiB');
  expectRefusal({ type: 'app.deploy', spec: appSpec({ limits: { memoryBytes: 2 ** 50 } }) }, 'spec.limits.memoryBytes', 'to 64 TiB');
  expectRefusal({ type: 'app.deploy', spec: appSpec({ limits: { cpuMillis: 1e12 } }) }, 'spec.limits.cpuMillis', 'is 1000000000000 millicores (1000000000 CPUs)');
  expectRefusal({ type: 'app.deploy', spec: appSpec({ limits: { cpuMillis: 1 }, reservations: {} }) }, 'spec.limits.cpuMillis', 'from 10 (0.01 CPU)');
  assert.ok(validateCommand({ type: 'app.deploy', spec: appSpec({ limits: { cpuMillis: 10, memoryBytes: 4 * MiB }, reservations: {} }) }).ok, 'the smallest limits pass');
  expectRefusal({ type: 'app.deploy', spec: appSpec({ image: '../../x' }) }, 'spec.image', 'is not an image name');
  expectRefusal({ type: 'app.deploy', spec: appSpec({ image: 'UPPER' }) }, 'spec.image', 'image names are lower case');
  expectRefusal({ type: 'app.deploy', spec: appSpec({ image: 'x@sha256:zz' }) }, 'spec.image', 'digest "sha256:zz"');
  expectRefusal({ type: 'app.deploy', spec: appSpec({ image: 'nginx:-bad' }) }, 'spec.image', 'has tag "-bad"');
  for (const good of ['nginx', 'nginx:1.25', 'library/nginx:latest', 'registry.local:5000/team/app:v1.2_3', 'localhost/x', `x@sha256:${'a'.repeat(64)}`, `ghcr.io/o/r:t@sha256:${'0'.repeat(64)}`, 'a__b/c-d.e']) {
    const validated = validateCommand({ type: 'app.deploy', spec: appSpec({ image: good }) });
    assert.ok(validated.ok, `${good}: ${JSON.stringify(validated)}`);
  }
  expectRefusal({ type: 'app.deploy', spec: appSpec({ command: ['echo', 'a\nb'] }) }, 'spec.command[1]', 'contains a line break');
  expectRefusal({ type: 'app.deploy', spec: appSpec({ image: undefined, command: ['sleep\n', '1'] }) }, 'spec.command[0]', 'only a script after -c or -e may span lines');
  expectRefusal({ type: 'app.deploy', spec: appSpec({ entrypoint: ['/bin/x\r'] }) }, 'spec.entrypoint[0]', 'line break');
  assert.ok(validateCommand({ type: 'app.deploy', spec: appSpec({ command: ['node', '-e', 'a()\nb()'] }) }).ok, 'a script after -e may span lines');
});

test('app spec cross-field rules', () => {
  expectRefusal({ type: 'app.deploy', spec: appSpec({ image: undefined }) }, 'spec.image', 'one must be set');
  // An image with a command overrides the image's command, as in Compose.
  assert.ok(validateCommand({ type: 'app.deploy', spec: appSpec({ command: ['redis-server', '--appendonly', 'yes'] }) }).ok);
  // Scripts may span lines; other control characters are still refused.
  assert.ok(validateCommand({ type: 'app.deploy', spec: appSpec({ command: ['sh', '-c', 'echo a\n\techo b'] }) }).ok);
  expectRefusal({ type: 'app.deploy', spec: appSpec({ command: ['a\u0000b'] }) }, 'spec.command[0]', 'control characters other than tabs');
  expectRefusal({ type: 'app.deploy', spec: appSpec({ image: undefined, command: [] }) }, 'spec.command', 'must not be empty');
  expectRefusal(
    { type: 'app.deploy', spec: appSpec({ reservations: { memoryBytes: 2048 * MiB }, limits: { memoryBytes: 1024 * MiB } }) },
    'spec.reservations.memoryBytes',
    'must not exceed limits.memoryBytes',
  );
  const mount = { source: 'data', target: '/data', readOnly: false };
  expectRefusal({ type: 'app.deploy', spec: appSpec({ volumes: [mount, { ...mount, source: '/srv' }] }) }, 'spec.volumes[1].target', 'twice');
  expectRefusal({ type: 'app.deploy', spec: appSpec({ volumes: [{ ...mount, target: 'data' }] }) }, 'spec.volumes[0].target', 'absolute path');
  expectRefusal({ type: 'app.deploy', spec: appSpec({ volumes: [{ ...mount, source: 'Bad Name' }] }) }, 'spec.volumes[0].source', 'DNS label');
  const timings = { intervalMs: 1, timeoutMs: 1, retries: 1, startPeriodMs: 0 };
  expectRefusal({ type: 'app.deploy', spec: appSpec({ healthcheck: { test: ['CURL', 'x'], ...timings } }) }, 'spec.healthcheck.test[0]', '"CMD", "CMD-SHELL", "NONE" (Compose healthcheck forms), "HTTP" or "TCP"');
  expectRefusal({ type: 'app.deploy', spec: appSpec({ healthcheck: { test: ['HTTP', 'x'], ...timings } }) }, 'spec.healthcheck.test[1]', 'http:// or https:// URL');
  expectRefusal({ type: 'app.deploy', spec: appSpec({ healthcheck: { test: ['TCP', 'localhost'], ...timings } }) }, 'spec.healthcheck.test[1]', 'HOST:PORT');
  expectRefusal({ type: 'app.deploy', spec: appSpec({ healthcheck: { test: ['TCP', 'a:1', 'b:2'], ...timings } }) }, 'spec.healthcheck.test', '["TCP", "HOST:PORT"]');
  assert.ok(validateCommand({ type: 'app.deploy', spec: appSpec({ healthcheck: { test: ['HTTP', 'http://127.0.0.1:8080/healthz'], ...timings } }) }).ok);
  assert.ok(validateCommand({ type: 'app.deploy', spec: appSpec({ healthcheck: { test: ['TCP', '127.0.0.1:5432'], ...timings } }) }).ok);
  expectRefusal({ type: 'app.deploy', spec: appSpec({ hivemind: { secrets: ['a', 'a'] } }) }, 'spec.hivemind.secrets[1]', 'repeats "a"');
  expectRefusal({ type: 'app.deploy', spec: appSpec({ hivemind: { canary: { weightPercent: 101 } } }) }, 'spec.hivemind.canary.weightPercent', '0 to 100');
});

test('records refuse reserved keys and bad environment names', () => {
  const environment = JSON.parse('{"__proto__": "x"}') as Record<string, string>;
  expectRefusal({ type: 'app.deploy', spec: appSpec({ environment }) }, 'spec.environment.__proto__', 'reserved');
  expectRefusal({ type: 'app.deploy', spec: appSpec({ environment: { 'A=B': 'x' } }) }, 'spec.environment.A=B', 'without =');
  expectRefusal({ type: 'app.deploy', spec: appSpec({ environment: { A: 1 as unknown as string } }) }, 'spec.environment.A', 'must be a string');
});

test('kv keys and values: sizes and printable keys', () => {
  expectRefusal({ type: 'kv.put', key: '', value: 'v' }, 'key', 'must not be empty');
  expectRefusal({ type: 'kv.put', key: 'k'.repeat(513), value: 'v' }, 'key', 'at most 512 bytes');
  expectRefusal({ type: 'kv.put', key: 'é'.repeat(257), value: 'v' }, 'key', 'at most 512 bytes');
  expectRefusal({ type: 'kv.put', key: 'a\nb', value: 'v' }, 'key', 'control characters');
  expectRefusal({ type: 'kv.put', key: 'a\ud800b', value: 'v' }, 'key', 'valid Unicode');
  expectRefusal({ type: 'kv.put', key: 'k', value: 'v'.repeat(512 * 1024 + 1) }, 'value', 'at most 524288 bytes');
  assert.ok(validateCommand({ type: 'kv.put', key: 'k'.repeat(512), value: 'line\none\u0000'.padEnd(512 * 1024, 'x') }).ok);
});

test('secret and token bytes: sizes, types', () => {
  const secret = (ciphertext: unknown, nonce: unknown = new Uint8Array(12)) => ({ type: 'secret.put', tenant: 'a', name: 's', ciphertext, nonce });
  expectRefusal(secret(new Uint8Array(64 * 1024 + 1)), 'ciphertext', 'from 16 to 65536 bytes long, got 65537');
  expectRefusal(secret(new Uint8Array(15)), 'ciphertext', 'from 16 to 65536');
  expectRefusal(secret('c2VjcmV0'), 'ciphertext', 'must be bytes');
  expectRefusal(secret(new Uint8Array(16), new Uint8Array(11)), 'nonce', 'exactly 12 bytes');
  expectRefusal({ type: 'token.set', hash: 'A'.repeat(64), sealed: new Uint8Array(32), nonce: new Uint8Array(12) }, 'hash', 'SHA-256');
});

test('instance batches: non-empty, ids once', () => {
  expectRefusal({ type: 'instance.place', placements: [] }, 'placements', 'at least 1 item');
  expectRefusal(
    { type: 'instance.place', placements: [{ id: 'x', node: 'n1' }, { id: 'x', node: 'n2' }] },
    'placements[1].id',
    'repeats instance "x"',
  );
  expectRefusal(
    { type: 'instance.status', updates: [{ id: 'x', state: 'dancing', reportedBy: 'n1', reportedAt: 1 }] },
    'updates[0].state',
    'must be one of',
  );
  expectRefusal({ type: 'instance.place', placements: [{ id: 'a b', node: 'n1' }] }, 'placements[0].id', 'identifier');
});

test('instance.status refuses a malformed endpoint, naming the field', () => {
  const update = (endpoint: unknown): unknown => ({ type: 'instance.status', updates: [{ id: 'x', state: 'running', reportedBy: 'n1', reportedAt: 1, endpoint }] });
  expectRefusal(update({ address: 'web.local', ports: [] }), 'updates[0].endpoint.address', 'must be an IP address');
  expectRefusal(update({ address: '10.0.0.256', ports: [] }), 'updates[0].endpoint.address', 'must be an IP address');
  expectRefusal(update({ address: '1::2::3', ports: [] }), 'updates[0].endpoint.address', 'must be an IP address');
  expectRefusal(update({ address: '10.0.0.1', ports: [{ target: 0, port: 80, protocol: 'tcp' }] }), 'updates[0].endpoint.ports[0].target', 'whole number');
  expectRefusal(update({ address: '10.0.0.1', ports: [{ target: 80, port: 80, protocol: 'sctp' }] }), 'updates[0].endpoint.ports[0].protocol', 'must be one of');
  expectRefusal(
    update({ address: '10.0.0.1', ports: [{ target: 80, port: 80, protocol: 'tcp' }, { target: 80, port: 81, protocol: 'tcp' }] }),
    'updates[0].endpoint.ports[1]',
    'repeats target port 80/tcp',
  );
});

test('isIpAddress: IPv4 and IPv6 text forms', () => {
  for (const good of ['0.0.0.0', '10.0.0.5', '255.255.255.255', '::1', '::', 'fe80::1', '2001:db8:0:0:0:0:2:1', '::ffff:10.0.0.1']) assert.ok(isIpAddress(good), good);
  for (const bad of ['', '1.2.3', '1.2.3.4.5', '01.2.3.4', '256.1.1.1', 'a.b.c.d', ':::', '1:2:3:4:5:6:7:8:9', '1::2::3', 'localhost', 'fe80::1%eth0']) assert.not.ok(isIpAddress(bad), bad);
});

test('messages name the command type', () => {
  const error = refusal({ type: 'app.scale', tenant: 'default', name: 'web', replicas: -1 });
  assert.is(error.message, 'invalid app.scale command: replicas must be a whole number from 0 to 10000, got -1');
});

test('validateEnvelope checks its own fields and names command fields relative to the command', () => {
  const command = { type: 'tenant.delete', name: 'acme' };
  assert.ok(validateEnvelope({ requestId: 'r1', time: 1, actor: 'cli', command }).ok);
  const cases: [unknown, string | undefined, string][] = [
    [{ time: 1, actor: 'cli', command }, 'requestId', 'is required'],
    [{ requestId: 'r1', time: -5, actor: 'cli', command }, 'time', 'whole number'],
    [{ requestId: 'r1', time: 1, actor: '', command }, 'actor', 'must not be empty'],
    [{ requestId: 'r1', time: 1, actor: 'cli' }, 'command', 'is required'],
    [{ requestId: 'r1', time: 1, actor: 'cli', command, extra: 1 }, 'extra', 'not a known field'],
    [{ requestId: 'r1', time: 1, actor: 'cli', command: { type: 'tenant.delete', name: 'A' } }, 'name', 'DNS label'],
    ['envelope', undefined, 'it must be an object with requestId'],
  ];
  for (const [envelope, field, text] of cases) {
    const validated = validateEnvelope(envelope);
    assert.not.ok(validated.ok);
    if (validated.ok) continue;
    assert.is(validated.error.field, field, validated.error.message);
    assert.ok(validated.error.message.includes(text), validated.error.message);
  }
});

test.run();
