#!/usr/bin/env node
// Runs every compiled test file (dist/**/*.test.js) with uvu, one file per
// process so that a crash names its file, and ends with the plain summary line
// "N passed, N failed" that CI reads. Usage: node scripts/test.js [filter]
//
// A file that runs longer than HIVEMIND_TEST_FILE_TIMEOUT_S (600 by default)
// fails: its process group is killed and the output it printed so far is
// shown, so one hung test cannot hold the whole run.
import { spawn } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const filter = process.argv[2] ? new RegExp(process.argv[2]) : null;
const fileTimeoutMs = Number(process.env.HIVEMIND_TEST_FILE_TIMEOUT_S ?? 600) * 1000;

function findTests(dir) {
  const found = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) found.push(...findTests(path));
    else if (name.endsWith('.test.js')) found.push(path);
  }
  return found;
}

/**
 * Runs one file in its own process group. Resolves when the process exits
 * (not when its pipes close: a leftover grandchild may hold them), after a
 * moment for the last output to arrive.
 */
function runFile(file) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [file], { cwd: root, detached: true, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, FORCE_COLOR: '0' } });
    let output = '';
    let timedOut = false;
    child.stdout.setEncoding('utf8').on('data', (chunk) => (output += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk) => (output += chunk));
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        // Already gone.
      }
    }, fileTimeoutMs);
    child.once('exit', (status) => {
      clearTimeout(timer);
      setTimeout(() => {
        child.stdout.destroy();
        child.stderr.destroy();
        resolve({ status, output, timedOut });
      }, 200);
    });
  });
}

const files = findTests(join(root, 'dist')).filter((f) => !filter || filter.test(f)).sort();
let passed = 0;
let failed = 0;
let skipped = 0;
const failedFiles = [];
for (const file of files) {
  const name = relative(root, file);
  const started = Date.now();
  const run = await runFile(file);
  const total = Number(/Total:\s+(\d+)/.exec(run.output)?.[1] ?? 0);
  const ok = Number(/Passed:\s+(\d+)/.exec(run.output)?.[1] ?? 0);
  const skip = Number(/Skipped:\s+(\d+)/.exec(run.output)?.[1] ?? 0);
  const bad = run.status !== 0 ? Math.max(1, total - ok - skip) : total - ok - skip;
  passed += ok;
  failed += bad;
  skipped += skip;
  const seconds = ((Date.now() - started) / 1000).toFixed(1);
  const why = run.timedOut ? `, killed after ${fileTimeoutMs / 1000}s` : '';
  console.log(`${bad > 0 ? 'FAIL' : 'ok  '} ${name} (${ok}/${total}, ${seconds}s${why})`);
  if (bad > 0) {
    failedFiles.push(name);
    console.log(run.output.split('\n').map((line) => `    ${line}`).join('\n'));
  }
}
if (failedFiles.length > 0) console.log(`failed files: ${failedFiles.join(', ')}`);
console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
process.exit(failed > 0 || files.length === 0 ? 1 : 0);
