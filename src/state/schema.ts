/**
 * The schema kit for untrusted plain data (JSON from a client, msgpack from
 * the log), on `zod`: each combinator builds a zod schema and a parser that
 * runs it and turns zod's first issue into a `StateError` naming the field
 * (`spec.ports[0].published must be a whole number from 1 to 65535, got 0`).
 * The messages and the first-problem order are the ones commands always had
 * (clients and tests read them), so every leaf carries its own message.
 *
 * What a parser returns is a fresh copy holding only the known fields, with
 * absent optional fields left out (not `undefined`: the copy is stored in the
 * replicated state, and its snapshot bytes must be those of the same command
 * applied by any release), so what apply stores is owned by the state and
 * never aliases the caller's objects. Parsers never throw on bad data. A
 * list's and a record's size is checked before their items are, so a huge
 * input is refused without being walked. Pure: no Node API.
 */
import { z } from 'zod';
import { ErrorCode, stateError, type StateError } from './errors.js';

/** A parse outcome: the owned copy, or the first problem. */
export type Parsed<T> = { ok: true; value: T } | { ok: false; error: StateError };

/** Checks `input`, found at `path` (`''` for the root), and copies it; `schema` is the zod schema it runs. */
export interface Parser<T> {
  (input: unknown, path: string): Parsed<T>;
  readonly schema: z.ZodType<T>;
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

/** The parser running `schema`. */
function parserOf<T>(schema: z.ZodType<T>): Parser<T> {
  const parse = (input: unknown, path: string): Parsed<T> => {
    const result = schema.safeParse(input);
    return result.success ? { ok: true, value: result.data } : { ok: false, error: firstProblem(result.error.issues, path) };
  };
  return Object.assign(parse, { schema });
}

/**
 * Marks the message of an issue about an undefined value: `firstFound` makes
 * it "is required" for an object's field. (zod's `reportInput` would keep the
 * input on every issue instead, but it takes zod off its fast path: a
 * two-field object parsed 20 times slower.)
 */
const UNDEFINED_MARK = '\u0000undefined\u0000';

/** zod's error option: `text(input)` for a value of the wrong kind (an absent object field is "is required": see `firstFound`). */
function saying(text: (input: unknown) => string): { error: (issue: { input?: unknown }) => string } {
  return { error: (issue) => (issue.input === undefined ? UNDEFINED_MARK + text(undefined) : text(issue.input)) };
}

/** A problem found by a check: `text` at `field` (relative to where the check runs; '' for there). */
interface Found {
  field: string;
  text: string;
}

/** Reports `found` from a check or transform; its field travels in the issue's params. */
function report(issues: z.core.$ZodRawIssue[], input: unknown, found: Found): void {
  issues.push({ code: 'custom', input, message: found.text, params: { field: found.field } });
}

/** `a.b[0].c` from zod's path segments under `base`. */
function pathText(base: string, segments: readonly PropertyKey[]): string {
  let text = base;
  for (const segment of segments) text = typeof segment === 'number' ? `${text}[${segment}]` : fieldPath(text, String(segment));
  return text;
}

/**
 * The problem the kit reports: zod's first issue, unless an object on its
 * path has unknown fields (the kit refuses those before looking inside).
 */
function firstProblem(issues: readonly z.core.$ZodIssue[], base: string): StateError {
  const found = firstFound(issues, base);
  return problem(found.field, found.text).error;
}

/** The field and text of `firstProblem`. */
function firstFound(issues: readonly z.core.$ZodIssue[], base: string): Found {
  const first = issues[0]!;
  let chosen = first;
  for (const issue of issues) {
    if (issue.code !== 'unrecognized_keys' || issue.path.length > first.path.length) continue;
    if (!issue.path.every((segment, position) => segment === first.path[position])) continue;
    if (chosen === first || issue.path.length < chosen.path.length) chosen = issue;
  }
  const at = pathText(base, chosen.path);
  if (chosen.code === 'unrecognized_keys') return { field: fieldPath(at, chosen.keys[0]!), text: 'is not a known field; remove it' };
  const relative = ((chosen as { params?: { field?: string } }).params?.field ?? '').replace(/^\./, '');
  const field = relative === '' ? at : relative.startsWith('[') ? `${at}${relative}` : fieldPath(at, relative);
  // An object's field that is absent (or undefined) is missing, whatever its kind; an undefined list item or record value is a wrong value.
  if (!chosen.message.startsWith(UNDEFINED_MARK)) return { field, text: chosen.message };
  return { field, text: relative === '' && isObjectField(chosen) ? 'is required' : chosen.message.slice(UNDEFINED_MARK.length) };
}

/** Whether `issue` is about a field of an object, not a list item (records parse their values apart: see `record`). */
function isObjectField(issue: z.core.$ZodIssue): boolean {
  return typeof issue.path[issue.path.length - 1] === 'string';
}

/** Drops the keys whose value is undefined (an absent optional field), in place. */
function withoutUndefined<T>(value: T): T {
  const record = value as Record<string, unknown>;
  for (const key in record) if (record[key] === undefined) delete record[key];
  return value;
}

/** An object with exactly the fields of `shape`: unknown fields and missing required ones are problems. */
export function object<T>(shape: Shape<T>): Parser<T> {
  const fields: Record<string, z.ZodType> = {};
  let anyOptional = false;
  for (const [key, field] of Object.entries(shape) as [string, Parser<unknown> | Optional<unknown>][]) {
    const isOptional = typeof field !== 'function';
    anyOptional ||= isOptional;
    fields[key] = isOptional ? field.optional.schema.optional() : field.schema;
  }
  const strict = z.strictObject(fields, saying((input) => `must be an object, got ${describe(input)}`));
  const checked = anyOptional ? strict.overwrite(withoutUndefined) : strict;
  const hasRequired = Object.values(shape as Record<string, unknown>).some((field) => typeof field === 'function');
  if (hasRequired) return parserOf(checked as unknown as z.ZodType<T>);
  // zod takes any non-array object (bytes, a decoded Date) for an object. With a required field, it refuses one
  // anyway (the field is missing, or its indexes are unknown fields); a shape of optional fields only would take an
  // empty one, so it checks first that the input is plain. Not everywhere: the pipe costs about a third of the
  // validation of a batch of instance statuses (bench:apply).
  const plain = z.custom<Record<string, unknown>>(isPlainObject, saying((input) => `must be an object, got ${describe(input)}`));
  return parserOf(plain.pipe(checked) as unknown as z.ZodType<T>);
}

/** Runs `check` on a parsed value; a returned message becomes a problem at its field (`check` gets the path '': fields it names are relative). */
export function refine<T>(parser: Parser<T>, check: (value: T, path: string) => Found | undefined): Parser<T> {
  return parserOf(
    parser.schema.check((payload) => {
      const found = check(payload.value, '');
      if (found !== undefined) report(payload.issues, payload.value, found);
    }),
  );
}

/** Options of `integer`. */
export interface IntegerOptions {
  min: number;
  max: number;
}

/** A whole number within [min, max]; -0 becomes 0. */
export function integer({ min, max }: IntegerOptions): Parser<number> {
  const text = (input: unknown): string => `must be a whole number from ${min} to ${max}, got ${describe(input)}`;
  return parserOf(
    z
      .number(saying(text))
      .check((payload) => {
        const value = payload.value;
        if (!Number.isSafeInteger(value) || value < min || value > max) report(payload.issues, value, { field: '', text: text(value) });
      })
      .overwrite((value) => (value === 0 ? 0 : value)),
  );
}

/** `true` or `false`. */
export function boolean(): Parser<boolean> {
  return parserOf(z.boolean(saying((input) => `must be true or false, got ${describe(input)}`)));
}

/** One of a fixed set of strings. */
export function oneOf<const T extends string>(values: readonly T[]): Parser<T> {
  const listed = values.map((value) => `"${value}"`).join(', ');
  return parserOf(z.enum(values as unknown as [T, ...T[]], saying((input) => `must be one of ${listed}, got ${describe(input)}`)) as unknown as z.ZodType<T>);
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
  return parserOf(
    z.string(saying((input) => `must be a string, got ${describe(input)}`)).check((payload) => {
      const found = textProblem(payload.value, options);
      if (found !== undefined) report(payload.issues, payload.value, { field: '', text: found });
    }),
  );
}

/** Options of `list`. */
export interface ListOptions {
  min?: number;
  max: number;
  /** Refuse two equal items (compared as strings or numbers). */
  unique?: boolean;
}

/** A list of items, each checked by `item`; its length first. */
export function list<T>(item: Parser<T>, { min = 0, max, unique = false }: ListOptions): Parser<T[]> {
  // Sized first without walking the items (z.custom does not copy the list, z.array would).
  const sized = z.custom<unknown[]>((input) => Array.isArray(input), saying((input) => `must be a list, got ${describe(input)}`)).check((payload) => {
    const length = payload.value.length;
    if (length < min) report(payload.issues, payload.value, { field: '', text: `must have at least ${min} item${min === 1 ? '' : 's'}` });
    else if (length > max) report(payload.issues, payload.value, { field: '', text: `must have at most ${max} items, got ${length}` });
  });
  let items = z.array(item.schema);
  if (unique) {
    items = items.check((payload) => {
      const seen = new Set<unknown>();
      for (const [position, value] of payload.value.entries()) {
        if (seen.has(value)) return report(payload.issues, payload.value, { field: `[${position}]`, text: `repeats ${describe(value)}; list each once` });
        seen.add(value);
      }
    });
  }
  return parserOf(sized.pipe(items) as unknown as z.ZodType<T[]>);
}

/** Options of `record`. */
export interface RecordOptions {
  key: Parser<string>;
  keysMax: number;
}

/** A string-keyed map as a plain object; keys that could reach a prototype are refused. Its size and keys first. */
export function record<T>(value: Parser<T>, { key, keysMax }: RecordOptions): Parser<Record<string, T>> {
  const keyed = z
    .custom<Record<string, unknown>>((input) => isPlainObject(input), saying((input) => `must be an object, got ${describe(input)}`))
    .check((payload) => {
      const keys = Object.keys(payload.value);
      if (keys.length > keysMax) return report(payload.issues, payload.value, { field: '', text: `must have at most ${keysMax} keys, got ${keys.length}` });
      for (const name of keys) {
        if (name === '__proto__' || name === 'constructor' || name === 'prototype') return report(payload.issues, payload.value, { field: name, text: 'is a reserved name' });
        if (!key.schema.safeParse(name).success) {
          const refused = key(name, name);
          if (!refused.ok) return report(payload.issues, payload.value, { field: name, text: refused.error.message.slice(name.length + 1) });
        }
      }
    });
  // The values parse here rather than in z.record, so that an undefined value reads as a wrong value, not a missing field.
  const valued = keyed.transform((input, context) => {
    const output: Record<string, T> = {};
    for (const name of Object.keys(input)) {
      const parsed = value.schema.safeParse(input[name]);
      if (!parsed.success) {
        const found = firstFound(parsed.error.issues, '');
        const field = found.field === '' ? name : found.field.startsWith('[') ? `${name}${found.field}` : `${name}.${found.field}`;
        report(context.issues, input[name] ?? null, { field, text: found.text });
        return z.NEVER;
      }
      output[name] = parsed.data;
    }
    return output;
  });
  return parserOf(valued as unknown as z.ZodType<Record<string, T>>);
}

/** Options of `bytes`. */
export interface BytesOptions {
  bytesMin: number;
  bytesMax: number;
}

/** Binary data, copied into a plain `Uint8Array` (a `Buffer` from a decoder loses its class). */
export function bytes({ bytesMin, bytesMax }: BytesOptions): Parser<Uint8Array> {
  const range = bytesMin === bytesMax ? `exactly ${bytesMin}` : `from ${bytesMin} to ${bytesMax}`;
  return parserOf(
    z
      .custom<Uint8Array>((input) => input instanceof Uint8Array, saying((input) => `must be bytes, got ${describe(input)}`))
      .check((payload) => {
        const length = payload.value.length;
        if (length < bytesMin || length > bytesMax) report(payload.issues, payload.value, { field: '', text: `must be ${range} bytes long, got ${length}` });
      })
      .overwrite((input) => new Uint8Array(input)),
  );
}

/** Either of two parsers, tried by a test on the raw input. */
export function either<T>(test: (input: unknown) => boolean, whenTrue: Parser<T>, whenFalse: Parser<T>): Parser<T> {
  return parserOf(
    z.unknown().transform((input, context) => {
      const parsed = (test(input) ? whenTrue : whenFalse).schema.safeParse(input);
      if (parsed.success) return parsed.data;
      for (const issue of parsed.error.issues) context.issues.push({ ...issue, input } as z.core.$ZodRawIssue);
      return z.NEVER;
    }) as unknown as z.ZodType<T>,
  );
}

/** `null`, or what `parser` accepts. */
export function nullable<T>(parser: Parser<T>): Parser<T | null> {
  return parserOf(parser.schema.nullable());
}
