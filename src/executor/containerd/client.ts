/**
 * A gRPC client of containerd over its unix socket, for the services
 * Hivemind uses (proto/containerd/): version, namespaces, content, images,
 * leases, snapshots, diff, containers, tasks, events, introspection.
 *
 * Every call carries the `containerd-namespace` header (Hivemind's own
 * namespace, `hivemind` by default) and, inside `withLease`, the
 * `containerd-lease` header. Failures reject with a `ContainerdError` whose
 * `code` is stable and whose message names the call and containerd's reason.
 */
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { ContentWriteChannel, type ContentWriteCall } from './content-write.js';

const PROTO_DIR = fileURLToPath(new URL('../../../../proto/containerd/', import.meta.url));
const PROTO_FILES = ['version.proto', 'namespaces.proto', 'content.proto', 'images.proto', 'leases.proto', 'snapshots.proto', 'diff.proto', 'containers.proto', 'tasks.proto', 'events.proto', 'introspection.proto'];
/** Largest message either way: content is written and read in chunks far below this. */
const MESSAGE_BYTES_MAX = 16 * 1024 * 1024;
/**
 * HTTP/2 receive window of the connection to containerd (64 KiB by
 * default): a content read of 1 MiB chunks then takes no window update per
 * 64 KiB. Measured in bench:executor --mode images (4 MiB): less CPU and
 * wall time per fetch. Nothing is allocated for it up front; at most that
 * much may arrive unread.
 */
export const FLOW_CONTROL_WINDOW_BYTES = 4 * 1024 * 1024;
/** Default deadline of a unary call. Task create and diff apply can be slow on a busy node. */
export const CALL_TIMEOUT_MS_DEFAULT = 60_000;

/** How long a lease lives when its holder dies before deleting it. */
export const LEASE_EXPIRE_MS_DEFAULT = 3_600_000;

/** The namespace Hivemind keeps its images and containers in. */
export const NAMESPACE_DEFAULT = 'hivemind';
export { SOCKET_PATH_DEFAULT } from './socket-path.js';

/** Stable codes of containerd failures. */
export type ContainerdErrorCode = 'not-found' | 'already-exists' | 'unavailable' | 'failed-precondition' | 'invalid-argument' | 'deadline-exceeded' | 'cancelled' | 'internal';

/** A failed containerd call: what was called, and containerd's reason. */
export class ContainerdError extends Error {
  override readonly name = 'ContainerdError';
  constructor(
    readonly code: ContainerdErrorCode,
    message: string,
    readonly grpcCode?: grpc.status,
  ) {
    super(message);
  }
}

function codeOf(status: grpc.status | undefined): ContainerdErrorCode {
  switch (status) {
    case grpc.status.NOT_FOUND:
      return 'not-found';
    case grpc.status.ALREADY_EXISTS:
      return 'already-exists';
    case grpc.status.UNAVAILABLE:
      return 'unavailable';
    case grpc.status.FAILED_PRECONDITION:
      return 'failed-precondition';
    case grpc.status.INVALID_ARGUMENT:
      return 'invalid-argument';
    case grpc.status.DEADLINE_EXCEEDED:
      return 'deadline-exceeded';
    case grpc.status.CANCELLED:
      return 'cancelled';
    default:
      return 'internal';
  }
}

/** Turns a grpc-js error into a ContainerdError naming the call. */
export function mapError(call: string, socketPath: string, error: unknown): ContainerdError {
  if (error instanceof ContainerdError) return error;
  const serviceError = error as Partial<grpc.ServiceError>;
  const status = serviceError.code;
  const reason = serviceError.details || (error instanceof Error ? error.message : String(error));
  const code = codeOf(status);
  if (code === 'unavailable') {
    return new ContainerdError(code, `containerd at ${socketPath} is not reachable (${call}): ${reason}; is containerd running?`, status);
  }
  return new ContainerdError(code, `containerd ${call}: ${reason}`, status);
}

/** Whether `error` is a ContainerdError with `code`. */
export function isContainerdError(error: unknown, code: ContainerdErrorCode): boolean {
  return error instanceof ContainerdError && error.code === code;
}

type ServiceName = 'version' | 'namespaces' | 'content' | 'images' | 'leases' | 'snapshots' | 'diff' | 'containers' | 'tasks' | 'events' | 'introspection';

interface ServiceConstructor {
  new (address: string, credentials: grpc.ChannelCredentials, options: grpc.ChannelOptions): grpc.Client;
}

let definitions: Record<ServiceName, ServiceConstructor> | undefined;

function isServiceDefinition(definition: object): definition is protoLoader.ServiceDefinition {
  return !('format' in definition);
}

