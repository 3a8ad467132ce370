/**
 * RaftNode, in process, with its real parts: LevelStorage in a temporary
 * directory and GrpcTransport on 127.0.0.1 (a free port). A single-voter
 * cluster, so the driver's own paths are what is under test: bootstrap,
 * proposals, ReadIndex, restart from disk, snapshot and compaction, group
 * commit, refusals and the stop on a storage error.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { Entry, Snapshot } from '../core/types.js';
import { AbortedError, ConfigChangeError, NotLeaderError, StoppedError } from '../errors.js';
import { RaftNode, type RaftNodeOptions, type SnapshotStream, type StateMachine } from '../node.js';
import { LevelStorage } from '../storage-level.js';
import type { PersistedState, RaftStorage, SnapshotPieces, StorageWrite } from '../storage.js';
import { GrpcTransport } from '../transport-grpc.js';

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const directories: string[] = [];
const nodes: RaftNode[] = [];

function tempDirectory(): string {
  const directory = mkdtempSync(join(tmpdir(), 'hivemind-node-'));
  directories.push(directory);
  return directory;
}

test.after.each(async () => {
  await Promise.all(nodes.splice(0).map((node) => node.stop()));
});

test.after(() => {
  for (const directory of directories) rmSync(directory, { recursive: true, force: true });
});

/** Applies text entries to a list; its snapshot is the list in JSON. */
class ListMachine implements StateMachine {
  items: string[] = [];
  restores = 0;

  apply(entry: Entry): unknown {
    this.items.push(decoder.decode(entry.data));
    return this.items.length;
  }

  snapshot(): Uint8Array {
    return encoder.encode(JSON.stringify(this.items));
  }

  restore(data: Uint8Array): void {
    this.items = JSON.parse(decoder.decode(data)) as string[];
    this.restores++;
  }
}

/** LevelStorage that counts its writes and fails them on demand. */
class InstrumentedStorage implements RaftStorage {
  persists = 0;
  compactions = 0;
  failNextPersist = false;

  constructor(readonly inner: LevelStorage) {}

  load(): Promise<PersistedState> {
    return this.inner.load();
  }

  persist(write: StorageWrite, sync: boolean): Promise<void> {
    this.persists++;
    if (this.failNextPersist) return Promise.reject(new Error('injected disk failure'));
    return this.inner.persist(write, sync);
  }

