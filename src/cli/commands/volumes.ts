/**
 * `volumes`: list, create, delete a tenant's named volumes; snapshots,
 * backups and restores of their files; moving one to another node.
 */
import { InvalidArgumentError, Option, type Command } from 'commander';
import type { VolumeIoLimits } from '../../state/types.js';
import { formatBytes } from '../../state/errors.js';
import { byteProgress } from '../progress.js';
import { listIn } from '../answers.js';
import type { AnswerOf } from '../../api/contract.js';
import type { ApiClient } from '../client.js';
import { contextOf, withClient, type CliContext } from '../context.js';
import { CliError, UsageError } from '../errors.js';
import { ago, printJson, printLine, printTable } from '../output.js';
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
        const { body } = await client.call('GET /v1/volumes', { query: { tenant: options.tenant } });
        if (context.json) return printJson(context, body);
        // A volume has a node once an instance first used it there, and a used size once that node reported it; "-" until then.
        const rows = listIn(body, 'volumes').map((volume) => [
          volume.tenant,
          volume.name,
          formatBytes(volume.sizeBytes),
          volume.usedBytes === undefined ? '-' : formatBytes(volume.usedBytes),
          volume.moving === undefined ? (volume.node ?? '-') : `${volume.node ?? '-'} -> ${volume.moving}`,
          volume.encrypted === true ? 'yes' : 'no',
          (volume.users ?? []).join(',') || '-',
        ]);
        printTable(context, ['tenant', 'name', 'size', 'used', 'node', 'encrypted', 'users'], rows, 'no volumes');
      });
    });

  const create = volumes
    .command('create')
    .description('create a named volume')
    .argument('<name>', 'the volume, as NAME or TENANT/NAME')
    .addOption(new Option('--size <size>', 'its size, such as 1G or 512M').argParser(parseSizeOption).makeOptionMandatory())
    .addOption(new Option('--encrypted', 'keep its files encrypted at rest (gocryptfs; its key sealed in the cluster state); always so in a tenant made with --encrypt-volumes'))
    .addOption(new Option('--node <node>', 'the node that holds it (default: the node of the first instance that mounts it)'))
    .addOption(tenantOption(TENANT_OF_ONE));
  addIoOptions(create).action(async (text: string, options: { size: number; tenant?: string; encrypted?: boolean; node?: string } & IoOptions, command: Command) => {
    const { tenant, name } = tenantAndName(text, options.tenant, 'volume');
    const io = ioOf(options);
    const body = { sizeBytes: options.size, ...(Object.keys(io).length > 0 ? { io } : {}), ...(options.encrypted === true ? { encrypted: true } : {}), ...(options.node !== undefined ? { node: options.node } : {}) };
    const encrypted = (options.encrypted === true ? ', encrypted' : '') + (options.node !== undefined ? `, on node ${options.node}` : '');
    await writeAndReport(command, (client) => client.call('PUT /v1/volumes/:tenant/:name', { params: { tenant, name }, body }), `volume ${tenant}/${name} created (${formatBytes(options.size)}${encrypted})`);
  });

  const io = volumes
    .command('io')
    .description("set a volume's I/O limits (each workload that mounts it, from its next start); without limits, removes them")
    .argument('<name>', 'the volume, as NAME or TENANT/NAME')
    .addOption(tenantOption(TENANT_OF_ONE))
    .addHelpText('after', '\nExamples:\n  hivemind volumes io data --write-bps 50M --write-iops 500\n  hivemind volumes io data');
  addIoOptions(io).action(async (text: string, options: { tenant?: string } & IoOptions, command: Command) => {
    const { tenant, name } = tenantAndName(text, options.tenant, 'volume');
    const limits = ioOf(options);
    await writeAndReport(command, (client) => client.call('PUT /v1/volumes/:tenant/:name/io', { params: { tenant, name }, body: { io: limits } }), Object.keys(limits).length > 0 ? `volume ${tenant}/${name}: I/O limits set (from each workload's next start)` : `volume ${tenant}/${name}: I/O limits removed`);
  });

  volumes
    .command('snapshot')
    .description("take a snapshot of a volume: a consistent copy kept on its node (the volume's filesystem is frozen for the moment the copy takes)")
    .argument('<name>', 'the volume, as NAME or TENANT/NAME')
    .addOption(tenantOption(TENANT_OF_ONE))
    .action(async (text: string, options: { tenant?: string }, command: Command) => {
      const { tenant, name } = tenantAndName(text, options.tenant, 'volume');
      const context = contextOf(command);
      await withClient(context, async (client) => {
        const { body } = await client.call('POST /v1/volumes/:tenant/:name/snapshots', { params: { tenant, name } });
        if (context.json) return printJson(context, body);
        printLine(context, `snapshot ${body.snapshot.id} of volume ${tenant}/${name} taken on node ${body.node} (${formatBytes(body.snapshot.usedBytes)} on disk)`);
      });
    });

  volumes
    .command('snapshots')
    .description("list a volume's snapshots, with their sizes and ages")
    .argument('<name>', 'the volume, as NAME or TENANT/NAME')
    .addOption(tenantOption(TENANT_OF_ONE))
    .action(async (text: string, options: { tenant?: string }, command: Command) => {
      const { tenant, name } = tenantAndName(text, options.tenant, 'volume');
      const context = contextOf(command);
      await withClient(context, async (client) => {
        const { body } = await client.call('GET /v1/volumes/:tenant/:name/snapshots', { params: { tenant, name } });
        if (context.json) return printJson(context, body);
        const rows = listIn(body, 'snapshots').map((snapshot) => [snapshot.id, formatBytes(snapshot.sizeBytes), formatBytes(snapshot.usedBytes), ago(snapshot.takenAtMs)]);
        printTable(context, ['id', 'size', 'used', 'age'], rows, 'no snapshots');
      });
    });

  volumes
    .command('snapshot-rm')
    .description('delete a snapshot of a volume')
    .argument('<name>', 'the volume, as NAME or TENANT/NAME')
    .argument('<id>', 'the snapshot, as `volumes snapshots` lists it')
    .addOption(tenantOption(TENANT_OF_ONE))
    .action(async (text: string, id: string, options: { tenant?: string }, command: Command) => {
      const { tenant, name } = tenantAndName(text, options.tenant, 'volume');
      await writeAndReport(command, (client) => client.call('DELETE /v1/volumes/:tenant/:name/snapshots/:id', { params: { tenant, name, id } }), `snapshot ${id} of volume ${tenant}/${name} deleted`);
    });

  volumes
    .command('backup')
    .description("write a backup of a volume's files to stdout: a tar compressed with zstd, of a consistent copy taken now (or of a snapshot)")
    .argument('<name>', 'the volume, as NAME or TENANT/NAME')
    .addOption(new Option('--snapshot <id>', 'back up this snapshot instead of a copy taken now'))
    .addOption(tenantOption(TENANT_OF_ONE))
    .addHelpText('after', '\nExamples:\n  hivemind volumes backup data > data.tar.zst\n  tar --zstd -tvf data.tar.zst')
    .action(async (text: string, options: { tenant?: string; snapshot?: string }, command: Command) => {
      const { tenant, name } = tenantAndName(text, options.tenant, 'volume');
      const context = contextOf(command);
      if (isTerminalStream(context.stdout)) throw new UsageError('a backup is binary: redirect stdout to a file (`hivemind volumes backup NAME > NAME.tar.zst`)');
      await withClient(context, async (client) => {
        const { body } = await client.stream('GET /v1/volumes/:tenant/:name/backup', { params: { tenant, name }, query: options.snapshot === undefined ? {} : { snapshot: options.snapshot } });
        const progress = byteProgress({ stream: context.stderr, json: context.json, label: `backup of ${tenant}/${name}` });
        try {
          for await (const chunk of body) {
            progress.add(chunk.length);
            if (!context.stdout.write(chunk)) await new Promise((resolve) => context.stdout.once('drain', resolve));
          }
        } finally {
          progress.stop();
        }
      });
    });

  volumes
    .command('restore')
    .description('restore a backup (from stdin) into a new volume; it is created here with --size, or must exist and hold no files yet')
    .argument('<name>', 'the new volume, as NAME or TENANT/NAME')
    .addOption(new Option('--size <size>', 'create the volume first, of this size, such as 1G or 512M').argParser(parseSizeOption))
    .addOption(new Option('--node <node>', 'the node to restore it on (default: the node the CLI talks to)'))
    .addOption(tenantOption(TENANT_OF_ONE))
    .addHelpText('after', '\nExamples:\n  hivemind volumes restore data-copy --size 10G < data.tar.zst')
    .action(async (text: string, options: { tenant?: string; size?: number; node?: string }, command: Command) => {
      const { tenant, name } = tenantAndName(text, options.tenant, 'volume');
      const context = contextOf(command);
      if (process.stdin.isTTY) throw new UsageError('a restore reads the backup from stdin: `hivemind volumes restore NAME --size SIZE < NAME.tar.zst`');
      await withClient(context, async (client) => {
        // The restore waits on its node until the creation is applied there.
        const created = options.size !== undefined ? await client.call('PUT /v1/volumes/:tenant/:name', { params: { tenant, name }, body: { sizeBytes: options.size } }) : undefined;
        const query = { ...(options.node === undefined ? {} : { node: options.node }), ...(created?.index === undefined ? {} : { index: created.index }) };
        try {
          const { body } = await client.stream('PUT /v1/volumes/:tenant/:name/restore', { params: { tenant, name }, query }, { body: process.stdin, contentType: 'application/zstd' });
          const answer = JSON.parse(Buffer.concat(await collect(body)).toString('utf8')) as { node: string };
          if (context.json) return printJson(context, answer);
          printLine(context, `volume ${tenant}/${name} restored on node ${answer.node}`);
        } catch (error) {
          // The volume this command made goes again: a failed restore leaves nothing behind.
          if (options.size !== undefined) await client.call('DELETE /v1/volumes/:tenant/:name', { params: { tenant, name } }).catch(() => undefined);
          throw error;
        }
      });
    });

  volumes
    .command('move')
    .description("move a volume's data to another node: the instances that mount it stop, its files are copied, and they start again on that node")
    .argument('<name>', 'the volume, as NAME or TENANT/NAME')
    .addOption(new Option('--to <node>', 'the node to move it to').makeOptionMandatory())
    .addOption(tenantOption(TENANT_OF_ONE))
    .action(async (text: string, options: { tenant?: string; to: string }, command: Command) => {
      const { tenant, name } = tenantAndName(text, options.tenant, 'volume');
      const context = contextOf(command);
      await withClient(context, (client) => moveVolume(context, client, { tenant, name, to: options.to }));
    });

  volumes
    .command('delete')
    .alias('rm')
    .description('delete a volume and its data (refused while an app uses it; its node frees the space once no instance holds it)')
    .argument('<name>', 'the volume, as NAME or TENANT/NAME')
    .addOption(tenantOption(TENANT_OF_ONE))
    .action(async (text: string, options: { tenant?: string }, command: Command) => {
      const { tenant, name } = tenantAndName(text, options.tenant, 'volume');
      await writeAndReport(command, (client) => client.call('DELETE /v1/volumes/:tenant/:name', { params: { tenant, name } }), `volume ${tenant}/${name} deleted`);
    });
}

