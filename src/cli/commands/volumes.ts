/**
 * `volumes`: list, create, delete a tenant's named volumes.
 */
import { Option, type Command } from 'commander';
import type { Volume } from '../../state/types.js';
import { formatBytes } from '../../state/errors.js';
import { listIn } from '../answers.js';
import { apiPath } from '../client.js';
import { contextOf, withClient } from '../context.js';
import { printJson, printTable } from '../output.js';
import { parseSizeOption, tenantAndName } from '../parse.js';
import { TENANT_FILTER, TENANT_OF_ONE, tenantOption, writeAndReport } from './shared.js';

/** Adds `volumes` (list, create, delete) to `program`. */
export function registerVolumeCommands(program: Command): void {
  const volumes = program
    .command('volumes')
    .description("list and manage named volumes: node-local ext4 filesystems of a fixed size (counted against the tenant's storage quota)")
    .addHelpText('after', '\nExamples:\n  hivemind volumes\n  hivemind volumes create data --size 10G --tenant acme\n  hivemind volumes rm acme/data');

  volumes
    .command('list', { isDefault: true })
    .description('list the volumes (the default)')
    .addOption(tenantOption(TENANT_FILTER))
    .action(async (options: { tenant?: string }, command: Command) => {
      const context = contextOf(command);
      await withClient(context, async (client) => {
        const { body } = await client.get<unknown>('/v1/volumes', { tenant: options.tenant });
        if (context.json) return printJson(context, body);
        // A volume has a node once an instance first used it there; "-" until then.
        const rows = listIn<Volume>(body, 'volumes').map((volume) => [volume.tenant, volume.name, formatBytes(volume.sizeBytes), volume.node ?? '-']);
        printTable(context, ['tenant', 'name', 'size', 'node'], rows, 'no volumes');
      });
    });

  volumes
    .command('create')
    .description('create a named volume')
    .argument('<name>', 'the volume, as NAME or TENANT/NAME')
    .addOption(new Option('--size <size>', 'its size, such as 1G or 512M').argParser(parseSizeOption).makeOptionMandatory())
    .addOption(tenantOption(TENANT_OF_ONE))
    .action(async (text: string, options: { size: number; tenant?: string }, command: Command) => {
      const { tenant, name } = tenantAndName(text, options.tenant, 'volume');
      await writeAndReport(command, (client) => client.put(apiPath('v1', 'volumes', tenant, name), { sizeBytes: options.size }), `volume ${tenant}/${name} created (${formatBytes(options.size)})`);
    });

  volumes
    .command('delete')
    .alias('rm')
    .description('delete a volume and its data (refused while an app uses it; its node frees the space once no instance holds it)')
    .argument('<name>', 'the volume, as NAME or TENANT/NAME')
    .addOption(tenantOption(TENANT_OF_ONE))
    .action(async (text: string, options: { tenant?: string }, command: Command) => {
      const { tenant, name } = tenantAndName(text, options.tenant, 'volume');
      await writeAndReport(command, (client) => client.delete(apiPath('v1', 'volumes', tenant, name)), `volume ${tenant}/${name} deleted`);
    });
}
