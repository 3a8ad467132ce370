/**
 * `deploy -f FILE`: send a Compose-style file to the node, show what it
 * deployed, then (unless `--detach`) follow it with blocking queries: an
 * update's rollout until it ends (succeeded, rolled back, paused, or waiting
 * for `hivemind promote`), a first deploy's instances until they all run, or
 * until an app has none running and one failed (then it stops with the
 * executor's own words); it ends with the result, or gives up at `--timeout`.
 */
import { Option, type Command } from 'commander';
import type { DeployPlan, PlannedApp } from '../../appfile/index.js';
import type { DeployedApp, DryRunAnswer } from '../../api/answers.js';
import { formatBytes, formatCpu } from '../../state/errors.js';
import type { App, Instance, Rollout } from '../../state/types.js';
import { listIn, objectOf } from '../answers.js';
import type { ApiClient, ApiResponse, Blocking } from '../client.js';
import { contextOf, withClient, type CliContext } from '../context.js';
import { CliError } from '../errors.js';
import { isTerminal, printJson, printLine, printTable } from '../output.js';
import { parseDurationOption } from '../parse.js';
import { addAppFileOptions, gatherAppFiles, type AppFileFlags, type AppFileInput } from './app-file-input.js';
import { instanceMessage } from './instance-text.js';
import { formatDurationMs } from '../../appfile/units.js';
/** How long `--wait` waits by default. */
export const DEPLOY_WAIT_MS_DEFAULT = 5 * 60_000;
/** How long each blocking query of `--wait` waits for a change. */
const WAIT_POLL_MS = 10_000;

/** One app of `POST /v1/deploy`'s answer (re-exported for the commands that show one). */
export type { DeployedApp };

interface DeployOptions extends AppFileFlags {
  wait?: boolean;
  detach?: boolean;
  force?: boolean;
  dryRun?: boolean;
  timeout: number;
}

/** Instance states that count as up for `--wait`. */
const upStates = new Set(['running', 'healthy']);
/** Instance states that mean an instance stopped or failed; shown, and waited past (a restart may follow). */
const downStates = new Set(['exited', 'failed', 'oom-killed', 'stopped', 'unhealthy']);

/** Adds `deploy` to `program`. */
export function registerDeployCommand(program: Command): void {
  const command = program.command('deploy').description('deploy every service of Compose-style app files (files with errors deploy nothing)');
  addAppFileOptions(command)
    .option('--force', "take over apps that belong to another project (by default such a deploy is refused)")
    .option('--dry-run', 'print what the deploy would change (apps, versions, instances to start and stop, quota use) and change nothing')
    .option('--wait', 'follow the rollout (or the new instances) until it ends, showing progress (the default)')
    .addOption(new Option('--detach', 'return once the deploy is committed, without following it').conflicts('wait'))
    .addOption(new Option('--timeout <duration>', 'how long to follow, such as 90s or 10m').argParser(parseDurationOption).default(DEPLOY_WAIT_MS_DEFAULT, '5m'))
    .addHelpText(
      'after',
      [
        '',
        'Examples:',
        '  hivemind deploy -f app.yaml',
        '  hivemind deploy -f compose.yaml -f compose.prod.yaml --env-file prod.env',
        '  hivemind deploy -f app.yaml --set web.image=nginx:1.27 --set web.deploy.replicas=3',
        '  hivemind deploy -f app.yaml --dry-run',
        '  hivemind deploy -f app.yaml -p shop --tenant acme --timeout 2m',
        '  cat app.yaml | hivemind deploy -f -',
      ].join('\n'),
    )
    .action(async (options: DeployOptions, command: Command) => {
      const context = contextOf(command);
      const input = await gatherAppFiles(options);
      await withClient(context, async (client) => {
        const request = deployRequest(input, { force: options.force === true, dryRun: options.dryRun === true });
        if (options.dryRun) {
          const { body } = await client.call('POST /v1/deploy', { body: request });
          const plan = objectOf(body, 'a plan');
          if (plan.dryRun !== true) throw new CliError("the node's answer is not a plan; is the node the same version as this CLI?");
          if (context.json) printJson(context, plan);
          else printPlan(context, plan);
          for (const warning of plan.warnings ?? []) context.stderr.write(`warning: ${warning}\n`);
          // Named by the user's key, as the deploy's own refusal is.
          if (plan.refusal !== undefined) throw new CliError(`the deploy would be refused: ${plan.refusal.field === undefined ? '' : `${plan.refusal.field}: `}${plan.refusal.message}`);
          return;
        }
        const { body: answer, index } = await client.call('POST /v1/deploy', { body: request });
        const body = objectOf(answer, 'a deploy');
        if (body.dryRun === true) throw new CliError("the node answered a plan to a deploy; is the node the same version as this CLI?");
        const apps = listIn(body, 'apps');
        if (context.json) printJson(context, body);
        else printDeployed(context, apps, body?.project);
        for (const warning of body?.warnings ?? []) context.stderr.write(`warning: ${warning}\n`);
        // With --json the answer is the output: follow only when --wait asks for it (progress on stderr, outcome lines after the JSON).
        if (options.detach || apps.length === 0 || (context.json && !options.wait)) return;
        const withRollout = apps.filter((app) => app.rollout !== undefined);
        const fresh = apps.filter((app) => app.rollout === undefined && app.unchanged !== true);
        if (fresh.length > 0) await waitForInstances(context, client, { apps: fresh, index: index ?? 0, timeoutMs: options.timeout });
        if (withRollout.length > 0) await followRollouts(context, client, { apps: withRollout, index: index ?? 0, timeoutMs: options.timeout });
      });
    });
}