  compact(snapshot: Snapshot): Promise<void> {
    this.compactions++;
    return this.inner.compact(snapshot);
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}

interface Started {
  node: RaftNode;
  machine: ListMachine;
  storage: InstrumentedStorage;
}

async function startNode(
  directory: string,
  options: { bootstrap?: boolean } & Partial<RaftNodeOptions> = {},
): Promise<Started> {
  const machine = new ListMachine();
  const storage = new InstrumentedStorage(new LevelStorage({ directory }));
  const { bootstrap = true, ...overrides } = options;
  const node = new RaftNode({
    id: 'a',
    storage,
    transport: new GrpcTransport({ id: 'a', listen: '127.0.0.1:0' }),
    stateMachine: machine,
    tickMs: 10,
    seed: 1,
    ...overrides,
  });
  nodes.push(node);
  await node.start(bootstrap ? { bootstrap: { voters: ['a'], learners: [] } } : {});
  return { node, machine, storage };
}

async function stopNode(node: RaftNode): Promise<void> {
  await node.stop();
  nodes.splice(nodes.indexOf(node), 1);
}

async function eventually(what: string, condition: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('expected a rejection');
}

async function proposeAll(node: RaftNode, texts: string[]): Promise<void> {
  for (const text of texts) await node.propose(encoder.encode(text));
}

function texts(prefix: string, count: number): string[] {
  return Array.from({ length: count }, (_, index) => `${prefix}${index}`);
}

test('a lone bootstrapped node leads at once, applies proposals in order and serves reads', async () => {
  const { node, machine } = await startNode(tempDirectory());
  await eventually('leadership', () => node.status().role === 'leader');
  const first = await node.propose(encoder.encode('one'));
  const second = await node.propose(encoder.encode('two'));
  assert.is(first.result, 1);
  assert.is(second.result, 2);
  assert.is(second.index, first.index + 1);
  assert.is(second.term, first.term);
  const readIndex = await node.read();
  assert.ok(readIndex >= second.index, `read index ${readIndex} is below the last write ${second.index}`);
  assert.equal(machine.items, ['one', 'two']);
  const status = node.status();
  assert.equal(status.config, { voters: ['a'], learners: [] });
  assert.is(status.applied, second.index);
});

test('concurrent proposals share writes (group commit)', async () => {
  const { node, storage, machine } = await startNode(tempDirectory());
  await eventually('leadership', () => node.status().role === 'leader');
  const before = storage.persists;
  const results = await Promise.all(texts('p', 200).map((text) => node.propose(encoder.encode(text))));
  const writes = storage.persists - before;
  assert.is(machine.items.length, 200);
  assert.equal(new Set(results.map((result) => result.index)).size, 200);
  assert.ok(writes < 50, `200 concurrent proposals took ${writes} storage writes`);
});

test('a restart from the same directory replays the log, and the disk wins over bootstrap', async () => {
  const directory = tempDirectory();
  const first = await startNode(directory);
  await eventually('leadership', () => first.node.status().role === 'leader');
  await proposeAll(first.node, texts('r', 5));
  const termBefore = first.node.status().term;
  await stopNode(first.node);

  const second = await startNode(directory, { bootstrap: true });
  await eventually('leadership', () => second.node.status().role === 'leader');
  await second.node.read();
  assert.equal(second.machine.items, texts('r', 5));
  assert.is(second.machine.restores, 0);
  assert.ok(second.node.status().term > termBefore, 'a restarted node campaigns in a new term');
  await second.node.propose(encoder.encode('after'));
  assert.equal(second.machine.items, [...texts('r', 5), 'after']);
});

test('snapshots compact the log, and a restart restores from the snapshot', async () => {
  const directory = tempDirectory();
  const first = await startNode(directory, { snapshotEveryEntries: 10 });
  await eventually('leadership', () => first.node.status().role === 'leader');
  await proposeAll(first.node, texts('s', 35));
  // Compaction runs behind the loop: the last one may still be on its way.
  await eventually('three compactions', () => first.storage.compactions >= 3);
  await eventually('the log compacted past 30', () => first.node.status().firstIndex > 30);
  await stopNode(first.node);

  const onDisk = new LevelStorage({ directory });
  const persisted = await onDisk.load();
  await onDisk.close();
  assert.ok(persisted.snapshot !== undefined, 'a snapshot is stored');
  const snapshotIndex = persisted.snapshot.meta.index;
  assert.ok(snapshotIndex >= 30, `snapshot index ${snapshotIndex}`);
  assert.is(persisted.entries[0]?.index ?? snapshotIndex + 1, snapshotIndex + 1);
  assert.equal(persisted.snapshot.meta.config, { voters: ['a'], learners: [] });

  const second = await startNode(directory, { snapshotEveryEntries: 10 });
  assert.is(second.machine.restores, 1);
  await eventually('leadership', () => second.node.status().role === 'leader');
  await second.node.read();
  assert.equal(second.machine.items, texts('s', 35));
  await proposeAll(second.node, ['t']);
  assert.equal(second.machine.items, [...texts('s', 35), 't']);
});

/** A list whose background snapshot waits for the test to let it finish. */
class SlowSnapshotMachine extends ListMachine {
  started: { items: string[]; finish: () => void }[] = [];

