import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { fileURLToPath } from 'node:url';
import type { ClientTls } from './tls.js';

/** The repository root, from both `bench/*.ts` and its compiled `dist/bench/*.js`. */
export const repositoryRoot = fileURLToPath(
  new URL(import.meta.url.includes('/dist/bench/') ? '../../' : '../', import.meta.url),
);

/** A gRPC service named by its `.proto` file and fully qualified name (`etcdserverpb.KV`). */
export interface ServiceSpec {
  /** Path relative to the repository root. */
  protoPath: string;
  service: string;
}

const constructors = new Map<string, grpc.ServiceClientConstructor>();

function serviceConstructor(spec: ServiceSpec): grpc.ServiceClientConstructor {
  const cacheKey = `${spec.protoPath}#${spec.service}`;
  const cached = constructors.get(cacheKey);
  if (cached) return cached;
  const definition = protoLoader.loadSync(`${repositoryRoot}${spec.protoPath}`, {
    keepCase: true,
    longs: String, // uint64 member ids compare as decimal strings
    defaults: true,
  });
  let node: unknown = grpc.loadPackageDefinition(definition);
  for (const part of spec.service.split('.')) node = (node as Record<string, unknown>)[part];
  if (typeof node !== 'function') throw new Error(`service ${spec.service} is not in ${spec.protoPath}`);
  const constructor = node as grpc.ServiceClientConstructor;
  constructors.set(cacheKey, constructor);
  return constructor;
}

/**
 * A client of `spec` at `address` (`host:port`) on its own HTTP/2 connection:
 * grpc-js otherwise shares one connection among clients of the same target,
 * which would make "several channels" one channel. With `tls`: TLS with the
 * client certificate, the server's verified against the CA and `tls.serverName`.
 */
export function makeClient(spec: ServiceSpec, address: string, tls?: ClientTls): grpc.Client {
  const Constructor = serviceConstructor(spec);
  if (tls === undefined) return new Constructor(address, grpc.credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 });
  const credentials = grpc.credentials.createSsl(Buffer.from(tls.caPem), Buffer.from(tls.keyPem), Buffer.from(tls.certificatePem));
  return new Constructor(address, credentials, { 'grpc.use_local_subchannel_pool': 1, 'grpc.ssl_target_name_override': tls.serverName });
}

/** One unary call of `method` with a deadline; rejects with the gRPC error on failure. */
export function unaryCall<Response>(options: {
  client: grpc.Client;
  method: string;
  request: object;
  deadlineMs: number;
}): Promise<Response> {
  const { client, method, request, deadlineMs } = options;
  const call = (client as unknown as Record<string, Function>)[method];
  if (typeof call !== 'function') throw new Error(`no method ${method} on this client`);
  return new Promise((resolve, reject) => {
    call.call(client, request, { deadline: Date.now() + deadlineMs }, (error: grpc.ServiceError | null, response: Response) => {
      if (error) reject(error);
      else resolve(response);
    });
  });
}

/** One unary method's wire path and codecs, generated from the .proto by proto-loader. */
export interface UnaryMethod {
  /** `/package.Service/Method` */
  path: string;
  encodeRequest(request: object): Buffer;
  decodeResponse(response: Buffer): unknown;
}

/** The wire path and codecs of `method` of `spec`; throws when the .proto has no such method. */
export function unaryMethod(spec: ServiceSpec, method: string): UnaryMethod {
  const definition = serviceConstructor(spec).service[method];
  if (!definition) throw new Error(`${spec.service} in ${spec.protoPath} has no method ${method}`);
  return {
    path: definition.path,
    encodeRequest: (request) => definition.requestSerialize(request),
    decodeResponse: (response) => definition.responseDeserialize(response),
  };
}
