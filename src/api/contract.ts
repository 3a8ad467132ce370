/**
 * The API's contract: every route, declared once. A declaration's key is its
 * method and path (`POST /v1/apps/:tenant/:name/scale`, see route-key.ts);
 * its value says what kind of route it is, who may call it, the query
 * parameters and body fields it takes and what it answers (a type).
 *
 * The server's routes are built from these declarations (`serve` in
 * router.ts gives a route its method, path, access, query names and body
 * fields from here; the compiler checks a read's answer against the
 * declared type), and the CLI's client is typed by them
 * (`ApiClient.call('GET /v1/status')`), so the two cannot drift apart;
 * src/api/test/contract.test.ts checks that every declaration is served,
 * that nothing else is, and that docs/api.md lists each one.
 *
 * What the schemas check at run time: a body's top-level fields (unknown
 * ones and missing required ones are refused, naming the field) and a
 * query's parameter names. A field's value is typed here, and checked where
 * it is used: most become a command's fields, which the state's validation
 * checks with its own messages (`quota.cpuMillis must be ...`) before
 * anything is proposed; the rest are checked by their route (input.ts), so
 * every refusal names the field as it did before the contract existed.
 *
 * The CLI imports this module's types only (`import type`): the client has
 * no use for the declarations' values.
 *
 * The fields are declared with `fields`, `field` and `parameter` below, not
 * with zod (the contract used zod's objects for their types and names only,
 * and loading zod cost every node 95 modules and about 3 MiB of heap:
 * src/state/schema.ts says why the state's kit left it too).
 */
import type { LocalSource } from '../appfile/configs.js';
import type { SecretMetadata } from '../state/machine.js';
import type { ApiRole, App, EgressRule, HistoryEntry, Instance, KvEntry, NetworkPolicy, PolicyRule, Quota, Rollout, TenantSettings, VolumeIoLimits } from '../state/types.js';
import type { Access } from './access.js';
import type {
  AppView,
  AuditAnswer,
  CaStatusAnswer,
  DeployAnswer,
  ElectionsAnswer,
  ImageListAnswer,
  ImagesAnswer,
  NetworkAnswer,
  NetworkAppAnswer,
  NetworkNodeAnswer,
  NodeView,
  PolicyTestAnswer,
  SnapshotView,
  StatusAnswer,
  StreamAnswer,
  TenantView,
  TextAnswer,
  TokenAnswer,
  TokenView,
  VolumeView,
  WriteAnswer,
} from './answers.js';
import type { Method, RouteKey } from './route-key.js';

export type * from './answers.js';

/**
 * How a route is served (router.ts): `read` behind the read barrier, `write`
 * proposed on the leader, `open` without a token, `local` answered by the
 * node asked, `upload` with a raw body streamed in.
 */
export type RouteKind = 'read' | 'write' | 'open' | 'local' | 'upload';

declare const answerType: unique symbol;

declare const valueType: unique symbol;

/**
 * One body field or query parameter: whether a request may leave it out
 * (`isOptional`); `T`, a type only, is what it carries.
 */
export class FieldDeclaration<T = unknown, IsOptional extends boolean = boolean> {
  /** Never set: carries the value's type. */
  declare readonly [valueType]?: T;

  constructor(readonly isOptional: IsOptional) {}

  /** The same field, which a request may leave out. */
  optional(): FieldDeclaration<T, true> {
    return new FieldDeclaration<T, true>(true);
  }
}

/** A body's fields or a query's parameters, by name. */
export type FieldShape = Readonly<Record<string, FieldDeclaration>>;

/** Declared fields: `shape` names them (router.ts takes the names and which are required from it). */
export interface FieldsDeclaration<Shape extends FieldShape = FieldShape> {
  readonly shape: Shape;
}

type ValueOf<Field> = Field extends FieldDeclaration<infer T, boolean> ? T : never;
type RequiredKeys<Shape extends FieldShape> = { [K in keyof Shape]: Shape[K] extends FieldDeclaration<unknown, false> ? K : never }[keyof Shape];

/** What a client sends for `Declared`: its required fields, and the optional ones it may leave out. */
export type InputOf<Declared extends FieldsDeclaration> = Flatten<
  { [K in RequiredKeys<Declared['shape']>]: ValueOf<Declared['shape'][K]> } & { [K in Exclude<keyof Declared['shape'], RequiredKeys<Declared['shape']>>]?: ValueOf<Declared['shape'][K]> }
>;
type Flatten<T> = { [K in keyof T]: T[K] };

