import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { APP_VERSIONS_MAX } from '../types.js';
import { appSpec, Driver, GiB, MiB, registerNode } from './fixtures.js';

test('the default tenant exists implicitly and is stored on first use', () => {
  const driver = new Driver();
  assert.equal(driver.machine.tenants().map((tenant) => tenant.name), ['default']);
  assert.is(driver.machine.tenant('default')?.createdIndex, 0);
  driver.ok({ type: 'app.deploy', spec: appSpec() });
  assert.is(driver.machine.tenant('default')?.createdIndex, 1);
  assert.equal(driver.machine.tenant('default')?.quota, {});
});

test('tenant.create, already-exists, update, delete', () => {
  const driver = new Driver();
  const created = driver.ok({ type: 'tenant.create', name: 'acme', quota: { apps: 2 } });
  assert.equal(created.value, { name: 'acme' });
  assert.equal(driver.machine.tenant('acme'), { name: 'acme', quota: { apps: 2 }, createdIndex: 1, createdAt: driver.time, uidOffset: 1 });
  const again = driver.refused({ type: 'tenant.create', name: 'acme', quota: {} });
  assert.equal(again, { code: 'already-exists', message: 'cannot create tenant "acme": it already exists; change its quota with tenant.update', field: 'name' });
  driver.ok({ type: 'tenant.update', name: 'acme', quota: { apps: 5 } });
  assert.equal(driver.machine.tenant('acme')?.quota, { apps: 5 });
  const missing = driver.refused({ type: 'tenant.update', name: 'nope', quota: {} });
  assert.is(missing.code, 'not-found');
  assert.ok(missing.message.startsWith('cannot update tenant "nope": tenant "nope" does not exist'));
  driver.ok({ type: 'tenant.delete', name: 'acme' });
  assert.is(driver.machine.tenant('acme'), undefined);
  assert.is(driver.refused({ type: 'tenant.delete', name: 'acme' }).code, 'not-found');
});

test('tenant.delete refuses while the tenant owns apps, volumes or secrets, and never deletes default', () => {
  const driver = new Driver();
  driver.ok({ type: 'tenant.create', name: 'acme', quota: {} });
  driver.ok({ type: 'app.deploy', spec: appSpec({ tenant: 'acme' }) });
  driver.ok({ type: 'volume.create', tenant: 'acme', name: 'data', sizeBytes: GiB });
  driver.ok({ type: 'volume.create', tenant: 'acme', name: 'logs', sizeBytes: GiB });
  driver.ok({ type: 'policy.put', tenant: 'acme', name: 'p', apps: [], ingress: [] });
  const error = driver.refused({ type: 'tenant.delete', name: 'acme' });
  assert.equal(error, { code: 'conflict', message: 'cannot delete tenant "acme": it still has 1 app, 2 volumes; delete them first', field: 'name' });
  driver.ok({ type: 'app.delete', tenant: 'acme', name: 'web' });
  driver.ok({ type: 'volume.delete', tenant: 'acme', name: 'data' });
  driver.ok({ type: 'volume.delete', tenant: 'acme', name: 'logs' });
  driver.ok({ type: 'tenant.delete', name: 'acme' });
  assert.equal(driver.machine.policies('acme'), [], 'policies go with their tenant');
  assert.is(driver.refused({ type: 'tenant.delete', name: 'default' }).code, 'conflict');
});

test('commands in a tenant that does not exist are refused, naming the field', () => {
  const driver = new Driver();
  const error = driver.refused({ type: 'app.deploy', spec: appSpec({ tenant: 'ghost' }) });
  assert.is(error.code, 'not-found');
  assert.is(error.field, 'spec.tenant');
  assert.is(error.message, 'cannot deploy "web": tenant "ghost" does not exist; create it first or use the "default" tenant');
  assert.is(driver.refused({ type: 'volume.create', tenant: 'ghost', name: 'v', sizeBytes: 1 }).field, 'tenant');
});

