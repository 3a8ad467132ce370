/**
 * `deploy -f FILE`: send a Compose-style file to the node, show what it
 * deployed, and with `--wait` follow the new version's instances with
 * blocking queries until they all run (or `--timeout` passes).
 */
import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { Option, type Command } from 'commander';
import type { Instance } from '../../state/types.js';
import { listIn } from '../answers.js';
import type { ApiClient } from '../client.js';
import { contextOf, withClient, type CliContext } from '../context.js';
import { CliError, UsageError } from '../errors.js';
import { isTerminal, printJson, printLine, printTable } from '../output.js';
import { parseDurationOption } from '../parse.js';
import { readStdin } from '../stdin.js';
import { tenantOption } from './shared.js';
import { formatDurationMs } from '../../appfile/units.js';

/** The API refuses bodies over 4 MiB; a file near that is refused here, with its size. */
export const APP_FILE_BYTES_MAX = 4 * 1024 * 1024 - 64 * 1024;
/** How long `--wait` waits by default. */
export const DEPLOY_WAIT_MS_DEFAULT = 5 * 60_000;
/** How long each blocking query of `--wait` waits for a change. */
const WAIT_POLL_MS = 10_000;

/** One app of `POST /v1/deploy`'s answer. */
export interface DeployedApp {
  tenant: string;
  name: string;
  version: number;
  replicas: number;
}

interface DeployAnswer {
  apps: DeployedApp[];
  warnings?: string[];
}

interface DeployOptions {
  file: string;
  tenant?: string;
  wait?: boolean;
  detach?: boolean;
  timeout: number;
}

/** Instance states that count as up for `--wait`. */
const upStates = new Set(['running', 'healthy']);
/** Instance states that mean an instance stopped or failed; shown, and waited past (a restart may follow). */
const downStates = new Set(['exited', 'failed', 'oom-killed', 'stopped', 'unhealthy']);

/** Adds `deploy` to `program`. */
export function registerDeployCommand(program: Command): void {
  program
    .command('deploy')
    .description('deploy every service of a Compose-style app file (a file with errors deploys nothing)')
    .requiredOption('-f, --file <file>', "the app file ('-' reads it from stdin)")
    .addOption(tenantOption("the tenant to deploy into (default: the file's x-hivemind.tenant, else default)"))
    .option('--wait', 'wait until every instance of the new versions is running or healthy, showing progress')
    .addOption(new Option('--detach', 'return once the deploy is committed, without waiting (the default)').conflicts('wait'))
    .addOption(new Option('--timeout <duration>', 'how long --wait waits, such as 90s or 10m').argParser(parseDurationOption).default(DEPLOY_WAIT_MS_DEFAULT, '5m'))
    .addHelpText(
      'after',
      [
        '',
        'Examples:',
        '  hivemind deploy -f app.yaml',
        '  hivemind deploy -f app.yaml --tenant acme --wait --timeout 2m',
        '  cat app.yaml | hivemind deploy -f -',
      ].join('\n'),
    )
    .action(async (options: DeployOptions, command: Command) => {
      const context = contextOf(command);
      const { fileName, content } = await readAppFile(options.file);
      await withClient(context, async (client) => {
        const request = { fileName, content, ...(options.tenant === undefined ? {} : { tenant: options.tenant }) };
        const { body, index } = await client.post<DeployAnswer>('/v1/deploy', request);
        const apps = listIn<DeployedApp>(body, 'apps');
        if (context.json) printJson(context, body);
        else printDeployed(context, apps);
        for (const warning of body?.warnings ?? []) context.stderr.write(`warning: ${warning}\n`);
        if (options.wait && !options.detach) await waitForInstances(context, client, { apps, index: index ?? 0, timeoutMs: options.timeout });
      });
    });
}

