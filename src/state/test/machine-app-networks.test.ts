import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ClusterStateMachine } from '../machine.js';
import { commandVersion } from '../commands.js';
import { STATE_VERSION_LABEL, type Command } from '../types.js';
import { appSpec, Driver, registerNode as registerOldNode } from './fixtures.js';

/** A node registration from code of state version 6. */
function registerNode(id: string): Command {
  const command = registerOldNode(id) as Extract<Command, { type: 'node.register' }>;
  return { ...command, labels: { ...command.labels, [STATE_VERSION_LABEL]: '6' } };
}

/** A cluster at state version 6 with its pool set, nodes n1..n2 and tenant acme (its `default` is 10.224.0.0/20). */
function cluster(): Driver {
  const driver = new Driver();
  for (const id of ['n1', 'n2']) driver.ok(registerNode(id));
  driver.ok({ type: 'cluster.version', version: 6 });
  driver.ok({ type: 'network.configure', cidr: '10.210.0.0/16', nodePrefixLength: 24, serviceCidr: '10.211.0.0/16', tenantCidr: '10.224.0.0/12' });
  driver.ok({ type: 'tenant.create', name: 'acme', quota: {} });
  return driver;
}

function networksOf(driver: Driver): Record<string, string> {
  return Object.fromEntries(driver.machine.networks().map((network) => [`${network.tenant}/${network.name}`, network.cidr]));
}

const web = appSpec({ tenant: 'acme', name: 'web', replicas: 1, ports: [], networks: ['front', 'back'] });
const db = appSpec({ tenant: 'acme', name: 'db', replicas: 1, ports: [], networks: ['back'] });

test('a deploy makes the networks its file declares with its apps; the same deploy again changes nothing', () => {
  const driver = cluster();
  const deploy: Command = { type: 'app.deploy-many', specs: [web, db], project: 'shop', networks: [{ tenant: 'acme', name: 'front' }, { tenant: 'acme', name: 'back', cidr: '10.224.160.0/20' }] };
  const result = driver.ok(deploy);
  assert.equal(networksOf(driver), { 'acme/default': '10.224.0.0/20', 'acme/front': '10.224.16.0/20', 'acme/back': '10.224.160.0/20' });
  assert.equal(driver.machine.app('acme', 'web')?.versions[0]?.spec.networks, ['front', 'back'], 'the spec carries its networks, in order');
  assert.match(driver.machine.history()[0]!.summary, /network acme\/front created \(10\.224\.16\.0\/20\); network acme\/back created/);
  assert.ok(result.ok);
  const before = driver.machine.snapshot();
  const again = driver.ok(deploy);
  assert.ok((again.value as { apps: { unchanged?: boolean }[] }).apps.every((app) => app.unchanged === true), 'no new version');
  assert.equal(networksOf(driver), { 'acme/default': '10.224.0.0/20', 'acme/front': '10.224.16.0/20', 'acme/back': '10.224.160.0/20' });
  assert.equal(ClusterStateMachine.restore(driver.machine.snapshot()).networks(), ClusterStateMachine.restore(before).networks(), 'the networks are as they were');
  const restored = ClusterStateMachine.restore(driver.machine.snapshot());
  assert.equal(restored.app('acme', 'web')?.versions[0]?.spec.networks, ['front', 'back'], 'snapshots keep the spec networks');
});

