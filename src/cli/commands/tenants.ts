/**
 * `tenants`: list, show, create, update, delete; quotas in people's units
 * (`--cpu 2 --memory 4G`).
 */
import { InvalidArgumentError, Option, type Command } from 'commander';
import { NAME_PATTERN, type Quota, type TenantSettings } from '../../state/types.js';
import { listIn, objectOf } from '../answers.js';
import type { ApiClient } from '../client.js';
import { contextOf, withClient, type CliContext } from '../context.js';
import { ApiError, CliError, UsageError } from '../errors.js';
import { limitText, printJson, printLine, printTable, renderFields, usageText } from '../output.js';
import { UNLIMITED, orUnlimited, parseCpuOption, parseSizeOption, wholeNumber } from '../parse.js';

/** A tenant as the API lists it: the record, with its usage. */
export interface TenantAnswer {
  name: string;
  quota: Quota;
  settings?: TenantSettings;
  usage?: Required<Quota>;
}

/** The settings flags: `allow` or `deny` each. */
interface SettingsOptions {
  hostUsers?: boolean;
  hostMounts?: boolean;
  encryptVolumes?: boolean;
}

function onOrOff(text: string): boolean {
  if (text === 'on') return true;
  if (text === 'off') return false;
  throw new InvalidArgumentError('must be on or off');
}

/** The quota flags as commander parses them: a number in the quota's unit, or `unlimited`. */
interface QuotaOptions {
  cpu?: number | typeof UNLIMITED;
  memory?: number | typeof UNLIMITED;
  instances?: number | typeof UNLIMITED;
  apps?: number | typeof UNLIMITED;
  volumes?: number | typeof UNLIMITED;
  storage?: number | typeof UNLIMITED;
}

/** Which quota field each flag sets. */
const quotaKeyByOption = {
  cpu: 'cpuMillis',
  memory: 'memoryBytes',
  instances: 'instances',
  apps: 'apps',
  volumes: 'volumes',
  storage: 'storageBytes',
} as const satisfies Record<keyof QuotaOptions, keyof Quota>;

const optionKeys = Object.keys(quotaKeyByOption) as (keyof QuotaOptions)[];

function addQuotaOptions(command: Command, liftable: boolean): Command {
  const lift = liftable ? " ('unlimited' lifts the limit)" : '';
  const wrap = <T>(parse: (text: string) => T) => (liftable ? orUnlimited(parse) : parse);
  return command
    .addOption(new Option('--cpu <cores>', `CPU cores, such as 2 or 0.5${lift}`).argParser(wrap(parseCpuOption)))
    .addOption(new Option('--memory <size>', `memory, such as 4G or 512M${lift}`).argParser(wrap(parseSizeOption)))
    .addOption(new Option('--instances <count>', `instances of all its apps together${lift}`).argParser(wrap(wholeNumber(0))))
    .addOption(new Option('--apps <count>', `apps${lift}`).argParser(wrap(wholeNumber(0))))
    .addOption(new Option('--volumes <count>', `volumes${lift}`).argParser(wrap(wholeNumber(0))))
    .addOption(new Option('--storage <size>', `volume storage, such as 10G${lift}`).argParser(wrap(parseSizeOption)));
}

function allowOrDeny(text: string): boolean {
  if (text === 'allow') return true;
  if (text === 'deny') return false;
  throw new InvalidArgumentError('must be allow or deny');
}

function addSettingsOptions(command: Command): Command {
  return command
    .addOption(new Option('--host-users <allow|deny>', "let process apps run as root or the host user their user: names, and image apps as root (default: deny; apps run as the tenant's own user)").argParser(allowOrDeny))
    .addOption(new Option('--host-mounts <allow|deny>', 'let apps bind host paths (default: deny; named volumes only)').argParser(allowOrDeny))
    .addOption(new Option('--encrypt-volumes <on|off>', "encrypt every volume created from now on at rest (default: off; volumes made before stay as they are)").argParser(onOrOff));
}

