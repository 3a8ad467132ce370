/**
 * `apps`, `app NAME`, `scale`, `rollback`, `delete`: deployed apps, their
 * versions and instances. An app is named `web` (tenant from `--tenant`,
 * else `default`) or `acme/web`.
 */
import { Option, type Command } from 'commander';
import type { App, AppSpec, Instance, Rollout } from '../../state/types.js';
import { formatBytes, formatCpu } from '../../state/errors.js';
import { listIn, objectOf } from '../answers.js';
import type { AppView } from '../../api/answers.js';
import type { ApiResponse, Blocking } from '../client.js';
import { contextOf, withClient, type CliContext } from '../context.js';
import { ago, printJson, printLine, renderFields, renderTable, shorten, timestamp } from '../output.js';
import { tenantAndName, wholeNumber } from '../parse.js';
import { showOnce, watch } from '../watch.js';
import { TENANT_FILTER, TENANT_OF_ONE, tenantOption, writeAndReport } from './shared.js';
import { instanceMessage, INSTANCE_MESSAGE_CHARS_MAX } from './instance-text.js';

/** `GET /v1/apps/{tenant}/{name}`: the app, its current spec, its instances. */
export interface AppAnswer extends App {
  spec?: AppSpec;
  instances: Instance[];
}

/** Adds `apps`, `app`, `scale`, `rollback` and `delete` to `program`. */
export function registerAppCommands(program: Command): void {
  program
    .command('apps')
    .description('list the deployed apps with their version and how many instances run')
    .addOption(tenantOption(TENANT_FILTER))
    .option('-p, --project-name <name>', 'only the apps of this project')
    .option('-w, --watch', 'show again at every change')
    .addHelpText('after', '\nExamples:\n  hivemind apps\n  hivemind apps -p shop\n  hivemind apps --tenant acme --watch')
    .action(async (options: { tenant?: string; projectName?: string; watch?: boolean }, command: Command) => {
      const context = contextOf(command);
      const query = { tenant: options.tenant };
      const inProject = (app: App): boolean => options.projectName === undefined || app.project === options.projectName;
      await withClient(context, (client) => {
        const view = {
          title: options.tenant ? `apps of ${options.tenant}` : 'apps',
          read: async (blocking: Blocking | undefined): Promise<ApiResponse<{ apps: App[]; instances?: Instance[] }>> => {
            const apps = await client.call('GET /v1/apps', { query, blocking });
            if (context.json) return options.projectName === undefined ? apps : { body: { apps: listIn(apps.body, 'apps').filter(inProject) }, index: apps.index };
            // Any change moves the one index, so the apps' answer woke for the instances' too.
            const instances = await client.call('GET /v1/instances', { query });
            return { body: { apps: listIn(apps.body, 'apps').filter(inProject), instances: listIn(instances.body, 'instances') }, index: apps.index };
          },
          render: (body: { apps: App[]; instances?: Instance[] }) => renderApps(context, { apps: body.apps, instances: body.instances ?? [] }),
        };
        return options.watch ? watch(context, view) : showOnce(context, view);
      });
    });

  program
    .command('app')
    .description('show one app: its spec, versions and instances')
    .argument('<name>', 'the app, as NAME or TENANT/NAME')
    .addOption(tenantOption(TENANT_OF_ONE))
    .option('-w, --watch', 'show again at every change')
    .addHelpText('after', '\nExamples:\n  hivemind app web\n  hivemind app acme/web --watch\n  hivemind app web --json')
    .action(async (text: string, options: { tenant?: string; watch?: boolean }, command: Command) => {
      const { tenant, name } = tenantAndName(text, options.tenant, 'app');
      const context = contextOf(command);
      await withClient(context, (client) => {
        const view = {
          title: `app ${tenant}/${name}`,
          read: (blocking: Blocking | undefined) => client.call('GET /v1/apps/:tenant/:name', { params: { tenant, name }, blocking }),
          render: (body: AppView) => renderApp(context, appAnswerOf(body)),
        };
        return options.watch ? watch(context, view) : showOnce(context, view);
      });
    });

  program
    .command('scale')
    .description('change how many instances an app runs (no new version)')
    .argument('<name>', 'the app, as NAME or TENANT/NAME')
    .argument('<replicas>', 'the number of instances', wholeNumber(0))
    .addOption(tenantOption(TENANT_OF_ONE))
    .addHelpText('after', '\nExamples:\n  hivemind scale web 5\n  hivemind scale acme/worker 0')
    .action(async (text: string, replicas: number, options: { tenant?: string }, command: Command) => {
      const { tenant, name } = tenantAndName(text, options.tenant, 'app');
      await writeAndReport(command, (client) => client.call('POST /v1/apps/:tenant/:name/scale', { params: { tenant, name }, body: { replicas } }), `app ${tenant}/${name} scaled to ${replicas}`);
    });

  program
    .command('rollback')
    .description("redeploy an earlier version's spec as a new version (default: the previous version)")
    .argument('<name>', 'the app, as NAME or TENANT/NAME')
    .addOption(new Option('--to <version>', 'the version to go back to').argParser(wholeNumber(1)))
    .addOption(tenantOption(TENANT_OF_ONE))
    .addHelpText('after', '\nExamples:\n  hivemind rollback web\n  hivemind rollback web --to 2')
    .action(async (text: string, options: { tenant?: string; to?: number }, command: Command) => {
      const { tenant, name } = tenantAndName(text, options.tenant, 'app');
      const context = contextOf(command);
      await withClient(context, async (client) => {
        const { body } = await client.call('POST /v1/apps/:tenant/:name/rollback', { params: { tenant, name }, body: options.to === undefined ? {} : { toVersion: options.to } });
        if (context.json) return printJson(context, body);
        const version = body.version;
        const from = options.to === undefined ? 'the previous version' : `version ${options.to}`;
        printLine(context, `app ${tenant}/${name} rolled back to ${from}${typeof version === 'number' ? ` (now version ${version})` : ''}`);
      });
    });

  program
    .command('delete')
    .description('delete an app and all its instances')
    .argument('<name>', 'the app, as NAME or TENANT/NAME')
    .addOption(tenantOption(TENANT_OF_ONE))
    .addHelpText('after', '\nExamples:\n  hivemind delete web\n  hivemind delete acme/web')
    .action(async (text: string, options: { tenant?: string }, command: Command) => {
      const { tenant, name } = tenantAndName(text, options.tenant, 'app');
      await writeAndReport(command, (client) => client.call('DELETE /v1/apps/:tenant/:name', { params: { tenant, name } }), `app ${tenant}/${name} deleted`);
    });
}

