/**
 * `image`: the images in the containerd of the node the CLI talks to:
 * list them, import an OCI image layout archive, pull from a registry.
 */
import { createReadStream, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { Option, type Command } from 'commander';
import { listIn } from '../answers.js';
import { RawBody } from '../client.js';
import { byteProgress, counted } from '../progress.js';
import { CliError } from '../errors.js';
import { contextOf, withClient } from '../context.js';
import { printJson, printLine, printTable } from '../output.js';

function sizeText(bytes: number): string {
  if (bytes >= 1024 * 1024) return `${(bytes / (1024 * 1024)).toFixed(1)} MiB`;
  if (bytes >= 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${bytes} B`;
}

/** Adds `image` (ls, import, pull) to `program`. */
export function registerImageCommands(program: Command): void {
  const image = program
    .command('image')
    .description("the node's container images (in its containerd)")
    .addHelpText('after', '\nExamples:\n  hivemind image import busybox.tar --name hivemind.local/busybox:latest\n  hivemind image pull registry.example.com/team/web:1.4\n  hivemind image ls');

  image
    .command('ls', { isDefault: true })
    .alias('list')
    .description("list the node's images")
    .action(async (_options: unknown, command: Command) => {
      const context = contextOf(command);
      await withClient(context, async (client) => {
        const { body } = await client.call('GET /v1/images');
        if (context.json) return printJson(context, body);
        const rows = listIn(body, 'images').map((entry) => [entry.name, entry.digest.slice(0, 19), sizeText(entry.sizeBytes)]);
        printTable(context, ['name', 'digest', 'size'], rows, 'no images');
      });
    });

  image
    .command('import')
    .description('import an OCI image layout archive (a tar) into the node the CLI talks to (the file is sent to it)')
    .argument('<file>', 'the archive, on the machine the CLI runs on')
    .addOption(new Option('--name <ref>', 'the name to give the image (default: the name inside the archive)'))
    .action(async (file: string, options: { name?: string }, command: Command) => {
      const context = contextOf(command);
      const path = resolve(file);
      let bytes: number;
      try {
        const stat = statSync(path);
        if (!stat.isFile()) throw new Error('not a regular file');
        bytes = stat.size;
      } catch (error) {
        throw new CliError(`cannot import ${file}: ${(error as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (error as Error).message}`);
      }
      await withClient(context, async (client) => {
        const progress = byteProgress({ stream: context.stderr, json: context.json, label: `sending ${file}`, totalBytes: bytes });
        // Each try reads the file afresh (a retry starts the count over).
        const archive = new RawBody('application/x-tar', bytes, () => {
          progress.restart();
          return counted(createReadStream(path), progress);
        });
        const { body } = await client.upload('POST /v1/images/upload', archive, options.name !== undefined ? { name: options.name } : {}).finally(() => progress.stop());
        if (context.json) return printJson(context, body);
        for (const name of listIn(body, 'images')) printLine(context, `imported ${name}`);
      });
    });

  image
    .command('pull')
    .description('pull an image from its registry into the node (HTTPS; plain HTTP for loopback registries)')
    .argument('<ref>', 'the image reference, such as registry.example.com/team/web:1.4')
    .action(async (reference: string, _options: unknown, command: Command) => {
      const context = contextOf(command);
      await withClient(context, async (client) => {
        const { body } = await client.call('POST /v1/images/pull', { body: { ref: reference } });
        if (context.json) return printJson(context, body);
        for (const name of listIn(body, 'images')) printLine(context, `pulled ${name}`);
      });
    });
}
