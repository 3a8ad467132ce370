// Volume data end to end, with two real agents and the CLI a user runs: a
// process app writes to its volume; `volumes ls` shows the used size and the
// app; `volumes snapshot` and `volumes backup > file` go through the node that
// does not hold the volume; `volumes restore < file` makes a new volume with
// the same bytes; `volumes move --to` stops the app, carries the data to the
// other node, and the app starts there and appends to what it wrote; the old
// node's copy is removed. Needs root, mkfs.ext4, tar, zstd.
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, closeSync, existsSync, openSync, readFileSync, readdirSync, readlinkSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { TestCluster, eventually, type TestNode } from '../../agent/test/harness.js';
import { BIN, cleanEnv } from '../../cli/test/run-cli.js';

const missingTool = ['mkfs.ext4', 'tar', 'zstd', 'fsfreeze'].find((tool) => spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0);
const skip = process.getuid?.() !== 0 ? 'volumes need root' : missingTool !== undefined ? `${missingTool} is not installed` : undefined;
const cluster = new TestCluster(50);
// The app runs as the tenant's own user, which must pass through the cluster's folder to its volume.
chmodSync(cluster.root, 0o711);

/** Runs the CLI against `node`; stdin and stdout may be files. */
function cli(node: TestNode, args: string[], files: { stdin?: string; stdout?: string } = {}): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const stdin = files.stdin !== undefined ? openSync(files.stdin, 'r') : 'ignore';
    const stdout = files.stdout !== undefined ? openSync(files.stdout, 'w') : 'pipe';
    const child = spawn(process.execPath, [BIN, '--addr', `127.0.0.1:${node.apiPort}`, '--data-dir', node.dataDir, '--token', cluster.token, ...args], { env: cleanEnv(), stdio: [stdin, stdout, 'pipe'] });
    let out = '';
    let err = '';
    child.stdout?.setEncoding('utf8').on('data', (text: string) => (out += text));
    child.stderr!.setEncoding('utf8').on('data', (text: string) => (err += text));
    const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
    child.on('error', reject);
    child.on('close', (status) => {
      clearTimeout(timer);
      if (typeof stdin === 'number') closeSync(stdin);
      if (typeof stdout === 'number') closeSync(stdout);
      resolve({ status, stdout: out, stderr: err });
    });
  });
}

function releaseVolumesUnder(root: string): void {
  const mounts = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').map((line) => line.split(' ')[4] ?? '').filter((path) => path.startsWith(root));
  for (const path of mounts.reverse()) spawnSync('umount', ['-l', path]);
  for (const line of spawnSync('losetup', ['-a'], { encoding: 'utf8' }).stdout.split('\n')) if (line.includes(root)) spawnSync('losetup', ['-d', line.slice(0, line.indexOf(':'))]);
}

/** Processes in a mount namespace other than this test's and the agents' that have `path` mounted. */
function foreignHolders(path: string): string[] {
  const own = readlinkSync('/proc/self/ns/mnt');
  const holders: string[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readlinkSync(`/proc/${entry}/ns/mnt`) === own || !readFileSync(`/proc/${entry}/mountinfo`, 'utf8').includes(` ${path} `)) continue;
      holders.push(`${entry}: ${readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0').join(' ').slice(0, 80)}`);
    } catch {
      // gone meanwhile
    }
  }
  return holders;
}

test.after(async () => {
  await cluster.cleanup().catch(() => {});
});

interface ListedVolume {
  name: string;
  node?: string;
  usedBytes?: number;
  users: string[];
  moving?: string;
}

