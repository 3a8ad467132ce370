/**
 * What `LevelStorage` does with damaged data, on real LevelDB directories
 * damaged the way a disk or a crash would: bytes flipped in stored values,
 * in LevelDB's write-ahead log and in its table files; logs cut short or
 * zero-filled where a crash stopped a write. The outcomes are the ones
 * docs/internals/raft.md documents; in each, an acknowledged entry is either
 * loaded or the load fails, never silently missing.
 */
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Level } from 'level';
import { Packr } from 'msgpackr';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { crc32c, maskLevelDbCrc } from '../crc32c.js';
import { EntryType } from '../core/types.js';
import type { Entry, HardState, Snapshot } from '../core/types.js';
import { LevelStorage, SNAPSHOT_CHUNK_BYTES, StorageCorruptError } from '../storage-level.js';
import { checkLogBytes } from '../storage-level-wal.js';
import type { PersistedState } from '../storage.js';

const directories: string[] = [];

function tempDirectory(): string {
  const directory = mkdtempSync(join(tmpdir(), 'hivemind-storage-integrity-'));
  directories.push(directory);
  return directory;
}

test.after(() => {
  for (const directory of directories) rmSync(directory, { recursive: true, force: true });
});

/** Payload bytes that snappy cannot shrink (seeded), so table blocks hold them as written. */
function payload(index: number, bytes = 64): Uint8Array {
  const data = new Uint8Array(bytes);
  let seed = index * 0x9e3779b1;
  for (let offset = 0; offset < bytes; offset++) {
    seed = (Math.imul(seed ^ (seed >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) | 0;
    data[offset] = seed >>> 24;
  }
  return data;
}

function entry(index: number, term: number, bytes?: number): Entry {
  return { term, index, type: EntryType.Normal, data: payload(index, bytes) };
}

function entries(first: number, last: number, term: number, bytes?: number): Entry[] {
  const made: Entry[] = [];
  for (let index = first; index <= last; index++) made.push(entry(index, term, bytes));
  return made;
}

const SNAPSHOT: Snapshot = { meta: { index: 1, term: 1, config: { voters: ['a', 'b', 'c'], learners: [] } }, data: payload(0) };
const HARD_STATE: HardState = { term: 2, vote: 'a', commit: 8 };

/** Loads `directory` with a logger that collects its lines, and closes it. */
async function load(directory: string): Promise<{ state: PersistedState; lines: string[] }> {
  const lines: string[] = [];
  const storage = new LevelStorage({ directory, logger: (line) => lines.push(line) });
  try {
    return { state: await storage.load(), lines };
  } finally {
    await storage.close();
  }
}

async function loadFails(directory: string): Promise<StorageCorruptError> {
  try {
    await load(directory);
  } catch (error) {
    assert.instance(error, StorageCorruptError);
    const corrupt = error as StorageCorruptError;
    assert.is(corrupt.code, 'STORAGE_CORRUPT');
    assert.match(corrupt.message, directory);
    return corrupt;
  }
  assert.unreachable('expected StorageCorruptError');
  throw new Error('unreachable');
}

/**
 * A log of three runs (1..4, replaced from 3 by 3..6, then 7..9), a snapshot
 * at 1 and a hard state; every write synced and so acknowledged. The run at 1
 * stays, straddling the snapshot: 1 is covered, 2 live, its stored 3 and 4
 * replaced. After the writes the storage is closed, so they are in LevelDB's
 * current log. Returns the entries a load gives back.
 */
async function writeLog(directory: string, bytes?: number): Promise<Entry[]> {
  const storage = new LevelStorage({ directory, logger: () => {} });
  await storage.load();
  await storage.persist({ entries: entries(1, 4, 1, bytes) }, true);
  await storage.persist({ entries: entries(3, 6, 2, bytes), hardState: { term: 2, vote: 'a', commit: 2 } }, true);
  await storage.compact(SNAPSHOT);
  await storage.persist({ entries: entries(7, 9, 2, bytes), hardState: HARD_STATE }, true);
  await storage.close();
  return [entry(2, 1, bytes), ...entries(3, 9, 2, bytes)];
}

function runKey(index: number): string {
  return `r${index.toString(16).padStart(16, '0')}`;
}

/** Rewrites one stored value through LevelDB itself, as a bit flip on the disk under LevelDB would look to a reader. */
async function rewriteValue(directory: string, key: string, change: (value: Uint8Array) => Uint8Array): Promise<void> {
  const db = new Level<string, Uint8Array>(directory, { valueEncoding: 'view' });
  const value = await db.get(key);
  assert.ok(value !== undefined, `key ${key} is stored`);
  await db.put(key, change(Uint8Array.from(value)));
  await db.close();
}

function flipByte(at: (value: Uint8Array) => number): (value: Uint8Array) => Uint8Array {
  return (value) => {
    value[at(value)]! ^= 0x10;
    return value;
  };
}

test('CRC32C matches the published check values', () => {
  const hex = (value: number): string => value.toString(16).padStart(8, '0');
  assert.is(hex(crc32c(new TextEncoder().encode('123456789'))), 'e3069283');
  // RFC 3720 (iSCSI), appendix B.4.
  assert.is(hex(crc32c(new Uint8Array(32))), '8a9136aa');
  assert.is(hex(crc32c(new Uint8Array(32).fill(0xff))), '62a8ab43');
  assert.is(hex(crc32c(Uint8Array.from({ length: 32 }, (_, offset) => offset))), '46dd794e');
  assert.is(crc32c(new Uint8Array(0)), 0);
  // Continuing from the CRC of a prefix gives the CRC of the whole, at every split and length (the 8-byte steps and the rest).
  const data = payload(7, 100);
  for (let split = 0; split <= data.length; split += 9) {
    assert.is(crc32c(data.subarray(split), crc32c(data.subarray(0, split))), crc32c(data));
  }
});

test('values written now carry checksums, and an older directory is framed in place and still loads', async () => {
  const directory = tempDirectory();
  const acknowledged = await writeLog(directory);
  const { state, lines } = await load(directory);
  assert.equal(state.entries, acknowledged);
  assert.equal(state.hardState, HARD_STATE);
  assert.equal(lines, []);
  const db = new Level<string, Uint8Array>(directory, { valueEncoding: 'view' });
  for await (const [key, value] of db.iterator()) assert.is(value[0], 0xc1, `the value at ${key} is framed`);
  await db.close();
});

test('a directory written before checksums is framed at its first load, and checked from then on', async () => {
  const directory = tempDirectory();
  const packr = new Packr({ useRecords: false });
  const db = new Level<string, Uint8Array>(directory, { valueEncoding: 'view' });
  const tuples = entries(1, 3, 1).map((stored) => [stored.term, stored.index, stored.type, stored.data]);
  await db.put(runKey(1), packr.pack(tuples));
  await db.put('h', packr.pack({ term: 1, vote: 'a', commit: 3 }));
  await db.close();
  const { state, lines } = await load(directory);
  assert.equal(state.entries, entries(1, 3, 1));
  assert.equal(lines, [`Raft storage in "${directory}": added a CRC32C checksum to each of its 2 stored values (format 1)`]);
  assert.equal((await load(directory)).lines, []);
  await rewriteValue(directory, runKey(1), flipByte((value) => value.length - 1));
  assert.is((await loadFails(directory)).index, 1);
});

test('a flipped byte in the last run stops the load, naming its key and first index', async () => {
  const directory = tempDirectory();
  await writeLog(directory);
  await rewriteValue(directory, runKey(7), flipByte((value) => value.length - 3));
  const error = await loadFails(directory);
  assert.is(error.key, runKey(7));
  assert.is(error.index, 7);
  assert.match(error.message, 'from index 7');
  assert.match(error.message, 'CRC32C');
});

test('a flipped byte in a middle run stops the load, even in the part a later run replaced', async () => {
  const directory = tempDirectory();
  await writeLog(directory);
  await rewriteValue(directory, runKey(3), flipByte((value) => value.length - 3));
  const error = await loadFails(directory);
  assert.is(error.key, runKey(3));
  assert.is(error.index, 3);

  // The run at 1 holds 1..4, of which 3 and 4 were replaced. Damage in its replaced tail cannot be told
  // from damage in its live entry: one checksum covers the value.
  const straddling = tempDirectory();
  await writeLog(straddling);
  await rewriteValue(straddling, runKey(1), flipByte((value) => value.length - 3));
  assert.is((await loadFails(straddling)).index, 1);
});

test('a flipped byte in the hard state, the snapshot, a frame header or the format marker stops the load', async () => {
  const cases: Array<[string, (value: Uint8Array) => number]> = [
    ['h', (value) => value.length - 1],
    ['s', (value) => value.length - 1],
    [runKey(7), () => 0], // the frame mark: the value no longer looks framed
    [runKey(7), () => 2], // the stored checksum itself
    ['v', (value) => value.length - 1],
  ];
  for (const [key, at] of cases) {
    const directory = tempDirectory();
    await writeLog(directory);
    await rewriteValue(directory, key, flipByte(at));
    assert.is((await loadFails(directory)).key, key);
  }
});

test('a run that vanished from the disk stops the load: a gap, or a commit index past the last entry', async () => {
  const middle = tempDirectory();
  await writeLog(middle);
  const db = new Level<string, Uint8Array>(middle, { valueEncoding: 'view' });
  await db.del(runKey(3));
  await db.close();
  const gap = await loadFails(middle);
  assert.is(gap.key, runKey(7));
  // The run at 1 still stores 3 and 4 (the replaced tail), so the gap found is 5..6.
  assert.is(gap.index, 5);
  assert.match(gap.message, 'gap');

  const last = tempDirectory();
  await writeLog(last);
  const lastDb = new Level<string, Uint8Array>(last, { valueEncoding: 'view' });
  await lastDb.del(runKey(7));
  await lastDb.close();
  const lost = await loadFails(last);
  assert.is(lost.key, 'h');
  assert.match(lost.message, `commit index ${HARD_STATE.commit} is past its last entry 6`);
});

test('a value moved under another key fails its checksum: the key is part of it', async () => {
  const directory = tempDirectory();
  await writeLog(directory);
  const db = new Level<string, Uint8Array>(directory, { valueEncoding: 'view' });
  await db.put(runKey(7), (await db.get(runKey(3)))!);
  await db.close();
  assert.is((await loadFails(directory)).key, runKey(7));
});

/** A snapshot at `index` of `bytes` bytes that snappy cannot shrink. */
function bigSnapshot(index: number, bytes: number): Snapshot {
  return { meta: { index, term: 2, config: { voters: ['a', 'b', 'c'], learners: [] } }, data: payload(index, bytes) };
}

function chunkKey(index: number, chunk: number): string {
  return `c${index.toString(16).padStart(16, '0')}${chunk.toString(16).padStart(8, '0')}`;
}

/** A log of entries 1..9 compacted at 4 by a snapshot of two and a half chunks. */
async function writeChunkedSnapshot(directory: string): Promise<Snapshot> {
  const storage = new LevelStorage({ directory, logger: () => {} });
  await storage.load();
  await storage.persist({ entries: entries(1, 9, 2), hardState: HARD_STATE }, true);
  const snapshot = bigSnapshot(4, 2 * SNAPSHOT_CHUNK_BYTES + 1000);
  await storage.compact(snapshot);
  await storage.close();
  return snapshot;
}

async function storedKeys(directory: string): Promise<string[]> {
  const db = new Level<string, Uint8Array>(directory, { valueEncoding: 'view' });
  const keys = await db.keys().all();
  await db.close();
  return keys;
}

test('a snapshot is stored in chunks, each with its checksum, and loads whole; the next one replaces every chunk', async () => {
  const directory = tempDirectory();
  const snapshot = await writeChunkedSnapshot(directory);
  assert.equal((await storedKeys(directory)).filter((key) => key.startsWith('c')), [chunkKey(4, 0), chunkKey(4, 1), chunkKey(4, 2)]);
  const { state } = await load(directory);
  assert.equal(state.snapshot, snapshot);
  assert.equal(state.entries.map((each) => each.index), [5, 6, 7, 8, 9]);

  // A smaller snapshot from the leader: the old chunks go in the same batch.
  const storage = new LevelStorage({ directory, logger: () => {} });
  await storage.load();
  const next = bigSnapshot(12, 10);
  await storage.persist({ entries: [], snapshot: next }, true);
  await storage.close();
  assert.equal((await storedKeys(directory)).filter((key) => key.startsWith('c')), [chunkKey(12, 0)]);
  assert.equal((await load(directory)).state.snapshot, next);
});

test('a snapshot stored whole (before chunks) still loads, and the next one is stored in chunks', async () => {
  const directory = tempDirectory();
  await writeLog(directory);
  // What an older version wrote under "s": the snapshot itself, framed.
  const packr = new Packr({ useRecords: false });
  await rewriteValue(directory, 's', () => framed('s', packr.pack(SNAPSHOT)));
  const db = new Level<string, Uint8Array>(directory, { valueEncoding: 'view' });
  await db.del(chunkKey(1, 0));
  await db.close();
  assert.equal((await load(directory)).state.snapshot, SNAPSHOT);
  const storage = new LevelStorage({ directory, logger: () => {} });
  await storage.load();
  const next = bigSnapshot(8, SNAPSHOT_CHUNK_BYTES + 1);
  await storage.compact(next);
  await storage.close();
  assert.equal((await load(directory)).state.snapshot, next);
});

test('a damaged, missing or stray snapshot chunk stops the load, naming its key', async () => {
  const damaged = tempDirectory();
  await writeChunkedSnapshot(damaged);
  await rewriteValue(damaged, chunkKey(4, 1), flipByte((value) => value.length - 1));
  const flipped = await loadFails(damaged);
  assert.is(flipped.key, chunkKey(4, 1));
  assert.is(flipped.index, 4);

  const missing = tempDirectory();
  await writeChunkedSnapshot(missing);
  const db = new Level<string, Uint8Array>(missing, { valueEncoding: 'view' });
  await db.del(chunkKey(4, 2));
  await db.close();
  assert.match((await loadFails(missing)).message, 'names 3 chunks, and 2 are stored');

  const stray = tempDirectory();
  await writeChunkedSnapshot(stray);
  const strayDb = new Level<string, Uint8Array>(stray, { valueEncoding: 'view' });
  await strayDb.put(chunkKey(3, 0), (await strayDb.get(chunkKey(4, 0)))!);
  await strayDb.close();
  assert.is((await loadFails(stray)).key, chunkKey(3, 0));
});

test('chunks of a snapshot whose storing was cut short are deleted at load and logged; the stored snapshot stays', async () => {
  const directory = tempDirectory();
  const snapshot = await writeChunkedSnapshot(directory);
  // A crash after some chunks of a later snapshot, before its header: what streaming leaves.
  const db = new Level<string, Uint8Array>(directory, { valueEncoding: 'view' });
  const leftover = framed(chunkKey(9, 0), payload(9));
  await db.put(chunkKey(9, 0), leftover);
  await db.close();
  const { state, lines } = await load(directory);
  assert.equal(state.snapshot, snapshot);
  assert.match(lines.join('\n'), `deleted 1 chunks of a snapshot whose storing was cut short (from key ${chunkKey(9, 0)})`);
  assert.equal((await storedKeys(directory)).filter((key) => key.startsWith('c')), [chunkKey(4, 0), chunkKey(4, 1), chunkKey(4, 2)]);
});

/** `payload` framed as the storage frames a value under `key`. */
function framed(key: string, payload: Uint8Array): Uint8Array {
  const crc = crc32c(payload, crc32c(Buffer.from(key, 'latin1')));
  const bytes = new Uint8Array(6 + payload.length);
  bytes.set([0xc1, 0x01, crc >>> 24, (crc >>> 16) & 0xff, (crc >>> 8) & 0xff, crc & 0xff]);
  bytes.set(payload, 6);
  return bytes;
}

/** The path of the directory's only LevelDB write-ahead log. */
function logPath(directory: string): string {
  const logs = readdirSync(directory).filter((name) => name.endsWith('.log') && name !== 'LOG');
  assert.is(logs.length, 1, `one log in ${directory}: ${logs.join(', ')}`);
  return join(directory, logs[0]!);
}

/** Offsets of the log's physical records (32 KiB blocks, 7-byte headers). */
function recordOffsets(bytes: Uint8Array): number[] {
  const offsets: number[] = [];
  let offset = 0;
  while (offset + 7 <= bytes.length) {
    const blockLeft = 32768 - (offset % 32768);
    if (blockLeft < 7) {
      offset += blockLeft;
      continue;
    }
    offsets.push(offset);
    offset += 7 + (bytes[offset + 4]! | (bytes[offset + 5]! << 8));
  }
  return offsets;
}

test('a write cut short by a crash (the log ends inside its last record) is dropped and logged; earlier writes stay', async () => {
  const directory = tempDirectory();
  const acknowledged = await writeLog(directory);
  const path = logPath(directory);
  const bytes = readFileSync(path);
  const last = recordOffsets(bytes).at(-1)!;
  // The last batch (entries 7..9 and the hard state) stopped partway: its fsync never finished, so it was never acknowledged.
  truncateSync(path, last + 20);
  const { state, lines } = await load(directory);
  assert.equal(state.entries, acknowledged.filter((stored) => stored.index < 7));
  assert.equal(state.hardState, { term: 2, vote: 'a', commit: 2 });
  assert.is(lines.length, 1);
  assert.match(lines[0]!, 'cut short by a crash');
  assert.match(lines[0]!, `from byte ${last}`);
  // LevelDB replayed the log into a table and deleted it: the next start finds nothing to report.
  assert.equal((await load(directory)).lines, []);
});

test('a last record zero-filled where its data never landed is a torn write: dropped and logged', async () => {
  const directory = tempDirectory();
  // Large entries, so the last batch spans whole 512-byte sectors.
  const acknowledged = await writeLog(directory, 600);
  const path = logPath(directory);
  const bytes = readFileSync(path);
  const last = recordOffsets(bytes).at(-1)!;
  bytes.fill(0, last + 1024, bytes.length);
  writeFileSync(path, bytes);
  const { state, lines } = await load(directory);
  assert.equal(state.entries, acknowledged.filter((stored) => stored.index < 7));
  assert.match(lines[0]!, 'sector of zeros');
});

test('a flipped byte in the last complete log record stops the load; LevelDB alone would drop it silently', async () => {
  const directory = tempDirectory();
  const acknowledged = await writeLog(directory);
  const path = logPath(directory);
  const bytes = readFileSync(path);
  bytes[bytes.length - 10]! ^= 0x01;
  writeFileSync(path, bytes);

  // What happened before this check: LevelDB (no paranoid checks) skips the record, and entries 7..9, synced and
  // acknowledged, are gone without an error. Shown on a copy, since LevelDB deletes the log once replayed.
  const copy = tempDirectory();
  cpSync(directory, copy, { recursive: true });
  const db = new Level<string, Uint8Array>(copy, { valueEncoding: 'view' });
  assert.is(await db.get(runKey(7)), undefined);
  await db.close();

  const error = await loadFails(directory);
  assert.match(error.message, 'corrupt at byte');
  assert.is(error.key, path.slice(directory.length + 1));
  // Nothing was repaired behind the operator's back: the log is still there, unchanged.
  assert.equal(readFileSync(path), bytes);
  assert.ok(acknowledged.length > 0);
});

test('a flipped byte in a middle log record stops the load', async () => {
  const directory = tempDirectory();
  await writeLog(directory);
  const path = logPath(directory);
  const bytes = readFileSync(path);
  const offsets = recordOffsets(bytes);
  assert.ok(offsets.length >= 4, `the log holds ${offsets.length} records`);
  bytes[offsets[1]! + 12]! ^= 0x01;
  writeFileSync(path, bytes);
  const error = await loadFails(directory);
  assert.match(error.message, `corrupt at byte ${offsets[1]}`);
});

test('a flipped byte in a LevelDB table file stops the load (LevelDB does not check table blocks; the value checksum does)', async () => {
  const directory = tempDirectory();
  await writeLog(directory);
  // Opening replays the log into a table file: now every value lives in one.
  await load(directory);
  const tables = readdirSync(directory).filter((name) => name.endsWith('.ldb'));
  assert.is(tables.length, 1);
  const path = join(directory, tables[0]!);
  const bytes = readFileSync(path);
  const at = Buffer.from(bytes).indexOf(Buffer.from(payload(8)));
  assert.ok(at > 0, 'the payload of entry 8 is stored as written (snappy left it alone)');
  bytes[at + 5]! ^= 0x01;
  writeFileSync(path, bytes);
  const error = await loadFails(directory);
  assert.is(error.key, runKey(7));
});

test('a byte flipped anywhere in a table file: every acknowledged entry loads intact, or the load fails', async () => {
  const directory = tempDirectory();
  const storage = new LevelStorage({ directory, logger: () => {} });
  await storage.load();
  // Text payloads, so snappy compresses the blocks: a flip also hits compressed data and block structure.
  const text = (index: number): Entry => ({ term: 1, index, type: EntryType.Normal, data: new TextEncoder().encode(`entry ${index} `.repeat(6)) });
  const acknowledged: Entry[] = [];
  for (let first = 1; first <= 200; first += 10) {
    const batch = Array.from({ length: 10 }, (_, offset) => text(first + offset));
    await storage.persist({ entries: batch, hardState: { term: 1, vote: 'a', commit: first + 9 } }, true);
    acknowledged.push(...batch);
  }
  await storage.close();
  await load(directory);
  const table = readdirSync(directory).find((name) => name.endsWith('.ldb'))!;
  const original = readFileSync(join(directory, table));
  const outcomes = new Map<string, number>();
  for (let step = 0; step < 40; step++) {
    const copy = tempDirectory();
    cpSync(directory, copy, { recursive: true });
    const damaged = Buffer.from(original);
    damaged[Math.floor((original.length * step) / 40)]! ^= 0x04;
    writeFileSync(join(copy, table), damaged);
    let outcome = 'loaded intact';
    try {
      assert.equal((await load(copy)).state.entries, acknowledged, `flip ${step} loaded`);
    } catch (error) {
      // Either our checks name the damage, or LevelDB refuses the file itself (a block handle past its end: LEVEL_IO_ERROR).
      const code = (error as { code?: string }).code ?? '';
      if (!(error instanceof StorageCorruptError) && !code.startsWith('LEVEL_')) throw error;
      outcome = code;
    }
    outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
  }
  assert.ok((outcomes.get('STORAGE_CORRUPT') ?? 0) > 20, `most flips are caught: ${JSON.stringify([...outcomes])}`);
});

test('the log check: pure cases on a real log', async () => {
  const directory = tempDirectory();
  await writeLog(directory);
  const bytes = new Uint8Array(readFileSync(logPath(directory)));
  const offsets = recordOffsets(bytes);
  assert.equal(checkLogBytes(bytes), { kind: 'intact' });
  assert.equal(checkLogBytes(new Uint8Array(0)), { kind: 'intact' });
  // Cut inside the last header.
  assert.is(checkLogBytes(bytes.subarray(0, offsets.at(-1)! + 3)).kind, 'torn');
  // Zeros after the last record (a file extended before its data landed): torn, nothing but zeros dropped.
  const padded = new Uint8Array(bytes.length + 100);
  padded.set(bytes);
  assert.equal(checkLogBytes(padded), { kind: 'torn', offset: bytes.length, droppedBytes: 100, reason: 'zeros where a record should be' });
  // A record that is well formed but of an unknown type.
  const unknown = Uint8Array.from(bytes);
  const first = offsets[0]!;
  unknown[first + 6] = 9;
  const crc = maskLevelDbCrc(crc32c(unknown.subarray(first + 6, first + 7 + (unknown[first + 4]! | (unknown[first + 5]! << 8)))));
  new DataView(unknown.buffer).setUint32(first, crc, true);
  assert.is(checkLogBytes(unknown).kind, 'corrupt');
  // A write larger than a block, in fragments (first, middle, last): intact whole; cut inside, torn from its first fragment.
  const large = tempDirectory();
  const storage = new LevelStorage({ directory: large, logger: () => {} });
  await storage.load();
  await storage.persist({ entries: [entry(1, 1)] }, true);
  await storage.persist({ entries: [entry(2, 1, 100_000)] }, true);
  await storage.close();
  const fragmented = new Uint8Array(readFileSync(logPath(large)));
  const fragments = recordOffsets(fragmented);
  assert.ok(fragments.length >= 5, `${fragments.length} records`);
  assert.equal(checkLogBytes(fragmented), { kind: 'intact' });
  const cut = checkLogBytes(fragmented.subarray(0, 40_000));
  assert.is(cut.kind, 'torn');
  assert.is(cut.kind === 'torn' && cut.offset, fragments.find((offset) => fragmented[offset + 6] === 2 /* first fragment */));
  // Zeros in the middle, followed by complete records: older damage, not a crash.
  const zeroed = Uint8Array.from(bytes);
  zeroed.fill(0, offsets[1]!, offsets[2]!);
  assert.is(checkLogBytes(zeroed).kind, 'corrupt');
});

test.run();
