// How an instance's volumes reach its workload: a container binds each named
// volume (from <volumes>/<tenant>/<name>) and host path at its target; a
// process app gets each named volume's path in HIVEMIND_VOLUME_<NAME> and
// keeps host paths as mounts (which the process runtime refuses).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { appSpec, Driver, registerNode } from '../../state/test/fixtures.js';
import { STATE_VERSION_LABEL, type Command, type Instance } from '../../state/types.js';
import { buildWorkload, volumeVariable } from '../workload-spec.js';

const instance: Instance = { id: 'default.web.0.1', tenant: 'default', app: 'web', slot: 0, version: 1, desired: 'running', node: 'n1', status: { state: 'pending' } } as Instance;
const volumes = [
  { source: 'app-data', target: '/data', readOnly: false },
  { source: '/srv/config', target: '/etc/app', readOnly: true },
];

function build(image: boolean) {
  const spec = appSpec({ volumes, ...(image ? {} : { image: undefined, command: ['sh', '-c', 'true'] }) });
  const built = buildWorkload({ instance, spec, machine: new Driver().machine, clusterKey: undefined, logPath: '/tmp/log', volumesDir: '/var/lib/hivemind/volumes' });
  assert.ok(built.ok);
  return built.workload;
}

test('a container binds named volumes and host paths at their targets', () => {
  const workload = build(true);
  assert.equal(workload.mounts, [
    { source: '/var/lib/hivemind/volumes/default/app-data', target: '/data', readOnly: false },
    { source: '/srv/config', target: '/etc/app', readOnly: true },
  ]);
  assert.is(workload.environment.HIVEMIND_VOLUME_APP_DATA, undefined);
});

test('a process app finds a named volume in HIVEMIND_VOLUME_<NAME>; host paths stay mounts', () => {
  const workload = build(false);
  assert.is(workload.environment.HIVEMIND_VOLUME_APP_DATA, '/var/lib/hivemind/volumes/default/app-data');
  assert.equal(workload.mounts, [{ source: '/srv/config', target: '/etc/app', readOnly: true }]);
  assert.is(volumeVariable('data'), 'HIVEMIND_VOLUME_DATA');
});

test("a workload's networks: its spec's (or default) that the state holds, in order; none held: none (the node subnet)", () => {
  const driver = new Driver();
  const register = registerNode('n1') as Extract<Command, { type: 'node.register' }>;
  driver.ok({ ...register, labels: { ...register.labels, [STATE_VERSION_LABEL]: '6' } });
  driver.ok({ type: 'cluster.version', version: 6 });
  const networksOf = (spec: Parameters<typeof appSpec>[0]): string[] | undefined => {
    const built = buildWorkload({ instance, spec: appSpec(spec), machine: driver.machine, clusterKey: undefined, logPath: '/tmp/log', volumesDir: '/var/lib/hivemind/volumes' });
    assert.ok(built.ok);
    return built.workload.networks;
  };
  assert.equal(networksOf({}), [], 'no pool: the tenant has no network');
  driver.ok({ type: 'network.configure', cidr: '10.210.0.0/16', nodePrefixLength: 24, tenantCidr: '10.224.0.0/12' });
  driver.ok({ type: 'tenant.create', name: 'default', quota: {} });
  driver.ok({ type: 'network.create', tenant: 'default', name: 'back' });
  assert.equal(networksOf({}), ['default']);
  assert.equal(networksOf({ networks: ['back', 'gone', 'default'] }), ['back', 'default']);
});

test.run();
