/**
 * A stateful container on an encrypted volume across hosts (a case of
 * `network-hosts.test.ts`, on its cluster). Tenant acme's `db` (busybox, a
 * Postgres stand-in) appends a line to `/data/log` at every start, writes a
 * marker file once, and tries to fill its 16 MiB volume:
 *   - the fill fails inside the container with ENOSPC, and the node goes on;
 *   - the node's view of the volume is gocryptfs, and its backing file (the
 *     ext4 image) holds none of the marker's bytes, though the view reads
 *     them back;
 *   - the data stays across a container kill, a restart of the node's agent
 *     and a rolling update (each start appends; nothing is lost);
 *   - tenant beta cannot reach it: a bind of acme's folder is refused, and
 *     on the node the view's root is acme's user's, mode 0700, which beta's
 *     user cannot list;
 *   - a backup taken through n1 restores into a new encrypted volume on
 *     another node with the same log;
 *   - `volumes move` carries it to another node, where db starts and
 *     appends, and the old node's copy goes.
 * Its volumes are deleted at the end, and their mounts are gone.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'undici';
import * as assert from 'uvu/assert';
import { dataDirApiAgent } from '../../src/api/tls.js';
import { runCli } from '../../src/cli/test/run-cli.js';
import { mountAt } from '../../src/executor/volume-tool.js';
import { STATE_VERSION } from '../../src/state/version.js';
import { sleepPids, until } from './host-agents.js';
import type { HostCluster } from './host-cluster.js';
import { STOP_GRACE_LINE, type NetworkCase } from './network-probes.js';

/** db's command ends in `sleep <this>`: unique, so the test finds its process. */
const SLEEP_SECONDS = '3659';
/** What the marker file repeats: the backing file must not hold it. */
const MARKER = 'hivemind-volume-e2e-plaintext';
const MiB = 1024 ** 2;

/** The Compose file of db, generation `generation` (a change of it is a rolling update). */
function dbFile(image: string, generation: string): string {
  const bb = '/bin/busybox';
  const script = [
    `echo "$$GENERATION" >> /data/log`,
    `if [ ! -f /data/marker ]; then ${bb} yes ${MARKER} | head -c 1000000 > /data/marker; fi`,
    // Past the volume's size: dd fails with ENOSPC; the space is given back and dd's words kept.
    `dd if=/dev/zero of=/data/fill bs=1M count=64 2> /tmp/dd.err; ${bb} rm -f /data/fill; ${bb} cp /tmp/dd.err /data/dd.err`,
    `${bb} sync`,
    `exec sleep ${SLEEP_SECONDS}`,
  ].join('; ');
  return [
    'services:',
    '  db:',
    `    image: ${image}`,
    `    command: ${JSON.stringify(['sh', '-c', script])}`,
    STOP_GRACE_LINE,
    // The case kills db twice and waits for it to start again: the default delay (5 s) was most of each wait.
    '    deploy: { restart_policy: { delay: 500ms } }',
    `    environment: { GENERATION: ${generation} }`,
    '    volumes: ["data:/data"]',
    'volumes:',
    '  data: { x-hivemind: { size: 16M, encrypted: true } }',
    '',
  ].join('\n');
}

interface VolumeRecord {
  tenant: string;
  name: string;
  node?: string;
  moving?: string;
  encrypted?: boolean;
  createdIndex: number;
}

async function volumeOf(cluster: HostCluster, tenant: string, name: string): Promise<VolumeRecord | undefined> {
  const { volumes } = (await cluster.api('GET', `/v1/volumes?tenant=${tenant}`)) as { volumes: VolumeRecord[] };
  return volumes.find((volume) => volume.name === name);
}

/** Where node `node` mounts the view of acme's volume `name`. */
function viewOf(cluster: HostCluster, node: string, name: string): string {
  return join(cluster.dataRoot, node, 'volumes', 'acme', name);
}

/** The lines of db's log on `node`, or a reason there are none yet. */
function logOn(cluster: HostCluster, node: string, name = 'data'): string[] | string {
  const path = join(viewOf(cluster, node, name), 'log');
  if (!existsSync(path)) return `${path} is absent`;
  return readFileSync(path, 'utf8').split('\n').filter((line) => line !== '');
}

async function logHas(cluster: HostCluster, node: string, lines: readonly string[], what: string, timeoutMs = 60_000): Promise<void> {
  await until(what, async () => {
    const log = logOn(cluster, node);
    return typeof log !== 'string' && log.length === lines.length && log.every((line, position) => line === lines[position]) ? true : `log: ${JSON.stringify(log)}`;
  }, timeoutMs);
}

/** Every mount under the cluster's data folder of acme's volumes. */
function volumeMounts(cluster: HostCluster): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((line) => line.split(' ')[4] ?? '')
    .filter((path) => path.startsWith(cluster.dataRoot) && path.includes('/volumes/acme/'));
}

