/**
 * A unary-only gRPC server over node:http2, for the key-value server's client
 * port. It speaks the gRPC wire protocol (HTTP/2, `application/grpc`,
 * length-prefixed messages, `grpc-timeout`, status and message in the
 * trailers), so any gRPC client talks to it; it serves unary methods only,
 * without compression, which is all proto/kv.proto has.
 *
 * Why not grpc-js's server, as the peer transport uses: every client request
 * pays for the server, and on this project's 2-core machines grpc-js's unary
 * path (interceptor chain, Metadata objects, stream decoder, per-call
 * listeners) cost about 117 µs of CPU per call against about 64 µs for the
 * same exchange on node:http2 alone. On the Raft leader, which answers every
 * client, that was the largest single cost per commit (bench/README.md).
 *
 * With `tls` it serves HTTP/2 over TLS (ALPN h2) instead of cleartext; a
 * connection whose handshake fails (no certificate where one is required, a
 * certificate of another CA) is closed by node:tls and logged, rate-limited.
 *
 * Limits: `requestBytesMax` per request message (RESOURCE_EXHAUSTED past it),
 * `streamsPerConnectionMax` concurrent calls per connection (HTTP/2
 * SETTINGS_MAX_CONCURRENT_STREAMS; a client queues beyond it). Nothing a
 * client sends throws out of this module: protocol errors end the call or the
 * connection, and are logged at most once per connection.
 */
import http2 from 'node:http2';
import { status as GrpcStatus } from '@grpc/grpc-js';
import { RateLimitedLog } from '../transport/context.js';
import { percentEncode } from '../transport/grpc-frames.js';

/** An error a handler throws to answer with a gRPC status other than INTERNAL. */
export class GrpcStatusError extends Error {
  constructor(
    readonly code: GrpcStatus,
    message: string,
  ) {
    super(message);
  }
}

/** One call, as a handler sees it. */
export interface UnaryCall<Request> {
  readonly request: Request;
  /** When the client stops waiting, in `Date.now()` milliseconds; Infinity if it set no deadline. */
  readonly deadlineMs: number;
  /** A request header (metadata) by lower-case name, or undefined. */
  header(name: string): string | undefined;
  /**
   * Calls `listener` once if the call ends before the handler answered (the
   * client cancelled or went away, or the deadline passed); returns a
   * function that removes it. Costs a listener, so only the handlers that pass
   * the cancellation on ask for it.
   */
  onCancel(listener: () => void): () => void;
}

/** One method: its path (`/package.Service/Method`), codecs and handler. */
export interface UnaryMethod {
  path: string;
  deserialize(bytes: Buffer): unknown;
  serialize(response: unknown): Buffer;
  /** Resolves with the response, or rejects (a GrpcStatusError, else INTERNAL). */
  handle(call: UnaryCall<unknown>): Promise<unknown>;
}

export interface UnaryGrpcServerOptions {
  methods: UnaryMethod[];
  /** Largest request message, in bytes. */
  requestBytesMax: number;
  /** Concurrent calls per connection. Default 1000. */
  streamsPerConnectionMax?: number;
  /** Key, certificate and client-certificate policy for HTTP/2 over TLS; absent: cleartext HTTP/2. */
  tls?: http2.SecureServerOptions;
  /** Gets errors no client is told about (a handler's unexpected failure, a broken connection). */
  logger: (line: string) => void;
}

const STREAMS_PER_CONNECTION_MAX_DEFAULT = 1000;
/** Length-prefixed message header: compressed flag (1 byte) and length (4 bytes, big-endian). */
const MESSAGE_HEADER_BYTES = 5;
/** grpc-timeout is at most 8 digits and a unit (gRPC over HTTP/2, "Requests"). */
const TIMEOUT_PATTERN = /^(\d{1,8})([HMSmun])$/;
const TIMEOUT_UNIT_MS: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 0.001, n: 0.000_001 };

