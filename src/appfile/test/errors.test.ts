// Every kind of error: exact messages, paths, positions, and all of them at once.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { AppFileError, formatAppFileProblem } from '../errors.js';
import { parseAppFile, parseAppFiles, APP_FILE_BYTES_MAX } from '../parse.js';
import { ERRORS_MAX } from '../problems.js';
import { dedent, errorsOf, oneService } from './helpers.js';

test('the messages of the issue, exactly', () => {
  assert.equal(errorsOf(oneService('image: app\ndeploy: { replicas: three }')), [
    'app.yaml: services.web.deploy.replicas: must be a whole number >= 0, got "three"',
  ]);
  assert.equal(errorsOf(oneService('image: app\ndeploy: { update_config: { delay: soon } }')), [
    'app.yaml: services.web.deploy.update_config.delay: must be a duration like "10s" or "1m30s", got "soon"',
  ]);
  assert.equal(errorsOf(oneService('image: app\ndeploy: { resources: { limits: { memory: lots } } }')), [
    'app.yaml: services.web.deploy.resources.limits.memory: must be a memory size like "512M" or "1G", got "lots"',
  ]);
  assert.equal(errorsOf(oneService('build: .')), ['app.yaml: services.web.build: is not supported: Hivemind builds no images; build it (docker build -t NAME .), make it available (push it to a registry, or hivemind images import), and name it in image:']);
});

test('an error is { file, path, message } with a position, formats as "file: path: message", and survives JSON', () => {
  const result = parseAppFile('services:\n  web:\n    image: app\n    deploy:\n      replicas: -2\n', 'stack.yaml');
  assert.ok(!result.ok);
  const [error] = result.errors;
  assert.ok(error instanceof AppFileError);
  assert.equal(error.toJSON(), { file: 'stack.yaml', path: 'services.web.deploy.replicas', message: 'must be a whole number >= 0, got -2', line: 5, column: 7 });
  assert.is(String(error), 'stack.yaml: services.web.deploy.replicas: must be a whole number >= 0, got -2');
  const parsed = JSON.parse(JSON.stringify(error)) as { file: string; path: string; message: string };
  assert.is(formatAppFileProblem(parsed), String(error));
  assert.is(formatAppFileProblem({ file: 'a.yaml', path: '', message: 'is empty' }), 'a.yaml: is empty');
});

test('every error of the file is reported, in file order, not just the first', () => {
  const errors = errorsOf(
    dedent(`
      services:
        web:
          image: app
          deploy:
            replicas: three
            resources: { limits: { cpus: fast, memory: lots } }
          healthcheck: { test: "true", interval: soon }
        api:
          build: .
          privileged: true
          colour: blue
        Bad_Name:
          command: ["run"]
        worker: {}
    `),
  );
  assert.equal(errors, [
    'app.yaml: services.web.deploy.replicas: must be a whole number >= 0, got "three"',
    'app.yaml: services.web.deploy.resources.limits.cpus: must be a number of CPUs like 0.5 or "2", got "fast"',
    'app.yaml: services.web.deploy.resources.limits.memory: must be a memory size like "512M" or "1G", got "lots"',
    'app.yaml: services.web.healthcheck.interval: must be a duration like "10s" or "1m30s", got "soon"',
    'app.yaml: services.api.build: is not supported: Hivemind builds no images; build it (docker build -t NAME .), make it available (push it to a registry, or hivemind images import), and name it in image:',
    'app.yaml: services.api.privileged: is not supported by Hivemind (instances never run privileged)',
    'app.yaml: services.api.colour: is an unknown key',
    'app.yaml: services.Bad_Name: service name "Bad_Name" must be a DNS label: lowercase letters, digits and "-", 1 to 63 characters, starting and ending with a letter or digit; try "bad-name"',
    'app.yaml: services.worker: must have image: (a container image to run) or command: (a program Hivemind runs as a process, without containerd)',
  ]);
});

