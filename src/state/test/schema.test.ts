// The parser kit's contract (src/state/schema.ts): which problem is the
// first one, how its field is named, and what the copy holds. Commands'
// refusals are read by clients and tests, and a refusal at apply must read
// the same on every release, so the order is pinned here kit-wide rather
// than command by command.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { boolean, bytes, either, integer, list, nullable, object, oneOf, optional, record, refine, text, type Parsed } from '../schema.js';

const name = text({ bytesMin: 1, bytesMax: 8, pattern: /^[a-z]+$/, patternHint: 'lowercase letters' });
const port = integer({ min: 1, max: 65_535 });

interface Inner {
  target: number;
  label?: string;
}
const inner = object<Inner>({ target: port, label: optional(name) });

interface Outer {
  name: string;
  ports: Inner[];
  tags?: Record<string, string>;
  options?: { verbose?: boolean };
}
const outer = object<Outer>({
  name,
  ports: list(inner, { max: 3 }),
  tags: optional(record(name, { key: name, keysMax: 2 })),
  options: optional(object<{ verbose?: boolean }>({ verbose: optional(boolean()) })),
});

/** The refusal's field and message, or a failure naming what was accepted. */
function refused<T>(parsed: Parsed<T>): { field: string | undefined; message: string } {
  if (parsed.ok) throw new Error(`expected a refusal, got ${JSON.stringify(parsed.value)}`);
  return { field: parsed.error.field, message: parsed.error.message };
}

test('a valid value comes back as a fresh copy in the schema\'s order, absent optional fields left out', () => {
  const input = { ports: [{ label: undefined, target: 80 }], options: {}, name: 'web' };
  const parsed = outer(input, '');
  assert.ok(parsed.ok);
  assert.equal(Object.keys(parsed.value), ['name', 'ports', 'options']);
  assert.equal(Object.keys(parsed.value.ports[0]!), ['target']);
  assert.is.not(parsed.value.ports, input.ports);
  assert.is.not(parsed.value.ports[0], input.ports[0]);
  const zero = integer({ min: -1, max: 1 })(-0, 'x');
  assert.ok(zero.ok && Object.is(zero.value, 0), '-0 becomes 0');
  const copied = bytes({ bytesMin: 1, bytesMax: 4 })(Buffer.from([1, 2]), 'b');
  assert.ok(copied.ok && copied.value.constructor === Uint8Array, 'bytes come back as a plain Uint8Array');
});

test('an object\'s unknown field comes before any problem inside it, at every depth', () => {
  assert.equal(refused(outer({ name: 'WEB', ports: [], extra: 1 }, '')), { field: 'extra', message: 'extra is not a known field; remove it' });
  assert.equal(refused(outer({ name: 'web', ports: [{ target: 0, more: true }] }, 'spec')), {
    field: 'spec.ports[0].more',
    message: 'spec.ports[0].more is not a known field; remove it',
  });
  // A problem in an earlier field still comes first: the unknown field belongs to a later one.
  assert.equal(refused(outer({ name: 'WEB', ports: [{ target: 80, more: true }] }, '')).field, 'name');
  // An unknown empty key is named by its object's path and a dot.
  assert.equal(refused(outer({ name: 'web', ports: [], options: { '': 1 } }, '')), { field: 'options.', message: 'options. is not a known field; remove it' });
});

test('fields are checked in the schema\'s order; a missing required one is required, whatever its kind', () => {
  assert.equal(refused(outer({ ports: 'none' }, '')), { field: 'name', message: 'name is required' });
  assert.equal(refused(outer({ name: 'web', ports: undefined }, '')), { field: 'ports', message: 'ports is required' });
  assert.equal(refused(outer({ name: 'web', ports: [{}] }, '')), { field: 'ports[0].target', message: 'ports[0].target is required' });
  assert.equal(refused(outer({ name: 7, ports: 'none' }, '')).message, 'name must be a string, got 7');
});

test('a list\'s length comes before its items, its items before repeats; an undefined item is a wrong value', () => {
  const names = list(name, { min: 1, max: 2, unique: true });
  assert.equal(refused(names(['A', 'B', 'C'], 'apps')).message, 'apps must have at most 2 items, got 3');
  assert.equal(refused(names([], 'apps')).message, 'apps must have at least 1 item');
  assert.equal(refused(names(['a', 'B'], 'apps')).message, 'apps[1] must be lowercase letters, got "B"');
  assert.equal(refused(list(name, { max: 3, unique: true })(['a', 'a', 'B'], 'apps')).field, 'apps[2]', 'every item before repeats');
  assert.equal(refused(names(['a', 'a'], 'apps')).message, 'apps[1] repeats "a"; list each once');
  assert.equal(refused(names([undefined], 'apps')).message, 'apps[0] must be a string, got a value of type undefined');
});

