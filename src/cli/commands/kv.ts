/**
 * `kv`: the config store. `get` prints the bare value (for scripts too);
 * `put` and `delete` take `--cas VERSION` for compare-and-set.
 */
import { Option, type Command } from 'commander';
import type { KvEntry } from '../../state/types.js';
import { listIn, objectOf } from '../answers.js';
import type { AnswerOf } from '../../api/contract.js';
import type { ApiResponse, Blocking } from '../client.js';
import { contextOf, withClient, type CliContext } from '../context.js';
import { ApiError, UsageError } from '../errors.js';
import { printJson, printLine, renderTable, shorten } from '../output.js';
import { wholeNumber } from '../parse.js';
import { readStdin } from '../stdin.js';
import { showOnce, watch } from '../watch.js';

/** The API's limit on a key (docs/api.md: 1 to 512 bytes). */
export const KEY_BYTES_MAX = 512;
/** The API's limit on a value (docs/api.md: at most 512 KiB). */
export const VALUE_BYTES_MAX = 512 * 1024;

const valueShownLengthMax = 50;

function checkKey(key: string): void {
  const bytes = Buffer.byteLength(key, 'utf8');
  if (bytes === 0 || bytes > KEY_BYTES_MAX) throw new UsageError(`a key must have 1 to ${KEY_BYTES_MAX} bytes, got ${bytes}`);
}

function casOption(what: string): Option {
  return new Option('--cas <version>', `compare-and-set: only ${what} if the key's version is this (0: only if the key is absent)`).argParser(wholeNumber(0));
}

/** Adds `kv` (get, put, delete, list) to `program`. */
export function registerKvCommands(program: Command): void {
  const kv = program
    .command('kv')
    .description('read and write the config store: string values under keys such as app/web/color')
    .addHelpText(
      'after',
      [
        '',
        "A key's version is the log index that last wrote it; --cas makes a write conditional on it.",
        '',
        'Examples:',
        '  hivemind kv put app/web/color blue',
        '  hivemind kv get app/web/color',
        '  hivemind kv put app/web/color green --cas 42',
        '  hivemind kv list app/',
        '  hivemind kv delete app/web/color',
      ].join('\n'),
    );

  kv.command('get')
    .description("print a key's value")
    .argument('<key>', 'the key')
    .option('-w, --watch', 'print again at every change')
    .action(async (key: string, options: { watch?: boolean }, command: Command) => {
      checkKey(key);
      const context = contextOf(command);
      await withClient(context, (client) => {
        if (!options.watch) {
          return showOnce(context, { title: key, read: () => client.call('GET /v1/kv/*key', { params: { key } }), render: (body: KvEntry) => objectOf(body, 'a key').value });
        }
        return watch(context, {
          title: `key ${key}`,
          // While watched, an absent key is a state to show (null), not an error: it may appear later.
          read: async (blocking: Blocking | undefined): Promise<ApiResponse<KvEntry | null>> => {
            try {
              return await client.call('GET /v1/kv/*key', { params: { key }, blocking });
            } catch (error) {
              if (error instanceof ApiError && error.code === 'not-found') return { body: null, index: error.index };
              throw error;
            }
          },
          render: (body: KvEntry | null) => (body === null ? '(no such key)' : objectOf(body, 'a key').value),
        });
      });
    });

  kv.command('put')
    .description('write a value (from the argument, else from stdin)')
    .argument('<key>', 'the key')
    .argument('[value]', 'the value; without it, stdin is read')
    .addOption(casOption('write'))
    .action(async (key: string, value: string | undefined, options: { cas?: number }, command: Command) => {
      checkKey(key);
      const text = value ?? (await readStdin({ bytesMax: VALUE_BYTES_MAX, what: `the value of ${key}` }));
      if (Buffer.byteLength(text, 'utf8') > VALUE_BYTES_MAX) throw new UsageError(`the value of ${key} is over ${VALUE_BYTES_MAX} bytes`);
      const context = contextOf(command);
      await withClient(context, async (client) => {
        const { body, index } = await client.call('PUT /v1/kv/*key', { params: { key }, body: { value: text, ...(options.cas === undefined ? {} : { expectVersion: options.cas }) } });
        if (context.json) return printJson(context, body);
        const version = body.version ?? index;
        printLine(context, `${key} written${typeof version === 'number' ? ` (version ${version})` : ''}`);
      });
    });

  kv.command('delete')
    .description('delete a key')
    .argument('<key>', 'the key')
    .addOption(casOption('delete'))
    .action(async (key: string, options: { cas?: number }, command: Command) => {
      checkKey(key);
      const context = contextOf(command);
      await withClient(context, async (client) => {
        const { body } = await client.call('DELETE /v1/kv/*key', { params: { key }, query: { expectVersion: options.cas } });
        if (context.json) return printJson(context, body);
        printLine(context, `${key} deleted`);
      });
    });

  kv.command('list')
    .description('list the keys under a prefix, sorted')
    .argument('[prefix]', 'only keys that start with this', '')
    .addOption(new Option('--limit <count>', 'at most this many keys').argParser(wholeNumber(1)))
    .option('-w, --watch', 'show again at every change')
    .action(async (prefix: string, options: { limit?: number; watch?: boolean }, command: Command) => {
      const context = contextOf(command);
      await withClient(context, (client) => {
        const view = {
          title: `keys under ${JSON.stringify(prefix)}`,
          read: (blocking: Blocking | undefined) => client.call('GET /v1/kv', { query: { prefix: prefix === '' ? undefined : prefix, limit: options.limit }, blocking }),
          render: (body: AnswerOf<'GET /v1/kv'>) => renderEntries(context, listIn(body, 'entries')),
        };
        return options.watch ? watch(context, view) : showOnce(context, view);
      });
    });
}

function renderEntries(context: CliContext, entries: KvEntry[]): string {
  const rows = entries.map((entry) => [entry.key, entry.version, shorten(entry.value, valueShownLengthMax)]);
  return renderTable(context, ['key', 'version', 'value'], rows, 'no keys');
}
