/**
 * One app: its replicas by state, the rollout in progress with promote and
 * abort, its versions, its instances with their last messages, and its
 * logs as they are written.
 */
import { ApiRequestError } from './api.js';
import type { AppDetailView, InstanceView, RolloutView } from './api-types.js';
import { stateBadges } from './apps-page.js';
import { badge, element, table } from './dom.js';
import { formatAgo, formatBytes, formatCpu, formatTime } from './format.js';
import { errorText, section, stateTone, type Page, type PageContext } from './page.js';

/** Lines the log panel keeps; older ones are dropped. */
export const LOG_LINES_MAX = 1000;
/** Lines each instance shows from its past when the log panel (re)opens. */
const LOG_TAIL_LINES = 100;
/** A line longer than this (an app writing without newlines) is shown in pieces of this many characters. */
export const LOG_LINE_CHARACTERS_MAX = 16 * 1024;

const ACTIVE_ROLLOUT_STATES: ReadonlySet<RolloutView['state']> = new Set(['running', 'paused', 'awaiting-promotion']);

/** The app page: `#/apps/<tenant>/<name>`. */
export const appPage: Page = (context) => {
  const [tenant, name] = context.parameters;
  if (tenant === undefined || name === undefined) {
    context.root.append(element('p', { class: 'error' }, 'An app page needs a tenant and a name: #/apps/<tenant>/<name>.'));
    return;
  }
  const path = `/v1/apps/${encodeURIComponent(tenant)}/${encodeURIComponent(name)}`;
  const body = element('div');
  const logs = new LogPanel(context, `${path}/logs`);
  context.root.append(element('h1', null, element('a', { href: '#/apps' }, 'Apps'), ' / ', `${tenant}/${name}`), body, logs.element);
  context.live(async () => {
    const app = await context.api.read<AppDetailView>(path);
    body.replaceChildren(...appSections(context, app.value, path));
    logs.follow(app.value.instances.filter((instance) => instance.node !== undefined).map((instance) => instance.id));
    return app.index;
  });
};

function appSections(context: PageContext, app: AppDetailView, path: string): HTMLElement[] {
  const running = app.instances.filter((instance) => instance.desired === 'running');
  const facts = element(
    'div',
    { class: 'facts' },
    fact('version', `v${app.version}`),
    fact('replicas', String(app.replicas)),
    fact('instances', stateBadges(running)),
    app.project === undefined ? null : fact('project', app.project),
  );
  return [facts, rolloutSection(context, app.rollout, path), unplaceableSection(app), instancesSection(app.instances), versionsSection(app)].filter((part): part is HTMLElement => part !== null);
}

function fact(label: string, value: Node | string): HTMLElement {
  return element('div', { class: 'fact' }, element('span', { class: 'fact-label' }, label), element('span', { class: 'fact-value' }, value));
}

function rolloutSection(context: PageContext, rollout: RolloutView | undefined, path: string): HTMLElement | null {
  if (rollout === undefined) return null;
  const active = ACTIVE_ROLLOUT_STATES.has(rollout.state);
  const act = (action: 'promote' | 'abort') => async (event: Event): Promise<void> => {
    const button = event.currentTarget as HTMLButtonElement;
    button.disabled = true;
    try {
      await context.api.write('POST', `${path}/${action}`);
      context.notify(action === 'promote' ? `promoted version ${rollout.toVersion}` : `aborted the rollout to version ${rollout.toVersion}`, 'good');
    } catch (error) {
      context.notify(errorText(error), 'bad');
      button.disabled = false;
    }
  };
  const weights = rollout.weights?.map((weight) => `v${weight.version}: ${weight.percent}%`).join(', ');
  return section(
    active ? 'Rollout in progress' : 'Last rollout',
    element(
      'p',
      { 'data-test': 'rollout' },
      badge(rollout.state, stateTone(rollout.state)),
      ` ${rollout.kind === 'rollback' ? 'rollback' : `${rollout.strategy} update`} from v${rollout.fromVersion} to v${rollout.toVersion}, ${rollout.done} of ${rollout.total} done`,
    ),
    element('p', null, rollout.message),
    weights === undefined ? null : element('p', { class: 'hint' }, `traffic: ${weights}`),
    element('progress', { max: Math.max(1, rollout.total), value: rollout.done }),
    active
      ? element(
          'div',
          { class: 'actions' },
          element('button', { type: 'button', class: 'primary', 'data-test': 'promote', onclick: (event) => void act('promote')(event) }, 'Promote'),
          element('button', { type: 'button', class: 'danger', 'data-test': 'abort', onclick: (event) => void act('abort')(event) }, 'Abort'),
        )
      : null,
  );
}

function unplaceableSection(app: AppDetailView): HTMLElement | null {
  if (app.unplaceable === undefined) return null;
  return section(`${app.unplaceable.count} instances cannot be placed`, element('ul', null, ...app.unplaceable.reasons.map((reason) => element('li', null, reason))));
}

