/**
 * The CLI end to end against a real node that the CLI itself started
 * (`hivemind agent`): every command a user runs on a fresh cluster, checked
 * through `--json`, plus the human output where it matters (app file errors,
 * progress, refusals). Commands get the token the new cluster printed; one
 * test checks that the token file in the data directory serves as well.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { startAgent, type AgentProcess } from './agent-process.js';
import { certificateFingerprint, createClusterCa } from '../../security/certificates.js';
import { parseJoinToken } from '../../security/pinned-token.js';
import { BIN, ROOT, cleanEnv, hasStackTrace, runCli, type CliResult, type RunOptions } from './run-cli.js';

let agent: AgentProcess;
const scratch = mkdtempSync(join(tmpdir(), 'hivemind-cli-e2e-'));

test.before(async () => {
  agent = await startAgent();
});

test.after(async () => {
  await agent?.stop();
  rmSync(scratch, { recursive: true, force: true });
});

/** Runs the CLI against the node, with the token it printed. */
function hm(args: string[], options: RunOptions = {}): Promise<CliResult> {
  return runCli(['--addr', agent.address, '--token', agent.token, ...args], options);
}

/** Runs the CLI with `--json`, expects exit 0, and parses stdout. */
async function hmJson<T>(args: string[], options: RunOptions = {}): Promise<T> {
  const result = await hm([...args, '--json'], options);
  assert.is(result.status, 0, `hivemind ${args.join(' ')} --json exited ${result.status}: ${result.stderr}`);
  return JSON.parse(result.stdout) as T;
}

function file(name: string, text: string): string {
  const path = join(scratch, name);
  writeFileSync(path, text);
  return path;
}

/** No node has the label, so no scheduler can place these instances: they stay `pending`, whatever else runs. */
const goodApp = `services:
  web:
    command: ["sleep", "1000"]
    deploy:
      replicas: 2
      resources:
        limits: { cpus: "0.5", memory: 128M }
      placement:
        constraints: ["node.labels.zone == nowhere"]
`;

test('status and nodes show the one node, leading', async () => {
  const status = await hmJson<{ node: string; role: string; leader: string; voters: string[] }>(['status']);
  assert.is(status.node, agent.name);
  assert.is(status.leader, agent.name);
  assert.equal(status.voters, [agent.name]);
  const people = await hm(['status']);
  assert.is(people.status, 0);
  assert.match(people.stdout, new RegExp(`^node:\\s+${agent.name}$`, 'm'));
  const nodes = await hmJson<{ nodes: { id: string; status: string }[] }>(['nodes']);
  assert.equal(nodes.nodes.map((node) => node.id), [agent.name]);
  const table = await hm(['nodes']);
  assert.match(table.stdout, /^ID\s+STATUS\s+ROLE/m);
});

test('token: read from the data directory; a wrong token is refused in one line', async () => {
  const token = await runCli(['--addr', agent.address, '--data-dir', agent.dataDir, 'token']);
  assert.is(token.status, 0, token.stderr);
  assert.is(token.stdout, `${agent.token}\n`);
  const viaEnv = await runCli(['status', '--json'], { env: { HIVEMIND_ADDR: agent.address, HIVEMIND_TOKEN: agent.token } });
  assert.is(viaEnv.status, 0, viaEnv.stderr);
  const ca = join(agent.dataDir, 'tls', 'ca.crt');
  const wrong = await runCli(['--addr', agent.address, '--ca', ca, '--token', 'hm1.wrong-wrong-wrong', 'status']);
  assert.is(wrong.status, 1);
  assert.match(wrong.stderr, /^hivemind: .*\(the token came from --token or HIVEMIND_TOKEN; pass --token or set HIVEMIND_TOKEN\)\n$/);
  const none = await runCli(['--addr', agent.address, '--ca', ca, '--data-dir', join(scratch, 'no-such-dir'), 'apps']);
  assert.is(none.status, 1);
  assert.match(none.stderr, /none found at .*no-such-dir\/token/);
});

