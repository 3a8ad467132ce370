// The five kinds of Compose files of issue 20, written as people write them
// (test/fixtures/*), read the way `hivemind deploy` reads them (the .env
// beside the file, the files they name), then planned against an empty
// cluster and against the cluster after their deploy.
import { existsSync, readFileSync } from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ClusterStateMachine } from '../../state/machine.js';
import { validateCommand } from '../../state/validate.js';
import { parseDotenv } from '../dotenv.js';
import { fileURLToPath } from 'node:url';
import { readLocalSource } from '../../cli/local-sources.js';
import type { LocalSource } from '../configs.js';
import { parseAppFiles, referencedFiles, referencedLocalSources, type ParseAppFileResult } from '../parse.js';
import { planDeploy } from '../plan.js';
import { STATE_VERSION } from '../../state/version.js';
import { Driver, registerNode } from '../../state/test/fixtures.js';
import { STATE_VERSION_LABEL, type Command } from '../../state/types.js';

// Tests run from dist/src/appfile/test/; the fixtures stay in the source tree.
const fixtures = new URL('../../../../src/appfile/test/fixtures/', import.meta.url);

/** Reads fixture `kind` as the CLI does: its docker-compose.yml, its .env, the files it names, and the files and folders it mounts as configs. */
async function readFixture(kind: string, options: { profiles?: string[] } = {}): Promise<ParseAppFileResult> {
  const folder = new URL(`${kind}/`, fixtures);
  const sources = [{ name: 'docker-compose.yml', text: readFileSync(new URL('docker-compose.yml', folder), 'utf8') }];
  const dotenv = new URL('.env', folder);
  const parsed = existsSync(dotenv) ? parseDotenv(readFileSync(dotenv, 'utf8')) : { ok: true as const, variables: {} };
  assert.ok(parsed.ok);
  const base = { variables: parsed.variables, projectFallback: kind, ...options };
  const files: Record<string, string> = {};
  for (const path of referencedFiles(sources, base)) {
    const file = new URL(path, folder);
    if (existsSync(file)) files[path] = readFileSync(file, 'utf8');
  }
  const localSources: Record<string, LocalSource> = {};
  for (const path of referencedLocalSources(sources, base)) {
    const source = await readLocalSource(fileURLToPath(new URL(path, folder)));
    if (source !== undefined) localSources[path] = source;
  }
  return parseAppFiles(sources, { ...base, files, localSources });
}

async function parsedOk(kind: string, options: { profiles?: string[] } = {}): Promise<Extract<ParseAppFileResult, { ok: true }>> {
  const result = await readFixture(kind, options);
  if (!result.ok) throw new Error(`${kind}:\n${result.errors.map(String).join('\n')}`);
  for (const spec of result.apps) assert.ok(validateCommand({ type: 'app.deploy', spec }).ok, `${kind}: ${spec.name}`);
  return result;
}

/** The plan against `machine`, and the same plan's actions. */
function plan(result: Extract<ParseAppFileResult, { ok: true }>, machine: ClusterStateMachine): ReturnType<typeof planDeploy> {
  return planDeploy({
    apps: result.apps,
    ...(result.project === undefined ? {} : { project: result.project }),
    force: false,
    current: (tenant, name) => machine.app(tenant, name),
    tenant: (name) => {
      const tenant = machine.tenant(name);
      return tenant === undefined ? undefined : { usage: machine.usage(name), quota: tenant.quota };
    },
  });
}