async function readAppFile(file: string): Promise<{ fileName: string; content: string }> {
  if (file === '-') return { fileName: 'stdin', content: await readStdin({ bytesMax: APP_FILE_BYTES_MAX, what: 'the app file' }) };
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    if (code === 'ENOENT') throw new UsageError(`cannot read ${file}: no such file`);
    if (code === 'EISDIR') throw new UsageError(`cannot read ${file}: it is a directory; give the app file`);
    throw new UsageError(`cannot read ${file}: ${(error as Error).message}`);
  }
  if (bytes.length > APP_FILE_BYTES_MAX) throw new UsageError(`${file} is ${bytes.length} bytes; an app file may have at most ${APP_FILE_BYTES_MAX}`);
  return { fileName: basename(file), content: bytes.toString('utf8') };
}

function printDeployed(context: CliContext, apps: DeployedApp[]): void {
  if (apps.length === 0) return printLine(context, 'the file has no services; nothing was deployed');
  printTable(context, ['app', 'tenant', 'version', 'replicas'], apps.map((app) => [app.name, app.tenant, app.version, app.replicas]));
}

/** Progress of one app's new version: how many of its instances are up, and how the others are. */
interface Progress {
  app: DeployedApp;
  up: number;
  others: Map<string, number>;
}

function progressOf(apps: DeployedApp[], instances: Instance[]): Progress[] {
  return apps.map((app) => {
    const own = instances.filter((instance) => instance.tenant === app.tenant && instance.app === app.name && instance.version === app.version);
    const others = new Map<string, number>();
    let up = 0;
    for (const instance of own) {
      const state = instance.status?.state ?? 'pending';
      if (upStates.has(state)) up++;
      else {
        // JSON leaves an unplaced instance's `node` out (or null).
      const label = state === 'pending' && (instance.node === undefined || instance.node === null) ? 'not placed' : state;
        others.set(label, (others.get(label) ?? 0) + 1);
      }
    }
    return { app, up, others };
  });
}

function isDone(progress: Progress[]): boolean {
  return progress.every((each) => each.up >= each.app.replicas);
}

/** `web: 2/3 running (1 starting), api: 1/1 running`. */
export function progressLine(progress: Progress[]): string {
  return progress
    .map(({ app, up, others }) => {
      const rest = [...others].map(([state, count]) => `${count} ${state}`).join(', ');
      return `${app.name}: ${up}/${app.replicas} running${rest ? ` (${rest})` : ''}`;
    })
    .join(', ');
}

/**
 * Follows the instances of the deployed versions with blocking queries,
 * printing a progress line (on stderr) at each change, until every app has
 * its replicas up. Throws when `timeoutMs` passes first.
 */
async function waitForInstances(context: CliContext, client: ApiClient, init: { apps: DeployedApp[]; index: number; timeoutMs: number }): Promise<void> {
  const tenants = new Set(init.apps.map((app) => app.tenant));
  const query = tenants.size === 1 ? { tenant: [...tenants][0] } : {};
  const deadline = Date.now() + init.timeoutMs;
  const inPlace = isTerminal(context.stderr);
  let index = init.index;
  let shown = '';
  for (;;) {
    const waitMs = Math.max(1000, Math.min(WAIT_POLL_MS, deadline - Date.now()));
    const response = await client.get<unknown>('/v1/instances', query, { index, waitMs });
    index = response.index ?? index;
    const progress = progressOf(init.apps, listIn<Instance>(response.body, 'instances'));
    const line = progressLine(progress);
    if (line !== shown) {
      context.stderr.write(inPlace ? `\r\x1b[K${line}` : `${line}\n`);
      shown = line;
    }
    if (isDone(progress)) {
      if (inPlace) context.stderr.write('\n');
      return;
    }
    if (Date.now() >= deadline) {
      if (inPlace) context.stderr.write('\n');
      const hint = progress.some((each) => each.others.has('not placed')) ? ' Instances that are not placed wait for a node with room (see `hivemind nodes`).' : '';
      const failing = progress.some((each) => [...each.others.keys()].some((state) => downStates.has(state)));
      const failingHint = failing ? ' Some instances stopped or failed: `hivemind app NAME` shows why.' : '';
      throw new CliError(`gave up waiting after ${formatDurationMs(init.timeoutMs)}: ${line}. The deploy itself is committed.${hint}${failingHint}`);
    }
  }
}
