// The blob Read outside grpc-js (image-read-stream.ts), on loopback: it is
// the same gRPC call on the wire, so a grpc-js client reads from the raw
// server and the raw reader from a grpc-js server (nodes of two builds in
// one cluster); and the reader fails, never reads short, when the server
// sends what is not a ReadChunk, resets the stream mid-blob, answers
// NOT_FOUND, or when its caller cancels.
import * as http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { protoCodec, protoServiceDefinition } from '../../../consensus/transport/proto-codec.js';
import { routeRawStreams } from '../../../consensus/transport-grpc.js';
import type { ImageShare } from '../../node/image-share.js';
import { BlobReadChannel, READ_PATH } from '../image-read-stream.js';
import { IMAGES_MESSAGES, IMAGES_METHODS, imagesServiceForServer } from '../image-service.js';

const DIGEST = `sha256:${'1'.repeat(64)}`;
const BLOB = Buffer.from(Array.from({ length: 3 * 1024 * 1024 + 12_345 }, (_, index) => (index * 7) % 251));
const encodeRequest = (request: { digest: string }) => protoCodec<{ digest: string }>(IMAGES_MESSAGES.ReadRequest).encode(request);

/** A share holding BLOB under DIGEST, in pieces of 1 MiB from one reused buffer (as the content file is read). */
const memoryShare: ImageShare = {
  describe: async () => undefined,
  async *read(digest: string) {
    if (digest !== DIGEST) throw Object.assign(new Error(`blob ${digest} is not on this node`), { code: 'not-found' });
    const piece = Buffer.alloc(1024 * 1024);
    for (let offset = 0; offset < BLOB.length; offset += piece.length) {
      const length = BLOB.copy(piece, 0, offset, offset + piece.length);
      yield piece.subarray(0, length);
    }
  },
};

async function readAll(channel: BlobReadChannel, digest: string, signal?: AbortSignal): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of channel.read(digest, signal)) chunks.push(Buffer.from(chunk));
  return Buffer.concat(chunks);
}

function failureOf(reading: Promise<unknown>): Promise<Error & { code?: string }> {
  return reading.then(
    () => assert.unreachable('the read succeeded') as never,
    (error: Error & { code?: string }) => error,
  );
}

function bind(server: grpc.Server): Promise<number> {
  return new Promise((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, port) => (error ? reject(error) : resolve(port))));
}