/** Deploys the parsed file on a fresh state machine (volumes and secrets first, as the API does); the plan before and after. */
function deployAndReplan(result: Extract<ParseAppFileResult, { ok: true }>, options: { hostMounts?: boolean } = {}): { before: ReturnType<typeof planDeploy>; after: ReturnType<typeof planDeploy> } {
  const driver = new Driver();
  // A cluster whose members all run this release (configs and container settings need its state version).
  const node = registerNode('n1') as Extract<Command, { type: 'node.register' }>;
  driver.ok({ ...node, labels: { ...node.labels, [STATE_VERSION_LABEL]: String(STATE_VERSION) } });
  driver.ok({ type: 'cluster.version', version: STATE_VERSION });
  const before = plan(result, driver.machine);
  for (const volume of result.volumes) driver.ok({ type: 'volume.create', tenant: volume.tenant, name: volume.name, sizeBytes: volume.sizeBytes });
  for (const secret of result.secrets) driver.ok({ type: 'secret.put', tenant: secret.tenant, name: secret.name, ciphertext: new Uint8Array(32), nonce: new Uint8Array(12) });
  const deploy = { type: 'app.deploy-many', specs: result.apps, ...(result.project === undefined ? {} : { project: result.project }) } as const;
  if (options.hostMounts === true) {
    // Host paths are refused for a tenant until a cluster-admin allows them (the access issue's rule): first the refusal, then the admin's step.
    const refused = driver.refused(deploy);
    assert.ok(refused.code === 'forbidden' && refused.message.includes('--host-mounts allow'), JSON.stringify(refused));
    driver.ok({ type: 'tenant.update', name: 'default', quota: driver.machine.tenant('default')!.quota, settings: { hostMounts: true } });
  }
  driver.ok(deploy);
  return { before, after: plan(result, driver.machine) };
}

test('web + database: .env feeds interpolation and env_file; build beside image and a loopback port are warned about', async () => {
  const result = await parsedOk('web-database');
  assert.is(result.project, 'web-database');
  const [web, db] = result.apps;
  assert.is(web?.image, 'ghcr.io/acme/notes-web:1.4.2');
  assert.equal(web?.environment, { POSTGRES_PASSWORD: 'change-me', WEB_TAG: '1.4.2', SECRET_KEY: 's3cr3t value', DATABASE_URL: 'postgres://notes:change-me@db:5432/notes', DEBUG: 'false' });
  assert.equal(web?.restart.condition, 'any');
  assert.equal(db?.ports, [{ target: 5432, protocol: 'tcp' }]);
  assert.equal(db?.volumes, [{ source: 'pgdata', target: '/var/lib/postgresql/data', readOnly: false }]);
  assert.equal(result.volumes.map((volume) => volume.name), ['pgdata']);
  assert.ok(result.warnings.some((warning) => warning.includes('services.web.build: is ignored')));
  const { before, after } = deployAndReplan(result);
  assert.equal(before.apps.map((app) => [app.name, app.action, app.start, app.stop]), [['web', 'create', 1, 0], ['db', 'create', 1, 0]]);
  assert.equal(after.apps.map((app) => [app.name, app.action, app.fromVersion]), [['web', 'unchanged', 1], ['db', 'unchanged', 1]]);
});

test('WordPress: secrets from files with underscores, their *_FILE variables follow; container_name is an alias', async () => {
  const result = await parsedOk('wordpress');
  const [db, wordpress] = result.apps;
  assert.equal(db?.command, ['--default-authentication-plugin=mysql_native_password']);
  assert.equal(db?.hivemind.secrets, ['db-root-password', 'db-password']);
  assert.is(db?.environment.MYSQL_PASSWORD_FILE, '/run/secrets/db-password');
  assert.is(wordpress?.environment.WORDPRESS_DB_PASSWORD_FILE, '/run/secrets/db-password');
  assert.equal(wordpress?.ports, [{ target: 80, published: 80, protocol: 'tcp' }]);
  assert.equal(result.secrets, [
    { tenant: 'default', name: 'db-root-password', value: 'root-pw\n' },
    { tenant: 'default', name: 'db-password', value: 'wordpress-pw\n' },
  ]);
  assert.equal(result.volumes.map((volume) => volume.name), ['db-data', 'wp-data']);
  const { before, after } = deployAndReplan(result);
  assert.equal(before.apps.map((app) => app.action), ['create', 'create']);
  assert.equal(after.apps.map((app) => app.action), ['unchanged', 'unchanged']);
});

