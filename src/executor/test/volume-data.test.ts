// Volume data on real loop devices and ext4, through the volume keeper with
// a real state machine: a backup restored into a new volume is
// byte-identical (contents, modes, owners, times, links, sparse files); a
// snapshot is a consistent copy taken while the volume is mounted, and its
// filesystem is writable again after; a restore never writes over files; a
// bad or cut archive is refused with tar's words; a move's target receives
// the files, and the old copy goes once the move ended elsewhere; the
// sweep reports what a volume takes on disk; an encrypted volume's backing
// file and snapshots hold none of its data, and its backup restores
// byte-identical. Needs root, mkfs.ext4, tar, zstd (gocryptfs and fuse3 for
// the encrypted case).
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, chownSync, existsSync, linkSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, symlinkSync, utimesSync, writeFileSync, openSync, closeSync, ftruncateSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Driver, MiB, registerNode } from '../../state/test/fixtures.js';
import { STATE_VERSION_LABEL, type Command, type CommandResult } from '../../state/types.js';
import { mountSourceOf, VolumeError } from '../local-volumes.js';
import { mountAt } from '../volume-tool.js';
import { generateClusterKey, openSecret, sealSecret, volumeKeyAssociatedData } from '../../state/secrets.js';
import { STATE_VERSION } from '../../state/version.js';
import { VolumeKeeper } from '../volume-keeper.js';
import { rerunInOwnMountNamespace } from './own-mount-namespace.js';

const missingTool = ['mkfs.ext4', 'tar', 'zstd', 'fsfreeze'].find((tool) => spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0);
const skip = process.getuid?.() !== 0 ? 'volumes need root' : missingTool !== undefined ? `${missingTool} is not installed (apt-get install e2fsprogs tar zstd util-linux)` : undefined;

// Removals are checked after one sweep: no namespace made elsewhere on this host may hold a copy of the mounts.
if (skip === undefined) rerunInOwnMountNamespace();

const root = mkdtempSync(join(tmpdir(), 'hivemind-volume-data-'));
const CLUSTER_KEY = generateClusterKey();
const lines: string[] = [];

/** Two nodes' keepers over one real state machine, each with its own volumes folder. */
function world(): { driver: Driver; keepers: Record<'n1' | 'n2', VolumeKeeper>; submitted: Command[] } {
  const driver = new Driver();
  // Nodes of this release: the cluster version can be raised to it (encrypted volumes need it).
  for (const id of ['n1', 'n2']) {
    const register = registerNode(id);
    assert.ok(register.type === 'node.register');
    driver.ok({ ...register, labels: { ...register.labels, [STATE_VERSION_LABEL]: String(STATE_VERSION) } });
  }
  const submitted: Command[] = [];
  const keeper = (nodeId: 'n1' | 'n2'): VolumeKeeper =>
    new VolumeKeeper({
      machine: driver.machine,
      nodeId,
      volumesDir: join(root, nodeId, 'volumes'),
      submit: async (command): Promise<CommandResult> => {
        submitted.push(command);
        return driver.run(command, undefined, nodeId);
      },
      caughtUp: () => true,
      workloadsUsing: () => [],
      clusterKey: () => CLUSTER_KEY,
      log: (line) => lines.push(`${nodeId}: ${line}`),
    });
  return { driver, keepers: { n1: keeper('n1'), n2: keeper('n2') }, submitted };
}

function createVolume(driver: Driver, name: string, node?: string): void {
  driver.ok({ type: 'volume.create', tenant: 'default', name, sizeBytes: 32 * MiB });
  if (node !== undefined) driver.ok({ type: 'volume.bind', tenant: 'default', name, node });
}

