// Tenant settings and tenant user ids in the replicated state: each
// tenant.create takes the next uid offset and none is given twice (not even
// after a delete, and not across a snapshot); settings are kept by an update
// that names none; a deploy that binds a host path or picks a user the
// tenant does not allow is refused 403 with the field named.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ClusterStateMachine } from '../machine.js';
import { httpStatus } from '../errors.js';
import { confinementProblem, isRootUser } from '../tenant-confinement.js';
import { validateCommand } from '../validate.js';
import { Driver, appSpec } from './fixtures.js';

test('tenant user id offsets: default has 0, each create the next, never reused after a delete or across a snapshot', () => {
  const driver = new Driver();
  driver.ok({ type: 'tenant.create', name: 'acme', quota: {} });
  driver.ok({ type: 'tenant.create', name: 'beta', quota: {} });
  assert.is(driver.machine.tenant('default')!.uidOffset, 0);
  assert.is(driver.machine.tenant('acme')!.uidOffset, 1);
  assert.is(driver.machine.tenant('beta')!.uidOffset, 2);
  driver.ok({ type: 'tenant.delete', name: 'beta' });
  driver.ok({ type: 'tenant.create', name: 'gamma', quota: {} });
  assert.is(driver.machine.tenant('gamma')!.uidOffset, 3, 'the deleted tenant\'s offset is not given again');
  const restored = new Driver(ClusterStateMachine.restore(driver.machine.snapshot()));
  restored.ok({ type: 'tenant.delete', name: 'gamma' });
  restored.ok({ type: 'tenant.create', name: 'delta', quota: {} });
  assert.is(restored.machine.tenant('delta')!.uidOffset, 4, 'the high-water mark survives a snapshot');
  // The default tenant created explicitly keeps offset 0.
  driver.ok({ type: 'tenant.create', name: 'default', quota: { apps: 3 } });
  assert.is(driver.machine.tenant('default')!.uidOffset, 0);
});

test('settings: set by create and update, kept by an update without them, cleared by an update with none allowed', () => {
  const driver = new Driver();
  driver.ok({ type: 'tenant.create', name: 'acme', quota: {}, settings: { hostMounts: true } });
  assert.equal(driver.machine.tenant('acme')!.settings, { hostMounts: true });
  driver.ok({ type: 'tenant.update', name: 'acme', quota: { apps: 2 } });
  assert.equal(driver.machine.tenant('acme')!.settings, { hostMounts: true }, 'an update naming no settings keeps them');
  driver.ok({ type: 'tenant.update', name: 'acme', quota: {}, settings: { hostUsers: true, hostMounts: false } });
  assert.equal(driver.machine.tenant('acme')!.settings, { hostUsers: true });
  driver.ok({ type: 'tenant.update', name: 'acme', quota: {}, settings: {} });
  assert.is(driver.machine.tenant('acme')!.settings, undefined);
  const history = driver.machine.history().map((entry) => entry.summary);
  assert.ok(history.some((line) => line.includes('settings: host users allowed')), history.join('\n'));
  const bad = validateCommand({ type: 'tenant.update', name: 'acme', quota: {}, settings: { hostUsers: 'yes' } });
  assert.ok(!bad.ok && bad.error.field === 'settings.hostUsers', JSON.stringify(bad));
  const unknown = validateCommand({ type: 'tenant.update', name: 'acme', quota: {}, settings: { privileged: true } });
  assert.ok(!unknown.ok && unknown.error.field?.startsWith('settings'), JSON.stringify(unknown));
});

test('a deploy with a host path or a user the tenant does not allow is refused 403 naming the field; allowed once a cluster-admin says so', () => {
  const driver = new Driver();
  driver.ok({ type: 'tenant.create', name: 'acme', quota: {} });
  const hostPath = appSpec({ tenant: 'acme', volumes: [{ source: '/srv/data', target: '/data', readOnly: false }] });
  const refusedMount = driver.refused({ type: 'app.deploy', spec: hostPath });
  assert.is(refusedMount.code, 'forbidden');
  assert.is(httpStatus(refusedMount.code), 403);
  assert.is(refusedMount.field, 'spec.volumes[0].source');
  assert.match(refusedMount.message, /host path "\/srv\/data" cannot be mounted: tenant "acme" may not bind host paths/);
  assert.match(refusedMount.message, /hivemind tenants update acme --host-mounts allow/);

  const rootImage = appSpec({ name: 'root', tenant: 'acme', user: '0:0' });
  const refusedRoot = driver.refused({ type: 'app.deploy', spec: rootImage });
  assert.is(refusedRoot.code, 'forbidden');
  assert.is(refusedRoot.field, 'spec.user');
  assert.match(refusedRoot.message, /user "0:0" is root/);
  driver.ok({ type: 'app.deploy', spec: appSpec({ name: 'nobody', tenant: 'acme', user: '65534' }) });

  const processUser = appSpec({ name: 'proc', tenant: 'acme', image: undefined, command: ['sleep', '1'], user: 'www-data' });
  const refusedUser = driver.refused({ type: 'app.deploy', spec: processUser });
  assert.is(refusedUser.field, 'spec.user');
  assert.match(refusedUser.message, /run as the tenant's own unprivileged user/);

  driver.ok({ type: 'tenant.update', name: 'acme', quota: {}, settings: { hostMounts: true, hostUsers: true } });
  driver.ok({ type: 'app.deploy', spec: hostPath });
  driver.ok({ type: 'app.deploy', spec: rootImage });
  driver.ok({ type: 'app.deploy', spec: processUser });
  // The default tenant is confined the same way.
  assert.is(driver.refused({ type: 'app.deploy', spec: appSpec({ user: 'root' }) }).code, 'forbidden');
});

test('confinementProblem and isRootUser', () => {
  assert.ok(isRootUser('0'));
  assert.ok(isRootUser('root:wheel'));
  assert.ok(isRootUser('000'));
  assert.not.ok(isRootUser('1000:0'));
  assert.not.ok(isRootUser('rooty'));
  assert.is(confinementProblem(appSpec({ volumes: [{ source: 'data', target: '/data', readOnly: false }] }), undefined), undefined, 'named volumes are fine');
  assert.is(confinementProblem(appSpec({ user: '1000' }), undefined), undefined, 'an image app may name a non-root user');
});

test.run();
