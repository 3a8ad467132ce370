// The peer services' messages by hand (consensus/transport/proto-codec.ts)
// against their .proto files read by @grpc/proto-loader (protobufjs), which
// encoded them before: the field tables match proto/raft.proto,
// proto/cluster.proto and proto/images.proto (names, numbers, types, which
// methods stream); for every message, full, sparse and empty, the bytes are
// protobufjs's and each side decodes the other's bytes to the same object
// (absent fields at their defaults, uint64 as numbers, bytes as Buffers), so
// members of either build talk; unknown fields are skipped; bytes that are
// not a message are refused with ProtoDecodeError.
import { fileURLToPath } from 'node:url';
import * as protoLoader from '@grpc/proto-loader';
import type { MethodDefinition } from '@grpc/grpc-js';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ProtoDecodeError, protoCodec, protoServiceDefinition, type ProtoField } from '../../../consensus/transport/proto-codec.js';
import { RAFT_MESSAGES, RAFT_METHODS } from '../../../consensus/transport/raft-service.js';
import { CLUSTER_MESSAGES, CLUSTER_METHODS } from '../cluster-service.js';
import { IMAGES_MESSAGES, IMAGES_METHODS } from '../image-service.js';

interface FieldDescriptor {
  name: string;
  number: number;
  label: string;
  type: string;
  typeName: string;
}
interface MessageDescriptor {
  name: string;
  field: FieldDescriptor[];
  nestedType: MessageDescriptor[];
}
type LoadedMethod = MethodDefinition<object, object> & { requestType: { type: MessageDescriptor }; responseType: { type: MessageDescriptor } };

const SERVICES = [
  { file: 'raft.proto', service: 'hivemind.raft.RaftTransport', messages: RAFT_MESSAGES as Record<string, readonly ProtoField[]>, methods: RAFT_METHODS },
  { file: 'cluster.proto', service: 'hivemind.cluster.Cluster', messages: CLUSTER_MESSAGES as Record<string, readonly ProtoField[]>, methods: CLUSTER_METHODS },
  { file: 'images.proto', service: 'hivemind.images.Images', messages: IMAGES_MESSAGES as Record<string, readonly ProtoField[]>, methods: IMAGES_METHODS },
];

function loaded(file: string, service: string): Record<string, LoadedMethod> {
  const path = fileURLToPath(new URL(`../../../../proto/${file}`, import.meta.url));
  // The options the services were loaded with before.
  return protoLoader.loadSync(path, { keepCase: true, longs: Number, defaults: true })[service] as unknown as Record<string, LoadedMethod>;
}

/** A field of a .proto message as the hand tables name its kind. */
function kindOf(field: FieldDescriptor, message: MessageDescriptor): string {
  if (field.type === 'TYPE_MESSAGE') {
    const entry = message.nestedType.find((nested) => nested.name === field.typeName);
    const entryTypes = entry?.field.map((item) => `${item.number}:${item.type}`).join(',');
    return entryTypes === '1:TYPE_STRING,2:TYPE_STRING' && field.label === 'LABEL_REPEATED' ? 'string-map' : `unsupported ${field.typeName}`;
  }
  const scalar = { TYPE_STRING: 'string', TYPE_BYTES: 'bytes', TYPE_BOOL: 'bool', TYPE_UINT64: 'uint64' }[field.type] ?? `unsupported ${field.type}`;
  if (field.label === 'LABEL_REPEATED') return scalar === 'string' ? 'strings' : `unsupported repeated ${scalar}`;
  return scalar;
}

test('the field tables and methods are those of the .proto files', () => {
  for (const { file, service, messages, methods } of SERVICES) {
    const fromFile = loaded(file, service);
    assert.equal(methods.map((method) => method.name).sort(), Object.keys(fromFile).sort(), `${file}: methods`);
    const ours = protoServiceDefinition(service, methods);
    for (const method of methods) {
      const theirs = fromFile[method.name]!;
      assert.is(ours[method.name]!.path, theirs.path, `${file} ${method.name}: path`);
      assert.is(method.requestStream, theirs.requestStream, `${file} ${method.name}: request stream`);
      assert.is(method.responseStream, theirs.responseStream, `${file} ${method.name}: response stream`);
      for (const type of [theirs.requestType.type, theirs.responseType.type]) {
        const table = messages[type.name];
        assert.ok(table, `${file}: message ${type.name} has a table`);
        const expected = type.field.map((field) => `${field.name}=${field.number}:${kindOf(field, type)}`).sort();
        assert.equal(table!.map((field) => `${field.name}=${field.number}:${field.kind}`).sort(), expected, `${file}: fields of ${type.name}`);
      }
    }
  }
});

