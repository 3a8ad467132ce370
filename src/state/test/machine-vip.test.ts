import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ClusterStateMachine } from '../machine.js';
import { lowestFreeVip, serviceCidrProblem } from '../vip.js';
import type { App } from '../types.js';
import { appSpec, Driver, registerNode } from './fixtures.js';

const configure = { type: 'network.configure', cidr: '10.210.0.0/16', nodePrefixLength: 24 } as const;
const withServices = { ...configure, serviceCidr: '10.211.0.0/16' } as const;

function vips(machine: ClusterStateMachine): Record<string, string | undefined> {
  return Object.fromEntries(machine.apps().map((app) => [`${app.tenant}/${app.name}`, app.vip]));
}

test('service range checks: a CIDR, /8 to /28, apart from the cluster network', () => {
  assert.is(serviceCidrProblem('10.211.0.0/16', '10.210.0.0/16'), undefined);
  assert.ok(serviceCidrProblem('10.210.128.0/24', '10.210.0.0/16')?.includes('overlaps'));
  assert.ok(serviceCidrProblem('10.0.0.0/8', '10.210.0.0/16')?.includes('overlaps'), 'a range holding the cluster network overlaps too');
  assert.ok(serviceCidrProblem('10.211.0.0/29', '10.210.0.0/16')?.includes('/29'));
  assert.ok(serviceCidrProblem('10.211.0.1/16', '10.210.0.0/16')?.includes('host bits'));
  const held = (vip: string) => ({ vip }) as App;
  assert.is(lowestFreeVip('10.211.0.0/30', []), '10.211.0.1', 'never the network address');
  assert.is(lowestFreeVip('10.211.0.0/30', [held('10.211.0.1')]), '10.211.0.2');
  assert.is(lowestFreeVip('10.211.0.0/30', [held('10.211.0.1'), held('10.211.0.2')]), undefined, 'never the broadcast address');
});

test('apps with ports get the lowest free VIP at deploy; apps without ports get none; a redeploy keeps it', () => {
  const driver = new Driver();
  driver.ok(registerNode('n1'));
  driver.ok(withServices);
  assert.is(driver.machine.network()?.serviceCidr, '10.211.0.0/16');
  const web = driver.ok({ type: 'app.deploy', spec: appSpec({ name: 'web' }) });
  assert.is((web.value as { vip?: string }).vip, '10.211.0.1');
  driver.ok({ type: 'app.deploy', spec: appSpec({ name: 'worker', ports: [] }) });
  driver.ok({ type: 'app.deploy', spec: appSpec({ name: 'api' }) });
  assert.equal(vips(driver.machine), { 'default/web': '10.211.0.1', 'default/worker': undefined, 'default/api': '10.211.0.2' });
  // A new version (even without ports) keeps the VIP: a name never moves under its clients.
  driver.ok({ type: 'app.deploy', spec: appSpec({ name: 'web', replicas: 3, ports: [] }) });
  assert.is(driver.machine.app('default', 'web')?.vip, '10.211.0.1');
  // A deploy of several apps at once: in file order, the same on every replica.
  driver.ok({ type: 'app.deploy-many', specs: [appSpec({ name: 'a' }), appSpec({ name: 'b' })] });
  assert.equal([driver.machine.app('default', 'a')?.vip, driver.machine.app('default', 'b')?.vip], ['10.211.0.3', '10.211.0.4']);
});

