/**
 * The five Compose files of issue 20 (src/appfile/test/fixtures: web +
 * database, WordPress, a worker with a queue, a reverse proxy with TLS
 * files, a monitoring stack), each in its own folder as a user has it,
 * through `hivemind deploy --dry-run` against a real node: each plans
 * unchanged (its .env, env_file, secret files, config files and folders read
 * by the CLI and sent), says what it would create, and every warning is one
 * line naming the user's key; the monitoring stack's host paths are refused
 * in one line naming the key until the tenant may bind host paths. Then each is deployed for real with an
 * override that keeps its services off every node (their images cannot be
 * pulled here): apps, secrets and volumes are made, and a second deploy
 * changes nothing. chaos/test/compose-containers.test.ts runs one on
 * containerd.
 */
import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { startAgent, type AgentProcess } from './agent-process.js';
import { hasStackTrace, runCli, type CliResult } from './run-cli.js';

const FIXTURES = fileURLToPath(new URL('../../../../src/appfile/test/fixtures/', import.meta.url));
const scratch = mkdtempSync(join(tmpdir(), 'hivemind-compose-fixtures-'));
let agent: AgentProcess;

/** Each file deploys into a tenant of its own, named after its kind (two files may both name a service `web`). */
function dryRun(kind: string): Promise<CliResult> {
  return runCli(['--addr', agent.address, '--token', agent.token, 'deploy', '-f', 'docker-compose.yml', '--tenant', kind, '--dry-run'], { cwd: join(scratch, kind) });
}

test.before(async () => {
  cpSync(FIXTURES, scratch, { recursive: true });
  agent = await startAgent();
  for (const kind of Object.keys(expected)) {
    const created = await runCli(['--addr', agent.address, '--token', agent.token, 'tenants', 'create', kind]);
    assert.is(created.status, 0, created.stderr);
  }
});

test.after(async () => {
  await agent?.stop();
  rmSync(scratch, { recursive: true, force: true });
});

/** Each warning is one line, `warning: docker-compose.yml: <key path>: <why>`. */
function assertWarningsNameKeys(stderr: string): void {
  for (const line of stderr.split('\n').filter(Boolean)) assert.match(line, /^warning: docker-compose\.yml: (services|volumes|secrets|configs)(\.[\w.-]+|\[\d+\])*: \S/, line);
  assert.not.ok(hasStackTrace(stderr), stderr);
}

const expected: Record<string, { project: string; creates: RegExp[] }> = {
  'web-database': { project: 'web-database', creates: [/^\+ TENANT\/web: create version 1 with 1 replica/m, /^\+ TENANT\/db: create version 1/m, /^\+ volume TENANT\/pgdata: created$/m] },
  wordpress: { project: 'wordpress', creates: [/^\+ TENANT\/wordpress: create version 1/m, /^\+ secret TENANT\/db-root-password: created from the file$/m, /^\+ volume TENANT\/wp-data: created$/m] },
  'worker-queue': { project: 'thumbnails', creates: [/^\+ TENANT\/worker: create version 1 with 3 replicas/m, /^\+ TENANT\/redis: create version 1/m] },
  'reverse-proxy': { project: 'reverse-proxy', creates: [/^\+ TENANT\/proxy: create version 1/m, /^\+ TENANT\/app: create version 1/m] },
  monitoring: { project: 'monitoring', creates: [/^\+ TENANT\/node-exporter: create version 1/m, /^\+ secret TENANT\/grafana-admin-password: created from the file$/m, /^\+ volume TENANT\/prometheus-data: created$/m] },
};

for (const [kind, { project, creates }] of Object.entries(expected)) {
  test(`${kind}: deploy --dry-run plans the file as it is, warnings naming keys`, async () => {
    if (kind === 'monitoring') {
      // node-exporter binds the host's /proc and /sys: a tenant may only once a cluster-admin allows it; the dry run says so as the deploy would, in one line naming the key.
      const refused = await dryRun(kind);
      assert.is(refused.status, 1, refused.stdout + refused.stderr);
      assert.match(refused.stderr, /^hivemind: the deploy would be refused: services\.node-exporter\.volumes\[0\]: cannot deploy "node-exporter": host path "\/proc" cannot be mounted: tenant "monitoring" may not bind host paths; use a named volume, or a cluster-admin can allow it with `hivemind tenants update monitoring --host-mounts allow`; none of the 4 apps was deployed$/m, refused.stderr);
      const allowed = await runCli(['--addr', agent.address, '--token', agent.token, 'tenants', 'update', 'monitoring', '--host-mounts', 'allow']);
      assert.is(allowed.status, 0, allowed.stderr);
    }
    const planned = await dryRun(kind);
    assert.is(planned.status, 0, planned.stdout + planned.stderr);
    assert.match(planned.stdout, new RegExp(`^project ${project}$`, 'm'));
    for (const line of creates) assert.match(planned.stdout, new RegExp(line.source.replaceAll('TENANT', kind), line.flags));
    assert.match(planned.stdout, /^dry run: nothing was changed$/m);
    assertWarningsNameKeys(planned.stderr);
  });
}

test('the dry runs changed nothing', async () => {
  const apps = await runCli(['--addr', agent.address, '--token', agent.token, 'apps', '--json']);
  assert.is(apps.status, 0, apps.stderr);
  assert.equal((JSON.parse(apps.stdout) as { apps: unknown[] }).apps, []);
});

// Then each deployed for real, with the override a user writes to try a file where its images cannot run (every service kept off the
// nodes by a label none has, so nothing starts here): the apps, secrets and volumes are made, and the same files again change nothing.
for (const kind of Object.keys(expected)) {
  test(`${kind}: deployed with a hold-back override, then again unchanged`, async () => {
    const folder = join(scratch, kind);
    const services = [...(await dryRun(kind)).stdout.matchAll(/^\+ [a-z0-9-]+\/([a-z0-9-]+): create/gm)].map((match) => match[1]!);
    assert.ok(services.length > 0);
    const holdBack = ['services:', ...services.flatMap((service) => [`  ${service}:`, '    deploy:', '      placement:', '        constraints: ["node.labels.zone == nowhere"]'])].join('\n');
    writeFileSync(join(folder, 'hold-back.yml'), `${holdBack}\n`);
    const deploy = (): Promise<CliResult> => runCli(['--addr', agent.address, '--token', agent.token, 'deploy', '-f', 'docker-compose.yml', '-f', 'hold-back.yml', '--tenant', kind, '--detach'], { cwd: folder });
    const first = await deploy();
    assert.is(first.status, 0, first.stdout + first.stderr);
    assertWarningsNameKeys(first.stderr);
    const again = await deploy();
    assert.is(again.status, 0, again.stdout + again.stderr);
    for (const service of services) assert.match(again.stdout, new RegExp(`^${service}\\s+${kind}\\s+1\\s+\\d+\\s+unchanged$`, 'm'), again.stdout);
  });
}

test.run();
