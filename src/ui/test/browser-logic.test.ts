// The browser code's pure parts, run in Node: how amounts and times are
// worded, the history filter, the metrics parser, histogram quantiles, the
// rates between samples and the graphs' geometry.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { countBy, formatAgo, formatBytes, formatCpu, formatDuration, formatTime, formatUsage, usageFraction } from '../browser/format.js';
import { matchesHistory, tenantsOfHistory } from '../browser/history-page.js';
import { bucketDifference, bucketsOf, chartGeometry, histogramQuantile, ratesOf, roundUp, sampleOf, sumSamples, withSample, SAMPLES_MAX, type MetricsSample } from '../browser/metrics-series.js';

test('amounts and times', () => {
  assert.is(formatBytes(0), '0 B');
  assert.is(formatBytes(1536), '1.5 KiB');
  assert.is(formatBytes(512 * 2 ** 20), '512 MiB');
  assert.is(formatBytes(8 * 2 ** 30), '8 GiB');
  assert.is(formatCpu(250), '0.25 CPU');
  assert.is(formatCpu(2000), '2 CPU');
  assert.is(formatDuration(850), '850 ms');
  assert.is(formatDuration(12_400), '12 s');
  assert.is(formatDuration(5 * 60_000), '5 min');
  assert.is(formatAgo(1000, 13_000), '12 s ago');
  assert.is(formatAgo(20_000, 13_000), 'just now', 'a reporter\'s clock ahead of ours');
  assert.is(formatTime(Date.UTC(2026, 11, 5, 11, 47, 39)), '2026-12-05 11:47:39');
  assert.is(formatUsage(3, 5), '3 of 5');
  assert.is(formatUsage(2 ** 30, undefined, formatBytes), '1 GiB (unlimited)');
  assert.is(usageFraction(3, 4), 0.75);
  assert.is(usageFraction(3, undefined), undefined);
  assert.is(usageFraction(1, 0), 1, 'anything used of a zero quota is all of it');
  assert.equal(countBy(['healthy', 'starting', 'healthy'], (state) => state), [['healthy', 2], ['starting', 1]]);
});

test('the history filter: every word somewhere, the command and the tenant exactly', () => {
  const entry = { index: 42, time: 0, actor: 'user:ci/tok1', command: 'app.promote', target: 'app acme/web', summary: 'canary promoted: rolling the rest to version 3' };
  const all = { words: '', command: '', tenant: '' };
  assert.ok(matchesHistory(entry, all));
  assert.ok(matchesHistory(entry, { ...all, words: 'WEB  promoted' }));
  assert.not.ok(matchesHistory(entry, { ...all, words: 'web rollback' }));
  assert.ok(matchesHistory(entry, { ...all, command: 'app.promote', tenant: 'acme' }));
  assert.not.ok(matchesHistory(entry, { ...all, command: 'app.deploy' }));
  assert.not.ok(matchesHistory(entry, { ...all, tenant: 'acm' }), 'a tenant is matched whole');
  assert.not.ok(matchesHistory(entry, { ...all, tenant: 'app' }), 'the target\'s kind is not a tenant');
  const placed = { ...entry, command: 'instance.place', target: 'instances', summary: 'placed acme.web.0.5 on u2, default.hello-2.1.12 on u3' };
  assert.equal([...tenantsOfHistory(placed)], ['acme', 'default'], 'instances name their tenants in the summary');
  assert.ok(matchesHistory(placed, { ...all, tenant: 'default' }));
  assert.not.ok(matchesHistory({ ...placed, summary: 'placed nothing' }, { ...all, tenant: 'acme' }));
  assert.equal([...tenantsOfHistory({ ...entry, target: 'node u3', summary: 'role learner → voter' })], []);
});

const METRICS = `# HELP hivemind_raft_commit_index Highest log index known committed.
# TYPE hivemind_raft_commit_index gauge
hivemind_raft_commit_index 120
hivemind_http_request_duration_seconds_bucket{le="0.01",method="GET",route="/v1/status",status="200"} 6
hivemind_http_request_duration_seconds_bucket{le="0.1",method="GET",route="/v1/status",status="200"} 8
hivemind_http_request_duration_seconds_bucket{le="+Inf",method="GET",route="/v1/status",status="200"} 10
hivemind_http_request_duration_seconds_bucket{method="POST",note="a } and, le=\\"1\\" spaces",le="0.01"} 0
hivemind_http_request_duration_seconds_bucket{method="POST",note="a } and, le=\\"1\\" spaces",le="0.1"} 2
hivemind_http_request_duration_seconds_bucket{method="POST",note="a } and, le=\\"1\\" spaces",le="+Inf"} 2
hivemind_http_request_duration_seconds_sum{method="GET",route="/v1/status",status="200"} 30.5
hivemind_http_request_duration_seconds_count{method="GET",route="/v1/status",status="200"} 10
hivemind_raft_commit_index_other 7
broken line
hivemind_raft_commit_index{x="1"} NaN-ish
`;

