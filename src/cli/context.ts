/**
 * What every command gets from the global flags: the node's addresses, the
 * token, the output mode, each from its flag or variable, else from the
 * context in use (contexts.ts), else the defaults. Commands read options through `contextOf(command)`
 * and never look at `process.env` themselves.
 */
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { readLocalAdminToken, readLocalToken } from '../node/data-dir.js';
import { PinnedTokenError, caFingerprint, parseJoinToken, splitPemBundle } from '../security/pinned-token.js';
import { ApiClient, type ApiTrust } from './client.js';
import { UsageError } from './errors.js';
import { readContexts, type CliContextRecord } from './contexts.js';
import { ADDRESS_DEFAULT, normalizeAddress } from './parse.js';
import { firstAnswering } from './reachable.js';

/** The data directory when neither `--data-dir` nor `HIVEMIND_DATA_DIR` is set (docs/design.md, Defaults). */
export const DATA_DIR_DEFAULT = '.hivemind';

/** The file in the data directory where the agent keeps the join token (mode 0600; src/agent/data-dir.ts). */
export const TOKEN_FILE_NAME = 'token';
/** The file where the founding node keeps the admin API token (read before TOKEN_FILE_NAME). */
export const ADMIN_TOKEN_FILE_NAME = 'admin-token';

/** The CA bundle in the data directory (the node's trusted CA certificates; src/node/data-dir.ts). */
export const CA_FILE_NAME = 'tls/ca.crt';

/** The global flags as commander gives them (`optsWithGlobals()`). */
export interface GlobalOptions {
  /** Every `--addr` given (each may hold several, comma-separated), in order. */
  addr?: string[];
  context?: string;
  token?: string;
  ca?: string;
  dataDir?: string;
  json?: boolean;
}

/** The resolved global settings of one invocation. */
export interface CliContext {
  /** Base URL of the node (`http://127.0.0.1:7070`): the first of `addresses`, or the one `withClient` found answering. */
  address: string;
  /** Every node address given (`--addr`, a context), tried in turn by `withClient`: the first that answers wins. */
  addresses: string[];
  /** The context in use (`--context`, `HIVEMIND_CONTEXT`, or `hivemind context use`), if any. */
  contextName?: string;
  /** The CA certificates a context stores (PEM); `--ca` wins over them. */
  caPems?: string[];
  /** Print the API's JSON instead of tables. */
  json: boolean;
  /** The data directory, absolute. */
  dataDir: string;
  /** The token given by flag or environment, if any (the file is read only when a request needs it). */
  tokenOption: string | undefined;
  /** `--ca` / `HIVEMIND_CA`: a PEM file of CA certificates to trust, absolute. */
  caFile: string | undefined;
  /** Where output goes; tests of the modules replace nothing here, the CLI runs as a process. */
  stdout: NodeJS.WriteStream;
  stderr: NodeJS.WriteStream;
}

/** Resolves the global flags of `command` (its own and its ancestors'). */
export function contextOf(command: Command): CliContext {
  const options = command.optsWithGlobals<GlobalOptions>();
  // A flag or its variable beats the context, which beats the defaults (the data directory's files, 127.0.0.1).
  const addrGiven = options.addr !== undefined && options.addr.length > 0;
  const named = namedContext(options.context, { explicit: options.context !== undefined && options.context !== '', addrGiven });
  const addresses = addrGiven ? options.addr!.map((address) => normalizeAddress(address)) : named?.record.addresses ?? [normalizeAddress(ADDRESS_DEFAULT)];
  const tokenOption = options.token === '' || options.token === undefined ? named?.record.token : options.token;
  const caPems = named?.record.caPem !== undefined ? splitPemBundle(named.record.caPem) : undefined;
  return {
    address: addresses[0]!,
    addresses,
    ...(named !== undefined ? { contextName: named.name } : {}),
    ...(caPems !== undefined && caPems.length > 0 ? { caPems } : {}),
    json: options.json === true,
    dataDir: resolve(options.dataDir ?? DATA_DIR_DEFAULT),
    tokenOption,
    caFile: options.ca === undefined || options.ca === '' ? undefined : resolve(options.ca),
    stdout: process.stdout,
    stderr: process.stderr,
  };
}

/**
 * The context a command uses: the one `--context` / `HIVEMIND_CONTEXT`
 * names (an error when there is none of that name), else the one `hivemind
 * context use` chose, unless `--addr` was given (then the flags alone say
 * where to go).
 */
function namedContext(name: string | undefined, how: { explicit: boolean; addrGiven: boolean }): { name: string; record: CliContextRecord } | undefined {
  const store = readContexts();
  if (how.explicit) {
    const record = Object.hasOwn(store.contexts, name!) ? store.contexts[name!] : undefined;
    if (record === undefined) throw new UsageError(`--context: no context "${name}"; \`hivemind context ls\` lists them`);
    return { name: name!, record };
  }
  if (how.addrGiven || store.current === undefined || !Object.hasOwn(store.contexts, store.current)) return undefined;
  return { name: store.current, record: store.contexts[store.current]! };
}