test('Compose keys Hivemind does not support are errors naming the key, with what to do', () => {
  const cases: [string, string][] = [
    ['devices: ["/dev/fuse"]', 'services.web.devices: is not supported by Hivemind'],
    ['network_mode: host', "services.web.network_mode: is not supported by Hivemind (each instance gets its own namespaces on its tenant's network)"],
    ['pid: host', "services.web.pid: is not supported by Hivemind (each instance gets its own namespaces on its tenant's network)"],
    ['env_file: .env', 'services.web.env_file: names file ".env", which was not sent with the deploy; give a path relative to the app file\'s folder that exists, or set required: false'],
    ['deploy: { mode: global, replicas: 2 }', 'services.web.deploy: sets mode: global and replicas (or scale); a global app runs one instance on each node, so leave replicas out'],
    ['deploy: { mode: replicated-job }', 'services.web.deploy.mode: "replicated-job" is not supported by Hivemind, which runs long-lived apps'],
    ['configs: [site]', 'services.web.configs[0]: uses config "site", which is not declared; add it under the top-level configs: with file: or content:'],
    ['deploy: { rollback_config: {} }', "services.web.deploy.rollback_config: is not supported by Hivemind (a rollback redeploys the earlier version with update_config's settings)"],
    ['deploy: { resources: { limits: { pids: 100 } } }', 'services.web.deploy.resources.limits.pids: is not supported by Hivemind'],
    ['deploy: { resources: { reservations: { devices: [] } } }', 'services.web.deploy.resources.reservations.devices: is not supported by Hivemind'],
    ['deploy: { update_config: { max_failure_ratio: 0.2 } }', 'services.web.deploy.update_config.max_failure_ratio: is not supported by Hivemind (an update stops at the first instance that fails)'],
    ['deploy: { placement: { preferences: [] } }', 'services.web.deploy.placement.preferences: is not supported by Hivemind (Hivemind spreads the instances across nodes by itself)'],
    ['healthcheck: { test: "true", start_interval: 1s }', 'services.web.healthcheck.start_interval: is not supported by Hivemind'],
  ];
  for (const [body, expected] of cases) assert.equal(errorsOf(oneService(`image: app\n${body}`)), [`app.yaml: ${expected}`], body);
  assert.equal(errorsOf(`configs: { site: { external: true } }\n${oneService('image: app')}`), [
    "app.yaml: configs.site.external: is not supported: Hivemind keeps a config with the apps that mount it; give its file: or content: here",
  ]);
});

test('unknown keys are errors, with the nearest known key suggested', () => {
  assert.equal(errorsOf(oneService('image: app\nimgae: typo\ndeploy: { replica: 2, resources: { limit: {} } }')), [
    'app.yaml: services.web.imgae: is an unknown key; did you mean "image"?',
    'app.yaml: services.web.deploy.replica: is an unknown key; did you mean "replicas"?',
    'app.yaml: services.web.deploy.resources.limit: is an unknown key; did you mean "limits"?',
  ]);
  assert.equal(errorsOf(`servcies: {}\n${oneService('image: app')}`), ['app.yaml: servcies: is an unknown key; did you mean "services"?']);
  assert.equal(errorsOf(oneService('image: app\nx-hivemind: { tenat: acme }')), ['app.yaml: services.web.x-hivemind.tenat: is an unknown key; did you mean "tenant"?']);
  assert.equal(errorsOf(oneService('image: app\ndeploy: { x-hivemind: {} }')), ['app.yaml: services.web.deploy.x-hivemind: belongs at the top level of the file or in a service']);
});

test('image or command: one is needed', () => {
  assert.equal(errorsOf(oneService('entrypoint: ["sh"]\ncommand: ["x"]')), [
    'app.yaml: services.web.entrypoint: applies only to an image; for a process app, put the whole argument list in command:',
  ]);
  assert.equal(errorsOf(oneService('command: []')), ['app.yaml: services.web.command: must not be empty: name the program to run']);
  assert.equal(errorsOf(oneService(`command: echo "open`)), ['app.yaml: services.web.command: has a " quote that is never closed']);
  assert.equal(errorsOf(oneService('image: "nginx latest"')), ['app.yaml: services.web.image: must be an image reference like "nginx:1.25", got "nginx latest"']);
  assert.equal(errorsOf(oneService('command: { run: x }')), ['app.yaml: services.web.command: must be a list of arguments or a command line, got a mapping']);
});

