// Every supported Compose form, and what it becomes in the AppSpec.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { AppSpec } from '../../state/types.js';
import { validateCommand } from '../../state/validate.js';
import { parseAppFile } from '../parse.js';
import { dedent, errorsOf, onlyApp, oneService, parseOk, warningsOf } from './helpers.js';

const MiB = 1024 ** 2;
const GiB = 1024 ** 3;

test('an image app gets every default, and passes the state machine checks', () => {
  const spec = onlyApp(oneService('image: nginx:1.25'));
  const expected: AppSpec = {
    name: 'web',
    tenant: 'default',
    image: 'nginx:1.25',
    readOnly: false,
    replicas: 1,
    environment: {},
    ports: [],
    volumes: [],
    limits: {},
    reservations: {},
    update: { parallelism: 1, delayMs: 0, failureAction: 'pause', order: 'stop-first', monitorMs: 5000 },
    restart: { condition: 'any', delayMs: 5000, windowMs: 0 },
    constraints: [],
    labels: {},
    hivemind: {},
  };
  assert.equal(spec, expected);
  assert.ok(validateCommand({ type: 'app.deploy', spec }).ok);
});

test('a process app: command as a list, or as a string split like a shell', () => {
  assert.equal(onlyApp(oneService('command: ["node", "server.js", 8080, true]')).command, ['node', 'server.js', '8080', 'true']);
  const spec = onlyApp(oneService(`command: sh -c 'echo "hello world" && sleep 1'`));
  assert.equal(spec.command, ['sh', '-c', 'echo "hello world" && sleep 1']);
  assert.is(spec.image, undefined);
  assert.not.ok('image' in spec);
});

test('entrypoint with an image: a list, a string, or empty (clears the image entrypoint)', () => {
  assert.equal(onlyApp(oneService('image: busybox\nentrypoint: ["httpd", "-f"]')).entrypoint, ['httpd', '-f']);
  assert.equal(onlyApp(oneService('image: busybox\nentrypoint: httpd -f -p 80')).entrypoint, ['httpd', '-f', '-p', '80']);
  assert.equal(onlyApp(oneService('image: busybox\nentrypoint: []')).entrypoint, []);
});

test('environment as a mapping: numbers as written, booleans as text, empty strings kept', () => {
  const spec = onlyApp(
    oneService(`
      image: app
      environment:
        NAME: web
        VERSION: 1.10
        COUNT: 007
        DEBUG: true
        BLANK: ""
    `),
  );
  assert.equal(spec.environment, { NAME: 'web', VERSION: '1.10', COUNT: '007', DEBUG: 'true', BLANK: '' });
});

test('environment as a list of KEY=VALUE; a value may hold "="', () => {
  const spec = onlyApp(oneService('image: app\nenvironment: ["A=1", "B=x=y", "C="]'));
  assert.equal(spec.environment, { A: '1', B: 'x=y', C: '' });
});

test('environment without a value comes from the deploying variables, or is left out with a warning', () => {
  const text = oneService('image: app\nenvironment:\n  FROM_SHELL:\n  OTHER: x\n');
  assert.equal(onlyApp(text, { variables: { FROM_SHELL: 'yes' } }).environment, { FROM_SHELL: 'yes', OTHER: 'x' });
  const { apps, warnings } = parseOk(text);
  assert.equal(apps[0]?.environment, { OTHER: 'x' });
  assert.equal(warnings, [
    'app.yaml: services.web.environment.FROM_SHELL: has no value and FROM_SHELL is not set where the file is read, so it is left out (as Compose does); give it a value',
  ]);
  assert.equal(onlyApp(oneService('image: app\nenvironment: ["LISTED"]'), { variables: { LISTED: 'v' } }).environment, { LISTED: 'v' });
});

