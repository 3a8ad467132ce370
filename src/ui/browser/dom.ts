/**
 * Building the page: elements made with properties and children, text
 * always set as text (never parsed as HTML), so nothing the API answers,
 * an app's log included, can inject markup.
 */

/** A child of `element`: nodes and text; `null`, `undefined` and `false` are skipped. */
export type Child = Node | string | number | null | undefined | false;

/** Attributes (strings, booleans), and event handlers under `on<event>`. */
export type Properties = Record<string, string | number | boolean | undefined | ((event: Event) => void)>;

/** An HTML element with `properties` and `children`. */
export function element<Tag extends keyof HTMLElementTagNameMap>(tag: Tag, properties: Properties | null = null, ...children: Child[]): HTMLElementTagNameMap[Tag] {
  const created = document.createElement(tag);
  applyProperties(created, properties);
  append(created, children);
  return created;
}

const SVG_NAMESPACE = 'http://www.w3.org/2000/svg';

/** An SVG element with attributes and children. */
export function svgElement<Tag extends keyof SVGElementTagNameMap>(tag: Tag, attributes: Record<string, string | number> = {}, ...children: Child[]): SVGElementTagNameMap[Tag] {
  const created = document.createElementNS(SVG_NAMESPACE, tag);
  for (const [name, value] of Object.entries(attributes)) created.setAttribute(name, String(value));
  append(created, children);
  return created;
}

function applyProperties(target: HTMLElement, properties: Properties | null): void {
  if (properties === null) return;
  for (const [name, value] of Object.entries(properties)) {
    if (value === undefined || value === false) continue;
    if (typeof value === 'function') target.addEventListener(name.slice(2), value);
    else if (value === true) target.setAttribute(name, '');
    else target.setAttribute(name, String(value));
  }
}

function append(target: Element, children: Child[]): void {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    target.append(typeof child === 'number' ? String(child) : child);
  }
}

/**
 * A table: a header row, then one row per entry. Each cell carries its
 * column's heading (`data-label`): on a phone the stylesheet shows each row
 * as a card of labelled lines instead of columns wider than the screen.
 */
export function table(headings: string[], rows: Child[][], properties: Properties | null = null): HTMLDivElement {
  return element(
    'div',
    { class: 'table-scroll' },
    element(
      'table',
      properties,
      element('thead', null, element('tr', null, ...headings.map((heading) => element('th', null, heading)))),
      element('tbody', null, ...rows.map((cells) => element('tr', null, ...cells.map((cell, column) => element('td', { 'data-label': headings[column] ?? '' }, cell))))),
    ),
  );
}

/** A small coloured label (`up`, `healthy`, `leader`); `tone` picks the colour. */
export function badge(text: string, tone: 'good' | 'warn' | 'bad' | 'info' | 'muted'): HTMLSpanElement {
  return element('span', { class: `badge badge-${tone}` }, text);
}
