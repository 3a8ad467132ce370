/**
 * For the harness's own tests: runs `node dist/chaos/cli.js ...` as a user
 * would (it takes the machine-wide chaos lock itself), into a temporary
 * output folder, and returns its exit code and summary. The folder is removed
 * when `keep` is false; a failing test keeps it and prints where.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { missingPrerequisite } from '../network.js';
import type { RunSummary } from '../summary.js';

const CLI = fileURLToPath(new URL('../cli.js', import.meta.url));

/** What a run gave. `summary` is undefined when the run did not get as far as writing one. */
export interface ChaosRunResult {
  readonly code: number | null;
  readonly summary: RunSummary | undefined;
  readonly output: string;
  readonly outDirectory: string;
}

/** Runs the CLI with `args` (and `--out` a fresh folder) and extra environment. */
export async function runChaosCli(args: readonly string[], environment: Record<string, string> = {}): Promise<ChaosRunResult> {
  const outDirectory = mkdtempSync(join(tmpdir(), 'hmchaos-test-'));
  const child = spawn(process.execPath, [CLI, ...args, '--out', outDirectory], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...environment } });
  let output = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  const code = await new Promise<number | null>((resolve) => child.once('exit', (exitCode) => resolve(exitCode)));
  const summaryPath = join(outDirectory, 'summary.json');
  const summary = existsSync(summaryPath) ? (JSON.parse(readFileSync(summaryPath, 'utf8')) as RunSummary) : undefined;
  return { code, summary, output, outDirectory };
}

/** Removes a run's folder. */
export function removeRun(result: ChaosRunResult): void {
  rmSync(result.outDirectory, { recursive: true, force: true });
}

/** Why chaos runs cannot happen here (not root, no ip or iptables), or null. */
export function chaosUnavailable(): Promise<string | null> {
  return missingPrerequisite();
}
