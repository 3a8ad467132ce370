// The peer Stream outside grpc-js (consensus/transport/batch-stream.ts and
// server.ts): it is the same gRPC call on the wire as grpc-js's, so this
// build's sender is heard by a grpc-js server and a grpc-js sender by this
// build's server, in plaintext and over mutual TLS (a rolling upgrade meets
// both); a member's certificate naming another sender is refused; and no
// framing a peer sends (a compressed or unknown flag, a length over the
// limit, a stream cut inside a message, bytes that are not a Batch) does
// more than end its stream with a gRPC status. Real servers on 127.0.0.1.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as http2 from 'node:http2';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { BenchCertificates, type ClusterTls } from '../../bench/tls.js';
import { SeededRandom } from '../core/random.js';
import { MessageType } from '../core/types.js';
import type { Message, NodeId } from '../core/types.js';
import type { TransportHandlers } from '../transport.js';
import { GrpcTransport, decodeBatch, encodeMessages, type BatchWire, type GrpcTransportSecurity } from '../transport-grpc.js';
import { BATCH_CODEC, BATCH_STREAM_PATH, BatchFramer } from '../transport/batch-stream.js';
import { GrpcFrameReader } from '../transport/grpc-frames.js';
import { channelOptions, raftService, type AckWire } from '../transport/raft-service.js';
import { resolveSettings } from '../transport/options.js';
import { pinnedConnectOptions, readTlsDirectory, transportSecurity } from '../server/tls.js';

const SEED = Number(process.env.SEED ?? 20261206);

function heartbeat(from: NodeId, to: NodeId, commit: number): Message {
  return {
    type: MessageType.Heartbeat, from, to, term: 1, index: 0, logTerm: 0, entries: [], commit, reject: false,
    rejectHintIndex: 0, rejectHintTerm: 0, context: '', transfer: false,
  };
}

class Recorder implements TransportHandlers {
  messages: Message[] = [];
  unreachable: NodeId[] = [];
  onMessage(message: Message): void {
    this.messages.push(message);
  }
  onSnapshotStatus(): void {}
  onUnreachable(to: NodeId): void {
    this.unreachable.push(to);
  }
}