/** One route's declaration. `Answer` is a type only: what a 200 carries. */
export interface RouteDeclaration<Kind extends RouteKind = RouteKind, Query extends FieldsDeclaration | undefined = FieldsDeclaration | undefined, Body extends FieldsDeclaration | undefined = FieldsDeclaration | undefined, Answer = unknown> {
  readonly kind: Kind;
  /** Who may call it (access.ts); absent on open routes. A non-open route without it needs cluster-admin. */
  readonly access?: Access;
  /** The query parameters it takes besides a read's own (`stale`, `index`, `wait`). */
  readonly query?: Query;
  /** The JSON body's fields (no other field is taken); absent: no body. */
  readonly body?: Body;
  /** Never set: carries the answer's type. */
  readonly [answerType]?: Answer;
}

/** A declaration of any kind, query, body and answer. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyRouteDeclaration = RouteDeclaration<RouteKind, FieldsDeclaration | undefined, FieldsDeclaration | undefined, any>;

/**
 * A declaration answering `Answer`; the kind, query and body are inferred
 * from `declaration` (curried so that `Answer` alone is written out).
 */
function route<Answer>() {
  return <const Kind extends RouteKind, Query extends FieldsDeclaration | undefined = undefined, Body extends FieldsDeclaration | undefined = undefined>(declaration: {
    kind: Kind;
    access?: Access;
    query?: Query;
    body?: Body;
  }): RouteDeclaration<Kind, Query, Body, Answer> => declaration;
}

/** A body's fields or a query's parameters. */
function fields<const Shape extends FieldShape>(shape: Shape): FieldsDeclaration<Shape> {
  return { shape };
}

/** A required body field typed as the command field (or route input) it becomes; its value is checked there (see the module comment). */
function field<T>(): FieldDeclaration<T, false> {
  return new FieldDeclaration<T, false>(false);
}

/** A query parameter: its type is what a client passes; the route parses the text (input.ts). */
function parameter<T extends string | number | boolean>(): FieldDeclaration<T, true> {
  return new FieldDeclaration<T, true>(true);
}

/** One file of a deploy with several. */
interface DeployFile {
  fileName: string;
  content: string;
}

const tenantQuery = fields({ tenant: parameter<string>() });
const forwardedQuery = fields({ forwarded: parameter<boolean>(), index: parameter<number>() });
const logQuery = fields({ tail: parameter<number>(), follow: parameter<'1' | '0' | boolean>(), forwarded: parameter<'1' | '0' | boolean>() });

