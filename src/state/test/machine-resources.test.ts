import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { HISTORY_MAX, STATE_VERSION_LABEL } from '../types.js';
import { ENCRYPTED_VOLUMES_VERSION } from '../version.js';
import { appSpec, Driver, GiB, MiB, registerNode } from './fixtures.js';

const bytes = (length: number, fill: number) => new Uint8Array(length).fill(fill);

test('policy.put creates and replaces; policy.delete refuses while an app uses it', () => {
  const driver = new Driver();
  driver.ok({ type: 'policy.put', tenant: 'default', name: 'web-in', apps: ['web'], ingress: [{ fromApps: ['lb'], ports: [80] }] });
  driver.ok({ type: 'policy.put', tenant: 'default', name: 'web-in', apps: ['web'], ingress: [] });
  const policy = driver.machine.policy('default', 'web-in');
  assert.equal(policy, { tenant: 'default', name: 'web-in', apps: ['web'], ingress: [], createdIndex: 1, updatedIndex: 2 });
  driver.ok({ type: 'app.deploy', spec: appSpec({ hivemind: { policies: ['web-in'] } }) });
  const error = driver.refused({ type: 'policy.delete', tenant: 'default', name: 'web-in' });
  assert.equal(error, {
    code: 'conflict',
    message: 'cannot delete network policy "web-in": app "web" uses it (hivemind.policies[0]); deploy the app without it, or delete the app, first',
    field: 'name',
  });
  driver.ok({ type: 'app.deploy', spec: appSpec() });
  driver.ok({ type: 'policy.delete', tenant: 'default', name: 'web-in' });
  assert.equal(driver.machine.policies(), []);
  assert.is(driver.refused({ type: 'policy.delete', tenant: 'default', name: 'web-in' }).code, 'not-found');
  assert.is(driver.refused({ type: 'policy.put', tenant: 'ghost', name: 'p', apps: [], ingress: [] }).code, 'not-found');
});

test('policy rules may name source CIDRs; one with host bits set, or not a CIDR, is refused with its field', () => {
  const driver = new Driver();
  driver.ok({ type: 'policy.put', tenant: 'default', name: 'web-in', apps: ['web'], ingress: [{ fromCidrs: ['10.0.0.0/8', '0.0.0.0/0'], ports: [80] }] });
  assert.equal(driver.machine.policy('default', 'web-in')?.ingress, [{ fromCidrs: ['10.0.0.0/8', '0.0.0.0/0'], ports: [80] }]);
  const hostBits = driver.refused({ type: 'policy.put', tenant: 'default', name: 'p', apps: [], ingress: [{ fromCidrs: ['10.0.0.1/8'] }] });
  assert.equal([hostBits.code, hostBits.field], ['invalid-argument', 'ingress[0].fromCidrs[0]']);
  assert.match(hostBits.message, /host bits set; write the network address \(10\.0\.0\.0\/8\)/);
  assert.is(driver.refused({ type: 'policy.put', tenant: 'default', name: 'p', apps: [], ingress: [{ fromCidrs: ['web'] }] }).field, 'ingress[0].fromCidrs[0]');
});

test('volume.bind records the node once; another node is refused; a snapshot keeps the binding and old volumes load unbound', () => {
  const driver = new Driver();
  driver.ok(registerNode('n1'));
  driver.ok(registerNode('n2'));
  driver.ok({ type: 'volume.create', tenant: 'default', name: 'data', sizeBytes: GiB });
  assert.is(driver.machine.volume('default', 'data')?.node, undefined);
  driver.ok({ type: 'volume.bind', tenant: 'default', name: 'data', node: 'n1' });
  driver.ok({ type: 'volume.bind', tenant: 'default', name: 'data', node: 'n1' });
  assert.is(driver.machine.volume('default', 'data')?.node, 'n1');
  const elsewhere = driver.refused({ type: 'volume.bind', tenant: 'default', name: 'data', node: 'n2' });
  assert.equal([elsewhere.code, elsewhere.field], ['conflict', 'node']);
  assert.match(elsewhere.message, /its data lives on node n1/);
  assert.is(driver.refused({ type: 'volume.bind', tenant: 'default', name: 'data', node: 'ghost' }).code, 'not-found');
  assert.is(driver.refused({ type: 'volume.bind', tenant: 'default', name: 'none', node: 'n1' }).code, 'not-found');
  const restored = new Driver();
  restored.machine.restore(driver.machine.snapshot());
  assert.is(restored.machine.volume('default', 'data')?.node, 'n1');
});

