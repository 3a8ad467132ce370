// hostname, init, tmpfs, ulimits, cap_add/cap_drop and extra_hosts: read into the spec's container settings (issue 20).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { effectiveCapabilities, DEFAULT_CAPABILITIES } from '../../state/capabilities.js';
import { confinementProblem } from '../../state/tenant-confinement.js';
import { validateCommand } from '../../state/validate.js';
import { errorsOf, onlyApp, oneService, warningsOf } from './helpers.js';

test('every key reaches the spec, in Compose forms', () => {
  const spec = onlyApp(
    oneService(`
      image: app
      hostname: web1
      init: true
      tmpfs: [/tmp, "/cache:size=64m,mode=1777"]
      ulimits: { nofile: { soft: 2048, hard: 4096 }, nproc: 512, memlock: -1 }
      cap_add: [net_admin]
      cap_drop: [CAP_MKNOD, ALL]
      extra_hosts: ["db.local:10.0.0.5", "v6.local=::1", "api.local:[fd00::1]"]
    `),
  );
  assert.equal(spec.container, {
    hostname: 'web1',
    init: true,
    tmpfs: [{ target: '/tmp' }, { target: '/cache', sizeBytes: 64 * 1024 * 1024, mode: 0o1777 }],
    ulimits: [
      { name: 'nofile', soft: 2048, hard: 4096 },
      { name: 'nproc', soft: 512, hard: 512 },
      { name: 'memlock', soft: -1, hard: -1 },
    ],
    capAdd: ['CAP_NET_ADMIN'],
    capDrop: ['CAP_MKNOD', 'ALL'],
    extraHosts: [
      { host: 'db.local', address: '10.0.0.5' },
      { host: 'v6.local', address: '::1' },
      { host: 'api.local', address: 'fd00::1' },
    ],
  });
  assert.equal(warningsOf(oneService('image: app\nhostname: web1\ninit: true\ntmpfs: /run')), []);
  assert.equal(onlyApp(oneService('image: app\nextra_hosts: { db.local: 10.0.0.5 }')).container, { extraHosts: [{ host: 'db.local', address: '10.0.0.5' }] });
  assert.is(onlyApp(oneService('image: app\ninit: false')).container, undefined);
});

test('bad values are refused, naming the field', () => {
  assert.equal(errorsOf(oneService('image: app\nhostname: "web_1"')), ['app.yaml: services.web.hostname: must be a host name of letters, digits and - (at most 63), got "web_1"']);
  assert.equal(errorsOf(oneService('image: app\ntmpfs: ["tmp"]')), ['app.yaml: services.web.tmpfs[0]: must be an absolute path like "/app", got "tmp"']);
  assert.equal(errorsOf(oneService('image: app\ntmpfs: ["/tmp:uid=5"]')), ['app.yaml: services.web.tmpfs[0]: has option "uid=5"; a tmpfs takes size=SIZE (like 64m) and mode=OCTAL (like 1777)']);
  assert.equal(errorsOf(oneService('image: app\nulimits: { files: 10 }')), [
    'app.yaml: services.web.ulimits.files: is not a resource limit; use one of as, core, cpu, data, fsize, locks, memlock, msgqueue, nice, nofile, nproc, rss, rtprio, rttime, sigpending, stack',
  ]);
  assert.equal(errorsOf(oneService('image: app\nulimits: { nofile: { soft: 10, hard: 5 } }')), ['app.yaml: services.web.ulimits.nofile.soft: (10) must not exceed hard (5)']);
  assert.equal(errorsOf(oneService('image: app\ncap_add: [FLY]')), ['app.yaml: services.web.cap_add[0]: "FLY" is not a Linux capability (such as NET_ADMIN, SYS_TIME or ALL)']);
  assert.equal(errorsOf(oneService('image: app\nextra_hosts: ["db.local:10.0.0.300"]')), ['app.yaml: services.web.extra_hosts[0]: must give host db.local an IPv4 or IPv6 address (or host-gateway: the node), like "db.local:10.0.0.5", got "10.0.0.300"']);
});

test('a process app takes ulimits alone; the other keys are refused for it', () => {
  assert.equal(onlyApp(oneService('command: [sleep, "1"]\nulimits: { nofile: 100 }')).container, { ulimits: [{ name: 'nofile', soft: 100, hard: 100 }] });
  const errors = errorsOf(oneService('command: [sleep, "1"]\nhostname: h\ncap_drop: [ALL]'));
  assert.equal(errors.length, 2);
  assert.match(errors[0]!, /^app\.yaml: services\.web\.hostname: applies only to an image app: a process app/);
  assert.match(errors[1]!, /^app\.yaml: services\.web\.cap_drop: applies only to an image app/);
});

test('capabilities: Docker\'s rules for ALL, and cap_add within what the tenant allows', () => {
  assert.equal(new Set(effectiveCapabilities({})), new Set(DEFAULT_CAPABILITIES));
  assert.equal(effectiveCapabilities({ drop: ['ALL'], add: ['CAP_NET_BIND_SERVICE'] }), ['CAP_NET_BIND_SERVICE']);
  assert.not.ok(effectiveCapabilities({ drop: ['CAP_NET_RAW'] }).includes('CAP_NET_RAW'));
  assert.ok(effectiveCapabilities({ add: ['ALL'], drop: ['CAP_SYS_ADMIN'] }).includes('CAP_SYS_TIME'));
  assert.not.ok(effectiveCapabilities({ add: ['ALL'], drop: ['CAP_SYS_ADMIN'] }).includes('CAP_SYS_ADMIN'));
  const spec = onlyApp(oneService('image: app\ncap_add: [NET_ADMIN, CHOWN]'));
  assert.equal(confinementProblem(spec, undefined), {
    field: 'container.capAdd[0]',
    text: 'capability CAP_NET_ADMIN cannot be added: tenant "default" may add only the default capabilities; a cluster-admin can allow it with `hivemind tenants update default --capabilities CAP_NET_ADMIN`',
  });
  assert.is(confinementProblem(spec, { capabilities: ['CAP_NET_ADMIN'] }), undefined);
  assert.is(confinementProblem(onlyApp(oneService('image: app\ncap_drop: [ALL]\ncap_add: [NET_BIND_SERVICE]')), undefined), undefined);
});

test('the state refuses container settings a peer could send that the appfile never makes', () => {
  const spec = onlyApp(oneService('image: app'));
  const deploy = (container: unknown): string | undefined => {
    const result = validateCommand({ type: 'app.deploy', spec: { ...spec, container } } as never);
    return result.ok ? undefined : `${result.error.field}: ${result.error.message}`;
  };
  assert.is(deploy({ hostname: 'ok', ulimits: [{ name: 'nofile', soft: 1, hard: 2 }] }), undefined);
  assert.match(deploy({ capAdd: ['CAP_FLY'] }) ?? '', /capAdd\[0\]/);
  assert.match(deploy({ ulimits: [{ name: 'nofile', soft: 5, hard: 2 }] }) ?? '', /ulimits\[0\]\.soft/);
  assert.match(deploy({ tmpfs: [{ target: 'relative' }] }) ?? '', /tmpfs\[0\]\.target/);
  const processApp = { ...spec, image: undefined, command: ['sleep', '1'], container: { hostname: 'h' } };
  const result = validateCommand({ type: 'app.deploy', spec: processApp } as never);
  assert.not.ok(result.ok);
});

test.run();