/** Every entry under `folder` (but lost+found), with what a byte-identical copy must keep. */
function describeTree(folder: string): Record<string, string> {
  const described: Record<string, string> = {};
  const walk = (relative: string): void => {
    for (const entry of readdirSync(join(folder, relative)).sort()) {
      if (relative === '' && entry === 'lost+found') continue;
      const path = join(folder, relative, entry);
      const info = lstatSync(path);
      const common = `mode ${info.mode.toString(8)} owner ${info.uid}:${info.gid} mtime ${Math.floor(info.mtimeMs / 1000)}`;
      const key = join(relative, entry);
      if (info.isSymbolicLink()) described[key] = `link -> ${readlinkSync(path)} ${common}`;
      else if (info.isDirectory()) {
        described[key] = `dir ${common}`;
        walk(key);
      } else described[key] = `file ${info.size} bytes sha256 ${createHash('sha256').update(readFileSync(path)).digest('hex')} links ${info.nlink} ${common}`;
    }
  };
  walk('');
  return described;
}

function fillWithFiles(folder: string): void {
  mkdirSync(join(folder, 'db', 'base'), { recursive: true });
  writeFileSync(join(folder, 'db', 'base', 'random.bin'), createHash('sha512').update('seed').digest().toString('hex').repeat(20_000));
  writeFileSync(join(folder, 'db', 'PG_VERSION'), '16\n');
  chmodSync(join(folder, 'db', 'PG_VERSION'), 0o600);
  chownSync(join(folder, 'db'), 999, 999);
  chownSync(join(folder, 'db', 'PG_VERSION'), 999, 999);
  symlinkSync('base/random.bin', join(folder, 'db', 'latest'));
  linkSync(join(folder, 'db', 'PG_VERSION'), join(folder, 'db', 'PG_VERSION.hard'));
  // A sparse file: 4 MiB long, one block written in its middle.
  const handle = openSync(join(folder, 'sparse.img'), 'w');
  ftruncateSync(handle, 4 * MiB);
  writeSync(handle, Buffer.from('middle'), 0, 6, 2 * MiB);
  closeSync(handle);
  utimesSync(join(folder, 'db', 'base', 'random.bin'), 1_600_000_000, 1_600_000_000);
}

async function bytesOf(stream: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.from(chunk));
  return Buffer.concat(chunks);
}

/** The member names of a tar.zst archive, sorted (`tar --list`). */
function membersOf(archive: Buffer): string[] {
  const listed = spawnSync('tar', ['--list', '--zstd', '--file=-'], { input: archive, encoding: 'utf8' });
  assert.is(listed.status, 0, `tar --list: ${listed.stderr}`);
  return listed.stdout.split('\n').filter((line) => line !== '').sort();
}

async function* streamOfBytes(bytes: Buffer, chunkBytes = 64 * 1024): AsyncGenerator<Uint8Array> {
  for (let offset = 0; offset < bytes.length; offset += chunkBytes) yield bytes.subarray(offset, offset + chunkBytes);
}

/** Unmounts and detaches whatever the tests left under `root`, then deletes it. */
function releaseAll(): void {
  const mounts = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').map((line) => line.split(' ')[4] ?? '').filter((path) => path.startsWith(root));
  for (const path of mounts.reverse()) spawnSync('umount', ['-l', path]);
  for (const line of spawnSync('losetup', ['-a'], { encoding: 'utf8' }).stdout.split('\n')) if (line.includes(root)) spawnSync('losetup', ['-d', line.slice(0, line.indexOf(':'))]);
  rmSync(root, { recursive: true, force: true });
}

test.after(() => releaseAll());

test('a sweep asked for while one runs follows it: a volume file left by a deletion made meanwhile is gone when the call resolves', async () => {
  const { keepers } = world();
  const folder = join(root, 'n1', 'volumes', 'default');
  mkdirSync(folder, { recursive: true });
  // Files of volumes the state does not hold (created at indexes it has applied): garbage to remove.
  writeFileSync(join(folder, 'early.1.ext4'), '');
  const first = keepers.n1.sweep();
  // The first sweep may list the folder before this file exists; the one asked for now must not miss it.
  writeFileSync(join(folder, 'late.2.ext4'), '');
  await keepers.n1.sweep();
  assert.equal(readdirSync(folder), [], 'both files removed once the second call resolved');
  await first;
});

