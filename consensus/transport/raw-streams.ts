/**
 * HTTP/2 streams of the peer port handled outside grpc-js: a method whose
 * path has a raw handler never reaches grpc-js's server; every other stream
 * does, as before. The TLS listener, its certificates (and their renewal)
 * and the connection stay grpc-js's: only the dispatch of a stream by its
 * `:path` changes.
 *
 * Why: grpc-js copies every message it sends into a fresh buffer of the
 * message's size; a method that streams megabytes (the images service's blob
 * Read) writes its own gRPC framing into reused buffers instead.
 *
 * How: grpc-js makes each listening HTTP/2 server in its (private)
 * `createHttp2Server` and listens for its 'stream' events there; the
 * server's method is wrapped, before binding, to put a router in front of
 * grpc-js's listener. `routeRawStreams` answers a check that the wrapper
 * ran, which the caller asserts after binding: a grpc-js that no longer
 * makes its servers that way fails loudly (the transport's tests), instead
 * of leaving the raw methods unanswered.
 */
import { TLSSocket } from 'node:tls';
import type * as http2 from 'node:http2';
import type * as grpc from '@grpc/grpc-js';
import type { PeerCall, RawStreamHandler } from './options.js';

interface Http2ServerMaker {
  createHttp2Server?: (this: grpc.Server, ...parameters: unknown[]) => http2.Http2Server;
}

/**
 * What grpc-js's server calls answer for `getAuthContext`, for a raw
 * stream: the peer certificate only when TLS verified it (the socket is
 * `authorized`), nothing on a plaintext connection.
 */
export function peerCallOfStream(stream: http2.ServerHttp2Stream): PeerCall {
  return {
    getPeer: () => {
      const socket = stream.session?.socket;
      return socket === undefined ? 'unknown' : `${socket.remoteAddress ?? 'unknown'}:${socket.remotePort ?? 0}`;
    },
    getAuthContext: () => {
      const socket = stream.session?.socket;
      if (!(socket instanceof TLSSocket) || !socket.authorized) return {};
      const certificate = socket.getPeerCertificate();
      return { transportSecurityType: 'ssl', sslPeerCertificate: certificate.raw !== undefined ? certificate : undefined };
    },
  };
}

/**
 * Routes the streams of `routes`' paths of every server `server` binds from
 * now on to their handlers (see the file comment). Call before `bindAsync`;
 * the answer says whether a bound server got the router (assert it after
 * the bind).
 */
export function routeRawStreams(server: grpc.Server, routes: ReadonlyMap<string, RawStreamHandler>): () => boolean {
  let routed = false;
  const maker = server as unknown as Http2ServerMaker;
  const create = maker.createHttp2Server;
  if (typeof create !== 'function') return () => false;
  maker.createHttp2Server = function (this: grpc.Server, ...parameters: unknown[]): http2.Http2Server {
    const http2Server = create.apply(this, parameters);
    const listeners = http2Server.listeners('stream') as Array<(...event: unknown[]) => void>;
    if (listeners.length !== 1) return http2Server;
    const [grpcListener] = listeners as [(...event: unknown[]) => void];
    http2Server.removeListener('stream', grpcListener);
    http2Server.on('stream', (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, ...rest: unknown[]) => {
      const path = headers[':path'];
      const handler = path === undefined ? undefined : routes.get(path);
      if (handler === undefined) grpcListener.call(http2Server, stream, headers, ...rest);
      else handler(stream, headers, peerCallOfStream(stream));
    });
    routed = true;
    return http2Server;
  };
  return () => routed;
}
