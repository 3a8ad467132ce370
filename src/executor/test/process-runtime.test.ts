// The process runtime with real processes: start, logs, exit codes, stop
// with grace then kill, secrets on tmpfs, adoption by a new runtime over the
// same folder (a simulated agent restart).
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { realpathSync, statSync } from 'node:fs';
import { ProcessCgroups } from '../cgroups.js';
import { processGroupExists, readProcessStat } from '../host.js';
import { ProcessRuntime } from '../process-runtime.js';
import type { WorkloadExit, WorkloadSpec } from '../runtime.js';
import { eventually } from './helpers.js';

const root = mkdtempSync(join(tmpdir(), 'hivemind-process-runtime-'));
const runtimes: ProcessRuntime[] = [];

function runtime(folder = 'state'): ProcessRuntime {
  const made = new ProcessRuntime({ stateDir: join(root, folder), pollIntervalMs: 100 });
  runtimes.push(made);
  return made;
}

function spec(id: string, command: string[], overrides: Partial<WorkloadSpec> = {}): WorkloadSpec {
  return {
    id,
    tenant: 'default',
    app: 'test',
    version: 1,
    specHash: 'hash-1',
    command,
    environment: {},
    readOnly: false,
    ports: [],
    limits: {},
    mounts: [],
    secrets: [],
    logPath: join(root, 'logs', `${id}.log`),
    stopSignal: 'SIGTERM',
    stopGraceMs: 5000,
    labels: {},
    ...overrides,
  };
}

function exits(target: ProcessRuntime): WorkloadExit[] {
  const seen: WorkloadExit[] = [];
  target.onExit((exit) => seen.push(exit));
  return seen;
}

test.after(async () => {
  for (const made of runtimes) {
    for (const workload of await made.list()) if (workload.state === 'running') await made.stop(workload.id, { signal: 'SIGKILL', graceMs: 0 });
    await made.close();
  }
  rmSync(root, { recursive: true, force: true });
});

test('a process writes its output to the log file and its exit code is recorded', async () => {
  const target = runtime();
  await target.open();
  const seen = exits(target);
  await target.start(spec('t.out.0', ['/bin/sh', '-c', 'echo "hello $GREETING"; echo oops >&2; exit 3'], { environment: { GREETING: 'there' } }));
  const exit = await eventually('the exit', () => seen.find((item) => item.id === 't.out.0'));
  assert.is(exit.exitCode, 3);
  assert.is(exit.oomKilled, false);
  assert.is(readFileSync(join(root, 'logs', 't.out.0.log'), 'utf8'), 'hello there\noops\n');
  const [listed] = (await target.list()).filter((item) => item.id === 't.out.0');
  assert.is(listed?.state, 'exited');
  assert.is(listed?.exitCode, 3);
  await target.remove('t.out.0');
  assert.is((await target.list()).some((item) => item.id === 't.out.0'), false);
});

test('ulimits apply to the process (prlimit in front of it), an unlimited one too', async () => {
  const target = runtime();
  await target.open();
  const seen = exits(target);
  const container = { ulimits: [{ name: 'nofile', soft: 100, hard: 200 }, { name: 'core', soft: -1, hard: -1 }] };
  await target.start(spec('t.ulimit.0', ['/bin/sh', '-c', 'echo "$(ulimit -Sn):$(ulimit -Hn):$(ulimit -c)"'], { container }));
  await eventually('the exit', () => seen.find((item) => item.id === 't.ulimit.0'));
  assert.is(readFileSync(join(root, 'logs', 't.ulimit.0.log'), 'utf8'), '100:200:unlimited\n');
  await target.remove('t.ulimit.0');
});

test('a command that does not exist is refused with its name', async () => {
  const target = runtime();
  await target.open();
  try {
    await target.start(spec('t.missing.0', ['no-such-program-here']));
    assert.unreachable('start should have failed');
  } catch (error) {
    assert.match((error as Error).message, /instance t\.missing\.0: cannot start: command "no-such-program-here" is not found/);
  }
  assert.is((await target.list()).some((item) => item.id === 't.missing.0'), false);
});