test('a deleted app gives its VIP back; the next app takes the lowest free; no two apps ever hold one', () => {
  const driver = new Driver();
  driver.ok(withServices);
  for (const name of ['a', 'b', 'c']) driver.ok({ type: 'app.deploy', spec: appSpec({ name, replicas: 1 }) });
  driver.ok({ type: 'app.delete', tenant: 'default', name: 'b' });
  driver.ok({ type: 'app.deploy', spec: appSpec({ name: 'd', replicas: 1 }) });
  assert.equal(vips(driver.machine), { 'default/a': '10.211.0.1', 'default/c': '10.211.0.3', 'default/d': '10.211.0.2' });
  // Churn: deploys and deletes in a fixed pseudo-random order; every step, VIPs are distinct and in the range.
  let seed = 7;
  for (let step = 0; step < 300; step++) {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    const name = `app${seed % 40}`;
    if (driver.machine.app('default', name) !== undefined && seed % 3 === 0) driver.ok({ type: 'app.delete', tenant: 'default', name });
    else driver.ok({ type: 'app.deploy', spec: appSpec({ name, replicas: 0 }) });
    const held = driver.machine.apps().map((app) => app.vip).filter((vip): vip is string => vip !== undefined);
    assert.is(new Set(held).size, held.length, `step ${step}: two apps on one VIP: ${held.join(' ')}`);
    assert.ok(held.every((vip) => vip.startsWith('10.211.')), held.join(' '));
  }
});

test('a full range: the app deploys without a VIP', () => {
  const driver = new Driver();
  driver.ok({ ...configure, serviceCidr: '10.211.0.0/28' });
  for (let position = 0; position < 15; position++) driver.ok({ type: 'app.deploy', spec: appSpec({ name: `a${position}`, replicas: 0 }) });
  assert.is(driver.machine.app('default', 'a13')?.vip, '10.211.0.14', 'the last usable address of the /28');
  assert.is(driver.machine.app('default', 'a14')?.vip, undefined, 'the 15th app deploys without one');
});

test('the service range is set once: by the first configure that carries one, which gives VIPs to the apps already there', () => {
  const driver = new Driver();
  driver.ok(configure);
  driver.ok({ type: 'app.deploy', spec: appSpec({ name: 'web', replicas: 0 }) });
  driver.ok({ type: 'app.deploy', spec: appSpec({ name: 'worker', ports: [], replicas: 0 }) });
  assert.equal(vips(driver.machine), { 'default/web': undefined, 'default/worker': undefined }, 'no range, no VIP');
  const result = driver.ok(withServices);
  assert.equal((result.value as { vips: unknown }).vips, { allocated: 1, unallocated: 0 });
  assert.equal(vips(driver.machine), { 'default/web': '10.211.0.1', 'default/worker': undefined });
  assert.ok(driver.machine.history().some((entry) => entry.summary.includes('service range 10.211.0.0/16')), 'in the history');
  // The same again, or none: accepted; another: refused.
  driver.ok(withServices);
  driver.ok(configure);
  assert.is(driver.machine.network()?.serviceCidr, '10.211.0.0/16');
  const other = driver.run({ ...configure, serviceCidr: '10.212.0.0/16' });
  assert.ok(!other.ok && other.error.code === 'conflict' && other.error.field === 'serviceCidr', JSON.stringify(other));
  const overlapping = driver.run({ ...configure, serviceCidr: '10.210.0.0/24' });
  assert.ok(!overlapping.ok && overlapping.error.code === 'invalid-argument', JSON.stringify(overlapping));
});

test('snapshots keep the range and the VIPs; a snapshot from before VIPs loads and goes on', () => {
  const driver = new Driver();
  driver.ok(configure);
  driver.ok({ type: 'app.deploy', spec: appSpec({ name: 'web', replicas: 0 }) });
  const before = driver.machine.snapshot();
  driver.ok(withServices);
  const restored = ClusterStateMachine.restore(driver.machine.snapshot());
  assert.equal(restored.network(), driver.machine.network());
  assert.is(restored.app('default', 'web')?.vip, '10.211.0.1');
  assert.equal(restored.snapshot(), driver.machine.snapshot());
  const old = new Driver(ClusterStateMachine.restore(before));
  assert.is(old.machine.network()?.serviceCidr, undefined);
  assert.is(old.machine.app('default', 'web')?.vip, undefined);
  old.ok(withServices);
  assert.is(old.machine.app('default', 'web')?.vip, '10.211.0.1', 'the same VIP as on the replica that never snapshotted');
});

test.run();
