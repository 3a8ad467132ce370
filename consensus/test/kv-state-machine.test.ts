// The key-value state machine's snapshots, with its values in memory and in
// LevelDB: the background snapshot holds the state as of its start while
// puts keep being applied, version-1 and version-2 snapshots still restore,
// and a restore during a background snapshot wins. Then the LevelDB store's
// own cases: reads while its writes are under way, a restore's generations,
// and a start that empties it.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Packr } from 'msgpackr';
import { EntryType, type Entry } from '../core/types.js';
import { SLAB_BYTES, SLAB_COPY_BYTES_MAX } from '../server/entry-slabs.js';
import { encodePut, KvStateMachine, StaleSnapshotError } from '../server/kv-state-machine.js';
import { LevelKvValues, WRITE_BATCH_ITEMS_MAX } from '../server/kv-values-level.js';

const text = new TextEncoder();
/** More keys than one snapshot slice holds (2,048), so slices and their order are exercised. */
const KEYS = 5000;

let nextIndex = 1;
function put(machine: KvStateMachine, key: string, value: string, requestId = ''): void {
  const entry: Entry = { index: nextIndex, term: 1, type: EntryType.Normal, data: encodePut({ key: text.encode(key), value: text.encode(value), requestId }) };
  nextIndex++;
  machine.apply(entry);
}

function valueOf(machine: KvStateMachine, key: string): string | undefined {
  const value = machine.get(text.encode(key));
  return value === undefined ? undefined : Buffer.from(value).toString();
}

function restored(data: Uint8Array): KvStateMachine {
  const machine = new KvStateMachine();
  machine.restore(data);
  return machine;
}

/** Every LevelDB store a test opened, closed and removed after it. */
const opened: { values: LevelKvValues; directory: string }[] = [];

async function levelValues(): Promise<LevelKvValues> {
  const directory = mkdtempSync(join(tmpdir(), 'hivemind-kv-values-'));
  const values = new LevelKvValues({
    directory,
    onFatal: (error) => {
      throw error;
    },
  });
  await values.open();
  opened.push({ values, directory });
  return values;
}

test.after.each(async () => {
  for (const { values, directory } of opened.splice(0)) {
    await values.close();
    rmSync(directory, { recursive: true, force: true });
  }
});

/** The two kinds of machine every snapshot case runs on. */
const stores: { name: string; make: () => Promise<KvStateMachine> }[] = [
  { name: 'in memory', make: async () => new KvStateMachine() },
  { name: 'in LevelDB', make: async () => new KvStateMachine({ values: await levelValues() }) },
];

/** A whole snapshot of `machine`, the way the node takes it: in pieces, which the storage joins when it reads them back. */
async function snapshotOf(machine: KvStateMachine): Promise<Uint8Array> {
  return Buffer.concat(await machine.snapshotInBackground());
}

for (const store of stores) {
test(`${store.name}: a background snapshot holds the state as of its start while puts go on`, async () => {
  const machine = await store.make();
  for (let key = 0; key < KEYS; key++) put(machine, `k${key}`, `v${key}`, `r${key}`);
  const before = machine.dump(0, 100_000);
  const pending = machine.snapshotInBackground();
  // Applied while it encodes: an overwrite, a new key, a repeated request id.
  put(machine, 'k1', 'changed');
  put(machine, 'new', 'fresh');
  put(machine, 'k2', 'ignored', 'r2');
  assert.is(valueOf(machine, 'k1'), 'changed', 'reads see puts applied during the snapshot');
  assert.is(valueOf(machine, 'new'), 'fresh');
  assert.is(valueOf(machine, 'k2'), 'v2', 'a repeated request id is not applied twice');
  const data = Buffer.concat(await pending);

  const copy = restored(data);
  assert.is(valueOf(copy, 'k1'), 'v1');
  assert.is(valueOf(copy, 'new'), undefined);
  assert.is(valueOf(copy, `k${KEYS - 1}`), `v${KEYS - 1}`);
  assert.equal(copy.dump(0, 100_000), before);
  assert.is(copy.dump(0, 100_000).puts.length, KEYS);

  // Afterwards the machine holds everything, and the next snapshot has it too.
  assert.is(valueOf(machine, 'k1'), 'changed');
  const later = restored(await snapshotOf(machine));
  assert.is(valueOf(later, 'k1'), 'changed');
  assert.is(valueOf(later, 'new'), 'fresh');
  assert.equal(later.dump(0, 100_000), machine.dump(0, 100_000));
});

test(`${store.name}: a restore during a background snapshot wins over the puts applied meanwhile`, async () => {
  const source = new KvStateMachine();
  put(source, 'x', 'from the leader');
  const leaderSnapshot = source.snapshot();

  const machine = await store.make();
  for (let key = 0; key < KEYS; key++) put(machine, `k${key}`, 'old');
  const pending = machine.snapshotInBackground();
  put(machine, 'k0', 'applied during the snapshot');
  machine.restore(leaderSnapshot);
  await pending;
  assert.is(valueOf(machine, 'x'), 'from the leader');
  assert.is(valueOf(machine, 'k0'), undefined, 'the puts of the replaced state are gone');
  assert.is(valueOf(machine, 'k1'), undefined);
  put(machine, 'y', 'after');
  const copy = restored(await snapshotOf(machine));
  assert.is(valueOf(copy, 'y'), 'after');
  assert.is(valueOf(copy, 'x'), 'from the leader');
  assert.is(valueOf(copy, 'k1'), undefined, 'the replaced generation is not in a later snapshot');
});
}