function appAnswerOf(body: AppView): AppAnswer {
  return { ...objectOf(body, 'an app'), instances: listIn(body, 'instances') };
}

function currentSpec(app: App): AppSpec | undefined {
  return app.versions.find((version) => version.version === app.version)?.spec ?? app.versions[app.versions.length - 1]?.spec;
}

/** What an app runs: its image, or its command for a process app. */
function runsText(spec: AppSpec | undefined): string {
  if (spec === undefined) return '-';
  if (spec.image !== undefined) return spec.image;
  return spec.command === undefined ? '-' : shorten(spec.command.join(' '), 40);
}

function isUp(instance: Instance): boolean {
  return instance.desired !== 'stopped' && (instance.status?.state === 'running' || instance.status?.state === 'healthy');
}

/** The rollout as lines for `hivemind app`: state, progress, message, weights. */
export function rolloutLines(rollout: Rollout | undefined): [string, string | number | undefined][] {
  if (rollout === undefined) return [];
  const what = `${rollout.kind === 'rollback' ? 'rollback' : `${rollout.strategy} update`} from version ${rollout.fromVersion} to ${rollout.toVersion}`;
  const weights = rollout.weights?.map((weight) => `version ${weight.version}: ${weight.percent}%`).join(', ');
  return [
    ['rollout', `${what}: ${rollout.state} (${rollout.done} of ${rollout.total} done)`],
    ['progress', rollout.message],
    ['weights', weights],
  ];
}