test('ports: short syntax, ranges, udp, long syntax', () => {
  const spec = onlyApp(
    oneService(`
      image: app
      ports:
        - "8080:80"
        - "9090"
        - 7000
        - "5353:53/udp"
        - "6000-6002:7000-7002"
        - "4000-4001"
        - target: 443
          published: 8443
          protocol: tcp
          mode: ingress
        - { target: 9999, published: "9998" }
        - { target: 1234, protocol: udp }
    `),
  );
  assert.equal(spec.ports, [
    { target: 80, published: 8080, protocol: 'tcp' },
    { target: 9090, protocol: 'tcp' },
    { target: 7000, protocol: 'tcp' },
    { target: 53, published: 5353, protocol: 'udp' },
    { target: 7000, published: 6000, protocol: 'tcp' },
    { target: 7001, published: 6001, protocol: 'tcp' },
    { target: 7002, published: 6002, protocol: 'tcp' },
    { target: 4000, protocol: 'tcp' },
    { target: 4001, protocol: 'tcp' },
    { target: 443, published: 8443, protocol: 'tcp' },
    { target: 9999, published: 9998, protocol: 'tcp' },
    { target: 1234, protocol: 'udp' },
  ]);
  assert.equal(warningsOf(oneService('image: app\nports: [{ target: 80, published: 80, mode: host }]')), [
    'app.yaml: services.web.ports[0].mode: is ignored: Hivemind publishes every port the same way',
  ]);
});

test('healthcheck: a string is CMD-SHELL, a list is kept, durations and defaults', () => {
  const shell = onlyApp(oneService('image: app\nhealthcheck:\n  test: curl -f http://localhost/ || exit 1\n'));
  assert.equal(shell.healthcheck, { test: ['CMD-SHELL', 'curl -f http://localhost/ || exit 1'], intervalMs: 30_000, timeoutMs: 30_000, retries: 3, startPeriodMs: 0 });
  const list = onlyApp(
    oneService(`
      image: app
      healthcheck:
        test: ["CMD", "wget", "-q", "http://localhost/"]
        interval: 1m30s
        timeout: 500ms
        retries: 5
        start_period: 2s
    `),
  );
  assert.equal(list.healthcheck, { test: ['CMD', 'wget', '-q', 'http://localhost/'], intervalMs: 90_000, timeoutMs: 500, retries: 5, startPeriodMs: 2000 });
  const shellList = onlyApp(oneService('image: app\nhealthcheck: { test: ["CMD-SHELL", "true"] }'));
  assert.equal(shellList.healthcheck?.test, ['CMD-SHELL', 'true']);
});

test('healthcheck: disable: true and test ["NONE"] turn it off', () => {
  assert.equal(onlyApp(oneService('image: app\nhealthcheck: { disable: true }')).healthcheck?.test, ['NONE']);
  assert.equal(onlyApp(oneService('image: app\nhealthcheck: { test: ["NONE"] }')).healthcheck?.test, ['NONE']);
  assert.equal(onlyApp(oneService('image: app\nhealthcheck: { disable: false, test: "true" }')).healthcheck?.test, ['CMD-SHELL', 'true']);
});

test('volumes: named and bind mounts, short and long syntax, ro and rw', () => {
  const spec = onlyApp(
    oneService(
      `
      image: app
      volumes:
        - data:/var/lib/data
        - /srv/config:/etc/app:ro
        - logs:/var/log:rw
        - type: volume
          source: cache
          target: /cache
          read_only: true
        - { type: bind, source: /host/tmp, target: /tmp/host }
        - { source: data, target: /again }
      `,
      `
      volumes:
        data:
        logs: {}
        cache: { external: true }
      `,
    ),
  );
  assert.equal(spec.volumes, [
    { source: 'data', target: '/var/lib/data', readOnly: false },
    { source: '/srv/config', target: '/etc/app', readOnly: true },
    { source: 'logs', target: '/var/log', readOnly: false },
    { source: 'cache', target: '/cache', readOnly: true },
    { source: '/host/tmp', target: '/tmp/host', readOnly: false },
    { source: 'data', target: '/again', readOnly: false },
  ]);
});

test('deploy.replicas (also as a digit string, and plain Compose scale)', () => {
  assert.is(onlyApp(oneService('image: app\ndeploy: { replicas: 3 }')).replicas, 3);
  assert.is(onlyApp(oneService('image: app\ndeploy: { replicas: "4" }')).replicas, 4);
  assert.is(onlyApp(oneService('image: app\ndeploy: { replicas: 0 }')).replicas, 0);
  assert.is(onlyApp(oneService('image: app\nscale: 5')).replicas, 5);
  assert.is(onlyApp(oneService('image: app\nscale: 2\ndeploy: { replicas: 2 }')).replicas, 2);
});