/** The body of `POST /v1/deploy`: one file as `fileName` and `content` (what older nodes read), several as `files`. */
export function deployRequest(input: AppFileInput, flags: { force: boolean; dryRun: boolean }): Record<string, unknown> {
  const { sources, options } = input;
  const [only] = sources;
  const request: Record<string, unknown> =
    sources.length === 1 && only !== undefined ? { fileName: only.name, content: only.text } : { files: sources.map((source) => ({ fileName: source.name, content: source.text })) };
  if (options.defaultTenant !== undefined) request.tenant = options.defaultTenant;
  if (options.project !== undefined) request.project = options.project;
  if (options.projectFallback !== undefined) request.projectFallback = options.projectFallback;
  if (options.variables !== undefined && Object.keys(options.variables).length > 0) request.variables = options.variables;
  if (options.files !== undefined && Object.keys(options.files).length > 0) request.attachments = options.files;
  if (options.localSources !== undefined && Object.keys(options.localSources).length > 0) request.localSources = options.localSources;
  if (options.sets !== undefined && options.sets.length > 0) request.sets = options.sets;
  if (options.profiles !== undefined && options.profiles.length > 0) request.profiles = options.profiles;
  if (flags.force) request.force = true;
  if (flags.dryRun) request.dryRun = true;
  return request;
}

function printDeployed(context: CliContext, apps: DeployedApp[], project: string | undefined): void {
  if (apps.length === 0) return printLine(context, 'the file has no services; nothing was deployed');
  if (project !== undefined) printLine(context, `project ${project}`);
  printTable(
    context,
    ['app', 'tenant', 'version', 'replicas', 'change'],
    apps.map((app) => [app.name, app.tenant, app.version, app.replicas, app.unchanged === true ? 'unchanged' : app.rollout !== undefined ? 'rolling out' : 'deployed']),
  );
}

/** The marks of Nomad's plan: + create, ~ update, = unchanged, ! refused. */
const planMarks: Record<PlannedApp['action'], string> = { create: '+', update: '~', scale: '~', unchanged: '=', refused: '!' };

