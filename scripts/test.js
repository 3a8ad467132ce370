#!/usr/bin/env node
// Runs every compiled test file (dist/**/*.test.js) with uvu, one file per
// process so that a crash names its file, and ends with the plain summary line
// "N passed, N failed" that CI reads. Usage: node scripts/test.js [filter]
//
// A file that runs longer than HIVEMIND_TEST_FILE_TIMEOUT_S (600 by default)
// fails: its process group is killed and the output it printed so far is
// shown, so one hung test cannot hold the whole run.
//
// Two lanes run side by side. The host lane takes, one at a time, every file
// that can start processes (its imports reach node:child_process or
// node:cluster): agents, containerd, namespaces, iptables, which share the
// host and must not overlap. The unit lane takes, one at a time, the files
// that cannot: they run in their own process on loopback and temp folders
// only, so they overlap nothing the host lane touches; and then the few files
// that start processes shown to keep to loopback and temp folders as well
// (LOOPBACK_ONLY). A third lane would overlap them with both others on a
// 2-core machine, for about half a minute of a quiet run.
// HIVEMIND_TEST_LANES=1 runs every file in one lane.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

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
function runFile(file, lane) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [file], { cwd: root, detached: true, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, FORCE_COLOR: '0', HIVEMIND_TEST_LANE: lane } });
    let output = '';
    let report = '';
    let timedOut = false;
    child.stdout.setEncoding('utf8').on('data', (chunk) => {
      output += chunk;
      report += chunk;
    });
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
        resolve({ status, output, report, timedOut });
      }, 200);
    });
  });
}

