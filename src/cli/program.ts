/**
 * The command tree of `hivemind`: the global flags (program-root.ts), every
 * command in its help group, and the error handling commander gets (usage
 * errors are one line, `hivemind: <problem> (see \`hivemind <command> --help\`)`, exit 2).
 */
import type { Command } from 'commander';
import { registerAgentCommands } from './commands/agent.js';
import { registerAppCommands } from './commands/apps.js';
import { registerCaCommands } from './commands/ca.js';
import { registerClusterCommands } from './commands/cluster.js';
import { registerCompletionCommand } from './commands/completion.js';
import { registerDeployCommand } from './commands/deploy.js';
import { registerValidateCommand } from './commands/validate.js';
import { registerHistoryCommand } from './commands/history.js';
import { registerImageCommands } from './commands/images.js';
import { registerKvCommands } from './commands/kv.js';
import { registerLogsCommand } from './commands/logs.js';
import { registerExecCommand } from './commands/exec.js';
import { registerContextCommands } from './commands/context.js';
import { registerNetworkCommands } from './commands/network.js';
import { registerPolicyCommands } from './commands/policies.js';
import { registerPsCommand } from './commands/ps.js';
import { registerRolloutCommands } from './commands/rollouts.js';
import { registerSecretCommands } from './commands/secrets.js';
import { registerTenantCommands } from './commands/tenants.js';
import { registerTokenCommands } from './commands/tokens.js';
import { registerVolumeCommands } from './commands/volumes.js';
import { configureErrors, rootProgram } from './program-root.js';

/** Builds the whole command tree. Commander throws `CommanderError` instead of exiting (main.ts picks the code). */
export function buildProgram(): Command {
  const program = rootProgram();
  program.commandsGroup('Nodes and cluster:');
  registerAgentCommands(program);
  registerClusterCommands(program);
  registerCaCommands(program);
  program.commandsGroup('Apps:');
  registerDeployCommand(program);
  registerValidateCommand(program);
  registerAppCommands(program);
  registerPsCommand(program);
  registerRolloutCommands(program);
  registerImageCommands(program);
  registerLogsCommand(program);
  registerExecCommand(program);
  registerContextCommands(program);
  program.commandsGroup('Tenants and their resources:');
  registerTenantCommands(program);
  registerTokenCommands(program);
  registerPolicyCommands(program);
  registerNetworkCommands(program);
  registerVolumeCommands(program);
  registerSecretCommands(program);
  program.commandsGroup('Config store and history:');
  registerKvCommands(program);
  registerHistoryCommand(program);
  program.commandsGroup('Shell:');
  registerCompletionCommand(program);
  program.helpCommand(false);

  configureErrors(program);
  return program;
}

export { commandPath } from './program-root.js';