test('TLS: the CLI on a node needs no flag (token and CA from ./.hivemind)', async () => {
  // What the README's `npx hivemind ps` does where the agent runs; only the port differs from the default, so HIVEMIND_ADDR says it.
  const workdir = join(scratch, 'on-the-node');
  mkdirSync(workdir);
  symlinkSync(agent.dataDir, join(workdir, '.hivemind'));
  const result = await runCli(['nodes'], { cwd: workdir, env: { HIVEMIND_ADDR: agent.address.replace('https://', '') } });
  assert.is(result.status, 0, result.stderr);
  assert.match(result.stdout, new RegExp(`^${agent.name}\\s`, 'm'));
});

test('TLS: a pinned token alone is enough; a wrong pin is refused naming both fingerprints; no CA at all says what to give', async () => {
  const { token: bare, caFingerprint } = parseJoinToken(agent.token);
  assert.is(caFingerprint, certificateFingerprint(readFileSync(join(agent.dataDir, 'tls', 'ca.crt'), 'utf8')));
  const nowhere = join(scratch, 'no-data-dir');
  const pinned = await runCli(['--addr', agent.address, '--data-dir', nowhere, '--token', agent.token, 'status', '--json']);
  assert.is(pinned.status, 0, pinned.stderr);
  const wrongPin = `hmca:${'ab'.repeat(32)}::${bare}`;
  const refused = await runCli(['--addr', agent.address, '--data-dir', nowhere, '--token', wrongPin, 'status']);
  assert.is(refused.status, 1);
  assert.is(refused.stdout, '');
  assert.match(refused.stderr, `its cluster CA (sha256 ${caFingerprint}) is not the one the token pins (sha256 ${'ab'.repeat(32)})`);
  assert.is(refused.stderr.trimEnd().split('\n').length, 1, refused.stderr);
  const unverifiable = await runCli(['--addr', agent.address, '--data-dir', nowhere, '--token', bare, 'status']);
  assert.is(unverifiable.status, 1);
  assert.match(unverifiable.stderr, /^hivemind: cannot verify the node at https:\/\/127\.0\.0\.1:\d+ \(.*\): no CA certificate to trust\. Pass --ca FILE/);
  const otherCa = file('other-ca.crt', (await createClusterCa({ now: Date.now() })).certificatePem);
  const untrusted = await runCli(['--addr', agent.address, '--ca', otherCa, '--token', bare, 'status']);
  assert.is(untrusted.status, 1);
  assert.match(untrusted.stderr, /^hivemind: cannot trust the node at https:\/\/127\.0\.0\.1:\d+: .*other-ca\.crt/);
  assert.not.ok(hasStackTrace(untrusted.stderr), untrusted.stderr);
});

test('tenants: create with quota, refuse a second create, update one limit, list', async () => {
  const created = await hm(['tenants', 'create', 'acme', '--cpu', '2', '--memory', '4G', '--instances', '10']);
  assert.is(created.status, 0, created.stderr);
  const again = await hm(['tenants', 'create', 'acme']);
  assert.is(again.status, 1);
  assert.match(again.stderr, /^hivemind: tenant "acme" already exists/);
  const updated = await hm(['tenants', 'update', 'acme', '--memory', '8G', '--instances', 'unlimited']);
  assert.is(updated.status, 0, updated.stderr);
  const list = await hmJson<{ tenants: { name: string; quota: Record<string, number> }[] }>(['tenants']);
  const acme = list.tenants.find((tenant) => tenant.name === 'acme');
  assert.equal(acme?.quota, { cpuMillis: 2000, memoryBytes: 8 * 1024 ** 3 });
  const table = await hm(['tenants']);
  assert.match(table.stdout, /^acme\s+0 \/ -\s+0 \/ -\s+0 cores \/ 2 cores\s+0 B \/ 8 GiB/m);
});