/** `base` with the settings flags applied; undefined when no flag was given (the tenant's settings stay). */
function settingsOf(base: TenantSettings | undefined, options: SettingsOptions): TenantSettings | undefined {
  if (options.hostUsers === undefined && options.hostMounts === undefined && options.encryptVolumes === undefined) return undefined;
  const settings: TenantSettings = { ...base };
  if (options.hostUsers !== undefined) settings.hostUsers = options.hostUsers;
  if (options.hostMounts !== undefined) settings.hostMounts = options.hostMounts;
  if (options.encryptVolumes !== undefined) settings.encryptVolumes = options.encryptVolumes;
  return settings;
}

function checkName(name: string): void {
  if (!NAME_PATTERN.test(name)) throw new UsageError(`tenant ${JSON.stringify(name)} is not a valid name (lowercase letters, digits and -, at most 63)`);
}

/** Adds `tenants` (list, show, create, update, delete) to `program`. */
export function registerTenantCommands(program: Command): void {
  const tenants = program
    .command('tenants')
    .description('list and manage tenants and their quotas')
    .addHelpText('after', '\nExamples:\n  hivemind tenants\n  hivemind tenants create acme --cpu 2 --memory 4G --instances 10\n  hivemind tenants update acme --memory unlimited\n  hivemind tenants delete acme');

  tenants
    .command('list', { isDefault: true })
    .description('list the tenants with their usage and quota (the default)')
    .action(async (_options: unknown, command: Command) => {
      const context = contextOf(command);
      await withClient(context, async (client) => {
        const { body } = await client.call('GET /v1/tenants');
        if (context.json) return printJson(context, body);
        printTenants(context, listIn(body, 'tenants'));
      });
    });

  tenants
    .command('show')
    .description('show one tenant: quota and usage')
    .argument('<name>', 'the tenant')
    .action(async (name: string, _options: unknown, command: Command) => {
      checkName(name);
      const context = contextOf(command);
      await withClient(context, async (client) => {
        const { body } = await client.call('GET /v1/tenants/:name', { params: { name } });
        if (context.json) return printJson(context, body);
        printLine(context, renderTenant(objectOf(body, 'a tenant')));
      });
    });

  addSettingsOptions(addQuotaOptions(
    tenants.command('create').description('create a tenant; a limit left out is unlimited').argument('<name>', 'the new tenant'),
    false,
  )).action(async (name: string, options: QuotaOptions & SettingsOptions, command: Command) => {
    checkName(name);
    const context = contextOf(command);
    await withClient(context, async (client) => {
      // PUT creates or updates; `create` must not change an existing tenant's quota by accident.
      if (await tenantExists(client, name)) throw new CliError(`tenant "${name}" already exists; change its quota with \`hivemind tenants update ${name}\``);
      const settings = settingsOf(undefined, options);
      const { body } = await client.call('PUT /v1/tenants/:name', { params: { name }, body: { quota: quotaOf({}, options), ...(settings ? { settings } : {}) } });
      if (context.json) return printJson(context, body);
      printLine(context, `tenant ${name} created`);
    });
  });

  addSettingsOptions(addQuotaOptions(
    tenants.command('update').description('change some limits or settings of a tenant; the others stay as they are').argument('<name>', 'the tenant'),
    true,
  )).action(async (name: string, options: QuotaOptions & SettingsOptions, command: Command) => {
    checkName(name);
    if (optionKeys.every((key) => options[key] === undefined) && options.hostUsers === undefined && options.hostMounts === undefined && options.encryptVolumes === undefined) {
      throw new UsageError('give at least one limit or setting to change, such as --memory 8G or --host-mounts allow (see `hivemind tenants update --help`)');
    }
    const context = contextOf(command);
    await withClient(context, async (client) => {
      const current = objectOf((await client.call('GET /v1/tenants/:name', { params: { name } })).body, 'a tenant');
      const settings = settingsOf(current.settings, options);
      const { body } = await client.call('PUT /v1/tenants/:name', { params: { name }, body: { quota: quotaOf(current.quota ?? {}, options), ...(settings ? { settings } : {}) } });
      if (context.json) return printJson(context, body);
      printLine(context, `tenant ${name} updated`);
      const over = body.overQuota ?? [];
      if (over.length > 0) {
        const what = over.map((each) => each.message).join('; ');
        context.stderr.write(`note: tenant ${name} now uses more than its quota (${what}); nothing is stopped, but it cannot grow\n`);
      }
    });
  });

  tenants
    .command('delete')
    .description('delete a tenant (refused while it has apps, volumes or secrets)')
    .argument('<name>', 'the tenant')
    .action(async (name: string, _options: unknown, command: Command) => {
      checkName(name);
      const context = contextOf(command);
      await withClient(context, async (client) => {
        const { body } = await client.call('DELETE /v1/tenants/:name', { params: { name } });
        if (context.json) return printJson(context, body);
        printLine(context, `tenant ${name} deleted`);
      });
    });
}

