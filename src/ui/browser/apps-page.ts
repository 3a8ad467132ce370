/**
 * The apps: each with its version, desired replicas, instances by state and
 * its rollout; a name leads to the app's page.
 */
import type { AppSummaryView, InstanceView } from './api-types.js';
import { badge, element, table } from './dom.js';
import { countBy } from './format.js';
import { appLink, section, stateTone, type Page } from './page.js';

/** The apps page. */
export const appsPage: Page = (context) => {
  const list = element('div');
  context.root.append(element('div', { class: 'page-head' }, element('h1', null, 'Apps'), element('a', { class: 'button', href: '#/deploy' }, 'Deploy')), list);
  context.live(async () => {
    const [apps, instances] = await Promise.all([
      context.api.read<{ apps: AppSummaryView[] }>('/v1/apps'),
      context.api.read<{ instances: InstanceView[] }>('/v1/instances'),
    ]);
    list.replaceChildren(appsTable(apps.value.apps, instances.value.instances));
    return Math.max(apps.index, instances.index);
  });
};

function appsTable(apps: readonly AppSummaryView[], instances: readonly InstanceView[]): HTMLElement {
  if (apps.length === 0) return section('No apps yet', element('p', null, 'Deploy one from ', element('a', { href: '#/deploy' }, 'the deploy page'), ' or with `hivemind deploy -f app.yaml`.'));
  const sorted = [...apps].sort((left, right) => left.tenant.localeCompare(right.tenant) || left.name.localeCompare(right.name));
  const rows = sorted.map((app) => {
    const own = instances.filter((instance) => instance.tenant === app.tenant && instance.app === app.name && instance.desired === 'running');
    return [
      app.tenant,
      element('a', { href: appLink(app.tenant, app.name), 'data-test': `app-${app.tenant}-${app.name}` }, app.name),
      `v${app.version}`,
      String(app.replicas),
      stateBadges(own),
      app.rollout === undefined ? '–' : badge(`${app.rollout.kind === 'rollback' ? 'rollback' : app.rollout.strategy} ${app.rollout.fromVersion}→${app.rollout.toVersion}: ${app.rollout.state}`, stateTone(app.rollout.state)),
      app.unplaceable === undefined ? '' : badge(`${app.unplaceable.count} unplaceable`, 'bad'),
    ];
  });
  return table(['tenant', 'app', 'version', 'replicas', 'instances', 'rollout', ''], rows, { 'data-test': 'apps' });
}

/** One badge per instance state, with its count. */
export function stateBadges(instances: readonly InstanceView[]): HTMLElement {
  if (instances.length === 0) return element('span', { class: 'hint' }, 'none');
  return element('span', { class: 'badges' }, ...countBy(instances, (instance) => instance.status.state).map(([state, count]) => badge(`${count} ${state}`, stateTone(state))));
}