test('deploy creates version 1 and its instances; redeploy makes version 2 and a rollout, keeping the old instances', () => {
  const driver = new Driver();
  driver.ok({ type: 'node.register', id: 'n1', addresses: { api: 'a', peer: 'b', gossip: 'c' }, labels: {}, resources: {} });
  const first = driver.ok({ type: 'app.deploy', spec: appSpec() });
  assert.equal(first.value, { tenant: 'default', name: 'web', version: 1, replicas: 2 });
  assert.equal(driver.machine.instances().map((instance) => [instance.id, instance.slot, instance.version, instance.status.state]), [
    ['default.web.0.1', 0, 1, 'pending'],
    ['default.web.1.2', 1, 1, 'pending'],
  ]);
  driver.ok({ type: 'instance.place', placements: [{ id: 'default.web.0.1', node: 'n1' }] });
  driver.ok({ type: 'instance.status', updates: [{ id: 'default.web.0.1', state: 'healthy', reportedBy: 'n1', reportedAt: 9 }] });
  const second = driver.ok({ type: 'app.deploy', spec: appSpec({ image: 'nginx:1.26', replicas: 3 }) });
  assert.equal(second.value, { tenant: 'default', name: 'web', version: 2, replicas: 3, rollout: second.index });
  const instances = driver.machine.instances({ app: 'web' });
  assert.equal(instances.map((instance) => [instance.id, instance.version, instance.node, instance.status.state]), [
    ['default.web.0.1', 1, 'n1', 'healthy'],
    ['default.web.1.2', 1, undefined, 'pending'],
    ['default.web.2.3', 2, undefined, 'pending'],
  ], 'old instances stay for the rollout to replace; the new slot starts at the new version');
  const app = driver.machine.app('default', 'web');
  assert.is(app?.version, 2);
  assert.equal(app?.rollout && [app.rollout.fromVersion, app.rollout.toVersion, app.rollout.state, app.rollout.strategy], [1, 2, 'running', 'rolling']);
  assert.equal(app?.versions.map((version) => [version.version, version.spec.image]), [
    [1, 'nginx:1.25'],
    [2, 'nginx:1.26'],
  ]);
});

test('deploy keeps at most APP_VERSIONS_MAX versions and numbers keep growing', () => {
  const driver = new Driver();
  for (let round = 1; round <= APP_VERSIONS_MAX + 5; round++) driver.ok({ type: 'app.deploy', spec: appSpec({ image: `nginx:${round}` }) });
  const app = driver.machine.app('default', 'web');
  assert.is(app?.version, APP_VERSIONS_MAX + 5);
  assert.is(app?.versions.length, APP_VERSIONS_MAX);
  assert.is(app?.versions[0]?.version, 6);
});

test('scale adds unplaced slots or removes the highest, without a new version', () => {
  const driver = new Driver();
  driver.ok({ type: 'app.deploy', spec: appSpec({ replicas: 3 }) });
  const scaled = driver.ok({ type: 'app.scale', tenant: 'default', name: 'web', replicas: 1 });
  assert.equal(scaled.value, { tenant: 'default', name: 'web', version: 1, replicas: 1 });
  assert.equal(driver.machine.instances().map((instance) => instance.id), ['default.web.0.1'], 'unplaced instances of removed slots go at once');
  driver.ok({ type: 'app.scale', tenant: 'default', name: 'web', replicas: 12 });
  const instances = driver.machine.instances();
  assert.is(instances.length, 12);
  assert.is(instances[11]?.id, 'default.web.11.14', 'sorted by slot, not by text; serials keep growing');
  assert.is(driver.machine.app('default', 'web')?.versions.length, 1);
  const error = driver.refused({ type: 'app.scale', tenant: 'default', name: 'api', replicas: 1 });
  assert.equal(error, { code: 'not-found', message: 'cannot scale "api" to 1 replicas: tenant "default" has no app "api"', field: 'name' });
});