test('stop sends the stop signal and the process exits by itself', async () => {
  const target = runtime();
  await target.open();
  const script = "process.on('SIGTERM', () => { console.log('bye'); process.exit(0); }); console.log('up'); setInterval(() => {}, 1000);";
  await target.start(spec('t.graceful.0', [process.execPath, '-e', script]));
  await eventually('the process to start', () => readFileSync(join(root, 'logs', 't.graceful.0.log'), 'utf8').includes('up'));
  const started = Date.now();
  await target.stop('t.graceful.0', { signal: 'SIGTERM', graceMs: 10_000 });
  assert.ok(Date.now() - started < 5000, 'stopped well before the grace period');
  const [listed] = await target.list();
  assert.is(listed?.exitCode, 0);
  assert.ok(readFileSync(join(root, 'logs', 't.graceful.0.log'), 'utf8').includes('bye'));
  await target.remove('t.graceful.0');
});

test('stop kills a process that ignores the signal once the grace period is over', async () => {
  const target = runtime();
  await target.open();
  const script = "process.on('SIGTERM', () => console.log('ignoring')); console.log('up'); setInterval(() => {}, 1000);";
  await target.start(spec('t.stubborn.0', [process.execPath, '-e', script]));
  await eventually('the process to start', () => readFileSync(join(root, 'logs', 't.stubborn.0.log'), 'utf8').includes('up'));
  const started = Date.now();
  await target.stop('t.stubborn.0', { signal: 'SIGTERM', graceMs: 500 });
  assert.ok(Date.now() - started >= 450, 'waited for the grace period');
  const [listed] = await target.list();
  assert.is(listed?.state, 'exited');
  assert.is(listed?.exitCode, 137);
  const stat = readProcessStat(listed!.pid!);
  assert.ok(stat === undefined || stat.state === 'Z', 'the process is gone');
  await target.remove('t.stubborn.0');
});

test('secrets are files in a private memory-backed folder named by HIVEMIND_SECRETS_DIR, removed with the workload', async () => {
  const target = runtime();
  await target.open();
  const seen = exits(target);
  await target.start(
    spec('t.secret.0', ['/bin/sh', '-c', 'echo "dir=$HIVEMIND_SECRETS_DIR"; cat "$HIVEMIND_SECRETS_DIR/db-password"; echo; stat -c %a "$HIVEMIND_SECRETS_DIR"'], {
      secrets: [{ name: 'db-password', value: new TextEncoder().encode('s3cret') }],
    }),
  );
  await eventually('the exit', () => seen.find((item) => item.id === 't.secret.0'));
  const output = readFileSync(join(root, 'logs', 't.secret.0.log'), 'utf8');
  const folder = /dir=(\S+)/.exec(output)?.[1];
  assert.ok(folder?.startsWith('/dev/shm/') || folder?.startsWith(process.env.XDG_RUNTIME_DIR ?? '/nowhere'), `secrets folder ${folder}`);
  assert.match(output, /s3cret\n700\n/);
  await target.remove('t.secret.0');
  assert.is(existsSync(folder!), false);
});

test('a new runtime over the same folder adopts a running process, and sees its exit', async () => {
  const first = runtime('adopt');
  await first.open();
  const started = await first.start(spec('t.adopt.0', [process.execPath, '-e', "console.log('up'); setInterval(() => {}, 1000);"]));
  await eventually('the process to start', () => readFileSync(join(root, 'logs', 't.adopt.0.log'), 'utf8').includes('up'));
  await first.close();
  const second = runtime('adopt');
  await second.open();
  const seen = exits(second);
  const [adopted] = await second.list();
  assert.is(adopted?.id, 't.adopt.0');
  assert.is(adopted?.state, 'running');
  assert.is(adopted?.pid, started.pid);
  assert.is(adopted?.startedAt, started.startedAt);
  // The real command is the wrapper's child: kill it as an outside cause would; the wrapper records how it ended.
  const children = readFileSync(`/proc/${started.pid}/task/${started.pid}/children`, 'utf8').trim().split(/\s+/).map(Number);
  assert.is(children.length, 1);
  process.kill(children[0]!, 'SIGKILL');
  const exit = await eventually('the exit of the adopted process', () => seen.find((item) => item.id === 't.adopt.0'));
  assert.is(exit.exitCode, 137);
  await second.remove('t.adopt.0');
});