test('volume.report records what the file takes on its node; a late report (volume made again, bound elsewhere) is ignored', () => {
  const driver = new Driver();
  driver.ok(registerNode('n1'));
  driver.ok({ type: 'volume.create', tenant: 'default', name: 'data', sizeBytes: GiB });
  driver.ok({ type: 'volume.bind', tenant: 'default', name: 'data', node: 'n1' });
  const createdIndex = driver.machine.volume('default', 'data')!.createdIndex;
  assert.equal(driver.ok({ type: 'volume.report', tenant: 'default', name: 'data', createdIndex, node: 'n1', usedBytes: 5 * MiB }).value, { applied: true });
  assert.is(driver.machine.volume('default', 'data')?.usedBytes, 5 * MiB);
  assert.equal(driver.ok({ type: 'volume.report', tenant: 'default', name: 'data', createdIndex, node: 'n2', usedBytes: 1 }).value, { applied: false });
  assert.equal(driver.ok({ type: 'volume.report', tenant: 'default', name: 'data', createdIndex: createdIndex + 1, node: 'n1', usedBytes: 1 }).value, { applied: false });
  assert.equal(driver.ok({ type: 'volume.report', tenant: 'default', name: 'gone', createdIndex, node: 'n1', usedBytes: 1 }).value, { applied: false });
  assert.is(driver.machine.volume('default', 'data')?.usedBytes, 5 * MiB);
  assert.is(driver.refused({ type: 'volume.report', tenant: 'default', name: 'data', createdIndex, node: 'n1', usedBytes: -1 } as never).field, 'usedBytes');
});

test('volume.move unplaces the instances that mount it and holds them until volume.move-end names where the data is', () => {
  const driver = new Driver();
  for (const node of ['n1', 'n2', 'n3']) driver.ok(registerNode(node));
  driver.ok({ type: 'volume.create', tenant: 'default', name: 'data', sizeBytes: GiB });
  const unbound = driver.refused({ type: 'volume.move', tenant: 'default', name: 'data', to: 'n2' });
  assert.equal([unbound.code, unbound.field], ['conflict', 'name']);
  driver.ok({ type: 'volume.bind', tenant: 'default', name: 'data', node: 'n1' });
  driver.ok({ type: 'app.deploy', spec: appSpec({ volumes: [{ source: 'data', target: '/data', readOnly: false }] }) });
  driver.ok({ type: 'app.deploy', spec: appSpec({ name: 'other' }) });
  const [user] = driver.machine.instances({ app: 'web' });
  const [other] = driver.machine.instances({ app: 'other' });
  driver.ok({ type: 'instance.place', placements: [{ id: user!.id, node: 'n1' }, { id: other!.id, node: 'n1' }] });
  assert.is(driver.refused({ type: 'volume.move', tenant: 'default', name: 'data', to: 'n1' }).message, 'cannot move volume "data" to node n1: it is on that node already');
  assert.is(driver.refused({ type: 'volume.move', tenant: 'default', name: 'data', to: 'ghost' }).field, 'to');
  assert.is(driver.refused({ type: 'volume.move-end', tenant: 'default', name: 'data', node: 'n2' }).message, 'cannot end the move of volume "data": it is not being moved');

  const moved = driver.ok({ type: 'volume.move', tenant: 'default', name: 'data', to: 'n2' }).value as { stopped: string[] };
  assert.equal(moved.stopped, [user!.id]);
  assert.is(driver.machine.instance(user!.id)?.node, undefined, 'the instance that mounts it is stopped');
  assert.is(driver.machine.instance(other!.id)?.node, 'n1', 'others stay');
  assert.equal([driver.machine.volume('default', 'data')?.node, driver.machine.volume('default', 'data')?.moving], ['n1', 'n2']);
  driver.ok({ type: 'volume.move', tenant: 'default', name: 'data', to: 'n2' });
  assert.match(driver.refused({ type: 'volume.move', tenant: 'default', name: 'data', to: 'n3' }).message, /it is being moved to node n2/);
  assert.is(driver.refused({ type: 'volume.move-end', tenant: 'default', name: 'data', node: 'n3' }).field, 'node');
  const createdIndex = driver.machine.volume('default', 'data')!.createdIndex;
  assert.equal(driver.ok({ type: 'volume.report', tenant: 'default', name: 'data', createdIndex, node: 'n1', usedBytes: 1 }).value, { applied: false }, 'no report while it moves');
  driver.ok({ type: 'volume.move-end', tenant: 'default', name: 'data', node: 'n2' });
  const after = driver.machine.volume('default', 'data');
  assert.equal([after?.node, after?.moving], ['n2', undefined]);
  assert.ok(driver.machine.history().some((entry) => entry.summary === 'moved from node n1 to n2'));

  // A failed copy: the move ends where it began.
  driver.ok({ type: 'volume.move', tenant: 'default', name: 'data', to: 'n3' });
  driver.ok({ type: 'volume.move-end', tenant: 'default', name: 'data', node: 'n2' });
  assert.equal([driver.machine.volume('default', 'data')?.node, driver.machine.volume('default', 'data')?.moving], ['n2', undefined]);
  const restored = new Driver();
  driver.ok({ type: 'volume.move', tenant: 'default', name: 'data', to: 'n3' });
  restored.machine.restore(driver.machine.snapshot());
  assert.is(restored.machine.volume('default', 'data')?.moving, 'n3', 'a snapshot keeps a move in progress');
});

