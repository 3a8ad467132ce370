/**
 * `ps [APP]`: every instance of the cluster (or of one app, or one tenant):
 * where it runs, its state and the executor's last word on it (for a
 * process app, the host port each instance listens on), else why it last
 * failed or why it cannot be placed (instance-text.ts).
 */
import type { Command } from 'commander';
import type { App, Instance, NodeStatus } from '../../state/types.js';
import { instanceMessage, INSTANCE_MESSAGE_CHARS_MAX } from './instance-text.js';
import { listIn } from '../answers.js';
import type { ApiResponse, Blocking } from '../client.js';
import { contextOf, withClient, type CliContext } from '../context.js';
import { ago, renderTable, shorten } from '../output.js';
import { tenantAndName } from '../parse.js';
import { showOnce, watch } from '../watch.js';
import { TENANT_FILTER, tenantOption } from './shared.js';

/** Adds `ps` to `program`. */
export function registerPsCommand(program: Command): void {
  program
    .command('ps')
    .description('list instances: where each runs, its state and its last status message')
    .argument('[app]', 'only this app, as NAME or TENANT/NAME')
    .addOption(tenantOption(TENANT_FILTER))
    .option('--node <node>', 'only the instances placed on this node')
    .option('-p, --project-name <name>', 'only the instances of this project\'s apps')
    .option('-w, --watch', 'show again at every change')
    .addHelpText('after', '\nExamples:\n  hivemind ps\n  hivemind ps hello\n  hivemind ps --node n2 --watch')
    .action(async (appText: string | undefined, options: { tenant?: string; node?: string; projectName?: string; watch?: boolean }, command: Command) => {
      const context = contextOf(command);
      const query: Record<string, string | undefined> = { tenant: options.tenant, node: options.node };
      if (appText !== undefined) {
        const { tenant, name } = tenantAndName(appText, options.tenant, 'app');
        query.tenant = tenant;
        query.app = name;
      }
      await withClient(context, (client) => {
        const view = {
          title: appText === undefined ? 'instances' : `instances of ${query.tenant}/${query.app}`,
          read: async (blocking: Blocking | undefined): Promise<ApiResponse<{ instances: Instance[]; projects?: Map<string, App>; nodes?: Map<string, NodeStatus> }>> => {
            const instances = await client.call('GET /v1/instances', { query, blocking });
            if (context.json && options.projectName === undefined) return instances;
            // The apps hold the project; any change moves the one index, so the instances' answer woke for them too.
            const apps = await client.call('GET /v1/apps', { query: { tenant: query.tenant } });
            const projects = new Map(listIn(apps.body, 'apps').map((app) => [`${app.tenant}/${app.name}`, app]));
            const listed = listIn(instances.body, 'instances').filter((instance) => options.projectName === undefined || projects.get(`${instance.tenant}/${instance.app}`)?.project === options.projectName);
            if (context.json) return { body: { instances: listed }, index: instances.index };
            // Whose node is down or suspect: its last report may no longer hold.
            const nodes = new Map(listIn((await client.call('GET /v1/nodes')).body, 'nodes').map((node) => [node.id, node.status]));
            return { body: { instances: listed, projects, nodes }, index: instances.index };
          },
          render: (body: { instances: Instance[]; projects?: Map<string, App>; nodes?: Map<string, NodeStatus> }) => renderInstances(context, listIn(body, 'instances'), body.projects ?? new Map(), body.nodes ?? new Map()),
        };
        return options.watch ? watch(context, view) : showOnce(context, view);
      });
    });
}

/** `apps`: each instance's app by `tenant/name` (its project, why it cannot be placed). */
function renderInstances(context: CliContext, instances: Instance[], apps: ReadonlyMap<string, App>, nodes: ReadonlyMap<string, NodeStatus>): string {
  const sorted = [...instances].sort((a, b) => a.tenant.localeCompare(b.tenant) || a.app.localeCompare(b.app) || a.slot - b.slot || a.id.localeCompare(b.id));
  return renderTable(
    context,
    ['instance', 'app', 'project', 'version', 'node', 'state', 'since', 'message'],
    sorted.map((instance) => [
      instance.id,
      `${instance.tenant}/${instance.app}`,
      apps.get(`${instance.tenant}/${instance.app}`)?.project ?? '-',
      instance.version,
      instance.node ?? '(not placed)',
      stateText(instance, nodes.get(instance.node ?? '')) + (instance.desired === 'stopped' ? ', retired' : ''),
      ago(instance.status.reportedAt),
      shorten(instanceMessage(instance, apps.get(`${instance.tenant}/${instance.app}`)?.unplaceable), INSTANCE_MESSAGE_CHARS_MAX),
    ]),
    'no instances; deploy an app with `hivemind deploy -f app.yaml`',
  );
}

/**
 * An instance's state as `ps` shows it: its last report, or `unknown (node
 * down)` while its node is down or suspect and it last said it ran (the
 * report may no longer hold; the scheduler moves it once the grace ends).
 */
export function stateText(instance: Instance, nodeStatus: NodeStatus | undefined): string {
  const { state, exitCode } = instance.status;
  const ran = state === 'running' || state === 'healthy' || state === 'starting' || state === 'unhealthy';
  if (ran && (nodeStatus === 'down' || nodeStatus === 'suspect')) return `unknown (node ${nodeStatus}; last ${state})`;
  return exitCode === undefined ? state : `${state} (exit ${exitCode})`;
}
