/**
 * Apply handlers for API tokens (docs/user-guide.md, Access). Pure: they
 * read the state and the command only. A token is kept as its hash; the API
 * checks every request's bearer against the records of its own replica, so
 * a revocation holds on a node from the moment the node applies it.
 */
import { ErrorCode } from './errors.js';
import { limitProblem, refuse, type ApplyContext, type ClusterState, type Plan } from './state.js';
import type { Command } from './types.js';

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
