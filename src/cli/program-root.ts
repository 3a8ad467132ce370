/**
 * The root of `hivemind`'s command tree: the global flags, the help and
 * version options and the one-line usage errors every command reports
 * (`hivemind: <problem> (see \`hivemind <command> --help\`)`, exit 2).
 * Light, so that `hivemind agent` builds its tree without loading every
 * other command (agent-program.ts); program.ts builds the whole tree on it.
 */
import { readFileSync } from 'node:fs';
import { Command, Option } from 'commander';
import { ADDRESS_DEFAULT } from './parse.js';

/** The version in package.json, or `unknown` if it cannot be read. */
function packageVersion(): string {
  try {
    // dist/src/cli/program-root.js and src/cli/program-root.ts both sit three folders below the package.
    const text = readFileSync(new URL('../../../package.json', import.meta.url), 'utf8');
    const version = (JSON.parse(text) as { version?: unknown }).version;
    return typeof version === 'string' ? version : 'unknown';
  } catch {
    return 'unknown';
  }
}

/** The root command with its global flags and help; commands are added to it, then `configureErrors`. Commander throws `CommanderError` instead of exiting (main.ts picks the code). */
export function rootProgram(): Command {
  const program = new Command('hivemind');
  program
    .description('Run and use a Hivemind cluster: replicated apps from a Compose-style file, on every node the same program.')
    .version(packageVersion(), '-V, --version', 'print the version')
    .helpOption('-h, --help', 'show help for the command')
    .addOption(new Option('--addr <address>', `the node to talk to: host:port or https://host:port (http:// for a node run with --insecure-api); repeat it or separate with commas to try several in turn (default: the context in use, else ${ADDRESS_DEFAULT})`).env('HIVEMIND_ADDR').argParser(collectAddresses))
    .addOption(new Option('--context <name>', 'use this stored context (hivemind context ls) instead of the one in use').env('HIVEMIND_CONTEXT'))
    .addOption(new Option('--token <token>', 'the cluster token for API calls (default: read from <data-dir>/token)').env('HIVEMIND_TOKEN'))
    .addOption(new Option('--ca <file>', "CA certificates (PEM) to trust the node's certificate by (default: <data-dir>/tls/ca.crt, else the CA a pinned token names)").env('HIVEMIND_CA'))
    .addOption(new Option('--data-dir <dir>', "the node's data directory").env('HIVEMIND_DATA_DIR').default('./.hivemind'))
    .addOption(new Option('--json', 'print the JSON answer of the API instead of tables'))
    .configureHelp({ showGlobalOptions: true, visibleGlobalOptions: globalOptionsForHelp })
    .showSuggestionAfterError(true)
    .exitOverride();
  program.addHelpText(
    'after',
    [
      '',
      'Examples:',
      '  hivemind agent                       start a node (a new cluster)',
      '  hivemind join 10.0.0.1 --token hmca:...   start a node that joins a cluster',
      '  hivemind deploy -f app.yaml --wait   deploy and wait for the instances',
      '  hivemind app web --watch             follow one app',
      '',
      'Every command takes --help. Set up completion with `hivemind completion bash|zsh|fish`.',
    ].join('\n'),
  );
  return program;
}

/** `--addr a --addr b,c` as `[a, b, c]` (commander passes the previous values; there is no default to add to). */
function collectAddresses(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), ...value.split(',').map((each) => each.trim()).filter((each) => each !== '')];
}

/** The global flags a subcommand's help lists: all of its ancestors' except `--version`, which only the root answers. */
function globalOptionsForHelp(command: Command): Option[] {
  const options: Option[] = [];
  for (let ancestor = command.parent; ancestor !== null; ancestor = ancestor.parent) {
    options.push(...ancestor.options.filter((option) => !option.hidden && option.long !== '--version'));
  }
  return options;
}

/** Every command reports its usage errors on one line that names where to read more. */
export function configureErrors(command: Command): void {
  const path = commandPath(command);
  command.configureOutput({
    outputError: (text, write) => {
      const message = text.trim().replace(/^error:\s*/, '').replace(/\s*\n\s*/g, ' ');
      write(`hivemind: ${message} (see \`${path} --help\`)\n`);
    },
  });
  for (const child of command.commands) configureErrors(child);
}

/** `hivemind tenants create`: a command's full name, for messages. */
export function commandPath(command: Command): string {
  const names: string[] = [];
  for (let current: Command | null = command; current !== null; current = current.parent) names.unshift(current.name());
  return names.join(' ');
}

/** The program `command` belongs to. */
export function rootOf(command: Command): Command {
  let root = command;
  while (root.parent !== null) root = root.parent;
  return root;
}