test('rollback: to the previous version by default, to a named one, and its refusals', () => {
  const driver = new Driver();
  assert.is(driver.refused({ type: 'app.rollback', tenant: 'default', name: 'web' }).code, 'not-found');
  driver.ok({ type: 'app.deploy', spec: appSpec({ image: 'app:1' }) });
  const none = driver.refused({ type: 'app.rollback', tenant: 'default', name: 'web' });
  assert.equal(none, { code: 'conflict', message: 'cannot roll back "web": it has no earlier version kept (current is version 1)' });
  driver.ok({ type: 'app.deploy', spec: appSpec({ image: 'app:2', replicas: 4 }) });
  driver.ok({ type: 'app.deploy', spec: appSpec({ image: 'app:3' }) });
  const back = driver.ok({ type: 'app.rollback', tenant: 'default', name: 'web' });
  assert.equal(back.value, { tenant: 'default', name: 'web', version: 4, replicas: 4, rollout: back.index });
  assert.equal(driver.machine.app('default', 'web')?.rollout?.kind, 'rollback');
  assert.is(driver.machine.app('default', 'web')?.versions.at(-1)?.spec.image, 'app:2');
  assert.is(driver.machine.instances().length, 4, 'the earlier spec comes back whole, replicas included');
  driver.ok({ type: 'app.rollback', tenant: 'default', name: 'web', toVersion: 1 });
  assert.is(driver.machine.app('default', 'web')?.versions.at(-1)?.spec.image, 'app:1');
  const current = driver.refused({ type: 'app.rollback', tenant: 'default', name: 'web', toVersion: 5 });
  assert.equal(current, { code: 'conflict', message: 'cannot roll back "web" to version 5: it is already the current version; name an earlier one', field: 'toVersion' });
  const unknown = driver.refused({ type: 'app.rollback', tenant: 'default', name: 'web', toVersion: 9 });
  assert.equal(unknown, { code: 'not-found', message: 'cannot roll back "web" to version 9: no such version is kept (kept: 1 to 5)', field: 'toVersion' });
});

test('rollback is refused when the earlier version names a volume deleted since', () => {
  const driver = new Driver();
  driver.ok({ type: 'volume.create', tenant: 'default', name: 'data', sizeBytes: GiB });
  driver.ok({ type: 'app.deploy', spec: appSpec({ volumes: [{ source: 'data', target: '/data', readOnly: false }] }) });
  driver.ok({ type: 'app.deploy', spec: appSpec() });
  driver.ok({ type: 'volume.delete', tenant: 'default', name: 'data' });
  const error = driver.refused({ type: 'app.rollback', tenant: 'default', name: 'web' });
  assert.is(error.code, 'not-found');
  assert.is(error.field, 'toVersion');
  assert.is(error.message, 'cannot roll back "web" to version 1: volume "data" (volumes[0].source) does not exist in tenant "default"; create it first');
});

test('delete removes the app and its instances', () => {
  const driver = new Driver();
  driver.ok({ type: 'app.deploy', spec: appSpec({ replicas: 3 }) });
  driver.ok({ type: 'app.deploy', spec: appSpec({ name: 'api', replicas: 1 }) });
  driver.ok({ type: 'app.delete', tenant: 'default', name: 'web' });
  assert.equal(driver.machine.apps().map((app) => app.name), ['api']);
  assert.equal(driver.machine.instances().map((instance) => instance.id), ['default.api.0.1']);
  assert.is(driver.refused({ type: 'app.delete', tenant: 'default', name: 'web' }).code, 'not-found');
});

