/**
 * The `hivemind.images.Images` gRPC service (proto/images.proto): this
 * node's images served to its peers on the peer port, and the other members'
 * images as `PeerImages` for the executor's container runtime
 * (src/node/image-share.ts says what both sides promise).
 *
 * Only members call it: every call must present a verified node
 * certificate of the cluster. The server adapts an `ImageShare` to gRPC and
 * nothing a caller sends can crash it; the client trusts nothing it reads
 * (the runtime checks every byte against its digest).
 */
import * as grpc from '@grpc/grpc-js';
import { protoCodec, protoServiceDefinition, type ProtoCodec, type ProtoField, type ProtoMethod } from '../../consensus/transport/proto-codec.js';
import { MessageBuffers } from '../executor/containerd/message-buffers.js';
import { BYTES_FIELD_HEAD_BYTES_MAX, writeBytesFieldHeadInto } from '../executor/containerd/protobuf-wire.js';
import type { ImageShare, PeerImages, PeerImageSource, SharedImageTarget } from '../node/image-share.js';
import type { ClusterStateMachine } from '../state/machine.js';
import type { CallAuthenticator } from './cluster-service.js';

/** Longest image name a caller may ask for. */
const NAME_LENGTH_MAX = 1024;
/** How long a peer has to say whether it holds an image. */
const DESCRIBE_TIMEOUT_MS = 5_000;
/** How long a blob may take to arrive (a large layer over a slow link). */
const READ_TIMEOUT_MS = 10 * 60_000;
const DIGEST = /^sha256:[0-9a-f]{64}$/;
/**
 * Most bytes of a blob in one ReadChunk; a longer chunk from the share goes
 * out in several. 128 KiB, not 1 MiB: each message costs the fetcher a
 * fresh buffer of its size (grpc-js joins a message's frames into one), and
 * fresh 1 MiB buffers cost more per byte than 128 KiB ones; bench:executor
 * --mode images measured the fetch's CPU and wall time lower with them.
 */
const READ_CHUNK_DATA_BYTES_MAX = 128 * 1024;
/** ReadChunks of one Read handed to gRPC and not yet written at most (4 MiB): a slow reader holds back the reading, not this node's memory. */
const READ_CHUNKS_IN_FLIGHT_MAX = 32;
/** HTTP/2 receive window of a channel blobs are read over (64 KiB by default), as toward containerd (`FLOW_CONTROL_WINDOW_BYTES` there). */
const FLOW_CONTROL_WINDOW_BYTES = 4 * 1024 * 1024;

interface DescribeResponseWire {
  found: boolean;
  media_type: string;
  digest: string;
  size: number;
}

interface ImagesClient extends grpc.Client {
  Describe(request: { name: string }, options: grpc.CallOptions, callback: grpc.requestCallback<DescribeResponseWire>): grpc.ClientUnaryCall;
  Read(request: { digest: string }, options: grpc.CallOptions): grpc.ClientReadableStream<{ data: Uint8Array }>;
}

interface ImagesClientConstructor {
  new (address: string, credentials: grpc.ChannelCredentials, options: grpc.ChannelOptions): ImagesClient;
  service: grpc.ServiceDefinition;
}

/** The messages of proto/images.proto (src/agent/test/proto-codec.test.ts checks them against it). */
export const IMAGES_MESSAGES = {
  DescribeRequest: [{ name: 'name', number: 1, kind: 'string' }],
  DescribeResponse: [
    { name: 'found', number: 1, kind: 'bool' },
    { name: 'media_type', number: 2, kind: 'string' },
    { name: 'digest', number: 3, kind: 'string' },
    { name: 'size', number: 4, kind: 'uint64' },
  ],
  ReadRequest: [{ name: 'digest', number: 1, kind: 'string' }],
  ReadChunk: [{ name: 'data', number: 1, kind: 'bytes' }],
} as const satisfies Record<string, readonly ProtoField[]>;