test('deploy, apps, app, scale, rollback, delete', async () => {
  const appFile = file('app.yaml', goodApp);
  const deployed = await hmJson<{ apps: { tenant: string; name: string; version: number; replicas: number }[] }>(['deploy', '-f', appFile, '--tenant', 'acme']);
  assert.equal(deployed.apps, [{ tenant: 'acme', name: 'web', version: 1, replicas: 2 }]);

  // The same file again changes nothing; a --set value makes version 2.
  const same = await hm(['deploy', '-f', appFile, '--tenant', 'acme', '--detach']);
  assert.is(same.status, 0, same.stderr);
  assert.match(same.stdout, /^web\s+acme\s+1\s+2\s+unchanged$/m);
  const table = await hm(['deploy', '-f', appFile, '--tenant', 'acme', '--detach', '--set', 'web.environment.CHANGED=1']);
  assert.is(table.status, 0, table.stderr);
  assert.match(table.stdout, /^project \S+\n/);
  assert.match(table.stdout, /^web\s+acme\s+2\s+2\s+(rolling out|deployed)$/m);

  const apps = await hmJson<{ apps: { name: string; version: number; project: string }[] }>(['apps', '--tenant', 'acme']);
  assert.equal(apps.apps.map((app) => [app.name, app.version]), [['web', 2]]);
  const appsTable = await hm(['apps']);
  assert.match(appsTable.stdout, new RegExp(`^web\\s+acme\\s+${apps.apps[0]?.project}\\s+2\\s+0/2\\s+sleep 1000$`, 'm'));
  const otherProject = await hm(['deploy', '-f', appFile, '--tenant', 'acme', '-p', 'other', '--detach']);
  assert.is(otherProject.status, 1);
  assert.match(otherProject.stderr, /belongs to project "\S+", not "other"; .*--force/);

  const app = await hmJson<{ name: string; version: number; versions: unknown[]; instances: { id: string }[] }>(['app', 'acme/web']);
  assert.is(app.version, 2);
  assert.is(app.versions.length, 2);
  // Ids carry a serial (tenant.app.slot.serial); the scheduler may already be rolling version 2 out beside version 1.
  assert.ok(app.instances.length >= 2 && app.instances.every((instance) => /^acme\.web\.[01]\.\d+$/.test(instance.id)), JSON.stringify(app.instances));
  const shown = await hm(['app', 'web', '--tenant', 'acme']);
  assert.is(shown.status, 0, shown.stderr);
  assert.match(shown.stdout, /^app:\s+acme\/web$/m);
  assert.match(shown.stdout, /^acme\.web\.1\.\d+\s+[12]\s+.*pending/m);

  const scaled = await hmJson<{ replicas: number }>(['scale', 'acme/web', '3']);
  assert.is(scaled.replicas, 3);
  const overQuota = await hm(['scale', 'acme/web', '5']);
  assert.is(overQuota.status, 1);
  assert.match(overQuota.stderr, /^hivemind: (replicas: )?cannot .*"web".*cpu.*\n$/i);

  const rolledBack = await hmJson<{ version: number }>(['rollback', 'acme/web', '--to', '1']);
  assert.is(rolledBack.version, 3);
  const missing = await hm(['app', 'nope', '--tenant', 'acme']);
  assert.is(missing.status, 1);
  assert.match(missing.stderr, /^hivemind: name: tenant "acme" has no app "nope"\n$/);

  const deleted = await hm(['delete', 'acme/web']);
  assert.is(deleted.status, 0, deleted.stderr);
  assert.is(deleted.stdout, 'app acme/web deleted\n');
});

test('deploy --wait shows progress and gives up at --timeout while the instances cannot be placed', async () => {
  const appFile = file('wait.yaml', goodApp.replace('web:', 'worker:'));
  const result = await hm(['deploy', '-f', appFile, '--wait', '--timeout', '2s']);
  assert.is(result.status, 1);
  assert.match(result.stderr, /^worker: 0\/2 running \(2 (not placed|pending)\)$/m);
  assert.match(result.stderr, /^hivemind: gave up waiting after 2s: worker: 0\/2 running \(2 (not placed|pending)\)\. The deploy itself is committed\./m);
  const detached = await hm(['deploy', '-f', appFile, '--detach']);
  assert.is(detached.status, 0, detached.stderr);
});