test('ports: bad forms, protocols and repeats', () => {
  const errors = errorsOf(oneService('image: app\nports: ["127.0.0.1:8080:x", "[::1:9000", "abc", "70000:80", "53/sctp", "1-3:4-5", "8080:81", { published: 1 }, { target: 80, host_ip: [0] }, [1]]'));
  assert.equal(errors, [
    'app.yaml: services.web.ports[0]: must be a port like "8080:80", "80" or "8080:80/udp", with ports from 1 to 65535, got "127.0.0.1:8080:x"',
    'app.yaml: services.web.ports[1]: must be a port like "8080:80", "80" or "8080:80/udp" or "127.0.0.1:8080:80", got "[::1:9000"',
    'app.yaml: services.web.ports[2]: must be a port like "8080:80", "80" or "8080:80/udp", with ports from 1 to 65535, got "abc"',
    'app.yaml: services.web.ports[3]: must be a port like "8080:80", "80" or "8080:80/udp", with ports from 1 to 65535, got "70000:80"',
    'app.yaml: services.web.ports[4]: must end in /tcp or /udp when it names a protocol, got "53/sctp"',
    'app.yaml: services.web.ports[5]: maps 3 published ports to 2 target ports; give ranges of the same length',
    'app.yaml: services.web.ports[7].target: is required: the port inside the instance',
    'app.yaml: services.web.ports[8].host_ip: must be an IP address, got a list',
    'app.yaml: services.web.ports[9]: must be a port like "8080:80", "80" or "8080:80/udp", or a mapping with target:, got a list',
  ]);
  assert.equal(errorsOf(oneService('image: app\nports: ["8080:80", { target: 81, published: 8080 }]')), [
    'app.yaml: services.web.ports[1]: publishes 8080/tcp a second time; publish each port once',
  ]);
});

test('volumes: anonymous, relative, undeclared, badly named, bad options, tmpfs', () => {
  const errors = errorsOf(
    oneService('image: app\nvolumes: ["/anon", "./site:/www", "cache:/cache", "db_data:/db", "data:relative", "data:/x:z", { type: tmpfs, target: /t }, { type: bind, source: data, target: /b }, { target: /c }]', 'volumes: { data: {} }'),
  );
  assert.equal(errors, [
    'app.yaml: services.web.volumes[0]: is an anonymous volume, which Hivemind does not support; name it, like "data:/anon", and declare data under the top-level volumes:',
    'app.yaml: services.web.volumes[1]: mounts "./site" writable, which does not exist beside the app file: a folder for the app\'s data, which a relative bind mount cannot hold ' +
      '(it is sent with the deploy as read-only configuration, the same on every node, and what the app writes would be lost). ' +
      'Use a named volume: mount "site:/www" and declare it at the top level (volumes: { site: { x-hivemind: { size: 1G } } }); it lives on one node, the app is placed there, and it keeps what the app writes',
    'app.yaml: services.web.volumes[2]: uses volume "cache", which is not declared; add it under the top-level volumes:',
    'app.yaml: services.web.volumes[3]: uses volume "db_data", which is not declared; add it under the top-level volumes:',
    'app.yaml: services.web.volumes[4]: must mount at an absolute path inside the instance, like "data:/var/lib/data", "/host/path:/path:ro", got "data:relative"',
    'app.yaml: services.web.volumes[5]: has mount option "z", which Hivemind does not support; use "ro" or "rw"',
    'app.yaml: services.web.volumes[6].type: "tmpfs" is not supported by Hivemind; use "volume" or "bind"',
    'app.yaml: services.web.volumes[7].source: must be an absolute host path for a bind mount, got "data"',
    'app.yaml: services.web.volumes[8].source: is required: a named volume (Hivemind has no anonymous volumes) or an absolute host path',
  ]);
  assert.equal(errorsOf(oneService('image: app\nvolumes: ["a:/x", "b:/x"]', 'volumes: { a: {}, b: {} }')), [
    'app.yaml: services.web.volumes[1]: mounts /x a second time; mount each path once',
  ]);
});

test('environment and labels: bad items, repeats, bad keys', () => {
  assert.equal(errorsOf(oneService('image: app\nenvironment: ["A=1", "A=2", 5, "B C=1"]\nlabels: "x"')), [
    'app.yaml: services.web.environment[1]: sets variable A twice; set it once',
    'app.yaml: services.web.environment[2]: must be "KEY=VALUE", got 5',
    'app.yaml: services.web.environment[3]: variable "B C" must be a name without "=" or blanks',
    'app.yaml: services.web.labels: must be a mapping or a list of "KEY=VALUE", got "x"',
  ]);
  assert.equal(errorsOf(oneService('image: app\nenvironment: { A: [1, 2] }')), ['app.yaml: services.web.environment.A: must be a string, a number or a boolean, got a list']);
});

