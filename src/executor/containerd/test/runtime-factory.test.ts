// The containerd runtime the agent's executor gets (runtime-factory.ts) is
// made on first need: on a node where no containerd ran and none may answer
// it is not loaded at start (openAtStart says no, close has nothing to
// close); the first call that needs it makes it, and its answers are the
// runtime's own (a runtime not open holds no image to lend; a bad digest is
// refused as the runtime refuses it). Needs no containerd: the calls used
// here never reach one.
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { Runtime } from '../../runtime.js';
import { containerdRuntimeFactory, DeferredContainerdRuntime } from '../runtime-factory.js';

const folders: string[] = [];

function runtimeIn(dataDir: string): DeferredContainerdRuntime {
  const made: Runtime = containerdRuntimeFactory({ socketPath: join(dataDir, 'no-containerd.sock') })({
    dataDir,
    log: () => {},
    signal: new AbortController().signal,
    registry: new Registry(),
    warmNetworks: 0,
  });
  assert.instance(made, DeferredContainerdRuntime);
  return made as DeferredContainerdRuntime;
}

function dataDir(): string {
  const folder = mkdtempSync(join(tmpdir(), 'hivemind-deferred-runtime-'));
  folders.push(folder);
  return folder;
}

test.after(() => {
  for (const folder of folders) rmSync(folder, { recursive: true, force: true });
});

test('no containerd ran here and none may answer: not opened at start, not loaded, nothing to close', async () => {
  const runtime = runtimeIn(dataDir());
  assert.is(runtime.kind, 'containerd');
  assert.is(await runtime.openAtStart(), false);
  assert.is(runtime.loaded, false);
  assert.is(runtime.warmNetworkCount(), 0);
  const removeListener = runtime.onExit(() => {});
  removeListener();
  await runtime.close();
  assert.is(runtime.loaded, false);
});

test('the first call that needs the runtime makes it; its answers are the runtime\'s', async () => {
  const runtime = runtimeIn(dataDir());
  assert.is(await runtime.imageShare.describe('docker.io/library/busybox:latest'), undefined, 'a runtime not open holds no image');
  assert.is(runtime.loaded, true);
  const badDigest = await collect(runtime.imageShare.read('sha256:nothex')).then(() => undefined, (error: unknown) => error as { code?: string });
  assert.is(badDigest?.code, 'invalid-reference');
  const missing = await collect(runtime.imageShare.read(`sha256:${'0'.repeat(64)}`)).then(() => undefined, (error: unknown) => error as { code?: string });
  assert.is(missing?.code, 'not-found');
  await runtime.close();
});

test('an own containerd ran here before (its folder): the runtime is made at start and answers', async () => {
  const folder = dataDir();
  mkdirSync(join(folder, 'containerd'));
  const runtime = runtimeIn(folder);
  assert.is(await runtime.openAtStart(), true);
  assert.is(runtime.loaded, true);
  await runtime.close();
});

async function collect(chunks: AsyncIterable<Uint8Array>): Promise<number> {
  let bytes = 0;
  for await (const chunk of chunks) bytes += chunk.byteLength;
  return bytes;
}

test.run();
