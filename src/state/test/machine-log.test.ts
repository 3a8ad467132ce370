// The machine as the log sees it: exactly-once, snapshots, determinism, and
// garbage entries that must be refused without throwing.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { AssertionError } from '../../../consensus/core/assert.js';
import { SeededRandom } from '../../../consensus/core/random.js';
import { ClusterStateMachine } from '../machine.js';
import { REQUESTS_REMEMBERED_MAX, type Command } from '../types.js';
import { appSpec, Driver, GiB, registerNode } from './fixtures.js';

test('a retried request applies once and gets the first result', () => {
  const driver = new Driver();
  const first = driver.run({ type: 'kv.put', key: 'counter', value: '1' }, 'request-a');
  const retry = driver.run({ type: 'kv.put', key: 'counter', value: '1' }, 'request-a');
  assert.equal(retry, first);
  assert.is(retry.index, 1, 'the first index');
  assert.is(driver.machine.kvGet('counter')?.version, 1);
  assert.is(driver.machine.history().length, 1);
  assert.is(driver.machine.appliedIndex, 2);
  assert.equal(driver.machine.rememberedResult('request-a'), first);
});

test('a refused request stays refused on retry, even if it would now succeed', () => {
  const driver = new Driver();
  const first = driver.run({ type: 'app.scale', tenant: 'default', name: 'web', replicas: 1 }, 'scale-1');
  assert.not.ok(first.ok);
  driver.ok({ type: 'app.deploy', spec: appSpec() });
  const retry = driver.run({ type: 'app.scale', tenant: 'default', name: 'web', replicas: 1 }, 'scale-1');
  assert.equal(retry, first);
  assert.is(driver.machine.app('default', 'web')?.replicas, 2);
});

test('the same request id with another command still returns the first result', () => {
  const driver = new Driver();
  const first = driver.run({ type: 'kv.put', key: 'a', value: '1' }, 'same');
  const other = driver.run({ type: 'kv.put', key: 'b', value: '2' }, 'same');
  assert.equal(other, first);
  assert.is(driver.machine.kvGet('b'), undefined);
});

test('the oldest remembered request is forgotten past REQUESTS_REMEMBERED_MAX', () => {
  const driver = new Driver();
  driver.run({ type: 'kv.put', key: 'k', value: 'first' }, 'oldest');
  for (let round = 0; round < REQUESTS_REMEMBERED_MAX; round++) driver.run({ type: 'node.heartbeat', id: 'missing' }, `filler-${round}`);
  assert.is(driver.machine.rememberedResult('oldest'), undefined);
  assert.ok(driver.machine.rememberedResult('filler-0'));
  const again = driver.run({ type: 'kv.put', key: 'k', value: 'first' }, 'oldest');
  assert.ok(again.ok);
  assert.is(again.index, driver.index, 'applied again, at the new index');
});

test('results are frozen', () => {
  const driver = new Driver();
  const result = driver.run({ type: 'app.deploy', spec: appSpec() });
  assert.ok(Object.isFrozen(result));
  assert.ok(Object.isFrozen((result as { value: object }).value));
});

test('indexes must grow; a repeated or lower index is an invariant break', () => {
  const machine = new ClusterStateMachine();
  machine.apply(5, { requestId: 'r', time: 1, actor: 'a', command: { type: 'kv.put', key: 'k', value: 'v' } });
  assert.throws(() => machine.apply(5, { requestId: 'r2', time: 1, actor: 'a', command: { type: 'kv.delete', key: 'k' } }), (error: unknown) => error instanceof AssertionError);
  assert.throws(() => machine.apply(4, {} as never), (error: unknown) => error instanceof AssertionError);
  assert.throws(() => machine.apply(6.5, {} as never), (error: unknown) => error instanceof AssertionError);
  assert.is(machine.appliedIndex, 5);
});

