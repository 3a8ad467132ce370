// Compose's hostname, ulimits, tmpfs, extra_hosts, cap_add/cap_drop and init
// against a real containerd and runc, checked from inside the container:
// `hostname`, `ulimit -n`, /proc/mounts, /etc/hosts, CapEff in
// /proc/self/status, PID 1; exec in the container keeps an unlimited rlimit;
// configs (a file, a folder) are read-only files where the app mounts them.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { effectiveCapabilities, LINUX_CAPABILITIES } from '../../../state/capabilities.js';
import type { WorkloadSpec } from '../../runtime.js';
import { findStaticInit, type ContainerdRuntime } from '../containerd-runtime.js';
import { subnetGateway } from '../name-files.js';
import type { CniNetwork } from '../network.js';
import { TestContainerd, busyboxWorkload, eventually, skipReason, closeTestRuntime, openTestRuntime } from './harness.js';

const skip = skipReason();
const containerd = new TestContainerd();
// A bridge and subnet of this file's own, so it runs beside the other containerd tests.
const SUBNET = '10.117.0.0/16';
let runtime: ContainerdRuntime;
let network: CniNetwork;

function workload(id: string, overrides: Partial<WorkloadSpec> = {}): WorkloadSpec {
  return busyboxWorkload(containerd.dataDir, id, { stopGraceMs: 1_000, ...overrides });
}

function logOf(id: string): string {
  const path = join(containerd.dataDir, 'logs', `${id}.log`);
  return existsSync(path) ? readFileSync(path, 'utf8') : '';
}

/** The CapEff mask (hex, as /proc/self/status shows it) of a set of capabilities: bit N is capability number N. */
function capabilityMask(names: readonly string[]): string {
  let mask = 0n;
  for (const name of names) mask |= 1n << BigInt(LINUX_CAPABILITIES.indexOf(name));
  return mask.toString(16).padStart(16, '0');
}

test.before(async () => {
  if (skip !== undefined) {
    console.log(`skipping the container settings tests: ${skip}`);
    return;
  }
  await containerd.start();
  ({ runtime, network } = await openTestRuntime(containerd, { bridge: 'hmk7', subnet: SUBNET }));
});

test.after(async () => {
  if (skip !== undefined) return;
  await closeTestRuntime({ runtime, network });
  await containerd.stop();
});

test('hostname, ulimits, tmpfs, extra_hosts and capabilities are what the container sees', async () => {
  if (skip !== undefined) return;
  const id = 'settings-1';
  const script = [
    'echo "hostname=$(hostname)"',
    'echo "nofile=$(ulimit -Sn):$(ulimit -Hn)"',
    'echo "core=$(ulimit -c)"',
    'grep " /scratch " /proc/mounts',
    'echo data > /scratch/file && echo scratch-writable',
    'grep -v "^#" /etc/hosts',
    'grep CapEff /proc/self/status',
    'echo done',
    'sleep 1000',
  ].join('; ');
  const container = {
    hostname: 'web1',
    ulimits: [
      { name: 'nofile', soft: 2048, hard: 4096 },
      { name: 'core', soft: -1, hard: -1 },
    ],
    tmpfs: [{ target: '/scratch', sizeBytes: 1024 * 1024, mode: 0o750 }],
    extraHosts: [
      { host: 'db.local', address: '10.1.2.3' },
      { host: 'host.docker.internal', address: 'host-gateway' },
    ],
    capDrop: ['CAP_NET_RAW', 'CAP_MKNOD'],
    capAdd: ['CAP_SYS_TIME'],
  };
  await runtime.start(workload(id, { command: ['sh', '-c', script], container }));
  await eventually('the output', () => logOf(id).includes('done'));
  const output = logOf(id);
  const lines = output.split('\n');
  assert.ok(lines.includes('hostname=web1'), output);
  assert.ok(lines.includes('nofile=2048:4096'), output);
  assert.ok(lines.includes('core=unlimited'), output);
  const scratch = lines.find((line) => line.includes(' /scratch '));
  assert.match(scratch ?? '', /^tmpfs \/scratch tmpfs rw,nosuid,nodev,noexec,.*size=1024k,mode=750/, output);
  assert.ok(lines.includes('scratch-writable'), output);
  assert.ok(lines.includes('10.1.2.3\tdb.local'), output);
  assert.ok(lines.includes(`${subnetGateway(SUBNET)}\thost.docker.internal`), `host-gateway is the bridge's address: ${output}`);
  assert.ok(lines.some((line) => /\tweb1$/.test(line)), `the hostname has its hosts line: ${output}`);
  const expected = capabilityMask(effectiveCapabilities({ add: container.capAdd, drop: container.capDrop }));
  assert.ok(lines.includes(`CapEff:\t${expected}`), `CapEff ${expected} (no NET_RAW, no MKNOD, SYS_TIME): ${output}`);
  // An exec takes the container's process spec back, unlimited core included.
  const exec = await runtime.exec(id, ['sh', '-c', 'ulimit -c; hostname'], { timeoutMs: 10_000 });
  assert.is(exec.exitCode, 0, exec.output);
  assert.is(exec.output, 'unlimited\nweb1\n');
  // hivemind exec's form: stdout and stderr apart, as they come.
  const heard: Record<'stdout' | 'stderr', string> = { stdout: '', stderr: '' };
  const streamed = await runtime.exec(id, ['sh', '-c', 'echo out; echo err >&2; sleep 0.3; echo more; exit 4'], { timeoutMs: 10_000, output: (stream, chunk) => (heard[stream] += Buffer.from(chunk).toString('utf8')) });
  assert.is(streamed.exitCode, 4);
  assert.equal(heard, { stdout: 'out\nmore\n', stderr: 'err\n' });
  await runtime.stop(id, { signal: 'SIGKILL', graceMs: 0 });
  await runtime.remove(id);
});

