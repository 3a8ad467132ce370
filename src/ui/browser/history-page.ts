/**
 * The history: recent changes, newest first, filtered as you type (by any
 * words, a command, a tenant), with older pages on demand.
 */
import type { HistoryEntryView } from './api-types.js';
import { element, table } from './dom.js';
import { formatTime } from './format.js';
import { section, type Page } from './page.js';

/** Entries read per page (the API takes 1 to 1000). */
const PAGE_ENTRIES = 200;

/** What the filter keeps: every word of `words` somewhere in the entry, and the command and tenant when given. */
export interface HistoryFilter {
  words: string;
  command: string;
  tenant: string;
}

/** An instance id in a summary (`placed acme.web.0.3 on n2`): tenant, app, slot, serial. */
const INSTANCE_ID_PATTERN = /\b([a-z0-9](?:[a-z0-9-]*[a-z0-9])?)\.[a-z0-9-]+\.\d+\.\d+\b/g;

/**
 * The tenants an entry is about: the tenant of its target (`app acme/web`,
 * `volume acme/data`), or, for targets without one (`instances`), the
 * tenants of the instance ids its summary names.
 */
export function tenantsOfHistory(entry: HistoryEntryView): Set<string> {
  const target = /^(?:\S+ )?([a-z0-9-]+)\/\S/.exec(entry.target)?.[1];
  if (target !== undefined) return new Set([target]);
  return new Set([...entry.summary.matchAll(INSTANCE_ID_PATTERN)].map((match) => match[1]!));
}

/** Whether `entry` passes `filter`. Pure (tested in src/ui/test/browser-logic.test.ts). */
export function matchesHistory(entry: HistoryEntryView, filter: HistoryFilter): boolean {
  if (filter.command !== '' && entry.command !== filter.command) return false;
  if (filter.tenant !== '' && !tenantsOfHistory(entry).has(filter.tenant)) return false;
  const text = `${entry.index} ${entry.actor} ${entry.command} ${entry.target} ${entry.summary}`.toLowerCase();
  return filter.words
    .toLowerCase()
    .split(/\s+/)
    .filter((word) => word !== '')
    .every((word) => text.includes(word));
}

/** The history page. */
export const historyPage: Page = (context) => {
  const filter: HistoryFilter = { words: '', command: '', tenant: '' };
  let latest: HistoryEntryView[] = [];
  let older: HistoryEntryView[] = [];
  const words = element('input', { type: 'search', placeholder: 'filter: words', 'aria-label': 'filter by words', 'data-test': 'history-filter' });
  const command = element('select', { 'aria-label': 'filter by command' });
  const tenant = element('input', { type: 'text', placeholder: 'tenant', 'aria-label': 'filter by tenant', size: 12, 'data-test': 'history-tenant' });
  const more = element('button', { type: 'button' }, 'Older');
  const list = element('div');
  const draw = (): void => {
    const entries = [...latest, ...older.filter((entry) => entry.index < (latest[latest.length - 1]?.index ?? Infinity))];
    const commands = [...new Set(entries.map((entry) => entry.command))].sort();
    command.replaceChildren(element('option', { value: '' }, 'every command'), ...commands.map((name) => element('option', { value: name, selected: name === filter.command }, name)));
    const shown = entries.filter((entry) => matchesHistory(entry, filter));
    list.replaceChildren(
      element('p', { class: 'hint' }, `${shown.length} of ${entries.length} entries`),
      table(['index', 'time (UTC)', 'actor', 'command', 'target', 'summary'], shown.map((entry) => [String(entry.index), formatTime(entry.time), entry.actor, entry.command, entry.target, entry.summary]), { 'data-test': 'history' }),
    );
  };
  words.addEventListener('input', () => {
    filter.words = words.value;
    draw();
  });
  command.addEventListener('change', () => {
    filter.command = command.value;
    draw();
  });
  tenant.addEventListener('input', () => {
    filter.tenant = tenant.value.trim();
    draw();
  });
  more.addEventListener('click', async () => {
    const oldest = [...latest, ...older].reduce((lowest, entry) => Math.min(lowest, entry.index), Infinity);
    if (!Number.isFinite(oldest)) return;
    more.disabled = true;
    try {
      const page = await context.api.read<{ history: HistoryEntryView[] }>(`/v1/history?limit=${PAGE_ENTRIES}&before=${oldest}`);
      older = [...older, ...page.value.history];
      if (page.value.history.length < PAGE_ENTRIES) more.textContent = 'No older entries';
      else more.disabled = false;
      draw();
    } catch (error) {
      more.disabled = false;
      context.notify((error as Error).message, 'bad');
    }
  });
  context.root.append(element('h1', null, 'History'), section('Filter', element('div', { class: 'filters' }, words, command, tenant)), list, element('div', { class: 'actions' }, more));
  context.live(async () => {
    const page = await context.api.read<{ history: HistoryEntryView[] }>(`/v1/history?limit=${PAGE_ENTRIES}`);
    latest = page.value.history;
    draw();
    return page.index;
  });
};