/** The methods of `hivemind.images.Images`, as in proto/images.proto. */
export const IMAGES_METHODS: readonly ProtoMethod[] = [
  { name: 'Describe', requestStream: false, responseStream: false, request: protoCodec<{ name: string }>(IMAGES_MESSAGES.DescribeRequest), response: protoCodec<DescribeResponseWire>(IMAGES_MESSAGES.DescribeResponse) },
  { name: 'Read', requestStream: false, responseStream: true, request: protoCodec<{ digest: string }>(IMAGES_MESSAGES.ReadRequest), response: passEncoded(protoCodec<{ data: Uint8Array }>(IMAGES_MESSAGES.ReadChunk)) },
];

let loaded: ImagesClientConstructor | undefined;

function imagesService(): ImagesClientConstructor {
  loaded ??= grpc.makeGenericClientConstructor(protoServiceDefinition('hivemind.images.Images', IMAGES_METHODS), 'Images') as unknown as ImagesClientConstructor;
  return loaded;
}

/**
 * `codec`, except that a message given as a Buffer is taken as its encoded
 * bytes and sent as it is: the server encodes each ReadChunk by hand into a
 * reused buffer (`serveBlob`), and no message object is a Buffer.
 */
function passEncoded<T extends object>(codec: ProtoCodec<T>): ProtoCodec<T> {
  return { encode: (value) => (Buffer.isBuffer(value) ? value : codec.encode(value)), decode: (bytes) => codec.decode(bytes) };
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Whether `error` says the blob is not there (`ImageShare.read`'s `not-found`). */
function isNotFound(error: unknown): boolean {
  return (error as { code?: unknown }).code === 'not-found';
}

/**
 * Ends a server stream with status `code`. (grpc-js sends the status of an
 * 'error' event; `destroy` would end the stream without one, leaving the
 * caller waiting for its deadline.)
 */
function fail(call: grpc.ServerWritableStream<unknown, unknown>, code: grpc.status, details: string): void {
  call.emit('error', Object.assign(new Error(details), { code, details }));
}

/**
 * The service to add to the peer port's gRPC server. `share` is this
 * node's images, or undefined while no runtime keeps any (every Describe
 * then answers not found).
 */
export function imagesServiceForServer(options: {
  share: () => ImageShare | undefined;
  authenticate: CallAuthenticator;
  onRejected: (reason: string) => void;
  log: (line: string) => void;
}): { definition: grpc.ServiceDefinition; implementation: grpc.UntypedServiceImplementation } {
  const { share, authenticate, onRejected, log } = options;
  const refuse = (call: Parameters<CallAuthenticator>[0]): string | undefined => {
    const caller = authenticate(call);
    if (caller.ok) return undefined;
    onRejected(caller.reason);
    return `refused: ${caller.reason} (a member of this cluster presents a certificate of its CA)`;
  };
  const implementation: grpc.UntypedServiceImplementation = {
    Describe: (call: grpc.ServerUnaryCall<{ name: unknown }, DescribeResponseWire>, callback: grpc.sendUnaryData<DescribeResponseWire>) => {
      const refusal = refuse(call);
      if (refusal !== undefined) return callback({ code: grpc.status.UNAUTHENTICATED, details: refusal });
      const name = call.request.name;
      if (typeof name !== 'string' || name.length === 0 || name.length > NAME_LENGTH_MAX) {
        return callback({ code: grpc.status.INVALID_ARGUMENT, details: `name: must be an image reference of 1 to ${NAME_LENGTH_MAX} characters` });
      }
      const images = share();
      if (images === undefined) return callback(null, { found: false, media_type: '', digest: '', size: 0 });
      images.describe(name).then(
        (target) => callback(null, target === undefined ? { found: false, media_type: '', digest: '', size: 0 } : { found: true, media_type: target.mediaType, digest: target.digest, size: target.size }),
        (error: unknown) => callback({ code: grpc.status.UNAVAILABLE, details: `cannot read this node's images: ${message(error)}` }),
      );
    },
    Read: (call: grpc.ServerWritableStream<{ digest: unknown }, { data: Uint8Array }>) => {
      const refusal = refuse(call);
      if (refusal !== undefined) return fail(call, grpc.status.UNAUTHENTICATED, refusal);
      const digest = call.request.digest;
      if (typeof digest !== 'string' || !DIGEST.test(digest)) return fail(call, grpc.status.INVALID_ARGUMENT, 'digest: must be sha256:<64 hex digits>');
      const images = share();
      if (images === undefined) return fail(call, grpc.status.NOT_FOUND, `blob ${digest} is not on this node`);
      const abort = new AbortController();
      call.on('cancelled', () => abort.abort());
      void serveBlob(call, images, digest, abort.signal).then(
        () => {
          if (!abort.signal.aborted) call.end();
        },
        (error: unknown) => {
          if (abort.signal.aborted) return;
          const code = isNotFound(error) ? grpc.status.NOT_FOUND : grpc.status.UNAVAILABLE;
          if (code === grpc.status.UNAVAILABLE) log(`serving blob ${digest} to a peer failed: ${message(error)}`);
          fail(call, code, message(error));
        },
      );
    },
  };
  return { definition: imagesService().service, implementation };
}

/**
 * Sends blob `digest` of `images` as ReadChunk messages, each encoded by
 * hand into one of a few buffers reused for the whole blob: the share's
 * chunk is copied in before the next is asked for (it may reuse its
 * memory), and a buffer is free again once gRPC has written its message (by
 * then grpc-js has framed, that is copied, it). Resolves when every chunk is
 * handed to gRPC, or as soon as `signal` aborts (the call is over: grpc-js
 * then calls no write back, and the buffers go with the call).
 */
async function serveBlob(call: grpc.ServerWritableStream<unknown, unknown>, images: ImageShare, digest: string, signal: AbortSignal): Promise<void> {
  let buffers: MessageBuffers | undefined;
  let wake: (() => void) | undefined;
  const wakeUp = (): void => {
    const waiting = wake;
    wake = undefined;
    waiting?.();
  };
  signal.addEventListener('abort', wakeUp, { once: true });
  const takeBuffer = async (pool: MessageBuffers): Promise<Buffer | undefined> => {
    for (;;) {
      if (signal.aborted) return undefined;
      const buffer = pool.takeNow();
      if (buffer !== undefined) return buffer;
      await new Promise<void>((resolve) => (wake = resolve));
    }
  };
  try {
    for await (const data of images.read(digest, signal)) {
      // Sized by the first chunk, so a small document takes a small buffer.
      buffers ??= new MessageBuffers(BYTES_FIELD_HEAD_BYTES_MAX + Math.max(1, Math.min(data.length, READ_CHUNK_DATA_BYTES_MAX)), READ_CHUNKS_IN_FLIGHT_MAX);
      const pool = buffers;
      const dataBytesMax = pool.bufferBytes - BYTES_FIELD_HEAD_BYTES_MAX;
      for (let used = 0; used < data.length; ) {
        const buffer = await takeBuffer(pool);
        if (buffer === undefined) return;
        const piece = data.subarray(used, used + dataBytesMax);
        const start = writeBytesFieldHeadInto(buffer, 1, piece.length);
        buffer.set(piece, start);
        used += piece.length;
        call.write(buffer.subarray(0, start + piece.length), () => {
          pool.give(buffer);
          wakeUp();
        });
      }
    }
  } finally {
    signal.removeEventListener('abort', wakeUp);
  }
}

/** A peer's images, read over its peer port. */
class RemoteImageShare implements ImageShare {
  constructor(
    private readonly client: ImagesClient,
    private readonly nodeId: string,
  ) {}

  describe(name: string, signal?: AbortSignal): Promise<SharedImageTarget | undefined> {
    return new Promise((resolve, reject) => {
      const call = this.client.Describe({ name }, { deadline: Date.now() + DESCRIBE_TIMEOUT_MS }, (error, response) => {
        signal?.removeEventListener('abort', cancel);
        if (error) reject(new Error(`node ${this.nodeId} did not say whether it holds ${name}: ${error.details || error.message}`));
        else if (response === undefined || !response.found) resolve(undefined);
        else resolve({ mediaType: response.media_type, digest: response.digest, size: response.size });
      });
      const cancel = () => call.cancel();
      signal?.addEventListener('abort', cancel, { once: true });
    });
  }

  async *read(digest: string, signal?: AbortSignal): AsyncIterable<Uint8Array> {
    const stream = this.client.Read({ digest }, { deadline: Date.now() + READ_TIMEOUT_MS });
    const cancel = () => stream.cancel();
    signal?.addEventListener('abort', cancel, { once: true });
    try {
      for await (const chunk of stream as AsyncIterable<{ data: Uint8Array }>) yield chunk.data;
    } catch (error) {
      const status = error as grpc.ServiceError;
      const text = `reading ${digest} from node ${this.nodeId}: ${status.details || status.message}`;
      throw Object.assign(new Error(text), status.code === grpc.status.NOT_FOUND ? { code: 'not-found' } : {});
    } finally {
      signal?.removeEventListener('abort', cancel);
      stream.cancel();
    }
  }
}

/** Node `nodeId`'s images at `address`, over a channel of its own (closed by `close`): for tools and tests. */
export function remoteImageShare(address: string, nodeId: string, credentials: grpc.ChannelCredentials, channelOptions: grpc.ChannelOptions = {}): { images: ImageShare; close(): void } {
  const Constructor = imagesService();
  const client = new Constructor(address, credentials, { 'grpc-node.flow_control_window': FLOW_CONTROL_WINDOW_BYTES, ...channelOptions });
  return { images: new RemoteImageShare(client, nodeId), close: () => client.close() };
}

/**
 * The other members' images (see `PeerImages`): members whose instances
 * run the image first, then the other live ones, each over one channel
 * kept per address and closed by `close()`.
 */
export class PeerImageClients implements PeerImages {
  private readonly clients = new Map<string, ImagesClient>();

  constructor(
    private readonly options: {
      nodeId: string;
      machine: ClusterStateMachine;
      /** Mutual TLS toward node `nodeId` (its certificate must name it). */
      credentials: (nodeId: string) => grpc.ChannelCredentials;
      channelOptions?: grpc.ChannelOptions;
      normalize: (reference: string) => string;
    },
  ) {}

  sourcesFor(name: string): PeerImageSource[] {
    const { machine, nodeId: self } = this.options;
    const holders = new Set<string>();
    for (const app of machine.apps()) {
      const runsIt = app.versions.some((version) => version.spec.image !== undefined && this.normalizeOrUndefined(version.spec.image) === name);
      if (!runsIt) continue;
      for (const instance of machine.instances({ tenant: app.tenant, app: app.name })) {
        if (instance.node !== undefined && (instance.status.state === 'running' || instance.status.state === 'healthy')) holders.add(instance.node);
      }
    }
    const live = machine.nodes().filter((node) => node.id !== self && node.status === 'up');
    const ordered = [...live.filter((node) => holders.has(node.id)), ...live.filter((node) => !holders.has(node.id))];
    return ordered.map((node) => ({ nodeId: node.id, images: new RemoteImageShare(this.client(node.id, node.addresses.peer), node.id) }));
  }

  private normalizeOrUndefined(reference: string): string | undefined {
    try {
      return this.options.normalize(reference);
    } catch {
      return undefined;
    }
  }

  private client(nodeId: string, address: string): ImagesClient {
    const key = `${nodeId}@${address}`;
    let client = this.clients.get(key);
    if (client === undefined) {
      const Constructor = imagesService();
      client = new Constructor(address, this.options.credentials(nodeId), { ...this.options.channelOptions, 'grpc.max_receive_message_length': 8 * 1024 * 1024, 'grpc-node.flow_control_window': FLOW_CONTROL_WINDOW_BYTES });
      this.clients.set(key, client);
    }
    return client;
  }

  close(): void {
    for (const client of this.clients.values()) client.close();
    this.clients.clear();
  }
}