/** A workload touching every kind of entity, with refusals and retries mixed in. */
function workload(): Command[] {
  const commands: Command[] = [
    { type: 'tenant.create', name: 'acme', quota: { memoryBytes: 8 * GiB, apps: 4 } },
    registerNode('n1'),
    registerNode('n2'),
    { type: 'volume.create', tenant: 'acme', name: 'data', sizeBytes: GiB },
    { type: 'secret.put', tenant: 'acme', name: 'db', ciphertext: new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17]), nonce: new Uint8Array(12).fill(9) },
    { type: 'policy.put', tenant: 'acme', name: 'db-in', apps: ['db'], ingress: [{ fromApps: ['web'], ports: [5432] }] },
    {
      type: 'app.deploy',
      spec: appSpec({ tenant: 'acme', name: 'db', replicas: 1, volumes: [{ source: 'data', target: '/data', readOnly: false }], hivemind: { secrets: ['db'], policies: ['db-in'] } }),
    },
    { type: 'app.deploy', spec: appSpec({ tenant: 'acme', replicas: 3, environment: { B: '2', A: '1', '10': 'x' }, labels: { tier: 'front' } }) },
    { type: 'instance.place', placements: [{ id: 'acme.web.0', node: 'n1' }, { id: 'acme.web.1', node: 'n2' }, { id: 'acme.db.0', node: 'n1' }] },
    { type: 'instance.status', updates: [{ id: 'acme.web.0', state: 'healthy', reportedBy: 'n1', reportedAt: 77, version: 1 }] },
    { type: 'app.deploy', spec: appSpec({ tenant: 'acme', replicas: 2, image: 'nginx:2' }) },
    { type: 'app.scale', tenant: 'acme', name: 'web', replicas: 40 },
    { type: 'app.rollback', tenant: 'acme', name: 'web' },
    { type: 'kv.put', key: 'config/a', value: 'one' },
    { type: 'kv.put', key: 'config/a', value: 'two', expectVersion: 1 },
    { type: 'kv.delete', key: 'config/b', expectVersion: 3 },
    { type: 'node.status', id: 'n2', status: 'suspect' },
    { type: 'node.role', id: 'n1', role: 'voter' },
    { type: 'node.heartbeat', id: 'n1' },
    { type: 'token.set', hash: 'c'.repeat(64), sealed: new Uint8Array(30).fill(3), nonce: new Uint8Array(12).fill(4) },
    { type: 'app.delete', tenant: 'acme', name: 'web' },
    { type: 'node.remove', id: 'n2' },
    { type: 'tenant.update', name: 'acme', quota: { memoryBytes: 1 } },
  ];
  return commands;
}

function feed(driver: Driver, commands: Command[]): unknown[] {
  return commands.map((command, position) => driver.run(command, position % 5 === 4 ? 'retried' : undefined));
}

test('two machines fed the same envelopes produce byte-identical snapshots', () => {
  const left = new Driver();
  const right = new Driver();
  const leftResults = feed(left, workload());
  const rightResults = feed(right, workload());
  assert.equal(leftResults, rightResults);
  assert.equal(left.machine.snapshot(), right.machine.snapshot());
  assert.ok(leftResults.some((result) => !(result as { ok: boolean }).ok), 'the workload includes refusals');
});

function reads(machine: ClusterStateMachine): unknown {
  return {
    appliedIndex: machine.appliedIndex,
    tenants: machine.tenants(),
    apps: machine.apps(),
    instances: machine.instances(),
    nodes: machine.nodes(),
    policies: machine.policies(),
    volumes: machine.volumes(),
    secrets: machine.secrets(),
    secret: machine.secretCiphertext('acme', 'db'),
    kv: machine.kvList(),
    history: machine.history(),
    token: machine.token(),
    usage: machine.usage('acme'),
  };
}

test('snapshot → restore gives the same state, and the same results and snapshots afterwards', () => {
  const original = new Driver();
  const commands = workload();
  feed(original, commands.slice(0, 14));
  const snapshot = original.machine.snapshot();
  const restored = new Driver(ClusterStateMachine.restore(snapshot));
  assert.equal(restored.machine.snapshot(), snapshot);
  assert.equal(reads(restored.machine), reads(original.machine));
  const secret = restored.machine.secretCiphertext('acme', 'db');
  assert.is(Object.getPrototypeOf(secret?.ciphertext), Uint8Array.prototype);
  restored.time = original.time;
  const later = commands.slice(14);
  assert.equal(
    later.map((command, position) => restored.run(command, `later-${position}`)),
    later.map((command, position) => original.run(command, `later-${position}`)),
  );
  assert.equal(restored.machine.snapshot(), original.machine.snapshot());
  const retried = restored.run({ type: 'kv.put', key: 'x', value: 'y' }, 'retried');
  assert.equal(retried, original.machine.rememberedResult('retried'), 'remembered requests survive a snapshot');
});

test('restore in place replaces the whole state', () => {
  const source = new Driver();
  feed(source, workload());
  const target = new Driver();
  target.ok({ type: 'kv.put', key: 'only-here', value: '1' });
  target.machine.restore(source.machine.snapshot());
  assert.is(target.machine.kvGet('only-here'), undefined);
  assert.equal(reads(target.machine), reads(source.machine));
  assert.equal(new ClusterStateMachine().snapshot(), ClusterStateMachine.restore(new ClusterStateMachine().snapshot()).snapshot());
});

