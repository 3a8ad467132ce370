/**
 * The HTML report of a run: one self-contained file (no scripts, no external
 * resources) with the summary, and a timeline as inline SVG: one lane per
 * client process, and every fault as a shaded band with its number. A run of
 * at most BARS_MAX operations shows each operation as a bar from its call to
 * its completion (green ok, red fail, amber info: unknown outcome); a longer
 * one shows, per lane, columns of at most COLUMNS_MAX time buckets: green
 * where operations went ok, with a red mark where any failed and an amber
 * (grey) one where any had an unknown outcome (no completion), so that none
 * of those is lost from sight. Hovering shows what each was. The report's
 * size is bounded whatever the run's length (lanes × columns, or BARS_MAX
 * bars, plus one band per fault).
 * Pure: summary and timeline in, text out.
 */
import { formatSummary, type RunSummary } from './summary.js';
import { BARS_MAX, OVERFLOW_PROCESS, type BucketCounts, type Lane, type TimelineView } from './timeline.js';

const LANE_HEIGHT = 9;
const LANE_GAP = 2;
const LEFT = 110;
const TOP = 40;
const WIDTH = 1500;
const colors = { ok: '#2e9d4f', fail: '#d64541', info: '#f0a830', open: '#999999' } as const;
/** Columns of a long run's timeline, at most. */
export const COLUMNS_MAX = 500;
const faultColors: Record<string, string> = { partition: '#5b8def', kill: '#c0392b', pause: '#8e44ad', loss: '#16a085', membership: '#d35400' };

