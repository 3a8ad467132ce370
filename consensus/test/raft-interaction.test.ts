/**
 * Runs the data-driven interaction scripts in `consensus/test/testdata/*.txt`
 * (see `ScriptInterpreter` in raft-harness.ts for the commands). Each script
 * is one test; any difference from the recorded output fails it with a diff.
 *
 * REWRITE=1 rewrites the recorded outputs from an actual run. Review every
 * rewritten block against the Raft paper before keeping it.
 * RAFT_SCRIPT=<regex> runs only the matching scripts.
 */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseScript, renderScript, runScript, type ScriptStep } from './raft-harness.js';

// Compiled to dist/consensus/test/; the scripts stay in the source tree.
const testdata = new URL('../../../consensus/test/testdata/', import.meta.url);
const only = process.env.RAFT_SCRIPT ? new RegExp(process.env.RAFT_SCRIPT) : undefined;

const files = readdirSync(testdata)
  .filter((name) => name.endsWith('.txt') && (!only || only.test(name)))
  .sort();

for (const name of files) {
  test(name, () => {
    const url = new URL(name, testdata);
    const text = readFileSync(url, 'utf8');
    const script = parseScript(text);
    const outputs = runScript(script.steps);
    const actual = renderScript(script, outputs);
    if (process.env.REWRITE && actual !== text) {
      writeFileSync(url, actual);
      return;
    }
    const differences = describeDifferences(name, script.steps, outputs);
    if (differences !== '') assert.unreachable(differences);
    assert.is(actual, text, `${name}: the script does not render back to itself`);
  });
}

/** A line diff (longest common subsequence): changed lines with one line of context around them. */
function lineDiff(expected: string[], actual: string[]): string[] {
  const common: number[][] = Array.from({ length: expected.length + 1 }, () => new Array<number>(actual.length + 1).fill(0));
  for (let i = expected.length - 1; i >= 0; i--) {
    for (let j = actual.length - 1; j >= 0; j--) {
      common[i]![j] =
        expected[i] === actual[j] ? common[i + 1]![j + 1]! + 1 : Math.max(common[i + 1]![j]!, common[i]![j + 1]!);
    }
  }
  const marked: { mark: string; line: string }[] = [];
  let i = 0;
  let j = 0;
  while (i < expected.length || j < actual.length) {
    if (i < expected.length && j < actual.length && expected[i] === actual[j]) {
      marked.push({ mark: ' ', line: expected[i++]! });
      j++;
    } else if (i < expected.length && (j === actual.length || common[i + 1]![j]! >= common[i]![j + 1]!)) {
      marked.push({ mark: '-', line: expected[i++]! });
    } else {
      marked.push({ mark: '+', line: actual[j++]! });
    }
  }
  const near = (k: number): boolean => [k - 1, k, k + 1].some((n) => marked[n] !== undefined && marked[n]!.mark !== ' ');
  const lines: string[] = [];
  marked.forEach((entry, k) => {
    if (near(k)) lines.push(`  ${entry.mark} ${entry.line}`);
    else if (lines[lines.length - 1] !== '  ...') lines.push('  ...');
  });
  return lines;
}

/** Each step whose output differs: its line and command, then the expected (-) and actual (+) output. */
function describeDifferences(name: string, steps: ScriptStep[], outputs: string[][]): string {
  const parts: string[] = [];
  steps.forEach((step, k) => {
    const output = outputs[k]!;
    if (output.join('\n') === step.expected.join('\n')) return;
    parts.push(`${name}:${step.line}: ${step.command}`, ...lineDiff(step.expected, output));
  });
  if (parts.length === 0) return '';
  return `${parts.join('\n')}\n(REWRITE=1 rewrites the recorded outputs; review every change before keeping it)`;
}

test('every script is found', () => {
  assert.ok(only || files.length > 0, `no scripts in ${testdata.pathname}`);
});

test('a script renders back to its own text, and a changed output is caught', () => {
  const text = ['# comment', 'bootstrap a b c', '----', 'ok', '', 'campaign a', '----', 'wrong', ''].join('\n');
  const script = parseScript(text);
  assert.is(renderScript(script, script.steps.map((step) => step.expected)), text);
  const actual = renderScript(script, runScript(script.steps));
  assert.ok(actual.includes('a: pre-candidate term=1 vote=- leader=-'));
  assert.is.not(actual, text);
});

test.run();
