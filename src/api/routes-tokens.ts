/**
 * API tokens (create, list, revoke) and the audit log of this node.
 * docs/api.md, Access.
 */
import { randomBytes } from 'node:crypto';
import { hashToken } from '../state/secrets.js';
import { validateCommand } from '../state/validate.js';
import type { ApiTokenRecord, Command } from '../state/types.js';
import { isClusterWide, allows } from './access.js';
import { ApiCode, ApiError, fromStateError, invalidArgument } from './errors.js';
import { queryBoolean, queryInteger, queryName } from './input.js';
import { serve, type Route, type RouteContext } from './router.js';
import type { AuditEvent } from './audit.js';

/** How an API token begins (a join token begins `hm1.`). */
export const API_TOKEN_PREFIX = 'hma1.';
const AUDIT_LIMIT_MAX = 10_000;
const AUDIT_LIMIT_DEFAULT = 100;
/** How long `?all=true` waits for each other node. */
const AUDIT_PEER_TIMEOUT_MS = 5000;

/** A fresh API token: the prefix and 32 random bytes. */
export function generateApiToken(): string {
  return `${API_TOKEN_PREFIX}${randomBytes(32).toString('base64url')}`;
}

/** A token's id: the first 12 hex digits of its hash (so a retry of a create recognizes its own token). */
export function apiTokenId(token: string): string {
  return hashToken(token).slice(0, 12);
}

/** The record without its hash, as lists show it. */
function shownToken(record: ApiTokenRecord): Omit<ApiTokenRecord, 'hash'> & { expired: boolean } {
  const { hash: _hash, ...shown } = record;
  return { ...shown, expired: record.expiresAt !== undefined && record.expiresAt <= Date.now() };
}

/**
 * `since` as ms since the epoch: an ISO 8601 time, or a duration back from
 * now (`90s`, `30m`, `1h`, `7d`). Throws a 400 for anything else.
 */
export function parseSince(text: string, now: number): number {
  const duration = /^(\d{1,9})(s|m|h|d)$/.exec(text);
  if (duration !== null) {
    const unitMs = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[duration[2] as 's' | 'm' | 'h' | 'd'];
    return now - Number(duration[1]) * unitMs;
  }
  const time = /^\d{4}-\d{2}-\d{2}/.test(text) ? Date.parse(text) : NaN;
  if (Number.isNaN(time)) throw invalidArgument('since', `since must be a duration back from now (90s, 30m, 1h, 7d) or an ISO 8601 time, got ${JSON.stringify(text.slice(0, 40))}`);
  return time;
}

/**
 * The token routes need cluster-admin. `GET /v1/audit` needs tenant-admin
 * (or cluster-admin): a tenant-admin sees the records of its tenants only.
 */
export const tokenRoutes: Route[] = [
  serve('GET /v1/tokens', {
    read(context) {
      return { tokens: context.backend.machine.apiTokens().map(shownToken) };
    },
  }),
  serve('POST /v1/tokens', {
    async write(context) {
      const { name, role, expiresAt } = context.body;
      const tenants = context.body.tenants ?? (role === 'cluster-admin' || role === 'viewer' ? ['*'] : undefined);
      if (tenants === undefined) throw invalidArgument('tenants', `a ${String(role)} token needs tenants: the tenants it acts in`);
      const token = generateApiToken();
      const id = apiTokenId(token);
      const command: Command = { type: 'apitoken.create', id, name, role, tenants, hash: hashToken(token), ...(expiresAt === undefined ? {} : { expiresAt }) };
      // Checked before the clock is compared with expiresAt: until then its type is the contract's word only.
      const validated = validateCommand(command);
      if (!validated.ok) throw fromStateError(validated.error);
      if (expiresAt !== undefined && expiresAt <= Date.now()) throw invalidArgument('expiresAt', 'expiresAt is in the past');
      return context.commit([command], (results) => {
        const value = (results[0]?.ok ? results[0].value : undefined) as { id?: string } | undefined;
        // A retry (same Idempotency-Key) answers the first attempt's record, whose token this attempt does not know.
        return value?.id === id ? { ...value, token } : { ...value, token: null };
      });
    },
  }),
  serve('DELETE /v1/tokens/:id', {
    async write(context) {
      return context.commit([{ type: 'apitoken.revoke', id: context.params.id! }]);
    },
  }),
  serve('GET /v1/audit', {
    async handle(context) {
      const log = context.audit;
      if (log === undefined) throw new ApiError(404, ApiCode.notFound, `node ${context.backend.nodeId} keeps no audit log`);
      const tenant = queryName(context.query, 'tenant');
      if (tenant !== undefined) context.authorize('manage', tenant);
      const user = context.query.get('user') ?? undefined;
      const since = context.query.get('since');
      const limit = queryInteger(context.query, 'limit', { min: 1, max: AUDIT_LIMIT_MAX }) ?? AUDIT_LIMIT_DEFAULT;
      const principal = context.principal;
      const visibleTenants = isClusterWide(principal) ? undefined : principal.tenants.filter((name) => allows(principal, 'manage', name));
      const events = await log.read({
        limit,
        ...(tenant === undefined ? {} : { tenant }),
        ...(user === undefined ? {} : { user }),
        ...(since === null ? {} : { sinceMs: parseSince(since, Date.now()) }),
        ...(visibleTenants === undefined ? {} : { visibleTenants }),
      });
      if (!queryBoolean(context.query, 'all')) return { status: 200, json: { node: context.backend.nodeId, events } };
      return { status: 200, json: await gatherAudit(context, events, limit) };
    },
  }),
];

/**
 * `GET /v1/audit?all=true`: this node's events and every other member's
 * (asked with the caller's token, so the same filtering applies), merged
 * oldest first, the newest `limit` kept; nodes that did not answer are
 * listed in `unreachable`.
 */
async function gatherAudit(context: RouteContext, own: AuditEvent[], limit: number): Promise<{ nodes: string[]; unreachable: { node: string; reason: string }[]; events: AuditEvent[] }> {
  const search = new URLSearchParams(context.query);
  search.delete('all');
  const others = context.backend.machine.nodes().filter((node) => node.id !== context.backend.nodeId && node.status !== 'left');
  const unreachable: { node: string; reason: string }[] = [];
  const answers = await Promise.all(others.map(async (node): Promise<AuditEvent[]> => {
    try {
      const response = await context.peers.request(node.id, node.addresses.api, `/v1/audit?${search}`, {
        method: 'GET',
        headers: context.authorization ? { authorization: context.authorization } : {},
        signal: AbortSignal.any([context.signal, AbortSignal.timeout(AUDIT_PEER_TIMEOUT_MS)]),
        headersTimeout: AUDIT_PEER_TIMEOUT_MS,
        bodyTimeout: AUDIT_PEER_TIMEOUT_MS,
      });
      const text = await response.body.text();
      if (response.statusCode !== 200) {
        unreachable.push({ node: node.id, reason: `answered ${response.statusCode}` });
        return [];
      }
      return (JSON.parse(text) as { events?: AuditEvent[] }).events ?? [];
    } catch (error) {
      unreachable.push({ node: node.id, reason: (error as Error).message });
      return [];
    }
  }));
  const merged = [own, ...answers].flat().sort((left, right) => (left.stageTimestamp < right.stageTimestamp ? -1 : left.stageTimestamp > right.stageTimestamp ? 1 : 0));
  return { nodes: [context.backend.nodeId, ...others.map((node) => node.id)], unreachable, events: merged.slice(Math.max(0, merged.length - limit)) };
}
