/**
 * A small parser kit for untrusted plain data (JSON from a client, msgpack
 * from the log). Each parser checks a value and returns a fresh copy that
 * holds only the known fields, so what apply stores is owned by the state and
 * never aliases the caller's objects.
 *
 * Parsers never throw on bad data: they return the first problem found, with
 * the path of the field. They recurse only as deep as the schema, so nesting
 * in the input cannot exhaust the stack. Pure: no Node API.
 */
import { ErrorCode, stateError, type StateError } from './errors.js';

/** A parse outcome: the owned copy, or the first problem. */
export type Parsed<T> = { ok: true; value: T } | { ok: false; error: StateError };

/** Checks `input`, found at `path` (`''` for the root), and copies it. */
export type Parser<T> = (input: unknown, path: string) => Parsed<T>;

/** Marks a field that may be absent; `undefined` counts as absent. */
export interface Optional<T> {
  optional: Parser<T>;
}

/** The parsers of an object type's fields; optional properties need `optional(...)`. */
export type Shape<T> = {
  [K in keyof T]-?: undefined extends T[K] ? Optional<Exclude<T[K], undefined>> : Parser<T[K]>;
};

/** A problem at `path`: "spec.replicas must be ...". At the root (`''`), `text` is the whole message. */
export function problem(path: string, text: string): { ok: false; error: StateError } {
  return { ok: false, error: stateError(ErrorCode.invalidArgument, path ? `${path} ${text}` : text, path || undefined) };
}

/** `path.key`, or `key` at the root. */
export function fieldPath(path: string, key: string): string {
  return path ? `${path}.${key}` : key;
}

/** Wraps a parser for a field that may be absent. */
export function optional<T>(parser: Parser<T>): Optional<T> {
  return { optional: parser };
}

/** Whether `input` is a plain object (not an array, not bytes, not a class instance). */
export function isPlainObject(input: unknown): input is Record<string, unknown> {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) return false;
  const prototype = Object.getPrototypeOf(input) as unknown;
  return prototype === Object.prototype || prototype === null;
}

function describe(input: unknown): string {
  if (input === null) return 'null';
  if (Array.isArray(input)) return 'a list';
  if (input instanceof Uint8Array) return 'bytes';
  if (typeof input === 'string') return input.length > 40 ? 'a long string' : JSON.stringify(input);
  if (typeof input === 'number' || typeof input === 'boolean') return String(input);
  return `a value of type ${typeof input}`;
}

/** An object with exactly the fields of `shape`: unknown fields and missing required ones are problems. */
export function object<T>(shape: Shape<T>): Parser<T> {
  const entries = Object.entries(shape) as [string, Parser<unknown> | Optional<unknown>][];
  return (input, path) => {
    if (!isPlainObject(input)) return problem(path, `must be an object, got ${describe(input)}`);
    for (const key of Object.keys(input)) {
      if (!Object.hasOwn(shape, key)) return problem(fieldPath(path, key), 'is not a known field; remove it');
    }
    const output: Record<string, unknown> = {};
    for (const [key, field] of entries) {
      const value = input[key];
      const isOptional = typeof field !== 'function';
      if (value === undefined) {
        if (isOptional) continue;
        return problem(fieldPath(path, key), 'is required');
      }
      const parsed = (isOptional ? field.optional : field)(value, fieldPath(path, key));
      if (!parsed.ok) return parsed;
      output[key] = parsed.value;
    }
    return { ok: true, value: output as T };
  };
}

/** Runs `check` on a parsed value; a returned message becomes a problem at its field. */
export function refine<T>(parser: Parser<T>, check: (value: T, path: string) => { field: string; text: string } | undefined): Parser<T> {
  return (input, path) => {
    const parsed = parser(input, path);
    if (!parsed.ok) return parsed;
    const found = check(parsed.value, path);
    return found ? problem(found.field, found.text) : parsed;
  };
}

/** Options of `integer`. */
export interface IntegerOptions {
  min: number;
  max: number;
}

/** A whole number within [min, max]; -0 becomes 0. */
export function integer({ min, max }: IntegerOptions): Parser<number> {
  return (input, path) => {
    if (typeof input !== 'number' || !Number.isSafeInteger(input) || input < min || input > max) {
      return problem(path, `must be a whole number from ${min} to ${max}, got ${describe(input)}`);
    }
    return { ok: true, value: input === 0 ? 0 : input };
  };
}

/** `true` or `false`. */
export function boolean(): Parser<boolean> {
  return (input, path) =>
    typeof input === 'boolean' ? { ok: true, value: input } : problem(path, `must be true or false, got ${describe(input)}`);
}

/** One of a fixed set of strings. */
export function oneOf<const T extends string>(values: readonly T[]): Parser<T> {
  return (input, path) =>
    typeof input === 'string' && (values as readonly string[]).includes(input)
      ? { ok: true, value: input as T }
      : problem(path, `must be one of ${values.map((value) => `"${value}"`).join(', ')}, got ${describe(input)}`);
}

/** Options of `text`. */
export interface TextOptions {
  /** Smallest length in UTF-8 bytes; default 0. */
  bytesMin?: number;
  /** Largest length in UTF-8 bytes. */
  bytesMax: number;
  pattern?: RegExp;
  /** What `pattern` means, for the message: "a DNS label (a-z, 0-9, -)". */
  patternHint?: string;
  /** Refuse control characters (the default). */
  printable?: boolean;
  /** With `printable`: still allow tabs and line breaks (scripts, certificates). */
  multiline?: boolean;
}

