/**
 * `tokens` (create, ls, revoke: API tokens with a role in some tenants) and
 * `audit` (the audit log of the node asked). docs/cli.md, Access.
 */
import { InvalidArgumentError, Option, type Command } from 'commander';
import type { ApiRole } from '../../state/types.js';
import { NAME_PATTERN } from '../../state/types.js';
import { listIn, objectOf } from '../answers.js';
import { contextOf, withClient } from '../context.js';
import { UsageError } from '../errors.js';
import { printJson, printLine, printTable, renderTable, shorten, timestamp } from '../output.js';
import { wholeNumber } from '../parse.js';

const ROLES: readonly ApiRole[] = ['cluster-admin', 'tenant-admin', 'deployer', 'viewer'];
const DURATION_UNITS_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** `--expires 30d`: a duration (`90s`, `30m`, `12h`, `30d`) in milliseconds. */
export function parseExpiresOption(text: string): number {
  const match = /^(\d{1,6})(s|m|h|d)$/.exec(text.trim());
  if (match === null || Number(match[1]) === 0) throw new InvalidArgumentError('must be a duration such as 12h or 30d');
  return Number(match[1]) * DURATION_UNITS_MS[match[2]!]!;
}

/** `--since 1h`: a duration back from now, or an ISO 8601 time (passed on to the node as is). */
function parseSinceOption(text: string): string {
  if (/^\d{1,9}(s|m|h|d)$/.test(text) || /^\d{4}-\d{2}-\d{2}/.test(text)) return text;
  throw new InvalidArgumentError('must be a duration back from now (30m, 1h, 7d) or an ISO 8601 time');
}

