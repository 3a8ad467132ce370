/**
 * `history`: the recent changes to the cluster, newest first.
 */
import { Option, type Command } from 'commander';
import type { HistoryEntry } from '../../state/types.js';
import { listIn } from '../answers.js';
import type { AnswerOf } from '../../api/contract.js';
import type { Blocking } from '../client.js';
import { contextOf, withClient, type CliContext } from '../context.js';
import { renderTable, shorten, timestamp } from '../output.js';
import { wholeNumber } from '../parse.js';
import { showOnce, watch } from '../watch.js';

const summaryLengthMax = 70;

/** Adds `history` to `program`. */
export function registerHistoryCommand(program: Command): void {
  program
    .command('history')
    .description('show recent changes to the cluster, newest first: who changed what, and when')
    .addOption(new Option('-n, --limit <count>', 'how many entries').argParser(wholeNumber(1)).default(50))
    .addOption(new Option('--before <index>', 'only entries older than this log index (to page back)').argParser(wholeNumber(1)))
    .option('-w, --watch', 'show again at every change')
    .addHelpText('after', '\nExamples:\n  hivemind history\n  hivemind history --limit 10 --json\n  hivemind history --before 1200')
    .action(async (options: { limit: number; before?: number; watch?: boolean }, command: Command) => {
      const context = contextOf(command);
      await withClient(context, (client) => {
        const view = {
          title: 'history',
          read: (blocking: Blocking | undefined) => client.call('GET /v1/history', { query: { limit: options.limit, before: options.before }, blocking }),
          render: (body: AnswerOf<'GET /v1/history'>) => renderHistory(context, listIn(body, 'history')),
        };
        return options.watch ? watch(context, view) : showOnce(context, view);
      });
    });
}

function renderHistory(context: CliContext, entries: HistoryEntry[]): string {
  const rows = entries.map((entry) => [entry.index, timestamp(entry.time), entry.actor, entry.command, entry.target, shorten(entry.summary, summaryLengthMax)]);
  return renderTable(context, ['index', 'time', 'actor', 'command', 'target', 'summary'], rows, 'no history yet');
}
