/**
 * `validate -f FILE`: reads app files the way `deploy` does (merged files,
 * `.env`, `--env-file`, `--set`, `--profile`, the files they name) and checks
 * them on this machine, without a node: every error with its file and path,
 * the warnings, and what each service becomes. Exits 1 when a file has
 * errors, so it fits in CI before a deploy.
 */
import type { Command } from 'commander';
import type { AppSpec } from '../../state/types.js';
import { contextOf } from '../context.js';
import { CliError } from '../errors.js';
import { printJson, printLine, printTable } from '../output.js';
import { addAppFileOptions, gatherAppFiles, type AppFileFlags } from './app-file-input.js';

/** Adds `validate` to `program`. */
export function registerValidateCommand(program: Command): void {
  const command = program.command('validate').description('check app files offline, as deploy reads them: errors, warnings, and the apps they make');
  addAppFileOptions(command)
    .addHelpText('after', ['', 'Examples:', '  hivemind validate -f compose.yaml', '  hivemind validate -f compose.yaml -f compose.prod.yaml --env-file prod.env'].join('\n'))
    .action(async (options: AppFileFlags, command: Command) => {
      const context = contextOf(command);
      const input = await gatherAppFiles(options);
      const { formatAppFileProblem, parseAppFiles } = await import('../../appfile/index.js');
      const result = parseAppFiles(input.sources, input.options);
      if (context.json) printJson(context, result);
      for (const warning of result.warnings) context.stderr.write(`warning: ${warning}\n`);
      const label = input.sources.map((source) => source.name).join(' + ');
      if (!result.ok) {
        throw new CliError(`${label}: ${result.errors.length} error${result.errors.length === 1 ? '' : 's'}; a deploy would deploy nothing`, { details: result.errors.map(formatAppFileProblem) });
      }
      if (context.json) return;
      if (result.project !== undefined) printLine(context, `project ${result.project}`);
      printTable(
        context,
        ['app', 'tenant', 'runs', 'replicas', 'ports'],
        result.apps.map((app) => [app.name, app.tenant, runs(app), result.globalServices.includes(app.name) ? 'one per node' : app.replicas, ports(app)]),
      );
      printLine(context, `${label} is valid: ${result.apps.length} app${result.apps.length === 1 ? '' : 's'}`);
    });
}

function runs(app: AppSpec): string {
  const text = app.image ?? (app.command ?? []).join(' ');
  return text.length > 48 ? `${text.slice(0, 45)}...` : text;
}

function ports(app: AppSpec): string {
  return app.ports.map((port) => (port.published === undefined ? `${port.target}/${port.protocol}` : `${port.published}:${port.target}/${port.protocol}`)).join(', ') || '-';
}