  snapshotInBackground(): Promise<Uint8Array> {
    const data = this.snapshot(); // the state as of the call
    return new Promise((resolve) => this.started.push({ items: [...this.items], finish: () => resolve(data) }));
  }
}

/** A list whose background snapshot comes in two pieces. */
class PiecesSnapshotMachine extends ListMachine {
  async snapshotInBackground(): Promise<Uint8Array[]> {
    const whole = this.snapshot();
    const half = Math.floor(whole.length / 2);
    return [whole.subarray(0, half), whole.subarray(half)];
  }
}

/** Records what each compaction was given; reads snapshots back only if `readsBack`. */
function recordingStorage(directory: string, readsBack: boolean): { storage: RaftStorage; compactions: { data: Uint8Array; dataParts: readonly Uint8Array[] | SnapshotPieces | undefined }[] } {
  const inner = new LevelStorage({ directory });
  const compactions: { data: Uint8Array; dataParts: readonly Uint8Array[] | SnapshotPieces | undefined }[] = [];
  const storage: RaftStorage = {
    load: () => inner.load(),
    persist: (write, sync) => inner.persist(write, sync),
    compact: (snapshot, dataParts) => {
      compactions.push({ data: snapshot.data, dataParts });
      return inner.compact(snapshot, dataParts);
    },
    close: () => inner.close(),
    ...(readsBack ? { readSnapshotData: (index: number) => inner.readSnapshotData(index) } : {}),
  };
  return { storage, compactions };
}

/** A one-voter node of `machine` on `storage`, snapshotting every 10 entries, started and leading. */
async function snapshottingLeader(machine: StateMachine, storage: RaftStorage): Promise<RaftNode> {
  const node = new RaftNode({ id: 'a', storage, transport: new GrpcTransport({ id: 'a', listen: '127.0.0.1:0' }), stateMachine: machine, tickMs: 10, seed: 1, snapshotEveryEntries: 10 });
  nodes.push(node);
  await node.start({ bootstrap: { voters: ['a'], learners: [] } });
  await eventually('leadership', () => node.status().role === 'leader');
  return node;
}

/** A one-voter node of `machine` on `storage`, snapshotting every 10 entries: proposes 12 entries, waits until its log is compacted, and stops it. */
async function proposeUntilCompacted(machine: StateMachine, storage: RaftStorage): Promise<void> {
  const node = await snapshottingLeader(machine, storage);
  await proposeAll(node, texts('p', 12));
  await eventually('the log compacted', () => node.status().firstIndex > 1);
  await stopNode(node);
}

for (const readsBack of [true, false]) {
  test(`a background snapshot in pieces is stored ${readsBack ? 'as its pieces' : 'joined, for storage that does not read snapshots back'}`, async () => {
    const directory = tempDirectory();
    const machine = new PiecesSnapshotMachine();
    const { storage, compactions } = recordingStorage(directory, readsBack);
    await proposeUntilCompacted(machine, storage);
    assert.is(compactions.length, 1);
    const [given] = compactions;
    if (readsBack) {
      assert.is((given!.dataParts as readonly Uint8Array[] | undefined)?.length, 2, 'the pieces, as the machine made them');
      assert.is(given!.data.length, 0, 'the log never held the whole');
    } else {
      assert.is(given!.dataParts, undefined);
      assert.ok(given!.data.length > 0, 'joined: the log keeps it to send to followers');
    }
    const onDisk = new LevelStorage({ directory });
    const persisted = await onDisk.load();
    await onDisk.close();
    const items = JSON.parse(decoder.decode(persisted.snapshot!.data)) as string[];
    assert.equal(items, texts('p', 12).slice(0, items.length));
    assert.ok(items.length > 0, 'the snapshot holds the entries applied before it');
  });
}

/**
 * A list whose snapshot is a stream of one piece per item, each made only
 * when it is read: `log` records each piece made (and the storage below
 * each piece stored), so a test sees whether the storage read ahead. With
 * `gate` set, every piece after the first waits for it.
 */
class StreamSnapshotMachine extends ListMachine {
  readonly log: string[] = [];
  streams = 0;
  closed = 0;
  gate: Promise<void> | undefined;

