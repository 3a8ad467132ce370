/**
 * `secrets`: list (names and versions, never values), set, delete. A value
 * comes from `--value`, `--from-file`, a pipe on stdin, or a hidden prompt.
 */
import { readFile } from 'node:fs/promises';
import { Option, type Command } from 'commander';
import { listIn } from '../answers.js';
import { contextOf, withClient } from '../context.js';
import { UsageError } from '../errors.js';
import { printJson, printLine, printTable } from '../output.js';
import { tenantAndName } from '../parse.js';
import { promptHidden, readStdin } from '../stdin.js';
import { TENANT_FILTER, TENANT_OF_ONE, tenantOption, writeAndReport } from './shared.js';

/** The API's limit on a secret's value (docs/api.md: at most 64 KiB). */
export const SECRET_BYTES_MAX = 64 * 1024;

interface SetOptions {
  value?: string;
  fromFile?: string;
  tenant?: string;
}

/** Adds `secrets` (list, set, delete) to `program`. */
export function registerSecretCommands(program: Command): void {
  const secrets = program
    .command('secrets')
    .description('list and manage secrets (values are sealed before they enter the log and never shown)')
    .addHelpText(
      'after',
      [
        '',
        'Examples:',
        '  hivemind secrets',
        '  hivemind secrets set db-password --from-file ./password.txt',
        "  printf '%s' \"$PASSWORD\" | hivemind secrets set db-password --tenant acme",
        '  hivemind secrets delete acme/db-password',
      ].join('\n'),
    );

  secrets
    .command('list', { isDefault: true })
    .description('list the secrets: names and versions (the default)')
    .addOption(tenantOption(TENANT_FILTER))
    .action(async (options: { tenant?: string }, command: Command) => {
      const context = contextOf(command);
      await withClient(context, async (client) => {
        const { body } = await client.call('GET /v1/secrets', { query: { tenant: options.tenant } });
        if (context.json) return printJson(context, body);
        const rows = listIn(body, 'secrets').map((secret) => [secret.tenant, secret.name, secret.version]);
        printTable(context, ['tenant', 'name', 'version'], rows, 'no secrets');
      });
    });

  secrets
    .command('set')
    .description('create or replace a secret; the value is used exactly as given (a trailing newline stays)')
    .argument('<name>', 'the secret, as NAME or TENANT/NAME')
    .addOption(new Option('--value <value>', 'the value (visible in your shell history and process list; prefer the others)').conflicts('fromFile'))
    .option('--from-file <file>', 'read the value from a file')
    .addOption(tenantOption(TENANT_OF_ONE))
    .addHelpText('after', '\nWithout --value or --from-file the value is read from stdin, or asked for (hidden) at a terminal.')
    .action(async (text: string, options: SetOptions, command: Command) => {
      const { tenant, name } = tenantAndName(text, options.tenant, 'secret');
      const value = await secretValue(options, `${tenant}/${name}`);
      if (value === '') throw new UsageError(`the value of secret ${tenant}/${name} is empty; give it with --value, --from-file or on stdin`);
      if (Buffer.byteLength(value, 'utf8') > SECRET_BYTES_MAX) throw new UsageError(`the value of secret ${tenant}/${name} is over ${SECRET_BYTES_MAX} bytes`);
      const context = contextOf(command);
      await withClient(context, async (client) => {
        const { body } = await client.call('PUT /v1/secrets/:tenant/:name', { params: { tenant, name }, body: { value } });
        if (context.json) return printJson(context, body);
        const version = body.version;
        printLine(context, `secret ${tenant}/${name} set${typeof version === 'number' ? ` (version ${version})` : ''}`);
      });
    });

  secrets
    .command('delete')
    .description('delete a secret (refused while an app uses it)')
    .argument('<name>', 'the secret, as NAME or TENANT/NAME')
    .addOption(tenantOption(TENANT_OF_ONE))
    .action(async (text: string, options: { tenant?: string }, command: Command) => {
      const { tenant, name } = tenantAndName(text, options.tenant, 'secret');
      await writeAndReport(command, (client) => client.call('DELETE /v1/secrets/:tenant/:name', { params: { tenant, name } }), `secret ${tenant}/${name} deleted`);
    });
}

async function secretValue(options: SetOptions, name: string): Promise<string> {
  if (options.value !== undefined) return options.value;
  if (options.fromFile !== undefined) {
    try {
      const bytes = await readFile(options.fromFile);
      if (bytes.length > SECRET_BYTES_MAX) throw new UsageError(`${options.fromFile} is ${bytes.length} bytes; a secret may have at most ${SECRET_BYTES_MAX}`);
      return bytes.toString('utf8');
    } catch (error) {
      if (error instanceof UsageError) throw error;
      const code = (error as { code?: unknown }).code;
      throw new UsageError(`cannot read ${options.fromFile}: ${code === 'ENOENT' ? 'no such file' : (error as Error).message}`);
    }
  }
  if (process.stdin.isTTY) return promptHidden(`value of secret ${name}: `);
  return readStdin({ bytesMax: SECRET_BYTES_MAX, what: `the value of secret ${name}` });
}