for (const store of stores) {
test(`${store.name}: a snapshot stream holds the state as of the call, however late it is read`, async () => {
  const machine = await store.make();
  for (let key = 0; key < KEYS; key++) put(machine, `k${key}`, `v${key}`, `r${key}`);
  const before = machine.dump(0, 100_000);
  const stream = machine.snapshotStream();
  put(machine, 'k1', 'changed');
  put(machine, 'new', 'fresh');
  const parts: Uint8Array[] = [];
  for await (const part of stream) {
    parts.push(part);
    // Applied between the pieces too.
    put(machine, `late${parts.length}`, 'x');
  }
  assert.ok(parts.length > 3, `the values come in slices: ${parts.length} pieces`);
  const copy = restored(Buffer.concat(parts));
  assert.equal(copy.dump(0, 100_000), before);
  assert.is(valueOf(copy, 'k1'), 'v1');
  assert.is(valueOf(copy, 'new'), undefined);
  assert.is(valueOf(copy, 'late1'), undefined);
  // Read to its end, it is closed: the next one opens.
  const next = restored(await snapshotOf(machine));
  assert.is(valueOf(next, 'k1'), 'changed');
  assert.is(valueOf(next, 'late1'), 'x');
});

test(`${store.name}: a snapshot stream closed unread lets the next one open`, async () => {
  const machine = await store.make();
  put(machine, 'a', '1');
  const unread = machine.snapshotStream();
  assert.throws(() => machine.snapshotStream(), /one snapshot stream at a time/);
  await unread.close();
  await unread.close();
  put(machine, 'a', '2');
  assert.is(valueOf(restored(await snapshotOf(machine)), 'a'), '2');
});

test(`${store.name}: a snapshot stream read after a restore fails as stale`, async () => {
  const source = new KvStateMachine();
  put(source, 'x', 'from the leader');
  const machine = await store.make();
  for (let key = 0; key < KEYS; key++) put(machine, `k${key}`, 'old');
  const stream = machine.snapshotStream();
  machine.restore(source.snapshot());
  let failure: unknown;
  try {
    for await (const part of stream) assert.ok(part.length > 0);
  } catch (error) {
    failure = error;
  }
  assert.instance(failure, StaleSnapshotError);
  assert.is(valueOf(machine, 'x'), 'from the leader');
  assert.is(valueOf(restored(await snapshotOf(machine)), 'x'), 'from the leader', 'closed by the failure: the next one opens');
});
}

test('snapshot() during a background snapshot includes the puts applied meanwhile', async () => {
  const machine = new KvStateMachine();
  put(machine, 'a', '1');
  const pending = machine.snapshotInBackground();
  put(machine, 'a', '2');
  assert.is(valueOf(restored(machine.snapshot()), 'a'), '2');
  assert.is(valueOf(restored(Buffer.concat(await pending)), 'a'), '1');
});

test('a version-1 snapshot (one msgpack array) still restores', () => {
  const packr = new Packr({ useRecords: false });
  const key = text.encode('old-key');
  const data = packr.pack([1, [[key, text.encode('old-value')]], [[7, key, 12345, 'req']], 3, [['req', 7, 2]]]);
  const machine = restored(data);
  assert.is(valueOf(machine, 'old-key'), 'old-value');
  const dump = machine.dump(0, 10);
  assert.is(dump.forgotten, 3);
  assert.equal(
    dump.puts.map((each) => ({ ...each, key: Buffer.from(each.key).toString() })),
    [{ index: 7, key: 'old-key', valueHash: 12345, requestId: 'req' }],
  );
});