test('deploy.resources: cpus as number or string, memory in every unit or bytes', () => {
  const spec = onlyApp(
    oneService(`
      image: app
      deploy:
        resources:
          limits: { cpus: "0.5", memory: 1.5GiB }
          reservations: { cpus: 0.25, memory: 268435456 }
    `),
  );
  assert.equal(spec.limits, { cpuMillis: 500, memoryBytes: 1.5 * GiB });
  assert.equal(spec.reservations, { cpuMillis: 250, memoryBytes: 256 * MiB });
  assert.equal(onlyApp(oneService('image: app\ndeploy: { resources: { limits: { memory: 512M } } }')).limits, { memoryBytes: 512 * MiB });
  assert.equal(onlyApp(oneService('image: app\ndeploy: { resources: { limits: { memory: 1g } } }')).limits, { memoryBytes: GiB });
});

test('plain Compose cpus, mem_limit and mem_reservation fill the same fields', () => {
  const spec = onlyApp(oneService('image: app\ncpus: 1.5\nmem_limit: 1g\nmem_reservation: 512m'));
  assert.equal(spec.limits, { cpuMillis: 1500, memoryBytes: GiB });
  assert.equal(spec.reservations, { memoryBytes: 512 * MiB });
  const same = onlyApp(oneService('image: app\nmem_limit: 1g\ndeploy: { resources: { limits: { memory: 1024M } } }'));
  assert.equal(same.limits, { memoryBytes: GiB });
});

test('deploy.update_config: every field, and Compose defaults for the rest', () => {
  const spec = onlyApp(
    oneService(`
      image: app
      deploy:
        update_config:
          parallelism: 2
          delay: 10s
          failure_action: rollback
          monitor: 1m
          order: start-first
    `),
  );
  assert.equal(spec.update, { parallelism: 2, delayMs: 10_000, failureAction: 'rollback', order: 'start-first', monitorMs: 60_000 });
  const partial = onlyApp(oneService('image: app\ndeploy: { update_config: { failure_action: continue } }'));
  assert.equal(partial.update, { parallelism: 1, delayMs: 0, failureAction: 'continue', order: 'stop-first', monitorMs: 5000 });
});

test('deploy.restart_policy, with Swarm defaults; max_attempts 0 means no limit', () => {
  const spec = onlyApp(oneService('image: app\ndeploy: { restart_policy: { condition: on-failure, delay: 3s, max_attempts: 4, window: 2m } }'));
  assert.equal(spec.restart, { condition: 'on-failure', delayMs: 3000, maxAttempts: 4, windowMs: 120_000 });
  assert.equal(onlyApp(oneService('image: app\ndeploy: { restart_policy: { condition: none } }')).restart, { condition: 'none', delayMs: 5000, windowMs: 0 });
  assert.equal(onlyApp(oneService('image: app\ndeploy: { restart_policy: { max_attempts: 0 } }')).restart, { condition: 'any', delayMs: 5000, windowMs: 0 });
});

test('service restart: no, always, on-failure[:N], unless-stopped', () => {
  const restartOf = (value: string): AppSpec['restart'] => onlyApp(oneService(`image: app\nrestart: ${value}`)).restart;
  assert.equal(restartOf('"no"'), { condition: 'none', delayMs: 5000, windowMs: 0 });
  assert.equal(restartOf('no'), { condition: 'none', delayMs: 5000, windowMs: 0 });
  assert.equal(restartOf('false'), { condition: 'none', delayMs: 5000, windowMs: 0 });
  assert.equal(restartOf('always'), { condition: 'any', delayMs: 5000, windowMs: 0 });
  assert.equal(restartOf('unless-stopped'), { condition: 'any', delayMs: 5000, windowMs: 0 });
  assert.equal(restartOf('on-failure'), { condition: 'on-failure', delayMs: 5000, windowMs: 0 });
  assert.equal(restartOf('on-failure:3'), { condition: 'on-failure', delayMs: 5000, maxAttempts: 3, windowMs: 0 });
});

