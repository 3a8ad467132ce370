/**
 * The `hivemind` command's entry point (bin/hivemind.js imports this file).
 * The one place that turns failures into `hivemind: <message>` on stderr and
 * an exit code; no stack trace ever reaches the user (set HIVEMIND_DEBUG=1 to
 * see one).
 */
import { CommanderError } from 'commander';
import { CliError, ExitCode, ExitRequest, describeUnexpected } from './errors.js';
import { hideSecretFlags } from './hidden-flags.js';

/** The node's commands, served by the smaller tree of agent-program.ts (kept here so the whole tree is not loaded to ask). */
const AGENT_COMMANDS: ReadonlySet<string> = new Set(['agent', 'join', 'recover']);

/**
 * Runs the CLI on `argv` (as `process.argv`: node, script, arguments) and
 * gives the exit code. `hivemind agent|join|recover ...` (the command first)
 * builds only the node's commands: a node's process loads none of the
 * client's (agent-program.ts).
 */
export async function run(argv: readonly string[]): Promise<number> {
  const program = AGENT_COMMANDS.has(argv[2] ?? '') ? (await import('./agent-program.js')).buildAgentProgram() : (await import('./program.js')).buildProgram();
  try {
    await program.parseAsync([...argv]);
    return ExitCode.ok;
  } catch (error) {
    return report(error);
  }
}

function report(error: unknown): number {
  if (error instanceof CommanderError) {
    // Commander has already printed its message (see program.ts); only the code is left to choose.
    if (error.code === 'commander.helpDisplayed' || error.code === 'commander.version' || error.exitCode === 0) return ExitCode.ok;
    return ExitCode.usage;
  }
  if (error instanceof ExitRequest) return error.exitCode;
  if (process.env.HIVEMIND_DEBUG && error instanceof Error) process.stderr.write(`${error.stack ?? error.message}\n`);
  if (error instanceof CliError) {
    process.stderr.write(`hivemind: ${error.message}\n`);
    for (const line of error.details) process.stderr.write(`${line}\n`);
    return error.exitCode;
  }
  process.stderr.write(`hivemind: ${describeUnexpected(error)}\n`);
  return ExitCode.failure;
}

/** Ends the process quietly when the reader of stdout goes away (`hivemind history | head`). */
function exitOnClosedPipe(stream: NodeJS.WriteStream): void {
  stream.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE') process.exit(ExitCode.ok);
    process.stderr.write(`hivemind: cannot write output: ${error.message}\n`);
    process.exit(ExitCode.failure);
  });
}

exitOnClosedPipe(process.stdout);
// Before anything runs long: the agent's apps must not read its --token from /proc.
hideSecretFlags();
process.on('uncaughtException', (error) => {
  process.exitCode = report(error);
  process.exit();
});
process.on('unhandledRejection', (error) => {
  process.exitCode = report(error);
  process.exit();
});

process.exitCode = await run(process.argv);
