// Compose's top-level named volumes: the ones the services mount come out of
// the parse with their tenant and size (x-hivemind.size, or 1 GiB), external
// ones are marked, and volumeCreations turns the missing ones into
// volume.create commands, refusing a missing external one with what to run.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseAppFile } from '../parse.js';
import { VOLUME_SIZE_BYTES_DEFAULT, volumeCreations } from '../volumes.js';
import { dedent, errorsOf } from './helpers.js';

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;

function volumesOf(text: string, tenant?: string) {
  const result = parseAppFile(dedent(text), 'app.yaml', tenant === undefined ? {} : { defaultTenant: tenant });
  if (!result.ok) throw new Error(result.errors.map(String).join('\n'));
  return { volumes: result.volumes, warnings: result.warnings };
}

test('mounted declarations carry tenant, size and external; unused ones are left out', () => {
  const { volumes, warnings } = volumesOf(
    `
    services:
      db:
        image: postgres
        volumes: ["pgdata:/var/lib/postgresql/data", "shared:/shared", "/srv/config:/etc/app:ro"]
      web:
        image: nginx
        volumes: ["shared:/www:ro"]
    volumes:
      pgdata: { x-hivemind: { size: 10G } }
      shared:
      cache: { external: true }
      unused: { x-hivemind: { size: 1M } }
    `,
    'acme',
  );
  assert.equal(volumes, [
    { tenant: 'acme', name: 'pgdata', sizeBytes: 10 * GiB, external: false, encrypted: false },
    { tenant: 'acme', name: 'shared', sizeBytes: VOLUME_SIZE_BYTES_DEFAULT, external: false, encrypted: false },
  ]);
  assert.equal(warnings, []);
  assert.is(VOLUME_SIZE_BYTES_DEFAULT, GiB);
});

test('external volumes: a size is ignored with a warning', () => {
  const { volumes, warnings } = volumesOf(`
    services:
      db: { image: postgres, volumes: ["data:/data"] }
    volumes:
      data: { external: true, x-hivemind: { size: 5G } }
  `);
  assert.equal(volumes, [{ tenant: 'default', name: 'data', sizeBytes: GiB, external: true, encrypted: false }]);
  assert.equal(warnings, ['app.yaml: volumes.data.x-hivemind.size: is ignored: an external volume exists already, with the size it was created with']);
});

test('x-hivemind.encrypted: the deploy creates the volume encrypted; ignored with a warning on an external one; a non-boolean is refused', () => {
  const created = volumesOf(`
    services:
      db: { image: postgres, volumes: ["data:/data", "logs:/logs"] }
    volumes:
      data: { x-hivemind: { size: 1G, encrypted: true } }
      logs: { external: true, x-hivemind: { encrypted: true } }
  `);
  assert.equal(created.volumes, [
    { tenant: 'default', name: 'data', sizeBytes: GiB, external: false, encrypted: true },
    { tenant: 'default', name: 'logs', sizeBytes: GiB, external: true, encrypted: false },
  ]);
  assert.equal(created.warnings, ['app.yaml: volumes.logs.x-hivemind.encrypted: is ignored: an external volume exists already, encrypted or not as it was created']);
  const file = `services:\n  db: { image: postgres, volumes: ["data:/data"] }\nvolumes:\n  data: { x-hivemind: { encrypted: sometimes } }\n`;
  assert.equal(errorsOf(file).length, 1);
  assert.match(errorsOf(file)[0]!, /volumes\.data\.x-hivemind\.encrypted: /);
});

test('x-hivemind of a volume: a bad size, zero, an unknown key', () => {
  const file = (extension: string) => `services:\n  db: { image: postgres, volumes: ["data:/data"] }\nvolumes:\n  data: { x-hivemind: ${extension} }\n`;
  assert.equal(errorsOf(file('{ size: lots }')), ['app.yaml: volumes.data.x-hivemind.size: must be a memory size like "512M" or "1G", got "lots"']);
  assert.equal(errorsOf(file('{ size: 0 }')), ['app.yaml: volumes.data.x-hivemind.size: must be more than 0, like "1G"']);
  assert.equal(errorsOf(file('{ sise: 1G }')).length, 1);
  assert.match(errorsOf(file('{ sise: 1G }'))[0]!, /volumes\.data\.x-hivemind\.sise: is an unknown key/);
});

test('volumeCreations: the missing declared volumes become volume.create; a missing external one is refused with what to run', () => {
  const existing = new Set(['acme/old']);
  const exists = (tenant: string, name: string) => existing.has(`${tenant}/${name}`);
  const created = volumeCreations(
    [
      { tenant: 'acme', name: 'old', sizeBytes: GiB, external: false, encrypted: false },
      { tenant: 'acme', name: 'new', sizeBytes: 100 * MiB, external: false, encrypted: false },
      { tenant: 'acme', name: 'old', sizeBytes: GiB, external: true, encrypted: false },
    ],
    exists,
  );
  assert.equal(created, { ok: true, commands: [{ type: 'volume.create', tenant: 'acme', name: 'new', sizeBytes: 100 * MiB }] });
  const refused = volumeCreations([{ tenant: 'acme', name: 'ghost', sizeBytes: GiB, external: true, encrypted: false }], exists);
  assert.equal(refused, {
    ok: false,
    message:
      'volume "ghost" is declared external: true, but tenant "acme" has no such volume; create it first (hivemind volumes create ghost --size SIZE --tenant acme), or drop external: to let the deploy create it (size 1 GiB unless x-hivemind.size says otherwise)',
  });
});

test.run();