test('deploy.restart_policy wins over restart, with a warning', () => {
  const { apps, warnings } = parseOk(oneService('image: app\nrestart: always\ndeploy: { restart_policy: { condition: none } }'));
  assert.is(apps[0]?.restart.condition, 'none');
  assert.equal(warnings, ['app.yaml: services.web.restart: is ignored because deploy.restart_policy is set, which takes precedence']);
});

test('placement constraints are normalized; max_replicas_per_node becomes maxPerNode', () => {
  const spec = onlyApp(
    oneService(`
      image: app
      deploy:
        placement:
          constraints:
            - node.labels.zone == a
            - node.hostname!=n2
            - "  node.role == manager  "
            - node.id != abc
          max_replicas_per_node: 2
    `),
  );
  assert.equal(spec.constraints, ['node.labels.zone == a', 'node.hostname != n2', 'node.role == manager', 'node.id != abc']);
  assert.equal(spec.hivemind, { maxPerNode: 2 });
  assert.equal(onlyApp(oneService('image: app\ndeploy: { placement: { max_replicas_per_node: 0 } }')).hivemind, {});
});

test('labels as a mapping or a list; deploy.labels join them', () => {
  assert.equal(onlyApp(oneService('image: app\nlabels: { com.example.a: x, version: 2, flag: true, empty: }')).labels, {
    'com.example.a': 'x',
    version: '2',
    flag: 'true',
    empty: '',
  });
  assert.equal(onlyApp(oneService('image: app\nlabels: ["a=1", "b", "c=x=y"]')).labels, { a: '1', b: '', c: 'x=y' });
  const merged = onlyApp(oneService('image: app\nlabels: { a: "1" }\ndeploy: { labels: { b: "2", a: "1" } }'));
  assert.equal(merged.labels, { a: '1', b: '2' });
});

test('working_dir, user (a name or a number), read_only', () => {
  const spec = onlyApp(oneService('image: app\nworking_dir: /srv/app\nuser: 1000\nread_only: true'));
  assert.is(spec.workingDir, '/srv/app');
  assert.is(spec.user, '1000');
  assert.is(spec.readOnly, true);
  assert.is(onlyApp(oneService('image: app\nuser: "app:app"\nread_only: "false"')).user, 'app:app');
});

test('secrets: Compose service secrets (short and long) and x-hivemind.secrets join', () => {
  const spec = onlyApp(
    oneService(
      `
      image: app
      secrets:
        - db-password
        - source: api-key
          target: api-key
        - { source: tls-cert, target: /run/secrets/tls-cert }
      x-hivemind:
        secrets: [api-key, extra]
      `,
      `
      secrets:
        db-password: { external: true }
        api-key:
        tls-cert: {}
      `,
    ),
  );
  assert.equal(spec.hivemind.secrets, ['db-password', 'api-key', 'tls-cert', 'extra']);
});

test('a secret declared with a file, a variable or content gets its value from there, for the deploy to create it', () => {
  const text = oneService('image: app\nsecrets: [token, api_key, inline]', 'secrets:\n  token:\n    file: ./token.txt\n  api_key:\n    environment: API_KEY\n  inline:\n    content: hello\n');
  const result = parseAppFile(text, 'app.yaml', { files: { './token.txt': 's3cret\n' }, variables: { API_KEY: 'k' } });
  if (!result.ok) throw new Error(result.errors.map(String).join('\n'));
  assert.equal(result.secrets, [
    { tenant: 'default', name: 'token', value: 's3cret\n' },
    { tenant: 'default', name: 'api-key', value: 'k' },
    { tenant: 'default', name: 'inline', value: 'hello' },
  ]);
  assert.equal(result.apps[0]?.hivemind.secrets, ['token', 'api-key', 'inline']);
  assert.equal(result.warnings, ['app.yaml: secrets.api_key: is named "api-key" in Hivemind (names are DNS labels, without "_"); instances find it at /run/secrets/api-key']);
  assert.equal(errorsOf(text, { variables: {} }), [
    'app.yaml: secrets.token.file: names file "./token.txt", which was not sent with the deploy; give a path relative to the app file\'s folder that exists',
    'app.yaml: secrets.api_key.environment: names variable API_KEY, which is not set where the file is read; set it, or store the secret first (hivemind secrets set api-key)',
  ]);
});

