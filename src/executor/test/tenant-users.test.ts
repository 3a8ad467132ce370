// Which user a tenant's workloads run as, and where limits go: the tenant
// user range (parsed, checked against host accounts), workloadIdentity for
// confined and host-user tenants, and the cgroup mount table of v1, v2 and
// hybrid hosts. No process is started.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { appSpec } from '../../state/test/fixtures.js';
import type { Tenant } from '../../state/types.js';
import { CPU_QUOTA_US_MIN, ProcessCgroups, controllersFor, cpuQuotaUs, parseCgroupMounts } from '../cgroups.js';
import { hostAccountsIn, parseTenantUidRange, rangeProblem, workloadIdentity } from '../tenant-users.js';

const range = { base: 1_900_000_000, size: 100 };
const tenant = (overrides: Partial<Tenant> = {}): Tenant => ({ name: 'acme', quota: {}, createdIndex: 5, createdAt: 0, uidOffset: 7, ...overrides });
const processApp = appSpec({ tenant: 'acme', image: undefined, command: ['sleep', '1'], limits: {}, reservations: {} });

test('a confined tenant\'s process app runs as base + its offset; its image app only owns its volumes', () => {
  const identity = workloadIdentity(processApp, { tenant: tenant(), range });
  assert.equal(identity, { ok: true, identity: { runAs: { uid: 1_900_000_007, gid: 1_900_000_007 }, volumeOwner: { uid: 1_900_000_007, gid: 1_900_000_007 } } });
  const image = workloadIdentity(appSpec({ tenant: 'acme' }), { tenant: tenant(), range });
  assert.equal(image, { ok: true, identity: { volumeOwner: { uid: 1_900_000_007, gid: 1_900_000_007 } } });
});

test('a tenant that allows host users runs as the app\'s user or the agent\'s; refusals name the problem', () => {
  assert.equal(workloadIdentity({ ...processApp, user: 'www-data' }, { tenant: tenant({ settings: { hostUsers: true } }), range }), { ok: true, identity: {} });
  const user = workloadIdentity({ ...processApp, user: 'www-data' }, { tenant: tenant(), range });
  assert.ok(!user.ok && user.message.startsWith('user: process apps of tenant "acme" run as the tenant\'s own unprivileged user'), JSON.stringify(user));
  const mount = workloadIdentity({ ...processApp, volumes: [{ source: '/etc', target: '/etc', readOnly: true }] }, { tenant: tenant(), range });
  assert.ok(!mount.ok && mount.message.startsWith('volumes[0].source: host path "/etc"'), JSON.stringify(mount));
  const beyond = workloadIdentity(processApp, { tenant: tenant({ uidOffset: 100 }), range });
  assert.ok(!beyond.ok && beyond.message.includes('beyond this node\'s 100 tenant user ids'), JSON.stringify(beyond));
  const old = workloadIdentity(processApp, { tenant: tenant({ uidOffset: undefined }), range });
  assert.ok(!old.ok && old.message.includes('has no user id yet'), JSON.stringify(old));
  const taken = workloadIdentity(processApp, { tenant: tenant(), range, rangeProblem: 'taken' });
  assert.equal(taken, { ok: false, message: 'taken' });
  const missing = workloadIdentity(processApp, { tenant: undefined, range });
  assert.ok(!missing.ok && missing.message.includes('not in this node\'s replica'));
});

test('the range: parsed from BASE-LAST, refused when it holds a host account', () => {
  assert.equal(parseTenantUidRange('2000000-2000009'), { ok: true, range: { base: 2_000_000, size: 10 } });
  for (const bad of ['', '5-1', '100-200', '2000000', '2000000-3000000000', 'a-b']) {
    const parsed = parseTenantUidRange(bad);
    assert.ok(!parsed.ok && parsed.message.startsWith('HIVEMIND_TENANT_UIDS='), `${bad}: ${JSON.stringify(parsed)}`);
  }
  const folder = mkdtempSync(join(tmpdir(), 'hivemind-tenant-users-'));
  try {
    const passwd = join(folder, 'passwd');
    const group = join(folder, 'group');
    writeFileSync(passwd, 'root:x:0:0:root:/root:/bin/sh\nsquatter:x:1900000042:100::/home/s:/bin/sh\n');
    writeFileSync(group, 'root:x:0:\nclash:x:1900000099:\nfar:x:1900000100:\n');
    const accounts = hostAccountsIn(range, { passwd, group });
    assert.equal(accounts, ['passwd:squatter', 'group:clash']);
    assert.match(rangeProblem(range, accounts)!, /the tenant user ids 1900000000-1900000099 of this node are not the agent's alone: passwd:squatter, group:clash use them/);
    assert.is(rangeProblem(range, []), undefined);
  } finally {
    rmSync(folder, { recursive: true, force: true });
  }
});

const HYBRID = [
  'tmpfs /sys/fs/cgroup tmpfs rw,relatime,mode=755 0 0',
  'cgroup /sys/fs/cgroup/cpu,cpuacct cgroup rw,relatime,cpu,cpuacct 0 0',
  'cgroup /sys/fs/cgroup/memory cgroup rw,relatime,memory 0 0',
  'cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0',
  'proc /proc proc rw 0 0',
].join('\n');

test('cgroup mounts: v1 controllers by name (co-mounted ones share a folder), the v2 tree; limits to controllers and CFS quotas', () => {
  const hybrid = parseCgroupMounts(HYBRID);
  assert.is(hybrid.v1.get('memory'), '/sys/fs/cgroup/memory');
  assert.is(hybrid.v1.get('cpu'), '/sys/fs/cgroup/cpu,cpuacct');
  assert.is(hybrid.v1.get('cpuacct'), '/sys/fs/cgroup/cpu,cpuacct');
  assert.is(hybrid.v2, '/sys/fs/cgroup/unified');
  const pure = parseCgroupMounts('cgroup2 /sys/fs/cgroup cgroup2 rw,nsdelegate 0 0\n');
  assert.equal([...pure.v1.keys()], []);
  assert.is(pure.v2, '/sys/fs/cgroup');
  assert.is(parseCgroupMounts('cgroup2 /mnt/with\\040space cgroup2 rw 0 0').v2, '/mnt/with space');
  assert.equal(controllersFor({}), []);
  assert.equal(controllersFor({ memoryBytes: 1, cpuMillis: 1 }), ['memory', 'cpu']);
  assert.is(cpuQuotaUs(500), 50_000);
  assert.is(cpuQuotaUs(2000), 200_000);
  assert.is(cpuQuotaUs(1), CPU_QUOTA_US_MIN, 'below the kernel\'s smallest quota, raised to it');
});

test('a node without the controller refuses the limit, naming it; no limits need no cgroup', () => {
  const none = new ProcessCgroups({ scope: 'test', mountsText: 'proc /proc proc rw 0 0\n' });
  assert.is(none.controllerMount('memory'), undefined);
  assert.throws(() => none.create('default.web.0.1', { memoryBytes: 64 * 1024 * 1024 }), (error: Error & { code?: string }) =>
    error.code === 'CGROUP_UNAVAILABLE' && /cannot enforce a memory limit \(67108864 bytes\) on a process app: no cgroup hierarchy here has the memory controller/.test(error.message));
  assert.throws(() => none.create('default.web.0.1', { cpuMillis: 500 }), /cannot enforce a CPU limit \(500 millicores\)/);
  assert.equal(none.create('default.web.0.1', {}), { folders: [] });
});

test.run();
