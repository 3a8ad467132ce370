// Node-local volumes against a real containerd, loop devices and ext4: a
// busybox container writes a file to a volume, is killed, and a new container
// reads it back; a write past the volume's size fails with ENOSPC inside the
// container while the node keeps running containers; a volume unmounted and
// detached (as after a reboot) is mounted again with its data; removal leaves
// no mount, loop device or file behind.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { WorkloadExit, WorkloadSpec } from '../../runtime.js';
import { LocalVolumes, mountSourceOf, type VolumeError } from '../../local-volumes.js';
import type { ContainerdRuntime } from '../containerd-runtime.js';
import type { CniNetwork } from '../network.js';
import { TestContainerd, busyboxWorkload, eventually, skipReason, closeTestRuntime, openTestRuntime } from './harness.js';

const skip = skipReason() ?? (spawnSync('mkfs.ext4', ['-V']).error ? 'mkfs.ext4 is not installed (apt-get install e2fsprogs)' : undefined);
const containerd = new TestContainerd();
let runtime: ContainerdRuntime;
let network: CniNetwork;
let volumes: LocalVolumes;
const exits: WorkloadExit[] = [];
const MiB = 1024 ** 2;
const DATA = { tenant: 'default', name: 'data', createdIndex: 7, sizeBytes: 16 * MiB };

function workload(id: string, script: string): WorkloadSpec {
  return busyboxWorkload(containerd.dataDir, id, { command: ['sh', '-c', script], mounts: [{ source: volumes.mountPathOf('default', 'data'), target: '/data', readOnly: false }], stopGraceMs: 1_000 });
}

function logOf(id: string): string {
  const path = join(containerd.dataDir, 'logs', `${id}.log`);
  return existsSync(path) ? readFileSync(path, 'utf8') : '';
}

/** Runs `script` in a container on the volume to its end; answers its exit code and log. */
async function runToEnd(id: string, script: string): Promise<{ exitCode: number | undefined; log: string }> {
  await runtime.start(workload(id, script));
  await eventually(`the exit of ${id}`, () => exits.some((exit) => exit.id === id), 30_000);
  const exit = exits.find((candidate) => candidate.id === id)!;
  await runtime.remove(id);
  return { exitCode: exit.exitCode, log: logOf(id) };
}

function loopDevicesOf(path: string): string {
  return spawnSync('losetup', ['-j', path], { encoding: 'utf8' }).stdout.trim();
}

test.before(async () => {
  if (skip !== undefined) {
    console.log(`skipping the volume tests: ${skip}`);
    return;
  }
  await containerd.start();
  ({ runtime, network } = await openTestRuntime(containerd, { bridge: 'hmv0', subnet: '10.91.0.0/16' }));
  runtime.onExit((exit) => exits.push(exit));
  volumes = new LocalVolumes({ volumesDir: join(containerd.dataDir, 'volumes'), log: () => undefined });
});

test.after(async () => {
  if (skip !== undefined) return;
  for (const workload of await runtime.list().catch(() => [])) await runtime.remove(workload.id).catch(() => undefined);
  // Whatever a failed test left: every volume file of this test is removed (unmount, detach, delete).
  for (const file of await volumes.list()) await volumes.remove(file).catch((error: Error) => console.log(`cleanup: ${error.message}`));
  await closeTestRuntime({ runtime, network });
  await containerd.stop();
});

test('a file written to a volume survives the container; a new container reads it back', async () => {
  if (skip !== undefined) return;
  const mountPath = await volumes.ensure(DATA);
  assert.is(mountPath, join(containerd.dataDir, 'volumes', 'default', 'data'));
  assert.ok((await mountSourceOf(mountPath))?.startsWith('/dev/loop'), 'mounted from a loop device');
  assert.is(await volumes.ensure(DATA), mountPath, 'a second ensure is a no-op');
  assert.is(loopDevicesOf(volumes.imagePathOf(DATA)).split('\n').length, 1, 'one loop device');

  await runtime.start(workload('writer-1', 'echo kept > /data/file; sync; echo written; sleep 300'));
  await eventually('the write', () => logOf('writer-1').includes('written'));
  await runtime.stop('writer-1', { signal: 'SIGKILL', graceMs: 0 });
  await runtime.remove('writer-1');

  const read = await runToEnd('reader-1', 'cat /data/file');
  assert.is(read.exitCode, 0);
  assert.match(read.log, /kept/);
});

test('a write past the size fails with ENOSPC inside the container; the node keeps running containers', async () => {
  if (skip !== undefined) return;
  await volumes.ensure(DATA);
  const filled = await runToEnd('filler-1', 'dd if=/dev/zero of=/data/big bs=1M count=64; echo "dd exit $?"');
  assert.match(filled.log, /No space left on device/);
  assert.match(filled.log, /dd exit 1/);
  const used = spawnSync('du', ['-sk', volumes.imagePathOf(DATA)], { encoding: 'utf8' }).stdout;
  assert.ok(Number(used.split('\t')[0]) <= (DATA.sizeBytes / 1024) * 1.01, `the backing file stays within its size: ${used}`);
  const after = await runToEnd('after-1', 'rm /data/big; echo still here > /data/after; cat /data/after /data/file');
  assert.is(after.exitCode, 0);
  assert.match(after.log, /still here/);
  assert.match(after.log, /kept/);
});

