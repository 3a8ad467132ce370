/**
 * The `RaftStorage` contract, as one suite every implementation must pass:
 * LevelStorage (storage-level.test.ts) and MemoryStorage, the simulator's
 * (storage-memory.test.ts). Each test gets a fresh place to keep data (a
 * directory, a MemoryDisk); a storage made again on it sees what the last
 * one left.
 */
import type { Test } from 'uvu';
import * as assert from 'uvu/assert';
import { AssertionError } from '../core/assert.js';
import { EntryType } from '../core/types.js';
import type { Entry, HardState, Snapshot } from '../core/types.js';
import type { PersistedState, RaftStorage } from '../storage.js';

/** Where one storage keeps its data: each `make()` is a new storage on the same data. */
export interface StoragePlace {
  make(): RaftStorage;
}

function entry(index: number, term: number, text = `${term}/${index}`): Entry {
  return { term, index, type: EntryType.Normal, data: new TextEncoder().encode(text) };
}

function entries(first: number, last: number, term: number): Entry[] {
  const made: Entry[] = [];
  for (let index = first; index <= last; index++) made.push(entry(index, term));
  return made;
}

function snapshot(index: number, term: number): Snapshot {
  return {
    meta: { index, term, config: { voters: ['a', 'b', 'c'], learners: ['d'] } },
    data: new TextEncoder().encode(`state as of ${index}`),
  };
}

function indexes(state: PersistedState): number[] {
  return state.entries.map((stored) => stored.index);
}

/** Makes a storage on `place`, loads it, closes it, and returns what was loaded. */
async function reload(place: StoragePlace): Promise<PersistedState> {
  const storage = place.make();
  const state = await storage.load();
  await storage.close();
  return state;
}

async function opened(place: StoragePlace): Promise<RaftStorage> {
  const storage = place.make();
  await storage.load();
  return storage;
}

async function rejectsWith(promise: Promise<unknown>, kind: new (...args: never[]) => Error): Promise<Error> {
  try {
    await promise;
  } catch (error) {
    assert.instance(error, kind);
    return error as Error;
  }
  assert.unreachable(`expected a ${kind.name}`);
  throw new Error('unreachable');
}