/** Messages of every type: every field set (defaults among them), some set, none. */
const SAMPLES: Record<string, Record<string, unknown>[]> = {
  Batch: [{ from: 'n1', payload: Buffer.from([1, 2, 3, 250]) }, { from: 'n2' }, { payload: Buffer.alloc(300, 7) }, {}],
  Ack: [{}],
  SnapshotAck: [{}],
  SnapshotChunk: [{ header: Buffer.from('head'), data: Buffer.alloc(70_000, 1), done: true }, { data: Buffer.from([0]), done: false }, {}],
  SubmitRequest: [
    { node_id: 'node-1', envelope: Buffer.from('envelope'), timestamp_ms: 1_765_000_000_123, nonce: Buffer.alloc(16, 9), mac: Buffer.alloc(32, 3) },
    { node_id: 'n', timestamp_ms: 0 },
    {},
  ],
  SubmitResponse: [{ result: Buffer.from([0x81, 0xa2]) }, { result: Buffer.alloc(0) }, {}],
  JoinRequest: [
    {
      node_id: 'n3', api_address: '10.0.0.3:7070', peer_address: '[fd00::3]:7071', gossip_address: '10.0.0.3:7072',
      labels: { zone: 'a', 'hivemind.limits': 'cpu,memory', 'ünïcødé': 'välüe ✓' }, cpu_millis: 4000, memory_bytes: 2 ** 40, timestamp_ms: 1_765_000_000_000,
      nonce: Buffer.alloc(16, 1), proof: Buffer.alloc(32, 2), rejoin: true, forwarded: false, certificate_request: '-----BEGIN CERTIFICATE REQUEST-----\n…',
    },
    { node_id: 'n4', labels: {}, rejoin: false },
    {},
  ],
  JoinResponse: [
    {
      cluster_key_sealed: Buffer.alloc(48, 5), cluster_key_nonce: Buffer.alloc(12, 6), peers: { n1: '10.0.0.1:7071', n2: '10.0.0.2:7071' }, leader_id: 'n1',
      already_member: true, certificate: 'pem', ca_certificates: ['ca one', 'ca two', ''], joined_index: 123_456_789,
    },
    { leader_id: 'n1', ca_certificates: [] },
    {},
  ],
  DescribeRequest: [{ name: 'docker.io/library/busybox:latest' }, {}],
  DescribeResponse: [{ found: true, media_type: 'application/vnd.oci.image.index.v1+json', digest: `sha256:${'a'.repeat(64)}`, size: 2 ** 33 + 1 }, { found: false }, {}],
  ReadRequest: [{ digest: `sha256:${'b'.repeat(64)}` }, {}],
  ReadChunk: [{ data: Buffer.alloc(128 * 1024, 4) }, {}],
};

test('every message encodes to protobufjs\'s bytes, and each side decodes the other\'s to the same object', () => {
  for (const { file, service, methods } of SERVICES) {
    const fromFile = loaded(file, service);
    const ours = protoServiceDefinition(service, methods);
    for (const method of methods) {
      const theirs = fromFile[method.name]!;
      const sides = [
        { name: theirs.requestType.type.name, ours: [ours[method.name]!.requestSerialize, ours[method.name]!.requestDeserialize], theirs: [theirs.requestSerialize, theirs.requestDeserialize] },
        { name: theirs.responseType.type.name, ours: [ours[method.name]!.responseSerialize, ours[method.name]!.responseDeserialize], theirs: [theirs.responseSerialize, theirs.responseDeserialize] },
      ] as const;
      for (const side of sides) {
        const samples = SAMPLES[side.name];
        assert.ok(samples, `samples of ${side.name}`);
        const [ourEncode, ourDecode] = side.ours as [(value: unknown) => Buffer, (bytes: Buffer) => unknown];
        const [theirEncode, theirDecode] = side.theirs as [(value: unknown) => Buffer, (bytes: Buffer) => unknown];
        for (const sample of samples!) {
          const bytes = ourEncode(sample);
          assert.equal([...bytes], [...theirEncode(sample)], `${side.name} ${JSON.stringify(sample).slice(0, 80)}: bytes`);
          assert.equal(ourDecode(bytes), theirDecode(bytes), `${side.name}: decoded`);
        }
      }
    }
  }
});

test('unknown fields are skipped, as protobufjs skips them', () => {
  const join = loaded('cluster.proto', 'hivemind.cluster.Cluster').Join!;
  const ours = protoServiceDefinition('hivemind.cluster.Cluster', CLUSTER_METHODS).Join!;
  const known = ours.requestSerialize(SAMPLES.JoinRequest![0]);
  // Field 99 as a varint, field 100 length-delimited, field 101 fixed64, field 102 fixed32.
  const extra = Buffer.from([0x98, 0x06, 0x96, 0x01, 0xa2, 0x06, 0x03, 0x61, 0x62, 0x63, 0xa9, 0x06, 1, 2, 3, 4, 5, 6, 7, 8, 0xb5, 0x06, 1, 2, 3, 4]);
  const withExtra = Buffer.concat([extra.subarray(0, 4), known, extra.subarray(4)]);
  assert.equal(ours.requestDeserialize(withExtra), join.requestDeserialize(withExtra));
  assert.equal(ours.requestDeserialize(withExtra), ours.requestDeserialize(known));
});

test('bytes that are not a message are refused with ProtoDecodeError', () => {
  const codec = protoCodec<{ from: string; payload: Uint8Array }>(RAFT_MESSAGES.Batch);
  const cases: [string, number[]][] = [
    ['a length past the end', [0x0a, 0x05, 0x61]],
    ['a varint cut off', [0x08]],
    ['a varint of 11 bytes', [0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]],
    ['wire type 7', [0x0f]],
    ['a known field with the wrong wire type', [0x08, 0x01]],
  ];
  for (const [why, bytes] of cases) {
    assert.throws(() => codec.decode(Buffer.from(bytes)), (error: unknown) => error instanceof ProtoDecodeError, why);
  }
});

test('a field of the wrong type is refused when encoding, naming it', () => {
  const codec = protoCodec<Record<string, unknown>>(CLUSTER_MESSAGES.JoinRequest);
  assert.throws(() => codec.encode({ cpu_millis: -1 }), /cpu_millis/);
  assert.throws(() => codec.encode({ timestamp_ms: 1.5 }), /timestamp_ms/);
  assert.throws(() => codec.encode({ nonce: 'not bytes' }), /nonce/);
  assert.throws(() => protoCodec([{ name: 'a', number: 1, kind: 'string' }, { name: 'b', number: 1, kind: 'bool' }]), /unique/);
});

test.run();