function instancesSection(instances: readonly InstanceView[]): HTMLElement {
  const now = Date.now();
  const sorted = [...instances].sort((left, right) => left.slot - right.slot || left.version - right.version);
  const rows = sorted.map((instance) => [
    element('code', null, instance.id),
    `v${instance.version}`,
    instance.node ?? '–',
    badge(instance.status.state, stateTone(instance.status.state)),
    instance.desired === 'stopped' ? badge('retired', 'muted') : '',
    instance.status.since === undefined ? '–' : formatAgo(instance.status.since, now),
    String(instance.failures ?? 0),
    instance.status.message ?? (instance.status.exitCode === undefined ? '' : `exit code ${instance.status.exitCode}`),
  ]);
  return section('Instances', table(['instance', 'version', 'node', 'state', '', 'since', 'failures', 'last message'], rows, { 'data-test': 'instances' }));
}

function versionsSection(app: AppDetailView): HTMLElement {
  const rows = [...app.versions].reverse().map((version) => [
    `v${version.version}`,
    version.version === app.version ? badge('current', 'info') : '',
    formatTime(version.deployedAt),
    commandText(version.spec),
    [version.spec.reservations.cpuMillis === undefined ? '' : formatCpu(version.spec.reservations.cpuMillis), version.spec.reservations.memoryBytes === undefined ? '' : formatBytes(version.spec.reservations.memoryBytes)].filter(Boolean).join(', ') || '–',
  ]);
  return section('Versions', table(['version', '', 'deployed (UTC)', 'image or command', 'reserves'], rows));
}

/** Characters of a process app's command shown in the versions table; the whole of it is the cell's tooltip. */
const COMMAND_CHARACTERS_SHOWN = 80;

function commandText(spec: AppDetailView['versions'][number]['spec']): HTMLElement {
  const whole = spec.image ?? (spec.command ?? []).join(' ');
  const shown = whole.length > COMMAND_CHARACTERS_SHOWN ? `${whole.slice(0, COMMAND_CHARACTERS_SHOWN - 1)}…` : whole;
  return element('code', { title: whole }, shown);
}

/**
 * The app's logs as they are written (`GET .../logs?follow=1`). The node
 * merges the logs of the instances placed when the request came; when that
 * set changes (a canary starts), the panel asks again.
 */
class LogPanel {
  readonly element: HTMLElement;
  private readonly output = element('pre', { class: 'logs', 'data-test': 'logs', 'aria-live': 'polite' });
  private readonly status = element('p', { class: 'hint' }, 'waiting for placed instances');
  private following = '';
  private stream: AbortController | undefined;

  constructor(
    private readonly context: PageContext,
    private readonly path: string,
  ) {
    this.element = section('Logs', this.status, this.output);
    context.signal.addEventListener('abort', () => this.stream?.abort(), { once: true });
  }

  /** Follows the logs of `instanceIds` (placed instances); asks again only when the set changed. */
  follow(instanceIds: string[]): void {
    const key = [...instanceIds].sort().join(' ');
    if (key === this.following || this.context.signal.aborted) return;
    this.following = key;
    this.stream?.abort();
    if (instanceIds.length === 0) {
      this.status.textContent = 'no instance is placed';
      return;
    }
    const stream = new AbortController();
    this.stream = stream;
    void this.read(stream.signal);
  }

  private async read(signal: AbortSignal): Promise<void> {
    const lines: string[] = [];
    let partial = '';
    this.status.textContent = 'following';
    try {
      for await (const chunk of this.context.api.stream(`${this.path}?follow=1&tail=${LOG_TAIL_LINES}`, signal)) {
        const split = (partial + chunk).split('\n');
        partial = split.pop() ?? '';
        lines.push(...split);
        while (partial.length > LOG_LINE_CHARACTERS_MAX) {
          lines.push(partial.slice(0, LOG_LINE_CHARACTERS_MAX));
          partial = partial.slice(LOG_LINE_CHARACTERS_MAX);
        }
        if (lines.length > LOG_LINES_MAX) lines.splice(0, lines.length - LOG_LINES_MAX);
        const atBottom = this.output.scrollTop + this.output.clientHeight >= this.output.scrollHeight - 4;
        this.output.textContent = lines.join('\n');
        if (atBottom) this.output.scrollTop = this.output.scrollHeight;
      }
      if (!signal.aborted) this.status.textContent = 'the node ended the log stream';
    } catch (error) {
      if (signal.aborted) return;
      this.status.textContent = `logs: ${errorText(error)}`;
      // A refusal (the token may not read logs) stands until the instances change; anything else is asked again at the app's next change.
      if (!(error instanceof ApiRequestError && (error.status === 403 || error.status === 401))) this.following = '';
    }
  }
}