test('an exit while no runtime watched is found by the next one', async () => {
  const first = runtime('offline');
  await first.open();
  await first.start(spec('t.offline.0', ['/bin/sh', '-c', 'sleep 0.3; exit 7']));
  await first.close();
  const logPath = join(root, 'logs', 't.offline.0.log');
  // The status written (the shell creates the file, then writes it), whether or not the wrapper has exited yet.
  const exitFile = join(root, 'offline', 't.offline.0.exit');
  await eventually('the exit status', () => existsSync(exitFile) && readFileSync(exitFile, 'utf8').trim() !== '');
  const second = runtime('offline');
  await second.open();
  const [found] = await second.list();
  assert.is(found?.state, 'exited');
  assert.is(found?.exitCode, 7);
  assert.ok(existsSync(logPath));
  await second.remove('t.offline.0');
});

test('a wrapper caught between writing its exit status and exiting is found exited, not adopted', async () => {
  const first = runtime('last-step');
  await first.open();
  const started = await first.start(spec('t.last.0', ['/bin/sh', '-c', 'sleep 30']));
  await first.close();
  // The wrapper's last step, as the next runtime may find it: the status written, the wrapper still there.
  writeFileSync(join(root, 'last-step', 't.last.0.exit'), '7\n');
  const second = runtime('last-step');
  await second.open();
  const [found] = await second.list();
  assert.is(found?.state, 'exited');
  assert.is(found?.exitCode, 7);
  await eventually('the wrapper and its command to be gone', () => !processGroupExists(started.pid!));
  await second.remove('t.last.0');
});

test('a start cut short before its record was written leaves no process: the next runtime kills it', async () => {
  const first = runtime('interrupted');
  await first.open();
  const started = await first.start(spec('t.cut.0', [process.execPath, '-e', "console.log('up'); setInterval(() => {}, 1000);"]));
  await eventually('the process to start', () => readFileSync(join(root, 'logs', 't.cut.0.log'), 'utf8').includes('up'));
  await first.close();
  // The state an agent killed between the spawn and the record's rename leaves behind: the marker, no record.
  const folder = join(root, 'interrupted');
  rmSync(join(folder, 't.cut.0.json'));
  writeFileSync(join(folder, 't.cut.0.starting'), '');
  // A process of another node's runtime with the same instance id is not this node's start, and must live on.
  const other = runtime('interrupted-other');
  await other.open();
  const bystander = await other.start(spec('t.cut.0', [process.execPath, '-e', 'setInterval(() => {}, 1000);']));
  const second = runtime('interrupted');
  await second.open();
  assert.equal(await second.list(), []);
  await eventually('the stray process group to be gone', () => !processGroupExists(started.pid!));
  assert.not.ok(existsSync(join(folder, 't.cut.0.starting')));
  assert.ok(processGroupExists(bystander.pid!));
  await other.stop('t.cut.0', { signal: 'SIGKILL', graceMs: 0 });
});

test('exec runs a command with the workload environment and reports its status and output', async () => {
  const target = runtime();
  await target.open();
  await target.start(spec('t.exec.0', [process.execPath, '-e', 'setInterval(() => {}, 1000)'], { environment: { CHECK_WORD: 'fine' } }));
  const good = await target.exec('t.exec.0', ['/bin/sh', '-c', 'echo "$CHECK_WORD"'], { timeoutMs: 5000 });
  assert.equal(good, { exitCode: 0, output: 'fine\n', timedOut: false });
  const bad = await target.exec('t.exec.0', ['/bin/sh', '-c', 'exit 4'], { timeoutMs: 5000 });
  assert.is(bad.exitCode, 4);
  const slow = await target.exec('t.exec.0', ['/bin/sh', '-c', 'sleep 5'], { timeoutMs: 200 });
  assert.is(slow.timedOut, true);
  await target.stop('t.exec.0', { signal: 'SIGTERM', graceMs: 2000 });
  await target.remove('t.exec.0');
});

