/**
 * `environment` and `labels`: a mapping, or a list of `KEY=VALUE`. Values
 * that YAML reads as numbers or booleans become the text as written. Pure.
 */
import type { FileContext } from './context.js';
import type { FieldPath } from './problems.js';
import { describe, isMapping, setOwn } from './read.js';

interface KeyValueOptions {
  /** "variable" or "label", for messages. */
  what: string;
  keyPattern: RegExp;
  keyRule: string;
  /** What `KEY` without a value means: take it from the deploying environment, or the empty string. */
  withoutValue: 'from-environment' | 'empty';
}

/** `environment:`; a variable without a value (`KEY:` or `- KEY`) comes from the deploying environment, as in Compose, or is left out with a warning. */
export function readEnvironment(value: unknown, path: FieldPath, context: FileContext): Record<string, string> | undefined {
  return readKeyValues(value, path, context, {
    what: 'variable',
    keyPattern: /^[^=\s]+$/,
    keyRule: 'a name without "=" or blanks',
    withoutValue: 'from-environment',
  });
}

/** `labels:`; a label without a value is the empty string, as in Compose. */
export function readLabels(value: unknown, path: FieldPath, context: FileContext): Record<string, string> | undefined {
  return readKeyValues(value, path, context, { what: 'label', keyPattern: /^\S+$/, keyRule: 'a key without blanks', withoutValue: 'empty' });
}

function readKeyValues(value: unknown, path: FieldPath, context: FileContext, options: KeyValueOptions): Record<string, string> | undefined {
  const { problems } = context;
  const before = problems.errorCount;
  const values: Record<string, string> = {};
  if (isMapping(value)) {
    for (const [key, item] of Object.entries(value)) {
      const itemPath = [...path, key];
      if (!checkKey(key, itemPath, context, options)) continue;
      const text = itemText(item, itemPath, context);
      if (text === null) addWithoutValue(values, key, itemPath, context, options);
      else if (text !== undefined) setOwn(values, key, text);
    }
  } else if (Array.isArray(value)) {
    for (const [position, item] of value.entries()) {
      const itemPath = [...path, position];
      if (typeof item !== 'string') {
        problems.error(itemPath, `must be "KEY=VALUE", got ${describe(item)}`);
        continue;
      }
      const equals = item.indexOf('=');
      const key = equals === -1 ? item : item.slice(0, equals);
      if (!checkKey(key, itemPath, context, options)) continue;
      if (Object.hasOwn(values, key)) {
        problems.error(itemPath, `sets ${options.what} ${key} twice; set it once`);
        continue;
      }
      if (equals === -1) addWithoutValue(values, key, itemPath, context, options);
      else setOwn(values, key, item.slice(equals + 1));
    }
  } else {
    problems.error(path, `must be a mapping or a list of "KEY=VALUE", got ${describe(value)}`);
  }
  return problems.errorCount === before ? values : undefined;
}

function checkKey(key: string, path: FieldPath, context: FileContext, options: KeyValueOptions): boolean {
  if (options.keyPattern.test(key)) return true;
  context.problems.error(path, `${options.what} ${JSON.stringify(key)} must be ${options.keyRule}`);
  return false;
}

/** The value as text; `null` when there is none; `undefined` after reporting a list or mapping. */
function itemText(item: unknown, path: FieldPath, context: FileContext): string | null | undefined {
  if (item === null || item === undefined) return null;
  if (typeof item === 'string') return item;
  if (typeof item === 'boolean') return String(item);
  if (typeof item === 'number' && Number.isFinite(item)) return context.numberSource(path) ?? String(item);
  context.problems.error(path, `must be a string, a number or a boolean, got ${describe(item)}`);
  return undefined;
}

function addWithoutValue(values: Record<string, string>, key: string, path: FieldPath, context: FileContext, options: KeyValueOptions): void {
  if (options.withoutValue === 'empty') {
    setOwn(values, key, '');
    return;
  }
  const fromEnvironment = context.variable(key);
  if (fromEnvironment !== undefined) setOwn(values, key, fromEnvironment);
  else context.problems.warn(path, `has no value and ${key} is not set where the file is read, so it is left out (as Compose does); give it a value`);
}
