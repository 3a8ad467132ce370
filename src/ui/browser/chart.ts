/**
 * A small line graph drawn as SVG by hand: one series over the last
 * minutes, its y axis from 0 to a round top (geometry in metrics-series.ts).
 */
import { element, svgElement } from './dom.js';
import { chartGeometry, type ChartBox, type Point } from './metrics-series.js';

const BOX: ChartBox = { width: 320, height: 120, left: 40, bottom: 16 };

/** A figure with a title, the latest value and the graph of `points` between `fromMs` and `toMs`. */
export function lineChart(options: { title: string; unit: string; points: readonly Point[]; fromMs: number; toMs: number }): HTMLElement {
  const { polyline, yTop } = chartGeometry(options.points, { fromMs: options.fromMs, toMs: options.toMs }, BOX);
  const latest = options.points[options.points.length - 1];
  const plotHeight = BOX.height - BOX.bottom;
  const svg = svgElement(
    'svg',
    { viewBox: `0 0 ${BOX.width} ${BOX.height}`, class: 'chart', role: 'img', 'aria-label': `${options.title}, last ${Math.round((options.toMs - options.fromMs) / 1000)} s` },
    svgElement('line', { x1: BOX.left, y1: 0, x2: BOX.width, y2: 0, class: 'chart-grid' }),
    svgElement('line', { x1: BOX.left, y1: plotHeight / 2, x2: BOX.width, y2: plotHeight / 2, class: 'chart-grid' }),
    svgElement('line', { x1: BOX.left, y1: plotHeight, x2: BOX.width, y2: plotHeight, class: 'chart-axis' }),
    svgElement('text', { x: BOX.left - 4, y: 10, class: 'chart-label', 'text-anchor': 'end' }, shortNumber(yTop)),
    svgElement('text', { x: BOX.left - 4, y: plotHeight, class: 'chart-label', 'text-anchor': 'end' }, '0'),
    svgElement('text', { x: BOX.left, y: BOX.height - 2, class: 'chart-label' }, `-${Math.round((options.toMs - options.fromMs) / 1000)} s`),
    svgElement('text', { x: BOX.width, y: BOX.height - 2, class: 'chart-label', 'text-anchor': 'end' }, 'now'),
    polyline === '' ? null : svgElement('polyline', { points: polyline, class: 'chart-line' }),
  );
  return element(
    'figure',
    { class: 'chart-figure' },
    element('figcaption', null, options.title, ' ', element('strong', null, latest === undefined ? '–' : `${shortNumber(latest.y)} ${options.unit}`)),
    svg,
  );
}

function shortNumber(value: number): string {
  if (value >= 100) return Math.round(value).toString();
  if (value >= 10) return value.toFixed(1).replace(/\.0$/, '');
  return value.toFixed(2).replace(/\.?0+$/, '') || '0';
}
