/**
 * The `hivemind.images.Images` gRPC service (proto/images.proto): this
 * node's images served to its peers on the peer port, and the other members'
 * images as `PeerImages` for the executor's container runtime
 * (src/node/image-share.ts says what both sides promise).
 *
 * Only members call it: every call must present a verified node
 * certificate of the cluster. The server adapts an `ImageShare` to gRPC and
 * nothing a caller sends can crash it; the client trusts nothing it reads
 * (the runtime checks every byte against its digest). Describe goes through
 * grpc-js; Read, which carries the blobs, over Node's http2 at both ends
 * (image-read-stream.ts), the same gRPC call on the wire.
 */
import * as grpc from '@grpc/grpc-js';
import { protoCodec, protoServiceDefinition, type ProtoField, type ProtoMethod } from '../../consensus/transport/proto-codec.js';
import type { ConnectionOptions } from 'node:tls';
import type { PeerCall, RawStreamHandler } from '../../consensus/transport-grpc.js';
import type { ImageShare, PeerImages, PeerImageSource, SharedImageTarget } from '../node/image-share.js';
import type { ClusterStateMachine } from '../state/machine.js';
import type { CallAuthenticator } from './cluster-service.js';
import { BlobReadChannel, READ_PATH, serveReadStream, type ReadStreamServing } from './image-read-stream.js';

/** Longest image name a caller may ask for. */
const NAME_LENGTH_MAX = 1024;
/** How long a peer has to say whether it holds an image. */
const DESCRIBE_TIMEOUT_MS = 5_000;

interface DescribeResponseWire {
  found: boolean;
  media_type: string;
  digest: string;
  size: number;
}

/** The service's grpc-js client: Describe only (Read is image-read-stream.ts's). */
interface ImagesClient extends grpc.Client {
  Describe(request: { name: string }, options: grpc.CallOptions, callback: grpc.requestCallback<DescribeResponseWire>): grpc.ClientUnaryCall;
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
  { name: 'Read', requestStream: false, responseStream: true, request: protoCodec<{ digest: string }>(IMAGES_MESSAGES.ReadRequest), response: protoCodec<{ data: Uint8Array }>(IMAGES_MESSAGES.ReadChunk) },
];

const READ_REQUEST = protoCodec<{ digest: string }>(IMAGES_MESSAGES.ReadRequest);

let loaded: ImagesClientConstructor | undefined;

/** The methods grpc-js serves and calls: all but Read, which goes over Node's http2 (image-read-stream.ts). */
function imagesService(): ImagesClientConstructor {
  const grpcMethods = IMAGES_METHODS.filter((method) => method.name !== 'Read');
  loaded ??= grpc.makeGenericClientConstructor(protoServiceDefinition('hivemind.images.Images', grpcMethods), 'Images') as unknown as ImagesClientConstructor;
  return loaded;
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * The service to add to the peer port's gRPC server: Describe through
 * grpc-js, Read as a raw HTTP/2 stream (`rawStreams`, image-read-stream.ts).
 * `share` is this node's images, or undefined while no runtime keeps any
 * (every Describe then answers not found).
 */
export function imagesServiceForServer(options: {
  share: () => ImageShare | undefined;
  authenticate: CallAuthenticator;
  onRejected: (reason: string) => void;
  log: (line: string) => void;
}): { definition: grpc.ServiceDefinition; implementation: grpc.UntypedServiceImplementation; rawStreams: ReadonlyMap<string, RawStreamHandler> } {
  const { share, authenticate, onRejected, log } = options;
  const refuse = (call: PeerCall): string | undefined => {
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
  };
  const serving: ReadStreamServing = { share, refuse, decodeRequest: (bytes) => READ_REQUEST.decode(bytes), log };
  const rawStreams = new Map<string, RawStreamHandler>([[READ_PATH, (stream, headers, call) => serveReadStream(stream, headers, call, serving)]]);
  return { definition: imagesService().service, implementation, rawStreams };
}

/** A peer's images, read over its peer port: Describe through grpc-js, blobs over Node's http2. */
class RemoteImageShare implements ImageShare {
  constructor(
    private readonly client: ImagesClient,
    private readonly blobs: BlobReadChannel,
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

  read(digest: string, signal?: AbortSignal): AsyncIterable<Uint8Array> {
    return this.blobs.read(digest, signal);
  }
}

/** How to reach a peer's port: grpc-js's credentials and options for Describe, and TLS options for blob reads (undefined: plaintext). */
export interface PeerImagesConnection {
  credentials: grpc.ChannelCredentials;
  channelOptions?: grpc.ChannelOptions;
  tls?: () => ConnectionOptions;
}

/** One peer's client and blob channel. */
interface PeerImagesClient {
  client: ImagesClient;
  blobs: BlobReadChannel;
}

function connectPeer(address: string, nodeId: string, connection: PeerImagesConnection): PeerImagesClient {
  const Constructor = imagesService();
  const client = new Constructor(address, connection.credentials, connection.channelOptions ?? {});
  const blobs = new BlobReadChannel({ address, nodeId, ...(connection.tls !== undefined ? { tls: connection.tls } : {}) }, (request) => READ_REQUEST.encode(request));
  return { client, blobs };
}

/** Node `nodeId`'s images at `address`, over connections of their own (closed by `close`): for tools and tests. */
export function remoteImageShare(address: string, nodeId: string, connection: PeerImagesConnection): { images: ImageShare; close(): void } {
  const peer = connectPeer(address, nodeId, connection);
  return {
    images: new RemoteImageShare(peer.client, peer.blobs, nodeId),
    close: () => {
      peer.client.close();
      peer.blobs.close();
    },
  };
}

/**
 * The other members' images (see `PeerImages`): members whose instances
 * run the image first, then the other live ones, each over one channel
 * kept per address and closed by `close()`.
 */
export class PeerImageClients implements PeerImages {
  private readonly peers = new Map<string, PeerImagesClient>();

  constructor(
    private readonly options: {
      nodeId: string;
      machine: ClusterStateMachine;
      /** Mutual TLS toward node `nodeId` (its certificate must name it), for grpc-js and for blob reads. */
      credentials: (nodeId: string) => grpc.ChannelCredentials;
      tls: (nodeId: string) => ConnectionOptions;
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
    return ordered.map((node) => {
      const peer = this.peer(node.id, node.addresses.peer);
      return { nodeId: node.id, images: new RemoteImageShare(peer.client, peer.blobs, node.id) };
    });
  }

  private normalizeOrUndefined(reference: string): string | undefined {
    try {
      return this.options.normalize(reference);
    } catch {
      return undefined;
    }
  }

  private peer(nodeId: string, address: string): PeerImagesClient {
    const key = `${nodeId}@${address}`;
    let peer = this.peers.get(key);
    if (peer === undefined) {
      const { credentials, tls, channelOptions } = this.options;
      peer = connectPeer(address, nodeId, { credentials: credentials(nodeId), tls: () => tls(nodeId), ...(channelOptions !== undefined ? { channelOptions } : {}) });
      this.peers.set(key, peer);
    }
    return peer;
  }

  close(): void {
    for (const peer of this.peers.values()) {
      peer.client.close();
      peer.blobs.close();
    }
    this.peers.clear();
  }
}
