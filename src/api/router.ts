/**
 * Routes and how a path finds one. A route's path is a template:
 * `/v1/apps/:tenant/:name` (one segment per parameter) or `/v1/kv/*key` (the
 * rest of the path, slashes included). The template is also the `route`
 * label of the HTTP metrics, so labels stay few whatever clients send.
 */
import type { AppFileSource, ParseAppFileOptions, ParseAppFileResult } from '../appfile/index.js';
import type { Command, CommandResult } from '../state/types.js';
import type { Access, Permission, Principal } from './access.js';
import type { AuditLog } from './audit.js';
import type { ApiBackend } from './backend.js';
import { contract, type AnswerOf, type AnyRouteDeclaration, type BodyOf, type Contract, type DeclaredRoute, type FieldsDeclaration } from './contract.js';
import { invalidArgument } from './errors.js';
import type { BodyFields } from './input.js';
import { splitRouteKey, type ParamsOf } from './route-key.js';
import type { PeerApiClient } from './peer-api-client.js';

/** What a handler answers. `json` is serialized; `text` is sent as it is. */
export interface Answer {
  status: number;
  json?: unknown;
  text?: string | Uint8Array;
  contentType?: string;
  headers?: Record<string, string>;
  /** The `X-Hivemind-Index` header; the node's applied index when absent. */
  index?: number;
  /** A body sent as it comes (chunked), instead of `json`/`text`: logs that follow. Ends when the client leaves. */
  stream?: AsyncIterable<Uint8Array>;
}

/**
 * What a handler gets. `Params` and `Body` are its route's, from the
 * contract (`serve` types them).
 */
export interface RouteContext<Params extends Record<string, string> = Record<string, string>, Body = unknown> {
  backend: ApiBackend;
  params: Params;
  query: URLSearchParams;
  /**
   * The parsed JSON body. A write that declares a body gets it checked (only
   * the declared fields, the required ones present) and `{}` when the request
   * had none; other routes get it as sent, undefined when there was none.
   */
  body: Body;
  /** The request id writes are proposed under (from `Idempotency-Key`, or fresh). */
  requestId: string;
  /** Who asks, as history records it: `user:<name>/<token id>` for an API token, `token:<first 8 hex of its hash>` for the join token. */
  actor: string;
  /** Who asks, with the role and tenants of their token. */
  principal: Principal;
  /** Throws a 403 ApiError naming the role needed unless the caller holds `permission` in `tenant`; notes the tenant for the audit log. */
  authorize(permission: Permission, tenant: string): void;
  /** Whether the caller may read tenant `tenant` (lists are filtered by it). */
  sees(tenant: string): boolean;
  /** This node's audit log, if it keeps one. */
  audit: AuditLog | undefined;
  /** Whether the node has finished starting (health answers 503 until then). */
  serving: boolean;
  /** Aborted when the client goes away. */
  signal: AbortSignal;
  /** Calls to other nodes' APIs (HTTPS to the node meant, or plain HTTP with --insecure-api). */
  peers: PeerApiClient;
  /** The CA certificates this node trusts (PEM, signing CA first); empty before it has its TLS material. */
  trustedCaPems(): readonly string[];
  /** Parses an app file off the event loop (app-file-worker.ts); rejects with an ApiError when it takes too long. */
  parseAppFiles(sources: AppFileSource[], options?: ParseAppFileOptions): Promise<ParseAppFileResult>;
  /** The request's Authorization header, for routes that pass the request on to another node. */
  authorization?: string;
  /**
   * Checks and proposes `commands` on the leader (forwarding the request
   * there when this node does not lead) and answers with `present(results)`,
   * or with the first refusal.
   */
  commit(commands: Command[], present?: (results: CommandResult[]) => unknown): Promise<Answer>;
  /** Runs `action` on the leader: here if this node leads, else the request is forwarded. */
  onLeader(action: (remainingMs: number) => Promise<Answer>, options?: { mayForwardAgain?: boolean }): Promise<Answer>;
}

interface RouteBase {
  method: 'GET' | 'PUT' | 'POST' | 'DELETE';
  path: string;
  /** Query parameters besides the read ones (`stale`, `index`, `wait`). */
  query?: readonly string[];
  /** What the caller needs (src/api/access.ts); ignored on open routes. A route without it needs cluster-admin. */
  access?: Access;
}

/** A read: the node confirms its read index (unless `?stale`), waits for `?index` if asked, then `read` answers from the state. */
export interface ReadRoute extends RouteBase {
  kind: 'read';
  read(context: RouteContext): unknown;
}

/** A write: authenticated; `body` lists the fields the JSON body may have (absent: no body). */
export interface WriteRoute extends RouteBase {
  kind: 'write';
  body?: BodyFields;
  write(context: RouteContext): Promise<Answer>;
}

/** A route without authentication or read barrier (health, metrics). */
export interface OpenRoute extends RouteBase {
  kind: 'open';
  handle(context: RouteContext): Promise<Answer>;
}

/** An authenticated route answered from this node alone, without a read barrier (logs of the instances it runs). */
export interface LocalRoute extends RouteBase {
  kind: 'local';
  /** Served without a token when the server's `metricsPublic` is set (GET /metrics). */
  publicWithMetrics?: boolean;
  /** The fields the JSON body may have (absent: no body), checked as a write's are (`POST /v1/instances/:id/exec`). */
  body?: BodyFields;
  handle(context: RouteContext): Promise<Answer>;
}