test('init: a static tini runs as PID 1 in front of the command, or the start is refused saying what to install', async () => {
  if (skip !== undefined) return;
  const id = 'init-1';
  const spec = workload(id, { command: ['sh', '-c', 'tr "\\0" " " < /proc/1/cmdline; echo; echo "me=$$"; echo done; sleep 1000'], container: { init: true } });
  if (findStaticInit() === undefined) {
    try {
      await runtime.start(spec);
      assert.unreachable('started without an init on the node');
    } catch (error) {
      assert.match((error as Error).message, /init: true needs a static init on the node \(install Debian's tini package/);
    }
    assert.not.ok((await runtime.list()).some((workload) => workload.id === id), 'nothing is left of the refused start');
    return;
  }
  await runtime.start(spec);
  await eventually('the output', () => logOf(id).includes('done'));
  assert.match(logOf(id), /^\/sbin\/hivemind-init -- sh -c /m);
  assert.not.match(logOf(id), /^me=1$/m);
  await runtime.stop(id, { signal: 'SIGTERM', graceMs: 5_000 });
  await runtime.remove(id);
});

test('configs: a file and a folder are mounted read-only where the app says, and removed with the container', async () => {
  if (skip !== undefined) return;
  const id = 'configs-1';
  const base64 = (text: string): string => Buffer.from(text).toString('base64');
  const configs = [
    { source: './prometheus.yml', target: '/etc/prometheus/prometheus.yml', files: [{ path: '', data: base64('scrape_interval: 15s\n') }] },
    { source: './certs', target: '/etc/nginx/certs', files: [{ path: 'site.crt', data: base64('CRT\n') }, { path: 'live/site.key', data: base64('KEY\n') }], mode: 0o440 },
  ];
  const script = [
    'cat /etc/prometheus/prometheus.yml',
    'cat /etc/nginx/certs/site.crt /etc/nginx/certs/live/site.key',
    'stat -c %a /etc/nginx/certs/site.crt /etc/prometheus/prometheus.yml',
    '(echo x >> /etc/prometheus/prometheus.yml) 2>/dev/null && echo writable || echo read-only',
    '(touch /etc/nginx/certs/new) 2>/dev/null && echo writable || echo read-only',
    'echo done',
    'sleep 1000',
  ].join('; ');
  await runtime.start(workload(id, { command: ['sh', '-c', script], configs }));
  await eventually('the output', () => logOf(id).includes('done'));
  assert.is(logOf(id), 'scrape_interval: 15s\nCRT\nKEY\n440\n444\nread-only\nread-only\ndone\n');
  await runtime.stop(id, { signal: 'SIGKILL', graceMs: 0 });
  await runtime.remove(id);
  assert.not.ok(existsSync(join(containerd.dataDir, 'containerd-runtime', 'etc', id)), 'the configs are removed with the container');
});

test.run();