/** The lines of a dry run's plan (exported for tests). */
export function planLines(plan: DeployPlan & Partial<Pick<DryRunAnswer, 'creates' | 'refusal' | 'warnings'>>): string[] {
  const lines: string[] = [];
  if (plan.project !== undefined) lines.push(`project ${plan.project}`);
  for (const app of plan.apps ?? []) {
    const name = `${app.tenant}/${app.name}`;
    const instances = `start ${app.start}, stop ${app.stop} instance${app.stop === 1 ? '' : 's'}`;
    switch (app.action) {
      case 'create':
        lines.push(`+ ${name}: create version 1 with ${app.replicas} replica${app.replicas === 1 ? '' : 's'} (${instances})`);
        break;
      case 'update':
        lines.push(`~ ${name}: version ${app.fromVersion} → ${app.toVersion}, ${app.strategy ?? 'rolling'} update (${instances})`);
        for (const change of app.changes) lines.push(`    ${change}`);
        break;
      case 'scale':
        lines.push(`~ ${name}: stays at version ${app.fromVersion}, replicas ${app.fromReplicas} → ${app.replicas} (${instances})`);
        break;
      case 'unchanged':
        lines.push(`= ${name}: unchanged at version ${app.fromVersion}`);
        break;
      case 'refused':
        lines.push(`! ${name}: belongs to project "${app.owner}"; deploy with --force to take it over`);
        break;
    }
  }
  for (const volume of plan.creates?.volumes ?? []) lines.push(`+ volume ${volume}: created`);
  for (const secret of plan.creates?.secrets ?? []) lines.push(`+ secret ${secret}: created from the file`);
  for (const network of plan.creates?.networks ?? []) lines.push(`+ network ${network}: created`);
  for (const quota of plan.quotas ?? []) lines.push(quotaLine(quota));
  const marks = new Set((plan.apps ?? []).map((app) => planMarks[app.action]));
  if (marks.size === 1 && marks.has('=')) lines.push('nothing to change');
  return lines;
}

function quotaLine({ tenant, before, after, quota }: DeployPlan['quotas'][number]): string {
  const part = (what: string, from: number, to: number, limit: number | undefined, format: (value: number) => string): string =>
    `${what} ${format(from)} → ${format(to)}${limit === undefined ? '' : ` of ${format(limit)}${to > limit ? ' (over quota)' : ''}`}`;
  return `tenant ${tenant}: ${[
    part('instances', before.instances, after.instances, quota.instances, String),
    part('cpu', before.cpuMillis, after.cpuMillis, quota.cpuMillis, formatCpu),
    part('memory', before.memoryBytes, after.memoryBytes, quota.memoryBytes, formatBytes),
  ].join(', ')}`;
}

function printPlan(context: CliContext, plan: DryRunAnswer): void {
  for (const line of planLines(plan)) printLine(context, line);
  printLine(context, 'dry run: nothing was changed');
}

/**
 * Progress of one app's new version: how many of its instances are up, how
 * the others are, and the first that failed (none up, the reason it failed).
 */
interface Progress {
  app: DeployedApp;
  up: number;
  others: Map<string, number>;
  failed?: { instance: Instance; cause: string };
  /** Why the scheduler cannot place some of its instances (the app's `unplaceable` reasons), when it says. */
  unplaceable?: string[];
}

/** Reports of a crash loop (exited, oom-killed, unhealthy) after which `--wait` stops with the last one. */
const CRASH_LOOP_FAILURES = 3;

function progressOf(apps: DeployedApp[], instances: Instance[], records: readonly App[]): Progress[] {
  return apps.map((app) => {
    const record = records.find((candidate) => candidate.tenant === app.tenant && candidate.name === app.name);
    const own = instances.filter((instance) => instance.tenant === app.tenant && instance.app === app.name && instance.version === app.version);
    const others = new Map<string, number>();
    let up = 0;
    let failed: Progress['failed'];
    for (const instance of own) {
      const state = instance.status?.state ?? 'pending';
      if (upStates.has(state)) up++;
      else {
        // JSON leaves an unplaced instance's `node` out (or null).
        const label = state === 'pending' && (instance.node === undefined || instance.node === null) ? 'not placed' : state;
        others.set(label, (others.get(label) ?? 0) + 1);
        failed ??= failureOf(instance);
      }
    }
    const unplaceable = record?.unplaceable !== undefined && record.unplaceable.count > 0 ? { unplaceable: record.unplaceable.reasons } : {};
    return { app, up, others, ...(up === 0 && failed !== undefined ? { failed } : {}), ...unplaceable };
  });
}