/**
 * An authenticated route answered by this node alone whose body is a raw
 * stream, not JSON (an image archive). The server checks the
 * `Content-Type` against `contentTypes` (415) and a declared
 * `Content-Length` against `bytesMax` (413) before `upload` runs; `body`
 * yields the bytes and throws a 413 `ApiError` past `bytesMax` when no length
 * was declared. `upload` must read `body` to its end or throw.
 */
export interface UploadRoute extends RouteBase {
  kind: 'upload';
  contentTypes: readonly string[];
  bytesMax: number;
  /** The body is an open-ended stream read as the answer is sent (an exec session's input): the server sets no deadline for its end. */
  openEndedBody?: boolean;
  upload(context: RouteContext, body: AsyncIterable<Buffer>): Promise<Answer>;
}

/** Any route. */
export type Route = ReadRoute | WriteRoute | OpenRoute | LocalRoute | UploadRoute;

/** What `Router.match` found: a route and its parameters, a path that takes other methods, or nothing. */
export type RouteMatch = { type: 'found'; route: Route; params: Record<string, string> } | { type: 'wrong-method'; allowed: string[]; path: string } | { type: 'none' };

/** The context of declared route `Key`'s handler. */
export type ContextOf<Key extends DeclaredRoute> = RouteContext<ParamsOf<Key>, BodyOf<Key> extends undefined ? unknown : BodyOf<Key>>;

/** What a route of `Key`'s kind implements (the rest comes from its declaration). */
export type HandlersOf<Key extends DeclaredRoute> = Contract[Key]['kind'] extends 'read'
  ? { read(context: ContextOf<Key>): AnswerOf<Key> }
  : Contract[Key]['kind'] extends 'write'
    ? { write(context: ContextOf<Key>): Promise<Answer> }
    : Contract[Key]['kind'] extends 'upload'
      ? { contentTypes: readonly string[]; bytesMax: number; openEndedBody?: boolean; upload(context: ContextOf<Key>, body: AsyncIterable<Buffer>): Promise<Answer> }
      : { publicWithMetrics?: boolean; handle(context: ContextOf<Key>): Promise<Answer> };

/**
 * The served route of declaration `key` (contract.ts): its method, path,
 * kind, access, query names and body fields come from the declaration,
 * `handlers` from the caller. The compiler checks a read's answer against
 * the declared one.
 */
export function serve<Key extends DeclaredRoute>(key: Key, handlers: HandlersOf<Key>): Route {
  const declaration: AnyRouteDeclaration = contract[key];
  const { method, path } = splitRouteKey(key);
  // The handlers' kind is the declaration's (HandlersOf): the union member is right by construction.
  return {
    method,
    path,
    kind: declaration.kind,
    ...(declaration.access === undefined ? {} : { access: declaration.access }),
    ...(declaration.query === undefined ? {} : { query: Object.keys(declaration.query.shape) }),
    ...(declaration.body === undefined ? {} : { body: bodyFieldsOf(declaration.body) }),
    ...handlers,
  } as Route;
}

/** Which fields a body declaration has and whether each is required (an `.optional()` field is not). */
export function bodyFieldsOf(declared: FieldsDeclaration): BodyFields {
  const fields: BodyFields = {};
  for (const [name, field] of Object.entries(declared.shape)) fields[name] = field.isOptional ? 'optional' : 'required';
  return fields;
}

interface CompiledRoute {
  route: Route;
  segments: string[];
}

/** A route table, matched segment by segment. */
export class Router {
  private readonly routes: CompiledRoute[];

  constructor(routes: Route[]) {
    this.routes = routes.map((route) => ({ route, segments: route.path.split('/').slice(1) }));
  }

  /** Finds the route for `method` and `pathname` (still percent-encoded). Throws ApiError 400 for a malformed escape. */
  match(method: string, pathname: string): RouteMatch {
    const parts = pathname.split('/').slice(1);
    const allowed: string[] = [];
    let path = '';
    for (const compiled of this.routes) {
      const params = matchSegments(compiled.segments, parts);
      if (params === undefined) continue;
      if (compiled.route.method === method || (method === 'HEAD' && compiled.route.method === 'GET')) {
        return { type: 'found', route: compiled.route, params };
      }
      allowed.push(compiled.route.method);
      path ||= compiled.route.path;
    }
    return allowed.length > 0 ? { type: 'wrong-method', allowed: [...new Set(allowed)], path } : { type: 'none' };
  }
}

function matchSegments(template: string[], parts: string[]): Record<string, string> | undefined {
  const params: Record<string, string> = {};
  for (let position = 0; position < template.length; position++) {
    const segment = template[position]!;
    if (segment.startsWith('*')) {
      const rest = parts.slice(position);
      if (rest.length === 0) return undefined;
      params[segment.slice(1)] = decode(rest.join('/'), segment.slice(1));
      return params;
    }
    const part = parts[position];
    if (part === undefined) return undefined;
    if (segment.startsWith(':')) {
      if (part === '') return undefined;
      params[segment.slice(1)] = decode(part, segment.slice(1));
    } else if (segment !== part) {
      return undefined;
    }
  }
  return parts.length === template.length ? params : undefined;
}

function decode(text: string, field: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    throw invalidArgument(field, `${field} in the path is not valid percent-encoding`);
  }
}