test('a backup restored into a new volume is byte-identical; a restore never writes over files; a bad or cut archive is refused', async () => {
  if (skip !== undefined) return console.log(`skipping: ${skip}`);
  const { driver, keepers } = world();
  createVolume(driver, 'data', 'n1');
  const data = driver.machine.volume('default', 'data')!;
  const mountPath = await keepers.n1.volumes.ensure(data);
  fillWithFiles(mountPath);
  const archive = await bytesOf(await keepers.n1.backup('default', 'data'));
  assert.equal([...archive.subarray(0, 4)], [0x28, 0xb5, 0x2f, 0xfd], 'zstd');
  // What the archive holds, not how small it compresses: the tree's 2.5 MB packs into about 1 KB, give or
  // take 200 bytes with the nanoseconds of the files' times in its pax headers (a whole archive of 979 bytes
  // once failed a check of "more than 1000"). The keeper's log says whether the copy was frozen.
  assert.equal(membersOf(archive), ['./', './db/', './db/PG_VERSION', './db/PG_VERSION.hard', './db/base/', './db/base/random.bin', './db/latest', './lost+found/', './sparse.img'], `the keeper said:\n${lines.join('\n')}`);
  assert.equal(readdirSync(join(root, 'n1', 'volumes', '.work')), [], 'the copy, its mount and folder are gone');

  // Into a new, unbound volume on the other node: bound there by the restore.
  createVolume(driver, 'copy');
  await keepers.n2.restore('default', 'copy', streamOfBytes(archive));
  assert.is(driver.machine.volume('default', 'copy')?.node, 'n2');
  const copyPath = keepers.n2.volumes.mountPathOf('default', 'copy');
  assert.equal(describeTree(copyPath), describeTree(mountPath));
  assert.is(lstatSync(join(copyPath, 'sparse.img')).blocks * 512 < MiB, true, 'the sparse file stays sparse');

  const again = await keepers.n2.restore('default', 'copy', streamOfBytes(archive)).catch((error: Error) => error);
  assert.instance(again, VolumeError);
  assert.match((again as Error).message, /holds files already \(db, sparse\.img\); a restore goes into a new volume/);

  createVolume(driver, 'bad', 'n2');
  const garbage = await keepers.n2.restore('default', 'bad', streamOfBytes(Buffer.from('not an archive'))).catch((error: Error) => error);
  assert.instance(garbage, VolumeError);
  assert.match((garbage as Error).message, /extracting the archive: tar failed: .+/);
  createVolume(driver, 'cut', 'n2');
  const cut = await keepers.n2.restore('default', 'cut', streamOfBytes(archive.subarray(0, Math.floor(archive.length / 2)))).catch((error: Error) => error);
  assert.instance(cut, VolumeError, 'a cut archive is noticed');
});

test('a snapshot is a consistent copy taken while the volume is mounted; writes go on after; a backup of it; it goes with its volume', async () => {
  if (skip !== undefined) return;
  const { driver, keepers } = world();
  createVolume(driver, 'snap', 'n1');
  const volume = driver.machine.volume('default', 'snap')!;
  const mountPath = await keepers.n1.volumes.ensure(volume);
  writeFileSync(join(mountPath, 'before'), 'kept\n');
  const snapshot = await keepers.n1.snapshot('default', 'snap', Date.UTC(2026, 11, 5, 6, 0, 0, 1));
  assert.is(snapshot.id, '20261205T060000001Z');
  assert.is(snapshot.sizeBytes, 32 * MiB);
  writeFileSync(join(mountPath, 'after'), 'written once thawed\n');
  assert.equal((await keepers.n1.snapshots('default', 'snap')).map((entry) => entry.id), [snapshot.id]);
  const restoredFrom = await bytesOf(await keepers.n1.backup('default', 'snap', { snapshotId: snapshot.id }));
  createVolume(driver, 'from-snapshot', 'n1');
  await keepers.n1.restore('default', 'from-snapshot', streamOfBytes(restoredFrom));
  const restoredPath = keepers.n1.volumes.mountPathOf('default', 'from-snapshot');
  assert.equal(readdirSync(restoredPath).sort(), ['before', 'lost+found'], 'the snapshot holds what was written before it, not after');
  assert.is(readFileSync(join(restoredPath, 'before'), 'utf8'), 'kept\n');
  const unknown = await keepers.n1.backup('default', 'snap', { snapshotId: '20261205T060000002Z' }).catch((error: Error) => error);
  assert.match((unknown as Error).message, /has no snapshot "20261205T060000002Z"/);

  const snapshotsDir = keepers.n1.volumes.snapshotsDirOf(volume);
  assert.ok(existsSync(snapshotsDir));
  driver.ok({ type: 'volume.delete', tenant: 'default', name: 'snap' });
  await keepers.n1.sweep();
  assert.not.ok(existsSync(snapshotsDir), 'its snapshots go with it');
  assert.not.ok(existsSync(keepers.n1.volumes.imagePathOf(volume)));
});