export const volumeCase: NetworkCase = {
  title: 'a container keeps its encrypted volume across a kill, an agent restart, an update and a move; ENOSPC inside; the disk shows none of it; a backup restores it',
  sleepSeconds: [SLEEP_SECONDS],
  runcApps: [{ tenant: 'acme', app: 'db' }],
  async body(cluster) {
    const { api, image, nodes } = cluster;
    // Encrypted volumes need this release's cluster version, raised once every node runs it.
    await until('the cluster version is raised', async () => {
      const status = (await api('GET', '/v1/status')) as { clusterVersion?: number };
      return (status.clusterVersion ?? 0) >= STATE_VERSION ? true : `cluster version ${status.clusterVersion}`;
    }, 30_000);
    await api('PUT', '/v1/tenants/acme', {});
    await api('PUT', '/v1/tenants/beta', {});
    await api('POST', '/v1/deploy', { fileName: 'db.yaml', content: dbFile(image.name, 'one'), tenant: 'acme' });
    const bound = await until('db binds its volume to a node', async () => {
      const volume = await volumeOf(cluster, 'acme', 'data');
      return volume?.node !== undefined ? volume : `volume: ${JSON.stringify(volume)}`;
    }, 60_000);
    assert.is(bound.encrypted, true);
    const home = bound.node!;
    // Run alone, this case's first start fetches the image from n1 (the overlay case does it otherwise).
    await logHas(cluster, home, ['one'], 'db wrote its first line', 180_000);

    // Full inside, not on the node. (dd's words are copied after the fill, after the first line.)
    const ddErrorPath = join(viewOf(cluster, home, 'data'), 'dd.err');
    const { ddError } = await until('db tried to fill its volume', async () => {
      const text = existsSync(ddErrorPath) ? readFileSync(ddErrorPath, 'utf8') : '';
      // cp makes the file, then writes it: an empty one is read again.
      return text.includes('\n') ? { ddError: text } : `${ddErrorPath}: ${JSON.stringify(text)}`;
    }, 60_000);
    assert.match(ddError, /No space left on device/, `dd in the container: ${ddError}`);
    // The view is gocryptfs; the backing file holds none of what the view reads back.
    const view = viewOf(cluster, home, 'data');
    assert.is((await mountAt(view))?.type, 'fuse.gocryptfs');
    assert.ok(readFileSync(join(view, 'marker'), 'utf8').startsWith(`${MARKER}\n${MARKER}`), 'the view reads the marker back');
    spawnSync('sync');
    const backing = join(cluster.dataRoot, home, 'volumes', 'acme', `data.${bound.createdIndex}.ext4`);
    assert.ok(existsSync(backing), `${backing} exists`);
    assert.not.ok(readFileSync(backing).includes(Buffer.from(MARKER)), 'the backing file holds none of the marker');

    // Tenant beta: acme's folder is not a host path it may bind.
    const bind = await cluster.client.call(nodes[0]!.origin, 'POST', '/v1/deploy', { fileName: 'peek.yaml', tenant: 'beta', content: `services:\n  peek:\n    image: ${image.name}\n    command: ["sleep", "${SLEEP_SECONDS}"]\n    volumes: ["${view}:/peek"]\n` });
    assert.ok(bind.kind === 'answer' && bind.status === 403, `beta binding acme's volume: ${JSON.stringify(bind)}`);
    // On the node, the view's root is acme's user's alone: beta's user cannot list it, acme's can (so the check can fail).
    const tenantOffset = async (tenant: string): Promise<number> => ((await api('GET', `/v1/tenants/${tenant}`)) as { uidOffset?: number }).uidOffset ?? 0;
    const root = statSync(view);
    assert.is(root.mode & 0o777, 0o700, `the view's root: mode ${(root.mode & 0o777).toString(8)}`);
    assert.ok(root.uid !== 0, 'the view\'s root belongs to acme\'s user, not root');
    const uidBase = root.uid - (await tenantOffset('acme'));
    // From inside the view (a workload gets it bound, not through the data folder, which only root may pass).
    const listAs = (uid: number): ReturnType<typeof spawnSync> => spawnSync('setpriv', [`--reuid=${uid}`, `--regid=${uid}`, '--clear-groups', '--', '/bin/ls', '.'], { cwd: view, encoding: 'utf8' });
    const asAcme = listAs(root.uid);
    assert.is(asAcme.status, 0, `acme's user lists its volume: ${String(asAcme.stderr)}`);
    const asBeta = listAs(uidBase + (await tenantOffset('beta')));
    assert.ok(asBeta.status !== 0 && /Permission denied/.test(String(asBeta.stderr)), `beta's user listing acme's volume: ${String(asBeta.stderr)}`);

    // A killed container starts again and appends.
    const [pid] = sleepPids([SLEEP_SECONDS]);
    assert.ok(pid !== undefined, 'db runs');
    process.kill(pid, 'SIGKILL');
    await logHas(cluster, home, ['one', 'one'], 'db started again after its kill');

    // The node's agent restarts: the volume stays mounted and db keeps its data.
    const homeAgent = nodes.find((node) => node.name === home)!;
    await homeAgent.stop();
    homeAgent.start('agent');
    await until(`${home} serves again`, async () => ((await cluster.client.call(homeAgent.origin, 'GET', '/v1/health', undefined, 1000)).kind === 'answer' ? true : 'no answer'), 60_000);
    const [again] = sleepPids([SLEEP_SECONDS]);
    assert.ok(again !== undefined, 'db runs after the restart');
    process.kill(again, 'SIGKILL');
    await logHas(cluster, home, ['one', 'one', 'one'], 'the restarted agent started db again, its data kept');

    // A rolling update: the new version starts on the same data.
    await api('POST', '/v1/deploy', { fileName: 'db.yaml', content: dbFile(image.name, 'two'), tenant: 'acme' });
    await logHas(cluster, home, ['one', 'one', 'one', 'two'], 'the updated db appended');

    // A backup through n1, restored into a new encrypted volume on another node.
    const elsewhere = nodes.find((node) => node.name !== home)!;
    const dispatcher = dataDirApiAgent(join(cluster.dataRoot, 'n1'));
    const headers = { authorization: `Bearer ${cluster.token}` };
    const backup = await request(`${nodes[0]!.origin}/v1/volumes/acme/data/backup`, { dispatcher, headers });
    assert.is(backup.statusCode, 200);
    const archive = Buffer.from(await backup.body.arrayBuffer());
    await api('PUT', '/v1/volumes/acme/copy', { sizeBytes: 16 * MiB, encrypted: true });
    // n1 answered the write once it applied it; the restore goes through n1 to the node it names, which looks it up too
    // (the CLI passes the write's index; here, the node is asked until it has it).
    await until(`${elsewhere.name} has the copy`, async () => {
      const answer = await cluster.client.call(elsewhere.origin, 'GET', '/v1/volumes?tenant=acme', undefined, 5000);
      const names = answer.kind === 'answer' ? ((answer.body as { volumes?: { name: string }[] }).volumes ?? []).map((volume) => volume.name) : [];
      return names.includes('copy') ? true : `volumes there: ${names.join(', ') || 'none'}`;
    }, 30_000);
    const restore = await request(`${nodes[0]!.origin}/v1/volumes/acme/copy/restore?node=${elsewhere.name}`, { dispatcher, method: 'PUT', headers: { ...headers, 'content-type': 'application/zstd' }, body: archive });
    assert.is(restore.statusCode, 200, await restore.body.text());
    assert.equal(logOn(cluster, elsewhere.name, 'copy'), ['one', 'one', 'one', 'two'], 'the restored copy holds the log');
    assert.is((await mountAt(viewOf(cluster, elsewhere.name, 'copy')))?.type, 'fuse.gocryptfs', 'restored encrypted');

    // A move, as a user runs it (the CLI drives its steps: stop, copy, end), carries the data; db starts there and appends; the old copy goes.
    const moved = await runCli(['--addr', `${nodes[0]!.host.address}:7070`, '--data-dir', join(cluster.dataRoot, 'n1'), '--token', cluster.token, 'volumes', 'move', 'acme/data', '--to', elsewhere.name], { timeoutMs: 180_000 });
    assert.is(moved.status, 0, `volumes move: ${moved.stderr}`);
    // A node that never ran db fetches its image from a peer first.
    await logHas(cluster, elsewhere.name, ['one', 'one', 'one', 'two', 'two'], 'db started on the volume\'s new node and appended', 180_000);
    await until('the old node\'s copy goes', async () => (existsSync(backing) ? `${backing} is still there` : true), 60_000);

    await api('DELETE', '/v1/apps/acme/db');
    await until('db is gone', async () => (sleepPids([SLEEP_SECONDS]).length === 0 ? true : 'db still runs'), 60_000);
    await api('DELETE', '/v1/volumes/acme/data');
    await api('DELETE', '/v1/volumes/acme/copy');
    // A node unmounts, then removes the volume's files: wait for both.
    await until('the volumes\' mounts and files are gone', async () => {
      const left = volumeMounts(cluster);
      if (left.length > 0) return `mounted: ${left.join(', ')}`;
      for (const node of nodes) {
        const folder = join(cluster.dataRoot, node.name, 'volumes', 'acme');
        const files = existsSync(folder) ? readdirSync(folder) : [];
        if (files.length > 0) return `${node.name} keeps ${files.join(', ')} of acme's volumes`;
      }
      return { gone: true };
    }, 60_000);
  },
};