test('x-hivemind: tenant for the file, per service, or from the caller', () => {
  const text = dedent(`
    x-hivemind:
      tenant: acme
    services:
      a: { image: app }
      b:
        image: app
        x-hivemind: { tenant: other }
  `);
  assert.equal(parseOk(text).apps.map((app) => [app.name, app.tenant]), [['a', 'acme'], ['b', 'other']]);
  assert.is(onlyApp(oneService('image: app'), { defaultTenant: 'team-x' }).tenant, 'team-x');
  assert.is(onlyApp(`x-hivemind: { tenant: file }\n${oneService('image: app')}`, { defaultTenant: 'team-x' }).tenant, 'file');
});

test('x-hivemind: canary, strategy, priority, policies, max_per_node', () => {
  const spec = onlyApp(
    oneService(`
      image: app
      x-hivemind:
        strategy: canary
        canary: { instances: 1, weight: "10%" }
        priority: -5
        policies: [only-web, deny-all]
        max_per_node: 1
    `),
  );
  assert.equal(spec.hivemind, { canary: { instances: 1, weightPercent: 10 }, strategy: 'canary', priority: -5, policies: ['only-web', 'deny-all'], maxPerNode: 1 });
  assert.equal(onlyApp(oneService('image: app\nx-hivemind: { canary: { weight: 25 } }')).hivemind, { canary: { weightPercent: 25 } });
  assert.equal(onlyApp(oneService('image: app\nx-hivemind: { strategy: blue-green }')).hivemind, { strategy: 'blue-green' });
});

test('depends_on and expose are accepted and named in warnings; a bare link adds nothing; networks are read', () => {
  const warnings = warningsOf(
    dedent(`
      services:
        web:
          image: app
          depends_on: [db]
          networks: [front]
          links: [db]
          expose: ["80"]
        db: { image: postgres }
      networks:
        front: {}
    `),
  );
  assert.equal(warnings, [
    'app.yaml: services.web.depends_on: is ignored: Hivemind starts every app at once; an app should retry until the apps it needs are healthy',
    "app.yaml: services.web.expose: is ignored: every port of an instance is open to the other apps on its tenant's network",
  ]);
});

test('network aliases and links become DNS names of the app (hivemind.aliases, hivemind.links)', () => {
  const { apps, warnings } = parseOk(
    dedent(`
      services:
        web:
          image: app
          links: [db, "db:database", "cache:kv", "db:database"]
          networks:
            front: { aliases: [www, web, site] }
            back:
              aliases: [site, internal]
              ipv4_address: 172.16.0.9
            other:
        db: { image: postgres }
      networks:
        front: {}
        back: {}
        other: {}
    `),
  );
  const web = apps.find((app) => app.name === 'web')!;
  assert.is(web.hivemind.aliases, undefined, 'no alias is given on every network of web');
  assert.equal(web.hivemind.networkAliases, [
    { network: 'front', aliases: ['www', 'site'] },
    { network: 'back', aliases: ['site', 'internal'] },
  ], "each network's aliases, each once, the app's own name left out");
  assert.equal(web.hivemind.links, [{ app: 'db', alias: 'database' }, { app: 'cache', alias: 'kv' }]);
  assert.is(apps.find((app) => app.name === 'db')!.hivemind.aliases, undefined);
  assert.ok(warnings.includes("app.yaml: services.web.networks.back.ipv4_address: is ignored: a service's network in Hivemind takes aliases alone (addresses come from the network's slice on the instance's node)"), warnings.join('\n'));
  assert.not.ok(warnings.some((line) => line.startsWith('app.yaml: services.web.networks:')), 'no warning for networks that give aliases');
  assert.equal(web.networks, ['front', 'back', 'other'], 'the networks in the order written');
});