const SPAWNING_IMPORT = /(?:from\s*|import\s*\(\s*)['"](?:node:)?(?:child_process|cluster)['"]/;
const RELATIVE_IMPORT = /(?:from\s*|import\s*\(\s*)['"](\.{1,2}\/[^'"]+)['"]/g;

/**
 * The modules `entries` import, transitively (static or dynamic, relative
 * paths only), read once: what each imports, and which of them import
 * node:child_process or node:cluster themselves.
 */
function importGraph(entries) {
  const imports = new Map(); // module -> the relative modules it imports
  const direct = new Set(); // modules that import node:child_process or node:cluster themselves
  const pending = [...entries];
  while (pending.length > 0) {
    const file = pending.pop();
    if (imports.has(file)) continue;
    const source = existsSync(file) ? readFileSync(file, 'utf8') : '';
    if (SPAWNING_IMPORT.test(source)) direct.add(file);
    const targets = [...source.matchAll(RELATIVE_IMPORT)].map((match) => resolve(dirname(file), match[1]));
    imports.set(file, targets);
    pending.push(...targets);
  }
  return { imports, direct };
}

/**
 * The files among `entries` that can start a process: the file, or a module
 * it imports (transitively), imports node:child_process or node:cluster.
 */
function spawningFiles(entries, graph) {
  const spawning = new Set(graph.direct);
  for (let changed = true; changed; ) {
    changed = false;
    for (const [file, targets] of graph.imports) {
      if (!spawning.has(file) && targets.some((target) => spawning.has(target))) {
        spawning.add(file);
        changed = true;
      }
    }
  }
  return new Set(entries.filter((file) => spawning.has(file)));
}

/**
 * Test files that can start processes but are known to keep to loopback and
 * temporary folders, with the modules of each one's imports that import
 * node:child_process (paths under dist/). What each of those modules starts,
 * followed in the code:
 * - consensus/test/fixtures/kv-cluster.js, consensus/test/kv-server-tls.test.js:
 *   `node dist/consensus/server/main.js`, the Raft KV server (consensus/ imports
 *   nothing from src/, and nothing it imports starts a process), on 127.0.0.1
 *   with a data directory under a mkdtemp folder;
 * - consensus/test/storage-level.test.js: `node fixtures/storage-writer.js DIR`,
 *   LevelDB writes into the test's mkdtemp folder (it imports no spawning module);
 * - src/executor/process-runtime.js, volume-tool.js, volume-archive.js, reached by
 *   the simulator through src/executor/executor.js: the simulated agent gives
 *   the executor its own runtimes (src/sim/sim-agent.ts), so no ProcessRuntime
 *   is made, and a host that keeps no volumes (src/sim/sim-host.ts:
 *   keepsVolumes false), so the executor refuses named volumes before any
 *   volume tool runs and never sweeps or cleans volumes; the volume keeper
 *   skips host paths; no API serves backups there. The simulated nodes open no
 *   socket at all.
 * None touches containerd, iptables, network namespaces, cgroups or mounts, so
 * these run in the unit lane (after its own files), beside the host lane. A file whose imports
 * reach another spawning module than those listed runs in the host lane again
 * (and the runner says so): what it starts then has not been looked at.
 */
const LOOPBACK_ONLY = {
  'dist/consensus/test/cluster-process.test.js': ['consensus/test/fixtures/kv-cluster.js'],
  'dist/consensus/test/kv-server-tls.test.js': ['consensus/test/fixtures/kv-cluster.js', 'consensus/test/kv-server-tls.test.js'],
  'dist/consensus/test/storage-level.test.js': ['consensus/test/storage-level.test.js'],
  'dist/src/sim/test/cluster.test.js': ['src/executor/process-runtime.js', 'src/executor/volume-archive.js', 'src/executor/volume-tool.js'],
  'dist/src/sim/test/scenarios.test.js': ['src/executor/process-runtime.js', 'src/executor/volume-archive.js', 'src/executor/volume-tool.js'],
};

/** The modules under dist/ that `file` imports (transitively, itself included) and that import node:child_process or node:cluster, sorted. */
function spawningModulesOf(file, graph) {
  const seen = new Set();
  const pending = [file];
  while (pending.length > 0) {
    const module = pending.pop();
    if (seen.has(module)) continue;
    seen.add(module);
    pending.push(...(graph.imports.get(module) ?? []));
  }
  return [...seen].filter((module) => graph.direct.has(module)).map((module) => relative(join(root, 'dist'), module)).sort();
}

/** The files among `spawning` listed in LOOPBACK_ONLY whose spawning modules are still exactly those listed. */
function loopbackOnlyFiles(spawning, graph) {
  const chosen = new Set();
  for (const file of spawning) {
    const listed = LOOPBACK_ONLY[relative(root, file)];
    if (listed === undefined) continue;
    const reached = spawningModulesOf(file, graph);
    if (reached.join() === [...listed].sort().join()) chosen.add(file);
    else console.log(`${relative(root, file)} runs in the host lane: its imports now reach ${reached.join(', ')}, not only ${listed.join(', ')} (scripts/test.js, LOOPBACK_ONLY)`);
  }
  return chosen;
}

const files = findTests(join(root, 'dist')).filter((f) => !filter || filter.test(f)).sort();
const oneLane = process.env.HIVEMIND_TEST_LANES === '1';
const graph = importGraph(files);
const spawning = spawningFiles(files, graph);
const loopbackOnly = oneLane ? new Set() : loopbackOnlyFiles(spawning, graph);
const hostLane = files.filter((file) => oneLane || (spawning.has(file) && !loopbackOnly.has(file)));
const unitLane = files.filter((file) => !oneLane && !spawning.has(file)).concat(files.filter((file) => loopbackOnly.has(file)));
let passed = 0;
let failed = 0;
let skipped = 0;
const failedFiles = [];
const failureReports = [];
await Promise.all([runLane(hostLane, 'host'), runLane(unitLane, 'unit')]);

// Each lane's files choose their servers' ports from their own part of the
// range (consensus/test/fixtures/free-ports.ts), so the two never collide.
async function runLane(laneFiles, lane) {
  for (const file of laneFiles) await runAndReport(file, lane);
}

async function runAndReport(file, lane) {
  const name = relative(root, file);
  const started = Date.now();
  const run = await runFile(file, lane);
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
    failureReports.push(`${name}:\n${indent(uvuFailures(run.report), '  ')}`);
    console.log(indent(run.output, '    '));
  }
}

function indent(text, by) {
  return text.split('\n').map((line) => `${by}${line}`).join('\n');
}

/**
 * uvu's own account of a file's failures: its stdout from the first "FAIL"
 * block to the totals, without the logs the tests print on stderr, so the
 * reason for a failure is not buried under the nodes' logs.
 */
function uvuFailures(stdout) {
  const lines = stdout.split('\n');
  const first = lines.findIndex((line) => /^\s+FAIL\s/.test(line));
  const kept = (first < 0 ? lines.slice(-40) : lines.slice(first)).filter((line) => line.trim() !== '');
  return kept.length > 80 ? [...kept.slice(0, 80), `... (${kept.length - 80} more lines above in the file's output)`].join('\n') : kept.join('\n');
}

// The reasons again at the end, where a reader of a long log looks first.
if (failureReports.length > 0) console.log(`why they failed:\n${failureReports.join('\n')}`);
if (failedFiles.length > 0) console.log(`failed files: ${failedFiles.join(', ')}`);
console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
process.exit(failed > 0 || files.length === 0 ? 1 : 0);
