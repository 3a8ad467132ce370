// The key-value server's unary gRPC server (consensus/server/grpc-unary-server.ts):
// interoperability with grpc-js's client, and every protocol error a client can
// cause, answered without taking the server down. Real servers on 127.0.0.1, port 0.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import http2 from 'node:http2';
import net from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { GrpcStatusError, UnaryGrpcServer, type UnaryCall, type UnaryMethod } from '../server/grpc-unary-server.js';

const REQUEST_BYTES_MAX = 1024;

/** Requests and answers are raw bytes; the handlers say what they saw. */
function method(name: string, handle: (call: UnaryCall<unknown>) => Promise<unknown>): UnaryMethod {
  const serialize = (value: unknown): Buffer => {
    if (!Buffer.isBuffer(value)) throw new TypeError(`expected a Buffer, got ${typeof value}`);
    return value;
  };
  return { path: `/test.T/${name}`, deserialize: (bytes) => bytes, serialize, handle };
}

interface Fixture {
  server: UnaryGrpcServer;
  address: string;
  logged: string[];
  cancelled: string[];
  stop(): Promise<void>;
}

/** Runs `body` against a fresh server (with `extra` methods), and stops the server whatever happens. */
async function withFixture(body: (fixture: Fixture) => Promise<void>, extra: UnaryMethod[] = []): Promise<void> {
  const fixture = await start(extra);
  try {
    await body(fixture);
  } finally {
    await fixture.stop();
  }
}

async function start(extra: UnaryMethod[] = []): Promise<Fixture> {
  const logged: string[] = [];
  const cancelled: string[] = [];
  const server = new UnaryGrpcServer({
    methods: [
      method('Echo', async (call) => {
        const deadline = Number.isFinite(call.deadlineMs) ? 'deadline' : 'none';
        return Buffer.from(`echo:${(call.request as Buffer).toString()}:${call.header('x-tag') ?? '-'}:${deadline}`);
      }),
      method('Fail', async (call) => {
        throw new GrpcStatusError(grpc.status.FAILED_PRECONDITION, `refused "${(call.request as Buffer).toString()}": 100% ünicode\nline two`);
      }),
      method('Broken', async () => {
        throw new Error('a bug');
      }),
      method('Hang', (call) => {
        call.onCancel(() => cancelled.push((call.request as Buffer).toString()));
        return new Promise(() => {});
      }),
      method('BadAnswer', async () => 'not a buffer'),
      ...extra,
    ],
    requestBytesMax: REQUEST_BYTES_MAX,
    logger: (line) => logged.push(line),
  });
  const address = await server.listen('127.0.0.1:0');
  return { server, address, logged, cancelled, stop: () => server.close(100) };
}

const passThrough = (value: Buffer): Buffer => value;

/** One call through grpc-js's client. */
function grpcCall(address: string, name: string, request: Buffer, options: { deadlineMs?: number; tag?: string } = {}): Promise<Buffer> {
  const client = new grpc.Client(address, grpc.credentials.createInsecure());
  const metadata = new grpc.Metadata();
  if (options.tag !== undefined) metadata.set('x-tag', options.tag);
  const callOptions: grpc.CallOptions = options.deadlineMs === undefined ? {} : { deadline: Date.now() + options.deadlineMs };
  return new Promise<Buffer>((resolve, reject) => {
    client.makeUnaryRequest(`/test.T/${name}`, passThrough, passThrough, request, metadata, callOptions, (error, value) =>
      error ? reject(error) : resolve(value!),
    );
  }).finally(() => client.close());
}

/** What `promise` rejected with; fails the test if it resolved. */
async function rejection(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (error) {
    return error as Error;
  }
  throw new Error('it succeeded; it should have failed');
}

const grpcError = async (promise: Promise<unknown>): Promise<grpc.ServiceError> => (await rejection(promise)) as grpc.ServiceError;

