// Seeded fuzzing of the Raft transport's wire codec (consensus/transport/wire-codec.ts):
// valid messages round-trip; random and mutated tuples and bytes never make
// the decoder throw, only answer `{ ok: false, reason }` (or a value that
// passes every check). The seed is printed; SEED=N replays a run exactly.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Packr } from 'msgpackr';
import { SeededRandom } from '../core/random.js';
import { EntryType, MessageType } from '../core/types.js';
import type { Entry, Message, NodeId } from '../core/types.js';
import {
  SnapshotAssembly, decodeBatch, decodeSnapshotHeader, encodeMessages, encodeSnapshotHeader, messageFromTuple,
  type Decoded,
} from '../transport/wire-codec.js';

const SEED = Number(process.env.SEED ?? 20270115);
const CASES = Number(process.env.CASES ?? 2000);
const RECEIVER = 'n2';
const SENDER = 'n1';
const SNAPSHOT_BYTES_MAX = 1 << 20;
const packr = new Packr({ useRecords: false });

console.log(`wire-codec fuzz: seed ${SEED}, ${CASES} cases per test (replay: SEED=${SEED} node dist/consensus/test/wire-codec-fuzz.test.js)`);

function bytes(random: SeededRandom, length: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = random.below(256);
  return out;
}

function pick<T>(random: SeededRandom, values: readonly T[]): T {
  return values[random.below(values.length)]!;
}

function count(random: SeededRandom): number {
  return pick(random, [0, 1, random.below(1000), random.next(), Number.MAX_SAFE_INTEGER]);
}

function ids(random: SeededRandom, prefix: string): NodeId[] {
  const list = new Set<NodeId>();
  const size = random.below(4);
  for (let i = 0; i < size; i++) list.add(`${prefix}${random.below(10)}`);
  return [...list].sort();
}

function entry(random: SeededRandom): Entry {
  const base = { term: count(random), index: count(random), data: bytes(random, random.below(40)) };
  if (random.chance(0.8)) return { ...base, type: EntryType.Normal };
  return { ...base, type: EntryType.Config, config: { voters: ids(random, 'v'), learners: ids(random, 'l') } };
}

const BATCH_TYPES = [
  MessageType.Vote, MessageType.VoteResponse, MessageType.PreVote, MessageType.PreVoteResponse,
  MessageType.Append, MessageType.AppendResponse, MessageType.Heartbeat, MessageType.HeartbeatResponse,
  MessageType.TimeoutNow,
];

/** A valid message from SENDER to RECEIVER of a type that travels in batches. */
function validMessage(random: SeededRandom): Message {
  const entries: Entry[] = [];
  const entryCount = random.chance(0.5) ? 0 : random.below(5);
  for (let i = 0; i < entryCount; i++) entries.push(entry(random));
  return {
    type: pick(random, BATCH_TYPES), from: SENDER, to: RECEIVER,
    term: count(random), index: count(random), logTerm: count(random), commit: count(random),
    reject: random.chance(0.5), rejectHintIndex: count(random), rejectHintTerm: count(random),
    context: random.chance(0.8) ? '' : 'x'.repeat(random.below(50)), transfer: random.chance(0.5), entries,
  };
}

function validBatch(random: SeededRandom): Message[] {
  const messages: Message[] = [];
  const size = 1 + random.below(4);
  for (let i = 0; i < size; i++) messages.push(validMessage(random));
  return messages;
}

/** A value from the awkward corners of msgpack: wrong types, out-of-range numbers, odd shapes. */
function oddValue(random: SeededRandom, depth = 0): unknown {
  const choice = random.below(18);
  switch (choice) {
    case 0: return -1;
    case 1: return 1.5;
    case 2: return Number.NaN;
    case 3: return 2 ** 53;
    case 4: return -(2 ** 63);
    case 5: return '';
    case 6: return 'x'.repeat(random.chance(0.5) ? 257 : 5000);
    case 7: return null;
    case 8: return true;
    case 9: return bytes(random, random.below(8));
    case 10: return {};
    case 11: return { term: 1, from: SENDER };
    case 12: return [];
    case 13: return depth < 3 ? [oddValue(random, depth + 1), oddValue(random, depth + 1)] : 0;
    case 14: return RECEIVER;
    case 15: return random.below(20);
    case 16: return Number.POSITIVE_INFINITY;
    default: return random.next();
  }
}

