// Tenants on a node, with real processes: tenant B's process app tries to
// read tenant A's secret file, A's log, the cluster key, the node's TLS key,
// the sealed CA key and the Raft log, and the kernel refuses every one (B
// runs as its own unprivileged user), while A reads its own secret. Then
// limits: a memory-limited process app is OOM-killed by the kernel and
// reported `oom-killed`; a CPU-limited one runs in a cgroup with its CFS
// quota; both cgroups go with their workloads. The test folder is opened
// (0755) and the Raft folder made the way LevelDB makes it (0755, files
// 0644), so nothing but the agent's own confinement stands in the way.
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DataDir } from '../../node/data-dir.js';
import { createClusterCa } from '../../security/certificates.js';
import { sealSecret, secretAssociatedData } from '../../state/secrets.js';
import { appSpec, registerNode } from '../../state/test/fixtures.js';
import type { AppSpec } from '../../state/types.js';
import { ProcessCgroups } from '../cgroups.js';
import { Executor } from '../executor.js';
import { memoryBackedRoot } from '../host.js';
import { ProcessRuntime } from '../process-runtime.js';
import { TENANT_UID_RANGE_DEFAULT } from '../tenant-users.js';
import { eventually } from './helpers.js';
import { TestCluster } from './services.js';

const root = mkdtempSync(join(tmpdir(), 'hivemind-tenants-'));
chmodSync(root, 0o755);
const dataDir = join(root, 'node');
const stateDir = join(dataDir, 'executor', 'process');
const executors: Executor[] = [];
const SECRET_VALUE = 'a-secret-of-tenant-a';

function processApp(overrides: Partial<AppSpec>): AppSpec {
  return appSpec({
    image: undefined,
    ports: [],
    limits: {},
    reservations: {},
    replicas: 1,
    restart: { condition: 'none', delayMs: 100, windowMs: 0 },
    stopGraceMs: 1000,
    ...overrides,
  });
}

function startExecutor(cluster: TestCluster): Executor {
  const made = new Executor(cluster.services('n1', dataDir), {
    runtimes: [new ProcessRuntime({ stateDir, pollIntervalMs: 100 })],
    reconcileIntervalMs: 300,
    statusFlushMs: 50,
    clusterKey: () => clusterKey,
  });
  executors.push(made);
  return made;
}

function place(cluster: TestCluster, tenant: string, app: string): string {
  const [instance] = cluster.machine.instances({ tenant, app });
  assert.ok(instance, `app ${tenant}/${app} has an instance`);
  cluster.ok({ type: 'instance.place', placements: [{ id: instance.id, node: 'n1' }] });
  return instance.id;
}

function uidOf(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find((entry) => entry.startsWith('Uid:'))!;
  return Number(line.split(/\s+/)[1]);
}

function logOf(id: string): string {
  try {
    return readFileSync(join(dataDir, 'executor', 'logs', `${id}.log`), 'utf8');
  } catch {
    return '';
  }
}

const clusterKey = new Uint8Array(32).fill(7);

test.after(async () => {
  for (const made of executors) await made.stop();
  const runtime = new ProcessRuntime({ stateDir });
  await runtime.open();
  for (const workload of await runtime.list()) {
    if (workload.state === 'running') await runtime.stop(workload.id, { signal: 'SIGKILL', graceMs: 0 });
    await runtime.remove(workload.id);
  }
  await runtime.close();
  rmSync(root, { recursive: true, force: true });
});

