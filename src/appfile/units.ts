/**
 * Compose's value formats: durations (`1m30s`), memory sizes (`512M`),
 * CPU counts (`0.5`). Each parser takes the text as written and returns the
 * amount in Hivemind's unit, or `undefined` when the text is not in the
 * format; the caller words the error. Pure.
 */

const durationUnitMs: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  µs: 1e-3,
  μs: 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

const durationPart = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)/y;

/**
 * Parses a Go-style duration as Compose writes it (`10s`, `1m30s`, `1.5h`,
 * `500ms`, or a bare `0`) into whole milliseconds, rounded to the nearest.
 * No sign is accepted: every Compose duration is a length of time.
 */
export function parseDurationMs(text: string): number | undefined {
  if (text === '0') return 0;
  if (text === '') return undefined;
  let total = 0;
  durationPart.lastIndex = 0;
  while (durationPart.lastIndex < text.length) {
    const match = durationPart.exec(text);
    if (match === null) return undefined;
    const [, amount, unit] = match;
    const unitMs = durationUnitMs[unit ?? ''];
    if (amount === undefined || unitMs === undefined) return undefined;
    total += Number(amount) * unitMs;
  }
  return Number.isFinite(total) ? Math.round(total) : undefined;
}

const memoryUnitBytes: Record<string, number> = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4, p: 1024 ** 5 };

const memorySize = /^(\d+(?:\.\d+)?|\.\d+)\s*([kmgtp]?)(i?b)?$/i;

/**
 * Parses a memory size as Docker does (`512M`, `1g`, `1.5GiB`, `1gb`, `100k`,
 * `2048`, `2048b`) into whole bytes. Like Docker, every unit is binary:
 * `1G`, `1GB` and `1GiB` are all 1024³ bytes. A bare `b` or `ib` after a unit
 * letter is allowed; `ib` alone (no unit) is not.
 */
export function parseMemoryBytes(text: string): number | undefined {
  const match = memorySize.exec(text.trim());
  if (match === null) return undefined;
  const [, amount, unit = '', suffix] = match;
  if (unit === '' && suffix !== undefined && suffix.toLowerCase() !== 'b') return undefined;
  const multiplier = memoryUnitBytes[unit.toLowerCase()];
  if (amount === undefined || multiplier === undefined) return undefined;
  const bytes = Math.floor(Number(amount) * multiplier);
  return Number.isSafeInteger(bytes) ? bytes : undefined;
}

const cpuCount = /^(\d+(?:\.\d+)?|\.\d+)$/;

/** Parses a count of CPUs (`0.5`, `2`, `1.25`) into thousandths of a core, rounded to the nearest. */
export function parseCpuMillis(text: string): number | undefined {
  if (!cpuCount.test(text.trim())) return undefined;
  const millis = Math.round(Number(text) * 1000);
  return Number.isSafeInteger(millis) ? millis : undefined;
}

/** Formats milliseconds the way Compose writes durations, for messages: 90000 → "1m30s". */
export function formatDurationMs(durationMs: number): string {
  if (durationMs === 0) return '0s';
  const parts: string[] = [];
  let rest = durationMs;
  for (const [unit, size] of [['h', 3_600_000], ['m', 60_000], ['s', 1000], ['ms', 1]] as const) {
    const count = Math.floor(rest / size);
    if (count > 0) parts.push(`${count}${unit}`);
    rest -= count * size;
  }
  return parts.join('');
}
