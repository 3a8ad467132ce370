/**
 * `exec INSTANCE -- COMMAND [ARGS...]`: runs a command in a running
 * instance through any node (the node passes it on to the one that runs the
 * instance), as `docker exec` does without a terminal: its output is printed
 * as it comes (stdout to stdout, stderr to stderr), and the CLI exits with
 * the command's exit code. Ctrl-C ends the command.
 */
import { Readable } from 'node:stream';
import { InvalidArgumentError, Option, type Command } from 'commander';
import { contextOf, withClient, type CliContext } from '../context.js';
import { CliError, ExitRequest, UsageError } from '../errors.js';

/** Instance ids are `tenant.app.slot.serial`. */
const INSTANCE_ID = /^[a-z0-9-]+\.[a-z0-9-]+\.\d+\.\d+$/;
/** The exit code when the node's answer ended without the command's exit (the connection broke). */
const EXIT_CODE_LOST = 255;

/** One line of the node's NDJSON answer. */
type ExecLine = { stream: 'stdout' | 'stderr'; data: string } | { exitCode: number; timedOut: boolean } | { error: { code: string; message: string } };

function timeoutSeconds(text: string): number {
  const match = /^(\d+)(s|m|h)?$/.exec(text.trim());
  if (match === null) throw new InvalidArgumentError('must be a duration like 30s, 10m or 2h');
  const seconds = Number(match[1]) * (match[2] === 'h' ? 3600 : match[2] === 'm' ? 60 : 1);
  if (seconds < 1 || seconds > 24 * 3600) throw new InvalidArgumentError('must be from 1s to 24h');
  return seconds;
}

/** Adds `exec` to `program`. */
export function registerExecCommand(program: Command): void {
  program
    .command('exec')
    .description('run a command in a running instance; prints its output and exits with its exit code')
    .argument('<instance>', 'the instance id (tenant.app.slot.serial, from `hivemind ps` or `hivemind app NAME`)')
    .argument('<command...>', 'the command and its arguments, after --')
    .addOption(new Option('--timeout <duration>', 'kill the command after this long (such as 30s, 10m; at most 24h)').argParser(timeoutSeconds).default(3600, '1h'))
    .addHelpText('after', '\nExamples:\n  hivemind exec default.web.0.1 -- cat /etc/nginx/nginx.conf\n  hivemind exec acme.db.0.3 -- sh -c "pg_dump shop | gzip > /backup/shop.gz"')
    .action(async (instance: string, commandArgs: string[], options: { timeout: number }, command: Command) => {
      if (!INSTANCE_ID.test(instance)) throw new UsageError(`${JSON.stringify(instance)} is not an instance id (tenant.app.slot.serial, such as default.web.0.1; see \`hivemind ps\`)`);
      if (commandArgs.length === 0) throw new UsageError('name the command to run after --, such as: hivemind exec default.web.0.1 -- ls /');
      const context = contextOf(command);
      const exitCode = await withClient(context, async (client) => {
        const abort = new AbortController();
        const interrupt = (): void => abort.abort();
        process.once('SIGINT', interrupt);
        try {
          const { body } = await client.stream(
            'POST /v1/instances/:id/exec',
            { params: { id: instance } },
            { body: Readable.from([Buffer.from(JSON.stringify({ command: commandArgs, timeoutSeconds: options.timeout }))]), contentType: 'application/json', signal: abort.signal },
          );
          return await printExec(context, body, abort.signal);
        } finally {
          process.removeListener('SIGINT', interrupt);
        }
      });
      if (exitCode !== 0) throw new ExitRequest(exitCode);
    });
}

/** Prints the answer's output lines as they come; the command's exit code. */
async function printExec(context: CliContext, body: AsyncIterable<Uint8Array>, signal: AbortSignal): Promise<number> {
  let partial = '';
  try {
    for await (const chunk of body) {
      const lines = (partial + Buffer.from(chunk).toString('utf8')).split('\n');
      partial = lines.pop() ?? '';
      for (const text of lines) {
        if (text === '') continue;
        const exit = await handleLine(context, JSON.parse(text) as ExecLine);
        if (exit !== undefined) return exit;
      }
    }
  } catch (error) {
    if (signal.aborted) return 130;
    throw error;
  }
  if (signal.aborted) return 130;
  context.stderr.write('hivemind: the node\'s answer ended before the command did (the connection broke); the command may still have run\n');
  return EXIT_CODE_LOST;
}

async function handleLine(context: CliContext, line: ExecLine): Promise<number | undefined> {
  if ('stream' in line) {
    const target = line.stream === 'stderr' ? context.stderr : context.stdout;
    if (!target.write(Buffer.from(line.data, 'base64'))) await new Promise((resolve) => target.once('drain', resolve));
    return undefined;
  }
  if ('error' in line) throw new CliError(`the command stopped: ${line.error.message}`);
  if (line.timedOut) context.stderr.write('hivemind: the command ran past --timeout and was killed\n');
  return line.exitCode;
}