test('a move: the target receives the files; once the move ended there, the source removes its copy; the sweep reports usage', async () => {
  if (skip !== undefined) return;
  const { driver, keepers, submitted } = world();
  createVolume(driver, 'moving', 'n1');
  const volume = driver.machine.volume('default', 'moving')!;
  const sourcePath = await keepers.n1.volumes.ensure(volume);
  fillWithFiles(sourcePath);
  await keepers.n1.sweep();
  const report = submitted.find((command) => command.type === 'volume.report');
  assert.ok(report?.type === 'volume.report' && report.node === 'n1' && report.usedBytes > 2 * MiB, JSON.stringify(report));
  assert.is(driver.machine.volume('default', 'moving')?.usedBytes, report.usedBytes);

  const notMoving = await keepers.n1.archiveForMove('default', 'moving', { waitMs: 0, sleep: async () => {}, nowMs: () => 0 }).catch((error: Error) => error);
  assert.match((notMoving as Error).message, /is not being moved away from node n1/);
  driver.ok({ type: 'volume.move', tenant: 'default', name: 'moving', to: 'n2' });
  const archive = await keepers.n1.archiveForMove('default', 'moving', { waitMs: 0, sleep: async () => {}, nowMs: () => 0 });
  // The target removes what an earlier try left first.
  const leftover = keepers.n2.volumes.mountPathOf('default', 'moving');
  await keepers.n2.volumes.ensure(volume);
  writeFileSync(join(leftover, 'partial-from-an-earlier-try'), 'x');
  await keepers.n2.receive('default', 'moving', archive);
  const targetPath = keepers.n2.volumes.mountPathOf('default', 'moving');
  assert.equal(describeTree(targetPath), describeTree(sourcePath));

  // Both sweeps keep their copies while the move runs.
  await keepers.n1.sweep();
  await keepers.n2.sweep();
  assert.ok(existsSync(keepers.n1.volumes.imagePathOf(volume)) && existsSync(keepers.n2.volumes.imagePathOf(volume)));
  driver.ok({ type: 'volume.move-end', tenant: 'default', name: 'moving', node: 'n2' });
  await keepers.n1.sweep();
  assert.not.ok(existsSync(keepers.n1.volumes.imagePathOf(volume)), `the source copy is gone; the keeper said:\n${lines.join('\n')}`);
  assert.is(await mountSourceOf(sourcePath), undefined);
  await keepers.n2.sweep();
  assert.ok((await mountSourceOf(targetPath))?.startsWith('/dev/loop'), 'the target keeps it mounted');
});

/** An encrypted volume as the API creates it: a random key sealed under the cluster key. */
function createEncryptedVolume(driver: Driver, name: string, node: string): Uint8Array {
  const key = new Uint8Array(createHash('sha256').update(`key of ${name}`).digest());
  const sealed = sealSecret(CLUSTER_KEY, key, volumeKeyAssociatedData('default', name));
  driver.ok({ type: 'volume.create', tenant: 'default', name, sizeBytes: 32 * MiB, encryption: sealed });
  driver.ok({ type: 'volume.bind', tenant: 'default', name, node });
  return key;
}

/** Whether `text` appears anywhere in the file at `path` (read whole: the test's files are small). */
function fileHolds(path: string, text: string): boolean {
  return readFileSync(path).includes(Buffer.from(text));
}

const missingEncryptionTool = ['gocryptfs', 'fusermount'].find((tool) => spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0);

