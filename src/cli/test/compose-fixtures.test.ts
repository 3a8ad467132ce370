/**
 * The five Compose files of issue 20 (src/appfile/test/fixtures: web +
 * database, WordPress, a worker with a queue, a reverse proxy with TLS
 * files, a monitoring stack), each in its own folder as a user has it,
 * through `hivemind deploy --dry-run` against a real node: each plans
 * unchanged (its .env, env_file, secret files, config files and folders read
 * by the CLI and sent), says what it would create, and every warning is one
 * line naming the user's key. Their images cannot be pulled here, so the
 * plan is the check; chaos/test/compose-containers.test.ts runs one on
 * containerd.
 */
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
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

function dryRun(kind: string): Promise<CliResult> {
  return runCli(['--addr', agent.address, '--token', agent.token, 'deploy', '-f', 'docker-compose.yml', '--dry-run'], { cwd: join(scratch, kind) });
}

test.before(async () => {
  cpSync(FIXTURES, scratch, { recursive: true });
  agent = await startAgent();
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
  'web-database': { project: 'web-database', creates: [/^\+ default\/web: create version 1 with 1 replica/m, /^\+ default\/db: create version 1/m, /^\+ volume default\/pgdata: created$/m] },
  wordpress: { project: 'wordpress', creates: [/^\+ default\/wordpress: create version 1/m, /^\+ secret default\/db-root-password: created from the file$/m, /^\+ volume default\/wp-data: created$/m] },
  'worker-queue': { project: 'thumbnails', creates: [/^\+ default\/worker: create version 1 with 3 replicas/m, /^\+ default\/redis: create version 1/m] },
  'reverse-proxy': { project: 'reverse-proxy', creates: [/^\+ default\/proxy: create version 1/m, /^\+ default\/app: create version 1/m] },
  monitoring: { project: 'monitoring', creates: [/^\+ default\/node-exporter: create version 1/m, /^\+ secret default\/grafana-admin-password: created from the file$/m, /^\+ volume default\/prometheus-data: created$/m] },
};

for (const [kind, { project, creates }] of Object.entries(expected)) {
  test(`${kind}: deploy --dry-run plans the file as it is, warnings naming keys`, async () => {
    const planned = await dryRun(kind);
    assert.is(planned.status, 0, planned.stdout + planned.stderr);
    assert.match(planned.stdout, new RegExp(`^project ${project}$`, 'm'));
    for (const line of creates) assert.match(planned.stdout, line);
    assert.match(planned.stdout, /^dry run: nothing was changed$/m);
    assertWarningsNameKeys(planned.stderr);
  });
}

test('the dry runs changed nothing', async () => {
  const apps = await runCli(['--addr', agent.address, '--token', agent.token, 'apps', '--json']);
  assert.is(apps.status, 0, apps.stderr);
  assert.equal((JSON.parse(apps.stdout) as { apps: unknown[] }).apps, []);
});

test.run();