test('a corrupt snapshot is an invariant break', () => {
  assert.throws(() => ClusterStateMachine.restore(new Uint8Array(0)), (error: unknown) => error instanceof AssertionError);
  assert.throws(() => ClusterStateMachine.restore(new Uint8Array([0x81, 0xa6, 0x66, 0x6f, 0x72, 0x6d, 0x61, 0x74, 0x09])), (error: unknown) => error instanceof AssertionError);
  const valid = new Driver();
  feed(valid, workload());
  const snapshot = valid.machine.snapshot();
  assert.throws(() => ClusterStateMachine.restore(snapshot.subarray(0, snapshot.length >> 1)), (error: unknown) => error instanceof AssertionError);
});

// ---------------------------------------------------------------------------
// Garbage

function randomValue(random: SeededRandom, depth: number): unknown {
  const choices: (() => unknown)[] = [
    () => null,
    () => undefined,
    () => random.chance(0.5),
    () => [0, -1, -0, 1.5, 2 ** 53, 2 ** 64, -(2 ** 63), Number.NaN, Number.POSITIVE_INFINITY, 65536, 1e308][random.below(11)],
    () => random.next(),
    () => ['', 'a', 'A B', '__proto__', 'x'.repeat(70_000), '\u0000', '\ud800', 'tenant.create', 'default', '../etc'][random.below(10)],
    () => BigInt(random.next()),
    () => new Uint8Array(random.below(80)),
    () => (depth > 3 ? 1 : Array.from({ length: random.below(4) }, () => randomValue(random, depth + 1))),
    () => (depth > 3 ? {} : Object.fromEntries(Array.from({ length: random.below(4) }, (_, position) => [`k${position}`, randomValue(random, depth + 1)]))),
  ];
  return choices[random.below(choices.length)]?.();
}

/** A copy of `value` with one random field replaced, removed, or added. */
function mutate(random: SeededRandom, value: unknown, depth = 0): unknown {
  if (typeof value !== 'object' || value === null || value instanceof Uint8Array) return randomValue(random, depth);
  const copy = (Array.isArray(value) ? [...value] : { ...value }) as Record<string, unknown>;
  const keys = Object.keys(copy);
  const key = keys[random.below(keys.length)];
  const action = random.below(4);
  if (key === undefined || action === 0) copy[random.chance(0.5) ? 'extra' : '__proto__'] = randomValue(random, depth);
  else if (action === 1) delete copy[key];
  else copy[key] = mutate(random, copy[key], depth + 1);
  return copy;
}

function garbageEnvelope(random: SeededRandom, valid: Command[]): unknown {
  const base = { requestId: `g-${random.next()}`, time: 1000, actor: 'fuzz', command: valid[random.below(valid.length)] };
  switch (random.below(6)) {
    case 0:
      return randomValue(random, 0);
    case 1:
      return mutate(random, base);
    default:
      return { ...base, command: mutate(random, mutate(random, base.command)) };
  }
}

test('garbage envelopes never throw; they are refused (or, when still valid, applied) identically on two machines', () => {
  const seed = 20240611;
  const random = new SeededRandom(seed);
  const valid = workload();
  const left = new Driver();
  const right = new Driver();
  feed(left, valid);
  feed(right, valid);
  let refused = 0;
  for (let round = 0; round < 3000; round++) {
    const envelope = garbageEnvelope(random, valid);
    let result;
    try {
      result = left.raw(envelope);
    } catch (error) {
      throw new Error(`seed ${seed}, round ${round}: apply threw ${String(error)} on ${String(JSON.stringify(envelope, (_key, value: unknown) => (typeof value === 'bigint' ? `${value}n` : value))).slice(0, 400)}`);
    }
    assert.equal(right.raw(envelope), result, `seed ${seed}, round ${round}`);
    if (!result.ok) {
      refused++;
      assert.type(result.error.code, 'string');
      assert.type(result.error.message, 'string');
    }
  }
  assert.ok(refused > 1000, `most garbage is refused (${refused})`);
  assert.equal(left.machine.snapshot(), right.machine.snapshot());
  const restored = ClusterStateMachine.restore(left.machine.snapshot());
  assert.equal(restored.snapshot(), left.machine.snapshot());
});

test('malformed envelopes are refused with the field named', () => {
  const driver = new Driver();
  const cases: [unknown, string | undefined][] = [
    [null, undefined],
    ['text', undefined],
    [{ requestId: 'r', time: 1, actor: 'a' }, 'command'],
    [{ requestId: 5, time: 1, actor: 'a', command: {} }, 'requestId'],
    [{ requestId: 'r', time: 2 ** 60, actor: 'a', command: {} }, 'time'],
    [{ requestId: 'r', time: 1, actor: 'a', command: { type: 'kv.put', key: 'k' } }, 'value'],
  ];
  for (const [envelope, field] of cases) {
    const result = driver.raw(envelope);
    assert.not.ok(result.ok);
    if (!result.ok) {
      assert.is(result.error.code, 'invalid-argument');
      assert.is(result.error.field, field, result.error.message);
    }
  }
  assert.equal(driver.machine.history(), []);
});

test.run();
