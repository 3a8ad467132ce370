/**
 * The HTML report: one bar per operation, one band per fault, text escaped,
 * self-contained; a two-hour history of half a million events renders in
 * bounded size, aggregated, with every fault and every failed or unknown
 * operation still marked.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseHistory, parseHistoryLines } from '../history.js';
import type { FaultRecord } from '../nemesis.js';
import type { HistoryEvent } from '../recorder.js';
import { renderReport } from '../report-html.js';
import { summarize } from '../summary.js';
import { BARS_MAX, BUCKETS_MAX, TimelineBuilder } from '../timeline.js';

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
  const html = renderReport(summary(), TimelineBuilder.fromEvents(events));
  assert.ok(html.startsWith('<!doctype html>'));
  assert.is((html.match(/<rect [^>]*><title>p/g) ?? []).length, 4);
  assert.is((html.match(/<title>fault #1 pause leader/g) ?? []).length, 1);
  assert.ok(html.includes('&lt;0.2&gt;'));
  assert.not.ok(html.includes('"<0.2>"'));
  assert.not.match(html, /<script|<link|src=/);
  assert.match(html, /final n1/);
  assert.match(html, /Chaos run, seed 9: <span[^>]*>valid<\/span>/);
});

test('a two-hour history of 500,000 events: checked, summarized and reported in bounded size, failures and faults kept in sight', () => {
  const hourMs = 3_600_000;
  const durationMs = 2 * hourMs;
  const processes = 10;
  const operationsTotal = 250_000;
  const stepMs = durationMs / (operationsTotal / processes);
  const faults: FaultRecord[] = [];
  for (let id = 1; id * 12_000 < durationMs; id++) {
    faults.push({ id, nemesis: id % 2 === 0 ? 'kill' : 'partition', variant: 'random', targets: ['n1'], description: `fault ${id}`, startMs: id * 12_000, endMs: id * 12_000 + 5000, notes: [] });
  }
  // Process 3 fails one operation in 500 and times out (info) on another; process 7 never completes its last one.
  const lines: string[] = [];
  const timeline = new TimelineBuilder();
  let failed = 0;
  let unknown = 0;
  const record = (event: HistoryEvent) => {
    timeline.add(event);
    lines.push(JSON.stringify(event));
  };
  for (let round = 0; round * processes < operationsTotal; round++) {
    for (let process = 0; process < processes; process++) {
      const time = round * stepMs + process;
      const key = `k${process % 3}`;
      record({ process, type: 'invoke', f: 'read', key, time, node: `n${(process % 5) + 1}` });
      if (process === 7 && (round + 1) * processes >= operationsTotal) continue;
      const type = process === 3 && round % 500 === 17 ? 'fail' : process === 3 && round % 500 === 250 ? 'info' : 'ok';
      if (type === 'fail') failed++;
      if (type === 'info') unknown++;
      record({ process, type, f: 'read', key, ...(type === 'ok' ? { value: null } : { error: 'TimeoutError' }), time: time + stepMs / 2, node: `n${(process % 5) + 1}` });
    }
  }
  assert.ok(lines.length >= 499_990, `${lines.length} events`);
  const parsed = parseHistoryLines(lines);
  assert.ok(parsed.ok);
  if (!parsed.ok) return;
  assert.is(parsed.history.failedCount, failed);
  assert.is(parsed.history.unknownCount, unknown + 1);
  const result = summarize({
    seed: 7,
    command: 'npm run chaos -- --time 2h --seed 7',
    nodes: 5,
    timeMs: durationMs,
    nemesis: 'partition,kill',
    workload: 'register',
    outDirectory: '/tmp/x',
    history: parsed.history,
    counts: { invoked: operationsTotal, ok: operationsTotal - failed - unknown - 1, fail: failed, info: unknown },
    keys: ['k0', 'k1', 'k2'],
    finalProcesses: new Set(),
    faults,
    workloadEndMs: durationMs,
    healAtMs: durationMs,
    recovery: { boundMs: 30_000, byNode: { n1: 5 }, ms: 5 },
    other: [],
    formatCheck: () => 'linearizable',
  });
  assert.is(result.checks.linearizability, 'linearizable');
  assert.is(result.faults.length, faults.length);
  assert.ok(result.faults.every((fault) => fault.unavailableMs < 1000), 'operations go on through every fault');
  const view = timeline.view();
  assert.is(view.bars, undefined, `more than ${BARS_MAX} operations: aggregated`);
  assert.ok(view.endMs / view.bucketMs <= BUCKETS_MAX);
  assert.is(view.totals.fail, failed);
  assert.is(view.totals.info, unknown);
  assert.is(view.totals.open, 1);
  const html = renderReport(result, view);
  assert.ok(html.length < 4_000_000, `the report is ${html.length} characters`);
  assert.is((html.match(/<title>fault #/g) ?? []).length, faults.length, 'every fault has its band');
  // Every column holding a failed or unknown operation carries its mark and its count.
  const failMarks = html.match(/<title>p3 [^<]*fail [1-9][^<]*<\/title>(<rect [^>]*\/>)*<rect [^>]*height="4.5" fill="#d64541"/g) ?? [];
  assert.ok(failMarks.length > 0, 'failed operations are marked');
  const failedShown = [...html.matchAll(/<title>p3 [^<]*fail (\d+)/g)].reduce((sum, match) => sum + Number(match[1]), 0);
  assert.is(failedShown, failed, 'every failed operation is counted in a marked column');
  const unknownShown = [...html.matchAll(/<title>p3 [^<]*info (\d+)/g)].reduce((sum, match) => sum + Number(match[1]), 0);
  assert.is(unknownShown, unknown, 'every unknown outcome too');
  assert.match(html, /<title>p7 [^<]*no completion 1</);
  assert.ok(html.includes(`${operationsTotal} operations (ok ${operationsTotal - failed - unknown - 1}, fail ${failed}, info ${unknown}, no completion 1)`));
});

test.run();
