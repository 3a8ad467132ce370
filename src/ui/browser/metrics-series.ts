/**
 * The node's own figures over time, read from its `/metrics` (Prometheus
 * text): the Raft commit rate and the API's mean latency. Pure: samples come
 * in with the time they were taken, rates go out (tested in Node,
 * src/ui/test/metrics-series.test.ts).
 *
 * The families read (docs/operations.md lists them): the commit index
 * gauge, and the request duration histogram's buckets (summed over every
 * route and status). The latency shown is the median of each interval, as
 * Prometheus's `histogram_quantile(0.5, ...)` computes it: a mean would be
 * dominated by the blocking queries (the UI's own among them) that wait up
 * to 30 s by design.
 */

/** The commit index gauge. */
export const COMMIT_INDEX_METRIC = 'hivemind_raft_commit_index';
/** The API latency histogram (seconds). */
export const REQUEST_SECONDS_METRIC = 'hivemind_http_request_duration_seconds';

/** Samples kept: at one every 2 s, two minutes. */
export const SAMPLES_MAX = 60;

/**
 * The sum over all label sets of each sample name in `text` (Prometheus text
 * exposition format), for the names in `wanted` only. Comments, malformed
 * lines and values that are not numbers are skipped.
 */
export function sumSamples(text: string, wanted: ReadonlySet<string>): Map<string, number> {
  const sums = new Map<string, number>();
  for (const sample of samplesIn(text, wanted)) sums.set(sample.name, (sums.get(sample.name) ?? 0) + sample.value);
  return sums;
}

/** One sample line: its name, its labels as written (between the braces), its value. */
interface SampleLine {
  name: string;
  labels: string;
  value: number;
}

function* samplesIn(text: string, wanted: ReadonlySet<string>): Generator<SampleLine> {
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const nameEnd = line.search(/[{\s]/);
    if (nameEnd <= 0) continue;
    const name = line.slice(0, nameEnd);
    if (!wanted.has(name)) continue;
    // The value follows the labels (which may hold spaces and braces inside quotes): the first field after the last brace.
    const labelsEnd = line[nameEnd] === '{' ? line.lastIndexOf('}') : -1;
    const labels = labelsEnd === -1 ? '' : line.slice(nameEnd + 1, labelsEnd);
    const value = Number(line.slice(labelsEnd === -1 ? nameEnd : labelsEnd + 1).trim().split(/\s+/)[0]);
    if (!Number.isFinite(value)) continue;
    yield { name, labels, value };
  }
}

/** A histogram's cumulative counts by upper bound (`le`, +Inf last), summed over its label sets, in ascending order. */
export type Buckets = readonly (readonly [upperBound: number, count: number])[];

/** The buckets of histogram `name` in `text`, summed over all other labels; undefined when it has none. */
export function bucketsOf(text: string, name: string): Buckets | undefined {
  const counts = new Map<number, number>();
  for (const sample of samplesIn(text, new Set([`${name}_bucket`]))) {
    const bound = /(?:^|,)le="([^"]+)"/.exec(sample.labels)?.[1];
    const upperBound = bound === '+Inf' ? Infinity : Number(bound);
    if (bound === undefined || Number.isNaN(upperBound)) continue;
    counts.set(upperBound, (counts.get(upperBound) ?? 0) + sample.value);
  }
  if (counts.size === 0) return undefined;
  return [...counts].sort((left, right) => left[0] - right[0]);
}

/**
 * The `quantile` (0 to 1) of the observations in `buckets`, interpolated
 * linearly inside its bucket as Prometheus's `histogram_quantile` does (the
 * first bucket from 0; one in the +Inf bucket reads as the largest finite
 * bound). Undefined without observations.
 */
export function histogramQuantile(quantile: number, buckets: Buckets): number | undefined {
  const total = buckets[buckets.length - 1]?.[1] ?? 0;
  if (!(total > 0)) return undefined;
  const rank = quantile * total;
  let lowerBound = 0;
  let lowerCount = 0;
  for (const [upperBound, count] of buckets) {
    if (count >= rank) {
      if (upperBound === Infinity) return lowerBound;
      if (count === lowerCount) return upperBound;
      return lowerBound + ((upperBound - lowerBound) * (rank - lowerCount)) / (count - lowerCount);
    }
    lowerBound = upperBound;
    lowerCount = count;
  }
  return lowerBound;
}

/** One reading of the node's figures. */
export interface MetricsSample {
  timeMs: number;
  commitIndex: number | undefined;
  /** The API latency histogram's cumulative buckets (seconds). */
  requestBuckets: Buckets | undefined;
}