test('deploy references: volumes, secrets and policies must exist in the tenant', () => {
  const driver = new Driver();
  // A host path is no named volume to look for (the default tenant may bind one here).
  driver.ok({ type: 'tenant.update', name: 'default', quota: {}, settings: { hostMounts: true } });
  const mount = { source: 'data', target: '/data', readOnly: false };
  const volume = driver.refused({ type: 'app.deploy', spec: appSpec({ volumes: [{ source: '/srv', target: '/srv', readOnly: true }, mount] }) });
  assert.equal(volume, {
    code: 'not-found',
    message: 'cannot deploy "web": volume "data" (volumes[1].source) does not exist in tenant "default"; create it first',
    field: 'spec.volumes[1].source',
  });
  const secret = driver.refused({ type: 'app.deploy', spec: appSpec({ hivemind: { secrets: ['db-password'] } }) });
  assert.is(secret.field, 'spec.hivemind.secrets[0]');
  assert.ok(secret.message.includes('secret "db-password"'));
  const policy = driver.refused({ type: 'app.deploy', spec: appSpec({ hivemind: { policies: ['only-web'] } }) });
  assert.is(policy.field, 'spec.hivemind.policies[0]');
  assert.ok(policy.message.includes('network policy "only-web"'));
  driver.ok({ type: 'tenant.create', name: 'other', quota: {} });
  driver.ok({ type: 'volume.create', tenant: 'other', name: 'data', sizeBytes: 1 });
  assert.is(driver.refused({ type: 'app.deploy', spec: appSpec({ volumes: [mount] }) }).code, 'not-found', 'another tenant\'s volume does not count');
  driver.ok({ type: 'volume.create', tenant: 'default', name: 'data', sizeBytes: 1 });
  driver.ok({ type: 'app.deploy', spec: appSpec({ volumes: [mount] }) });
});

test('quota: memory, with the numbers in the message', () => {
  const driver = new Driver();
  driver.ok({ type: 'tenant.create', name: 'acme', quota: { memoryBytes: 4 * GiB } });
  driver.ok({ type: 'app.deploy', spec: appSpec({ tenant: 'acme', name: 'db', replicas: 7, reservations: { memoryBytes: 512 * MiB }, limits: {} }) });
  const error = driver.refused({ type: 'app.deploy', spec: appSpec({ tenant: 'acme', replicas: 2, reservations: { memoryBytes: 512 * MiB }, limits: {} }) });
  assert.equal(error, {
    code: 'quota-exceeded',
    message:
      'cannot deploy "web": tenant "acme" would exceed its memory quota (used 3.5 GiB of 4 GiB, needs 1 GiB more); ask for less, free some, or raise the quota',
    field: 'spec.reservations.memoryBytes',
  });
  driver.ok({ type: 'app.deploy', spec: appSpec({ tenant: 'acme', replicas: 1, reservations: { memoryBytes: 512 * MiB }, limits: {} }) });
  assert.equal(driver.machine.usage('acme').memoryBytes, 4 * GiB);
});

test('quota: limits count when nothing is reserved; cpu, instances, apps', () => {
  const driver = new Driver();
  driver.ok({ type: 'tenant.create', name: 'acme', quota: { cpuMillis: 2000, instances: 5, apps: 2 } });
  const cpu = driver.refused({ type: 'app.deploy', spec: appSpec({ tenant: 'acme', replicas: 3, reservations: {}, limits: { cpuMillis: 1000 } }) });
  assert.is(cpu.code, 'quota-exceeded');
  assert.is(cpu.field, 'spec.limits.cpuMillis');
  assert.ok(cpu.message.includes('would exceed its CPU quota (used 0 cores of 2 cores, needs 3 cores more)'), cpu.message);
  const instances = driver.refused({ type: 'app.deploy', spec: appSpec({ tenant: 'acme', replicas: 6, reservations: {}, limits: {} }) });
  assert.is(instances.field, 'spec.replicas');
  assert.ok(instances.message.includes('instances quota (used 0 of 5, needs 6 more)'), instances.message);
  const small = { reservations: {}, limits: {}, replicas: 1 };
  driver.ok({ type: 'app.deploy', spec: appSpec({ tenant: 'acme', name: 'a', ...small }) });
  driver.ok({ type: 'app.deploy', spec: appSpec({ tenant: 'acme', name: 'b', ...small }) });
  const apps = driver.refused({ type: 'app.deploy', spec: appSpec({ tenant: 'acme', name: 'c', ...small }) });
  assert.is(apps.field, 'spec.name');
  assert.ok(apps.message.includes('apps quota (used 2 of 2, needs 1 more)'), apps.message);
  driver.ok({ type: 'app.deploy', spec: appSpec({ tenant: 'acme', name: 'a', ...small, image: 'new' }) });
});