test('tenant B\'s process app cannot read tenant A\'s secret and log, the cluster key, the TLS key, the CA key or the Raft log', async () => {
  assert.ok(memoryBackedRoot() !== undefined, 'this host has a memory-backed folder for secrets');
  // The data directory as an agent leaves it: private files by DataDir, the Raft folder by LevelDB's defaults.
  mkdirSync(dataDir, { mode: 0o755 });
  chmodSync(dataDir, 0o755);
  const files = new DataDir(dataDir);
  files.writeClusterKey(clusterKey);
  files.writeToken('hm1.join-token');
  files.writeAdminToken('hm1.admin-token');
  const ca = await createClusterCa({ now: Date.now() });
  const sealedCa = sealSecret(clusterKey, ca.keyPem, 'hivemind/ca-key');
  files.writeBootstrapCa({ certificatePem: ca.certificatePem, keySealed: sealedCa.ciphertext, keyNonce: sealedCa.nonce });
  files.writeTls({ keyPem: ca.keyPem, certificatePem: ca.certificatePem, caPems: [ca.certificatePem] });
  mkdirSync(join(dataDir, 'raft'), { mode: 0o755 });
  chmodSync(join(dataDir, 'raft'), 0o755);
  writeFileSync(join(dataDir, 'raft', '000005.log'), 'app specs and sealed secrets', { mode: 0o644 });
  chmodSync(join(dataDir, 'raft', '000005.log'), 0o644);

  const cluster = new TestCluster();
  cluster.ok(registerNode('n1'));
  cluster.ok({ type: 'tenant.create', name: 'tenant-a', quota: {} });
  cluster.ok({ type: 'tenant.create', name: 'tenant-b', quota: {} });
  const sealed = sealSecret(clusterKey, SECRET_VALUE, secretAssociatedData('tenant-a', 'db'));
  cluster.ok({ type: 'secret.put', tenant: 'tenant-a', name: 'db', ciphertext: sealed.ciphertext, nonce: sealed.nonce });
  // A reads its own secret (the control: a read that works shows the others are refused, not broken).
  cluster.ok({
    type: 'app.deploy',
    spec: processApp({ name: 'holder', tenant: 'tenant-a', command: ['/bin/sh', '-c', 'echo "own: $(cat "$HIVEMIND_SECRETS_DIR/db")"; exec sleep 600'], hivemind: { secrets: ['db'] } }),
  });
  const holder = place(cluster, 'tenant-a', 'holder');
  const executor = startExecutor(cluster);
  await executor.start();
  await eventually('A to read its own secret', () => logOf(holder).includes(`own: ${SECRET_VALUE}`), 20_000);

  const scope = createHash('sha256').update(stateDir).digest('hex').slice(0, 12);
  const targets = {
    'secret of A': join(memoryBackedRoot()!, `hivemind-${scope}`, holder, 'db'),
    'log of A': join(dataDir, 'executor', 'logs', `${holder}.log`),
    'cluster key': join(dataDir, 'cluster.key'),
    'join token': join(dataDir, 'token'),
    'admin token': join(dataDir, 'admin-token'),
    'TLS key': join(dataDir, 'tls', 'node.key'),
    'CA key': join(dataDir, 'tls', 'bootstrap-ca.json'),
    'Raft log': join(dataDir, 'raft', '000005.log'),
  };
  for (const path of Object.values(targets)) assert.ok(existsSync(path), `${path} exists (the test reads real files)`);
  const script = Object.entries(targets)
    .map(([what, path]) => `if out=$(cat '${path}' 2>&1); then echo "READ ${what}: $out"; else echo "REFUSED ${what}: $out"; fi`)
    .join('; ');
  cluster.ok({ type: 'app.deploy', spec: processApp({ name: 'prober', tenant: 'tenant-b', command: ['/bin/sh', '-c', `${script}; echo probes done; exec sleep 600`] }) });
  const prober = place(cluster, 'tenant-b', 'prober');
  await eventually('B to finish its probes', () => logOf(prober).includes('probes done'), 20_000);
  const output = logOf(prober);
  for (const what of Object.keys(targets)) {
    assert.match(output, new RegExp(`REFUSED ${what}: .*Permission denied`), `${what}:\n${output}`);
  }
  assert.not.match(output, /READ /);
  assert.not.ok(output.includes(SECRET_VALUE));

  // Each runs as its tenant's own user: base + the tenant's offset.
  const pidOf = (id: string): number => JSON.parse(readFileSync(join(stateDir, `${id}.json`), 'utf8')).pid as number;
  const commandOf = (wrapper: number): number => Number(readFileSync(`/proc/${wrapper}/task/${wrapper}/children`, 'utf8').trim().split(/\s+/)[0]);
  const noNewPrivileges = (pid: number): string | undefined => readFileSync(`/proc/${pid}/status`, 'utf8').match(/^NoNewPrivs:\s+(\d)/m)?.[1];
  assert.is(uidOf(pidOf(holder)), 0, 'the wrapper stays the agent\'s');
  assert.is(uidOf(commandOf(pidOf(holder))), TENANT_UID_RANGE_DEFAULT.base + cluster.machine.tenant('tenant-a')!.uidOffset!);
  assert.is(uidOf(commandOf(pidOf(prober))), TENANT_UID_RANGE_DEFAULT.base + cluster.machine.tenant('tenant-b')!.uidOffset!);
  assert.is(noNewPrivileges(commandOf(pidOf(prober))), '1', 'a setuid binary cannot raise it');
  for (const name of ['holder', 'prober']) cluster.ok({ type: 'app.scale', tenant: name === 'holder' ? 'tenant-a' : 'tenant-b', name, replicas: 0 });
  await eventually('the secrets folder to go with its workload', () => !existsSync(join(memoryBackedRoot()!, `hivemind-${scope}`)), 20_000);

  await executor.stop();
});