// The well-formed HTTP and TCP forms also need the state's validation (src/state/validate.ts) to accept them.
test('healthcheck HTTP and TCP forms: clear errors when malformed', () => {
  assert.equal(errorsOf(oneService('image: app\nhealthcheck: { test: ["HTTP", "ftp://x/"] }')), [
    'app.yaml: services.web.healthcheck.test[1]: must be an http:// or https:// URL like "http://127.0.0.1:8080/healthz", got "ftp://x/"',
  ]);
  assert.equal(errorsOf(oneService('image: app\nhealthcheck: { test: ["TCP", "127.0.0.1:99999"] }')), [
    'app.yaml: services.web.healthcheck.test[1]: must be HOST:PORT like "127.0.0.1:5432" (port 1 to 65535), got "127.0.0.1:99999"',
  ]);
  assert.equal(errorsOf(oneService('image: app\nhealthcheck: { test: ["TCP"] }')), [
    'app.yaml: services.web.healthcheck.test: must be ["TCP", "127.0.0.1:5432"]: "TCP" and one target',
  ]);
});

test('healthcheck, deploy and x-hivemind value errors', () => {
  const errors = errorsOf(
    oneService(`
      image: app
      healthcheck: { test: ["CURL", "x"], retries: -1 }
      read_only: maybe
      working_dir: relative
      restart: sometimes
      deploy:
        update_config: { failure_action: explode, order: random }
        restart_policy: { condition: sometimes }
        placement: { constraints: ["zone=a", "engine.labels.zone == a", "node.platform.os == linux"] }
      x-hivemind: { tenant: Acme, canary: {}, strategy: fast, priority: 1.5, max_per_node: 0 }
    `),
  );
  assert.equal(errors, [
    'app.yaml: services.web.healthcheck.test[0]: must be "CMD", "CMD-SHELL", "NONE", "HTTP" or "TCP", got "CURL"',
    'app.yaml: services.web.healthcheck.retries: must be a whole number >= 0, got -1',
    'app.yaml: services.web.read_only: must be true or false, got "maybe"',
    'app.yaml: services.web.working_dir: must be an absolute path like "/app", got "relative"',
    'app.yaml: services.web.restart: must be "no", "always", "on-failure", "on-failure:N" or "unless-stopped", got "sometimes"',
    'app.yaml: services.web.deploy.update_config.failure_action: must be "pause", "rollback" or "continue", got "explode"',
    'app.yaml: services.web.deploy.update_config.order: must be "stop-first" or "start-first", got "random"',
    'app.yaml: services.web.deploy.restart_policy.condition: must be "none", "on-failure" or "any", got "sometimes"',
    'app.yaml: services.web.deploy.placement.constraints[0]: must be a constraint like "node.labels.zone == a" or "node.hostname != n2", got "zone=a"',
    'app.yaml: services.web.deploy.placement.constraints[1]: constrains "engine.labels.zone", which Hivemind does not know; use node.labels.zone (Hivemind\'s node labels)',
    'app.yaml: services.web.deploy.placement.constraints[2]: constrains "node.platform.os", which Hivemind does not know; use node.id, node.hostname, node.role or node.labels.<key>',
    'app.yaml: services.web.x-hivemind.tenant: tenant "Acme" must be a DNS label: lowercase letters, digits and "-", 1 to 63 characters, starting and ending with a letter or digit; try "acme"',
    'app.yaml: services.web.x-hivemind.canary: must set instances (how many new instances run beside the old) or weight (the percent of traffic they get)',
    'app.yaml: services.web.x-hivemind.strategy: must be "rolling", "blue-green" or "canary", got "fast"',
    'app.yaml: services.web.x-hivemind.priority: must be a whole number >= -1000000, got 1.5',
    'app.yaml: services.web.x-hivemind.max_per_node: must be a whole number >= 1, got 0',
  ]);
  assert.equal(errorsOf(oneService('image: app\ndeploy: { replicas: 20000 }')), ['app.yaml: services.web.deploy.replicas: must be at most 10000, got 20000']);
  assert.equal(errorsOf(oneService('image: app\nhealthcheck: { disable: true, test: "true" }')), [
    'app.yaml: services.web.healthcheck.disable: cannot be true when test is set; remove one of them',
  ]);
  assert.equal(errorsOf(oneService('image: app\nhealthcheck: { interval: 5s }')), [
    'app.yaml: services.web.healthcheck.test: is required: Hivemind does not read the HEALTHCHECK of an image; write the command here',
  ]);
  assert.equal(errorsOf(oneService('image: app\nhealthcheck: { test: "true", timeout: 9000h }')), [
    'app.yaml: services.web.healthcheck.timeout: must be at most 8760h (a year), got "9000h"',
  ]);
  assert.equal(errorsOf(oneService('image: app\nx-hivemind: { strategy: rolling, canary: { instances: 1 } }')), [
    'app.yaml: services.web.x-hivemind.canary: applies only to strategy "canary", but strategy is "rolling"; remove one of them',
  ]);
});

