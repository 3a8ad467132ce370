/**
 * Apply handlers for the config store (a KV store with compare-and-set, like
 * Consul's) and the join token. Pure: they read the state and the command only.
 *
 * A key's `version` is the Raft index of the entry that last wrote it, so it
 * grows with every write and is the same on every node. `expectVersion`:
 * absent writes unconditionally; 0 means "the key must not exist"; N means
 * "the key's version must be N". Otherwise the command is refused with
 * 'version-mismatch', and the message gives the current version.
 */
import { ErrorCode } from './errors.js';
import { limitProblem, refuse, type ApplyContext, type ClusterState, type Plan } from './state.js';
import type { Command, KvEntry } from './types.js';
import { bytes, object, oneOf, optional, text } from './schema.js';
import { count, kvKey, nonce, LIMITS } from './fields.js';
import type { CommandModule } from './command.js';

type CommandOf<T extends Command['type']> = Extract<Command, { type: T }>;

function shownKey(key: string): string {
  return JSON.stringify(key.length > 80 ? `${key.slice(0, 77)}...` : key);
}

/** The refusal for a failed compare, or undefined when `expectVersion` holds (or is absent). */
function compareProblem(existing: KvEntry | undefined, expectVersion: number | undefined, action: string): Plan | undefined {
  if (expectVersion === undefined) return undefined;
  const current = existing ? `it is at version ${existing.version}` : 'it does not exist';
  if (expectVersion === 0 && existing) {
    return refuse(ErrorCode.versionMismatch, `${action}: expected it not to exist, but ${current}; read it again and retry`, 'expectVersion');
  }
  if (expectVersion !== 0 && existing?.version !== expectVersion) {
    return refuse(ErrorCode.versionMismatch, `${action}: expected version ${expectVersion}, but ${current}; read it again and retry`, 'expectVersion');
  }
  return undefined;
}

/** kv.put: writes the key; its version becomes this entry's index. */
export function planKvPut(state: ClusterState, command: CommandOf<'kv.put'>, context: ApplyContext): Plan {
  const action = `cannot put key ${shownKey(command.key)}`;
  const existing = state.kv.get(command.key);
  const mismatch = compareProblem(existing, command.expectVersion, action);
  if (mismatch) return mismatch;
  const limit = existing ? undefined : limitProblem('kvKeys', state.kv.size, action);
  if (limit) return { ok: false, error: limit };
  return {
    ok: true,
    commit: () => {
      const entry: KvEntry = { key: command.key, value: command.value, version: context.index, createIndex: existing?.createIndex ?? context.index };
      state.kv.set(command.key, entry);
      return {
        value: { key: command.key, version: entry.version },
        history: { target: `kv ${command.key}`, summary: `set (${command.value.length} characters, version ${entry.version})` },
      };
    },
  };
}

/** kv.delete: removes the key. Deleting a missing key without `expectVersion` (or with 0) succeeds with `deleted: false`. */
export function planKvDelete(state: ClusterState, command: CommandOf<'kv.delete'>): Plan {
  const action = `cannot delete key ${shownKey(command.key)}`;
  const existing = state.kv.get(command.key);
  const mismatch = compareProblem(existing, command.expectVersion, action);
  if (mismatch) return mismatch;
  return {
    ok: true,
    commit: () => {
      state.kv.delete(command.key);
      const summary = existing ? `deleted (was version ${existing.version})` : 'deleted (was absent)';
      return { value: { key: command.key, deleted: existing !== undefined }, history: { target: `kv ${command.key}`, summary } };
    },
  };
}

/** token.set: stores the join token's hash and sealed value; the token itself never enters the log. */
export function planTokenSet(state: ClusterState, command: CommandOf<'token.set'>, context: ApplyContext): Plan {
  return {
    ok: true,
    commit: () => {
      state.token = { hash: command.hash, sealed: command.sealed, nonce: command.nonce, rotatedIndex: context.index };
      return { value: { rotatedIndex: context.index }, history: { target: 'join token', summary: 'rotated' } };
    },
  };
}

// -----------------------------------------------------------------------------
// The commands of this file as modules: schema, plan, proposers, version (listed in commands.ts).

/** `kv.put`. */
export const kvPutCommand: CommandModule<'kv.put'> = {
  type: 'kv.put',
  since: 1,
  proposers: ['user'],
  schema: object<CommandOf<'kv.put'>>({
    type: oneOf(['kv.put']),
    key: kvKey,
    value: text({ bytesMax: LIMITS.kvValueBytesMax, printable: false }),
    expectVersion: optional(count),
  }),
  plan: planKvPut,
};

/** `kv.delete`. */
export const kvDeleteCommand: CommandModule<'kv.delete'> = {
  type: 'kv.delete',
  since: 1,
  proposers: ['user'],
  schema: object<CommandOf<'kv.delete'>>({ type: oneOf(['kv.delete']), key: kvKey, expectVersion: optional(count) }),
  plan: planKvDelete,
};

/** `token.set`. */
export const tokenSetCommand: CommandModule<'token.set'> = {
  type: 'token.set',
  since: 1,
  proposers: ['user', 'leader'],
  schema: object<CommandOf<'token.set'>>({
    type: oneOf(['token.set']),
    hash: text({ bytesMin: 64, bytesMax: 64, pattern: /^[0-9a-f]{64}$/, patternHint: 'a SHA-256 hash in lowercase hex' }),
    sealed: bytes({ bytesMin: LIMITS.sealTagBytes, bytesMax: LIMITS.tokenSealedBytesMax }),
    nonce,
  }),
  plan: planTokenSet,
};
