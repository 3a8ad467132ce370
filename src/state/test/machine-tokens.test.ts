// API tokens in the replicated state: created from a hash, listed, revoked;
// the role/tenant rules of validation; and a snapshot that keeps them (and one
// written before them, without the field, that loads with none).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ClusterStateMachine } from '../machine.js';
import { Driver } from './fixtures.js';

const HASH_A = 'a'.repeat(64);
const HASH_B = 'b'.repeat(64);

test('apitoken.create stores the record (hash, role, tenants, expiry, who made it); apitoken.revoke removes it', () => {
  const driver = new Driver();
  const created = driver.ok({ type: 'apitoken.create', id: 'ci0001', name: 'ci', role: 'deployer', tenants: ['acme'], hash: HASH_A, expiresAt: 1_800_000_000_000 });
  assert.equal(created.value, { id: 'ci0001', name: 'ci', role: 'deployer', tenants: ['acme'], expiresAt: 1_800_000_000_000, createdIndex: 1 });
  assert.equal(driver.machine.apiTokens(), [
    { id: 'ci0001', name: 'ci', role: 'deployer', tenants: ['acme'], hash: HASH_A, expiresAt: 1_800_000_000_000, createdIndex: 1, createdAt: driver.time, createdBy: 'token:admin' },
  ]);
  assert.is(driver.machine.apiTokenByHash(HASH_A)?.id, 'ci0001');
  assert.is(driver.machine.apiTokenByHash(HASH_B), undefined);
  assert.is(driver.machine.history(1)[0]?.summary, 'created "ci": deployer in acme, expires 2027-01-15T08:00:00.000Z');
  driver.ok({ type: 'apitoken.revoke', id: 'ci0001' });
  assert.equal(driver.machine.apiTokens(), []);
  assert.is(driver.machine.apiTokenByHash(HASH_A), undefined);
  assert.is(driver.refused({ type: 'apitoken.revoke', id: 'ci0001' }).code, 'not-found');
});

test('apitoken.create refuses a taken id or hash', () => {
  const driver = new Driver();
  driver.ok({ type: 'apitoken.create', id: 'admin1', name: 'admin', role: 'cluster-admin', tenants: ['*'], hash: HASH_A });
  assert.equal(driver.refused({ type: 'apitoken.create', id: 'admin1', name: 'x', role: 'viewer', tenants: ['*'], hash: HASH_B }).field, 'id');
  assert.equal(driver.refused({ type: 'apitoken.create', id: 'other1', name: 'x', role: 'viewer', tenants: ['*'], hash: HASH_A }).field, 'hash');
});

test('validation: roles and tenants go together; "*" stands alone; the hash is SHA-256 hex', () => {
  const driver = new Driver();
  const refused = (command: Record<string, unknown>) => driver.refused({ type: 'apitoken.create', id: 'tok001', name: 'n', hash: HASH_A, ...command });
  assert.match(refused({ role: 'cluster-admin', tenants: ['acme'] }).message, /cluster-admin token is for every tenant/);
  assert.match(refused({ role: 'deployer', tenants: ['*'] }).message, /names its tenants/);
  assert.match(refused({ role: 'tenant-admin', tenants: ['*'] }).message, /names its tenants/);
  assert.match(refused({ role: 'viewer', tenants: ['*', 'acme'] }).message, /stands alone/);
  assert.is(refused({ role: 'viewer', tenants: [] }).field, 'tenants');
  assert.is(refused({ role: 'root', tenants: ['*'] }).field, 'role');
  assert.is(refused({ role: 'viewer', tenants: ['Not A Name'] }).field, 'tenants[0]');
  assert.is(driver.refused({ type: 'apitoken.create', id: 'tok001', name: 'n', role: 'viewer', tenants: ['*'], hash: 'xyz' }).field, 'hash');
  driver.ok({ type: 'apitoken.create', id: 'tok001', name: 'n', role: 'viewer', tenants: ['*'], hash: HASH_A });
  driver.ok({ type: 'apitoken.create', id: 'tok002', name: 'n', role: 'viewer', tenants: ['acme', 'beta'], hash: HASH_B });
});

test('a snapshot keeps the tokens; a state without tokens encodes as before (no field)', () => {
  const driver = new Driver();
  driver.ok({ type: 'kv.put', key: 'k', value: 'v' });
  const before = driver.machine.snapshot();
  driver.ok({ type: 'apitoken.create', id: 'tok001', name: 'n', role: 'viewer', tenants: ['*'], hash: HASH_A });
  const restored = new ClusterStateMachine();
  restored.restore(driver.machine.snapshot());
  assert.equal(restored.apiTokens(), driver.machine.apiTokens());
  const old = new ClusterStateMachine();
  old.restore(before);
  assert.equal(old.apiTokens(), []);
  assert.not.ok(Buffer.from(before).includes(Buffer.from('apiTokens')));
  driver.ok({ type: 'apitoken.revoke', id: 'tok001' });
  assert.not.ok(Buffer.from(driver.machine.snapshot()).includes(Buffer.from('apiTokens')));
});

test.run();