test('settings written twice in different ways must agree', () => {
  const errors = errorsOf(
    oneService(`
      image: app
      scale: 2
      mem_limit: 512M
      labels: { team: a }
      deploy:
        replicas: 3
        labels: { team: b }
        resources: { limits: { memory: 1G, cpus: 1 }, reservations: { cpus: 2 } }
        placement: { max_replicas_per_node: 2 }
      x-hivemind: { max_per_node: 1 }
    `),
  );
  assert.equal(errors, [
    'app.yaml: services.web.scale: is 2 but deploy.replicas is 3; set one of them',
    'app.yaml: services.web.labels.team: is "a" here but "b" in deploy.labels; Hivemind keeps one set of labels',
    'app.yaml: services.web.deploy.resources.limits.memory: differs from mem_limit (1073741824 and 536870912 bytes); set one of them',
    'app.yaml: services.web.deploy.resources.reservations.cpus: reserves 2 CPUs, more than the limit of 1',
    'app.yaml: services.web.x-hivemind.max_per_node: is 1 but deploy.placement.max_replicas_per_node is 2; set one of them',
  ]);
});

test('secrets must be declared at the top level, and mount only at /run/secrets', () => {
  assert.equal(errorsOf(oneService('image: app\nsecrets: [missing, { source: s, target: /etc/s }]', 'secrets: { s: {} }')), [
    'app.yaml: services.web.secrets[0]: uses secret "missing", which is not declared; add it under the top-level secrets:',
    'app.yaml: services.web.secrets[1].target: must be "s" or left out: Hivemind mounts each secret at /run/secrets/s',
  ]);
});

test('the top level: empty, not a mapping, no services, bad declarations, bad tenant', () => {
  assert.equal(errorsOf(''), ['app.yaml: is empty; an app file lists its apps under services:']);
  assert.equal(errorsOf('# only a comment\n'), ['app.yaml: is empty; an app file lists its apps under services:']);
  assert.equal(errorsOf('- web\n'), ['app.yaml: must be a mapping with services: at the top, got a list']);
  assert.equal(errorsOf('name: x\n'), ['app.yaml: services: is required: list the apps to deploy under services:']);
  assert.equal(errorsOf('services: {}\n'), ['app.yaml: services: must list at least one service']);
  assert.equal(errorsOf('services: [web]\n'), ['app.yaml: services: must be a mapping, got a list']);
  assert.equal(errorsOf('services:\n  web:\n'), ['app.yaml: services.web: must be a mapping, got null (an empty value)']);
  assert.equal(errorsOf(`volumes: { db_data: { driver: local } }\nx-hivemind: { tenant: acme, strategy: x }\n${oneService('image: app')}`), [
    'app.yaml: volumes.db_data.driver: is not supported by Hivemind (Hivemind keeps volumes on the node)',
    'app.yaml: x-hivemind.strategy: is an unknown key',
  ]);
  assert.equal(errorsOf(oneService('image: app'), { defaultTenant: 'Not A Name' }), [
    'app.yaml: tenant "Not A Name", given with the deploy, must be a DNS label: lowercase letters, digits and "-", 1 to 63 characters, starting and ending with a letter or digit',
  ]);
});

test('YAML syntax errors name the line and column', () => {
  const result = parseAppFile('services:\n  web:\n    image: app\n   bad: indent\n', 'app.yaml');
  assert.ok(!result.ok);
  assert.equal(result.errors.map(String), ['app.yaml: YAML syntax error at line 4, column 1: All mapping items must start at the same column']);
  assert.is(result.errors[0]?.line, 4);
  assert.is(result.errors[0]?.column, 1);
  assert.equal(errorsOf('services:\n  web: { image: a }\n  web: { image: b }\n'), ['app.yaml: YAML syntax error at line 3, column 3: Map keys must be unique']);
  assert.equal(errorsOf('services: [\n'), ['app.yaml: YAML syntax error at line 2, column 1: Flow sequence in block collection must be sufficiently indented and end with a ]']);
});

test('value errors point at the line and column of their key', () => {
  const result = parseAppFile(oneService('image: app\nports:\n  - "80"\n  - "bad"\n'), 'app.yaml');
  assert.ok(!result.ok);
  assert.equal({ line: result.errors[0]?.line, column: result.errors[0]?.column }, { line: 6, column: 9 });
});

