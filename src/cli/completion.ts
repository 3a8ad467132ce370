/**
 * Shell completion scripts for bash, zsh and fish, generated from the
 * command tree, so a new command or flag completes without editing a script.
 * Each script finds the command path typed so far ("hivemind tenants
 * create"), then offers that path's subcommands and flags; after a flag that
 * takes a file it falls back to file names. Pure: tree in, text out.
 */
import type { Command, Option } from 'commander';

/** The shells a script can be generated for. */
export const SHELLS = ['bash', 'zsh', 'fish'] as const;
/** One of `SHELLS`. */
export type Shell = (typeof SHELLS)[number];

/** Flags whose value is a path: the shell completes file names after them. */
const fileFlags = new Set(['--file', '-f', '--from-file', '--data-dir']);

/** One command of the tree, flattened for the generators. */
interface Node {
  /** `hivemind tenants create`. */
  path: string;
  description: string;
  subcommands: { name: string; description: string }[];
  flags: { names: string[]; description: string; takesValue: boolean }[];
}

function flagsOf(options: readonly Option[]): Node['flags'] {
  return options
    .filter((option) => !option.hidden)
    .map((option) => ({
      names: [option.long, option.short].filter((name): name is string => name !== undefined),
      description: option.description,
      takesValue: option.required || option.optional,
    }));
}

/** Every command with its path, subcommands and flags (its own, inherited global ones, and --help). */
function flatten(root: Command): Node[] {
  const globalFlags = flagsOf(root.options.filter((option) => option.long !== '--version'));
  const nodes: Node[] = [];
  const visit = (command: Command, path: string, isRoot: boolean) => {
    const help = { names: ['--help', '-h'], description: 'show help for the command', takesValue: false };
    nodes.push({
      path,
      description: command.description(),
      subcommands: command.commands.map((child) => ({ name: child.name(), description: child.description() })),
      flags: [...(isRoot ? flagsOf(command.options) : [...flagsOf(command.options), ...globalFlags]), help],
    });
    for (const child of command.commands) visit(child, `${path} ${child.name()}`, false);
  };
  visit(root, root.name(), true);
  return nodes;
}

/** The completion script for `shell`, for the program `root`. */
export function completionScript(root: Command, shell: Shell): string {
  const nodes = flatten(root);
  if (shell === 'bash') return bashScript(root.name(), nodes);
  if (shell === 'zsh') return zshScript(root.name(), nodes);
  return fishScript(root.name(), nodes);
}

function identifier(name: string): string {
  return name.replace(/[^A-Za-z0-9_]/g, '_');
}

/** Single-quotes `text` for bash and zsh. */
function shellQuote(text: string): string {
  return `'${text.replace(/'/g, `'\\''`)}'`;
}

function valueFlags(nodes: Node[]): { files: string[]; others: string[] } {
  const all = new Set<string>();
  for (const node of nodes) for (const flag of node.flags) if (flag.takesValue) for (const name of flag.names) all.add(name);
  const files = [...all].filter((name) => fileFlags.has(name)).sort();
  const others = [...all].filter((name) => !fileFlags.has(name)).sort();
  return { files, others };
}

/** One `case` branch for `patterns` (nothing when there are none), with zsh's optional opening parenthesis. */
function caseLine(patterns: string[], style: ')' | '(', body: string): string {
  if (patterns.length === 0) return '';
  return `    ${style === '(' ? '(' : ''}${patterns.join('|')}) ${body} ;;\n`;
}

function bashScript(program: string, nodes: Node[]): string {
  const fn = `_${identifier(program)}`;
  const { files, others } = valueFlags(nodes);
  const cases = nodes
    .map((node) => {
      const words = [...node.subcommands.map((sub) => sub.name), ...node.flags.flatMap((flag) => flag.names)].join(' ');
      return `    ${shellQuote(node.path)}) words=${shellQuote(words)} ;;`;
    })
    .join('\n');
  return `# bash completion for ${program}. Load it with:
#   source <(${program} completion bash)
# or save it as /etc/bash_completion.d/${program}.
${fn}() {
  local cur="\${COMP_WORDS[COMP_CWORD]}" prev="\${COMP_WORDS[COMP_CWORD-1]}"
  local cmdpath=${shellQuote(program)} word i words=""
  case "$prev" in
${caseLine(files, ')', 'COMPREPLY=(); compopt -o default 2>/dev/null; return 0')}${caseLine(others, ')', 'COMPREPLY=(); return 0')}  esac
  for ((i = 1; i < COMP_CWORD; i++)); do
    word="\${COMP_WORDS[i]}"
    case "$word" in -*) continue ;; esac
    case "$cmdpath $word" in