test('quota: scale is checked; a lowered quota is reported, and shrinking stays allowed', () => {
  const driver = new Driver();
  driver.ok({ type: 'tenant.create', name: 'acme', quota: { instances: 4 } });
  driver.ok({ type: 'app.deploy', spec: appSpec({ tenant: 'acme', replicas: 3 }) });
  const error = driver.refused({ type: 'app.scale', tenant: 'acme', name: 'web', replicas: 5 });
  assert.is(error.code, 'quota-exceeded');
  assert.is(error.field, 'replicas');
  assert.ok(error.message.startsWith('cannot scale "web" to 5 replicas: tenant "acme" would exceed its instances quota (used 3 of 4, needs 2 more)'));
  const lowered = driver.ok({ type: 'tenant.update', name: 'acme', quota: { instances: 1 } });
  assert.equal(lowered.value, {
    name: 'acme',
    overQuota: [{ resource: 'instances', used: 3, limit: 1, message: 'instances: uses 3 of 1' }],
  });
  driver.ok({ type: 'app.deploy', spec: appSpec({ tenant: 'acme', replicas: 3, image: 'same-size' }) });
  assert.is(driver.refused({ type: 'app.scale', tenant: 'acme', name: 'web', replicas: 4 }).code, 'quota-exceeded');
  driver.ok({ type: 'app.scale', tenant: 'acme', name: 'web', replicas: 2 });
});

test('quota: volumes, and storage counted at what the volumes really take on disk (their nodes report it)', () => {
  const driver = new Driver();
  driver.ok(registerNode('n1'));
  driver.ok({ type: 'tenant.create', name: 'acme', quota: { volumes: 2, storageBytes: 10 * GiB } });
  driver.ok({ type: 'volume.create', tenant: 'acme', name: 'a', sizeBytes: 8 * GiB });
  driver.ok({ type: 'volume.bind', tenant: 'acme', name: 'a', node: 'n1' });
  const createdIndex = driver.machine.volume('acme', 'a')!.createdIndex;
  driver.ok({ type: 'volume.report', tenant: 'acme', name: 'a', createdIndex, node: 'n1', usedBytes: 7 * GiB });
  const storage = driver.refused({ type: 'volume.create', tenant: 'acme', name: 'b', sizeBytes: 4 * GiB });
  assert.equal(storage, {
    code: 'quota-exceeded',
    message: 'cannot create volume "b": tenant "acme" would exceed its storage quota (used 7 GiB of 10 GiB, needs 4 GiB more); ask for less, free some, or raise the quota',
    field: 'sizeBytes',
  });
  // The new volume's whole size must fit in what is left; the sparse 8 GiB volume counts what it holds.
  driver.ok({ type: 'volume.report', tenant: 'acme', name: 'a', createdIndex, node: 'n1', usedBytes: 2 * GiB });
  driver.ok({ type: 'volume.create', tenant: 'acme', name: 'b', sizeBytes: 4 * GiB });
  const count = driver.refused({ type: 'volume.create', tenant: 'acme', name: 'c', sizeBytes: 1 });
  assert.is(count.field, 'name');
  assert.ok(count.message.includes('volumes quota (used 2 of 2, needs 1 more)'));
});

