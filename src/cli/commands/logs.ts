/**
 * `logs INSTANCE|APP`: an instance's log, or an app's instances' logs merged
 * with an `[instance-id]` prefix, through any node (the node forwards to the
 * one that runs the instance). `-f` follows new lines until Ctrl-C.
 */
import { Option, type Command } from 'commander';
import { contextOf, withClient } from '../context.js';
import { wholeNumber } from '../parse.js';
import { TENANT_OF_ONE, tenantOption } from './shared.js';

/** Instance ids are `tenant.app.slot.serial`; anything else names an app. */
const INSTANCE_ID = /^[a-z0-9-]+\.[a-z0-9-]+\.\d+(\.\d+)?$/;

/** `NAME` (in `tenant`, default `default`) or `TENANT/NAME`. */
function appParams(target: string, tenant: string | undefined): { tenant: string; name: string } {
  const [first, second] = target.split('/', 2) as [string, string | undefined];
  return second === undefined ? { tenant: tenant ?? 'default', name: first } : { tenant: first, name: second };
}

/** Adds `logs` to `program`. */
export function registerLogsCommand(program: Command): void {
  program
    .command('logs')
    .description("show an instance's log, or every instance's log of an app (each line prefixed with its instance)")
    .argument('<target>', 'an instance id (tenant.app.slot.serial, from `hivemind app NAME`) or an app name (NAME or TENANT/NAME)')
    .option('-f, --follow', 'keep printing new lines as they are written (Ctrl-C to stop)')
    .addOption(new Option('-n, --tail <lines>', 'how many of the last lines to show first').argParser(wholeNumber(0)).default(200))
    .addOption(tenantOption(TENANT_OF_ONE))
    .addHelpText('after', '\nExamples:\n  hivemind logs web\n  hivemind logs acme/web -f\n  hivemind logs default.web.0.1 --tail 50')
    .action(async (target: string, options: { follow?: boolean; tail: number; tenant?: string }, command: Command) => {
      const context = contextOf(command);
      const query = { tail: options.tail, follow: options.follow ? '1' : '0' } as const;
      await withClient(context, async (client) => {
        const abort = new AbortController();
        const interrupt = (): void => abort.abort();
        process.once('SIGINT', interrupt);
        try {
          // Through the client: the node's certificate is checked against the cluster CA (--ca, the data directory, a context, or the token's pin).
          const { body } = INSTANCE_ID.test(target)
            ? await client.stream('GET /v1/instances/:id/logs', { params: { id: target }, query }, { signal: abort.signal })
            : await client.stream('GET /v1/apps/:tenant/:name/logs', { params: appParams(target, options.tenant), query }, { signal: abort.signal });
          for await (const chunk of body) {
            if (!context.stdout.write(chunk)) await new Promise((resolve) => context.stdout.once('drain', resolve));
          }
        } catch (error) {
          if (!abort.signal.aborted) throw error;
        } finally {
          process.removeListener('SIGINT', interrupt);
        }
      });
    });
}
