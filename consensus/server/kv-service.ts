/**
 * The gRPC face of the key-value server: proto/kv.proto's `KV` service over a
 * `RaftNode` and its `KvStateMachine`, served by `UnaryGrpcServer`. Validates
 * every request, turns the node's typed errors into gRPC statuses with clear
 * messages, and forwards a Put that reaches a follower to the leader (one hop,
 * through a grpc-js client).
 */
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { Role, type NodeId } from '../core/types.js';
import {
  AbortedError,
  ConfigChangeError,
  EntryTooLargeError,
  LeadershipTransferError,
  NotLeaderError,
  OutcomeUnknownError,
  OverloadedError,
  ProposalLostError,
  RaftError,
  ReadRefusedError,
  StoppedError,
  TimeoutError,
} from '../errors.js';
import type { RaftNode, RequestOptions } from '../node.js';
import {
  encodePut,
  KEY_BYTES_MAX,
  REQUEST_ID_CHARS_MAX,
  VALUE_BYTES_MAX,
  type KvStateMachine,
  type PutResult,
} from './kv-state-machine.js';
import { GrpcStatusError as StatusError, type UnaryCall, type UnaryMethod } from './grpc-unary-server.js';
import { decodePutRequest, encodePutResponse } from './kv-put-codec.js';

/** proto/kv.proto, resolved from the compiled file (dist/consensus/server/) or the source. */
export const KV_PROTO_PATH = fileURLToPath(new URL('../../../proto/kv.proto', import.meta.url));

/** Metadata a forwarded Put carries (the forwarding node's id), so it is never forwarded twice. */
export const FORWARDED_BY_HEADER = 'x-hivemind-forwarded-by';

/** Largest page of `Dump`. */
export const DUMP_PAGE_MAX = 10_000;

/** Time limit of a request whose client set no deadline. */
const REQUEST_TIMEOUT_MS_DEFAULT = 10_000;

/** Requests and responses as proto-loader decodes them (keepCase, longs as numbers, defaults on). */
interface PutRequest {
  key: Uint8Array;
  value: Uint8Array;
  request_id: string;
}
interface PutResponse {
  index: number;
  term: number;
}
interface GetRequest {
  key: Uint8Array;
  stale: boolean;
}
interface DumpRequest {
  after_index: number;
  limit: number;
}

const loaderOptions: protoLoader.Options = { keepCase: true, longs: Number, defaults: true };

/** The KV service definition and its client constructor, loaded once. */
export function kvServiceDefinition(): grpc.ServiceClientConstructor {
  const definition = protoLoader.loadSync(KV_PROTO_PATH, loaderOptions);
  const root = grpc.loadPackageDefinition(definition) as unknown as { hivemind: { kv: { KV: grpc.ServiceClientConstructor } } };
  return root.hivemind.kv.KV;
}

/** What the service needs from the server. */
export interface KvServiceInit {
  node: RaftNode;
  stateMachine: KvStateMachine;
  /** Client addresses (`host:port`) of the members, by node id, for forwarding Puts to the leader. */
  clientAddresses: Record<NodeId, string>;
  /** How to reach member `id`'s client port when TLS is on (tls.ts); absent: plaintext. */
  forwardChannel?: (id: NodeId) => { credentials: grpc.ChannelCredentials; options: grpc.ChannelOptions };
  logger: (line: string) => void;
}

/** The handlers of `KV`, plus the clients it forwards through. */
export class KvService {
  private readonly Client = kvServiceDefinition();
  private readonly forwardClients = new Map<string, grpc.Client>();

  constructor(private readonly init: KvServiceInit) {}

