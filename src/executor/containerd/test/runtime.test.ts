// The containerd runtime against a real containerd, runc and the CNI
// plugins: a container prints to its log and its exit code is reported; a
// published port answers on 127.0.0.1 and on the container's bridge
// address; stop kills a container that ignores SIGTERM after the grace; an
// OOM kill is reported; exec runs a health check inside, and a streamed
// exec takes input and a terminal (size sent, resized); secrets are files
// on a tmpfs; a new runtime object adopts what runs; remove cleans up; a
// stopped or exited container leaves no iptables rule (iptables-save).
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { request } from 'undici';
import type { WorkloadExit, WorkloadSpec } from '../../runtime.js';
import type { ExecInputEvent, TerminalSize } from '../../../node/capabilities.js';
import { ContainerdRuntime } from '../containerd-runtime.js';
import { containerNameFiles, readNodeResolvConfs } from '../name-files.js';
import { netnsName, type CniNetwork } from '../network.js';
import { TestContainerd, busyboxWorkload, eventually, iptablesSave, skipReason, closeTestRuntime, openTestRuntime } from './harness.js';

const skip = skipReason();
const containerd = new TestContainerd();
let runtime: ContainerdRuntime;
let network: CniNetwork;
const exits: WorkloadExit[] = [];

function workload(id: string, overrides: Partial<WorkloadSpec> = {}): WorkloadSpec {
  return busyboxWorkload(containerd.dataDir, id, { environment: { GREETING: 'hello' }, stopGraceMs: 2_000, ...overrides });
}

function logOf(id: string): string {
  const path = join(containerd.dataDir, 'logs', `${id}.log`);
  return existsSync(path) ? readFileSync(path, 'utf8') : '';
}

test.before(async () => {
  if (skip !== undefined) {
    console.log(`skipping the containerd runtime tests: ${skip}`);
    return;
  }
  await containerd.start();
  ({ runtime, network } = await openTestRuntime(containerd, { bridge: 'hmt0', subnet: '10.89.0.0/16' }));
  runtime.onExit((exit) => exits.push(exit));
});

test.after(async () => {
  if (skip !== undefined) return;
  await closeTestRuntime({ runtime, network });
  await containerd.stop();
});

test('a container prints to its log; its exit code is reported', async () => {
  if (skip !== undefined) return;
  const started = await runtime.start(workload('print-1', { command: ['sh', '-c', 'echo "$GREETING from the container"; echo oops >&2; exit 3'] }));
  assert.is(started.state, 'running');
  assert.match(started.address ?? '', /^10\.89\./);
  await eventually('the exit', () => exits.some((exit) => exit.id === 'print-1'));
  const exit = exits.find((candidate) => candidate.id === 'print-1')!;
  assert.is(exit.exitCode, 3);
  assert.is(exit.oomKilled, false);
  await eventually('the log', () => logOf('print-1').includes('oops'));
  assert.match(logOf('print-1'), /hello from the container/);
  const listed = (await runtime.list()).find((candidate) => candidate.id === 'print-1');
  assert.is(listed?.state, 'exited');
  assert.is(listed?.exitCode, 3);
  await runtime.remove('print-1');
  assert.not.ok((await runtime.list()).some((candidate) => candidate.id === 'print-1'), 'removed');
  assert.not.ok(existsSync(`/run/netns/${netnsName('print-1')}`), 'its network namespace is gone');
});

