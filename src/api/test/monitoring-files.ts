/**
 * The monitoring files shipped in docs/monitoring (Grafana dashboards,
 * Prometheus alerting rules) read the way the tests check them: every PromQL
 * expression they hold, the metric names those use, and the names an
 * agent's `/metrics` exports.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';

/** docs/monitoring in the source tree (tests run from dist/). */
export const MONITORING_DIR = fileURLToPath(new URL('../../../../docs/monitoring/', import.meta.url));
export const DASHBOARDS_DIR = join(MONITORING_DIR, 'dashboards');
export const ALERTS_FILE = join(MONITORING_DIR, 'alerts.yml');

/** One PromQL expression and where it came from (for messages). */
export interface SourcedExpression {
  where: string;
  expr: string;
}

/** The dashboard files, by file name, parsed (throws, naming the file, on JSON that does not parse). */
export function readDashboards(): Map<string, any> {
  const dashboards = new Map<string, any>();
  for (const name of readdirSync(DASHBOARDS_DIR).filter((file) => file.endsWith('.json')).sort()) {
    const text = readFileSync(join(DASHBOARDS_DIR, name), 'utf8');
    try {
      dashboards.set(name, JSON.parse(text));
    } catch (error) {
      throw new Error(`docs/monitoring/dashboards/${name} is not valid JSON: ${(error as Error).message}`);
    }
  }
  return dashboards;
}

/** Every panel of a dashboard, rows' nested panels included. */
export function panelsOf(dashboard: any): any[] {
  const panels: any[] = [];
  for (const panel of dashboard.panels ?? []) {
    panels.push(panel);
    for (const nested of panel.panels ?? []) panels.push(nested);
  }
  return panels;
}

/** The PromQL of every panel target of every dashboard. */
export function dashboardExpressions(dashboards: Map<string, any>): SourcedExpression[] {
  const found: SourcedExpression[] = [];
  for (const [name, dashboard] of dashboards) {
    for (const panel of panelsOf(dashboard)) {
      for (const target of panel.targets ?? []) {
        if (typeof target.expr === 'string') found.push({ where: `${name}: panel "${panel.title}" (${target.refId})`, expr: target.expr });
      }
    }
  }
  return found;
}

/** The queries of the dashboards' template variables (`label_values(...)`: not PromQL, but they name metrics). */
export function variableQueries(dashboards: Map<string, any>): SourcedExpression[] {
  const found: SourcedExpression[] = [];
  for (const [name, dashboard] of dashboards) {
    for (const variable of dashboard.templating?.list ?? []) {
      const query = typeof variable.query === 'string' ? variable.query : variable.query?.query;
      if (variable.type === 'query' && typeof query === 'string') found.push({ where: `${name}: variable $${variable.name}`, expr: query });
    }
  }
  return found;
}

/** The expression of every alerting rule in alerts.yml. */
export function ruleExpressions(): SourcedExpression[] {
  const rules = parse(readFileSync(ALERTS_FILE, 'utf8')) as { groups: { name: string; rules: { alert: string; expr: string }[] }[] };
  return rules.groups.flatMap((group) => group.rules.map((rule) => ({ where: `alerts.yml: ${rule.alert}`, expr: String(rule.expr) })));
}

/** The Hivemind metric names (`hivemind_...`) an expression uses. */
export function hivemindNamesIn(expr: string): string[] {
  return [...new Set(expr.match(/\bhivemind_[a-zA-Z0-9_]+/g) ?? [])];
}

/**
 * The sample names a text exposition can hold, from its `# TYPE` lines (so a
 * labelled family with no sample yet counts too): a histogram's `_bucket`,
 * `_sum` and `_count`, a summary's `_sum` and `_count`, any other by its name.
 */
export function exportedNames(exposition: string): Set<string> {
  const names = new Set<string>();
  for (const match of exposition.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    const [, name, type] = match as unknown as [string, string, string];
    names.add(name);
    if (type === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) names.add(name + suffix);
    if (type === 'summary') for (const suffix of ['_sum', '_count']) names.add(name + suffix);
  }
  return names;
}

/** A dashboard expression made a plain query: Grafana's variables replaced by values Prometheus takes. */
export function asQuery(expr: string, variables: { node: string }): string {
  return expr.replaceAll('$__rate_interval', '1m').replaceAll('$node', variables.node);
}