/** The value with one element, at a random depth, replaced, removed or added. */
function mutateTuple(random: SeededRandom, value: unknown): unknown {
  if (!Array.isArray(value) || value.length === 0 || random.chance(0.2)) return oddValue(random);
  const copy = [...value];
  const at = random.below(copy.length);
  const action = random.below(4);
  if (action === 0) copy[at] = oddValue(random);
  else if (action === 1) copy.splice(at, 1);
  else if (action === 2) copy.splice(at, 0, oddValue(random));
  else copy[at] = mutateTuple(random, copy[at]);
  return copy;
}

/** The bytes with a few flipped, cut, inserted or duplicated. */
function mutateBytes(random: SeededRandom, input: Uint8Array): Uint8Array {
  let out = Uint8Array.from(input);
  const edits = 1 + random.below(4);
  for (let i = 0; i < edits; i++) {
    const at = random.below(out.length + 1);
    const action = random.below(4);
    if (action === 0 && out.length > 0) out[Math.min(at, out.length - 1)] = random.below(256);
    else if (action === 1) out = out.subarray(0, at);
    else if (action === 2) out = Uint8Array.from([...out.subarray(0, at), ...bytes(random, 1 + random.below(8)), ...out.subarray(at)]);
    else out = Uint8Array.from([...out, ...out.subarray(at)]);
  }
  return out;
}

/** Runs `decode`; fails the test (naming seed and case) if it throws or answers outside its contract. */
function expectDecoded<T>(what: string, caseIndex: number, decode: () => Decoded<T>, check: (value: T) => void = () => {}): Decoded<T> {
  let result: Decoded<T>;
  try {
    result = decode();
  } catch (error) {
    throw new Error(`seed ${SEED}, case ${caseIndex}: ${what} threw ${error instanceof Error ? error.stack : String(error)}`);
  }
  if (result.ok) check(result.value);
  else assert.ok(typeof result.reason === 'string' && result.reason.length > 0, `seed ${SEED}, case ${caseIndex}: ${what} refused without a reason`);
  return result;
}

/** What every accepted message must satisfy. */
function checkMessage(message: Message, caseIndex: number): void {
  const where = `seed ${SEED}, case ${caseIndex}`;
  assert.is(message.to, RECEIVER, where);
  assert.ok(typeof message.from === 'string' && message.from.length > 0, where);
  for (const value of [message.term, message.index, message.logTerm, message.commit, message.rejectHintIndex, message.rejectHintTerm]) {
    assert.ok(Number.isSafeInteger(value) && value >= 0, `${where}: a count ${value}`);
  }
  for (const item of message.entries) {
    assert.ok(item.data instanceof Uint8Array, where);
    assert.ok(item.type === EntryType.Normal ? item.config === undefined : item.config !== undefined, where);
  }
}

function checkBatch(messages: Message[], caseIndex: number): void {
  assert.ok(messages.length > 0, `seed ${SEED}, case ${caseIndex}: an empty batch accepted`);
  for (const message of messages) {
    checkMessage(message, caseIndex);
    assert.is(message.from, SENDER, `seed ${SEED}, case ${caseIndex}`);
    assert.is.not(message.type, MessageType.Snapshot, `seed ${SEED}, case ${caseIndex}`);
  }
}

function plain(messages: Message[]): unknown {
  return messages.map((m) => ({ ...m, entries: m.entries.map((e) => ({ ...e, data: Buffer.from(e.data) })) }));
}

test('valid batches round-trip unchanged', () => {
  const random = new SeededRandom(SEED);
  for (let i = 0; i < CASES; i++) {
    const messages = validBatch(random);
    const decoded = expectDecoded('decodeBatch', i, () => decodeBatch({ from: SENDER, payload: encodeMessages(messages) }, RECEIVER));
    assert.ok(decoded.ok, `seed ${SEED}, case ${i}: a valid batch refused: ${decoded.ok ? '' : decoded.reason}`);
    assert.equal(plain(decoded.value), plain(messages), `seed ${SEED}, case ${i}`);
  }
});

test('mutated message tuples are refused or valid, never thrown', () => {
  const random = new SeededRandom(SEED + 1);
  let refused = 0;
  for (let i = 0; i < CASES; i++) {
    const tuple = (packr.unpack(encodeMessages([validMessage(random)])) as unknown[])[0];
    const mutated = mutateTuple(random, tuple);
    const result = expectDecoded('messageFromTuple', i, () => messageFromTuple(mutated, RECEIVER), (m) => checkMessage(m, i));
    if (!result.ok) refused++;
  }
  assert.ok(refused > CASES / 2, `seed ${SEED}: only ${refused} of ${CASES} mutations refused; the mutator is too gentle`);
});

