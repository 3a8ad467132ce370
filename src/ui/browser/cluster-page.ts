/**
 * The cluster: the leader and its term, the nodes (role, health, resources
 * and the load placed on them), the elections the serving node saw lately
 * (its own view, GET /v1/elections), and graphs of
 * the node's commit rate and API latency from its own `/metrics`.
 */
import { ApiRequestError } from './api.js';
import type { AppSummaryView, ElectionView, InstanceView, NodeView, StatusView } from './api-types.js';
import { lineChart } from './chart.js';
import { badge, element, table } from './dom.js';
import { formatAgo, formatBytes, formatCpu, formatTime } from './format.js';
import { pause } from './live.js';
import { ratesOf, sampleOf, withSample, type MetricsSample } from './metrics-series.js';
import { errorText, section, stateTone, type Page, type PageContext } from './page.js';

/** How often the graphs read `/metrics`. */
export const METRICS_INTERVAL_MS = 2000;
/** Kept across visits to the page while the tab is open: the metrics samples so far. */
const seen = { samples: [] as MetricsSample[] };

/** The cluster page. */
export const clusterPage: Page = (context) => {
  const overview = element('div');
  const graphs = element('div', { class: 'charts' });
  context.root.append(
    element('h1', null, 'Cluster'),
    overview,
    section('This node\'s figures', element('p', { class: 'hint' }, 'From the /metrics of the node serving this page, every 2 s.'), graphs),
  );
  context.live(async () => {
    const [status, nodes, instances, apps, elections] = await Promise.all([
      context.api.read<StatusView>('/v1/status'),
      context.api.read<{ nodes: NodeView[] }>('/v1/nodes'),
      context.api.read<{ instances: InstanceView[] }>('/v1/instances'),
      context.api.read<{ apps: AppSummaryView[] }>('/v1/apps'),
      context.api.read<{ node: string; elections: ElectionView[] }>('/v1/elections'),
    ]);
    overview.replaceChildren(summary(status.value), nodesSection(nodes.value.nodes, instances.value.instances, apps.value.apps), electionsSection(elections.value.node, elections.value.elections));
    return Math.max(status.index, nodes.index, instances.index, apps.index);
  });
  void drawGraphs(context, graphs);
};

function summary(status: StatusView): HTMLElement {
  const fact = (label: string, value: Node | string): HTMLElement => element('div', { class: 'fact' }, element('span', { class: 'fact-label' }, label), element('span', { class: 'fact-value' }, value));
  return element(
    'div',
    { class: 'facts' },
    fact('leader', status.leader === '' ? badge('none', 'bad') : element('span', { 'data-test': 'leader' }, status.leader)),
    fact('term', String(status.term)),
    fact('commit index', String(status.commit)),
    fact('voters', status.voters.join(', ') || '–'),
    fact('learners', status.learners.join(', ') || '–'),
    fact('this node', `${status.node} (${status.role})`),
    fact('version', status.version),
  );
}

/** What the instances placed on a node reserve. */
interface NodeLoad {
  instances: number;
  cpuMillis: number;
  memoryBytes: number;
}

function loadByNode(instances: readonly InstanceView[], apps: readonly AppSummaryView[]): Map<string, NodeLoad> {
  const specs = new Map<string, AppSummaryView['versions'][number]['spec']>();
  for (const app of apps) for (const version of app.versions) specs.set(`${app.tenant}/${app.name}@${version.version}`, version.spec);
  const loads = new Map<string, NodeLoad>();
  for (const instance of instances) {
    if (instance.node === undefined || instance.desired !== 'running') continue;
    const load = loads.get(instance.node) ?? { instances: 0, cpuMillis: 0, memoryBytes: 0 };
    const spec = specs.get(`${instance.tenant}/${instance.app}@${instance.version}`);
    load.instances += 1;
    load.cpuMillis += spec?.reservations.cpuMillis ?? 0;
    load.memoryBytes += spec?.reservations.memoryBytes ?? 0;
    loads.set(instance.node, load);
  }
  return loads;
}

function nodesSection(nodes: readonly NodeView[], instances: readonly InstanceView[], apps: readonly AppSummaryView[]): HTMLElement {
  const loads = loadByNode(instances, apps);
  const now = Date.now();
  const rows = nodes.map((node) => {
    const load = loads.get(node.id) ?? { instances: 0, cpuMillis: 0, memoryBytes: 0 };
    const cpu = node.resources.cpuMillis;
    const memory = node.resources.memoryBytes;
    return [
      element('strong', null, node.id),
      element('span', null, node.role, node.leader ? ' ' : '', node.leader ? badge('leader', 'info') : null),
      badge(node.status, stateTone(node.status)),
      node.gossip === undefined ? '–' : badge(node.gossip.status, stateTone(node.gossip.status)),
      cpu === undefined ? '–' : `${formatCpu(load.cpuMillis)} of ${formatCpu(cpu)}`,
      memory === undefined ? '–' : `${formatBytes(load.memoryBytes)} of ${formatBytes(memory)}`,
      String(load.instances),
      node.lastSeenAt > 0 ? formatAgo(node.lastSeenAt, now) : '–',
      Object.entries(node.labels).map(([key, value]) => `${key}=${value}`).join(' ') || '–',
    ];
  });
  return section('Nodes', table(['node', 'role', 'health', 'gossip', 'CPU reserved', 'memory reserved', 'instances', 'last seen', 'labels'], rows, { 'data-test': 'nodes' }));
}

/** How each reason reads on the page. */
const REASON_TEXT: Record<ElectionView['reason'], string> = {
  start: 'seen at start',
  timeout: 'leader timed out',
  transfer: 'leadership transfer',
  'lost-quorum': 'leader lost its quorum',
  unknown: 'not known here',
};

function electionsSection(node: string, elections: readonly ElectionView[]): HTMLElement {
  const rows = elections.map((election) => [String(election.term), election.leader || '(none)', REASON_TEXT[election.reason] ?? election.reason, formatTime(election.seenAt)]);
  return section(
    'Recent elections',
    element('p', { class: 'hint' }, `The last terms and leaders node ${node} saw, newest first, and why each began as far as it could tell.`),
    table(['term', 'leader', 'why', 'seen at (UTC)'], rows, { 'data-test': 'elections' }),
  );
}

async function drawGraphs(context: PageContext, into: HTMLElement): Promise<void> {
  while (!context.signal.aborted) {
    try {
      const text = await context.api.text('/metrics', context.signal);
      seen.samples = withSample(seen.samples, sampleOf(text, Date.now()));
      const rates = ratesOf(seen.samples);
      const toMs = Date.now();
      const fromMs = toMs - 2 * 60_000;
      into.replaceChildren(
        lineChart({ title: 'Raft commits', unit: 'entries/s', points: rates.commitsPerSecond, fromMs, toMs }),
        lineChart({ title: 'API latency (median)', unit: 'ms', points: rates.requestLatencyMs, fromMs, toMs }),
      );
    } catch (error) {
      if (context.signal.aborted) return;
      if (error instanceof ApiRequestError && error.status === 403) {
        into.replaceChildren(element('p', { class: 'hint' }, 'The graphs need a token that reads the whole cluster (a cluster-wide viewer or cluster-admin).'));
        return;
      }
      into.replaceChildren(element('p', { class: 'error' }, errorText(error)));
    }
    await pause(METRICS_INTERVAL_MS, context.signal);
  }
}
