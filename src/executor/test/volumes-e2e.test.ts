// End to end with a real agent process, loop devices and ext4: a deploy
// creates the volume its file declares (a missing external one is refused);
// a process app that mounts a named volume binds the volume to its node on first use and
// writes through HIVEMIND_VOLUME_<NAME> into the volume's own filesystem; the
// volume is mounted again when the agent starts after a reboot (unmounted and
// detached meanwhile) before the app starts again and appends to what it wrote;
// `volumes delete` once no app uses it leaves no mount,
// loop device or file. Needs root and mkfs.ext4 (e2fsprogs).
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { TestCluster, eventually, killWorkloadsUnder } from '../../agent/test/harness.js';
import { mountSourceOf } from '../local-volumes.js';
import { TENANT_UID_RANGE_DEFAULT } from '../tenant-users.js';

const skip = process.getuid?.() !== 0 ? 'volumes need root' : spawnSync('mkfs.ext4', ['-V']).error ? 'mkfs.ext4 is not installed (apt-get install e2fsprogs)' : undefined;
const cluster = new TestCluster(50);
// The app runs as its tenant's unprivileged user and reaches its volume by path: the test's folder (0700 from mkdtemp) must let it pass.
chmodSync(cluster.root, 0o711);

/** Unmounts and detaches whatever volume a failed run left under the cluster's folder, so its removal can proceed. */
function releaseVolumesUnder(root: string): void {
  const mounts = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').map((line) => line.split(' ')[4] ?? '').filter((path) => path.startsWith(root));
  for (const path of mounts.reverse()) spawnSync('umount', ['-l', path]);
  const listed = spawnSync('losetup', ['-a'], { encoding: 'utf8' }).stdout.split('\n');
  for (const line of listed) if (line.includes(root)) spawnSync('losetup', ['-d', line.slice(0, line.indexOf(':'))]);
}

test.after(async () => {
  await cluster.cleanup().catch(() => {});
});

test('a process app writes to a sized volume on its node; the volume is mounted again after a reboot and removed on delete', cluster.withLogs(async () => {
  if (skip !== undefined) {
    console.log(`skipping the volume end-to-end test: ${skip}`);
    return;
  }
  const node = await cluster.bootstrap('v1');
  try {
    const missing = await node.request('POST', '/v1/deploy', { fileName: 'ext.yaml', content: 'services:\n  db: { command: ["true"], volumes: ["gone:/data"] }\nvolumes:\n  gone: { external: true }\n' });
    assert.is(missing.status, 400);
    assert.match(JSON.stringify(missing.body), /volume \\"gone\\" is declared external: true, but tenant \\"default\\" has no such volume/);
    const content = [
      'services:',
      '  writer:',
      '    command: ["sh", "-c", "echo started $$$$ $$(date +%s.%N) >> \\"$$HIVEMIND_VOLUME_APPDATA/starts\\"; exec sleep 1000"]',
      '    volumes: ["appdata:/data"]',
      'volumes:',
      '  appdata: { x-hivemind: { size: 16M } }',
    ].join('\n');
    const deployed = await node.request('POST', '/v1/deploy', { fileName: 'writer.yaml', content });
    assert.is(deployed.status, 200, JSON.stringify(deployed.body));

    const mountPath = join(node.dataDir, 'volumes', 'default', 'appdata');
    await eventually('the app to write to its volume', () => existsSync(join(mountPath, 'starts')) || undefined, 60_000, 200);
    const listed = (await node.request('GET', '/v1/volumes?tenant=default')).body as { volumes: { name: string; node?: string; sizeBytes: number }[] };
    const volume = listed.volumes.find((entry) => entry.name === 'appdata') as { node?: string; sizeBytes?: number } | undefined;
    assert.is(volume?.sizeBytes, 16 * 1024 ** 2, 'the deploy created it with its x-hivemind.size');
    assert.is(volume?.node, 'v1', 'bound to the node that created it');
    const device = await mountSourceOf(mountPath);
    assert.ok(device?.startsWith('/dev/loop'), `mounted from a loop device: ${device}`);
    const written = readFileSync(join(mountPath, 'starts'), 'utf8');
    assert.match(written, /^started \d+ [\d.]+\n$/);
    // The app wrote as the default tenant's own user, which owns the volume's root alone.
    const root = statSync(mountPath);
    assert.is(root.uid, TENANT_UID_RANGE_DEFAULT.base);
    assert.is(root.mode & 0o777, 0o700);
    assert.is(statSync(join(mountPath, 'starts')).uid, TENANT_UID_RANGE_DEFAULT.base);
    const image = readdirSync(join(node.dataDir, 'volumes', 'default')).find((entry) => entry.endsWith('.ext4'));
    assert.ok(image, 'the backing file sits beside its mount point');

    // A reboot: the agent down, its workloads gone, the mount and loop device gone. The agent starts the
    // app again; the volume is mounted before it, and the app appends to what it wrote before.
    await node.stop();
    killWorkloadsUnder(cluster.root);
    assert.is(spawnSync('umount', [mountPath]).status, 0);
    assert.is(spawnSync('losetup', ['-d', device!]).status, 0);
    node.start(['agent']);
    await node.waitHealthy();
    const again = await eventually('the app to write again', () => {
      const text = existsSync(join(mountPath, 'starts')) ? readFileSync(join(mountPath, 'starts'), 'utf8') : '';
      return text.split('\n').length > 2 ? text : undefined;
    }, 60_000, 200);
    assert.ok(again.startsWith(written), `what it wrote before is kept: ${again}`);
    assert.match(again.slice(written.length), /^started \d+ [\d.]+\n$/);
    assert.ok((await mountSourceOf(mountPath))?.startsWith('/dev/loop'), 'mounted again');

    const removed = await node.request('DELETE', '/v1/apps/default/writer');
    assert.is(removed.status, 200, JSON.stringify(removed.body));
    await eventually('the app to stop', async () => ((await node.request('GET', '/v1/instances')).body as { instances?: unknown[] }).instances?.length === 0 || undefined, 30_000, 200);
    const deleted = await node.request('DELETE', '/v1/volumes/default/appdata');
    assert.is(deleted.status, 200, JSON.stringify(deleted.body));
    const imagePath = join(node.dataDir, 'volumes', 'default', image!);
    await eventually('the volume to be removed from the node', async () => (!existsSync(imagePath) && (await mountSourceOf(mountPath)) === undefined) || undefined, 30_000, 200).catch((error: Error) => {
      console.log(spawnSync('sh', ['-c', `for f in /proc/[0-9]*/mountinfo; do grep -q appdata $f 2>/dev/null && { p=\${f%/mountinfo}; echo "$p $(tr '\\0' ' ' < $p/cmdline | cut -c1-200)"; readlink $p/ns/mnt; grep appdata $f; }; done; readlink /proc/self/ns/mnt`], { encoding: 'utf8' }).stdout);
      throw error;
    });
    assert.not.ok(existsSync(mountPath), `the mount point is gone: ${spawnSync('ls', ['-laR', mountPath], { encoding: 'utf8' }).stdout}`);
    assert.not.ok(spawnSync('losetup', ['-a'], { encoding: 'utf8' }).stdout.includes(cluster.root), 'no loop device of this cluster is left');
  } finally {
    await node.stop();
    releaseVolumesUnder(cluster.root);
  }
}));

test.run();
