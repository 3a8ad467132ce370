/**
 * The proxy's listener: HTTP/1.1 and HTTP/2 with prior knowledge (h2c) on
 * the same port. A connection's first bytes decide: the HTTP/2 connection
 * preface goes to a node:http2 server, anything else to the HTTP/1.1 one;
 * both hand requests to the engine (`proxy.ts`). WebSocket (and other)
 * upgrades, HTTP/1.1 only, are passed through as a raw TCP tunnel to one
 * backend, after the handshake request is rewritten like any other.
 *
 * No TLS, so no ALPN: HTTP/2 clients must know the port speaks it (curl
 * `--http2-prior-knowledge`, gRPC's plaintext channels). The h2c upgrade
 * from HTTP/1.1 (`Upgrade: h2c`) is not offered; such a request is passed
 * through like any other upgrade.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { createServer as createHttp2Server, type Http2Server, type Http2Session } from 'node:http2';
import { connect, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { assert } from '../../consensus/core/assert.js';
import { PROXY_ERROR_HEADER } from './errors.js';
import { upstreamRequestHeaders } from './headers.js';
import type { ReverseProxy, RequestRecord } from './proxy.js';

export interface ProxyServerOptions {
  host: string;
  port: number;
  proxy: ReverseProxy;
  /** For upgrades, which the engine does not see: one record per upgrade when its tunnel closes. */
  onRequest?: (record: RequestRecord) => void;
  nowMs: () => number;
}

/** Idle client connections close after this long (keep-alive between requests; an HTTP/2 session without streams). */
export const CLIENT_KEEP_ALIVE_MS = 65_000;

/** What every HTTP/2 connection starts with (RFC 9113 3.4). */
export const HTTP2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

/** Which server a connection whose first bytes are `seen` goes to; undefined: too few bytes to tell yet. */
export function protocolOf(seen: Buffer): 'http2' | 'http1' | undefined {
  const length = Math.min(seen.length, HTTP2_PREFACE.length);
  if (!seen.subarray(0, length).equals(HTTP2_PREFACE.subarray(0, length))) return 'http1';
  return seen.length >= HTTP2_PREFACE.length ? 'http2' : undefined;
}

export class ProxyServer {
  private readonly server: Server;
  private readonly http2: Http2Server;
  private readonly sessions = new Set<Http2Session>();
  /** Connections whose protocol is not known yet. */
  private readonly pending = new Set<Socket>();
  private readonly tunnels = new Set<Socket | Duplex>();

  constructor(private readonly options: ProxyServerOptions) {
    this.server = createServer({ keepAlive: true, keepAliveTimeout: CLIENT_KEEP_ALIVE_MS, requestTimeout: 0 }, (request, response) => {
      options.proxy.handle(request, response);
    });
    this.http2 = createHttp2Server({}, (request, response) => {
      options.proxy.handle(request, response);
    });
    this.http2.on('session', (session: Http2Session) => {
      this.sessions.add(session);
      session.setTimeout(CLIENT_KEEP_ALIVE_MS, () => session.close());
      session.once('close', () => this.sessions.delete(session));
      session.on('error', () => {});
    });
    // The HTTP/1.1 server owns the port (and its connection tracking); its own
    // connection handler runs only for connections that are not HTTP/2.
    const listeners = this.server.listeners('connection');
    assert(listeners.length === 1, `the HTTP/1.1 server has ${listeners.length} connection listeners, not its own one`);
    const http1Connection = listeners[0] as (socket: Socket) => void;
    this.server.removeAllListeners('connection');
    this.server.on('connection', (socket: Socket) => this.dispatch(socket, http1Connection));
    this.server.on('upgrade', (request: IncomingMessage, socket: Duplex, head: Buffer) => this.upgrade(request, socket, head));
    this.server.on('clientError', (_error, socket) => {
      if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
      else socket.destroy();
    });
  }