interface RawAnswer {
  httpStatus: number;
  grpcStatus: string | undefined;
  grpcMessage: string | undefined;
  body: Buffer;
}

/** One request over node:http2 with the headers and body given, to send what grpc-js never would. */
function rawCall(address: string, headers: http2.OutgoingHttpHeaders, body: Buffer, options: { endRequest?: boolean } = {}): Promise<RawAnswer> {
  const session = http2.connect(`http://${address}`);
  return new Promise<RawAnswer>((resolve, reject) => {
    session.on('error', reject);
    const stream = session.request({ ':method': 'POST', 'content-type': 'application/grpc', te: 'trailers', ...headers });
    const answer: RawAnswer = { httpStatus: 0, grpcStatus: undefined, grpcMessage: undefined, body: Buffer.alloc(0) };
    const chunks: Buffer[] = [];
    const read = (received: http2.IncomingHttpHeaders): void => {
      if (received[':status'] !== undefined) answer.httpStatus = Number(received[':status']);
      if (received['grpc-status'] !== undefined) answer.grpcStatus = String(received['grpc-status']);
      if (received['grpc-message'] !== undefined) answer.grpcMessage = decodeURIComponent(String(received['grpc-message']));
    };
    stream.on('response', read);
    stream.on('trailers', read);
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    stream.on('error', () => {});
    // A server that never answers fails the test instead of hanging it.
    const guard = setTimeout(() => stream.close(http2.constants.NGHTTP2_CANCEL), 5000);
    stream.on('close', () => {
      clearTimeout(guard);
      answer.body = Buffer.concat(chunks);
      resolve(answer);
    });
    if (options.endRequest === false) stream.write(body);
    else stream.end(body);
  }).finally(() => session.destroy());
}

function framed(message: Buffer, flag = 0): Buffer {
  const header = Buffer.alloc(5);
  header[0] = flag;
  header.writeUInt32BE(message.length, 1);
  return Buffer.concat([header, message]);
}

test('grpc-js calls a method: request, metadata and deadline reach the handler, the answer comes back', async () => {
  await withFixture(async (fixture) => {
    assert.is((await grpcCall(fixture.address, 'Echo', Buffer.from('hi'), { tag: 't1', deadlineMs: 5000 })).toString(), 'echo:hi:t1:deadline');
    assert.is((await grpcCall(fixture.address, 'Echo', Buffer.from(''))).toString(), 'echo::-:none');
  });
});

test('a handler status and its message, with non-ASCII text, newlines and %, reach a grpc-js client intact', async () => {
  await withFixture(async (fixture) => {
    const error = await grpcError(grpcCall(fixture.address, 'Fail', Buffer.from('x')));
    assert.is(error.code, grpc.status.FAILED_PRECONDITION);
    assert.is(error.details, 'refused "x": 100% ünicode\nline two');
  });
});

test('an unexpected handler error is INTERNAL and logged; an answer that cannot be encoded is INTERNAL', async () => {
  await withFixture(async (fixture) => {
    const broken = await grpcError(grpcCall(fixture.address, 'Broken', Buffer.from('x')));
    assert.is(broken.code, grpc.status.INTERNAL);
    assert.match(broken.details, 'a bug');
    assert.ok(fixture.logged.some((line) => line.includes('/test.T/Broken') && line.includes('a bug')));
    const badAnswer = await grpcError(grpcCall(fixture.address, 'BadAnswer', Buffer.from('x')));
    assert.is(badAnswer.code, grpc.status.INTERNAL);
    assert.is((await grpcCall(fixture.address, 'Echo', Buffer.from('still'))).toString(), 'echo:still:-:none');
  });
});

test('an unknown method is UNIMPLEMENTED and names the methods served', async () => {
  await withFixture(async (fixture) => {
    const error = await grpcError(grpcCall(fixture.address, 'Nope', Buffer.from('x')));
    assert.is(error.code, grpc.status.UNIMPLEMENTED);
    assert.match(error.details, '/test.T/Nope');
    assert.match(error.details, '/test.T/Echo');
  });
});