async function tenantExists(client: ApiClient, name: string): Promise<boolean> {
  try {
    await client.call('GET /v1/tenants/:name', { params: { name } });
    return true;
  } catch (error) {
    if (error instanceof ApiError && error.code === 'not-found') return false;
    throw error;
  }
}

/** `base` with the flags applied: a number sets a limit, `unlimited` lifts it. */
function quotaOf(base: Quota, options: QuotaOptions): Quota {
  const quota: Quota = { ...base };
  for (const key of optionKeys) {
    const value = options[key];
    if (value === UNLIMITED) delete quota[quotaKeyByOption[key]];
    else if (value !== undefined) quota[quotaKeyByOption[key]] = value;
  }
  return quota;
}

function printTenants(context: CliContext, tenants: TenantAnswer[]): void {
  const rows = tenants.map((tenant) => [
    tenant.name,
    usageText(tenant.usage?.apps, tenant.quota?.apps, 'count'),
    usageText(tenant.usage?.instances, tenant.quota?.instances, 'count'),
    usageText(tenant.usage?.cpuMillis, tenant.quota?.cpuMillis, 'cpu'),
    usageText(tenant.usage?.memoryBytes, tenant.quota?.memoryBytes, 'bytes'),
    usageText(tenant.usage?.volumes, tenant.quota?.volumes, 'count'),
    usageText(tenant.usage?.storageBytes, tenant.quota?.storageBytes, 'bytes'),
  ]);
  printTable(context, ['name', 'apps', 'instances', 'cpu', 'memory', 'volumes', 'storage'], rows, 'no tenants');
  if (rows.length > 0) printLine(context, '(used / limit; - is unlimited)');
}

function renderTenant(tenant: TenantAnswer): string {
  const line = (key: keyof Quota, unit: 'cpu' | 'bytes' | 'count'): string => {
    const limit = tenant.quota?.[key];
    return `${limitText(tenant.usage?.[key] ?? 0, unit)} used of ${limit === undefined ? 'no limit' : limitText(limit, unit)}`;
  };
  return renderFields([
    ['tenant', tenant.name],
    ['apps', line('apps', 'count')],
    ['instances', line('instances', 'count')],
    ['cpu', line('cpuMillis', 'cpu')],
    ['memory', line('memoryBytes', 'bytes')],
    ['volumes', line('volumes', 'count')],
    ['storage', line('storageBytes', 'bytes')],
    ['host users', tenant.settings?.hostUsers === true ? 'allowed' : 'denied (process apps run as the tenant\'s own user)'],
    ['host mounts', tenant.settings?.hostMounts === true ? 'allowed' : 'denied'],
    ['volumes encrypted', tenant.settings?.encryptVolumes === true ? 'yes (every new volume)' : 'no (unless created --encrypted)'],
  ]);
}
