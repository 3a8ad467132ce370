// The access rules as pure functions: what each role may do where, what a
// refusal says, which history entries a caller sees, and token expiry at the
// exact millisecond.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { allows, allowsCluster, historyTenants, needText, seesHistory, tokenPrincipal, type Permission, type Principal } from '../access.js';
import type { ApiTokenRecord } from '../../state/types.js';

function principal(role: Principal['role'], tenants: string[]): Principal {
  return { actor: 'user:t/x', user: 't', tokenId: 'x', role, tenants };
}

test('each role\'s permissions, in its tenants only', () => {
  const permissions: Permission[] = ['read', 'logs', 'deploy', 'manage'];
  const table = (who: Principal, tenant: string) => permissions.map((permission) => (allows(who, permission, tenant) ? 'y' : '-')).join('');
  assert.is(table(principal('viewer', ['acme']), 'acme'), 'y---');
  assert.is(table(principal('deployer', ['acme']), 'acme'), 'yyy-');
  assert.is(table(principal('tenant-admin', ['acme']), 'acme'), 'yyyy');
  assert.is(table(principal('tenant-admin', ['acme']), 'beta'), '----');
  assert.is(table(principal('viewer', ['*']), 'beta'), 'y---');
  assert.is(table(principal('cluster-admin', ['*']), 'beta'), 'yyyy');
  assert.ok(allowsCluster(principal('viewer', ['*']), 'cluster-read'));
  assert.not.ok(allowsCluster(principal('viewer', ['*']), 'cluster-admin'));
  assert.not.ok(allowsCluster(principal('tenant-admin', ['acme']), 'cluster-read'));
  assert.ok(allowsCluster(principal('viewer', []), 'any'));
  assert.is(needText('deploy', 'acme'), 'the role deployer (or above) in tenant "acme"');
  assert.is(needText('manage', 'acme'), 'the role tenant-admin (or above) in tenant "acme"');
});

test('history entries belong to the tenants their target names; the cluster\'s own only to cluster-wide callers', () => {
  assert.equal(historyTenants({ target: 'app acme/web' }), ['acme']);
  assert.equal(historyTenants({ target: 'apps acme/web, beta/db, acme/x' }), ['acme', 'beta']);
  assert.equal(historyTenants({ target: 'instance acme.web.0.3' }), ['acme']);
  assert.equal(historyTenants({ target: 'tenant acme' }), ['acme']);
  assert.is(historyTenants({ target: 'node n1' }), undefined);
  assert.is(historyTenants({ target: 'join token' }), undefined);
  const viewer = principal('viewer', ['acme']);
  assert.ok(seesHistory(viewer, { target: 'secret acme/db' }));
  assert.not.ok(seesHistory(viewer, { target: 'apps acme/web, beta/db' }));
  assert.not.ok(seesHistory(viewer, { target: 'kv config/x' }));
  assert.ok(seesHistory(principal('viewer', ['*']), { target: 'kv config/x' }));
});

test('a token expires at its expiresAt, to the millisecond', () => {
  const record: ApiTokenRecord = { id: 'abc123abc123', name: 'ci', role: 'deployer', tenants: ['acme'], hash: 'a'.repeat(64), expiresAt: 5000, createdIndex: 1, createdAt: 0, createdBy: 'x' };
  const before = tokenPrincipal(record, 4999);
  assert.ok(before.ok);
  assert.equal(before.ok && before.principal, { actor: 'user:ci/abc123abc123', user: 'ci', tokenId: 'abc123abc123', role: 'deployer', tenants: ['acme'] });
  assert.equal(tokenPrincipal(record, 5000), { ok: false, reason: 'expired' });
  const { expiresAt: _expiresAt, ...forever } = record;
  assert.ok(tokenPrincipal(forever, Number.MAX_SAFE_INTEGER).ok);
});

test.run();
