#!/usr/bin/env node
// Runs every compiled test file (dist/**/*.test.js) with uvu, one file per
// process so that a crash names its file, and ends with the plain summary line
// "N passed, N failed" that CI reads. Usage: node scripts/test.js [filter]
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const filter = process.argv[2] ? new RegExp(process.argv[2]) : null;

function findTests(dir) {
  const found = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) found.push(...findTests(path));
    else if (name.endsWith('.test.js')) found.push(path);
  }
  return found;
}

const files = findTests(join(root, 'dist')).filter((f) => !filter || filter.test(f)).sort();
let passed = 0;
let failed = 0;
let skipped = 0;
const failedFiles = [];
for (const file of files) {
  const name = relative(root, file);
  const started = Date.now();
  const run = spawnSync(process.execPath, [file], { cwd: root, encoding: 'utf8', env: { ...process.env, FORCE_COLOR: '0' } });
  const output = (run.stdout ?? '') + (run.stderr ?? '');
  const total = Number(/Total:\s+(\d+)/.exec(output)?.[1] ?? 0);
  const ok = Number(/Passed:\s+(\d+)/.exec(output)?.[1] ?? 0);
  const skip = Number(/Skipped:\s+(\d+)/.exec(output)?.[1] ?? 0);
  const bad = run.status !== 0 ? Math.max(1, total - ok - skip) : total - ok - skip;
  passed += ok;
  failed += bad;
  skipped += skip;
  const seconds = ((Date.now() - started) / 1000).toFixed(1);
  console.log(`${bad > 0 ? 'FAIL' : 'ok  '} ${name} (${ok}/${total}, ${seconds}s)`);
  if (bad > 0) {
    failedFiles.push(name);
    console.log(output.split('\n').map((line) => `    ${line}`).join('\n'));
  }
}
if (failedFiles.length > 0) console.log(`failed files: ${failedFiles.join(', ')}`);
console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
process.exit(failed > 0 || files.length === 0 ? 1 : 0);