  snapshotStream(): SnapshotStream {
    this.streams++;
    const items = [...this.items]; // the state as of the call
    const machine = this;
    let closed = false;
    const close = async (): Promise<void> => {
      if (!closed) this.closed++;
      closed = true;
    };
    async function* pieces(): AsyncGenerator<Uint8Array> {
      try {
        for (let i = 0; i < items.length; i++) {
          if (i > 0 && machine.gate !== undefined) await machine.gate;
          machine.log.push(`made ${i}`);
          yield encoder.encode(`${i === 0 ? '[' : ','}${JSON.stringify(items[i])}${i === items.length - 1 ? ']' : ''}`);
        }
        if (items.length === 0) yield encoder.encode('[]');
      } finally {
        await close();
      }
    }
    const iterator = pieces();
    return { [Symbol.asyncIterator]: () => iterator, close };
  }
}

/** LevelDB storage that logs each piece of a snapshot it stores a piece at a time, once stored, and counts its persists. */
function pieceLoggingStorage(directory: string, log: string[]): { storage: RaftStorage; persists: () => number; compactions: () => number } {
  const inner = new LevelStorage({ directory });
  const innerPieces = new Map<SnapshotPieces, SnapshotPieces>();
  let persists = 0;
  let compactions = 0;
  const storage: RaftStorage = {
    load: () => inner.load(),
    persist: (write, sync) => {
      persists++;
      return inner.persist(write, sync);
    },
    compact: (snapshot, dataParts) => {
      compactions++;
      const pieces = dataParts !== undefined && !Array.isArray(dataParts) ? innerPieces.get(dataParts as SnapshotPieces) : undefined;
      return inner.compact(snapshot, pieces ?? dataParts);
    },
    snapshotPieces: (meta) => {
      const pieces = inner.snapshotPieces(meta);
      let stored = 0;
      const logging: SnapshotPieces = {
        write: async (piece) => {
          await pieces.write(piece);
          log.push(`stored ${stored++}`);
        },
        get bytes() {
          return pieces.bytes;
        },
      };
      innerPieces.set(logging, pieces);
      return logging;
    },
    close: () => inner.close(),
    readSnapshotData: (index: number) => inner.readSnapshotData(index),
  };
  return { storage, persists: () => persists, compactions: () => compactions };
}

test('a streamed snapshot is read a piece at a time, each stored before the next is made, never whole', async () => {
  const directory = tempDirectory();
  const machine = new StreamSnapshotMachine();
  const { storage } = pieceLoggingStorage(directory, machine.log);
  await proposeUntilCompacted(machine, storage);
  assert.is(machine.streams, 1);
  const made = machine.log.filter((line) => line.startsWith('made')).length;
  assert.ok(made > 1, `one piece per item applied before the snapshot: ${made}`);
  assert.equal(machine.log, Array.from({ length: made }, (_, i) => [`made ${i}`, `stored ${i}`]).flat());
  assert.is(machine.closed, 1, 'the stream ended');
  const onDisk = new LevelStorage({ directory });
  const persisted = await onDisk.load();
  await onDisk.close();
  const items = JSON.parse(decoder.decode(persisted.snapshot!.data)) as string[];
  assert.equal(items, texts('p', 12).slice(0, items.length));
  assert.is(items.length, made);
});

test('while a streamed snapshot is stored, the log is written and proposals commit; it is recorded as of its start', async () => {
  const directory = tempDirectory();
  const machine = new StreamSnapshotMachine();
  let open!: () => void;
  machine.gate = new Promise((resolve) => (open = resolve));
  const { storage, persists, compactions } = pieceLoggingStorage(directory, machine.log);
  const node = await snapshottingLeader(machine, storage);
  await proposeAll(node, texts('b', 12));
  await eventually('the first piece stored', () => machine.log.includes('stored 0'));
  const captured = machine.log.length;
  const persistsBefore = persists();
  // The stream waits at its second piece: proposals still commit, each written to the log.
  await proposeAll(node, texts('c', 25));
  assert.ok(persists() >= persistsBefore + 1, `the log was written meanwhile: ${persists() - persistsBefore} writes`);
  assert.is(machine.log.length, captured, 'no piece made while the stream waits');
  assert.is(compactions(), 0);
  assert.is(node.status().firstIndex, 1);
  open();
  await eventually('the log compacted', () => node.status().firstIndex > 1);
  await stopNode(node);
  assert.is(machine.streams, 1, 'one snapshot at a time');
  const onDisk = new LevelStorage({ directory });
  const persisted = await onDisk.load();
  await onDisk.close();
  const items = JSON.parse(decoder.decode(persisted.snapshot!.data)) as string[];
  assert.equal(items, texts('b', 12).slice(0, items.length), 'the state as of the stream\'s start, none of the later proposals');
  assert.equal(persisted.entries.map((entry) => decoder.decode(entry.data)).filter((text) => text.startsWith('c')), texts('c', 25));
});

test('a node stopped while it stores a streamed snapshot stops at once; the pieces it wrote are gone at the next load', async () => {
  const directory = tempDirectory();
  const machine = new StreamSnapshotMachine();
  machine.gate = new Promise(() => {}); // the second piece never comes
  const { storage, compactions } = pieceLoggingStorage(directory, machine.log);
  const node = await snapshottingLeader(machine, storage);
  await proposeAll(node, texts('s', 12));
  await eventually('the first piece stored', () => machine.log.includes('stored 0'));
  await stopNode(node);
  assert.is(compactions(), 0, 'never recorded');
  assert.is(machine.closed, 1, 'the stream was closed');
  const onDisk = new LevelStorage({ directory, logger: (line) => machine.log.push(line) });
  const persisted = await onDisk.load();
  await onDisk.close();
  assert.is(persisted.snapshot, undefined);
  assert.equal(persisted.entries.map((entry) => decoder.decode(entry.data)).filter((text) => text.startsWith('s')), texts('s', 12));
  assert.ok(machine.log.some((line) => /deleted 1 chunks of a snapshot whose storing was cut short/.test(line)), machine.log.join('\n'));
});

test('a machine with a snapshot stream, on storage that does not read snapshots back, snapshots whole', async () => {
  const directory = tempDirectory();
  const machine = new StreamSnapshotMachine();
  const { storage, compactions } = recordingStorage(directory, false);
  await proposeUntilCompacted(machine, storage);
  assert.is(machine.streams, 0, 'the log keeps the newest snapshot to send: no stream');
  assert.ok(compactions[0]!.data.length > 0);
});

test('a background snapshot does not hold up proposals, and compacts the log once it is written', async () => {
  const directory = tempDirectory();
  const machine = new SlowSnapshotMachine();
  const storage = new InstrumentedStorage(new LevelStorage({ directory }));
  const node = await snapshottingLeader(machine, storage);
  await proposeAll(node, texts('b', 12));
  await eventually('a snapshot to start', () => machine.started.length === 1);
  const captured = machine.started[0]!;
  // While it encodes: proposals commit, no second snapshot starts, nothing is compacted.
  await proposeAll(node, texts('c', 25));
  assert.is(machine.started.length, 1, 'one snapshot at a time');
  assert.is(storage.compactions, 0);
  assert.is(node.status().firstIndex, 1);
  captured.finish();
  await eventually('the log compacted', () => node.status().firstIndex > 1);
  assert.is(storage.compactions, 1);
  // The next one starts on the next Ready, and covers everything applied by then.
  await proposeAll(node, ['d']);
  await eventually('a second snapshot', () => machine.started.length === 2);
  machine.started[1]!.finish();
  await eventually('the second compaction', () => storage.compactions === 2);
  await stopNode(node);

  const onDisk = new LevelStorage({ directory });
  const persisted = await onDisk.load();
  await onDisk.close();
  assert.ok(persisted.snapshot !== undefined);
  assert.equal(JSON.parse(decoder.decode(persisted.snapshot.data)), machine.started[1]!.items);
  const second = await startNode(directory, { snapshotEveryEntries: 1000 });
  await eventually('leadership', () => second.node.status().role === 'leader');
  await second.node.read();
  assert.equal(second.machine.items, [...texts('b', 12), ...texts('c', 25), 'd']);
});

test('membership changes commit and show in the status; refusals are typed', async () => {
  const { node } = await startNode(tempDirectory());
  await eventually('leadership', () => node.status().role === 'leader');
  // A change is refused until the leader has committed an entry of its term (its no-op);
  // a proposal applied proves that. Without this wait the test raced the no-op's write.
  await proposeAll(node, ['first of the term']);
  const added = await node.addLearner('b', '127.0.0.1:1');
  assert.ok(added.index > 0);
  assert.equal(node.status().config, { voters: ['a'], learners: ['b'] });
  assert.equal(node.peerAddresses(), { b: '127.0.0.1:1' });
  const refused = await rejection(node.transferLeadership('b'));
  assert.instance(refused, ConfigChangeError);
  assert.is((refused as ConfigChangeError).code, 'CONFIG_CHANGE_REFUSED');
  await node.removeNode('b');
  assert.equal(node.status().config, { voters: ['a'], learners: [] });
  await node.transferLeadership('a');
});

test('a node without a cluster refuses proposals and reads with NotLeaderError', async () => {
  const { node } = await startNode(tempDirectory(), { bootstrap: false });
  const proposal = await rejection(node.propose(encoder.encode('x')));
  assert.instance(proposal, NotLeaderError);
  assert.is((proposal as NotLeaderError).code, 'NOT_LEADER');
  assert.is((proposal as NotLeaderError).leader, '');
  assert.instance(await rejection(node.read()), NotLeaderError);
});

test('an aborted request is rejected with AbortedError; a stopped node with StoppedError', async () => {
  const { node } = await startNode(tempDirectory());
  await eventually('leadership', () => node.status().role === 'leader');
  const controller = new AbortController();
  controller.abort();
  assert.instance(await rejection(node.propose(encoder.encode('x'), { signal: controller.signal })), AbortedError);
  await stopNode(node);
  const stopped = await rejection(node.propose(encoder.encode('y')));
  assert.instance(stopped, StoppedError);
  assert.is((stopped as StoppedError).code, 'STOPPED');
  await node.stop(); // idempotent
});

test('a storage error stops the node: waiters rejected, onFatal called, nothing more accepted', async () => {
  const fatal: Error[] = [];
  const { node, storage } = await startNode(tempDirectory(), { onFatal: (error) => fatal.push(error) });
  await eventually('leadership', () => node.status().role === 'leader');
  await node.propose(encoder.encode('ok'));
  storage.failNextPersist = true;
  const failed = await rejection(node.propose(encoder.encode('doomed')));
  assert.instance(failed, StoppedError);
  assert.match((failed as Error).message, /injected disk failure/);
  await eventually('onFatal', () => fatal.length === 1);
  assert.match(fatal[0]!.message, /injected disk failure/);
  const persistsAfter = storage.persists;
  assert.instance(await rejection(node.propose(encoder.encode('later'))), StoppedError);
  assert.is(storage.persists, persistsAfter);
});

test.run();