test('a volume keeps the I/O limits it was created with; volume.set-io changes or removes them; bad limits are refused by field', () => {
  const driver = new Driver();
  driver.ok({ type: 'volume.create', tenant: 'default', name: 'data', sizeBytes: GiB, io: { writeBytesPerSecond: 50 * MiB, readIops: 500 } });
  assert.equal(driver.machine.volume('default', 'data')?.io, { writeBytesPerSecond: 50 * MiB, readIops: 500 });
  assert.ok(driver.machine.history().some((entry) => entry.summary === 'created (1 GiB, I/O write 50 MiB/s, read 500 IOPS)'));
  driver.ok({ type: 'volume.set-io', tenant: 'default', name: 'data', io: { readBytesPerSecond: MiB } });
  assert.equal(driver.machine.volume('default', 'data')?.io, { readBytesPerSecond: MiB });
  driver.ok({ type: 'volume.set-io', tenant: 'default', name: 'data', io: {} });
  assert.is(driver.machine.volume('default', 'data')?.io, undefined);
  assert.is(driver.refused({ type: 'volume.set-io', tenant: 'default', name: 'data', io: { writeIops: 0 } }).field, 'io.writeIops');
  assert.is(driver.refused({ type: 'volume.set-io', tenant: 'default', name: 'data', io: { fast: 1 } }).field, 'io.fast');
  assert.is(driver.refused({ type: 'volume.set-io', tenant: 'default', name: 'none', io: {} }).code, 'not-found');
});

test('an encrypted volume keeps its sealed key; a tenant that encrypts its volumes refuses one without a key; a volume made on a named node; all wait for cluster version 4', () => {
  const driver = new Driver();
  const sealed = { ciphertext: new Uint8Array(48).fill(7), nonce: new Uint8Array(12).fill(1) };
  const early = driver.refused({ type: 'volume.create', tenant: 'default', name: 'vault', sizeBytes: GiB, encryption: sealed });
  assert.is(early.code, 'cluster-version-too-old');
  assert.is(driver.refused({ type: 'tenant.create', name: 'acme', quota: {}, settings: { encryptVolumes: true } }).code, 'cluster-version-too-old');
  const register = registerNode('n1');
  assert.ok(register.type === 'node.register');
  driver.ok({ ...register, labels: { ...register.labels, [STATE_VERSION_LABEL]: String(ENCRYPTED_VOLUMES_VERSION) } });
  driver.ok({ type: 'cluster.version', version: ENCRYPTED_VOLUMES_VERSION });
  driver.ok({ type: 'volume.create', tenant: 'default', name: 'vault', sizeBytes: GiB, encryption: sealed });
  assert.equal(driver.machine.volume('default', 'vault')?.encryption, sealed);
  assert.ok(driver.machine.history().some((entry) => entry.summary === 'created (1 GiB, encrypted)'));
  assert.is(driver.refused({ type: 'volume.create', tenant: 'default', name: 'short', sizeBytes: GiB, encryption: { ...sealed, ciphertext: new Uint8Array(16) } }).field, 'encryption.ciphertext');
  driver.ok({ type: 'tenant.create', name: 'acme', quota: {}, settings: { encryptVolumes: true } });
  const plain = driver.refused({ type: 'volume.create', tenant: 'acme', name: 'data', sizeBytes: GiB });
  assert.equal([plain.code, plain.field], ['invalid-argument', 'encryption']);
  assert.match(plain.message, /tenant "acme" encrypts its volumes/);
  driver.ok({ type: 'volume.create', tenant: 'acme', name: 'data', sizeBytes: GiB, encryption: sealed });
  // Created on a named node: bound there from the start; a node the cluster does not have is refused.
  driver.ok({ type: 'volume.create', tenant: 'default', name: 'pinned', sizeBytes: GiB, node: 'n1' });
  assert.is(driver.machine.volume('default', 'pinned')?.node, 'n1');
  const ghost = driver.refused({ type: 'volume.create', tenant: 'default', name: 'ghost', sizeBytes: GiB, node: 'n9' });
  assert.equal([ghost.code, ghost.field], ['not-found', 'node']);
});

