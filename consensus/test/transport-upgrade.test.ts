// A rolling upgrade across the change that took the peer Stream out of
// grpc-js (consensus/transport/batch-stream.ts): three key-value servers of
// the previous release over mutual TLS, upgraded one at a time to this
// build. While the cluster is mixed, its only quorum is one member of each
// build (the other old one stopped), so every Put commits only if this
// build's sender is heard by grpc-js's server and grpc-js's sender by this
// build's server (an Append one way, its acknowledgement the other). Every
// member must hold every acknowledged Put at the end.
//
// The previous release is built from git (the parent of the commit that
// brought batch-stream.ts's path into server.ts) into a temporary folder
// kept for later runs, about a minute the first time; or
// HIVEMIND_PREVIOUS_BUILD names a built checkout.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BenchCertificates } from '../../bench/tls.js';
import { KvCluster } from './fixtures/kv-cluster.js';

const repositoryRoot = resolve(fileURLToPath(new URL('../../..', import.meta.url)));

/**
 * The previous release's server script, built from git when
 * HIVEMIND_PREVIOUS_BUILD names none; or why there is none: a checkout
 * without the history (a shallow clone) cannot build it.
 */
function previousServer(): { server: string } | { missing: string } {
  const given = process.env.HIVEMIND_PREVIOUS_BUILD;
  if (given !== undefined) return { server: join(given, 'dist/consensus/server/main.js') };
  const git = (...args: string[]): string => execFileSync('git', args, { cwd: repositoryRoot, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  let commit: string;
  try {
    if (git('rev-parse', '--is-shallow-repository') === 'true') return { missing: 'the checkout is a shallow clone' };
    const introduced = git('log', '--reverse', '--format=%H', '-S', 'BATCH_STREAM_PATH', '--', 'consensus/transport/server.ts').split('\n')[0]!;
    if (introduced === '') return { missing: 'no commit in the history brought BATCH_STREAM_PATH into consensus/transport/server.ts' };
    commit = git('rev-parse', `${introduced}^`);
  } catch (error) {
    return { missing: `git cannot read the history here (${(error as Error).message.split('\n')[0]})` };
  }
  const root = join(tmpdir(), `hivemind-previous-build-${commit.slice(0, 12)}`);
  const server = join(root, 'dist/consensus/server/main.js');
  if (existsSync(server)) {
    // The kept build runs on this checkout's packages: the checkout that built it may be gone.
    rmSync(join(root, 'node_modules'), { force: true });
    symlinkSync(join(repositoryRoot, 'node_modules'), join(root, 'node_modules'));
    return { server };
  }
  const building = mkdtempSync(join(tmpdir(), 'hivemind-previous-building-'));
  try {
    execFileSync('sh', ['-c', `git -C "${repositoryRoot}" archive ${commit} | tar -x -C "${building}"`]);
    symlinkSync(join(repositoryRoot, 'node_modules'), join(building, 'node_modules'));
    execFileSync(process.execPath, [join(repositoryRoot, 'node_modules/typescript/bin/tsc'), '-b'], { cwd: building, stdio: 'inherit' });
    rmSync(root, { recursive: true, force: true });
    execFileSync('mv', [building, root]);
  } finally {
    rmSync(building, { recursive: true, force: true });
  }
  return { server };
}

const ids = ['a', 'b', 'c'];
const directory = mkdtempSync(join(tmpdir(), 'hivemind-transport-upgrade-'));
const found = previousServer();
// Without the history the test is skipped, saying why, rather than passed or failed on nothing.
if ('missing' in found) console.log(`skipped: no previous release to upgrade from: ${found.missing}; set HIVEMIND_PREVIOUS_BUILD to a built checkout of it`);
const previous = 'server' in found ? found.server : '';
const certificates = await BenchCertificates.create();
mkdirSync(join(directory, 'tls'));
const tls = await certificates.writeCluster(join(directory, 'tls'), ids);
// Election timeout 2-4 s: on a busy machine a leader sometimes changes under a Put, which says nothing here.
const cluster = new KvCluster(ids, ['--tls-dir', tls.directory, '--election-ticks', '40'], {
  credentials: grpc.credentials.createSsl(Buffer.from(tls.client.caPem), Buffer.from(tls.client.keyPem), Buffer.from(tls.client.certificatePem)),
  options: { 'grpc.ssl_target_name_override': tls.client.serverName },
});

test.after(async () => {
  await cluster.destroy();
  rmSync(directory, { recursive: true, force: true });
});

/** Puts `key` through the leader, retrying a lost proposal (a leader change), and waits until the running members applied it. */
async function put(key: string): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    const leader = await cluster.waitForLeader(20_000);
    try {
      const { index } = await cluster.call<{ index: number }>(leader, 'Put', { key: Buffer.from(key), value: Buffer.from(key) }, 10_000);
      await cluster.waitForApplied(index, 20_000);
      return;
    } catch (error) {
      if (attempt >= 3) throw error;
    }
  }
}

async function assertHeld(keys: string[]): Promise<void> {
  for (const id of cluster.running()) {
    const held = new Set((await cluster.dump(id)).puts.map((entry) => entry.key));
    for (const key of keys) assert.ok(held.has(key), `${id} lacks ${key}`);
  }
}

(previous === '' ? test.skip : test)('a cluster of the previous release upgraded one member at a time commits through every mixed quorum', async () => {
  for (const id of ids) cluster.useServer(id, previous);
  await cluster.start();
  await put('all-previous');
  const keys = ['all-previous'];
  // Upgrade c; stop b, so that the quorum is a (previous) and c (this build).
  await cluster.terminate('c');
  cluster.useServer('c', undefined);
  await cluster.launch('c');
  await cluster.terminate('b');
  await put('a-previous-c-new');
  keys.push('a-previous-c-new');
  await assertHeld(keys);
  // Upgrade b; stop a: the quorum is b and c, both this build; then a comes back on the previous release and
  // c stops: a (previous) and b (this build).
  cluster.useServer('b', undefined);
  await cluster.launch('b');
  await cluster.terminate('a');
  await put('b-new-c-new');
  keys.push('b-new-c-new');
  await cluster.launch('a');
  await cluster.terminate('c');
  await put('a-previous-b-new');
  keys.push('a-previous-b-new');
  await assertHeld(keys);
  // Upgrade a; all three run this build.
  await cluster.terminate('a');
  cluster.useServer('a', undefined);
  await cluster.launch('a');
  await cluster.launch('c');
  await put('all-new');
  keys.push('all-new');
  await assertHeld(keys);
});

test.run();
