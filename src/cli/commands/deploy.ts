/**
 * `deploy -f FILE`: send a Compose-style file to the node, show what it
 * deployed, then (unless `--detach`) follow it with blocking queries: an
 * update's rollout until it ends (succeeded, rolled back, paused, or waiting
 * for `hivemind promote`), a first deploy's instances until they all run; it
 * ends with the result, or gives up at `--timeout`.
 */
import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { Option, type Command } from 'commander';
import type { Instance, Rollout } from '../../state/types.js';
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
  /** The id of the rollout the deploy started, when it updated running instances. */
  rollout?: number;
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
    .option('--wait', 'follow the rollout (or the new instances) until it ends, showing progress (the default)')
    .addOption(new Option('--detach', 'return once the deploy is committed, without following it').conflicts('wait'))
    .addOption(new Option('--timeout <duration>', 'how long to follow, such as 90s or 10m').argParser(parseDurationOption).default(DEPLOY_WAIT_MS_DEFAULT, '5m'))
    .addHelpText(
      'after',
      [
        '',
        'Examples:',
        '  hivemind deploy -f app.yaml',
        '  hivemind deploy -f app.yaml --tenant acme --timeout 2m',
        '  hivemind deploy -f app.yaml --detach',
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
        // With --json the answer is the output: follow only when --wait asks for it (progress on stderr, outcome lines after the JSON).
        if (options.detach || apps.length === 0 || (context.json && !options.wait)) return;
        const withRollout = apps.filter((app) => app.rollout !== undefined);
        const fresh = apps.filter((app) => app.rollout === undefined);
        if (fresh.length > 0) await waitForInstances(context, client, { apps: fresh, index: index ?? 0, timeoutMs: options.timeout });
        if (withRollout.length > 0) await followRollouts(context, client, { apps: withRollout, index: index ?? 0, timeoutMs: options.timeout });
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
 * Follows `path` with blocking queries from `init.index`, printing the line
 * `read` makes of each answer on stderr when it changes (in place on a
 * terminal), until `read` says done (its `finish` runs) or `timeoutMs`
 * passes (`timedOut` makes the error, given the last line).
 */
async function follow<T>(
  context: CliContext,
  client: ApiClient,
  init: { apps: DeployedApp[]; index: number; timeoutMs: number; path: string },
  read: (body: unknown) => { line: string; done: boolean; state: T },
  outcome: { finish: (state: T) => void; timedOut: (line: string, state: T) => CliError },
): Promise<void> {
  const tenants = new Set(init.apps.map((app) => app.tenant));
  const query = tenants.size === 1 ? { tenant: [...tenants][0] } : {};
  const deadline = Date.now() + init.timeoutMs;
  const inPlace = isTerminal(context.stderr);
  let index = init.index;
  let shown = '';
  for (;;) {
    const waitMs = Math.max(1000, Math.min(WAIT_POLL_MS, deadline - Date.now()));
    const response = await client.get<unknown>(init.path, query, { index, waitMs });
    index = response.index ?? index;
    const { line, done, state } = read(response.body);
    if (line !== shown) {
      context.stderr.write(inPlace ? `\r\x1b[K${line}` : `${line}\n`);
      shown = line;
    }
    if (done || Date.now() >= deadline) {
      if (inPlace) context.stderr.write('\n');
      if (done) return outcome.finish(state);
      throw outcome.timedOut(line, state);
    }
  }
}

/**
 * Follows the instances of the deployed versions, printing progress at each
 * change, until every app has its replicas up. Throws when `timeoutMs`
 * passes first.
 */
function waitForInstances(context: CliContext, client: ApiClient, init: { apps: DeployedApp[]; index: number; timeoutMs: number }): Promise<void> {
  return follow(
    context,
    client,
    { ...init, path: '/v1/instances' },
    (body) => {
      const progress = progressOf(init.apps, listIn<Instance>(body, 'instances'));
      return { line: progressLine(progress), done: isDone(progress), state: progress };
    },
    {
      finish: () => undefined,
      timedOut: (line, progress) => {
        const hint = progress.some((each) => each.others.has('not placed')) ? ' Instances that are not placed wait for a node with room (see `hivemind nodes`).' : '';
        const failing = progress.some((each) => [...each.others.keys()].some((state) => downStates.has(state)));
        const failingHint = failing ? ' Some instances stopped or failed: `hivemind app NAME` shows why.' : '';
        return new CliError(`gave up waiting after ${formatDurationMs(init.timeoutMs)}: ${line}. The deploy itself is committed.${hint}${failingHint}`);
      },
    },
  );
}

/** An app as `GET /v1/apps` lists it: what following a rollout reads. */
interface AppWithRollout {
  tenant: string;
  name: string;
  version: number;
  rollout?: Rollout;
}

const rolloutEnds = new Set(['succeeded', 'rolled-back', 'superseded', 'paused', 'awaiting-promotion']);

/** `web: rolling update 1 → 2, running: updating slot 1 (1 of 3 done)`. */
export function rolloutLine(app: DeployedApp, rollout: Rollout | undefined): string {
  if (rollout !== undefined && rollout.id !== app.rollout && rollout.kind === 'rollback' && rollout.fromVersion === app.version) {
    return `${app.name}: version ${app.version} failed; ${rollout.message}`;
  }
  if (rollout === undefined || rollout.id !== app.rollout) return `${app.name}: superseded by a later deploy`;
  const what = rollout.kind === 'rollback' ? 'rollback' : `${rollout.strategy} update`;
  return `${app.name}: ${what} ${rollout.fromVersion} → ${rollout.toVersion}, ${rollout.state}: ${rollout.message}`;
}

/**
 * Follows the rollouts the deploy started (by their ids) until each ends:
 * succeeded, awaiting promotion (blue-green, canary), paused, or replaced by
 * a rollback (the update failed). Prints progress on stderr at each change
 * and the outcome of each on stdout; an update that failed is an error.
 */
function followRollouts(context: CliContext, client: ApiClient, init: { apps: DeployedApp[]; index: number; timeoutMs: number }): Promise<void> {
  return follow(
    context,
    client,
    { ...init, path: '/v1/apps' },
    (body) => {
      const listed = listIn<AppWithRollout>(body, 'apps');
      const states = init.apps.map((app) => {
        const found = listed.find((candidate) => candidate.tenant === app.tenant && candidate.name === app.name);
        return { app, rollout: found?.rollout, following: found?.rollout?.id === app.rollout };
      });
      // A rollback replaces the record (a new id): the update ended in failure, and the rollback's own progress is not followed.
      const done = states.every(({ rollout, following }) => !following || rollout === undefined || rolloutEnds.has(rollout.state));
      return { line: states.map(({ app, rollout }) => rolloutLine(app, rollout)).join('; '), done, state: states };
    },
    {
      finish: (states) => {
        const failures: string[] = [];
        for (const { app, rollout, following } of states) {
          const outcome = rolloutOutcome(app, following ? rollout : undefined, rollout);
          printLine(context, outcome.text);
          if (!outcome.ok) failures.push(app.name);
        }
        if (failures.length > 0) throw new CliError(`the update of ${failures.join(', ')} did not complete; \`hivemind app NAME\` shows why`);
      },
      timedOut: (line) =>
        new CliError(`gave up following after ${formatDurationMs(init.timeoutMs)}: ${line}. The deploy itself is committed; \`hivemind app NAME\` shows the rollout.`),
    },
  );
}

function rolloutOutcome(app: DeployedApp, own: Rollout | undefined, current: Rollout | undefined): { ok: boolean; text: string } {
  if (own === undefined) {
    if (current?.kind === 'rollback' && current.fromVersion === app.version) return { ok: false, text: `${app.name}: version ${app.version} failed; ${current.message}` };
    return { ok: true, text: `${app.name}: superseded by a later deploy` };
  }
  switch (own.state) {
    case 'succeeded':
      return { ok: true, text: `${app.name}: version ${own.toVersion} rolled out (${own.message})` };
    case 'awaiting-promotion':
      return { ok: true, text: `${app.name}: ${own.message} (hivemind promote ${app.name} / hivemind abort ${app.name})` };
    case 'paused':
      return { ok: false, text: `${app.name}: ${own.message}` };
    default:
      return { ok: false, text: `${app.name}: rollout ${own.state}: ${own.message}` };
  }
}