test('check runs the same checks as apply and changes nothing', () => {
  const driver = new Driver();
  driver.ok({ type: 'tenant.create', name: 'acme', quota: { apps: 1 } });
  driver.ok({ type: 'app.deploy', spec: appSpec({ tenant: 'acme' }) });
  const before = driver.machine.snapshot();
  const refused = driver.machine.check({ type: 'app.deploy', spec: appSpec({ tenant: 'acme', name: 'api' }) });
  assert.not.ok(refused.ok);
  if (!refused.ok) assert.is(refused.error.code, 'quota-exceeded');
  const malformed = driver.machine.check({ type: 'app.scale', tenant: 'acme', name: 'web', replicas: -1 });
  assert.not.ok(malformed.ok);
  assert.ok(driver.machine.check({ type: 'app.deploy', spec: appSpec({ name: 'free' }) }).ok, 'implicit default tenant');
  assert.ok(driver.machine.check({ type: 'app.scale', tenant: 'acme', name: 'web', replicas: 3 }).ok);
  assert.equal(driver.machine.snapshot(), before);
  assert.equal(
    driver.machine.tenants().map((tenant) => [tenant.name, tenant.createdIndex]),
    [
      ['acme', 1],
      ['default', 0],
    ],
  );
});

test('app.deploy-many deploys every app of a file, or none', () => {
  const driver = new Driver();
  // Two apps of 2 replicas x 256 MiB reserved: 1 GiB in all; the quota allows 768 MiB.
  driver.ok({ type: 'tenant.create', name: 'acme', quota: { memoryBytes: 768 * MiB } });
  const web = appSpec({ tenant: 'acme', name: 'web' });
  const api = appSpec({ tenant: 'acme', name: 'api', ports: [] });
  const refused = driver.refused({ type: 'app.deploy-many', specs: [web, api] });
  assert.is(refused.code, 'quota-exceeded');
  assert.is(refused.field, 'specs[1].reservations.memoryBytes');
  assert.ok(refused.message.includes('none of the 2 apps was deployed'), refused.message);
  assert.equal(driver.machine.apps('acme'), []);
  assert.equal(driver.machine.instances({ tenant: 'acme' }), []);

  driver.ok({ type: 'tenant.update', name: 'acme', quota: { memoryBytes: GiB } });
  const deployed = driver.ok({ type: 'app.deploy-many', specs: [web, api] });
  assert.equal(deployed.value, {
    apps: [
      { tenant: 'acme', name: 'web', version: 1, replicas: 2 },
      { tenant: 'acme', name: 'api', version: 1, replicas: 2 },
    ],
  });
  assert.is(driver.machine.instances({ tenant: 'acme' }).length, 4);
  const twice = driver.refused({ type: 'app.deploy-many', specs: [web, web] });
  assert.equal([twice.code, twice.field], ['invalid-argument', 'specs[1].name']);
});

test('app.deploy-many refused: the apps it would have changed are untouched (the scratch state shares nothing it changes)', () => {
  const driver = new Driver();
  driver.ok({ type: 'tenant.create', name: 'acme', quota: { memoryBytes: 768 * MiB } });
  driver.ok({ type: 'app.deploy', spec: appSpec({ tenant: 'acme', name: 'web' }) });
  const before = { apps: driver.machine.apps('acme'), instances: driver.machine.instances({ tenant: 'acme' }), tenants: driver.machine.tenants() };
  // web goes to 1 replica and a new image (retiring and adding instances on the scratch state); api then passes the quota.
  const web = appSpec({ tenant: 'acme', name: 'web', replicas: 1, image: 'nginx:1.27' });
  const api = appSpec({ tenant: 'acme', name: 'api', ports: [], replicas: 3 });
  const refused = driver.refused({ type: 'app.deploy-many', specs: [web, api] });
  assert.is(refused.code, 'quota-exceeded');
  assert.equal(driver.machine.apps('acme'), before.apps);
  assert.equal(driver.machine.instances({ tenant: 'acme' }), before.instances);
  assert.equal(driver.machine.tenants(), before.tenants);
  const smaller = appSpec({ tenant: 'acme', name: 'api', ports: [], replicas: 2 });
  const deployed = driver.ok({ type: 'app.deploy-many', specs: [web, smaller] });
  assert.equal(deployed.value, {
    apps: [
      { tenant: 'acme', name: 'web', version: 2, replicas: 1, rollout: driver.index },
      { tenant: 'acme', name: 'api', version: 1, replicas: 2 },
    ],
  });
});