test('bad aliases and links are errors naming the field', () => {
  assert.equal(errorsOf(oneService('image: app\nnetworks: { default: { aliases: [Bad_Name] } }')), [
    'app.yaml: services.web.networks.default.aliases[0]: alias "Bad_Name" must be a DNS label: lowercase letters, digits and \"-\", 1 to 63 characters, starting and ending with a letter or digit; try "bad-name"',
  ]);
  assert.equal(errorsOf(oneService('image: app\nlinks: ["web:self"]')), ['app.yaml: services.web.links[0]: links service "web" to itself; an app reaches its own instances by its name']);
  assert.equal(errorsOf(oneService('image: app\nlinks: ["db:x", "cache:x"]')), ['app.yaml: services.web.links[1]: alias "x" names both "db" and "cache"; give each link its own alias']);
  assert.equal(errorsOf(oneService('image: app\nlinks: ["a:b:c"]')), ['app.yaml: services.web.links[0]: "a:b:c" must be SERVICE or SERVICE:ALIAS']);
});

test('version is ignored without a warning; name and x-* extension fields are accepted', () => {
  const { apps, warnings } = parseOk(`version: "3.9"\nname: my-project\nx-notes: anything\n${oneService('image: app\nx-team: web')}`);
  assert.is(apps.length, 1);
  assert.equal(warnings, []);
});

test('YAML anchors and merge keys share settings, as Compose files do', () => {
  const { apps } = parseOk(
    dedent(`
      x-base: &base
        image: app:2
        environment: { MODE: prod, RATIO: 0.50 }
        deploy: { replicas: 2 }
      services:
        a:
          <<: *base
        b:
          <<: *base
          deploy: { replicas: 5 }
    `),
  );
  assert.equal(apps.map((app) => [app.name, app.image, app.replicas]), [['a', 'app:2', 2], ['b', 'app:2', 5]]);
  assert.equal(apps[0]?.environment, { MODE: 'prod', RATIO: '0.5' });
});

test('${VAR} interpolation with the deploying variables; unset ones warn and read as empty', () => {
  const text = oneService('image: "nginx:${TAG:-latest}"\nenvironment: { URL: "http://$HOST:8080", PRICE: "$$5" }\ndeploy: { replicas: "${REPLICAS}" }');
  const spec = onlyApp(text, { variables: { HOST: 'db', REPLICAS: '3' } });
  assert.is(spec.image, 'nginx:latest');
  assert.equal(spec.environment, { URL: 'http://db:8080', PRICE: '$5' });
  assert.is(spec.replicas, 3);
  const { apps, warnings } = parseOk(oneService('image: app\nenvironment: { A: "x${UNSET}y", B: "$UNSET" }'));
  assert.equal(apps[0]?.environment, { A: 'xy', B: '' });
  assert.equal(warnings, ['app.yaml: services.web.environment.A: uses variable UNSET, which is not set; it reads as an empty string']);
});

test('an empty value counts as left out, as in Compose override files', () => {
  const spec = onlyApp(oneService('image: app\nports:\nhealthcheck:\ndeploy:\nuser:'));
  assert.equal(spec.ports, []);
  assert.not.ok('healthcheck' in spec);
  assert.not.ok('user' in spec);
});

test('services come out in file order and every one passes the state machine checks', () => {
  const { apps } = parseOk(dedent(`
    services:
      zeta: { image: a }
      alpha: { command: ["true"] }
      mid: { image: b, deploy: { replicas: 0 } }
  `));
  assert.equal(apps.map((app) => app.name), ['zeta', 'alpha', 'mid']);
  for (const spec of apps) assert.ok(validateCommand({ type: 'app.deploy', spec }).ok, spec.name);
});

test('stop_grace_period and stop_signal', () => {
  const spec = onlyApp(oneService('image: app\nstop_grace_period: 1m30s\nstop_signal: sigint'));
  assert.is(spec.stopGraceMs, 90_000);
  assert.is(spec.stopSignal, 'SIGINT');
  assert.ok(validateCommand({ type: 'app.deploy', spec }).ok);
});

test('an image with a command overrides the image command', () => {
  const spec = onlyApp(oneService('image: redis:7\ncommand: redis-server --appendonly yes'));
  assert.equal(spec.command, ['redis-server', '--appendonly', 'yes']);
  assert.ok(validateCommand({ type: 'app.deploy', spec }).ok);
});

test.run();
