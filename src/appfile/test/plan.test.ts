// The plan of a deploy (hivemind deploy --dry-run) and the file paths of the state machine's refusals.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { appSpec, Driver, MiB } from '../../state/test/fixtures.js';
import { composeFieldOf, planDeploy } from '../plan.js';
import { parseAppFile } from '../parse.js';

function planOn(driver: Driver, specs: ReturnType<typeof appSpec>[], project: string | undefined, force = false): ReturnType<typeof planDeploy> {
  return planDeploy({
    apps: specs,
    ...(project === undefined ? {} : { project }),
    force,
    current: (tenant, name) => driver.machine.app(tenant, name),
    tenant: (name) => {
      const tenant = driver.machine.tenant(name);
      return tenant === undefined ? undefined : { usage: driver.machine.usage(name), quota: tenant.quota };
    },
  });
}

test('create, update (with what changed), scale, unchanged, and another project\'s app; quota before and after', () => {
  const driver = new Driver();
  driver.ok({ type: 'tenant.create', name: 'acme', quota: { memoryBytes: 2048 * MiB } });
  const web = appSpec({ tenant: 'acme', name: 'web' });
  const api = appSpec({ tenant: 'acme', name: 'api', ports: [] });
  const db = appSpec({ tenant: 'acme', name: 'db', ports: [], replicas: 1 });
  driver.ok({ type: 'app.deploy-many', specs: [web, api, db], project: 'shop' });
  driver.ok({ type: 'app.deploy-many', specs: [appSpec({ tenant: 'acme', name: 'blog', ports: [], replicas: 1 })], project: 'blog' });
  driver.ok({ type: 'app.scale', tenant: 'acme', name: 'db', replicas: 2 });

  const newWeb = appSpec({ tenant: 'acme', name: 'web', image: 'nginx:1.27', replicas: 3, environment: { MODE: 'debug', EXTRA: '1' } });
  const cache = appSpec({ tenant: 'acme', name: 'cache', ports: [], replicas: 1 });
  const blog = appSpec({ tenant: 'acme', name: 'blog', ports: [], replicas: 1, image: 'ghost:5' });
  const plan = planOn(driver, [newWeb, api, db, cache, blog], 'shop');
  assert.equal(
    plan.apps.map((app) => [app.name, app.action, app.fromVersion, app.toVersion, app.start, app.stop]),
    [
      ['web', 'update', 1, 2, 3, 2],
      ['api', 'unchanged', 1, 1, 0, 0],
      ['db', 'scale', 1, 1, 0, 1],
      ['cache', 'create', undefined, 1, 1, 0],
      ['blog', 'refused', 1, undefined, 0, 0],
    ],
  );
  assert.equal(plan.apps[0]?.changes, ['replicas 2 → 3', 'image nginx:1.25 → nginx:1.27', 'environment (+EXTRA, ~MODE)']);
  assert.is(plan.apps[4]?.owner, 'blog');
  const [quota] = plan.quotas;
  // Reservations of 256 MiB each: 2 web + 2 api + 2 db + 1 blog now; 3 web + 2 api + 1 db + 1 cache + 1 ghost after.
  assert.equal([quota?.before.memoryBytes, quota?.after.memoryBytes, quota?.quota.memoryBytes], [7 * 256 * MiB, 8 * 256 * MiB, 2048 * MiB]);
  assert.equal(planOn(driver, [blog], 'shop', true).apps[0]?.action, 'update');
  // Without a project (an older CLI), an unchanged spec is a new version, as the state machine then does.
  assert.equal(planOn(driver, [api], undefined).apps[0]?.action, 'update');
});

test('a refusal about specs[N].field names the place in the file', () => {
  const result = parseAppFile('services:\n  db_server:\n    image: postgres\n    secrets: [db_password]\n    x-hivemind: { secrets: [extra], policies: [p] }\n    volumes: [data:/d]\nvolumes: { data: {} }\nsecrets: { db_password: { external: true } }\n', 'app.yaml');
  if (!result.ok) throw new Error(result.errors.map(String).join('\n'));
  const field = (text: string): string | undefined => composeFieldOf(text, result.apps, result.origins);
  assert.is(field('specs[0].hivemind.secrets[0]'), 'services.db_server.secrets[0]');
  assert.is(field('specs[0].hivemind.secrets[1]'), 'services.db_server.x-hivemind.secrets');
  assert.is(field('specs[0].hivemind.policies[0]'), 'services.db_server.x-hivemind.policies[0]');
  assert.is(field('specs[0].volumes[0].source'), 'services.db_server.volumes[0]');
  assert.is(field('specs[0].reservations.memoryBytes'), 'services.db_server.deploy.resources.reservations.memory');
  assert.is(field('specs[0].name'), 'services.db_server');
  assert.is(field('specs[0].tenant'), 'tenant');
  assert.is(field('specs[0]'), 'services.db_server');
  assert.is(field('specs[3].name'), undefined);
  assert.is(field('project'), undefined);
});

test.run();
