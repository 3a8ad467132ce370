// Builders shared by the app file tests.
import { parseAppFile, type ParseAppFileOptions } from '../parse.js';
import type { AppSpec } from '../../state/types.js';

/** Removes the indentation common to every non-blank line, and a leading newline, so YAML can be written indented in a test. */
export function dedent(text: string): string {
  const lines = text.replace(/^\n/, '').split('\n');
  const indents = lines.filter((line) => line.trim() !== '').map((line) => /^ */.exec(line)?.[0].length ?? 0);
  const common = Math.min(...indents);
  return lines.map((line) => line.slice(common)).join('\n');
}

/** An app file with one service, `web`, whose keys are `body` (dedented), and `extra` top-level YAML after it. */
export function oneService(body: string, extra = ''): string {
  const keys = dedent(body)
    .split('\n')
    .map((line) => (line.trim() === '' ? '' : `    ${line}`))
    .join('\n');
  return `services:\n  web:\n${keys}\n${dedent(extra)}`;
}

/** Parses and expects success: the apps and warnings. */
export function parseOk(text: string, options?: ParseAppFileOptions): { apps: AppSpec[]; warnings: string[] } {
  const result = parseAppFile(text, 'app.yaml', options);
  if (!result.ok) throw new Error(`expected the file to parse, got:\n${result.errors.map(String).join('\n')}`);
  return { apps: result.apps, warnings: result.warnings };
}

/** The one app of a file that parses. */
export function onlyApp(text: string, options?: ParseAppFileOptions): AppSpec {
  const { apps } = parseOk(text, options);
  if (apps.length !== 1 || apps[0] === undefined) throw new Error(`expected one app, got ${apps.length}`);
  return apps[0];
}

/** Parses and expects failure: every error as `file: path: message`. */
export function errorsOf(text: string, options?: ParseAppFileOptions): string[] {
  const result = parseAppFile(text, 'app.yaml', options);
  if (result.ok) throw new Error(`expected errors, got apps: ${JSON.stringify(result.apps)}`);
  return result.errors.map(String);
}

/** The warnings of a file that parses. */
export function warningsOf(text: string, options?: ParseAppFileOptions): string[] {
  return parseOk(text, options).warnings;
}