test('refusals change nothing and name their field: an unknown network, a block that differs, a bad block, one listed twice', () => {
  const driver = cluster();
  driver.ok({ type: 'network.create', tenant: 'acme', name: 'front' });
  const before = { networks: networksOf(driver), apps: driver.machine.apps(), tenants: driver.machine.tenants(), instances: driver.machine.instances() };
  const unknown = driver.refused({ type: 'app.deploy-many', specs: [appSpec({ tenant: 'acme', name: 'web', ports: [], networks: ['front', 'back'] })] });
  assert.equal([unknown.code, unknown.field], ['not-found', 'specs[0].networks[1]']);
  assert.match(unknown.message, /network "back" \(networks\[1\]\) does not exist in tenant "acme"/);
  const single = driver.refused({ type: 'app.deploy', spec: appSpec({ tenant: 'acme', name: 'web', ports: [], networks: ['back'] }) });
  assert.equal([single.code, single.field], ['not-found', 'spec.networks[0]']);
  const differs = driver.refused({ type: 'app.deploy-many', specs: [web], networks: [{ tenant: 'acme', name: 'front', cidr: '10.224.48.0/20' }, { tenant: 'acme', name: 'back' }] });
  assert.equal([differs.code, differs.field], ['conflict', 'networks[0].cidr']);
  assert.match(differs.message, /exists with 10\.224\.16\.0\/20, not 10\.224\.48\.0\/20/);
  const outside = driver.refused({ type: 'app.deploy-many', specs: [web], networks: [{ tenant: 'acme', name: 'back', cidr: '10.100.0.0/20' }] });
  assert.equal([outside.code, outside.field], ['invalid-argument', 'networks[0].cidr']);
  const overlapping = driver.refused({ type: 'app.deploy-many', specs: [web], networks: [{ tenant: 'acme', name: 'back', cidr: '10.224.16.0/20' }] });
  assert.equal([overlapping.code, overlapping.field], ['conflict', 'networks[0].cidr']);
  const twice = driver.refused({ type: 'app.deploy-many', specs: [web], networks: [{ tenant: 'acme', name: 'back' }, { tenant: 'acme', name: 'back' }] });
  assert.equal([twice.code, twice.field], ['invalid-argument', 'networks[1].name']);
  const noTenant = driver.refused({ type: 'app.deploy-many', specs: [web], networks: [{ tenant: 'nobody', name: 'back' }] });
  assert.equal([noTenant.code, noTenant.field], ['not-found', 'networks[0].tenant']);
  // A network made by the plan, then an app refused: neither is made.
  const quota = driver.refused({ type: 'app.deploy-many', specs: [web, appSpec({ tenant: 'acme', name: 'db', ports: [], networks: ['back'], volumes: [{ source: 'data', target: '/data', readOnly: false }] })], networks: [{ tenant: 'acme', name: 'back' }] });
  assert.equal([quota.code, quota.field], ['not-found', 'specs[1].volumes[0].source']);
  const duplicateName = driver.refused({ type: 'app.deploy', spec: appSpec({ tenant: 'acme', ports: [], networks: ['front', 'front'] }) });
  assert.is(duplicateName.code, 'invalid-argument');
  assert.equal({ networks: networksOf(driver), apps: driver.machine.apps(), tenants: driver.machine.tenants(), instances: driver.machine.instances() }, before, 'nothing changed');
});

test('the implicit default tenant is adopted by a deploy that makes its networks', () => {
  const driver = cluster();
  driver.ok({ type: 'app.deploy-many', specs: [appSpec({ name: 'web', ports: [], networks: ['default', 'back'] })], networks: [{ tenant: 'default', name: 'default' }, { tenant: 'default', name: 'back' }] });
  assert.equal(networksOf(driver)['default/back'], '10.224.32.0/20');
  assert.ok(driver.machine.tenant('default') !== undefined);
});

test('network.delete is refused while an app names the network; default only while an app is on it', () => {
  const driver = cluster();
  driver.ok({ type: 'app.deploy-many', specs: [db], networks: [{ tenant: 'acme', name: 'back' }] });
  const refused = driver.refused({ type: 'network.delete', tenant: 'acme', name: 'back' });
  assert.equal([refused.code, refused.field], ['conflict', 'name']);
  assert.match(refused.message, /app "db" is on it/);
  driver.ok({ type: 'network.delete', tenant: 'acme', name: 'default' });
  driver.ok({ type: 'app.delete', tenant: 'acme', name: 'db' });
  driver.ok({ type: 'network.delete', tenant: 'acme', name: 'back' });
});

test('detach is refused while an instance on that network holds its slice, whatever other network it is on', () => {
  const driver = cluster();
  driver.ok({ type: 'app.deploy-many', specs: [web], networks: [{ tenant: 'acme', name: 'front' }, { tenant: 'acme', name: 'back' }] });
  for (const name of ['front', 'back', 'default']) driver.ok({ type: 'network.attach', tenant: 'acme', name, node: 'n1' });
  const id = driver.machine.instances()[0]!.id;
  driver.ok({ type: 'instance.place', placements: [{ id, node: 'n1' }] });
  assert.is(driver.refused({ type: 'network.detach', tenant: 'acme', name: 'back', node: 'n1' }).code, 'conflict');
  assert.is(driver.refused({ type: 'network.detach', tenant: 'acme', name: 'front', node: 'n1' }).code, 'conflict');
  driver.ok({ type: 'network.detach', tenant: 'acme', name: 'default', node: 'n1' });
});

