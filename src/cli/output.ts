/**
 * How the CLI prints: borderless tables and `key: value` blocks for people,
 * the API's JSON for scripts (`--json`). Colour only on a terminal, and never
 * with NO_COLOR set.
 */
import Table from 'cli-table3';
import { formatBytes, formatCpu } from '../state/errors.js';
import type { CliContext } from './context.js';

/** Whether `stream` is a terminal that may get colour and redraws. */
export function isTerminal(stream: NodeJS.WriteStream): boolean {
  return stream.isTTY === true;
}

function colourAllowed(stream: NodeJS.WriteStream): boolean {
  return isTerminal(stream) && process.env.NO_COLOR === undefined;
}

/** Writes `text` and a newline to stdout. */
export function printLine(context: CliContext, text = ''): void {
  context.stdout.write(`${text}\n`);
}

/** Prints `value` as indented JSON: the form `--json` promises, stable for scripts. */
export function printJson(context: CliContext, value: unknown): void {
  context.stdout.write(`${JSON.stringify(value ?? null, null, 2)}\n`);
}

/** A table as text, columns padded, no borders; headers in capitals. An empty table says `empty` instead. */
export function renderTable(context: CliContext, headers: string[], rows: (string | number)[][], empty = 'nothing to show'): string {
  if (rows.length === 0) return `(${empty})`;
  const table = new Table({
    head: headers.map((header) => header.toUpperCase()),
    chars: {
      top: '', 'top-mid': '', 'top-left': '', 'top-right': '',
      bottom: '', 'bottom-mid': '', 'bottom-left': '', 'bottom-right': '',
      left: '', 'left-mid': '', mid: '', 'mid-mid': '',
      right: '', 'right-mid': '', middle: '  ',
    },
    style: { 'padding-left': 0, 'padding-right': 0, head: colourAllowed(context.stdout) ? ['bold'] : [], border: [] },
  });
  for (const row of rows) table.push(row.map(String));
  return table
    .toString()
    .split('\n')
    .map((line) => line.trimEnd())
    .join('\n');
}

/** Prints a table (see `renderTable`). */
export function printTable(context: CliContext, headers: string[], rows: (string | number)[][], empty?: string): void {
  printLine(context, renderTable(context, headers, rows, empty));
}

/** `key: value` lines with the values aligned; `undefined` values are left out. */
export function renderFields(fields: [string, string | number | undefined][]): string {
  const shown = fields.filter((field): field is [string, string | number] => field[1] !== undefined);
  const width = Math.max(0, ...shown.map(([key]) => key.length + 1));
  return shown.map(([key, value]) => `${`${key}:`.padEnd(width)}  ${value}`).join('\n');
}

/** A quota limit for a table: `2 cores`, `4 GiB`, or `-` when unlimited. */
export function limitText(value: number | undefined, unit: 'cpu' | 'bytes' | 'count'): string {
  if (value === undefined || value === null) return '-';
  if (unit === 'cpu') return formatCpu(value);
  if (unit === 'bytes') return formatBytes(value);
  return String(value);
}

/** `used / limit` for a quota column: `1.5 cores / 2 cores`, `3 / -`. */
export function usageText(used: number | undefined, limit: number | undefined, unit: 'cpu' | 'bytes' | 'count'): string {
  return `${limitText(used ?? 0, unit)} / ${limitText(limit, unit)}`;
}

/** How long ago `timeMs` was, roughly: `12s ago`, `5m ago`, `3h ago`, `2d ago`; `-` for none. */
export function ago(timeMs: number | undefined, nowMs: number = Date.now()): string {
  if (timeMs === undefined || timeMs <= 0) return '-';
  const seconds = Math.max(0, Math.round((nowMs - timeMs) / 1000));
  if (seconds < 60) return `${seconds}s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m ago`;
  if (seconds < 86_400) return `${Math.floor(seconds / 3600)}h ago`;
  return `${Math.floor(seconds / 86_400)}d ago`;
}

/** A wall-clock time in local time, to the second: `2025-11-23 10:22:03`. */
export function timestamp(timeMs: number | undefined): string {
  if (timeMs === undefined || !Number.isFinite(timeMs) || timeMs <= 0) return '-';
  const date = new Date(timeMs);
  const pad = (value: number) => String(value).padStart(2, '0');
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
}

/** Shortens `text` to `lengthMax` characters, marking the cut with `...`; newlines become spaces. */
export function shorten(text: string, lengthMax: number): string {
  const flat = text.replace(/\s*\n\s*/g, ' ');
  return flat.length <= lengthMax ? flat : `${flat.slice(0, Math.max(0, lengthMax - 3))}...`;
}

/** `a=1, b=2` for labels; `-` when there are none. */
export function labelsText(labels: Record<string, string> | undefined): string {
  const entries = Object.entries(labels ?? {});
  return entries.length === 0 ? '-' : entries.map(([key, value]) => `${key}=${value}`).join(', ');
}
