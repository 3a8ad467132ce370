import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Level } from 'level';
import { Packr } from 'msgpackr';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { AssertionError } from '../core/assert.js';
import { EntryType } from '../core/types.js';
import type { Entry, Snapshot } from '../core/types.js';
import { LevelStorage, SNAPSHOT_CHUNK_BYTES, StorageCorruptError } from '../storage-level.js';
import type { PersistedState } from '../storage.js';
import { entryPayload } from './fixtures/storage-writer.js';
import { storageCompliance } from './storage-compliance.js';

const directories: string[] = [];

function tempDirectory(): string {
  const directory = mkdtempSync(join(tmpdir(), 'hivemind-storage-level-'));
  directories.push(directory);
  return directory;
}

test.after(() => {
  for (const directory of directories) rmSync(directory, { recursive: true, force: true });
});

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

/** Opens `directory`, loads it, closes it, and returns what was loaded. */
async function reload(directory: string): Promise<PersistedState> {
  const storage = new LevelStorage({ directory });
  const state = await storage.load();
  await storage.close();
  return state;
}

async function opened(directory: string): Promise<LevelStorage> {
  const storage = new LevelStorage({ directory });
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

async function reloadAfterClose(storage: LevelStorage, directory: string): Promise<PersistedState> {
  await storage.close();
  return reload(directory);
}

storageCompliance(test, () => {
  const directory = tempDirectory();
  return { make: () => new LevelStorage({ directory }) };
});

test('a snapshot of several chunks reads back whole; read beside a newer compaction, it is whole or nothing, never a mix', async () => {
  const storage = await opened(tempDirectory());
  await storage.persist({ entries: entries(1, 20, 1) }, true);
  const bytes = (seed: number): Uint8Array => Uint8Array.from({ length: 1_100_000 }, (_, offset) => (offset * 31 + seed) & 0xff);
  const first: Snapshot = { meta: snapshot(10, 1).meta, data: bytes(1) };
  await storage.compact(first);
  assert.equal(await storage.readSnapshotData(10), first.data);
  for (let round = 0; round < 5; round++) {
    const index = 11 + round;
    const read = storage.readSnapshotData(index - 1);
    const compaction = storage.compact({ meta: snapshot(index, 1).meta, data: bytes(index) });
    const [data] = await Promise.all([read, compaction]);
    if (data !== undefined) assert.equal(data, bytes(index === 11 ? 1 : index - 1), `round ${round}: a mix of two snapshots`);
    assert.equal(await storage.readSnapshotData(index), bytes(index));
  }
  await storage.close();
});

test('a snapshot in pieces larger and smaller than a chunk is stored as its chunks, no chunk spanning two pieces', async () => {
  const directory = tempDirectory();
  const storage = await opened(directory);
  await storage.persist({ entries: entries(1, 20, 1) }, true);
  const data = Uint8Array.from({ length: 2 * SNAPSHOT_CHUNK_BYTES + 1000 }, (_, offset) => (offset * 7 + 3) & 0xff);
  const cuts = [0, 10, SNAPSHOT_CHUNK_BYTES + 20, 2 * SNAPSHOT_CHUNK_BYTES + 1000];
  const pieces = cuts.slice(1).map((end, piece) => data.subarray(cuts[piece], end));
  await storage.compact({ meta: snapshot(12, 1).meta, data: new Uint8Array(0) }, pieces);
  assert.equal(await storage.readSnapshotData(12), data);
  await storage.close();
  const db = new Level<string, Uint8Array>(directory, { valueEncoding: 'view' });
  const chunkKeys = await db.keys({ gte: 'c', lt: 'd' }).all();
  await db.close();
  // 10 bytes; a whole chunk and 10 bytes; a whole chunk and 980 bytes.
  assert.is(chunkKeys.length, 5);
  assert.equal((await reload(directory)).snapshot?.data, data);
});

test('a snapshot stored a piece at a time, with the log written between pieces, is recorded whole; one never recorded is gone at load', async () => {
  const directory = tempDirectory();
  const storage = await opened(directory);
  await storage.persist({ entries: entries(1, 30, 1) }, true);
  const data = Uint8Array.from({ length: 3 * SNAPSHOT_CHUNK_BYTES + 500 }, (_, offset) => (offset * 13 + 5) & 0xff);
  const cuts = [0, SNAPSHOT_CHUNK_BYTES + 100, 2 * SNAPSHOT_CHUNK_BYTES, 3 * SNAPSHOT_CHUNK_BYTES + 500];
  const pieces = storage.snapshotPieces(snapshot(12, 1).meta);
  for (let piece = 0; piece < cuts.length - 1; piece++) {
    await pieces.write(data.subarray(cuts[piece], cuts[piece + 1]));
    // The log goes on between pieces; none of it is the snapshot yet.
    await storage.persist({ entries: entries(31 + piece, 31 + piece, 1) }, true);
    assert.is(await storage.readSnapshotData(12), undefined);
  }
  assert.is(pieces.bytes, data.length);
  await storage.compact({ meta: snapshot(12, 1).meta, data: new Uint8Array(0) }, pieces);
  assert.equal(await storage.readSnapshotData(12), data);
  await rejectsWith(pieces.write(data), AssertionError);

  // A second one, of which two pieces are written and which is never recorded (the node stopped).
  const abandoned = storage.snapshotPieces(snapshot(20, 1).meta);
  await abandoned.write(data.subarray(0, cuts[1]));
  await abandoned.write(data.subarray(cuts[1], cuts[2]));
  const state = await reloadAfterClose(storage, directory);
  assert.is(state.snapshot?.meta.index, 12);
  assert.equal(state.snapshot?.data, data);
  assert.equal(state.entries.map((entry) => entry.index), Array.from({ length: 21 }, (_, offset) => 13 + offset));
  // Its chunks (at index 20) were leftovers, deleted at that load; the recorded one's are 2 + 1 + 2
  // (a chunk and 100 bytes; a chunk less 100; a chunk and 500).
  const db = new Level<string, Uint8Array>(directory, { valueEncoding: 'view' });
  const chunkKeys = await db.keys({ gte: 'c', lt: 'd' }).all();
  await db.close();
  assert.equal(chunkKeys, [0, 1, 2, 3, 4].map((chunk) => `c${(12).toString(16).padStart(16, '0')}${chunk.toString(16).padStart(8, '0')}`));
});

test('pieces of a snapshot not newer than the stored one are refused', async () => {
  const storage = await opened(tempDirectory());
  await storage.persist({ entries: entries(1, 20, 1) }, true);
  await storage.compact(snapshot(10, 1));
  assert.throws(() => storage.snapshotPieces(snapshot(10, 1).meta), /not newer than the stored snapshot at 10/);
  const pieces = storage.snapshotPieces(snapshot(15, 1).meta);
  await storage.compact(snapshot(16, 1));
  await rejectsWith(pieces.write(new Uint8Array(10)), AssertionError);
  await rejectsWith(storage.compact(snapshot(15, 1), pieces), AssertionError);
  await storage.close();
});

test('a LevelDB error rejects: a second storage on a locked directory cannot load', async () => {
  const directory = tempDirectory();
  const storage = await opened(directory);
  const error = await rejectsWith(new LevelStorage({ directory }).load(), Error);
  assert.is((error as Error & { code?: string }).code, 'LEVEL_DATABASE_NOT_OPEN');
  await storage.close();
});

test('entries stored one per key (the layout before runs) load, and later appends replace them', async () => {
  const directory = tempDirectory();
  const db = new Level<string, Uint8Array>(directory, { valueEncoding: 'view' });
  const packr = new Packr({ useRecords: false });
  for (const old of entries(1, 6, 1)) await db.put(`e${old.index.toString(16).padStart(16, '0')}`, packr.pack(old));
  await db.close();
  assert.equal((await reload(directory)).entries, entries(1, 6, 1));

  const storage = await opened(directory);
  await storage.persist({ entries: entries(4, 5, 2) }, true);
  assert.equal((await reloadAfterClose(storage, directory)).entries, [...entries(1, 3, 1), ...entries(4, 5, 2)]);
  const next = await opened(directory);
  await next.compact(snapshot(2, 1));
  await next.persist({ entries: entries(6, 7, 2) }, true);
  const state = await reloadAfterClose(next, directory);
  assert.equal(state.entries, [entry(3, 1), ...entries(4, 7, 2)]);
});

test('stored data that does not decode, or decodes to the wrong shape, is reported as corrupt', async () => {
  const cases: Array<[string, Uint8Array]> = [
    ['h', Uint8Array.of(0x92, 0x01)], // an array cut short
    ['s', Uint8Array.of(0x01)], // a number where a snapshot should be
    ['e0000000000000001', Uint8Array.of(0x81, 0xa1, 0x78, 0x01)], // { x: 1 }
    ['r0000000000000001', Uint8Array.of(0x91, 0x94, 0x01, 0x02, 0x00, 0xc4, 0x00)], // [[1, 2, 0, bin]]: index 2 under key 1
    ['r0000000000000001', Uint8Array.of(0x90)], // an empty run
  ];
  for (const [key, value] of cases) {
    const directory = tempDirectory();
    const db = new Level<string, Uint8Array>(directory, { valueEncoding: 'view' });
    await db.put(key, value);
    await db.close();
    const error = await rejectsWith(reload(directory), StorageCorruptError);
    assert.match(error.message, directory);
    assert.is((error as StorageCorruptError).code, 'STORAGE_CORRUPT');
  }
});

/** Acknowledgements to wait for before the kill; the writer compacts every 40 entries. */
const CRASH_ACKS_MIN = 300;
const CRASH_TIMEOUT_MS = 4000;

/** Runs the writer until it has acknowledged `CRASH_ACKS_MIN` batches, then SIGKILLs it. */
function runWriterUntilKilled(directory: string): Promise<number[]> {
  const script = fileURLToPath(new URL('./fixtures/storage-writer.js', import.meta.url));
  const child = spawn(process.execPath, [script, directory], { stdio: ['ignore', 'pipe', 'pipe'] });
  const acknowledged: number[] = [];
  let pending = '';
  let stderr = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), CRASH_TIMEOUT_MS);
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.stdout.on('data', (chunk: Buffer) => {
      const lines = (pending + chunk.toString()).split('\n');
      pending = lines.pop() ?? '';
      for (const line of lines) acknowledged.push(Number(line));
      if (acknowledged.length >= CRASH_ACKS_MIN) child.kill('SIGKILL');
    });
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      if (signal === 'SIGKILL' && acknowledged.length >= CRASH_ACKS_MIN) resolve(acknowledged);
      else reject(new Error(`writer ended with code ${code}, signal ${signal}, after ${acknowledged.length} acks: ${stderr}`));
    });
  });
}

test('after a SIGKILL mid-write, every acknowledged entry is on disk and the log has no gaps', async () => {
  const directory = tempDirectory();
  for (let round = 0; round < 2; round++) {
    const acknowledged = await runWriterUntilKilled(directory);
    // load() itself asserts that entries follow the snapshot without a gap.
    const state = await reload(directory);
    const snapshotIndex = state.snapshot?.meta.index ?? 0;
    const lastIndex = snapshotIndex + state.entries.length;
    const lastAcknowledged = acknowledged.at(-1)!;
    assert.ok(lastIndex >= lastAcknowledged, `acknowledged ${lastAcknowledged}, but the log ends at ${lastIndex}`);
    assert.ok(snapshotIndex > 0, 'the writer compacted at least once');
    for (const stored of state.entries) assert.equal(stored.data, entryPayload(stored.index));
    assert.equal(state.snapshot!.data, entryPayload(snapshotIndex));
    assert.is(state.hardState.vote, 'writer');
  }
});

test.run();
