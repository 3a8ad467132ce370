/**
 * The standard streams of a streamed exec (`hivemind exec`), as FIFOs the
 * way containerd's own client makes them (containerd's `file://` stdio would
 * put stdout and stderr in one file and cannot take input).
 *
 * Output: each read end is opened without blocking before the exec is
 * created (so the shim finds a reader), read as a pipe once the shim holds
 * the write end, and each chunk handed to `output` as it comes. The end of
 * every output pipe (the shim closes them when the process is gone) is the
 * end of the output. With a terminal there is one output pipe: the
 * terminal's, heard as stdout.
 *
 * Input (`-i`): one FIFO opened read-write without blocking (a FIFO opened
 * for writing alone fails while nobody reads it, and the shim opens its end
 * only at the exec's creation). Closing our end is the command's end of
 * input: the shim holds only a read end, so ours was the only writer.
 */
import { spawn } from 'node:child_process';
import { closeSync, constants as fsConstants, openSync } from 'node:fs';
import { Socket } from 'node:net';
import type { ExecInputEvent, TerminalSize } from '../../node/capabilities.js';

/** Who hears the output. */
export type ExecOutput = (stream: 'stdout' | 'stderr', chunk: Uint8Array) => void;

function makeFifos(paths: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('mkfifo', ['-m', '600', ...paths], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', (error) => reject(new Error(`cannot make the exec's pipes: ${error.message}`)));
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`cannot make the exec's pipes: ${stderr.trim()}`))));
  });
}

/** An exec's output pipes (stdout and stderr, or a terminal's alone). See the file header. */
export class ExecPipes {
  private readonly sockets: Socket[] = [];
  private readonly ended: Promise<void>[] = [];

  private constructor(
    private readonly pipes: ReadonlyArray<{ stream: 'stdout' | 'stderr'; fd: number }>,
    private readonly output: ExecOutput,
  ) {}

  /** Makes the FIFOs at `paths` (no `stderr`: a terminal's single stream) and opens their read ends. */
  static async open(paths: { stdout: string; stderr?: string }, output: ExecOutput): Promise<ExecPipes> {
    const named = [{ stream: 'stdout' as const, path: paths.stdout }, ...(paths.stderr === undefined ? [] : [{ stream: 'stderr' as const, path: paths.stderr }])];
    await makeFifos(named.map((pipe) => pipe.path));
    const flags = fsConstants.O_RDONLY | fsConstants.O_NONBLOCK;
    return new ExecPipes(
      named.map((pipe) => ({ stream: pipe.stream, fd: openSync(pipe.path, flags) })),
      output,
    );
  }

  /** Starts reading; call once the exec is created (the shim holds the write ends, so an end of the pipe means the process is gone). */
  read(): void {
    for (const pipe of this.pipes) {
      const socket = new Socket({ fd: pipe.fd, readable: true, writable: false });
      this.sockets.push(socket);
      socket.on('data', (chunk: Buffer) => this.output(pipe.stream, chunk));
      this.ended.push(
        new Promise<void>((resolve) => {
          socket.once('end', resolve);
          socket.once('close', resolve);
          socket.once('error', () => resolve());
        }),
      );
    }
  }

  /** Waits for every pipe to end, at most `waitMs`. */
  async drain(waitMs: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.all(this.ended), new Promise<void>((resolve) => (timer = setTimeout(resolve, waitMs)))]);
    clearTimeout(timer);
  }

  /** Closes the read ends (the sockets own the descriptors once reading; before that they are closed here). */
  close(): void {
    if (this.sockets.length > 0) for (const socket of this.sockets) socket.destroy();
    else for (const pipe of this.pipes) closeSync(pipe.fd);
  }
}

/** What feeding an exec's input needs of its runtime: the exec's end of input and its terminal size. */
export interface ExecInputTarget {
  /** Tells the runtime the command's input has ended (containerd's CloseIO), after our end is closed. */
  closeInput(): Promise<void>;
  /** Sets the terminal's size (containerd's ResizePty); called only for an exec with a terminal. */
  resize(size: TerminalSize): Promise<void>;
}

/** An exec's input pipe. See the file header. */
export class ExecStdin {
  private socket: Socket | undefined;
  private ended = false;

  private constructor(private readonly fd: number) {}

  /** Makes the FIFO at `path` and opens it read-write (so it is open before the shim's end is). */
  static async open(path: string): Promise<ExecStdin> {
    await makeFifos([path]);
    return new ExecStdin(openSync(path, fsConstants.O_RDWR | fsConstants.O_NONBLOCK));
  }

  /**
   * Feeds `input` to the command until it ends or `finished` is aborted
   * (the command is gone): stdin bytes into the pipe (each write taken
   * before the next event is read), resizes to `target` when `terminal`.
   * Never throws: a pipe the command no longer reads ends the feeding of
   * bytes, and a failed resize is dropped (the next one may pass).
   */
  async feed(input: AsyncIterable<ExecInputEvent> | undefined, options: { target: ExecInputTarget; terminal: boolean; finished: AbortSignal }): Promise<void> {
    try {
      if (input !== undefined) {
        for await (const event of input) {
          if (options.finished.aborted) break;
          if (event.type === 'resize') {
            if (options.terminal) await options.target.resize(event.size).catch(() => undefined);
          } else if (event.type === 'stdin-end') {
            await this.end(options.target);
          } else if (!this.ended) {
            await this.write(event.data);
          }
        }
      }
    } catch {
      // The caller went away mid-input: the end of input, as below.
    }
    if (!options.finished.aborted) await this.end(options.target);
  }

  /** Closes our end for good (the command is gone or never read it). */
  close(): void {
    if (this.socket !== undefined) this.socket.destroy();
    else if (!this.ended) closeSync(this.fd);
    this.ended = true;
  }

  private writer(): Socket {
    if (this.socket === undefined) {
      this.socket = new Socket({ fd: this.fd, readable: false, writable: true });
      // A command that stopped reading: later bytes are dropped (the write's error is its answer).
      this.socket.on('error', () => undefined);
    }
    return this.socket;
  }

  private write(data: Uint8Array): Promise<void> {
    const socket = this.writer();
    return new Promise<void>((resolve) => {
      if (socket.destroyed) return resolve();
      socket.write(data, () => resolve());
    });
  }

  private async end(target: ExecInputTarget): Promise<void> {
    if (this.ended) return;
    const socket = this.socket;
    this.close();
    if (socket !== undefined) await new Promise<void>((resolve) => socket.once('close', () => resolve()));
    await target.closeInput().catch(() => undefined);
  }
}
