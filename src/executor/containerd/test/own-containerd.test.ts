// The agent's own containerd: it starts under the data directory with CRI
// off, answers on its socket, comes back when killed, and goes down on
// stop; a long data directory gets a short socket path under /run.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { OwnContainerd, connectOrStartContainerd, containerdReachable } from '../own-containerd.js';
import { eventually, skipReason } from './harness.js';

const skip = skipReason();
let dataDir = '';

test.before(async () => {
  if (skip !== undefined) console.log(`skipping the own containerd tests: ${skip}`);
  dataDir = await mkdtemp('/tmp/hmo-');
});

test.after(async () => {
  await rm(dataDir, { recursive: true, force: true });
});

test('a long data directory gets a short socket path', () => {
  const own = new OwnContainerd({ dataDir: `/tmp/${'x'.repeat(120)}`, log: () => undefined });
  assert.match(own.socketPath, /^\/run\/hivemind-[0-9a-f]{12}\/containerd\.sock$/);
  assert.match(own.config(), /"io\.containerd\.grpc\.v1\.cri"/);
});

test('the own containerd comes up, is restarted when killed, and goes down on stop', async () => {
  if (skip !== undefined) return;
  const lines: string[] = [];
  const endpoint = await connectOrStartContainerd({ socketPath: `${dataDir}/none.sock`, dataDir, log: (line) => lines.push(line) });
  assert.ok(endpoint?.own, 'no containerd answered: the agent started its own');
  const own = endpoint!.own!;
  try {
    assert.is(endpoint!.socketPath, `${dataDir}/containerd/containerd.sock`);
    assert.ok(await containerdReachable(own.socketPath));
    assert.match(await readFile(own.configPath, 'utf8'), new RegExp(`root = "${dataDir}/containerd/root"`));
    const firstPid = own.pid!;
    process.kill(firstPid, 'SIGKILL');
    await eventually('a restarted containerd', async () => own.pid !== undefined && own.pid !== firstPid && (await containerdReachable(own.socketPath)), 20_000);
    assert.is(own.restarts, 1);
    // A second look finds it answering and does not start another.
    const again = await connectOrStartContainerd({ socketPath: `${dataDir}/none.sock`, dataDir, log: () => undefined });
    assert.is(again?.own, undefined);
    assert.is(again?.socketPath, own.socketPath);
  } finally {
    await own.stop();
  }
  assert.not.ok(await containerdReachable(own.socketPath), 'stopped');
});

test.run();
