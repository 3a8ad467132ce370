/**
 * The cluster state as data, and the helpers every apply handler shares.
 *
 * Maps keep insertion order; every node inserts in the same (log) order and a
 * snapshot stores the entries in that order, so iteration, and therefore every
 * later result and snapshot, is identical on every node. Pure: no Node API.
 */
import { assert } from '../../consensus/core/assert.js';
import { ErrorCode, stateError, type StateError } from './errors.js';
import {
  DEFAULT_TENANT,
  type App,
  type ClusterNetwork,
  type TenantNetwork,
  type CommandResult,
  type HistoryEntry,
  type Instance,
  type KvEntry,
  type NetworkPolicy,
  type NodeRecord,
  type Secret,
  type Tenant,
  type TokenRecord,
  type ApiTokenRecord,
  type CaRecord,
  type Volume,
} from './types.js';

/** The whole replicated state. Owned by `ClusterStateMachine`; handlers change it only in a plan's `commit`. */
export interface ClusterState {
  /** Index of the last applied entry; 0 before any. */
  appliedIndex: number;
  tenants: Map<string, Tenant>;
  /** Keyed by `tenantKey(tenant, name)`. */
  apps: Map<string, App>;
  /** Keyed by instance id. */
  instances: Map<string, Instance>;
  nodes: Map<string, NodeRecord>;
  /** Keyed by `tenantKey(tenant, name)`. */
  policies: Map<string, NetworkPolicy>;
  /** Keyed by `tenantKey(tenant, name)`. */
  volumes: Map<string, Volume>;
  /** Keyed by `tenantKey(tenant, name)`. */
  secrets: Map<string, Secret>;
  kv: Map<string, KvEntry>;
  /** Oldest first, at most HISTORY_MAX. */
  history: HistoryEntry[];
  /** requestId → first result, oldest (lowest index) first, at most REQUESTS_REMEMBERED_MAX. */
  requests: Map<string, CommandResult>;
  token: TokenRecord | undefined;
  ca: CaRecord | undefined;
  /** The cluster network; undefined until the first `network.configure` (and in states written before it existed). */
  network: ClusterNetwork | undefined;
  /** Tenant networks, keyed by `tenantKey(tenant, name)` (empty in states written before them). */
  networks: Map<string, TenantNetwork>;
  /** API tokens by id (empty in states written before they existed). */
  apiTokens: Map<string, ApiTokenRecord>;
  /** The highest `Tenant.uidOffset` ever given (0: none but `default`'s); never goes down, so no offset is given twice. */
  tenantUidOffsetLast: number;
  /** The cluster version (version.ts), raised by `cluster.version` only; undefined before the first: CLUSTER_VERSION_FLOOR. */
  clusterVersion: number | undefined;
}

/** An empty state, as before the first entry. */
export function emptyState(): ClusterState {
  return {
    appliedIndex: 0,
    tenants: new Map(),
    apps: new Map(),
    instances: new Map(),
    nodes: new Map(),
    policies: new Map(),
    volumes: new Map(),
    secrets: new Map(),
    kv: new Map(),
    history: [],
    requests: new Map(),
    token: undefined,
    ca: undefined,
    network: undefined,
    networks: new Map(),
    apiTokens: new Map(),
    tenantUidOffsetLast: 0,
    clusterVersion: undefined,
  };
}

/** Cluster-wide caps on entity counts; reaching one refuses the command with 'limit-reached'. */
export const ENTITIES_MAX = {
  tenants: 10_000,
  apps: 100_000,
  instances: 1_000_000,
  nodes: 10_000,
  policies: 100_000,
  volumes: 100_000,
  secrets: 100_000,
  kvKeys: 1_000_000,
  apiTokens: 10_000,
  networks: 100_000,
} as const;

/** The key of a tenant-scoped entity. Names are DNS labels, so '/' cannot occur in either part. */
export function tenantKey(tenant: string, name: string): string {
  return `${tenant}/${name}`;
}

/** What a handler knows about the entry being applied. */
export interface ApplyContext {
  index: number;
  /** The proposer's clock, ms since the epoch. */
  time: number;
  actor: string;
}

/** What a successful commit returns: the result's value and the history line. */
export interface CommitOutcome {
  value?: unknown;
  /** Absent for commands kept out of history (observed-state reports). */
  history?: { target: string; summary: string };
}

/**
 * A handler's decision. Every check against the state happens while the plan
 * is made; `commit` only changes the state and cannot fail. So a refused
 * command changes nothing, and `check` can run a plan without committing it.
 */
export type Plan = { ok: true; commit: () => CommitOutcome } | { ok: false; error: StateError };

/** A refused plan. */
export function refuse(code: StateError['code'], message: string, field?: string): Plan {
  return { ok: false, error: stateError(code, message, field) };
}

/**
 * The tenant named `name`. The `default` tenant exists implicitly: when it has
 * no record yet, this returns a fresh one (no quota) that `adoptTenant`
 * stores if the command succeeds. Any other missing tenant is 'not-found'.
 */
export function lookupTenant(
  state: ClusterState,
  name: string,
  where: { field: string; action: string; context: ApplyContext },
): { ok: true; tenant: Tenant } | { ok: false; error: StateError } {
  const tenant = state.tenants.get(name);
  if (tenant) return { ok: true, tenant };
  if (name === DEFAULT_TENANT) {
    return { ok: true, tenant: { name, quota: {}, createdIndex: where.context.index, createdAt: where.context.time, uidOffset: 0 } };
  }
  const message = `${where.action}: tenant "${name}" does not exist; create it first or use the "${DEFAULT_TENANT}" tenant`;
  return { ok: false, error: stateError(ErrorCode.notFound, message, where.field) };
}

/** Stores an implicit tenant returned by `lookupTenant` (a no-op when it is already stored). */
export function adoptTenant(state: ClusterState, tenant: Tenant): void {
  if (!state.tenants.has(tenant.name)) state.tenants.set(tenant.name, tenant);
}

/** Refuses a create when a cluster-wide cap is reached. */
export function limitProblem(kind: keyof typeof ENTITIES_MAX, size: number, action: string): StateError | undefined {
  if (size < ENTITIES_MAX[kind]) return undefined;
  return stateError(ErrorCode.limitReached, `${action}: the cluster holds the most ${kind} it allows (${ENTITIES_MAX[kind]}); delete some first`);
}

/** The tenant's apps, in state order. */
export function appsOfTenant(state: ClusterState, tenant: string): App[] {
  return [...state.apps.values()].filter((app) => app.tenant === tenant);
}

/** The current spec of an app: the version its instances should run (`app.version`; the newest after a rollback is not current). */
export function currentSpec(app: App): App['versions'][number]['spec'] {
  const current = app.versions.find((entry) => entry.version === app.version) ?? app.versions[app.versions.length - 1];
  assert(current !== undefined, `app ${app.tenant}/${app.name} has no versions`);
  return current.spec;
}