/**
 * `serialize`, except that a request given as a Buffer is taken as the
 * message's encoded bytes (protobuf-wire.ts) and sent as it is: no request
 * object is a Buffer, and the content writes, encoded into reused buffers,
 * skip protobufjs's fresh copy of every chunk.
 */
function passEncoded(serialize: (value: object) => Buffer): (value: object) => Buffer {
  return (value) => (Buffer.isBuffer(value) ? value : serialize(value));
}

function loadDefinitions(): Record<ServiceName, ServiceConstructor> {
  if (definitions !== undefined) return definitions;
  const packageDefinition = protoLoader.loadSync(PROTO_FILES, { includeDirs: [PROTO_DIR], keepCase: true, longs: Number, enums: String, defaults: true, oneofs: true });
  for (const definition of Object.values(packageDefinition)) {
    if (!isServiceDefinition(definition)) continue;
    for (const method of Object.values(definition)) method.requestSerialize = passEncoded(method.requestSerialize);
  }
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const root = grpc.loadPackageDefinition(packageDefinition) as any;
  const services = root.containerd.services;
  definitions = {
    version: services.version.v1.Version,
    namespaces: services.namespaces.v1.Namespaces,
    content: services.content.v1.Content,
    images: services.images.v1.Images,
    leases: services.leases.v1.Leases,
    snapshots: services.snapshots.v1.Snapshots,
    diff: services.diff.v1.Diff,
    containers: services.containers.v1.Containers,
    tasks: services.tasks.v1.Tasks,
    events: services.events.v1.Events,
    introspection: services.introspection.v1.Introspection,
  };
  return definitions;
}

/** Per-call settings. */
export interface CallOptions {
  timeoutMs?: number;
  /** Runs the call under this lease (blobs and snapshots it makes are held by the lease). */
  lease?: string;
  signal?: AbortSignal;
}

/** A `google.protobuf.Any` as proto-loader presents it. */
export interface AnyWire {
  type_url: string;
  value: Uint8Array;
}

/** A `google.protobuf.Timestamp` as proto-loader presents it (longs as numbers). */
export interface TimestampWire {
  seconds: number;
  nanos: number;
}

/** Milliseconds since the epoch of a Timestamp; undefined for the zero time. */
export function timestampMs(timestamp: TimestampWire | null | undefined): number | undefined {
  if (timestamp === null || timestamp === undefined) return undefined;
  if (timestamp.seconds <= 0) return undefined;
  return timestamp.seconds * 1000 + Math.floor(timestamp.nanos / 1e6);
}

/** Options of a client. */
export interface ContainerdClientOptions {
  /** containerd's socket path. */
  socketPath: string;
  /** The containerd namespace of every call; `hivemind` by default. */
  namespace?: string;
}

/**
 * One connection to containerd, shared by every call. Cheap to keep; close
 * it when done (`close()`); calls after close reject.
 */
export class ContainerdClient {
  readonly socketPath: string;
  readonly namespace: string;
  private readonly clients = new Map<ServiceName, grpc.Client>();
  private contentWrites: ContentWriteChannel | undefined;
  private closed = false;

  constructor(options: ContainerdClientOptions) {
    this.socketPath = options.socketPath;
    this.namespace = options.namespace ?? NAMESPACE_DEFAULT;
  }

  private client(service: ServiceName): grpc.Client {
    if (this.closed) throw new ContainerdError('cancelled', `containerd client of ${this.socketPath} is closed`);
    let client = this.clients.get(service);
    if (client === undefined) {
      const Constructor = loadDefinitions()[service];
      const channel = this.clients.values().next().value as grpc.Client | undefined;
      const options: grpc.ChannelOptions = {
        'grpc.max_receive_message_length': MESSAGE_BYTES_MAX,
        'grpc.max_send_message_length': MESSAGE_BYTES_MAX,
        // containerd's socket has no authority; grpc-js wants one for unix targets.
        'grpc.default_authority': 'localhost',
        'grpc-node.flow_control_window': FLOW_CONTROL_WINDOW_BYTES,
      };
      // Every service shares the first client's channel: one socket connection.
      if (channel !== undefined) (options as Record<string, unknown>).channelOverride = channel.getChannel();
      client = new Constructor(`unix://${this.socketPath}`, grpc.credentials.createInsecure(), options);
      this.clients.set(service, client);
    }
    return client;
  }

  private metadata(options: CallOptions): grpc.Metadata {
    const metadata = new grpc.Metadata();
    metadata.set('containerd-namespace', this.namespace);
    if (options.lease !== undefined) metadata.set('containerd-lease', options.lease);
    return metadata;
  }

