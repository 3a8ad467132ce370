// The key-value state machine's snapshots: the background snapshot holds the
// state as of its start while puts keep being applied, version-1 snapshots
// still restore, and a restore during a background snapshot wins.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Packr } from 'msgpackr';
import { EntryType, type Entry } from '../core/types.js';
import { encodePut, KvStateMachine } from '../server/kv-state-machine.js';

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

test('a background snapshot holds the state as of its start while puts go on', async () => {
  const machine = new KvStateMachine();
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
  const data = await pending;

  const copy = restored(data);
  assert.is(valueOf(copy, 'k1'), 'v1');
  assert.is(valueOf(copy, 'new'), undefined);
  assert.is(valueOf(copy, `k${KEYS - 1}`), `v${KEYS - 1}`);
  assert.equal(copy.dump(0, 100_000), before);
  assert.is(copy.dump(0, 100_000).puts.length, KEYS);

  // Afterwards the machine holds everything, and the next snapshot has it too.
  assert.is(valueOf(machine, 'k1'), 'changed');
  const later = restored(machine.snapshot());
  assert.is(valueOf(later, 'k1'), 'changed');
  assert.is(valueOf(later, 'new'), 'fresh');
  assert.equal(later.dump(0, 100_000), machine.dump(0, 100_000));
});

test('snapshot() during a background snapshot includes the puts applied meanwhile', async () => {
  const machine = new KvStateMachine();
  put(machine, 'a', '1');
  const pending = machine.snapshotInBackground();
  put(machine, 'a', '2');
  assert.is(valueOf(restored(machine.snapshot()), 'a'), '2');
  assert.is(valueOf(restored(await pending), 'a'), '1');
});

test('a restore during a background snapshot wins over the puts applied meanwhile', async () => {
  const source = new KvStateMachine();
  put(source, 'x', 'from the leader');
  const leaderSnapshot = source.snapshot();

  const machine = new KvStateMachine();
  for (let key = 0; key < KEYS; key++) put(machine, `k${key}`, 'old');
  const pending = machine.snapshotInBackground();
  put(machine, 'k0', 'applied during the snapshot');
  machine.restore(leaderSnapshot);
  await pending;
  assert.is(valueOf(machine, 'x'), 'from the leader');
  assert.is(valueOf(machine, 'k0'), undefined, 'the overlay of the replaced state is not merged');
  put(machine, 'y', 'after');
  assert.is(valueOf(restored(machine.snapshot()), 'y'), 'after');
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

test.run();