function escape(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** The report as one HTML document. */
export function renderReport(summary: RunSummary, timeline: TimelineView): string {
  const { endMs } = timeline;
  const processes = timeline.lanes.map((entry) => entry.process);
  const lane = new Map(processes.map((process, position) => [process, position]));
  const nodeOf = new Map<number, string>();
  for (const entry of timeline.lanes) if (entry.node !== undefined) nodeOf.set(entry.process, entry.node);
  const plotWidth = WIDTH - LEFT - 20;
  const x = (ms: number) => LEFT + (ms / endMs) * plotWidth;
  const height = TOP + processes.length * (LANE_HEIGHT + LANE_GAP) + 30;
  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" font-family="sans-serif" font-size="10">`);
  for (const fault of summary.faults) {
    const start = x(fault.startMs);
    const end = x(fault.endMs ?? endMs);
    const color = faultColors[fault.nemesis] ?? '#777777';
    const title = `fault #${fault.id} ${fault.nemesis} ${fault.variant}, ${(fault.startMs / 1000).toFixed(1)} s to ${fault.endMs === null ? '?' : (fault.endMs / 1000).toFixed(1)} s: ${fault.description}; unavailable ${(fault.unavailableMs / 1000).toFixed(1)} s${fault.notes.length > 0 ? `; ${fault.notes.join('; ')}` : ''}`;
    parts.push(`<g><title>${escape(title)}</title><rect x="${start.toFixed(1)}" y="${TOP - 14}" width="${Math.max(1, end - start).toFixed(1)}" height="${height - TOP - 16}" fill="${color}" fill-opacity="0.13" stroke="${color}" stroke-opacity="0.6"/>`);
    parts.push(`<text x="${(start + 2).toFixed(1)}" y="${TOP - 4}" fill="${color}">#${fault.id} ${escape(fault.nemesis)} ${escape(fault.variant)}</text></g>`);
  }
  const heal = x(summary.healAtMs);
  parts.push(`<line x1="${heal.toFixed(1)}" x2="${heal.toFixed(1)}" y1="${TOP - 30}" y2="${height - 20}" stroke="#000" stroke-dasharray="4 3"><title>everything healed at ${(summary.healAtMs / 1000).toFixed(1)} s</title></line>`);
  parts.push(`<text x="${(heal + 3).toFixed(1)}" y="${TOP - 22}">heal</text>`);
  for (const process of processes) {
    const y = TOP + lane.get(process)! * (LANE_HEIGHT + LANE_GAP);
    const label = process === OVERFLOW_PROCESS ? 'other processes' : process >= 10_000 ? `final ${nodeOf.get(process) ?? ''}` : `p${process} ${nodeOf.get(process) ?? ''}`;
    parts.push(`<text x="4" y="${y + LANE_HEIGHT - 1}">${escape(label)}</text>`);
  }
  if (timeline.bars === undefined) {
    for (const entry of timeline.lanes) drawColumns(parts, { lane: entry, y: TOP + lane.get(entry.process)! * (LANE_HEIGHT + LANE_GAP), x, timeline });
  }
  for (const bar of timeline.bars ?? []) {
    const y = TOP + lane.get(bar.process)! * (LANE_HEIGHT + LANE_GAP);
    const start = x(bar.start);
    const width = Math.max(1, x(bar.end) - start);
    const shown = bar.value === undefined ? '' : ` ${JSON.stringify(bar.value)}`;
    const title = `p${bar.process} ${bar.f} ${bar.key}${shown} ${bar.type}${bar.error ? ` (${bar.error})` : ''} on ${bar.node ?? '?'}, ${(bar.start / 1000).toFixed(3)} s, ${(bar.end - bar.start).toFixed(1)} ms`;
    parts.push(`<rect x="${start.toFixed(1)}" y="${y}" width="${width.toFixed(1)}" height="${LANE_HEIGHT}" fill="${colors[bar.type]}"><title>${escape(title)}</title></rect>`);
  }
  const axisY = height - 12;
  const stepMs = endMs > 600_000 ? 60_000 : endMs > 120_000 ? 10_000 : 5000;
  for (let tick = 0; tick <= endMs; tick += stepMs) {
    parts.push(`<line x1="${x(tick).toFixed(1)}" x2="${x(tick).toFixed(1)}" y1="${axisY - 6}" y2="${axisY - 2}" stroke="#444"/><text x="${x(tick).toFixed(1)}" y="${axisY + 8}" text-anchor="middle">${tick / 1000} s</text>`);
  }
  parts.push('</svg>');
  const verdictColor = summary.verdict === 'valid' ? colors.ok : summary.verdict === 'invalid' ? colors.fail : colors.info;
  return [
    '<!doctype html>',
    '<html lang="en"><head><meta charset="utf-8">',
    `<title>Hivemind chaos run, seed ${summary.seed}: ${summary.verdict}</title>`,
    '<style>body{font-family:sans-serif;margin:20px;color:#222}pre{background:#f6f6f6;padding:10px;overflow:auto;font-size:12px}.legend span{display:inline-block;margin-right:14px}.legend i{display:inline-block;width:12px;height:10px;margin-right:4px;vertical-align:middle}.timeline{overflow-x:auto;border:1px solid #ddd}</style>',
    '</head><body>',
    `<h1>Chaos run, seed ${summary.seed}: <span style="color:${verdictColor}">${summary.verdict}</span></h1>`,
    `<p>Reproduce: <code>${escape(summary.command)}</code></p>`,
    '<h2>Timeline</h2>',
    '<p class="legend">',
    `<span><i style="background:${colors.ok}"></i>ok</span><span><i style="background:${colors.fail}"></i>fail (certainly no effect)</span><span><i style="background:${colors.info}"></i>info (unknown outcome)</span><span><i style="background:${colors.open}"></i>no completion</span>`,
    ...Object.entries(faultColors).map(([name, color]) => `<span><i style="background:${color};opacity:0.5"></i>${name}</span>`),
    '</p>',
    '<p>One lane per client process (named with the node it talks to); the lanes at the bottom are the final reads after recovery. Hover a bar or a fault band for details.</p>',
    `<p>${escape(describeTimeline(timeline))}</p>`,
    `<div class="timeline">${parts.join('\n')}</div>`,
    '<h2>Summary</h2>',
    `<pre>${escape(formatSummary(summary))}</pre>`,
    '<p>Files beside this report: <code>history.jsonl</code> (check it again with <code>npm run chaos:check -- history.jsonl</code>), <code>summary.json</code>, <code>summary.txt</code>, and <code>logs/</code> (one log per host).</p>',
    '</body></html>',
    '',
  ].join('\n');
}

/** The line under the legend: what the timeline shows, and how much. */
function describeTimeline(timeline: TimelineView): string {
  const { totals } = timeline;
  const counted = `${totals.ok + totals.fail + totals.info + totals.open} operations (ok ${totals.ok}, fail ${totals.fail}, info ${totals.info}, no completion ${totals.open})`;
  if (timeline.bars !== undefined) return `${counted}, one bar each.`;
  const columnMs = columnWidthMs(timeline);
  return `${counted}: more than ${BARS_MAX}, so each lane shows columns of ${(columnMs / 1000).toFixed(columnMs < 1000 ? 2 : 0)} s by call time: green where operations went ok, a red mark (top half) where any failed, an amber mark (bottom half) where any had an unknown outcome, grey where any had no completion.`;
}

/** A long run's column width: a whole number of buckets, at most COLUMNS_MAX columns. */
function columnWidthMs(timeline: TimelineView): number {
  const buckets = Math.ceil(timeline.endMs / timeline.bucketMs);
  return timeline.bucketMs * Math.max(1, Math.ceil(buckets / COLUMNS_MAX));
}

/** One lane of a long run: a column per non-empty stretch of buckets, marked by its worst outcomes. */
function drawColumns(parts: string[], options: { lane: Lane; y: number; x: (ms: number) => number; timeline: TimelineView }): void {
  const { lane, y, x, timeline } = options;
  const columnMs = columnWidthMs(timeline);
  const perColumn = columnMs / timeline.bucketMs;
  const columns = new Map<number, BucketCounts>();
  lane.buckets.forEach((counts, index) => {
    if (counts === undefined) return;
    const column = Math.floor(index / perColumn);
    const total = columns.get(column) ?? { ok: 0, fail: 0, info: 0, open: 0 };
    total.ok += counts.ok;
    total.fail += counts.fail;
    total.info += counts.info;
    total.open += counts.open;
    columns.set(column, total);
  });
  const name = lane.process >= 10_000 ? `final ${lane.node ?? ''}` : `p${lane.process} ${lane.node ?? ''}`;
  for (const [column, counts] of columns) {
    const startMs = column * columnMs;
    const start = x(startMs);
    const width = Math.max(1, x(Math.min(timeline.endMs, startMs + columnMs)) - start).toFixed(1);
    const title = `${name}, ${(startMs / 1000).toFixed(1)} s to ${((startMs + columnMs) / 1000).toFixed(1)} s: ok ${counts.ok}, fail ${counts.fail}, info ${counts.info}, no completion ${counts.open}`;
    const half = LANE_HEIGHT / 2;
    const shapes: string[] = [];
    if (counts.ok > 0) shapes.push(`<rect x="${start.toFixed(1)}" y="${y}" width="${width}" height="${LANE_HEIGHT}" fill="${colors.ok}"/>`);
    if (counts.fail > 0) shapes.push(`<rect x="${start.toFixed(1)}" y="${y}" width="${width}" height="${half}" fill="${colors.fail}"/>`);
    if (counts.info + counts.open > 0) shapes.push(`<rect x="${start.toFixed(1)}" y="${y + half}" width="${width}" height="${half}" fill="${counts.info > 0 ? colors.info : colors.open}"/>`);
    parts.push(`<g><title>${escape(title)}</title>${shapes.join('')}</g>`);
  }
}