test('a published port answers on 127.0.0.1 and on the bridge address', async () => {
  if (skip !== undefined) return;
  const published = 20_000 + Math.floor(Math.random() * 20_000);
  const started = await runtime.start(workload('web-1', { command: ['httpd', '-f', '-p', '8080', '-h', '/www'], ports: [{ target: 8080, published, protocol: 'tcp' }] }));
  const fetchText = async (url: string): Promise<string> => {
    const response = await request(url, { headersTimeout: 2_000, bodyTimeout: 2_000 });
    return response.body.text();
  };
  let direct = '';
  await eventually('httpd on the bridge address', async () => {
    direct = await fetchText(`http://${started.address}:8080/`).catch(() => '');
    return direct !== '';
  });
  assert.match(direct, /hello from hivemind busybox/);
  let viaLoopback = '';
  await eventually('httpd on the published port of 127.0.0.1', async () => {
    viaLoopback = await fetchText(`http://127.0.0.1:${published}/`).catch(() => '');
    return viaLoopback !== '';
  }, 5_000);
  assert.match(viaLoopback, /hello from hivemind busybox/);
  const check = await runtime.exec('web-1', ['sh', '-c', 'echo checked $GREETING; exit 2'], { timeoutMs: 5_000 });
  assert.equal(check, { exitCode: 2, output: 'checked hello\n', timedOut: false });
  const slow = await runtime.exec('web-1', ['sleep', '10'], { timeoutMs: 300 });
  assert.is(slow.timedOut, true);
  await runtime.stop('web-1', { signal: 'SIGTERM', graceMs: 2_000 });
  await runtime.remove('web-1');
});

/** An input that sends `events`, then waits for `release` before it ends (a client that keeps its request open). */
async function* inputOf(events: ExecInputEvent[], release: Promise<void> = Promise.resolve()): AsyncGenerator<ExecInputEvent> {
  for (const event of events) yield event;
  await release;
}

/** Runs `argv` in `id` with a streamed output; what came on each stream, and the exit. */
async function execStreamed(id: string, argv: string[], options: { input?: AsyncIterable<ExecInputEvent>; stdin?: boolean; terminal?: TerminalSize }): Promise<{ stdout: string; stderr: string; exitCode: number }> {
  const heard = { stdout: '', stderr: '' };
  const result = await runtime.exec(id, argv, { timeoutMs: 20_000, output: (stream, chunk) => (heard[stream] += Buffer.from(chunk).toString('utf8')), ...options });
  return { ...heard, exitCode: result.exitCode };
}

test('exec with input (-i) feeds the command\'s stdin; with a terminal (-t) it runs on a pty of the size sent, resized on request', async () => {
  if (skip !== undefined) return;
  await runtime.start(workload('exec-io-1', { command: ['sleep', '1000'] }));
  const text = Array.from({ length: 3000 }, (_, index) => `line ${index}`).join('\n') + '\n';
  const encoder = new TextEncoder();
  const echoed = await execStreamed('exec-io-1', ['cat'], { stdin: true, input: inputOf([{ type: 'stdin', data: encoder.encode(text.slice(0, 1000)) }, { type: 'stdin', data: encoder.encode(text.slice(1000)) }, { type: 'stdin-end' }], new Promise(() => undefined)) });
  assert.equal(echoed, { stdout: text, stderr: '', exitCode: 0 });
  // The input's end without stdin-end is the end of input too.
  const counted = await execStreamed('exec-io-1', ['busybox', 'wc', '-l'], { stdin: true, input: inputOf([{ type: 'stdin', data: encoder.encode('a\nb\nc\n') }]) });
  assert.is(counted.stdout.trim(), '3');
  // Without stdin the command reads end-of-file at once, whatever is sent.
  const empty = await execStreamed('exec-io-1', ['cat'], { input: inputOf([{ type: 'stdin', data: encoder.encode('dropped') }]) });
  assert.equal(empty, { stdout: '', stderr: '', exitCode: 0 });

  const onTerminal = await execStreamed('exec-io-1', ['sh', '-c', 'busybox tty; busybox stty size; echo "TERM=$TERM"; echo to-stderr >&2'], { terminal: { columns: 91, rows: 27 }, input: inputOf([]) });
  assert.is(onTerminal.exitCode, 0, onTerminal.stdout);
  // A terminal's output is one stream, with its line endings.
  assert.match(onTerminal.stdout, /^\/dev\/pts\/\d+\r\n27 91\r\nTERM=xterm\r\nto-stderr\r\n$/);
  assert.is(onTerminal.stderr, '');
  // A resize reaches the terminal; the shell reads its input through it (echoed, as a terminal does).
  let resized!: () => void;
  const afterResize = new Promise<void>((resolve) => (resized = resolve));
  const interactive = execStreamed('exec-io-1', ['sh', '-c', 'read line; busybox stty size; echo "got $line"'], {
    stdin: true,
    terminal: { columns: 80, rows: 24 },
    input: (async function* (): AsyncGenerator<ExecInputEvent> {
      yield { type: 'resize', size: { columns: 132, rows: 43 } };
      resized();
      yield { type: 'stdin', data: encoder.encode('hello\r') };
      await new Promise(() => undefined);
    })(),
  });
  await afterResize;
  const session = await interactive;
  assert.is(session.exitCode, 0, session.stdout);
  assert.match(session.stdout, /hello\r\n43 132\r\ngot hello\r\n$/);
  await runtime.stop('exec-io-1', { signal: 'SIGKILL', graceMs: 0 });
  await runtime.remove('exec-io-1');
});

