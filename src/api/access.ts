/**
 * Who may do what (docs/user-guide.md, Access). Pure: a caller's principal,
 * what a route needs, and whether one allows the other.
 *
 * A role grants permissions within its tenants:
 *
 *   viewer         read
 *   deployer       read, logs, deploy (deploy, scale, rollback, promote, abort, rebalance)
 *   tenant-admin   read, logs, deploy, manage (delete apps; secrets, volumes, policies)
 *   cluster-admin  all of them in every tenant, and the cluster itself (nodes,
 *                  tenants and quotas, tokens, the CA, the config store, images)
 *
 * A principal whose tenants are `*` holds its role in every tenant, and may
 * read the cluster's own records (nodes' certificates, the CA, the config
 * store, metrics, the whole history) when it can read at all.
 */
import { ALL_TENANTS, type ApiRole, type ApiTokenRecord, type HistoryEntry } from '../state/types.js';

/** What a request does within a tenant. */
export type Permission = 'read' | 'logs' | 'deploy' | 'manage';

/** What a route needs (see `Route.access`). */
export type Access =
  /** Any valid token. */
  | { need: 'any' }
  /** A cluster-wide token that may read (a cluster-admin, or a viewer of `*`). */
  | { need: 'cluster-read' }
  | { need: 'cluster-admin' }
  /** `permission` in the tenant the path's `:tenant` (or `param`) names. */
  | { need: Permission; tenant: 'path'; param?: string }
  /** `permission` in tenants the handler finds (in the body, or by filtering what it answers). */
  | { need: Permission; tenant: 'handler' };

/** The caller of a request, from its token. */
export interface Principal {
  /** What history and the state record as the actor: `token:<8 hex>` for the join token, `user:<name>/<id>` for an API token. */
  actor: string;
  /** The user or robot the token is for (`join-token` for the join token). */
  user: string;
  /** The API token's id; absent for the join token and anonymous callers. */
  tokenId?: string;
  role: ApiRole;
  /** Where the role applies; `['*']`: every tenant. */
  tenants: readonly string[];
}

/** The principal an API token's record grants at `nowMs` (ms since the epoch), or `expired` from its `expiresAt` on. */
export function tokenPrincipal(record: Readonly<ApiTokenRecord>, nowMs: number): { ok: true; principal: Principal } | { ok: false; reason: 'expired' } {
  if (record.expiresAt !== undefined && record.expiresAt <= nowMs) return { ok: false, reason: 'expired' };
  return { ok: true, principal: { actor: `user:${record.name}/${record.id}`, user: record.name, tokenId: record.id, role: record.role, tenants: [...record.tenants] } };
}

/** A caller of an open route (no token asked). */
export const ANONYMOUS: Principal = { actor: 'anonymous', user: 'anonymous', role: 'viewer', tenants: [] };

const GRANTS: Record<ApiRole, readonly Permission[]> = {
  'cluster-admin': ['read', 'logs', 'deploy', 'manage'],
  'tenant-admin': ['read', 'logs', 'deploy', 'manage'],
  deployer: ['read', 'logs', 'deploy'],
  viewer: ['read'],
};

/** The least role that holds `permission`. */
export function roleFor(permission: Permission): ApiRole {
  return permission === 'read' ? 'viewer' : permission === 'manage' ? 'tenant-admin' : 'deployer';
}

/** Whether the principal's role applies in every tenant. */
export function isClusterWide(principal: Principal): boolean {
  return principal.tenants.includes(ALL_TENANTS);
}

/** Whether `principal` holds `permission` in `tenant`. */
export function allows(principal: Principal, permission: Permission, tenant: string): boolean {
  if (!GRANTS[principal.role].includes(permission)) return false;
  return isClusterWide(principal) || principal.tenants.includes(tenant);
}

/** Whether `principal` meets a cluster-level need (`any`, `cluster-read`, `cluster-admin`). */
export function allowsCluster(principal: Principal, need: 'any' | 'cluster-read' | 'cluster-admin'): boolean {
  if (need === 'any') return true;
  if (need === 'cluster-admin') return principal.role === 'cluster-admin';
  return isClusterWide(principal);
}

/** What a refusal says the caller needed: `the role deployer in tenant "acme"`. */
export function needText(need: Access['need'], tenant?: string): string {
  if (need === 'any') return 'a valid token';
  if (need === 'cluster-admin') return 'the role cluster-admin';
  if (need === 'cluster-read') return 'a cluster-wide role (viewer of "*" or cluster-admin)';
  return `the role ${roleFor(need)} (or above) in tenant "${tenant ?? '?'}"`;
}

/** What the caller is: `the token "ci" (deployer in acme)`. */
export function principalText(principal: Principal): string {
  const where = isClusterWide(principal) ? 'every tenant' : principal.tenants.join(', ');
  return `${principal.tokenId === undefined ? principal.user : `the token "${principal.user}" (${principal.tokenId})`} is ${principal.role} in ${where}`;
}

/**
 * The tenants a history entry is about, read from its target (`app acme/web`,
 * `apps acme/web, acme/db`, `instance acme.web.0.1`, `tenant acme`, ...);
 * undefined for the cluster's own records (nodes, tokens, the CA, kv).
 */
export function historyTenants(entry: Pick<HistoryEntry, 'target'>): string[] | undefined {
  const space = entry.target.indexOf(' ');
  if (space === -1) return undefined;
  const kind = entry.target.slice(0, space);
  const rest = entry.target.slice(space + 1);
  switch (kind) {
    case 'tenant':
      return [rest];
    case 'app':
    case 'policy':
    case 'secret':
    case 'volume':
      return [rest.split('/')[0]!];
    case 'apps':
      return [...new Set(rest.split(', ').map((reference) => reference.split('/')[0]!))];
    case 'instance':
      return [rest.split('.')[0]!];
    default:
      return undefined;
  }
}

/** Whether `principal` may see a history entry: a cluster-wide reader sees all, others their tenants' entries. */
export function seesHistory(principal: Principal, entry: Pick<HistoryEntry, 'target'>): boolean {
  if (isClusterWide(principal)) return true;
  const tenants = historyTenants(entry);
  return tenants !== undefined && tenants.length > 0 && tenants.every((tenant) => allows(principal, 'read', tenant));
}
