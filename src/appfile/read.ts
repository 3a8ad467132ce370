/**
 * Readers for the values of a parsed app file. Each takes the value found at
 * a path, reports what is wrong with it to `Problems` (and returns
 * `undefined`), or returns it in Hivemind's form. Messages say what the field
 * must be and what it got: `must be a whole number >= 0, got "three"`. Pure.
 */
import { NAME_PATTERN } from '../state/types.js';
import { LIMITS } from '../state/validate.js';
import type { FieldPath, Problems } from './problems.js';
import { formatDurationMs, parseCpuMillis, parseDurationMs, parseMemoryBytes } from './units.js';

const shownTextMax = 60;

/** How a value reads in a message: strings quoted, lists and mappings named. */
export function describe(value: unknown): string {
  if (value === null || value === undefined) return 'null (an empty value)';
  if (typeof value === 'string') return value.length > shownTextMax ? `${JSON.stringify(value.slice(0, shownTextMax))}...` : JSON.stringify(value);
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (Array.isArray(value)) return 'a list';
  if (value instanceof Uint8Array) return 'binary data';
  if (isMapping(value)) return 'a mapping';
  return `a value of type ${typeof value}`;
}

/** Whether `value` is a YAML mapping as the parser gives it (a plain object). */
export function isMapping(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const prototype = Object.getPrototypeOf(value) as unknown;
  return prototype === Object.prototype || prototype === null;
}

/** Sets `record[key]` as an own property, also for keys such as `__proto__`. */
export function setOwn<T>(record: Record<string, T>, key: string, value: T): void {
  Object.defineProperty(record, key, { value, enumerable: true, writable: true, configurable: true });
}

export function readMapping(value: unknown, path: FieldPath, problems: Problems): Record<string, unknown> | undefined {
  if (isMapping(value)) return value;
  problems.error(path, `must be a mapping, got ${describe(value)}`);
  return undefined;
}

export function readList(value: unknown, path: FieldPath, problems: Problems): unknown[] | undefined {
  if (Array.isArray(value)) return value;
  problems.error(path, `must be a list, got ${describe(value)}`);
  return undefined;
}

/** A scalar as text: strings as they are, numbers and booleans written out (Compose accepts `user: 1000`). */
export function scalarText(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  if (typeof value === 'boolean') return String(value);
  return undefined;
}

export interface TextOptions {
  /** Whether numbers and booleans are accepted and written out as text. */
  scalars?: boolean;
  /** Refuse the empty string. */
  nonEmpty?: boolean;
  /** Refuse blanks anywhere (image references). */
  noSpaces?: boolean;
  /** Names the expected form in the message: `must be ${what}`; default "a string". */
  what?: string;
}

export function readText(value: unknown, path: FieldPath, problems: Problems, options: TextOptions = {}): string | undefined {
  const what = options.what ?? (options.nonEmpty ? 'a non-empty string' : 'a string');
  const text = options.scalars ? scalarText(value) : typeof value === 'string' ? value : undefined;
  if (text === undefined || (options.nonEmpty && text === '') || (options.noSpaces && /\s/.test(text))) {
    problems.error(path, `must be ${what}, got ${describe(value)}`);
    return undefined;
  }
  return text;
}

/** An absolute path inside an instance (`working_dir`, a mount target). */
export function readAbsolutePath(value: unknown, path: FieldPath, problems: Problems): string | undefined {
  if (typeof value === 'string' && value.startsWith('/')) return value;
  problems.error(path, `must be an absolute path like "/app", got ${describe(value)}`);
  return undefined;
}

export interface WholeNumberOptions {
  min: number;
  max: number;
}

/**
 * A whole number in `[min, max]`. Digit strings count (`"3"`): after `${VAR}`
 * interpolation every value is a string, and Compose accepts them too.
 */
export function readWholeNumber(value: unknown, path: FieldPath, problems: Problems, { min, max }: WholeNumberOptions): number | undefined {
  const number = typeof value === 'number' ? value : typeof value === 'string' && /^[-+]?\d+$/.test(value.trim()) ? Number(value) : Number.NaN;
  if (!Number.isSafeInteger(number) || number < min) {
    problems.error(path, `must be a whole number >= ${min}, got ${describe(value)}`);
    return undefined;
  }
  if (number > max) {
    problems.error(path, `must be at most ${max}, got ${describe(value)}`);
    return undefined;
  }
  return number;
}

/** `true` or `false`; the strings "true" and "false" count (interpolated values are strings). */
export function readBoolean(value: unknown, path: FieldPath, problems: Problems): boolean | undefined {
  if (typeof value === 'boolean') return value;
  if (value === 'true' || value === 'false') return value === 'true';
  problems.error(path, `must be true or false, got ${describe(value)}`);
  return undefined;
}

/** One of `choices`, written exactly. */
export function readChoice<const T extends string>(value: unknown, path: FieldPath, problems: Problems, choices: readonly T[]): T | undefined {
  if (typeof value === 'string' && (choices as readonly string[]).includes(value)) return value as T;
  const listed = choices.map((choice) => `"${choice}"`);
  const last = listed.pop();
  problems.error(path, `must be ${listed.length ? `${listed.join(', ')} or ${last}` : last}, got ${describe(value)}`);
  return undefined;
}

