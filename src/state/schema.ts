/**
 * The schema kit for untrusted plain data (JSON from a client, msgpack from
 * the log): each combinator returns a parser that checks a value and turns
 * the first problem into a `StateError` naming the field
 * (`spec.ports[0].published must be a whole number from 1 to 65535, got 0`).
 * The messages and the first-problem order are the ones commands always had
 * (clients and tests read them): the first problem in field order, except
 * that an object's unknown fields are refused before anything inside it is
 * looked at.
 *
 * What a parser returns is a fresh copy holding only the known fields, in
 * the schema's order, with absent optional fields left out (not `undefined`:
 * the copy is stored in the replicated state, and its snapshot bytes must be
 * those of the same command applied by any release), so what apply stores is
 * owned by the state and never aliases the caller's objects. Parsers never
 * throw on bad data. A list's and a record's size is checked before their
 * items are, so a huge input is refused without being walked; parsers recurse
 * only as deep as the schema, so nesting in the input cannot exhaust the
 * stack. Pure: no Node API.
 *
 * Why not zod (issue 15 asked for zod or a reason; the kit ran on zod 4 for a
 * while): the kit never needed zod's own features (every leaf carries its own
 * message, every rule is a custom check, the first problem is chosen by the
 * kit), and zod is expensive to hold on a node. Every entry point of zod 4
 * (`zod`, `zod/mini`, `zod/v4/core`) loads its 60 locale modules, which
 * nothing here uses: importing it was 95 modules, about 3 MiB of an idle
 * agent's heap (its source text alone 1.4 MiB, kept at two bytes a
 * character) and 0.1 to 0.3 s of every start, and each schema it built (the
 * commands', built at load) was a graph of zod objects where the kit's is a
 * closure. A differential run of both kits over mutated commands gave the
 * same results but for one message (docs/internals/state.md, Commands);
 * test/schema.test.ts holds the kit's order of problems.
 */
import { ErrorCode, stateError, type StateError } from './errors.js';

/** A parse outcome: the owned copy, or the first problem. */
export type Parsed<T> = { ok: true; value: T } | { ok: false; error: StateError };

/**
 * A problem found by a parser, relative to the value it checked: `field` is
 * `''` for that value itself, else the path below it (`ports[0].target`).
 * The kit's parsers return one instead of the value; no parsed value is one.
 */
class Problem {
  constructor(
    readonly field: string,
    readonly text: string,
  ) {}
}

/** A parser's check of one value: the owned copy, or the first problem (relative to the value). */
type Check<T> = (input: unknown) => T | Problem;

/** Checks `input`, found at `path` (`''` for the root), and copies it; `check` is the same without a path, as the kit composes it. */
export interface Parser<T> {
  (input: unknown, path: string): Parsed<T>;
  readonly check: Check<T>;
}

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

/**
 * `relative` (a problem's field below `head`) seen from above `head` (a
 * field name, or `[n]` for a list item): `head`, `head[2]`, `head.name`. A
 * leading dot is dropped (a check may name `${path}.field` with the path '').
 */
function below(head: string, relative: string): string {
  if (relative === '') return head;
  if (relative.startsWith('[')) return head + relative;
  return relative.startsWith('.') ? head + relative : `${head}.${relative}`;
}

/** The parser running `check`. */
function parserOf<T>(check: Check<T>): Parser<T> {
  const parse = (input: unknown, path: string): Parsed<T> => {
    const checked = check(input);
    if (!(checked instanceof Problem)) return { ok: true, value: checked };
    const relative = checked.field.replace(/^\./, '');
    const field = relative === '' ? path : relative.startsWith('[') ? path + relative : fieldPath(path, relative);
    return problem(field, checked.text);
  };
  return Object.assign(parse, { check });
}

/** A field the object parser walks: its name, its check, whether it may be absent. */
interface FieldCheck {
  key: string;
  check: Check<unknown>;
  optional: boolean;
}

/**
 * An object with exactly the fields of `shape`: unknown fields and missing
 * required ones are problems. A shape with a required field takes any
 * object that is not a list (bytes, a decoded Date: their keys are unknown
 * fields, or the required field is missing); a shape of optional fields
 * only would take an empty one, so it takes a plain object only.
 */
