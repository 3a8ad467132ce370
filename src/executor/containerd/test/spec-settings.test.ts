// The OCI spec of a workload with container settings: init in front of the
// argv (or a ContainerSettingsError without one), rlimits with unlimited
// written as RLIM_INFINITY, tmpfs mounts before the binds, the capability sets.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ContainerSettingsError, buildRuntimeSpec, INIT_TARGET, serializeRuntimeSpec } from '../spec.js';
import { busyboxWorkload } from './harness.js';

const image = { name: 'busybox', targetDigest: 'sha256:a', manifestDigest: 'sha256:b', chainId: 'sha256:c', config: { Cmd: ['sh'] } };
const context = { image, netnsPath: '/run/netns/x', user: { uid: 0, gid: 0 }, secretsDir: '/secrets/x' };

test('init: the argv behind the bound init; refused with what to install when the node has none', () => {
  const workload = busyboxWorkload('/tmp/none', 'w1', { command: ['sleep', '5'], container: { init: true } });
  const spec = buildRuntimeSpec(workload, { ...context, initPath: '/usr/bin/tini-static' }) as { process: { args: string[] }; mounts: Array<{ destination: string; source: string }> };
  assert.equal(spec.process.args, [INIT_TARGET, '--', 'sleep', '5']);
  assert.ok(spec.mounts.some((mount) => mount.destination === INIT_TARGET && mount.source === '/usr/bin/tini-static'));
  assert.throws(() => buildRuntimeSpec(workload, context), (error: unknown) => error instanceof ContainerSettingsError && error.code === 'container-settings-unavailable' && /install Debian's tini package/.test(error.message));
});

test('rlimits: the nofile default unless set; -1 is RLIM_INFINITY in the JSON, also after a read back', () => {
  const plain = buildRuntimeSpec(busyboxWorkload('/tmp/none', 'w2'), context) as { process: { rlimits: unknown[] } };
  assert.equal(plain.process.rlimits, [{ type: 'RLIMIT_NOFILE', hard: 1024, soft: 1024 }]);
  const spec = buildRuntimeSpec(busyboxWorkload('/tmp/none', 'w3', { container: { ulimits: [{ name: 'nofile', soft: 10, hard: 20 }, { name: 'memlock', soft: -1, hard: -1 }] } }), context);
  const text = serializeRuntimeSpec(spec);
  assert.match(text, /"rlimits":\[\{"type":"RLIMIT_NOFILE","soft":10,"hard":20\},\{"type":"RLIMIT_MEMLOCK","soft":18446744073709551615,"hard":18446744073709551615\}\]/);
  assert.is(serializeRuntimeSpec(JSON.parse(text) as Record<string, unknown>), text, 'a spec read back from containerd is written the same');
});

test('tmpfs mounts come before the binds, so a tmpfs on /run keeps /run/secrets; capability sets follow cap_add and cap_drop', () => {
  const workload = busyboxWorkload('/tmp/none', 'w4', { container: { tmpfs: [{ target: '/run', sizeBytes: 4096 }], capDrop: ['ALL'], capAdd: ['CAP_NET_BIND_SERVICE'], hostname: 'web1' } });
  const spec = buildRuntimeSpec(workload, context) as { hostname: string; mounts: Array<{ destination: string; type: string; options: string[] }>; process: { capabilities: Record<string, string[]> } };
  const destinations = spec.mounts.map((mount) => mount.destination);
  assert.ok(destinations.lastIndexOf('/run') < destinations.indexOf('/run/secrets'));
  assert.ok(spec.mounts.some((mount) => mount.destination === '/run' && mount.options.includes('size=4096')));
  assert.equal(spec.process.capabilities, { bounding: ['CAP_NET_BIND_SERVICE'], effective: ['CAP_NET_BIND_SERVICE'], permitted: ['CAP_NET_BIND_SERVICE'] });
  assert.is(spec.hostname, 'web1');
});

test.run();