test('the metrics parser sums the wanted samples over their labels and skips the rest', () => {
  const sums = sumSamples(METRICS, new Set(['hivemind_raft_commit_index', 'hivemind_http_request_duration_seconds_count']));
  assert.equal([...sums], [['hivemind_raft_commit_index', 120], ['hivemind_http_request_duration_seconds_count', 10]]);
  assert.equal(bucketsOf(METRICS, 'hivemind_http_request_duration_seconds'), [[0.01, 6], [0.1, 10], [Infinity, 12]], 'buckets summed by bound, a quoted le= in another label ignored');
  assert.equal(sampleOf(METRICS, 5000), { timeMs: 5000, commitIndex: 120, requestBuckets: [[0.01, 6], [0.1, 10], [Infinity, 12]] });
  assert.equal(sampleOf('', 1), { timeMs: 1, commitIndex: undefined, requestBuckets: undefined });
});

test('quantiles from buckets, as histogram_quantile computes them', () => {
  const buckets = [[0.01, 6], [0.1, 10], [Infinity, 12]] as const;
  assert.is(histogramQuantile(0.5, buckets), 0.01, 'the 6th of 12 is at the first bound');
  assert.is(histogramQuantile(0.25, buckets), 0.005, 'interpolated from 0 in the first bucket');
  assert.ok(Math.abs(histogramQuantile(0.75, buckets)! - 0.0775) < 1e-9, 'interpolated inside the second');
  assert.is(histogramQuantile(0.99, buckets), 0.1, 'in the +Inf bucket: the largest finite bound');
  assert.is(histogramQuantile(0.5, [[0.01, 0], [Infinity, 0]]), undefined, 'no observations, no quantile');
});

test('rates between samples: commits per second and the median latency; a restart\'s drop and an idle interval are left out', () => {
  const samples: MetricsSample[] = [
    { timeMs: 0, commitIndex: 100, requestBuckets: [[0.01, 5], [0.1, 5], [Infinity, 5]] },
    // 10 requests: 9 quick, 1 blocking query that waited 30 s; the median stays with the quick ones.
    { timeMs: 2000, commitIndex: 140, requestBuckets: [[0.01, 14], [0.1, 14], [Infinity, 15]] },
    { timeMs: 4000, commitIndex: 140, requestBuckets: [[0.01, 14], [0.1, 14], [Infinity, 15]] },
    { timeMs: 6000, commitIndex: 5, requestBuckets: [[0.01, 1], [0.1, 1], [Infinity, 1]] },
  ];
  const rates = ratesOf(samples);
  assert.equal(rates.commitsPerSecond, [{ x: 2000, y: 20 }, { x: 4000, y: 0 }]);
  assert.equal(rates.requestLatencyMs.map((point) => ({ x: point.x, y: Number(point.y.toFixed(3)) })), [{ x: 2000, y: 5.556 }]);
  assert.is(bucketDifference([[0.01, 1], [Infinity, 1]], [[0.1, 2], [Infinity, 2]]), undefined, 'other bounds: no difference');
  let kept: MetricsSample[] = [];
  for (let time = 0; time < SAMPLES_MAX + 5; time += 1) kept = withSample(kept, { timeMs: time, commitIndex: time, requestBuckets: undefined });
  assert.is(kept.length, SAMPLES_MAX);
  assert.is(kept[0]!.timeMs, 5, 'the oldest go first');
});

test('graph geometry: time across, values up from 0 to a round top, points out of range left out', () => {
  assert.equal([0, 0.3, 1, 3, 7, 20, 101].map(roundUp), [1, 0.5, 1, 5, 10, 20, 200]);
  const box = { width: 110, height: 60, left: 10, bottom: 10 };
  const geometry = chartGeometry([{ x: -5, y: 99 }, { x: 0, y: 0 }, { x: 50, y: 4 }, { x: 100, y: 2 }], { fromMs: 0, toMs: 100 }, box);
  assert.is(geometry.yTop, 5);
  assert.is(geometry.polyline, '10.0,50.0 60.0,10.0 110.0,30.0');
  assert.equal(chartGeometry([], { fromMs: 0, toMs: 100 }, box), { polyline: '', yTop: 1 });
});

test.run();