export function object<T>(shape: Shape<T>): Parser<T> {
  const fields: FieldCheck[] = [];
  for (const [key, field] of Object.entries(shape) as [string, Parser<unknown> | Optional<unknown>][]) {
    const isOptional = typeof field !== 'function';
    fields.push({ key, check: (isOptional ? field.optional : field).check, optional: isOptional });
  }
  const known = new Set(fields.map((field) => field.key));
  const plainOnly = fields.every((field) => field.optional);
  return parserOf((input) => {
    const isObject = plainOnly ? isPlainObject(input) : typeof input === 'object' && input !== null && !Array.isArray(input);
    if (!isObject) return new Problem('', `must be an object, got ${describe(input)}`);
    const record = input as Record<string, unknown>;
    // Every enumerable key, inherited too: what a non-plain object brings is refused as unknown. An
    // unknown empty key is named by its object's path and a dot (`spec.limits.`), as it always was.
    for (const key in record) if (!known.has(key)) return new Problem(key === '' ? '.' : key, 'is not a known field; remove it');
    const output: Record<string, unknown> = {};
    for (const field of fields) {
      const value = record[field.key];
      if (value === undefined) {
        if (field.optional) continue;
        return new Problem(field.key, 'is required');
      }
      const checked = field.check(value);
      if (checked instanceof Problem) return new Problem(below(field.key, checked.field), checked.text);
      output[field.key] = checked;
    }
    return output as T;
  });
}

/**
 * Runs `check` on a parsed value; a returned message becomes a problem at
 * its field (`check` gets the path '': the fields it names are relative,
 * `${path}.soft` naming `soft` below the value).
 */
export function refine<T>(parser: Parser<T>, check: (value: T, path: string) => { field: string; text: string } | undefined): Parser<T> {
  const inner = parser.check;
  return parserOf((input) => {
    const checked = inner(input);
    if (checked instanceof Problem) return checked;
    const found = check(checked, '');
    return found === undefined ? checked : new Problem(found.field, found.text);
  });
}

/** Options of `integer`. */
export interface IntegerOptions {
  min: number;
  max: number;
}

/** A whole number within [min, max]; -0 becomes 0. */
export function integer({ min, max }: IntegerOptions): Parser<number> {
  return parserOf((input) => {
    if (typeof input !== 'number' || !Number.isSafeInteger(input) || input < min || input > max) {
      return new Problem('', `must be a whole number from ${min} to ${max}, got ${describe(input)}`);
    }
    return input === 0 ? 0 : input;
  });
}

/** `true` or `false`. */
export function boolean(): Parser<boolean> {
  return parserOf((input) => (typeof input === 'boolean' ? input : new Problem('', `must be true or false, got ${describe(input)}`)));
}

