/**
 * This terminal, for `hivemind exec -t`: its size (stdout's, as `docker
 * exec` takes it), told again on each resize (Node hears SIGWINCH as
 * stdout's `resize`), and raw mode on stdin while a command reads it (keys
 * go to the command as typed, Ctrl-C included). `close` puts it back.
 */
import type { TerminalSize } from '../node/capabilities.js';

/** The size sent when stdout is not a terminal (output piped): the classic one. */
export const TERMINAL_SIZE_DEFAULT: TerminalSize = { columns: 80, rows: 24 };

/** An open terminal session. */
export interface TerminalSession {
  /** The size now: stdout's when it is a terminal, else TERMINAL_SIZE_DEFAULT. */
  size(): TerminalSize;
  /** Calls `listener` with each new size (stdout a terminal only). */
  onResize(listener: (size: TerminalSize) => void): void;
  /** Leaves raw mode (if it was entered) and stops hearing resizes. Idempotent. */
  close(): void;
}

/** Opens this process's terminal; `raw` puts stdin in raw mode when it is a terminal. */
export function openTerminal(options: { raw: boolean }): TerminalSession {
  const output = process.stdout;
  const input = process.stdin;
  const listeners: (() => void)[] = [];
  const wasRaw = input.isTTY === true ? input.isRaw : false;
  if (options.raw && input.isTTY === true) input.setRawMode(true);
  const size = (): TerminalSize =>
    output.isTTY === true && output.columns > 0 && output.rows > 0 ? { columns: output.columns, rows: output.rows } : TERMINAL_SIZE_DEFAULT;
  let closed = false;
  return {
    size,
    onResize(listener) {
      if (output.isTTY !== true) return;
      const heard = (): void => listener(size());
      output.on('resize', heard);
      listeners.push(() => output.removeListener('resize', heard));
    },
    close() {
      if (closed) return;
      closed = true;
      for (const remove of listeners) remove();
      if (options.raw && input.isTTY === true) input.setRawMode(wasRaw);
    },
  };
}
