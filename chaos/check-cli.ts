/**
 * Checks a recorded register history for linearizability.
 *
 *   npm run chaos:check -- FILE [--steps-max N]
 *
 * FILE holds JSON lines (see chaos/history.ts and docs/chaos.md). Prints
 * `linearizable`, `not linearizable` with the smallest failing part, or
 * `unknown` when the search budget ran out. Exit status: 0 linearizable,
 * 1 not linearizable, 2 unreadable or invalid input (or bad arguments),
 * 3 unknown.
 */
import { parseArgs } from 'node:util';
import { formatCheckResult } from './check-report.js';
import type { ParseResult } from './history.js';
import { readHistoryFile } from './history-file.js';
import { checkLinearizability, defaultStepsMaxPerKey } from './linearizability.js';

const exitCodes = { linearizable: 0, 'not linearizable': 1, invalidInput: 2, unknown: 3 } as const;

function usageError(message: string): never {
  console.error(`chaos:check: ${message}`);
  console.error('usage: npm run chaos:check -- FILE [--steps-max N]');
  process.exit(exitCodes.invalidInput);
}

function main(): void {
  let parsed;
  try {
    parsed = parseArgs({ allowPositionals: true, options: { 'steps-max': { type: 'string' } } });
  } catch (error) {
    usageError((error as Error).message);
  }
  const { values, positionals } = parsed;
  const file = positionals[0];
  if (file === undefined || positionals.length > 1) usageError('expected exactly one history file');
  const stepsMaxPerKey = Number(values['steps-max'] ?? defaultStepsMaxPerKey);
  if (!Number.isSafeInteger(stepsMaxPerKey) || stepsMaxPerKey <= 0) usageError('--steps-max takes a positive whole number');
  let history: ParseResult;
  try {
    history = readHistoryFile(file);
  } catch (error) {
    usageError(`cannot read history "${file}": ${(error as Error).message}`);
  }
  if (!history.ok) usageError(`invalid history "${file}": ${history.error.message}; fix or remove that line`);
  const started = performance.now();
  const result = checkLinearizability(history.history.operations, { stepsMaxPerKey });
  const seconds = ((performance.now() - started) / 1000).toFixed(2);
  console.log(formatCheckResult(result));
  const { failedCount, unknownCount } = history.history;
  console.log(`(${failedCount} failed operation(s) dropped, ${unknownCount} with unknown outcome; checked in ${seconds} s)`);
  process.exit(exitCodes[result.verdict]);
}

main();