/** A Compose duration (`10s`, `1m30s`, `500ms`) in milliseconds, at most a year. */
export function readDurationMs(value: unknown, path: FieldPath, problems: Problems): number | undefined {
  const durationMs = value === 0 ? 0 : typeof value === 'string' ? parseDurationMs(value.trim()) : undefined;
  if (durationMs === undefined) {
    problems.error(path, `must be a duration like "10s" or "1m30s", got ${describe(value)}`);
    return undefined;
  }
  if (durationMs > LIMITS.durationMsMax) {
    problems.error(path, `must be at most ${formatDurationMs(LIMITS.durationMsMax)} (a year), got ${describe(value)}`);
    return undefined;
  }
  return durationMs;
}

/** A memory size (`512M`, `1g`, `1.5GiB`) or a whole number of bytes. */
export function readMemoryBytes(value: unknown, path: FieldPath, problems: Problems): number | undefined {
  const bytes =
    typeof value === 'number' ? (Number.isSafeInteger(value) && value >= 0 ? value : undefined) : typeof value === 'string' ? parseMemoryBytes(value) : undefined;
  if (bytes === undefined) {
    problems.error(path, `must be a memory size like "512M" or "1G", got ${describe(value)}`);
    return undefined;
  }
  return bytes;
}

/** A number of CPUs (`0.5`, `"1.5"`) in thousandths of a core. */
export function readCpuMillis(value: unknown, path: FieldPath, problems: Problems): number | undefined {
  const text = typeof value === 'number' ? (Number.isFinite(value) && value >= 0 ? String(value) : undefined) : typeof value === 'string' ? value : undefined;
  const millis = text === undefined ? undefined : parseCpuMillis(text);
  if (millis === undefined) {
    problems.error(path, `must be a number of CPUs like 0.5 or "2", got ${describe(value)}`);
    return undefined;
  }
  if (millis === 0 && Number(text) > 0) {
    problems.error(path, `must be at least 0.001 CPUs, got ${describe(value)}`);
    return undefined;
  }
  return millis;
}

/** The rule of `NAME_PATTERN`, as the user reads it. */
export const NAME_RULE = 'lowercase letters, digits and "-", 1 to 63 characters, starting and ending with a letter or digit';

/**
 * `text` made a DNS label (lower case; runs of anything else one "-"; no
 * "-" at the ends; at most 63 characters): "My_App" → "my-app". `undefined`
 * when nothing that follows the rule is left.
 */
export function asNameLabel(text: string): string | undefined {
  const label = text
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/-+/g, '-')
    .replace(/^-+/, '')
    .slice(0, 63)
    .replace(/-+$/, '');
  return NAME_PATTERN.test(label) ? label : undefined;
}

/** A near name that follows the rule, for the message: "db_data" → "db-data". */
export function suggestName(text: string): string | undefined {
  const suggestion = asNameLabel(text);
  return suggestion !== text ? suggestion : undefined;
}

/** Checks `text` as a Hivemind name (a DNS label); `what` is "service name", "tenant", ... */
export function checkName(text: string, path: FieldPath, problems: Problems, what: string): boolean {
  if (NAME_PATTERN.test(text)) return true;
  const suggestion = suggestName(text);
  problems.error(path, `${what} "${text}" must be a DNS label: ${NAME_RULE}${suggestion ? `; try "${suggestion}"` : ''}`);
  return false;
}

/**
 * The Hivemind name of a Compose name: the name itself, or, for a name that
 * is a DNS label but for its underscores (`db_password`), the name with
 * hyphens (`db-password`). `undefined` when neither is a DNS label.
 */
export function hivemindName(text: string): string | undefined {
  if (NAME_PATTERN.test(text)) return text;
  const hyphenated = text.replace(/_/g, '-');
  return NAME_PATTERN.test(hyphenated) ? hyphenated : undefined;
}

/**
 * Checks a Compose name (service, volume, secret) and gives its Hivemind
 * name (see `hivemindName`); with `announce`, a name changed says so in a
 * warning (at its declaration, not at each use).
 */
export function readComposeName(text: string, path: FieldPath, problems: Problems, options: { what: string; announce?: string }): string | undefined {
  const name = hivemindName(text);
  if (name === undefined) {
    checkName(text, path, problems, options.what);
    return undefined;
  }
  if (name !== text && options.announce !== undefined) problems.warn(path, `is named "${name}" in Hivemind (names are DNS labels, without "_")${options.announce}`);
  return name;
}

/** A list of Hivemind names (secrets, policies), each once. */
export function readNameList(value: unknown, path: FieldPath, problems: Problems, what: string): string[] | undefined {
  const items = readList(value, path, problems);
  if (items === undefined) return undefined;
  const names: string[] = [];
  const before = problems.errorCount;
  for (const [position, item] of items.entries()) {
    const name = readText(item, [...path, position], problems, { what: `a ${what} name` });
    if (name === undefined || !checkName(name, [...path, position], problems, what)) continue;
    if (names.includes(name)) problems.error([...path, position], `names ${what} "${name}" twice; list each once`);
    else names.push(name);
  }
  return problems.errorCount === before ? names : undefined;
}