test('stop and remove leave no iptables rule of a container with a published port', async () => {
  if (skip !== undefined) return;
  const published = 20_000 + Math.floor(Math.random() * 20_000);
  const id = 'ported-1';
  const started = await runtime.start(workload(id, { command: ['httpd', '-f', '-p', '8080', '-h', '/www'], ports: [{ target: 8080, published, protocol: 'tcp' }] }));
  const address = started.address!;
  const ruleMentions = (rules: string): string[] => rules.split('\n').filter((line) => line.includes(`"${id}"`) || line.includes(`--dport ${published} `) || line.includes(`${address}/32`) || line.includes(`${address}:8080`));
  assert.ok(ruleMentions(await iptablesSave()).length > 0, 'while it runs, portmap and the bridge have rules for it (the check can fail)');
  await runtime.stop(id, { signal: 'SIGTERM', graceMs: 1_000 });
  assert.equal(ruleMentions(await iptablesSave()), [], 'stopped: no rule of it is left');
  await runtime.remove(id);
  assert.equal(ruleMentions(await iptablesSave()), [], 'removed: still none');
  // A container that exits by itself drops its rules too (the exit event releases its network).
  const exiting = 'ported-2';
  await runtime.start(workload(exiting, { command: ['sh', '-c', 'sleep 1; exit 1'], ports: [{ target: 8080, published: published + 1, protocol: 'tcp' }] }));
  const exitingMentions = (rules: string): string[] => rules.split('\n').filter((line) => line.includes(`"${exiting}"`) || line.includes(`--dport ${published + 1} `));
  assert.ok(exitingMentions(await iptablesSave()).length > 0, 'while it runs it has rules');
  await eventually('its rules gone after it exits', async () => exitingMentions(await iptablesSave()).length === 0);
  await runtime.remove(exiting);
});

test('a container gets its own /etc/hosts and /etc/resolv.conf, read-only', async () => {
  if (skip !== undefined) return;
  const id = 'names-1';
  const started = await runtime.start(workload(id, { command: ['sh', '-c', 'cat /etc/hosts; echo ---; cat /etc/resolv.conf; echo ---; hostname; (echo x >> /etc/hosts) 2>/dev/null && echo writable || echo read-only; echo done'] }));
  await eventually('the output', () => logOf(id).includes('done'));
  const [hosts, resolvConf, rest] = logOf(id).split('---\n') as [string, string, string];
  assert.ok(hosts.split('\n').includes('127.0.0.1\tlocalhost'), hosts);
  assert.ok(hosts.split('\n').includes(`${started.address}\t${id}`), `its own name on its address: ${hosts}`);
  const expected = containerNameFiles({ hostname: id, address: started.address!, nodeResolvConfs: await readNodeResolvConfs() }).resolvConf;
  assert.is(resolvConf, expected);
  assert.not.match(resolvConf, /nameserver (127\.|::1)/, 'no loopback resolver');
  assert.match(rest, new RegExp(`^${id.replace('.', '\\.')}\n`), 'hostname is the instance id');
  assert.match(rest, /read-only/);
  await runtime.remove(id);
  assert.not.ok(existsSync(join(containerd.dataDir, 'containerd-runtime', 'etc', id)), 'its files are removed');
});