/** Reads one sample out of a `/metrics` answer taken at `timeMs`. */
export function sampleOf(text: string, timeMs: number): MetricsSample {
  return { timeMs, commitIndex: sumSamples(text, new Set([COMMIT_INDEX_METRIC])).get(COMMIT_INDEX_METRIC), requestBuckets: bucketsOf(text, REQUEST_SECONDS_METRIC) };
}

/** A point of a graph: `x` in ms since the epoch, `y` in the series' unit. */
export interface Point {
  x: number;
  y: number;
}

/** The rates between consecutive samples. */
export interface Rates {
  /** Entries committed per second. */
  commitsPerSecond: Point[];
  /** Median API latency over each interval, in ms; intervals without requests are left out. */
  requestLatencyMs: Point[];
}

/**
 * Rates between each pair of consecutive samples (at the later one's time).
 * A counter that went down (the node restarted) starts over: that interval
 * is left out rather than shown negative.
 */
export function ratesOf(samples: readonly MetricsSample[]): Rates {
  const rates: Rates = { commitsPerSecond: [], requestLatencyMs: [] };
  for (let position = 1; position < samples.length; position += 1) {
    const before = samples[position - 1]!;
    const after = samples[position]!;
    const seconds = (after.timeMs - before.timeMs) / 1000;
    if (seconds <= 0) continue;
    if (before.commitIndex !== undefined && after.commitIndex !== undefined && after.commitIndex >= before.commitIndex) {
      rates.commitsPerSecond.push({ x: after.timeMs, y: (after.commitIndex - before.commitIndex) / seconds });
    }
    const interval = bucketDifference(before.requestBuckets, after.requestBuckets);
    const median = interval === undefined ? undefined : histogramQuantile(0.5, interval);
    if (median !== undefined) rates.requestLatencyMs.push({ x: after.timeMs, y: median * 1000 });
  }
  return rates;
}

/** The observations between two readings of one histogram; undefined when the bounds differ or a count went down (a restart). */
export function bucketDifference(before: Buckets | undefined, after: Buckets | undefined): Buckets | undefined {
  if (before === undefined || after === undefined || before.length !== after.length) return undefined;
  const difference: [number, number][] = [];
  for (const [position, [upperBound, count]] of after.entries()) {
    const [earlierBound, earlierCount] = before[position]!;
    if (earlierBound !== upperBound || count < earlierCount) return undefined;
    difference.push([upperBound, count - earlierCount]);
  }
  return difference;
}

/** `samples` with `sample` added, the oldest dropped past SAMPLES_MAX. */
export function withSample(samples: readonly MetricsSample[], sample: MetricsSample): MetricsSample[] {
  const next = [...samples, sample];
  return next.length > SAMPLES_MAX ? next.slice(next.length - SAMPLES_MAX) : next;
}

/** A graph's drawing box, in SVG units. */
export interface ChartBox {
  width: number;
  height: number;
  /** Room left of the plot for the axis labels. */
  left: number;
  /** Room below the plot. */
  bottom: number;
}

/** Where a series is drawn: the polyline's points and the top of the y axis. */
export interface ChartGeometry {
  /** `x,y x,y ...` for an SVG polyline; empty without points. */
  polyline: string;
  /** The value at the top of the plot: a round number at or above the largest point. */
  yTop: number;
}

/**
 * Places `points` in `box`: time runs across from `fromMs` to `toMs`, values
 * up from 0 to a round top. Points outside the time range are left out.
 */
export function chartGeometry(points: readonly Point[], range: { fromMs: number; toMs: number }, box: ChartBox): ChartGeometry {
  const shown = points.filter((point) => point.x >= range.fromMs && point.x <= range.toMs);
  const yTop = roundUp(Math.max(0, ...shown.map((point) => point.y)));
  const plotWidth = box.width - box.left;
  const plotHeight = box.height - box.bottom;
  const spanMs = Math.max(1, range.toMs - range.fromMs);
  const polyline = shown
    .map((point) => {
      const x = box.left + ((point.x - range.fromMs) / spanMs) * plotWidth;
      const y = plotHeight - (point.y / yTop) * plotHeight;
      return `${x.toFixed(1)},${y.toFixed(1)}`;
    })
    .join(' ');
  return { polyline, yTop };
}

/** The smallest of 1, 2, 5 × a power of ten at or above `value` (1 for 0). */
export function roundUp(value: number): number {
  if (!(value > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 5, 10]) if (step * power >= value) return step * power;
  return 10 * power;
}
