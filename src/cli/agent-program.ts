/**
 * The command tree `hivemind agent`, `join` and `recover` run with: the root
 * with its global flags (program-root.ts) and the node's own commands only.
 * A node's process needs none of the client's other commands (commander's
 * tree of them, their tables and progress bars: about 80 modules, 2 MiB of
 * heap and 0.15 s of its start); their help and errors are the same as in the
 * whole tree (src/cli/test/agent-program.test.ts).
 */
import type { Command } from 'commander';
import { registerAgentCommands } from './commands/agent.js';
import { configureErrors, rootProgram } from './program-root.js';

/** The node's commands under the root, as `buildProgram` adds them. */
export function buildAgentProgram(): Command {
  const program = rootProgram();
  program.commandsGroup('Nodes and cluster:');
  registerAgentCommands(program);
  program.helpCommand(false);
  configureErrors(program);
  return program;
}
