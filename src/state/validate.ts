/**
 * Structural validation of commands and envelopes: types, known fields,
 * names, ranges and sizes. The API runs it before proposing (a 400 with the
 * field, nothing proposed); apply runs it again on what comes out of the log,
 * so a malformed entry is refused deterministically and never crashes a node.
 * Each command's schema is in its module (commands.ts); the fields they share
 * are in fields.ts, re-exported here for the code that imported them from here.
 *
 * Checks against the state (does the tenant exist, is there quota) are not
 * here: they are in the plans, and `ClusterStateMachine.check` runs them
 * without changing anything. Pure: no Node API.
 */
import { COMMANDS } from './commands.js';
import type { StateError } from './errors.js';
import { count, LIMITS } from './fields.js';
import { integer, isPlainObject, object, optional, problem, text, type Parser } from './schema.js';
import type { Command, CommandType, Envelope } from './types.js';

export { LIMITS, HOST_PATTERN, IDENTIFIER_PATTERN, imageReferenceProblem, isIpAddress, validateKvKey } from './fields.js';

/** The outcome of validation: the owned, cleaned copy, or the first problem. */
export type Validated<T> = { ok: true; command: T } | { ok: false; error: StateError };

/** Whether `type` names a command. */
export function isCommandType(type: unknown): type is CommandType {
  return typeof type === 'string' && Object.hasOwn(COMMANDS, type);
}

/**
 * Checks a command's structure. On success returns a fresh copy holding only
 * known fields (bytes as plain `Uint8Array`), safe to store. On failure the
 * error has code 'invalid-argument' and `field` names the path relative to
 * the command (`spec.replicas`). Never throws on plain data.
 */
export function validateCommand(command: unknown): Validated<Command> {
  if (!isPlainObject(command)) return problem('', 'invalid command: it must be an object with a "type" field');
  const type = command.type;
  if (!isCommandType(type)) {
    const shown = typeof type === 'string' ? `"${type.slice(0, 64)}"` : 'missing';
    return problem('type', `is ${shown}, not a known command type; use one of ${Object.keys(COMMANDS).join(', ')}`);
  }
  const parsed = (COMMANDS[type].schema as Parser<Command>)(command, '');
  if (!parsed.ok) {
    return { ok: false, error: { ...parsed.error, message: `invalid ${type} command: ${parsed.error.message}` } };
  }
  return { ok: true, command: parsed.value };
}

/** The envelope's own fields, without the command (nor the trace context, which never reaches validation: Envelope). */
export type EnvelopeHeader = Omit<Envelope, 'command' | 'traceparent'>;

const envelopeHeader = object<EnvelopeHeader>({
  requestId: text({ bytesMin: 1, bytesMax: LIMITS.identifierBytesMax }),
  time: count,
  actor: text({ bytesMin: 1, bytesMax: LIMITS.identifierBytesMax }),
  version: optional(integer({ min: 1, max: 1_000_000 })),
});

/** Checks the envelope's `requestId`, `time` and `actor` (the command is checked apart). */
export function validateEnvelopeHeader(envelope: unknown): { ok: true; header: EnvelopeHeader } | { ok: false; error: StateError } {
  if (!isPlainObject(envelope)) return problem('', 'invalid envelope: it must be an object with requestId, time, actor and command');
  const { command: _command, ...header } = envelope;
  const parsed = envelopeHeader(header, '');
  if (!parsed.ok) return { ok: false, error: { ...parsed.error, message: `invalid envelope: ${parsed.error.message}` } };
  if (!('command' in envelope)) return problem('command', 'is required');
  return { ok: true, header: parsed.value };
}

/**
 * Checks a whole envelope. Fields inside the command are named relative to
 * the command, as `validateCommand` names them, so a refusal reads the same
 * at the API and at apply.
 */
export function validateEnvelope(envelope: unknown): { ok: true; envelope: Envelope } | { ok: false; error: StateError } {
  const header = validateEnvelopeHeader(envelope);
  if (!header.ok) return header;
  const command = validateCommand((envelope as { command: unknown }).command);
  if (!command.ok) return command;
  return { ok: true, envelope: { ...header.header, command: command.command } };
}
