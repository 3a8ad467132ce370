/**
 * A Compose file as people write it, deployed with the CLI on real
 * containerd: the WordPress fixture (src/appfile/test/fixtures/wordpress:
 * secrets from files with underscores, named volumes, container_name,
 * `expose`, `depends_on`), merged with an override file that swaps the
 * images for the locally built busybox (no registry is reachable here), as
 * a user would with `-f docker-compose.yml -f docker-compose.test.yml`.
 *
 * One network namespace as a host (the chaos harness's) runs a real agent
 * with its own containerd. Checked: both apps run, in project "wordpress"
 * (the folder); the secret files were created by the deploy and the
 * `*_FILE` variable points at the file Hivemind mounts (the wordpress
 * container serves the secret's value on its published port 80); the same
 * files again change nothing (no new version, the same instances);
 * `--dry-run` says so; another project's deploy of `db` is refused;
 * `hivemind exec -t` in the wordpress container runs on a terminal of the
 * CLI's size (script(1) gives the CLI one), `exec -it` runs a shell there
 * that reads what is typed, and `exec -i` feeds it piped input.
 *
 * Teardown, also on failure: the agent, the containers' processes and
 * namespaces, their runc state, mounts, the host's namespace and the data
 * folder. Needs root, iproute2, iptables, containerd, runc, the CNI plugins
 * and busybox; skipped otherwise, saying why.
 */
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { request } from 'undici';
import { buildBusyboxImage } from '../../src/executor/containerd/oci-layout.js';
import { netnsName } from '../../src/executor/containerd/network.js';
import { skipReason } from '../../src/executor/containerd/test/harness.js';
import { ApiClient, clusterCaBundle } from '../http.js';
import { dataDirApiAgent } from '../../src/api/tls.js';
import { missingPrerequisite, rangeInUse, removeLeftovers, TestNetwork } from '../network.js';
import { holdMachineLock } from '../machine-lock.js';
import { HostAgent, removeContainerLeftovers, removeRuncLeftovers, removeWarmNamespacesSince, until, warmNamespaces } from './host-agents.js';

const BIN = fileURLToPath(new URL('../../../bin/hivemind.js', import.meta.url));
const FIXTURE = fileURLToPath(new URL('../../../src/appfile/test/fixtures/wordpress/', import.meta.url));
/** The containers' main processes: unique, so the test finds them (and kills strays). */
const SLEEP_SECONDS = ['3641', '3642'];
const RUNC_APPS = [{ tenant: 'default', app: 'db' }, { tenant: 'default', app: 'wordpress' }];

const unavailable =
  (await missingPrerequisite()) ?? skipReason() ?? (existsSync('/usr/lib/cni/bridge') ? null : 'the CNI plugins are not installed (containernetworking-plugins)');
const composeTest = unavailable === null ? test : test.skip;
if (unavailable !== null) console.log(`skipping the Compose-on-containerd test: ${unavailable}`);

/** Detaches the loop devices of the deploy's volumes (files under `root`), which outlive their unmounted, deleted files. */
function detachLoopDevices(root: string): void {
  const listed = spawnSync('losetup', ['-a'], { encoding: 'utf8' }).stdout.split('\n');
  for (const line of listed) if (line.includes(root)) spawnSync('losetup', ['-d', line.slice(0, line.indexOf(':'))]);
}