test('mutated batch payloads and random bytes are refused or valid, never thrown', () => {
  const random = new SeededRandom(SEED + 2);
  let refused = 0;
  for (let i = 0; i < CASES; i++) {
    const messages = validBatch(random);
    const tuples = packr.unpack(encodeMessages(messages)) as unknown[];
    const choice = random.below(3);
    const payload = choice === 0 ? packr.pack(mutateTuple(random, tuples))
      : choice === 1 ? mutateBytes(random, encodeMessages(messages))
      : bytes(random, random.below(64));
    const from = random.chance(0.9) ? SENDER : (oddValue(random) as string);
    const result = expectDecoded('decodeBatch', i, () => decodeBatch({ from, payload }, RECEIVER), (value) => checkBatch(value, i));
    if (!result.ok) refused++;
  }
  assert.ok(refused > CASES / 2, `seed ${SEED}: only ${refused} of ${CASES} mutations refused; the mutator is too gentle`);
});

test('mutated snapshot headers and chunk sequences are refused or valid, never thrown', () => {
  const random = new SeededRandom(SEED + 3);
  for (let i = 0; i < CASES; i++) {
    const data = bytes(random, random.below(64));
    const snapshot: Message = {
      ...validMessage(random), type: MessageType.Snapshot, entries: [],
      snapshot: { meta: { index: count(random), term: count(random), config: { voters: ids(random, 'v'), learners: [] } }, data },
    };
    const header = encodeSnapshotHeader(snapshot);
    const choice = random.below(3);
    const mutatedHeader = choice === 0 ? header
      : choice === 1 ? mutateBytes(random, header)
      : packr.pack(mutateTuple(random, packr.unpack(header)));
    expectDecoded('decodeSnapshotHeader', i, () => decodeSnapshotHeader(mutatedHeader, RECEIVER, SNAPSHOT_BYTES_MAX), (value) => checkMessage(value.message, i));
    // A chunk sequence: the header first, then pieces of the data, with the `done` flags and sizes perturbed.
    const assembly = new SnapshotAssembly(RECEIVER, SNAPSHOT_BYTES_MAX);
    const chunks = 1 + random.below(4);
    let offset = 0;
    let accepted = true;
    for (let c = 0; c < chunks && accepted; c++) {
      const end = c === chunks - 1 ? data.byteLength : Math.min(data.byteLength, offset + random.below(32));
      const piece = random.chance(0.1) ? bytes(random, random.below(16)) : data.subarray(offset, end);
      offset = end;
      const chunk = {
        header: c === 0 ? mutatedHeader : random.chance(0.05) ? header : new Uint8Array(0),
        data: piece,
        done: random.chance(0.1) ? !(c === chunks - 1) : c === chunks - 1,
      };
      accepted = expectDecoded('SnapshotAssembly.add', i, () => assembly.add(chunk)).ok;
    }
    if (accepted) {
      expectDecoded('SnapshotAssembly.finish', i, () => assembly.finish(), (m) => {
        checkMessage(m, i);
        assert.is(m.type, MessageType.Snapshot, `seed ${SEED}, case ${i}`);
      });
    }
  }
});

test('an unmutated snapshot assembles to the message sent', () => {
  const random = new SeededRandom(SEED + 4);
  const data = bytes(random, 1000);
  const snapshot: Message = {
    ...validMessage(random), type: MessageType.Snapshot, entries: [],
    snapshot: { meta: { index: 7, term: 3, config: { voters: ['a', 'b'], learners: ['c'] } }, data },
  };
  const assembly = new SnapshotAssembly(RECEIVER, SNAPSHOT_BYTES_MAX);
  assert.ok(assembly.add({ header: encodeSnapshotHeader(snapshot), data: data.subarray(0, 400), done: false }).ok);
  assert.ok(assembly.add({ header: new Uint8Array(0), data: data.subarray(400), done: true }).ok);
  const finished = assembly.finish();
  assert.ok(finished.ok);
  assert.equal(Buffer.from(finished.value.snapshot!.data), Buffer.from(data));
  assert.equal(finished.value.snapshot!.meta, snapshot.snapshot!.meta);
});

test.run();
