// The transport's `services` option: a further gRPC service served on the
// peer port beside RaftTransport (the agent serves its Join there), while
// Raft traffic keeps flowing. Real servers on 127.0.0.1, port 0.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as grpc from '@grpc/grpc-js';
import { MessageType } from '../core/types.js';
import type { Message, NodeId } from '../core/types.js';
import type { TransportHandlers } from '../transport.js';
import { GrpcTransport } from '../transport-grpc.js';

const echoService: grpc.ServiceDefinition = {
  Echo: {
    path: '/test.Echo/Echo',
    requestStream: false,
    responseStream: false,
    requestSerialize: (value: Buffer) => value,
    requestDeserialize: (bytes: Buffer) => bytes,
    responseSerialize: (value: Buffer) => value,
    responseDeserialize: (bytes: Buffer) => bytes,
  },
};

class Recorder implements TransportHandlers {
  messages: Message[] = [];
  onMessage(message: Message): void {
    this.messages.push(message);
  }
  onSnapshotStatus(_to: NodeId, _ok: boolean): void {}
  onUnreachable(_to: NodeId): void {}
}

function heartbeat(from: NodeId, to: NodeId): Message {
  return {
    type: MessageType.Heartbeat, from, to, term: 1, index: 0, logTerm: 0, entries: [], commit: 0,
    reject: false, rejectHintIndex: 0, rejectHintTerm: 0, context: '', transfer: false,
  };
}

test('an extra service answers on the transport port while Raft messages flow', async () => {
  const implementation: grpc.UntypedServiceImplementation = {
    Echo: (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
      callback(null, Buffer.concat([Buffer.from('echo:'), call.request]));
    },
  };
  const a = new GrpcTransport({ id: 'a', listen: '127.0.0.1:0', services: [{ definition: echoService, implementation }] });
  const b = new GrpcTransport({ id: 'b', listen: '127.0.0.1:0' });
  const received = new Recorder();
  await a.start(received);
  await b.start(new Recorder());
  const Client = grpc.makeGenericClientConstructor(echoService, 'Echo');
  const client = new Client(a.address, grpc.credentials.createInsecure());
  try {
    const answer = await new Promise<Buffer>((resolve, reject) => {
      (client as unknown as { Echo: (request: Buffer, callback: (error: Error | null, value?: Buffer) => void) => void }).Echo(Buffer.from('hi'), (error, value) =>
        error ? reject(error) : resolve(value!),
      );
    });
    assert.is(answer.toString(), 'echo:hi');
    b.setPeers({ a: a.address });
    b.send([heartbeat('b', 'a')]);
    const started = Date.now();
    while (received.messages.length === 0 && Date.now() - started < 3000) await new Promise((resolve) => setTimeout(resolve, 5));
    assert.is(received.messages.length, 1);
  } finally {
    client.close();
    await a.stop();
    await b.stop();
  }
});

test('without services the transport serves RaftTransport alone (unknown methods are UNIMPLEMENTED)', async () => {
  const a = new GrpcTransport({ id: 'a', listen: '127.0.0.1:0' });
  await a.start(new Recorder());
  const Client = grpc.makeGenericClientConstructor(echoService, 'Echo');
  const client = new Client(a.address, grpc.credentials.createInsecure());
  try {
    const code = await new Promise<number | undefined>((resolve) => {
      (client as unknown as { Echo: (request: Buffer, callback: (error: grpc.ServiceError | null) => void) => void }).Echo(Buffer.from('hi'), (error) => resolve(error?.code));
    });
    assert.is(code, grpc.status.UNIMPLEMENTED);
  } finally {
    client.close();
    await a.stop();
  }
});

test.run();
