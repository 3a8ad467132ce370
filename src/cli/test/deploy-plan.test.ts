// How `hivemind deploy --dry-run` words a plan, and what `deploy` sends.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { deployRequest, planLines } from '../commands/deploy.js';
import { usedVariables } from '../commands/app-file-input.js';

const usage = (instances: number, memoryBytes: number): { cpuMillis: number; memoryBytes: number; instances: number; apps: number; volumes: number; storageBytes: number } => ({
  cpuMillis: instances * 500,
  memoryBytes,
  instances,
  apps: 1,
  volumes: 0,
  storageBytes: 0,
});

test('a plan: create, update with its changes, scale, unchanged, refused, creations, quota', () => {
  const lines = planLines({
    project: 'shop',
    apps: [
      { tenant: 'default', name: 'web', action: 'update', fromVersion: 2, toVersion: 3, fromReplicas: 2, replicas: 3, changes: ['replicas 2 → 3', 'image nginx:1.25 → nginx:1.27'], start: 3, stop: 2, strategy: 'rolling' },
      { tenant: 'default', name: 'db', action: 'unchanged', fromVersion: 1, toVersion: 1, fromReplicas: 1, replicas: 1, changes: [], start: 0, stop: 0 },
      { tenant: 'default', name: 'worker', action: 'scale', fromVersion: 4, toVersion: 4, fromReplicas: 5, replicas: 2, changes: ['replicas 5 → 2'], start: 0, stop: 3 },
      { tenant: 'default', name: 'cache', action: 'create', toVersion: 1, replicas: 1, changes: [], start: 1, stop: 0 },
      { tenant: 'default', name: 'blog', action: 'refused', fromVersion: 1, fromReplicas: 1, replicas: 1, changes: [], start: 0, stop: 0, owner: 'blog' },
    ],
    creates: { volumes: ['default/data'], secrets: ['default/db-password'] },
    quotas: [{ tenant: 'default', before: usage(3, 512 * 1024 ** 2), after: usage(5, 3 * 1024 ** 3), quota: { memoryBytes: 2 * 1024 ** 3 } }],
  });
  assert.equal(lines, [
    'project shop',
    '~ default/web: version 2 → 3, rolling update (start 3, stop 2 instances)',
    '    replicas 2 → 3',
    '    image nginx:1.25 → nginx:1.27',
    '= default/db: unchanged at version 1',
    '~ default/worker: stays at version 4, replicas 5 → 2 (start 0, stop 3 instances)',
    '+ default/cache: create version 1 with 1 replica (start 1, stop 0 instances)',
    '! default/blog: belongs to project "blog"; deploy with --force to take it over',
    '+ volume default/data: created',
    '+ secret default/db-password: created from the file',
    'tenant default: instances 3 → 5, cpu 1.5 cores → 2.5 cores, memory 512 MiB → 3 GiB of 2 GiB (over quota)',
  ]);
  assert.equal(planLines({ apps: [{ tenant: 'default', name: 'db', action: 'unchanged', fromVersion: 1, toVersion: 1, replicas: 1, changes: [], start: 0, stop: 0 }], quotas: [] }).at(-1), 'nothing to change');
});

test('the request: one file as fileName and content, several as files; only what is set', () => {
  const one = deployRequest({ sources: [{ name: 'a.yml', text: 'x' }], options: { projectFallback: 'shop', variables: {}, sets: [], profiles: [], files: {} } }, { force: false, dryRun: false });
  assert.equal(one, { fileName: 'a.yml', content: 'x', projectFallback: 'shop' });
  const two = deployRequest(
    { sources: [{ name: 'a.yml', text: 'x' }, { name: 'b.yml', text: 'y' }], options: { project: 'p', variables: { A: '1' }, sets: ['web.image=x'], profiles: ['debug'], files: { './e.env': 'A=1' }, defaultTenant: 'acme' } },
    { force: true, dryRun: true },
  );
  assert.equal(two, {
    files: [{ fileName: 'a.yml', content: 'x' }, { fileName: 'b.yml', content: 'y' }],
    tenant: 'acme',
    project: 'p',
    variables: { A: '1' },
    attachments: { './e.env': 'A=1' },
    sets: ['web.image=x'],
    profiles: ['debug'],
    force: true,
    dryRun: true,
  });
});

test('only the variables the files name are sent', () => {
  const sources = [{ name: 'a.yml', text: 'image: "nginx:${TAG}"\nenvironment: [HOME_DIR, $PORT]\n' }];
  assert.equal(usedVariables({ TAG: '1', HOME: '/root', HOME_DIR: '/h', PORT: '80', SECRET_TOKEN: 'x', 'A.B': 'y' }, sources), { TAG: '1', HOME_DIR: '/h', PORT: '80' });
});

test.run();