/** Registers the contract's tests on `test`, each on a fresh place from `newPlace`. */
export function storageCompliance(test: Test, newPlace: () => StoragePlace): void {
  test('a fresh place loads as a zero hard state and an empty log', async () => {
    const state = await reload(newPlace());
    assert.equal(state, { hardState: { term: 0, vote: '', commit: 0 }, entries: [] });
  });

  test('entries, hard state and snapshot round trip, byte fields as plain Uint8Array', async () => {
    const place = newPlace();
    const storage = await opened(place);
    const config: Entry = { term: 2, index: 3, type: EntryType.Config, data: new Uint8Array(), config: { voters: ['a'], learners: [] } };
    const hardState: HardState = { term: 2, vote: 'a', commit: 2 };
    await storage.persist({ entries: [entry(1, 1), entry(2, 2), config], hardState }, true);
    await storage.close();

    const state = await reload(place);
    assert.equal(state, { hardState, entries: [entry(1, 1), entry(2, 2), config] });
    assert.is(state.entries[0]!.data.constructor, Uint8Array);

    const again = await opened(place);
    await again.persist({ snapshot: snapshot(9, 3), entries: [entry(10, 3)], hardState: { term: 3, vote: 'b', commit: 9 } }, false);
    await again.close();
    const restored = await reload(place);
    assert.equal(restored, { hardState: { term: 3, vote: 'b', commit: 9 }, snapshot: snapshot(9, 3), entries: [entry(10, 3)] });
    assert.is(restored.snapshot!.data.constructor, Uint8Array);
  });

  test('a conflicting append truncates the stored log at its first index', async () => {
    const place = newPlace();
    const storage = await opened(place);
    await storage.persist({ entries: entries(1, 6, 1) }, true);
    await storage.persist({ entries: [entry(3, 2), entry(4, 2)] }, true);
    // The in-memory last index followed the truncation: 5 now appends after 4.
    await storage.persist({ entries: [entry(5, 2)] }, true);
    await storage.close();

    const state = await reload(place);
    assert.equal(state.entries, [entry(1, 1), entry(2, 1), entry(3, 2), entry(4, 2), entry(5, 2)]);
  });

  test('a longer conflicting append overwrites and extends the log', async () => {
    const place = newPlace();
    const storage = await opened(place);
    await storage.persist({ entries: entries(1, 3, 1) }, true);
    await storage.persist({ entries: entries(2, 5, 2) }, true);
    await storage.close();
    assert.equal((await reload(place)).entries, [entry(1, 1), ...entries(2, 5, 2)]);
  });

  test('a snapshot from the leader replaces the whole log, even entries above its index', async () => {
    const place = newPlace();
    const storage = await opened(place);
    await storage.persist({ entries: entries(1, 10, 1) }, true);
    await storage.persist({ snapshot: snapshot(7, 3), entries: [] }, true);
    assert.equal(indexes(await reloadAfterClose(storage, place)), []);

    const next = await opened(place);
    await next.persist({ entries: [entry(8, 3)] }, true);
    await next.persist({ snapshot: snapshot(20, 4), entries: [] }, true);
    await next.persist({ entries: [entry(21, 4)] }, true);
    const state = await reloadAfterClose(next, place);
    assert.equal(state.snapshot, snapshot(20, 4));
    assert.equal(indexes(state), [21]);
  });

  async function reloadAfterClose(storage: RaftStorage, place: StoragePlace): Promise<PersistedState> {
    await storage.close();
    return reload(place);
  }

  test('compaction drops entries at or below the snapshot index and keeps the rest', async () => {
    const place = newPlace();
    const storage = await opened(place);
    await storage.persist({ entries: entries(1, 10, 1) }, true);
    await storage.compact(snapshot(6, 1));
    await storage.persist({ entries: [entry(11, 1)] }, true);
    await storage.compact(snapshot(8, 1));
    const state = await reloadAfterClose(storage, place);
    assert.equal(state.snapshot, snapshot(8, 1));
    assert.equal(state.entries, entries(9, 11, 1));

    // Compacting the whole log leaves only the snapshot; appends continue after it.
    const next = await opened(place);
    await next.compact(snapshot(11, 1));
    await next.persist({ entries: [entry(12, 2)] }, true);
    assert.equal(indexes(await reloadAfterClose(next, place)), [12]);
  });

  test('readSnapshotData gives back the stored snapshot\'s data, and nothing for another index', async () => {
    const place = newPlace();
    const storage = await opened(place);
    assert.ok(storage.readSnapshotData, 'every storage here reads its snapshot back');
    assert.is(await storage.readSnapshotData!(6), undefined);
    await storage.persist({ entries: entries(1, 10, 1) }, true);
    await storage.compact(snapshot(6, 1));
    assert.equal(await storage.readSnapshotData!(6), snapshot(6, 1).data);
    // A newer snapshot replaces it: the older index reads as nothing, not as the newer data.
    await storage.compact(snapshot(9, 1));
    assert.is(await storage.readSnapshotData!(6), undefined);
    assert.equal(await storage.readSnapshotData!(9), snapshot(9, 1).data);
    // One from the leader too.
    await storage.persist({ snapshot: snapshot(20, 2), entries: [] }, true);
    assert.equal(await storage.readSnapshotData!(20), snapshot(20, 2).data);
    await storage.close();
    const again = await opened(place);
    assert.equal(await again.readSnapshotData!(20), snapshot(20, 2).data);
    await again.close();
  });

  test('a snapshot given in pieces is stored as their concatenation: read back, and loaded', async () => {
    const place = newPlace();
    const storage = await opened(place);
    await storage.persist({ entries: entries(1, 10, 1) }, true);
    const whole = snapshot(7, 1);
    const pieces = [whole.data.subarray(0, 3), new Uint8Array(0), whole.data.subarray(3, 9), whole.data.subarray(9)];
    // `data` is ignored when pieces are given.
    await storage.compact({ meta: whole.meta, data: new Uint8Array(0) }, pieces);
    assert.equal(await storage.readSnapshotData!(7), whole.data);
    const state = await reloadAfterClose(storage, place);
    assert.equal(state.snapshot, whole);
    assert.equal(indexes(state), [8, 9, 10]);
  });

  test('reopening after close gives back the same state', async () => {
    const place = newPlace();
    const storage = await opened(place);
    await storage.persist({ entries: entries(1, 30, 1), hardState: { term: 1, vote: 'c', commit: 12 } }, true);
    await storage.compact(snapshot(12, 1));
    await storage.persist({ entries: entries(25, 27, 2), hardState: { term: 2, vote: 'a', commit: 20 } }, false);
    const first = await reloadAfterClose(storage, place);
    const second = await reload(place);
    assert.equal(second, first);
    assert.equal(first.hardState, { term: 2, vote: 'a', commit: 20 });
    assert.equal(indexes(first), [13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27]);
  });

  test('writes that would leave a gap or reach below the snapshot fail an assertion and change nothing', async () => {
    const place = newPlace();
    const storage = await opened(place);
    await storage.persist({ entries: entries(1, 5, 1) }, true);
    await storage.compact(snapshot(3, 1));
    await rejectsWith(storage.persist({ entries: [entry(7, 1)] }, true), AssertionError);
    await rejectsWith(storage.persist({ entries: [entry(3, 2)] }, true), AssertionError);
    await rejectsWith(storage.persist({ entries: [entry(6, 1), entry(8, 1)] }, true), AssertionError);
    await rejectsWith(storage.compact(snapshot(6, 1)), AssertionError);
    await rejectsWith(storage.compact(snapshot(2, 1)), AssertionError);
    await rejectsWith(storage.persist({ snapshot: snapshot(2, 1), entries: [] }, true), AssertionError);
    await rejectsWith(storage.persist({ snapshot: snapshot(9, 2), entries: [entry(11, 2)] }, true), AssertionError);
    const state = await reloadAfterClose(storage, place);
    assert.equal(state.snapshot, snapshot(3, 1));
    assert.equal(state.entries, entries(4, 5, 1));
  });

  test('calls before load, after close, or overlapping another call fail an assertion', async () => {
    const place = newPlace();
    const storage = place.make();
    await rejectsWith(storage.persist({ entries: [entry(1, 1)] }, true), AssertionError);
    await storage.load();
    const running = storage.persist({ entries: [entry(1, 1)] }, true);
    await rejectsWith(storage.persist({ entries: [entry(2, 1)] }, true), AssertionError);
    await running;
    await storage.close();
    await rejectsWith(storage.compact(snapshot(1, 1)), AssertionError);
  });

  test('random appends, truncations, compactions and reopenings match a model of the log', async () => {
    // A small seeded generator (mulberry32): the same operations on every run.
    let seed = 0x5eed;
    const random = (below: number): number => {
      seed = (seed + 0x6d2b79f5) | 0;
      let value = Math.imul(seed ^ (seed >>> 15), 1 | seed);
      value = (value + Math.imul(value ^ (value >>> 7), 61 | value)) ^ value;
      return (((value ^ (value >>> 14)) >>> 0) % below);
    };
    const place = newPlace();
    let storage = await opened(place);
    let model: Entry[] = [];
    let snapshotIndex = 0;
    let term = 1;
    for (let step = 0; step < 300; step++) {
      const lastIndex = snapshotIndex + model.length;
      const choice = random(10);
      if (choice < 6) {
        // Append, sometimes replacing a tail of the log.
        const first = random(3) === 0 && model.length > 0 ? snapshotIndex + 1 + random(model.length) : lastIndex + 1;
        if (first <= lastIndex) term++;
        const added = entries(first, first + random(5), term);
        await storage.persist({ entries: added }, random(2) === 0);
        model = [...model.slice(0, first - snapshotIndex - 1), ...added];
      } else if (choice < 8 && model.length > 0) {
        const index = snapshotIndex + 1 + random(model.length);
        await storage.compact(snapshot(index, model[index - snapshotIndex - 1]!.term));
        model = model.slice(index - snapshotIndex);
        snapshotIndex = index;
      } else {
        await storage.close();
        const state = await reload(place);
        assert.equal(state.entries, model, `step ${step}`);
        assert.is(state.snapshot?.meta.index ?? 0, snapshotIndex, `step ${step}`);
        storage = await opened(place);
      }
    }
    const state = await reloadAfterClose(storage, place);
    assert.equal(state.entries, model);
  });
}
