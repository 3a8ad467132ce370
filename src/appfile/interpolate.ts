/**
 * Compose's variable interpolation in string values: `$VAR`, `${VAR}`,
 * `${VAR:-default}`, `${VAR-default}`, `${VAR:?message}`, `${VAR?message}`,
 * `${VAR:+replacement}`, `${VAR+replacement}`, and `$$` for a literal `$`.
 * A Compose file that runs under `docker compose` writes shell dollars as
 * `$$`, so passing strings through untouched would change their meaning.
 * Pure: the variables come from the caller.
 */

/** Looks up a variable; `undefined` means unset. */
export type LookupVariable = (name: string) => string | undefined;

/** The outcome of interpolating one string. `unset` lists variables used without a value and without a default. */
export type Interpolated = { ok: true; value: string; unset: string[] } | { ok: false; problem: string };

const namePattern = /^[_a-zA-Z][_a-zA-Z0-9]*/;

/** A template nested deeper than this inside defaults is refused. */
export const INTERPOLATION_DEPTH_MAX = 10;

/** Replaces the variables in `text`; a variable without a value and without a default becomes `''`, as in Compose. */
export function interpolate(text: string, lookup: LookupVariable, depth = 0): Interpolated {
  if (depth > INTERPOLATION_DEPTH_MAX) return { ok: false, problem: `nests \${...} more than ${INTERPOLATION_DEPTH_MAX} deep` };
  if (!text.includes('$')) return { ok: true, value: text, unset: [] };
  let value = '';
  const unset: string[] = [];
  let position = 0;
  while (position < text.length) {
    const dollar = text.indexOf('$', position);
    if (dollar === -1) {
      value += text.slice(position);
      break;
    }
    value += text.slice(position, dollar);
    const next = text[dollar + 1];
    if (next === '$') {
      value += '$';
      position = dollar + 2;
      continue;
    }
    if (next === '{') {
      const end = closingBrace(text, dollar + 2);
      if (end === -1) return { ok: false, problem: `has "\${" without a closing "}"` };
      const braced = expandBraced(text.slice(dollar + 2, end), lookup, depth);
      if (!braced.ok) return braced;
      value += braced.value;
      unset.push(...braced.unset);
      position = end + 1;
      continue;
    }
    const name = namePattern.exec(text.slice(dollar + 1))?.[0];
    if (name === undefined) return { ok: false, problem: 'has a "$" that does not start a variable; write "$$" for a literal "$"' };
    const variable = lookup(name);
    if (variable === undefined) unset.push(name);
    value += variable ?? '';
    position = dollar + 1 + name.length;
  }
  return { ok: true, value, unset };
}

/** The position of the `}` that closes a `${` whose body starts at `start`, counting nested `${`; -1 if none. */
function closingBrace(text: string, start: number): number {
  let depth = 0;
  for (let position = start; position < text.length; position++) {
    const character = text[position];
    if (character === '$' && text[position + 1] === '$') position++;
    else if (character === '$' && text[position + 1] === '{') {
      depth++;
      position++;
    } else if (character === '}') {
      if (depth === 0) return position;
      depth--;
    }
  }
  return -1;
}

function expandBraced(body: string, lookup: LookupVariable, depth: number): Interpolated {
  const name = namePattern.exec(body)?.[0];
  if (name === undefined) return { ok: false, problem: `has "\${${body}}", which does not name a variable` };
  const rest = body.slice(name.length);
  const variable = lookup(name);
  if (rest === '') return { ok: true, value: variable ?? '', unset: variable === undefined ? [name] : [] };
  const operator = /^(:?[-?+])/.exec(rest)?.[1];
  if (operator === undefined) return { ok: false, problem: `has "\${${body}}"; after the name, use :-, -, :?, ?, :+ or +` };
  const argument = rest.slice(operator.length);
  const isSet = variable !== undefined && (!operator.startsWith(':') || variable !== '');
  switch (operator.at(-1)) {
    case '-':
      return isSet ? { ok: true, value: variable ?? '', unset: [] } : interpolate(argument, lookup, depth + 1);
    case '+':
      return isSet ? interpolate(argument, lookup, depth + 1) : { ok: true, value: '', unset: [] };
    default: {
      if (isSet) return { ok: true, value: variable ?? '', unset: [] };
      const message = interpolate(argument, lookup, depth + 1);
      const detail = message.ok && message.value ? `: ${message.value}` : '';
      return { ok: false, problem: `needs variable ${name}, which is ${variable === undefined ? 'not set' : 'empty'}${detail}` };
    }
  }
}
