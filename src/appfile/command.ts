/**
 * `command` and `entrypoint`: a list of arguments, or one string split the
 * way a shell splits words (without running a shell). Pure.
 */
import type { FieldPath, Problems } from './problems.js';
import { describe, scalarText } from './read.js';
import { splitShellWords } from './shell-words.js';

/** The argv of `value`; `allowEmpty` for `entrypoint: []`, which clears an image's entrypoint. */
export function readArgv(value: unknown, path: FieldPath, problems: Problems, { allowEmpty }: { allowEmpty: boolean }): string[] | undefined {
  let argv: string[];
  if (typeof value === 'string') {
    const split = splitShellWords(value);
    if (!split.ok) {
      problems.error(path, split.problem);
      return undefined;
    }
    argv = split.words;
  } else if (Array.isArray(value)) {
    argv = [];
    for (const [position, item] of value.entries()) {
      const text = scalarText(item);
      if (text === undefined) problems.error([...path, position], `must be a string, got ${describe(item)}`);
      else argv.push(text);
    }
    if (argv.length !== value.length) return undefined;
  } else {
    problems.error(path, `must be a list of arguments or a command line, got ${describe(value)}`);
    return undefined;
  }
  if (argv.length === 0 && !allowEmpty) {
    problems.error(path, 'must not be empty: name the program to run');
    return undefined;
  }
  return argv;
}
