/**
 * Apply handlers for API tokens (docs/user-guide.md, Access). Pure: they
 * read the state and the command only. A token is kept as its hash; the API
 * checks every request's bearer against the records of its own replica, so
 * a revocation holds on a node from the moment the node applies it.
 */
import { ErrorCode } from './errors.js';
import { limitProblem, refuse, type ApplyContext, type ClusterState, type Plan } from './state.js';
import type { Command } from './types.js';
import { either, fieldPath, integer, list, object, oneOf, optional, refine, text } from './schema.js';
import { name, names, LIMITS } from './fields.js';
import type { CommandModule } from './command.js';

type CommandOf<T extends Command['type']> = Extract<Command, { type: T }>;

/** apitoken.create: a new token record; the id and the hash must be new. */
export function planApiTokenCreate(state: ClusterState, command: CommandOf<'apitoken.create'>, context: ApplyContext): Plan {
  if (state.apiTokens.has(command.id)) return refuse(ErrorCode.alreadyExists, `an API token with id "${command.id}" already exists`, 'id');
  for (const record of state.apiTokens.values()) {
    if (record.hash === command.hash) return refuse(ErrorCode.alreadyExists, `that token is already registered (as "${record.id}")`, 'hash');
  }
  const limit = limitProblem('apiTokens', state.apiTokens.size, `cannot create API token "${command.name}"`);
  if (limit) return { ok: false, error: limit };
  return {
    ok: true,
    commit: () => {
      state.apiTokens.set(command.id, {
        id: command.id,
        name: command.name,
        role: command.role,
        tenants: [...command.tenants],
        hash: command.hash,
        ...(command.expiresAt === undefined ? {} : { expiresAt: command.expiresAt }),
        createdIndex: context.index,
        createdAt: context.time,
        createdBy: context.actor,
      });
      const expiry = command.expiresAt === undefined ? '' : `, expires ${new Date(command.expiresAt).toISOString()}`;
      return {
        value: { id: command.id, name: command.name, role: command.role, tenants: command.tenants, ...(command.expiresAt === undefined ? {} : { expiresAt: command.expiresAt }), createdIndex: context.index },
        history: { target: `api token ${command.id}`, summary: `created "${command.name}": ${command.role} in ${command.tenants.join(', ')}${expiry}` },
      };
    },
  };
}

/** apitoken.revoke: removes the record; an unknown id is not-found. */
export function planApiTokenRevoke(state: ClusterState, command: CommandOf<'apitoken.revoke'>): Plan {
  const record = state.apiTokens.get(command.id);
  if (record === undefined) return refuse(ErrorCode.notFound, `no API token has id "${command.id}"`, 'id');
  return {
    ok: true,
    commit: () => {
      state.apiTokens.delete(command.id);
      return { value: { id: command.id, revoked: true }, history: { target: `api token ${command.id}`, summary: `revoked "${record.name}"` } };
    },
  };
}

// -----------------------------------------------------------------------------
// The commands of this file as modules: schema, plan, proposers, version (listed in commands.ts).

/** `apitoken.create`. */
export const apitokenCreateCommand: CommandModule<'apitoken.create'> = {
  type: 'apitoken.create',
  since: 2,
  proposers: ['user', 'leader'],
  schema: refine(
    object<CommandOf<'apitoken.create'>>({
      type: oneOf(['apitoken.create']),
      id: text({ bytesMin: 4, bytesMax: 32, pattern: /^[a-z0-9][a-z0-9-]*$/, patternHint: 'lowercase letters, digits and -' }),
      name: text({ bytesMin: 1, bytesMax: 63, pattern: /^[A-Za-z0-9][A-Za-z0-9_.@-]*$/, patternHint: 'letters, digits, _ . @ and -' }),
      role: oneOf(['cluster-admin', 'tenant-admin', 'deployer', 'viewer']),
      tenants: list(either<string>((input) => input === '*', oneOf(['*']), name), { min: 1, max: LIMITS.namesMax, unique: true }),
      hash: text({ bytesMin: 64, bytesMax: 64, pattern: /^[0-9a-f]{64}$/, patternHint: 'a SHA-256 hash in lowercase hex' }),
      expiresAt: optional(integer({ min: 1, max: Number.MAX_SAFE_INTEGER })),
    }),
    (command, path) => {
      const wide = command.tenants.includes('*');
      if (wide && command.tenants.length > 1) return { field: fieldPath(path, 'tenants'), text: '"*" (every tenant) stands alone in tenants' };
      if (command.role === 'cluster-admin' && !wide) return { field: fieldPath(path, 'tenants'), text: 'a cluster-admin token is for every tenant: tenants must be ["*"]' };
      if ((command.role === 'tenant-admin' || command.role === 'deployer') && wide) return { field: fieldPath(path, 'tenants'), text: `a ${command.role} token names its tenants ("*" is for viewer and cluster-admin)` };
      return undefined;
    },
  ),
  plan: planApiTokenCreate,
};

/** `apitoken.revoke`. */
export const apitokenRevokeCommand: CommandModule<'apitoken.revoke'> = {
  type: 'apitoken.revoke',
  since: 2,
  proposers: ['user'],
  schema: object<CommandOf<'apitoken.revoke'>>({ type: oneOf(['apitoken.revoke']), id: text({ bytesMin: 4, bytesMax: 32, pattern: /^[a-z0-9][a-z0-9-]*$/, patternHint: 'lowercase letters, digits and -' }) }),
  plan: planApiTokenRevoke,
};
