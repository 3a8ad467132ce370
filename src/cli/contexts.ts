/**
 * CLI contexts, as `docker context`: named sets of node addresses, an API
 * token and the cluster's CA, kept in the user's config folder
 * (`$HIVEMIND_CONFIG`, else `$XDG_CONFIG_HOME/hivemind`, else
 * `~/.config/hivemind`) in `contexts.json`, mode 0600 in a 0700 folder: the
 * file holds tokens. The token and the CA are stored by value, so a context
 * works from any folder, without the files it was made from.
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { CliError } from './errors.js';

/** One context. */
export interface CliContextRecord {
  /** Node addresses, tried in turn (the first that answers wins). */
  addresses: string[];
  /** An API token, pinned or bare; absent: the CLI's usual lookup. */
  token?: string;
  /** The cluster CA certificates (PEM); absent: the CLI's usual lookup (or the CA a pinned token names). */
  caPem?: string;
}

/** The stored contexts and the one in use. */
export interface ContextStore {
  current?: string;
  contexts: Record<string, CliContextRecord>;
}

/** Context names: as Docker's, letters, digits, `.`, `_` and `-`, starting with a letter or digit. */
export const CONTEXT_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;
/** The store's file name in the config folder. */
export const CONTEXTS_FILE_NAME = 'contexts.json';

/** The user's config folder for the CLI. */
export function configFolder(environment: NodeJS.ProcessEnv = process.env): string {
  if (environment.HIVEMIND_CONFIG !== undefined && environment.HIVEMIND_CONFIG !== '') return environment.HIVEMIND_CONFIG;
  const base = environment.XDG_CONFIG_HOME !== undefined && environment.XDG_CONFIG_HOME !== '' ? environment.XDG_CONFIG_HOME : join(homedir(), '.config');
  return join(base, 'hivemind');
}

/** The stored contexts; an empty store when there is no file yet. A file that is not a store is an error naming it. */
export function readContexts(folder: string = configFolder()): ContextStore {
  const path = join(folder, CONTEXTS_FILE_NAME);
  if (!existsSync(path)) return { contexts: {} };
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch (error) {
    throw new CliError(`cannot read the CLI contexts in ${path}: ${(error as Error).message}; fix or remove the file`);
  }
  const store = parsed as Partial<ContextStore>;
  const valid =
    typeof store === 'object' && store !== null && typeof store.contexts === 'object' && store.contexts !== null &&
    (store.current === undefined || typeof store.current === 'string') &&
    Object.values(store.contexts).every((record) => Array.isArray(record?.addresses) && record.addresses.every((address) => typeof address === 'string') && (record.token === undefined || typeof record.token === 'string') && (record.caPem === undefined || typeof record.caPem === 'string'));
  if (!valid) throw new CliError(`${path} is not a file of CLI contexts; fix or remove it`);
  return { ...(store.current !== undefined ? { current: store.current } : {}), contexts: store.contexts as Record<string, CliContextRecord> };
}

/** Writes the store (0600, through a temporary file and a rename, so a reader never sees half of it). */
export function writeContexts(store: ContextStore, folder: string = configFolder()): void {
  mkdirSync(folder, { recursive: true, mode: 0o700 });
  const path = join(folder, CONTEXTS_FILE_NAME);
  const temporary = `${path}.${process.pid}.tmp`;
  writeFileSync(temporary, `${JSON.stringify(store, null, 2)}\n`, { mode: 0o600 });
  chmodSync(temporary, 0o600);
  renameSync(temporary, path);
}