  /** Binds; resolves with the bound port. */
  listen(): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.options.port, this.options.host, () => {
        this.server.off('error', reject);
        resolve((this.server.address() as { port: number }).port);
      });
    });
  }

  async close(): Promise<void> {
    for (const tunnel of this.tunnels) tunnel.destroy();
    for (const session of this.sessions) session.destroy();
    for (const socket of this.pending) socket.destroy();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  /** Reads a connection's first bytes, puts them back, and hands the socket to the server of its protocol. */
  private dispatch(socket: Socket, http1Connection: (socket: Socket) => void): void {
    let seen: Buffer | undefined;
    const idle = (): void => void socket.destroy();
    const failed = (): void => void socket.destroy();
    const onData = (chunk: Buffer): void => {
      seen = seen === undefined ? chunk : Buffer.concat([seen, chunk]);
      const protocol = protocolOf(seen);
      if (protocol === undefined) return;
      socket.off('data', onData);
      socket.off('timeout', idle);
      socket.off('error', failed);
      socket.off('close', forget);
      this.pending.delete(socket);
      socket.setTimeout(0);
      socket.pause();
      socket.unshift(seen);
      if (protocol === 'http1') {
        http1Connection.call(this.server, socket);
        socket.resume();
      } else {
        // The HTTP/2 session reads what is buffered on the socket itself; resuming here would drop it.
        this.http2.emit('connection', socket);
      }
    };
    const forget = (): void => void this.pending.delete(socket);
    this.pending.add(socket);
    socket.on('close', forget);
    socket.on('data', onData);
    socket.on('error', failed);
    socket.setTimeout(CLIENT_KEEP_ALIVE_MS);
    socket.on('timeout', idle);
  }

  private upgrade(request: IncomingMessage, client: Duplex, head: Buffer): void {
    const startedMs = this.options.nowMs();
    const proxy = this.options.proxy;
    const host = request.headers.host ?? '';
    const path = request.url ?? '/';
    const record = (status: number, extra: Partial<RequestRecord>): void =>
      this.options.onRequest?.({ method: request.method ?? 'GET', host, path, client: request.socket.remoteAddress ?? '', status, durationMs: this.options.nowMs() - startedMs, attempts: 1, ...extra });
    const refuse = (status: number, code: string, message: string, extra: Partial<RequestRecord> = {}): void => {
      client.end(`HTTP/1.1 ${status} ${status === 404 ? 'Not Found' : status === 502 ? 'Bad Gateway' : 'Service Unavailable'}\r\ncontent-type: text/plain; charset=utf-8\r\n${PROXY_ERROR_HEADER}: ${code}\r\ncontent-length: ${Buffer.byteLength(message) + 1}\r\nconnection: close\r\n\r\n${message}\n`);
      record(status, { ...extra, error: code, attempts: 0 });
    };
    const match = proxy.routes().lookup(host, path);
    if (match === undefined) return refuse(404, 'NO_ROUTE', `hivemind proxy: no app serves host "${host}"`);
    const app = proxy.appOf(match.target.key)!;
    const routed = { app: match.target.key, route: match.route };
    if (app.inFlight >= proxy.concurrentMax(app)) return refuse(503, 'OVERLOADED', `hivemind proxy: ${app.target.key} is at its limit of ${app.target.settings.maxConcurrent} requests in flight through this node`, routed);
    const backend = proxy.chooseFor(app, request);
    if (backend === undefined) return refuse(503, 'NO_INSTANCE', `hivemind proxy: ${app.target.key} has no available instance`, routed);
    const headers = upstreamRequestHeaders(request.rawHeaders, { clientAddress: request.socket.remoteAddress ?? '', protocol: 'http' }, true);
    let head0 = `${request.method} ${path} HTTP/1.1\r\n`;
    for (let index = 0; index < headers.length; index += 2) head0 += `${headers[index]}: ${headers[index + 1]}\r\n`;
    const upstream = connect({ host: backend.target.address, port: backend.target.port, timeout: app.target.settings.connectTimeoutMs });
    this.tunnels.add(upstream).add(client);
    app.inFlight++;
    backend.inFlight++;
    let connected = false;
    let ended = false;
    const end = (status: number, error?: string): void => {
      if (ended) return;
      ended = true;
      app.inFlight--;
      backend.inFlight--;
      this.tunnels.delete(upstream);
      this.tunnels.delete(client);
      upstream.destroy();
      client.destroy();
      record(status, { ...routed, instance: backend.target.instance, ...(error ? { error } : {}) });
    };
    upstream.once('connect', () => {
      connected = true;
      upstream.setTimeout(0);
      backend.breaker.recordSuccess();
      upstream.write(head0 + '\r\n');
      if (head.length > 0) upstream.write(head);
      upstream.pipe(client);
      client.pipe(upstream);
    });
    upstream.once('timeout', () => upstream.destroy(new Error('connect timed out')));
    upstream.once('error', (error) => {
      if (!connected) {
        backend.breaker.recordFailure(this.options.nowMs());
        if (!ended) {
          ended = true;
          app.inFlight--;
          backend.inFlight--;
          this.tunnels.delete(upstream);
          this.tunnels.delete(client);
          refuse(502, 'UPSTREAM_UNREACHABLE', `hivemind proxy: cannot reach ${backend.target.instance} at ${backend.target.authority}: ${error.message}`, { ...routed, instance: backend.target.instance });
        }
        return;
      }
      end(101);
    });
    upstream.once('close', () => end(101));
    client.once('error', () => end(101));
    client.once('close', () => end(101));
  }
}
