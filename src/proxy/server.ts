/**
 * The proxy's HTTP/1.1 listener: requests go to the engine (`proxy.ts`);
 * WebSocket (and other) upgrades are passed through as a raw TCP tunnel to
 * one backend, after the handshake request is rewritten like any other.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { connect, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
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

/** Idle client connections close after this long (keep-alive between requests). */
export const CLIENT_KEEP_ALIVE_MS = 65_000;

export class ProxyServer {
  private readonly server: Server;
  private readonly tunnels = new Set<Socket | Duplex>();

  constructor(private readonly options: ProxyServerOptions) {
    this.server = createServer({ keepAlive: true, keepAliveTimeout: CLIENT_KEEP_ALIVE_MS, requestTimeout: 0 }, (request, response) => {
      void options.proxy.handle(request, response);
    });
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
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
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
    if (app.inFlight >= app.target.settings.maxConcurrent) return refuse(503, 'OVERLOADED', `hivemind proxy: ${app.target.key} is at its limit of ${app.target.settings.maxConcurrent} requests in flight through this node`, routed);
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