test('snapshot, backup and restore through the other node are byte-identical; a move carries the data and the app follows it', cluster.withLogs(async () => {
  if (skip !== undefined) return console.log(`skipping the volume move test: ${skip}`);
  const first = await cluster.bootstrap('m1');
  const second = await cluster.join('m2', first);
  const nodes: Record<string, TestNode> = { m1: first, m2: second };
  try {
    const content = [
      'services:',
      '  writer:',
      '    command: ["sh", "-c", "head -c 3000000 /dev/urandom > \\"$$HIVEMIND_VOLUME_APPDATA/random.$$$$\\"; echo started $$$$ >> \\"$$HIVEMIND_VOLUME_APPDATA/starts\\"; exec sleep 1000"]',
      '    volumes: ["appdata:/data"]',
      'volumes:',
      '  appdata: { x-hivemind: { size: 32M } }',
    ].join('\n');
    const deployed = await first.request('POST', '/v1/deploy', { fileName: 'writer.yaml', content });
    assert.is(deployed.status, 200, JSON.stringify(deployed.body));
    const listed = async (): Promise<ListedVolume[]> => ((await first.request('GET', '/v1/volumes')).body as { volumes: ListedVolume[] }).volumes;
    const home = await eventually('the volume to be bound', async () => (await listed()).find((volume) => volume.name === 'appdata')?.node, 60_000, 200);
    const other = home === 'm1' ? 'm2' : 'm1';
    const homePath = join(nodes[home]!.dataDir, 'volumes', 'default', 'appdata');
    await eventually('the app to write to its volume', () => existsSync(join(homePath, 'starts')) || undefined, 60_000, 200);

    // Used (reported by its node within a sweep) and users.
    const used = await eventually('the used size to be reported', async () => {
      const volume = (await listed()).find((entry) => entry.name === 'appdata');
      return volume?.usedBytes !== undefined && volume.usedBytes >= 3_000_000 ? volume : undefined;
    }, 60_000, 500);
    assert.equal(used.users, ['writer']);
    const table = await cli(nodes[other]!, ['volumes']);
    assert.is(table.status, 0, table.stderr);
    assert.match(table.stdout, new RegExp(`default\\s+appdata\\s+32 MiB\\s+[\\d.]+ MiB\\s+${home}\\s+no\\s+writer`));

    // Through the node that does not hold it.
    const snapshot = await cli(nodes[other]!, ['volumes', 'snapshot', 'appdata']);
    assert.is(snapshot.status, 0, snapshot.stderr);
    assert.match(snapshot.stdout, new RegExp(`snapshot \\d{8}T\\d{9}Z of volume default/appdata taken on node ${home}`));
    const snapshots = await cli(nodes[other]!, ['volumes', 'snapshots', 'appdata']);
    // Its size, what it takes on disk (sparse: about what the app wrote), and its age.
    assert.match(snapshots.stdout, /\d{8}T\d{9}Z\s+32 MiB\s+[\d.]+ MiB\s+\d+[smh] ago/, snapshots.stdout);
    const backupPath = join(cluster.root, 'appdata.tar.zst');
    const backup = await cli(nodes[other]!, ['volumes', 'backup', 'appdata'], { stdout: backupPath });
    assert.is(backup.status, 0, backup.stderr);
    assert.ok(statSync(backupPath).size > 3_000_000, 'random bytes do not compress');
    const restored = await cli(nodes[other]!, ['volumes', 'restore', 'appdata-copy', '--size', '32M', '--node', other], { stdin: backupPath });
    assert.is(restored.status, 0, restored.stderr);
    assert.match(restored.stdout, new RegExp(`volume default/appdata-copy restored on node ${other}`));
    const copyPath = join(nodes[other]!.dataDir, 'volumes', 'default', 'appdata-copy');
    const digest = (folder: string): string => spawnSync('sh', ['-c', `cd ${folder} && find . -path ./lost+found -prune -o -type f -print0 | sort -z | xargs -0 sha256sum`], { encoding: 'utf8' }).stdout;
    assert.ok(digest(homePath).includes('random.'), digest(homePath));
    assert.is(digest(copyPath), digest(homePath), 'the restored files are byte-identical');
    const again = await cli(nodes[other]!, ['volumes', 'restore', 'appdata-copy'], { stdin: backupPath });
    assert.is(again.status, 1);
    assert.match(again.stderr, /holds files already/);

    // The move: the app stops, the data goes over, the app starts on the other node and appends.
    const before = readFileSync(join(homePath, 'starts'), 'utf8');
    const moved = await cli(nodes[home]!, ['volumes', 'move', 'appdata', '--to', other]);
    assert.is(moved.status, 0, moved.stderr);
    assert.match(moved.stdout, new RegExp(`volume default/appdata moved to node ${other}`));
    const targetPath = join(nodes[other]!.dataDir, 'volumes', 'default', 'appdata');
    const after = await eventually('the app to start on the new node', () => {
      const text = existsSync(join(targetPath, 'starts')) ? readFileSync(join(targetPath, 'starts'), 'utf8') : '';
      return text.split('\n').length > before.split('\n').length ? text : undefined;
    }, 60_000, 200);
    assert.ok(after.startsWith(before), `what it wrote before is there: ${after}`);
    const instances = ((await first.request('GET', '/v1/instances?tenant=default')).body as { instances: { app: string; node?: string }[] }).instances;
    assert.equal(instances.filter((instance) => instance.app === 'writer').map((instance) => instance.node), [other]);
    // A process in another mount namespace made while the volume was mounted (`ip netns exec` of some other
    // program on this host) holds a copy of its mount that nothing here can release: then the removal waits, rightly.
    const foreign = foreignHolders(homePath);
    if (foreign.length > 0) console.log(`not checking that the old copy is removed: mount namespaces of other programs hold it (${foreign.join('; ')})`);
    else await eventually('the old copy to be removed', async () => (!existsSync(homePath) && !readFileSync('/proc/self/mountinfo', 'utf8').includes(homePath)) || undefined, 30_000, 200);
  } finally {
    await Promise.all([first.stop(), second.stop()]);
    releaseVolumesUnder(cluster.root);
  }
}));

test.run();
