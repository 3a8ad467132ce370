/**
 * `context create|use|ls|rm|show`: named node addresses, token and CA, so
 * commands work from any folder without `--addr` and `--data-dir`, as
 * `docker context` does (see contexts.ts for where they are kept).
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { PinnedTokenError, parseJoinToken, splitPemBundle } from '../../security/pinned-token.js';
import { CONTEXT_NAME_PATTERN, configFolder, readContexts, writeContexts, type CliContextRecord } from '../contexts.js';
import { contextOf } from '../context.js';
import { CliError, UsageError } from '../errors.js';
import { printJson, printLine, printTable } from '../output.js';
import { normalizeAddress } from '../parse.js';

function checkName(name: string): void {
  if (!CONTEXT_NAME_PATTERN.test(name)) throw new UsageError(`context name ${JSON.stringify(name)} must be letters, digits, ".", "_" and "-" (at most 63), starting with a letter or digit`);
}

function readFlagFile(flag: string, path: string): string {
  try {
    return readFileSync(resolve(path), 'utf8');
  } catch (error) {
    throw new UsageError(`${flag}: cannot read ${path}: ${(error as Error).message}`);
  }
}

/** Adds `context` to `program`. */
export function registerContextCommands(program: Command): void {
  const context = program
    .command('context')
    .description('named clusters to talk to (node addresses, token, CA), kept in your config folder, as docker context')
    .addHelpText('after', '\nExamples:\n  hivemind context create prod --addr n1.example.com,n2.example.com --token-file prod.token --ca prod-ca.crt\n  hivemind context use prod\n  hivemind context ls\n  hivemind --context staging ps');

  context
    .command('create')
    .description('store a context: node addresses (tried in turn), an API token and the cluster CA')
    .argument('<name>', 'the context name')
    .option('--token-file <file>', 'a file holding the API token (hivemind tokens create), pinned or bare; stored by value (or give the token itself with --token)')
    .option('--force', 'replace a context of that name')
    .addHelpText('after', "\nThe nodes come from --addr (repeat it, or separate with commas: tried in turn), the CA from --ca (PEM, such as a node's .hivemind/tls/ca.crt; stored by value).")
    .action((name: string, options: { tokenFile?: string; force?: boolean }, command: Command) => {
      checkName(name);
      const globals = command.optsWithGlobals<{ addr?: string[]; token?: string; ca?: string }>();
      const sources = (key: string): string | undefined => command.getOptionValueSourceWithGlobals(key);
      const given = sources('addr') === 'cli' ? (globals.addr ?? []) : [];
      if (given.length === 0) throw new UsageError('give the nodes with --addr host:port (repeat it, or separate with commas, for several)');
      const record: CliContextRecord = { addresses: given.map((address) => normalizeAddress(address)) };
      if (options.tokenFile !== undefined && sources('token') === 'cli') throw new UsageError('give the token with --token-file or --token, not both');
      const tokenText = options.tokenFile !== undefined ? readFlagFile('--token-file', options.tokenFile).trim() : sources('token') === 'cli' ? globals.token : undefined;
      if (tokenText !== undefined) {
        try {
          parseJoinToken(tokenText);
        } catch (error) {
          if (error instanceof PinnedTokenError) throw new UsageError(`the token: ${error.message}`);
          throw error;
        }
        record.token = tokenText;
      }
      const caPath = sources('ca') === 'cli' ? globals.ca : undefined;
      if (caPath !== undefined) {
        const pem = readFlagFile('--ca', caPath);
        if (splitPemBundle(pem).length === 0) throw new UsageError(`--ca: ${caPath} holds no PEM certificate`);
        record.caPem = pem;
      }
      const store = readContexts();
      if (Object.hasOwn(store.contexts, name) && options.force !== true) throw new CliError(`context "${name}" exists already; use --force to replace it, or another name`);
      store.contexts[name] = record;
      writeContexts(store);
      printLine(contextOf(command), `context ${name} created (${record.addresses.join(', ')}); use it with \`hivemind context use ${name}\` or --context ${name}`);
    });

  context
    .command('use')
    .description('make a context the one commands use when neither --addr nor --context is given')
    .argument('<name>', 'the context name')
    .action((name: string, _options: unknown, command: Command) => {
      const store = readContexts();
      if (!Object.hasOwn(store.contexts, name)) throw new CliError(`no context "${name}"; \`hivemind context ls\` lists them`);
      store.current = name;
      writeContexts(store);
      printLine(contextOf(command), `now using context ${name}`);
    });

  context
    .command('ls', { isDefault: true })
    .alias('list')
    .description('list the contexts; * marks the one in use')
    .action((_options: unknown, command: Command) => {
      const cli = contextOf(command);
      const store = readContexts();
      const names = Object.keys(store.contexts).sort();
      if (cli.json) return printJson(cli, { current: store.current ?? null, contexts: names.map((name) => ({ name, addresses: store.contexts[name]!.addresses, token: store.contexts[name]!.token !== undefined, ca: store.contexts[name]!.caPem !== undefined })) });
      if (names.length === 0) return printLine(cli, `no contexts yet (kept in ${configFolder()}); make one with \`hivemind context create NAME --addr HOST:PORT --token-file FILE --ca CA.crt\``);
      printTable(cli, ['NAME', 'NODES', 'TOKEN', 'CA'], names.map((name) => {
        const record = store.contexts[name]!;
        return [`${name}${name === store.current ? ' *' : ''}`, record.addresses.join(','), record.token !== undefined ? 'yes' : 'no', record.caPem !== undefined ? 'yes' : 'no'];
      }));
    });

  context
    .command('rm')
    .alias('remove')
    .description('remove a context (the one in use too: commands then go back to --addr and --data-dir)')
    .argument('<name>', 'the context name')
    .action((name: string, _options: unknown, command: Command) => {
      const store = readContexts();
      if (!Object.hasOwn(store.contexts, name)) throw new CliError(`no context "${name}"; \`hivemind context ls\` lists them`);
      delete store.contexts[name];
      if (store.current === name) delete store.current;
      writeContexts(store);
      printLine(contextOf(command), `context ${name} removed`);
    });
}