test('stop: a container that ignores SIGTERM is killed after the grace', async () => {
  if (skip !== undefined) return;
  await runtime.start(workload('stubborn-1', { command: ['sh', '-c', 'trap "" TERM; echo ready; while true; do sleep 1; done'] }));
  await eventually('ready', () => logOf('stubborn-1').includes('ready'));
  const began = Date.now();
  await runtime.stop('stubborn-1', { signal: 'SIGTERM', graceMs: 700 });
  const tookMs = Date.now() - began;
  assert.ok(tookMs >= 650, `stop waited the grace (${tookMs} ms)`);
  await eventually('the exit', () => exits.some((exit) => exit.id === 'stubborn-1'));
  assert.is(exits.find((exit) => exit.id === 'stubborn-1')!.exitCode, 137);
  await runtime.remove('stubborn-1');
});

test('an OOM kill is reported', async () => {
  if (skip !== undefined) return;
  await runtime.start(workload('hog-1', { command: ['sh', '-c', 'a=x; while true; do a="$a$a"; done'], limits: { memoryBytes: 16 * 1024 * 1024 } }));
  await eventually('the exit', () => exits.some((exit) => exit.id === 'hog-1'), 30_000);
  const exit = exits.find((candidate) => candidate.id === 'hog-1')!;
  assert.is(exit.oomKilled, true);
  assert.is(exit.exitCode, 137);
  await runtime.remove('hog-1');
});

test('secrets are files on a tmpfs at /run/secrets; env, user and read-only root apply', async () => {
  if (skip !== undefined) return;
  const secret = { name: 'api-token', value: new TextEncoder().encode('s3cret-value') };
  await runtime.start(
    workload('secret-1', {
      command: ['sh', '-c', 'cat /run/secrets/api-token; echo; id -u; touch /rootfile 2>/dev/null || echo read-only; sleep 1000'],
      secrets: [secret],
      user: '65534:65534',
      readOnly: true,
    }),
  );
  await eventually('the output', () => logOf('secret-1').includes('read-only'));
  assert.match(logOf('secret-1'), /s3cret-value\n65534\nread-only/);
  const mounts = readFileSync('/proc/mounts', 'utf8');
  assert.ok(mounts.split('\n').some((line) => line.startsWith('tmpfs ') && line.includes('/secrets/secret-1')), 'the secrets folder is a tmpfs');
  await runtime.stop('secret-1', { signal: 'SIGKILL', graceMs: 0 });
  await runtime.remove('secret-1');
  assert.not.ok(readFileSync('/proc/mounts', 'utf8').includes('/secrets/secret-1'), 'the tmpfs is gone');
});

test('a new runtime object adopts the running container with its labels', async () => {
  if (skip !== undefined) return;
  await runtime.start(workload('adopt-1', { version: 7, specHash: 'abc123', command: ['sleep', '1000'] }));
  const second = new ContainerdRuntime({ dataDir: containerd.dataDir, log: () => undefined, socketPath: containerd.own!.socketPath, manageContainerd: false, network });
  const secondExits: WorkloadExit[] = [];
  second.onExit((exit) => secondExits.push(exit));
  const listed = (await second.list()).find((candidate) => candidate.id === 'adopt-1');
  assert.ok(listed, 'listed by the new runtime');
  assert.is(listed!.state, 'running');
  assert.is(listed!.version, 7);
  assert.is(listed!.specHash, 'abc123');
  assert.ok(listed!.pid! > 0);
  await second.stop('adopt-1', { signal: 'SIGTERM', graceMs: 2_000 });
  await eventually('the adopted exit', () => secondExits.some((exit) => exit.id === 'adopt-1'));
  await second.remove('adopt-1');
  await second.close();
});

test('starting an unknown image fails clearly and leaves nothing behind', async () => {
  if (skip !== undefined) return;
  try {
    await runtime.start(workload('bad-1', { image: '127.0.0.1:1/nothing:here' }));
    assert.unreachable('must fail');
  } catch (error) {
    assert.match((error as Error).message, /instance bad-1: cannot start: image "127.0.0.1:1\/nothing:here" is not on this node \(no other node holds it\) and could not be brought here: its registry: /);
  }
  assert.not.ok((await runtime.list()).some((candidate) => candidate.id === 'bad-1'));
});

test.run();