test('a snapshot of another kind or cut short is refused', () => {
  const packr = new Packr({ useRecords: false });
  assert.throws(() => restored(packr.pack({ not: 'a snapshot' })), /not a key-value snapshot/);
  assert.throws(() => restored(packr.pack([9, 0, 0, 0, []])), /version 9/);
  const machine = new KvStateMachine();
  for (let key = 0; key < KEYS; key++) put(machine, `k${key}`, 'v');
  const whole = machine.snapshot();
  const firstSlices = Buffer.concat(packr.unpackMultiple(whole).slice(0, 2).map((item) => Buffer.from(packr.pack(item))));
  assert.throws(() => restored(firstSlices), /cut short/);
});

test('a version-2 snapshot (value count in the header) still restores', () => {
  const packr = new Packr({ useRecords: false });
  const key = text.encode('two');
  const data = Buffer.concat([
    packr.pack([2, 1, 1, 0, []]),
    packr.pack([[key, text.encode('value')]]),
    packr.pack([[9, key, 1, '']]),
  ].map((part) => Buffer.from(part)));
  const machine = restored(data);
  assert.is(valueOf(machine, 'two'), 'value');
  assert.is(machine.dump(0, 10).puts[0]!.index, 9);
});

test('in LevelDB: reads see every put at once, before, during and after its write', async () => {
  const values = await levelValues();
  const machine = new KvStateMachine({ values });
  // More than one batch, so some are queued behind the one being written.
  const count = 3 * WRITE_BATCH_ITEMS_MAX + 7;
  for (let key = 0; key < count; key++) put(machine, `k${key}`, `v${key}`);
  put(machine, 'k5', 'newer');
  assert.is(valueOf(machine, 'k0'), 'v0');
  assert.is(valueOf(machine, 'k5'), 'newer', 'the newest put wins over a queued batch');
  assert.is(valueOf(machine, `k${count - 1}`), `v${count - 1}`);
  await new Promise((resolve) => setTimeout(resolve, 0));
  await values.close(); // waits for the writes; reopen the same files without emptying them
  const reopened = new LevelKvValues({ directory: opened.at(-1)!.directory, onFatal: () => {} });
  opened.at(-1)!.values = reopened;
  await reopened.open();
  assert.is(reopened.get('k5'), undefined, 'open empties the store: the Raft snapshot and log rebuild it');
});

test('in LevelDB: after the writes, values come from the database', async () => {
  const values = await levelValues();
  const machine = new KvStateMachine({ values });
  for (let key = 0; key < 100; key++) put(machine, `k${key}`, `v${key}`);
  // A frozen view is made after every earlier write: once it is, they are all in LevelDB.
  const view = values.freeze();
  const slice = await view.next();
  await view.close();
  assert.is(slice.length, 100);
  assert.is(valueOf(machine, 'k42'), 'v42');
  assert.is(valueOf(machine, 'missing'), undefined);
});

test('in LevelDB: snapshot() is refused, since LevelDB is read only in the background', async () => {
  const machine = new KvStateMachine({ values: await levelValues() });
  put(machine, 'a', '1');
  assert.throws(() => machine.snapshot(), /only in the background/);
});

test('encoded puts sit side by side in slabs of their own, whatever else msgpack packs meanwhile', () => {
  const other = new Packr({ useRecords: false });
  const puts: Uint8Array[] = [];
  for (let count = 0; count < 20; count++) {
    puts.push(encodePut({ key: text.encode(`key-${count}`), value: new Uint8Array(300).fill(count), requestId: '' }));
    // Short-lived packs in between, as the transport's and the storage's are on a leader.
    other.pack({ batch: new Uint8Array(2000), count });
  }
  for (let count = 1; count < puts.length; count++) {
    const [before, put] = [puts[count - 1]!, puts[count]!];
    if (put.buffer !== before.buffer) continue; // a new slab
    assert.is(put.byteOffset, before.byteOffset + before.byteLength, `put ${count} follows put ${count - 1} in its slab`);
  }
  assert.ok(puts.every((put) => put.buffer.byteLength === SLAB_BYTES), 'every put is in a slab');
  const large = encodePut({ key: text.encode('large'), value: new Uint8Array(SLAB_COPY_BYTES_MAX + 1), requestId: '' });
  assert.is(large.buffer.byteLength, large.byteLength, 'a put larger than the copy limit has a buffer of its own');
});

test('applying a put leaves no cache behind on the entry\'s data, which the log keeps', () => {
  const machine = new KvStateMachine();
  const data = encodePut({ key: text.encode('k'), value: text.encode('v'), requestId: '' });
  machine.apply({ index: 1, term: 1, type: EntryType.Normal, data });
  assert.equal(Object.keys(data).filter((name) => !/^\d+$/.test(name)), []);
  assert.not.ok('dataView' in data);
  assert.is(valueOf(machine, 'k'), 'v');
});

test.run();
