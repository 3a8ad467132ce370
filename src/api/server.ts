/**
 * The HTTP/JSON API server (docs/api.md), on every node.
 *
 * A request goes: route (404 / 405) → token (401) → body: size (413), media
 * type (415), JSON (400) → handler. Reads confirm the read index with the
 * leader unless `?stale=true`, then wait for `?index` if asked. Writes are
 * checked against the state and proposed on the leader; a follower forwards
 * the request to the leader's API once (a forwarded request is never
 * forwarded again, except after the leader handed leadership away for a
 * leave). While no leader is known, a write waits for one up to the request
 * deadline, retrying under the same request id, so a retry applies once.
 *
 * Nothing a client sends can stop the node: every handler error becomes a
 * JSON error; an unexpected one is a 500 `internal` and a log line (the stack
 * stays in the log).
 *
 * Tracing (docs/internals/tracing.md): each request is a span (`METHOD
 * route`, a child of the caller's `traceparent` header when it sent one), and
 * a forward to the leader a child span that sends its own `traceparent`.
 *
 * The API speaks HTTPS with the node's certificate (src/api/tls.ts). It
 * listens before the node has its certificate (a joiner gets one only once
 * admitted): until then every handshake fails. New material (a join, a
 * renewal, a CA change) is served from the next handshake on. Plain HTTP
 * only with `insecure` (`--insecure-api`).
 */