  /** One unary call: `service.method(request)`. */
  unary<Response>(service: ServiceName, method: string, request: object, options: CallOptions = {}): Promise<Response> {
    const name = `${service}.${method}`;
    return new Promise<Response>((resolve, reject) => {
      let client: grpc.Client;
      try {
        client = this.client(service);
      } catch (error) {
        reject(mapError(name, this.socketPath, error));
        return;
      }
      const deadline = Date.now() + (options.timeoutMs ?? CALL_TIMEOUT_MS_DEFAULT);
      // eslint-disable-next-line @typescript-eslint/no-explicit-any
      const call = (client as any)[method](request, this.metadata(options), { deadline }, (error: grpc.ServiceError | null, response: Response) => {
        options.signal?.removeEventListener('abort', abort);
        if (error) reject(mapError(name, this.socketPath, error));
        else resolve(response);
      }) as grpc.ClientUnaryCall;
      const abort = (): void => call.cancel();
      options.signal?.addEventListener('abort', abort, { once: true });
    });
  }

  /** A server stream: `service.method(request)`; the caller reads it and cancels it. */
  serverStream<Response>(service: ServiceName, method: string, request: object, options: CallOptions = {}): grpc.ClientReadableStream<Response> {
    const client = this.client(service);
    const callOptions: grpc.CallOptions = options.timeoutMs !== undefined ? { deadline: Date.now() + options.timeoutMs } : {};
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    return (client as any)[method](request, this.metadata(options), callOptions) as grpc.ClientReadableStream<Response>;
  }

  /** A bidirectional stream: `service.method()`. A request written as a Buffer is sent as already-encoded bytes. */
  duplexStream<Request, Response>(service: ServiceName, method: string, options: CallOptions = {}): grpc.ClientDuplexStream<Request, Response> {
    const client = this.client(service);
    const callOptions: grpc.CallOptions = options.timeoutMs !== undefined ? { deadline: Date.now() + options.timeoutMs } : {};
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    return (client as any)[method](this.metadata(options), callOptions) as grpc.ClientDuplexStream<Request, Response>;
  }

  /**
   * A content `Write` call (under `lease` when given) over a connection of
   * its own that sends the caller's framed buffers without copying them
   * (content-write.ts); throws once the client is closed.
   */
  contentWrite(options: { lease?: string } = {}): ContentWriteCall {
    if (this.closed) throw new ContainerdError('cancelled', `containerd client of ${this.socketPath} is closed`);
    this.contentWrites ??= new ContentWriteChannel(this.socketPath, this.namespace);
    return this.contentWrites.call(options);
  }

  /** containerd's version; rejects (`unavailable`) when the socket does not answer within `timeoutMs`. */
  async version(timeoutMs = 5_000): Promise<{ version: string; revision: string }> {
    return this.unary('version', 'Version', {}, { timeoutMs });
  }

  /** Creates the client's namespace if it is missing. */
  async ensureNamespace(): Promise<void> {
    try {
      await this.unary('namespaces', 'Get', { name: this.namespace });
    } catch (error) {
      if (!isContainerdError(error, 'not-found')) throw error;
      try {
        await this.unary('namespaces', 'Create', { namespace: { name: this.namespace, labels: {} } });
      } catch (createError) {
        if (!isContainerdError(createError, 'already-exists')) throw createError;
      }
    }
  }

  /**
   * Runs `action` under a fresh lease that expires after `expireMs` if the
   * process dies before deleting it; the lease is deleted afterwards (what it
   * held stays if something else references it: an image, a snapshot chain).
   */
  async withLease<T>(action: (lease: string) => Promise<T>, expireMs = LEASE_EXPIRE_MS_DEFAULT): Promise<T> {
    const id = await this.createLease(expireMs);
    try {
      return await action(id);
    } finally {
      await this.unary('leases', 'Delete', { id, sync: false }).catch(() => undefined);
    }
  }

  /**
   * Creates a lease that containerd drops by itself `expireMs` after now if
   * no one deletes it; answers its id. Pair with `releaseLease`.
   */
  async createLease(expireMs = LEASE_EXPIRE_MS_DEFAULT): Promise<string> {
    const id = `hivemind-${process.pid}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
    const expire = new Date(Date.now() + expireMs).toISOString();
    await this.unary('leases', 'Create', { id, labels: { 'containerd.io/gc.expire': expire } });
    return id;
  }

  /**
   * Deletes a lease without waiting for the answer: what it held is
   * referenced by then (or meant to go), and a lost delete only leaves the
   * lease to its expiry.
   */
  releaseLease(id: string): void {
    this.unary('leases', 'Delete', { id, sync: false }).catch(() => undefined);
  }

  /** Closes every connection. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const client of this.clients.values()) client.close();
    this.clients.clear();
    this.contentWrites?.close();
  }
}