function isTerminalStream(stream: NodeJS.WritableStream): boolean {
  return (stream as NodeJS.WriteStream).isTTY === true;
}

async function collect(body: AsyncIterable<Uint8Array>): Promise<Buffer[]> {
  const chunks: Buffer[] = [];
  for await (const chunk of body) chunks.push(Buffer.from(chunk));
  return chunks;
}

/**
 * `volumes move`: starts the move (its instances stop), has the source copy
 * the files to the target, then ends the move there, or back on the source
 * when the copy failed (the instances start again where the data is).
 * Running it again after an interruption picks the move up.
 */
async function moveVolume(context: CliContext, client: ApiClient, volume: { tenant: string; name: string; to: string }): Promise<void> {
  const params = { tenant: volume.tenant, name: volume.name };
  const { body: started, index } = await client.call('POST /v1/volumes/:tenant/:name/move', { params, body: { to: volume.to } });
  if (!context.json) printLine(context, `moving volume ${volume.tenant}/${volume.name} from node ${started.from} to ${volume.to}${started.stopped.length > 0 ? ` (stopping ${started.stopped.join(', ')})` : ''}`);
  let copied: AnswerOf<'POST /v1/volumes/:tenant/:name/move/copy'>;
  try {
    // Both ends wait until they have applied the move.
    const { body } = await client.stream('POST /v1/volumes/:tenant/:name/move/copy', { params, query: index === undefined ? {} : { index } });
    copied = JSON.parse(Buffer.concat(await collect(body)).toString('utf8')) as typeof copied;
  } catch (error) {
    await client.call('POST /v1/volumes/:tenant/:name/move/end', { params, body: { node: started.from } }).catch(() => undefined);
    throw new CliError(`the copy to node ${volume.to} failed, so volume ${volume.tenant}/${volume.name} stays on node ${started.from}: ${(error as Error).message}`);
  }
  const { body: ended } = await client.call('POST /v1/volumes/:tenant/:name/move/end', { params, body: { node: volume.to } });
  if (context.json) return printJson(context, { from: started.from, to: volume.to, stopped: started.stopped, archiveBytes: copied.archiveBytes, result: ended });
  printLine(context, `volume ${volume.tenant}/${volume.name} moved to node ${volume.to} (${formatBytes(copied.archiveBytes)} sent); its instances start there`);
}