/** A plain HTTP/2 server whose every stream `answer` handles; answers its port and a stop. */
async function rawServer(answer: (stream: http2.ServerHttp2Stream) => void): Promise<{ port: number; stop(): void }> {
  const server = http2.createServer();
  server.on('stream', (stream) => {
    stream.on('error', () => undefined);
    answer(stream);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: (server.address() as AddressInfo).port, stop: () => server.close() };
}

test('the raw server answers a grpc-js client, and the raw reader a grpc-js server, byte for byte', async () => {
  // The raw server, read by grpc-js's client of the whole service (Read included).
  const service = imagesServiceForServer({ share: () => memoryShare, authenticate: () => ({ ok: true, nodeId: 'reader' }), onRejected: () => undefined, log: () => undefined });
  const raw = new grpc.Server();
  raw.addService(service.definition, service.implementation);
  const routed = routeRawStreams(raw, service.rawStreams);
  const rawPort = await bind(raw);
  assert.ok(routed());
  const Client = grpc.makeGenericClientConstructor(protoServiceDefinition('hivemind.images.Images', IMAGES_METHODS), 'Images');
  const client = new Client(`127.0.0.1:${rawPort}`, grpc.credentials.createInsecure()) as unknown as grpc.Client & { Read(request: { digest: string }): grpc.ClientReadableStream<{ data: Uint8Array }> };
  const chunks: Buffer[] = [];
  for await (const chunk of client.Read({ digest: DIGEST }) as AsyncIterable<{ data: Uint8Array }>) chunks.push(Buffer.from(chunk.data));
  assert.ok(Buffer.concat(chunks).equals(BLOB), 'grpc-js read the blob from the raw server');
  client.close();
  raw.forceShutdown();

  // A grpc-js server of Read, read by the raw reader.
  const plain = new grpc.Server();
  plain.addService(protoServiceDefinition('hivemind.images.Images', IMAGES_METHODS), {
    Read: (call: grpc.ServerWritableStream<{ digest: string }, { data: Uint8Array }>) => {
      for (let offset = 0; offset < BLOB.length; offset += 100_000) call.write({ data: BLOB.subarray(offset, offset + 100_000) });
      call.end();
    },
  });
  const plainPort = await bind(plain);
  const channel = new BlobReadChannel({ address: `127.0.0.1:${plainPort}`, nodeId: 'old' }, encodeRequest);
  assert.ok((await readAll(channel, DIGEST)).equals(BLOB), 'the raw reader read the blob from grpc-js');
  channel.close();
  plain.forceShutdown();
});

test('a server that sends what is not a ReadChunk, resets mid-blob, or answers NOT_FOUND fails the read', async () => {
  const otherField = await rawServer((stream) => {
    stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
    stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
    stream.end(Buffer.from([0, 0, 0, 0, 3, 0x12, 1, 9]));
  });
  const first = new BlobReadChannel({ address: `127.0.0.1:${otherField.port}`, nodeId: 'odd' }, encodeRequest);
  assert.match((await failureOf(readAll(first, DIGEST))).message, /reading sha256:1+ from node odd: the peer sent a field with tag byte 18/);
  first.close();
  otherField.stop();

  const reset = await rawServer((stream) => {
    stream.respond({ ':status': 200, 'content-type': 'application/grpc' });
    stream.write(Buffer.from([0, 0, 0, 0, 12, 0x0a, 10, 1, 2, 3, 4, 5]), () => stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR));
  });
  const second = new BlobReadChannel({ address: `127.0.0.1:${reset.port}`, nodeId: 'reset' }, encodeRequest);
  assert.match((await failureOf(readAll(second, DIGEST))).message, /from node reset: /, 'a stream reset inside a message is a failure, not a short blob');
  second.close();
  reset.stop();

  const service = imagesServiceForServer({ share: () => memoryShare, authenticate: () => ({ ok: true, nodeId: 'reader' }), onRejected: () => undefined, log: () => undefined });
  const server = new grpc.Server();
  server.addService(service.definition, service.implementation);
  routeRawStreams(server, service.rawStreams);
  const port = await bind(server);
  const third = new BlobReadChannel({ address: `127.0.0.1:${port}`, nodeId: 'holder' }, encodeRequest);
  const missing = await failureOf(readAll(third, `sha256:${'2'.repeat(64)}`));
  assert.is(missing.code, 'not-found');
  assert.match(missing.message, /is not on this node/);
  const refused = await failureOf(readAll(third, 'sha256:short'));
  assert.match(refused.message, /digest: must be sha256/);
  // The channel still serves after failures.
  assert.ok((await readAll(third, DIGEST)).equals(BLOB));
  third.close();
  server.forceShutdown();
});

test('a read its caller cancels rejects, and a refused caller is told why', async () => {
  const service = imagesServiceForServer({ share: () => memoryShare, authenticate: () => ({ ok: false, reason: 'no-verified-certificate' }), onRejected: () => undefined, log: () => undefined });
  const server = new grpc.Server();
  server.addService(service.definition, service.implementation);
  routeRawStreams(server, service.rawStreams);
  const port = await bind(server);
  const channel = new BlobReadChannel({ address: `127.0.0.1:${port}`, nodeId: 'strict' }, encodeRequest);
  assert.match((await failureOf(readAll(channel, DIGEST))).message, /refused: no-verified-certificate/);
  channel.close();
  server.forceShutdown();

  const slow = await rawServer((stream) => {
    stream.respond({ ':status': 200, 'content-type': 'application/grpc' });
    stream.write(Buffer.from([0, 0, 0, 0, 3, 0x0a, 1, 7]));
  });
  const reader = new BlobReadChannel({ address: `127.0.0.1:${slow.port}`, nodeId: 'slow' }, encodeRequest);
  const abort = new AbortController();
  const reading = (async () => {
    for await (const chunk of reader.read(DIGEST, abort.signal)) {
      assert.equal([...chunk], [7]);
      abort.abort();
    }
  })();
  assert.match((await failureOf(reading)).message, /from node slow: cancelled/);
  reader.close();
  slow.stop();
  assert.match((await failureOf(readAll(reader, DIGEST))).message, /closed/, 'a closed channel reads nothing');
});

test.run();
