// A deploy or scale whose replicas share a node-local volume but could never
// all run on its node is refused with the reason, from cluster version 4.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { STATE_VERSION_LABEL } from '../types.js';
import { VOLUME_FIT_VERSION } from '../version.js';
import { appSpec, Driver, GiB, MiB, registerNode } from './fixtures.js';

/** Two nodes of 4 CPUs and 8 GiB, on this release; a 1 GiB volume `data`. */
function cluster(raised = true): Driver {
  const driver = new Driver();
  for (const id of ['n1', 'n2']) {
    const register = registerNode(id);
    assert.ok(register.type === 'node.register');
    driver.ok({ ...register, labels: { ...register.labels, [STATE_VERSION_LABEL]: String(VOLUME_FIT_VERSION) } });
  }
  if (raised) driver.ok({ type: 'cluster.version', version: VOLUME_FIT_VERSION });
  driver.ok({ type: 'volume.create', tenant: 'default', name: 'data', sizeBytes: GiB });
  return driver;
}

const mounts = { volumes: [{ source: 'data', target: '/data', readOnly: false }], ports: [], limits: {} };

test('replicas on one volume: fine while they fit on one node; refused past the largest node, naming what they reserve and what it has', () => {
  const driver = cluster();
  driver.ok({ type: 'app.deploy', spec: appSpec({ ...mounts, replicas: 3, reservations: { cpuMillis: 1000, memoryBytes: GiB } }) });
  const refused = driver.refused({ type: 'app.deploy', spec: appSpec({ ...mounts, name: 'big', replicas: 5, reservations: { cpuMillis: 1000, memoryBytes: GiB } }) });
  assert.equal([refused.code, refused.field], ['invalid-argument', 'spec.replicas']);
  assert.match(refused.message, /5 replicas mount volume "data" \(volumes\[0\]\.source\), which lives on one node, so they all run there: they reserve 5 cores and 5 GiB of memory in all, and the largest node \(n\d\) has 4 cores and 8 GiB of memory/);
  const scaled = driver.refused({ type: 'app.scale', tenant: 'default', name: 'web', replicas: 6 });
  assert.equal([scaled.code, scaled.field], ['invalid-argument', 'replicas']);
  driver.ok({ type: 'app.scale', tenant: 'default', name: 'web', replicas: 4 });
});

test('a bound volume counts its own node; a published port or max_per_node below the replicas is refused; one replica is always fine', () => {
  const driver = cluster();
  driver.ok({ type: 'volume.bind', tenant: 'default', name: 'data', node: 'n2' });
  const port = driver.refused({ type: 'app.deploy', spec: appSpec({ ...mounts, replicas: 2, ports: [{ target: 80, published: 8080, protocol: 'tcp' }] }) });
  assert.match(port.message, /only one of them can publish port 8080/);
  const perNode = driver.refused({ type: 'app.deploy', spec: appSpec({ ...mounts, replicas: 3, hivemind: { maxPerNode: 2 } }) });
  assert.match(perNode.message, /x-hivemind\.max_per_node allows 2 per node/);
  const memory = driver.refused({ type: 'app.deploy', spec: appSpec({ ...mounts, replicas: 3, reservations: { memoryBytes: 3 * GiB } }) });
  assert.match(memory.message, /its node n2 has 4 cores and 8 GiB of memory/);
  driver.ok({ type: 'app.deploy', spec: appSpec({ ...mounts, replicas: 1, ports: [{ target: 80, published: 8080, protocol: 'tcp' }], reservations: { memoryBytes: 6 * GiB } }) });
});

test('before the cluster version that brings the rule, such a deploy is accepted as older code accepts it', () => {
  const driver = cluster(false);
  driver.ok({ type: 'app.deploy', spec: appSpec({ ...mounts, replicas: 5, reservations: { memoryBytes: 4 * GiB + MiB } }) });
});

test.run();