interface IoOptions {
  readBps?: number;
  writeBps?: number;
  readIops?: number;
  writeIops?: number;
}

function addIoOptions(command: Command): Command {
  return command
    .addOption(new Option('--read-bps <size>', 'read at most this many bytes per second, such as 50M').argParser(parseSizeOption))
    .addOption(new Option('--write-bps <size>', 'write at most this many bytes per second, such as 50M').argParser(parseSizeOption))
    .addOption(new Option('--read-iops <count>', 'at most this many reads per second').argParser(parseCountOption))
    .addOption(new Option('--write-iops <count>', 'at most this many writes per second').argParser(parseCountOption));
}

function parseCountOption(text: string): number {
  if (!/^[1-9]\d{0,12}$/.test(text)) throw new InvalidArgumentError(`expected a whole number of operations per second, such as 500, got ${JSON.stringify(text)}`);
  return Number(text);
}

function ioOf(options: IoOptions): VolumeIoLimits {
  return {
    ...(options.readBps !== undefined ? { readBytesPerSecond: options.readBps } : {}),
    ...(options.writeBps !== undefined ? { writeBytesPerSecond: options.writeBps } : {}),
    ...(options.readIops !== undefined ? { readIops: options.readIops } : {}),
    ...(options.writeIops !== undefined ? { writeIops: options.writeIops } : {}),
  };
}