import { createHash, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { assert } from '../../consensus/core/assert.js';
import type { NodeCredentials } from '../security/node-credentials.js';
import { bareToken } from '../security/pinned-token.js';
import { hashToken, tokenMatches } from '../state/secrets.js';
import type { Command, CommandResult, Envelope } from '../state/types.js';
import { validateCommand } from '../state/validate.js';
import type { ApiBackend } from './backend.js';
import { ApiCode, ApiError, fromRaftError, fromStateError, invalidArgument, isRetryable } from './errors.js';
import { READ_QUERY, bodyObject, checkQuery, queryBoolean, queryDuration, queryInteger } from './input.js';
import { ANONYMOUS, allows, allowsCluster, needText, principalText, roleFor, tokenPrincipal, type Access, type Permission, type Principal } from './access.js';
import type { AuditLog } from './audit.js';
import { routes } from './routes.js';
import { AppFileParserPool } from './app-file-worker.js';
import { API_TOKEN_PREFIX } from './routes-tokens.js';
import { Router, type Answer, type Route, type RouteContext, type UploadRoute } from './router.js';
import { PeerApiClient } from './peer-api-client.js';
import { serverTlsOptions } from './server-tls.js';
import { isUiPath, UI_PATH, UiServer } from '../ui/index.js';
import { contextOf, inSpan, SpanKind, TRACEPARENT_KEY, traceparentOf, type Span } from '../node/tracing.js';

/** Largest request body. */
export const BODY_BYTES_MAX = 4 * 1024 * 1024;
/** A body larger than this is not even drained: the connection is closed. */
const DRAIN_BYTES_MAX = 64 * 1024 * 1024;
/** The longest a request's body may take to come, from the request's start (an image upload's included); an exec session's has none. */
const REQUEST_MS_MAX = 6 * 60 * 1000;
/** Time a write or a linearizable read may take, forwarding and waiting for a leader included. */
export const REQUEST_DEADLINE_MS_DEFAULT = 10_000;
/** Blocking queries wait at most this long. */
export const WAIT_MS_MAX = 5 * 60 * 1000;
/** A blocking query's wait when `wait` is not given. */
export const WAIT_MS_DEFAULT = 30_000;
const RETRY_DELAY_MS = 50;
const IDEMPOTENCY_KEY_PATTERN = /^[\x20-\x7e]{1,128}$/;
/** Hex digits of an Idempotency-Key's scope (the caller and the key) and of the request's fingerprint in its request id. */
const IDEMPOTENCY_SCOPE_HEX = 32;
const IDEMPOTENCY_FINGERPRINT_HEX = 16;

/** Between nodes: how many times the request was forwarded. */
export const FORWARDED_HEADER = 'x-hivemind-forwarded';
/** Between nodes: the request id the first node gave a write. */
export const REQUEST_ID_HEADER = 'x-hivemind-request-id';
/** On every answer: the state index it reflects. */
export const INDEX_HEADER = 'X-Hivemind-Index';

/** Where the server listens and what it serves. */
export interface ApiServerOptions {
  backend: ApiBackend;
  host: string;
  /** 0 picks a free port (read `address` after `start`). */
  port: number;
  requestDeadlineMs?: number;
  /** Serve GET /metrics without a token (`--metrics-public`). Default false. */
  metricsPublic?: boolean;
  /** The node's TLS material, served and followed (required unless `insecure`); also what calls to other nodes' APIs trust. */
  credentials?: NodeCredentials;
  /** Serve plain HTTP (`--insecure-api`), and call other nodes' APIs so. Default false. */
  insecure?: boolean;
  /** Where mutating and refused requests are recorded (absent: not recorded). */
  audit?: AuditLog;
}

/** What the audit log learns of a request as it goes. */
interface RequestNote {
  principal: Principal | undefined;
  /** The tenant the request touched, when one was checked. */
  tenant: string | undefined;
  forwardedHops: number;
}

/** A request in progress, as the pipeline sees it. */
interface RequestState {
  request: IncomingMessage;
  method: string;
  url: URL;
  headers: IncomingMessage['headers'];
  rawBody: Buffer;
  forwardedHops: number;
  requestId: string;
  signal: AbortSignal;
  /** How many times this request committed so far (a deploy creates its volumes first, then its apps). */
  commitCalls?: number;
}

/** The HTTP server. `start` once, `stop` once; `ready` opens it to requests. */
export class ApiServer {
  private readonly backend: ApiBackend;
  private readonly router = new Router(routes);
  private readonly requestDeadlineMs: number;
  private readonly server: Server | HttpsServer;
  private readonly sockets = new Set<Socket>();
  /** Calls to other nodes' APIs (forwarded writes, logs). */
  /** Reads app files on a worker thread (app-file-worker.ts). */
  private readonly appFiles = new AppFileParserPool();
  /** The web UI's files under /ui (src/ui): public, like the page of any login; the data comes from the routes, with a token. */
  private readonly ui = new UiServer();
  private readonly peers: PeerApiClient;
  private stopFollowingCredentials: (() => void) | undefined;
  private boundAddress: string | undefined;
  /** Until set, every route but health and metrics answers 503 (the node is starting). */
  ready = false;

  constructor(private readonly options: ApiServerOptions) {
    this.backend = options.backend;
    this.requestDeadlineMs = options.requestDeadlineMs ?? REQUEST_DEADLINE_MS_DEFAULT;
    const insecure = options.insecure === true;
    assert(insecure || options.credentials !== undefined, 'an HTTPS API needs the node\'s credentials');
    this.peers = new PeerApiClient({ credentials: options.credentials, insecure, agentOptions: { keepAliveTimeout: 10_000, connections: 64 } });
    // Node's requestTimeout would cut an exec session (its body is the command's input) at the deadline: the deadline is ours (watchBodyDeadline).
    const serverOptions = { requestTimeout: 0, headersTimeout: 30_000, keepAliveTimeout: 5000 };
    const handler = (request: IncomingMessage, response: ServerResponse): void => void this.handle(request, response);
    if (insecure) {
      this.server = createServer(serverOptions, handler);
    } else {
      const credentials = options.credentials!;
      const current = credentials.current;
      // Without material yet, the server has no certificate: handshakes fail until `update` brings one.
      const https = createHttpsServer({ ...serverOptions, ...(current === undefined ? {} : serverTlsOptions(current)) }, handler);
      this.stopFollowingCredentials = credentials.onUpdate((material) => https.setSecureContext(serverTlsOptions(material)));
      this.server = https;
    }
    this.server.on('connection', (socket: Socket) => {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
    });
    // Requests too broken to route (bad request line, headers over Node's limit): a bare 4xx, the connection closed.
    this.server.on('clientError', (error: NodeJS.ErrnoException, socket) => {
      const status = error.code === 'HPE_HEADER_OVERFLOW' ? '431 Request Header Fields Too Large' : '400 Bad Request';
      if (socket.writable) socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
      else socket.destroy(error);
    });
  }

  /** Whether the API is served over plain HTTP (`--insecure-api`). */
  get insecure(): boolean {
    return this.options.insecure === true;
  }

  /** `https` or `http` (`--insecure-api`). */
  get scheme(): 'http' | 'https' {
    return this.peers.scheme;
  }

  /** `host:port` actually bound. */
  get address(): string {
    if (this.boundAddress === undefined) throw new Error('ApiServer.address read before start()');
    return this.boundAddress;
  }

  /** Listens. Rejects when the address cannot be bound. */
  async start(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      const onError = (error: Error): void => reject(new Error(`cannot listen for the HTTP API on ${formatHostPort(this.options.host, this.options.port)}: ${error.message}`));
      this.server.once('error', onError);
      this.server.listen(this.options.port, this.options.host, () => {
        this.server.off('error', onError);
        resolve();
      });
    });
    const address = this.server.address() as AddressInfo;
    this.boundAddress = formatHostPort(this.options.host, address.port);
    if (this.insecure) this.backend.log(`serving PLAIN HTTP on ${this.boundAddress} (--insecure-api): the token and secrets cross the network in clear`);
  }

  /** Stops listening and closes every connection, waiting requests included. */
  async stop(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const socket of this.sockets) socket.destroy();
    this.stopFollowingCredentials?.();
    await this.appFiles.close();
    await closed;
    this.options.audit?.close();
    await this.peers.close();
  }

  private handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const method = request.method ?? 'GET';
    const options = { kind: SpanKind.SERVER, parent: contextOf(request.headers[TRACEPARENT_KEY]), attributes: { 'http.request.method': method } };
    return inSpan(`${method} unmatched`, options, (span) => this.handleTraced(request, response, span));
  }

  private async handleTraced(request: IncomingMessage, response: ServerResponse, span: Span): Promise<void> {
    const started = performance.now();
    const method = request.method ?? 'GET';
    let routeLabel = 'unmatched';
    const abort = new AbortController();
    response.on('close', () => abort.abort());
    const bodyDeadline = watchBodyDeadline(request, REQUEST_MS_MAX);
    let answer: Answer;
    const note: RequestNote = { principal: undefined, tenant: undefined, forwardedHops: Number(request.headers[FORWARDED_HEADER] ?? 0) || 0 };
    try {
      const url = parseTarget(request.url);
      if (isUiPath(url.pathname)) {
        routeLabel = UI_PATH;
        answer = await this.uiAnswer(method, url.pathname, request);
      } else {
        const match = this.router.match(method, url.pathname);
        if (match.type === 'none') throw new ApiError(404, ApiCode.notFound, `no such route: ${method} ${shownPath(url.pathname)} (see docs/api.md)`);
        if (match.type === 'wrong-method') {
          routeLabel = match.path;
          throw new ApiError(405, ApiCode.methodNotAllowed, `${shownPath(url.pathname)} does not take ${method}; it takes ${match.allowed.join(', ')}`, undefined, {}, { Allow: match.allowed.join(', ') });
        }
        routeLabel = match.route.path;
        if (match.route.kind === 'upload' && match.route.openEndedBody === true) bodyDeadline.lift();
        span.updateName(`${method} ${routeLabel}`);
        span.setAttributes({ 'http.route': routeLabel, 'hivemind.api.route_key': `${method} ${routeLabel}` });
        answer = await this.dispatch(request, url, match.route, match.params, abort.signal, note);
      }
    } catch (error) {
      answer = this.errorAnswer(error, method, request.url);
    }
    span.setAttribute('http.response.status_code', answer.status);
    if (answer.status >= 500) span.setAttribute('error.type', String(answer.status));
    this.send(response, method, answer);
    this.recordAudit(request, method, routeLabel, note, answer);
    const status = String(answer.status);
    const labels = { method, route: routeLabel, status };
    this.backend.metrics.httpRequests.inc(labels);
    this.backend.metrics.httpRequestSeconds.observe(labels, (performance.now() - started) / 1000);
  }

  /** A file of the web UI (src/ui/ui-answer.ts), with its own caching headers. */
  private async uiAnswer(method: string, pathname: string, request: IncomingMessage): Promise<Answer> {
    const ifNoneMatch = request.headers['if-none-match'];
    const answer = await this.ui.answer({ method, pathname, ifNoneMatch: typeof ifNoneMatch === 'string' ? ifNoneMatch : undefined });
    const { 'Content-Type': contentType, ...headers } = answer.headers;
    return { status: answer.status, text: answer.body, ...(contentType === undefined ? {} : { contentType }), headers };
  }

  private async dispatch(request: IncomingMessage, url: URL, route: Route, params: Record<string, string>, signal: AbortSignal, note: RequestNote): Promise<Answer> {
    if (route.kind !== 'open' && !this.ready) {
      throw new ApiError(503, ApiCode.unavailable, `node ${this.backend.nodeId} is starting; retry shortly`);
    }
    const open = route.kind === 'open' || (route.kind === 'local' && route.publicWithMetrics === true && this.options.metricsPublic === true);
    const principal = open ? ANONYMOUS : this.authenticate(request);
    note.principal = principal;
    if (!open) this.checkAccess(route, params, principal, note);
    if (route.kind === 'upload') return this.upload(request, url, route, params, { principal, note, signal });
    const rawBody = await this.readBody(request, route);
    const forwardedHops = Number(request.headers[FORWARDED_HEADER] ?? 0) || 0;
    const state: RequestState = {
      request,
      method: request.method ?? 'GET',
      url,
      headers: request.headers,
      rawBody,
      forwardedHops,
      requestId: route.kind === 'write' ? this.requestId(request, { forwardedHops, actor: principal.actor, url, rawBody }) : '',
      signal,
    };
    const parsed = this.parseBody(rawBody, request);
    checkQuery(url.searchParams, route.kind === 'read' ? [...READ_QUERY, ...(route.query ?? [])] : (route.query ?? []));
    // A write's declared body reaches its handler checked (contract.ts); an absent one as {}.
    const body = (route.kind === 'write' || route.kind === 'local') && route.body !== undefined ? bodyObject(parsed, route.body) : parsed;
    const context = this.context(state, params, body, principal, note, route);
    switch (route.kind) {
      case 'open':
      case 'local':
        return route.handle(context);
      case 'read':
        return this.read(state, route, context);
      case 'write':
        return route.write(context);
    }
  }

  /** An upload route: the body goes to the route as a stream, checked for its type and size (see UploadRoute). */
  private async upload(request: IncomingMessage, url: URL, route: UploadRoute, params: Record<string, string>, caller: { principal: Principal; note: RequestNote; signal: AbortSignal }): Promise<Answer> {
    const declaredText = request.headers['content-length'];
    const declared = declaredText === undefined ? undefined : Number(declaredText);
    const bytesText = `${route.bytesMax} bytes${route.bytesMax >= 2 ** 30 ? ` (${(route.bytesMax / 2 ** 30).toFixed(0)} GiB)` : ''}`;
    const tooLarge = (): ApiError => new ApiError(413, ApiCode.payloadTooLarge, `the upload is over the limit of ${bytesText} of ${route.method} ${route.path}`, undefined, {}, { Connection: 'close' });
    const mediaType = (request.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
    if (!route.contentTypes.includes(mediaType)) {
      this.discard(request, declared ?? 0);
      throw new ApiError(415, ApiCode.unsupportedMediaType, `${route.method} ${route.path} takes a body of type ${route.contentTypes.map((type) => JSON.stringify(type)).join(' or ')}, not ${JSON.stringify(mediaType || 'none')}`);
    }
    if (declared !== undefined && (!Number.isSafeInteger(declared) || declared > route.bytesMax)) {
      this.discard(request, declared);
      throw tooLarge();
    }
    checkQuery(url.searchParams, route.query ?? []);
    const state: RequestState = { request, method: request.method ?? 'POST', url, headers: request.headers, rawBody: Buffer.alloc(0), forwardedHops: 0, requestId: '', signal: caller.signal };
    const context = this.context(state, params, undefined, caller.principal, caller.note, route);
    return route.upload(context, limitedBody(request, route.bytesMax, tooLarge));
  }

  private context(state: RequestState, params: Record<string, string>, body: unknown, principal: Principal, note: RequestNote, route: Route): RouteContext {
    const actor = principal.actor;
    return {
      principal,
      authorize: (permission, tenant) => {
        note.tenant ??= tenant;
        if (!allows(principal, permission, tenant)) throw forbidden(route, permission, tenant, principal);
      },
      sees: (tenant) => allows(principal, 'read', tenant),
      audit: this.options.audit,
      backend: this.backend,
      params,
      query: state.url.searchParams,
      body,
      requestId: state.requestId,
      actor,
      serving: this.ready,
      signal: state.signal,
      peers: this.peers,
      trustedCaPems: () => this.options.credentials?.current?.caPems ?? [],
      parseAppFiles: (sources, options) => this.appFiles.parse(sources, options),
      ...(typeof state.headers.authorization === 'string' ? { authorization: state.headers.authorization } : {}),
      commit: (commands, present) => this.commit(state, actor, commands, present),
      onLeader: (action, options) => this.onLeader(state, action, options?.mayForwardAgain === true),
    };
  }

  // ---------------------------------------------------------------------------
  // Authentication and the body

  /** Refuses (403) a caller that lacks what the route declares; a route that finds its tenants itself is checked here only for the permission. */
  private checkAccess(route: Route, params: Record<string, string>, principal: Principal, note: RequestNote): void {
    // The tenant a path names, for the audit log, whatever the route needs.
    note.tenant = params.tenant ?? (route.path.startsWith('/v1/tenants/') ? params.name : undefined);
    const access: Access = route.access ?? { need: 'cluster-admin' };
    if (access.need === 'any' || access.need === 'cluster-read' || access.need === 'cluster-admin') {
      if (!allowsCluster(principal, access.need)) throw forbidden(route, access.need, undefined, principal);
      return;
    }
    if (access.tenant === 'path') {
      const tenant = params[access.param ?? 'tenant'] ?? '';
      note.tenant = tenant;
      if (!allows(principal, access.need, tenant)) throw forbidden(route, access.need, tenant, principal);
      return;
    }
    // The handler names the tenants; the role must at least hold the permission somewhere.
    if (!principal.tenants.some((tenant) => allows(principal, access.need as Permission, tenant))) throw forbidden(route, access.need, undefined, principal);
  }

  /**
   * Records a mutating or refused request in the audit log. A request
   * forwarded by another node is recorded again here, marked with its hops
   * (the header is the sender's word: a client cannot hide a request by
   * sending it, only add a mark).
   */
  private recordAudit(request: IncomingMessage, method: string, routeLabel: string, note: RequestNote, answer: Answer): void {
    const audit = this.options.audit;
    if (audit === undefined) return;
    const refused = answer.status === 401 || answer.status === 403;
    if (!refused && (method === 'GET' || method === 'HEAD')) return;
    const principal = note.principal;
    const errorMessage = answer.status >= 400 ? errorMessageOf(answer) : undefined;
    audit.append({
      time: Date.now(),
      node: this.backend.nodeId,
      user: principal?.user ?? 'unknown',
      ...(principal?.tokenId === undefined ? {} : { tokenId: principal.tokenId }),
      ...(principal === undefined ? {} : { role: principal.role }),
      sourceAddress: request.socket.remoteAddress ?? '',
      method,
      path: shownPath(parseTargetOrRaw(request.url)),
      route: routeLabel,
      ...(note.tenant === undefined ? {} : { tenant: note.tenant }),
      status: answer.status,
      outcome: refused ? 'refused' : answer.status < 400 ? 'allowed' : 'failed',
      ...(answer.status < 400 && answer.index !== undefined && method !== 'GET' ? { raftIndex: answer.index } : {}),
      ...(errorMessage === undefined ? {} : { message: errorMessage }),
      ...(note.forwardedHops > 0 ? { forwardedHops: note.forwardedHops } : {}),
    });
  }

  private authenticate(request: IncomingMessage): Principal {
    const header = request.headers.authorization;
    // Either form of the token: the pinned one's pin is for clients, only the bare token is hashed.
    const given = header?.startsWith('Bearer ') ? header.slice('Bearer '.length).trim() : undefined;
    const token = given === undefined ? undefined : bareToken(given);
    if (token === undefined || token === '') {
      throw new ApiError(401, ApiCode.unauthenticated, 'this request needs the cluster token: send "Authorization: Bearer <token>" (`hivemind token` on a member shows it)', undefined, {}, { 'WWW-Authenticate': 'Bearer' });
    }
    if (token.startsWith(API_TOKEN_PREFIX)) return this.apiPrincipal(token);
    const record = this.backend.machine.token();
    if (record === undefined) throw new ApiError(503, ApiCode.unavailable, 'the cluster has no join token yet (it is being bootstrapped); retry shortly');
    if (!tokenMatches(token, record.hash)) {
      throw new ApiError(401, ApiCode.unauthenticated, 'the token was refused: it is not the cluster\'s current token (it may have been rotated; `hivemind token` on a member shows it)', undefined, {}, { 'WWW-Authenticate': 'Bearer' });
    }
    // The join token still acts as a cluster-admin (compatibility: scripts and older CLIs send it); docs/user-guide.md, Access.
    return { actor: `token:${hashToken(token).slice(0, 8)}`, user: 'join-token', role: 'cluster-admin', tenants: ['*'] };
  }

  /** The principal of an API token, checked against this node's replica: an unknown (or revoked) or expired token is a 401. */
  private apiPrincipal(token: string): Principal {
    const record = this.backend.machine.apiTokenByHash(hashToken(token));
    const challenge = { 'WWW-Authenticate': 'Bearer' };
    if (record === undefined) throw new ApiError(401, ApiCode.unauthenticated, 'the API token was refused: it is unknown here, or was revoked (`hivemind tokens ls` lists the valid ones)', undefined, {}, challenge);
    const granted = tokenPrincipal(record, Date.now());
    if (!granted.ok) {
      throw new ApiError(401, ApiCode.unauthenticated, `the API token "${record.name}" (${record.id}) expired at ${new Date(record.expiresAt!).toISOString()}; ask a cluster-admin for a new one`, undefined, {}, challenge);
    }
    return granted.principal;
  }

  private async readBody(request: IncomingMessage, route: Route): Promise<Buffer> {
    const declared = Number(request.headers['content-length'] ?? 0);
    const tooLarge = (): ApiError => new ApiError(413, ApiCode.payloadTooLarge, `the request body is over the limit of ${BODY_BYTES_MAX} bytes (4 MiB)`, undefined, {}, { Connection: 'close' });
    if (declared > BODY_BYTES_MAX) {
      this.discard(request, declared);
      throw tooLarge();
    }
    if ((route.kind !== 'write' && route.kind !== 'local') || route.body === undefined) {
      // Routes without a body ignore one: drain what came, within the limit.
      this.discard(request, declared);
      return Buffer.alloc(0);
    }
    const chunks: Buffer[] = [];
    let size = 0;
    // Read to the end even past the limit (up to DRAIN_BYTES_MAX), so the 413 reaches the client.
    for await (const chunk of request as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size <= BODY_BYTES_MAX) chunks.push(chunk);
      else if (size > DRAIN_BYTES_MAX) throw tooLarge();
    }
    if (size > BODY_BYTES_MAX) throw tooLarge();
    return Buffer.concat(chunks);
  }

  /**
   * Drains a body we will not read, up to DRAIN_BYTES_MAX, so the answer
   * reaches the client; a larger one is left unread and the connection
   * closes after the answer (413 answers carry `Connection: close`).
   */
  private discard(request: IncomingMessage, declared: number): void {
    if (declared > DRAIN_BYTES_MAX) return;
    let drained = 0;
    request.on('data', (chunk: Buffer) => {
      drained += chunk.length;
      if (drained > DRAIN_BYTES_MAX) request.socket.destroy();
    });
    request.resume();
  }

  private parseBody(rawBody: Buffer, request: IncomingMessage): unknown {
    if (rawBody.length === 0) return undefined;
    const mediaType = (request.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
    if (mediaType !== 'application/json') {
      throw new ApiError(415, ApiCode.unsupportedMediaType, `the request body must be JSON with "Content-Type: application/json", not ${JSON.stringify(mediaType || 'none')}`);
    }
    try {
      return JSON.parse(rawBody.toString('utf8'));
    } catch (error) {
      throw invalidArgument(undefined, `the request body is not valid JSON: ${(error as Error).message}`);
    }
  }

  /**
   * The request id a write is proposed under. Without Idempotency-Key: a
   * fresh one. With it: scoped to the caller (two callers' equal keys never
   * meet) and carrying a fingerprint of the request (method, path and query,
   * body), so a retry of the same request gets the first answer and the same
   * key on another request is refused 422 instead of answered with the
   * first request's result. A forwarded request keeps the id its first node
   * gave it.
   */
  private requestId(request: IncomingMessage, caller: { forwardedHops: number; actor: string; url: URL; rawBody: Buffer }): string {
    const forwardedId = request.headers[REQUEST_ID_HEADER];
    if (caller.forwardedHops > 0 && typeof forwardedId === 'string' && forwardedId.length > 0 && forwardedId.length <= 256) return forwardedId;
    const key = request.headers['idempotency-key'];
    if (key === undefined) return `req:${randomUUID()}`;
    if (typeof key !== 'string' || !IDEMPOTENCY_KEY_PATTERN.test(key)) {
      throw invalidArgument('Idempotency-Key', 'the Idempotency-Key header must be 1 to 128 printable ASCII characters');
    }
    const scope = createHash('sha256').update(`${caller.actor}\0${key}`).digest('hex').slice(0, IDEMPOTENCY_SCOPE_HEX);
    const fingerprint = createHash('sha256')
      .update(`${request.method ?? ''} ${caller.url.pathname}${caller.url.search}\0`)
      .update(caller.rawBody)
      .digest('hex')
      .slice(0, IDEMPOTENCY_FINGERPRINT_HEX);
    const prefix = `key:${scope}:`;
    const other = this.backend.machine.rememberedRequestIds(prefix).find((id) => id.slice(prefix.length, prefix.length + IDEMPOTENCY_FINGERPRINT_HEX) !== fingerprint);
    if (other !== undefined) {
      throw new ApiError(
        422,
        ApiCode.idempotencyKeyReused,
        `the Idempotency-Key ${JSON.stringify(key)} was already used by this caller for another request (another route, query or body); use a new key for a new request, and the same key only to retry the same request`,
        'Idempotency-Key',
      );
    }
    return `${prefix}${fingerprint}`;
  }

  // ---------------------------------------------------------------------------
  // Reads

  private async read(state: RequestState, route: Route & { kind: 'read' }, context: RouteContext): Promise<Answer> {
    const query = state.url.searchParams;
    const stale = queryBoolean(query, 'stale');
    const index = queryInteger(query, 'index', { min: 0, max: Number.MAX_SAFE_INTEGER });
    const waitMs = queryDuration(query, 'wait', WAIT_MS_MAX) ?? WAIT_MS_DEFAULT;
    if (!stale) {
      await this.readBarrier(state);
      // The token may have rotated in the entries the barrier waited for: the old one stops working at once.
      this.authenticate(state.request);
    }
    if (index !== undefined) {
      const waiting = this.backend.waitBeyond(index, waitMs, state.signal);
      if (waiting === undefined) throw new ApiError(503, ApiCode.overloaded, 'too many blocking queries wait on this node; retry later or use another node');
      await waiting;
    }
    return { status: 200, json: route.read(context), index: this.backend.machine.appliedIndex };
  }

  /** ReadIndex, retried while no leader is known, until the deadline. */
  private async readBarrier(state: RequestState): Promise<void> {
    const deadline = Date.now() + this.requestDeadlineMs;
    for (;;) {
      try {
        await this.backend.raft.read({ timeoutMs: Math.max(1, deadline - Date.now()), signal: state.signal });
        return;
      } catch (error) {
        if (!isRetryable(error) || Date.now() + RETRY_DELAY_MS >= deadline || state.signal.aborted) throw this.raftAnswerError(error, 'read');
      }
      await sleep(RETRY_DELAY_MS);
    }
  }

  // ---------------------------------------------------------------------------
  // Writes

  private async commit(state: RequestState, actor: string, commands: Command[], present?: (results: CommandResult[]) => unknown): Promise<Answer> {
    for (const command of commands) {
      const validated = validateCommand(command);
      if (!validated.ok) throw fromStateError(validated.error);
    }
    // Each commit of one request has its own ids, the same ones again when the request is retried.
    state.commitCalls = (state.commitCalls ?? 0) + 1;
    const baseId = state.commitCalls === 1 ? state.requestId : `${state.requestId}/${state.commitCalls}`;
    const requestIds = commands.map((_, position) => (commands.length === 1 ? baseId : `${baseId}#${position}`));
    return this.onLeader(state, async (remainingMs) => {
      const machine = this.backend.machine;
      const time = Date.now();
      // All checks before any proposal: a refusal proposes nothing.
      commands.forEach((command, position) => {
        if (machine.rememberedResult(requestIds[position]!) !== undefined) return;
        const checked = machine.check(command, { time, actor });
        if (!checked.ok) throw fromStateError(checked.error);
      });
      const results: CommandResult[] = [];
      for (const [position, command] of commands.entries()) {
        const requestId = requestIds[position]!;
        const envelope: Envelope = { requestId, time, actor, command };
        const result = machine.rememberedResult(requestId) ?? (await this.backend.propose(envelope, remainingMs));
        results.push(result);
        if (!result.ok) {
          const applied = results.length - 1;
          const error = fromStateError(result.error);
          if (applied === 0) throw error;
          throw new ApiError(error.status, error.code, `${error.message} (the ${applied} command${applied === 1 ? '' : 's'} before it were applied)`, error.field);
        }
      }
      const last = results[results.length - 1];
      const json = present ? present(results) : (last?.ok ? (last.value ?? {}) : {});
      return { status: 200, json, index: last?.index ?? machine.appliedIndex };
    }, false);
  }

  /**
   * Runs `action` where the leader is: here if this node leads, else forwards
   * the request. Retries while no leader is known, and on Raft errors that
   * leave the write safe to repeat, until the deadline.
   */
  private async onLeader(state: RequestState, action: (remainingMs: number) => Promise<Answer>, mayForwardAgain: boolean): Promise<Answer> {
    const deadline = Date.now() + this.requestDeadlineMs;
    let lastError: unknown;
    for (;;) {
      const status = this.backend.raft.status();
      const remainingMs = deadline - Date.now();
      if (remainingMs <= 0 || state.signal.aborted) break;
      if (status.role === 'leader') {
        try {
          return await action(remainingMs);
        } catch (error) {
          if (error instanceof ApiError || !isRetryable(error)) throw error instanceof ApiError ? error : this.raftAnswerError(error, 'write');
          lastError = error;
        }
      } else if (state.forwardedHops === 0 || (mayForwardAgain && state.forwardedHops < 2)) {
        const address = status.leader === '' ? undefined : this.backend.machine.node(status.leader)?.addresses.api;
        if (address !== undefined) {
          const answer = await this.forward(state, status.leader, address, remainingMs);
          if (answer !== undefined && !isNoLeaderAnswer(answer)) return answer;
        }
      } else {
        throw new ApiError(503, ApiCode.noLeader, `node ${this.backend.nodeId} received a forwarded request but does not lead (leader: ${status.leader || 'unknown'}); retry`);
      }
      await sleep(RETRY_DELAY_MS);
    }
    if (lastError !== undefined) throw this.raftAnswerError(lastError, 'write');
    throw new ApiError(503, ApiCode.noLeader, `no leader became available within ${this.requestDeadlineMs / 1000}s (an election is under way, or the cluster lost its quorum); retry with the same Idempotency-Key`);
  }

  /** Sends the request on to the leader's API (span `api.forward`); undefined when the leader could not be reached. */
  private forward(state: RequestState, leader: string, address: string, remainingMs: number): Promise<Answer | undefined> {
    return inSpan('api.forward', { kind: SpanKind.CLIENT, attributes: { 'hivemind.leader.id': leader } }, (span) => this.forwardTraced(state, leader, address, remainingMs, span));
  }

  private async forwardTraced(state: RequestState, leader: string, address: string, remainingMs: number, span: Span): Promise<Answer | undefined> {
    const headers: Record<string, string> = {
      [FORWARDED_HEADER]: String(state.forwardedHops + 1),
      [REQUEST_ID_HEADER]: state.requestId,
    };
    const traceparent = traceparentOf();
    if (traceparent !== undefined) headers[TRACEPARENT_KEY] = traceparent;
    for (const name of ['authorization', 'content-type', 'idempotency-key']) {
      const value = state.headers[name];
      if (typeof value === 'string') headers[name] = value;
    }
    try {
      const response = await this.peers.request(leader, address, `${state.url.pathname}${state.url.search}`, {
        method: state.method as 'GET',
        headers,
        body: state.rawBody.length > 0 ? state.rawBody : null,
        headersTimeout: remainingMs,
        bodyTimeout: remainingMs,
        signal: state.signal,
      });
      const text = Buffer.from(await response.body.arrayBuffer());
      this.backend.metrics.forwardedRequests.inc({ outcome: String(response.statusCode) });
      span.setAttribute('http.response.status_code', response.statusCode);
      const answerHeaders: Record<string, string> = {};
      const indexHeader = response.headers[INDEX_HEADER.toLowerCase()];
      const allow = response.headers.allow;
      if (typeof allow === 'string') answerHeaders.Allow = allow;
      const contentType = response.headers['content-type'];
      return {
        status: response.statusCode,
        text,
        contentType: typeof contentType === 'string' ? contentType : 'application/json',
        headers: answerHeaders,
        ...(typeof indexHeader === 'string' && /^\d+$/.test(indexHeader) ? { index: Number(indexHeader) } : {}),
      };
    } catch (error) {
      this.backend.metrics.forwardedRequests.inc({ outcome: 'unreachable' });
      span.setAttribute('error.type', 'unreachable');
      this.backend.log(`forwarding ${state.method} ${state.url.pathname} to the leader at ${address} failed: ${(error as Error).message}`);
      return undefined;
    }
  }

  private raftAnswerError(error: unknown, what: 'read' | 'write'): Error {
    if (error instanceof ApiError) return error;
    return fromRaftError(error, what) ?? (error instanceof Error ? error : new Error(String(error)));
  }

  // ---------------------------------------------------------------------------
  // Answers

  private errorAnswer(error: unknown, method: string, url: string | undefined): Answer {
    if (error instanceof ApiError) return { status: error.status, json: error.toJSON(), headers: error.headers };
    const mapped = fromRaftError(error, method === 'GET' ? 'read' : 'write');
    if (mapped) return { status: mapped.status, json: mapped.toJSON(), headers: mapped.headers };
    this.backend.log(`internal error on ${method} ${url ?? ''}: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    const internal = new ApiError(500, ApiCode.internal, `an internal error occurred on node ${this.backend.nodeId} (a bug: its log has the details); the request may be retried`);
    return { status: 500, json: internal.toJSON() };
  }

  private send(response: ServerResponse, method: string, answer: Answer): void {
    if (response.headersSent || response.destroyed) return;
    if (answer.stream !== undefined) return this.sendStream(response, method, answer, answer.stream);
    let body: Buffer;
    let contentType: string;
    if (answer.text !== undefined) {
      body = Buffer.from(answer.text);
      contentType = answer.contentType ?? 'text/plain; charset=utf-8';
    } else {
      body = Buffer.from(`${JSON.stringify(answer.json ?? {}, jsonReplacer)}\n`, 'utf8');
      contentType = 'application/json; charset=utf-8';
    }
    response.statusCode = answer.status;
    response.setHeader('Content-Type', contentType);
    response.setHeader('Content-Length', body.length);
    response.setHeader(INDEX_HEADER, String(answer.index ?? this.backend.machine.appliedIndex));
    response.setHeader('Cache-Control', 'no-store');
    for (const [name, value] of Object.entries(answer.headers ?? {})) response.setHeader(name, value);
    response.end(method === 'HEAD' ? undefined : body);
  }

  private sendStream(response: ServerResponse, method: string, answer: Answer, stream: AsyncIterable<Uint8Array>): void {
    response.statusCode = answer.status;
    response.setHeader('Content-Type', answer.contentType ?? 'text/plain; charset=utf-8');
    response.setHeader(INDEX_HEADER, String(answer.index ?? this.backend.machine.appliedIndex));
    response.setHeader('Cache-Control', 'no-store');
    for (const [name, value] of Object.entries(answer.headers ?? {})) response.setHeader(name, value);
    if (method === 'HEAD') {
      response.end();
      return;
    }
    response.flushHeaders();
    void pipeStream(response, stream);
  }
}

/** Answers with a chunked body from `stream`; a failure mid-way ends the response (the status is already sent). */
async function pipeStream(response: ServerResponse, stream: AsyncIterable<Uint8Array>): Promise<void> {
  try {
    for await (const chunk of stream) {
      if (response.destroyed) break;
      if (!response.write(chunk)) await new Promise((resolve) => response.once('drain', resolve).once('close', resolve));
    }
  } catch {
    // The stream's source failed (a file removed under it): end what was sent.
  }
  if (!response.destroyed) response.end();
}

/** The request target as a URL; a target that is not a path is a 400. */
export function parseTarget(target: string | undefined): URL {
  const path = target ?? '/';
  if (!path.startsWith('/') || path.startsWith('//')) throw invalidArgument(undefined, 'the request target must be a path such as /v1/status');
  try {
    return new URL(path, 'http://api.invalid');
  } catch {
    throw invalidArgument(undefined, 'the request target is not a valid path');
  }
}

/** The 403 for a caller without `need`. */
function forbidden(route: Route, need: Access['need'], tenant: string | undefined, principal: Principal): ApiError {
  const shownTenant = tenant === undefined ? undefined : tenant.slice(0, 63);
  const neededRole = need === 'cluster-admin' || need === 'any' || need === 'cluster-read' ? (need === 'cluster-admin' ? 'cluster-admin' : 'viewer') : roleFor(need);
  return new ApiError(403, ApiCode.forbidden, `${route.method} ${route.path} needs ${needText(need, shownTenant)}; ${principalText(principal)}`, undefined, {
    needed: { role: neededRole, ...(need === 'cluster-read' ? { tenants: ['*'] } : {}), ...(shownTenant === undefined ? {} : { tenant: shownTenant }) },
  });
}

/** The message of an error answer, for the audit log. */
function errorMessageOf(answer: Answer): string | undefined {
  const error = (answer.json as { error?: { message?: unknown } } | undefined)?.error;
  if (typeof error?.message === 'string') return error.message.slice(0, 300);
  if (answer.text === undefined) return undefined;
  try {
    const parsed = JSON.parse(Buffer.from(answer.text).toString('utf8')) as { error?: { message?: unknown } };
    return typeof parsed.error?.message === 'string' ? parsed.error.message.slice(0, 300) : undefined;
  } catch {
    return undefined;
  }
}

/** The request's path without its query (which may carry values better left out of a log). */
function parseTargetOrRaw(target: string | undefined): string {
  const path = target ?? '/';
  const query = path.indexOf('?');
  return query === -1 ? path : path.slice(0, query);
}

function isNoLeaderAnswer(answer: Answer): boolean {
  if (answer.status !== 503 || answer.text === undefined) return false;
  try {
    const parsed = JSON.parse(Buffer.from(answer.text).toString('utf8')) as { error?: { code?: string } };
    return parsed.error?.code === ApiCode.noLeader || parsed.error?.code === ApiCode.unavailable;
  } catch {
    return false;
  }
}

/** Bytes in answers (they should not occur; secrets never leave sealed) become base64. */
function jsonReplacer(_key: string, value: unknown): unknown {
  if (value instanceof Uint8Array) return Buffer.from(value).toString('base64');
  return value;
}

function shownPath(pathname: string): string {
  return pathname.length > 100 ? `${pathname.slice(0, 97)}...` : pathname;
}

/** `host:port`, brackets around an IPv6 host. */
export function formatHostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/** The bytes of `request`, at most `bytesMax` of them: one more throws `tooLarge()`. */
async function* limitedBody(request: IncomingMessage, bytesMax: number, tooLarge: () => ApiError): AsyncIterable<Buffer> {
  let size = 0;
  for await (const chunk of request as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > bytesMax) throw tooLarge();
    yield chunk;
  }
}

/**
 * Ends a request whose body has not all come `deadlineMs` after it began
 * (a client that trickles its body holds a connection no longer), as
 * Node's requestTimeout would; `lift` spares a route whose body is an
 * open-ended stream (an exec session's input).
 */
function watchBodyDeadline(request: IncomingMessage, deadlineMs: number): { lift(): void } {
  const timer = setTimeout(() => {
    if (!request.complete) request.socket.destroy();
  }, deadlineMs);
  timer.unref();
  const lift = (): void => clearTimeout(timer);
  request.once('end', lift);
  request.once('close', lift);
  return { lift };
}