/** Every route, keyed by method and path, in the order docs/api.md lists them. */
export const contract = {
  // Cluster
  'GET /v1/health': route<{ ok: true; node: string }>()({ kind: 'open' }),
  'GET /v1/ca': route<TextAnswer>()({ kind: 'open' }),
  'GET /metrics': route<TextAnswer>()({ kind: 'local', access: { need: 'cluster-read' } }),
  'GET /v1/status': route<StatusAnswer>()({ kind: 'read', access: { need: 'any' } }),
  'GET /v1/elections': route<ElectionsAnswer>()({ kind: 'local', access: { need: 'any' } }),
  'GET /v1/nodes': route<{ nodes: NodeView[] }>()({ kind: 'read', access: { need: 'any' } }),
  'GET /v1/nodes/:id': route<NodeView>()({ kind: 'read', access: { need: 'any' } }),
  'POST /v1/nodes/:id/labels': route<WriteAnswer<{ id: string; labels: Record<string, string> }>>()({
    kind: 'write',
    access: { need: 'cluster-admin' },
    body: fields({ set: field<Record<string, string>>().optional(), remove: field<string[]>().optional() }),
  }),
  'POST /v1/nodes/:id/leave': route<{ id: string; status: 'left' }>()({ kind: 'write', access: { need: 'cluster-admin' } }),
  'GET /v1/token': route<TokenAnswer>()({ kind: 'read', access: { need: 'cluster-admin' } }),
  'POST /v1/token/rotate': route<TokenAnswer>()({ kind: 'write', access: { need: 'cluster-admin' } }),
  'GET /v1/ca/status': route<CaStatusAnswer>()({ kind: 'read', access: { need: 'cluster-read' } }),
  'POST /v1/ca/rotate': route<CaStatusAnswer>()({ kind: 'write', access: { need: 'cluster-admin' } }),

  // Logs
  'GET /v1/instances/:id/logs': route<StreamAnswer>()({ kind: 'local', access: { need: 'logs', tenant: 'handler' }, query: logQuery }),
  'GET /v1/apps/:tenant/:name/logs': route<StreamAnswer>()({ kind: 'local', access: { need: 'logs', tenant: 'path' }, query: logQuery }),
  'POST /v1/instances/:id/exec': route<StreamAnswer>()({
    kind: 'local',
    access: { need: 'deploy', tenant: 'handler' },
    query: fields({ forwarded: parameter<boolean>() }),
    body: fields({ command: field<string[]>(), timeoutSeconds: field<number>().optional() }),
  }),
  'POST /v1/instances/:id/exec/session': route<StreamAnswer>()({
    kind: 'upload',
    access: { need: 'deploy', tenant: 'handler' },
    query: fields({ forwarded: parameter<boolean>() }),
  }),

  // Tenants
  'GET /v1/tenants': route<{ tenants: TenantView[] }>()({ kind: 'read', access: { need: 'read', tenant: 'handler' } }),
  'GET /v1/tenants/:name': route<TenantView>()({ kind: 'read', access: { need: 'read', tenant: 'path', param: 'name' } }),
  'PUT /v1/tenants/:name': route<WriteAnswer<{ overQuota?: { message?: string }[] }>>()({
    kind: 'write',
    access: { need: 'cluster-admin' },
    body: fields({ quota: field<Quota>().optional(), settings: field<TenantSettings>().optional() }),
  }),
  'DELETE /v1/tenants/:name': route<WriteAnswer>()({ kind: 'write', access: { need: 'cluster-admin' } }),

  // Apps
  'POST /v1/deploy': route<DeployAnswer>()({
    kind: 'write',
    access: { need: 'deploy', tenant: 'handler' },
    body: fields({
      fileName: field<string>().optional(),
      content: field<string>().optional(),
      files: field<DeployFile[]>().optional(),
      tenant: field<string>().optional(),
      project: field<string>().optional(),
      projectFallback: field<string>().optional(),
      force: field<boolean>().optional(),
      dryRun: field<boolean>().optional(),
      variables: field<Record<string, string>>().optional(),
      attachments: field<Record<string, string>>().optional(),
      localSources: field<Record<string, LocalSource>>().optional(),
      sets: field<string[]>().optional(),
      profiles: field<string[]>().optional(),
    }),
  }),
  'GET /v1/apps': route<{ apps: App[] }>()({ kind: 'read', access: { need: 'read', tenant: 'handler' }, query: tenantQuery }),
  'GET /v1/apps/:tenant/:name': route<AppView>()({ kind: 'read', access: { need: 'read', tenant: 'path' } }),
  'POST /v1/apps/:tenant/:name/scale': route<WriteAnswer>()({ kind: 'write', access: { need: 'deploy', tenant: 'path' }, body: fields({ replicas: field<number>() }) }),
  'POST /v1/apps/:tenant/:name/rollback': route<WriteAnswer<{ version: number }>>()({
    kind: 'write',
    access: { need: 'deploy', tenant: 'path' },
    body: fields({ toVersion: field<number>().optional() }),
  }),
  'DELETE /v1/apps/:tenant/:name': route<WriteAnswer>()({ kind: 'write', access: { need: 'manage', tenant: 'path' } }),
  'GET /v1/instances': route<{ instances: Instance[] }>()({
    kind: 'read',
    access: { need: 'read', tenant: 'handler' },
    query: fields({ tenant: parameter<string>(), app: parameter<string>(), node: parameter<string>() }),
  }),

  // Policies, volumes, secrets
  'GET /v1/policies': route<{ policies: NetworkPolicy[] }>()({ kind: 'read', access: { need: 'read', tenant: 'handler' }, query: tenantQuery }),
  'GET /v1/policies/test': route<PolicyTestAnswer>()({
    kind: 'read',
    access: { need: 'read', tenant: 'handler' },
    query: fields({ from: parameter<string>(), to: parameter<string>(), port: parameter<number>() }),
  }),
  'PUT /v1/policies/:tenant/:name': route<WriteAnswer>()({
    kind: 'write',
    access: { need: 'manage', tenant: 'path' },
    body: fields({ apps: field<string[]>().optional(), ingress: field<PolicyRule[]>().optional(), egress: field<EgressRule[]>().optional() }),
  }),
  'DELETE /v1/policies/:tenant/:name': route<WriteAnswer>()({ kind: 'write', access: { need: 'manage', tenant: 'path' } }),
  'GET /v1/volumes': route<{ volumes: VolumeView[] }>()({ kind: 'read', access: { need: 'read', tenant: 'handler' }, query: tenantQuery }),
  'PUT /v1/volumes/:tenant/:name': route<WriteAnswer>()({
    kind: 'write',
    access: { need: 'manage', tenant: 'path' },
    body: fields({ sizeBytes: field<number>(), io: field<VolumeIoLimits>().optional(), encrypted: field<boolean>().optional(), node: field<string>().optional() }),
  }),
  'PUT /v1/volumes/:tenant/:name/io': route<WriteAnswer>()({ kind: 'write', access: { need: 'manage', tenant: 'path' }, body: fields({ io: field<VolumeIoLimits>() }) }),
  'DELETE /v1/volumes/:tenant/:name': route<WriteAnswer>()({ kind: 'write', access: { need: 'manage', tenant: 'path' } }),
  'GET /v1/volumes/:tenant/:name/snapshots': route<{ node?: string; snapshots: SnapshotView[] }>()({ kind: 'local', access: { need: 'read', tenant: 'path' }, query: forwardedQuery }),
  'POST /v1/volumes/:tenant/:name/snapshots': route<{ node: string; snapshot: SnapshotView }>()({ kind: 'local', access: { need: 'manage', tenant: 'path' }, query: forwardedQuery }),
  'DELETE /v1/volumes/:tenant/:name/snapshots/:id': route<{ node: string; deleted: string }>()({ kind: 'local', access: { need: 'manage', tenant: 'path' }, query: forwardedQuery }),
  'GET /v1/volumes/:tenant/:name/backup': route<StreamAnswer>()({
    kind: 'local',
    access: { need: 'manage', tenant: 'path' },
    query: fields({ forwarded: parameter<boolean>(), snapshot: parameter<string>(), index: parameter<number>() }),
  }),
  'PUT /v1/volumes/:tenant/:name/restore': route<{ node: string; tenant: string; name: string }>()({
    kind: 'upload',
    access: { need: 'manage', tenant: 'path' },
    query: fields({ forwarded: parameter<boolean>(), node: parameter<string>(), index: parameter<number>() }),
  }),
  'POST /v1/volumes/:tenant/:name/move': route<WriteAnswer<{ from: string; stopped: string[] }>>()({ kind: 'write', access: { need: 'manage', tenant: 'path' }, body: fields({ to: field<string>() }) }),
  'POST /v1/volumes/:tenant/:name/move/copy': route<{ from: string; to: string; archiveBytes: number }>()({ kind: 'local', access: { need: 'manage', tenant: 'path' }, query: forwardedQuery }),
  'PUT /v1/volumes/:tenant/:name/move/data': route<{ node: string; tenant: string; name: string }>()({ kind: 'upload', access: { need: 'manage', tenant: 'path' }, query: forwardedQuery }),
  'POST /v1/volumes/:tenant/:name/move/end': route<WriteAnswer>()({ kind: 'write', access: { need: 'manage', tenant: 'path' }, body: fields({ node: field<string>() }) }),
  'GET /v1/secrets': route<{ secrets: SecretMetadata[] }>()({ kind: 'read', access: { need: 'read', tenant: 'handler' }, query: tenantQuery }),
  'PUT /v1/secrets/:tenant/:name': route<WriteAnswer<{ version: number }>>()({ kind: 'write', access: { need: 'manage', tenant: 'path' }, body: fields({ value: field<string>() }) }),
  'DELETE /v1/secrets/:tenant/:name': route<WriteAnswer>()({ kind: 'write', access: { need: 'manage', tenant: 'path' } }),

  // Config store
  'GET /v1/kv': route<{ entries: KvEntry[] }>()({
    kind: 'read',
    access: { need: 'cluster-read' },
    query: fields({ prefix: parameter<string>(), limit: parameter<number>() }),
  }),
  'GET /v1/kv/*key': route<KvEntry>()({ kind: 'read', access: { need: 'cluster-read' } }),
  'PUT /v1/kv/*key': route<WriteAnswer<{ version: number }>>()({
    kind: 'write',
    access: { need: 'cluster-admin' },
    body: fields({ value: field<string>(), expectVersion: field<number>().optional() }),
  }),
  'DELETE /v1/kv/*key': route<WriteAnswer>()({ kind: 'write', access: { need: 'cluster-admin' }, query: fields({ expectVersion: parameter<number>() }) }),

  // History
  'GET /v1/history': route<{ history: HistoryEntry[] }>()({
    kind: 'read',
    access: { need: 'read', tenant: 'handler' },
    query: fields({ limit: parameter<number>(), before: parameter<number>() }),
  }),

  // Network
  // Every node, every VIP: a cluster-wide view.
  'GET /v1/network': route<NetworkAnswer>()({ kind: 'read', access: { need: 'cluster-read' } }),
  'GET /v1/network/nodes/:id': route<NetworkNodeAnswer>()({ kind: 'read', access: { need: 'cluster-read' } }),
  'GET /v1/network/apps/:tenant/:name': route<NetworkAppAnswer>()({ kind: 'read', access: { need: 'read', tenant: 'path' } }),
  // A tenant network of its own (an app file's `external: true` names one); app files make theirs with their deploy.
  'PUT /v1/networks/:tenant/:name': route<WriteAnswer<{ tenant: string; name: string; cidr: string }>>()({ kind: 'write', access: { need: 'manage', tenant: 'path' }, body: fields({ cidr: field<string>().optional() }) }),
  'DELETE /v1/networks/:tenant/:name': route<WriteAnswer>()({ kind: 'write', access: { need: 'manage', tenant: 'path' } }),

  // Rollouts
  'POST /v1/apps/:tenant/:name/promote': route<WriteAnswer<{ rollout: Rollout }>>()({ kind: 'write', access: { need: 'deploy', tenant: 'path' } }),
  'POST /v1/apps/:tenant/:name/abort': route<WriteAnswer<{ rollout: Rollout }>>()({ kind: 'write', access: { need: 'deploy', tenant: 'path' } }),
  'POST /v1/rebalance': route<WriteAnswer>()({
    kind: 'write',
    access: { need: 'deploy', tenant: 'handler' },
    body: fields({ tenant: field<string>().optional(), name: field<string>().optional() }),
  }),

  // Images
  'GET /v1/images': route<ImageListAnswer>()({ kind: 'local', access: { need: 'any' } }),
  'POST /v1/images/pull': route<ImagesAnswer>()({ kind: 'write', access: { need: 'cluster-admin' }, body: fields({ ref: field<string>() }) }),
  'POST /v1/images/upload': route<ImagesAnswer>()({ kind: 'upload', access: { need: 'cluster-admin' }, query: fields({ name: parameter<string>() }) }),
  'POST /v1/images/import': route<ImagesAnswer>()({
    kind: 'write',
    access: { need: 'cluster-admin' },
    body: fields({ path: field<string>(), name: field<string>().optional() }),
  }),

  // Access
  'GET /v1/tokens': route<{ tokens: TokenView[] }>()({ kind: 'read', access: { need: 'cluster-admin' } }),
  'POST /v1/tokens': route<TokenView & { token: string | null }>()({
    kind: 'write',
    access: { need: 'cluster-admin' },
    body: fields({ name: field<string>(), role: field<ApiRole>(), tenants: field<string[]>().optional(), expiresAt: field<number>().optional() }),
  }),
  'DELETE /v1/tokens/:id': route<WriteAnswer>()({ kind: 'write', access: { need: 'cluster-admin' } }),
  'GET /v1/audit': route<AuditAnswer>()({
    kind: 'local',
    access: { need: 'manage', tenant: 'handler' },
    query: fields({ tenant: parameter<string>(), user: parameter<string>(), since: parameter<string>(), limit: parameter<number>(), all: parameter<boolean>() }),
  }),
};