test('a bad app file: every error on its own line as file: path: message, nothing deployed', async () => {
  const bad = file('bad.yaml', 'services:\n  web:\n    command: ["true"]\n    deploy:\n      replicas: three\n    ports: ["http"]\n');
  const result = await hm(['deploy', '-f', bad]);
  assert.is(result.status, 1);
  const lines = result.stderr.trimEnd().split('\n');
  assert.match(lines[0]!, /^hivemind: cannot deploy bad\.yaml: 2 errors in the file; nothing was deployed$/);
  assert.match(lines[1]!, /^bad\.yaml: services\.web\.deploy\.replicas: /);
  assert.match(lines[2]!, /^bad\.yaml: services\.web\.ports\[0\]: /);
  assert.is(lines.length, 3);
  const apps = await hmJson<{ apps: unknown[] }>(['apps', '--tenant', 'default']);
  assert.not.ok(JSON.stringify(apps).includes('"bad'));
});

test('kv: put, get, compare-and-set, list, delete', async () => {
  const put = await hmJson<{ key: string; version: number }>(['kv', 'put', 'app/web/color', 'blue']);
  assert.is(put.key, 'app/web/color');
  const get = await hm(['kv', 'get', 'app/web/color']);
  assert.is(get.stdout, 'blue\n');
  const stale = await hm(['kv', 'put', 'app/web/color', 'green', '--cas', String(put.version - 1)]);
  assert.is(stale.status, 1);
  assert.match(stale.stderr, /^hivemind: .*version/);
  const cas = await hmJson<{ version: number }>(['kv', 'put', 'app/web/color', 'green', '--cas', String(put.version)]);
  assert.ok(cas.version > put.version);
  const fromStdin = await hm(['kv', 'put', 'app/web/motd'], { input: 'hello\nworld' });
  assert.is(fromStdin.status, 0, fromStdin.stderr);
  const list = await hmJson<{ entries: { key: string; value: string }[] }>(['kv', 'list', 'app/web/']);
  assert.equal(list.entries.map((entry) => [entry.key, entry.value]), [['app/web/color', 'green'], ['app/web/motd', 'hello\nworld']]);
  const deleted = await hm(['kv', 'delete', 'app/web/color']);
  assert.is(deleted.status, 0, deleted.stderr);
  const gone = await hm(['kv', 'get', 'app/web/color']);
  assert.is(gone.status, 1);
  assert.match(gone.stderr, /^hivemind: key: key "app\/web\/color" does not exist\n$/);
});

test('secrets: set from stdin and --value, list names without values, delete', async () => {
  const fromStdin = await hm(['secrets', 'set', 'acme/db-password'], { input: 's3cret' });
  assert.is(fromStdin.status, 0, fromStdin.stderr);
  assert.match(fromStdin.stdout, /^secret acme\/db-password set \(version 1\)\n$/);
  const replaced = await hmJson<{ version: number }>(['secrets', 'set', 'db-password', '--tenant', 'acme', '--value', 'other']);
  assert.is(replaced.version, 2);
  const list = await hm(['secrets', '--tenant', 'acme', '--json']);
  assert.is(list.status, 0, list.stderr);
  assert.not.ok(list.stdout.includes('s3cret') || list.stdout.includes('other'));
  const parsed = JSON.parse(list.stdout) as { secrets: { name: string; version: number }[] };
  assert.equal(parsed.secrets.map((secret) => [secret.name, secret.version]), [['db-password', 2]]);
  const deleted = await hm(['secrets', 'delete', 'acme/db-password']);
  assert.is(deleted.status, 0, deleted.stderr);
});

test('volumes and policies', async () => {
  const volume = await hm(['volumes', 'create', 'acme/data', '--size', '1G']);
  assert.is(volume.status, 0, volume.stderr);
  const volumes = await hmJson<{ volumes: { name: string; sizeBytes: number }[] }>(['volumes', '--tenant', 'acme']);
  assert.equal(volumes.volumes.map((each) => [each.name, each.sizeBytes]), [['data', 1024 ** 3]]);
  const policyFile = file('policy.yaml', 'name: web-from-api\ntenant: acme\napps: [web]\ningress:\n  - fromApps: [api]\n    ports: [80]\n');
  const applied = await hm(['policies', 'apply', '-f', policyFile]);
  assert.is(applied.status, 0, applied.stderr);
  assert.is(applied.stdout, 'policy acme/web-from-api applied\n');
  const policies = await hmJson<{ policies: { name: string; apps: string[] }[] }>(['policies', '--tenant', 'acme']);
  assert.equal(policies.policies.map((policy) => [policy.name, policy.apps]), [['web-from-api', ['web']]]);
  const badPolicy = file('bad-policy.yaml', 'name: Bad\n');
  const refused = await hm(['policies', 'apply', '-f', badPolicy]);
  assert.is(refused.status, 1);
  assert.match(refused.stderr, /^hivemind: bad-policy\.yaml: policies\[0\]\.name: must be a name/);
  assert.is((await hm(['policies', 'delete', 'acme/web-from-api'])).status, 0);
  assert.is((await hm(['volumes', 'rm', 'acme/data'])).status, 0);
});

