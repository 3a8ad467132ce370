/**
 * Splits a command written as one string into argv the way Compose does
 * (go-shellwords): words separated by blanks, with single quotes, double
 * quotes and backslashes as in a POSIX shell. Nothing is expanded and
 * operators such as `&&` or `|` are plain words: no shell runs the command.
 * Pure.
 */

/** The words of `text`, or the problem (an unterminated quote, a trailing backslash). */
export type SplitWords = { ok: true; words: string[] } | { ok: false; problem: string };

const blank = /[ \t\r\n]/;

/** Splits `text` into words; `'a b' "c \"d\"" e\ f` → [`a b`, `c "d"`, `e f`]. */
export function splitShellWords(text: string): SplitWords {
  const words: string[] = [];
  let word = '';
  let inWord = false;
  let position = 0;
  while (position < text.length) {
    const character = text[position] as string;
    if (blank.test(character)) {
      if (inWord) words.push(word);
      word = '';
      inWord = false;
      position++;
      continue;
    }
    inWord = true;
    if (character === '\\') {
      if (position + 1 >= text.length) return { ok: false, problem: 'ends with a backslash that escapes nothing' };
      const next = text[position + 1] as string;
      // A backslash before a newline joins lines, as in a shell.
      if (next !== '\n') word += next;
      position += 2;
    } else if (character === "'") {
      const end = text.indexOf("'", position + 1);
      if (end === -1) return { ok: false, problem: "has a ' quote that is never closed" };
      word += text.slice(position + 1, end);
      position = end + 1;
    } else if (character === '"') {
      const quoted = readDoubleQuoted(text, position + 1);
      if (quoted === undefined) return { ok: false, problem: 'has a " quote that is never closed' };
      word += quoted.text;
      position = quoted.end + 1;
    } else {
      word += character;
      position++;
    }
  }
  if (inWord) words.push(word);
  return { ok: true, words };
}

/** Reads a double-quoted run from `start` (just past the quote) to its closing quote. Backslash escapes only `\ " $` and backtick. */
function readDoubleQuoted(text: string, start: number): { text: string; end: number } | undefined {
  let quoted = '';
  let position = start;
  while (position < text.length) {
    const character = text[position] as string;
    if (character === '"') return { text: quoted, end: position };
    if (character === '\\' && position + 1 < text.length && '\\"$`\n'.includes(text[position + 1] as string)) {
      const next = text[position + 1] as string;
      if (next !== '\n') quoted += next;
      position += 2;
      continue;
    }
    quoted += character;
    position++;
  }
  return undefined;
}
