/**
 * Reading input from stdin: a whole pipe (an app file, a secret), or one
 * hidden line typed at a terminal (a secret's value).
 */
import { UsageError } from './errors.js';

/**
 * Reads all of stdin as UTF-8, refusing more than `bytesMax` bytes. Refuses
 * a terminal: input must be piped in (`cat app.yaml | hivemind deploy -f -`).
 */
export async function readStdin(options: { bytesMax: number; what: string }): Promise<string> {
  if (process.stdin.isTTY) throw new UsageError(`${options.what} is read from stdin, but stdin is a terminal; pipe it in`);
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of process.stdin) {
    const buffer = typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer);
    total += buffer.length;
    if (total > options.bytesMax) {
      process.stdin.destroy();
      throw new UsageError(`${options.what} on stdin is more than ${options.bytesMax} bytes`);
    }
    chunks.push(buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/**
 * Asks for one line at the terminal without echoing it (for secrets), and
 * gives it without its newline. Ctrl-C aborts with a usage error.
 */
export async function promptHidden(question: string): Promise<string> {
  const input = process.stdin;
  process.stderr.write(question);
  input.setRawMode(true);
  input.resume();
  input.setEncoding('utf8');
  try {
    return await new Promise<string>((resolve, reject) => {
      let line = '';
      const onData = (text: string) => {
        for (const character of text) {
          if (character === '\r' || character === '\n' || character === '\u0004') {
            input.off('data', onData);
            resolve(line);
            return;
          }
          if (character === '\u0003') {
            input.off('data', onData);
            reject(new UsageError('cancelled'));
            return;
          }
          if (character === '\u007f' || character === '\b') line = line.slice(0, -1);
          else line += character;
        }
      };
      input.on('data', onData);
    });
  } finally {
    input.setRawMode(false);
    input.pause();
    process.stderr.write('\n');
  }
}