/** One of a fixed set of strings. */
export function oneOf<const T extends string>(values: readonly T[]): Parser<T> {
  const allowed = new Set<unknown>(values);
  const listed = values.map((value) => `"${value}"`).join(', ');
  return parserOf((input) => (allowed.has(input) ? (input as T) : new Problem('', `must be one of ${listed}, got ${describe(input)}`)));
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

const nonAscii = /[^\u0000-\u007f]/;

/** The length of `text` once encoded as UTF-8. */
export function utf8ByteLength(text: string): number {
  // ASCII (nearly every string a command holds, certificates too) is one byte a character; the regular expression
  // runs as native code rather than a loop over each character.
  if (!nonAscii.test(text)) return text.length;
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

/** What is wrong with a string under `options`, or undefined. */
function textProblem(input: string, options: TextOptions): string | undefined {
  const { bytesMin = 0, bytesMax, pattern, patternHint, printable = true, multiline = false } = options;
  const bytes = input.length > bytesMax ? bytesMax + 1 : utf8ByteLength(input);
  if (bytes < bytesMin) return bytesMin === 1 ? 'must not be empty' : `must be at least ${bytesMin} bytes long`;
  if (bytes > bytesMax) return `must be at most ${bytesMax} bytes long`;
  if (loneSurrogate.test(input)) return 'must be valid Unicode text';
  if (printable && (multiline ? controlCharacterButWhitespace : controlCharacter).test(input)) {
    return multiline ? 'must not contain control characters other than tabs and line breaks' : 'must not contain control characters';
  }
  if (pattern && !pattern.test(input)) return `must be ${patternHint ?? `match ${String(pattern)}`}, got ${describe(input)}`;
  return undefined;
}

/** A well-formed string within a byte length, optionally matching a pattern. */
export function text(options: TextOptions): Parser<string> {
  return parserOf((input) => {
    if (typeof input !== 'string') return new Problem('', `must be a string, got ${describe(input)}`);
    const found = textProblem(input, options);
    return found === undefined ? input : new Problem('', found);
  });
}

/** Options of `list`. */
export interface ListOptions {
  min?: number;
  max: number;
  /** Refuse two equal items (compared as strings or numbers). */
  unique?: boolean;
}

/** A list of items, each checked by `item`: its length first, then every item, then (`unique`) repeats. */
export function list<T>(item: Parser<T>, { min = 0, max, unique = false }: ListOptions): Parser<T[]> {
  const itemCheck = item.check;
  return parserOf((input) => {
    if (!Array.isArray(input)) return new Problem('', `must be a list, got ${describe(input)}`);
    const length = input.length;
    if (length < min) return new Problem('', `must have at least ${min} item${min === 1 ? '' : 's'}`);
    if (length > max) return new Problem('', `must have at most ${max} items, got ${length}`);
    const output: T[] = new Array<T>(length);
    for (let position = 0; position < length; position++) {
      const checked = itemCheck(input[position]);
      if (checked instanceof Problem) return new Problem(below(`[${position}]`, checked.field), checked.text);
      output[position] = checked;
    }
    if (unique) {
      const seen = new Set<unknown>();
      for (let position = 0; position < length; position++) {
        const value = output[position];
        if (seen.has(value)) return new Problem(`[${position}]`, `repeats ${describe(value)}; list each once`);
        seen.add(value);
      }
    }
    return output;
  });
}

/** Options of `record`. */
export interface RecordOptions {
  key: Parser<string>;
  keysMax: number;
}

/**
 * A string-keyed map as a plain object; keys that could reach a prototype
 * are refused. Its size first, then every key, then the values.
 */
export function record<T>(value: Parser<T>, { key, keysMax }: RecordOptions): Parser<Record<string, T>> {
  const keyCheck = key.check;
  const valueCheck = value.check;
  return parserOf((input) => {
    if (!isPlainObject(input)) return new Problem('', `must be an object, got ${describe(input)}`);
    const keys = Object.keys(input);
    if (keys.length > keysMax) return new Problem('', `must have at most ${keysMax} keys, got ${keys.length}`);
    for (const name of keys) {
      if (name === '__proto__' || name === 'constructor' || name === 'prototype') return new Problem(name, 'is a reserved name');
      const checked = keyCheck(name);
      if (checked instanceof Problem) return new Problem(below(name, checked.field), checked.text);
    }
    const output: Record<string, T> = {};
    for (const name of keys) {
      const checked = valueCheck(input[name]);
      if (checked instanceof Problem) return new Problem(below(name, checked.field), checked.text);
      output[name] = checked;
    }
    return output;
  });
}

/** Options of `bytes`. */
export interface BytesOptions {
  bytesMin: number;
  bytesMax: number;
}

/** Binary data, copied into a plain `Uint8Array` (a `Buffer` from a decoder loses its class). */
export function bytes({ bytesMin, bytesMax }: BytesOptions): Parser<Uint8Array> {
  const range = bytesMin === bytesMax ? `exactly ${bytesMin}` : `from ${bytesMin} to ${bytesMax}`;
  return parserOf((input) => {
    if (!(input instanceof Uint8Array)) return new Problem('', `must be bytes, got ${describe(input)}`);
    if (input.length < bytesMin || input.length > bytesMax) return new Problem('', `must be ${range} bytes long, got ${input.length}`);
    return new Uint8Array(input);
  });
}

/** Either of two parsers, tried by a test on the raw input. */
export function either<T>(test: (input: unknown) => boolean, whenTrue: Parser<T>, whenFalse: Parser<T>): Parser<T> {
  const trueCheck = whenTrue.check;
  const falseCheck = whenFalse.check;
  return parserOf((input) => (test(input) ? trueCheck(input) : falseCheck(input)));
}

/** `null`, or what `parser` accepts. */
export function nullable<T>(parser: Parser<T>): Parser<T | null> {
  const inner = parser.check;
  return parserOf((input) => (input === null ? null : inner(input)));
}