interface CliRun {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the CLI in `cwd` against the agent, as a user would. */
function hivemind(args: readonly string[], settings: { cwd: string; origin: string; dataDir: string; token: string }): Promise<CliRun> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, '--addr', settings.origin, '--data-dir', settings.dataDir, '--token', settings.token, ...args], { cwd: settings.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

composeTest('the WordPress Compose file, with a test override, deploys on containerd: secrets from files, project, an unchanged redeploy, --dry-run, another project refused', async () => {
  const lock = await holdMachineLock((line) => console.log(line));
  const warmBefore = warmNamespaces();
  await removeLeftovers();
  removeRuncLeftovers(RUNC_APPS);
  const inUse = await rangeInUse();
  assert.is(inUse, null, `the test range is in use: ${inUse}`);
  const dataRoot = mkdtempSync(join(tmpdir(), 'hmcompose-'));
  const logDirectory = mkdtempSync(join(tmpdir(), 'hmcompose-logs-'));
  const work = mkdtempSync(join(tmpdir(), 'hmcompose-files-'));
  const token = `hmcompose.${randomBytes(16).toString('hex')}`;
  const client = new ApiClient({ token, connectTimeoutMs: 1000, requestTimeoutMs: 10_000, caBundle: () => clusterCaBundle([join(dataRoot, 'n1')]) });
  let network: TestNetwork | undefined;
  let agent: HostAgent | undefined;
  let passed = false;
  const namespaces = new Set<string>();
  try {
    network = await TestNetwork.create(1);
    const host = network.hosts[0]!;
    agent = new HostAgent(host, { token, dataRoot, logDirectory });
    agent.start('agent');
    const origin = agent.origin;
    await until('the agent serves', async () => ((await client.call(origin, 'GET', '/v1/health', undefined, 1000)).kind === 'answer' ? true : 'no answer'), 30_000);
    await until('the node is up with a subnet', async () => {
      const answer = await client.call(origin, 'GET', '/v1/nodes', undefined, 2000);
      if (answer.kind !== 'answer' || answer.status !== 200) return JSON.stringify(answer);
      const nodes = (answer.body as { nodes?: { status: string; subnet?: string }[] }).nodes ?? [];
      return nodes.some((node) => node.status === 'up' && node.subnet !== undefined) ? true : JSON.stringify(nodes);
    }, 60_000);

    const archive = join(dataRoot, 'busybox.tar');
    const image = await buildBusyboxImage({ outputPath: archive });
    const uploaded = await request(`${origin}/v1/images/upload`, { dispatcher: dataDirApiAgent(join(dataRoot, 'n1')), method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/x-tar' }, body: readFileSync(archive) });
    assert.is(uploaded.statusCode, 200, `image upload: ${await uploaded.body.text()}`);
    await uploaded.body.dump();

    // The fixture as it is, in a folder named wordpress (its project), with the override a user would write to try it locally.
    const folder = join(work, 'wordpress');
    cpSync(FIXTURE, folder, { recursive: true });
    writeFileSync(
      join(folder, 'docker-compose.test.yml'),
      [
        'services:',
        '  db:',
        `    image: ${image.name}`,
        `    command: ["sleep", "${SLEEP_SECONDS[0]}"]`,
        '    stop_grace_period: 1s',
        '  wordpress:',
        `    image: ${image.name}`,
        '    entrypoint: ["sh", "-c"]',
        `    command: ['mkdir -p /www && cp "$$WORDPRESS_DB_PASSWORD_FILE" /www/index.html && httpd -p 80 -h /www && exec sleep ${SLEEP_SECONDS[1]}']`,
        '    stop_grace_period: 1s',
        '',
      ].join('\n'),
    );
    const cli = (args: readonly string[]): Promise<CliRun> => hivemind(args, { cwd: folder, origin, dataDir: join(dataRoot, 'n1'), token });
    const files = ['-f', 'docker-compose.yml', '-f', 'docker-compose.test.yml'];

    const deployed = await cli(['deploy', ...files, '--timeout', '3m']);
    // Noted first, so the teardown finds their namespaces whatever fails next.
    const listed = await client.call(origin, 'GET', '/v1/instances', undefined, 5000);
    if (listed.kind === 'answer') for (const instance of (listed.body as { instances?: { id: string }[] }).instances ?? []) namespaces.add(netnsName(instance.id));
    assert.is(deployed.status, 0, `deploy: ${deployed.stdout}\n${deployed.stderr}`);
    assert.match(deployed.stdout, /^project wordpress$/m);
    assert.match(deployed.stderr, /secrets\.db_password: is named "db-password"/);

    const served = await until('the wordpress container serves the secret read through WORDPRESS_DB_PASSWORD_FILE on port 80', async () => {
      try {
        const response = await request(`http://${host.address}:80/`, { headersTimeout: 2000, bodyTimeout: 2000 });
        const text = await response.body.text();
        return response.statusCode === 200 ? { text } : `status ${response.statusCode}`;
      } catch (error) {
        return String(error);
      }
    }, 60_000);
    assert.is(served.text, 'wordpress-pw\n');

    const ps = await cli(['ps', '-p', 'wordpress']);
    assert.is(ps.status, 0, ps.stderr);
    assert.match(ps.stdout, /^default\.db\.0\.\d+\s+default\/db\s+wordpress\s+1\s+n1\s+running/m);
    assert.match(ps.stdout, /^default\.wordpress\.0\.\d+\s+default\/wordpress\s+wordpress\s+1\s+n1\s+running/m);
    const before = ps.stdout.match(/^default\.\S+/gm);
    for (const id of before ?? []) namespaces.add(netnsName(id));

    // exec into the running container, as a user would: -t on a real terminal (script(1) gives the CLI one of 91x27), -i with piped input.
    const wordpressId = /^(default\.wordpress\.0\.\d+)/m.exec(ps.stdout)![1]!;
    const cliLine = [process.execPath, BIN, '--addr', origin, '--data-dir', join(dataRoot, 'n1'), '--token', token].map((word) => `'${word}'`).join(' ');
    const onTerminal = spawnSync('script', ['-qec', `stty cols 91 rows 27; exec ${cliLine} exec -t ${wordpressId} -- sh -c 'busybox tty; busybox stty size; exit 4'`, '/dev/null'], { cwd: folder, input: '', encoding: 'utf8', timeout: 60_000 });
    assert.is(onTerminal.status, 4, onTerminal.stdout + onTerminal.stderr);
    // Two terminals on the way (the container's, then script's) each turn a newline into CR LF.
    assert.match(onTerminal.stdout, /\/dev\/pts\/\d+\r*\n27 91\r*\n/, JSON.stringify(onTerminal.stdout));
    // -it: the CLI's terminal in raw mode, the keys typed (through script's terminal) reach a shell on the container's; only running the line prints 42.
    const interactive = spawnSync('script', ['-qec', `exec ${cliLine} exec -it ${wordpressId} -- sh`, '/dev/null'], { cwd: folder, input: 'echo "it $((6*7))"; exit 3\r', encoding: 'utf8', timeout: 60_000 });
    assert.is(interactive.status, 3, JSON.stringify(interactive.stdout + interactive.stderr));
    assert.match(interactive.stdout, /it 42\r*\n/, JSON.stringify(interactive.stdout));
    const piped = spawnSync(process.execPath, [BIN, '--addr', origin, '--data-dir', join(dataRoot, 'n1'), '--token', token, 'exec', '-i', wordpressId, '--', 'cat'], { cwd: folder, input: 'through the container\n', encoding: 'utf8', timeout: 60_000 });
    assert.is(piped.status, 0, piped.stderr);
    assert.is(piped.stdout, 'through the container\n');

    const again = await cli(['deploy', ...files]);
    assert.is(again.status, 0, again.stderr);
    assert.match(again.stdout, /^db\s+default\s+1\s+1\s+unchanged$/m);
    assert.match(again.stdout, /^wordpress\s+default\s+1\s+1\s+unchanged$/m);
    const dryRun = await cli(['deploy', ...files, '--dry-run']);
    assert.is(dryRun.status, 0, dryRun.stderr);
    assert.match(dryRun.stdout, /^= default\/db: unchanged at version 1$/m);
    assert.match(dryRun.stdout, /^nothing to change$/m);
    const changed = await cli(['deploy', ...files, '--dry-run', '--set', 'db.environment.MYSQL_DATABASE=blog']);
    assert.match(changed.stdout, /^~ default\/db: version 1 → 2, rolling update \(start 1, stop 1 instance\)$/m);
    assert.match(changed.stdout, /^ {4}environment \(~MYSQL_DATABASE\)$/m);
    const after = await cli(['ps', '-p', 'wordpress']);
    assert.equal(after.stdout.match(/^default\.\S+/gm), before, 'the same instances: nothing restarted');

    const other = await cli(['deploy', ...files, '-p', 'other']);
    assert.is(other.status, 1);
    assert.match(other.stderr, /app "db" of tenant "default" belongs to project "wordpress", not "other"/);
    passed = true;
  } finally {
    if (passed) rmSync(logDirectory, { recursive: true, force: true });
    else console.log(`the agent's log is kept in ${logDirectory}`);
    await agent?.stop().catch(() => undefined);
    await client.close();
    removeContainerLeftovers(dataRoot, namespaces, SLEEP_SECONDS);
    detachLoopDevices(dataRoot);
    removeRuncLeftovers(RUNC_APPS);
    rmSync(work, { recursive: true, force: true });
    await network?.destroy().catch(() => undefined);
    removeWarmNamespacesSince(warmBefore);
    await removeLeftovers();
    lock.release();
  }
});

test.run();
