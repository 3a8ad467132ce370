/**
 * `status`, `nodes`, `nodes label`, `leave`, `token`: the cluster and its members.
 */
import type { Command } from 'commander';
import type { ElectionView, NodeView, StatusAnswer } from '../../api/answers.js';
import { formatBytes, formatCpu } from '../../state/errors.js';
import { listIn, objectOf } from '../answers.js';
import type { Blocking } from '../client.js';
import { contextOf, withClient, type CliContext } from '../context.js';
import { ago, labelsText, printJson, printLine, renderFields, renderTable } from '../output.js';
import { showOnce, watch } from '../watch.js';
import { UsageError } from '../errors.js';
import { RESERVED_LABEL_PREFIX } from '../../state/types.js';

/** Adds `status`, `nodes`, `leave` and `token` to `program`. */
export function registerClusterCommands(program: Command): void {
  program
    .command('status')
    .description('show this node and the cluster: leader, term, commit and applied index, voters and learners, and the elections this node saw lately')
    .option('-w, --watch', 'show again at every change')
    .addHelpText('after', '\nExamples:\n  hivemind status\n  hivemind --addr 10.0.0.2:7070 status --json')
    .action(async (options: { watch?: boolean }, command: Command) => {
      const context = contextOf(command);
      await withClient(context, (client) => {
        const view = {
          title: `status of ${context.address}`,
          // The node's recent elections beside its status (its own view: GET /v1/elections).
          read: async (blocking: Blocking | undefined) => {
            const status = await client.call('GET /v1/status', { blocking });
            const elections = listIn((await client.call('GET /v1/elections')).body, 'elections');
            return { ...status, body: { ...objectOf(status.body, 'a status'), elections } };
          },
          render: (body: StatusWithElections) => renderStatus(context, objectOf(body, 'a status')),
        };
        return options.watch ? watch(context, view) : showOnce(context, view);
      });
    });

  const nodes = program
    .command('nodes')
    .description('list the nodes of the cluster with their status, Raft role, addresses, resources and labels')
    .option('-w, --watch', 'show again at every change')
    .addHelpText('after', '\nExamples:\n  hivemind nodes\n  hivemind nodes --watch\n  hivemind nodes label n2 zone=a disk=ssd')
    .action(async (options: { watch?: boolean }, command: Command) => {
      const context = contextOf(command);
      await withClient(context, (client) => {
        const view = {
          title: 'nodes',
          read: (blocking: Blocking | undefined) => client.call('GET /v1/nodes', { blocking }),
          render: (body: { nodes: NodeView[] }) => renderNodes(context, listIn(body, 'nodes')),
        };
        return options.watch ? watch(context, view) : showOnce(context, view);
      });
    });

  nodes
    .command('label')
    .description("set or remove a node's labels, which placement constraints read (node.labels.KEY == VALUE)")
    .argument('<node>', 'the id of the node')
    .argument('[labels...]', 'labels to set, as KEY=VALUE')
    .option('--remove <key...>', 'labels to remove (repeatable)')
    .addHelpText('after', '\nExamples:\n  hivemind nodes label n2 zone=a disk=ssd\n  hivemind nodes label n2 --remove disk\n\nLabels given to the agent with --label are set again whenever it registers: change those with the flag.')
    .action(async (node: string, pairs: string[], options: { remove?: string[] }, command: Command) => {
      const context = contextOf(command);
      const set = parseLabelPairs(pairs);
      const remove = options.remove ?? [];
      if (Object.keys(set).length === 0 && remove.length === 0) throw new UsageError('give labels to set (KEY=VALUE) or --remove KEY');
      await withClient(context, async (client) => {
        const { body } = await client.call('POST /v1/nodes/:id/labels', { params: { id: node }, body: { set, remove } });
        if (context.json) return printJson(context, body);
        printLine(context, `node ${node}: labels ${userLabelsText(objectOf(body, 'an answer').labels)}`);
      });
    });

  program
    .command('leave')
    .description('remove a node from the cluster (default: the node --addr points at); leadership moves away first')
    .argument('[node]', 'the id of the node to remove')
    .addHelpText('after', '\nExamples:\n  hivemind leave          # the node at --addr leaves\n  hivemind leave n3')
    .action(async (node: string | undefined, _options: unknown, command: Command) => {
      const context = contextOf(command);
      await withClient(context, async (client) => {
        const id = node ?? objectOf((await client.call('GET /v1/status')).body, 'a status').node;
        const { body } = await client.call('POST /v1/nodes/:id/leave', { params: { id } });
        if (context.json) printJson(context, body);
        else printLine(context, `node ${id} left the cluster`);
      });
    });

  program
    .command('token')
    .description("print the cluster's join token (needed by `hivemind join` and for API calls)")
    .option('--rotate', 'make a new token; the old one stops working at once, for joins and for the API')
    .addHelpText('after', '\nExamples:\n  hivemind token\n  hivemind token --rotate')
    .action(async (options: { rotate?: boolean }, command: Command) => {
      const context = contextOf(command);
      await withClient(context, async (client) => {
        const { body } = options.rotate ? await client.call('POST /v1/token/rotate') : await client.call('GET /v1/token');
        if (context.json) return printJson(context, body);
        printLine(context, objectOf(body, 'a token').token);
        if (options.rotate) {
          context.stderr.write('the old token no longer works: give the new one to `hivemind join --token` and to HIVEMIND_TOKEN where it is set\n');
        }
      });
    });
}