test('interpolation errors and state-machine limits are reported at the Compose path', () => {
  assert.equal(errorsOf(oneService('image: "app:${TAG:?set TAG to the version}"\ncommand: "echo $5"')), [
    'app.yaml: services.web.image: needs variable TAG, which is not set: set TAG to the version',
    'app.yaml: services.web.command: has a "$" that does not start a variable; write "$$" for a literal "$"',
  ]);
  assert.equal(errorsOf(oneService('image: app\nenvironment: { X: "bell\\u0007" }')), [
    'app.yaml: services.web.environment.X: must not contain control characters other than tabs and line breaks',
  ]);
  assert.equal(errorsOf(oneService(`image: app\nuser: "${'u'.repeat(5000)}"`)), ['app.yaml: services.web.user: must be at most 4096 bytes long']);
});

test('limits: errors beyond ERRORS_MAX are counted; oversized files, alias bombs and deep nesting are refused', () => {
  const services = Array.from({ length: ERRORS_MAX + 20 }, (_, index) => `  s${index}: { image: app, deploy: { replicas: x } }`).join('\n');
  const errors = errorsOf(`services:\n${services}\n`);
  assert.is(errors.length, ERRORS_MAX + 1);
  assert.is(errors.at(-1), 'app.yaml: 20 more errors not shown; fix the ones above first');
  assert.equal(errorsOf(`x-pad: "${'a'.repeat(APP_FILE_BYTES_MAX)}"\n`), ['app.yaml: is larger than 1048576 bytes (1 MiB), the most an app file may be']);
  const bomb = ['a: &a [x, x, x, x, x, x, x, x, x, x]', 'b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]', 'c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]', 'd: [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]'];
  assert.equal(errorsOf(`${bomb.join('\n')}\nservices: { a: { image: x } }\n`), ['app.yaml: cannot be read: Excessive alias count indicates a resource exhaustion attack']);
  assert.equal(errorsOf(`x-deep: ${'['.repeat(100)}${']'.repeat(100)}\n${oneService('image: app')}`), ['app.yaml: x-deep: holds values nested more than 64 levels deep']);
  const tooDeep = errorsOf(`x-deep: ${'['.repeat(50_000)}${']'.repeat(50_000)}\n`);
  assert.is(tooDeep.length, 1);
  assert.match(tooDeep[0] ?? '', /^app\.yaml: YAML syntax error at line 1, column \d+: nests mappings or lists too deeply to read/);
});

test('never throws, whatever the text', () => {
  const texts = [
    '\u0000',
    '%YAML 1.1\n---\nservices: {}\n',
    '? [a, b]\n: c\n',
    'services: !!binary aGVsbG8=\n',
    'services: { web: !!binary aGVsbG8= }\n',
    'services: { web: { image: !!binary aGVsbG8= } }\n',
    'services: { web: { image: .inf } }\n',
    'services: { web: { command: [.nan, null, {}] } }\n',
    'services: { __proto__: { image: x } }\n',
    'services: { web: { image: x, environment: { __proto__: polluted }, labels: { constructor: x } } }\n',
    '*unknown\n',
    'a: &x { b: *x }\n',
    '"\\uD800"\n',
    '---\n---\n',
    'services:\n  web:\n    <<: [*nope]\n',
  ];
  for (const text of texts) {
    const result = parseAppFile(text, 'fuzz.yaml');
    assert.type(result.ok, 'boolean', text);
  }
  assert.is(({} as Record<string, unknown>).polluted, undefined);
  assert.equal(errorsOf('services: { web: { image: x, environment: { __proto__: polluted } } }\n'), [
    'app.yaml: services.web.environment.__proto__: is a reserved name',
  ]);
});


test('with several files, a warning about a field no file writes in place names the file that holds it, not an override that only names the service', () => {
  const base = dedent(`
    x-app: &app
      image: busybox
      logging: { driver: json-file }
    services:
      web:
        <<: *app
        environment:
          - MODE=production
  `);
  const override = 'services:\n  web:\n    deploy: { replicas: 2 }\n';
  const parsed = parseAppFiles([
    { name: 'docker-compose.yml', text: base },
    { name: 'docker-compose.override.yml', text: override },
  ]);
  assert.ok(parsed.ok, JSON.stringify(parsed));
  const logging = parsed.warnings.find((warning) => warning.includes('services.web.logging'));
  assert.match(logging ?? '', /^docker-compose\.yml: services\.web\.logging: is ignored/);
});

test.run();