function renderApps(context: CliContext, { apps, instances }: { apps: App[]; instances: Instance[] }): string {
  const rows = apps.map((app) => {
    const own = instances.filter((instance) => instance.tenant === app.tenant && instance.app === app.name);
    return [app.name, app.tenant, app.project ?? '-', app.version, `${own.filter(isUp).length}/${app.replicas}`, runsText(currentSpec(app))];
  });
  return renderTable(context, ['name', 'tenant', 'project', 'version', 'running', 'runs'], rows, 'no apps; deploy one with `hivemind deploy -f app.yaml`');
}

function resourcesText(resources: { cpuMillis?: number; memoryBytes?: number } | undefined): string | undefined {
  const parts: string[] = [];
  if (resources?.cpuMillis !== undefined) parts.push(formatCpu(resources.cpuMillis));
  if (resources?.memoryBytes !== undefined) parts.push(formatBytes(resources.memoryBytes));
  return parts.length === 0 ? undefined : parts.join(', ');
}

function renderApp(context: CliContext, app: AppAnswer): string {
  const instances = app.instances;
  // The current version's spec (after a rollback, not the newest). Nodes of this version answer it as `spec`; older ones answered the newest.
  const spec = currentSpec(app) ?? app.spec;
  const ports = (spec?.ports ?? []).map((port) => `${port.published === undefined ? '' : `${port.published}->`}${port.target}/${port.protocol}`);
  const summary = renderFields([
    ['app', `${app.tenant}/${app.name}`],
    ['project', app.project],
    ['version', app.version],
    ['replicas', `${instances.filter(isUp).length} of ${app.replicas} running`],
    [spec?.image !== undefined ? 'image' : 'command', runsText(spec)],
    ['ports', ports.length === 0 ? undefined : ports.join(', ')],
    ['limits', resourcesText(spec?.limits)],
    ['reserves', resourcesText(spec?.reservations)],
    ['strategy', spec?.hivemind?.strategy],
    ['constraints', spec?.constraints?.length ? spec.constraints.join(', ') : undefined],
    ['secrets', spec?.hivemind?.secrets?.length ? spec.hivemind.secrets.join(', ') : undefined],
    ['policies', spec?.hivemind?.policies?.length ? spec.hivemind.policies.join(', ') : undefined],
    ...rolloutLines(app.rollout),
    ['unplaceable', app.unplaceable === undefined ? undefined : `${app.unplaceable.count} instance${app.unplaceable.count === 1 ? '' : 's'}: ${app.unplaceable.reasons.join('; ')}`],
    ['rebalance', app.rebalance === undefined ? undefined : `in progress (${app.rebalance.moves} moves so far)`],
  ]);
  const versions = renderTable(
    context,
    ['version', 'deployed', 'runs', 'replicas'],
    [...app.versions].reverse().map((version) => [
      version.version === app.version ? `${version.version} (current)` : version.version,
      timestamp(version.deployedAt),
      runsText(version.spec),
      version.spec.replicas,
    ]),
  );
  const sorted = [...instances].sort((a, b) => a.slot - b.slot);
  const instanceTable = renderTable(
    context,
    ['instance', 'version', 'node', 'state', 'since', 'message'],
    sorted.map((instance) => [
      instance.id,
      instance.version,
      instance.node ?? '(not placed)',
      (instance.status?.exitCode === undefined ? (instance.status?.state ?? '-') : `${instance.status.state} (exit ${instance.status.exitCode})`) +
        (instance.desired === 'stopped' ? ', retired' : ''),
      ago(instance.status?.reportedAt),
      shorten(instanceMessage(instance, app.unplaceable), INSTANCE_MESSAGE_CHARS_MAX),
    ]),
    'no instances',
  );
  return `${summary}\n\nVersions (newest first)\n${versions}\n\nInstances\n${instanceTable}`;
}
