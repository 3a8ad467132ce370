// The Compose keys people write that Hivemind maps, or accepts with a one-line warning (issue 20).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseDotenv } from '../dotenv.js';
import { parseAppFile, parseAppFiles, referencedFiles } from '../parse.js';
import { dedent, errorsOf, onlyApp, oneService, parseOk, warningsOf } from './helpers.js';

test('keys without an equivalent are accepted with one warning each, saying what happens instead', () => {
  const cases: [string, string][] = [
    ['logging: { driver: json-file, options: { max-size: 10m } }', "services.web.logging: is ignored: each node keeps its instances' output; read it with hivemind logs"],
    ['stdin_open: true', 'services.web.stdin_open: is ignored: instances run without a terminal; their output goes to hivemind logs'],
    ['tty: true', 'services.web.tty: is ignored: instances run without a terminal; their output goes to hivemind logs'],
    ['build: .', 'services.web.build: is ignored: Hivemind runs the image named by image: and builds nothing; build and push (or hivemind images import) it first'],
  ];
  for (const [body, expected] of cases) assert.equal(warningsOf(oneService(`image: app\n${body}`)), [`app.yaml: ${expected}`], body);
});

test('container_name becomes a DNS alias of the app', () => {
  const spec = onlyApp(oneService('image: app\ncontainer_name: Shop_DB'));
  assert.equal(spec.hivemind.aliases, ['shop-db']);
  assert.equal(warningsOf(oneService('image: app\ncontainer_name: web')), ["app.yaml: services.web.container_name: is the app's own name already: other apps reach it by it; instances are named by Hivemind"]);
  assert.is(onlyApp(oneService('image: app\ncontainer_name: web')).hivemind.aliases, undefined);
});

test('env_file: the files the caller read, in order, under environment:', () => {
  const text = oneService('image: app\nenv_file: [./common.env, { path: ./local.env, required: false }, ./web.env]\nenvironment: { MODE: from-file-loses }');
  const files = { './common.env': '# shared\nMODE=common\nexport TZ=UTC\nQUOTED="a b # not a comment"\n', './web.env': "TZ='Europe/Paris'\nPORT=8080 # the port\n" };
  assert.equal(referencedFiles([{ name: 'app.yaml', text }]), ['./common.env', './local.env', './web.env']);
  const spec = onlyApp(text, { files });
  assert.equal(spec.environment, { MODE: 'from-file-loses', TZ: 'Europe/Paris', QUOTED: 'a b # not a comment', PORT: '8080' });
  assert.equal(errorsOf(oneService('image: app\nenv_file: ./bad.env'), { files: { './bad.env': 'OK=1\nnot a line\n' } }), ['app.yaml: services.web.env_file: ./bad.env line 2 must be KEY=VALUE, got "not a line"']);
  assert.equal(errorsOf(oneService('image: app\nenv_file: [{ path: ./x.env, format: raw }]'), { files: { './x.env': '' } }), [
    'app.yaml: services.web.env_file[0].format: is not supported by Hivemind (env files are read in the .env format)',
  ]);
});

test('the .env format: comments, export, quotes over lines, escapes, bare values', () => {
  assert.equal(parseDotenv('A=1\n\n# c\nexport B = two words \nC="x\\ny"\nD=\'$NOT\'\nE="multi\nline"\nF=v # c\nG\n'), {
    ok: true,
    variables: { A: '1', B: 'two words', C: 'x\ny', D: '$NOT', E: 'multi\nline', F: 'v' },
  });
  assert.equal(parseDotenv('A="open\n'), { ok: false, line: 1, problem: 'opens a double quote that is never closed' });
  assert.equal(parseDotenv('1A=x'), { ok: false, line: 1, problem: 'has variable name "1A"; a name is letters, digits and _ , not starting with a digit' });
});

test('profiles: a service with profiles deploys only when one is enabled', () => {
  const text = dedent(`
    services:
      web: { image: app }
      debug: { image: busybox, profiles: [debug, tools] }
  `);
  const without = parseOk(text);
  assert.equal(without.apps.map((app) => app.name), ['web']);
  assert.equal(without.warnings, ['app.yaml: services.debug: is left out: its profiles (debug, tools) are not enabled; deploy with --profile debug to include it']);
  assert.equal(parseOk(text, { profiles: ['tools'] }).apps.map((app) => app.name), ['web', 'debug']);
});

