/**
 * `promote`, `abort`, `rebalance`: steering an app's rollout, and evening
 * out instances over nodes. The rollout itself shows in `hivemind app NAME`.
 */
import type { Command } from 'commander';
import { contextOf, withClient } from '../context.js';
import { printJson, printLine } from '../output.js';
import { tenantAndName } from '../parse.js';
import { TENANT_OF_ONE, tenantOption } from './shared.js';

/** Adds `promote`, `abort` and `rebalance` to `program`. */
export function registerRolloutCommands(program: Command): void {
  program
    .command('promote')
    .description('switch a blue-green update to the new version, roll a canary out, or resume a paused update')
    .argument('<name>', 'the app, as NAME or TENANT/NAME')
    .addOption(tenantOption(TENANT_OF_ONE))
    .addHelpText('after', '\nExamples:\n  hivemind promote web\n  hivemind promote acme/web')
    .action(async (text: string, options: { tenant?: string }, command: Command) => {
      const { tenant, name } = tenantAndName(text, options.tenant, 'app');
      await steer(command, 'POST /v1/apps/:tenant/:name/promote', { tenant, name });
    });

  program
    .command('abort')
    .description("stop an app's rollout and restore the version it started from")
    .argument('<name>', 'the app, as NAME or TENANT/NAME')
    .addOption(tenantOption(TENANT_OF_ONE))
    .addHelpText('after', '\nExamples:\n  hivemind abort web')
    .action(async (text: string, options: { tenant?: string }, command: Command) => {
      const { tenant, name } = tenantAndName(text, options.tenant, 'app');
      await steer(command, 'POST /v1/apps/:tenant/:name/abort', { tenant, name });
    });

  program
    .command('rebalance')
    .description('even out instances over the nodes, one move at a time, never below the healthy count')
    .argument('[name]', 'one app, as NAME or TENANT/NAME (default: every app, or every app of --tenant)')
    .addOption(tenantOption('the tenant of NAME, or alone: every app of the tenant'))
    .addHelpText('after', '\nExamples:\n  hivemind rebalance\n  hivemind rebalance web\n  hivemind rebalance --tenant acme')
    .action(async (text: string | undefined, options: { tenant?: string }, command: Command) => {
      const context = contextOf(command);
      const body = text === undefined ? (options.tenant === undefined ? {} : { tenant: options.tenant }) : tenantAndName(text, options.tenant, 'app');
      await withClient(context, async (client) => {
        const { body: answer } = await client.call('POST /v1/rebalance', { body });
        if (context.json) return printJson(context, answer);
        const count = answer.apps;
        printLine(context, `rebalance asked for ${typeof count === 'number' ? `${count} app${count === 1 ? '' : 's'}` : 'the apps'}; \`hivemind app NAME\` shows its progress`);
      });
    });
}

/** Posts a promote or abort and prints the rollout it left. */
async function steer(command: Command, route: 'POST /v1/apps/:tenant/:name/promote' | 'POST /v1/apps/:tenant/:name/abort', app: { tenant: string; name: string }): Promise<void> {
  const context = contextOf(command);
  const what = `app ${app.tenant}/${app.name}`;
  await withClient(context, async (client) => {
    const { body } = await client.call(route, { params: app });
    if (context.json) return printJson(context, body);
    const rollout = body.rollout;
    printLine(context, rollout === undefined ? `${what}: done` : `${what}: ${rollout.message}`);
  });
}
