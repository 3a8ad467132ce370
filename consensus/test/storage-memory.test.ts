/**
 * MemoryStorage and MemoryDisk: the storage contract LevelStorage keeps
 * (round trip, truncation, snapshot install, compaction, refusals), and what
 * each crash mode keeps of writes that were not synced.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { SeededRandom } from '../core/random.js';
import { EntryType, type Entry, type Snapshot } from '../core/types.js';
import { MemoryDisk, MemoryStorage } from '../storage-memory.js';
import { storageCompliance } from './storage-compliance.js';

function entry(index: number, term: number): Entry {
  return { term, index, type: EntryType.Normal, data: new TextEncoder().encode(`${term}/${index}`) };
}

function entries(first: number, last: number, term: number): Entry[] {
  const made: Entry[] = [];
  for (let index = first; index <= last; index++) made.push(entry(index, term));
  return made;
}

function snapshot(index: number, term: number): Snapshot {
  return { meta: { index, term, config: { voters: ['a'], learners: [] } }, data: new Uint8Array([index]) };
}

function indexes(list: Entry[]): string {
  return list.map((item) => `${item.index}@${item.term}`).join(' ');
}

storageCompliance(test, () => {
  const disk = new MemoryDisk(() => 0);
  return { make: () => new MemoryStorage({ disk }) };
});

/** A disk whose writes complete only when the test says, so that a crash can find one in flight. */
function heldDisk(): { disk: MemoryDisk; storage: MemoryStorage; completeNext: () => void } {
  const disk = new MemoryDisk(() => 0);
  const waiting: (() => void)[] = [];
  const storage = new MemoryStorage({ disk, delay: (complete) => waiting.push(complete) });
  void storage.load();
  return { disk, storage, completeNext: () => waiting.shift()!() };
}


/** Synced entries 1-2, then two unsynced commit writes completed, then a synced write of entry 3 in flight. */
async function diskWithUnsyncedWrites(): Promise<MemoryDisk> {
  const { disk, storage, completeNext } = heldDisk();
  const run = async (promise: Promise<void>): Promise<void> => {
    completeNext();
    await promise;
  };
  await run(storage.persist({ hardState: { term: 1, vote: 'a', commit: 0 }, entries: entries(1, 2, 1) }, true));
  await run(storage.persist({ hardState: { term: 1, vote: 'a', commit: 1 }, entries: [] }, false));
  await run(storage.persist({ hardState: { term: 1, vote: 'a', commit: 2 }, entries: [] }, false));
  void storage.persist({ hardState: { term: 1, vote: 'a', commit: 2 }, entries: entries(3, 3, 1) }, true);
  return disk;
}

test('lose-unsynced: a crash keeps only what was synced', async () => {
  const disk = await diskWithUnsyncedWrites();
  disk.crash('lose-unsynced', new SeededRandom(1));
  const loaded = disk.load();
  assert.equal(loaded.hardState, { term: 1, vote: 'a', commit: 0 });
  assert.is(indexes(loaded.entries), '1@1 2@1');
});

test('tear-last-write: the unsynced writes completed before it survive, the write in flight does not', async () => {
  const disk = await diskWithUnsyncedWrites();
  disk.crash('tear-last-write', new SeededRandom(1));
  const loaded = disk.load();
  assert.equal(loaded.hardState, { term: 1, vote: 'a', commit: 2 });
  assert.is(indexes(loaded.entries), '1@1 2@1');
});

test('reorder-unsynced: any subset in any order, never less than what was synced, never a gap', async () => {
  const outcomes = new Set<string>();
  for (let seed = 1; seed <= 64; seed++) {
    const disk = await diskWithUnsyncedWrites();
    disk.crash('reorder-unsynced', new SeededRandom(seed));
    const loaded = disk.load();
    assert.ok(indexes(loaded.entries) === '1@1 2@1' || indexes(loaded.entries) === '1@1 2@1 3@1');
    outcomes.add(`commit ${loaded.hardState.commit}, last ${loaded.entries.length}`);
  }
  // An older commit index can win over a newer one, and the write in flight can land or not.
  for (const outcome of ['commit 0, last 2', 'commit 1, last 2', 'commit 2, last 2', 'commit 2, last 3']) {
    assert.ok(outcomes.has(outcome), `never saw ${outcome}: ${[...outcomes].join('; ')}`);
  }
});

test('a synced write makes every earlier unsynced write durable', async () => {
  const { disk, storage, completeNext } = heldDisk();
  const write = async (promise: Promise<void>): Promise<void> => {
    completeNext();
    await promise;
  };
  await write(storage.persist({ hardState: { term: 1, vote: '', commit: 0 }, entries: entries(1, 1, 1) }, true));
  await write(storage.persist({ hardState: { term: 1, vote: '', commit: 1 }, entries: [] }, false));
  await write(storage.compact(snapshot(1, 1)));
  disk.crash('lose-unsynced', new SeededRandom(1));
  const loaded = disk.load();
  assert.is(loaded.hardState.commit, 1);
  assert.is(loaded.snapshot?.meta.index, 1);
});

test('a disk that ignores fsync loses synced writes not yet flushed, and keeps those older than its flush delay', async () => {
  let nowMs = 0;
  const disk = new MemoryDisk(() => nowMs, { ignoresSync: true, flushDelayMs: 30 });
  const storage = new MemoryStorage({ disk });
  await storage.load();
  await storage.persist({ hardState: { term: 1, vote: 'a', commit: 0 }, entries: entries(1, 1, 1) }, true);
  nowMs = 40;
  await storage.persist({ hardState: { term: 2, vote: 'b', commit: 0 }, entries: entries(2, 2, 2) }, true);
  nowMs = 50;
  disk.crash('lose-unsynced', new SeededRandom(1));
  const loaded = disk.load();
  assert.equal(loaded.hardState, { term: 1, vote: 'a', commit: 0 });
  assert.is(indexes(loaded.entries), '1@1');
});

test.run();