test('deploy.mode global: one instance per node, said in a warning; the deploy sets the count', () => {
  const result = parseAppFile(oneService('image: prom/node-exporter\ndeploy: { mode: global }'), 'app.yaml');
  if (!result.ok) throw new Error(result.errors.map(String).join('\n'));
  assert.equal(result.globalServices, ['web']);
  assert.is(result.apps[0]?.hivemind.maxPerNode, 1);
  assert.equal(result.warnings, ['app.yaml: services.web.deploy.mode: global: one instance runs on each node that is up when the file is deployed; deploy again to cover nodes that join later']);
});

test('ports bound to a host address: loopback is not published, all addresses is the default, another address is published everywhere', () => {
  const { apps, warnings } = parseOk(oneService('image: app\nports: ["127.0.0.1:8443:443", "0.0.0.0:80:80", "[::1]:9000:9000", "10.0.0.5:5432:5432", { target: 53, published: 5353, host_ip: 127.0.0.1 }]'));
  assert.equal(apps[0]?.ports, [
    { target: 443, protocol: 'tcp' },
    { target: 80, published: 80, protocol: 'tcp' },
    { target: 9000, protocol: 'tcp' },
    { target: 5432, published: 5432, protocol: 'tcp' },
    { target: 53, protocol: 'tcp' },
  ]);
  assert.equal(warnings, [
    "app.yaml: services.web.ports[0]: binds 127.0.0.1: Hivemind does not publish it on the node (other apps of the tenant and the proxy still reach port 443; hivemind ps shows each instance's address)",
    "app.yaml: services.web.ports[2]: binds ::1: Hivemind does not publish it on the node (other apps of the tenant and the proxy still reach port 9000; hivemind ps shows each instance's address)",
    'app.yaml: services.web.ports[3]: binds 10.0.0.5: Hivemind publishes the port on every address of the node, not only this one; keep it closed at the firewall if it must not be reached there',
    "app.yaml: services.web.ports[4].host_ip: binds 127.0.0.1: Hivemind does not publish it on the node (other apps of the tenant and the proxy still reach port 53; hivemind ps shows each instance's address)",
  ]);
});

test('names with underscores become names with hyphens, said once where declared', () => {
  const text = dedent(`
    services:
      db_server:
        image: postgres:16
        secrets: [db_password]
        volumes: [db_data:/var/lib/postgresql/data]
    volumes:
      db_data:
    secrets:
      db_password:
        external: true
  `);
  const { apps, warnings } = parseOk(text);
  assert.equal([apps[0]?.name, apps[0]?.hivemind.secrets, apps[0]?.volumes[0]?.source], ['db-server', ['db-password'], 'db-data']);
  assert.equal(warnings, [
    'app.yaml: volumes.db_data: is named "db-data" in Hivemind (names are DNS labels, without "_")',
    'app.yaml: secrets.db_password: is named "db-password" in Hivemind (names are DNS labels, without "_"); instances find it at /run/secrets/db-password',
    'app.yaml: services.db_server: is named "db-server" in Hivemind (names are DNS labels, without "_"); other apps reach it as db-server',
  ]);
  assert.equal(errorsOf('services:\n  a_b: { image: x }\n  a-b: { image: y }\n'), ['app.yaml: services.a-b: is app "a-b" in Hivemind, as is service a_b; rename one of them']);
});

test('project: -p, else the file\'s name:, else the folder; names become DNS labels', () => {
  const named = `name: My_Shop\n${oneService('image: app')}`;
  const project = (text: string, options = {}): string | undefined => {
    const result = parseAppFile(text, 'app.yaml', options);
    if (!result.ok) throw new Error(result.errors.map(String).join('\n'));
    return result.project;
  };
  assert.is(project(named, { projectFallback: 'folder' }), 'my-shop');
  assert.is(project(named, { project: 'other', projectFallback: 'folder' }), 'other');
  assert.is(project(oneService('image: app'), { projectFallback: 'My Folder.v2' }), 'my-folder-v2');
  assert.is(project(oneService('image: app')), undefined);
  assert.equal(errorsOf(oneService('image: app'), { project: 'Bad_Project' }), [
    'app.yaml: project "Bad_Project", given with the deploy, must be a DNS label: lowercase letters, digits and "-", 1 to 63 characters, starting and ending with a letter or digit',
  ]);
});