const RESPONSE_HEADERS = Object.freeze({
  ':status': 200,
  'content-type': 'application/grpc',
  'grpc-accept-encoding': 'identity',
});
const OK_TRAILERS = Object.freeze({ 'grpc-status': '0' });

/** See the file comment. `listen` once, then `close`. */
export class UnaryGrpcServer {
  private readonly methods = new Map<string, UnaryMethod>();
  private readonly server: http2.Http2Server | http2.Http2SecureServer;
  private readonly sessions = new Set<http2.ServerHttp2Session>();
  private readonly requestBytesMax: number;
  private readonly logger: (line: string) => void;

  constructor(options: UnaryGrpcServerOptions) {
    for (const method of options.methods) this.methods.set(method.path, method);
    this.requestBytesMax = options.requestBytesMax;
    this.logger = options.logger;
    const settings = { maxConcurrentStreams: options.streamsPerConnectionMax ?? STREAMS_PER_CONNECTION_MAX_DEFAULT };
    if (options.tls === undefined) {
      this.server = http2.createServer({ settings });
    } else {
      const server = http2.createSecureServer({ ...options.tls, settings, allowHTTP1: false });
      const handshakeLog = new RateLimitedLog(options.logger);
      server.on('tlsClientError', (error, socket) =>
        handshakeLog.line('tls-client-error', `client connection from ${socket.remoteAddress ?? 'unknown'} refused in the TLS handshake: ${error.message}`),
      );
      this.server = server;
    }
    this.server.on('session', (session: http2.ServerHttp2Session) => this.track(session));
    this.server.on('stream', (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => this.serve(stream, headers));
  }

  /** Listens on `host:port` (port 0: any free port); resolves with the bound `host:port`. */
  listen(address: string): Promise<string> {
    const colon = address.lastIndexOf(':');
    const host = address.slice(0, colon).replace(/^\[(.*)\]$/, '$1');
    const port = Number(address.slice(colon + 1));
    if (colon <= 0 || !Number.isInteger(port) || port < 0 || port > 65_535) {
      return Promise.reject(new Error(`cannot listen for clients on "${address}": give host:port`));
    }
    return new Promise((resolve, reject) => {
      const failed = (error: Error): void => reject(new Error(`cannot listen for clients on "${address}": ${error.message}`));
      this.server.once('error', failed);
      this.server.listen(port, host, () => {
        this.server.off('error', failed);
        this.server.on('error', (error) => this.logger(`client server: ${error.message}`));
        const bound = this.server.address();
        resolve(typeof bound === 'object' && bound !== null ? `${address.slice(0, colon)}:${bound.port}` : address);
      });
    });
  }

  /**
   * Stops accepting connections and lets calls in flight finish (each
   * connection gets a GOAWAY); after `graceMs` destroys what is left.
   */
  close(graceMs: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        for (const session of this.sessions) session.destroy();
      }, graceMs);
      this.server.close(() => {
        clearTimeout(timer);
        resolve();
      });
      for (const session of this.sessions) session.close();
    });
  }

  private track(session: http2.ServerHttp2Session): void {
    this.sessions.add(session);
    session.on('close', () => this.sessions.delete(session));
    // A connection that breaks or speaks something else than HTTP/2: it closes; nothing more to do.
    session.on('error', (error) => this.logger(`client connection: ${error.message}`));
  }

  private serve(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): void {
    stream.on('error', ignore); // a reset by the client; 'close' follows
    const contentType = headers['content-type'];
    if (headers[':method'] !== 'POST' || typeof contentType !== 'string' || !contentType.startsWith('application/grpc')) {
      // Not a gRPC request: answer in HTTP terms (gRPC over HTTP/2: 415 for a wrong content type).
      respondHttpError(stream, headers[':method'] !== 'POST' ? 405 : 415);
      return;
    }
    const method = this.methods.get(String(headers[':path']));
    if (method === undefined) {
      finishWithStatus(stream, GrpcStatus.UNIMPLEMENTED, `unknown method "${String(headers[':path'])}"; this server serves ${[...this.methods.keys()].join(', ')}`);
      return;
    }
    const deadline = parseDeadline(headers['grpc-timeout']);
    if (deadline === undefined) {
      finishWithStatus(stream, GrpcStatus.INVALID_ARGUMENT, `header "grpc-timeout" is "${String(headers['grpc-timeout'])}"; give at most 8 digits and a unit (H, M, S, m, u, n)`);
      return;
    }
    // From the headers on: a client that never finishes its request is answered at its deadline too.
    const timer =
      deadline === Infinity
        ? undefined
        : setTimeout(() => finishWithStatus(stream, GrpcStatus.DEADLINE_EXCEEDED, `deadline exceeded while serving ${method.path}`), deadline - Date.now());
    this.readRequest(stream, (error, message) => {
      if (error !== undefined) {
        clearTimeout(timer);
        finishWithStatus(stream, error.code, error.message);
        return;
      }
      this.call({ stream, headers, method, deadline, timer, message: message! });
    });
  }

  /** Collects the one request message; calls back once, unless the stream closes first. */
  private readRequest(stream: http2.ServerHttp2Stream, done: (error: GrpcStatusError | undefined, message?: Buffer) => void): void {
    let first: Buffer | undefined;
    let rest: Buffer[] | undefined;
    let bytes = 0;
    let failed = false;
    stream.on('data', (chunk: Buffer) => {
      if (failed) return;
      bytes += chunk.length;
      if (first === undefined) first = chunk;
      else (rest ??= []).push(chunk);
      if (bytes > MESSAGE_HEADER_BYTES + this.requestBytesMax) {
        failed = true;
        done(new GrpcStatusError(GrpcStatus.RESOURCE_EXHAUSTED, `request message is over the limit of ${this.requestBytesMax} bytes`));
      }
    });
    stream.once('end', () => {
      if (failed) return;
      const body = rest === undefined ? first : Buffer.concat([first!, ...rest]);
      const parsed = parseUnaryBody(body, this.requestBytesMax);
      if (parsed instanceof GrpcStatusError) done(parsed);
      else done(undefined, parsed);
    });
  }

  private call(context: {
    stream: http2.ServerHttp2Stream;
    headers: http2.IncomingHttpHeaders;
    method: UnaryMethod;
    deadline: number;
    /** Answers DEADLINE_EXCEEDED at the deadline; cleared once the handler answers. */
    timer: NodeJS.Timeout | undefined;
    message: Buffer;
  }): void {
    const { stream, headers, method, deadline, timer, message } = context;
    let request: unknown;
    try {
      request = method.deserialize(message);
    } catch (error) {
      clearTimeout(timer);
      finishWithStatus(stream, GrpcStatus.INTERNAL, `cannot decode the request of ${method.path}: ${(error as Error).message}`);
      return;
    }
    let answered = false;
    const call: UnaryCall<unknown> = {
      request,
      deadlineMs: deadline,
      header: (name) => {
        const value = headers[name];
        return value === undefined ? undefined : String(value);
      },
      onCancel: (listener) => {
        const closed = (): void => {
          if (!answered) listener();
        };
        stream.once('close', closed);
        return () => stream.off('close', closed);
      },
    };
    let answer: Promise<unknown>;
    try {
      answer = method.handle(call);
    } catch (error) {
      answer = Promise.reject(error);
    }
    answer.then(
      (response) => {
        clearTimeout(timer);
        answered = true;
        this.respond(stream, method, response);
      },
      (error: unknown) => {
        clearTimeout(timer);
        answered = true;
        if (error instanceof GrpcStatusError) {
          finishWithStatus(stream, error.code, error.message);
        } else {
          this.logger(`internal error serving ${method.path}: ${error instanceof Error ? error.stack : String(error)}`);
          finishWithStatus(stream, GrpcStatus.INTERNAL, `internal error: ${error instanceof Error ? error.message : String(error)}`);
        }
      },
    );
  }

  private respond(stream: http2.ServerHttp2Stream, method: UnaryMethod, response: unknown): void {
    if (stream.headersSent || stream.closed || stream.destroyed) return; // cancelled, or the deadline answered
    let encoded: Buffer;
    try {
      encoded = method.serialize(response);
    } catch (error) {
      this.logger(`internal error encoding the answer of ${method.path}: ${(error as Error).message}`);
      finishWithStatus(stream, GrpcStatus.INTERNAL, `internal error: cannot encode the answer`);
      return;
    }
    const framed = frameMessage(encoded);
    try {
      stream.respond(RESPONSE_HEADERS, { waitForTrailers: true });
      stream.once('wantTrailers', () => stream.sendTrailers(OK_TRAILERS));
      stream.end(framed);
    } catch {
      // The connection went away between the check and the write: nobody is left to answer.
    }
  }
}