/**
 * The token for API calls: `--token` / `HIVEMIND_TOKEN`, else the agent's
 * admin-token file, else its (join) token file in the data directory, else none (the node then answers
 * `unauthenticated`, and the message says where the CLI looked). Either
 * form: `token` is the bare token, `caFingerprint` the pin of a pinned one.
 */
export function resolveToken(context: CliContext): { token: string | undefined; caFingerprint?: string; source: string } {
  if (context.tokenOption !== undefined) {
    let parsed;
    try {
      parsed = parseJoinToken(context.tokenOption);
    } catch (error) {
      if (error instanceof PinnedTokenError) throw new UsageError(`--token: ${error.message}`);
      throw error;
    }
    return { token: parsed.token, ...(parsed.caFingerprint === undefined ? {} : { caFingerprint: parsed.caFingerprint }), source: 'the token came from --token or HIVEMIND_TOKEN' };
  }
  let path = join(context.dataDir, ADMIN_TOKEN_FILE_NAME);
  let token: string | undefined;
  try {
    // The admin API token of a founding node first; else the join token, which still acts as a cluster-admin.
    token = readLocalAdminToken(context.dataDir);
    if (token === undefined) {
      path = join(context.dataDir, TOKEN_FILE_NAME);
      token = readLocalToken(context.dataDir);
    }
  } catch (error) {
    // Unreadable (permissions, a directory in its place): say so; the node will ask for a token anyway.
    return { token: undefined, source: `no token given, and ${error instanceof Error ? error.message : `cannot read ${path}`}` };
  }
  if (token === undefined) return { token: undefined, source: `no token given and none found at ${path}` };
  let parsed;
  try {
    parsed = parseJoinToken(token);
  } catch (error) {
    return { token: undefined, source: `${path} holds no usable token (${(error as Error).message})` };
  }
  return { token: parsed.token, ...(parsed.caFingerprint === undefined ? {} : { caFingerprint: parsed.caFingerprint }), source: `the token came from ${path}` };
}

/**
 * What the CLI trusts the node's certificate by: the CA certificates of
 * `--ca` / `HIVEMIND_CA`, else the data directory's tls/ca.crt (the CLI run
 * on a node; skipped when it lacks the CA a pinned token names), else the
 * pinned token's CA fingerprint (checked against GET /v1/ca), else nothing
 * (an HTTPS request then fails with a message saying what to give).
 */
export function resolveTrust(context: CliContext, caFingerprint: string | undefined): ApiTrust {
  if (context.caFile === undefined && context.caPems !== undefined) return { type: 'ca', caPems: context.caPems, source: `context ${context.contextName}` };
  if (context.caFile !== undefined) {
    let text: string;
    try {
      text = readFileSync(context.caFile, 'utf8');
    } catch (error) {
      throw new UsageError(`--ca: cannot read ${context.caFile}: ${(error as Error).message}`);
    }
    const caPems = splitPemBundle(text);
    if (caPems.length === 0) throw new UsageError(`--ca: ${context.caFile} holds no PEM certificate`);
    return { type: 'ca', caPems, source: context.caFile };
  }
  const local = join(context.dataDir, CA_FILE_NAME);
  const localPems = readCaBundle(local);
  if (localPems.length > 0 && (caFingerprint === undefined || localPems.some((pem) => pemFingerprint(pem) === caFingerprint))) {
    return { type: 'ca', caPems: localPems, source: local };
  }
  if (caFingerprint !== undefined) return { type: 'pin', fingerprint: caFingerprint };
  return { type: 'none', searched: local };
}

function readCaBundle(path: string): string[] {
  try {
    return splitPemBundle(readFileSync(path, 'utf8'));
  } catch {
    return [];
  }
}

function pemFingerprint(pem: string): string | undefined {
  try {
    return caFingerprint(pem);
  } catch {
    return undefined;
  }
}

/** A client for the context's node, with its token and trust. The caller closes it. */
export function clientOf(context: CliContext): ApiClient {
  const { token, caFingerprint, source } = resolveToken(context);
  return new ApiClient({ address: context.address, token, tokenSource: source, trust: resolveTrust(context, caFingerprint) });
}

/**
 * Runs `body` with a client for the context's node and closes the client
 * afterwards, whatever happens.
 */
export async function withClient<T>(context: CliContext, body: (client: ApiClient) => Promise<T>): Promise<T> {
  if (context.addresses.length > 1) context.address = await firstAnswering(context.addresses);
  const client = clientOf(context);
  try {
    return await body(client);
  } finally {
    await client.close();
  }
}
