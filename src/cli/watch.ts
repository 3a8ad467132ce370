/**
 * `--watch`: show a view, then wait on the node with blocking queries
 * (`?index=N&wait=30s`) and show it again whenever it changed. On a terminal
 * the screen is redrawn in place; otherwise (and with `--json`) each change
 * is appended, so a script can read one JSON document a line.
 */
import type { ApiResponse, Blocking } from './client.js';
import type { CliContext } from './context.js';
import { isTerminal, printLine, timestamp } from './output.js';

/** How long each blocking query waits for a change before asking again. */
export const WATCH_WAIT_MS = 30_000;
/** Pause between plain polls when the node sends no index to block on. */
export const WATCH_POLL_MS = 2000;

const clearScreen = '\x1b[H\x1b[2J';

/** What to watch: a read that can block, and how one answer looks for people. */
export interface WatchOptions<T> {
  /** One read; with `blocking`, the node answers once the state passed `blocking.index`. */
  read: (blocking: Blocking | undefined) => Promise<ApiResponse<T>>;
  /** The view for people. Unused with `--json`. */
  render: (value: T) => string;
  /** Shown above the view on a terminal (`nodes`, `app web`). */
  title: string;
}

/** Shows the view once, without blocking (no `--watch`). */
export async function showOnce<T>(context: CliContext, options: WatchOptions<T>): Promise<void> {
  const { body } = await options.read(undefined);
  if (context.json) printLine(context, JSON.stringify(body ?? null, null, 2));
  else printLine(context, options.render(body));
}

/** Shows the view, then again at every change, until the process is interrupted or a read fails. */
export async function watch<T>(context: CliContext, options: WatchOptions<T>): Promise<never> {
  const redraw = isTerminal(context.stdout) && !context.json;
  let index: number | undefined;
  let shown: string | undefined;
  for (;;) {
    const blocking = index === undefined ? undefined : { index, waitMs: WATCH_WAIT_MS };
    if (shown !== undefined && index === undefined) await sleep(WATCH_POLL_MS);
    const response = await options.read(blocking);
    index = response.index;
    const view = context.json ? JSON.stringify(response.body ?? null) : options.render(response.body);
    if (view === shown) continue;
    if (redraw) {
      context.stdout.write(clearScreen);
      printLine(context, `${options.title}  (at ${timestamp(Date.now())}, index ${index ?? '?'}; Ctrl-C to stop)\n`);
    } else if (shown !== undefined && !context.json) {
      printLine(context);
    }
    printLine(context, view);
    shown = view;
  }
}

function sleep(durationMs: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, durationMs));
}