test('a record\'s size comes before its keys, every key before the values', () => {
  const tags = (input: unknown): ReturnType<typeof refused> => refused(outer({ name: 'web', ports: [], tags: input }, ''));
  assert.equal(tags({ a: 'x', b: 'y', c: 'z' }).message, 'tags must have at most 2 keys, got 3');
  assert.equal(tags({ a: 'X', B: 'y' }).message, 'tags.B must be lowercase letters, got "B"');
  assert.equal(tags({ a: 'X' }).message, 'tags.a must be lowercase letters, got "X"');
  assert.equal(tags(JSON.parse('{"constructor": "x"}')).message, 'tags.constructor is a reserved name');
  assert.equal(tags({ '': 'x' }), { field: 'tags', message: 'tags must not be empty' });
  assert.equal(tags({ a: undefined }).message, 'tags.a must be a string, got a value of type undefined');
  assert.equal(tags(new Map()).message, 'tags must be an object, got a value of type object');
});

test('a shape with a required field takes any object but a list; one of optional fields only, a plain object', () => {
  assert.equal(refused(inner(new Uint8Array([5]), 'p')).message, 'p.0 is not a known field; remove it');
  assert.equal(refused(inner(new Date(0), 'p')).message, 'p.target is required');
  assert.equal(refused(inner([80], 'p')).message, 'p must be an object, got a list');
  assert.equal(refused(outer({ name: 'web', ports: [], options: new Date(0) }, '')).message, 'options must be an object, got a value of type object');
  assert.equal(refused(outer({ name: 'web', ports: [], options: new Uint8Array(1) }, '')).message, 'options must be an object, got bytes');
});

test('a refinement runs on the parsed value and names fields relative to it', () => {
  const range = refine(object<{ low: number; high: number }>({ low: port, high: port }), (value, path) =>
    value.low > value.high ? { field: `${path}.high`, text: `(${value.high}) must not be below low (${value.low})` } : undefined,
  );
  const ranges = list(range, { max: 4 });
  assert.equal(refused(ranges([{ low: 1, high: 2 }, { low: 9, high: 3 }], 'spec.ranges')), {
    field: 'spec.ranges[1].high',
    message: 'spec.ranges[1].high (3) must not be below low (9)',
  });
  assert.equal(refused(range({ low: 9, high: 3 }, '')).field, 'high');
  assert.equal(refused(range({ low: 0, high: 3 }, '')).field, 'low', 'the fields first, then the rule');
});

test('leaves say what they take, and either, nullable and oneOf pass the field through', () => {
  const mode = oneOf(['tcp', 'udp']);
  assert.equal(refused(mode('sctp', 'protocol')).message, 'protocol must be one of "tcp", "udp", got "sctp"');
  assert.equal(refused(boolean()(1, 'init')).message, 'init must be true or false, got 1');
  assert.equal(refused(port(Number.NaN, 'port')).message, 'port must be a whole number from 1 to 65535, got NaN');
  assert.equal(refused(port(1.5, 'port')).message, 'port must be a whole number from 1 to 65535, got 1.5');
  assert.equal(refused(text({ bytesMax: 4 })('\u0001', 's')).message, 's must not contain control characters');
  assert.equal(refused(text({ bytesMax: 4 })('\ud800', 's')).message, 's must be valid Unicode text');
  assert.equal(refused(text({ bytesMax: 4 })('ééé', 's')).message, 's must be at most 4 bytes long');
  assert.equal(refused(bytes({ bytesMin: 2, bytesMax: 2 })(new Uint8Array(3), 'nonce')).message, 'nonce must be exactly 2 bytes long, got 3');
  const portOrName = either<number | string>((input) => typeof input === 'number', port, name);
  assert.ok(portOrName(80, 'x').ok && portOrName('web', 'x').ok);
  assert.equal(refused(object<{ to: number | string }>({ to: portOrName })({}, '')).message, 'to is required');
  const maybePort = nullable(port);
  assert.equal(maybePort(null, 'p'), { ok: true, value: null });
  assert.equal(refused(object<{ p: number | null }>({ p: maybePort })({}, '')).message, 'p is required');
});

test.run();
