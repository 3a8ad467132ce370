// The monitoring files in docs/monitoring: the alerting rules pass
// `promtool check rules` and their unit tests (`promtool test rules`: input
// series -> the alerts that must and must not fire), and each Grafana
// dashboard is valid JSON whose panels query Prometheus through the
// dashboard's datasource variable. Whether the metric names they use exist is
// checked against live agents in prometheus.test.ts.
import { spawnSync } from 'node:child_process';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ALERTS_FILE, MONITORING_DIR, dashboardExpressions, hivemindNamesIn, panelsOf, readDashboards, ruleExpressions } from './monitoring-files.js';

const promtoolMissing = spawnSync('promtool', ['--version']).error !== undefined;

function promtool(args: string[]): { status: number | null; output: string } {
  const run = spawnSync('promtool', args, { cwd: MONITORING_DIR, encoding: 'utf8', timeout: 60_000 });
  return { status: run.status, output: `${run.stdout}${run.stderr}` };
}

test('the alerting rules pass promtool check rules', () => {
  if (promtoolMissing) return console.log('skipping: promtool is not installed (apt-get install prometheus)');
  const checked = promtool(['check', 'rules', ALERTS_FILE]);
  assert.is(checked.status, 0, checked.output);
  assert.match(checked.output, /SUCCESS: \d+ rules found/);
});

test('the alerting rules pass their unit tests (promtool test rules)', () => {
  if (promtoolMissing) return console.log('skipping: promtool is not installed (apt-get install prometheus)');
  const tested = promtool(['test', 'rules', 'alerts.test.yml']);
  assert.is(tested.status, 0, tested.output);
  assert.match(tested.output, /SUCCESS/);
});

test('every alert the issue asks for is there', () => {
  const alerts = ruleExpressions().map((rule) => rule.where.replace('alerts.yml: ', ''));
  for (const name of ['HivemindLeaderless', 'HivemindFollowerLagging', 'HivemindNodeDown', 'HivemindInstancesUnplaceable', 'HivemindQuotaNearLimit', 'HivemindCertificateExpiringSoon', 'HivemindCaExpiringSoon']) {
    assert.ok(alerts.includes(name), `alerts.yml has no ${name}`);
  }
});

test('the dashboards are valid JSON, each panel queries through the datasource variable', () => {
  const dashboards = readDashboards();
  assert.equal([...dashboards.keys()], ['apps.json', 'cluster.json', 'node.json']);
  const uids = new Set<string>();
  for (const [name, dashboard] of dashboards) {
    assert.type(dashboard.uid, 'string', `${name}: uid`);
    assert.not.ok(uids.has(dashboard.uid), `${name}: uid ${dashboard.uid} is used twice`);
    uids.add(dashboard.uid);
    assert.ok(dashboard.templating.list.some((variable: any) => variable.name === 'datasource' && variable.type === 'datasource'), `${name}: no $datasource variable`);
    const ids = new Set<number>();
    for (const panel of panelsOf(dashboard)) {
      assert.not.ok(ids.has(panel.id), `${name}: panel id ${panel.id} twice`);
      ids.add(panel.id);
      assert.ok(panel.gridPos !== undefined && panel.gridPos.w > 0 && panel.gridPos.x + panel.gridPos.w <= 24, `${name}: panel "${panel.title}" gridPos`);
      if (panel.type === 'row') continue;
      assert.is(panel.datasource?.uid, '${datasource}', `${name}: panel "${panel.title}" does not use $datasource`);
      assert.ok(panel.targets.length > 0, `${name}: panel "${panel.title}" has no query`);
    }
  }
  const expressions = dashboardExpressions(dashboards);
  assert.ok(expressions.length >= 40, `only ${expressions.length} expressions`);
  for (const { where, expr } of expressions) assert.ok(hivemindNamesIn(expr).length > 0 || /\bup\{/.test(expr), `${where} uses no Hivemind metric: ${expr}`);
});

test.run();
