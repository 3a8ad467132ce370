/**
 * The request of `POST /v1/instances/:id/exec` (and the first line of an
 * exec session): the command and its deadline, each field checked.
 */
import { LIMITS } from '../state/validate.js';
import { invalidArgument } from './errors.js';

/** How long a command may run unless the request says (`timeoutSeconds`). */
export const EXEC_TIMEOUT_SECONDS_DEFAULT = 3600;
/** The longest a request may ask for: a day. */
export const EXEC_TIMEOUT_SECONDS_MAX = 24 * 3600;
/** What `POST /v1/instances/:id/exec` asks for. */
export interface ExecRequest {
  command: string[];
  timeoutSeconds: number;
}

/** The request body, each field checked (an ApiError naming the field). */
export function readExecRequest(body: unknown): ExecRequest {
  const fields = (body ?? {}) as Record<string, unknown>;
  const command = fields.command;
  if (!Array.isArray(command) || command.length === 0 || command.length > LIMITS.argumentsMax) {
    throw invalidArgument('command', `command must be a list of 1 to ${LIMITS.argumentsMax} strings: the program and its arguments`);
  }
  for (const [position, argument] of command.entries()) {
    if (typeof argument !== 'string' || Buffer.byteLength(argument) > LIMITS.argumentBytesMax) throw invalidArgument(`command[${position}]`, `command[${position}] must be a string of at most ${LIMITS.argumentBytesMax} bytes`);
    if (argument.includes('\0')) throw invalidArgument(`command[${position}]`, `command[${position}] must not hold a NUL character`);
  }
  if ((command[0] as string) === '') throw invalidArgument('command[0]', 'command[0] must name a program');
  const timeout = fields.timeoutSeconds;
  if (timeout !== undefined && (typeof timeout !== 'number' || !Number.isInteger(timeout) || timeout < 1 || timeout > EXEC_TIMEOUT_SECONDS_MAX)) {
    throw invalidArgument('timeoutSeconds', `timeoutSeconds must be a whole number of seconds from 1 to ${EXEC_TIMEOUT_SECONDS_MAX}`);
  }
  return { command: command as string[], timeoutSeconds: (timeout as number | undefined) ?? EXEC_TIMEOUT_SECONDS_DEFAULT };
}