test('the server answers DEADLINE_EXCEEDED itself when a handler outlives the grpc-timeout', async () => {
  await withFixture(async (fixture) => {
    const answer = await rawCall(fixture.address, { ':path': '/test.T/Hang', 'grpc-timeout': '50m' }, framed(Buffer.from('slow')));
    assert.is(answer.grpcStatus, String(grpc.status.DEADLINE_EXCEEDED));
    assert.match(answer.grpcMessage ?? '', 'deadline');
  });
});

test('a client that never finishes its request is answered at its deadline', async () => {
  await withFixture(async (fixture) => {
    const answer = await rawCall(fixture.address, { ':path': '/test.T/Echo', 'grpc-timeout': '50m' }, framed(Buffer.from('never ends')).subarray(0, 7), { endRequest: false });
    assert.is(answer.grpcStatus, String(grpc.status.DEADLINE_EXCEEDED));
  });
});

test('a handler that watches for it sees a client cancel, and a deadline pass', async () => {
  await withFixture(async (fixture) => {
    const client = new grpc.Client(fixture.address, grpc.credentials.createInsecure());
    try {
      const cancelled = await grpcError(
        new Promise((resolve, reject) => {
          const call = client.makeUnaryRequest('/test.T/Hang', passThrough, passThrough, Buffer.from('gone'), (error, value) => (error ? reject(error) : resolve(value)));
          setTimeout(() => call.cancel(), 100);
        }),
      );
      assert.is(cancelled.code, grpc.status.CANCELLED);
      for (let wait = 0; wait < 50 && fixture.cancelled.length === 0; wait++) await new Promise((resolve) => setTimeout(resolve, 20));
      assert.equal(fixture.cancelled, ['gone']);
      const late = await grpcError(grpcCall(fixture.address, 'Hang', Buffer.from('late'), { deadlineMs: 100 }));
      assert.is(late.code, grpc.status.DEADLINE_EXCEEDED);
      for (let wait = 0; wait < 50 && fixture.cancelled.length === 1; wait++) await new Promise((resolve) => setTimeout(resolve, 20));
      assert.equal(fixture.cancelled, ['gone', 'late']);
    } finally {
      client.close();
    }
  });
});

test('malformed requests get a clear status each, and the server keeps serving', async () => {
  const cases: Array<{ what: string; headers: http2.OutgoingHttpHeaders; body: Buffer; status: grpc.status; message: string }> = [
    { what: 'bad grpc-timeout', headers: { 'grpc-timeout': '5 seconds' }, body: framed(Buffer.from('x')), status: grpc.status.INVALID_ARGUMENT, message: 'grpc-timeout' },
    { what: 'too long grpc-timeout', headers: { 'grpc-timeout': '123456789S' }, body: framed(Buffer.from('x')), status: grpc.status.INVALID_ARGUMENT, message: 'grpc-timeout' },
    { what: 'no message', headers: {}, body: Buffer.alloc(0), status: grpc.status.INTERNAL, message: 'exactly one' },
    { what: 'two messages', headers: {}, body: Buffer.concat([framed(Buffer.from('a')), framed(Buffer.from('b'))]), status: grpc.status.INTERNAL, message: 'more than one' },
    { what: 'cut short', headers: {}, body: framed(Buffer.from('abcdef')).subarray(0, 8), status: grpc.status.INTERNAL, message: 'cut short' },
    { what: 'compressed', headers: { 'grpc-encoding': 'gzip' }, body: framed(Buffer.from('x'), 1), status: grpc.status.UNIMPLEMENTED, message: 'compressed' },
    { what: 'declared over the limit', headers: {}, body: Buffer.from([0, 0, 1, 0, 0]), status: grpc.status.RESOURCE_EXHAUSTED, message: `${REQUEST_BYTES_MAX} bytes` },
    { what: 'sent over the limit', headers: {}, body: framed(Buffer.alloc(REQUEST_BYTES_MAX * 4)), status: grpc.status.RESOURCE_EXHAUSTED, message: `${REQUEST_BYTES_MAX} bytes` },
  ];
  await withFixture(async (fixture) => {
    for (const each of cases) {
      const answer = await rawCall(fixture.address, { ':path': '/test.T/Echo', ...each.headers }, each.body);
      assert.is(answer.httpStatus, 200, each.what);
      assert.is(answer.grpcStatus, String(each.status), each.what);
      assert.match(answer.grpcMessage ?? '', each.message, each.what);
    }
    const wrongType = await rawCall(fixture.address, { ':path': '/test.T/Echo', 'content-type': 'application/json' }, Buffer.from('{}'));
    assert.is(wrongType.httpStatus, 415);
    const wrongMethod = await rawCall(fixture.address, { ':path': '/test.T/Echo', ':method': 'PUT' }, framed(Buffer.from('x')));
    assert.is(wrongMethod.httpStatus, 405);
    const good = await rawCall(fixture.address, { ':path': '/test.T/Echo' }, framed(Buffer.from('ok')));
    assert.is(good.grpcStatus, '0');
    assert.is(good.body.subarray(5).toString(), 'echo:ok:-:none');
  });
});

