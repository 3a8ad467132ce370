/**
 * `completion SHELL`: print a completion script for bash, zsh or fish.
 */
import { Argument, type Command } from 'commander';
import { SHELLS, completionScript, type Shell } from '../completion.js';
import { rootOf } from './shared.js';

/** Adds `completion` to `program`. */
export function registerCompletionCommand(program: Command): void {
  program
    .command('completion')
    .description('print a shell completion script (bash, zsh or fish)')
    .addArgument(new Argument('<shell>', 'the shell').choices(SHELLS))
    .addHelpText(
      'after',
      [
        '',
        'Examples:',
        '  source <(hivemind completion bash)          # now; add it to ~/.bashrc to keep it',
        '  source <(hivemind completion zsh)           # in ~/.zshrc, after compinit',
        '  hivemind completion fish > ~/.config/fish/completions/hivemind.fish',
      ].join('\n'),
    )
    .action((shell: Shell, _options: unknown, command: Command) => {
      process.stdout.write(completionScript(rootOf(command), shell));
    });
}