/** The whole disk under `path` (block I/O limits apply to disks, not to their partitions), as major:minor. */
function diskUnder(path: string): { major: number; minor: number } | undefined {
  const dev = statSync(path).dev;
  const major = Number((BigInt(dev) >> 8n) & 0xfffn);
  const minor = Number((BigInt(dev) & 0xffn) | ((BigInt(dev) >> 12n) & 0xfff00n));
  let folder: string;
  try {
    folder = realpathSync(`/sys/dev/block/${major}:${minor}`);
  } catch {
    return undefined;
  }
  const disk = existsSync(join(folder, 'partition')) ? join(folder, '..') : folder;
  const [diskMajor, diskMinor] = readFileSync(join(disk, 'dev'), 'utf8').trim().split(':').map(Number);
  return diskMajor === undefined || diskMinor === undefined ? undefined : { major: diskMajor, minor: diskMinor };
}

const ioCgroupMount = process.getuid?.() === 0 ? new ProcessCgroups({ scope: 'probe' }).controllerMount('io') : undefined;
const ioDisk = diskUnder(tmpdir());
const ioTest = ioCgroupMount !== undefined && ioDisk !== undefined ? test : test.skip;
if (ioCgroupMount === undefined || ioDisk === undefined) console.log('skipping the I/O limit test: it needs root, an io (v2) or blkio (v1) cgroup controller and a block device under the temporary folder');

ioTest("the I/O limits of a process app's volume devices are written to its cgroup before it runs, and go with it", async () => {
  const target = runtime('io-limits');
  await target.open();
  const device = ioDisk!;
  const workload = await target.start(spec('io-1', ['/bin/sh', '-c', 'exec sleep 600'], { ioLimits: [{ ...device, readBytesPerSecond: 1048576, writeIops: 100 }] }));
  assert.is(workload.state, 'running');
  const record = JSON.parse(readFileSync(join(root, 'io-limits', 'io-1.json'), 'utf8')) as { pid: number; cgroups: { folders: { version: number; path: string; controllers: string[] }[] } };
  const folder = record.cgroups.folders.find((entry) => entry.controllers.includes('io'));
  assert.ok(folder !== undefined, JSON.stringify(record.cgroups));
  const id = `${device.major}:${device.minor}`;
  if (folder.version === 1) {
    assert.is(readFileSync(join(folder.path, 'blkio.throttle.read_bps_device'), 'utf8').trim(), `${id} 1048576`);
    assert.is(readFileSync(join(folder.path, 'blkio.throttle.write_iops_device'), 'utf8').trim(), `${id} 100`);
    assert.is(readFileSync(join(folder.path, 'blkio.throttle.write_bps_device'), 'utf8').trim(), '', 'a limit left out is not written');
  } else {
    assert.match(readFileSync(join(folder.path, 'io.max'), 'utf8'), new RegExp(`^${id} rbps=1048576 wbps=max riops=max wiops=100$`, 'm'));
  }
  // The wrapper joins its cgroups before it runs the command (just after the spawn that start waited for).
  await eventually(`the workload (${record.pid}) to run in ${folder.path}`, () => readFileSync(join(folder.path, 'cgroup.procs'), 'utf8').trim().split('\n').map(Number).includes(record.pid));
  await target.stop('io-1', { signal: 'SIGKILL', graceMs: 0 });
  await target.remove('io-1');
  assert.not.ok(existsSync(folder.path), 'the cgroup goes with the workload');
});

test.run();