async function waitFor(condition: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const startedMs = Date.now();
  while (!condition()) {
    if (Date.now() - startedMs > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

const directory = mkdtempSync(join(tmpdir(), 'hivemind-batch-stream-'));
const ids = ['n1', 'n2', 'n3'];
const cluster: ClusterTls = await (await BenchCertificates.create()).writeCluster(directory, ids);
const securityOf = (id: NodeId): GrpcTransportSecurity => transportSecurity(readTlsDirectory(cluster.directory, { id, memberIds: ids }));

test.after(() => rmSync(directory, { recursive: true, force: true }));

/**
 * The Stream's server as builds before this one served it: grpc-js's server
 * and its `Stream` handler (the sender checked against the certificate, the
 * batch decoded), recording what arrives.
 */
async function grpcJsServer(id: NodeId, security: GrpcTransportSecurity | undefined): Promise<{ address: string; messages: Message[]; stop(): void }> {
  const messages: Message[] = [];
  const server = new grpc.Server(channelOptions(resolveSettings({ id, listen: '' })));
  server.addService(raftService().service, {
    Stream: (call: grpc.ServerReadableStream<BatchWire, AckWire>, callback: grpc.sendUnaryData<AckWire>) => {
      const verdict = security?.authenticate(call);
      if (verdict !== undefined && !verdict.ok) return callback({ code: grpc.status.UNAUTHENTICATED });
      call.sendMetadata(new grpc.Metadata());
      call.on('data', (batch: BatchWire) => {
        if (verdict !== undefined && verdict.ok && batch.from !== verdict.nodeId) return callback({ code: grpc.status.PERMISSION_DENIED });
        const decoded = decodeBatch(batch, id);
        if (decoded.ok) messages.push(...decoded.value);
      });
      call.on('end', () => callback(null, {}));
    },
    InstallSnapshot: (_call: unknown, callback: grpc.sendUnaryData<AckWire>) => callback({ code: grpc.status.UNIMPLEMENTED }),
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', security?.serverCredentials() ?? grpc.ServerCredentials.createInsecure(), (error, bound) => (error === null ? resolve(bound) : reject(error))),
  );
  return { address: `127.0.0.1:${port}`, messages, stop: () => server.forceShutdown() };
}

/** A Stream call through grpc-js's client, as builds before this one sent batches; writes `batches`, ends, resolves with the status. */
function grpcJsSend(address: string, id: NodeId, security: GrpcTransportSecurity | undefined, to: NodeId, batches: BatchWire[]): Promise<grpc.status> {
  const credentials = security?.channelCredentials(to) ?? grpc.credentials.createInsecure();
  const client = new (raftService())(address, credentials, { ...channelOptions(resolveSettings({ id, listen: '' })), ...security?.channelOptions });
  return new Promise((resolve) => {
    const call = client.Stream((error) => {
      client.close();
      resolve(error === null ? grpc.status.OK : error.code);
    });
    call.on('error', () => {});
    for (const batch of batches) call.write(batch);
    call.end();
  });
}

for (const mode of ['plaintext', 'mutual TLS'] as const) {
  test(`${mode}: this build's sender is heard by grpc-js's server, and grpc-js's sender by this build's server`, async () => {
    const security = (id: NodeId) => (mode === 'plaintext' ? undefined : securityOf(id));
    const old = await grpcJsServer('n2', security('n2'));
    const recorder = new Recorder();
    const transport = new GrpcTransport({ id: 'n1', listen: '127.0.0.1:0', security: security('n1') });
    await transport.start(recorder);
    try {
      // This build to grpc-js: many batches, in order.
      transport.setPeers({ n2: old.address });
      for (let commit = 1; commit <= 200; commit++) transport.send([heartbeat('n1', 'n2', commit)]);
      await waitFor(() => old.messages.length === 200, 'the 200 heartbeats at the grpc-js server');
      assert.equal(old.messages.map((message) => message.commit), Array.from({ length: 200 }, (_, i) => i + 1));
      assert.equal(recorder.unreachable, []);
      // grpc-js to this build.
      const batches = [1, 2, 3].map((commit) => ({ from: 'n3', payload: encodeMessages([heartbeat('n3', 'n1', commit)]) }));
      assert.is(await grpcJsSend(transport.address, 'n3', security('n3'), 'n1', batches), grpc.status.OK);
      assert.equal(recorder.messages.map((message) => [message.from, message.commit]), [['n3', 1], ['n3', 2], ['n3', 3]]);
    } finally {
      await transport.stop();
      old.stop();
    }
  });
}

test('mutual TLS: a member certificate naming another sender is refused by this build\'s server, and nothing reaches Raft', async () => {
  const recorder = new Recorder();
  const transport = new GrpcTransport({ id: 'n1', listen: '127.0.0.1:0', security: securityOf('n1') });
  await transport.start(recorder);
  try {
    // n3's certificate, a batch from n2 (and its message from n2): PERMISSION_DENIED, through grpc-js's client
    // and through a bare HTTP/2 client.
    const forged = { from: 'n2', payload: encodeMessages([heartbeat('n2', 'n1', 7)]) };
    assert.is(await grpcJsSend(transport.address, 'n3', securityOf('n3'), 'n1', [forged]), grpc.status.PERMISSION_DENIED);
    const tls = pinnedConnectOptions(readTlsDirectory(cluster.directory, { id: 'n3', memberIds: ids }), 'n1');
    const answer = await rawCall(transport.address, [new BatchFramer('n2').frame(forged.payload)], tls);
    assert.is(answer.status, grpc.status.PERMISSION_DENIED, answer.message);
    assert.match(answer.message, /"n2" on the connection of "n3"/);
    assert.is(recorder.messages.length, 0);
    assert.is(transport.stats.batchesRejected, 2);
    // Its own name is heard.
    const own = await rawCall(transport.address, [new BatchFramer('n3').frame(encodeMessages([heartbeat('n3', 'n1', 8)]))], tls);
    assert.is(own.status, grpc.status.OK, own.message);
    assert.equal(recorder.messages.map((message) => [message.from, message.commit]), [['n3', 8]]);
  } finally {
    await transport.stop();
  }
});

/** One Stream call over a fresh bare HTTP/2 connection: writes `chunks` one by one, ends, and reports the answer. */
async function rawCall(address: string, chunks: Buffer[], tls?: object, headers: http2.OutgoingHttpHeaders = {}): Promise<{ httpStatus: number | undefined; status: number | undefined; message: string }> {
  const session = http2.connect(`${tls === undefined ? 'http' : 'https'}://${address}`, tls ?? {});
  session.on('error', () => {});
  try {
    const stream = session.request({ ':method': 'POST', ':path': BATCH_STREAM_PATH, 'content-type': 'application/grpc', te: 'trailers', ...headers });
    let httpStatus: number | undefined;
    let status: number | undefined;
    let message = '';
    const read = (fields: http2.IncomingHttpHeaders): void => {
      if (fields['grpc-status'] !== undefined) status = Number(fields['grpc-status']);
      if (typeof fields['grpc-message'] === 'string') message = decodeURIComponent(fields['grpc-message']);
    };
    stream.on('response', (fields) => {
      httpStatus = fields[':status'];
      read(fields);
    });
    stream.on('trailers', read);
    stream.on('data', () => {});
    stream.on('error', () => {});
    const closed = new Promise<void>((resolve) => stream.on('close', resolve));
    for (const chunk of chunks) {
      if (stream.destroyed) break;
      stream.write(chunk);
      await new Promise((resolve) => setImmediate(resolve));
    }
    if (!stream.destroyed) stream.end();
    await closed;
    return { httpStatus, status, message };
  } finally {
    session.destroy();
  }
}

function prefix(flag: number, length: number): Buffer {
  const bytes = Buffer.alloc(5);
  bytes[0] = flag;
  bytes.writeUInt32BE(length, 1);
  return bytes;
}

test('bad framing ends the stream with a gRPC status, nothing reaches Raft, and the server keeps serving', async () => {
  const recorder = new Recorder();
  const transport = new GrpcTransport({ id: 'n1', listen: '127.0.0.1:0', messageBytesMax: 1024 * 1024, batchBytesMax: 512 * 1024, chunkBytes: 512 * 1024 });
  await transport.start(recorder);
  try {
    const good = new BatchFramer('n9').frame(encodeMessages([heartbeat('n9', 'n1', 1)]));
    const cases: Array<[string, Buffer[], number]> = [
      ['a compressed message', [Buffer.concat([prefix(1, 3), Buffer.from([1, 2, 3])])], grpc.status.UNIMPLEMENTED],
      ['an unknown flag', [Buffer.concat([prefix(7, 3), Buffer.from([1, 2, 3])])], grpc.status.INTERNAL],
      ['a length over the limit, refused at its prefix', [prefix(0, 0xffffffff)], grpc.status.RESOURCE_EXHAUSTED],
      ['a length just over the limit', [prefix(0, 1024 * 1024 + 1), Buffer.alloc(100)], grpc.status.RESOURCE_EXHAUSTED],
      ['a stream cut inside a message', [prefix(0, 100), Buffer.alloc(10)], grpc.status.INTERNAL],
      ['a stream cut inside a prefix', [good, good.subarray(0, 3)], grpc.status.INTERNAL],
      ['bytes that are not a Batch', [Buffer.concat([prefix(0, 4), Buffer.from([0xff, 0xff, 0xff, 0xff])])], grpc.status.INVALID_ARGUMENT],
      ['a Batch whose payload is not messages', [new BatchFramer('n9').frame(Buffer.from('not msgpack'))], grpc.status.INVALID_ARGUMENT],
      ['a Batch with no sender', [new BatchFramer('').frame(encodeMessages([heartbeat('n9', 'n1', 1)]))], grpc.status.INVALID_ARGUMENT],
    ];
    for (const [name, chunks, expected] of cases) {
      const answer = await rawCall(transport.address, chunks);
      assert.is(answer.status, expected, `${name}: ${answer.message}`);
    }
    // The heartbeat before the cut prefix was delivered; nothing else.
    assert.equal(recorder.messages.map((message) => message.commit), [1]);
    assert.is(transport.stats.batchesRejected, cases.length);
    const notGrpc = await rawCall(transport.address, [good], undefined, { 'content-type': 'text/plain' });
    assert.is(notGrpc.httpStatus, 415);
    // Every byte its own chunk, then three frames in one chunk: all taken, in order.
    const frames = [2, 3, 4, 5].map((commit) => new BatchFramer('n9').frame(encodeMessages([heartbeat('n9', 'n1', commit)])));
    const bytewise = [...frames[0]!].map((byte) => Buffer.from([byte]));
    const answer = await rawCall(transport.address, [...bytewise, Buffer.concat(frames.slice(1))]);
    assert.is(answer.status, grpc.status.OK, answer.message);
    assert.equal(recorder.messages.map((message) => message.commit), [1, 2, 3, 4, 5]);
  } finally {
    await transport.stop();
  }
});

test('the frame reader gives the same messages however the bytes are cut, views where a message lies in one chunk', () => {
  const random = new SeededRandom(SEED);
  for (let round = 0; round < 200; round++) {
    const messages = Array.from({ length: 1 + random.below(6) }, () => Buffer.from(Array.from({ length: random.below(300) }, () => random.below(256))));
    const stream = Buffer.concat(messages.map((message) => Buffer.concat([prefix(0, message.length), message])));
    const reader = new GrpcFrameReader(1024);
    const received: Buffer[] = [];
    for (let at = 0; at < stream.length; ) {
      const cut = Math.min(stream.length, at + 1 + random.below(random.below(2) === 0 ? 8 : 400));
      assert.is(reader.push(stream.subarray(at, cut), (message) => (received.push(Buffer.from(message)), true)), undefined);
      at = cut;
    }
    assert.ok(reader.atBoundary, `round ${round} (SEED=${SEED}): bytes left over`);
    assert.equal(received, messages, `round ${round} (SEED=${SEED})`);
  }
  const whole = Buffer.concat([prefix(0, 3), Buffer.from([7, 8, 9])]);
  new GrpcFrameReader(16).push(whole, (message) => {
    assert.is(message.buffer, whole.buffer, 'a message inside one chunk is a view of it');
    return true;
  });
});

test('a framed Batch is what grpc-js\'s codec writes and reads', () => {
  const payload = encodeMessages([heartbeat('n1', 'n2', 5)]);
  for (const from of ['n1', 'é'.repeat(200)]) {
    const frame = new BatchFramer(from).frame(payload);
    const message = raftService().service.Stream!.requestSerialize({ from, payload });
    assert.equal(frame.subarray(5), message);
    assert.is(frame.readUInt32BE(1), message.length);
    assert.equal(BATCH_CODEC.decode(frame.subarray(5)), { from, payload: Buffer.from(payload) });
  }
});

test.run();
