import http2 from 'node:http2';
import type { TLSSocket } from 'node:tls';
import { frameMessage } from '../consensus/server/grpc-unary-server.js';
import type { ClientTls } from './tls.js';

/** A failed call: `code` is the gRPC status code (4 deadline exceeded, 14 unavailable, ...). */
export class CallError extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

const statusDeadlineExceeded = 4;
const statusUnavailable = 14;

/**
 * A lean unary gRPC client over one HTTP/2 connection (node:http2), for the
 * load generator's hot path. grpc-js's client spends about 250 µs of CPU per
 * call on this machine against about 90 µs here; on 2 cores shared with the
 * servers that difference decided the measured throughput, so the load path
 * speaks the wire protocol directly: length-prefixed messages, `grpc-timeout`,
 * status in the trailers. Messages are encoded by the caller (from the
 * .proto, see rpc.ts). A broken connection is replaced on the next call.
 * With `tls` it speaks HTTP/2 over TLS, presenting the client certificate and
 * verifying the server's against the CA and `tls.serverName`.
 */
export class UnaryChannel {
  private session: http2.ClientHttp2Session | undefined;

  /** `address` is `host:port`; cleartext HTTP/2 without `tls`. */
  constructor(
    private readonly address: string,
    private readonly tls?: ClientTls,
  ) {}

  /** The TLS version and cipher of the open connection (`TLSv1.3 TLS_AES_256_GCM_SHA384`); undefined for cleartext or before it connects. */
  get tlsDescription(): string | undefined {
    const socket = this.session?.socket as TLSSocket | undefined;
    if (socket === undefined || typeof socket.getProtocol !== 'function') return undefined;
    const protocol = socket.getProtocol();
    const cipher = socket.getCipher();
    return protocol === null || cipher === undefined ? undefined : `${protocol} ${cipher.standardName ?? cipher.name}`;
  }

  /** Opens the connection; rejects if it cannot be made within `timeoutMs`. */
  connect(timeoutMs: number): Promise<void> {
    const session = this.liveSession();
    if (!session.connecting) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`cannot connect to ${this.address} within ${timeoutMs} ms`)), timeoutMs);
      session.once('connect', () => (clearTimeout(timer), resolve()));
      session.once('error', (error) => (clearTimeout(timer), reject(error)));
    });
  }

  /**
   * Calls `path` (`/package.Service/Method`) with an encoded request; resolves
   * with the encoded response, rejects with a CallError. Never takes longer
   * than `deadlineMs` (the server is told too, through `grpc-timeout`).
   */
  call(options: { path: string; request: Uint8Array; deadlineMs: number }): Promise<Buffer> {
    const { path, request, deadlineMs } = options;
    return new Promise((resolve, reject) => {
      let stream: http2.ClientHttp2Stream;
      try {
        stream = this.liveSession().request({
          ':method': 'POST',
          ':path': path,
          'content-type': 'application/grpc',
          te: 'trailers',
          'grpc-timeout': `${Math.max(1, Math.ceil(deadlineMs))}m`,
        });
      } catch (error) {
        this.dropSession();
        reject(new CallError(statusUnavailable, (error as Error).message));
        return;
      }
      collectResponse({ stream, deadlineMs, resolve, reject });
      stream.end(frameMessage(request));
    });
  }

  close(): void {
    this.session?.close();
    this.session = undefined;
  }

  private liveSession(): http2.ClientHttp2Session {
    if (this.session && !this.session.closed && !this.session.destroyed) return this.session;
    const session =
      this.tls === undefined
        ? http2.connect(`http://${this.address}`)
        : http2.connect(`https://${this.address}`, {
            ca: this.tls.caPem,
            key: this.tls.keyPem,
            cert: this.tls.certificatePem,
            servername: this.tls.serverName,
          });
    session.on('error', () => this.dropSession(session)); // each call then fails through its stream
    session.on('goaway', () => this.dropSession(session));
    session.on('close', () => this.dropSession(session));
    this.session = session;
    return session;
  }

  private dropSession(session = this.session): void {
    if (this.session === session) this.session = undefined;
  }
}

/** Reads one unary response from `stream`, settling exactly once. */
function collectResponse(context: {
  stream: http2.ClientHttp2Stream;
  deadlineMs: number;
  resolve: (response: Buffer) => void;
  reject: (error: CallError) => void;
}): void {
  const { stream, deadlineMs, resolve, reject } = context;
  const chunks: Buffer[] = [];
  let status: string | undefined;
  let statusMessage: string | undefined;
  let settled = false;
  const settle = (error: CallError | undefined): void => {
    if (settled) return;
    settled = true;
    clearTimeout(timer);
    if (error) reject(error);
    else resolve(unframe(Buffer.concat(chunks)));
  };
  const timer = setTimeout(() => {
    stream.close(http2.constants.NGHTTP2_CANCEL);
    settle(new CallError(statusDeadlineExceeded, `deadline of ${deadlineMs} ms exceeded`));
  }, deadlineMs);
  const readStatus = (headers: http2.IncomingHttpHeaders): void => {
    if (headers['grpc-status'] === undefined) return;
    status = String(headers['grpc-status']);
    statusMessage = headers['grpc-message'] === undefined ? undefined : decodeURIComponent(String(headers['grpc-message']));
  };
  stream.on('response', readStatus); // a trailers-only answer carries the status here
  stream.on('trailers', readStatus);
  stream.on('data', (chunk: Buffer) => chunks.push(chunk));
  stream.on('error', () => {}); // 'close' follows and reports it
  stream.on('close', () => {
    if (status === '0') settle(undefined);
    else if (status !== undefined) settle(new CallError(Number(status), statusMessage ?? `gRPC status ${status}`));
    else settle(new CallError(statusUnavailable, `stream closed without a status (HTTP/2 code ${stream.rstCode})`));
  });
}

function unframe(body: Buffer): Buffer {
  if (body.length < 5) return Buffer.alloc(0);
  return body.subarray(5, 5 + body.readUInt32BE(1));
}
