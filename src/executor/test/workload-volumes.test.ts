// How an instance's volumes reach its workload: a container binds each named
// volume (from <volumes>/<tenant>/<name>) and host path at its target; a
// process app gets each named volume's path in HIVEMIND_VOLUME_<NAME> and
// keeps host paths as mounts (which the process runtime refuses).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { appSpec, Driver } from '../../state/test/fixtures.js';
import type { Instance } from '../../state/types.js';
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

test.run();
