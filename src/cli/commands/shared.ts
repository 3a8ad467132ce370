/**
 * Pieces several commands share: the `--tenant` flag, running one write and
 * reporting it, finding the root command.
 */
import { Option, type Command } from 'commander';
import type { ApiClient, ApiResponse } from '../client.js';
import { contextOf, withClient } from '../context.js';
import { printJson, printLine } from '../output.js';

/** Help for `--tenant` on a command about one entity (`web` or `acme/web`). */
export const TENANT_OF_ONE = 'the tenant (default: default; or write the name as TENANT/NAME)';
/** Help for `--tenant` on a list. */
export const TENANT_FILTER = 'only this tenant (default: every tenant)';

/** `--tenant <tenant>`, also read from HIVEMIND_TENANT. */
export function tenantOption(description: string): Option {
  return new Option('--tenant <tenant>', description).env('HIVEMIND_TENANT');
}

/** Runs one write; prints its JSON answer with `--json`, else the line `done`. */
export async function writeAndReport(command: Command, write: (client: ApiClient) => Promise<ApiResponse<unknown>>, done: string): Promise<void> {
  const context = contextOf(command);
  await withClient(context, async (client) => {
    const { body } = await write(client);
    if (context.json) printJson(context, body);
    else printLine(context, done);
  });
}

export { rootOf } from '../program-root.js';