function ignore(): void {}

/** A gRPC length-prefixed message: flag 0 (not compressed), 4-byte big-endian length, the bytes. */
export function frameMessage(message: Uint8Array): Buffer {
  const framed = Buffer.allocUnsafe(MESSAGE_HEADER_BYTES + message.length);
  framed[0] = 0;
  framed.writeUInt32BE(message.length, 1);
  framed.set(message, MESSAGE_HEADER_BYTES);
  return framed;
}

/** The absolute deadline for a `grpc-timeout` header: Infinity without one, undefined if malformed. */
export function parseDeadline(header: string | string[] | undefined): number | undefined {
  if (header === undefined) return Infinity;
  const match = typeof header === 'string' ? TIMEOUT_PATTERN.exec(header) : null;
  if (match === null) return undefined;
  return Date.now() + Math.max(1, Math.ceil(Number(match[1]) * TIMEOUT_UNIT_MS[match[2]!]!));
}

/** The message of a unary request body, or the status to answer with. */
export function parseUnaryBody(body: Buffer | undefined, requestBytesMax: number): Buffer | GrpcStatusError {
  if (body === undefined || body.length < MESSAGE_HEADER_BYTES) {
    return new GrpcStatusError(GrpcStatus.INTERNAL, 'the request has no complete message; a unary call sends exactly one');
  }
  if (body[0] !== 0) {
    return new GrpcStatusError(GrpcStatus.UNIMPLEMENTED, 'the request message is compressed; this server accepts identity encoding only');
  }
  const length = body.readUInt32BE(1);
  if (length > requestBytesMax) {
    return new GrpcStatusError(GrpcStatus.RESOURCE_EXHAUSTED, `request message is ${length} bytes, over the limit of ${requestBytesMax} bytes`);
  }
  if (body.length !== MESSAGE_HEADER_BYTES + length) {
    return new GrpcStatusError(
      GrpcStatus.INTERNAL,
      body.length < MESSAGE_HEADER_BYTES + length
        ? `the request message is cut short (${body.length - MESSAGE_HEADER_BYTES} of ${length} bytes)`
        : 'the request has more than one message; a unary call sends exactly one',
    );
  }
  return body.subarray(MESSAGE_HEADER_BYTES);
}

/** Ends the call with a status and no message (a trailers-only answer), if it is not answered yet. */
function finishWithStatus(stream: http2.ServerHttp2Stream, code: GrpcStatus, message: string): void {
  endEarly(stream, { ...RESPONSE_HEADERS, 'grpc-status': String(code), 'grpc-message': percentEncode(message) });
}

function respondHttpError(stream: http2.ServerHttp2Stream, httpStatus: number): void {
  endEarly(stream, { ':status': httpStatus });
}

/** Answers with headers only, if the call is not answered yet. */
function endEarly(stream: http2.ServerHttp2Stream, headers: http2.OutgoingHttpHeaders): void {
  if (stream.headersSent || stream.closed || stream.destroyed) return;
  try {
    stream.respond(headers, { endStream: true });
    // A client still sending its request gets the answer first, then the rest of its stream is refused.
    if (!stream.readableEnded) stream.close(http2.constants.NGHTTP2_NO_ERROR);
  } catch {
    // The connection went away between the check and the write: nobody is left to answer.
  }
}