/** Adds `tokens` and `audit` to `program`. */
export function registerTokenCommands(program: Command): void {
  const tokens = program
    .command('tokens')
    .description('API tokens: who may use the API, with which role, in which tenants (cluster-admin only)')
    .addHelpText('after', '\nExamples:\n  hivemind tokens create --name ci --role deployer --tenant acme --expires 30d\n  hivemind tokens create --name grafana --role viewer\n  hivemind tokens ls\n  hivemind tokens revoke 3f2a9c1b7d04');

  tokens
    .command('create')
    .description('create an API token and print it (shown once: only its hash is kept)')
    .requiredOption('--name <name>', 'who or what the token is for (a user, a robot): history and the audit log name it')
    .addOption(new Option('--role <role>', 'what it may do').choices(ROLES).makeOptionMandatory())
    .addOption(new Option('--tenant <tenant...>', 'the tenants it acts in (repeat or list them); a viewer or cluster-admin without one: every tenant'))
    .addOption(new Option('--expires <duration>', 'refused after this long, such as 12h or 30d (default: never)').argParser(parseExpiresOption))
    .action(async (options: { name: string; role: ApiRole; tenant?: string[]; expires?: number }, command: Command) => {
      const tenants = options.tenant?.flatMap((text) => text.split(',')).filter((text) => text !== '');
      for (const tenant of tenants ?? []) {
        if (tenant !== '*' && !NAME_PATTERN.test(tenant)) throw new UsageError(`--tenant ${JSON.stringify(tenant)} is not a tenant name`);
      }
      if ((options.role === 'deployer' || options.role === 'tenant-admin') && (tenants === undefined || tenants.length === 0)) {
        throw new UsageError(`a ${options.role} token needs --tenant: the tenants it acts in`);
      }
      const context = contextOf(command);
      await withClient(context, async (client) => {
        const { body } = await client.call('POST /v1/tokens', {
          body: {
            name: options.name,
            role: options.role,
            ...(tenants === undefined || tenants.length === 0 ? {} : { tenants }),
            ...(options.expires === undefined ? {} : { expiresAt: Date.now() + options.expires }),
          },
        });
        if (context.json) return printJson(context, body);
        const created = objectOf(body, 'a token');
        const expiry = created.expiresAt === undefined ? 'never expires' : `expires ${timestamp(created.expiresAt)}`;
        printLine(context, `token ${created.id} "${created.name}": ${created.role} in ${created.tenants.join(', ')}, ${expiry}`);
        if (created.token === null) printLine(context, 'this was a retry of a create that succeeded: its token was shown then; revoke it and create another if it was lost');
        else printLine(context, created.token);
      });
    });

  tokens
    .command('ls', { isDefault: true })
    .alias('list')
    .description('list the API tokens (never their values)')
    .action(async (_options: unknown, command: Command) => {
      const context = contextOf(command);
      await withClient(context, async (client) => {
        const { body } = await client.call('GET /v1/tokens');
        if (context.json) return printJson(context, body);
        const rows = listIn(body, 'tokens').map((token) => [
          token.id,
          token.name,
          token.role,
          token.tenants.join(','),
          token.expiresAt === undefined ? 'never' : `${timestamp(token.expiresAt)}${token.expired ? ' (expired)' : ''}`,
          timestamp(token.createdAt),
          token.createdBy,
        ]);
        printTable(context, ['id', 'name', 'role', 'tenants', 'expires', 'created', 'by'], rows, 'no API tokens');
      });
    });

  tokens
    .command('revoke')
    .description('revoke an API token: every node refuses it once it applied the revocation')
    .argument('<id>', 'the token\'s id (`hivemind tokens ls`)')
    .action(async (id: string, _options: unknown, command: Command) => {
      const context = contextOf(command);
      await withClient(context, async (client) => {
        const { body } = await client.call('DELETE /v1/tokens/:id', { params: { id } });
        if (context.json) return printJson(context, body);
        printLine(context, `token ${id} revoked`);
      });
    });

  program
    .command('audit')
    .description('show the audit log of the node asked: writes and refused requests, who made them, from where, the outcome')
    .option('--tenant <tenant>', 'only requests that touched this tenant')
    .option('--user <name>', 'only requests of this user (the token\'s name)')
    .addOption(new Option('--since <when>', 'only since then: 30m, 1h, 7d, or an ISO 8601 time').argParser(parseSinceOption))
    .addOption(new Option('-n, --limit <count>', 'at most this many, the newest').argParser(wholeNumber(1)).default(100))
    .option('--all', 'gather the records of every node, not only of the node asked')
    .addHelpText('after', '\nEach node records the requests it was sent; --all gathers every node\'s.\n\nExamples:\n  hivemind audit --since 1h\n  hivemind audit --all --tenant acme --user ci --json')
    .action(async (options: { tenant?: string; user?: string; since?: string; limit: number; all?: boolean }, command: Command) => {
      const context = contextOf(command);
      await withClient(context, async (client) => {
        const { body } = await client.call('GET /v1/audit', { query: { tenant: options.tenant, user: options.user, since: options.since, limit: options.limit, all: options.all ? true : undefined } });
        if (context.json) return printJson(context, body);
        const rows = listIn(body, 'events').map((event) => [
          timestamp(Date.parse(event.stageTimestamp)),
          event.user.username,
          event.sourceIPs[0] ?? '',
          `${event.verb.toUpperCase()} ${shorten(event.requestURI, 50)}`,
          event.objectRef?.namespace ?? '-',
          `${event.annotations['hivemind/outcome'] ?? ''} ${event.responseStatus.code}`,
          event.annotations['hivemind/raft-index'] ?? '-',
          ...(options.all ? [`${event.annotations['hivemind/node'] ?? ''}${event.annotations['hivemind/forwarded'] === undefined ? '' : ' (forwarded)'}`] : []),
        ]);
        printLine(context, renderTable(context, ['time', 'user', 'from', 'request', 'tenant', 'outcome', 'index', ...(options.all ? ['node'] : [])], rows, 'no audit records'));
        for (const missing of body.unreachable ?? []) {
          context.stderr.write(`note: node ${missing.node} did not answer (${missing.reason}): its records are missing\n`);
        }
      });
    });
}