/** `KEY=VALUE` arguments as labels; a malformed one is a usage error naming it. */
export function parseLabelPairs(pairs: readonly string[]): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const pair of pairs) {
    const equals = pair.indexOf('=');
    if (equals <= 0) throw new UsageError(`label ${JSON.stringify(pair)} must be KEY=VALUE`);
    labels[pair.slice(0, equals)] = pair.slice(equals + 1);
  }
  return labels;
}

/** Labels without Hivemind's own (`hivemind.*`), as `a=1, b=2`, or `-`. */
function userLabelsText(labels: Record<string, string> | undefined): string {
  return labelsText(Object.fromEntries(Object.entries(labels ?? {}).filter(([key]) => !key.startsWith(RESERVED_LABEL_PREFIX))));
}

function idList(ids: string[] | undefined): string {
  return ids === undefined || ids.length === 0 ? '-' : ids.join(', ');
}

/** `status`'s answer: the node's status and the elections it saw. */
type StatusWithElections = StatusAnswer & { elections: ElectionView[] };

/** How many elections `status` shows (the node keeps 20: --json shows them all). */
const ELECTIONS_SHOWN_MAX = 5;

function renderStatus(context: CliContext, status: StatusWithElections): string {
  const fields = renderStatusFields(context, status);
  const elections = status.elections.slice(0, ELECTIONS_SHOWN_MAX);
  if (elections.length === 0) return fields;
  const rows = elections.map((election) => [String(election.term), election.leader || '(none)', election.reason, ago(election.seenAt)]);
  const more = status.elections.length > elections.length ? `\n(${status.elections.length - elections.length} older: --json shows them)` : '';
  return `${fields}\n\nrecent elections (as ${status.node} saw them)\n${renderTable(context, ['term', 'leader', 'why', 'seen'], rows, '')}${more}`;
}

function renderStatusFields(context: CliContext, status: StatusAnswer): string {
  return renderFields([
    ['node', status.node],
    ['address', context.address],
    ['role', status.role],
    ['leader', status.leader ?? '(none known)'],
    ['term', status.term],
    ['commit', status.commit],
    ['applied', status.applied],
    ['voters', idList(status.voters)],
    ['learners', idList(status.learners)],
    ['version', status.version],
  ]);
}

function renderNodes(context: CliContext, nodes: NodeView[]): string {
  const rows = nodes.map((node) => [
    node.id,
    node.status,
    node.role,
    node.gossip?.status ?? '-',
    node.addresses?.api ?? '-',
    node.resources?.cpuMillis === undefined ? '-' : formatCpu(node.resources.cpuMillis),
    node.resources?.memoryBytes === undefined ? '-' : formatBytes(node.resources.memoryBytes),
    userLabelsText(node.labels),
    // The answering node's last gossip message from it (about every second); for itself, or without gossip: its registration.
    ago(node.gossip?.lastHeardAt ?? node.lastSeenAt),
  ]);
  return renderTable(context, ['id', 'status', 'role', 'gossip', 'api', 'cpu', 'memory', 'labels', 'last seen'], rows, 'no nodes');
}
