/**
 * How the UI words amounts and times. Pure: every function takes what it
 * needs (the current time included), so they are tested in Node
 * (src/ui/test/format.test.ts).
 */

const BYTE_UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

/** `1536` → `1.5 KiB`; whole numbers below 10 units keep one decimal. */
export function formatBytes(bytes: number): string {
  let value = bytes;
  let unit = 0;
  while (Math.abs(value) >= 1024 && unit < BYTE_UNITS.length - 1) {
    value /= 1024;
    unit += 1;
  }
  const shown = unit === 0 || Math.abs(value) >= 10 ? Math.round(value).toString() : value.toFixed(1).replace(/\.0$/, '');
  return `${shown} ${BYTE_UNITS[unit]}`;
}

/** Thousandths of a core: `250` → `0.25 CPU`, `2000` → `2 CPU`. */
export function formatCpu(cpuMillis: number): string {
  return `${Number((cpuMillis / 1000).toFixed(2))} CPU`;
}

/** A duration in ms, coarsely: `850 ms`, `12 s`, `5 min`, `3 h`, `2 d`. */
export function formatDuration(durationMs: number): string {
  const ms = Math.max(0, durationMs);
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${Math.round(ms / 1000)} s`;
  if (ms < 3_600_000) return `${Math.round(ms / 60_000)} min`;
  if (ms < 86_400_000) return `${Math.round(ms / 3_600_000)} h`;
  return `${Math.round(ms / 86_400_000)} d`;
}

/** How long ago `timeMs` was, at `nowMs`: `12 s ago`; a time in the future (clock skew) reads `just now`. */
export function formatAgo(timeMs: number, nowMs: number): string {
  if (timeMs >= nowMs) return 'just now';
  return `${formatDuration(nowMs - timeMs)} ago`;
}

/** A time as `2026-12-05 11:47:39` (UTC: nodes and people may be in different zones). */
export function formatTime(timeMs: number): string {
  return new Date(timeMs).toISOString().slice(0, 19).replace('T', ' ');
}

/** `used of limit`, in the amount's words; an absent limit is `unlimited`. */
export function formatUsage(used: number, limit: number | undefined, unit: (value: number) => string = String): string {
  return limit === undefined ? `${unit(used)} (unlimited)` : `${unit(used)} of ${unit(limit)}`;
}

/** Used as a fraction of the limit, 0 to 1 (more is over quota); undefined when unlimited. */
export function usageFraction(used: number, limit: number | undefined): number | undefined {
  if (limit === undefined) return undefined;
  if (limit <= 0) return used > 0 ? 1 : 0;
  return used / limit;
}

/** Counts of each value of `key` over `items`, in first-seen order: `[['healthy', 2], ['starting', 1]]`. */
export function countBy<T>(items: readonly T[], key: (item: T) => string): [string, number][] {
  const counts = new Map<string, number>();
  for (const item of items) counts.set(key(item), (counts.get(key(item)) ?? 0) + 1);
  return [...counts];
}