/**
 * Every declaration by key, as the server and the tests walk them. (Also the
 * check that each key is `METHOD /path`; a `satisfies` on `contract` would
 * instead widen the declarations' inferred query and body types.)
 */
export const declarations: Readonly<Record<RouteKey, AnyRouteDeclaration>> = contract;

/** The contract's type: what the client's types are read from. */
export type Contract = typeof contract;

/** A declared route's key. */
export type DeclaredRoute = keyof Contract;

/** The keys of the routes of kind `Kind`. */
export type RoutesOfKind<Kind extends RouteKind> = { [Key in DeclaredRoute]: Contract[Key]['kind'] extends Kind ? Key : never }[DeclaredRoute];

/** What route `Key` answers with a 200. */
export type AnswerOf<Key extends DeclaredRoute> = Contract[Key] extends RouteDeclaration<RouteKind, FieldsDeclaration | undefined, FieldsDeclaration | undefined, infer Answer> ? Answer : never;

/** The query route `Key` takes (a read's `stale`, `index` and `wait` aside). */
export type QueryOf<Key extends DeclaredRoute> = Contract[Key] extends { query?: infer Query } ? (Query extends FieldsDeclaration ? InputOf<Query> : Record<never, never>) : Record<never, never>;

/** The JSON body route `Key` takes; `undefined` for a route without one. */
export type BodyOf<Key extends DeclaredRoute> = Contract[Key] extends { body?: infer Body } ? (Body extends FieldsDeclaration ? InputOf<Body> : undefined) : undefined;

/** The method of a declared route (re-exported for the server's tables). */
export type { Method };