  /** The methods to serve, with proto/kv.proto's codecs. */
  methods(): UnaryMethod[] {
    const handlers: Record<string, (call: UnaryCall<unknown>) => Promise<unknown>> = {
      Put: (call) => this.put(call as UnaryCall<PutRequest>),
      Get: (call) => this.get(call as UnaryCall<GetRequest>),
      Status: async () => this.status(),
      Dump: async (call) => this.dump((call as UnaryCall<DumpRequest>).request),
    };
    return Object.entries(this.Client.service).map(([name, method]) => {
      const handle = handlers[name];
      if (handle === undefined) throw new Error(`KvService: proto/kv.proto has a method "${name}" with no handler`);
      return {
        path: method.path,
        // Put, the method every write takes, decodes and encodes by hand (./kv-put-codec.ts).
        deserialize: name === 'Put' ? decodePutRequest : method.requestDeserialize,
        serialize: name === 'Put' ? (response: unknown) => encodePutResponse(response as PutResponse) : method.responseSerialize,
        handle: (call) => handle(call).catch((error: unknown) => Promise.reject(this.toStatus(error))),
      };
    });
  }

  /** Closes the forwarding clients. */
  close(): void {
    for (const client of this.forwardClients.values()) client.close();
    this.forwardClients.clear();
  }

  private async put(call: UnaryCall<PutRequest>): Promise<PutResponse> {
    const { key, value, request_id: requestId } = call.request;
    checkKey(key);
    if (value.length > VALUE_BYTES_MAX) {
      throw new StatusError(
        grpc.status.INVALID_ARGUMENT,
        `field "value" is ${value.length} bytes, over the limit of ${VALUE_BYTES_MAX} bytes (1 MiB); store a smaller value`,
      );
    }
    if (requestId.length > REQUEST_ID_CHARS_MAX) {
      throw new StatusError(
        grpc.status.INVALID_ARGUMENT,
        `field "request_id" is ${requestId.length} characters, over the limit of ${REQUEST_ID_CHARS_MAX}`,
      );
    }
    const forwardedBy = call.header(FORWARDED_BY_HEADER);
    const node = this.init.node;
    const status = node.status();
    if (forwardedBy === undefined && status.role !== Role.Leader && status.leader !== '' && status.leader !== node.id) {
      return this.forward(status.leader, call);
    }
    try {
      const proposed = await withRequestOptions(call, (options) => node.propose(encodePut({ key, value, requestId }), options));
      const result = proposed.result as PutResult;
      return { index: result.index, term: result.term };
    } catch (error) {
      if (error instanceof NotLeaderError && error.leader !== '' && forwardedBy === undefined) {
        return this.forward(error.leader, call);
      }
      if (error instanceof NotLeaderError && forwardedBy !== undefined) {
        throw new StatusError(
          grpc.status.UNAVAILABLE,
          `node "${node.id}" got a Put forwarded by "${String(forwardedBy)}" but is not the leader ` +
            `(leader: ${error.leader === '' ? 'unknown' : `"${error.leader}"`}); leadership changed meanwhile, retry`,
        );
      }
      throw error;
    }
  }

  /** Sends the Put to `leader`'s client address, once; its answer or error becomes ours. */
  private forward(leader: NodeId, call: UnaryCall<PutRequest>): Promise<PutResponse> {
    const address = this.init.clientAddresses[leader];
    if (address === undefined) {
      throw new StatusError(
        grpc.status.UNAVAILABLE,
        `this node is not the leader, and the leader "${leader}" has no known client address; send the Put to the leader`,
      );
    }
    const client = this.forwardClient(leader, address) as unknown as {
      Put(request: PutRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<PutResponse>): grpc.ClientUnaryCall;
    };
    const metadata = new grpc.Metadata();
    metadata.set(FORWARDED_BY_HEADER, this.init.node.id);
    const options: grpc.CallOptions = {
      deadline: Number.isFinite(call.deadlineMs) ? call.deadlineMs : Date.now() + REQUEST_TIMEOUT_MS_DEFAULT,
    };
    return new Promise((resolve, reject) => {
      const forwarded = client.Put(call.request, metadata, options, (error, response) => {
        stopWatching();
        if (error) reject(new StatusError(error.code, `forwarded to the leader "${leader}" at ${address}: ${error.details}`));
        else resolve(response!);
      });
      const stopWatching = call.onCancel(() => forwarded.cancel());
    });
  }

  private forwardClient(leader: NodeId, address: string): grpc.Client {
    const key = `${leader}@${address}`;
    let client = this.forwardClients.get(key);
    if (client === undefined) {
      const channel = this.init.forwardChannel?.(leader);
      client = new this.Client(address, channel?.credentials ?? grpc.credentials.createInsecure(), channel?.options ?? {});
      this.forwardClients.set(key, client);
    }
    return client;
  }

