/** The HTML report: one bar per operation, one band per fault, text escaped, self-contained. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseHistory } from '../history.js';
import type { HistoryEvent } from '../recorder.js';
import { renderReport } from '../report-html.js';
import { summarize } from '../summary.js';

const events: HistoryEvent[] = [
  { process: 0, type: 'invoke', f: 'write', key: 'k', value: '0.1', time: 10, node: 'n1' },
  { process: 1, type: 'invoke', f: 'read', key: 'k', time: 12, node: 'n2' },
  { process: 0, type: 'ok', f: 'write', key: 'k', value: '0.1', time: 30, node: 'n1' },
  { process: 1, type: 'ok', f: 'read', key: 'k', value: '0.1', time: 40, node: 'n2' },
  { process: 0, type: 'invoke', f: 'write', key: 'k', value: '<0.2>', time: 50, node: 'n1' },
  { process: 0, type: 'info', f: 'write', key: 'k', value: '<0.2>', time: 3050, error: 'TimeoutError', node: 'n1' },
  { process: 10_000, type: 'invoke', f: 'read', key: 'k', time: 4000, node: 'n1' },
  { process: 10_000, type: 'ok', f: 'read', key: 'k', value: '<0.2>', time: 4010, node: 'n1' },
];

function summary() {
  const parsed = parseHistory(events.map((event) => JSON.stringify(event)).join('\n'));
  assert.ok(parsed.ok);
  return summarize({
    seed: 9,
    command: 'npm run chaos -- --seed 9',
    nodes: 2,
    timeMs: 3000,
    nemesis: 'pause',
    workload: 'register',
    outDirectory: '/tmp/x',
    history: parsed.history,
    counts: { invoked: 3, ok: 2, fail: 0, info: 1 },
    keys: ['k'],
    finalProcesses: new Set([10_000]),
    faults: [{ id: 1, nemesis: 'pause', variant: 'leader', targets: ['n1'], description: 'SIGSTOP n1', startMs: 45, endMs: 2000, notes: [] }],
    workloadEndMs: 3500,
    healAtMs: 3000,
    recovery: { boundMs: 30_000, byNode: { n1: 5, n2: 7 }, ms: 7 },
    other: [],
    formatCheck: () => 'linearizable',
  });
}

test('summary: verdict, counts, unavailability of the fault', () => {
  const result = summary();
  assert.is(result.verdict, 'valid');
  assert.is(result.checks.linearizability, 'linearizable');
  // No ok operation from the fault until the end of the recovery (heal at 3000 + 7 ms).
  assert.is(result.faults[0]!.unavailableMs, 3007 - 45);
  assert.is(result.latencyMs.p50, 20);
});

test('report: a bar per operation, a band per fault, escaped text, no external resources', () => {
  const html = renderReport(summary(), events);
  assert.ok(html.startsWith('<!doctype html>'));
  assert.is((html.match(/<rect [^>]*><title>p/g) ?? []).length, 4);
  assert.is((html.match(/<title>fault #1 pause leader/g) ?? []).length, 1);
  assert.ok(html.includes('&lt;0.2&gt;'));
  assert.not.ok(html.includes('"<0.2>"'));
  assert.not.match(html, /<script|<link|src=/);
  assert.match(html, /final n1/);
  assert.match(html, /Chaos run, seed 9: <span[^>]*>valid<\/span>/);
});

test.run();
