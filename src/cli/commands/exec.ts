/**
 * `exec INSTANCE -- COMMAND [ARGS...]`: runs a command in a running
 * instance through any node (the node passes it on to the one that runs the
 * instance), as `docker exec` does: its output is printed as it comes
 * (stdout to stdout, stderr to stderr), and the CLI exits with the
 * command's exit code. Ctrl-C ends the command.
 *
 * `-i` sends this terminal's stdin to the command as it comes (its end is
 * the command's end of input); `-t` runs the command on a terminal of this
 * terminal's size, kept as the window is resized, with this terminal in raw
 * mode when it is also the input (keys, Ctrl-C included, go to the
 * command). Both go over the exec session route (src/api/exec-session.ts).
 */
import { PassThrough, Readable } from 'node:stream';
import { InvalidArgumentError, Option, type Command } from 'commander';
import type { ApiClient } from '../client.js';
import { contextOf, withClient, type CliContext } from '../context.js';
import { openTerminal, type TerminalSession } from '../terminal.js';
import { CliError, ExitRequest, UsageError } from '../errors.js';

/** Instance ids are `tenant.app.slot.serial`. */
const INSTANCE_ID = /^[a-z0-9-]+\.[a-z0-9-]+\.\d+\.\d+$/;
/** The most stdin bytes in one frame (the node takes lines of up to 256 KiB; base64 adds a third). */
const STDIN_FRAME_BYTES_MAX = 64 * 1024;
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
    .option('-i, --interactive', 'send stdin to the command (its end is the command\'s end of input)')
    .option('-t, --tty', 'run the command on a terminal of this terminal\'s size (container apps only)')
    .addHelpText('after', '\nExamples:\n  hivemind exec default.web.0.1 -- cat /etc/nginx/nginx.conf\n  hivemind exec acme.db.0.3 -- sh -c "pg_dump shop | gzip > /backup/shop.gz"\n  hivemind exec -it default.web.0.1 -- sh\n  hivemind exec -i acme.db.0.3 -- psql shop < migrate.sql')
    .action(async (instance: string, commandArgs: string[], options: { timeout: number; interactive?: boolean; tty?: boolean }, command: Command) => {
      if (!INSTANCE_ID.test(instance)) throw new UsageError(`${JSON.stringify(instance)} is not an instance id (tenant.app.slot.serial, such as default.web.0.1; see \`hivemind ps\`)`);
      if (commandArgs.length === 0) throw new UsageError('name the command to run after --, such as: hivemind exec default.web.0.1 -- ls /');
      if (options.tty === true && options.interactive === true && !process.stdin.isTTY) throw new UsageError('-it needs stdin to be a terminal, and it is not (input is piped in): drop -t to send piped input');
      const context = contextOf(command);
      if (options.interactive === true || options.tty === true) {
        const exitCode = await withClient(context, (client) => runSession(context, client, instance, { command: commandArgs, timeoutSeconds: options.timeout, stdin: options.interactive === true, tty: options.tty === true }));
        if (exitCode !== 0) throw new ExitRequest(exitCode);
        return;
      }
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

/**
 * An exec session: the request line, then this terminal's input and sizes
 * as frames, while the answer's output is printed; the command's exit code.
 * The terminal is put back as it was whatever happens.
 */
async function runSession(context: CliContext, client: ApiClient, instance: string, request: { command: string[]; timeoutSeconds: number; stdin: boolean; tty: boolean }): Promise<number> {
  const body = new PassThrough();
  const send = (frame: unknown): boolean => !body.writableEnded && body.write(`${JSON.stringify(frame)}\n`);
  const terminal: TerminalSession | undefined = request.tty ? openTerminal({ raw: request.stdin }) : undefined;
  send({ command: request.command, timeoutSeconds: request.timeoutSeconds, stdin: request.stdin, ...(terminal === undefined ? {} : { tty: terminal.size() }) });
  terminal?.onResize((size) => send({ resize: size }));
  const abort = new AbortController();
  const interrupt = (): void => abort.abort();
  process.once('SIGINT', interrupt);
  const stopInput = request.stdin ? pumpStdin(send, body, { endBody: terminal === undefined }) : () => undefined;
  try {
    const { body: answer } = await client.stream('POST /v1/instances/:id/exec/session', { params: { id: instance } }, { body, contentType: 'application/x-ndjson', signal: abort.signal });
    return await printExec(context, answer, abort.signal);
  } finally {
    process.removeListener('SIGINT', interrupt);
    stopInput();
    terminal?.close();
    body.end();
  }
}

/**
 * Sends stdin as `stdin` frames (pausing it while the request is full),
 * then `stdinEnd`, and ends the body too when `endBody` (nothing else will
 * be sent). Returns how to stop reading (the command is over).
 */
function pumpStdin(send: (frame: unknown) => boolean, body: PassThrough, options: { endBody: boolean }): () => void {
  const input = process.stdin;
  const onData = (chunk: Buffer): void => {
    for (let offset = 0; offset < chunk.length; offset += STDIN_FRAME_BYTES_MAX) {
      if (!send({ stdin: chunk.subarray(offset, offset + STDIN_FRAME_BYTES_MAX).toString('base64') })) {
        input.pause();
        body.once('drain', () => input.resume());
      }
    }
  };
  const onEnd = (): void => {
    send({ stdinEnd: true });
    if (options.endBody) body.end();
  };
  input.on('data', onData);
  input.once('end', onEnd);
  return () => {
    input.removeListener('data', onData);
    input.removeListener('end', onEnd);
    // stdin held open would keep the CLI running after the command ended.
    input.pause();
    input.destroy();
  };
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
