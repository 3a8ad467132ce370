/**
 * Running an agent as a process: start it, stop it on SIGINT / SIGTERM, and
 * turn the outcome into an exit code and a message for the operator. The CLI
 * (`hivemind agent`, `hivemind join`) calls `runAgent`; `runAgentCommand`
 * parses the same flags itself, for the test launcher `main.ts`.
 */
import { parseArgs } from 'node:util';
import { AgentError } from './agent-error.js';
import { startAgent, type StartAgentOptions } from './agent.js';
import { currentSystem, formatConfigProblems, resolveConfig, SETTINGS, type AgentConfig, type AgentFlags } from '../node/config.js';
import { DataDirError } from '../node/data-dir.js';

/** Exit code: the node ran and stopped as asked (or left). */
export const EXIT_OK = 0;
/** Exit code: the node could not start, or stopped after a fatal error. */
export const EXIT_FAILED = 1;
/** Exit code: a bad command line or setting. */
export const EXIT_USAGE = 2;

/**
 * Starts an agent and runs it until it stops (a signal, a leave, a fatal
 * error). Resolves with the exit code; errors are written to `stderr` as
 * `hivemind: <message>`, never as stack traces.
 */
export async function runAgent(config: AgentConfig, options: StartAgentOptions & { stderr?: (line: string) => void }): Promise<number> {
  const stderr = options.stderr ?? ((line: string) => process.stderr.write(`${line}\n`));
  let agent;
  try {
    agent = await startAgent(config, options);
  } catch (error) {
    stderr(`hivemind: ${describeStartError(error)}`);
    return EXIT_FAILED;
  }
  const onSignal = (): void => void agent.stop();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const reason = await agent.stopped;
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);
  if (reason.type === 'fatal') {
    stderr(`hivemind: the node stopped after a fatal error: ${reason.error.message}; restart it (it recovers from its data directory)`);
    return EXIT_FAILED;
  }
  if (reason.type === 'left') stderr('hivemind: this node left the cluster');
  return EXIT_OK;
}

/** The message for a failed start: ours as they are, anything else with its class. */
export function describeStartError(error: unknown): string {
  if (error instanceof AgentError || error instanceof DataDirError) return error.message;
  if (error instanceof Error) return `the node could not start: ${error.message}`;
  return `the node could not start: ${String(error)}`;
}

const FLAG_OPTIONS = Object.fromEntries(
  Object.values(SETTINGS).map((setting) => [setting.flag.slice(2), { type: 'string' as const }]),
) as Record<string, { type: 'string' }>;

/**
 * `agent [flags]`, `join <seed> [flags]`, `recover --force-new-cluster [--data-dir D] [--name N]`.
 * Resolves with the exit code.
 */
export async function runAgentCommand(argv: string[], env: Readonly<Record<string, string | undefined>>): Promise<number> {
  const stderr = (line: string): void => void process.stderr.write(`${line}\n`);
  let parsed;
  try {
    parsed = parseArgs({ args: argv, allowPositionals: true, strict: true, options: { ...FLAG_OPTIONS, 'force-new-cluster': { type: 'boolean' } } });
  } catch (error) {
    stderr(`hivemind: ${(error as Error).message}`);
    return EXIT_USAGE;
  }
  const [command, ...rest] = parsed.positionals;
  const flags: AgentFlags = {};
  for (const [key, setting] of Object.entries(SETTINGS)) {
    const value = (parsed.values as Record<string, string | boolean | undefined>)[setting.flag.slice(2)];
    if (typeof value === 'string') flags[key as keyof AgentFlags] = value;
  }
  const resolved = resolveConfig(flags, env, currentSystem());
  if (!resolved.ok) {
    stderr(formatConfigProblems(resolved.problems));
    return EXIT_USAGE;
  }
  for (const warning of resolved.warnings) stderr(`hivemind: warning: ${warning}`);
  switch (command) {
    case 'agent':
      if (rest.length > 0) return usage(stderr, `agent takes no arguments, got ${rest.join(' ')}`);
      return runAgent(resolved.config, { mode: 'bootstrap-or-restart', stderr });
    case 'join':
      if (rest.length !== 1) return usage(stderr, 'join takes one argument: a member\'s peer address (host or host:port)');
      return runAgent(resolved.config, { mode: { join: rest[0]! }, stderr });
    case 'recover': {
      if (parsed.values['force-new-cluster'] !== true) return usage(stderr, 'recover needs --force-new-cluster (it makes this node the only voter of a new cluster)');
      try {
        // Only this command recovers: an agent that runs never loads it.
        const { recover } = await import('./recover.js');
        const outcome = await recover({ dataDir: resolved.config.dataDir, ...(flags.name === undefined && env.HIVEMIND_NAME === undefined ? {} : { name: resolved.config.name }) });
        process.stdout.write(
          `recovered: node ${outcome.name} is now the only voter (configuration at index ${outcome.index}, term ${outcome.term}; ` +
            `${outcome.entriesNewlyCommitted} uncommitted entries kept; previous members: ${outcome.previousMembers.join(', ') || 'none'}).\n` +
            'start the agent on this node again; wipe the other nodes\' data directories before they join again.\n',
        );
        return EXIT_OK;
      } catch (error) {
        stderr(`hivemind: ${describeStartError(error)}`);
        return EXIT_FAILED;
      }
    }
    default:
      return usage(stderr, `unknown command ${JSON.stringify(command ?? '')}: use agent, join <seed> or recover --force-new-cluster`);
  }
}

function usage(stderr: (line: string) => void, message: string): number {
  stderr(`hivemind: ${message}`);
  return EXIT_USAGE;
}
