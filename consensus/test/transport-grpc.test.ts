// Integration tests of the gRPC peer transport: real servers on 127.0.0.1,
// port 0, every transport and client stopped at the end of its test.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createServer } from 'node:net';
import type { AddressInfo, Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { Packr } from 'msgpackr';
import { SeededRandom } from '../core/random.js';
import { EntryType, MessageType } from '../core/types.js';
import type { Message, NodeId } from '../core/types.js';
import type { TransportHandlers } from '../transport.js';
import { GrpcTransport, TransportListenError, encodeMessages } from '../transport-grpc.js';
import type { BatchWire, GrpcTransportOptions, SnapshotChunkWire } from '../transport-grpc.js';

const SEED = Number(process.env.SEED ?? 20240611);
const packr = new Packr({ useRecords: false });

/** A message with every field at its zero value except those given. */
function message(fields: Partial<Message> & Pick<Message, 'type' | 'from' | 'to'>): Message {
  return {
    term: 0, index: 0, logTerm: 0, entries: [], commit: 0, reject: false,
    rejectHintIndex: 0, rejectHintTerm: 0, context: '', transfer: false, ...fields,
  };
}

function bytes(random: SeededRandom, length: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = random.below(256);
  return out;
}

/** Copies binary fields into plain Buffers so that deep equality ignores Buffer vs Uint8Array. */
function normalize(m: Message): unknown {
  return {
    ...m,
    entries: m.entries.map((e) => ({ ...e, data: Buffer.from(e.data) })),
    ...(m.snapshot ? { snapshot: { ...m.snapshot, data: Buffer.from(m.snapshot.data) } } : {}),
  };
}

class Recorder implements TransportHandlers {
  messages: Message[] = [];
  snapshotStatuses: Array<[NodeId, boolean]> = [];
  unreachable: NodeId[] = [];
  onMessage(m: Message): void {
    this.messages.push(m);
  }
  onSnapshotStatus(to: NodeId, delivered: boolean): void {
    this.snapshotStatuses.push([to, delivered]);
  }
  onUnreachable(to: NodeId): void {
    this.unreachable.push(to);
  }
}

interface Node {
  transport: GrpcTransport;
  recorder: Recorder;
}

const running: GrpcTransport[] = [];

async function startNode(id: NodeId, options: Partial<GrpcTransportOptions> = {}): Promise<Node> {
  const transport = new GrpcTransport({ id, listen: '127.0.0.1:0', ...options });
  const recorder = new Recorder();
  await transport.start(recorder);
  running.push(transport);
  return { transport, recorder };
}

async function stopAll(): Promise<void> {
  await Promise.all(running.splice(0).map((t) => t.stop()));
}

async function waitFor(condition: () => boolean, what: string, timeoutMs = 3000): Promise<void> {
  const startedMs = Date.now();
  while (!condition()) {
    if (Date.now() - startedMs > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(5);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

test.after.each(stopAll);

test('messages with binary entries flow both ways', async () => {
  const random = new SeededRandom(SEED);
  const a = await startNode('n1');
  const b = await startNode('n2');
  a.transport.setPeers({ n2: b.transport.address });
  b.transport.setPeers({ n1: a.transport.address });

  const append = message({
    type: MessageType.Append, from: 'n1', to: 'n2', term: 3, index: 2 ** 40, logTerm: 2, commit: 7,
    entries: [
      { term: 3, index: 2 ** 40 + 1, type: EntryType.Normal, data: bytes(random, 1000) },
      { term: 3, index: 2 ** 40 + 2, type: EntryType.Normal, data: new Uint8Array(0) },
      { term: 3, index: 2 ** 40 + 3, type: EntryType.Config, data: new Uint8Array(0), config: { voters: ['n1', 'n2'], learners: ['n3'] } },
    ],
  });
  a.transport.send([append]);
  await waitFor(() => b.recorder.messages.length === 1, 'the append at n2');
  assert.equal(normalize(b.recorder.messages[0]!), normalize(append));
  assert.ok(b.recorder.messages[0]!.entries[0]!.data instanceof Uint8Array);

  const response = message({
    type: MessageType.AppendResponse, from: 'n2', to: 'n1', term: 3, index: 5, reject: true,
    rejectHintIndex: 4, rejectHintTerm: 2, context: 'read-1',
  });
  const vote = message({ type: MessageType.Vote, from: 'n2', to: 'n1', term: 4, index: 9, logTerm: 3, transfer: true });
  b.transport.send([response, vote]);
  await waitFor(() => a.recorder.messages.length === 2, 'two messages at n1');
  assert.equal(a.recorder.messages.map(normalize), [normalize(response), normalize(vote)]);
  assert.equal(a.recorder.unreachable, []);
});

test('10,000 messages arrive in order, in few batches', async () => {
  const a = await startNode('n1', { queueMessagesMax: 20_000 });
  const b = await startNode('n2');
  a.transport.setPeers({ n2: b.transport.address });
  const sent: Message[] = [];
  for (let i = 1; i <= 10_000; i++) sent.push(message({ type: MessageType.Heartbeat, from: 'n1', to: 'n2', term: 1, commit: i, context: `r${i}` }));
  // Several send calls in one turn: one flush still packs them together.
  for (let i = 0; i < sent.length; i += 1000) a.transport.send(sent.slice(i, i + 1000));
  await waitFor(() => b.recorder.messages.length === 10_000, '10,000 messages at n2', 5000);
  assert.equal(b.recorder.messages.map((m) => m.commit), sent.map((m) => m.commit));
  const stats = b.transport.stats;
  assert.is(stats.messagesReceived, 10_000);
  assert.ok(stats.batchesReceived <= 10, `expected at most 10 batches, got ${stats.batchesReceived}`);
  assert.is(a.transport.stats.messagesDropped, 0);
});

test('bulk traffic beyond the stream buffer keeps its order', async () => {
  const random = new SeededRandom(SEED + 3);
  const a = await startNode('n1', { batchBytesMax: 16 * 1024 });
  const b = await startNode('n2');
  a.transport.setPeers({ n2: b.transport.address });
  const data = bytes(random, 1024);
  const sent: Message[] = [];
  for (let i = 1; i <= 3000; i++) {
    sent.push(message({ type: MessageType.Append, from: 'n1', to: 'n2', term: 1, index: i - 1, entries: [{ term: 1, index: i, type: EntryType.Normal, data }] }));
  }
  a.transport.send(sent.slice(0, 1500));
  a.transport.send(sent.slice(1500, 3000));
  await waitFor(() => b.recorder.messages.length === 3000, '3000 appends at n2', 5000);
  assert.equal(b.recorder.messages.map((m) => m.entries[0]!.index), sent.map((m) => m.entries[0]!.index));
  assert.ok(a.transport.stats.batchesSent >= 150, `expected many batches, got ${a.transport.stats.batchesSent}`);
  assert.ok(Buffer.from(b.recorder.messages[2999]!.entries[0]!.data).equals(Buffer.from(data)));
});

test('an Append without entries waits for a later Append that supersedes it; other messages do not', async () => {
  const a = await startNode('n1', { appendHoldMs: 150 });
  const b = await startNode('n2');
  a.transport.setPeers({ n2: b.transport.address });
  const entry = { term: 1, index: 4, type: EntryType.Normal, data: new Uint8Array([1]) };
  const commitOnly = (commit: number): Message => message({ type: MessageType.Append, from: 'n1', to: 'n2', term: 1, index: 3, logTerm: 1, commit });

  // Superseded: only the Append with entries (and the newer commit) is delivered.
  a.transport.send([commitOnly(2)]);
  a.transport.send([message({ type: MessageType.Append, from: 'n1', to: 'n2', term: 1, index: 3, logTerm: 1, commit: 3, entries: [entry] })]);
  await waitFor(() => b.recorder.messages.length === 1, 'the append with entries');
  // A second commit-only Append replaces the first held one.
  a.transport.send([commitOnly(3)]);
  a.transport.send([commitOnly(4)]);
  // A heartbeat does not supersede it, and is not held behind it.
  a.transport.send([message({ type: MessageType.Heartbeat, from: 'n1', to: 'n2', term: 1, commit: 4 })]);
  await waitFor(() => b.recorder.messages.length === 3, 'the heartbeat, then the held append once its hold ended');
  assert.equal(b.recorder.messages.map((m) => [m.type, m.commit, m.entries.length]), [
    [MessageType.Append, 3, 1],
    [MessageType.Heartbeat, 4, 0],
    [MessageType.Append, 4, 0],
  ]);
  assert.is(a.transport.stats.appendsSuperseded, 2);
  assert.is(a.transport.stats.messagesDropped, 0);

  // Held at stop: dropped and counted, and no timer is left behind.
  a.transport.send([commitOnly(5)]);
  await a.transport.stop();
  assert.is(a.transport.stats.messagesDropped, 1);
  await sleep(200);
  assert.is(b.recorder.messages.length, 3);
});

test('with appendHoldMs 0 an Append without entries leaves at once', async () => {
  const a = await startNode('n1', { appendHoldMs: 0 });
  const b = await startNode('n2');
  a.transport.setPeers({ n2: b.transport.address });
  a.transport.send([message({ type: MessageType.Append, from: 'n1', to: 'n2', term: 1, commit: 1 })]);
  a.transport.send([message({ type: MessageType.Append, from: 'n1', to: 'n2', term: 1, commit: 2 })]);
  await waitFor(() => b.recorder.messages.length === 2, 'both appends');
  assert.is(a.transport.stats.appendsSuperseded, 0);
});

test('a full queue drops new messages and counts them', async () => {
  const a = await startNode('n1', { queueMessagesMax: 100 });
  const b = await startNode('n2');
  a.transport.setPeers({ n2: b.transport.address });
  const sent: Message[] = [];
  for (let i = 1; i <= 150; i++) sent.push(message({ type: MessageType.Heartbeat, from: 'n1', to: 'n2', commit: i }));
  a.transport.send(sent);
  assert.is(a.transport.stats.messagesDropped, 50);
  await waitFor(() => b.recorder.messages.length === 100, '100 messages at n2');
  await sleep(50);
  assert.equal(b.recorder.messages.map((m) => m.commit), sent.slice(0, 100).map((m) => m.commit));
});

test('a snapshot of a few MiB arrives whole and is reported delivered', async () => {
  const random = new SeededRandom(SEED + 1);
  const a = await startNode('n1');
  const b = await startNode('n2');
  a.transport.setPeers({ n2: b.transport.address });
  const data = bytes(random, 3 * 1024 * 1024 + 12_345);
  const snapshot = message({
    type: MessageType.Snapshot, from: 'n1', to: 'n2', term: 5,
    snapshot: { meta: { index: 1000, term: 4, config: { voters: ['n1', 'n2', 'n3'], learners: [] } }, data },
  });
  a.transport.send([snapshot]);
  assert.equal(a.recorder.snapshotStatuses, [], 'no handler runs inside send');
  await waitFor(() => a.recorder.snapshotStatuses.length === 1, 'the snapshot status at n1', 5000);
  assert.equal(a.recorder.snapshotStatuses, [['n2', true]]);
  assert.is(b.recorder.messages.length, 1);
  const received = b.recorder.messages[0]!;
  assert.equal(received.snapshot!.meta, snapshot.snapshot!.meta);
  assert.ok(Buffer.from(received.snapshot!.data).equals(Buffer.from(data)), 'snapshot data differs');
  assert.is(received.term, 5);

  // One in flight and one waiting per peer: a third is refused at once.
  const small = (index: number): Message =>
    message({ ...snapshot, snapshot: { meta: { ...snapshot.snapshot!.meta, index }, data: data.subarray(0, 100_000) } });
  a.recorder.snapshotStatuses = [];
  b.recorder.messages = [];
  a.transport.send([small(1), small(2), small(3)]);
  await waitFor(() => a.recorder.snapshotStatuses.length === 3, 'three snapshot statuses', 5000);
  assert.equal(a.recorder.snapshotStatuses, [['n2', false], ['n2', true], ['n2', true]]);
  assert.equal(b.recorder.messages.map((m) => m.snapshot!.meta.index), [1, 2]);

  // An empty snapshot is one chunk; the stream of ordinary messages is unaffected.
  const empty = message({ ...snapshot, snapshot: { meta: snapshot.snapshot!.meta, data: new Uint8Array(0) } });
  a.transport.send([empty, message({ type: MessageType.Heartbeat, from: 'n1', to: 'n2', commit: 1 })]);
  await waitFor(() => a.recorder.snapshotStatuses.length === 4 && b.recorder.messages.length === 4, 'empty snapshot and heartbeat');
  assert.equal(a.recorder.snapshotStatuses[3], ['n2', true]);
  assert.is(b.transport.stats.snapshotsReceived, 4);
});

test('a down peer is reported unreachable once per episode, then reconnects', async () => {
  const probe = await startNode('n2');
  const address = probe.transport.address;
  await probe.transport.stop();

  const a = await startNode('n1');
  a.transport.setPeers({ n2: address });
  const heartbeat = (): Message => message({ type: MessageType.Heartbeat, from: 'n1', to: 'n2', term: 1 });
  const ticker = setInterval(() => a.transport.send([heartbeat()]), 10);
  try {
    await waitFor(() => a.recorder.unreachable.length === 1, 'onUnreachable(n2)');
    assert.equal(a.recorder.unreachable, ['n2']);
    a.transport.send([message({ type: MessageType.Snapshot, from: 'n1', to: 'n2', snapshot: { meta: { index: 1, term: 1, config: { voters: ['n1', 'n2'], learners: [] } }, data: new Uint8Array(10) } })]);
    await sleep(400);
    assert.equal(a.recorder.unreachable, ['n2'], 'reported once while down');
    assert.equal(a.recorder.snapshotStatuses, [['n2', false]]);
    assert.ok(a.transport.stats.messagesDropped > 0);

    const b = await startNode('n2', { listen: address });
    await waitFor(() => b.recorder.messages.length > 0, 'heartbeats at the restarted n2', 5000);
    assert.equal(a.recorder.unreachable, ['n2']);

    // A new failure is a new episode.
    await b.transport.stop();
    await waitFor(() => a.recorder.unreachable.length === 2, 'a second onUnreachable(n2)');
  } finally {
    clearInterval(ticker);
  }
});

test('a peer that accepts TCP but never speaks gRPC is unreachable after the connect timeout', async () => {
  const silent = createServer((socket) => socket.on('error', () => {}));
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  const sockets = new Set<Socket>();
  silent.on('connection', (socket) => sockets.add(socket));
  try {
    const a = await startNode('n1', { connectTimeoutMs: 200 });
    a.transport.setPeers({ n2: `127.0.0.1:${(silent.address() as AddressInfo).port}` });
    const startedMs = Date.now();
    a.transport.send([message({ type: MessageType.Heartbeat, from: 'n1', to: 'n2' })]);
    await waitFor(() => a.recorder.unreachable.length === 1, 'onUnreachable(n2)');
    assert.ok(Date.now() - startedMs >= 150, 'reported before the connect timeout');
  } finally {
    await stopAll();
    for (const socket of sockets) socket.destroy();
    await new Promise((resolve) => silent.close(resolve));
  }
});

// --- hostile input ----------------------------------------------------------------------

interface RawClient extends grpc.Client {
  Stream(callback: grpc.requestCallback<unknown>): grpc.ClientWritableStream<BatchWire>;
  InstallSnapshot(callback: grpc.requestCallback<unknown>): grpc.ClientWritableStream<SnapshotChunkWire>;
}

function rawClient(address: string): RawClient {
  const definition = protoLoader.loadSync(fileURLToPath(new URL('../../../proto/raft.proto', import.meta.url)), { keepCase: true, defaults: true });
  const root = grpc.loadPackageDefinition(definition) as unknown as {
    hivemind: { raft: { RaftTransport: new (address: string, credentials: grpc.ChannelCredentials) => RawClient } };
  };
  return new root.hivemind.raft.RaftTransport(address, grpc.credentials.createInsecure());
}

/** Writes `items` on one call, ends it, and resolves with the status code. */
function rawCall<T>(open: (callback: grpc.requestCallback<unknown>) => grpc.ClientWritableStream<T>, items: T[]): Promise<grpc.status> {
  return new Promise((resolve) => {
    const call = open((error) => resolve(error === null ? grpc.status.OK : error.code));
    call.on('error', () => {});
    for (const item of items) call.write(item);
    call.end();
  });
}

/** A valid heartbeat tuple from n9 to n2, with one field replaced. */
function tupleWith(position: number, value: unknown): unknown[] {
  const tuple: unknown[] = [MessageType.Heartbeat, 'n9', 'n2', 1, 0, 0, 0, false, 0, 0, '', false, []];
  tuple[position] = value;
  return tuple;
}

function hostilePayloads(random: SeededRandom): Uint8Array[] {
  const entry = (fields: unknown[]): Uint8Array => packr.pack([tupleWith(12, [fields])]);
  const payloads: Uint8Array[] = [
    new Uint8Array(0),
    packr.pack('hello'),
    packr.pack([]),
    packr.pack([[]]),
    packr.pack({ type: 7, from: 'n9', to: 'n2' }),
    packr.pack([tupleWith(0, 0)]),
    packr.pack([tupleWith(0, 13)]),
    packr.pack([tupleWith(0, MessageType.Snapshot)]),
    packr.pack([tupleWith(0, '7')]),
    packr.pack([tupleWith(1, 'n8')]),
    packr.pack([tupleWith(1, '')]),
    packr.pack([tupleWith(2, 'n3')]),
    packr.pack([tupleWith(3, -1)]),
    packr.pack([tupleWith(3, 1.5)]),
    packr.pack([tupleWith(3, 2 ** 53)]),
    packr.pack([tupleWith(3, 1e300)]),
    packr.pack([tupleWith(3, 2n ** 64n - 1n)]),
    packr.pack([tupleWith(3, '1')]),
    packr.pack([tupleWith(5, null)]),
    packr.pack([tupleWith(7, 1)]),
    packr.pack([tupleWith(10, 'x'.repeat(5000))]),
    packr.pack([tupleWith(11, 'yes')]),
    packr.pack([tupleWith(12, 'entries')]),
    packr.pack([tupleWith(12, [[1, 1, 0, 'not binary']])]),
    entry([1, 1, 2, new Uint8Array(1)]),
    entry([1, 1, EntryType.Normal, new Uint8Array(1), [['n1'], []]]),
    entry([1, 1, EntryType.Config, new Uint8Array(0)]),
    entry([1, 1, EntryType.Config, new Uint8Array(0), [['n2', 'n1'], []]]),
    entry([1, 1, EntryType.Config, new Uint8Array(0), [['n1'], ['n1']]]),
    entry([1, -5, EntryType.Normal, new Uint8Array(0)]),
    packr.pack([tupleWith(0, MessageType.Heartbeat), 42]),
    packr.pack([tupleWith(0, MessageType.Heartbeat).slice(0, 12)]),
    Buffer.concat([Buffer.alloc(200_000, 0x91), Buffer.from([0xc0])]), // nesting deep enough to overflow the stack
    Buffer.from([0xdd, 0x7f, 0xff, 0xff, 0xff]), // an array claiming 2^31 - 1 elements
    Buffer.from([0xdb, 0xff, 0xff, 0xff, 0xff]), // a string claiming 4 GiB
  ];
  for (let i = 0; i < 40; i++) payloads.push(bytes(random, 1 + random.below(300)));
  return payloads;
}

test('garbage from a raw client is refused and never crashes the receiver', async () => {
  const random = new SeededRandom(SEED + 2);
  const a = await startNode('n1');
  const b = await startNode('n2', { messageBytesMax: 2 * 1024 * 1024, batchBytesMax: 1024 * 1024, snapshotBytesMax: 1024 * 1024 });
  a.transport.setPeers({ n2: b.transport.address });
  const client = rawClient(b.transport.address);
  try {
    const payloads = hostilePayloads(random);
    for (const [i, payload] of payloads.entries()) {
      const code = await rawCall((cb) => client.Stream(cb), [{ from: 'n9', payload }]);
      assert.is(code, grpc.status.INVALID_ARGUMENT, `payload ${i} was not refused (SEED=${SEED})`);
    }
    assert.is(b.transport.stats.batchesRejected, payloads.length);
    assert.is(b.recorder.messages.length, 0);

    // A bad batch after good ones: the good ones were delivered, the stream is ended with an error.
    const good = encodeMessages([message({ type: MessageType.Heartbeat, from: 'n9', to: 'n2', commit: 1 })]);
    const mixed = await rawCall((cb) => client.Stream(cb), [{ from: 'n9', payload: good }, { from: 'n9', payload: payloads[0]! }, { from: 'n9', payload: good }]);
    assert.is(mixed, grpc.status.INVALID_ARGUMENT);
    assert.is(b.recorder.messages.length, 1);
    assert.is(await rawCall((cb) => client.Stream(cb), [{ from: '', payload: good }]), grpc.status.INVALID_ARGUMENT);

    // Mutated valid payloads: each is refused or decodes to a well-formed message.
    const template = encodeMessages([message({ type: MessageType.Append, from: 'n9', to: 'n2', term: 2, index: 1, entries: [{ term: 2, index: 2, type: EntryType.Normal, data: new Uint8Array([1, 2, 3]) }] })]);
    for (let i = 0; i < 150; i++) {
      const payload = Buffer.from(template);
      for (let flips = 1 + random.below(3); flips > 0; flips--) payload[random.below(payload.length)] = random.below(256);
      const code = await rawCall((cb) => client.Stream(cb), [{ from: 'n9', payload }]);
      assert.ok(code === grpc.status.OK || code === grpc.status.INVALID_ARGUMENT, `mutation ${i} gave status ${code} (SEED=${SEED})`);
    }
    for (const m of b.recorder.messages) assert.ok(m.to === 'n2' && m.from === 'n9' && Number.isSafeInteger(m.term) && m.term >= 0);

    // Over the size limit: refused by gRPC itself.
    const huge = await rawCall((cb) => client.Stream(cb), [{ from: 'n9', payload: new Uint8Array(3 * 1024 * 1024) }]);
    assert.is(huge, grpc.status.RESOURCE_EXHAUSTED);

    // Hostile snapshot streams.
    const header = (dataBytes: number, to = 'n2'): Uint8Array =>
      packr.pack([tupleWith(0, MessageType.Snapshot).map((v, i) => (i === 2 ? to : v)), 10, 2, [['n1', 'n2'], []], dataBytes]);
    const snapshotCases: Array<[string, SnapshotChunkWire[]]> = [
      ['no header', [{ header: new Uint8Array(0), data: new Uint8Array(4), done: true }]],
      ['garbage header', [{ header: bytes(random, 50), data: new Uint8Array(4), done: true }]],
      ['wrong receiver', [{ header: header(4, 'n3'), data: new Uint8Array(4), done: true }]],
      ['over the size limit', [{ header: header(2 * 1024 * 1024), data: new Uint8Array(4), done: false }]],
      ['more data than declared', [{ header: header(4), data: new Uint8Array(8), done: true }]],
      ['less data than declared', [{ header: header(8), data: new Uint8Array(4), done: true }]],
      ['no last chunk', [{ header: header(4), data: new Uint8Array(4), done: false }]],
      ['header twice', [{ header: header(8), data: new Uint8Array(4), done: false }, { header: header(8), data: new Uint8Array(4), done: true }]],
      ['chunk after the last', [{ header: header(4), data: new Uint8Array(4), done: true }, { header: new Uint8Array(0), data: new Uint8Array(0), done: true }]],
    ];
    for (const [name, chunks] of snapshotCases) {
      assert.is(await rawCall((cb) => client.InstallSnapshot(cb), chunks), grpc.status.INVALID_ARGUMENT, name);
    }
    assert.is(b.transport.stats.snapshotsRejected, snapshotCases.length);
    const valid = await rawCall((cb) => client.InstallSnapshot(cb), [{ header: header(4), data: new Uint8Array([1, 2, 3, 4]), done: true }]);
    assert.is(valid, grpc.status.OK);
    assert.ok(b.recorder.messages.some((m) => m.type === MessageType.Snapshot && m.snapshot!.data.byteLength === 4));

    // The receiver still serves real peers.
    const before = b.recorder.messages.length;
    a.transport.send([message({ type: MessageType.Heartbeat, from: 'n1', to: 'n2', commit: 99 })]);
    await waitFor(() => b.recorder.messages.length === before + 1, 'a heartbeat from n1 after the garbage');
    assert.is(b.recorder.messages.at(-1)!.commit, 99);
  } finally {
    client.close();
  }
});

test('start on a port in use fails with TransportListenError', async () => {
  const a = await startNode('n1');
  const b = new GrpcTransport({ id: 'n2', listen: a.transport.address });
  grpc.setLogVerbosity(grpc.logVerbosity.NONE); // grpc-js would also print the bind error
  try {
    await b.start(new Recorder());
    assert.unreachable('start should have failed');
  } catch (error) {
    assert.instance(error, TransportListenError);
    assert.is((error as TransportListenError).code, 'TRANSPORT_LISTEN_FAILED');
    assert.match((error as Error).message, a.transport.address);
  } finally {
    grpc.setLogVerbosity(grpc.logVerbosity.ERROR);
  }
  await b.stop();
});

test('stop leaves nothing running and later sends are dropped', async () => {
  const a = await startNode('n1');
  const b = await startNode('n2');
  a.transport.setPeers({ n2: b.transport.address });
  a.transport.send([message({ type: MessageType.Heartbeat, from: 'n1', to: 'n2' })]);
  await waitFor(() => b.recorder.messages.length === 1, 'one heartbeat');
  await a.transport.stop();
  a.transport.send([message({ type: MessageType.Heartbeat, from: 'n1', to: 'n2' })]);
  assert.is(a.transport.stats.messagesDropped, 1);
  await sleep(50);
  assert.equal(a.recorder.unreachable, []);
});

test.run();
