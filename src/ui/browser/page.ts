/**
 * What every page gets from the shell (main.ts), and the parts pages share.
 */
import type { ApiClient } from './api.js';
import { ApiRequestError } from './api.js';
import { element } from './dom.js';

/** A page's world while it is shown. */
export interface PageContext {
  api: ApiClient;
  /** The page's own area; the shell empties it when the page changes. */
  root: HTMLElement;
  /** Aborted when the user leaves the page: loops and streams stop. */
  signal: AbortSignal;
  /** The route's segments after the page name (`#/apps/acme/web` → `['acme', 'web']`), decoded. */
  parameters: string[];
  /** Runs `load` now and again at every state change, until the page is left; failures show in the page's status line. */
  live(load: () => Promise<number>): void;
  /** A message above the page (an action's outcome). */
  notify(message: string, tone: 'good' | 'bad'): void;
}

/** A page: fills `context.root`. */
export type Page = (context: PageContext) => void;

/** An error's words for people: the API's message as it is (it names the field and what to do). */
export function errorText(error: unknown): string {
  if (error instanceof ApiRequestError) return error.message;
  return error instanceof Error ? error.message : String(error);
}

/** A section with a heading. */
export function section(title: string, ...children: (Node | string | null | undefined | false)[]): HTMLElement {
  return element('section', { class: 'panel' }, element('h2', null, title), ...children);
}

/** The hash link to an app's page. */
export function appLink(tenant: string, name: string): string {
  return `#/apps/${encodeURIComponent(tenant)}/${encodeURIComponent(name)}`;
}

/** An instance state's colour. */
export function stateTone(state: string): 'good' | 'warn' | 'bad' | 'info' | 'muted' {
  switch (state) {
    case 'healthy':
    case 'running':
    case 'up':
    case 'alive':
    case 'succeeded':
      return 'good';
    case 'starting':
    case 'pending':
    case 'suspect':
    case 'awaiting-promotion':
    case 'paused':
      return 'warn';
    case 'unhealthy':
    case 'exited':
    case 'oom-killed':
    case 'failed':
    case 'down':
    case 'dead':
    case 'rolled-back':
      return 'bad';
    case 'stopped':
    case 'left':
    case 'superseded':
      return 'muted';
    default:
      return 'info';
  }
}
