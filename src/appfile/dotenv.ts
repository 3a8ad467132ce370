/**
 * The `.env` format that Compose reads for `env_file:`, `.env` and
 * `--env-file`: `KEY=VALUE` lines, `export KEY=VALUE`, `#` comments, blank
 * lines; values single-quoted (as written), double-quoted (with `\n`, `\t`,
 * `\\` and `\"` escapes, across lines) or bare (trimmed, a ` #` starts a
 * comment). `KEY` alone, without `=`, is left out. No interpolation inside
 * the file. Pure.
 */

/** The variables of a `.env` text, or the first line it cannot read. */
export type DotenvResult = { ok: true; variables: Record<string, string> } | { ok: false; line: number; problem: string };

/** At most this many variables are read from one file. */
export const DOTENV_VARIABLES_MAX = 4096;

const keyPattern = /^[A-Za-z_][A-Za-z0-9_.-]*$/;

/** Parses `text` in the `.env` format; a later line sets a key again. */
export function parseDotenv(text: string): DotenvResult {
  const variables: Record<string, string> = {};
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  let count = 0;
  for (let index = 0; index < lines.length; index++) {
    const lineNumber = index + 1;
    const line = (lines[index] ?? '').trim();
    if (line === '' || line.startsWith('#')) continue;
    const body = line.replace(/^export\s+/, '');
    const equals = body.indexOf('=');
    if (equals === -1) {
      if (keyPattern.test(body)) continue;
      return { ok: false, line: lineNumber, problem: `must be KEY=VALUE, got ${JSON.stringify(line.slice(0, 80))}` };
    }
    const key = body.slice(0, equals).trim();
    if (!keyPattern.test(key)) return { ok: false, line: lineNumber, problem: `has variable name ${JSON.stringify(key.slice(0, 80))}; a name is letters, digits and _ , not starting with a digit` };
    let value = body.slice(equals + 1).trim();
    const quote = value[0];
    if (quote === '"' || quote === "'") {
      // A quoted value may run over several lines, up to its closing quote.
      let rest = value.slice(1);
      let closing = findClosingQuote(rest, quote);
      while (closing === -1 && index + 1 < lines.length) {
        index++;
        rest += `\n${lines[index] ?? ''}`;
        closing = findClosingQuote(rest, quote);
      }
      if (closing === -1) return { ok: false, line: lineNumber, problem: `opens a ${quote === '"' ? 'double' : 'single'} quote that is never closed` };
      value = rest.slice(0, closing);
      if (quote === '"') value = value.replace(/\\([nrt"\\])/g, (_, escaped: string) => ({ n: '\n', r: '\r', t: '\t', '"': '"', '\\': '\\' })[escaped] ?? escaped);
    } else {
      value = value.replace(/\s+#.*$/, '');
    }
    if (!Object.hasOwn(variables, key)) count++;
    if (count > DOTENV_VARIABLES_MAX) return { ok: false, line: lineNumber, problem: `sets more than ${DOTENV_VARIABLES_MAX} variables` };
    Object.defineProperty(variables, key, { value, enumerable: true, writable: true, configurable: true });
  }
  return { ok: true, variables };
}

function findClosingQuote(text: string, quote: string): number {
  for (let position = 0; position < text.length; position++) {
    if (quote === '"' && text[position] === '\\') {
      position++;
      continue;
    }
    if (text[position] === quote) return position;
  }
  return -1;
}
