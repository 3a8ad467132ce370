/**
 * `healthcheck:` as Compose writes it: `test` as a string (run by a shell:
 * CMD-SHELL) or a list starting with CMD, CMD-SHELL or NONE; and Hivemind's
 * own forms, checked by the agent without running anything in the instance:
 * `["HTTP", "http://127.0.0.1:PORT/path"]` (a 2xx or 3xx answer passes) and
 * `["TCP", "127.0.0.1:PORT"]` (an accepted connection passes); durations like
 * `30s`; `disable: true` (the same as test ["NONE"]). Docker's defaults fill
 * the rest. Pure.
 */
import type { HealthcheckSpec } from '../state/types.js';
import { checkKeys, healthcheckKeys } from './compose-keys.js';
import type { FieldPath, Problems } from './problems.js';
import { describe, readBoolean, readDurationMs, readMapping, readWholeNumber, scalarText } from './read.js';

/** Docker's defaults for a healthcheck field left out. */
export const HEALTHCHECK_DEFAULTS = { intervalMs: 30_000, timeoutMs: 30_000, retries: 3, startPeriodMs: 0 } as const;

export function readHealthcheck(value: unknown, path: FieldPath, problems: Problems): HealthcheckSpec | undefined {
  const mapping = readMapping(value, path, problems);
  if (mapping === undefined) return undefined;
  const before = problems.errorCount;
  checkKeys(mapping, path, problems, healthcheckKeys);
  const disable = mapping.disable === undefined ? false : readBoolean(mapping.disable, [...path, 'disable'], problems);
  let test: string[] | undefined;
  if (disable === true) {
    if (mapping.test !== undefined) problems.error([...path, 'disable'], 'cannot be true when test is set; remove one of them');
    test = ['NONE'];
  } else if (mapping.test === undefined || mapping.test === null) {
    problems.error([...path, 'test'], 'is required: Hivemind does not read the HEALTHCHECK of an image; write the command here');
  } else {
    test = readTest(mapping.test, [...path, 'test'], problems);
  }
  const duration = (key: string, fallback: number): number | undefined =>
    mapping[key] === undefined ? fallback : readDurationMs(mapping[key], [...path, key], problems);
  const spec = {
    intervalMs: duration('interval', HEALTHCHECK_DEFAULTS.intervalMs),
    timeoutMs: duration('timeout', HEALTHCHECK_DEFAULTS.timeoutMs),
    retries: mapping.retries === undefined ? HEALTHCHECK_DEFAULTS.retries : readWholeNumber(mapping.retries, [...path, 'retries'], problems, { min: 0, max: 1000 }),
    startPeriodMs: duration('start_period', HEALTHCHECK_DEFAULTS.startPeriodMs),
  };
  if (problems.errorCount !== before || test === undefined) return undefined;
  const { intervalMs, timeoutMs, retries, startPeriodMs } = spec;
  if (intervalMs === undefined || timeoutMs === undefined || retries === undefined || startPeriodMs === undefined) return undefined;
  return { test, intervalMs, timeoutMs, retries, startPeriodMs };
}

function readTest(value: unknown, path: FieldPath, problems: Problems): string[] | undefined {
  if (typeof value === 'string') {
    if (value.trim() === '') {
      problems.error(path, 'must be a command; to turn the healthcheck off, write disable: true');
      return undefined;
    }
    return ['CMD-SHELL', value];
  }
  if (!Array.isArray(value)) {
    problems.error(path, `must be a shell command or a list like ["CMD", "curl", "-f", "http://localhost/"], got ${describe(value)}`);
    return undefined;
  }
  const test: string[] = [];
  for (const [position, item] of value.entries()) {
    const text = scalarText(item);
    if (text === undefined) problems.error([...path, position], `must be a string, got ${describe(item)}`);
    else test.push(text);
  }
  if (test.length !== value.length) return undefined;
  if (test.length === 0) {
    problems.error(path, 'must not be empty; to turn the healthcheck off, write disable: true');
    return undefined;
  }
  const [kind] = test;
  if (kind !== 'CMD' && kind !== 'CMD-SHELL' && kind !== 'NONE' && kind !== 'HTTP' && kind !== 'TCP') {
    problems.error([...path, 0], `must be "CMD", "CMD-SHELL", "NONE", "HTTP" or "TCP", got ${describe(kind)}`);
    return undefined;
  }
  if (kind === 'HTTP' || kind === 'TCP') return readNetworkTest(kind, test, path, problems);
  if (kind !== 'NONE' && test.length < 2) {
    problems.error(path, `must name a command after "${kind}"`);
    return undefined;
  }
  if (kind === 'NONE' && test.length > 1) {
    problems.error(path, 'must be just ["NONE"] to turn the healthcheck off');
    return undefined;
  }
  return test;
}

/** `["HTTP", URL]` or `["TCP", HOST:PORT]`: exactly one target, well formed. */
function readNetworkTest(kind: 'HTTP' | 'TCP', test: string[], path: FieldPath, problems: Problems): string[] | undefined {
  const example = kind === 'HTTP' ? '["HTTP", "http://127.0.0.1:8080/healthz"]' : '["TCP", "127.0.0.1:5432"]';
  if (test.length !== 2) {
    problems.error(path, `must be ${example}: "${kind}" and one target`);
    return undefined;
  }
  const target = test[1]!;
  if (kind === 'HTTP') {
    let url: URL | undefined;
    try {
      url = new URL(target);
    } catch {
      url = undefined;
    }
    if (url === undefined || (url.protocol !== 'http:' && url.protocol !== 'https:')) {
      problems.error([...path, 1], `must be an http:// or https:// URL like "http://127.0.0.1:8080/healthz", got ${describe(target)}`);
      return undefined;
    }
    return test;
  }
  const match = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(target);
  const port = match ? Number(match[2]) : 0;
  if (!match || port < 1 || port > 65535) {
    problems.error([...path, 1], `must be HOST:PORT like "127.0.0.1:5432" (port 1 to 65535), got ${describe(target)}`);
    return undefined;
  }
  return test;
}