test('app.deploy-many with a project: another project\'s app is refused unless forced; an unchanged app stays as it is', () => {
  const driver = new Driver();
  driver.ok({ type: 'tenant.create', name: 'acme', quota: {} });
  const web = appSpec({ tenant: 'acme', name: 'web', replicas: 3, image: 'busybox:1.36' });
  const first = driver.ok({ type: 'app.deploy-many', specs: [web], project: 'shop' });
  assert.equal(first.value, { apps: [{ tenant: 'acme', name: 'web', version: 1, replicas: 3 }] });
  assert.is(driver.machine.app('acme', 'web')?.project, 'shop');

  const other = appSpec({ tenant: 'acme', name: 'web', replicas: 1, image: 'nginx:1.27' });
  const refused = driver.refused({ type: 'app.deploy-many', specs: [other], project: 'blog' });
  assert.equal([refused.code, refused.field], ['conflict', 'specs[0].name']);
  assert.ok(refused.message.includes('belongs to project "shop", not "blog"') && refused.message.includes('--force'), refused.message);
  assert.is(driver.machine.app('acme', 'web')?.version, 1);

  // The same file again: no new version, no instance touched.
  const instancesBefore = driver.machine.instances({ tenant: 'acme' });
  const again = driver.ok({ type: 'app.deploy-many', specs: [structuredClone(web)], project: 'shop' });
  assert.equal(again.value, { apps: [{ tenant: 'acme', name: 'web', version: 1, replicas: 3, unchanged: true }] });
  assert.equal(driver.machine.instances({ tenant: 'acme' }), instancesBefore);

  // Scaled by hand, then the file again: back to the file's replicas, still version 1.
  driver.ok({ type: 'app.scale', tenant: 'acme', name: 'web', replicas: 5 });
  const rescaled = driver.ok({ type: 'app.deploy-many', specs: [web], project: 'shop' });
  assert.equal(rescaled.value, { apps: [{ tenant: 'acme', name: 'web', version: 1, replicas: 3 }] });

  const forced = driver.ok({ type: 'app.deploy-many', specs: [other], project: 'blog', force: true });
  assert.equal(forced.value, { apps: [{ tenant: 'acme', name: 'web', version: 2, replicas: 1, rollout: driver.index }] });
  assert.is(driver.machine.app('acme', 'web')?.project, 'blog');
});

test('app.deploy-many without a project applies as before: an unchanged spec makes a new version, and a project adopts an app without one', () => {
  const driver = new Driver();
  driver.ok({ type: 'tenant.create', name: 'acme', quota: {} });
  const web = appSpec({ tenant: 'acme', name: 'web' });
  driver.ok({ type: 'app.deploy-many', specs: [web] });
  const again = driver.ok({ type: 'app.deploy-many', specs: [web] });
  assert.equal(again.value, { apps: [{ tenant: 'acme', name: 'web', version: 2, replicas: 2, rollout: driver.index }] });
  assert.is(driver.machine.app('acme', 'web')?.project, undefined);
  const adopted = driver.ok({ type: 'app.deploy-many', specs: [web], project: 'shop' });
  assert.equal(adopted.value, { apps: [{ tenant: 'acme', name: 'web', version: 2, replicas: 2, unchanged: true }] });
  assert.is(driver.machine.app('acme', 'web')?.project, 'shop');
  const badProject = driver.refused({ type: 'app.deploy-many', specs: [web], project: 'Not_A_Label' });
  assert.equal([badProject.code, badProject.field], ['invalid-argument', 'project']);
});

test.run();