  private async get(call: UnaryCall<GetRequest>): Promise<unknown> {
    const { key, stale } = call.request;
    checkKey(key);
    const node = this.init.node;
    const index = stale ? node.status().applied : await withRequestOptions(call, (options) => node.read(options));
    const value = this.init.stateMachine.get(key);
    return { found: value !== undefined, value: value ?? new Uint8Array(0), index };
  }

  private status(): unknown {
    const status = this.init.node.status();
    return {
      id: status.id,
      term: status.term,
      leader: status.leader,
      role: status.role,
      commit: status.commit,
      applied: status.applied,
      voters: status.config.voters,
      learners: status.config.learners,
    };
  }

  private dump(request: DumpRequest): unknown {
    const limit = request.limit === 0 || request.limit > DUMP_PAGE_MAX ? DUMP_PAGE_MAX : request.limit;
    const page = this.init.stateMachine.dump(request.after_index, limit);
    return {
      puts: page.puts.map((put) => ({ index: put.index, key: put.key, value_hash: put.valueHash, request_id: put.requestId })),
      forgotten: page.forgotten,
      applied: this.init.node.status().applied,
      more: page.more,
    };
  }

  private toStatus(error: unknown): StatusError {
    if (error instanceof StatusError) return error;
    if (error instanceof RaftError) return new StatusError(grpcCode(error), `${error.code}: ${error.message}`);
    this.init.logger(`internal error serving a request: ${error instanceof Error ? error.stack : String(error)}`);
    return new StatusError(grpc.status.INTERNAL, `internal error: ${error instanceof Error ? error.message : String(error)}`);
  }
}

function checkKey(key: Uint8Array): void {
  if (key.length === 0) throw new StatusError(grpc.status.INVALID_ARGUMENT, 'field "key" is missing or empty; give a key of 1 to 4096 bytes');
  if (key.length > KEY_BYTES_MAX) {
    throw new StatusError(
      grpc.status.INVALID_ARGUMENT,
      `field "key" is ${key.length} bytes, over the limit of ${KEY_BYTES_MAX} bytes; use a shorter key`,
    );
  }
}

/**
 * Runs `body` with the call's deadline as its time limit. A client that
 * cancels is not passed on: a Put already proposed may still commit whatever
 * the client does, and the request is settled by its result or its deadline
 * anyway (the server drops the answer to a cancelled call). Watching for
 * cancellation cost an AbortController, an EventTarget listener and a stream
 * listener per call, on the path every client request takes.
 */
function withRequestOptions<T>(call: UnaryCall<unknown>, body: (options: RequestOptions) => Promise<T>): Promise<T> {
  const timeoutMs = Number.isFinite(call.deadlineMs) ? Math.max(1, call.deadlineMs - Date.now()) : REQUEST_TIMEOUT_MS_DEFAULT;
  return body({ timeoutMs });
}

function grpcCode(error: RaftError): grpc.status {
  if (error instanceof NotLeaderError) return grpc.status.UNAVAILABLE;
  if (error instanceof LeadershipTransferError) return grpc.status.UNAVAILABLE;
  if (error instanceof ReadRefusedError) return grpc.status.UNAVAILABLE;
  if (error instanceof StoppedError) return grpc.status.UNAVAILABLE;
  if (error instanceof ProposalLostError) return grpc.status.ABORTED;
  if (error instanceof OutcomeUnknownError) return grpc.status.UNKNOWN;
  if (error instanceof TimeoutError) return grpc.status.DEADLINE_EXCEEDED;
  if (error instanceof AbortedError) return grpc.status.CANCELLED;
  if (error instanceof OverloadedError) return grpc.status.RESOURCE_EXHAUSTED;
  if (error instanceof EntryTooLargeError) return grpc.status.INVALID_ARGUMENT;
  if (error instanceof ConfigChangeError) return grpc.status.FAILED_PRECONDITION;
  return grpc.status.INTERNAL;
}