test('-f a -f b merges as Compose does; errors name the file that wrote the field', () => {
  const base = dedent(`
    services:
      web:
        image: nginx:1.25
        command: ["nginx", "-g", "daemon off;"]
        environment: [MODE=prod, TZ=UTC]
        ports: ["80:80"]
        volumes: ["data:/data", "/etc/ssl:/etc/ssl:ro"]
        deploy: { replicas: 2, labels: { team: web } }
    volumes:
      data:
  `);
  const override = dedent(`
    services:
      web:
        image: nginx:1.27
        command: ["nginx-debug"]
        environment: { MODE: dev }
        ports: ["8443:443"]
        volumes: ["/etc/ssl/dev:/etc/ssl:ro"]
        deploy: { replicas: 1 }
      worker:
        image: busybox
        deploy: { replicas: three }
  `);
  const result = parseAppFiles([{ name: 'compose.yml', text: base }, { name: 'compose.override.yml', text: override }]);
  assert.ok(!result.ok);
  assert.equal(result.errors.map(String), ['compose.override.yml: services.worker.deploy.replicas: must be a whole number >= 0, got "three"']);
  const fixed = parseAppFiles([{ name: 'compose.yml', text: base }, { name: 'compose.override.yml', text: override.replace('three', '1') }], { sets: ['web.deploy.replicas=4', 'web.environment.EXTRA=yes'] });
  if (!fixed.ok) throw new Error(fixed.errors.map(String).join('\n'));
  const web = fixed.apps[0];
  assert.is(web?.image, 'nginx:1.27');
  assert.equal(web?.command, ['nginx-debug']);
  assert.equal(web?.environment, { MODE: 'dev', TZ: 'UTC', EXTRA: 'yes' });
  assert.equal(web?.ports.map((port) => port.published), [80, 8443]);
  assert.equal(web?.volumes, [
    { source: 'data', target: '/data', readOnly: false },
    { source: '/etc/ssl/dev', target: '/etc/ssl', readOnly: true },
  ]);
  assert.is(web?.replicas, 4);
  assert.equal(web?.labels, { team: 'web' });
});

test('--set: a bad form, an unknown service, a path through a value that is not a mapping', () => {
  const text = oneService('image: app');
  const errors = (sets: string[]): string[] => {
    const result = parseAppFiles([{ name: 'app.yaml', text }], { sets });
    return result.ok ? [] : result.errors.map(String);
  };
  assert.equal(errors(['web']), ['app.yaml: --set[0]: must be SERVICE.KEY=VALUE, like "web.image=nginx:1.27" or "web.deploy.replicas=3", got "web"']);
  assert.equal(errors(['api.image=x']), ['app.yaml: --set[0]: sets a key of service "api", which the app file does not have']);
  assert.equal(errors(['web.image.tag=x']), ['app.yaml: --set[0]: cannot set web.image.tag: services.web.image is not a mapping']);
  assert.equal(errors(['web.__proto__.polluted=1']), ['--set: services.web.__proto__: is an unknown key']);
  const listForm = parseAppFiles([{ name: 'app.yaml', text: oneService('image: app\nenvironment: [A=1, B=2]') }], { sets: ['web.environment.B=3'] });
  assert.ok(listForm.ok && listForm.apps[0]?.environment.B === '3' && listForm.apps[0]?.environment.A === '1', JSON.stringify(listForm));
  assert.equal(errors(['web.deploy.replicas=many']), ['--set: services.web.deploy.replicas: must be a whole number >= 0, got "many"']);
  assert.is(({} as Record<string, unknown>).polluted, undefined);
});

test('interpolation takes the variables given (from .env and --env-file, by the CLI)', () => {
  const spec = onlyApp(oneService('image: "nginx:${TAG:-1.25}"\nenvironment: { DB: "${DB_HOST}:5432" }'), { variables: { TAG: '1.27', DB_HOST: 'db' } });
  assert.equal([spec.image, spec.environment.DB], ['nginx:1.27', 'db:5432']);
});

test.run();