const controlCharacter = /[\u0000-\u001f\u007f]/;
const controlCharacterButWhitespace = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/;
const loneSurrogate = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/** The length of `text` once encoded as UTF-8. */
export function utf8ByteLength(text: string): number {
  let bytes = 0;
  for (let position = 0; position < text.length; position++) {
    const unit = text.charCodeAt(position);
    if (unit < 0x80) bytes += 1;
    else if (unit < 0x800) bytes += 2;
    else if (unit >= 0xd800 && unit <= 0xdbff && position + 1 < text.length) {
      bytes += 4;
      position++;
    } else bytes += 3;
  }
  return bytes;
}

/** A well-formed string within a byte length, optionally matching a pattern. */
export function text(options: TextOptions): Parser<string> {
  const { bytesMin = 0, bytesMax, pattern, patternHint, printable = true, multiline = false } = options;
  const forbidden = multiline ? controlCharacterButWhitespace : controlCharacter;
  return (input, path) => {
    if (typeof input !== 'string') return problem(path, `must be a string, got ${describe(input)}`);
    const bytes = input.length > bytesMax ? bytesMax + 1 : utf8ByteLength(input);
    if (bytes < bytesMin) return problem(path, bytesMin === 1 ? 'must not be empty' : `must be at least ${bytesMin} bytes long`);
    if (bytes > bytesMax) return problem(path, `must be at most ${bytesMax} bytes long`);
    if (loneSurrogate.test(input)) return problem(path, 'must be valid Unicode text');
    if (printable && forbidden.test(input)) {
      return problem(path, multiline ? 'must not contain control characters other than tabs and line breaks' : 'must not contain control characters');
    }
    if (pattern && !pattern.test(input)) return problem(path, `must be ${patternHint ?? `match ${String(pattern)}`}, got ${describe(input)}`);
    return { ok: true, value: input };
  };
}

/** Options of `list`. */
export interface ListOptions {
  min?: number;
  max: number;
  /** Refuse two equal items (compared as strings or numbers). */
  unique?: boolean;
}

/** A list of items, each checked by `item`. */
export function list<T>(item: Parser<T>, { min = 0, max, unique = false }: ListOptions): Parser<T[]> {
  return (input, path) => {
    if (!Array.isArray(input)) return problem(path, `must be a list, got ${describe(input)}`);
    if (input.length < min) return problem(path, `must have at least ${min} item${min === 1 ? '' : 's'}`);
    if (input.length > max) return problem(path, `must have at most ${max} items, got ${input.length}`);
    const output: T[] = [];
    const seen = new Set<unknown>();
    for (let position = 0; position < input.length; position++) {
      const itemPath = `${path}[${position}]`;
      const parsed = item(input[position], itemPath);
      if (!parsed.ok) return parsed;
      if (unique && seen.has(parsed.value)) return problem(itemPath, `repeats ${describe(parsed.value)}; list each once`);
      seen.add(parsed.value);
      output.push(parsed.value);
    }
    return { ok: true, value: output };
  };
}

/** Options of `record`. */
export interface RecordOptions {
  key: Parser<string>;
  keysMax: number;
}

/** A string-keyed map as a plain object; keys that could reach a prototype are refused. */
export function record<T>(value: Parser<T>, { key, keysMax }: RecordOptions): Parser<Record<string, T>> {
  return (input, path) => {
    if (!isPlainObject(input)) return problem(path, `must be an object, got ${describe(input)}`);
    const keys = Object.keys(input);
    if (keys.length > keysMax) return problem(path, `must have at most ${keysMax} keys, got ${keys.length}`);
    const output: Record<string, T> = {};
    for (const name of keys) {
      const namePath = fieldPath(path, name);
      if (name === '__proto__' || name === 'constructor' || name === 'prototype') return problem(namePath, 'is a reserved name');
      const parsedKey = key(name, namePath);
      if (!parsedKey.ok) return parsedKey;
      const parsed = value(input[name], namePath);
      if (!parsed.ok) return parsed;
      output[name] = parsed.value;
    }
    return { ok: true, value: output };
  };
}

/** Options of `bytes`. */
export interface BytesOptions {
  bytesMin: number;
  bytesMax: number;
}

/** Binary data, copied into a plain `Uint8Array` (a `Buffer` from a decoder loses its class). */
export function bytes({ bytesMin, bytesMax }: BytesOptions): Parser<Uint8Array> {
  return (input, path) => {
    if (!(input instanceof Uint8Array)) return problem(path, `must be bytes, got ${describe(input)}`);
    if (input.length < bytesMin || input.length > bytesMax) {
      const range = bytesMin === bytesMax ? `exactly ${bytesMin}` : `from ${bytesMin} to ${bytesMax}`;
      return problem(path, `must be ${range} bytes long, got ${input.length}`);
    }
    return { ok: true, value: new Uint8Array(input) };
  };
}

/** Either of two parsers, tried by a test on the raw input. */
export function either<T>(test: (input: unknown) => boolean, whenTrue: Parser<T>, whenFalse: Parser<T>): Parser<T> {
  return (input, path) => (test(input) ? whenTrue(input, path) : whenFalse(input, path));
}

/** `null`, or what `parser` accepts. */
export function nullable<T>(parser: Parser<T>): Parser<T | null> {
  return (input, path) => (input === null ? { ok: true, value: null } : parser(input, path));
}