${nodes.slice(1).map((node) => `      ${shellQuote(node.path)}) cmdpath="$cmdpath $word" ;;`).join('\n')}
    esac
  done
  case "$cmdpath" in
${cases}
  esac
  COMPREPLY=($(compgen -W "$words" -- "$cur"))
}
complete -F ${fn} ${program}
`;
}

/** Escapes `name:description` for zsh's `_describe` (a colon in the name must be escaped). */
function describeEntry(name: string, description: string): string {
  return shellQuote(`${name.replace(/:/g, '\\:')}:${description}`);
}

function zshScript(program: string, nodes: Node[]): string {
  const fn = `_${identifier(program)}`;
  const { files, others } = valueFlags(nodes);
  const cases = nodes
    .map((node) => {
      const commands = node.subcommands.map((sub) => describeEntry(sub.name, sub.description)).join(' ');
      const flags = node.flags.flatMap((flag) => flag.names.map((name) => describeEntry(name, flag.description))).join(' ');
      return `    (${shellQuote(node.path)}) commands=(${commands}); flags=(${flags}) ;;`;
    })
    .join('\n');
  return `#compdef ${program}
# zsh completion for ${program}. Load it with:
#   source <(${program} completion zsh)
# or save it as _${program} in a folder of your $fpath.
${fn}() {
  local cmdpath=${shellQuote(program)} word i
  local -a commands flags
  case "\${words[CURRENT-1]}" in
${caseLine(files, '(', '_files; return')}${caseLine(others, '(', 'return')}  esac
  for ((i = 2; i < CURRENT; i++)); do
    word="\${words[i]}"
    [[ "$word" == -* ]] && continue
    case "$cmdpath $word" in
${nodes.slice(1).map((node) => `      (${shellQuote(node.path)}) cmdpath="$cmdpath $word" ;;`).join('\n')}
    esac
  done
  case "$cmdpath" in
${cases}
  esac
  if [[ "\${words[CURRENT]}" == -* ]]; then
    _describe -t flags 'flag' flags
  else
    _describe -t commands 'command' commands || _describe -t flags 'flag' flags
  fi
}
compdef ${fn} ${program}
if [ "$funcstack[1]" = "${fn}" ]; then
  ${fn} "$@"
fi
`;
}

/** Quotes `text` for fish (single quotes; backslash and quote escaped). */
function fishQuote(text: string): string {
  return `'${text.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

function fishScript(program: string, nodes: Node[]): string {
  const prefix = `__${identifier(program)}`;
  const lines: string[] = [
    `# fish completion for ${program}. Load it with:`,
    `#   ${program} completion fish | source`,
    `# or save it as ~/.config/fish/completions/${program}.fish.`,
    `set -g ${prefix}_paths ${nodes.map((node) => fishQuote(node.path)).join(' ')}`,
    `function ${prefix}_path`,
    `    set -l cmdpath ${fishQuote(program)}`,
    '    for word in (commandline -opc)[2..-1]',
    "        string match -q -- '-*' $word; and continue",
    `        contains -- "$cmdpath $word" $${prefix}_paths; and set cmdpath "$cmdpath $word"`,
    '    end',
    '    echo $cmdpath',
    'end',
    `function ${prefix}_at`,
    `    test (${prefix}_path) = "$argv[1]"`,
    'end',
    `complete -c ${program} -f`,
  ];
  for (const node of nodes) {
    // Paths are command names and spaces only, so double quotes inside the single-quoted condition are safe.
    const condition = `-n ${fishQuote(`${prefix}_at "${node.path}"`)}`;
    for (const sub of node.subcommands) {
      lines.push(`complete -c ${program} ${condition} -a ${fishQuote(sub.name)} -d ${fishQuote(sub.description)}`);
    }
    for (const flag of node.flags) {
      const names = flag.names.map((name) => (name.startsWith('--') ? `-l ${name.slice(2)}` : `-s ${name.slice(1)}`)).join(' ');
      const value = flag.takesValue ? (flag.names.some((name) => fileFlags.has(name)) ? ' -r -F' : ' -r') : '';
      lines.push(`complete -c ${program} ${condition} ${names}${value} -d ${fishQuote(flag.description)}`);
    }
  }
  return `${lines.join('\n')}\n`;
}
