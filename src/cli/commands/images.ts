/**
 * `image`: the images in the containerd of the node the CLI talks to:
 * list them, import an OCI image layout archive, pull from a registry.
 */
import { resolve } from 'node:path';
import { Option, type Command } from 'commander';
import type { ImageSummary } from '../../executor/containerd/images.js';
import { listIn } from '../answers.js';
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
        const { body } = await client.get<unknown>('/v1/images');
        if (context.json) return printJson(context, body);
        const rows = listIn<ImageSummary>(body, 'images').map((entry) => [entry.name, entry.digest.slice(0, 19), sizeText(entry.sizeBytes)]);
        printTable(context, ['name', 'digest', 'size'], rows, 'no images');
      });
    });

  image
    .command('import')
    .description('import an OCI image layout archive (a tar) into the node; the file must be readable by the node (same machine)')
    .argument('<file>', 'the archive')
    .addOption(new Option('--name <ref>', 'the name to give the image (default: the name inside the archive)'))
    .action(async (file: string, options: { name?: string }, command: Command) => {
      const context = contextOf(command);
      await withClient(context, async (client) => {
        const { body } = await client.post<unknown>('/v1/images/import', { path: resolve(file), ...(options.name !== undefined ? { name: options.name } : {}) });
        if (context.json) return printJson(context, body);
        for (const name of listIn<string>(body, 'images')) printLine(context, `imported ${name}`);
      });
    });

  image
    .command('pull')
    .description('pull an image from its registry into the node (HTTPS; plain HTTP for loopback registries)')
    .argument('<ref>', 'the image reference, such as registry.example.com/team/web:1.4')
    .action(async (reference: string, _options: unknown, command: Command) => {
      const context = contextOf(command);
      await withClient(context, async (client) => {
        const { body } = await client.post<unknown>('/v1/images/pull', { ref: reference });
        if (context.json) return printJson(context, body);
        for (const name of listIn<string>(body, 'images')) printLine(context, `pulled ${name}`);
      });
    });
}