test('a request that cannot be decoded is INTERNAL, naming the method', async () => {
  const strict = method('Strict', async () => Buffer.from('never'));
  strict.deserialize = () => {
    throw new Error('wire type 7 is not valid');
  };
  await withFixture(async (fixture) => {
    const error = await grpcError(grpcCall(fixture.address, 'Strict', Buffer.from([0xff])));
    assert.is(error.code, grpc.status.INTERNAL);
    assert.match(error.details, '/test.T/Strict');
    assert.match(error.details, 'wire type 7');
  }, [strict]);
});

test('bytes that are not HTTP/2 close that connection only', async () => {
  await withFixture(async (fixture) => {
    const [host, port] = [fixture.address.split(':')[0]!, Number(fixture.address.split(':')[1])];
    await new Promise<void>((resolve) => {
      const socket = net.connect(port, host, () => socket.end('GET / HTTP/1.1\r\nHost: x\r\n\r\n\x00\x01garbage'));
      socket.on('error', () => resolve());
      socket.on('close', () => resolve());
      socket.resume();
    });
    assert.is((await grpcCall(fixture.address, 'Echo', Buffer.from('after'))).toString(), 'echo:after:-:none');
  });
});

test('close lets a call in flight finish, then refuses new connections', async () => {
  let release: (() => void) | undefined;
  const slow = method('Slow', () => new Promise((resolve) => (release = () => resolve(Buffer.from('done')))));
  const fixture = await start([slow]);
  const inFlight = grpcCall(fixture.address, 'Slow', Buffer.from('x'));
  for (let wait = 0; wait < 100 && release === undefined; wait++) await new Promise((resolve) => setTimeout(resolve, 10));
  assert.ok(release !== undefined, 'the call reached the handler');
  const closed = fixture.server.close(2000);
  release!();
  assert.is((await inFlight).toString(), 'done');
  await closed;
  const refused = await grpcError(grpcCall(fixture.address, 'Echo', Buffer.from('late'), { deadlineMs: 500 }));
  assert.ok(refused.code === grpc.status.UNAVAILABLE || refused.code === grpc.status.DEADLINE_EXCEEDED, `code ${refused.code}`);
});

test('listen refuses an address without a port, and a port in use, with a clear error', async () => {
  await withFixture(async (fixture) => {
    const other = new UnaryGrpcServer({ methods: [], requestBytesMax: 1, logger: () => {} });
    assert.match((await rejection(other.listen('localhost'))).message, /host:port/);
    assert.match((await rejection(other.listen(fixture.address))).message, /cannot listen for clients on "127\.0\.0\.1:\d+"/);
  });
});

test.run();