test('volume.create, already-exists, delete refused while mounted', () => {
  const driver = new Driver();
  driver.ok({ type: 'volume.create', tenant: 'default', name: 'data', sizeBytes: GiB });
  assert.equal(driver.machine.volume('default', 'data'), { tenant: 'default', name: 'data', sizeBytes: GiB, createdIndex: 1 });
  const again = driver.refused({ type: 'volume.create', tenant: 'default', name: 'data', sizeBytes: 1 });
  assert.equal(again, { code: 'already-exists', message: 'cannot create volume "data": tenant "default" already has it', field: 'name' });
  driver.ok({ type: 'app.deploy', spec: appSpec({ volumes: [{ source: 'data', target: '/var/data', readOnly: false }] }) });
  const inUse = driver.refused({ type: 'volume.delete', tenant: 'default', name: 'data' });
  assert.is(inUse.code, 'conflict');
  assert.ok(inUse.message.includes('app "web" uses it (volumes[0].source)'));
  driver.ok({ type: 'app.delete', tenant: 'default', name: 'web' });
  driver.ok({ type: 'volume.delete', tenant: 'default', name: 'data' });
  assert.is(driver.refused({ type: 'volume.delete', tenant: 'default', name: 'data' }).code, 'not-found');
});

test('secret.put versions the value; reads give metadata only; delete refused while mounted', () => {
  const driver = new Driver();
  const first = driver.ok({ type: 'secret.put', tenant: 'default', name: 'db', ciphertext: bytes(20, 1), nonce: bytes(12, 2) });
  assert.equal(first.value, { tenant: 'default', name: 'db', version: 1 });
  driver.ok({ type: 'secret.put', tenant: 'default', name: 'db', ciphertext: bytes(24, 3), nonce: bytes(12, 4) });
  assert.equal(driver.machine.secrets(), [{ tenant: 'default', name: 'db', version: 2, createdIndex: 1, updatedIndex: 2 }]);
  assert.equal(driver.machine.secretCiphertext('default', 'db'), { ciphertext: bytes(24, 3), nonce: bytes(12, 4), version: 2 });
  driver.ok({ type: 'app.deploy', spec: appSpec({ hivemind: { secrets: ['db'] } }) });
  const inUse = driver.refused({ type: 'secret.delete', tenant: 'default', name: 'db' });
  assert.is(inUse.code, 'conflict');
  assert.ok(inUse.message.includes('(hivemind.secrets[0])'));
  driver.ok({ type: 'app.delete', tenant: 'default', name: 'web' });
  driver.ok({ type: 'secret.delete', tenant: 'default', name: 'db' });
  assert.is(driver.machine.secretCiphertext('default', 'db'), undefined);
  assert.is(driver.refused({ type: 'secret.delete', tenant: 'default', name: 'db' }).code, 'not-found');
});

test('kv.put: unconditional writes, version is the index, createIndex is kept', () => {
  const driver = new Driver();
  const first = driver.ok({ type: 'kv.put', key: 'config/color', value: 'blue' });
  assert.equal(first.value, { key: 'config/color', version: 1 });
  driver.ok({ type: 'kv.put', key: 'other', value: 'x' });
  driver.ok({ type: 'kv.put', key: 'config/color', value: 'red' });
  assert.equal(driver.machine.kvGet('config/color'), { key: 'config/color', value: 'red', version: 3, createIndex: 1 });
  driver.ok({ type: 'kv.put', key: 'config/a', value: '1' });
  assert.equal(driver.machine.kvList('config/').map((entry) => entry.key), ['config/a', 'config/color']);
  assert.equal(driver.machine.kvList('', 1).map((entry) => entry.key), ['config/a']);
});