test('a memory-limited process app is OOM-killed by the kernel and reported oom-killed; a CPU limit is a CFS quota; the cgroups go with the workloads', async () => {
  const cgroups = new ProcessCgroups({ scope: 'probe' });
  assert.ok(cgroups.controllerMount('memory') && cgroups.controllerMount('cpu'), 'this host has memory and cpu cgroups (v1 or v2)');
  const cluster = new TestCluster();
  cluster.ok(registerNode('n1'));
  const grow = "const kept = []; setInterval(() => { for (let i = 0; i < 16; i++) kept.push(Buffer.alloc(1 << 20, 1)); }, 10);";
  cluster.ok({ type: 'app.deploy', spec: processApp({ name: 'hungry', command: [process.execPath, '-e', grow], limits: { memoryBytes: 96 * 1024 * 1024 } }) });
  cluster.ok({ type: 'app.deploy', spec: processApp({ name: 'capped', command: ['/bin/sh', '-c', 'exec sleep 600'], limits: { cpuMillis: 250 } }) });
  const hungry = place(cluster, 'default', 'hungry');
  const capped = place(cluster, 'default', 'capped');
  const executor = startExecutor(cluster);
  await executor.start();

  const status = await eventually('the hungry app to be reported oom-killed', () => {
    const found = cluster.machine.instance(hungry)?.status;
    return found?.state === 'oom-killed' ? found : undefined;
  }, 30_000);
  assert.is(status.exitCode, 137);
  assert.match(status.message ?? '', /out of memory/);

  await eventually('the capped app to run', () => cluster.machine.instance(capped)?.status.state === 'running', 20_000);
  const record = JSON.parse(readFileSync(join(stateDir, `${capped}.json`), 'utf8')) as { pid: number; cgroups: { folders: { version: number; path: string }[] } };
  const [folder] = record.cgroups.folders;
  assert.ok(folder, 'the capped app has a cgroup');
  const quota = folder.version === 1 ? readFileSync(join(folder.path, 'cpu.cfs_quota_us'), 'utf8').trim() : readFileSync(join(folder.path, 'cpu.max'), 'utf8').trim().split(' ')[0];
  assert.is(quota, '25000');
  const members = readFileSync(join(folder.path, 'cgroup.procs'), 'utf8').trim().split('\n').map(Number);
  assert.ok(members.includes(record.pid), `the wrapper (${record.pid}) is in ${folder.path}: ${members.join(' ')}`);

  // Scaling both to 0 stops and removes them, and their cgroups with them.
  const hungryFolder = (JSON.parse(readFileSync(join(stateDir, `${hungry}.json`), 'utf8')) as typeof record).cgroups.folders[0]!.path;
  for (const name of ['hungry', 'capped']) cluster.ok({ type: 'app.scale', tenant: 'default', name, replicas: 0 });
  await eventually('both cgroups to be removed', () => !existsSync(folder.path) && !existsSync(hungryFolder), 20_000);
  assert.not.ok(existsSync(dirname(folder.path)), 'the agent\'s cgroup folder goes with its last workload');
  await executor.stop();
});

test.run();