test('worker with a queue: anchors, env_file, build, logging; init, hostname and ulimits applied; a profile leaves beat out', async () => {
  const result = await parsedOk('worker-queue');
  assert.is(result.project, 'thumbnails');
  assert.equal(result.apps.map((app) => [app.name, app.replicas]), [['web', 1], ['worker', 3], ['redis', 1]]);
  const worker = result.apps[1];
  assert.equal(worker?.command, ['celery', '-A', 'thumbs', 'worker', '--loglevel=info', '--concurrency=2']);
  assert.equal(worker?.environment, { DJANGO_SETTINGS_MODULE: 'thumbs.settings', THUMB_SIZES: '128,256,512', CELERY_BROKER_URL: 'redis://redis:6379/0' });
  assert.is(worker?.stopGraceMs, 60_000);
  for (const key of ['build', 'logging']) assert.ok(result.warnings.some((warning) => warning.includes(`.${key}: is ignored`)), key);
  for (const key of ['init', 'hostname', 'ulimits']) assert.not.ok(result.warnings.some((warning) => warning.includes(`.${key}:`)), key);
  assert.equal(worker?.container, { init: true });
  assert.equal(result.apps[2]?.container, { hostname: 'redis', ulimits: [{ name: 'nofile', soft: 65536, hard: 65536 }] });
  assert.ok(result.warnings.some((warning) => warning.includes('services.beat: is left out')));
  assert.equal((await parsedOk('worker-queue', { profiles: ['scheduler'] })).apps.map((app) => app.name), ['web', 'worker', 'beat', 'redis']);
  const { before, after } = deployAndReplan(result);
  assert.equal(before.apps.map((app) => app.start), [1, 3, 1]);
  assert.equal(after.apps.map((app) => app.action), ['unchanged', 'unchanged', 'unchanged']);
});

test('reverse proxy with TLS files: nginx.conf and certs/ are sent as configs and mounted read-only; tmpfs, cap_add and extra_hosts apply', async () => {
  const result = await parsedOk('reverse-proxy');
  const proxy = result.apps.find((app) => app.name === 'proxy');
  assert.equal(proxy?.configs?.map((config) => [config.source, config.target, config.files.map((file) => file.path)]), [
    ['./nginx.conf', '/etc/nginx/nginx.conf', ['']],
    ['./certs', '/etc/nginx/certs', ['site.crt', 'site.key']],
  ]);
  assert.equal(proxy?.volumes, []);
  assert.equal(proxy?.container, { tmpfs: [{ target: '/var/cache/nginx' }], capAdd: ['CAP_NET_BIND_SERVICE'] });
  assert.equal(result.apps.find((app) => app.name === 'app')?.container, { extraHosts: [{ host: 'host.docker.internal', address: 'host-gateway' }] });
  const { before, after } = deployAndReplan(result);
  assert.equal(before.apps.map((app) => app.action), ['create', 'create']);
  assert.equal(after.apps.map((app) => app.action), ['unchanged', 'unchanged']);
});

test('monitoring stack: node-exporter global, host paths read-only, a secret file for Grafana, prometheus.yml sent as a config', async () => {
  const result = await parsedOk('monitoring');
  assert.equal(result.globalServices, ['node-exporter']);
  const prometheus = result.apps.find((app) => app.name === 'prometheus');
  const written = readFileSync(new URL('monitoring/prometheus.yml', fixtures));
  assert.equal(prometheus?.configs, [{ source: './prometheus.yml', target: '/etc/prometheus/prometheus.yml', files: [{ path: '', data: written.toString('base64') }] }]);
  assert.equal(prometheus?.volumes, [{ source: 'prometheus-data', target: '/prometheus', readOnly: false }]);
  const exporter = result.apps.find((app) => app.name === 'node-exporter');
  assert.equal(exporter?.volumes, [
    { source: '/proc', target: '/host/proc', readOnly: true },
    { source: '/sys', target: '/host/sys', readOnly: true },
  ]);
  assert.is(exporter?.command?.[2], '--collector.filesystem.mount-points-exclude=^/(sys|proc|dev|host|etc)($|/)');
  assert.is(result.apps.find((app) => app.name === 'grafana')?.environment.GF_SECURITY_ADMIN_PASSWORD__FILE, '/run/secrets/grafana-admin-password');
  assert.equal(result.apps.find((app) => app.name === 'alertmanager')?.ports, [{ target: 9093, protocol: 'tcp' }]);
  const { before, after } = deployAndReplan(result, { hostMounts: true });
  assert.equal(before.apps.map((app) => app.action), ['create', 'create', 'create', 'create']);
  assert.equal(after.apps.map((app) => app.action), ['unchanged', 'unchanged', 'unchanged', 'unchanged']);
});

test.run();