test('history lists the changes, newest first', async () => {
  const history = await hmJson<{ history: { index: number; command: string; target: string; actor: string }[] }>(['history', '--limit', '100']);
  const commands = history.history.map((entry) => entry.command);
  assert.ok(commands.includes('tenant.create'), commands.join(' '));
  assert.ok(commands.includes('app.deploy-many'), commands.join(' '));
  assert.ok(commands.includes('kv.put'));
  const indexes = history.history.map((entry) => entry.index);
  assert.equal(indexes, [...indexes].sort((a, b) => b - a));
  const short = await hmJson<{ history: unknown[] }>(['history', '-n', '2']);
  assert.is(short.history.length, 2);
  const table = await hm(['history', '--limit', '3']);
  assert.match(table.stdout, /^INDEX\s+TIME\s+ACTOR\s+COMMAND\s+TARGET\s+SUMMARY$/m);
});

test('--watch --json prints a line per change, woken by a blocking query', async () => {
  const child = spawn(process.execPath, [BIN, '--addr', agent.address, '--token', agent.token, 'kv', 'get', 'watched', '--watch', '--json'], {
    cwd: ROOT,
    env: cleanEnv(),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  child.stdout.setEncoding('utf8').on('data', (text: string) => (stdout += text));
  const exited = new Promise((resolve) => child.on('exit', resolve));
  try {
    assert.is((await hm(['kv', 'put', 'watched', 'one'])).status, 0);
    // The watcher may have started before or after the first write; wait for it to show 'one', then change it.
    await until(() => stdout.includes('"one"'));
    const started = Date.now();
    assert.is((await hm(['kv', 'put', 'watched', 'two'])).status, 0);
    await until(() => stdout.includes('"two"'));
    assert.ok(Date.now() - started < 5000, 'the change arrived through the blocking query, not a poll');
    // One line per change; `null` first if the watcher started before the key existed.
    const values = stdout.trim().split('\n').map((line) => (JSON.parse(line) as { value: string } | null)?.value ?? null);
    assert.equal(values.filter((value) => value !== null), ['one', 'two']);
    assert.ok(values.length <= 3, values.join(' '));
  } finally {
    child.kill('SIGINT');
    await exited;
  }
});

test('no stack trace reaches the user on any refusal', async () => {
  for (const args of [['app', 'ghost'], ['tenants', 'delete', 'default'], ['kv', 'get', 'ghost'], ['leave', 'ghost']]) {
    const result = await hm(args);
    assert.is(result.status, 1, `${args.join(' ')}: ${result.stderr}`);
    assert.is(result.stderr.trimEnd().split('\n').length, 1, result.stderr);
    assert.not.ok(hasStackTrace(result.stderr), result.stderr);
  }
});

test('tokens create, ls, revoke; a deployer refused a cluster-admin command; audit shows it', async () => {
  const ca = join(agent.dataDir, 'tls', 'ca.crt');
  const created = await hm(['tokens', 'create', '--name', 'ci', '--role', 'deployer', '--tenant', 'acme', '--expires', '30d']);
  assert.is(created.status, 0, created.stderr);
  const [summary, ciToken] = created.stdout.trim().split('\n');
  assert.match(summary!, /^token [0-9a-f]{12} "ci": deployer in acme, expires \d{4}-/);
  assert.match(ciToken!, /^hma1\.\S+$/);
  const id = summary!.split(' ')[1]!;
  const listed = await hmJson<{ tokens: { id: string; name: string; role: string; tenants: string[] }[] }>(['tokens', 'ls']);
  assert.ok(listed.tokens.some((token) => token.id === id && token.name === 'ci' && token.role === 'deployer' && token.tenants.join() === 'acme'));
  const asCi = (args: string[]) => runCli(['--addr', agent.address, '--ca', ca, '--token', ciToken!, ...args]);
  assert.is((await asCi(['apps', '--tenant', 'acme'])).status, 0);
  const refused = await asCi(['tenants', 'delete', 'acme']);
  assert.is(refused.status, 1);
  assert.match(refused.stderr, /^hivemind: DELETE \/v1\/tenants\/:name needs the role cluster-admin; the token "ci" \([0-9a-f]{12}\) is deployer in acme/);
  assert.not.ok(hasStackTrace(refused.stderr));
  const audit = await hmJson<{ events: { user: { username: string }; annotations: Record<string, string>; responseStatus: { code: number } }[] }>(['audit', '--user', 'ci', '--since', '1h']);
  assert.ok(audit.events.some((event) => event.user.username === 'ci' && event.annotations['hivemind/outcome'] === 'refused' && event.responseStatus.code === 403));
  const table = await hm(['audit', '--user', 'ci']);
  assert.match(table.stdout, /ci\s+127\.0\.0\.1\s+DELETE \/v1\/tenants\/acme\s+acme\s+refused 403/, table.stdout + table.stderr);
  const badRole = await hm(['tokens', 'create', '--name', 'x', '--role', 'deployer']);
  assert.is(badRole.status, 2);
  assert.match(badRole.stderr, /needs --tenant/);
  assert.is((await hm(['tokens', 'revoke', id])).status, 0);
  const gone = await asCi(['status']);
  assert.is(gone.status, 1);
  assert.match(gone.stderr, /revoked/);
});

test('token --rotate: the old token stops working, the new one and the token file work', async () => {
  const rotated = await runCli(['--addr', agent.address, '--data-dir', agent.dataDir, 'token', '--rotate']);
  assert.is(rotated.status, 0, rotated.stderr);
  const fresh = rotated.stdout.trim();
  assert.match(fresh, /^hmca:[0-9a-f]{64}::hm1\.\S+$/);
  assert.is.not(fresh, agent.token);
  assert.match(rotated.stderr, /the old token no longer works/);
  const old = await hm(['status']);
  assert.is(old.status, 1);
  assert.match(old.stderr, /^hivemind: .*token/);
  agent = { ...agent, token: fresh };
  assert.is((await hm(['status'])).status, 0);
  // The agent rewrites its token file shortly after the rotation applies.
  let viaFile = await runCli(['--addr', agent.address, '--data-dir', agent.dataDir, 'status']);
  for (let attempt = 0; viaFile.status !== 0 && attempt < 50; attempt++) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    viaFile = await runCli(['--addr', agent.address, '--data-dir', agent.dataDir, 'status']);
  }
  assert.is(viaFile.status, 0, viaFile.stderr);
});

async function until(condition: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('timed out waiting for a condition');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

test('deploy follows a rolling update: a version that fails its health check rolls back and the command exits 1', async () => {
  const app = (exitCode: number) => `services:
  roll:
    command: ["sleep", "1000"]
    healthcheck:
      test: ["CMD", "sh", "-c", "exit ${exitCode}"]
      interval: 200ms
      timeout: 1s
      retries: 1
    deploy:
      replicas: 1
      update_config: { parallelism: 1, order: start-first, monitor: 500ms, failure_action: rollback }
`;
  const first = await hm(['deploy', '-f', file('roll-1.yaml', app(0)), '--timeout', '60s']);
  assert.is(first.status, 0, first.stderr);
  assert.match(first.stderr, /roll: 1\/1 running/);
  const second = await hm(['deploy', '-f', file('roll-2.yaml', app(1)), '--timeout', '90s']);
  assert.is(second.status, 1, `a failed update exits 1: ${second.stdout} ${second.stderr}`);
  assert.match(second.stdout, /roll: version 2 failed/);
  assert.match(second.stderr, /the update of roll did not complete/);
  const shown = await hmJson<{ version: number }>(['app', 'roll']);
  assert.is(shown.version, 1, 'the app is back at version 1');
});

test.run();