test('a volume unmounted and detached (a reboot) is mounted again with its data', async () => {
  if (skip !== undefined) return;
  const mountPath = await volumes.ensure(DATA);
  const device = await mountSourceOf(mountPath);
  assert.is(spawnSync('umount', [mountPath]).status, 0);
  assert.is(spawnSync('losetup', ['-d', device!]).status, 0);
  assert.is(await mountSourceOf(mountPath), undefined);
  await volumes.ensure(DATA);
  assert.ok(await mountSourceOf(mountPath));
  assert.is(readFileSync(join(mountPath, 'file'), 'utf8'), 'kept\n');
});

test("a volume's I/O limits reach the container's cgroup as throttles on its loop device (v1 blkio, v2 io.max)", async () => {
  if (skip !== undefined) return;
  await volumes.ensure(DATA);
  const device = await volumes.deviceOf('default', 'data');
  assert.ok(device !== undefined && device.major === 7, `a loop device: ${JSON.stringify(device)}`);
  const ioLimits = [{ ...device, writeBytesPerSecond: 4 * MiB, readIops: 300 }];
  await runtime.start({ ...workload('limited-1', 'echo started; sleep 300'), ioLimits });
  await eventually('the start', () => logOf('limited-1').includes('started'));
  // The container's cgroup, wherever its parent is: cgroup v1's blkio throttles, or cgroup v2's io.max.
  const find = (root: string): string => spawnSync('find', [root, '-maxdepth', '4', '-type', 'd', '-name', 'limited-1'], { encoding: 'utf8' }).stdout.trim().split('\n')[0] ?? '';
  const read = (path: string): string => (existsSync(path) ? readFileSync(path, 'utf8').trim() : `(no ${path})`);
  const numbers = `${device.major}:${device.minor}`;
  let seen: string[];
  let expected: string[];
  if (existsSync('/sys/fs/cgroup/blkio/blkio.throttle.write_bps_device')) {
    const folder = find('/sys/fs/cgroup/blkio');
    const files = ['read_bps_device', 'write_bps_device', 'read_iops_device', 'write_iops_device'];
    seen = files.map((file) => read(join(folder, `blkio.throttle.${file}`)));
    expected = ['', `${numbers} ${4 * MiB}`, `${numbers} 300`, ''];
  } else {
    const ioMax = read(join(find('/sys/fs/cgroup'), 'io.max'));
    seen = [ioMax.split('\n').find((entry) => entry.startsWith(`${numbers} `)) ?? ioMax];
    expected = [`${numbers} rbps=max wbps=${4 * MiB} riops=300 wiops=max`];
  }
  await runtime.stop('limited-1', { signal: 'SIGKILL', graceMs: 0 });
  await runtime.remove('limited-1');
  assert.equal(seen, expected);
});

test('remove refuses while a container holds the volume, then leaves no mount, loop device or file', async () => {
  if (skip !== undefined) return;
  const mountPath = await volumes.ensure(DATA);
  const imagePath = volumes.imagePathOf(DATA);
  await runtime.start(workload('holder-1', 'cd /data; echo holding; sleep 300'));
  await eventually('the holder', () => logOf('holder-1').includes('holding'));
  const busy = await volumes.remove(DATA).then(() => undefined, (error: VolumeError) => error);
  assert.ok(busy?.retryable, 'refused while the container holds it');
  assert.match(busy!.message, /a workload still mounts it/);
  assert.ok(await mountSourceOf(mountPath), 'mounted again on the host');
  assert.ok(existsSync(imagePath), 'the backing file is kept');
  await runtime.stop('holder-1', { signal: 'SIGKILL', graceMs: 0 });
  await runtime.remove('holder-1');
  // The container's mount namespace is torn down by the kernel after its last process is reaped, a moment after
  // the task is deleted (its last references to the mount are dropped late): until then the volume is still held,
  // and removal says so (retryable), which is why the executor's sweep tries again 2 s later. The test waits the
  // same way, and fails on anything else.
  await eventually('the volume to be removable', () => volumes.remove(DATA).then(() => true, (error: VolumeError) => {
    if (!error.retryable) throw error;
    return false;
  }), 10_000);
  assert.is(await mountSourceOf(mountPath), undefined);
  assert.not.ok(existsSync(imagePath), 'the backing file is gone');
  assert.not.ok(existsSync(mountPath), 'the mount point is gone');
  assert.is(loopDevicesOf(imagePath), '', 'no loop device is attached to it');
  assert.equal(await volumes.list(), []);
  assert.equal(readdirSync(join(containerd.dataDir, 'volumes', 'default')), []);
});

test.run();
