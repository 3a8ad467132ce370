// Compose's configs (top-level file:/content:/environment:, per service with
// target and mode) and relative bind mounts of a file or a small folder,
// sent with the deploy and mounted read-only; a large folder is refused
// with what to use instead (issue 20).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { validateCommand } from '../../state/validate.js';
import { LIMITS } from '../../state/fields.js';
import { base64OfText, type LocalSource } from '../configs.js';
import { referencedLocalSources } from '../parse.js';
import { dedent, errorsOf, onlyApp, oneService, warningsOf } from './helpers.js';

const text = (value: string): string => base64OfText(value);

test('top-level configs from a file, content or a variable, mounted where each service says', () => {
  const file = dedent(`
    services:
      web:
        image: nginx
        configs:
          - site
          - source: app_settings
            target: /etc/app/settings.json
            mode: 0440
          - { source: greeting, target: /greeting.txt }
    configs:
      site: { file: ./site.conf }
      app_settings: { content: '{"debug": false}' }
      greeting: { environment: GREETING }
  `);
  assert.equal(referencedLocalSources([{ name: 'app.yaml', text: file }]), ['./site.conf']);
  const spec = onlyApp(file, { localSources: { './site.conf': { kind: 'file', data: text('server {}\n') } }, variables: { GREETING: 'hello' } });
  assert.equal(spec.configs, [
    { source: 'site', target: '/site', files: [{ path: '', data: text('server {}\n') }] },
    { source: 'app-settings', target: '/etc/app/settings.json', files: [{ path: '', data: text('{"debug": false}') }], mode: 0o440 },
    { source: 'greeting', target: '/greeting.txt', files: [{ path: '', data: text('hello') }] },
  ]);
  assert.ok(validateCommand({ type: 'app.deploy', spec }).ok);
});

test('relative bind mounts of a file and of a folder become read-only configs; a writable one says so', () => {
  const file = oneService('image: nginx\nvolumes: ["./nginx.conf:/etc/nginx/nginx.conf:ro", "data:/data", { type: bind, source: ./certs, target: /etc/nginx/certs }]', 'volumes: { data: {} }');
  assert.equal(referencedLocalSources([{ name: 'app.yaml', text: file }]), ['./nginx.conf', './certs']);
  const localSources: Record<string, LocalSource> = {
    './nginx.conf': { kind: 'file', data: text('events {}\n') },
    './certs': { kind: 'folder', files: [{ path: 'site.crt', data: text('CRT') }, { path: 'live/site.key', data: text('KEY') }] },
  };
  const spec = onlyApp(file, { localSources });
  assert.equal(spec.volumes, [{ source: 'data', target: '/data', readOnly: false }]);
  assert.equal(spec.configs, [
    { source: './nginx.conf', target: '/etc/nginx/nginx.conf', files: [{ path: '', data: text('events {}\n') }] },
    { source: './certs', target: '/etc/nginx/certs', files: [{ path: 'site.crt', data: text('CRT') }, { path: 'live/site.key', data: text('KEY') }] },
  ]);
  assert.equal(warningsOf(file, { localSources }), ['app.yaml: services.web.volumes[2]: is mounted read-only: ./certs is sent with the deploy as a config, so every node has it; write data to a named volume']);
});

test('a large or missing folder is refused with what to do; configs need an image app; limits hold in the state too', () => {
  const file = oneService('image: app\nvolumes: ["./data:/var/lib/app"]');
  const [tooLarge] = errorsOf(file, { localSources: { './data': { kind: 'too-large', files: 65, bytes: 1000 } } });
  assert.match(tooLarge ?? '', /^app\.yaml: services\.web\.volumes\[0\]: mounts folder "\.\/data", which holds more than 64 files: a relative bind mount is sent with the deploy as configuration .*use a named volume/);
  // Writable and missing or empty: a data folder, refused with what to use instead.
  const dataFolder = (what: string): string =>
    `app.yaml: services.web.volumes[0]: mounts "./data" writable, ${what}: a folder for the app's data, which a relative bind mount cannot hold ` +
    '(it is sent with the deploy as read-only configuration, the same on every node, and what the app writes would be lost). ' +
    'Use a named volume: mount "data:/var/lib/app" and declare it at the top level (volumes: { data: { x-hivemind: { size: 1G } } }); it lives on one node, the app is placed there, and it keeps what the app writes';
  assert.equal(errorsOf(file), [dataFolder('which does not exist beside the app file')]);
  assert.equal(errorsOf(file, { localSources: { './data': { kind: 'folder', files: [] } } }), [dataFolder('an empty folder')]);
  assert.match(errorsOf(oneService('image: app\nvolumes: ["./PG Data/:/var/lib/postgresql/data"]'))[0] ?? '', /mount "data:\/var\/lib\/postgresql\/data"/, 'a folder name no volume may have: "data"');
  assert.match(errorsOf(oneService('image: app\nvolumes: ["./pgdata:/var/lib/postgresql/data"]'))[0] ?? '', /mount "pgdata:\/var\/lib\/postgresql\/data" and declare it at the top level \(volumes: \{ pgdata:/);
  // Missing with an extension, or read-only: a config file that was not found.
  assert.equal(errorsOf(oneService('image: app\nvolumes: ["./nginx.conf:/etc/nginx/nginx.conf"]')), ['app.yaml: services.web.volumes[0]: names "./nginx.conf", which was not sent with the deploy; give a path relative to the app file\'s folder that exists']);
  assert.equal(errorsOf(oneService('image: app\nvolumes: ["./data:/var/lib/app:ro"]')), ['app.yaml: services.web.volumes[0]: names "./data", which was not sent with the deploy; give a path relative to the app file\'s folder that exists']);
  assert.equal(errorsOf(oneService('command: [cat, /x]\nconfigs: [x]', 'configs: { x: { content: hi } }')), ['app.yaml: services.web.configs: applies only to an image app; a process app reads its files where it runs']);
  const spec = onlyApp(oneService('image: app\nconfigs: [x]', 'configs: { x: { content: hi } }'));
  const big = { ...spec, configs: [{ source: 'x', target: '/x', files: [{ path: '', data: 'A'.repeat(Math.ceil((LIMITS.configBytesMax * 4) / 3) + 4) }] }] };
  const refused = validateCommand({ type: 'app.deploy', spec: big });
  assert.ok(!refused.ok && /at most 1048576 bytes together/.test(refused.error.message), JSON.stringify(refused));
  const escaping = { ...spec, configs: [{ source: 'x', target: '/x', files: [{ path: '../etc/passwd', data: '' }] }] };
  assert.not.ok(validateCommand({ type: 'app.deploy', spec: escaping }).ok, 'a path with .. is refused');
});

test.run();