test('kv.put compare-and-set: 0 means absent, N means at version N', () => {
  const driver = new Driver();
  driver.ok({ type: 'kv.put', key: 'lock', value: 'a', expectVersion: 0 });
  const taken = driver.refused({ type: 'kv.put', key: 'lock', value: 'b', expectVersion: 0 });
  assert.equal(taken, {
    code: 'version-mismatch',
    message: 'cannot put key "lock": expected it not to exist, but it is at version 1; read it again and retry',
    field: 'expectVersion',
  });
  const stale = driver.refused({ type: 'kv.put', key: 'lock', value: 'b', expectVersion: 7 });
  assert.is(stale.message, 'cannot put key "lock": expected version 7, but it is at version 1; read it again and retry');
  const absent = driver.refused({ type: 'kv.put', key: 'missing', value: 'b', expectVersion: 3 });
  assert.is(absent.message, 'cannot put key "missing": expected version 3, but it does not exist; read it again and retry');
  driver.ok({ type: 'kv.put', key: 'lock', value: 'b', expectVersion: 1 });
  assert.equal(driver.machine.kvGet('lock'), { key: 'lock', value: 'b', version: 5, createIndex: 1 });
});

test('kv.delete: unconditional, compare-and-set, and deleting what is absent', () => {
  const driver = new Driver();
  const absent = driver.ok({ type: 'kv.delete', key: 'nothing' });
  assert.equal(absent.value, { key: 'nothing', deleted: false });
  driver.ok({ type: 'kv.delete', key: 'nothing', expectVersion: 0 });
  assert.is(driver.refused({ type: 'kv.delete', key: 'nothing', expectVersion: 2 }).code, 'version-mismatch');
  driver.ok({ type: 'kv.put', key: 'k', value: 'v' });
  const wrong = driver.refused({ type: 'kv.delete', key: 'k', expectVersion: 1 });
  assert.is(wrong.message, 'cannot delete key "k": expected version 1, but it is at version 4; read it again and retry');
  assert.is(driver.refused({ type: 'kv.delete', key: 'k', expectVersion: 0 }).code, 'version-mismatch');
  const deleted = driver.ok({ type: 'kv.delete', key: 'k', expectVersion: 4 });
  assert.equal(deleted.value, { key: 'k', deleted: true });
  assert.is(driver.machine.kvGet('k'), undefined);
});

test('token.set stores the record with its index', () => {
  const driver = new Driver();
  assert.is(driver.machine.token(), undefined);
  driver.ok({ type: 'token.set', hash: 'ab'.repeat(32), sealed: bytes(48, 5), nonce: bytes(12, 6) });
  assert.equal(driver.machine.token(), { hash: 'ab'.repeat(32), sealed: bytes(48, 5), nonce: bytes(12, 6), rotatedIndex: 1 });
});

test('history: successful commands only, newest first, with actor and time; bounded', () => {
  const driver = new Driver();
  driver.ok({ type: 'tenant.create', name: 'acme', quota: {} });
  driver.refused({ type: 'tenant.create', name: 'acme', quota: {} });
  driver.run({ type: 'kv.put', key: 'k', value: 'v' }, 'r-3', 'token:deploy-bot');
  const history = driver.machine.history();
  assert.equal(history, [
    { index: 3, time: driver.time, actor: 'token:deploy-bot', command: 'kv.put', target: 'kv k', summary: 'set (1 characters, version 3)' },
    { index: 1, time: driver.time - 2000, actor: 'token:admin', command: 'tenant.create', target: 'tenant acme', summary: 'created (no quota)' },
  ]);
  assert.equal(driver.machine.history(10, 3).map((entry) => entry.index), [1]);
  assert.equal(driver.machine.history(1).map((entry) => entry.index), [3]);
  for (let round = 0; round < HISTORY_MAX + 10; round++) driver.ok({ type: 'kv.put', key: 'k', value: String(round) });
  const full = driver.machine.history(HISTORY_MAX * 2);
  assert.is(full.length, HISTORY_MAX);
  assert.is(full[0]?.index, driver.index);
  assert.is(full.at(-1)?.index, driver.index - HISTORY_MAX + 1);
});

test('reads are copies: changing them does not change the state', () => {
  const driver = new Driver();
  driver.ok({ type: 'app.deploy', spec: appSpec() });
  const app = driver.machine.app('default', 'web');
  if (app) app.replicas = 99;
  const instances = driver.machine.instances();
  if (instances[0]) instances[0].version = 42;
  assert.is(driver.machine.app('default', 'web')?.replicas, 2);
  assert.is(driver.machine.instances()[0]?.version, 1);
});

test.run();