/**
 * Why `instance` failed, when it did: its executor gave up (`failed`), it was
 * rescheduled after failing (`lastFailure`), or it keeps crashing.
 */
function failureOf(instance: Instance): Progress['failed'] {
  const state = instance.status?.state;
  const where = instance.node === undefined || instance.node === null ? '' : ` on ${instance.node}`;
  if (state === 'failed') return { instance, cause: `failed${where}: ${instanceMessage(instance) || 'no reason given'}` };
  if (instance.lastFailure !== undefined) return { instance, cause: `failed${instance.lastFailure.node === undefined ? '' : ` on ${instance.lastFailure.node}`}: ${instance.lastFailure.message}` };
  if (state !== undefined && downStates.has(state) && (instance.failures ?? 0) >= CRASH_LOOP_FAILURES) return { instance, cause: `${state}${where} ${instance.failures} times: ${instanceMessage(instance) || 'no reason given'}` };
  return undefined;
}

function isDone(progress: Progress[]): boolean {
  return progress.every((each) => each.up >= each.app.replicas || each.failed !== undefined);
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
 * Follows a list with blocking queries (`query` reads it) from `init.index`, printing the line
 * `read` makes of each answer on stderr when it changes (in place on a
 * terminal), until `read` says done (its `finish` runs) or `timeoutMs`
 * passes (`timedOut` makes the error, given the last line).
 */
async function follow<Body, T>(
  context: CliContext,
  client: ApiClient,
  init: { apps: DeployedApp[]; index: number; timeoutMs: number; query: (tenant: { tenant?: string }, blocking: Blocking) => Promise<ApiResponse<Body>> },
  read: (body: Body) => { line: string; done: boolean; state: T },
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
    const response = await init.query(query, { index, waitMs });
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
    {
      ...init,
      query: async (query, blocking) => {
        const instances = await client.call('GET /v1/instances', { query, blocking });
        // The apps say why instances are not placed; one index moves for both, so the instances' answer woke for them too.
        const apps = await client.call('GET /v1/apps', { query });
        return { body: { instances: listIn(instances.body, 'instances'), apps: listIn(apps.body, 'apps') }, index: instances.index };
      },
    },
    (body) => {
      const progress = progressOf(init.apps, body.instances, body.apps);
      return { line: progressLine(progress), done: isDone(progress), state: progress };
    },
    {
      finish: (progress) => {
        const failed = progress.filter((each) => each.up < each.app.replicas && each.failed !== undefined);
        if (failed.length === 0) return;
        const causes = failed.map(({ app, failed: failure }) => `${app.name}: instance ${failure!.instance.id} ${failure!.cause}`);
        throw new CliError(`${causes.join('; ')}. The deploy itself is committed; fix the app and deploy again (\`hivemind ps NAME\` shows its instances).`);
      },
      timedOut: (line, progress) => {
        const reasons = progress.filter((each) => each.others.has('not placed') && each.unplaceable !== undefined).map((each) => `${each.app.name}: ${each.unplaceable!.join('; ')}`);
        const hint =
          reasons.length > 0
            ? ` Not placed because ${reasons.join('; ')}.`
            : progress.some((each) => each.others.has('not placed'))
              ? ' Instances that are not placed wait for a node with room (see `hivemind nodes`).'
              : '';
        const failing = progress.some((each) => [...each.others.keys()].some((state) => downStates.has(state)));
        const failingHint = failing ? ' Some instances stopped or failed: `hivemind app NAME` shows why.' : '';
        return new CliError(`gave up waiting after ${formatDurationMs(init.timeoutMs)}: ${line}. The deploy itself is committed.${hint}${failingHint}`);
      },
    },
  );
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
    { ...init, query: (query, blocking) => client.call('GET /v1/apps', { query, blocking }) },
    (body) => {
      const listed = listIn(body, 'apps');
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