test('an encrypted volume: the backing file and a snapshot hold none of its data; a backup restores byte-identical; mounted again after its mounts went; the wrong key is refused', async () => {
  if (skip !== undefined) return;
  if (missingEncryptionTool !== undefined || !existsSync('/dev/fuse')) return console.log(`skipping the encrypted case: ${missingEncryptionTool ?? '/dev/fuse'} is missing (apt-get install gocryptfs fuse3)`);
  const { driver, keepers } = world();
  driver.ok({ type: 'cluster.version', version: STATE_VERSION });
  const marker = 'HIVEMIND-PLAINTEXT-MARKER-';
  const write = (folder: string): void => {
    writeFileSync(join(folder, `${marker}name`), marker.repeat(4096));
    fillWithFiles(folder);
  };

  // The control: a plain volume's backing file shows what was written, so the check below can fail.
  createVolume(driver, 'plain', 'n1');
  const plain = driver.machine.volume('default', 'plain')!;
  write(await keepers.n1.volumes.ensure(plain));
  spawnSync('sync');
  assert.ok(fileHolds(keepers.n1.volumes.imagePathOf(plain), marker), 'a plain volume holds its bytes in clear');

  const key = createEncryptedVolume(driver, 'vault', 'n1');
  const vault = driver.machine.volume('default', 'vault')!;
  assert.ok(vault.encryption !== undefined && openSecret(CLUSTER_KEY, vault.encryption, volumeKeyAssociatedData('default', 'vault')).ok, 'only the sealed key is in the state');
  const mountPath = await keepers.n1.volumes.ensure({ ...vault, key });
  assert.is((await mountAt(mountPath))?.type, 'fuse.gocryptfs', 'workloads see the decrypted view');
  write(mountPath);
  spawnSync('sync');
  const imagePath = keepers.n1.volumes.imagePathOf(vault);
  assert.not.ok(fileHolds(imagePath, marker), 'the backing file holds none of the written bytes, nor the file names');

  const snapshot = await keepers.n1.snapshot('default', 'vault', Date.UTC(2026, 11, 5, 7, 0, 0, 0));
  assert.not.ok(fileHolds(keepers.n1.volumes.snapshotPathOf(vault, snapshot.id), marker), 'nor does a snapshot');
  const archive = await bytesOf(await keepers.n1.backup('default', 'vault'));
  createEncryptedVolume(driver, 'vault-copy', 'n1');
  await keepers.n1.restore('default', 'vault-copy', streamOfBytes(archive));
  const copyPath = keepers.n1.volumes.mountPathOf('default', 'vault-copy');
  assert.equal(describeTree(copyPath), describeTree(mountPath), 'the backup holds the files, and restores byte-identical');
  assert.is((await mountAt(copyPath))?.type, 'fuse.gocryptfs', 'restored into an encrypted volume');

  // After a reboot nothing is mounted: the sweep mounts it again with the key from the state.
  const before = describeTree(mountPath);
  spawnSync('fusermount', ['-u', mountPath]);
  spawnSync('umount', [keepers.n1.volumes.cipherMountPathOf('default', 'vault')]);
  assert.is(await mountAt(mountPath), undefined);
  await keepers.n1.sweep();
  assert.equal(describeTree(mountPath), before, 'mounted again, the files read back');

  // The wrong key opens nothing.
  spawnSync('fusermount', ['-u', mountPath]);
  const wrong = await keepers.n1.volumes.ensure({ ...vault, key: new Uint8Array(32) }).catch((error: Error) => error);
  assert.instance(wrong, VolumeError);
  assert.match((wrong as Error).message, /volume "vault" of tenant "default": mounting its decrypted view/);
  assert.is(await mountAt(mountPath), undefined);

  driver.ok({ type: 'volume.delete', tenant: 'default', name: 'vault' });
  driver.ok({ type: 'volume.delete', tenant: 'default', name: 'vault-copy' });
  await keepers.n1.sweep();
  for (const name of ['vault', 'vault-copy']) {
    assert.is(await mountAt(keepers.n1.volumes.mountPathOf('default', name)), undefined, `${name}: nothing stays mounted`);
    assert.not.ok(existsSync(keepers.n1.volumes.cipherMountPathOf('default', name)), `${name}: its folders go`);
  }
});

test.run();
