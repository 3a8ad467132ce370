/**
 * `logs INSTANCE|APP`: an instance's log, or an app's instances' logs merged
 * with an `[instance-id]` prefix, through any node (the node forwards to the
 * one that runs the instance). `-f` follows new lines until Ctrl-C.
 */
import { Option, type Command } from 'commander';
import { routePath } from '../client.js';
import { contextOf, resolveToken } from '../context.js';
import { firstAnswering } from '../reachable.js';
import { ApiError, ConnectionError, describeNetworkError } from '../errors.js';
import { wholeNumber } from '../parse.js';
import { TENANT_OF_ONE, tenantOption } from './shared.js';

/** Instance ids are `tenant.app.slot.serial`; anything else names an app. */
const INSTANCE_ID = /^[a-z0-9-]+\.[a-z0-9-]+\.\d+(\.\d+)?$/;

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
      if (context.addresses.length > 1) context.address = await firstAnswering(context.addresses);
      let path: string;
      if (INSTANCE_ID.test(target)) path = routePath('GET /v1/instances/:id/logs', { id: target });
      else {
        const [tenant, name] = target.includes('/') ? target.split('/', 2) : [options.tenant ?? 'default', target];
        path = routePath('GET /v1/apps/:tenant/:name/logs', { tenant: tenant!, name: name! });
      }
      const { token, source } = resolveToken(context);
      const { request } = await import('undici');
      const query = new URLSearchParams({ tail: String(options.tail), follow: options.follow ? '1' : '0' });
      const abort = new AbortController();
      process.once('SIGINT', () => abort.abort());
      let response;
      try {
        response = await request(`${context.address}${path}?${query}`, {
          method: 'GET',
          headers: token ? { authorization: `Bearer ${token}` } : {},
          signal: abort.signal,
          headersTimeout: 30_000,
          bodyTimeout: 0,
        });
      } catch (error) {
        const { reason, code } = describeNetworkError(error);
        throw new ConnectionError(context.address, reason, code);
      }
      if (response.statusCode !== 200) {
        const text = await response.body.text();
        let parsed: { error?: { code?: string; message?: string } } | undefined;
        try {
          parsed = JSON.parse(text) as typeof parsed;
        } catch {
          parsed = undefined;
        }
        const code = parsed?.error?.code ?? `http-${response.statusCode}`;
        let message = parsed?.error?.message ?? `the node answered ${response.statusCode}`;
        if (code === 'unauthenticated') message = `${message} (${source}; pass --token or set HIVEMIND_TOKEN)`;
        throw new ApiError({ status: response.statusCode, code, message });
      }
      try {
        for await (const chunk of response.body) {
          if (!context.stdout.write(chunk)) await new Promise((resolve) => context.stdout.once('drain', resolve));
        }
      } catch (error) {
        if (!abort.signal.aborted) throw error;
      }
    });
}
