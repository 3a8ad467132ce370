/**
 * What every command gets from the global flags: the node's address, the
 * token, the output mode. Commands read options through `contextOf(command)`
 * and never look at `process.env` themselves.
 */
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { readLocalToken } from '../node/data-dir.js';
import { ApiClient } from './client.js';
import { ADDRESS_DEFAULT, normalizeAddress } from './parse.js';

/** The data directory when neither `--data-dir` nor `HIVEMIND_DATA_DIR` is set (docs/design.md, Defaults). */
export const DATA_DIR_DEFAULT = '.hivemind';

/** The file in the data directory where the agent keeps the join token (mode 0600; src/agent/data-dir.ts). */
export const TOKEN_FILE_NAME = 'token';

/** The global flags as commander gives them (`optsWithGlobals()`). */
export interface GlobalOptions {
  addr?: string;
  token?: string;
  dataDir?: string;
  json?: boolean;
}

/** The resolved global settings of one invocation. */
export interface CliContext {
  /** Base URL of the node (`http://127.0.0.1:7070`). */
  address: string;
  /** Print the API's JSON instead of tables. */
  json: boolean;
  /** The data directory, absolute. */
  dataDir: string;
  /** The token given by flag or environment, if any (the file is read only when a request needs it). */
  tokenOption: string | undefined;
  /** Where output goes; tests of the modules replace nothing here, the CLI runs as a process. */
  stdout: NodeJS.WriteStream;
  stderr: NodeJS.WriteStream;
}

/** Resolves the global flags of `command` (its own and its ancestors'). */
export function contextOf(command: Command): CliContext {
  const options = command.optsWithGlobals<GlobalOptions>();
  return {
    address: normalizeAddress(options.addr ?? ADDRESS_DEFAULT),
    json: options.json === true,
    dataDir: resolve(options.dataDir ?? DATA_DIR_DEFAULT),
    tokenOption: options.token === '' ? undefined : options.token,
    stdout: process.stdout,
    stderr: process.stderr,
  };
}

/**
 * The token for API calls: `--token` / `HIVEMIND_TOKEN`, else the agent's
 * token file in the data directory, else none (the node then answers
 * `unauthenticated`, and the message says where the CLI looked).
 */
export function resolveToken(context: CliContext): { token: string | undefined; source: string } {
  if (context.tokenOption !== undefined) return { token: context.tokenOption, source: 'the token came from --token or HIVEMIND_TOKEN' };
  const path = join(context.dataDir, TOKEN_FILE_NAME);
  let token: string | undefined;
  try {
    token = readLocalToken(context.dataDir);
  } catch (error) {
    // Unreadable (permissions, a directory in its place): say so; the node will ask for a token anyway.
    return { token: undefined, source: `no token given, and ${error instanceof Error ? error.message : `cannot read ${path}`}` };
  }
  if (token === undefined) return { token: undefined, source: `no token given and none found at ${path}` };
  return { token, source: `the token came from ${path}` };
}

/** A client for the context's node, with its token. The caller closes it. */
export function clientOf(context: CliContext): ApiClient {
  const { token, source } = resolveToken(context);
  return new ApiClient({ address: context.address, token, tokenSource: source });
}

/**
 * Runs `body` with a client for the context's node and closes the client
 * afterwards, whatever happens.
 */
export async function withClient<T>(context: CliContext, body: (client: ApiClient) => Promise<T>): Promise<T> {
  const client = clientOf(context);
  try {
    return await body(client);
  } finally {
    await client.close();
  }
}