test('the spec networks and a deploy that makes networks need state version 6; others keep their version', () => {
  assert.is(commandVersion({ type: 'app.deploy', spec: web }), 6);
  assert.is(commandVersion({ type: 'app.deploy', spec: appSpec() }), 1);
  assert.is(commandVersion({ type: 'app.deploy-many', specs: [appSpec()], networks: [] }), 6);
  assert.is(commandVersion({ type: 'app.deploy-many', specs: [appSpec()] }), 1);
  const old = new Driver();
  old.ok(registerOldNode('n1'));
  assert.is(old.refused({ type: 'app.deploy', spec: appSpec({ ports: [], networks: ['default'] }) }).code, 'cluster-version-too-old');
});

test('aliases per network: state version 7, kept in the spec and snapshots; refused naming a network the app is not on, or one twice', () => {
  const aliased = appSpec({ tenant: 'acme', name: 'web', replicas: 1, ports: [], networks: ['front', 'back'], hivemind: { networkAliases: [{ network: 'front', aliases: ['www'] }] } });
  assert.is(commandVersion({ type: 'app.deploy', spec: aliased }), 7);
  assert.is(commandVersion({ type: 'app.deploy-many', specs: [web, aliased] }), 7);
  const atSix = cluster();
  assert.is(atSix.refused({ type: 'app.deploy-many', specs: [aliased], networks: [{ tenant: 'acme', name: 'front' }, { tenant: 'acme', name: 'back' }] }).code, 'cluster-version-too-old', 'a member of version 6 would refuse the field');
  const driver = new Driver();
  for (const id of ['n1', 'n2']) {
    const command = registerOldNode(id) as Extract<Command, { type: 'node.register' }>;
    driver.ok({ ...command, labels: { ...command.labels, [STATE_VERSION_LABEL]: '7' } });
  }
  driver.ok({ type: 'cluster.version', version: 7 });
  driver.ok({ type: 'network.configure', cidr: '10.210.0.0/16', nodePrefixLength: 24, serviceCidr: '10.211.0.0/16', tenantCidr: '10.224.0.0/12' });
  driver.ok({ type: 'tenant.create', name: 'acme', quota: {} });
  const networks = [{ tenant: 'acme', name: 'front' }, { tenant: 'acme', name: 'back' }];
  const before = driver.machine.apps();
  const elsewhere = driver.refused({ type: 'app.deploy-many', specs: [{ ...aliased, hivemind: { networkAliases: [{ network: 'other', aliases: ['www'] }] } }], networks });
  assert.equal([elsewhere.code, elsewhere.field], ['invalid-argument', 'specs[0].hivemind.networkAliases[0].network']);
  assert.match(elsewhere.message, /"other" is not one of the app's networks \(front, back\)/);
  const twice = driver.refused({ type: 'app.deploy-many', specs: [{ ...aliased, hivemind: { networkAliases: [{ network: 'front', aliases: ['a'] }, { network: 'front', aliases: ['b'] }] } }], networks });
  assert.equal([twice.code, twice.field], ['invalid-argument', 'specs[0].hivemind.networkAliases[1].network']);
  const empty = driver.refused({ type: 'app.deploy', spec: { ...aliased, hivemind: { networkAliases: [{ network: 'front', aliases: [] }] } } });
  assert.is(empty.code, 'invalid-argument');
  assert.equal(driver.machine.apps(), before, 'nothing changed');
  driver.ok({ type: 'app.deploy-many', specs: [aliased], networks });
  const restored = ClusterStateMachine.restore(driver.machine.snapshot());
  assert.equal(restored.app('acme', 'web')?.versions[0]?.spec.hivemind.networkAliases, [{ network: 'front', aliases: ['www'] }]);
});

test.run();
