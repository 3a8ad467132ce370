// The tenant-network warm pools' count of container starts in flight, with
// a stand-in for the CNI network (no namespace is made: the slice's bridge
// does not exist, so no pool refills). A start that begins while `sync` is
// opening a new slice's pool is counted on that pool, and ends on it once:
// such a start once was not counted but ended on it, the pool's count went
// below zero, and the assertion that caught it failed a start whose
// container already ran (its retries then found "a container with this id
// exists", for good).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { CniNetwork, HeldSlice } from '../network.js';
import { SliceWarmPools } from '../slice-pools.js';

const folders: string[] = [];

test.after(() => {
  for (const folder of folders) rmSync(folder, { recursive: true, force: true });
});

const SLICE: HeldSlice = { network: 'default/default', tenant: 'default', name: 'default', bridge: 'hmt-no-such-br', subnet: '10.250.7.0/26' };

/** The CNI network as a slice pool uses it while it opens; `onLeasedIds` runs inside the pool's `open`. */
function standIn(onLeasedIds: () => void): CniNetwork {
  const network = {
    heldSlices: (): HeldSlice[] => [SLICE],
    leasedIds: async (): Promise<string[]> => {
      onLeasedIds();
      return [];
    },
    hasResult: (): boolean => false,
    attach: async () => {
      throw new Error('the test makes no warm network');
    },
    detach: async (): Promise<void> => {},
    publish: async (): Promise<void> => {},
  };
  return network as unknown as CniNetwork;
}

function pools(network: CniNetwork): SliceWarmPools {
  const folder = mkdtempSync(join(tmpdir(), 'hivemind-slice-pools-'));
  folders.push(folder);
  return new SliceWarmPools({ network, folder, size: 1, log: () => {} });
}

test('a start that began while a new slice pool was being opened is counted on it, and ends on it once', async () => {
  let during: (() => void) | undefined;
  const slicePools = pools(standIn(() => (during ??= slicePools.beginStart())));
  const before = slicePools.beginStart();
  await slicePools.sync(async () => new Set());
  const pool = slicePools.poolOf('default/default');
  assert.ok(pool !== undefined, 'the slice has its pool');
  assert.ok(during !== undefined, 'a start began while the pool was opened');
  // Ended in either order, neither throws, and each counts once: the pool's count is then zero.
  during!();
  before();
  before();
  during!();
  assert.throws(() => pool.endStart(), /endStart without beginStart/);
  const after = slicePools.beginStart();
  after();
  await slicePools.close();
});

test('a start that began before a slice pool was made ends on it too, so the pool is not held back for good', async () => {
  const slicePools = pools(standIn(() => {}));
  const before = slicePools.beginStart();
  await slicePools.sync(async () => new Set());
  const pool = slicePools.poolOf('default/default')!;
  // The pool counted the start in flight when it was made; ending it brings the pool's count to zero,
  // and a second end (no start left) would be refused by the pool's own check.
  before();
  assert.throws(() => pool.endStart(), /endStart without beginStart/);
  await slicePools.close();
});

test.run();
